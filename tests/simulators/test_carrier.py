"""Carrier SMSC simulator over real loopback sockets (issue 3, "Must show").

Every async test runs under ``asyncio.timeout`` and the loop-exception guard
(through the ``make_carrier`` / ``connect_esme`` fixtures).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import signal
import statistics
import sys
import time
import tomllib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import smpplib.client
import smpplib.consts

from protocol.constants import TAG_KR_RESULT_CODE, CommandStatus, DataCoding, MessageState, Tag
from protocol.events import BindFailed, Bound
from protocol.msgid import AS_IS, BOTH_DEC, HEX_RESP_DEC_RECEIPT, IdPolicy
from protocol.pdu import (
    CancelSm,
    DataSm,
    DeliverSm,
    DistributionList,
    QuerySm,
    QuerySmResp,
    ReplaceSm,
    SmeAddress,
    SubmitMulti,
    SubmitMultiResp,
)
from protocol.receipt import Receipt, build_receipt_text, parse_receipt
from protocol.resultcodes import DEFAULT_MIX_BP, RESULT_CODES
from protocol.text import decode_text, encode_text
from protocol.tlv import Tlv
from simulators.carrier import CarrierSimulator, Faults, main, malformed_deliver_sm
from simulators.profiles import (
    BUILTIN_PROFILES,
    CarrierProfile,
    ProfileError,
    load_profile,
    load_profiles,
)
from tests.simulators.esme import Esme

MakeCarrier = Callable[..., Awaitable[CarrierSimulator]]
ConnectEsme = Callable[..., Awaitable[Esme]]

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "conf" / "simulators.toml"

S = CommandStatus
DELIVERED = "01000001000"
POWER_OFF = "01000002003"
NO_SUBSCRIBER = "01000003001"
SILENT = "01000011234"


def tlv_value(pdu: DeliverSm, tag: int) -> Any:
    return pdu.tlv(tag)


async def bound_esme(connect_esme: ConnectEsme, port: int, kind: str = "trx", **kw: Any) -> Esme:
    esme = await connect_esme(port, **kw)
    event = await esme.bind(kind)
    assert isinstance(event, Bound), event
    return esme


# ============================================================================ profiles


def test_conf_file_equals_builtin_profiles() -> None:
    """conf/simulators.toml lists every key with the built-in default."""
    assert load_profiles(str(CONF)) == dict(BUILTIN_PROFILES)
    # Every key is spelled out in every profile table (nothing left implicit).
    doc = tomllib.loads(CONF.read_text(encoding="utf-8"))
    fields = {f.name for f in dataclasses.fields(CarrierProfile) if f.name != "name"}
    for name, table in doc["carrier"].items():
        assert set(table) == fields, name


def test_unknown_config_key_is_rejected_with_its_name(tmp_path: Path) -> None:
    """A typo in the config file names the file, the table and the key."""
    bad = tmp_path / "sim.toml"
    bad.write_text("[carrier.skt]\nwindw = 10\n", encoding="utf-8")
    with pytest.raises(ProfileError, match=r"\[carrier\.skt\].*unknown key 'windw'"):
        load_profile("skt", str(bad))
    bad.write_text("[carier.skt]\nwindow = 10\n", encoding="utf-8")
    with pytest.raises(ProfileError, match="unknown top-level key 'carier'"):
        load_profile("skt", str(bad))
    bad.write_text("[carrier.kt]\nreceipt_date_digits = 11\n", encoding="utf-8")
    with pytest.raises(ProfileError, match="receipt_date_digits must be 10, 12 or 14"):
        load_profile("kt", str(bad))
    with pytest.raises(ProfileError, match="unknown key 'tps'"):
        load_profile("lgu", tps=5)


def test_cli_bad_config_key_exits_2_with_a_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """relay-sim carrier refuses a bad config before listening."""
    bad = tmp_path / "sim.toml"
    bad.write_text("[carrier.skt]\nmax_bind = 3\n", encoding="utf-8")
    assert main(["carrier", "--profile", "skt", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'max_bind'" in err
    assert main(["--profile", "skt", "--set", "windw=3"]) == 2
    assert "unknown key 'windw'" in capsys.readouterr().err


def test_receipt_delay_is_lognormal_with_the_profile_median_and_p99() -> None:
    """korea-messaging §6: median ~3 s, p99 ~60 s by default; near zero on demand."""
    sim = CarrierSimulator(load_profile("skt"), seed=1, port=0)
    draws = sorted(sim.draw_delay() for _ in range(20_000))
    assert statistics.median(draws) == pytest.approx(3.0, rel=0.06)
    assert draws[int(0.99 * len(draws))] == pytest.approx(60.0, rel=0.2)
    fast = CarrierSimulator(
        load_profile("skt", receipt_median_s=0.02, receipt_p99_s=0.1), seed=1, port=0
    )
    draws = sorted(fast.draw_delay() for _ in range(20_000))
    assert statistics.median(draws) == pytest.approx(0.02, rel=0.06)
    assert draws[int(0.99 * len(draws))] == pytest.approx(0.1, rel=0.2)


def test_uniform_receipt_delay_is_bounded_and_spread_over_the_interval() -> None:
    """receipt_uniform_max_s replaces the log-normal tail with a bounded spread:
    every delay in [0, max], mean ~max/2, both ends of the interval reached."""
    sim = CarrierSimulator(
        load_profile("kt", receipt_uniform_max_s=0.1, receipt_median_s=3.0, receipt_p99_s=60.0),
        seed=1,
        port=0,
    )
    draws = [sim.draw_delay() for _ in range(20_000)]
    assert all(0.0 <= d <= 0.1 for d in draws)
    assert statistics.mean(draws) == pytest.approx(0.05, rel=0.03)
    assert min(draws) < 0.001
    assert max(draws) > 0.099
    # Off (0, the default) keeps the log-normal draw.
    assert load_profile("kt").receipt_uniform_max_s == 0.0
    with pytest.raises(ProfileError, match="receipt_uniform_max_s must be >= 0"):
        load_profile("kt", receipt_uniform_max_s=-1.0)


@pytest.mark.asyncio
async def test_uniform_receipt_delay_on_the_wire(
    make_carrier: MakeCarrier, connect_esme: ConnectEsme
) -> None:
    """Receipts of a uniform-delay simulator all come back within the bound."""
    sim = await make_carrier(
        "skt", receipt_uniform_max_s=0.05, receipt_median_s=3.0, receipt_p99_s=60.0
    )
    esme = await bound_esme(connect_esme, sim.port)
    async with asyncio.timeout(10):
        t0 = time.monotonic()
        for i in range(20):
            await esme.submit(f"0101234{i:04d}", b"bounded")
        for _ in range(20):
            await esme.receipt()
        # 20 sequential submits plus the bound plus one tick of the timing wheel.
        assert time.monotonic() - t0 < 2.0
    await esme.close()


# ============================================================================ formats per profile

# (resp id pattern, receipt text id from the resp id, date digits, state TLVs, id policy)
FORMATS: dict[str, tuple[str, Callable[[str], str], int, bool, IdPolicy]] = {
    "skt": (r"[1-9][0-9]*", lambda mid: mid, 10, True, BOTH_DEC),
    "kt": (r"[0-9A-F]{8}", lambda mid: f"{int(mid, 16):010d}", 12, False, HEX_RESP_DEC_RECEIPT),
    "lgu": (
        r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-a[0-9a-f]{3}-[0-9a-f]{12}",
        str.upper,
        14,
        True,
        AS_IS,
    ),
}


@pytest.mark.asyncio
@pytest.mark.parametrize("profile", ["skt", "kt", "lgu"])
async def test_profile_id_and_receipt_formats(
    profile: str, make_carrier: MakeCarrier, connect_esme: ConnectEsme
) -> None:
    """Each profile's message id, receipt id base/case, date width and TLVs
    (digest §9): the receipt still correlates under the matching IdPolicy."""
    async with asyncio.timeout(10):
        sim = await make_carrier(profile)
        id_re, receipt_id, digits, state_tlvs, policy = FORMATS[profile]
        esme = await connect_esme(sim.port)
        bound = await esme.bind("trx")
        assert isinstance(bound, Bound)
        assert bound.response.system_id == BUILTIN_PROFILES[profile].system_id
        assert bound.response.tlv(Tag.sc_interface_version) == 0x34
        for destination, code in ((DELIVERED, 1000), (POWER_OFF, 2003)):
            resp = await esme.submit(destination, b"Hello from relayd!")
            assert resp.command_status == 0
            mid = resp.message_id
            assert re.fullmatch(id_re, mid), mid
            dlr = await esme.receipt()
            assert dlr.esm_class == 0x04
            assert dlr.source_addr == destination  # [v5.0] §4.3.5.1: swapped
            assert dlr.destination_addr == "15881234"
            text = dlr.short_message.decode("ascii")
            m = re.match(
                r"id:(\S+) sub:001 dlvrd:(\d{3}) submit date:(\d+) done date:(\d+) "
                r"stat:(\S+) err:(\d+) text:(.*)$",
                text,
            )
            assert m, text
            assert m.group(1) == receipt_id(mid)
            assert len(m.group(3)) == digits
            assert len(m.group(4)) == digits
            row = RESULT_CODES[code]
            assert (m.group(5), m.group(6)) == (row.stat, str(code))
            assert m.group(2) == ("001" if code == 1000 else "000")
            assert m.group(7) == "Hello from relayd!"
            assert tlv_value(dlr, TAG_KR_RESULT_CODE) == code.to_bytes(2, "big")
            if state_tlvs:
                assert tlv_value(dlr, Tag.receipted_message_id) == mid
                assert tlv_value(dlr, Tag.message_state) == row.message_state
                nec = tlv_value(dlr, Tag.network_error_code)
                assert nec == (None if code == 1000 else b"\x03" + code.to_bytes(2, "big"))
            else:
                for tag in (Tag.receipted_message_id, Tag.message_state, Tag.network_error_code):
                    assert not dlr.has_tlv(tag)
            receipt = parse_receipt(dlr)
            assert receipt is not None
            assert receipt.result_code == code
            assert receipt.message_state == row.message_state
            assert policy.canonical_receipt_id(receipt.message_id) == policy.canonical_resp_id(mid)


@pytest.mark.asyncio
async def test_receipt_text_is_what_build_receipt_text_writes(
    make_carrier: MakeCarrier, connect_esme: ConnectEsme
) -> None:
    """The fast receipt formatter writes exactly protocol.receipt's Appendix B
    text, for ASCII, GSM specials, KS C 5601, UCS-2 and UDH bodies."""
    async with asyncio.timeout(10):
        cases: list[tuple[bytes, int, int, str]] = [
            (b"plain ascii text that is longer than twenty", 0, 0, ""),
            (b"price: $5 @ [x]", 0, 0, ""),
            (encode_text("[Web발신] 인증번호 123456", DataCoding.KSC5601), 0x0E, 0, ""),
            (encode_text("안녕하세요 😀 UCS-2 body", DataCoding.UCS2), 0x08, 0, ""),
            (b"\x05\x00\x03\x2a\x02\x01first part text...", 0, 0x40, "first part text..."),
            (b"\x00\xff\x10 binary", 0x04, 0, ""),
        ]
        for profile in ("skt", "kt", "lgu"):
            sim = await make_carrier(profile)
            esme = await bound_esme(connect_esme, sim.port)
            for body, dc, esm, expected_text in cases:
                resp = await esme.submit(POWER_OFF, body, data_coding=dc, esm_class=esm)
                assert resp.command_status == 0
                dlr = await esme.receipt()
                parsed = parse_receipt(dlr)
                assert parsed is not None
                if not expected_text and dc != 0x04:
                    expected_text = decode_text(body, dc)[:20]
                expected = build_receipt_text(
                    Receipt(
                        message_id=FORMATS[profile][1](resp.message_id),
                        submitted=1,
                        delivered=0,
                        submit_date=parsed.submit_date,
                        done_date=parsed.done_date,
                        stat="UNDELIV",
                        err="2003",
                        text=expected_text,
                    )
                )
                assert dlr.short_message == expected.encode("ascii", "replace"), body


@pytest.mark.asyncio
async def test_receipt_to_a_pre_v34_bind_has_no_tlvs(
    make_carrier: MakeCarrier, connect_esme: ConnectEsme
) -> None:
    """SMPP 3.4 §3.4: an ESME bound with interface_version < 0x34 gets no TLVs."""
    async with asyncio.timeout(10):
        sim = await make_carrier("skt")
        esme = await connect_esme(sim.port)
        assert isinstance(await esme.bind("trx", interface_version=0x33), Bound)
        await esme.submit(DELIVERED)
        dlr = await esme.receipt()
        assert dlr.tlvs == ()
        assert b"err:1000" in dlr.short_message


# ============================================================================ result codes


@pytest.mark.asyncio
async def test_reserved_ranges_give_deterministic_result_codes(
    carrier: CarrierSimulator, connect_esme: ConnectEsme
) -> None:
    """0100000CCCC → code CCCC: 2003 power off, 3001 no subscriber (receipts);
    1001/1002/1003 are submit statuses; an unknown CCCC is a bad number."""
    async with asyncio.timeout(10):
        esme = await bound_esme(connect_esme, carrier.port)
        for destination, code in ((POWER_OFF, 2003), (NO_SUBSCRIBER, 3001)):
            resp = await esme.submit(destination)
            assert resp.command_status == 0
            dlr = await esme.receipt()
            receipt = parse_receipt(dlr)
            assert receipt is not None
            assert receipt.stat == "UNDELIV"
            assert receipt.err == str(code)
            assert receipt.result_code == code
            assert receipt.message_state == MessageState.UNDELIVERABLE
        for destination, status in (
            ("01000001001", S.ESME_RMSGQFUL),
            ("01000001002", S.ESME_RINVDSTADR),
            ("01000001003", S.ESME_RINVSRCADR),
            ("01000009999", S.ESME_RINVDSTADR),
            ("010-1234-5678", S.ESME_RINVDSTADR),
            ("", S.ESME_RINVDSTADR),
        ):
            resp = await esme.submit(destination)
            assert resp.command_status == status, destination
        resp = await esme.submit(DELIVERED, source="RELAYD")
        assert resp.command_status == S.ESME_RINVSRCADR
        await esme.no_receipt(0.1)
        acct = carrier.accounting()
        assert acct["by_result_code"] == {"1001": 1, "1002": 1, "1003": 1, "2003": 1, "3001": 1}
        assert acct["submits_rejected"] == 7


@pytest.mark.asyncio
async def test_never_receipted_range_stays_enroute(
    carrier: CarrierSimulator, connect_esme: ConnectEsme
) -> None:
    """0100001xxxx: accepted, never receipted; query_sm says ENROUTE."""
    async with asyncio.timeout(10):
        esme = await bound_esme(connect_esme, carrier.port)
        resp = await esme.submit(SILENT)
        assert resp.command_status == 0
        await esme.no_receipt(0.3)
        q = await esme.request(QuerySm(message_id=resp.message_id, source_addr="15881234"))
        assert isinstance(q, QuerySmResp)
        assert (q.command_status, q.message_state, q.final_date) == (0, MessageState.ENROUTE, "")
        acct = carrier.accounting()
        assert acct["never_receipted"] == 1
        assert acct["receipts_pending"] == 0


@pytest.mark.asyncio
async def test_registered_delivery_decides_which_receipts_are_sent(
    carrier: CarrierSimulator, connect_esme: ConnectEsme
) -> None:
    """registered_delivery 0: none; 01: every final outcome; 10: failures only."""
    async with asyncio.timeout(10):
        esme = await bound_esme(connect_esme, carrier.port)
        await esme.submit(DELIVERED, registered_delivery=0)
        await esme.submit(POWER_OFF, registered_delivery=0)
        await esme.submit(DELIVERED, b"ok-fail-only", registered_delivery=2)
        await esme.no_receipt(0.25)
        await esme.submit(POWER_OFF, b"bad-fail-only", registered_delivery=2)
        dlr = await esme.receipt()
        assert b"err:2003" in dlr.short_message
        await esme.no_receipt(0.1)


@pytest.mark.asyncio
async def test_default_mix_is_drawn_from_the_seeded_rng(
    make_carrier: MakeCarrier, connect_esme: ConnectEsme
) -> None:
    """Ordinary numbers follow korea-messaging §7's mix, reproducibly per seed."""
    async with asyncio.timeout(20):
        counts = []
        for _ in range(2):
            sim = await make_carrier("kt", seed=42, tps_per_bind=0)
            esme = await bound_esme(connect_esme, sim.port, window=5000)
            futs = [
                esme.send(esme.submit_pdu(f"0109{i:07d}", registered_delivery=0))
                for i in range(2000)
            ]
            resps = await asyncio.gather(*futs)
            assert all(r is not None and r.command_status == 0 for r in resps)
            counts.append(sim.accounting()["by_result_code"])
        assert counts[0] == counts[1]
        by_code = {int(k): v for k, v in counts[0].items()}
        assert set(by_code) <= set(DEFAULT_MIX_BP)
        assert sum(by_code.values()) == 2000
        assert 0.94 <= by_code[1000] / 2000 <= 0.98


