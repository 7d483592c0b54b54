"""Tests for protocol/segment.py: long messages (digest §10, TS 23.040 §9.2.3.24)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.constants import CommandStatus, Tag
from protocol.errors import LocalProtocolError, PduError, TextError
from protocol.segment import (
    AddState,
    ConcatInfo,
    ConcatMethod,
    InformationElement,
    Reassembler,
    Segment,
    concat_info,
    parse_udh,
    split_bytes,
    split_text,
)
from protocol.text import GSM7_BASIC, GSM7_EXTENSION, decode_text, encode_text
from protocol.tlv import Tlv

PROPERTY = settings(max_examples=200, deadline=None)

UDHI = 0x40

GSM7_CHARS = sorted((set(GSM7_BASIC) - {"\x1b"}) | set(GSM7_EXTENSION.values()))
KSC_CHARS = ["a", "Z", " ", "\n", "가", "힝", "ㄱ", "\u3164", "€", "①", "漢"]
# Per-part (single, UDH8, UDH16) limits in octets of encoded text, digest §10.
LIMITS = {
    0x00: (160, 153, 152),
    0x08: (140, 134, 132),
    0x0E: (140, 134, 133),
    0x03: (140, 134, 133),
}


def _texts(alphabet: st.SearchStrategy[str], max_size: int) -> st.SearchStrategy[str]:
    # Hypothesis favours short strings; the second branch makes multi-part texts common.
    return st.text(alphabet=alphabet, max_size=max_size) | st.text(
        alphabet=alphabet, min_size=120, max_size=max_size
    )


TEXT_STRATEGIES = {
    0x00: _texts(st.sampled_from(GSM7_CHARS), 700),
    0x08: _texts(
        st.one_of(st.sampled_from("ab한😀𝄞"), st.characters(exclude_categories=["Cs"])), 400
    ),
    0x0E: _texts(st.sampled_from(KSC_CHARS), 500),
    0x03: _texts(st.characters(max_codepoint=0xFF), 500),
}


def user_data(segment: Segment) -> bytes:
    """The encoded text a segment carries, without UDH."""
    _, data = concat_info(segment.short_message, segment.esm_class_flags, segment.tlvs)
    return data


# --- splitting: explicit cases ------------------------------------------------------------


def test_text_fitting_one_message_gives_one_plain_segment() -> None:
    """160 GSM septets fit one SMS: one segment, no UDHI, no TLVs."""
    [segment] = split_text("a" * 160, 0x00, reference=7)
    assert segment == Segment(b"a" * 160, 0, ())


def test_161_septets_split_into_153_and_8_with_udh8() -> None:
    """UDH8: 05 00 03 RR TT SS before each part; 153 septets per part."""
    segments = split_text("a" * 161, 0x00, reference=0x2A)
    assert [s.short_message[:6] for s in segments] == [
        bytes.fromhex("0500032A0201"),
        bytes.fromhex("0500032A0202"),
    ]
    assert [len(s.short_message) - 6 for s in segments] == [153, 8]
    assert all(s.esm_class_flags == UDHI and s.tlvs == () for s in segments)


def test_udh16_header_and_152_septet_parts() -> None:
    """UDH16: 06 08 04 RRRR TT SS with a big-endian 16-bit reference; 152 per part."""
    segments = split_text("b" * 305, 0x00, method=ConcatMethod.UDH16, reference=0x1234)
    assert [s.short_message[:7] for s in segments] == [
        bytes.fromhex("060804123403" + f"{i:02X}") for i in (1, 2, 3)
    ]
    assert [len(s.short_message) - 7 for s in segments] == [152, 152, 1]


def test_sar_segments_carry_three_tlvs_in_order_and_no_udh() -> None:
    """SAR: ref (int2), total, seqnum on every part; esm_class flags 0."""
    segments = split_text("c" * 200, 0x00, method=ConcatMethod.SAR, reference=0xBEEF)
    assert len(segments) == 2
    for seqnum, segment in enumerate(segments, start=1):
        assert segment.esm_class_flags == 0
        assert segment.tlvs == (
            Tlv(Tag.sar_msg_ref_num, 0xBEEF),
            Tlv(Tag.sar_total_segments, 2),
            Tlv(Tag.sar_segment_seqnum, seqnum),
        )
    assert segments[0].short_message == b"c" * 153


def test_payload_method_always_one_message_payload_segment() -> None:
    """PAYLOAD: empty short_message and one message_payload TLV, even for short text."""
    assert split_text("hi", 0x00, method=ConcatMethod.PAYLOAD, reference=0) == [
        Segment(b"", 0, (Tlv(Tag.message_payload, b"hi"),))
    ]
    [long] = split_text("한" * 1000, 0x0E, method=ConcatMethod.PAYLOAD, reference=0)
    assert long.tlvs == (Tlv(Tag.message_payload, encode_text("한" * 1000, 0x0E)),)


def test_payload_over_64k_is_rejected() -> None:
    """message_payload holds at most 65,535 octets (2-octet TLV length)."""
    split_bytes(b"x" * 0xFFFF, method=ConcatMethod.PAYLOAD, reference=0)
    with pytest.raises(LocalProtocolError):
        split_bytes(b"x" * 0x10000, method=ConcatMethod.PAYLOAD, reference=0)


def test_gsm_boundary_on_escape_pair_moves_whole_pair_to_next_part() -> None:
    """An escape pair at septets 153-154 is not split: part 1 holds 152 septets."""
    text = "a" * 152 + "€" + "b" * 10
    first, second = split_text(text, 0x00, reference=1)
    assert first.short_message[6:] == b"a" * 152
    assert second.short_message[6:] == b"\x1b\x65" + b"b" * 10


def test_gsm_escape_pair_fitting_exactly_stays_in_part() -> None:
    """An escape pair ending exactly at septet 153 stays in part 1."""
    text = "a" * 151 + "€" + "b" * 10
    first, second = split_text(text, 0x00, reference=1)
    assert first.short_message[6:] == b"a" * 151 + b"\x1b\x65"
    assert second.short_message[6:] == b"b" * 10


def test_ucs2_boundary_on_surrogate_pair_moves_whole_pair() -> None:
    """A surrogate pair at chars 67-68 is not split: part 1 holds 66 chars (132 bytes)."""
    text = "a" * 66 + "😀" + "b" * 10
    first, second = split_text(text, 0x08, reference=1)
    assert first.short_message[6:] == encode_text("a" * 66, 0x08)
    assert second.short_message[6:8] == b"\xd8\x3d"
    assert decode_text(second.short_message[6:], 0x08) == "😀" + "b" * 10


def test_ucs2_70_chars_single_71_split_into_67() -> None:
    """UCS2: 70 chars fit one message; 71 give 67 + 4."""
    assert len(split_text("가" * 70, 0x08, reference=0)) == 1
    segments = split_text("가" * 71, 0x08, reference=0)
    assert [len(s.short_message) - 6 for s in segments] == [134, 8]


def test_ksc5601_pair_is_not_split() -> None:
    """KS C 5601: 'a' + 66 Hangul = 133 bytes; the next syllable moves to part 2."""
    text = "a" + "가" * 100
    first, second = split_text(text, 0x0E, reference=9)
    assert first.short_message[6:] == encode_text("a" + "가" * 66, 0x0E)
    assert second.short_message[6:] == encode_text("가" * 34, 0x0E)


def test_split_bytes_uses_8bit_limits() -> None:
    """8-bit data: 140 octets single, 134 per part with UDH8, 133 with UDH16."""
    assert len(split_bytes(bytes(140), reference=0)) == 1
    assert [len(s.short_message) for s in split_bytes(bytes(141), reference=0)] == [140, 13]
    udh16 = split_bytes(bytes(141), method=ConcatMethod.UDH16, reference=0)
    assert [len(s.short_message) for s in udh16] == [140, 15]


def test_limits_can_be_overridden() -> None:
    """single_limit_octets and part_limit_octets replace the defaults."""
    segments = split_text("a" * 25, 0x00, reference=0, single_limit_octets=20, part_limit_octets=10)
    assert [len(s.short_message) - 6 for s in segments] == [10, 10, 5]


def test_part_limit_too_small_for_a_character_is_rejected() -> None:
    """A per-part limit below a character's octet length cannot be honoured."""
    with pytest.raises(LocalProtocolError):
        split_text("😀😀", 0x08, reference=0, single_limit_octets=2, part_limit_octets=3)


