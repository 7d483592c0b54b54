"""relayd's command line and the daemon's assembly.

    relayd run -c conf/relayd.toml [--ready-file F]
    relayd check-config -c FILE
    relayd hash-password [PASSWORD]

Start-up order (architecture.md §3): open the store, load its checkpoint, open
the WAL (a torn tail is cut), replay it, rebuild queues/correlation/reports —
all before the listener accepts a single bind. Then the carrier binds, the
upstream listener, the HTTP endpoint (/metrics and /admin/*, relayd/admin.py).
SIGTERM: stop accepting binds, unbind upstream sessions, drain carrier windows
within the grace time, flush the WAL, exit 0. SIGHUP: reload accounts and
routes without dropping binds. SIGUSR1: log at debug; SIGUSR2: back to the
configured level (relayd/logs.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("relayd")


class Daemon:
    """Owns the relay's parts and their lifecycle."""

    def __init__(self, config: Any, config_path: str) -> None:
        self.config = config
        self.config_path = config_path
        self.stop_event = asyncio.Event()
        self.tasks: set[asyncio.Task[Any]] = set()
        self.ready: dict[str, Any] = {}
        self.started_at = time.time()
        self.last_checkpoint_at: float | None = None
        self.admin: Any = None
        from relayd.logs import RecentRecords

        # Recent warnings and errors for `relayctl status` (redacted, bounded).
        self.recent = RecentRecords()

    async def start(self) -> None:
        from relayd.carriers import CarrierPool
        from relayd.core import Relay
        from relayd.metrics import Metrics
        from relayd.store import Store
        from relayd.upstream import UpstreamServer
        from relayd.wal import Wal

        cfg = self.config
        t0 = time.monotonic()
        self.started_at = time.time()
        logging.getLogger("relayd").addHandler(self.recent)
        self.metrics = Metrics()
        data_dir = Path(cfg.data_dir)
        self.store = await Store.open(cfg.store.path)
        ckpt_seq, blobs = await self.store.load_checkpoint()
        wal_dir = data_dir / "wal"
        self.wal = await Wal.open(
            wal_dir,
            segment_bytes=cfg.wal.segment_bytes,
            max_batch_records=cfg.wal.max_batch_records,
            queue_max=cfg.wal.queue_max,
            fsync=cfg.wal.fsync,
            on_batch=self.metrics.on_wal_batch,
        )
        relay = self.relay = Relay(cfg, self.wal, self.store, self.metrics)
        relay.load_snapshot(blobs)
        replayed = 0
        # Segments older than the checkpoint are covered by it (and normally gone).
        for record in self.wal.replay(start_segment=ckpt_seq or 0):
            relay.apply_record(record)
            replayed += 1
        resumed = relay.resume_after_recovery()
        recovery_s = time.monotonic() - t0
        self.metrics.recovery.set(recovery_s)
        log.info(
            "recovered in %.3fs: checkpoint=%s records=%d %s",
            recovery_s,
            ckpt_seq,
            replayed,
            " ".join(f"{k}={v}" for k, v in resumed.items()),
            extra={"event": "recovered", "records": replayed, **resumed},
        )
        self.pool = CarrierPool(relay)
        relay.carriers = self.pool
        self.pool.start()
        self.upstream = UpstreamServer(relay)
        relay.upstream = self.upstream
        await self.upstream.start()
        from relayd.admin import AdminServer

        # /metrics and /admin/* on one HTTP listener owned by the loop (relayd/admin.py).
        self.admin = AdminServer(self)
        http_port = await self.admin.start()
        metrics_port = http_port if cfg.metrics.enabled else None
        self.ready = {
            "smpp_port": self.upstream.port,
            "metrics_port": metrics_port,
            "admin_port": http_port if cfg.admin.enabled else None,
            "pid": os.getpid(),
            "recovery_s": round(recovery_s, 4),
            **resumed,
        }
        log.info(
            "ready: smpp %s:%s http %s:%s",
            cfg.server.host,
            self.upstream.port,
            cfg.metrics.host,
            http_port,
            extra={"event": "ready", "smpp_port": self.upstream.port, "http_port": http_port},
        )
        self._spawn(self._checkpoint_loop(), "checkpoint")
        self._spawn(self._gauges_loop(), "gauges")

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _checkpoint_loop(self) -> None:
        interval = self.config.store.checkpoint_interval_s
        last_bytes = 0
        while True:
            await asyncio.sleep(interval)
            await self.checkpoint_if_due(last_bytes)
            last_bytes = self.wal.statistics().bytes_written

    async def checkpoint_if_due(self, last_bytes: int, *, force: bool = False) -> bool:
        """Snapshot live messages into the store and drop the WAL segments it covers.

        Taken when the WAL grew by a segment since the last checkpoint; postponed
        while very many messages are in flight (a snapshot is ~10 µs a message and
        runs on the loop) unless the WAL grew four segments.
        """
        grown = self.wal.statistics().bytes_written - last_bytes
        seg = self.config.wal.segment_bytes
        live = len(self.relay.messages) + len(self.relay.pending_accept)
        if not force and (grown < seg or (live > 50_000 and grown < 4 * seg)):
            return False
        if not self.wal.healthy:
            return False
        # rotate + snapshot in one loop turn: the snapshot equals the state after
        # every record before the new segment (pending accepts included).
        seq = self.wal.rotate()
        blobs = self.relay.snapshot_blobs()
        await self.store.save_checkpoint(seq, blobs)
        self.last_checkpoint_at = time.time()
        deleted = await self.wal.delete_segments_before(seq)
        log.info(
            "checkpoint at segment %d: %d live messages, %d segments deleted",
            seq,
            len(blobs),
            deleted,
            extra={"event": "checkpoint", "segment": seq},
        )
        return True

    async def _gauges_loop(self) -> None:
        m = self.metrics
        while True:
            await asyncio.sleep(1.0)
            self.relay.expire_sweep()
            m.messages.set(len(self.relay.messages))
            m.wal_healthy.set(1 if self.wal.healthy else 0)
            for acct, q in self.relay.reports.items():
                m._child(m.receipt_backlog, acct).set(len(q))
            for c in self.pool.carriers.values():
                for b in c.binds:
                    m._child(m.window, c.name, b.name).set(len(b.inflight))
            m.queue_depth(self.relay.queues)

    def reload(self) -> None:
        from relayd.config import ConfigError, reload_accounts_and_routes

        try:
            new = reload_accounts_and_routes(self.config_path, self.config)
        except ConfigError as exc:
            log.error("reload refused: %s", exc, extra={"event": "reload_refused"})
            return
        self.config = new
        self.relay.config = new
        log.warning(
            "reloaded accounts and routes: %d accounts, %d routes",
            len(new.accounts),
            len(new.routes),
            extra={"event": "reloaded"},
        )

    async def stop(self) -> None:
        grace = self.config.server.grace_s
        self.relay.accepting = False
        await self.upstream.stop(min(grace, 5.0))
        await self.pool.stop(grace)
        if self.admin is not None:
            await self.admin.stop()
        logging.getLogger("relayd").removeHandler(self.recent)
        for t in list(self.tasks):
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.relay.flush_reported()
        await self.wal.close()
        await self.store.close()


