"""Unit tests of the relay core's pure pieces, on a real WAL and store in tmp_path."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from protocol import codec
from protocol.codec import encode
from protocol.constants import TAG_KR_RESULT_CODE, MessageState, Tag
from protocol.pdu import SubmitSm
from protocol.receipt import Receipt, build_receipt_text, parse_receipt
from relayd.carriers import CarrierPool
from relayd.config import load_config
from relayd.core import Relay
from relayd.metrics import Metrics
from relayd.model import Final, Msg
from relayd.store import Store
from relayd.upstream import mask, parse_validity
from relayd.wal import Wal

CONF = Path(__file__).resolve().parents[2] / "conf" / "relayd.toml"


async def _relay(tmp_path: Path) -> tuple[Relay, Wal, Store]:
    text = CONF.read_text().replace('data_dir = "../data"', f'data_dir = "{tmp_path}"')
    cfg_path = tmp_path / "relayd.toml"
    cfg_path.write_text(text)
    cfg = load_config(cfg_path)
    wal = await Wal.open(tmp_path / "wal")
    store = await Store.open(tmp_path / "s.sqlite3")
    return Relay(cfg, wal, store, Metrics()), wal, store


def _msg(relay: Relay, **kw: object) -> Msg:
    now = time.time()
    m = Msg(
        relay.new_message_id(),
        "demo",
        0,
        1,
        "0212345678",
        0,
        1,
        "01012345678",
        0,
        0,
        0,
        0x0E,
        1,
        "안녕".encode("cp949"),
        now,
        now + 86400,
    )
    for k, v in kw.items():
        setattr(m, k, v)
    return m


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("state", "code", "stat", "err"),
    [
        (MessageState.DELIVERED, 1000, "DELIVRD", "1000"),
        (MessageState.UNDELIVERABLE, 2003, "UNDELIV", "2003"),
        (MessageState.REJECTED, None, "REJECTD", "45"),
        (MessageState.DELETED, None, "DELETED", ""),
    ],
)
async def test_upstream_receipt_text_equals_the_protocol_builder(
    tmp_path: Path, state: int, code: int | None, stat: str, err: str
) -> None:
    """The hot-path receipt text is byte for byte protocol.receipt.build_receipt_text's,
    and the PDU parses back to the same id, state and Korean code."""
    async with asyncio.timeout(20):
        relay, wal, store = await _relay(tmp_path)
        try:
            m = _msg(relay, src_ton=5, src_npi=9, dst_ton=1, dst_npi=1)
            m.final = Final(state, code, stat, err, m.accepted_at + 61)
            pdu = relay.build_upstream_receipt(m)
            expected = build_receipt_text(
                Receipt(
                    message_id=m.id,
                    submitted=1,
                    delivered=1 if state == MessageState.DELIVERED else 0,
                    submit_date=relay._yymmddhhmm(m.accepted_at),
                    done_date=relay._yymmddhhmm(m.final.done_at),
                    stat=stat,
                    err=err,
                    text="",
                )
            )
            assert pdu.short_message == expected.encode("latin-1")
            back = parse_receipt(codec.decode(codec.encode(pdu)))  # type: ignore[arg-type]
            assert back is not None
            assert back.message_id == m.id
            assert back.message_state == state
            assert back.result_code == code
            assert pdu.tlv(Tag.receipted_message_id) == m.id
            assert (pdu.tlv(TAG_KR_RESULT_CODE) is not None) == (code is not None)
            assert (pdu.source_addr, pdu.destination_addr) == (m.dst, m.src)
            assert (pdu.source_addr_ton, pdu.source_addr_npi) == (m.dst_ton, m.dst_npi)
            assert (pdu.dest_addr_ton, pdu.dest_addr_npi) == (m.src_ton, m.src_npi)
            assert (pdu.esm_class, pdu.data_coding, pdu.registered_delivery) == (0x04, 0, 0)
            assert codec.decode(codec.encode(pdu)) == pdu
        finally:
            await wal.close()
            await store.close()


@pytest.mark.asyncio
async def test_message_ids_are_unique_and_follow_the_convention(tmp_path: Path) -> None:
    """korea-messaging.md §13: 14-digit time + 8 base32 + 4-digit index + channel."""
    async with asyncio.timeout(20):
        relay, wal, store = await _relay(tmp_path)
        try:
            ids = [relay.new_message_id() for _ in range(10_000)]
            assert len(set(ids)) == len(ids)
            for i in ids[:50]:
                assert len(i) == 27
                assert i[:14].isdigit()
                assert i[-5:] == "0000S"
        finally:
            await wal.close()
            await store.close()


@pytest.mark.asyncio
async def test_snapshot_round_trip_and_replay_are_idempotent(tmp_path: Path) -> None:
    """A message's checkpoint blob restores it; replaying records twice changes nothing."""
    async with asyncio.timeout(20):
        relay, wal, store = await _relay(tmp_path)
        try:
            m = _msg(relay)
            m.carrier = "skt"
            m.carrier_ids = ["42"]
            m.part_finals = [None]
            m.state = 2
            m.submitted_at = 1.5
            back = Msg.from_snapshot(m.snapshot())
            assert back.accepted_record() == m.accepted_record()
            assert back.carrier_ids == ["42"]
            records = [
                m.accepted_record(),
                ["S", m.id, 0, 1, "skt", "42", 1.0],
                ["F", m.id, 2, 1000, "DELIVRD", "1000", 2.0],
            ]
            for r in records + records:
                relay.apply_record(r)
            got = relay.messages[m.id]
            assert got.final is not None
            assert got.final.code == 1000
            relay.apply_record(["R", m.id])
            relay.apply_record(["R", m.id])
            assert m.id not in relay.messages
            # One R record names every message reported in a loop turn.
            others = [_msg(relay) for _ in range(3)]
            for o in others:
                relay.apply_record(o.accepted_record())
            relay.apply_record(["R", others[0].id, others[2].id])
            assert [o.id in relay.messages for o in others] == [False, True, False]
            assert back.submitted_at == m.submitted_at
        finally:
            await wal.close()
            await store.close()