def test_split_text_binary_coding_is_text_error() -> None:
    """split_text refuses 8-bit data codings; split_bytes is for those."""
    with pytest.raises(TextError):
        split_text("abc", 0x04, reference=0)


def test_split_text_unencodable_is_text_error() -> None:
    """Characters outside the coding raise TextError with their position."""
    with pytest.raises(TextError) as info:
        split_text("ab똠", 0x0E, reference=0)
    assert info.value.position == 2


@pytest.mark.parametrize(
    ("method", "reference"),
    [
        (ConcatMethod.UDH8, 256),
        (ConcatMethod.UDH8, -1),
        (ConcatMethod.UDH16, 0x10000),
        (ConcatMethod.SAR, 0x10000),
        (ConcatMethod.SAR, -1),
    ],
)
def test_reference_out_of_range_is_local_protocol_error(
    method: ConcatMethod, reference: int
) -> None:
    """UDH8 references are 0..255; UDH16 and SAR 0..65535."""
    with pytest.raises(LocalProtocolError):
        split_text("a" * 300, 0x00, method=method, reference=reference)
    with pytest.raises(LocalProtocolError):
        split_text("a", 0x00, method=method, reference=reference)


def test_reference_edges_are_accepted() -> None:
    """255 fits UDH8 and 65535 fits UDH16."""
    assert split_text("a" * 161, 0x00, reference=255)[0].short_message[3] == 255
    seg = split_text("a" * 161, 0x00, method=ConcatMethod.UDH16, reference=0xFFFF)[0]
    assert seg.short_message[3:5] == b"\xff\xff"


