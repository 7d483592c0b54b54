"""Macro-benchmark of the carrier simulator driven by the upstream load client:
``python -m bench.sim [--count 200000] [--binds 4] [--window 500] [--profile skt]``.

The simulator runs as a real subprocess (``python -m simulators.carrier``)
pinned to one core, with near-zero receipt delays and no TPS limit; this
process pins itself to another core and drives it with
:class:`simulators.upstream.UpstreamClient` (uvloop), waits for every receipt,
unbinds, SIGTERMs the simulator and reads its accounting JSON. Prints ONE JSON
line:

* ``carrier_submits_per_s``: submits the simulator accepted / the client's
  span from the first submit_sm to the last submit_sm_resp (the median over
  ``--runs``);
* ``receipts_per_s``: receipts received / first submit → last receipt;
* ``ok``: every message accepted and receipted exactly once, on both sides
  (the simulator's ``unique_messages`` and ``duplicates`` prove it for the
  carrier side);
* ``client``: the load client's summary (counts, latency percentiles);
* ``carrier``: the simulator's accounting;
* ``machine``: CPU, cores, Python, event loop.

Bounded in count and time: ``--deadline-s`` caps each run; the simulator is
killed on any exit path.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import IO, Any

from bench.proc import cpu_s, machine_info, usable_cores
from simulators.link import tune_gc
from simulators.upstream import UpstreamClient, make_pdu_factory

# The account every built-in profile accepts (simulators/profiles.py DEFAULT_ACCOUNTS).
SYSTEM_ID = "relayd"
PASSWORD = "relaypw"
SIM_CORE = 0
CLIENT_CORE = 1
_LISTENING_RE = re.compile(r"listening on (\S+):(\d+)")


def _pin(core: int) -> Callable[[], None]:
    def pin() -> None:
        os.sched_setaffinity(0, {core})

    return pin


def start_simulator(
    args: argparse.Namespace, cores: list[int]
) -> tuple[subprocess.Popen[str], int]:
    """Start ``relay-sim carrier`` pinned to ``SIM_CORE`` and return it with its port."""
    cmd = [
        sys.executable,
        "-m",
        "simulators.carrier",
        "--profile", args.profile,
        "--listen", "127.0.0.1:0",
        "--seed", str(args.seed),
        "--receipt-median-s", str(args.receipt_median_s),
        "--receipt-p99-s", str(args.receipt_p99_s),
        "--tps-per-bind", "0",  # unlimited: the benchmark measures speed, not throttling
        "--window", str(max(args.window, 1024)),
        "--receipt-window", str(max(args.window, 256)),
        "--max-binds", "0",
    ]  # fmt: skip
    preexec: Callable[[], None] | None = None
    if len(cores) >= 2:
        if shutil.which("taskset"):
            cmd = ["taskset", "-c", str(cores[SIM_CORE]), *cmd]
        else:
            preexec = _pin(cores[SIM_CORE])
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=preexec,  # only sched_setaffinity: safe in the forked child
    )
    assert proc.stderr is not None
    port = _read_port(proc, proc.stderr, deadline=time.monotonic() + 20.0)
    return proc, port


def _read_port(proc: subprocess.Popen[str], stderr: IO[str], deadline: float) -> int:
    lines: list[str] = []
    while time.monotonic() < deadline:
        line = stderr.readline()
        if not line:
            break
        lines.append(line)
        m = _LISTENING_RE.search(line)
        if m:
            return int(m.group(2))
    proc.kill()
    raise RuntimeError("carrier simulator did not start: " + "".join(lines)[-2000:])


def stop_simulator(proc: subprocess.Popen[str], timeout_s: float = 15.0) -> dict[str, Any]:
    """SIGTERM the simulator and return its accounting JSON."""
    proc.send_signal(signal.SIGTERM)
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise RuntimeError("carrier simulator did not exit after SIGTERM") from None
    for line in reversed(out.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            result: dict[str, Any] = json.loads(line)
            return result
    raise RuntimeError(f"no accounting JSON from the simulator (rc={proc.returncode}): {err}")


async def drive(args: argparse.Namespace, port: int) -> tuple[dict[str, Any], bool]:
    client = UpstreamClient(
        "127.0.0.1",
        port,
        system_id=SYSTEM_ID,
        password=PASSWORD,
        binds=args.binds,
        bind_mode=args.bind_mode,
        window=args.window,
        response_timeout_s=30.0,
    )
    deadline = time.monotonic() + args.deadline_s
    await client.connect()
    complete = False
    try:
        await client.run(
            args.count, make_pdu_factory(registered_delivery=1), deadline_s=args.deadline_s
        )
        complete = await client.wait_receipts(max(1.0, deadline - time.monotonic()))
    finally:
        await client.close()
    return client.summary(), complete


def one_run(args: argparse.Namespace, cores: list[int]) -> dict[str, Any]:
    proc, port = start_simulator(args, cores)
    try:
        sim_cpu0 = cpu_s(proc.pid)
        own0 = time.process_time()
        summary, complete = _run_loop(drive(args, port))
        own_cpu = time.process_time() - own0
        sim_cpu1 = cpu_s(proc.pid)
        carrier = stop_simulator(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    span = summary["submit_span_s"]
    carrier_rate = carrier["submits_accepted"] / span if span > 0 else 0.0
    ok = (
        complete
        and summary["accepted"] == args.count
        and summary["receipts"] == args.count
        and summary["missing_receipts"] == 0
        and summary["duplicate_receipts"] == 0
        and summary["unknown_receipts"] == 0
        and carrier["unique_messages"] == args.count
        and carrier["duplicates"] == 0
        and carrier["submits_accepted"] == args.count
        and carrier["receipts_acknowledged"] == args.count
    )
    sim_cpu = None if sim_cpu0 is None or sim_cpu1 is None else sim_cpu1 - sim_cpu0
    return {
        "carrier_submits_per_s": round(carrier_rate, 1),
        "receipts_per_s": summary["receipt_rate_per_s"],
        "ok": ok,
        # CPU seconds while driving; against the span they show who was saturated.
        "cpu_s": {"client": round(own_cpu, 3), "simulator": sim_cpu},
        "client": summary,
        "carrier": carrier,
    }


def _run_loop(coro: Any) -> Any:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency
        return asyncio.run(coro)
    return uvloop.run(coro)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.sim", description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=200_000)
    ap.add_argument("--binds", type=int, default=4)
    ap.add_argument("--window", type=int, default=500)
    ap.add_argument("--bind-mode", choices=("trx", "tx+rx"), default="trx")
    ap.add_argument("--profile", default="skt", choices=("skt", "kt", "lgu"))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--receipt-median-s", type=float, default=0.001)
    ap.add_argument("--receipt-p99-s", type=float, default=0.01)
    ap.add_argument("--runs", type=int, default=1, help="repeat; report the median")
    ap.add_argument("--deadline-s", type=float, default=300.0, help="cap per run")
    args = ap.parse_args(argv)
    if args.count <= 0 or args.count > 5_000_000 or args.runs < 1:
        ap.error("--count must be in 1..5,000,000 and --runs >= 1")

    cores = usable_cores()
    if len(cores) >= 2:
        os.sched_setaffinity(0, {cores[CLIENT_CORE]})
    # The load client runs in this process: the same GC settings as the
    # simulator and the relay-sim CLIs (simulators/link.py tune_gc).
    tune_gc()
    runs = [one_run(args, cores) for _ in range(args.runs)]
    rates = [r["carrier_submits_per_s"] for r in runs]
    median_rate = statistics.median(rates)
    # Report the run closest to the median in full.
    chosen = min(runs, key=lambda r: abs(r["carrier_submits_per_s"] - median_rate))
    client = chosen["client"]
    result = {
        "bench": "sim",
        "profile": args.profile,
        "count": args.count,
        "binds": args.binds,
        "bind_mode": args.bind_mode,
        "window": args.window,
        "receipt_median_s": args.receipt_median_s,
        "receipt_p99_s": args.receipt_p99_s,
        "runs": args.runs,
        "carrier_submits_per_s": round(median_rate, 1),
        "carrier_submits_per_s_runs": rates,
        "receipts_per_s": statistics.median(r["receipts_per_s"] for r in runs),
        "ok": all(r["ok"] for r in runs),
        "submitted": client["submitted"],
        "accepted": client["accepted"],
        "receipts": client["receipts"],
        "missing_receipts": client["missing_receipts"],
        "duplicate_receipts": client["duplicate_receipts"],
        "unknown_receipts": client["unknown_receipts"],
        "submit_resp_ms": client["submit_resp_ms"],
        "receipt_ms": client["receipt_ms"],
        "elapsed_s": client["elapsed_s"],
        "cpu_s": chosen["cpu_s"],
        "client": client,
        "carrier": chosen["carrier"],
        "pinning": {"simulator_core": cores[SIM_CORE], "client_core": cores[CLIENT_CORE]}
        if len(cores) >= 2
        else None,
        "machine": machine_info(cores),
    }
    print(json.dumps(result, ensure_ascii=False), flush=True)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
