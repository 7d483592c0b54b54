"""relayd end to end: upstream apps → relayd → carrier simulators → receipts back.

Every test runs relayd in-process between real loopback sockets (style §8.4):
the carrier simulators on port 0 with fast receipts, relayd configured from
the shipped conf/relayd.toml (see conftest). Each test is bounded in messages
and in time (``asyncio.timeout``), and fails if anything reached the loop's
exception handler.

Receipts are read with a small regex and the raw TLVs (conftest
``read_up_receipt``), not with relayd's own parser, and by independent
clients: python-smpplib, the simulators' upstream load client, a test ESME and
raw bytes on a socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import struct
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest
import smpplib.client

from protocol.codec import encode
from protocol.constants import CommandId, CommandStatus, MessageState, Tag
from protocol.events import BindFailed, Bound
from protocol.pdu import (
    BindTransceiver,
    CancelSm,
    DeliverSmResp,
    EnquireLink,
    QuerySm,
    SubmitSm,
)
from protocol.receipt import Receipt, parse_receipt
from protocol.resultcodes import RESULT_CODES
from protocol.tlv import Tlv
from relayd.carriers import SENT
from relayd.passwords import hash_password
from simulators.carrier import Faults
from simulators.upstream import UpstreamClient
from tests.integration.conftest import (
    BANK,
    BANK_SENDER,
    CARRIERS,
    DEMO,
    DEMO_SENDER,
    Rig,
    RigFactory,
    UpReceipt,
    read_up_receipt,
    wait_for,
)
from tests.simulators.esme import Esme

S = CommandStatus
pytestmark = pytest.mark.asyncio


# ----------------------------------------------------------------------------- helpers


async def connect(rig: Rig, kind: str, account: tuple[str, str], **kw: Any) -> Esme:
    """A test ESME bound to relayd as ``account``; fails the test if refused."""
    esme = await Esme(**kw).connect(rig.port)
    event = await esme.bind(kind, *account)
    assert isinstance(event, Bound), f"bind {kind} {account[0]} refused: {event!r}"
    return esme


async def receipts(esme: Esme, n: int, timeout_s: float = 10.0) -> list[UpReceipt]:
    """The next ``n`` receipts on ``esme``."""
    out: list[UpReceipt] = []
    async with asyncio.timeout(timeout_s):
        while len(out) < n:
            out.append(read_up_receipt(await esme.delivered.get()))
    return out


def load_client(rig: Rig, account: tuple[str, str] = DEMO, **kw: Any) -> UpstreamClient:
    return UpstreamClient(
        "127.0.0.1",
        rig.port,
        system_id=account[0],
        password=account[1],
        response_timeout_s=kw.pop("response_timeout_s", 5.0),
        **kw,
    )


async def burst(
    rig: Rig,
    n: int,
    make_pdu: Any = None,
    *,
    wait_s: float = 10,
    timeout_s: float = 30,
    **client_kw: Any,
) -> UpstreamClient:
    """Connect a load client, submit ``n`` messages, wait for every receipt (fail
    the test otherwise), close; the client, for its summary."""
    client = load_client(rig, **client_kw)
    async with asyncio.timeout(timeout_s):
        await client.connect()
        try:
            await client.run(n, make_pdu)
            assert await client.wait_receipts(wait_s), client.summary()
        finally:
            await client.close()
    return client


def scrape(rig: Rig) -> dict[str, float]:
    """relayd's /metrics as {'name{labels}': value} (blocking: call in a thread)."""
    url = f"http://127.0.0.1:{rig.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def metric_sum(samples: dict[str, float], name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for key, value in samples.items():
        base, _, rest = key.partition("{")
        if base != name:
            continue
        if all(f'{k}="{v}"' in rest for k, v in labels.items()):
            total += value
    return total


def assert_all_delivered(summary: dict[str, Any], n: int) -> None:
    """Every one of ``n`` messages accepted, and exactly one DELIVRD receipt each."""
    assert summary["accepted"] == n, summary
    assert summary["receipts"] == n, summary
    assert summary["missing_receipts"] == 0, summary
    assert summary["duplicate_receipts"] == 0, summary
    assert summary["unknown_receipts"] == 0, summary
    assert summary["receipts_by_stat"] == {"DELIVRD": n}, summary


# ============================================================================ (1) smpplib


def _smpplib_app(port: int, n: int) -> tuple[list[Any], list[Any]]:
    """A blocking python-smpplib transceiver: bind demo/demo, submit ``n``
    messages, read until every submit_sm_resp and every receipt arrived."""
    client = smpplib.client.Client("127.0.0.1", port, timeout=5, allow_unknown_opt_params=True)
    sent: list[Any] = []
    received: list[Any] = []
    client.set_message_sent_handler(lambda pdu: sent.append(pdu))
    client.set_message_received_handler(lambda pdu: received.append(pdu))
    client.connect()
    try:
        client.bind_transceiver(system_id=DEMO[0], password=DEMO[1])
        for i in range(n):
            client.send_message(
                source_addr_ton=0,
                source_addr_npi=1,
                source_addr=DEMO_SENDER,
                dest_addr_ton=0,
                dest_addr_npi=1,
                destination_addr=f"0109{i:07d}",
                short_message=b"hello from smpplib",
                registered_delivery=1,
            )
        deadline = time.monotonic() + 20
        while (len(sent) < n or len(received) < n) and time.monotonic() < deadline:
            client.read_once(auto_send_enquire_link=False)
        client.unbind()
    finally:
        client.disconnect()
    return sent, received


