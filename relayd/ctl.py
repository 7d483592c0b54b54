"""``relayctl``: the operator's command line for a running relayd.

    relayctl [-c CONFIG | --url URL] [--token T | --token-file F] [--json] COMMAND

    status             binds per carrier and account, queues, rates, WAL, recent errors
    top                live view of rates, window use and latencies, from /metrics
    msg ID             one message's whole history (numbers masked, never the body)
    accounts           upstream accounts: binds, receipts held, rates
    binds              every carrier bind and upstream bind
    drain CARRIER      take a carrier out of rotation (needs the write token)
    undrain CARRIER    put it back (needs the write token)
    log-level [LEVEL]  show, or set (needs the write token), relayd's log level

It talks HTTP to relayd's admin endpoint (relayd/admin.py), served beside
/metrics on the [metrics] host and port. Where to find it, in this order:
``--url``, ``RELAYCTL_URL``, ``-c CONFIG`` ([metrics] host/port), else
http://127.0.0.1:9775. The token: ``--token``, ``RELAYCTL_TOKEN``,
``--token-file``, else ``-c CONFIG`` ([admin] token / token_file).

Output is for people by default; ``--json`` prints relayd's JSON answer (for
``top``, one JSON object per frame). Exit status: 0 done, 1 relayd refused or
failed the command (unknown message or carrier, bad level, ...), 2 usage,
3 relayd cannot be reached, 4 not authorised (missing or wrong token).

Standard library only (urllib): it runs wherever relayd is installed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import socket
import sys
import time
import tomllib
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Final
from urllib.parse import quote

__all__ = ["EXIT_AUTH", "EXIT_ERROR", "EXIT_UNREACHABLE", "CtlError", "main", "parse_metrics"]

DEFAULT_URL: Final = "http://127.0.0.1:9775"
EXIT_OK: Final = 0
EXIT_ERROR: Final = 1
EXIT_USAGE: Final = 2
EXIT_UNREACHABLE: Final = 3
EXIT_AUTH: Final = 4


class CtlError(Exception):
    """A one-line error for stderr and the exit status that goes with it."""

    def __init__(self, message: str, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.exit_code = exit_code


# ============================================================================ the client


class Client:
    """Blocking HTTP to relayd's admin endpoint (no proxies: it is on loopback)."""

    def __init__(self, base_url: str, token: str | None, timeout_s: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout_s = timeout_s
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def get_json(self, path: str) -> Any:
        return json.loads(self._call("GET", path))

    def post_json(self, path: str) -> Any:
        return json.loads(self._call("POST", path))

    def get_text(self, path: str) -> str:
        return self._call("GET", path).decode("utf-8")

    def _call(self, method: str, path: str) -> bytes:
        url = self.base_url + path
        request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with self._opener.open(request, timeout=self.timeout_s) as response:
                body: bytes = response.read()
                return body
        except urllib.error.HTTPError as exc:
            raise _http_error(exc) from None
        except urllib.error.URLError as exc:
            raise CtlError(
                f"cannot reach relayd at {self.base_url}: {_reason(exc.reason)}", EXIT_UNREACHABLE
            ) from None
        except TimeoutError:
            raise CtlError(
                f"relayd at {self.base_url} did not answer within {self.timeout_s:g} s",
                EXIT_UNREACHABLE,
            ) from None
        except (ConnectionError, OSError) as exc:
            raise CtlError(
                f"cannot reach relayd at {self.base_url}: {_reason(exc)}", EXIT_UNREACHABLE
            ) from None


def _reason(reason: object) -> str:
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused (is relayd running, and is this its [metrics] port?)"
    if isinstance(reason, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror.lower()
    return str(reason)


def _http_error(exc: urllib.error.HTTPError) -> CtlError:
    try:
        message = json.loads(exc.read()).get("error") or exc.reason
    except (ValueError, AttributeError, OSError):
        message = exc.reason
    if exc.code in (401, 403):
        hint = (
            " (pass --token, --token-file, RELAYCTL_TOKEN or -c CONFIG)" if exc.code == 401 else ""
        )
        return CtlError(f"not authorised ({exc.code}): {message}{hint}", EXIT_AUTH)
    return CtlError(f"relayd answered {exc.code}: {message}", EXIT_ERROR)


# ============================================================ where, and which token


def _read_first_line(path: Path, what: str) -> str:
    try:
        with path.open(encoding="utf-8") as f:
            line = f.readline().strip()
    except OSError as exc:
        raise CtlError(f"cannot read {what} {path}: {exc.strerror}", EXIT_USAGE) from None
    if not line:
        raise CtlError(f"{what} {path} is empty", EXIT_USAGE)
    return line


def resolve_target(args: argparse.Namespace) -> tuple[str, str | None]:
    """The base URL and the token from flags, environment and configuration."""
    url: str | None = getattr(args, "url", None) or os.environ.get("RELAYCTL_URL") or None
    token: str | None = getattr(args, "token", None) or os.environ.get("RELAYCTL_TOKEN") or None
    token_file = getattr(args, "token_file", None)
    if token is None and token_file:
        token = _read_first_line(Path(token_file), "token file")
    config = getattr(args, "config", None)
    if config:
        path = Path(config)
        try:
            with path.open("rb") as f:
                raw = tomllib.load(f)
        except OSError as exc:
            raise CtlError(f"cannot read {path}: {exc.strerror}", EXIT_USAGE) from None
        except tomllib.TOMLDecodeError as exc:
            raise CtlError(f"{path}: invalid TOML: {exc}", EXIT_USAGE) from None
        metrics = raw.get("metrics", {})
        admin = raw.get("admin", {})
        if url is None:
            host = str(metrics.get("host", "127.0.0.1"))
            if host in ("", "0.0.0.0", "::"):
                host = "127.0.0.1"
            if ":" in host:
                host = f"[{host}]"
            url = f"http://{host}:{int(metrics.get('port', 9775))}"
        # The write token if the file names one, else the read token.
        for inline, file_key in (("token", "token_file"), ("read_token", "read_token_file")):
            if token is not None:
                break
            if admin.get(inline):
                token = str(admin[inline])
            elif admin.get(file_key):
                file = Path(str(admin[file_key]))
                token = _read_first_line(
                    file if file.is_absolute() else path.parent / file, f"[admin] {file_key}"
                )
    return url or DEFAULT_URL, token


# ============================================================================ formatting helpers


def _n(count: int, noun: str) -> str:
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def _when(ts: float | None) -> str:
    if ts is None:
        return "-" * 23
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _duration(seconds: float) -> str:
    s = int(seconds)
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    if d:
        return f"{d}d{h:02d}h{m:02d}m"
    if h:
        return f"{h}h{m:02d}m{s:02d}s"
    return f"{m}m{s:02d}s"


def _ms(seconds: float | None) -> str:
    if seconds is None or math.isnan(seconds):
        return "-"
    ms = seconds * 1000
    return f"{ms:,.2f} ms" if ms < 10 else f"{ms:,.1f} ms"


def table(headers: Sequence[str], rows: Iterable[Sequence[object]], indent: str = "") -> list[str]:
    """Columns padded to their widest cell; numbers (and '-') right-aligned."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    numeric = [
        all(_numberish(r[i]) for r in cells[1:]) and len(cells) > 1 for i in range(len(headers))
    ]
    out = []
    for r in cells:
        parts = [
            c.rjust(w) if num else c.ljust(w) for c, w, num in zip(r, widths, numeric, strict=True)
        ]
        out.append((indent + "  ".join(parts)).rstrip())
    return out


_NUMBERISH = re.compile(r"-|[0-9][0-9,.]*(/[0-9,.]+)?( ms)?")


def _numberish(cell: str) -> bool:
    return bool(_NUMBERISH.fullmatch(cell))


# ============================================================ status, accounts, binds


def render_status(s: dict[str, Any]) -> str:
    r = s["relayd"]
    m = s["messages"]
    rates = s["rates"]
    w = s["wal"]
    lines = [
        f"relayd pid {r['pid']}  smpp {r['smpp']}  up {_duration(r['uptime_s'])}"
        f"  log level {r['log_level']}  {'accepting' if r['accepting'] else 'NOT ACCEPTING'}",
        f"messages: {m['messages']} in flight, {m['queued']} queued, {m['retrying']} retrying,"
        f" {m['awaiting_receipt']} awaiting a receipt, {m['reports_pending']} reports pending,"
        f" {m['unknown_receipts']} unknown receipts",
        f"rates (last {rates['window_s']:g} s): {_rate(rates['submits_accepted_per_s'])}"
        f" submits/s accepted, {_rate(rates['submits_refused_per_s'])} refused,"
        f" {_rate(rates['finals_per_s'])} finals/s,"
        f" {_rate(rates['receipts_sent_per_s'])} receipts/s sent upstream",
        "WAL: "
        + ("healthy" if w["healthy"] else f"FAILED ({w['failure']})")
        + f", {_n(w['segments'], 'segment')} ({_bytes(w['bytes'])}),"
        + f" {_n(w['queued_records'], 'record')}"
        + " queued, fsync avg "
        + (f"{w['fsync_avg_ms']:.2f} ms" if w["fsync_avg_ms"] is not None else "-"),
        "checkpoint: "
        + (
            f"segment {w['checkpoint_segment']}"
            + (f", {w['checkpoint_age_s']:g} s ago" if w["checkpoint_age_s"] is not None else "")
            if w["checkpoint_segment"] is not None
            else "none yet"
        )
        + f"; {_n(w['lag_segments'], 'segment')} ({_bytes(w['lag_bytes'])}) to replay on restart",
        "",
    ]
    lines += table(
        [
            "CARRIER",
            "STATE",
            "BINDS",
            "WINDOW",
            "QUEUED",
            "SUBMIT/S",
            "ERR/S",
            "RECEIPT/S",
            "ADDRESS",
        ],
        [
            [
                c["name"],
                "drained" if c["drained"] else ("up" if c["up"] else "DOWN"),
                f"{c['binds_bound']}/{c['binds']}",
                f"{c['window_in_use']}/{c['window']}",
                c["queued_next"],
                _rate(c["submits_per_s"]),
                _rate(c["errors_per_s"]),
                _rate(c["receipts_per_s"]),
                c["address"],
            ]
            for c in s["carriers"]
        ],
    )
    if s["unroutable_queued"]:
        lines.append(
            f"  {s['unroutable_queued']} queued messages wait:"
            " every carrier of their route is drained"
        )
    lines.append("")
    lines += _accounts_table(s["accounts"])
    lines.append("")
    queues = s["queues"]
    lines.append(
        "queues: "
        + (
            ", ".join(f"{' → '.join(q['route'])} {q['depth']}" for q in queues)
            if queues
            else "empty"
        )
    )
    lines.append("")
    errors = s["recent_errors"]
    lines.append("recent warnings and errors:" if errors else "recent warnings and errors: none")
    for e in errors:
        stamp = datetime.fromtimestamp(e["at"]).strftime("%m-%d %H:%M:%S")
        lines.append(f"  {stamp} {e['level']:<7} {e['logger']} {e['msg']}")
    return "\n".join(lines)


def _accounts_table(accounts: list[dict[str, Any]]) -> list[str]:
    return table(
        ["ACCOUNT", "BINDS", "TRX/TX/RX", "RECEIPTS HELD", "ACCEPTED/S", "REFUSED/S", "TPS LIMIT"],
        [
            [
                a["system_id"],
                f"{a['binds']}/{a['max_binds']}",
                "/".join(
                    str(a["binds_by_type"].get(k, 0))
                    for k in ("transceiver", "transmitter", "receiver")
                ),
                a["receipts_held"],
                _rate(a["accepted_per_s"]),
                _rate(a["refused_per_s"]),
                f"{a['throughput_per_s']:g}" if a["throughput_per_s"] else "none",
            ]
            for a in accounts
        ],
    )


def render_accounts(data: dict[str, Any]) -> str:
    accounts = data["accounts"]
    lines = _accounts_table(accounts)
    lines.append("")
    for a in accounts:
        senders = ", ".join(a["senders"]) or "none"
        lines.append(
            f"{a['system_id']}: {a['type']}, binds {'/'.join(a['bind_types'])},"
            f" accepted {a['accepted_total']:,}, refused {a['refused_total']:,},"
            f" receipt hold max {a['receipt_hold_max']:,}; senders {senders}"
        )
    return "\n".join(lines)


def render_binds(data: dict[str, Any]) -> str:
    lines = ["carrier binds:"]
    lines += table(
        ["BIND", "KIND", "STATE", "WINDOW", "CWND", "PEER"],
        [
            [
                b["bind"],
                b["kind"],
                ("bound" if b["bound"] else "DOWN") + (", drained" if b["drained"] else ""),
                f"{b['window_in_use']}/{b['window']}",
                f"{b['cwnd']:g}",
                b["peer"] or "-",
            ]
            for b in data["carriers"]
        ],
        indent="  ",
    )
    lines.append("")
    lines.append(f"upstream binds ({data['upstream_connections']} connections):")
    if data["upstream"]:
        lines += table(
            ["ACCOUNT", "NAME", "KIND", "PEER", "SUBMITS UNANSWERED", "RECEIPTS IN FLIGHT"],
            [
                [
                    b["account"],
                    b["name"],
                    b["kind"],
                    b["peer"] or "-",
                    b["submits_unanswered"],
                    b["receipts_in_flight"],
                ]
                for b in data["upstream"]
            ],
            indent="  ",
        )
    else:
        lines.append("  none")
    return "\n".join(lines)


# ============================================================================ msg


def _event_line(e: dict[str, Any]) -> str:
    kind = e["kind"]
    if kind == "accepted":
        what = "accepted"
    elif kind == "submitted":
        part = f" (part {e['part'] + 1})" if e.get("part") else ""
        what = f"submitted        {e['carrier']}  carrier id {e['carrier_msg_id']}{part}"
    elif kind == "attempt_failed":
        how = "temporary, will retry" if e.get("temporary") else "permanent"
        what = (
            f"attempt failed   {e['carrier']}  {e.get('status_name')} (0x{e['status']:08X}), {how}"
        )
    elif kind == "final":
        code = e.get("code")
        text = f" {e['text']}" if e.get("text") else ""
        what = f"final            {e.get('state')}  stat {e.get('stat')}" + (
            f"  code {code}{text}" if code is not None else ""
        )
    elif kind == "reported":
        what = "receipt reported upstream"
    else:
        what = kind
    note = "" if e.get("source") == "store" else f"   [{e.get('source')}]"
    return f"  {_when(e.get('at'))}  {what}{note}"


def render_msg(m: dict[str, Any]) -> str:
    lines = [
        f"message {m['id']}   account {m['account'] or '?'}",
        f"  from {m['source'] or '?'}  to {m['destination'] or '?'}"
        + (
            f"   registered_delivery {m['registered_delivery']}"
            if m["registered_delivery"] is not None
            else ""
        ),
        f"  state {m['state'] or '?'}   reported upstream: {'yes' if m['reported'] else 'no'}"
        f"   (from {', '.join(m['sources'])})",
        "",
    ]
    lines += [_event_line(e) for e in m["events"]]
    live = m.get("live")
    if live is not None:
        lines.append("")
        route = " → ".join(live["route"]) or "none"
        lines.append(
            f"  now: {live['state']}, attempts {live['attempts']}, route {route}"
            + (f", at {live['carrier']}" if live.get("carrier") else "")
            + (f" ({live['bind']})" if live.get("bind") else "")
        )
        waiting = live.get("waiting_for")
        if waiting is not None:
            lines.append(
                "  waiting for a carrier: "
                + (", ".join(f"{w['carrier']} {w['status']}" for w in waiting) or "no route")
            )
    if m.get("wal_scan_truncated"):
        lines.append("  (the WAL scan stopped early: too much WAL on disk)")
    return "\n".join(lines)


# ============================================================================ top


@dataclass
class Scrape:
    """One /metrics text, as ``{name: [(labels, value)]}``."""

    at: float
    samples: dict[str, list[tuple[dict[str, str], float]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    names: set[str] = field(default_factory=set)

    def total(self, metric: str, /, **match: str) -> float:
        return sum(
            v
            for labels, v in self.samples.get(metric, ())
            if all(labels.get(k) == x for k, x in match.items())
        )

    def by(self, metric: str, label: str, /, **match: str) -> dict[str, float]:
        out: dict[str, float] = defaultdict(float)
        for labels, v in self.samples.get(metric, ()):
            if all(labels.get(k) == x for k, x in match.items()):
                out[labels.get(label, "")] += v
        return dict(out)


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text: str, at: float | None = None) -> Scrape:
    """Parse Prometheus text exposition (the subset prometheus_client writes)."""
    scrape = Scrape(time.monotonic() if at is None else at)
    for line in text.splitlines():
        if line.startswith(("# TYPE ", "# HELP ")):
            parts = line.split(" ", 3)
            if len(parts) >= 3:
                scrape.names.add(parts[2])
            continue
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if m is None:
            continue
        name, labels_text, value = m.groups()
        labels = {
            k: v.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
            for k, v in _LABEL.findall(labels_text or "")
        }
        try:
            scrape.samples[name].append((labels, float(value)))
        except ValueError:
            continue
        scrape.names.add(name)
    return scrape


def histogram_quantile(prev: Scrape, cur: Scrape, name: str, q: float) -> float | None:
    """The ``q`` quantile of what ``name`` observed between two scrapes, by linear
    interpolation inside the bucket (as Prometheus' histogram_quantile does)."""
    before = {labels.get("le"): v for labels, v in prev.samples.get(f"{name}_bucket", ())}
    buckets = []
    for labels, v in cur.samples.get(f"{name}_bucket", ()):
        le = labels.get("le")
        if le is None:
            continue
        buckets.append((math.inf if le == "+Inf" else float(le), v - before.get(le, 0.0)))
    buckets.sort()
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound  # beyond the highest finite bucket: its bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count
            )
        lower_bound, lower_count = bound, count
    return None


def top_frame(
    prev: Scrape,
    cur: Scrape,
    windows: dict[str, int] | None = None,
    binds: dict[str, int] | None = None,
) -> dict[str, Any]:
    """What one frame of ``relayctl top`` shows, from two scrapes."""
    dt = max(cur.at - prev.at, 1e-9)

    def rate(metric: str, /, **match: str) -> float:
        return max(0.0, cur.total(metric, **match) - prev.total(metric, **match)) / dt

    def rates_by(metric: str, label: str, /, **match: str) -> dict[str, float]:
        before = prev.by(metric, label, **match)
        return {
            k: max(0.0, v - before.get(k, 0.0)) / dt
            for k, v in sorted(cur.by(metric, label, **match).items())
        }

    submits = rates_by("relayd_submits_total", "status")
    accepted = submits.pop("ESME_ROK", 0.0)
    windows = windows or {}
    binds = binds or {}
    seen = (
        set(cur.by("relayd_binds", "name", side="carrier"))
        | set(cur.by("relayd_carrier_drained", "carrier"))
        | set(cur.by("relayd_carrier_submits_total", "carrier"))
    )
    # relayd's order (the configuration's) when /admin/binds told it, else by name.
    carrier_names = [c for c in binds if c in seen] + sorted(seen - set(binds))
    carriers = []
    for c in carrier_names:
        ok = rate("relayd_carrier_responses_total", carrier=c, status="ESME_ROK")
        carriers.append(
            {
                "name": c,
                "binds_up": int(cur.total("relayd_binds", side="carrier", name=c)),
                "binds": binds.get(c),
                "drained": cur.total("relayd_carrier_drained", carrier=c) > 0,
                "submits_per_s": rate("relayd_carrier_submits_total", carrier=c),
                "errors_per_s": max(0.0, rate("relayd_carrier_responses_total", carrier=c) - ok),
                "receipts_per_s": rate("relayd_receipts_total", carrier=c),
                "window_in_use": int(cur.total("relayd_carrier_window_in_use", carrier=c)),
                "window": windows.get(c),
            }
        )
    batch_count = cur.total("relayd_wal_batch_records_count") - prev.total(
        "relayd_wal_batch_records_count"
    )
    batch_sum = cur.total("relayd_wal_batch_records_sum") - prev.total(
        "relayd_wal_batch_records_sum"
    )
    accounts_ok = rates_by("relayd_submits_total", "account", status="ESME_ROK")
    accounts_all = rates_by("relayd_submits_total", "account")
    return {
        "interval_s": round(dt, 3),
        "in_flight": int(cur.total("relayd_messages_in_flight")),
        "receipts_held": int(cur.total("relayd_upstream_receipt_backlog")),
        "wal_healthy": cur.total("relayd_wal_healthy") > 0,
        "rates": {
            "submits_accepted": accepted,
            "submits_refused": sum(submits.values()),
            "carrier_submits": rate("relayd_carrier_submits_total"),
            "receipts_in": rate("relayd_receipts_total"),
            "finals": rate("relayd_finals_total"),
            "receipts_sent": rate("relayd_upstream_receipts_sent_total"),
        },
        "refused_by_status": {k: v for k, v in submits.items() if v > 0},
        "finals_by_stat": {
            k: v for k, v in rates_by("relayd_finals_total", "stat").items() if v > 0
        },
        "latency_s": {
            metric: {
                f"p{int(q * 100)}": histogram_quantile(prev, cur, name, q) for q in (0.5, 0.9, 0.99)
            }
            for metric, name in (
                ("submit", "relayd_submit_latency_seconds"),
                ("wal_fsync", "relayd_wal_fsync_seconds"),
            )
        },
        "wal_batch_records_avg": (batch_sum / batch_count) if batch_count > 0 else None,
        "carriers": carriers,
        "queues": {k: int(v) for k, v in sorted(cur.by("relayd_queue_depth", "route").items())},
        "accounts": {
            a: {
                "accepted_per_s": accounts_ok.get(a, 0.0),
                "refused_per_s": v - accounts_ok.get(a, 0.0),
            }
            for a, v in accounts_all.items()
        },
    }


def _bar(used: int, capacity: int | None, width: int = 16) -> str:
    if not capacity:
        return ""
    filled = min(width, round(width * used / capacity))
    return "[" + "#" * filled + "." * (width - filled) + "]"


def render_top(frame: dict[str, Any], url: str, now: float | None = None) -> str:
    stamp = datetime.fromtimestamp(time.time() if now is None else now).strftime(
        "%Y-%m-%d %H:%M:%S"
    )
    r = frame["rates"]
    lines = [
        f"relayd top   {url}   {stamp}   every {frame['interval_s']:g} s",
        f"in flight {frame['in_flight']:,}   receipts held {frame['receipts_held']:,}"
        f"   WAL {'ok' if frame['wal_healthy'] else 'FAILED'}",
        "",
    ]
    lines += table(
        ["RATE /s", "SUBMITS", "REFUSED", "TO CARRIERS", "RECEIPTS IN", "FINALS", "RECEIPTS OUT"],
        [
            [
                "now",
                _rate(r["submits_accepted"]),
                _rate(r["submits_refused"]),
                _rate(r["carrier_submits"]),
                _rate(r["receipts_in"]),
                _rate(r["finals"]),
                _rate(r["receipts_sent"]),
            ]
        ],
    )
    if frame["finals_by_stat"]:
        lines.append(
            "finals by stat: "
            + "  ".join(f"{k} {_rate(v)}" for k, v in frame["finals_by_stat"].items())
        )
    if frame["refused_by_status"]:
        lines.append(
            "refused by status: "
            + "  ".join(f"{k} {_rate(v)}" for k, v in frame["refused_by_status"].items())
        )
    lines.append("")
    lat = frame["latency_s"]
    avg = frame["wal_batch_records_avg"]
    lines += table(
        ["LATENCY", "P50", "P90", "P99"],
        [
            ["submit → submit_sm_resp", *(_ms(lat["submit"][p]) for p in ("p50", "p90", "p99"))],
            ["WAL write + fdatasync", *(_ms(lat["wal_fsync"][p]) for p in ("p50", "p90", "p99"))],
        ],
    )
    if avg is not None:
        lines.append(f"WAL group commit: {avg:,.1f} records per batch")
    lines.append("")
    lines += table(
        ["CARRIER", "BINDS", "STATE", "SUBMIT/S", "ERR/S", "RECEIPT/S", "WINDOW", ""],
        [
            [
                c["name"],
                f"{c['binds_up']}/{c['binds']}" if c["binds"] is not None else str(c["binds_up"]),
                "drained" if c["drained"] else ("up" if c["binds_up"] else "DOWN"),
                _rate(c["submits_per_s"]),
                _rate(c["errors_per_s"]),
                _rate(c["receipts_per_s"]),
                f"{c['window_in_use']}/{c['window']}" if c["window"] else str(c["window_in_use"]),
                _bar(c["window_in_use"], c["window"]),
            ]
            for c in frame["carriers"]
        ],
    )
    lines.append("")
    queues = frame["queues"]
    lines.append(
        "queued by route: "
        + ("  ".join(f"{route} {depth}" for route, depth in queues.items()) if queues else "none")
    )
    if frame["accounts"]:
        lines.append(
            "accounts: "
            + "  ".join(
                f"{a} {_rate(v['accepted_per_s'])}/s"
                + (f" (refused {_rate(v['refused_per_s'])}/s)" if v["refused_per_s"] > 0 else "")
                for a, v in frame["accounts"].items()
            )
        )
    return "\n".join(lines)


def _capacities(client: Client) -> tuple[dict[str, int], dict[str, int]]:
    """Window capacity and bind count per carrier from /admin/binds, if readable."""
    try:
        data = client.get_json("/admin/binds")
    except CtlError:
        return {}, {}
    windows: dict[str, int] = defaultdict(int)
    binds: dict[str, int] = defaultdict(int)
    for b in data.get("carriers", []):
        windows[b["carrier"]] += int(b.get("window") or 0)
        binds[b["carrier"]] += 1
    return dict(windows), dict(binds)


def run_top(client: Client, args: argparse.Namespace, out: IO[str]) -> int:
    iterations = 1 if args.once else args.iterations
    interval = args.interval
    windows, binds = _capacities(client)
    prev = parse_metrics(client.get_text("/metrics"))
    clear = out.isatty() and iterations != 1 and not args.json
    done = 0
    try:
        while iterations is None or done < iterations:
            time.sleep(interval)
            cur = parse_metrics(client.get_text("/metrics"))
            frame = top_frame(prev, cur, windows, binds)
            prev = cur
            if args.json:
                out.write(json.dumps(frame, ensure_ascii=False) + "\n")
            else:
                text = render_top(frame, client.base_url)
                out.write(("\x1b[H\x1b[2J" if clear else "") + text + "\n")
            out.flush()
            done += 1
    except KeyboardInterrupt:
        return EXIT_OK
    return EXIT_OK


# ============================================================================ command line


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: the same options are accepted before and after the command.
    common.add_argument(
        "-c", "--config", default=argparse.SUPPRESS, help="relayd.toml: endpoint and token"
    )
    common.add_argument(
        "--url", default=argparse.SUPPRESS, help=f"admin endpoint (default {DEFAULT_URL})"
    )
    common.add_argument("--token", default=argparse.SUPPRESS, help="admin token")
    common.add_argument(
        "--token-file", default=argparse.SUPPRESS, help="file holding the admin token"
    )
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="machine output"
    )
    common.add_argument(
        "--timeout", type=float, default=argparse.SUPPRESS, help="seconds per request (default 10)"
    )
    ap = argparse.ArgumentParser(
        prog="relayctl",
        description="Operate a running relayd through its admin endpoint.",
        parents=[common],
    )
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("status", parents=[common], help="binds, queues, rates, WAL, recent errors")
    top = sub.add_parser("top", parents=[common], help="live view built from /metrics")
    top.add_argument(
        "--interval", type=float, default=1.0, help="seconds between frames (default 1)"
    )
    top.add_argument("--once", action="store_true", help="print one frame and exit")
    top.add_argument("--iterations", type=int, default=None, help="frames to print, then exit")
    msg = sub.add_parser("msg", parents=[common], help="one message's history")
    msg.add_argument("id", help="relayd's message id (the submit_sm_resp message_id)")
    msg.add_argument("--wal", action="store_true", help="also search the WAL segments on disk")
    sub.add_parser("accounts", parents=[common], help="upstream accounts")
    sub.add_parser("binds", parents=[common], help="carrier and upstream binds")
    drain = sub.add_parser("drain", parents=[common], help="take a carrier out of rotation")
    drain.add_argument("carrier")
    undrain = sub.add_parser("undrain", parents=[common], help="put a drained carrier back")
    undrain.add_argument("carrier")
    level = sub.add_parser("log-level", parents=[common], help="show or set the log level")
    level.add_argument("level", nargs="?", help="debug | info | warning | error | critical")
    return ap


def _dispatch(args: argparse.Namespace, client: Client, out: IO[str]) -> int:
    as_json = getattr(args, "json", False)

    def emit(data: Any, human: str) -> None:
        out.write((json.dumps(data, ensure_ascii=False, indent=2) if as_json else human) + "\n")

    command = args.command
    if command == "status":
        data = client.get_json("/admin/status")
        emit(data, render_status(data) if not as_json else "")
    elif command == "top":
        if args.interval <= 0 or (args.iterations is not None and args.iterations < 1):
            raise CtlError("--interval must be > 0 and --iterations >= 1", EXIT_USAGE)
        args.json = as_json
        return run_top(client, args, out)
    elif command == "msg":
        path = "/admin/msg/" + quote(args.id, safe="") + ("?wal=1" if args.wal else "")
        data = client.get_json(path)
        emit(data, render_msg(data) if not as_json else "")
    elif command == "accounts":
        data = client.get_json("/admin/accounts")
        emit(data, render_accounts(data) if not as_json else "")
    elif command == "binds":
        data = client.get_json("/admin/binds")
        emit(data, render_binds(data) if not as_json else "")
    elif command in ("drain", "undrain"):
        data = client.post_json(f"/admin/{command}/" + quote(args.carrier, safe=""))
        if command == "drain":
            human = (
                f"{data['carrier']} drained: no new submits; {data['window_in_use']} in its windows"
                " finish there, receipts keep arriving"
                if data["changed"]
                else f"{data['carrier']} was already drained"
            )
        else:
            human = (
                f"{data['carrier']} back in rotation"
                if data["changed"]
                else f"{data['carrier']} was not drained"
            )
        emit(data, human)
    elif command == "log-level":
        if args.level is None:
            data = client.get_json("/admin/log-level")
            emit(data, f"log level {data['level']}")
        else:
            data = client.post_json("/admin/log-level/" + quote(args.level, safe=""))
            emit(data, f"log level {data['level']} (was {data['previous']})")
    return EXIT_OK


def main(
    argv: Sequence[str] | None = None,
    *,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
) -> int:
    """Run relayctl; returns the exit status (module docstring)."""
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    parser = _parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    try:
        url, token = resolve_target(args)
        client = Client(url, token, getattr(args, "timeout", 10.0))
        return _dispatch(args, client, out)
    except CtlError as exc:
        err.write(f"relayctl: {exc}\n")
        return exc.exit_code
    except BrokenPipeError:  # `relayctl top | head`
        return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