# ============================================================================ binds and routing


@pytest.mark.asyncio
async def test_bind_checks_account_password_and_max_binds(
    make_carrier: MakeCarrier, connect_esme: ConnectEsme
) -> None:
    """Unknown system_id → ESME_RINVSYSID, wrong password → ESME_RINVPASWD,
    more than max_binds per system_id → ESME_RBINDFAIL."""
    async with asyncio.timeout(10):
        sim = await make_carrier("kt", max_binds=2)
        esme = await connect_esme(sim.port)
        event = await esme.bind("tx", system_id="nobody")
        assert isinstance(event, BindFailed)
        assert event.status == S.ESME_RINVSYSID
        event = await esme.bind("tx", password="wrong")
        assert isinstance(event, BindFailed)
        assert event.status == S.ESME_RINVPASWD
        assert isinstance(await esme.bind("tx"), Bound)
        await bound_esme(connect_esme, sim.port, "rx")
        third = await connect_esme(sim.port)
        event = await third.bind("trx")
        assert isinstance(event, BindFailed)
        assert event.status == S.ESME_RBINDFAIL
        acct = sim.accounting()
        assert (acct["binds"], acct["bind_refused"], acct["binds_active"]) == (2, 3, 2)


@pytest.mark.asyncio
async def test_receipt_arrives_on_another_bind_of_the_system_id(
    make_carrier: MakeCarrier, connect_esme: ConnectEsme
) -> None:
    """Submit on a TX bind; the receipt comes on the RX bind (digest §9)."""
    async with asyncio.timeout(10):
        for profile in ("skt", "lgu"):
            sim = await make_carrier(profile)
            tx = await bound_esme(connect_esme, sim.port, "tx")
            rx = await bound_esme(connect_esme, sim.port, "rx")
            resp = await tx.submit(DELIVERED)
            dlr = await rx.receipt()
            receipt = parse_receipt(dlr)
            assert receipt is not None
            assert receipt.message_id.lower() == FORMATS[profile][1](resp.message_id).lower()
            assert tx.delivered.empty()


