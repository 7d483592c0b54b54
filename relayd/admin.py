"""relayd's HTTP endpoint: ``/metrics`` for Prometheus, ``/admin/*`` for ``relayctl``.

Theory of operation
-------------------
One small HTTP/1.1 server on the event loop, on the ``[metrics]`` host and
port, replaces prometheus_client's threaded server. It has to live on the loop:
the admin API reads the relay's live state (messages, queues, binds), which
only the loop may touch (architecture.md §3, one owner). Every request is
answered synchronously from that state, or after an awaited call to its owner
(the store), and never holds a fact across an ``await``.

Endpoints (JSON unless said otherwise)::

    GET  /metrics                    Prometheus text, rendered in a worker thread
    GET  /admin/status               binds, queues, rates, WAL, recent errors
    GET  /admin/accounts             upstream accounts, their binds and backlog
    GET  /admin/binds                every carrier bind and upstream bind
    GET  /admin/msg/<id>[?wal=1]     one message's history (memory, store, WAL)
    GET  /admin/log-level            the current level
    POST /admin/log-level/<level>    change it                        (write)
    POST /admin/drain/<carrier>      take a carrier out of rotation    (write)
    POST /admin/undrain/<carrier>    put it back                       (write)

Access (``[admin]`` in the configuration): read endpoints are open unless a
read token is configured, then they need it or the write token; write
endpoints need the write token and are refused (403) while none is configured.
A missing or wrong token is 401 (with ``WWW-Authenticate: Bearer``), the read
token on a write endpoint 403. ``/admin/*`` answers only loopback peers unless
``loopback_only = false``. ``/metrics`` needs no token.

Bounded (style §3): at most ``max_connections`` connections (more are closed
at once), a request of at most ``max_request_bytes`` that must arrive within
``request_timeout_s``, a response the client must read within the same time,
one request per connection (``Connection: close``), and a bounded time for
each handler. A slow or hostile client costs one task and a small buffer,
never a stalled loop.

Privacy: numbers leave here masked (:func:`relayd.store.mask_number`); a
message body is never read, let alone sent.
"""

from __future__ import annotations

import asyncio
import hmac
import http
import ipaddress
import json
import logging
import os
import re
import time
from collections import Counter, defaultdict, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qs, unquote, urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from protocol.constants import status_name
from protocol.resultcodes import RESULT_CODES
from relayd import logs
from relayd.model import (
    FINAL_STATE_NAMES,
    INFLIGHT,
    K_ACCEPTED,
    K_FINAL,
    K_REPORTED,
    K_SUBMITTED,
    QUEUED,
    STATE_NAMES,
    Msg,
)
from relayd.model import Final as Outcome
from relayd.store import StoreError, mask_number
from relayd.wal import iter_records, segment_name

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from relayd.carriers import Carrier
    from relayd.main import Daemon

__all__ = ["AdminServer", "RateSampler"]

log = logging.getLogger("relayd.admin")

# A handler (store lookup, WAL scan) that takes longer than this is answered 503.
_HANDLER_TIMEOUT_S: Final = 15.0
# A message lookup waits at most this long for the store to write what is queued.
_STORE_FLUSH_TIMEOUT_S: Final = 2.0
# The WAL fallback of `msg` reads at most this much of the segments on disk.
_WAL_SCAN_MAX_BYTES: Final = 512 * 1024 * 1024
# Our message ids (korea-messaging.md §13) and any carrier-style token; nothing else.
_MSG_ID: Final = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_RECENT_ERRORS: Final = 20


