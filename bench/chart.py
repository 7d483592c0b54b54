"""The PNG chart of a ``relay-bench`` report: rates and latency per second.

Top panel: submits, acceptances and final receipts per second. Bottom panel:
submit → submit_sm_resp latency p50 and p99 per second (log scale when they
span more than a factor of 20). Kills of
a crash run are drawn as vertical lines. matplotlib (the ``bench`` extra) is
imported only here, with the Agg backend: no display is needed.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["write_chart"]


def write_chart(report: Mapping[str, Any], path: str | Path) -> Path:
    """Draw ``report["timeseries"]`` into a PNG at ``path``.

    Args:
        report: a report from :func:`bench.harness.run` (only ``scenario``,
            ``count``, ``timeseries`` and, if present, ``kills`` and the
            headline figures are read).
        path: the PNG to write (its directory must exist).

    Returns:
        The path written.

    Raises:
        ImportError: matplotlib is not installed (``pip install -e '.[bench]'``).
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.ticker import FuncFormatter

    ts = report["timeseries"]
    t = [x + 0.5 for x in ts["t_s"]]  # each bucket drawn at its middle
    fig, (rates, lat) = plt.subplots(2, 1, figsize=(10, 6.5), sharex=True, dpi=100)
    try:
        rates.plot(t, ts["submitted"], label="submitted / s", color="tab:blue")
        rates.plot(t, ts["accepted"], label="accepted / s", color="tab:green", linestyle="--")
        rates.plot(t, ts["receipts"], label="final receipts / s", color="tab:orange")
        rates.set_ylabel("messages per second")
        rates.grid(True, alpha=0.3)
        rates.legend(loc="upper right", fontsize="small")
        rates.set_ylim(bottom=0)

        def points(key: str) -> tuple[list[float], list[float]]:
            pairs = [(x, y) for x, y in zip(t, ts[key], strict=True) if y is not None]
            return [x for x, _ in pairs], [y for _, y in pairs]

        for key, label, color in (
            ("submit_resp_p50_ms", "submit→resp p50", "tab:blue"),
            ("submit_resp_p99_ms", "submit→resp p99", "tab:red"),
        ):
            xs, ys = points(key)
            lat.plot(xs, ys, label=label, color=color, marker=".", markersize=3)
        shown = [
            y for k in ("submit_resp_p50_ms", "submit_resp_p99_ms") for y in ts[k] if y and y > 0
        ]
        if shown and max(shown) / min(shown) > 20:
            # Log only when the latencies span decades (a crash, a stall); else a
            # log axis between two powers of ten shows no labelled tick at all.
            lat.set_yscale("log")
            # Plain numbers on the log axis (not 2.5×10²): milliseconds read directly.
            plain = FuncFormatter(lambda y, _pos: f"{y:g}")
            lat.yaxis.set_major_formatter(plain)
            lat.yaxis.set_minor_formatter(plain)
        lat.set_ylabel("latency (ms), by second of submit")
        lat.set_xlabel("seconds since the first submit")
        lat.grid(True, which="both", alpha=0.3)
        lat.legend(loc="upper right", fontsize="small")

        for i, kill in enumerate(report.get("kills") or ()):
            if kill.get("t_s") is None:
                continue
            for ax in (rates, lat):
                ax.axvline(
                    kill["t_s"],
                    color="black",
                    linestyle=":",
                    linewidth=1,
                    label="kill -9 relayd" if i == 0 and ax is rates else None,
                )
        if report.get("kills"):
            rates.legend(loc="upper right", fontsize="small")

        title = f"relay-bench {report.get('scenario', '?')}: {report.get('count', 0):,} messages"
        figures = []
        if report.get("accept_rate_per_s"):
            figures.append(f"accepted {report['accept_rate_per_s']:,.0f}/s")
        if report.get("elapsed_s"):
            figures.append(f"last receipt at {report['elapsed_s']:.1f} s")
        if "lost" in report:
            figures.append(f"lost {report['lost']}")
        if figures:
            title += " — " + ", ".join(figures)
        fig.suptitle(title, fontsize="medium")
        fig.tight_layout()
        out = Path(path)
        fig.savefig(out, format="png")
        return out
    finally:
        plt.close(fig)