@pytest.mark.asyncio
async def test_lgu_prefers_the_submitting_transceiver(
    make_carrier: MakeCarrier, connect_esme: ConnectEsme
) -> None:
    """receipts_on_any_bind = false: receipts go back on the submitting TRX bind
    while it is bound, even with another RX bind of the system_id."""
    async with asyncio.timeout(10):
        sim = await make_carrier("lgu")
        trx = await bound_esme(connect_esme, sim.port, "trx")
        rx = await bound_esme(connect_esme, sim.port, "rx")
        for i in range(10):
            await trx.submit(DELIVERED, b"msg %d" % i)
        for _ in range(10):
            await trx.receipt()
        assert rx.delivered.empty()


@pytest.mark.asyncio
async def test_receipts_wait_for_a_receiver_bind(
    carrier: CarrierSimulator, connect_esme: ConnectEsme
) -> None:
    """No RX/TRX bind: the receipt is held until one binds."""
    async with asyncio.timeout(10):
        tx = await bound_esme(connect_esme, carrier.port, "tx")
        await tx.submit(POWER_OFF)
        await asyncio.sleep(0.2)
        acct = carrier.accounting()
        assert acct["receipts_pending"] == 1
        assert acct["by_system_id"]["relayd"]["receipts_held"] == 1
        rx = await bound_esme(connect_esme, carrier.port, "rx")
        dlr = await rx.receipt()
        assert b"err:2003" in dlr.short_message
        await asyncio.sleep(0.05)
        assert carrier.accounting()["receipts_pending"] == 0