class HttpError(Exception):
    """An HTTP error answer: ``status`` and a one-line message for the JSON body."""

    def __init__(self, status: int, message: str, headers: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = tuple(headers)


class _Disconnected(Exception):
    """The client closed before sending a whole request."""


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    peer: Any


@dataclass(slots=True)
class Response:
    status: int
    body: bytes
    content_type: str = "application/json; charset=utf-8"
    headers: tuple[str, ...] = field(default=())

    def encode(self) -> bytes:
        reason = http.HTTPStatus(self.status).phrase
        head = [
            f"HTTP/1.1 {self.status} {reason}",
            f"Content-Type: {self.content_type}",
            f"Content-Length: {len(self.body)}",
            "Connection: close",
            "Cache-Control: no-store",
            *self.headers,
        ]
        return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + self.body


def json_response(obj: Any, status: int = 200, headers: Iterable[str] = ()) -> Response:
    body = json.dumps(obj, ensure_ascii=False, default=str).encode("utf-8")
    return Response(status, body, headers=tuple(headers))


def _error(exc: HttpError) -> Response:
    return json_response({"error": exc.message, "status": exc.status}, exc.status, exc.headers)


# ============================================================================ rates


class RateSampler:
    """Per-second rates from relayd's own counters, for ``relayctl status``.

    Once a second it sums a few counters of the metrics registry (a read-only
    ``collect()``, a few dozen samples) and keeps the last ``window_s`` seconds
    of totals; :meth:`rates` is the increase over that window per second.
    Keys: ``submits_accepted``, ``submits_refused``, ``finals``,
    ``receipts_sent``, and per carrier ``carrier_submits:<c>``,
    ``carrier_errors:<c>``, ``receipts_in:<c>``; per account
    ``accepted:<a>``, ``refused:<a>``.
    """

    def __init__(self, registry: CollectorRegistry, window_s: int = 10) -> None:
        self.registry = registry
        self._samples: deque[tuple[float, dict[str, float]]] = deque(maxlen=window_s + 1)

    def totals(self) -> dict[str, float]:
        out: dict[str, float] = defaultdict(float)
        for family in self.registry.collect():
            name = family.name
            if name not in _RATE_FAMILIES:
                continue
            for s in family.samples:
                if not s.name.endswith("_total"):
                    continue
                labels, value = s.labels, s.value
                if name == "relayd_submits":
                    kind = "accepted" if labels.get("status") == "ESME_ROK" else "refused"
                    out[f"submits_{kind}"] += value
                    out[f"{kind}:{labels.get('account', '')}"] += value
                elif name == "relayd_carrier_submits":
                    out[f"carrier_submits:{labels['carrier']}"] += value
                elif name == "relayd_carrier_responses":
                    if labels.get("status") != "ESME_ROK":
                        out[f"carrier_errors:{labels['carrier']}"] += value
                elif name == "relayd_receipts":
                    out[f"receipts_in:{labels['carrier']}"] += value
                elif name == "relayd_finals":
                    out["finals"] += value
                elif name == "relayd_upstream_receipts_sent":
                    out["receipts_sent"] += value
        return dict(out)

    def sample(self, now: float | None = None) -> None:
        self._samples.append((time.monotonic() if now is None else now, self.totals()))

    def rates(self) -> Rates:
        """Rates over the window; every key reads 0.0 until it moves. Empty
        (every key None) until two samples exist."""
        if len(self._samples) < 2:
            return Rates(None)
        (t0, first), (t1, last) = self._samples[0], self._samples[-1]
        dt = t1 - t0
        if dt <= 0:
            return Rates(None)
        return Rates({k: round(max(0.0, v - first.get(k, 0.0)) / dt, 2) for k, v in last.items()})

    @property
    def window_s(self) -> float:
        if len(self._samples) < 2:
            return 0.0
        return round(self._samples[-1][0] - self._samples[0][0], 2)

    async def run(self, interval_s: float = 1.0) -> None:
        while True:
            self.sample()
            await asyncio.sleep(interval_s)


class Rates:
    """Per-second rates by key: 0.0 for a key that has not moved, None for every
    key before the sampler has two samples."""

    __slots__ = ("_values",)

    def __init__(self, values: dict[str, float] | None) -> None:
        self._values = values

    def get(self, key: str) -> float | None:
        if self._values is None:
            return None
        return self._values.get(key, 0.0)


_RATE_FAMILIES: Final = frozenset(
    {
        "relayd_submits",
        "relayd_carrier_submits",
        "relayd_carrier_responses",
        "relayd_receipts",
        "relayd_finals",
        "relayd_upstream_receipts_sent",
    }
)


# ============================================================================ the server

Handler = Callable[..., Awaitable[Response]]


class AdminServer:
    """The HTTP listener of one :class:`relayd.main.Daemon` (module docstring)."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.cfg = daemon.config.admin
        self.metrics_enabled = daemon.config.metrics.enabled
        self.sampler = RateSampler(daemon.metrics.registry)
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sampler_task: asyncio.Task[None] | None = None
        self._write_token = ""
        self._read_token = ""
        self.port: int | None = None
        # (method, path regex, access, handler); access: metrics | read | write
        self._routes: list[tuple[str, re.Pattern[str], str, Handler]] = [
            ("GET", re.compile(r"/metrics"), "metrics", self._get_metrics),
            ("GET", re.compile(r"/admin/status"), "read", self._get_status),
            ("GET", re.compile(r"/admin/accounts"), "read", self._get_accounts),
            ("GET", re.compile(r"/admin/binds"), "read", self._get_binds),
            ("GET", re.compile(r"/admin/msg/(?P<msg_id>[^/]*)"), "read", self._get_msg),
            ("GET", re.compile(r"/admin/log-level"), "read", self._get_log_level),
            (
                "POST",
                re.compile(r"/admin/log-level/(?P<level>[^/]*)"),
                "write",
                self._set_log_level,
            ),
            ("POST", re.compile(r"/admin/drain/(?P<carrier>[^/]*)"), "write", self._drain),
            ("POST", re.compile(r"/admin/undrain/(?P<carrier>[^/]*)"), "write", self._undrain),
        ]

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> int | None:
        """Listen on [metrics] host:port; the bound port, or None if both
        /metrics and /admin are disabled.

        Raises:
            ConfigError: a token file cannot be read.
            OSError: the port cannot be bound.
        """
        config = self.daemon.config
        if not (self.metrics_enabled or self.cfg.enabled):
            return None
        if self.cfg.enabled:
            self._write_token, self._read_token = self.cfg.tokens()
        self._server = await asyncio.start_server(
            self._on_connection,
            config.metrics.host,
            config.metrics.port,
            limit=self.cfg.max_request_bytes,
            backlog=64,
        )
        self.port = int(self._server.sockets[0].getsockname()[1])
        self.sampler.sample()
        self._sampler_task = asyncio.get_running_loop().create_task(
            self.sampler.run(), name="relayd.admin rates"
        )
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        tasks = list(self._tasks)
        if self._sampler_task is not None:
            tasks.append(self._sampler_task)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            try:
                async with asyncio.timeout(1.0):
                    await self._server.wait_closed()
            except TimeoutError:
                pass  # a connection still closing; its task is gone already

    # ---------------------------------------------------------------- connections

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if task is None or len(self._tasks) >= self.cfg.max_connections:
            writer.transport.abort()
            return
        self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        except (_Disconnected, ConnectionError, OSError):
            pass  # the client went away; nothing to answer
        except Exception:
            # A bug here must not become a "Task exception was never retrieved"
            # nobody reads: log it (hypercorn's per-connection rule); the
            # connection is dropped, the server goes on.
            log.exception("admin connection failed", extra={"event": "admin_error"})
        finally:
            self._tasks.discard(task)
            writer.transport.abort()  # no-op once closed; ends a client that lingers

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        try:
            async with asyncio.timeout(self.cfg.request_timeout_s):
                request = await self._read_request(reader, peer)
        except TimeoutError:
            response = _error(HttpError(408, "request not received in time"))
        except HttpError as exc:
            response = _error(exc)
        else:
            response = await self._handle(request)
        try:
            async with asyncio.timeout(self.cfg.request_timeout_s):
                writer.write(response.encode())
                await writer.drain()
                writer.close()
                await writer.wait_closed()
        except TimeoutError:
            pass  # a client that does not read its answer: aborted by the caller

    async def _read_request(self, reader: asyncio.StreamReader, peer: Any) -> Request:
        limit = self.cfg.max_request_bytes
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            raise HttpError(431, f"request head larger than {limit} bytes") from None
        except asyncio.IncompleteReadError as exc:
            if len(exc.partial) >= limit:
                raise HttpError(431, f"request head larger than {limit} bytes") from None
            raise _Disconnected from None
        lines = head[:-4].decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise HttpError(400, "malformed request line")
        method, target, _version = parts
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip():
                raise HttpError(400, "malformed header line")
            key = name.lower()
            if key in headers and key in ("content-length", "authorization", "host"):
                raise HttpError(400, f"repeated {name} header")
            headers[key] = value.strip()
        if "transfer-encoding" in headers:
            raise HttpError(501, "chunked requests are not supported")
        length_text = headers.get("content-length", "0")
        if not length_text.isdigit():
            raise HttpError(400, "bad Content-Length")
        length = int(length_text)
        if len(head) + length > limit:
            raise HttpError(413, f"request larger than {limit} bytes")
        try:
            body = await reader.readexactly(length) if length else b""
        except asyncio.IncompleteReadError:
            raise _Disconnected from None
        try:
            split = urlsplit(target)
        except ValueError:
            raise HttpError(400, "malformed request target") from None
        return Request(
            method=method,
            path=unquote(split.path),
            query=parse_qs(split.query),
            headers=headers,
            body=body,
            peer=peer,
        )

    # ---------------------------------------------------------------- dispatch

    async def _handle(self, request: Request) -> Response:
        allowed: list[str] = []
        for method, pattern, access, handler in self._routes:
            match = pattern.fullmatch(request.path)
            if match is None:
                continue
            if method != request.method:
                allowed.append(method)
                continue
            try:
                self._check_access(request, access)
                async with asyncio.timeout(_HANDLER_TIMEOUT_S):
                    return await handler(request, **match.groupdict())
            except HttpError as exc:
                return _error(exc)
            except TimeoutError:
                return _error(HttpError(503, "relayd did not answer in time"))
            except Exception:
                log.exception(
                    "admin %s %s failed",
                    request.method,
                    request.path,
                    extra={"event": "admin_error"},
                )
                return _error(HttpError(500, "internal error (logged)"))
        if allowed:
            return _error(HttpError(405, "method not allowed", [f"Allow: {', '.join(allowed)}"]))
        return _error(HttpError(404, f"no such endpoint: {request.path}"))

    def _check_access(self, request: Request, access: str) -> None:
        if access == "metrics":
            if not self.metrics_enabled:
                raise HttpError(404, "/metrics is disabled ([metrics] enabled = false)")
            return
        if not self.cfg.enabled:
            raise HttpError(404, "the admin API is disabled ([admin] enabled = false)")
        if self.cfg.loopback_only and not _is_loopback(request.peer):
            raise HttpError(403, "the admin API answers loopback clients only")
        given = _bearer(request.headers.get("authorization"))
        challenge = ['WWW-Authenticate: Bearer realm="relayd"']
        if access == "read":
            if not self._read_token:
                return
            if given is not None and (
                _same(given, self._read_token)
                or (self._write_token and _same(given, self._write_token))
            ):
                return
            raise HttpError(401, "missing token" if given is None else "wrong token", challenge)
        # write
        refusal: HttpError | None = None
        if not self._write_token:
            refusal = HttpError(403, "write commands are disabled: set [admin] token or token_file")
        elif given is None:
            refusal = HttpError(401, "missing token: this command needs the admin token", challenge)
        elif _same(given, self._write_token):
            return
        elif self._read_token and _same(given, self._read_token):
            refusal = HttpError(403, "the read token cannot run write commands")
        else:
            refusal = HttpError(401, "wrong token", challenge)
        log.warning(
            "admin %s %s refused (%d): %s",
            request.method,
            request.path,
            refusal.status,
            refusal.message,
            extra={"event": "admin_refused"},
        )
        raise refusal

    # ---------------------------------------------------------------- /metrics

    async def _get_metrics(self, request: Request) -> Response:
        # Rendering reads every metric under its lock: a worker thread, as the
        # prometheus_client server did, keeps it off the loop.
        registry = self.daemon.metrics.registry
        body = await asyncio.get_running_loop().run_in_executor(None, generate_latest, registry)
        return Response(200, body, CONTENT_TYPE_LATEST)

    # ---------------------------------------------------------------- read endpoints

    async def _get_status(self, request: Request) -> Response:
        d = self.daemon
        wal = d.wal
        sizes = await asyncio.to_thread(_segment_sizes, wal.directory, wal.segments)
        # Everything below is read in this one loop turn.
        relay = d.relay
        wst = wal.statistics()
        sst = d.store.statistics()
        ckpt = sst.checkpoint_wal_seq
        replay = {seq: n for seq, n in sizes.items() if ckpt is None or seq >= ckpt}
        last_ckpt = getattr(d, "last_checkpoint_at", None)
        now = time.time()
        started = getattr(d, "started_at", now)
        cfg = relay.config
        rates = self.sampler.rates()
        return json_response(
            {
                "relayd": {
                    "pid": os.getpid(),
                    "smpp": f"{cfg.server.host}:{d.upstream.port}",
                    "started_at": started,
                    "uptime_s": round(now - started, 1),
                    "accepting": relay.accepting,
                    "log_level": logs.current_level(),
                },
                "messages": relay.statistics(),
                "rates": {
                    "window_s": self.sampler.window_s,
                    "submits_accepted_per_s": rates.get("submits_accepted"),
                    "submits_refused_per_s": rates.get("submits_refused"),
                    "finals_per_s": rates.get("finals"),
                    "receipts_sent_per_s": rates.get("receipts_sent"),
                },
                "carriers": self._carriers_view(rates),
                "unroutable_queued": self._queue_by_carrier()[1],
                "queues": [
                    {"route": list(route), "depth": len(q)}
                    for route, q in relay.queues.items()
                    if q
                ],
                "accounts": self._accounts_view(rates),
                "wal": {
                    "healthy": wal.healthy,
                    "failure": str(wal.failure) if wal.failure is not None else None,
                    "segments": len(sizes),
                    "bytes": sum(sizes.values()),
                    "current_segment": wst.current_segment,
                    "queued_records": wst.queued_records,
                    "fsync_avg_ms": (
                        round(wst.fsync_seconds_total / wst.fsync_count * 1000, 3)
                        if wst.fsync_count
                        else None
                    ),
                    "checkpoint_segment": ckpt,
                    "checkpoint_age_s": round(now - last_ckpt, 1) if last_ckpt else None,
                    "lag_segments": len(replay),
                    "lag_bytes": sum(replay.values()),
                },
                "store": {
                    "inbox_depth": sst.inbox_depth,
                    "events_dropped": sst.events_dropped,
                    "write_errors": sst.write_errors,
                    "checkpoints": sst.checkpoints,
                },
                "recent_errors": d.recent.snapshot()[-_RECENT_ERRORS:],
            }
        )

    async def _get_accounts(self, request: Request) -> Response:
        return json_response({"accounts": self._accounts_view(self.sampler.rates())})

    async def _get_binds(self, request: Request) -> Response:
        d = self.daemon
        carriers = []
        for c in d.pool.carriers.values():
            for b in c.binds:
                link = b.link
                carriers.append(
                    {
                        "carrier": c.name,
                        "bind": b.name,
                        "kind": b.kind,
                        "bound": b.bound,
                        "drained": c.drained,
                        "window_in_use": len(b.inflight),
                        "window": c.cfg.window if b.kind != "rx" else 0,
                        "cwnd": round(b.cwnd, 1),
                        "peer": _peer(link.peer) if link is not None else None,
                    }
                )
        upstream = [
            {
                "account": account,
                "name": conn.link.name,
                "kind": conn.bind_kind,
                "peer": _peer(conn.link.peer),
                "submits_unanswered": conn.unanswered,
                "receipts_in_flight": len(conn.receipts),
            }
            for account, conns in sorted(d.upstream.bound.items())
            for conn in conns
        ]
        return json_response(
            {
                "carriers": carriers,
                "upstream": upstream,
                "upstream_connections": len(d.upstream.conns),
            }
        )

    async def _get_log_level(self, request: Request) -> Response:
        return json_response({"level": logs.current_level()})

    async def _get_msg(self, request: Request, msg_id: str) -> Response:
        if not _MSG_ID.fullmatch(msg_id):
            raise HttpError(400, "not a message id")
        use_wal = request.query.get("wal", ["0"])[-1] in ("1", "true", "yes")
        d = self.daemon
        store = d.store
        # Make the store current (its writer lingers a few ms per batch), bounded.
        try:
            async with asyncio.timeout(_STORE_FLUSH_TIMEOUT_S):
                await store.flush()
        except TimeoutError:
            pass
        try:
            record = await store.get_message(msg_id)
        except StoreError as exc:
            raise HttpError(503, f"the store cannot answer: {exc}") from None
        wal_records: list[list[Any]] = []
        wal_truncated = False
        if use_wal or (record is None and not self._in_memory(msg_id)):
            wal = d.wal
            wal_records, wal_truncated = await asyncio.to_thread(
                _scan_wal, wal.directory, wal.segments, msg_id, _WAL_SCAN_MAX_BYTES
            )
        # From here on: one loop turn, live state read fresh.
        relay = d.relay
        live = relay.messages.get(msg_id)
        accepting = live is None and msg_id in relay.pending_accept
        if accepting:
            live = relay.pending_accept[msg_id]
        if live is None and record is None and not wal_records:
            raise HttpError(404, f"no message {msg_id} in memory, the store or the WAL")
        out = _history(msg_id, live, accepting, record, wal_records)
        if wal_truncated:
            out["wal_scan_truncated"] = True
        if live is not None:
            out["live"] = self._live_view(live, accepting)
        return json_response(out)

    def _in_memory(self, msg_id: str) -> bool:
        relay = self.daemon.relay
        return msg_id in relay.messages or msg_id in relay.pending_accept

    # ---------------------------------------------------------------- write endpoints

    async def _set_log_level(self, request: Request, level: str) -> Response:
        try:
            previous = logs.set_level(level)
        except ValueError as exc:
            raise HttpError(400, str(exc)) from None
        current = logs.current_level()
        log.warning(
            "log level %s → %s (admin)",
            previous,
            current,
            extra={"event": "log_level", "level": current},
        )
        return json_response({"level": current, "previous": previous})

    async def _drain(self, request: Request, carrier: str) -> Response:
        return self._set_drained(carrier, True)

    async def _undrain(self, request: Request, carrier: str) -> Response:
        return self._set_drained(carrier, False)

    def _set_drained(self, name: str, drained: bool) -> Response:
        pool = self.daemon.pool
        if name not in pool.carriers:
            known = ", ".join(pool.carriers)
            raise HttpError(404, f"no carrier {name!r} (known: {known})")
        changed = pool.set_drained(name, drained)
        carrier = pool.carriers[name]
        return json_response(
            {
                "carrier": name,
                "drained": carrier.drained,
                "changed": changed,
                "window_in_use": sum(len(b.inflight) for b in carrier.binds),
            }
        )

    # ---------------------------------------------------------------- views

    def _queue_by_carrier(self) -> tuple[dict[str, int], int]:
        """Queued messages by the carrier their route will try next, and those
        whose every carrier is drained (they wait)."""
        pool = self.daemon.pool
        per = dict.fromkeys(pool.carriers, 0)
        unroutable = 0
        for route, q in self.daemon.relay.queues.items():
            if not q:
                continue
            eligible = [n for n in route if n in pool.carriers and not pool.carriers[n].drained]
            up = [n for n in eligible if pool.carriers[n].up]
            chosen = up or eligible
            if chosen:
                per[chosen[0]] += len(q)
            else:
                unroutable += len(q)
        return per, unroutable

    def _carriers_view(self, rates: Rates) -> list[dict[str, Any]]:
        queued, _ = self._queue_by_carrier()
        out = []
        for name, c in self.daemon.pool.carriers.items():
            senders = [b for b in c.binds if b.kind != "rx"]
            out.append(
                {
                    "name": name,
                    "address": f"{c.cfg.host}:{c.cfg.port}",
                    "drained": c.drained,
                    "up": c.up,
                    "binds_bound": c.bound_count(),
                    "binds": len(c.binds),
                    "window_in_use": sum(len(b.inflight) for b in c.binds),
                    "window": c.cfg.window * len(senders),
                    "queued_next": queued[name],
                    "submits_per_s": rates.get(f"carrier_submits:{name}"),
                    "errors_per_s": rates.get(f"carrier_errors:{name}"),
                    "receipts_per_s": rates.get(f"receipts_in:{name}"),
                }
            )
        return out

    def _accounts_view(self, rates: Rates) -> list[dict[str, Any]]:
        d = self.daemon
        relay = d.relay
        totals = self.sampler.totals()
        out = []
        for acct in relay.config.accounts:
            sid = acct.system_id
            conns = d.upstream.bound.get(sid, [])
            out.append(
                {
                    "system_id": sid,
                    "type": str(acct.account_type),
                    "bind_types": sorted(str(b) for b in acct.bind_types),
                    "binds": len(conns),
                    "binds_by_type": dict(Counter(c.bind_kind for c in conns)),
                    "max_binds": acct.max_binds,
                    "throughput_per_s": acct.throughput_per_s,
                    "senders": sorted(mask_number(s) for s in acct.senders),
                    "receipts_held": relay.pending_reports(sid),
                    "receipt_hold_max": acct.receipt_hold_max,
                    "accepted_total": int(totals.get(f"accepted:{sid}", 0)),
                    "refused_total": int(totals.get(f"refused:{sid}", 0)),
                    "accepted_per_s": rates.get(f"accepted:{sid}"),
                    "refused_per_s": rates.get(f"refused:{sid}"),
                }
            )
        return out

    def _carrier_readiness(self, carrier: Carrier | None) -> str:
        if carrier is None:
            return "unknown carrier"
        if carrier.drained:
            return "drained"
        if not carrier.up:
            return "down"
        # Read-only (Carrier.best_bind would update the token buckets).
        if not any(b.can_send and len(b.inflight) < int(b.cwnd) for b in carrier.binds):
            return "window full"
        return "ready"

    def _live_view(self, msg: Msg, accepting: bool) -> dict[str, Any]:
        pool = self.daemon.pool
        state = "ACCEPTING" if accepting else STATE_NAMES.get(msg.state, str(msg.state))
        view: dict[str, Any] = {
            "state": state,
            "attempts": msg.attempts,
            "route": list(msg.route),
            "carrier": msg.carrier,
            "parts": [
                {
                    "part": i,
                    "carrier_msg_id": cid,
                    "final": _final_view(msg.part_finals[i]) if i < len(msg.part_finals) else None,
                }
                for i, cid in enumerate(msg.carrier_ids)
            ],
            "expires_at": msg.expires_at,
            "final": _final_view(msg.final),
        }
        if msg.state == QUEUED and msg.final is None and not accepting:
            view["waiting_for"] = [
                {"carrier": n, "status": self._carrier_readiness(pool.carriers.get(n))}
                for n in msg.route
            ]
        if msg.state == INFLIGHT and msg.carrier in pool.carriers:
            for b in pool.carriers[msg.carrier].binds:
                if any(entry[0] is msg for entry in b.inflight.values()):
                    view["bind"] = b.name
                    break
        return view


# ============================================================================ helpers


def _bearer(value: str | None) -> str | None:
    if not value:
        return None
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


def _is_loopback(peer: Any) -> bool:
    if not isinstance(peer, tuple) or not peer:
        return isinstance(peer, str)  # a unix socket path
    try:
        return ipaddress.ip_address(peer[0]).is_loopback
    except ValueError:
        return False


def _peer(peer: Any) -> str | None:
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return None if peer is None else str(peer)


def _segment_sizes(directory: Path, segments: Iterable[int]) -> dict[int, int]:
    sizes: dict[int, int] = {}
    for seq in segments:
        try:
            sizes[seq] = (directory / segment_name(seq)).stat().st_size
        except FileNotFoundError:
            continue  # deleted by a checkpoint meanwhile
    return sizes


def _scan_wal(
    directory: Path, segments: Iterable[int], msg_id: str, max_bytes: int
) -> tuple[list[list[Any]], bool]:
    """The WAL records of ``msg_id`` in the segments still on disk, oldest first.

    Runs in a worker thread, with its own read-only file handles (the writer
    task owns the open segment's write handle; a torn tail is where decoding
    stops). A segment without the id's bytes is skipped without decoding.
    Returns the records and whether ``max_bytes`` cut the scan short.
    """
    needle = msg_id.encode("ascii")
    found: list[list[Any]] = []
    scanned = 0
    for seq in segments:
        try:
            data = (directory / segment_name(seq)).read_bytes()
        except FileNotFoundError:
            continue
        scanned += len(data)
        if scanned > max_bytes:
            return found, True
        if needle not in data:
            continue
        for record, _end in iter_records(data):
            if not isinstance(record, list) or len(record) < 2:
                continue
            # An R record names every message reported in one loop turn.
            if record[1] == msg_id or (record[0] == K_REPORTED and msg_id in record[2:]):
                found.append(record)
    return found, False


def _state_name(state: Any) -> str:
    if isinstance(state, str):
        return state
    return FINAL_STATE_NAMES.get(state, str(state))


def _code_text(code: Any) -> str | None:
    row = RESULT_CODES.get(code) if isinstance(code, int) else None
    return row.text if row is not None else None


def _final_view(final: Outcome | None) -> dict[str, Any] | None:
    if final is None:
        return None
    return {
        "state": _state_name(final.state),
        "code": final.code,
        "stat": final.stat,
        "err": final.err,
        "text": _code_text(final.code),
        "at": final.done_at,
    }


def _store_event(ev: dict[str, Any]) -> dict[str, Any]:
    kind = ev["kind"]
    out: dict[str, Any] = {"kind": kind, "at": ev["at"], "source": "store"}
    if kind == "submitted":
        out.update(part=ev["part"], carrier=ev["carrier"], carrier_msg_id=ev["carrier_msg_id"])
    elif kind == "attempt_failed":
        status = ev["status"]
        out.update(
            part=ev["part"],
            carrier=ev["carrier"],
            status=status,
            status_name=status_name(status) if isinstance(status, int) else None,
            temporary=ev["temporary"],
        )
    elif kind == "final":
        out.update(state=ev["state"], code=ev["code"], stat=ev["stat"], text=_code_text(ev["code"]))
    return out


def _wal_event(r: list[Any]) -> dict[str, Any] | None:
    kind = r[0]
    if kind == K_ACCEPTED and len(r) >= 17:
        return {"kind": "accepted", "at": r[15], "source": "wal"}
    if kind == K_SUBMITTED and len(r) >= 7:
        return {
            "kind": "submitted",
            "at": r[6],
            "part": r[2],
            "carrier": r[4],
            "carrier_msg_id": r[5],
            "source": "wal",
        }
    if kind == K_FINAL and len(r) >= 7:
        return {
            "kind": "final",
            "at": r[6],
            "state": _state_name(r[2]),
            "code": r[3],
            "stat": r[4],
            "text": _code_text(r[3]),
            "source": "wal",
        }
    if kind == K_REPORTED:
        return {"kind": "reported", "at": None, "source": "wal"}
    return None


def _memory_events(msg: Msg) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = [{"kind": "accepted", "at": msg.accepted_at, "source": "memory"}]
    for i, cid in enumerate(msg.carrier_ids):
        if cid is not None:
            events.append(
                {
                    "kind": "submitted",
                    "at": None,
                    "part": i,
                    "carrier": msg.carrier,
                    "carrier_msg_id": cid,
                    "source": "memory",
                }
            )
    if msg.final is not None:
        final = _final_view(msg.final)
        assert final is not None
        events.append(
            {
                "kind": "final",
                "at": final["at"],
                "state": final["state"],
                "code": final["code"],
                "stat": final["stat"],
                "text": final["text"],
                "source": "memory",
            }
        )
    return events


def _history(
    msg_id: str,
    live: Msg | None,
    accepting: bool,
    record: Mapping[str, Any] | None,
    wal_records: list[list[Any]],
) -> dict[str, Any]:
    """The answer of ``GET /admin/msg/<id>``: who, where, and every event.

    The store's history is the backbone; the relay's memory adds what the store
    has not written yet (or lost: history is best-effort); the WAL fills in a
    message that is in neither. Numbers are masked; the body is never read.
    """
    sources: list[str] = []
    events: list[dict[str, Any]] = []
    account = source = destination = None
    parts = registered_delivery = None
    state: str | None = None
    reported_at: float | None = None
    if record is not None:
        sources.append("store")
        events = [_store_event(dict(ev)) for ev in record["events"]]
        account, source, destination = record["account"], record["source"], record["destination"]
        parts, registered_delivery = record["parts"], record["registered_delivery"]
        state = record["state"]
        reported_at = record["reported_at"]
    if wal_records:
        sources.append("wal")
        wal_events = [e for e in (_wal_event(r) for r in wal_records) if e is not None]
        have = {e["kind"] for e in events}
        if not events:
            events = wal_events
        else:
            events += [e for e in wal_events if e["kind"] not in have]
        for r in wal_records:
            if r[0] == K_ACCEPTED and len(r) >= 17 and account is None:
                account, source, destination = r[2], r[5], r[8]
                registered_delivery = r[13]
            elif r[0] == K_FINAL and len(r) >= 7:
                state = _state_name(r[2])
            elif r[0] == K_REPORTED and state is None:
                state = "REPORTED"
    if live is not None:
        sources.append("memory")
        account, source, destination = live.account, live.src, live.dst
        registered_delivery = live.registered_delivery
        state = "ACCEPTING" if accepting else STATE_NAMES.get(live.state, str(live.state))
        if live.final is not None:
            state = _state_name(live.final.state)
        mem = _memory_events(live)
        kinds = {e["kind"] for e in events}
        if not events:
            events = mem
        else:
            if "accepted" not in kinds:
                events.insert(0, mem[0])
            if "submitted" not in kinds:
                events += [e for e in mem if e["kind"] == "submitted"]
            if "final" not in kinds:
                events += [e for e in mem if e["kind"] == "final"]
    if reported_at is not None and not any(e["kind"] == "reported" for e in events):
        events.append({"kind": "reported", "at": reported_at, "source": "store"})
    final = next((e for e in reversed(events) if e["kind"] == "final"), None)
    return {
        "id": msg_id,
        "account": account,
        "source": mask_number(source) if source else source,
        "destination": mask_number(destination) if destination else destination,
        "parts": parts,
        "registered_delivery": registered_delivery,
        "state": state,
        "final": final,
        "reported": any(e["kind"] == "reported" for e in events),
        "events": events,
        "sources": sources,
    }
