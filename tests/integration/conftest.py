"""Fixtures for relayd integration tests (style guide §8.4).

Everything runs on real loopback sockets, port 0: three carrier simulators
(skt, kt, lgu) in-process with fast receipts, a relayd configuration written
to ``tmp_path`` from the shipped ``conf/relayd.toml`` (so it cannot drift from
the documented schema), and the :class:`relayd.main.Daemon` started in-process.
A loop guard fails any test whose code reached the event loop's exception
handler.

Helpers for the tests live here too: a receipt reader that does not use
relayd's own parser (an independent oracle), a polling ``wait_for``, and a
free-port finder for the subprocess crash test.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import socket
import tomllib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from protocol.constants import TAG_KR_RESULT_CODE, Tag
from protocol.pdu import DeliverSm
from relayd.passwords import hash_password
from simulators.carrier import CarrierSimulator, Faults
from simulators.profiles import load_profile

REPO = Path(__file__).resolve().parents[2]
SHIPPED_CONFIG = REPO / "conf" / "relayd.toml"
CARRIERS = ("skt", "kt", "lgu")

# Receipts in tests: median 10 ms, p99 50 ms; every ordinary destination is
# delivered (codes come from the reserved 0100000CCCC range when a test wants one).
FAST_RECEIPTS: dict[str, Any] = {"receipt_median_s": 0.01, "receipt_p99_s": 0.05}
ALL_DELIVERED: dict[str, Any] = {"result_mix_bp": {1000: 10_000}}

# The shipped demo account: password "demo", senders from conf/relayd.toml.
DEMO = ("demo", "demo")
DEMO_SENDER = "0212345678"
# A second tenant, with a cheap scrypt cost (the loader accepts any N >= 2).
BANK = ("bank", "bankpw")
BANK_SENDER = "16001234"
BANK_HASH = hash_password(BANK[1], n=2**10, r=8, p=1)


# ----------------------------------------------------------------------------- loop guard


@pytest_asyncio.fixture
async def loop_guard() -> AsyncIterator[list[dict[str, Any]]]:
    """Fail the test if anything reached the event loop's exception handler
    (an exception in a protocol callback, a never-retrieved task exception)."""
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    try:
        yield errors
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(previous)
    if errors:
        pytest.fail(f"unexpected exceptions in asynchronous code: {errors!r}")


# ----------------------------------------------------------------------------- TOML


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str | Path):
        return json.dumps(str(value))  # a JSON string is a valid TOML basic string
    if isinstance(value, list | tuple | frozenset | set):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def dump_toml(doc: Mapping[str, Any]) -> str:
    """The small TOML subset relayd's configuration uses: scalars and lists at
    the top level, ``[tables]`` of scalars and ``[[arrays of tables]]``."""
    lines: list[str] = []
    tables: list[tuple[str, Mapping[str, Any]]] = []
    arrays: list[tuple[str, list[Mapping[str, Any]]]] = []
    for key, value in doc.items():
        if isinstance(value, Mapping):
            tables.append((key, value))
        elif isinstance(value, list) and value and isinstance(value[0], Mapping):
            arrays.append((key, value))
        else:
            lines.append(f"{key} = {_toml_value(value)}")
    for key, table in tables:
        lines.append(f"\n[{key}]")
        lines.extend(f"{k} = {_toml_value(v)}" for k, v in table.items())
    for key, items in arrays:
        for item in items:
            lines.append(f"\n[[{key}]]")
            lines.extend(f"{k} = {_toml_value(v)}" for k, v in item.items())
    return "\n".join(lines) + "\n"


def relayd_config(
    data_dir: Path,
    carrier_ports: Mapping[str, int],
    *,
    smpp_port: int = 0,
    server: Mapping[str, Any] | None = None,
    wal: Mapping[str, Any] | None = None,
    store: Mapping[str, Any] | None = None,
    retry: Mapping[str, Any] | None = None,
    admin: Mapping[str, Any] | None = None,
    carriers: Mapping[str, Mapping[str, Any]] | None = None,
    all_carriers: Mapping[str, Any] | None = None,
    accounts: Mapping[str, Mapping[str, Any]] | None = None,
    routes: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """conf/relayd.toml with test values: ports 0 (server, metrics), the
    simulators' ports, short timeouts, ``data_dir``, and the second account."""
    with SHIPPED_CONFIG.open("rb") as f:
        doc = copy.deepcopy(tomllib.load(f))
    doc["data_dir"] = str(data_dir)
    doc["server"].update(
        {
            "port": smpp_port,
            "response_timeout_s": 5.0,
            "grace_s": 1.0,
            "session_init_timeout_s": 10.0,
            **(server or {}),
        }
    )
    doc["metrics"].update(port=0)
    doc["admin"].update(admin or {})
    doc["wal"].update({"segment_bytes": 1 << 20, **(wal or {})})
    doc["store"].update({"checkpoint_interval_s": 1.0, **(store or {})})
    doc["retry"].update(
        {"max_attempts": 5, "backoff_min_s": 0.05, "backoff_max_s": 0.2, **(retry or {})}
    )
    for acct in doc["accounts"]:
        acct.update((accounts or {}).get(acct["system_id"], {}))
    bank = {
        "system_id": BANK[0],
        "password_hash": BANK_HASH,
        "bind_types": ["transmitter", "receiver", "transceiver"],
        "max_binds": 8,
        "throughput_per_s": 10000.0,
        "senders": [BANK_SENDER],
        "account_type": "enterprise",
        "receipt_hold_max": 100000,
    }
    bank.update((accounts or {}).get(BANK[0], {}))
    doc["accounts"].append(bank)
    for c in doc["carriers"]:
        c.update(
            port=carrier_ports[c["name"]],
            response_timeout_s=2.0,
            reconnect_min_s=0.05,
            reconnect_max_s=0.5,
            enquire_link_interval_s=5.0,
        )
        c.update(all_carriers or {})
        c.update((carriers or {}).get(c["name"], {}))
    if routes is not None:
        doc["routes"] = routes
    return doc


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1 (for a process we
    restart on the same port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def closed_port() -> int:
    """A port with nothing listening (a carrier that is down)."""
    return free_port()


# ----------------------------------------------------------------------------- carriers


class CrashableCarrier(CarrierSimulator):
    """A carrier simulator that can go down and come back on the same port
    with its state (held receipts, message store) intact — an SMSC outage,
    not an SMSC that forgets what it accepted."""

    async def crash(self) -> None:
        """Stop listening and drop every connection at once (no unbind)."""
        server = self._server
        assert server is not None
        server.close()
        for conn in list(self._conns):
            conn.link.abort()
        await server.wait_closed()

    async def revive(self) -> None:
        """Listen again on the same port."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._new_link, self.host, self.port, reuse_address=True, backlog=1024
        )


async def start_carrier(
    name: str, *, faults: Faults | None = None, seed: int = 0, port: int = 0, **overrides: Any
) -> CrashableCarrier:
    sim = CrashableCarrier(
        load_profile(name, **{**FAST_RECEIPTS, **ALL_DELIVERED, **overrides}),
        seed=seed,
        faults=faults or Faults(),
        port=port,
    )
    await sim.start()
    return sim


# ----------------------------------------------------------------------------- the rig


@dataclass
class Rig:
    """Three carrier simulators and an in-process relayd between them and the tests."""

    tmp: Path
    sims: dict[str, CrashableCarrier]
    config_path: Path
    config_doc: dict[str, Any]
    daemon: Any = None

    @property
    def port(self) -> int:
        return int(self.daemon.ready["smpp_port"])

    @property
    def metrics_port(self) -> int:
        return int(self.daemon.ready["metrics_port"])

    @property
    def admin_url(self) -> str:
        """Where relayctl finds this relayd's admin endpoint."""
        return f"http://127.0.0.1:{self.daemon.ready['admin_port']}"

    @property
    def relay(self) -> Any:
        return self.daemon.relay

    @property
    def data_dir(self) -> Path:
        return Path(self.config_doc["data_dir"])

    def write_config(self) -> None:
        self.config_path.write_text(dump_toml(self.config_doc))

    async def start(self) -> None:
        from relayd.config import load_config
        from relayd.main import Daemon

        config = load_config(self.config_path)
        self.daemon = Daemon(config, str(self.config_path))
        await self.daemon.start()

    async def stop(self) -> None:
        if self.daemon is not None:
            daemon, self.daemon = self.daemon, None
            await daemon.stop()

    async def restart(self) -> None:
        """Stop relayd cleanly and start it again on the same data dir and port."""
        port = self.port
        await self.stop()
        self.config_doc["server"]["port"] = port
        self.write_config()
        await self.start()

    def accounting(self) -> dict[str, dict[str, Any]]:
        return {name: sim.accounting() for name, sim in self.sims.items()}

    def carrier_total(self, key: str) -> int:
        return sum(int(a[key]) for a in self.accounting().values())

    async def wait_carriers_bound(
        self, names: tuple[str, ...] = CARRIERS, timeout_s: float = 5.0
    ) -> None:
        """Until every bind of the named carriers is bound (relayd's view)."""

        def ready() -> bool:
            pool = self.daemon.pool
            return all(all(b.bound for b in pool.carriers[n].binds) for n in names)

        await wait_for(ready, timeout_s, f"carrier binds of {names} up")

    async def close(self) -> None:
        await self.stop()
        for sim in self.sims.values():
            await sim.stop(grace_s=0.5)


RigFactory = Callable[..., Awaitable[Rig]]


@pytest_asyncio.fixture
async def make_rig(loop_guard: list[dict[str, Any]], tmp_path: Path) -> AsyncIterator[RigFactory]:
    """Factory: ``await make_rig(sim_overrides={...}, faults={...}, down=(...),
    **relayd_config options)`` → simulators started (those in ``down`` get a
    port with nothing listening), relayd configured and started. Everything is
    stopped at teardown."""
    rigs: list[Rig] = []
    orphans: list[dict[str, CrashableCarrier]] = []

    async def make(
        *,
        sim_overrides: Mapping[str, Mapping[str, Any]] | None = None,
        faults: Mapping[str, Faults] | None = None,
        down: tuple[str, ...] = (),
        start: bool = True,
        wait_bound: bool = True,
        **config: Any,
    ) -> Rig:
        sims: dict[str, CrashableCarrier] = {}
        ports: dict[str, int] = {}
        orphans.append(sims)  # stopped at teardown even if the rig is never built
        for name in CARRIERS:
            if name in down:
                ports[name] = closed_port()
                continue
            sims[name] = await start_carrier(
                name, faults=(faults or {}).get(name), **(sim_overrides or {}).get(name, {})
            )
            ports[name] = sims[name].port
        directory = tmp_path / f"rig{len(rigs)}"
        directory.mkdir()
        doc = relayd_config(directory / "data", ports, **config)
        rig = Rig(directory, sims, directory / "relayd.toml", doc)
        orphans.remove(sims)
        rigs.append(rig)
        rig.write_config()
        if start:
            await rig.start()
            if wait_bound:
                up = tuple(n for n in CARRIERS if n not in down and not _refuses(faults, n))
                await rig.wait_carriers_bound(up)
        return rig

    yield make
    # Teardown is bounded too: a stuck shutdown fails the test instead of hanging CI.
    async with asyncio.timeout(60):
        for rig in rigs:
            await rig.close()
        for sims in orphans:
            for sim in sims.values():
                await sim.stop(grace_s=0.5)


def _refuses(faults: Mapping[str, Faults] | None, name: str) -> bool:
    f = (faults or {}).get(name)
    return f is not None and f.refuse_binds != 0


@pytest_asyncio.fixture
async def rig(make_rig: RigFactory) -> Rig:
    """The default rig: three healthy carriers, relayd with the test configuration."""
    return await make_rig()


# ----------------------------------------------------------------------------- helpers


async def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll ``predicate`` every 10 ms; fail the test after ``timeout_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        if loop.time() > deadline:
            pytest.fail(f"timed out after {timeout_s}s waiting for: {what}")
        await asyncio.sleep(0.01)


_RECEIPT_RE = re.compile(rb"id:(\S+) .*stat:(\S+) err:(\S+)")


@dataclass(frozen=True)
class UpReceipt:
    """A receipt as an upstream app sees it, read without relayd's parser."""

    text_id: str
    tlv_id: str | None
    stat: str
    err: str
    state: int | None
    kr_code: int | None
    esm_class: int
    source_addr: str
    destination_addr: str

    @property
    def message_id(self) -> str:
        return self.tlv_id or self.text_id


def read_up_receipt(pdu: DeliverSm) -> UpReceipt:
    m = _RECEIPT_RE.search(pdu.short_message)
    assert m is not None, f"not an Appendix B receipt text: {pdu.short_message!r}"
    rid = pdu.tlv(Tag.receipted_message_id)
    if isinstance(rid, bytes):
        rid = rid.rstrip(b"\x00").decode("ascii")
    state = pdu.tlv(Tag.message_state)
    if isinstance(state, bytes):
        state = state[0]
    code = pdu.tlv(TAG_KR_RESULT_CODE)
    if isinstance(code, bytes):
        code = int.from_bytes(code, "big")
    return UpReceipt(
        text_id=m.group(1).decode("ascii"),
        tlv_id=rid,
        stat=m.group(2).decode("ascii"),
        err=m.group(3).decode("ascii"),
        state=state,
        kr_code=code,
        esm_class=pdu.esm_class,
        source_addr=pdu.source_addr,
        destination_addr=pdu.destination_addr,
    )


# ----------------------------------------------------------------------------- event loop


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Any]:
    """Run the in-process tests on the standard asyncio loop and on uvloop, the
    loop ``relayd run`` uses in production (a test may narrow this with
    ``@pytest.mark.asyncio(loop_factories=[...])``)."""
    import uvloop

    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
