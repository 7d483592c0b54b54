"""Every Prometheus metric of relayd, defined once (architecture.md §3).

Names are prefixed ``relayd_``, counters end in ``_total``, units are base
units (style §7, §12). Labels are bounded sets — account, carrier, status,
stat, Korean result code — never message ids or phone numbers.

Hot path. A prometheus-client ``Counter.inc`` takes a lock and walks two
method layers (~1.5 µs with the ``.labels()`` lookup); relayd counts six or
more things per message. The per-message series are therefore plain ints in
dicts keyed by their label values (:class:`_FastCounter`, :class:`_FastHistogram`),
owned by the event loop, and exported by a custom collector at scrape time —
the prometheus-client way for values kept elsewhere. The scrape (another
thread) copies each dict with one C-level call, atomic under the GIL.
Per-batch and per-second series (WAL, gauges) stay ordinary metric objects.

Each Relay gets its own registry, so tests can run several in one process.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric

from protocol.constants import status_name

_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)


class _FastCounter:
    """A labelled counter as ``{label values: int}``; see the module docstring."""

    __slots__ = ("documentation", "labelnames", "name", "values")

    def __init__(self, name: str, documentation: str, labelnames: tuple[str, ...]) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = labelnames
        self.values: dict[tuple[str, ...], float] = {}

    def inc(self, labels: tuple[str, ...], amount: float = 1) -> None:
        v = self.values
        v[labels] = v.get(labels, 0) + amount

    def collect(self) -> Metric:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for labels, value in self.values.copy().items():
            family.add_metric(labels, value)
        return family


class _FastHistogram:
    """An unlabelled histogram as bucket counts; see the module docstring."""

    __slots__ = ("bounds", "counts", "documentation", "name", "total")

    def __init__(self, name: str, documentation: str, buckets: tuple[float, ...]) -> None:
        self.name = name
        self.documentation = documentation
        self.bounds = buckets
        self.counts = [0] * (len(buckets) + 1)  # the last one is +Inf
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def collect(self) -> Metric:
        counts, total = self.counts.copy(), self.total
        buckets = []
        cumulative = 0
        for bound, n in zip((*self.bounds, float("inf")), counts, strict=True):
            cumulative += n
            le = "+Inf" if bound == float("inf") else repr(float(bound))
            buckets.append((le, cumulative))
        family = HistogramMetricFamily(self.name, self.documentation)
        family.add_metric([], buckets, total)
        return family


class _FastCollector:
    """Exports the fast series at scrape time (registered once per registry)."""

    def __init__(self, series: list[_FastCounter | _FastHistogram]) -> None:
        self.series = series

    def collect(self) -> Iterator[Metric]:
        for s in self.series:
            yield s.collect()

    def describe(self) -> Iterator[Metric]:
        # Names only, so the registry can check duplicates without a collect().
        for s in self.series:
            if isinstance(s, _FastCounter):
                yield CounterMetricFamily(s.name, s.documentation, labels=s.labelnames)
            else:
                yield HistogramMetricFamily(s.name, s.documentation)


_STATUS_NAMES: dict[int | None, str] = {}


def _status(status: int | None) -> str:
    name = _STATUS_NAMES.get(status)
    if name is None:
        if len(_STATUS_NAMES) > 4096:  # bounded: statuses from peers are 32-bit
            _STATUS_NAMES.clear()
        name = _STATUS_NAMES[status] = status_name(status) if status is not None else "none"
    return name


class Metrics:
    """The relay's metric objects and cheap helpers to update them."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.submits = _FastCounter(
            "relayd_submits_total",
            "Upstream submits by account and answer status",
            ("account", "status"),
        )
        self.submit_latency = _FastHistogram(
            "relayd_submit_latency_seconds",
            "Upstream submit to submit_sm_resp (includes the WAL fsync)",
            _LATENCY_BUCKETS,
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
        self.carrier_submits = _FastCounter(
            "relayd_carrier_submits_total", "submit_sm PDUs sent to carriers", ("carrier",)
        )
        self.carrier_responses = _FastCounter(
            "relayd_carrier_responses_total",
            "submit_sm_resp from carriers by status",
            ("carrier", "status"),
        )
        self.receipts_in = _FastCounter(
            "relayd_receipts_total",
            "Carrier receipts by stat and Korean code",
            ("carrier", "stat", "code"),
        )
        self.receipts_unknown = _FastCounter(
            "relayd_receipts_unknown_total", "Carrier receipts matching no message", ("carrier",)
        )
        self.finals = _FastCounter(
            "relayd_finals_total", "Messages that reached a final state", ("stat", "code")
        )
        self.receipts_out = _FastCounter(
            "relayd_upstream_receipts_sent_total",
            "deliver_sm receipts sent upstream",
            ("account",),
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
        self.rejected = _FastCounter(
            "relayd_upstream_pdus_rejected_total",
            "Malformed or illegal upstream PDUs",
            ("status",),
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
        r.register(
            _FastCollector(
                [
                    self.submits,
                    self.submit_latency,
                    self.carrier_submits,
                    self.carrier_responses,
                    self.receipts_in,
                    self.receipts_unknown,
                    self.finals,
                    self.receipts_out,
                    self.rejected,
                ]
            )
        )

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), labels)
        c = self._children.get(key)
        if c is None:
            c = self._children[key] = metric.labels(*labels)
        return c

    # ---------------------------------------------------------------- hot-path helpers

    def submit(self, account: str, status: int, latency_s: float | None = None) -> None:
        self.submits.inc((account, _status(status)))
        if latency_s is not None:
            self.submit_latency.observe(latency_s)

    def carrier_submit(self, carrier: str, parts: int) -> None:
        self.carrier_submits.inc((carrier,), parts)

    def carrier_response(self, carrier: str, status: int) -> None:
        self.carrier_responses.inc((carrier, _status(status)))

    def receipt_in(self, carrier: str, stat: str, code: int | None) -> None:
        self.receipts_in.inc((carrier, stat, str(code) if code is not None else ""))

    def receipt_unknown(self, carrier: str) -> None:
        self.receipts_unknown.inc((carrier,))

    def final(self, stat: str, code: int | None) -> None:
        self.finals.inc((stat, str(code) if code is not None else ""))

    def receipt_out(self, account: str, n: int = 1) -> None:
        self.receipts_out.inc((account,), n)

    def upstream_rejected(self, status: int | None) -> None:
        self.rejected.inc((_status(status),))

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