async def test_smpplib_app_gets_a_delivered_receipt_for_every_message(rig: Rig) -> None:
    """An independent SMPP client submits through relayd and gets, for every
    submit_sm_resp message_id, one DELIVRD receipt naming that id."""
    n = 20
    async with asyncio.timeout(30):
        sent, received = await asyncio.to_thread(_smpplib_app, rig.port, n)
    assert len(sent) == n
    assert all(p.status == 0 for p in sent)
    ids = [p.message_id for p in sent]
    assert len(set(ids)) == n, "relayd gave two messages the same id"
    assert len(received) == n
    receipted = []
    for dlr in received:
        assert dlr.command == "deliver_sm"
        assert dlr.esm_class & 0x3C == 0x04  # SMPP 3.4 §5.2.12: SMSC delivery receipt
        assert dlr.message_state == MessageState.DELIVERED
        text = dlr.short_message
        assert b" stat:DELIVRD err:1000 " in text, text
        text_id = re.search(rb"id:(\S+)", text)
        assert text_id is not None, text
        assert text_id.group(1) == dlr.receipted_message_id
        assert dlr.destination_addr == DEMO_SENDER.encode()
        receipted.append(dlr.receipted_message_id)
    assert sorted(receipted) == sorted(ids)
    assert rig.carrier_total("submits_accepted") == n


# ================================================================= (2) receipts on another bind


@dataclass
class BindTrace:
    """Which carrier bind sent each message and which one brought its receipt."""

    submit_bind: dict[str, str] = field(default_factory=dict)  # our id → bind name
    receipt_bind: dict[tuple[str, str], str] = field(default_factory=dict)  # carrier id → bind
    msg_of: dict[tuple[str, str], str] = field(default_factory=dict)  # carrier id → our id

    def crossed(self) -> int:
        """Receipts that arrived on another bind than their message left on."""
        return sum(
            self.submit_bind[self.msg_of[key]] != rx for key, rx in self.receipt_bind.items()
        )


def trace_binds(rig: Rig) -> BindTrace:
    """Wrap relayd's carrier binds (observation only, behaviour unchanged) to
    record which bind sent each message and which bind brought each receipt."""
    relay = rig.relay
    trace = BindTrace()
    for carrier in rig.daemon.pool.carriers.values():
        for b in carrier.binds:

            def submit(
                msg: Any, now: float, free: int | None = None, b: Any = b, orig: Any = b.submit
            ) -> int:
                outcome = orig(msg, now, free)
                if outcome == SENT:
                    trace.submit_bind[msg.id] = b.name
                return int(outcome)

            def on_deliver(link: Any, req: Any, b: Any = b, orig: Any = b._on_deliver) -> None:
                r = parse_receipt(req)
                if r is not None:
                    policy = relay.id_policies[b.carrier.name]
                    key = (b.carrier.name, policy.canonical_receipt_id(r.message_id))
                    trace.receipt_bind[key] = b.name
                orig(link, req)

            b.submit = submit
            b._on_deliver = on_deliver

    orig_acked = relay.on_part_acked

    def on_part_acked(msg: Any, part: int, nparts: int, carrier: str, carrier_id: str) -> None:
        key = (carrier, relay.id_policies[carrier].canonical_resp_id(carrier_id))
        trace.msg_of[key] = msg.id
        orig_acked(msg, part, nparts, carrier, carrier_id)

    relay.on_part_acked = on_part_acked
    return trace


async def test_receipts_come_back_over_transmitter_receiver_carrier_binds(
    make_rig: RigFactory,
) -> None:
    """With carrier binds as transmitter+receiver pairs every submit leaves on
    a transmitter and every receipt arrives on a receiver — another connection —
    and still every message gets its receipt."""
    rig = await make_rig(all_carriers={"bind_type": "transmitter+receiver"})
    trace = trace_binds(rig)
    n = 60
    client = await burst(rig, n, binds=2, window=32)
    assert_all_delivered(client.summary(), n)
    assert len(trace.submit_bind) == n
    assert {name.split("/")[1][:2] for name in trace.submit_bind.values()} == {"tx"}
    assert len(trace.receipt_bind) == n
    assert {name.split("/")[1][:2] for name in trace.receipt_bind.values()} == {"rx"}
    assert trace.crossed() == n
    assert rig.relay.unknown_receipts == 0
    samples = await asyncio.to_thread(scrape, rig)
    assert metric_sum(samples, "relayd_receipts_total", stat="DELIVRD") == n
    assert metric_sum(samples, "relayd_receipts_unknown_total") == 0


async def test_receipt_on_another_transceiver_bind_is_matched(rig: Rig) -> None:
    """A carrier that sends receipts on any bind of the account (skt) delivers
    some on the other transceiver than the one that submitted; relayd matches
    every one of them to its message."""
    trace = trace_binds(rig)
    n = 60
    client = await burst(rig, n, binds=1, window=16)
    assert_all_delivered(client.summary(), n)
    assert len(trace.receipt_bind) == n
    assert trace.crossed() > 0, "no receipt arrived on another bind: the test proves nothing"
    assert rig.relay.unknown_receipts == 0


