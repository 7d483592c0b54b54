"""Tests for protocol/receipt.py: SMPP 3.4 Appendix B delivery receipts (digest §8, §9)."""

from __future__ import annotations

import ast
import dataclasses
import string
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.codec import decode, encode
from protocol.constants import TAG_KR_RESULT_CODE, DataCoding, EsmClass, MessageState, Tag
from protocol.errors import LocalProtocolError
from protocol.pdu import DataSm, DeliverSm
from protocol.receipt import (
    STAT_BY_STATE,
    Receipt,
    build_receipt_pdu,
    build_receipt_text,
    format_receipt_date,
    is_receipt,
    parse_receipt,
    parse_receipt_date,
    parse_receipt_text,
    receipt_tlvs,
    stat_for_state,
    state_for_stat,
)
from protocol.tlv import Tlv

PROPERTY = settings(max_examples=200, deadline=None)

KST = timezone(timedelta(hours=9))

# A power-off failure on a Korean carrier link: err and vendor TLV carry 2003
# (korea-messaging.md §7: 2003 단말기 전원 꺼짐 → UNDELIV).
POWER_OFF = Receipt(
    message_id="3418772",
    submitted=1,
    delivered=0,
    submit_date="2406011230",
    done_date="2406011231",
    stat="UNDELIV",
    err="2003",
    text="[Web발신] 인증번호 123456"[:20],
    network_error_code=b"\x03\x00\x1b",
)


def _roundtrip(pdu: DeliverSm | DataSm) -> DeliverSm | DataSm:
    out = decode(encode(pdu))
    assert isinstance(out, DeliverSm | DataSm)
    return out


def _receipt_pdu(text: bytes, *, esm_class: int = 0x04, tlvs: tuple[Tlv, ...] = ()) -> DeliverSm:
    return DeliverSm(
        source_addr="01012345678",
        destination_addr="15881234",
        esm_class=esm_class,
        short_message=text,
        tlvs=tlvs,
    )


# ------------------------------------------------------------------------ build


def test_build_receipt_text_has_the_appendix_b_layout() -> None:
    """The built text is exactly the Appendix B field sequence with lower-case keys."""
    r = Receipt(
        "0123456789",
        submitted=1,
        delivered=1,
        submit_date="2406011230",
        done_date="2406011231",
        stat="DELIVRD",
        err="0",
        text="Hello",
    )
    assert build_receipt_text(r) == (
        "id:0123456789 sub:001 dlvrd:001 submit date:2406011230 done date:2406011231"
        " stat:DELIVRD err:000 text:Hello"
    )


def test_build_receipt_text_keeps_four_digit_korean_codes() -> None:
    """A 4-digit err is not cut to the 3-digit field width."""
    assert " err:2003 " in build_receipt_text(POWER_OFF)
    assert " err:02003 " in build_receipt_text(POWER_OFF, err_digits=5)


def test_build_receipt_text_writes_zeros_for_an_empty_err() -> None:
    """An unknown error code is written as err_digits zeros."""
    r = Receipt("1", stat="DELIVRD")
    assert " err:000 " in build_receipt_text(r)
    assert " err:0000 " in build_receipt_text(r, err_digits=4)


def test_build_receipt_text_keeps_a_non_numeric_err_as_is() -> None:
    """A vendor err token that is not a number is not zero-padded."""
    assert " err:E1 " in build_receipt_text(Receipt("1", stat="UNDELIV", err="E1"))


def test_build_receipt_text_cuts_text_to_20_characters() -> None:
    """Appendix B: text is the first 20 characters of the original message."""
    r = Receipt("1", stat="DELIVRD", text="abcdefghijklmnopqrstuvwxyz")
    assert build_receipt_text(r).endswith(" text:abcdefghijklmnopqrst")


@pytest.mark.parametrize(
    "receipt",
    [
        Receipt("a b", stat="DELIVRD"),
        Receipt("1", stat="DEL IVRD"),
        Receipt("1", stat="DELIVRD", submit_date="2406 011230"),
        Receipt("1", stat="DELIVRD", err="20 03"),
        Receipt("1", submitted=-1, stat="DELIVRD"),
        Receipt("1", delivered=-1, stat="DELIVRD"),
    ],
)
def test_build_receipt_text_rejects_fields_that_would_not_parse_back(receipt: Receipt) -> None:
    """Whitespace inside a one-token field or a negative count is a caller error."""
    with pytest.raises(LocalProtocolError):
        build_receipt_text(receipt)


def test_build_receipt_text_rejects_err_digits_below_one() -> None:
    """err_digits must be at least 1."""
    with pytest.raises(LocalProtocolError):
        build_receipt_text(POWER_OFF, err_digits=0)


def test_receipt_tlvs_carry_id_state_network_error_and_result_code() -> None:
    """All four receipt TLVs, the vendor result code as a big-endian int2."""
    assert receipt_tlvs(POWER_OFF) == (
        Tlv(Tag.receipted_message_id, "3418772"),
        Tlv(Tag.message_state, 5),
        Tlv(Tag.network_error_code, b"\x03\x00\x1b"),
        Tlv(TAG_KR_RESULT_CODE, b"\x07\xd3"),
    )