def test_more_than_255_parts_is_rejected() -> None:
    """TS 23.040: TT is one octet; 256 parts cannot be concatenated."""
    split_bytes(bytes(134 * 255), reference=0)
    with pytest.raises(LocalProtocolError):
        split_bytes(bytes(134 * 255 + 1), reference=0)


# --- splitting: properties ---------------------------------------------------------------


@st.composite
def coded_text(draw: st.DrawFn) -> tuple[int, str]:
    data_coding = draw(st.sampled_from(sorted(TEXT_STRATEGIES)))
    return data_coding, draw(TEXT_STRATEGIES[data_coding])


METHODS = list(ConcatMethod)


@PROPERTY
@given(case=coded_text(), method=st.sampled_from(METHODS), reference=st.integers(0, 255))
def test_parts_respect_limits_and_decode_on_their_own(
    case: tuple[int, str], method: ConcatMethod, reference: int
) -> None:
    """No part exceeds its limit and every part decodes alone (no split character)."""
    data_coding, text = case
    segments = split_text(text, data_coding, method=method, reference=reference)
    if method is ConcatMethod.PAYLOAD:
        assert len(segments) == 1
        return
    single, part8, part16 = LIMITS[data_coding]
    part_limit = part16 if method is ConcatMethod.UDH16 else part8
    if len(segments) == 1:
        assert len(segments[0].short_message) <= single
        assert segments[0].esm_class_flags == 0
        assert segments[0].tlvs == ()
    else:
        assert len(encode_text(text, data_coding)) > single
        for segment in segments:
            chunk = user_data(segment)
            assert 0 < len(chunk) <= part_limit
            if data_coding == 0x08:
                assert not 0xDC <= chunk[0] <= 0xDF  # never starts with a low surrogate
                assert not 0xD8 <= chunk[-2] <= 0xDB  # never ends with a high surrogate
            if data_coding == 0x00:
                assert chunk[-1] != 0x1B  # never ends with an escape (0x1B is no ext code)
    decoded = [decode_text(user_data(s), data_coding) for s in segments]
    assert "".join(decoded) == text