async def test_receipt_before_its_submit_resp_is_matched(make_rig: RigFactory) -> None:
    """A receipt that overtakes its submit_sm_resp (the carrier answers 150 ms
    late, the receipt comes after ~10 ms) is parked and matched, not lost."""
    slow = Faults(response_delay_ms=150)
    rig = await make_rig(faults={"skt": slow, "kt": slow, "lgu": slow})
    relay = rig.relay
    n = 30
    most_parked = 0
    client = load_client(rig, binds=1, window=n)
    async with asyncio.timeout(30):
        await client.connect()
        try:
            await client.run(n)
            done = asyncio.ensure_future(client.wait_receipts(10))
            while not done.done():
                most_parked = max(most_parked, len(relay.parked))
                await asyncio.sleep(0.002)
            assert done.result(), client.summary()
        finally:
            await client.close()
    assert_all_delivered(client.summary(), n)
    assert most_parked > 0, "no receipt overtook its response: the test proves nothing"
    assert relay.unknown_receipts == 0
    assert not relay.parked


async def test_stale_receipt_is_answered_at_once_when_nothing_is_in_flight(rig: Rig) -> None:
    """After a restart a carrier resends receipts of messages finished long ago.
    With no submit awaiting its answer on that carrier, such a receipt cannot be
    overtaking one: it is answered (and counted unknown) at once, not parked for
    5 s while it holds a slot of the carrier's receipt window."""
    relay = rig.relay
    answers: list[int] = []
    stale = Receipt("4242", 1, 1, "2601010000", "2601010001", "DELIVRD", "000", "")
    assert rig.daemon.pool.carriers["skt"].oldest_outstanding() is None
    relay.on_carrier_receipt("skt", stale, answers.append)
    assert answers == [0]
    assert relay.unknown_receipts == 1
    assert not relay.parked


async def test_stale_receipts_never_crowd_out_early_ones(make_rig: RigFactory) -> None:
    """A flood of stale receipts (a carrier resending after a restart) while
    submits are in flight is answered as soon as every submit sent before them
    has been answered — in well under the 5 s limit — and receipts that really
    overtake their submit_sm_resp are still parked and matched, however many
    stale ones came first."""
    slow = Faults(response_delay_ms=300)
    rig = await make_rig(faults={"skt": slow, "kt": slow, "lgu": slow})
    relay = rig.relay
    skt = rig.daemon.pool.carriers["skt"]
    n = 40
    answers: list[int] = []
    client = load_client(rig, binds=1, window=n)
    async with asyncio.timeout(30):
        await client.connect()
        try:
            run = asyncio.ensure_future(client.run(n))
            await wait_for(lambda: skt.oldest_outstanding() is not None, 5, "submits in flight")
            loop = asyncio.get_running_loop()
            flooded_at = loop.time()
            for i in range(500):
                stale = Receipt(f"9{i:07d}", 1, 1, "2601010000", "2601010001", "DELIVRD", "0", "")
                relay.on_carrier_receipt("skt", stale, answers.append)
            assert len(relay.parked) >= 500  # submits sent before them are in flight
            await wait_for(lambda: len(answers) == 500, 3, "stale receipts answered")
            assert loop.time() - flooded_at < 2.0
            await run
            assert await client.wait_receipts(10), client.summary()
        finally:
            await client.close()
    assert_all_delivered(client.summary(), n)
    assert answers == [0] * 500
    assert relay.unknown_receipts == 500
    assert not relay.parked


# ============================================================================ (3) failover


@pytest.mark.parametrize("how", ["refuses binds", "unreachable"])
async def test_first_carrier_down_fails_over_and_loses_nothing(
    make_rig: RigFactory, how: str
) -> None:
    """With the route's first carrier (skt) down from the start, every message
    is accepted and delivered through the others; skt never sees a submit."""
    if how == "refuses binds":
        rig = await make_rig(faults={"skt": Faults(refuse_binds=-1)})
    else:
        rig = await make_rig(down=("skt",))
    n = 200
    client = await burst(rig, n, binds=2, window=64)
    assert_all_delivered(client.summary(), n)
    acc = rig.accounting()
    if "skt" in acc:
        assert acc["skt"]["submits_received"] == 0
        assert acc["skt"]["bind_refused"] > 0
    assert acc["kt"]["submits_accepted"] + acc["lgu"]["submits_accepted"] == n
    assert acc["kt"]["duplicates"] == acc["lgu"]["duplicates"] == 0