def test_receipt_tlvs_can_be_switched_off() -> None:
    """include_state_tlvs/include_result_code drop their TLVs (pre-3.4 peers get none)."""
    assert receipt_tlvs(POWER_OFF, include_state_tlvs=False) == (
        Tlv(TAG_KR_RESULT_CODE, b"\x07\xd3"),
    )
    assert receipt_tlvs(POWER_OFF, include_result_code=False)[-1].tag == Tag.network_error_code
    assert receipt_tlvs(POWER_OFF, include_state_tlvs=False, include_result_code=False) == ()


def test_receipt_tlvs_omit_unknown_values() -> None:
    """No network_error_code or result-code TLV when those are unknown."""
    assert receipt_tlvs(Receipt("9", stat="DELIVRD")) == (
        Tlv(Tag.receipted_message_id, "9"),
        Tlv(Tag.message_state, 2),
    )


def test_receipt_tlvs_reject_a_network_error_code_that_is_not_three_octets() -> None:
    """SMPP 3.4 §5.3.2.31: network_error_code is exactly 3 octets."""
    with pytest.raises(LocalProtocolError):
        receipt_tlvs(dataclasses.replace(POWER_OFF, network_error_code=b"\x03\x00"))


def test_receipt_tlvs_reject_a_result_code_that_does_not_fit_int2() -> None:
    """The vendor TLV is an int2: 65536 cannot be sent."""
    with pytest.raises(LocalProtocolError):
        receipt_tlvs(Receipt("1", stat="UNDELIV", result_code=65536))


def test_build_receipt_pdu_is_a_delivery_receipt_deliver_sm() -> None:
    """esm_class 0x04, addresses as given, the text ASCII with '?' for Hangul."""
    pdu = build_receipt_pdu(
        POWER_OFF,
        source_addr="01012345678",
        destination_addr="15881234",
        source_addr_ton=1,
        source_addr_npi=1,
        dest_addr_ton=2,
        dest_addr_npi=8,
        sequence_number=7,
    )
    assert pdu.esm_class == 0x04
    assert (pdu.source_addr, pdu.destination_addr) == ("01012345678", "15881234")
    assert (pdu.source_addr_ton, pdu.source_addr_npi, pdu.dest_addr_ton, pdu.dest_addr_npi) == (
        1,
        1,
        2,
        8,
    )
    assert pdu.sequence_number == 7
    assert pdu.data_coding == 0
    assert pdu.short_message == build_receipt_text(POWER_OFF).encode("ascii", "replace")
    assert pdu.short_message.endswith(b" text:[Web??] ???? 123456")
    assert pdu.tlvs == receipt_tlvs(POWER_OFF)


def test_build_receipt_pdu_appends_extra_tlvs_after_the_receipt_tlvs() -> None:
    """extra_tlvs come last, in order."""
    extra = (Tlv(0x1402, b"x"),)
    pdu = build_receipt_pdu(
        POWER_OFF, source_addr="1", destination_addr="2", extra_tlvs=extra, include_state_tlvs=False
    )
    assert pdu.tlvs == (Tlv(TAG_KR_RESULT_CODE, b"\x07\xd3"), *extra)


def test_build_encode_decode_parse_round_trip_equals_the_receipt() -> None:
    """A Korean failure receipt survives build → codec → parse unchanged, apart from
    the Hangul of its text, which the ASCII receipt text cannot carry."""
    pdu = build_receipt_pdu(POWER_OFF, source_addr="01012345678", destination_addr="15881234")
    parsed = parse_receipt(_roundtrip(pdu))
    assert parsed == dataclasses.replace(POWER_OFF, text="[Web??] ???? 123456")
    assert parsed is not None
    assert parsed.result_code == 2003
    assert parsed.message_state == MessageState.UNDELIVERABLE
    assert parsed.is_final


# ------------------------------------------------------------------ Receipt itself


def test_receipt_derives_message_state_from_stat() -> None:
    """A receipt built from its text alone knows its state."""
    assert Receipt("1", stat="DELIVRD").message_state == MessageState.DELIVERED


def test_receipt_derives_stat_from_message_state() -> None:
    """A receipt built from its TLVs alone gets the Table B-2 stat."""
    assert Receipt("1", message_state=MessageState.REJECTED).stat == "REJECTD"


def test_receipt_derives_result_code_from_a_four_digit_err() -> None:
    """err:3012 is the Korean spam code; err:0000 and err:000 are not carrier codes."""
    assert Receipt("1", stat="REJECTD", err="3012").result_code == 3012
    assert Receipt("1", stat="UNDELIV", err="0000").result_code is None
    assert Receipt("1", stat="UNDELIV", err="000").result_code is None


def test_receipt_derives_err_from_result_code() -> None:
    """A receipt given only the carrier code writes it in err."""
    assert Receipt("1", stat="UNDELIV", result_code=2005).err == "2005"


def test_receipt_keeps_contradicting_stat_and_state_as_given() -> None:
    """TLV state and text stat are both kept; the state decides is_final."""
    r = Receipt("1", stat="DELIVRD", message_state=MessageState.ENROUTE)
    assert (r.stat, r.message_state, r.is_final) == ("DELIVRD", 1, False)