@pytest.mark.asyncio
async def test_unacknowledged_receipts_are_requeued_to_another_bind(
    carrier: CarrierSimulator, connect_esme: ConnectEsme
) -> None:
    """At-least-once: a receipt not acknowledged when its bind drops is sent again."""
    async with asyncio.timeout(10):
        tx = await bound_esme(connect_esme, carrier.port, "tx")
        mute = await bound_esme(connect_esme, carrier.port, "rx", answer_deliver=False)
        await tx.submit(DELIVERED, b"requeue me")
        first = await mute.receipt()
        mute.session_link.abort()
        rx = await bound_esme(connect_esme, carrier.port, "rx")
        again = await rx.receipt()
        assert again.short_message == first.short_message
        await asyncio.sleep(0.05)
        acct = carrier.accounting()
        assert acct["receipts_requeued"] == 1
        assert (acct["receipts_sent"], acct["receipts_resent"]) == (2, 1)
        assert (acct["receipts_acknowledged"], acct["receipts_pending"]) == (1, 0)


@pytest.mark.asyncio
async def test_receipt_response_timeout_and_error_are_retried(
    make_carrier: MakeCarrier, connect_esme: ConnectEsme
) -> None:
    """A deliver_sm not answered in time is resent; one answered with an error
    is retried after receipt_retry_s, at most receipt_max_attempts times."""
    async with asyncio.timeout(10):
        sim = await make_carrier(
            "skt", response_timeout_s=0.15, receipt_retry_s=0.05, receipt_max_attempts=3
        )
        mute = await bound_esme(connect_esme, sim.port, "trx", answer_deliver=False)
        await mute.submit(DELIVERED)
        first = await mute.receipt()
        second = await mute.receipt(wait_s=2)
        assert second.short_message == first.short_message
        mute.answer_deliver = True
        mute.deliver_status = S.ESME_RSYSERR
        # a third copy may still be in flight from the timeout path
        await asyncio.sleep(0.8)
        acct = sim.accounting()
        assert acct["receipts_rejected"] == 3
        assert (acct["receipts_dropped"], acct["receipts_pending"]) == (1, 0)