async def test_carrier_crash_mid_run_loses_nothing(rig: Rig) -> None:
    """skt drops every connection and stops listening in the middle of a run,
    then comes back: whatever was in flight there goes to kt/lgu, whatever skt
    had accepted is receipted after it returns — every acknowledged message
    ends in exactly one DELIVRD receipt."""
    skt = rig.sims["skt"]
    n = 400
    client = load_client(rig, binds=2, window=32, rate=500.0)
    async with asyncio.timeout(40):
        await client.connect()
        try:
            run = asyncio.ensure_future(client.run(n))
            await wait_for(lambda: skt.accounting()["submits_accepted"] >= 100, 10, "skt took 100")
            await skt.crash()
            crashed_at = client.summary()["accepted"]
            await run
            assert client.summary()["accepted"] == n
            await skt.revive()
            assert await client.wait_receipts(15), client.summary()
        finally:
            await client.close()
    assert crashed_at < n, "the crash came after the run: the test proves nothing"
    assert_all_delivered(client.summary(), n)
    acc = rig.accounting()
    assert acc["kt"]["submits_accepted"] + acc["lgu"]["submits_accepted"] > 0
    accepted_at_carriers = sum(a["submits_accepted"] for a in acc.values())
    # At-least-once toward carriers: a submit in flight at the crash may have
    # been taken by skt and sent again elsewhere. Bounded by skt's window.
    assert n <= accepted_at_carriers <= n + 2 * 256, acc


# ============================================================================ (4) throttling


async def test_account_over_its_throughput_is_throttled(make_rig: RigFactory) -> None:
    """An account limited to 5 submits/s gets ESME_RTHROTTLED beyond its
    one-second burst; what was accepted is delivered; the other account is not
    slowed; after a pause the account may submit again."""
    rig = await make_rig(accounts={BANK[0]: {"throughput_per_s": 5.0}})
    async with asyncio.timeout(20):
        demo = await connect(rig, "trx", DEMO)
        bank = await connect(rig, "trx", BANK)  # its bucket starts full at its first bind
        try:
            futs = [
                bank.send(bank.submit_pdu(f"0107000{i:04d}", source=BANK_SENDER)) for i in range(20)
            ]
            demo_futs = [
                demo.send(demo.submit_pdu(f"0106000{i:04d}", source=DEMO_SENDER)) for i in range(20)
            ]
            resps = await asyncio.gather(*futs)
            demo_resps = await asyncio.gather(*demo_futs)
            statuses = Counter(r.command_status for r in resps if r is not None)
            assert 5 <= statuses[0] <= 6, statuses
            assert statuses[S.ESME_RTHROTTLED] == 20 - statuses[0], statuses
            assert all(r is not None and r.command_status == 0 for r in demo_resps)
            got = await receipts(bank, statuses[0])
            assert all(r.stat == "DELIVRD" for r in got)
            assert {r.message_id for r in got} == {
                r.message_id for r in resps if r and r.command_status == 0
            }
            await receipts(demo, 20)
            await bank.no_receipt(0.3)
            await asyncio.sleep(0.5)  # the bucket refills at 5/s
            again = await bank.submit("01070009999", source=BANK_SENDER)
            assert again.command_status == 0
        finally:
            await bank.close()
            await demo.close()


async def test_bind_window_full_is_throttled(make_rig: RigFactory) -> None:
    """Submits beyond a bind's window of unanswered submits (server.window)
    are answered ESME_RTHROTTLED at once; the accepted ones are delivered."""
    rig = await make_rig(server={"window": 4})
    async with asyncio.timeout(20):
        esme = await connect(rig, "trx", DEMO)
        try:
            futs = [
                esme.send(esme.submit_pdu(f"0105000{i:04d}", source=DEMO_SENDER))
                for i in range(100)
            ]
            resps = await asyncio.gather(*futs)
            statuses = Counter(r.command_status for r in resps if r is not None)
            assert sum(statuses.values()) == 100
            assert statuses[0] >= 4, statuses
            assert statuses[S.ESME_RTHROTTLED] >= 1, statuses
            assert set(statuses) <= {0, S.ESME_RTHROTTLED}, statuses
            got = await receipts(esme, statuses[0])
            assert all(r.stat == "DELIVRD" for r in got)
        finally:
            await esme.close()


async def _throttled_run(make_rig: RigFactory, n: int, max_attempts: int) -> tuple[Rig, Any]:
    slow = {"tps_per_bind": 20.0}
    rig = await make_rig(
        sim_overrides={"skt": slow, "kt": slow, "lgu": slow},
        retry={"max_attempts": max_attempts, "backoff_min_s": 0.05, "backoff_max_s": 0.2},
    )
    client = await burst(rig, n, wait_s=25, timeout_s=40, binds=2, window=64)
    assert rig.carrier_total("throttled") > 0, "no carrier throttled: the test proves nothing"
    return rig, client.summary()


async def test_carrier_throttling_is_retried_until_everything_is_delivered(
    make_rig: RigFactory,
) -> None:
    """Carriers that allow 20 submits/s per bind (120/s in all) answer relayd
    ESME_RTHROTTLED; relayd cuts its rate and requeues, and throttling alone
    never ends a message (retry.max_attempts=5 counts failures, not
    throttling): every one of 300 messages is delivered."""
    rig, summary = await _throttled_run(make_rig, 300, max_attempts=5)
    assert_all_delivered(summary, 300)
    samples = await asyncio.to_thread(scrape, rig)
    assert metric_sum(samples, "relayd_carrier_responses_total", status="ESME_RTHROTTLED") > 0