def test_receipt_is_frozen() -> None:
    """Receipts are immutable values."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        POWER_OFF.stat = "DELIVRD"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("state", "final"),
    [
        (MessageState.SCHEDULED, False),
        (MessageState.ENROUTE, False),
        (MessageState.DELIVERED, True),
        (MessageState.EXPIRED, True),
        (MessageState.DELETED, True),
        (MessageState.UNDELIVERABLE, True),
        (MessageState.ACCEPTED, True),
        (MessageState.UNKNOWN, False),
        (MessageState.REJECTED, True),
        (MessageState.SKIPPED, True),
        (200, False),
    ],
)
def test_is_final_follows_the_message_state_table(state: int, final: bool) -> None:
    """Digest §8: final states are final; ENROUTE, SCHEDULED, UNKNOWN are not."""
    assert Receipt("1", message_state=state).is_final is final


def test_is_final_is_false_without_a_state() -> None:
    """A receipt with no stat and no state is not final."""
    assert Receipt("1").is_final is False


# ------------------------------------------------------------------ stat ⇄ state


@pytest.mark.parametrize(
    ("stat", "state"),
    [
        ("ENROUTE", MessageState.ENROUTE),
        ("DELIVRD", MessageState.DELIVERED),
        ("EXPIRED", MessageState.EXPIRED),
        ("DELETED", MessageState.DELETED),
        ("UNDELIV", MessageState.UNDELIVERABLE),
        ("ACCEPTD", MessageState.ACCEPTED),
        ("UNKNOWN", MessageState.UNKNOWN),
        ("REJECTD", MessageState.REJECTED),
        ("FAILED", MessageState.UNDELIVERABLE),
        ("DELIVERED", MessageState.DELIVERED),
        ("UNDELIVERABLE", MessageState.UNDELIVERABLE),
        ("REJECTED", MessageState.REJECTED),
        ("delivrd", MessageState.DELIVERED),
        (" Failed ", MessageState.UNDELIVERABLE),
        ("BOGUS", MessageState.UNKNOWN),
        ("", MessageState.UNKNOWN),
    ],
)
def test_state_for_stat_maps_table_b2_and_field_spellings(stat: str, state: MessageState) -> None:
    """Table B-2 plus FAILED and long forms; anything else is UNKNOWN."""
    assert state_for_stat(stat) == state


def test_stat_for_state_inverts_table_b2() -> None:
    """Every Table B-2 stat maps back to its state and the state to the stat."""
    for state, stat in STAT_BY_STATE.items():
        assert stat_for_state(state) == stat
        assert state_for_stat(stat) == state


def test_stat_for_state_writes_unknown_for_states_without_text() -> None:
    """[v5.0] SCHEDULED/SKIPPED and out-of-range states have no Table B-2 text."""
    assert stat_for_state(MessageState.SCHEDULED) == "UNKNOWN"
    assert stat_for_state(MessageState.SKIPPED) == "UNKNOWN"
    assert stat_for_state(99) == "UNKNOWN"


# -------------------------------------------------------------------------- dates


def test_format_receipt_date_writes_10_12_and_14_digits() -> None:
    """YYMMDDhhmm (Appendix B), YYMMDDhhmmss and YYYYMMDDhhmmss."""
    dt = datetime(2024, 6, 1, 9, 5, 7)
    assert format_receipt_date(dt) == "2406010905"
    assert format_receipt_date(dt, digits=12) == "240601090507"
    assert format_receipt_date(dt, digits=14) == "20240601090507"


def test_format_receipt_date_pads_small_years() -> None:
    """Year 2005 is '05', year 5 is '0005' — no platform-dependent strftime padding."""
    assert format_receipt_date(datetime(2005, 1, 2, 3, 4)) == "0501020304"
    assert format_receipt_date(datetime(5, 1, 2, 3, 4), digits=14) == "00050102030400"


@pytest.mark.parametrize("digits", [0, 8, 11, 16])
def test_format_receipt_date_rejects_other_widths(digits: int) -> None:
    """Only 10, 12 and 14 digits are receipt date formats."""
    with pytest.raises(ValueError, match="10, 12 or 14"):
        format_receipt_date(datetime(2024, 1, 1), digits=digits)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2406010905", datetime(2024, 6, 1, 9, 5)),
        ("240601090507", datetime(2024, 6, 1, 9, 5, 7)),
        ("20240601090507", datetime(2024, 6, 1, 9, 5, 7)),
        (" 2406010905\n", datetime(2024, 6, 1, 9, 5)),
        ("0001010000", datetime(2000, 1, 1)),
        ("3712312359", datetime(2037, 12, 31, 23, 59)),
        ("3801010000", datetime(1938, 1, 1)),
        ("9912312359", datetime(1999, 12, 31, 23, 59)),
    ],
)
def test_parse_receipt_date_reads_each_width_with_the_default_pivot(
    text: str, expected: datetime
) -> None:
    """Two-digit years 00–37 are 20YY and 38–99 are 19YY (digest §8)."""
    assert parse_receipt_date(text) == expected


def test_parse_receipt_date_pivot_is_configurable() -> None:
    """century_pivot moves the 19YY/20YY boundary."""
    assert parse_receipt_date("4901010000", century_pivot=50) == datetime(2049, 1, 1)
    assert parse_receipt_date("5001010000", century_pivot=50) == datetime(1950, 1, 1)
    assert parse_receipt_date("0001010000", century_pivot=0) == datetime(1900, 1, 1)
    assert parse_receipt_date("9901010000", century_pivot=100) == datetime(2099, 1, 1)


def test_parse_receipt_date_rejects_a_pivot_out_of_range() -> None:
    """A pivot outside 0..100 is a caller bug."""
    with pytest.raises(ValueError, match="century_pivot"):
        parse_receipt_date("2406010905", century_pivot=101)


def test_parse_receipt_date_attaches_the_given_zone() -> None:
    """Receipt times are SMSC local time: the caller names the zone."""
    assert parse_receipt_date("2406010905", tz=KST) == datetime(2024, 6, 1, 9, 5, tzinfo=KST)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "240601090",  # 9 digits
        "24060109050",  # 11 digits
        "2406010905070",  # 13 digits
        "2413010905",  # month 13
        "2402300905",  # 30 February
        "2406012460",  # 24:60
        "24O6010905",  # letter O
        "２４０６０１０９０５",  # fullwidth digits
        "240601090507000+",  # SMPP absolute time, not a receipt date
    ],
)
def test_parse_receipt_date_returns_none_for_non_dates(text: str) -> None:
    """Anything but a valid 10/12/14-digit date is None, never an exception."""
    assert parse_receipt_date(text) is None


@PROPERTY
@given(
    dt=st.datetimes(min_value=datetime(1938, 1, 1), max_value=datetime(2037, 12, 31, 23, 59, 59)),
    digits=st.sampled_from([10, 12, 14]),
)
def test_format_then_parse_receipt_date_round_trips(dt: datetime, digits: int) -> None:
    """Within the pivot window, parse(format(dt)) is dt at the format's resolution."""
    expected = dt.replace(microsecond=0, second=0 if digits == 10 else dt.second)
    assert parse_receipt_date(format_receipt_date(dt, digits=digits)) == expected


