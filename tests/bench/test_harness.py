"""relay-bench end to end (issue 5, "Must show"): small runs through real
processes — three ``relay-sim carrier`` simulators and ``relayd run`` on
loopback ports, the load client in this process — plus the chart writer and
the verdict.

Every run is bounded by the harness's own ``timeout_s``; after each, no
process started for it may be left (their command lines name the run's work
directory, so a scan of ``/proc`` finds any survivor).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bench.chart import write_chart
from bench.cli import main
from bench.harness import Options, run_sync
from bench.report import REQUIRED_FIELDS, timeline, verdict

REPO = Path(__file__).resolve().parents[2]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def processes_mentioning(text: str) -> list[tuple[int, str]]:
    """(pid, command line) of every process whose command line contains ``text``."""
    found = []
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\x00", b" ").decode(errors="replace")
        except OSError:
            continue  # exited meanwhile
        if text in cmdline:
            found.append((int(entry), cmdline))
    return found


def assert_no_orphans(work: Path) -> None:
    assert processes_mentioning(str(work)) == [], "processes of the run are still alive"


def assert_report_shape(report: dict[str, Any]) -> None:
    for name, kind in REQUIRED_FIELDS.items():
        assert name in report, name
        assert isinstance(report[name], kind), (name, report[name])
    for field in ("p50", "p90", "p99", "max"):
        assert isinstance(report["submit_resp_ms"][field], float), field
    for field in ("p50", "p99", "max"):
        assert isinstance(report["receipt_ms"][field], float), field
    machine = report["machine"]
    assert isinstance(machine["cores"], int)
    assert isinstance(machine["python"], str)
    assert machine["event_loop"].startswith("uvloop")
    ts = report["timeseries"]
    assert ts["t_s"], "an empty timeline"
    assert {len(v) for v in ts.values()} == {len(ts["t_s"])}
    assert sum(ts["submitted"]) == report["submitted"]
    assert sum(ts["receipts"]) == report["receipts"]
    json.dumps(report)  # JSON-ready as it is


def start(argv: list[str], *, stderr: int = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
    """A process of this repository's Python, in the repository."""
    return subprocess.Popen(
        [sys.executable, *argv], cwd=REPO, stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=stderr,
    )  # fmt: skip