async def test_retries_due_at_once_keep_the_carrier_links_up(make_rig: RigFactory) -> None:
    """Many temporary refusals whose retries fall due within the same
    millisecond are retried without an exception on the loop (uvloop's call_at
    then returns a plain Handle, without when()); every message is delivered."""
    flaky = Faults(error_rate=0.5, error_status=S.ESME_RTHROTTLED)
    rig = await make_rig(
        faults=dict.fromkeys(CARRIERS, flaky),
        retry={"max_attempts": 50, "backoff_min_s": 0.0001, "backoff_max_s": 0.0001},
    )
    n = 50
    client = await burst(rig, n, wait_s=5, timeout_s=20, binds=1, window=n)
    assert rig.carrier_total("errors_injected") > 0
    assert_all_delivered(client.summary(), n)


# ============================================================================ (5) carrier errors


def _long_message(i: int) -> SubmitSm:
    """A 600-byte KS C 5601 LMS in message_payload: five parts at 134 octets."""
    return SubmitSm(
        source_addr=DEMO_SENDER,
        destination_addr=f"010{20_000_000 + i}",
        registered_delivery=1,
        data_coding=0x0E,
        tlvs=(Tlv(Tag.message_payload, ("가나다라마" * 60).encode("cp949")),),
    )


async def test_long_messages_go_out_whole_within_small_windows(make_rig: RigFactory) -> None:
    """A burst of five-part messages through carrier windows of 8: a message is
    sent only when all its parts fit, so no part is ever sent twice (the carriers
    see exactly five submits per message) and every message is delivered."""
    rig = await make_rig(all_carriers={"window": 8, "binds": 1})
    n = 40
    client = await burst(rig, n, make_pdu=_long_message, wait_s=15, binds=1, window=64)
    assert_all_delivered(client.summary(), n)
    acc = rig.accounting()
    assert sum(a["submits_accepted"] for a in acc.values()) == 5 * n, acc
    assert sum(a["duplicates"] for a in acc.values()) == 0, acc


async def test_message_larger_than_every_window_is_rejected(make_rig: RigFactory) -> None:
    """Five parts can never fit a window of 4: the message ends REJECTED at once
    instead of blocking its queue; the next (short) message still goes out."""
    rig = await make_rig(all_carriers={"window": 4, "binds": 1})
    async with asyncio.timeout(15):
        esme = await Esme().connect(rig.port)
        assert isinstance(await esme.bind("trx", *DEMO), Bound)
        try:
            big = await esme.request(_long_message(0))
            assert big is not None
            assert big.command_status == 0
            dlr = read_up_receipt(await esme.receipt(5))
            assert (dlr.message_id, dlr.stat) == (big.message_id, "REJECTD")
            small = await esme.submit("01030005678", source=DEMO_SENDER)
            dlr = read_up_receipt(await esme.receipt(5))
            assert (dlr.message_id, dlr.stat) == (small.message_id, "DELIVRD")
        finally:
            await esme.close()
    acc = rig.accounting()
    assert sum(a["submits_accepted"] for a in acc.values()) == 1, acc


async def test_carrier_errors_end_in_the_right_final_receipts(rig: Rig) -> None:
    """Permanent and temporary carrier results reach the app as one final
    receipt each, with the Korean code in err: and in TLV 0x1401 and the stat
    of the Korean table: 3001 and 2003 (receipt-time) → UNDELIV; 1002
    (submit-time, permanent) → REJECTD, never retried; 1001 (Server Busy,
    ESME_RMSGQFUL, class S) → resubmitted with backoff, and once
    retry.max_attempts submits were refused the relay ends it 3011 (UNKNOWN)."""
    cases = {
        "01000003001": ("UNDELIV", 3001, MessageState.UNDELIVERABLE),
        "01000002003": ("UNDELIV", 2003, MessageState.UNDELIVERABLE),
        "01000001002": ("REJECTD", 1002, MessageState.REJECTED),
        "01000001001": (RESULT_CODES[3011].stat, 3011, RESULT_CODES[3011].message_state),
    }
    async with asyncio.timeout(20):
        esme = await connect(rig, "trx", DEMO)
        try:
            ids = {}
            for dest in cases:
                resp = await esme.submit(dest, source=DEMO_SENDER)
                assert resp.command_status == 0
                ids[resp.message_id] = dest
            got = await receipts(esme, len(ids), timeout_s=15)
            await esme.no_receipt(0.3)
        finally:
            await esme.close()
    assert sorted(r.message_id for r in got) == sorted(ids)
    for r in got:
        dest = ids[r.message_id]
        assert r.esm_class == 0x04
        assert (r.source_addr, r.destination_addr) == (dest, DEMO_SENDER)
        assert r.text_id == r.tlv_id
        assert r.err == str(r.kr_code), (dest, r)
        assert (r.stat, r.kr_code, r.state) == cases[dest], (dest, r)
    by_code: Counter[int] = Counter()
    for a in rig.accounting().values():
        by_code.update({int(k): v for k, v in a["by_result_code"].items()})
    assert by_code[3001] == by_code[2003] == by_code[1002] == 1, by_code  # never retried
    assert by_code[1001] == rig.daemon.config.retry.max_attempts, by_code


# ================================================================= (6)(7) bind, sender refusals