# -------------------------------------------------------------- parse: the text


def test_parse_receipt_text_reads_the_appendix_b_example_literally() -> None:
    """The spec's own placeholder example parses: 'Text:' capital, one-letter err."""
    r = parse_receipt_text(
        "id:IIIIIIIIII sub:SSS dlvrd:DDD submit date:YYMMDDhhmm done date:YYMMDDhhmm "
        "stat:DDDDDDD err:E Text: . . . . . . . . ."
    )
    assert r == Receipt(
        "IIIIIIIIII",
        submitted=1,  # 'SSS' is not a number: the default
        delivered=0,
        submit_date="YYMMDDhhmm",
        done_date="YYMMDDhhmm",
        stat="DDDDDDD",
        err="E",
        text=". . . . . . . . .",
        message_state=MessageState.UNKNOWN,
    )


# Real-world shapes (digest §9): each sample with the fields it must yield.
SAMPLES: list[tuple[str, str | bytes, dict[str, object]]] = [
    (
        "canonical",
        "id:1234567890 sub:001 dlvrd:001 submit date:2406011230 done date:2406011231 "
        "stat:DELIVRD err:000 text:Hello world",
        {
            "message_id": "1234567890",
            "submitted": 1,
            "delivered": 1,
            "stat": "DELIVRD",
            "err": "000",
            "text": "Hello world",
            "message_state": 2,
            "result_code": None,
        },
    ),
    (
        "uppercase keys",
        "ID:77 SUB:001 DLVRD:000 SUBMIT DATE:2406011230 DONE DATE:2406011231 "
        "STAT:UNDELIV ERR:001 TEXT:hi",
        {
            "message_id": "77",
            "delivered": 0,
            "submit_date": "2406011230",
            "done_date": "2406011231",
            "stat": "UNDELIV",
            "err": "001",
            "text": "hi",
            "message_state": 5,
        },
    ),
    (
        "capital Text",
        "id:5 sub:001 dlvrd:001 submit date:2406011230 done date:2406011231 stat:DELIVRD "
        "err:000 Text:안녕하세요",
        {"message_id": "5", "text": "안녕하세요"},
    ),
    (
        "missing text",
        "id:5 sub:001 dlvrd:001 submit date:2406011230 done date:2406011231 stat:DELIVRD err:000",
        {"message_id": "5", "err": "000", "text": ""},
    ),
    (
        "12-digit dates",
        "id:5 sub:001 dlvrd:001 submit date:240601123005 done date:240601123107 "
        "stat:DELIVRD err:000 text:",
        {"submit_date": "240601123005", "done_date": "240601123107"},
    ),
    (
        "14-digit dates",
        "id:5 sub:001 dlvrd:001 submit date:20240601123005 done date:20240601123107 "
        "stat:DELIVRD err:000 text:x",
        {"submit_date": "20240601123005", "done_date": "20240601123107", "text": "x"},
    ),
    (
        "1-digit err",
        "id:5 sub:1 dlvrd:1 submit date:2406011230 done date:2406011231 stat:DELIVRD err:0 text:x",
        {"submitted": 1, "delivered": 1, "err": "0", "result_code": None},
    ),
    (
        "4-digit Korean err",
        "id:5 sub:001 dlvrd:000 submit date:2406011230 done date:2406011231 stat:UNDELIV "
        "err:2005 text:x",
        {"err": "2005", "result_code": 2005, "message_state": 5},
    ),
    (
        "stat FAILED",
        "id:5 sub:001 dlvrd:000 submit date:2406011230 done date:2406011231 stat:FAILED "
        "err:3001 text:x",
        {"stat": "FAILED", "message_state": 5, "result_code": 3001},
    ),
    (
        "hex id",
        "id:0A1B2C3D4E5F sub:001 dlvrd:001 submit date:2406011230 done date:2406011231 "
        "stat:DELIVRD err:000 text:x",
        {"message_id": "0A1B2C3D4E5F"},
    ),
    (
        "UUID id",
        "id:16fd2706-8baf-433b-82eb-8c7fada847da sub:001 dlvrd:001 submit date:2406011230 "
        "done date:2406011231 stat:DELIVRD err:000 text:x",
        {"message_id": "16fd2706-8baf-433b-82eb-8c7fada847da"},
    ),
    (
        "reordered fields",
        "stat:EXPIRED err:2000 text:late id:42 done date:2406021230 sub:001 dlvrd:000 "
        "submit date:2406011230",
        {
            "message_id": "42",
            "stat": "EXPIRED",
            "err": "2000",
            "text": "late",
            "done_date": "2406021230",
            "submit_date": "2406011230",
            "message_state": 3,
            "result_code": 2000,
        },
    ),
    (
        "extra vendor keys",
        "id:42 sub:001 dlvrd:001 submit date:2406011230 vendor:SKT done date:2406011231 "
        "stat:DELIVRD mccmnc:45005 err:000 network:3 text:ok",
        {
            "message_id": "42",
            "submit_date": "2406011230",
            "done_date": "2406011231",
            "stat": "DELIVRD",
            "err": "000",
            "text": "ok",
        },
    ),
    (
        "missing sub and dlvrd, delivered",
        "id:42 submit date:2406011230 done date:2406011231 stat:DELIVRD err:000 text:ok",
        {"submitted": 1, "delivered": 1},
    ),
    (
        "missing sub and dlvrd, failed",
        "id:42 submit date:2406011230 done date:2406011231 stat:UNDELIV err:001 text:ok",
        {"submitted": 1, "delivered": 0},
    ),
    (
        "surrounding whitespace and NUL",
        "  \r\nid:42 sub:001 dlvrd:001 submit date:2406011230 done date:2406011231 "
        "stat:DELIVRD err:000 text:ok \r\n\x00",
        {"message_id": "42", "text": "ok"},
    ),
    (
        "space around the colon",
        "id : 42 sub: 001 dlvrd: 001 submit date: 2406011230 done date: 2406011231 "
        "stat: DELIVRD err: 000 text: ok",
        {"message_id": "42", "submit_date": "2406011230", "stat": "DELIVRD", "text": "ok"},
    ),
    (
        "underscore date keys",
        "id:42 sub:001 dlvrd:001 submit_date:2406011230 done_date:2406011231 stat:DELIVRD err:000",
        {"submit_date": "2406011230", "done_date": "2406011231"},
    ),
    (
        "bytes input",
        b"id:42 sub:001 dlvrd:001 submit date:2406011230 done date:2406011231 stat:DELIVRD "
        b"err:000 text:caf\xe9",
        {"message_id": "42", "text": "café"},
    ),
    (
        "stat only",
        "stat:DELIVRD",
        {"message_id": "", "message_state": 2, "delivered": 1},
    ),
]


