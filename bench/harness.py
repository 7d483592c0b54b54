"""The end-to-end benchmark harness behind ``relay-bench`` (issue 5).

Theory of operation
===================

A run starts the three carrier simulators (``relay-sim carrier``) and relayd
(``relayd run``) as real processes on 127.0.0.1, each on a free port it
reports through a ready file, with a temporary work directory holding relayd's
configuration (``conf/relayd.toml`` with the simulators' ports, ``data_dir``
in the work directory, metrics on port 0), its data, and every process's
output. This process drives relayd with the upstream load client
(:class:`simulators.upstream.UpstreamClient`, in-process on uvloop), waits for
every final receipt, stops everything (SIGTERM; the simulators then print
their accounting as JSON) and builds the report (``bench/README.md``).

Scenarios (:data:`SCENARIOS`):

* ``burst``: ``count`` messages as fast as relayd accepts them.
* ``sustained``: ``rate`` msg/s for ``duration_s``, paced by the client's
  token bucket.
* ``crash``: the burst, with relayd killed (SIGKILL) ``kills`` times at
  seeded random points of the acknowledged count, restarted each time on the
  same data directory and port; the client rebinds (a new *epoch*) and submits
  what was never acknowledged as new messages.
* ``faults``: the burst against simulators that disconnect, stall, throttle
  and answer errors.

Messages are spread over the destination prefixes whose routes in
``conf/relayd.toml`` put each carrier first (011 skt, 016 kt, 019 lgu), so all
three carriers carry the load.

Bounded: every wait has a deadline (``timeout_s`` for the run, fixed caps for
start-up and shutdown). Every child is recorded in :class:`Processes` the
moment it is spawned and killed on any exit path (:meth:`Processes.kill_all`
runs in a ``finally`` outside the event loop; SIGTERM to this process is
turned into the same path as Ctrl-C).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any, Final

from bench.proc import cpu_s, machine_info, max_rss_mb, usable_cores
from bench.report import timeline, verdict
from protocol.pdu import SubmitSm
from simulators.upstream import (
    DEFAULT_SOURCE_ADDR,
    BindError,
    LinkClosedError,
    UpstreamClient,
    make_pdu_factory,
)

__all__ = [
    "CARRIERS",
    "SCENARIOS",
    "HarnessError",
    "Options",
    "Processes",
    "run",
    "run_sync",
]

REPO: Final = Path(__file__).resolve().parents[1]
SHIPPED_CONFIG: Final = REPO / "conf" / "relayd.toml"
CARRIERS: Final = ("skt", "kt", "lgu")
SCENARIOS: Final = ("burst", "sustained", "crash", "faults", "demo")
# conf/relayd.toml routes: 011 → skt first, 016 → kt first, 019 → lgu first.
DEST_PREFIXES: Final = ("011", "016", "019")
# The shipped account (conf/relayd.toml): password "demo"; the default source
# address of the load client is one of its registered senders.
DEFAULT_ACCOUNT: Final = ("demo", "demo")

# Faults of the ``faults`` scenario, per simulator (relay-sim carrier flags):
# skt drops every connection every 2 s, kt stops reading for 0.5 s every 1.5 s,
# lgu throttles at 300 submits/s per bind and answers 2% with ESME_RTHROTTLED.
DEFAULT_FAULTS: Final[Mapping[str, Mapping[str, float]]] = {
    "skt": {"disconnect_every_s": 2.0},
    "kt": {"stall_every_s": 1.5, "stall_s": 0.5},
    "lgu": {"tps_per_bind": 300.0, "error_rate": 0.02},
}
# relayd's retry backoff in the faults scenario (seconds): the shipped 0.5..60 s
# would make a message throttled a few times wait minutes, which measures the
# backoff, not whether anything is lost.
FAULTS_RETRY: Final[Mapping[str, float]] = {"backoff_min_s": 0.1, "backoff_max_s": 2.0}

_START_TIMEOUT_S: Final = 60.0  # a process start, including relayd's recovery
_STOP_TIMEOUT_S: Final = 30.0  # SIGTERM → exit, before SIGKILL
_POLL_S: Final = 0.01
_PROGRESS_EVERY_S: Final = 0.25


class HarnessError(Exception):
    """The harness could not run the scenario (a process did not start, ...)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Options:
    """One run's settings; each is a ``relay-bench`` flag (``bench/cli.py``)."""

    scenario: str = "burst"
    count: int = 100_000
    """Messages to have acknowledged (crash: resubmits come on top)."""
    binds: int = 4
    """Upstream transceiver binds of the load client."""
    window: int = 256
    """Outstanding submit_sm per upstream bind."""
    rate: float | None = None
    """Paced submits per second (sustained); None = as fast as accepted."""
    duration_s: float = 0.0
    """Length of a sustained run (seconds); ``count`` = rate × duration."""
    kills: int = 0
    """SIGKILLs of relayd during a crash run."""
    seed: int = 1
    """Seeds the simulators and the kill points."""
    timeout_s: float = 600.0
    """Cap on the whole run: submits plus the wait for receipts (seconds)."""
    target: tuple[str, int] | None = None
    """Drive an already running relayd at HOST:PORT instead of starting one."""
    system_id: str = DEFAULT_ACCOUNT[0]
    password: str = DEFAULT_ACCOUNT[1]
    base_config: Path = SHIPPED_CONFIG
    """relayd configuration the run's configuration is derived from."""
    receipt_uniform_max_s: float = 0.1
    """Simulator receipt delay: uniform on [0, this] seconds."""
    sim_tps_per_bind: float = 0.0
    """Simulator TPS limit per bind (0 = off) unless a fault sets one."""
    faults: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    """Per simulator, fault flags (Faults field names → values)."""
    relayd_overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Per relayd config table, keys to override (e.g. ``{"retry": {...}}``)."""
    cpu_affinity: bool = False
    """Pin relayd to the first usable core and everything else to the others."""
    work_dir: Path | None = None
    """Where configuration, data and logs go; None = a new temporary directory,
    removed after a passing run."""
    progress: bool = False
    """Draw a progress line on stderr."""


# ============================================================================ processes


class Child:
    """One child process, its output in files of the work directory."""

    def __init__(self, name: str, argv: list[str], work: Path, ready_file: Path | None) -> None:
        self.name = name
        self.argv = argv
        self.ready_file = ready_file
        self.stdout_path = work / f"{name}.out"
        self.log_path = work / f"{name}.log"
        self.last_cpu_s: float | None = None
        self.last_rss_mb: float | None = None
        if ready_file is not None:
            ready_file.unlink(missing_ok=True)
        with self.stdout_path.open("wb") as out, self.log_path.open("wb") as err:
            # A session of its own: a Ctrl-C at the terminal reaches only this
            # process, which then stops the children in order (relayd first).
            self.popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                cwd=REPO,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    async def wait_ready(self, timeout_s: float = _START_TIMEOUT_S) -> dict[str, Any]:
        """The ready file's JSON, once the process has written it."""
        assert self.ready_file is not None
        deadline = time.monotonic() + timeout_s
        while not self.ready_file.exists():
            if not self.alive:
                raise HarnessError(
                    f"{self.name} exited with {self.popen.returncode} before it was ready:\n"
                    + self.log_tail()
                )
            if time.monotonic() > deadline:
                raise HarnessError(
                    f"{self.name} not ready after {timeout_s:.0f} s:\n" + self.log_tail()
                )
            await asyncio.sleep(_POLL_S)
        info: dict[str, Any] = json.loads(self.ready_file.read_text())
        return info

    def sample(self) -> None:
        """Record CPU seconds and peak RSS while the process is alive."""
        c, r = cpu_s(self.pid), max_rss_mb(self.pid)
        if c is not None:
            self.last_cpu_s = c
        if r is not None:
            self.last_rss_mb = r

    async def wait_exit(self, timeout_s: float) -> int | None:
        deadline = time.monotonic() + timeout_s
        while self.alive:
            if time.monotonic() > deadline:
                return None
            await asyncio.sleep(_POLL_S)
        return self.popen.returncode

    async def terminate(self, timeout_s: float = _STOP_TIMEOUT_S) -> int:
        """SIGTERM, wait up to ``timeout_s``, then SIGKILL. Returns the exit code."""
        if self.alive:
            self.sample()
            self.popen.send_signal(signal.SIGTERM)
            if await self.wait_exit(timeout_s) is None:
                await self.kill()
        return int(self.popen.returncode)

    async def kill(self) -> None:
        """SIGKILL (kill -9) and reap."""
        if self.alive:
            self.sample()
            self.popen.kill()
            await self.wait_exit(_STOP_TIMEOUT_S)

    def kill_nowait(self) -> None:
        # The last-resort path (outside any event loop): SIGKILL and reap.
        if self.popen.poll() is None:
            self.popen.kill()
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL is not refused
                pass