# ============================================================================ operations


@pytest.mark.asyncio
async def test_query_cancel_and_replace(
    make_carrier: MakeCarrier, connect_esme: ConnectEsme
) -> None:
    """query_sm: ENROUTE then the final state; cancel_sm and replace_sm only
    while the message is pending; unknown ids fail with the command's status."""
    async with asyncio.timeout(10):
        sim = await make_carrier("kt", receipt_median_s=0.4, receipt_p99_s=0.5)
        esme = await bound_esme(connect_esme, sim.port)
        unknown = await esme.request(QuerySm(message_id="FFFFFFF0"))
        assert unknown is not None
        assert unknown.command_status == S.ESME_RQUERYFAIL

        kept = (await esme.submit(DELIVERED, b"original")).message_id
        cancelled = (await esme.submit(POWER_OFF, b"cancel me")).message_id
        q = await esme.request(QuerySm(message_id=kept.lower()))
        assert isinstance(q, QuerySmResp)
        assert (q.message_state, q.final_date) == (MessageState.ENROUTE, "")

        replace = ReplaceSm(message_id=kept, short_message=b"replaced", registered_delivery=1)
        ok = await esme.request(replace)
        assert ok is not None
        assert ok.command_status == 0
        ok = await esme.request(CancelSm(message_id=cancelled))
        assert ok is not None
        assert ok.command_status == 0
        q = await esme.request(QuerySm(message_id=cancelled))
        assert isinstance(q, QuerySmResp)
        assert q.message_state == MessageState.DELETED

        dlr = await esme.receipt(wait_s=3)
        assert dlr.short_message.endswith(b"text:replaced")
        await esme.no_receipt(0.3)  # the cancelled one never comes
        q = await esme.request(QuerySm(message_id=kept))
        assert isinstance(q, QuerySmResp)
        assert q.message_state == MessageState.DELIVERED
        assert re.fullmatch(r"\d{12}\d36\+", q.final_date), q.final_date
        for pdu, status in (
            (CancelSm(message_id=kept), S.ESME_RCANCELFAIL),
            (ReplaceSm(message_id=kept, short_message=b"late"), S.ESME_RREPLACEFAIL),
            (CancelSm(message_id=cancelled), S.ESME_RCANCELFAIL),
            (CancelSm(message_id="zz"), S.ESME_RCANCELFAIL),
        ):
            resp = await esme.request(pdu)
            assert resp is not None
            assert resp.command_status == status