@pytest.mark.parametrize(
    ("text", "expected"), [(s[1], s[2]) for s in SAMPLES], ids=[s[0] for s in SAMPLES]
)
def test_parse_receipt_text_reads_real_world_variants(
    text: str | bytes, expected: dict[str, object]
) -> None:
    """Keys in any case and order, missing or extra keys, all date and err widths."""
    r = parse_receipt_text(text)
    assert r is not None
    assert {k: getattr(r, k) for k in expected} == expected


def test_parse_receipt_text_does_not_let_the_text_field_override_earlier_keys() -> None:
    """The original message quoted in text: may contain 'id:' or 'stat:' — first key wins."""
    r = parse_receipt_text(
        "id:42 sub:001 dlvrd:001 submit date:2406011230 done date:2406011231 stat:DELIVRD "
        "err:000 text:my id:99 stat:x"
    )
    assert r is not None
    assert (r.message_id, r.stat, r.text) == ("42", "DELIVRD", "my id:99 stat:x")


def test_parse_receipt_text_only_sees_keys_where_a_token_starts() -> None:
    """'msgid:' and 'x-id:' are not 'id:'; 'id:' inside an id value is not a key."""
    r = parse_receipt_text("msgid:5 x-id:6 stat:DELIVRD")
    assert r is not None
    assert r.message_id == ""
    r = parse_receipt_text("id:sub:1 stat:DELIVRD")
    assert r is not None
    assert (r.message_id, r.submitted) == ("sub:1", 1)