class Processes:
    """Every child a run starts, so that all of them can be killed on any exit path."""

    def __init__(self) -> None:
        self.children: list[Child] = []

    def spawn(
        self, name: str, argv: list[str], work: Path, *, ready_file: Path | None = None
    ) -> Child:
        child = Child(name, argv, work, ready_file)
        self.children.append(child)
        return child

    def kill_all(self) -> None:
        """SIGKILL and reap every child still running (idempotent)."""
        for child in self.children:
            child.kill_nowait()

    @property
    def pids(self) -> list[int]:
        return [c.pid for c in self.children]


# ============================================================================ the rig


def dump_toml(doc: Mapping[str, Any]) -> str:
    """relayd's configuration as TOML: top-level scalars, then ``[tables]``,
    then ``[[arrays of tables]]`` (the only shapes relayd/config.py reads)."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return str(v).lower()
        if isinstance(v, int | float):
            return repr(v)
        if isinstance(v, str | Path):
            return json.dumps(str(v), ensure_ascii=False)  # JSON strings are TOML strings
        if isinstance(v, list | tuple):
            return "[" + ", ".join(value(x) for x in v) + "]"
        raise TypeError(f"no TOML form for {v!r}")

    head: list[str] = []
    tables: list[str] = []
    arrays: list[str] = []
    for key, v in doc.items():
        if isinstance(v, Mapping):
            tables.append(f"\n[{key}]")
            tables.extend(f"{k} = {value(x)}" for k, x in v.items())
        elif isinstance(v, list) and v and all(isinstance(x, Mapping) for x in v):
            for item in v:
                arrays.append(f"\n[[{key}]]")
                arrays.extend(f"{k} = {value(x)}" for k, x in item.items())
        else:
            head.append(f"{key} = {value(v)}")
    return "\n".join([*head, *tables, *arrays]) + "\n"


class Rig:
    """Three carrier simulators and relayd, as processes, in one work directory."""

    def __init__(self, opts: Options, procs: Processes, work: Path) -> None:
        self.opts = opts
        self.procs = procs
        self.work = work
        self.sims: dict[str, Child] = {}
        self.sim_ports: dict[str, int] = {}
        self.sim_flags: dict[str, list[str]] = {}
        self.relayd: Child | None = None
        self.incarnations: list[Child] = []
        self.config_doc: dict[str, Any] = {}
        self.config_path = work / "relayd.toml"
        cores = usable_cores()
        self._relayd_cores = {cores[0]} if opts.cpu_affinity and len(cores) > 1 else None
        self._other_cores = set(cores[1:]) if self._relayd_cores else None

    def _pin(self, child: Child, cores: set[int] | None) -> None:
        if cores:
            with contextlib.suppress(OSError):  # exited already: nothing to pin
                os.sched_setaffinity(child.pid, cores)

    async def start_sims(self) -> None:
        for i, name in enumerate(CARRIERS):
            faults = dict(self.opts.faults.get(name, {}))
            tps = faults.pop("tps_per_bind", self.opts.sim_tps_per_bind)
            flags = [
                "--profile", name,
                "--listen", "127.0.0.1:0",
                "--seed", str(self.opts.seed * 10 + i),
                "--receipt-uniform-max-s", str(self.opts.receipt_uniform_max_s),
                "--tps-per-bind", str(tps),
            ]  # fmt: skip
            for key, v in sorted(faults.items()):
                flags += ["--" + key.replace("_", "-"), str(v)]
            self.sim_flags[name] = flags
            ready = self.work / f"sim-{name}.ready.json"
            argv = [sys.executable, "-m", "simulators.cli", "carrier", *flags, "--ready-file"]
            child = self.procs.spawn(
                f"sim-{name}", [*argv, str(ready)], self.work, ready_file=ready
            )
            self._pin(child, self._other_cores)
            self.sims[name] = child
        for name, child in self.sims.items():
            self.sim_ports[name] = int((await child.wait_ready())["port"])

    def write_config(self, smpp_port: int) -> None:
        """relayd's configuration for this run (module doc)."""
        with self.opts.base_config.open("rb") as f:
            doc = copy.deepcopy(tomllib.load(f))
        doc["data_dir"] = str(self.work / "data")
        doc["server"]["port"] = smpp_port
        doc["server"]["grace_s"] = 5.0
        doc["metrics"]["port"] = 0
        for c in doc["carriers"]:
            c["port"] = self.sim_ports[c["name"]]
        for acct in doc["accounts"]:
            if acct["system_id"] == self.opts.system_id:
                # The account's token bucket is a policy, not a capacity: off, so
                # the figure is relayd's throughput (the report shows it).
                acct["throughput_per_s"] = 0.0
        for table, keys in self.opts.relayd_overrides.items():
            doc[table].update(keys)
        self.config_doc = doc
        self.config_path.write_text(dump_toml(doc), encoding="utf-8")

    async def start_relayd(self) -> dict[str, Any]:
        """Start relayd (again) on the configuration; returns its ready info."""
        n = len(self.incarnations)
        ready = self.work / f"relayd-{n}.ready.json"
        argv = [sys.executable, "-m", "relayd", "run", "-c", str(self.config_path)]
        child = self.procs.spawn(
            f"relayd-{n}", [*argv, "--ready-file", str(ready)], self.work, ready_file=ready
        )
        self._pin(child, self._relayd_cores)
        self.relayd = child
        self.incarnations.append(child)
        return await child.wait_ready()

    async def kill_relayd(self) -> None:
        assert self.relayd is not None
        await self.relayd.kill()

    async def stop_relayd(self) -> int | None:
        if self.relayd is None:
            return None
        return await self.relayd.terminate()

    async def stop_sims(self) -> dict[str, dict[str, Any]]:
        """SIGTERM every simulator; their accounting JSON, by name."""
        for child in self.sims.values():
            if child.alive:
                child.popen.send_signal(signal.SIGTERM)
        out: dict[str, dict[str, Any]] = {}
        for name, child in self.sims.items():
            if await child.wait_exit(_STOP_TIMEOUT_S) is None:
                await child.kill()
                raise HarnessError(f"simulator {name} did not exit on SIGTERM")
            lines = child.stdout_path.read_text(errors="replace").strip().splitlines()
            if not lines or not lines[-1].startswith("{"):
                raise HarnessError(f"simulator {name} printed no accounting:\n{child.log_tail()}")
            out[name] = json.loads(lines[-1])
        return out

    def relayd_cpu_s(self) -> float | None:
        values = [c.last_cpu_s for c in self.incarnations if c.last_cpu_s is not None]
        return round(sum(values), 3) if values else None

    def relayd_max_rss_mb(self) -> float | None:
        values = [c.last_rss_mb for c in self.incarnations if c.last_rss_mb is not None]
        return round(max(values), 1) if values else None

    def relayd_log_problems(self) -> int:
        """Lines of relayd's logs at ERROR/CRITICAL level or starting a traceback."""
        n = 0
        for c in self.incarnations:
            for line in c.log_tail(10**9).splitlines():
                if " ERROR " in line or " CRITICAL " in line or line.startswith("Traceback"):
                    n += 1
        return n