def wait_file(path: Path, proc: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    """Until ``path`` exists; fails if ``proc`` exits first or time runs out."""
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert proc.poll() is None, f"exited before writing {path.name}"
        assert time.monotonic() < deadline, f"no {path.name} after {timeout_s} s"
        time.sleep(0.01)


def run(tmp_path: Path, **kw: Any) -> dict[str, Any]:
    work = tmp_path / "run"
    try:
        report, where = run_sync(Options(work_dir=work, timeout_s=90.0, **kw))
    finally:
        assert_no_orphans(work)
    assert where == work
    if not report["ok"]:  # the logs explain a failure
        for log in sorted(work.glob("relayd-*.log")):
            print(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}")
    return report


def test_small_burst_through_real_processes(tmp_path: Path) -> None:
    """2,000 messages through relayd and three simulators: every acknowledged
    message has exactly one final receipt, the carriers saw no duplicate, and
    the report carries every documented field with its type."""
    report = run(tmp_path, scenario="burst", count=2_000)
    assert report["failures"] == []
    assert report["ok"]
    assert report["submitted"] == report["accepted"] == report["receipts"] == 2_000
    assert report["lost"] == 0
    assert report["duplicate_receipts"] == 0
    assert report["unknown_receipts"] == 0
    assert report["carrier_duplicates"] == 0
    assert sum(report["receipts_by_stat"].values()) == 2_000
    assert_report_shape(report)
    # Measured from /proc while relayd ran; it stopped cleanly on SIGTERM.
    assert report["relayd_cpu_s"] > 0
    assert report["relayd_max_rss_mb"] > 10
    assert report["relayd_exits"] == [0]
    assert report["relayd_log_problems"] == 0
    # All three carriers carried traffic and accepted each message once.
    carriers = report["carriers"]
    assert set(carriers) == {"skt", "kt", "lgu"}
    assert all(c["submits_accepted"] > 0 for c in carriers.values())
    assert sum(c["unique_messages"] for c in carriers.values()) == 2_000
    # The bounded receipt delay reached the simulators.
    assert report["config"]["simulators"]["receipt_uniform_max_s"] == 0.1
    assert report["receipt_ms"]["max"] < 10_000


def test_crash_run_with_one_kill_loses_nothing(tmp_path: Path) -> None:
    """kill -9 of relayd mid-run, restart on the same data dir and port, rebind:
    every acknowledged message still ends in a final receipt."""
    report = run(tmp_path, scenario="crash", count=3_000, kills=1, seed=7)
    assert report["failures"] == []
    assert report["ok"]
    assert report["lost"] == 0
    assert report["duplicate_receipts"] == 0
    assert report["accepted"] == report["receipts"] == 3_000
    assert len(report["kills"]) == 1
    assert len(report["restarts"]) == 1
    assert 0 < report["kills"][0]["at_accepted"] < 3_000
    # Two relayd processes: the killed one and the one stopped by SIGTERM.
    assert report["relayd_exits"] == [0]
    assert len(list((tmp_path / "run").glob("relayd-*.log"))) == 2
    # Figures, bounded by what one kill can leave in flight (the client's and
    # relayd's windows), not failures.
    assert 0 <= report["redelivered_after_crash"] <= 4 * 256
    assert report["carrier_duplicates"] is not None
    assert 0 <= report["carrier_duplicates"] <= 2 * (256 + 128 + 64) * 2
    assert_report_shape(report)


def test_faults_run_loses_nothing(tmp_path: Path) -> None:
    """Carriers that disconnect, stall, throttle and answer errors during the
    run: nothing acknowledged is lost and no bind sees a receipt twice."""
    faults = {
        "skt": {"disconnect_every_s": 0.4},
        "kt": {"stall_every_s": 0.3, "stall_s": 0.2},
        "lgu": {"tps_per_bind": 100.0, "error_rate": 0.05},
    }
    report = run(
        tmp_path,
        scenario="faults",
        count=3_000,
        rate=2_000.0,  # ~1.5 s of submits: every fault fires while messages flow
        faults=faults,
        relayd_overrides={"retry": {"backoff_min_s": 0.05, "backoff_max_s": 0.5}},
    )
    assert report["failures"] == []
    assert report["ok"]
    assert report["lost"] == 0
    assert report["duplicate_receipts"] == 0
    assert report["accepted"] == report["receipts"] == 3_000
    carriers = report["carriers"]
    assert carriers["skt"]["disconnects_injected"] > 0
    assert carriers["kt"]["stalls_injected"] > 0
    assert carriers["lgu"]["errors_injected"] + carriers["lgu"]["throttled"] > 0


def test_chart_writer_produces_a_png(tmp_path: Path) -> None:
    """The chart of a small report is a PNG file, kills drawn or not."""
    sub = [0.001 * i for i in range(3_000)]
    resp = [t + 0.004 for t in sub]
    rcpt = [t + 0.05 for t in sub]
    report = {
        "scenario": "burst",
        "count": 3_000,
        "accept_rate_per_s": 1_000.0,
        "elapsed_s": 3.05,
        "lost": 0,
        "timeseries": timeline(sub, resp, rcpt, [True] * 3_000),
        "kills": [{"at_accepted": 1_500, "t_s": 1.5}],
    }
    out = write_chart(report, tmp_path / "chart.png")
    data = out.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert len(data) > 1_000
    # A report without kills or latencies (nothing answered) still draws.
    report["kills"] = []
    report["timeseries"] = timeline(sub[:10], [None] * 10, [None] * 10, [False] * 10)
    assert write_chart(report, tmp_path / "empty.png").read_bytes().startswith(PNG_SIGNATURE)


def test_timeline_buckets_events_by_second_of_the_run() -> None:
    """Counts fall in the second they happened; latencies in the submit's second."""
    ts = timeline(
        [10.0, 10.5, 11.2, None],
        [10.01, 10.52, 11.21, None],
        [10.9, 11.5, None, None],
        [True, True, False, False],
    )
    assert ts["t_s"] == [0, 1]
    assert ts["submitted"] == [2, 1]
    assert ts["accepted"] == [2, 0]  # the third was answered with an error
    assert ts["receipts"] == [1, 1]
    assert ts["submit_resp_p50_ms"][0] == pytest.approx(10.0, abs=0.01)
    assert ts["receipt_p99_ms"][1] is None


def test_verdict_fails_a_run_that_lost_or_duplicated_receipts() -> None:
    """lost > 0, duplicate_receipts > 0 or a short count each fail the run with
    a reason; carrier duplicates and redeliveries after a crash do not."""
    clean = {
        "count": 10,
        "accepted": 10,
        "lost": 0,
        "duplicate_receipts": 0,
        "carrier_duplicates": 3,
        "redelivered_after_crash": 2,
        "rejected_by_status": {},
        "errors": [],
    }
    assert verdict(clean) == []
    (why,) = verdict({**clean, "lost": 2})
    assert "lost = 2" in why
    (why,) = verdict({**clean, "duplicate_receipts": 1})
    assert "duplicate_receipts = 1" in why
    (why,) = verdict({**clean, "accepted": 9, "rejected_by_status": {"ESME_RSYSERR": 1}})
    assert "ESME_RSYSERR" in why
    assert verdict({**clean, "errors": ["deadline"]}) == ["deadline"]


def test_cli_exits_1_and_says_why_when_receipts_are_lost(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """relay-bench burst --target against an SMSC whose receipts come too late:
    lost > 0, exit status 1, the reason on stderr, the JSON still written."""
    ready = tmp_path / "sim.ready.json"
    sim = start(
        [
            "-m", "simulators.cli", "carrier", "--profile", "skt",
            "--listen", "127.0.0.1:0", "--tps-per-bind", "0",
            "--receipt-uniform-max-s", "600", "--ready-file", str(ready),
        ]
    )  # fmt: skip
    try:
        wait_file(ready, sim)
        port = json.loads(ready.read_text())["port"]
        out = tmp_path / "report.json"
        rc = main(
            [
                "burst", "--count", "200", "--binds", "1",
                "--target", f"127.0.0.1:{port}", "--system-id", "relayd", "--password", "relaypw",
                "--timeout-s", "1.5", "--json", str(out),
            ]
        )  # fmt: skip
    finally:
        sim.send_signal(signal.SIGTERM)
        try:
            sim.wait(timeout=20)
        except subprocess.TimeoutExpired:
            sim.kill()
            sim.wait()
    assert rc == 1
    err = capsys.readouterr().err
    assert "lost = 200" in err
    report = json.loads(out.read_text())
    assert report["ok"] is False
    assert report["lost"] == 200
    assert report["relayd_cpu_s"] is None  # not ours: nothing measured


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_run_leaves_no_process_behind(tmp_path: Path, sig: signal.Signals) -> None:
    """Ctrl-C (SIGINT) or SIGTERM to relay-bench mid-run: it exits 130 and every
    simulator and relayd it started is gone."""
    work = tmp_path / "run"
    bench = start(
        [
            "-m", "bench", "burst", "--count", "5000000", "--timeout-s", "60",
            "--work-dir", str(work),
        ],
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        wait_file(work / "relayd-0.ready.json", bench)
        time.sleep(0.3)  # submits flowing
        assert processes_mentioning(str(work)), "no child to stop: the test proves nothing"
        bench.send_signal(sig)
        _, err = bench.communicate(timeout=30)
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.communicate()
    assert bench.returncode == 130, err.decode(errors="replace")
    assert b"interrupted" in err
    assert_no_orphans(work)


def test_a_harness_error_stops_the_simulators_already_started(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """relayd refusing its configuration ends the run with status 2, and the
    simulators started before it are stopped."""
    bad = tmp_path / "bad.toml"
    bad.write_text(
        (REPO / "conf" / "relayd.toml").read_text().replace("window = 512", "window = -1")
    )
    work = tmp_path / "run"
    rc = main(["burst", "--count", "10", "--config", str(bad), "--work-dir", str(work)])
    assert rc == 2
    assert "relayd-0 exited with 2 before it was ready" in capsys.readouterr().err
    assert_no_orphans(work)