@PROPERTY
@given(
    case=coded_text(),
    method=st.sampled_from(METHODS),
    reference=st.integers(0, 255),
    seed=st.integers(0, 2**32 - 1),
)
def test_split_then_reassemble_in_random_order_with_duplicates(
    case: tuple[int, str], method: ConcatMethod, reference: int, seed: int
) -> None:
    """Shuffled parts, some sent twice, reassemble to the original text."""
    data_coding, text = case
    segments = split_text(text, data_coding, method=method, reference=reference)
    rng = random.Random(seed)
    deliveries = list(segments) + rng.sample(segments, k=rng.randint(0, len(segments)))
    rng.shuffle(deliveries)
    reassembler = Reassembler()
    results: list[bytes] = []
    for segment in deliveries:
        body = segment.short_message
        info, data = concat_info(body, segment.esm_class_flags, segment.tlvs)
        if info is None:
            assert len(segments) == 1
            results.append(data)
            continue
        assert info.total == len(segments)
        assert info.reference == reference
        result = reassembler.add(("src", "dst"), info, data, now=0.0)
        if result.state is AddState.COMPLETE:
            assert result.payload is not None
            results.append(result.payload)
        else:
            assert result.state in (AddState.INCOMPLETE, AddState.DUPLICATE)
    # A duplicate arriving after completion starts a new (incomplete) message.
    assert results
    assert decode_text(results[0], data_coding) == text
    for extra in results[1:]:  # single-part duplicates: identical copies
        assert decode_text(extra, data_coding) == text


@PROPERTY
@given(
    data=st.binary(max_size=1000) | st.binary(min_size=135, max_size=1000),
    method=st.sampled_from(METHODS),
)
def test_split_bytes_round_trip(data: bytes, method: ConcatMethod) -> None:
    """Binary data split and reassembled in order gives the same bytes."""
    segments = split_bytes(data, method=method, reference=3)
    reassembler = Reassembler()
    out: bytes | None = None
    for segment in segments:
        info, chunk = concat_info(segment.short_message, segment.esm_class_flags, segment.tlvs)
        if info is None:
            out = chunk
            continue
        assert len(chunk) <= (133 if method is ConcatMethod.UDH16 else 134)
        out = reassembler.add(1, info, chunk, now=0.0).payload
    assert out == data


# --- UDH and SAR parsing -----------------------------------------------------------------


def test_concat_info_reads_udh8() -> None:
    """05 00 03 2A 02 01 → reference 42, part 1 of 2, 8-bit; user data after UDH."""
    info, data = concat_info(bytes.fromhex("0500032A0201") + b"hello", UDHI, ())
    assert info == ConcatInfo(reference=42, total=2, seqnum=1, reference_bits=8)
    assert data == b"hello"


def test_concat_info_reads_udh16() -> None:
    """06 08 04 12 34 03 02 → reference 0x1234, part 2 of 3, 16-bit."""
    info, data = concat_info(bytes.fromhex("06080412340302") + b"x", UDHI | 0x03, ())
    assert info == ConcatInfo(0x1234, 3, 2, 16)
    assert data == b"x"


def test_concat_info_ignores_udh_without_udhi() -> None:
    """Without UDHI the bytes are user data, even if they look like a UDH."""
    body = bytes.fromhex("0500032A0201") + b"hello"
    assert concat_info(body, 0x00, ()) == (None, body)


def test_concat_info_finds_concat_ie_after_other_ies() -> None:
    """A port-addressing IE (0x05) before the concat IE does not hide it."""
    udh = bytes.fromhex("0B" + "05040B840000" + "0003070303")  # UDHL 11: port IE, concat IE
    info, data = concat_info(udh + b"!", UDHI, ())
    assert info == ConcatInfo(7, 3, 3, 8)
    assert data == b"!"


@pytest.mark.parametrize(
    "ie",
    [
        "0003070001",  # TT 0
        "0003070200",  # SS 0
        "0003070203",  # SS > TT
        "08040007 0203",  # 16-bit: SS > TT
    ],
)
def test_concat_info_ignores_invalid_positions(ie: str) -> None:
    """TT or SS = 0, or SS > TT, ⇒ the element is ignored (TS 23.040 §9.2.3.24.1)."""
    element = bytes.fromhex(ie.replace(" ", ""))
    info, data = concat_info(bytes([len(element)]) + element + b"z", UDHI, ())
    assert info is None
    assert data == b"z"


def test_concat_info_ignores_concat_ie_of_wrong_length() -> None:
    """IEI 0x00 must have IEDL 3; a 2-octet one is ignored."""
    info, _ = concat_info(bytes.fromhex("04000201 02") + b"z", UDHI, ())
    assert info is None


SAR = (
    Tlv(Tag.sar_msg_ref_num, 0x0102),
    Tlv(Tag.sar_total_segments, 4),
    Tlv(Tag.sar_segment_seqnum, 3),
)