@pytest.mark.asyncio
async def test_data_sm_and_submit_multi(
    carrier: CarrierSimulator, connect_esme: ConnectEsme
) -> None:
    """data_sm takes its body from message_payload; submit_multi answers per
    destination (unsuccess_smes) and receipts each accepted one."""
    async with asyncio.timeout(10):
        esme = await bound_esme(connect_esme, carrier.port)
        resp = await esme.request(
            DataSm(
                source_addr="15881234",
                destination_addr=DELIVERED,
                registered_delivery=1,
                tlvs=(Tlv(Tag.message_payload, b"payload body"),),
            )
        )
        assert resp is not None
        assert resp.command_status == 0
        dlr = await esme.receipt()
        assert dlr.short_message.endswith(b"text:payload body")
        # data_sm allows 64-octet addresses; a receipt's source_addr only 20.
        resp = await esme.request(DataSm(source_addr="15881234", destination_addr="0" * 30))
        assert resp is not None
        assert resp.command_status == S.ESME_RINVDSTADR

        multi = await esme.request(
            SubmitMulti(
                source_addr="15881234",
                dest_addresses=(
                    SmeAddress(1, 1, DELIVERED),
                    SmeAddress(1, 1, "not-a-number"),
                    DistributionList("friends"),
                    SmeAddress(1, 1, POWER_OFF),
                ),
                registered_delivery=1,
                short_message=b"to many",
            )
        )
        assert isinstance(multi, SubmitMultiResp)
        assert multi.command_status == 0
        assert [(u.destination_addr, u.error_status_code) for u in multi.unsuccess_smes] == [
            ("not-a-number", S.ESME_RINVDSTADR),
            ("friends", S.ESME_RINVDLNAME),
        ]
        texts = sorted([(await esme.receipt()).short_message for _ in range(2)])
        assert all(t.startswith(f"id:{multi.message_id} ".encode()) for t in texts)
        assert carrier.accounting()["submits_received"] == 6


@pytest.mark.asyncio
async def test_stop_unbinds_bound_esmes_and_keeps_pending_receipts_counted(
    make_carrier: MakeCarrier, connect_esme: ConnectEsme
) -> None:
    """stop(): the SMSC unbinds every bind; receipts not yet due stay pending."""
    async with asyncio.timeout(10):
        sim = await make_carrier("lgu", receipt_median_s=5.0, receipt_p99_s=10.0)
        esme = await bound_esme(connect_esme, sim.port)
        for i in range(3):
            await esme.submit(DELIVERED, b"later %d" % i)
        await sim.stop(grace_s=1.0)
        await asyncio.wait_for(esme.session_link.closed.wait(), 1)
        assert esme.peer_unbound
        acct = sim.accounting()
        assert (acct["receipts_pending"], acct["binds_active"]) == (3, 0)


# ============================================================================ throttling


@pytest.mark.asyncio
async def test_throttling_beyond_tps_per_bind(
    make_carrier: MakeCarrier, connect_esme: ConnectEsme
) -> None:
    """Beyond tps_per_bind (burst of one second) a submit gets ESME_RTHROTTLED."""
    async with asyncio.timeout(10):
        sim = await make_carrier("skt", tps_per_bind=20)
        esme = await bound_esme(connect_esme, sim.port)
        futs = [
            esme.send(esme.submit_pdu(f"0109{i:07d}", registered_delivery=0)) for i in range(60)
        ]
        statuses = [r.command_status for r in await asyncio.gather(*futs) if r is not None]
        assert len(statuses) == 60
        ok = statuses.count(0)
        throttled = statuses.count(S.ESME_RTHROTTLED)
        assert ok + throttled == 60
        assert 20 <= ok <= 23
        assert sim.accounting()["throttled"] == throttled
        # Tokens come back at tps_per_bind per second.
        await asyncio.sleep(0.2)
        assert (await esme.submit(DELIVERED, registered_delivery=0)).command_status == 0


@pytest.mark.asyncio
async def test_window_beyond_profile_gets_queue_full(
    make_carrier: MakeCarrier, connect_esme: ConnectEsme
) -> None:
    """More unanswered requests than the profile's window → ESME_RMSGQFUL."""
    async with asyncio.timeout(10):
        sim = await make_carrier("lgu", window=5, faults=Faults(response_delay_ms=200))
        esme = await bound_esme(connect_esme, sim.port)
        futs = [esme.send(esme.submit_pdu(f"0109{i:07d}", registered_delivery=0)) for i in range(8)]
        statuses = [r.command_status for r in await asyncio.gather(*futs) if r is not None]
        assert sorted(statuses) == [0] * 5 + [S.ESME_RMSGQFUL] * 3
        assert sim.accounting()["queue_full"] == 3


# ============================================================================ faults


@pytest.mark.asyncio
async def test_fault_disconnect_after_n_pdus(
    make_carrier: MakeCarrier, connect_esme: ConnectEsme
) -> None:
    """The connection drops when its 3rd PDU arrives (bind, submit, submit)."""
    async with asyncio.timeout(10):
        sim = await make_carrier("skt", faults=Faults(disconnect_after_pdus=3))
        esme = await bound_esme(connect_esme, sim.port)
        assert (await esme.submit(DELIVERED, registered_delivery=0)).command_status == 0
        assert await esme.request(esme.submit_pdu(DELIVERED)) is None
        await esme.session_link.closed.wait()
        assert sim.accounting()["disconnects_injected"] == 1


@pytest.mark.asyncio
async def test_fault_disconnect_every_t_seconds(
    make_carrier: MakeCarrier, connect_esme: ConnectEsme
) -> None:
    """Every connection is dropped every disconnect_every_s."""
    async with asyncio.timeout(10):
        sim = await make_carrier("kt", faults=Faults(disconnect_every_s=0.15))
        first = await bound_esme(connect_esme, sim.port)
        second = await bound_esme(connect_esme, sim.port, "rx")
        await asyncio.wait_for(first.session_link.closed.wait(), 1)
        await asyncio.wait_for(second.session_link.closed.wait(), 1)
        assert sim.accounting()["disconnects_injected"] >= 2


