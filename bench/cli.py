"""``relay-bench``: the end-to-end benchmark of relayd (issue 5).

    relay-bench burst     [--count 100000] [--binds 4] [--window 256] [--json FILE] [--target H:P]
    relay-bench sustained [--rate 2000] [--duration 60]
    relay-bench crash     [--count 50000] [--kills 5]
    relay-bench faults    [--count 20000] [--fault CARRIER:KEY=VALUE ...]
    relay-bench demo      [--json FILE]

Each prints a short human summary on stderr and the report as one JSON object
on stdout (``demo``: the summary on stdout, the JSON and a PNG chart in
``bench-results/``). Exit status: 0 passed, 1 the run broke a promise (lost
or duplicated receipts, messages not accepted: the reasons go to stderr),
2 the harness could not run it, 130 interrupted. ``bench/README.md``
documents the report.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.harness import (
    CARRIERS,
    DEFAULT_FAULTS,
    FAULTS_RETRY,
    SHIPPED_CONFIG,
    HarnessError,
    Options,
    run_sync,
    sustained_count,
)
from bench.report import human_report
from simulators.upstream import BindError, UpstreamError

__all__ = ["main", "options_from_args"]

_DEFAULT_COUNT = {"burst": 100_000, "crash": 50_000, "faults": 20_000, "demo": 100_000}
RESULTS_DIR = Path("bench-results")


def _target(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


def _fault(value: str) -> tuple[str, str, float]:
    carrier, sep, rest = value.partition(":")
    key, eq, number = rest.partition("=")
    if not sep or not eq or carrier not in CARRIERS:
        raise argparse.ArgumentTypeError(
            f"expected CARRIER:KEY=VALUE with CARRIER in {CARRIERS}, got {value!r}"
        )
    try:
        return carrier, key.strip().replace("-", "_"), float(number)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r}: VALUE must be a number") from None


def _positive_int(value: str) -> int:
    n = int(value)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {n}")
    return n


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="relay-bench", description=__doc__.split("\n")[0] if __doc__ else None
    )
    sub = ap.add_subparsers(dest="scenario", required=True, metavar="SCENARIO")
    helps = {
        "burst": "submit --count messages as fast as relayd accepts them",
        "sustained": "paced submits at --rate for --duration seconds",
        "crash": "kill -9 relayd --kills times during the run; nothing acknowledged is lost",
        "faults": "carriers disconnecting, stalling and throttling during the run",
        "demo": "the 100k burst with a progress bar, a human report, JSON and a PNG chart",
    }
    for name, text in helps.items():
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument(
            "--count",
            type=_positive_int,
            default=_DEFAULT_COUNT.get(name),
            help="messages to have acknowledged",
        )
        p.add_argument("--binds", type=_positive_int, default=4, help="upstream transceivers")
        p.add_argument("--window", type=_positive_int, default=256, help="submits in flight/bind")
        p.add_argument("--json", dest="json_file", type=Path, help="also write the report here")
        p.add_argument("--chart", type=Path, help="also draw the PNG chart here")
        p.add_argument("--target", type=_target, help="drive a running relayd at HOST:PORT")
        p.add_argument("--system-id", default="demo", help="upstream account (default demo)")
        p.add_argument("--password", default="demo")
        p.add_argument("--seed", type=int, default=1, help="seeds simulators and kill points")
        p.add_argument(
            "--timeout-s", type=float, default=600.0, help="cap on the run (default 600)"
        )
        p.add_argument(
            "--receipt-max-s",
            type=float,
            default=0.1,
            help="simulator receipt delay, uniform on [0, S] (default 0.1)",
        )
        p.add_argument(
            "--config",
            type=Path,
            default=SHIPPED_CONFIG,
            help="relayd configuration to derive the run's from (default conf/relayd.toml)",
        )
        p.add_argument(
            "--cpu-affinity",
            action="store_true",
            help="pin relayd to the first usable core, the rest to the others",
        )
        p.add_argument("--work-dir", type=Path, help="keep configuration, data and logs here")
        p.add_argument(
            "--progress",
            action=argparse.BooleanOptionalAction,
            default=name == "demo",
            help="progress line on stderr (default: on for demo)",
        )
        if name == "sustained":
            p.add_argument("--rate", type=float, default=2000.0, help="msg/s (default 2000)")
            p.add_argument("--duration", type=float, default=60.0, help="seconds (default 60)")
        if name == "crash":
            p.add_argument("--kills", type=int, default=5, help="SIGKILLs of relayd (default 5)")
        if name == "faults":
            p.add_argument(
                "--fault",
                type=_fault,
                action="append",
                default=[],
                metavar="CARRIER:KEY=VALUE",
                help="a simulator fault flag (e.g. skt:disconnect_every_s=2); replaces the "
                "defaults " + _faults_text(DEFAULT_FAULTS),
            )
    return ap


def _faults_text(faults: Mapping[str, Mapping[str, float]]) -> str:
    return "; ".join(
        f"{c}: " + ", ".join(f"{k}={v:g}" for k, v in kv.items()) for c, kv in faults.items()
    )


def options_from_args(args: argparse.Namespace) -> Options:
    """The :class:`~bench.harness.Options` a parsed command line asks for."""
    scenario = args.scenario
    count = args.count
    rate = None
    duration = 0.0
    if scenario == "sustained":
        if not args.rate > 0 or not args.duration > 0:
            raise SystemExit("relay-bench sustained: --rate and --duration must be > 0")
        rate, duration = args.rate, args.duration
        count = sustained_count(rate, duration)
    faults: dict[str, dict[str, float]] = {}
    overrides: dict[str, dict[str, Any]] = {}
    if scenario == "faults":
        if args.fault:
            for carrier, key, value in args.fault:
                faults.setdefault(carrier, {})[key] = value
        else:
            faults = {k: dict(v) for k, v in DEFAULT_FAULTS.items()}
        overrides["retry"] = dict(FAULTS_RETRY)
    return Options(
        scenario=scenario,
        count=count,
        binds=args.binds,
        window=args.window,
        rate=rate,
        duration_s=duration,
        kills=getattr(args, "kills", 0),
        seed=args.seed,
        timeout_s=args.timeout_s,
        target=args.target,
        system_id=args.system_id,
        password=args.password,
        base_config=args.config.resolve(),
        receipt_uniform_max_s=args.receipt_max_s,
        faults=faults,
        relayd_overrides=overrides,
        cpu_affinity=args.cpu_affinity,
        work_dir=args.work_dir,
        progress=args.progress,
    )


def _write_json(report: Mapping[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """``relay-bench SCENARIO [options]``; see the module doc for the exit status."""
    args = _parser().parse_args(argv)
    opts = options_from_args(args)
    if opts.scenario == "crash" and opts.target is not None:
        print("relay-bench crash: --target is not supported (relayd must be ours to kill)",
              file=sys.stderr)  # fmt: skip
        return 2
    json_file: Path | None = args.json_file
    chart: Path | None = args.chart
    if opts.scenario == "demo":
        stamp = time.strftime("%Y%m%d-%H%M%S")
        json_file = json_file or RESULTS_DIR / f"demo-{stamp}.json"
        chart = chart or json_file.with_suffix(".png")
    try:
        report, work = run_sync(opts)
    except KeyboardInterrupt:
        print("\nrelay-bench: interrupted; every child process was stopped", file=sys.stderr)
        return 130
    except (HarnessError, BindError, UpstreamError, OSError, TimeoutError) as exc:
        print(f"relay-bench {opts.scenario}: {exc}", file=sys.stderr)
        return 2
    if json_file is not None:
        _write_json(report, json_file)
    if chart is not None:
        from bench.chart import write_chart

        chart.parent.mkdir(parents=True, exist_ok=True)
        try:
            write_chart(report, chart)
        except ImportError:  # pragma: no cover - the Makefile installs the bench extra
            print("relay-bench: no chart: matplotlib is missing (pip install -e '.[bench]')",
                  file=sys.stderr)  # fmt: skip
            chart = None
    text = human_report(report)
    if opts.scenario == "demo":
        print(text)
        print(f"  report       {json_file}")
        print(f"  chart        {chart}")
    else:
        print(text, file=sys.stderr)
        print(json.dumps(report, ensure_ascii=False))
    if not report["ok"]:
        print(f"relay-bench {opts.scenario}: FAILED", file=sys.stderr)
        for why in report["failures"]:
            print(f"  - {why}", file=sys.stderr)
        print(f"  work directory kept: {work}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