# ============================================================================ load


def make_factory(registered_delivery: int = 1) -> Callable[[int], SubmitSm]:
    """Message ``i`` goes to prefix ``DEST_PREFIXES[i % 3]`` + 8 digits of ``i``:
    one recipient per message (the simulators count duplicates by content)."""
    makers = [
        make_pdu_factory(dest_prefix=p, registered_delivery=registered_delivery)
        for p in DEST_PREFIXES
    ]

    def make(i: int) -> SubmitSm:
        return makers[i % 3](i)

    return make


class Progress:
    """A one-line progress display on stderr (redrawn in place on a terminal,
    a line a second otherwise)."""

    def __init__(self, client: UpstreamClient, total: int, stream: IO[str]) -> None:
        self.client = client
        self.total = total
        self.stream = stream
        self.tty = stream.isatty()
        self._last = self._started = (time.monotonic(), 0)
        self._printed_at = 0.0

    def draw(self, *, final: bool = False) -> None:
        c = self.client.counters()
        now = time.monotonic()
        # The current accept rate while running; the whole run's on the last line.
        t_prev, acc_prev = self._started if final else self._last
        rate = (c["accepted"] - acc_prev) / (now - t_prev) if now > t_prev else 0.0
        self._last = (now, c["accepted"])
        done = min(1.0, c["receipts"] / self.total) if self.total else 1.0
        width = 24
        bar = "#" * int(done * width) + "." * (width - int(done * width))
        line = (
            f"[{bar}] submitted {c['submitted']:,}/{self.total:,}  accepted {c['accepted']:,}"
            f"  receipts {c['receipts']:,}  {rate:,.0f} msg/s"
        )
        if self.tty:
            self.stream.write("\r" + line.ljust(100) + ("\n" if final else ""))
        elif final or now - self._printed_at >= 1.0:
            self.stream.write(line + "\n")
            self._printed_at = now
        self.stream.flush()

    async def run(self) -> None:
        while True:
            self.draw()
            await asyncio.sleep(_PROGRESS_EVERY_S)