async def _serve(config: Any, config_path: str, ready_file: str | None) -> int:
    daemon = Daemon(config, config_path)
    loop = asyncio.get_running_loop()
    await daemon.start()
    if ready_file:
        tmp = f"{ready_file}.tmp"
        Path(tmp).write_text(json.dumps(daemon.ready))  # noqa: ASYNC240 - once, at start-up
        os.replace(tmp, ready_file)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, daemon.stop_event.set)
    loop.add_signal_handler(signal.SIGHUP, daemon.reload)
    loop.add_signal_handler(signal.SIGUSR1, _debug_logging)
    loop.add_signal_handler(signal.SIGUSR2, _reset_logging)
    await daemon.stop_event.wait()
    log.info("stopping", extra={"event": "stopping"})
    await daemon.stop()
    log.info("stopped", extra={"event": "stopped"})
    return 0


def _debug_logging() -> None:
    from relayd import logs

    previous = logs.set_level("debug")
    log.warning("log level %s → debug (SIGUSR1)", previous, extra={"event": "log_level"})


def _reset_logging() -> None:
    from relayd import logs

    previous = logs.reset_level()
    level = logs.current_level()
    log.warning("log level %s → %s (SIGUSR2)", previous, level, extra={"event": "log_level"})


def _tune_gc() -> None:
    """Collect cycles far less often in the daemon process.

    relayd keeps every in-flight message (up to hundreds of thousands of Msg
    objects) alive; with CPython's default thresholds (700, 10, 10) each full
    collection traverses all of them, for objects that form no cycles —
    measured as ~15% of CPU in the carrier simulator, which holds as many.
    Reference counting still frees PDUs and events at once; cycles (futures,
    exceptions) are still collected. Start-up objects are frozen out of it.
    """
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 10)


def _load(path: str) -> Any:
    from relayd.config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        print(f"relayd: {exc}", file=sys.stderr)
        return None
    except OSError as exc:
        print(f"relayd: {path}: {exc.strerror}", file=sys.stderr)
        return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="relayd", description="SMPP v3.4 SMS relay daemon")
    sub = ap.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the daemon")
    run.add_argument("-c", "--config", default="conf/relayd.toml")
    run.add_argument("--ready-file", help="write the bound ports as JSON here once serving")
    run.add_argument(
        "--log-level",
        default=os.environ.get("RELAYD_LOG_LEVEL"),
        help="debug|info|warning|error|critical (default: [log] level, or RELAYD_LOG_LEVEL)",
    )
    chk = sub.add_parser("check-config", help="validate a configuration file and exit")
    chk.add_argument("-c", "--config", default="conf/relayd.toml")
    hp = sub.add_parser("hash-password", help="print an scrypt hash for an account's password")
    hp.add_argument("password", nargs="?")
    args = ap.parse_args(argv)

    if args.command == "hash-password":
        from relayd.passwords import hash_password

        pw = args.password if args.password is not None else getpass.getpass("password: ")
        print(hash_password(pw))
        return 0
    config = _load(args.config)
    if config is None:
        return 2
    if args.command == "check-config":
        print(f"{args.config}: ok")
        return 0
    from relayd import logs

    try:
        logs.configure(args.log_level or str(config.log.level), str(config.log.format))
    except ValueError as exc:
        print(f"relayd: --log-level: {exc}", file=sys.stderr)
        return 2
    _tune_gc()
    with contextlib.suppress(ImportError):
        import uvloop

        return int(uvloop.run(_serve(config, args.config, args.ready_file)))
    return asyncio.run(_serve(config, args.config, args.ready_file))


if __name__ == "__main__":
    raise SystemExit(main())