def test_concat_info_reads_sar_tlvs() -> None:
    """All three SAR TLVs give a 16-bit-reference ConcatInfo."""
    assert concat_info(b"body", 0, SAR) == (ConcatInfo(0x0102, 4, 3, 16), b"body")


@pytest.mark.parametrize("missing", [0, 1, 2])
def test_concat_info_ignores_incomplete_sar_set(missing: int) -> None:
    """SMPP 3.4 §5.3.2.22–24: if one SAR TLV is missing, the others are ignored."""
    tlvs = SAR[:missing] + SAR[missing + 1 :]
    assert concat_info(b"body", 0, tlvs) == (None, b"body")


def test_concat_info_ignores_sar_with_seqnum_above_total() -> None:
    """sar_segment_seqnum beyond sar_total_segments is ignored."""
    tlvs = (SAR[0], Tlv(Tag.sar_total_segments, 2), Tlv(Tag.sar_segment_seqnum, 3))
    assert concat_info(b"body", 0, tlvs)[0] is None


def test_concat_info_reads_raw_bytes_sar_values() -> None:
    """SAR values kept as raw octets are read big-endian."""
    tlvs = (
        Tlv(Tag.sar_msg_ref_num, b"\x01\x02"),
        Tlv(Tag.sar_total_segments, b"\x02"),
        Tlv(Tag.sar_segment_seqnum, b"\x01"),
    )
    assert concat_info(b"", 0, tlvs)[0] == ConcatInfo(0x0102, 2, 1, 16)


def test_concat_info_uses_message_payload_when_short_message_empty() -> None:
    """With sm_length 0 the body (and UDH) is in message_payload."""
    payload = bytes.fromhex("050003090201") + b"abc"
    tlvs = (Tlv(Tag.message_payload, payload),)
    assert concat_info(b"", UDHI, tlvs) == (ConcatInfo(9, 2, 1, 8), b"abc")


def test_parse_udh_returns_elements_and_rest() -> None:
    """UDHL then IEs in order; the rest is user data."""
    elements, rest = parse_udh(bytes.fromhex("08" + "0003010201" + "240101") + b"R")
    assert elements == (
        InformationElement(0x00, b"\x01\x02\x01"),
        InformationElement(0x24, b"\x01"),
    )
    assert rest == b"R"


@pytest.mark.parametrize(
    "data",
    [
        "",  # no UDHL at all
        "05000301",  # UDHL 5 beyond data
        "03000501",  # IE length 5 beyond UDHL 3
        "04000101" + "00" + "41",  # UDHL 4: IE 00/1/01, then a lone IEI octet
    ],
)
def test_parse_udh_malformed_is_pdu_error(data: str) -> None:
    """A malformed UDH is a PduError with ESME_RINVESMCLASS, never IndexError."""
    with pytest.raises(PduError) as info:
        parse_udh(bytes.fromhex(data))
    assert info.value.command_status == CommandStatus.ESME_RINVESMCLASS


def test_parse_udh_with_zero_length_header() -> None:
    """UDHL 0 is an empty header."""
    assert parse_udh(b"\x00abc") == ((), b"abc")


@PROPERTY
@given(data=st.binary(max_size=40), esm_class=st.integers(0, 255))
def test_concat_info_on_garbage_returns_or_raises_pdu_error(data: bytes, esm_class: int) -> None:
    """Arbitrary bytes give a result or a PduError, never another exception."""
    try:
        info, rest = concat_info(data, esm_class, ())
    except PduError:
        assert esm_class & UDHI
    else:
        assert len(rest) <= len(data)
        if info is not None:
            assert 1 <= info.seqnum <= info.total


# --- Reassembler --------------------------------------------------------------------------


def part(seqnum: int, total: int = 3, reference: int = 5) -> ConcatInfo:
    return ConcatInfo(reference=reference, total=total, seqnum=seqnum, reference_bits=8)


def test_reassembles_out_of_order_parts() -> None:
    """Parts 3, 1, 2 give INCOMPLETE, INCOMPLETE, COMPLETE with seqnum-ordered payload."""
    r = Reassembler()
    assert r.add("k", part(3), b"C", now=0).state is AddState.INCOMPLETE
    assert r.add("k", part(1), b"A", now=1).state is AddState.INCOMPLETE
    assert r.pending_count == 1
    result = r.add("k", part(2), b"B", now=2)
    assert result.state is AddState.COMPLETE
    assert result.payload == b"ABC"
    assert r.pending_count == 0