async def test_wrong_password_and_unknown_system_id_are_refused(rig: Rig) -> None:
    """A wrong password gets ESME_RINVPASWD, an unknown system_id
    ESME_RINVSYSID; the right password still binds afterwards."""
    async with asyncio.timeout(15):
        for kind, account, status in [
            ("trx", (DEMO[0], "wrong"), S.ESME_RINVPASWD),
            ("tx", (BANK[0], DEMO[1]), S.ESME_RINVPASWD),
            ("rx", (DEMO[0], "wrong"), S.ESME_RINVPASWD),
            ("trx", ("nobody", "demo"), S.ESME_RINVSYSID),
        ]:
            esme = await Esme().connect(rig.port)
            try:
                event = await esme.bind(kind, *account)
                assert isinstance(event, BindFailed), event
                assert event.status == status, (account, event)
            finally:
                await esme.close()
        esme = await connect(rig, "trx", DEMO)
        await esme.close()
    assert rig.carrier_total("submits_received") == 0


async def test_unregistered_sender_is_refused_before_any_carrier(rig: Rig) -> None:
    """A sender number not registered for the account (even one registered for
    another account) gets ESME_RINVSRCADR, and no carrier sees a submit."""
    async with asyncio.timeout(15):
        esme = await connect(rig, "trx", DEMO)
        try:
            for source in ("0299999999", BANK_SENDER, ""):
                resp = await esme.submit("01012345678", source=source)
                assert resp.command_status == S.ESME_RINVSRCADR, (source, resp)
            await esme.no_receipt(0.3)
            assert rig.carrier_total("submits_received") == 0
            resp = await esme.submit("01012345678", source=DEMO_SENDER)
            assert resp.command_status == 0
            (r,) = await receipts(esme, 1)
            assert r.message_id == resp.message_id
        finally:
            await esme.close()


# ============================================================================ (8) malformed PDU