def test_parse_receipt_text_ignores_absurdly_long_counts() -> None:
    """A 5000-digit sub: is garbage, not a crash (int() refuses > 4300 digits)."""
    r = parse_receipt_text("id:1 sub:" + "9" * 5000 + " stat:DELIVRD")
    assert r is not None
    assert r.submitted == 1


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "hello, see you at 5:30",
        "sub:001 dlvrd:001 err:000 text:no id no stat",
        b"\xff\x00",
    ],
)
def test_parse_receipt_text_returns_none_without_id_and_stat(text: str | bytes) -> None:
    """Text with neither an id nor a stat does not look like a receipt."""
    assert parse_receipt_text(text) is None


@PROPERTY
@given(st.text())
def test_parse_receipt_text_never_raises_on_any_string(text: str) -> None:
    """Any peer text yields a Receipt or None, never an exception."""
    r = parse_receipt_text(text)
    assert r is None or isinstance(r, Receipt)


@PROPERTY
@given(
    st.lists(
        st.one_of(
            st.sampled_from(
                [
                    "id:",
                    "ID:",
                    "sub:",
                    "dlvrd:",
                    "submit date:",
                    "done date:",
                    "stat:",
                    "err:",
                    "Text:",
                    "text:",
                    " ",
                    "\x00",
                    "\n",
                    ":",
                    "DELIVRD",
                    "FAILED",
                    "2003",
                    "0x1F",
                ]
            ),
            st.text(max_size=8),
        ),
        max_size=30,
    ).map("".join)
)
def test_parse_receipt_text_never_raises_on_key_heavy_strings(text: str) -> None:
    """Strings made mostly of receipt keys and values parse or return None."""
    r = parse_receipt_text(text)
    assert r is None or isinstance(r, Receipt)


@PROPERTY
@given(st.binary(max_size=300))
def test_parse_receipt_text_never_raises_on_any_bytes(data: bytes) -> None:
    """Any short_message octets yield a Receipt or None."""
    r = parse_receipt_text(data)
    assert r is None or isinstance(r, Receipt)


# --------------------------------------------------------------- parse: the PDU


def test_parse_receipt_prefers_tlvs_over_contradicting_text() -> None:
    """receipted_message_id, message_state and the result-code TLV win (digest §9)."""
    pdu = _receipt_pdu(
        b"id:1111 sub:001 dlvrd:001 submit date:2406011230 done date:2406011231 "
        b"stat:DELIVRD err:1000 text:x",
        tlvs=(
            Tlv(Tag.receipted_message_id, "0000457"),
            Tlv(Tag.message_state, MessageState.UNDELIVERABLE),
            Tlv(Tag.network_error_code, b"\x03\x00\x01"),
            Tlv(TAG_KR_RESULT_CODE, (3001).to_bytes(2, "big")),
        ),
    )
    r = parse_receipt(_roundtrip(pdu))
    assert r is not None
    assert r.message_id == "0000457"
    assert r.message_state == MessageState.UNDELIVERABLE
    assert r.result_code == 3001
    assert r.network_error_code == b"\x03\x00\x01"
    # the text is kept as received
    assert (r.stat, r.err) == ("DELIVRD", "1000")
    assert r.is_final


def test_parse_receipt_reads_a_receipt_carried_only_by_tlvs() -> None:
    """Empty short_message: the TLVs alone make the receipt."""
    pdu = _receipt_pdu(
        b"",
        tlvs=(
            Tlv(Tag.receipted_message_id, "ABC123"),
            Tlv(Tag.message_state, MessageState.DELIVERED),
            Tlv(TAG_KR_RESULT_CODE, b"\x03\xe8"),
        ),
    )
    r = parse_receipt(_roundtrip(pdu))
    assert r == Receipt(
        "ABC123", delivered=1, stat="DELIVRD", err="1000", message_state=2, result_code=1000
    )


def test_parse_receipt_reads_a_receipt_carried_only_by_text() -> None:
    """No TLVs: everything comes from the text."""
    pdu = _receipt_pdu(
        b"id:9 sub:001 dlvrd:000 submit date:2406011230 done date:2406011231 stat:REJECTD "
        b"err:3012 text:spam"
    )
    r = parse_receipt(_roundtrip(pdu))
    assert r == Receipt(
        "9",
        submitted=1,
        delivered=0,
        submit_date="2406011230",
        done_date="2406011231",
        stat="REJECTD",
        err="3012",
        text="spam",
    )
    assert r is not None
    assert (r.message_state, r.result_code) == (MessageState.REJECTED, 3012)


def test_parse_receipt_returns_none_for_a_normal_deliver_sm() -> None:
    """esm_class 0 is a mobile-originated message, even if its text looks like a receipt."""
    pdu = _receipt_pdu(b"id:1 stat:DELIVRD", esm_class=0x00)
    assert not is_receipt(pdu)
    assert parse_receipt(_roundtrip(pdu)) is None