@contextlib.asynccontextmanager
async def _progress(client: UpstreamClient, total: int, enabled: bool) -> AsyncIterator[None]:
    if not enabled:
        yield
        return
    bar = Progress(client, total, sys.stderr)
    task = asyncio.get_running_loop().create_task(bar.run())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        bar.draw(final=True)


async def _reconnect(client: UpstreamClient, deadline: float) -> None:
    """Rebind after a restart; relayd is listening, but retry briefly anyway."""
    while True:
        try:
            await client.reconnect()
            return
        except (OSError, TimeoutError, LinkClosedError, BindError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


# ============================================================================ a run


@dataclass(slots=True)
class _State:
    errors: list[str] = field(default_factory=list)
    kills: list[dict[str, Any]] = field(default_factory=list)
    restarts: list[dict[str, Any]] = field(default_factory=list)
    relayd_exits: list[int | str] = field(default_factory=list)
    carriers: dict[str, dict[str, Any]] = field(default_factory=dict)


async def run(opts: Options, procs: Processes, work: Path) -> dict[str, Any]:
    """Run one scenario (module doc) and return its report (bench/README.md).

    Raises:
        HarnessError: a process did not start or stop as it should.
        BindError, OSError: the load client could not bind to relayd.
    """
    state = _State()
    rig = Rig(opts, procs, work)
    if opts.target is not None:
        host, port = opts.target
    else:
        await rig.start_sims()
        smpp_port = _free_port() if opts.scenario == "crash" else 0
        rig.write_config(smpp_port)
        host, port = "127.0.0.1", int((await rig.start_relayd())["smpp_port"])
    client = UpstreamClient(
        host,
        port,
        system_id=opts.system_id,
        password=opts.password,
        binds=opts.binds,
        window=opts.window,
        rate=opts.rate,
        response_timeout_s=30.0,
        # relayd answers ESME_RTHROTTLED when its WAL queue is full (style
        # guide §3.5): back off and resubmit, as an application would.
        retry_throttled=True,
    )
    make = make_factory()
    deadline = time.monotonic() + opts.timeout_s
    cpu0 = time.process_time()
    sims_cpu: dict[str, float | None] = {}
    await client.connect()
    try:
        async with _progress(client, opts.count, opts.progress):
            if opts.scenario == "crash":
                await _crash_loop(opts, rig, client, make, deadline, state)
            else:
                try:
                    await client.run(opts.count, make, deadline_s=opts.timeout_s)
                except TimeoutError:
                    state.errors.append(f"submits not done within {opts.timeout_s:.0f} s")
                except LinkClosedError as exc:
                    state.errors.append(f"every upstream bind closed: {exc}")
            if not await client.wait_receipts(max(1.0, deadline - time.monotonic())):
                state.errors.append(
                    f"receipts still missing after the {opts.timeout_s:.0f} s run cap"
                )
    finally:
        client_cpu = time.process_time() - cpu0
        try:
            # Bounded: unbinding waits for responses still owed (Ctrl-C mid-run).
            async with asyncio.timeout(_STOP_TIMEOUT_S):
                await client.close()
        except TimeoutError:
            state.errors.append(f"the load client did not close within {_STOP_TIMEOUT_S:.0f} s")
        for name, child in rig.sims.items():
            sims_cpu[name] = cpu_s(child.pid)
    if opts.target is None:
        rc = await rig.stop_relayd()
        state.relayd_exits.append("" if rc is None else rc)
        if rc != 0:
            tail = rig.relayd.log_tail(1000) if rig.relayd is not None else ""
            state.errors.append(f"relayd exited with {rc} on SIGTERM; its log ends:\n{tail}")
        state.carriers = await rig.stop_sims()
    return _build_report(opts, rig, client, state, client_cpu, sims_cpu)


async def _crash_loop(
    opts: Options,
    rig: Rig,
    client: UpstreamClient,
    make: Callable[[int], SubmitSm],
    deadline: float,
    state: _State,
) -> None:
    """Submit until ``count`` messages are acknowledged, killing relayd at
    seeded random acknowledged counts and restarting it after each kill."""
    n = opts.count
    rng = random.Random(opts.seed)
    points = sorted(rng.randint(max(1, n // 20), max(1, n * 19 // 20)) for _ in range(opts.kills))
    offset = 0  # message numbers used so far: resubmits are new messages
    while client.counters()["accepted"] < n:
        if time.monotonic() > deadline:
            state.errors.append(f"crash run not done within {opts.timeout_s:.0f} s")
            return
        remaining = n - client.counters()["accepted"]
        base = offset
        offset += remaining
        task = asyncio.get_running_loop().create_task(
            client.run(remaining, _shifted(make, base), deadline_s=deadline - time.monotonic())
        )
        killed = False
        while not task.done():
            accepted = client.counters()["accepted"]
            if points and accepted >= points[0]:
                points.pop(0)
                t_kill = time.monotonic()
                await rig.kill_relayd()
                state.kills.append({"at_accepted": accepted, "t_monotonic": t_kill})
                killed = True
                break
            await asyncio.sleep(0.002)
        try:
            async with asyncio.timeout(60):
                await task
        except (LinkClosedError, TimeoutError) as exc:
            if not killed:
                state.errors.append(f"the submit run ended: {exc!r}")
                return
        if killed:
            t0 = time.monotonic()
            ready = await rig.start_relayd()
            await _reconnect(client, deadline)
            state.restarts.append(
                {
                    "recovery_s": ready.get("recovery_s"),
                    "restart_s": round(time.monotonic() - t0, 3),
                    **{k: v for k, v in ready.items() if k not in ("pid", "smpp_port")},
                }
            )
            # At least some progress between kills, whatever the drawn points.
            floor = client.counters()["accepted"] + max(1, n // (20 * max(1, opts.kills)))
            points = [max(p, floor) for p in points if p < n]
    if points:
        state.errors.append(f"only {len(state.kills)} of {opts.kills} kills happened")


def _shifted(make: Callable[[int], SubmitSm], base: int) -> Callable[[int], SubmitSm]:
    def shifted(i: int) -> SubmitSm:
        return make(base + i)

    return shifted


def _free_port() -> int:
    # relayd must come back on the same port after a kill: pick one now.
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _build_report(
    opts: Options,
    rig: Rig,
    client: UpstreamClient,
    state: _State,
    client_cpu_s: float,
    sims_cpu_s: Mapping[str, float | None],
) -> dict[str, Any]:
    s = client.summary()
    sub_at, resp_at, rcpt_at, accepted = client.message_times()
    starts = [t for t in sub_at if t is not None]
    t0 = min(starts) if starts else None
    series = timeline(sub_at, resp_at, rcpt_at, accepted, t0=t0)
    carriers = state.carriers
    carrier_dups = sum(int(a["duplicates"]) for a in carriers.values()) if carriers else None
    kills = [
        {"at_accepted": k["at_accepted"], "t_s": round(k["t_monotonic"] - t0, 3) if t0 else None}
        for k in state.kills
    ]
    report: dict[str, Any] = {
        "scenario": opts.scenario,
        "ok": False,
        "failures": [],
        "count": opts.count,
        "submitted": s["submitted"],
        "accepted": s["accepted"],
        "rejected_by_status": s["rejected_by_status"],
        "retries_throttled": s["retries"],
        "receipts": s["receipts"],
        "receipts_by_stat": s["receipts_by_stat"],
        "lost": s["missing_receipts"],
        "duplicate_receipts": s["duplicate_receipts"],
        "redelivered_after_crash": s["redelivered_receipts"],
        "unknown_receipts": s["unknown_receipts"],
        "carrier_duplicates": carrier_dups,
        "accept_rate_per_s": s["accept_rate_per_s"],
        "e2e_rate_per_s": s["receipt_rate_per_s"],
        "elapsed_s": round(s["receipt_span_s"] or s["submit_span_s"], 3),
        "accept_span_s": round(s["submit_span_s"], 3),
        "submit_resp_ms": s["submit_resp_ms"],
        "receipt_ms": s["receipt_ms"],
        "relayd_cpu_s": rig.relayd_cpu_s(),
        "relayd_max_rss_mb": rig.relayd_max_rss_mb(),
        "relayd_log_problems": rig.relayd_log_problems(),
        "relayd_exits": state.relayd_exits,
        "client_cpu_s": round(client_cpu_s, 3),
        "simulators_cpu_s": {
            k: (None if v is None else round(v, 3)) for k, v in sims_cpu_s.items()
        },
        "machine": _machine(),
        "config": _config(opts, rig, client),
        "carriers": {name: _carrier_summary(a) for name, a in carriers.items()},
        "errors": state.errors,
        "timeseries": series,
    }
    if opts.scenario == "sustained":
        report.update(_sustained_figures(opts, s, series))
    if opts.scenario == "crash":
        report["kills_requested"] = opts.kills
        report["kills"] = kills
        report["restarts"] = state.restarts
        report["unacknowledged_receipted"] = s["unknown_receipts"]
    failures = verdict(report)
    report["failures"] = failures
    report["ok"] = not failures
    return report


def _sustained_figures(
    opts: Options, s: Mapping[str, Any], series: Mapping[str, list[Any]]
) -> dict[str, Any]:
    assert opts.rate is not None
    span = s["submit_span_s"]
    achieved = s["submitted"] / span if span > 0 else 0.0
    # Whole seconds of the submit phase (a last, partial second would look slow).
    full = series["submitted"][: int(span)]
    slow = sum(1 for n in full if n < 0.95 * opts.rate)
    p99s = [p for p in series["submit_resp_p99_ms"] if p is not None]
    return {
        "rate_target_per_s": opts.rate,
        "duration_s": opts.duration_s,
        "achieved_rate_per_s": round(achieved, 1),
        # Kept up: the paced submits went out at (nearly) the asked rate, i.e.
        # relayd's acknowledgements never held the client's windows full.
        "kept_up": achieved >= 0.98 * opts.rate and slow == 0,
        "seconds_below_95pct_rate": slow,
        "worst_second_submit_resp_p99_ms": max(p99s) if p99s else None,
    }


def _carrier_summary(a: Mapping[str, Any]) -> dict[str, Any]:
    keys = (
        "binds",
        "submits_received",
        "submits_accepted",
        "unique_messages",
        "duplicates",
        "receipts_sent",
        "receipts_resent",
        "receipts_acknowledged",
        "receipts_pending",
        "throttled",
        "errors_injected",
        "disconnects_injected",
        "stalls_injected",
    )
    return {k: a.get(k) for k in keys}


def _machine() -> dict[str, Any]:
    m = machine_info()
    return {
        "cores": m["cpus"],
        "cores_usable": m["cpus_usable"],
        "cpu": m["cpu"],
        "python": m["python"],
        "implementation": m["implementation"],
        "event_loop": m["loop"],
        "platform": m["platform"],
    }


def _config(opts: Options, rig: Rig, client: UpstreamClient) -> dict[str, Any]:
    doc = rig.config_doc
    relayd: dict[str, Any] | None = None
    if doc:
        acct = next(
            (a for a in doc["accounts"] if a["system_id"] == opts.system_id), {"system_id": None}
        )
        relayd = {
            "base_config": str(opts.base_config),
            "config_path": str(rig.config_path),
            "data_dir": doc["data_dir"],
            "server": {k: doc["server"][k] for k in ("window", "receipt_window")},
            "wal": dict(doc["wal"]),
            "store": {"checkpoint_interval_s": doc["store"]["checkpoint_interval_s"]},
            "retry": dict(doc["retry"]),
            "account": {
                "system_id": acct["system_id"],
                "throughput_per_s": acct.get("throughput_per_s"),
                "receipt_hold_max": acct.get("receipt_hold_max"),
            },
            "carriers": [
                {k: c.get(k) for k in ("name", "binds", "window", "max_tps", "bind_type")}
                for c in doc["carriers"]
            ],
            "routes": [
                {"prefix": r.get("prefix", ""), "carriers": r["carriers"]}
                for r in doc.get("routes", [])
            ],
        }
    return {
        "count": opts.count,
        "binds": opts.binds,
        "window": opts.window,
        "rate": opts.rate,
        "duration_s": opts.duration_s,
        "kills": opts.kills,
        "seed": opts.seed,
        "timeout_s": opts.timeout_s,
        "target": None if opts.target is None else f"{opts.target[0]}:{opts.target[1]}",
        "cpu_affinity": opts.cpu_affinity,
        "client": {
            "system_id": opts.system_id,
            "bind_mode": client.bind_mode,
            "response_timeout_s": client.response_timeout_s,
            "retry_throttled": client.retry_throttled,
            "dest_prefixes": list(DEST_PREFIXES),
            "source_addr": DEFAULT_SOURCE_ADDR,
        },
        "simulators": {
            "receipt_uniform_max_s": opts.receipt_uniform_max_s,
            "tps_per_bind": opts.sim_tps_per_bind,
            "faults": {k: dict(v) for k, v in opts.faults.items()},
            "flags": rig.sim_flags,
        },
        "relayd": relayd,
    }


# ============================================================================ entry


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM to this process takes the Ctrl-C path: children are killed."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_sync(opts: Options) -> tuple[dict[str, Any], Path]:
    """Run a scenario on uvloop in this thread; every child is dead on return
    (or on any exception, Ctrl-C included).

    Returns:
        (report, work directory). The work directory is removed after a
        passing run unless ``opts.work_dir`` was given.
    """
    import uvloop

    from simulators.link import tune_gc

    own_dir = opts.work_dir is None
    work = Path(tempfile.mkdtemp(prefix="relay-bench-")) if own_dir else Path(opts.work_dir or "")
    work.mkdir(parents=True, exist_ok=True)
    procs = Processes()
    if opts.cpu_affinity:
        cores = usable_cores()
        if len(cores) > 1:
            os.sched_setaffinity(0, set(cores[1:]))
    tune_gc()  # the load client holds per-message arrays (simulators/link.py)
    report: dict[str, Any] | None = None
    try:
        with _sigterm_as_interrupt():
            report = uvloop.run(run(opts, procs, work))
        return report, work
    finally:
        procs.kill_all()
        if own_dir and report is not None and report["ok"]:
            shutil.rmtree(work, ignore_errors=True)


def sustained_count(rate: float, duration_s: float) -> int:
    """Messages of a sustained run: rate × duration, at least one."""
    return max(1, math.ceil(rate * duration_s))