def test_mask_keeps_prefix_and_last_four() -> None:
    """Logs never carry full numbers (architecture.md §2)."""
    assert mask("01012345678") == "010****5678"
    assert mask("0212345678") == "021***5678"
    assert mask("1588-1234") == "****-**34"  # the same rule as the store and the logs


def test_parse_validity_absolute_and_relative() -> None:
    """SMPP 3.4 §7.1.1 absolute (with UTC offset) and relative times."""
    now = 1_000_000.0
    assert parse_validity("", now, 60) == now + 60
    assert parse_validity("000001000000000R", now, 60) == now + 86400
    # 2026-11-29 09:00:00 at +9h (36 quarter hours) is 00:00:00 UTC.
    assert parse_validity("261129090000036+", now, 60) == 1795910400.0
    with pytest.raises(ValueError):  # noqa: PT011
        parse_validity("26112909", now, 60)


@pytest.mark.asyncio
async def test_one_part_split_equals_the_keyword_built_pdu(tmp_path: Path) -> None:
    """The positional fast path of Carrier.split builds the same submit_sm as
    naming every field (registered_delivery always 1, the message's own fields)."""
    async with asyncio.timeout(20):
        relay, wal, store = await _relay(tmp_path)
        try:
            carrier = CarrierPool(relay).carriers["skt"]
            m = _msg(relay)
            m.esm_class, m.protocol_id, m.priority_flag, m.data_coding = 0x03, 0x41, 2, 0x0E
            m.src_ton, m.dst_npi = 5, 9
            (pdu,) = carrier.split(m)
            expected = SubmitSm(
                source_addr_ton=5,
                source_addr_npi=m.src_npi,
                source_addr=m.src,
                dest_addr_ton=m.dst_ton,
                dest_addr_npi=9,
                destination_addr=m.dst,
                esm_class=0x03,
                protocol_id=0x41,
                priority_flag=2,
                registered_delivery=1,
                data_coding=0x0E,
                short_message=m.body,
            )
            assert pdu == expected
            assert encode(pdu) == encode(expected)
        finally:
            await wal.close()
            await store.close()
