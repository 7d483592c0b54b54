"""What Linux says about a process and the machine (``/proc``), for the benchmarks."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from typing import Any

__all__ = ["cpu_s", "machine_info", "max_rss_mb", "usable_cores"]


def cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a live process (``/proc/PID/stat`` utime +
    stime), or None if it cannot be read (gone, not Linux)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            # The command name (field 2) may hold spaces and ')': split after the last ')'.
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def max_rss_mb(pid: int) -> float | None:
    """Peak resident set size of a live process in MB (``VmHWM`` of
    ``/proc/PID/status``, 1 MB = 2^20 bytes), or None if it cannot be read."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0  # the kernel writes kB
    except (OSError, ValueError, IndexError):
        return None
    return None


def usable_cores() -> list[int]:
    """The CPU numbers this process may run on."""
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return list(range(os.cpu_count() or 1))


def machine_info(cores: list[int] | None = None) -> dict[str, Any]:
    """CPU model, core counts, Python, platform and the event loop in use."""
    usable = usable_cores() if cores is None else cores
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        loop = f"uvloop {importlib.metadata.version('uvloop')}"
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - a dependency
        loop = "asyncio"
    return {
        "cpu": model,
        "cpus": os.cpu_count(),
        "cpus_usable": len(usable),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "loop": loop,
    }