@pytest.mark.parametrize("esm_class", [0x08, 0x10, 0x18, 0x40, 0x03])
def test_parse_receipt_returns_none_for_other_message_types(esm_class: int) -> None:
    """SME acks, conversation abort and UDHI-only MO messages are not receipts."""
    pdu = _receipt_pdu(b"id:1 stat:DELIVRD", esm_class=esm_class)
    assert not is_receipt(pdu)
    assert parse_receipt(pdu) is None


@pytest.mark.parametrize("esm_class", [0x04, 0x05, 0x07, 0x44, 0x84, 0xC4, 0x20, 0x60])
def test_is_receipt_tests_only_the_message_type_bits(esm_class: int) -> None:
    """Digest §8: (esm_class & 0x3C) in (0x04, 0x20); UDHI/reply path/mode bits ignored."""
    assert is_receipt(_receipt_pdu(b"", esm_class=esm_class))


def test_parse_receipt_reads_a_udhi_flagged_receipt_without_a_header() -> None:
    """esm_class 0x44 with plain receipt text is still a receipt."""
    pdu = _receipt_pdu(b"id:5 stat:DELIVRD err:000 text:x", esm_class=0x44)
    r = parse_receipt(_roundtrip(pdu))
    assert r is not None
    assert (r.message_id, r.message_state) == ("5", 2)


def test_parse_receipt_falls_back_to_the_whole_text_when_udhi_has_no_header() -> None:
    """A long headerless receipt whose first octet ('i' = 105) reads as a UDH length
    still parses whole, rather than losing its first 106 octets."""
    text = (
        b"id:1234567890 sub:001 dlvrd:001 submit date:2406011230 done date:2406011231 "
        b"stat:DELIVRD err:000 text:Hello world, long"
    )
    assert len(text) > 1 + text[0]
    r = parse_receipt(_roundtrip(_receipt_pdu(text, esm_class=0x44)))
    assert r is not None
    assert (r.message_id, r.stat, r.text) == ("1234567890", "DELIVRD", "Hello world, long")


def test_parse_receipt_skips_a_user_data_header_when_udhi_is_set() -> None:
    """A concatenation UDH (05 00 03 ..) in front of the text is skipped."""
    udh = b"\x05\x00\x03\x2a\x02\x01"
    pdu = _receipt_pdu(udh + b"id:5 stat:UNDELIV err:2003 text:x", esm_class=0x44)
    r = parse_receipt(_roundtrip(pdu))
    assert r is not None
    assert (r.message_id, r.message_state, r.result_code) == ("5", 5, 2003)


def test_parse_receipt_reads_an_intermediate_notification() -> None:
    """esm_class 0x20 with ENROUTE: a receipt that is not final."""
    pdu = _receipt_pdu(b"id:5 sub:001 dlvrd:000 stat:ENROUTE err:000", esm_class=0x20)
    r = parse_receipt(_roundtrip(pdu))
    assert r is not None
    assert r.message_state == MessageState.ENROUTE
    assert not r.is_final


def test_parse_receipt_reads_message_payload_when_short_message_is_empty() -> None:
    """SMPP 3.4 §5.3.2.32: the text may travel in message_payload instead."""
    pdu = _receipt_pdu(b"", tlvs=(Tlv(Tag.message_payload, b"id:77 stat:EXPIRED err:2000"),))
    r = parse_receipt(_roundtrip(pdu))
    assert r is not None
    assert (r.message_id, r.message_state, r.result_code) == ("77", 3, 2000)


def test_parse_receipt_reads_a_data_sm_receipt() -> None:
    """data_sm receipts carry their text in message_payload (SMPP 3.4 §4.7.1)."""
    pdu = DataSm(
        source_addr="01012345678",
        destination_addr="15881234",
        esm_class=EsmClass.SMSC_DELIVERY_RECEIPT,
        tlvs=(
            Tlv(Tag.message_payload, b"id:88 stat:DELIVRD err:000 text:hi"),
            Tlv(Tag.receipted_message_id, "88"),
        ),
    )
    assert is_receipt(pdu)
    r = parse_receipt(_roundtrip(pdu))
    assert r is not None
    assert (r.message_id, r.stat, r.text) == ("88", "DELIVRD", "hi")


def test_parse_receipt_decodes_ucs2_receipt_text() -> None:
    """Some SMSCs send the receipt in UCS2 when the original message was UCS2."""
    pdu = DeliverSm(
        esm_class=0x04,
        data_coding=DataCoding.UCS2,
        short_message="id:12 stat:DELIVRD text:안녕".encode("utf-16-be"),
    )
    r = parse_receipt(_roundtrip(pdu))
    assert r is not None
    assert (r.message_id, r.message_state, r.text) == ("12", 2, "안녕")