@pytest.mark.asyncio
async def test_fault_stall_after_n_pdus(
    make_carrier: MakeCarrier, connect_esme: ConnectEsme
) -> None:
    """After its 2nd PDU a connection is not read for stall_s."""
    async with asyncio.timeout(10):
        sim = await make_carrier("skt", faults=Faults(stall_after_pdus=2, stall_s=0.3))
        esme = await bound_esme(connect_esme, sim.port)
        t0 = time.monotonic()
        assert (await esme.submit(DELIVERED, registered_delivery=0)).command_status == 0
        assert time.monotonic() - t0 < 0.2
        t1 = time.monotonic()
        assert (await esme.submit(DELIVERED, registered_delivery=0)).command_status == 0
        assert time.monotonic() - t1 >= 0.2
        assert sim.accounting()["stalls_injected"] == 1


@pytest.mark.asyncio
async def test_fault_stall_every_t_seconds(
    make_carrier: MakeCarrier, connect_esme: ConnectEsme
) -> None:
    """Every stall_every_s, every connection stops being read for stall_s."""
    async with asyncio.timeout(10):
        sim = await make_carrier("skt", faults=Faults(stall_every_s=0.3, stall_s=0.2))
        esme = await bound_esme(connect_esme, sim.port)
        await asyncio.sleep(0.35)  # inside the first stall (0.3 .. 0.5)
        t0 = time.monotonic()
        assert (await esme.submit(DELIVERED, registered_delivery=0)).command_status == 0
        assert time.monotonic() - t0 >= 0.1
        assert sim.accounting()["stalls_injected"] >= 1


@pytest.mark.asyncio
async def test_fault_response_delay(make_carrier: MakeCarrier, connect_esme: ConnectEsme) -> None:
    """Every response is delayed by response_delay_ms."""
    async with asyncio.timeout(10):
        sim = await make_carrier("skt", faults=Faults(response_delay_ms=150))
        esme = await bound_esme(connect_esme, sim.port)
        t0 = time.monotonic()
        assert (await esme.submit(DELIVERED, registered_delivery=0)).command_status == 0
        assert time.monotonic() - t0 >= 0.14
        assert sim.accounting()["responses_delayed"] == 1


@pytest.mark.asyncio
async def test_fault_dropped_response_is_processed_but_never_answered(
    make_carrier: MakeCarrier, connect_esme: ConnectEsme
) -> None:
    """drop_response_rate: the submit is accepted (and receipted) but its
    response never comes, so a resubmission is a duplicate."""
    async with asyncio.timeout(10):
        sim = await make_carrier("skt", faults=Faults(drop_response_rate=1.0))
        esme = await bound_esme(connect_esme, sim.port)
        assert await esme.request(esme.submit_pdu(DELIVERED), timeout_s=0.2) is None
        assert await esme.request(esme.submit_pdu(DELIVERED), timeout_s=0.2) is None
        await esme.receipt()
        acct = sim.accounting()
        assert (acct["responses_dropped"], acct["submits_accepted"]) == (2, 2)
        assert (acct["unique_messages"], acct["duplicates"]) == (1, 1)


@pytest.mark.asyncio
async def test_fault_error_status_is_seeded_and_reproducible(
    make_carrier: MakeCarrier, connect_esme: ConnectEsme
) -> None:
    """error_rate answers a seeded fraction with error_status; nothing is accepted."""
    async with asyncio.timeout(10):
        patterns = []
        for seed in (7, 7, 8):
            sim = await make_carrier(
                "kt", seed=seed, faults=Faults(error_rate=0.5, error_status=0x14)
            )
            esme = await bound_esme(connect_esme, sim.port)
            futs = [
                esme.send(esme.submit_pdu(f"0109{i:07d}", registered_delivery=0)) for i in range(40)
            ]
            statuses = [r.command_status for r in await asyncio.gather(*futs) if r is not None]
            assert set(statuses) == {0, S.ESME_RMSGQFUL}
            acct = sim.accounting()
            assert acct["errors_injected"] == statuses.count(S.ESME_RMSGQFUL)
            assert acct["submits_accepted"] == statuses.count(0)
            patterns.append(statuses)
        assert patterns[0] == patterns[1]
        assert patterns[0] != patterns[2]


@pytest.mark.asyncio
async def test_fault_refuse_binds(make_carrier: MakeCarrier, connect_esme: ConnectEsme) -> None:
    """refuse_binds = 1: the first bind gets ESME_RBINDFAIL, the next succeeds."""
    async with asyncio.timeout(10):
        sim = await make_carrier("lgu", faults=Faults(refuse_binds=1))
        esme = await connect_esme(sim.port)
        event = await esme.bind("trx")
        assert isinstance(event, BindFailed)
        assert event.status == S.ESME_RBINDFAIL
        assert isinstance(await esme.bind("trx"), Bound)
        assert sim.accounting()["bind_refused"] == 1


