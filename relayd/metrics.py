"""Every Prometheus metric of relayd, defined once (architecture.md §3).

Names are prefixed ``relayd_``, counters end in ``_total``, units are base
units (style §7, §12). Labels are bounded sets — account, carrier, status,
stat, Korean result code — never message ids or phone numbers. Label children
are cached: ``.labels()`` costs about a microsecond, too much per message.

Each Relay gets its own registry, so tests can run several in one process.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from protocol.constants import status_name

_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)


class Metrics:
    """The relay's metric objects and cheap helpers to update them."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.submits = Counter(
            "relayd_submits_total",
            "Upstream submits by account and answer status",
            ["account", "status"],
            registry=r,
        )
        self.submit_latency = Histogram(
            "relayd_submit_latency_seconds",
            "Upstream submit to submit_sm_resp (includes the WAL fsync)",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.queue = Gauge(
            "relayd_queue_depth", "Messages waiting for a carrier, by route", ["route"], registry=r
        )
        self.window = Gauge(
            "relayd_carrier_window_in_use",
            "Outstanding submits per carrier bind",
            ["carrier", "bind"],
            registry=r,
        )
        self.carrier_submits = Counter(
            "relayd_carrier_submits_total",
            "submit_sm PDUs sent to carriers",
            ["carrier"],
            registry=r,
        )
        self.carrier_responses = Counter(
            "relayd_carrier_responses_total",
            "submit_sm_resp from carriers by status",
            ["carrier", "status"],
            registry=r,
        )
        self.receipts_in = Counter(
            "relayd_receipts_total",
            "Carrier receipts by stat and Korean code",
            ["carrier", "stat", "code"],
            registry=r,
        )
        self.receipts_unknown = Counter(
            "relayd_receipts_unknown_total",
            "Carrier receipts matching no message",
            ["carrier"],
            registry=r,
        )
        self.finals = Counter(
            "relayd_finals_total",
            "Messages that reached a final state",
            ["stat", "code"],
            registry=r,
        )
        self.receipts_out = Counter(
            "relayd_upstream_receipts_sent_total",
            "deliver_sm receipts sent upstream",
            ["account"],
            registry=r,
        )
        self.receipt_backlog = Gauge(
            "relayd_upstream_receipt_backlog",
            "Receipts held for an account",
            ["account"],
            registry=r,
        )
        self.wal_batch = Histogram(
            "relayd_wal_batch_records",
            "Records per WAL group commit",
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.wal_fsync = Histogram(
            "relayd_wal_fsync_seconds",
            "WAL write+fdatasync latency per batch",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.wal_healthy = Gauge("relayd_wal_healthy", "1 while the WAL accepts writes", registry=r)
        self.recovery = Gauge(
            "relayd_recovery_seconds", "Duration of the last start-up recovery", registry=r
        )
        self.binds = Gauge("relayd_binds", "Bound sessions", ["side", "name"], registry=r)
        self.rejected = Counter(
            "relayd_upstream_pdus_rejected_total",
            "Malformed or illegal upstream PDUs",
            ["status"],
            registry=r,
        )
        self.messages = Gauge(
            "relayd_messages_in_flight", "Acknowledged messages not yet reported", registry=r
        )
        self.drained = Gauge(
            "relayd_carrier_drained",
            "1 while an operator has drained the carrier (relayctl drain)",
            ["carrier"],
            registry=r,
        )
        self._children: dict[Any, Any] = {}
        self.wal_healthy.set(1)

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), labels)
        c = self._children.get(key)
        if c is None:
            c = self._children[key] = metric.labels(*labels)
        return c

    # ---------------------------------------------------------------- hot-path helpers

    def submit(self, account: str, status: int, latency_s: float | None = None) -> None:
        self._child(self.submits, account, status_name(status)).inc()
        if latency_s is not None:
            self.submit_latency.observe(latency_s)

    def carrier_submit(self, carrier: str, parts: int) -> None:
        self._child(self.carrier_submits, carrier).inc(parts)

    def carrier_response(self, carrier: str, status: int) -> None:
        self._child(self.carrier_responses, carrier, status_name(status)).inc()

    def receipt_in(self, carrier: str, stat: str, code: int | None) -> None:
        self._child(self.receipts_in, carrier, stat, str(code) if code is not None else "").inc()

    def receipt_unknown(self, carrier: str) -> None:
        self._child(self.receipts_unknown, carrier).inc()

    def final(self, stat: str, code: int | None) -> None:
        self._child(self.finals, stat, str(code) if code is not None else "").inc()

    def receipt_out(self, account: str) -> None:
        self._child(self.receipts_out, account).inc()

    def upstream_rejected(self, status: int | None) -> None:
        self._child(self.rejected, status_name(status) if status is not None else "none").inc()

    def upstream_binds(self, account: str, n: int) -> None:
        self._child(self.binds, "upstream", account).set(n)

    def carrier_binds(self, carrier: str, n: int) -> None:
        self._child(self.binds, "carrier", carrier).set(n)

    def carrier_drained(self, carrier: str, drained: bool) -> None:
        self._child(self.drained, carrier).set(1 if drained else 0)

    def on_wal_batch(self, records: int, fsync_s: float) -> None:
        self.wal_batch.observe(records)
        self.wal_fsync.observe(fsync_s)

    # ---------------------------------------------------------------- periodic

    def queue_depth(self, queues: Mapping[tuple[str, ...], Any]) -> None:
        now = time.monotonic()
        if now - getattr(self, "_queue_at", 0.0) < 0.5:
            return  # a gauge need not move per message
        self._queue_at = now
        for route, q in queues.items():
            self._child(self.queue, ",".join(route)).set(len(q))

    def serve(self, host: str, port: int) -> int:
        """Start the /metrics HTTP endpoint (a thread of prometheus_client); the port."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        self._http = server
        return int(server.server_port)

    def close(self) -> None:
        http = getattr(self, "_http", None)
        if http is not None:
            http.shutdown()
            http.server_close()