def test_parse_receipt_ignores_malformed_optional_tlvs() -> None:
    """A 2-octet network_error_code or a 3-octet result code is dropped, not fatal."""
    pdu = _receipt_pdu(
        b"id:5 stat:UNDELIV err:2003",
        tlvs=(
            Tlv(Tag.network_error_code, b"\x03\x00"),
            Tlv(TAG_KR_RESULT_CODE, b"\x00\x07\xd3"),
        ),
    )
    r = parse_receipt(_roundtrip(pdu))
    assert r is not None
    assert r.network_error_code is None
    assert r.result_code == 2003  # from err, since the TLV was unusable


def test_parse_receipt_returns_none_for_a_receipt_with_nothing_usable() -> None:
    """Receipt esm_class but no id or state anywhere: None, counted by the caller."""
    assert parse_receipt(_receipt_pdu(b"thanks for your message")) is None
    assert parse_receipt(_receipt_pdu(b"", tlvs=(Tlv(Tag.receipted_message_id, ""),))) is None


# --------------------------------------------------------------- property tests

_ID = st.text(alphabet=string.ascii_letters + string.digits + "-", min_size=1, max_size=64)
_TEXT = st.text(alphabet=string.ascii_letters + string.digits + " .,:!?-_()[]#@", max_size=20).map(
    str.strip
)
_DATE = st.builds(
    format_receipt_date,
    st.datetimes(min_value=datetime(1938, 1, 1), max_value=datetime(2037, 12, 31, 23, 59, 59)),
    digits=st.sampled_from([10, 12, 14]),
)
_STATE = st.sampled_from(list(MessageState))
_STAT = st.sampled_from(
    [*STAT_BY_STATE.values(), "FAILED", "DELIVERED", "UNDELIVERABLE", "REJECTED"]
)
_STAT_AND_STATE = st.one_of(
    st.tuples(_STAT, st.none()),
    st.tuples(st.just(""), _STATE.map(int)),
    st.tuples(_STAT, _STATE.map(int)),  # possibly contradicting: both must survive
)


@st.composite
def receipts(draw: st.DrawFn) -> Receipt:
    """Receipts that build_receipt_text can write (one-token fields, text <= 20)."""
    stat, state = draw(_STAT_AND_STATE)
    return Receipt(
        message_id=draw(_ID),
        submitted=draw(st.integers(0, 999)),
        delivered=draw(st.integers(0, 999)),
        submit_date=draw(_DATE),
        done_date=draw(_DATE),
        stat=stat,
        err=draw(st.from_regex(r"[0-9]{3,4}", fullmatch=True)),
        text=draw(_TEXT),
        message_state=state,
        network_error_code=draw(st.none() | st.binary(min_size=3, max_size=3)),
        result_code=draw(st.none() | st.integers(0, 0xFFFF)),
    )


@PROPERTY
@given(receipts())
def test_build_encode_decode_parse_round_trips_generated_receipts(r: Receipt) -> None:
    """parse_receipt(decode(encode(build_receipt_pdu(r)))) == r."""
    pdu = build_receipt_pdu(r, source_addr="01012345678", destination_addr="15881234")
    assert parse_receipt(_roundtrip(pdu)) == r


@PROPERTY
@given(receipts())
def test_build_then_parse_text_round_trips_the_text_fields(r: Receipt) -> None:
    """Without TLVs the text alone gives back every text field of the receipt."""
    expected = Receipt(
        r.message_id, r.submitted, r.delivered, r.submit_date, r.done_date, r.stat, r.err, r.text
    )
    assert parse_receipt_text(build_receipt_text(r)) == expected


_TLV_VALUE = st.one_of(
    st.none(), st.integers(-5, 70000), st.binary(max_size=5), st.text(max_size=8)
)


@PROPERTY
@given(
    esm_class=st.integers(0, 255),
    data_coding=st.integers(0, 255),
    short_message=st.binary(max_size=254),
    tags=st.lists(
        st.tuples(
            st.sampled_from(
                [
                    Tag.receipted_message_id,
                    Tag.message_state,
                    Tag.network_error_code,
                    Tag.message_payload,
                    TAG_KR_RESULT_CODE,
                ]
            ),
            _TLV_VALUE,
        ),
        max_size=5,
    ),
)
def test_parse_receipt_never_raises_on_any_pdu_content(
    esm_class: int, data_coding: int, short_message: bytes, tags: list[tuple[int, object]]
) -> None:
    """Any esm_class, data_coding, octets and TLV values give a Receipt or None."""
    pdu = DeliverSm(
        esm_class=esm_class,
        data_coding=data_coding,
        short_message=short_message,
        tlvs=tuple(Tlv(tag, value) for tag, value in tags),  # type: ignore[arg-type]
    )
    r = parse_receipt(pdu)
    assert r is None or isinstance(r, Receipt)
    if not is_receipt(pdu):
        assert r is None


# ------------------------------------------------------------------ sans-IO rule


def test_receipt_module_imports_nothing_that_does_io_or_reads_the_clock() -> None:
    """Style guide §1.1: protocol/ imports no asyncio, socket, time or logging setup."""
    source = Path(__file__).parents[2] / "protocol" / "receipt.py"
    tree = ast.parse(source.read_text(encoding="utf-8"))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"asyncio", "socket", "time", "logging", "aiosqlite", "selectors"}
    assert "now(" not in source.read_text(encoding="utf-8")
