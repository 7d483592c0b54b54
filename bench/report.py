"""The ``relay-bench`` report: per-second timelines, the verdict, the human summary.

Pure functions over plain data (lists of times, dicts): no processes, no
sockets, no clock. ``bench/README.md`` documents every field of the report.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Final

__all__ = [
    "MAX_TIMELINE_S",
    "REQUIRED_FIELDS",
    "human_report",
    "percentiles",
    "timeline",
    "verdict",
]

# A timeline is capped at this many one-second buckets (an hour): a report
# stays small whatever the run did.
MAX_TIMELINE_S: Final = 3600

# Every report has these top-level fields (bench/README.md), with these types;
# a test checks them on real runs.
REQUIRED_FIELDS: Final[Mapping[str, type | tuple[type, ...]]] = {
    "scenario": str,
    "ok": bool,
    "failures": list,
    "count": int,
    "submitted": int,
    "accepted": int,
    "rejected_by_status": dict,
    "receipts": int,
    "receipts_by_stat": dict,
    "lost": int,
    "duplicate_receipts": int,
    "redelivered_after_crash": int,
    "unknown_receipts": int,
    "carrier_duplicates": (int, type(None)),
    "accept_rate_per_s": (int, float),
    "e2e_rate_per_s": (int, float),
    "elapsed_s": (int, float),
    "submit_resp_ms": dict,
    "receipt_ms": dict,
    "relayd_cpu_s": (int, float, type(None)),
    "relayd_max_rss_mb": (int, float, type(None)),
    "client_cpu_s": (int, float),
    "machine": dict,
    "config": dict,
    "timeseries": dict,
}


def percentiles(
    values_ms: Sequence[float], ps: Sequence[int] = (50, 90, 99)
) -> dict[str, float | None]:
    """Nearest-rank percentiles of ``values_ms`` (any order) plus the max,
    rounded to µs; None for each when there are no values."""
    ordered = sorted(values_ms)
    n = len(ordered)
    out: dict[str, float | None] = {}
    for p in ps:
        out[f"p{p}"] = round(ordered[max(0, math.ceil(p * n / 100) - 1)], 3) if n else None
    out["max"] = round(ordered[-1], 3) if n else None
    return out


def timeline(
    sub_at: Sequence[float | None],
    resp_at: Sequence[float | None],
    rcpt_at: Sequence[float | None],
    accepted: Sequence[bool],
    *,
    t0: float | None = None,
) -> dict[str, list[Any]]:
    """Per-second series from per-message times (one clock, seconds).

    Second ``s`` covers [t0 + s, t0 + s + 1), t0 = the first submit unless
    given. ``submitted``/``accepted``/``receipts`` count the submits sent, the
    acceptances (submit_sm_resp ESME_ROK) and the final receipts that fell in
    that second; the latency series are over the messages *submitted* in that
    second (submit → submit_sm_resp p50/p99, submit → final receipt p50/p99,
    None for a second without any).

    Returns:
        ``{"t_s": [0, 1, ...], "submitted": [...], "accepted": [...],
        "receipts": [...], "submit_resp_p50_ms": [...],
        "submit_resp_p99_ms": [...], "receipt_p50_ms": [...],
        "receipt_p99_ms": [...]}``, all of one length (at most
        :data:`MAX_TIMELINE_S`; later events fall in the last bucket).
    """
    starts = [s for s in sub_at if s is not None]
    if t0 is None:
        if not starts:
            return {k: [] for k in _SERIES}
        t0 = min(starts)
    ends = [t for seq in (sub_at, resp_at, rcpt_at) for t in seq if t is not None]
    n = min(MAX_TIMELINE_S, int(max(ends) - t0) + 1) if ends else 0
    last = n - 1

    def bucket(t: float) -> int:
        return min(last, max(0, int(t - t0)))

    submitted = [0] * n
    acc = [0] * n
    receipts = [0] * n
    resp_lat: list[list[float]] = [[] for _ in range(n)]
    rcpt_lat: list[list[float]] = [[] for _ in range(n)]
    for s, r, c, ok in zip(sub_at, resp_at, rcpt_at, accepted, strict=True):
        if s is None:
            continue
        b = bucket(s)
        submitted[b] += 1
        if r is not None:
            resp_lat[b].append((r - s) * 1000.0)
            if ok:
                acc[bucket(r)] += 1
        if c is not None:
            receipts[bucket(c)] += 1
            rcpt_lat[b].append((c - s) * 1000.0)

    def series(lat: list[list[float]], p: int) -> list[float | None]:
        return [percentiles(v, (p,))[f"p{p}"] for v in lat]

    return {
        "t_s": list(range(n)),
        "submitted": submitted,
        "accepted": acc,
        "receipts": receipts,
        "submit_resp_p50_ms": series(resp_lat, 50),
        "submit_resp_p99_ms": series(resp_lat, 99),
        "receipt_p50_ms": series(rcpt_lat, 50),
        "receipt_p99_ms": series(rcpt_lat, 99),
    }


_SERIES: Final = (
    "t_s",
    "submitted",
    "accepted",
    "receipts",
    "submit_resp_p50_ms",
    "submit_resp_p99_ms",
    "receipt_p50_ms",
    "receipt_p99_ms",
)


def verdict(report: Mapping[str, Any]) -> list[str]:
    """Why a run failed: one sentence per broken promise, [] when it passed.

    A run fails when an acknowledged message has no final receipt (``lost``),
    when a bind session saw a final receipt twice (``duplicate_receipts``),
    when fewer than ``count`` messages were acknowledged, or when the harness
    recorded an error of its own (``errors``, e.g. a deadline). Carrier-side
    duplicates and receipts redelivered after a crash are figures, not
    failures (at-least-once toward carriers; bench/README.md).
    """
    why: list[str] = []
    lost = int(report.get("lost", 0))
    if lost > 0:
        why.append(f"lost = {lost}: acknowledged messages without a final receipt")
    dup = int(report.get("duplicate_receipts", 0))
    if dup > 0:
        why.append(f"duplicate_receipts = {dup}: a bind session saw a final receipt twice")
    count = int(report.get("count", 0))
    accepted = int(report.get("accepted", 0))
    if accepted < count:
        why.append(
            f"accepted = {accepted} < count = {count} "
            f"(rejected_by_status: {dict(report.get('rejected_by_status', {}))})"
        )
    why.extend(str(e) for e in report.get("errors", ()))
    return why


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.1f}{unit}"
    if isinstance(value, int):
        return f"{value:,}{unit}"
    return f"{value}{unit}"


def human_report(report: Mapping[str, Any]) -> str:
    """A short plain-text summary of a report (the demo prints it)."""
    r = report
    resp = r.get("submit_resp_ms", {})
    rcpt = r.get("receipt_ms", {})
    m = r.get("machine", {})
    lines = [
        f"relay-bench {r['scenario']}: {_fmt(r['count'])} messages, "
        f"{m.get('cores_usable', '?')} cores, Python {m.get('python', '?')}, "
        f"{m.get('event_loop', '?')}",
        f"  accepted     {_fmt(r['accepted'])} of {_fmt(r['submitted'])} submitted "
        f"at {_fmt(r['accept_rate_per_s'], ' msg/s')}",
        f"  receipts     {_fmt(r['receipts'])} final ({_fmt(r.get('receipts_by_stat'))}), "
        f"end to end {_fmt(r['e2e_rate_per_s'], ' msg/s')}; "
        f"last receipt {_fmt(r['elapsed_s'], ' s')} after the first submit",
        f"  submit→resp  p50 {_fmt(resp.get('p50'), ' ms')}  p90 {_fmt(resp.get('p90'), ' ms')}"
        f"  p99 {_fmt(resp.get('p99'), ' ms')}  max {_fmt(resp.get('max'), ' ms')}",
        f"  submit→rcpt  p50 {_fmt(rcpt.get('p50'), ' ms')}  p99 {_fmt(rcpt.get('p99'), ' ms')}"
        f"  max {_fmt(rcpt.get('max'), ' ms')}",
        f"  relayd       {_fmt(r['relayd_cpu_s'], ' s')} CPU, "
        f"peak RSS {_fmt(r['relayd_max_rss_mb'], ' MB')}",
        f"  lost {r['lost']}, duplicate receipts {r['duplicate_receipts']}, "
        f"redelivered after crash {r['redelivered_after_crash']}, "
        f"carrier duplicates {_fmt(r['carrier_duplicates'])}",
    ]
    if "kept_up" in r:
        lines.append(
            f"  sustained    target {_fmt(r.get('rate_target_per_s'), ' msg/s')}, "
            f"achieved {_fmt(r.get('achieved_rate_per_s'), ' msg/s')}, "
            f"kept up: {'yes' if r['kept_up'] else 'no'}"
        )
    if r.get("kills"):
        lines.append(f"  kills        {len(r['kills'])} (kill -9 of relayd, restarted each time)")
    lines.append("  verdict      " + ("OK" if r["ok"] else "FAILED: " + "; ".join(r["failures"])))
    return "\n".join(lines)
