"""The upstream load client (simulators/upstream.py) over real loopback sockets.

Most tests run against ``MiniSmsc``, a deliberately small SMSC built here on
``SmppLink(Role.SMSC)``: it can hold responses (to fill windows), throttle,
answer with kt/lgu-style ids, send the receipt before the response or on
another bind, and counts what it saw. The required integration test runs the
client against the real carrier simulator (``simulators.carrier``).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from hypothesis import given
from hypothesis import strategies as st

from protocol.config import SessionConfig
from protocol.constants import CommandStatus, EsmClass, MessageState
from protocol.events import (
    BindRequested,
    Bound,
    ConnectionClosed,
    Event,
    RequestReceived,
    ResponseReceived,
    UnbindReceived,
)
from protocol.msgid import AS_IS, HEX_RESP_DEC_RECEIPT, policy_from_name
from protocol.pdu import DeliverSm, SubmitSm
from protocol.receipt import Receipt, build_receipt_pdu, parse_receipt
from protocol.session import Role, SessionState
from simulators.carrier import CarrierSimulator
from simulators.link import SmppLink
from simulators.profiles import DEFAULT_ACCOUNTS
from simulators.upstream import (
    BindError,
    LinkClosedError,
    UpstreamClient,
    main,
    make_pdu_factory,
    read_receipt,
)

SYSTEM_ID = "upstream"
PASSWORD = "secret"
CARRIER_ACCOUNT = "relayd"
CARRIER_PASSWORD = DEFAULT_ACCOUNTS[CARRIER_ACCOUNT]

# ============================================================================ fixtures


@dataclass
class MiniSmsc:
    """A minimal SMSC for the client's tests (not the carrier simulator).

    Attributes (knobs):
        id_style: ``dec`` (1, 2...), ``kt`` (hex in the resp, decimal in the
            receipt), ``lgu`` (lowercase UUID in the resp, uppercase in the receipt).
        receipt_on: ``same`` (the submitting link) or ``rx`` (round-robin over
            the receiver/transceiver links).
        receipt_first: write the receipt before the submit_sm_resp.
        hold_s: answer submits in batches after this delay (fills windows).
        throttle_every: answer every n-th submit with ESME_RTHROTTLED (0 = never).
        mo_every: after every n-th submit, also send an MO deliver_sm (0 = never).
    """

    id_style: str = "dec"
    receipt_on: str = "same"
    receipt_first: bool = False
    hold_s: float = 0.0
    throttle_every: int = 0
    mo_every: int = 0
    reach_submits: int = 0  # set `reached` when this many submits arrived
    reached: asyncio.Event = field(default_factory=asyncio.Event)
    port: int = 0
    # accounting
    submits: int = 0
    unique: set[tuple[str, str, bytes]] = field(default_factory=set)
    duplicates: int = 0
    throttled: int = 0
    receipts_sent: int = 0
    receipts_acked: int = 0
    mo_sent: int = 0
    unbinds: int = 0
    binds_refused: int = 0
    receipts_by_link: dict[str, int] = field(default_factory=dict)
    max_outstanding: dict[str, int] = field(default_factory=dict)
    arrivals: list[float] = field(default_factory=list)
    close_reasons: list[str] = field(default_factory=list)
    links: list[SmppLink] = field(default_factory=list)
    _outstanding: dict[str, int] = field(default_factory=dict)
    _held: dict[str, list[tuple[SubmitSm, str, str]]] = field(default_factory=dict)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1_000_000))
    _rr: Iterator[int] = field(default_factory=itertools.count)
    _server: asyncio.Server | None = None
    _names: Iterator[int] = field(default_factory=itertools.count)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        config = SessionConfig(window_size=100_000, system_id="MINI")

        def factory() -> SmppLink:
            link = SmppLink(config, Role.SMSC, self.on_event, name=f"smsc{next(self._names)}")
            self.links.append(link)
            return link

        self._server = await loop.create_server(factory, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for link in self.links:
            link.abort()
        for link in self.links:
            await link.closed.wait()
        await self._server.wait_closed()

    # ------------------------------------------------------------------ events

    def on_event(self, link: SmppLink, event: Event) -> None:
        match event:
            case BindRequested(request):
                ok = request.system_id == SYSTEM_ID and request.password == PASSWORD
                if not ok:
                    self.binds_refused += 1
                link.respond(request, 0 if ok else CommandStatus.ESME_RINVPASWD)
            case Bound():
                pass
            case RequestReceived(request) if isinstance(request, SubmitSm):
                self.on_submit(link, request)
            case ResponseReceived(request, _) if isinstance(request, DeliverSm):
                if request.esm_class & EsmClass.SMSC_DELIVERY_RECEIPT:
                    self.receipts_acked += 1
            case UnbindReceived():
                self.unbinds += 1
            case ConnectionClosed(reason, _, _):
                self.close_reasons.append(reason.value)
            case _:
                pass

    def on_submit(self, link: SmppLink, req: SubmitSm) -> None:
        loop = asyncio.get_running_loop()
        self.submits += 1
        self.arrivals.append(loop.time())
        if self.submits == self.reach_submits:
            self.reached.set()
        name = link.name
        out = self._outstanding[name] = self._outstanding.get(name, 0) + 1
        self.max_outstanding[name] = max(self.max_outstanding.get(name, 0), out)
        if self.throttle_every and self.submits % self.throttle_every == 0:
            self.throttled += 1
            self._answer(link, req, "", "", status=CommandStatus.ESME_RTHROTTLED)
            return
        key = (req.source_addr, req.destination_addr, bytes(req.short_message))
        if key in self.unique:
            self.duplicates += 1
        self.unique.add(key)
        n = next(self._ids)
        if self.id_style == "kt":
            resp_id, receipt_id = f"{n:X}", str(n)
        elif self.id_style == "lgu":
            u = uuid.UUID(int=n)
            resp_id, receipt_id = str(u), str(u).upper()
        else:
            resp_id = receipt_id = str(n)
        if self.hold_s:
            held = self._held.setdefault(name, [])
            if not held:
                loop.call_later(self.hold_s, self._release, link)
            held.append((req, resp_id, receipt_id))
        else:
            self._answer(link, req, resp_id, receipt_id)
        if self.mo_every and self.submits % self.mo_every == 0:
            link.send_request(
                DeliverSm(
                    source_addr=req.destination_addr,
                    destination_addr=req.source_addr,
                    short_message=b"MO reply",
                )
            )
            self.mo_sent += 1

    def _release(self, link: SmppLink) -> None:
        for req, resp_id, receipt_id in self._held.pop(link.name, []):
            self._answer(link, req, resp_id, receipt_id)

    def _answer(
        self, link: SmppLink, req: SubmitSm, resp_id: str, receipt_id: str, status: int = 0
    ) -> None:
        if link.session.state is SessionState.CLOSED:
            return
        self._outstanding[link.name] -= 1
        if status:
            link.respond(req, status)
            return
        wants = req.registered_delivery & 3 == 1
        if wants and self.receipt_first:
            self._send_receipt(link, req, receipt_id)
        link.respond(req, 0, message_id=resp_id)
        if wants and not self.receipt_first:
            self._send_receipt(link, req, receipt_id)

    def _send_receipt(self, link: SmppLink, req: SubmitSm, receipt_id: str) -> None:
        target = link
        if self.receipt_on == "rx":
            rx = [
                lk
                for lk in self.links
                if lk.session.state in (SessionState.BOUND_RX, SessionState.BOUND_TRX)
            ]
            target = rx[next(self._rr) % len(rx)]
        receipt = Receipt(
            message_id=receipt_id,
            submitted=1,
            delivered=1,
            submit_date="2611282301",
            done_date="2611282301",
            message_state=MessageState.DELIVERED,
            result_code=1000,
        )
        target.send_request(
            build_receipt_pdu(
                receipt, source_addr=req.destination_addr, destination_addr=req.source_addr
            )
        )
        self.receipts_sent += 1
        self.receipts_by_link[target.name] = self.receipts_by_link.get(target.name, 0) + 1


@pytest_asyncio.fixture
async def smsc() -> AsyncIterator[MiniSmsc]:
    server = MiniSmsc()
    await server.start()
    yield server
    await server.stop()


def client_for(server: MiniSmsc, **kwargs: Any) -> UpstreamClient:
    kwargs.setdefault("system_id", SYSTEM_ID)
    kwargs.setdefault("password", PASSWORD)
    return UpstreamClient("127.0.0.1", server.port, **kwargs)


async def burst(
    client: UpstreamClient, count: int, *, receipt_wait_s: float = 10.0
) -> dict[str, Any]:
    await client.connect()
    try:
        await client.run(count)
        if receipt_wait_s:
            assert await client.wait_receipts(receipt_wait_s), client.summary()
    finally:
        await client.close()
    return client.summary()


# ============================================================================ tests


@pytest.mark.asyncio
async def test_burst_gets_every_response_and_receipt(
    smsc: MiniSmsc, loop_guard: list[dict[str, Any]]
) -> None:
    """A pipelined burst on two transceivers: every message accepted once, every
    receipt back, answered, and correlated."""
    async with asyncio.timeout(20):
        summary = await burst(client_for(smsc, binds=2, window=50), 3000)
    assert summary["submitted"] == summary["accepted"] == 3000
    assert summary["receipts"] == 3000
    assert summary["missing_receipts"] == 0
    assert summary["duplicate_receipts"] == summary["unknown_receipts"] == 0
    assert summary["receipts_by_stat"] == {"DELIVRD": 3000}
    assert summary["receipts_by_code"] == {"1000": 3000}
    assert summary["submit_resp_ms"]["p50"] is not None
    assert summary["receipt_ms"]["max"] is not None
    assert len(smsc.unique) == 3000
    assert smsc.duplicates == 0
    assert smsc.receipts_acked == smsc.receipts_sent == 3000


@pytest.mark.asyncio
async def test_window_is_filled_but_never_exceeded(
    smsc: MiniSmsc, loop_guard: list[dict[str, Any]]
) -> None:
    """With the SMSC holding responses, each bind keeps exactly ``window``
    submits outstanding and never more."""
    smsc.hold_s = 0.02
    async with asyncio.timeout(20):
        summary = await burst(client_for(smsc, binds=3, window=7), 600)
    assert summary["accepted"] == 600
    assert len(smsc.max_outstanding) == 3
    assert set(smsc.max_outstanding.values()) == {7}


@pytest.mark.asyncio
async def test_rate_limit_is_roughly_honoured(
    smsc: MiniSmsc, loop_guard: list[dict[str, Any]]
) -> None:
    """``rate`` caps submits per second across binds (generous bounds, no tight timing)."""
    async with asyncio.timeout(20):
        summary = await burst(client_for(smsc, binds=2, window=100, rate=500.0), 400)
    assert summary["accepted"] == 400
    span = smsc.arrivals[-1] - smsc.arrivals[0]
    # 400 messages at 500/s take ~0.8 s; unthrottled they take a few ms.
    assert 0.5 < span < 4.0, span
    # No 100 ms stretch carries much more than 100 ms worth (50) plus the burst.
    arrivals = smsc.arrivals
    densest = max(sum(1 for t in arrivals if start <= t < start + 0.1) for start in arrivals[::10])
    assert densest <= 80, densest


@pytest.mark.asyncio
async def test_tx_rx_mode_takes_receipts_on_the_receivers(
    smsc: MiniSmsc, loop_guard: list[dict[str, Any]]
) -> None:
    """bind_mode tx+rx opens N transmitters and N receivers; receipts the SMSC
    sends on the receivers are correlated with submits made on the transmitters."""
    smsc.receipt_on = "rx"
    async with asyncio.timeout(20):
        summary = await burst(client_for(smsc, binds=2, bind_mode="tx+rx", window=20), 500)
    assert summary["accepted"] == summary["receipts"] == 500
    assert summary["missing_receipts"] == summary["unknown_receipts"] == 0
    states = [link.session.state for link in smsc.links]
    assert len(states) == 4
    rx_names = [name for name, n in smsc.receipts_by_link.items() if n]
    assert len(rx_names) == 2  # both receivers got some, no transmitter did
    assert sum(smsc.receipts_by_link.values()) == 500


@pytest.mark.asyncio
async def test_receipt_before_its_response_is_parked_and_correlated(
    smsc: MiniSmsc, loop_guard: list[dict[str, Any]]
) -> None:
    """A receipt written before its submit_sm_resp is parked by canonical id and
    applied when the response arrives (digest §9)."""
    smsc.receipt_first = True
    async with asyncio.timeout(20):
        summary = await burst(client_for(smsc, window=30), 400)
    assert summary["receipts"] == 400
    assert summary["unknown_receipts"] == summary["missing_receipts"] == 0


@pytest.mark.asyncio
async def test_kt_ids_correlate_with_the_hex_decimal_policy(
    smsc: MiniSmsc, loop_guard: list[dict[str, Any]]
) -> None:
    """kt style: hex id in submit_sm_resp, decimal in the receipt. The
    hex_resp_dec_receipt policy correlates them; as_is cannot."""
    smsc.id_style = "kt"
    async with asyncio.timeout(20):
        summary = await burst(client_for(smsc, id_policy=HEX_RESP_DEC_RECEIPT), 300)
        assert summary["receipts"] == 300
        assert summary["unknown_receipts"] == 0
        wrong = client_for(smsc, id_policy=AS_IS)
        await wrong.connect()
        await wrong.run(50)
        assert not await wrong.wait_receipts(0.3)
        await wrong.close()
    s = wrong.summary()
    assert s["receipts"] == 0
    assert s["missing_receipts"] == 50
    assert s["unknown_receipts"] == 50


@pytest.mark.asyncio
async def test_lgu_uuid_case_correlates_as_is(
    smsc: MiniSmsc, loop_guard: list[dict[str, Any]]
) -> None:
    """lgu style: lowercase UUID in the resp, uppercase in the receipt; the
    default policy (as_is, case-insensitive) matches them."""
    smsc.id_style = "lgu"
    client = client_for(smsc)
    async with asyncio.timeout(20):
        summary = await burst(client, 200)
    assert summary["receipts"] == 200
    assert summary["unknown_receipts"] == 0
    record = client.record(0)
    assert record.message_id is not None
    assert record.message_id == record.message_id.lower()
    assert record.receipt_stat == "DELIVRD"
    assert record.receipt_code == 1000
    assert record.submitted_at is not None
    assert record.resp_at is not None
    assert record.receipt_at is not None
    assert record.receipt_at >= record.submitted_at


@pytest.mark.asyncio
async def test_bind_failure_raises_naming_the_status(
    smsc: MiniSmsc, loop_guard: list[dict[str, Any]]
) -> None:
    """A refused bind raises BindError naming the status, and closes every connection."""
    client = client_for(smsc, password="wrong", binds=2)
    async with asyncio.timeout(10):
        with pytest.raises(BindError, match="ESME_RINVPASWD") as info:
            await client.connect()
        for link in smsc.links:
            await link.closed.wait()
    assert info.value.status == CommandStatus.ESME_RINVPASWD
    assert smsc.binds_refused == 2


@pytest.mark.asyncio
async def test_connect_refused_raises_oserror(loop_guard: list[dict[str, Any]]) -> None:
    """Nothing listening: connect() raises OSError rather than hanging."""
    probe = await asyncio.get_running_loop().create_server(asyncio.Protocol, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    client = UpstreamClient("127.0.0.1", port, system_id=SYSTEM_ID, password=PASSWORD)
    async with asyncio.timeout(10):
        with pytest.raises(ConnectionRefusedError):
            await client.connect()


@pytest.mark.asyncio
async def test_close_unbinds_every_bind(smsc: MiniSmsc, loop_guard: list[dict[str, Any]]) -> None:
    """close() sends unbind on every bind, gets unbind_resp, and closes."""
    smsc.receipt_on = "rx"
    client = client_for(smsc, binds=2, bind_mode="tx+rx")
    async with asyncio.timeout(10):
        await client.connect()
        await client.run(20)
        await client.wait_receipts(5)
        await client.close()
        await asyncio.sleep(0)  # let the SMSC side see the EOFs
        for link in smsc.links:
            await link.closed.wait()
    assert smsc.unbinds == 4
    assert client.summary()["binds_lost"] == 0


@pytest.mark.asyncio
async def test_throttled_submits_are_rejected_by_default(
    smsc: MiniSmsc, loop_guard: list[dict[str, Any]]
) -> None:
    """ESME_RTHROTTLED is counted as a rejection by status name by default."""
    smsc.throttle_every = 4
    async with asyncio.timeout(20):
        summary = await burst(client_for(smsc), 200)
    assert summary["accepted"] == 150
    assert summary["rejected_by_status"] == {"ESME_RTHROTTLED": 50}
    assert summary["receipts"] == 150
    assert summary["missing_receipts"] == 0


@pytest.mark.asyncio
async def test_retry_throttled_resubmits_until_accepted(
    smsc: MiniSmsc, loop_guard: list[dict[str, Any]]
) -> None:
    """With retry_throttled, throttled messages are resubmitted after a backoff
    and every message is eventually accepted once."""
    smsc.throttle_every = 4
    client = client_for(smsc, retry_throttled=True, retry_backoff_s=0.005)
    async with asyncio.timeout(20):
        summary = await burst(client, 200)
    assert summary["accepted"] == 200
    assert summary["rejected"] == 0
    assert summary["retries"] == smsc.throttled > 0
    assert len(smsc.unique) == 200
    assert smsc.duplicates == 0
    assert summary["receipts"] == 200


@pytest.mark.asyncio
async def test_submit_returns_the_record(smsc: MiniSmsc, loop_guard: list[dict[str, Any]]) -> None:
    """submit() resolves on the submit_sm_resp with a live record."""
    client = client_for(smsc, binds=2, window=2)
    make = make_pdu_factory()
    async with asyncio.timeout(10):
        await client.connect()
        records = await asyncio.gather(*(client.submit(make(i)) for i in range(10)))
        assert await client.wait_receipts(5)
        await client.close()
    assert all(r.accepted and r.status == 0 for r in records)
    assert len({r.message_id for r in records}) == 10
    assert all(r.receipt_stat == "DELIVRD" for r in records)
    assert max(smsc.max_outstanding.values()) <= 2


@pytest.mark.asyncio
async def test_mo_deliver_sm_is_answered_and_counted(
    smsc: MiniSmsc, loop_guard: list[dict[str, Any]]
) -> None:
    """A non-receipt deliver_sm (MO) is answered and counted, not taken for a receipt."""
    smsc.mo_every = 10
    async with asyncio.timeout(20):
        summary = await burst(client_for(smsc), 100)
    assert summary["mo_received"] == smsc.mo_sent == 10
    assert summary["unknown_receipts"] == 0
    assert summary["receipts"] == 100


@pytest.mark.asyncio
async def test_lost_connection_fails_the_burst(
    smsc: MiniSmsc, loop_guard: list[dict[str, Any]]
) -> None:
    """When the only transmitter is dropped, run() raises LinkClosedError and the
    in-flight messages count as CONNECTION_CLOSED."""
    smsc.hold_s = 0.05
    smsc.reach_submits = 10
    client = client_for(smsc, window=10)
    async with asyncio.timeout(10):
        await client.connect()
        task = asyncio.create_task(client.run(1000))
        await smsc.reached.wait()
        smsc.links[0].abort()
        with pytest.raises(LinkClosedError):
            await task
        await client.close()
    summary = client.summary()
    assert summary["rejected_by_status"].get("CONNECTION_CLOSED", 0) >= 1
    assert summary["binds_lost"] == 1


@pytest.mark.asyncio
async def test_cli_prints_and_writes_the_json_summary(
    smsc: MiniSmsc,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    loop_guard: list[dict[str, Any]],
) -> None:
    """``relay-sim upstream ... --json FILE`` prints one JSON line and writes it to FILE."""
    out = tmp_path / "summary.json"
    argv = [
        "--target", f"127.0.0.1:{smsc.port}",
        "--system-id", SYSTEM_ID, "--password", PASSWORD,
        "--count", "500", "--binds", "2", "--window", "20",
        "--id-policy", "as_is", "--wait-receipts", "10",
        "--json", str(out),
    ]  # fmt: skip
    async with asyncio.timeout(30):
        rc = await asyncio.to_thread(main, argv)
    assert rc == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    written = json.loads(out.read_text(encoding="utf-8"))
    assert printed == written
    for key in (
        "submitted", "accepted", "rejected_by_status", "receipts", "receipts_by_stat",
        "receipts_by_code", "missing_receipts", "duplicate_receipts", "unknown_receipts",
        "elapsed_s", "submit_rate_per_s", "accept_rate_per_s", "receipt_rate_per_s",
        "submit_resp_ms", "receipt_ms",
    ):  # fmt: skip
        assert key in written, key
    assert written["accepted"] == written["receipts"] == 500
    assert set(written["submit_resp_ms"]) == {"p50", "p90", "p99", "max"}
    assert set(written["receipt_ms"]) == {"p50", "p99", "max"}


@pytest.mark.asyncio
async def test_cli_bind_failure_exits_non_zero(
    smsc: MiniSmsc, capsys: pytest.CaptureFixture[str], loop_guard: list[dict[str, Any]]
) -> None:
    """A refused bind exits 2 with the status on stderr and prints no summary."""
    argv = ["--target", f"127.0.0.1:{smsc.port}", "--system-id", SYSTEM_ID,
            "--password", "nope", "--count", "1"]  # fmt: skip
    async with asyncio.timeout(10):
        rc = await asyncio.to_thread(main, argv)
    captured = capsys.readouterr()
    assert rc == 2
    assert "ESME_RINVPASWD" in captured.err
    assert captured.out == ""


# ============================================================================ receipt reading


_token = st.text(alphabet="0123456789abcdefABCDEF-", min_size=1, max_size=36)


@given(
    rid=_token,
    state=st.sampled_from([2, 3, 5, 8, 1]),
    code=st.one_of(st.none(), st.integers(1000, 3019)),
    tlvs=st.booleans(),
    text_id=_token,
)
def test_read_receipt_agrees_with_parse_receipt(
    rid: str, state: int, code: int | None, tlvs: bool, text_id: str
) -> None:
    """The fast canonical-text path gives what protocol.receipt.parse_receipt gives."""
    pdu = build_receipt_pdu(
        Receipt(message_id=rid, submit_date="2611282301", done_date="2611282301",
                message_state=state, result_code=code),
        source_addr="01012345678", destination_addr="0212345678",
        include_state_tlvs=tlvs, include_result_code=tlvs,
    )  # fmt: skip
    expected = parse_receipt(pdu)
    assert expected is not None
    assert read_receipt(pdu) == (expected.message_id, expected.message_state, expected.result_code)
    if tlvs:  # a text id that differs from the TLV: the TLV wins in both readers
        pdu.short_message = pdu.short_message.replace(
            f"id:{rid}".encode(), f"id:{text_id}".encode()
        )
        expected = parse_receipt(pdu)
        assert expected is not None
        got = read_receipt(pdu)
        assert got == (expected.message_id, expected.message_state, expected.result_code)


def test_read_receipt_falls_back_for_free_form_text() -> None:
    """Non-canonical text (other order, case, spacing) goes through parse_receipt."""
    pdu = DeliverSm(
        esm_class=EsmClass.SMSC_DELIVERY_RECEIPT,
        short_message=b"Stat:UNDELIV ID:77 err:2003 Text:hello",
    )
    assert read_receipt(pdu) == ("77", MessageState.UNDELIVERABLE, 2003)
    assert read_receipt(DeliverSm(esm_class=EsmClass.SMSC_DELIVERY_RECEIPT)) is None


# ============================================================================ the carrier simulator

MakeCarrier = Callable[..., Awaitable[CarrierSimulator]]


def client_for_carrier(sim: CarrierSimulator, **kwargs: Any) -> UpstreamClient:
    return UpstreamClient(
        "127.0.0.1", sim.port, system_id=CARRIER_ACCOUNT, password=CARRIER_PASSWORD, **kwargs
    )


@pytest.mark.asyncio
@pytest.mark.slow
async def test_ten_thousand_messages_through_the_carrier_simulator(
    make_carrier: MakeCarrier,
) -> None:
    """The load client against the carrier simulator: 10,000 messages, every
    receipt back, and the simulator saw each message exactly once."""
    sim = await make_carrier(
        "skt", seed=3, tps_per_bind=0, receipt_median_s=0.005, receipt_p99_s=0.05
    )
    client = client_for_carrier(sim, binds=2, window=200)
    async with asyncio.timeout(50):
        summary = await burst(client, 10_000, receipt_wait_s=30.0)
    accounting = sim.accounting()
    assert summary["submitted"] == summary["accepted"] == 10_000
    assert summary["missing_receipts"] == 0
    assert summary["receipts"] == 10_000
    assert summary["duplicate_receipts"] == summary["unknown_receipts"] == 0
    assert sum(summary["receipts_by_code"].values()) == 10_000
    assert accounting["unique_messages"] == 10_000
    assert accounting["duplicates"] == 0
    assert accounting["submits_accepted"] == 10_000
    assert accounting["receipts_acknowledged"] == 10_000


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("profile", "policy"),
    [("skt", "as_is"), ("kt", "hex_resp_dec_receipt"), ("lgu", "as_is")],
)
async def test_each_carrier_profile_correlates_with_its_id_policy(
    make_carrier: MakeCarrier, profile: str, policy: str
) -> None:
    """kt (hex resp, decimal receipt text, no TLVs) needs hex_resp_dec_receipt;
    lgu (lower-case UUID resp, upper-case receipt) matches as_is; receipts come
    back on a tx+rx client's receivers."""
    sim = await make_carrier(profile, seed=5, tps_per_bind=0)
    client = client_for_carrier(
        sim, binds=1, bind_mode="tx+rx", window=50, id_policy=policy_from_name(policy)
    )
    async with asyncio.timeout(20):
        summary = await burst(client, 500)
    assert summary["accepted"] == summary["receipts"] == 500
    assert summary["unknown_receipts"] == summary["duplicate_receipts"] == 0
    assert sim.accounting()["unique_messages"] == 500


@pytest.mark.asyncio
async def test_retry_throttled_against_a_tps_limited_carrier(make_carrier: MakeCarrier) -> None:
    """Against a per-bind TPS limit, retry_throttled resubmits ESME_RTHROTTLED
    answers until every message is accepted exactly once."""
    sim = await make_carrier("skt", seed=7, tps_per_bind=400)
    client = client_for_carrier(sim, window=100, retry_throttled=True, retry_backoff_s=0.01)
    async with asyncio.timeout(20):
        summary = await burst(client, 800)
    accounting = sim.accounting()
    assert accounting["throttled"] > 0
    assert summary["accepted"] == 800
    assert summary["rejected"] == 0
    assert summary["retries"] == accounting["throttled"]
    assert accounting["unique_messages"] == 800
    assert accounting["duplicates"] == 0
    assert summary["missing_receipts"] == 0