class RawApp:
    """An upstream app speaking raw bytes, to send what no SMPP library would."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int) -> RawApp:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def read_pdu(self) -> tuple[int, int, int, bytes]:
        """(command_id, command_status, sequence_number, body); skips enquire_link."""
        while True:
            header = await self.reader.readexactly(16)
            length, cid, status, seq = struct.unpack(">IIII", header)
            body = await self.reader.readexactly(length - 16)
            if cid == CommandId.enquire_link:
                self.send(struct.pack(">IIII", 16, CommandId.enquire_link_resp, 0, seq))
                continue
            return cid, status, seq, body

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


def _submit_sm_with_sm_length_past_body(seq: int) -> bytes:
    body = (
        b"\x00"  # service_type
        + b"\x00\x01"
        + BANK_SENDER.encode()
        + b"\x00"
        + b"\x00\x01"
        + b"01012345678\x00"
        + b"\x00\x00\x00"  # esm_class, protocol_id, priority_flag
        + b"\x00\x00"  # schedule_delivery_time, validity_period
        + b"\x01\x00\x00\x00"  # registered_delivery, replace, data_coding, sm_default_msg_id
        + b"\xc8"  # sm_length = 200 ...
        + b"hello"  # ... but 5 octets follow
    )
    return struct.pack(">IIII", 16 + len(body), CommandId.submit_sm, 0, seq) + body


async def test_malformed_pdus_are_nacked_and_harm_no_other_app(rig: Rig) -> None:
    """An app sending an unknown command_id gets generic_nack ESME_RINVCMDID, a
    submit_sm whose sm_length runs past its body gets an error answer (never a
    crash), an oversized command_length gets generic_nack ESME_RINVCMDLEN and
    the connection closed — while another app's 300 messages are all accepted
    and receipted."""
    n = 300
    client = load_client(rig, binds=2, window=32, rate=600.0)
    async with asyncio.timeout(30):
        await client.connect()
        raw = await RawApp.connect(rig.port)
        try:
            run = asyncio.ensure_future(client.run(n))
            raw.send(
                encode(BindTransceiver(sequence_number=1, system_id=BANK[0], password=BANK[1]))
            )
            cid, status, seq, _ = await raw.read_pdu()
            assert (cid, status, seq) == (CommandId.bind_transceiver_resp, 0, 1)
            await asyncio.sleep(0.1)  # the load is flowing

            raw.send(struct.pack(">IIII", 16, 0x00000099, 0, 2))
            cid, status, seq, _ = await raw.read_pdu()
            assert (cid, status, seq) == (CommandId.generic_nack, S.ESME_RINVCMDID, 2)

            raw.send(_submit_sm_with_sm_length_past_body(3))
            cid, status, seq, _ = await raw.read_pdu()
            assert seq == 3
            assert status != 0, (hex(cid), status)
            assert cid in (CommandId.generic_nack, CommandId.submit_sm_resp), hex(cid)

            raw.send(encode(EnquireLink(sequence_number=4)))  # the session survived
            cid, status, seq, _ = await raw.read_pdu()
            assert (cid, status, seq) == (CommandId.enquire_link_resp, 0, 4)

            raw.send(struct.pack(">IIII", 0x7FFFFFF0, CommandId.submit_sm, 0, 5) + b"\x00" * 64)
            cid, status, seq, _ = await raw.read_pdu()
            assert (cid, status) == (CommandId.generic_nack, S.ESME_RINVCMDLEN)
            assert await raw.reader.read() == b"", "the connection should be closed"

            await run
            assert await client.wait_receipts(15), client.summary()
        finally:
            await raw.close()
            await client.close()
    assert_all_delivered(client.summary(), n)
    assert client.summary()["binds_lost"] == 0
    assert rig.carrier_total("submits_accepted") == n


# ================================================================= (9) held receipts, tenants


async def _submit_and_leave(rig: Rig, n: int) -> list[str]:
    """demo binds as a transmitter, submits ``n`` messages asking for receipts,
    unbinds; returns the message ids."""
    tx = await connect(rig, "tx", DEMO)
    try:
        ids = []
        for i in range(n):
            resp = await tx.submit(f"0104000{i:04d}", source=DEMO_SENDER, registered_delivery=1)
            assert resp.command_status == 0
            ids.append(resp.message_id)
    finally:
        await tx.close()
    return ids


async def test_receipts_held_for_an_unbound_account_come_on_its_next_bind(rig: Rig) -> None:
    """Receipts that come back while the account has no receiver are held and
    sent, in order, when it binds one; another account's receiver, bound all
    along, sees none of them."""
    n = 10
    async with asyncio.timeout(20):
        other = await connect(rig, "rx", BANK)
        try:
            ids = await _submit_and_leave(rig, n)
            await wait_for(lambda: rig.relay.pending_reports(DEMO[0]) == n, 5, "all finals held")
            held_order = [m.id for m in rig.relay.reports[DEMO[0]]]
            await other.no_receipt(0.2)
            rx = await connect(rig, "rx", DEMO)
            try:
                got = await receipts(rx, n)
                await rx.no_receipt(0.3)
            finally:
                await rx.close()
            await other.no_receipt(0.1)
        finally:
            await other.close()
    assert [r.message_id for r in got] == held_order
    assert sorted(held_order) == sorted(ids)
    assert all(r.stat == "DELIVRD" and r.destination_addr == DEMO_SENDER for r in got)
    assert rig.relay.pending_reports(DEMO[0]) == 0


async def test_held_receipts_survive_a_restart(rig: Rig) -> None:
    """Receipts held for an unbound account are durable: after relayd restarts
    on the same data directory they are still delivered, once each."""
    n = 10
    async with asyncio.timeout(25):
        ids = await _submit_and_leave(rig, n)
        await wait_for(lambda: rig.relay.pending_reports(DEMO[0]) == n, 5, "all finals held")
        await rig.restart()
        assert rig.daemon.ready["to_report"] == n, rig.daemon.ready
        rx = await connect(rig, "rx", DEMO)
        try:
            got = await receipts(rx, n, timeout_s=3)
            await rx.no_receipt(0.3)
        finally:
            await rx.close()
    assert sorted(r.message_id for r in got) == sorted(ids)


async def test_first_receiver_bind_after_start_gets_held_receipts_at_once(rig: Rig) -> None:
    """The first receiver bind after relayd starts gets the receipts held for
    its account at once, without having to send anything itself."""
    n = 3
    async with asyncio.timeout(15):
        await _submit_and_leave(rig, n)
        await wait_for(lambda: rig.relay.pending_reports(DEMO[0]) == n, 5, "all finals held")
        await rig.restart()  # a fresh relayd: the password is checked in the executor
        rx = await connect(rig, "rx", DEMO)
        try:
            await receipts(rx, n, timeout_s=2)
        finally:
            await rx.close()


# ================================================================= (10) query_sm, cancel_sm


async def ask(esme: Esme, pdu: Any) -> Any:
    """Send a request and return its response (fail the test on none)."""
    resp = await esme.request(pdu)
    assert resp is not None, f"no answer to {pdu!r}"
    return resp


async def test_query_sm_of_a_delivered_message(rig: Rig) -> None:
    """query_sm of a delivered message answers DELIVERED with its final date,
    both while its receipt is still unanswered and after it was reported;
    another account, or an unknown id, gets ESME_RQUERYFAIL; cancel_sm fails."""
    async with asyncio.timeout(15):
        esme = await Esme(answer_deliver=False).connect(rig.port)
        assert isinstance(await esme.bind("trx", *DEMO), Bound)
        bank = await connect(rig, "trx", BANK)
        try:
            resp = await esme.submit("01030001234", source=DEMO_SENDER)
            mid = resp.message_id
            dlr = await esme.receipt(5)
            assert read_up_receipt(dlr).message_id == mid
            query = QuerySm(message_id=mid, source_addr=DEMO_SENDER)
            for when in ("receipt unanswered", "reported"):
                q = await ask(esme, query)
                assert (q.command_status, q.message_id) == (0, mid), (when, q)
                assert q.message_state == MessageState.DELIVERED, (when, q)
                assert re.fullmatch(r"\d{15}[-+R]", q.final_date), (when, q)
                if when == "receipt unanswered":
                    esme.session_link.session.send_response(DeliverSmResp(0, dlr.sequence_number))
                    esme.session_link.flush_soon()
                    await wait_for(lambda: mid not in rig.relay.messages, 2, "reported")
            # Its whole life is in the store's history now that it left memory.
            history = await rig.relay.store.get_message(mid)
            assert history is not None
            assert [e["kind"] for e in history["events"]] == [
                "accepted",
                "submitted",
                "final",
                "reported",
            ], history
            assert (history["state"], history["code"], history["account"]) == (
                "DELIVERED",
                1000,
                "demo",
            )
            cancel = CancelSm(
                message_id=mid, source_addr=DEMO_SENDER, destination_addr="01030001234"
            )
            assert (await ask(esme, cancel)).command_status == S.ESME_RCANCELFAIL
            q = await ask(bank, QuerySm(message_id=mid, source_addr=BANK_SENDER))
            assert q.command_status == S.ESME_RQUERYFAIL, q
            unknown = QuerySm(message_id="20000101000000AAAAAAAA0000S", source_addr=DEMO_SENDER)
            assert (await ask(esme, unknown)).command_status == S.ESME_RQUERYFAIL
        finally:
            await esme.close()
            await bank.close()


async def test_query_and_cancel_a_queued_message(make_rig: RigFactory) -> None:
    """With every carrier down a message waits in the queue: query_sm says
    ENROUTE; another account can neither query nor cancel it; its own account
    cancels it and gets one DELETED receipt; a second cancel fails."""
    rig = await make_rig(down=CARRIERS)
    async with asyncio.timeout(15):
        esme = await connect(rig, "trx", DEMO)
        bank = await connect(rig, "trx", BANK)
        try:
            resp = await esme.submit("01030005678", source=DEMO_SENDER)
            assert resp.command_status == 0
            mid = resp.message_id
            query = QuerySm(message_id=mid, source_addr=DEMO_SENDER)
            cancel = CancelSm(
                message_id=mid, source_addr=DEMO_SENDER, destination_addr="01030005678"
            )
            q = await ask(esme, query)
            assert (q.command_status, q.message_state) == (0, MessageState.ENROUTE), q
            q = await ask(bank, QuerySm(message_id=mid, source_addr=BANK_SENDER))
            assert q.command_status == S.ESME_RQUERYFAIL, q
            assert (await ask(bank, cancel)).command_status == S.ESME_RCANCELFAIL
            assert (await ask(esme, cancel)).command_status == 0
            (r,) = await receipts(esme, 1)
            assert (r.message_id, r.stat, r.state) == (mid, "DELETED", MessageState.DELETED)
            assert (await ask(esme, cancel)).command_status == S.ESME_RCANCELFAIL
            q = await ask(esme, query)
            assert (q.command_status, q.message_state) == (0, MessageState.DELETED), q
            await esme.no_receipt(0.2)
            await bank.no_receipt(0.1)
        finally:
            await esme.close()
            await bank.close()
    assert rig.daemon.pool.carriers["skt"].bound_count() == 0


# ============================================================================ validity


async def _assert_expires(rig: Rig, destination: str) -> None:
    """Submit to ``destination`` with a 1 s validity; its one receipt is EXPIRED 2000."""
    async with asyncio.timeout(15):
        esme = await connect(rig, "trx", DEMO)
        try:
            resp = await esme.submit(
                destination, source=DEMO_SENDER, validity_period="000000000001000R"
            )
            assert resp.command_status == 0
            (r,) = await receipts(esme, 1, timeout_s=3)
        finally:
            await esme.close()
    assert (r.message_id, r.stat, r.err, r.kr_code) == (resp.message_id, "EXPIRED", "2000", 2000)


async def test_message_without_receipt_expires_at_its_validity(rig: Rig) -> None:
    """A message the carrier accepts but never receipts (reserved range 0100001xxxx)
    ends EXPIRED (2000) when its validity period (here 1 s) runs out."""
    await _assert_expires(rig, "01000010001")


async def test_queued_message_expires_while_every_carrier_is_down(make_rig: RigFactory) -> None:
    """A message that cannot reach any carrier ends EXPIRED (2000) when its
    validity period (here 1 s) runs out, even with no carrier event."""
    await _assert_expires(await make_rig(down=CARRIERS), "01030007777")


# ================================================================= SIGHUP reload


async def test_reload_changes_accounts_without_dropping_binds(rig: Rig) -> None:
    """SIGHUP's reload (issue 4: accounts and routes without dropping binds): a new
    account can bind at once, a removed sender is refused, and a bind made before
    the reload keeps working."""
    async with asyncio.timeout(20):
        old = await connect(rig, "trx", DEMO)
        try:
            newco = ("newco", "newpw")
            demo_doc = next(a for a in rig.config_doc["accounts"] if a["system_id"] == DEMO[0])
            rig.config_doc["accounts"].append(
                {
                    **demo_doc,
                    "system_id": newco[0],
                    "password_hash": hash_password(newco[1], n=2**10, r=8, p=1),
                }
            )
            demo_doc["senders"] = [s for s in demo_doc["senders"] if s != "0311234567"]
            rig.write_config()
            assert rig.daemon is not None
            rig.daemon.reload()
            fresh = await connect(rig, "trx", newco)
            await fresh.close()
            ok = await old.submit("01012345678", source=DEMO_SENDER)
            assert ok.command_status == 0
            gone = await old.submit("01012345678", source="0311234567")
            assert gone.command_status == S.ESME_RINVSRCADR
        finally:
            await old.close()