@pytest.mark.asyncio
async def test_fault_malformed_pdu(make_carrier: MakeCarrier, connect_esme: ConnectEsme) -> None:
    """One deliver_sm whose sm_length runs past its body; the link survives."""
    async with asyncio.timeout(10):
        sim = await make_carrier("skt", faults=Faults(malformed_after_pdus=2))
        esme = await bound_esme(connect_esme, sim.port)
        assert (await esme.submit(DELIVERED, registered_delivery=0)).command_status == 0
        await asyncio.sleep(0.05)
        assert len(esme.rejected) == 1
        assert esme.rejected[0].error.command_id == 0x00000005
        # Framed correctly: the stream is still in sync.
        assert (await esme.submit(DELIVERED, b"after")).command_status == 0
        assert (await esme.receipt()).short_message.endswith(b"text:after")
        assert sim.accounting()["malformed_sent"] == 1
        raw = malformed_deliver_sm(1)
        assert int.from_bytes(raw[:4], "big") == len(raw)


# ============================================================================ accounting


@pytest.mark.asyncio
async def test_accounting_counts_an_induced_duplicate(
    carrier: CarrierSimulator, connect_esme: ConnectEsme
) -> None:
    """The same message twice is one unique message and one duplicate; parts of
    a concatenated message (UDH or SAR) are distinct by their part number."""
    async with asyncio.timeout(10):
        esme = await bound_esme(connect_esme, carrier.port)
        for _ in range(2):
            await esme.submit(DELIVERED, b"same text", registered_delivery=0)
        for part in (1, 2):
            udh = bytes((5, 0, 3, 0x42, 2, part))
            await esme.submit(POWER_OFF, udh + b"same", registered_delivery=0, esm_class=0x40)
            sar = (
                Tlv(Tag.sar_msg_ref_num, 7),
                Tlv(Tag.sar_total_segments, 2),
                Tlv(Tag.sar_segment_seqnum, part),
            )
            await esme.submit(POWER_OFF, b"same", registered_delivery=0, tlvs=sar)
        acct = json.loads(json.dumps(carrier.accounting()))
        assert acct["submits_received"] == 6
        assert (acct["unique_messages"], acct["duplicates"]) == (5, 1)


# ============================================================================ interop and CLI


@pytest.mark.asyncio
async def test_smpplib_client_binds_submits_and_gets_its_receipt(
    carrier: CarrierSimulator,
) -> None:
    """python-smpplib (an independent, blocking client, in a thread) against the simulator."""
    result: dict[str, Any] = {}

    def run_client() -> None:
        client = smpplib.client.Client(
            "127.0.0.1", carrier.port, timeout=5, allow_unknown_opt_params=True
        )
        sent: list[Any] = []
        received: list[Any] = []
        client.set_message_sent_handler(lambda pdu: sent.append(pdu))
        client.set_message_received_handler(lambda pdu: received.append(pdu))
        client.connect()
        try:
            client.bind_transceiver(system_id="demo", password="demo")
            client.send_message(
                source_addr_ton=smpplib.consts.SMPP_TON_UNK,
                source_addr="15881234",
                dest_addr_ton=smpplib.consts.SMPP_TON_UNK,
                destination_addr=DELIVERED,
                short_message=b"hello smpplib",
                registered_delivery=1,
            )
            deadline = time.monotonic() + 5
            while not received and time.monotonic() < deadline:
                client.read_once()
            client.unbind()
        finally:
            client.disconnect()
        result["sent"] = sent
        result["received"] = received

    async with asyncio.timeout(15):
        await asyncio.to_thread(run_client)
    assert len(result["sent"]) == 1
    mid = result["sent"][0].message_id
    mid = mid.decode() if isinstance(mid, bytes) else mid
    (dlr,) = result["received"]
    text = dlr.short_message
    assert text.startswith(f"id:{mid} ".encode())
    assert b"stat:DELIVRD err:1000 text:hello smpplib" in text
    assert carrier.accounting()["receipts_acknowledged"] == 1


@pytest.mark.asyncio
async def test_cli_subprocess_prints_one_json_object_on_sigterm(
    connect_esme: ConnectEsme, tmp_path: Path
) -> None:
    """relay-sim carrier as a real process: the bound port on stderr and in the
    --ready-file ({"port", "pid"}), SIGTERM → one JSON object, exit 0."""
    ready = tmp_path / "sim.ready.json"
    async with asyncio.timeout(30):
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "simulators.carrier",
            "--profile",
            "kt",
            "--listen",
            "127.0.0.1:0",
            "--seed",
            "3",
            "--receipt-median-s",
            "0.01",
            "--receipt-p99-s",
            "0.05",
            "--response-delay-ms",
            "1",
            "--ready-file",
            str(ready),
            cwd=str(ROOT),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            assert proc.stderr is not None
            line = (await proc.stderr.readline()).decode()
            port = int(line.strip().rsplit(":", 1)[1])
            for _ in range(1000):  # written right after that line, once signals are handled
                if ready.exists():
                    break
                await asyncio.sleep(0.01)
            assert json.loads(ready.read_text()) == {"port": port, "pid": proc.pid}
            esme = await bound_esme(connect_esme, port)
            for _ in range(2):
                await esme.submit(DELIVERED, b"twice")
            await esme.receipt()
            await esme.receipt()
            await esme.close()
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    assert len(lines) == 1
    acct = json.loads(lines[0])
    assert acct["profile"] == "kt"
    assert (acct["submits_received"], acct["unique_messages"], acct["duplicates"]) == (2, 1, 1)
    assert (acct["receipts_sent"], acct["receipts_acknowledged"]) == (2, 2)
    assert acct["by_result_code"] == {"1000": 2}
    assert acct["responses_delayed"] == 2