def test_duplicate_part_is_reported_and_ignored() -> None:
    """The same seqnum with the same bytes is DUPLICATE; state unchanged."""
    r = Reassembler()
    r.add("k", part(1), b"A", now=0)
    assert r.add("k", part(1), b"A", now=0).state is AddState.DUPLICATE
    assert r.add("k", part(2), b"B", now=0).state is AddState.INCOMPLETE
    assert r.add("k", part(3), b"C", now=0).payload == b"ABC"


def test_conflicting_part_keeps_first_copy() -> None:
    """The same seqnum with different bytes is CONFLICT; the first copy wins."""
    r = Reassembler()
    r.add("k", part(1), b"A", now=0)
    result = r.add("k", part(1), b"X", now=0)
    assert result.state is AddState.CONFLICT
    assert result.payload is None
    r.add("k", part(2), b"B", now=0)
    assert r.add("k", part(3), b"C", now=0).payload == b"ABC"


def test_single_part_message_completes_at_once() -> None:
    """total 1 completes immediately and holds nothing."""
    r = Reassembler()
    result = r.add("k", part(1, total=1), b"solo", now=0)
    assert (result.state, result.payload) == (AddState.COMPLETE, b"solo")
    assert r.pending_count == 0


def test_keys_references_and_widths_do_not_mix() -> None:
    """Different caller keys, references, totals or reference widths are different messages."""
    r = Reassembler()
    r.add("a", part(1, total=2), b"a1", now=0)
    r.add("b", part(2, total=2), b"b2", now=0)
    r.add("a", part(2, total=2, reference=6), b"x", now=0)
    r.add("a", part(2, total=3), b"y", now=0)
    r.add("a", ConcatInfo(5, 2, 2, 16), b"z", now=0)
    assert r.pending_count == 5
    assert r.add("a", part(2, total=2), b"a2", now=0).payload == b"a1a2"


def test_evicts_oldest_incomplete_message_when_full() -> None:
    """At max_pending, a new message evicts the oldest and reports what it held."""
    r = Reassembler(max_pending=2)
    r.add("first", part(2), b"F2", now=1)
    r.add("second", part(1), b"S1", now=2)
    r.add("first", part(3), b"F3", now=3)  # not new: no eviction
    result = r.add("third", part(1), b"T1", now=4)
    assert result.state is AddState.INCOMPLETE
    assert result.evicted is not None
    assert result.evicted.key == "first"
    assert result.evicted.present == (2, 3)
    assert result.evicted.missing == (1,)
    assert result.evicted.parts == ((2, b"F2"), (3, b"F3"))
    assert result.evicted.first_seen == 1
    assert r.pending_count == 2
    # "first" is gone: its part 1 starts a new message.
    assert r.add("first", part(1), b"F1", now=5).evicted is not None


def test_expire_drops_and_reports_old_incomplete_messages() -> None:
    """expire() returns messages whose first part is max_age_s old, with missing seqnums."""
    r = Reassembler()
    r.add("old", part(1), b"o", now=100.0)
    r.add("new", part(2), b"n", now=105.0)
    r.add("old", part(3), b"o3", now=109.0)  # later parts do not refresh the age
    assert r.expire(now=109.9, max_age_s=10.0) == []
    expired = r.expire(now=110.0, max_age_s=10.0)
    assert [(e.key, e.present, e.missing) for e in expired] == [("old", (1, 3), (2,))]
    assert r.pending_count == 1
    assert [e.key for e in r.expire(now=1000.0, max_age_s=10.0)] == ["new"]
    assert r.pending_count == 0


def test_invalid_part_info_is_rejected() -> None:
    """seqnum 0 or above total, or total above 255, is a LocalProtocolError."""
    r = Reassembler()
    for info in (part(0), part(4, total=3), part(1, total=256)):
        with pytest.raises(LocalProtocolError):
            r.add("k", info, b"", now=0)
    assert r.pending_count == 0


def test_max_pending_must_be_positive() -> None:
    """A reassembler that can hold nothing is a configuration error."""
    with pytest.raises(LocalProtocolError):
        Reassembler(max_pending=0)
