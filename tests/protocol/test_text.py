"""Tests for protocol/text.py: data_coding ⇄ text (SMPP 3.4 §5.2.19, GSM 03.38)."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.errors import LocalProtocolError, RelayError, TextError
from protocol.text import (
    GSM7_BASIC,
    GSM7_EXTENSION,
    Charset,
    DefaultAlphabet,
    charset_for,
    choose_data_coding,
    decode_text,
    encode_text,
    gsm7_septet_count,
    is_binary,
    pack_septets,
    unpack_septets,
)

PROPERTY = settings(max_examples=200, deadline=None)

# --- independent oracles -------------------------------------------------------

# KS X 1001 as Python's euc_kr codec sees it, excluding its 8-byte make-up sequences:
# a character is in KS X 1001 iff euc_kr encodes it in at most two bytes.
KSX1001_NON_ASCII: list[str] = []
for _cp in range(0x80, 0x10000):
    if 0xD800 <= _cp <= 0xDFFF:
        continue
    try:
        if len(chr(_cp).encode("euc_kr")) == 2:
            KSX1001_NON_ASCII.append(chr(_cp))
    except UnicodeEncodeError:
        pass

GSM7_CHARS = sorted((set(GSM7_BASIC) - {"\x1b"}) | set(GSM7_EXTENSION.values()))

# GSM 03.38 §6.2.1: every position that is not the same character as in ASCII,
# by Unicode name (so a look-alike code point cannot slip in).
GSM7_NAMED_POSITIONS = {
    0x00: "COMMERCIAL AT",
    0x01: "POUND SIGN",
    0x02: "DOLLAR SIGN",
    0x03: "YEN SIGN",
    0x04: "LATIN SMALL LETTER E WITH GRAVE",
    0x05: "LATIN SMALL LETTER E WITH ACUTE",
    0x06: "LATIN SMALL LETTER U WITH GRAVE",
    0x07: "LATIN SMALL LETTER I WITH GRAVE",
    0x08: "LATIN SMALL LETTER O WITH GRAVE",
    0x09: "LATIN CAPITAL LETTER C WITH CEDILLA",
    0x0B: "LATIN CAPITAL LETTER O WITH STROKE",
    0x0C: "LATIN SMALL LETTER O WITH STROKE",
    0x0E: "LATIN CAPITAL LETTER A WITH RING ABOVE",
    0x0F: "LATIN SMALL LETTER A WITH RING ABOVE",
    0x10: "GREEK CAPITAL LETTER DELTA",
    0x11: "LOW LINE",
    0x12: "GREEK CAPITAL LETTER PHI",
    0x13: "GREEK CAPITAL LETTER GAMMA",
    0x14: "GREEK CAPITAL LETTER LAMDA",
    0x15: "GREEK CAPITAL LETTER OMEGA",
    0x16: "GREEK CAPITAL LETTER PI",
    0x17: "GREEK CAPITAL LETTER PSI",
    0x18: "GREEK CAPITAL LETTER SIGMA",
    0x19: "GREEK CAPITAL LETTER THETA",
    0x1A: "GREEK CAPITAL LETTER XI",
    0x1C: "LATIN CAPITAL LETTER AE",
    0x1D: "LATIN SMALL LETTER AE",
    0x1E: "LATIN SMALL LETTER SHARP S",
    0x1F: "LATIN CAPITAL LETTER E WITH ACUTE",
    0x24: "CURRENCY SIGN",
    0x40: "INVERTED EXCLAMATION MARK",
    0x5B: "LATIN CAPITAL LETTER A WITH DIAERESIS",
    0x5C: "LATIN CAPITAL LETTER O WITH DIAERESIS",
    0x5D: "LATIN CAPITAL LETTER N WITH TILDE",
    0x5E: "LATIN CAPITAL LETTER U WITH DIAERESIS",
    0x5F: "SECTION SIGN",
    0x60: "INVERTED QUESTION MARK",
    0x7B: "LATIN SMALL LETTER A WITH DIAERESIS",
    0x7C: "LATIN SMALL LETTER O WITH DIAERESIS",
    0x7D: "LATIN SMALL LETTER N WITH TILDE",
    0x7E: "LATIN SMALL LETTER U WITH DIAERESIS",
    0x7F: "LATIN SMALL LETTER A WITH GRAVE",
}

gsm7_text = st.text(alphabet=st.sampled_from(GSM7_CHARS), max_size=300)
ascii_text = st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=300)
latin1_text = st.text(alphabet=st.characters(max_codepoint=0xFF), max_size=300)
ucs2_text = st.text(max_size=300)  # hypothesis never generates lone surrogates by default
ksc_text = st.text(
    alphabet=st.one_of(st.characters(max_codepoint=0x7F), st.sampled_from(KSX1001_NON_ASCII)),
    max_size=300,
)

# --- GSM 03.38 table ------------------------------------------------------------------


def test_gsm7_basic_table_matches_gsm_0338_by_name() -> None:
    """GSM 03.38 §6.2.1: each of the 128 positions holds the specified character."""
    assert len(GSM7_BASIC) == 128
    for septet, ch in enumerate(GSM7_BASIC):
        if septet == 0x1B:
            continue
        if septet in GSM7_NAMED_POSITIONS:
            assert unicodedata.name(ch) == GSM7_NAMED_POSITIONS[septet], hex(septet)
        else:
            assert ch == chr(septet), hex(septet)


def test_gsm7_extension_table_matches_gsm_0338() -> None:
    """GSM 03.38 §6.2.1.1: the extension table's ten characters and their codes."""
    assert GSM7_EXTENSION == {
        0x0A: "\N{FORM FEED}",
        0x14: "^",
        0x28: "{",
        0x29: "}",
        0x2F: "\\",
        0x3C: "[",
        0x3D: "~",
        0x3E: "]",
        0x40: "|",
        0x65: "\N{EURO SIGN}",
    }


def test_gsm7_encodes_specials_unpacked_one_septet_per_octet() -> None:
    """Unpacked GSM: @ is 0x00, $ is 0x02, ¤ is 0x24, _ is 0x11; MSB always 0."""
    assert encode_text("@$¤_Δà", 0x00) == bytes([0x00, 0x02, 0x24, 0x11, 0x10, 0x7F])


def test_euro_sign_is_an_escape_pair_of_two_septets() -> None:
    """GSM 03.38 §6.2.1.1: € is 1B 65 and counts as two septets."""
    assert encode_text("€", 0x00) == b"\x1b\x65"
    assert gsm7_septet_count("€") == 2
    assert gsm7_septet_count("a€[b") == 6


def test_gsm7_rejects_unrepresentable_character_with_position() -> None:
    """A character outside the GSM alphabet is a TextError at its index, never '?'."""
    with pytest.raises(TextError) as info:
        encode_text("abc한d", 0x00)
    assert info.value.position == 3
    assert info.value.data_coding == 0x00


def test_gsm7_rejects_escape_character_in_text() -> None:
    """ESC is the escape code, not a character the text may contain."""
    with pytest.raises(TextError) as info:
        encode_text("a\x1bb", 0x00)
    assert info.value.position == 1


def test_gsm7_septet_count_rejects_unrepresentable_text() -> None:
    """Counting septets of non-GSM text is a TextError."""
    with pytest.raises(TextError):
        gsm7_septet_count("😀")


def test_gsm7_decode_unknown_escape_falls_back_to_main_table() -> None:
    """GSM 03.38 §6.2.1.1: ESC + unknown code shows the main-table character."""
    assert decode_text(b"\x1b\x41", 0x00) == "A"


def test_gsm7_decode_double_escape_is_space() -> None:
    """GSM 03.38 §6.2.1.1: 1B 1B (further extension, reserved) displays a space."""
    assert decode_text(b"a\x1b\x1bb", 0x00) == "a b"


def test_gsm7_decode_trailing_escape_is_error() -> None:
    """A lone trailing escape is a truncated character: TextError at its offset."""
    with pytest.raises(TextError) as info:
        decode_text(b"ab\x1b", 0x00)
    assert info.value.position == 2


def test_gsm7_decode_rejects_octet_with_msb_set() -> None:
    """Unpacked septets have MSB 0; 0x80 is a TextError at its offset."""
    with pytest.raises(TextError) as info:
        decode_text(b"ab\x80", 0xF0)
    assert info.value.position == 2


# --- packing ----------------------------------------------------------------------------


def test_pack_septets_known_vector_hellohello() -> None:
    """GSM 03.38 §6.1.2.1.1: 'hellohello' packs to E8 32 9B FD 46 97 D9 EC 37."""
    assert pack_septets(b"hellohello") == bytes.fromhex("E8329BFD4697D9EC37")
    assert unpack_septets(bytes.fromhex("E8329BFD4697D9EC37"), 10) == b"hellohello"


def test_pack_septets_fill_bits_shift_first_septet() -> None:
    """With 1 fill bit the first septet starts at bit 1 of the first octet."""
    assert pack_septets(b"\x01", fill_bits=1) == b"\x02"
    assert pack_septets(b"\x7f", fill_bits=6) == b"\xc0\x1f"


def test_pack_rejects_non_septet_and_bad_fill_bits() -> None:
    """Octets above 0x7F are TextError; fill_bits outside 0..6 is LocalProtocolError."""
    with pytest.raises(TextError) as info:
        pack_septets(b"a\x80")
    assert info.value.position == 1
    with pytest.raises(LocalProtocolError):
        pack_septets(b"a", fill_bits=7)
    with pytest.raises(LocalProtocolError):
        unpack_septets(b"a", 1, fill_bits=-1)


def test_unpack_too_short_is_text_error() -> None:
    """8 septets need 7 octets; 6 octets are a TextError, not IndexError."""
    with pytest.raises(TextError):
        unpack_septets(b"\x00" * 6, 8)
    with pytest.raises(TextError):
        unpack_septets(b"\x00" * 7, 8, fill_bits=1)


@PROPERTY
@given(
    septets=st.binary(max_size=200).map(lambda b: bytes(x & 0x7F for x in b)),
    fill_bits=st.integers(0, 6),
)
def test_pack_unpack_round_trip(septets: bytes, fill_bits: int) -> None:
    """unpack(pack(s)) == s, with the expected packed length, for any fill_bits."""
    packed = pack_septets(septets, fill_bits=fill_bits)
    assert len(packed) == (fill_bits + 7 * len(septets) + 7) // 8
    if fill_bits:
        assert packed[0] & ((1 << fill_bits) - 1) == 0
    assert unpack_septets(packed, len(septets), fill_bits=fill_bits) == septets


# --- data_coding dispatch ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("data_coding", "charset"),
    [
        (0x01, Charset.ASCII),
        (0x02, Charset.BINARY),
        (0x03, Charset.LATIN1),
        (0x04, Charset.BINARY),
        (0x08, Charset.UCS2),
        (0x0E, Charset.KSC5601),
        (0xF0, Charset.GSM7),
        (0xF1, Charset.GSM7),
        (0xF3, Charset.GSM7),
        (0xF4, Charset.BINARY),
        (0xF6, Charset.BINARY),
        (0xF7, Charset.BINARY),
        (0xFB, Charset.GSM7),
        (0xFF, Charset.BINARY),
    ],
)
def test_charset_for_judges_the_whole_octet(data_coding: int, charset: Charset) -> None:
    """SMPP 3.4 §5.2.19 / GSM 03.38 group 1111: bit 2 selects 8-bit, else GSM7."""
    assert charset_for(data_coding) is charset


@pytest.mark.parametrize(
    "data_coding",
    [0x05, 0x06, 0x07, 0x09, 0x0A, 0x0B, 0x11, 0x18, 0x1E, 0xC0, 0xD3, 0xE8, 0x100, -1],
)
def test_unsupported_data_coding_is_text_error(data_coding: int) -> None:
    """Unsupported or masked-looking values (0x11, 0x18, 0x1E) are TextError, never another type."""
    with pytest.raises(TextError) as info:
        encode_text("a", data_coding)
    assert info.value.data_coding == data_coding
    with pytest.raises(TextError):
        decode_text(b"a", data_coding)


@pytest.mark.parametrize("data_coding", [0x02, 0x04, 0xF4, 0xF5, 0xF6, 0xF7, 0xFC, 0xFF])
def test_binary_codings_refuse_text(data_coding: int) -> None:
    """8-bit data codings carry no text: encode and decode raise TextError."""
    assert is_binary(data_coding)
    with pytest.raises(TextError):
        encode_text("a", data_coding)
    with pytest.raises(TextError):
        decode_text(b"a", data_coding)


@pytest.mark.parametrize("data_coding", [0x00, 0x01, 0x03, 0x05, 0x08, 0x0E, 0xF0, 0xF3, 0xF8])
def test_text_codings_are_not_binary(data_coding: int) -> None:
    """is_binary is false for text codings, supported or not."""
    assert not is_binary(data_coding)


def test_class_coding_f1_is_gsm_not_ia5() -> None:
    """0xF1 is GSM7 class 1 (digest §13): '@' encodes to 0x00, not ASCII 0x40."""
    assert encode_text("@", 0xF1) == b"\x00"


def test_default_alphabet_selects_meaning_of_zero() -> None:
    """data_coding 0x00 follows the peer's default alphabet."""
    assert encode_text("é", 0x00) == b"\x05"
    assert encode_text("é", 0x00, default_alphabet=DefaultAlphabet.LATIN1) == b"\xe9"
    with pytest.raises(TextError):
        encode_text("é", 0x00, default_alphabet=DefaultAlphabet.ASCII)
    assert decode_text(b"\xe9", 0x00, default_alphabet=DefaultAlphabet.LATIN1) == "é"


def test_ia5_is_strict_seven_bit() -> None:
    """0x01 IA5: non-ASCII characters and octets are TextError with position."""
    with pytest.raises(TextError) as info:
        encode_text("abé", 0x01)
    assert info.value.position == 2
    with pytest.raises(TextError) as info:
        decode_text(b"a\xe9", 0x01)
    assert info.value.position == 1


def test_latin1_rejects_characters_above_ff() -> None:
    """0x03 Latin-1: € is not in ISO-8859-1."""
    with pytest.raises(TextError) as info:
        encode_text("a€", 0x03)
    assert info.value.position == 1


def test_text_error_is_relay_error_and_value_error() -> None:
    """TextError can be caught as RelayError and as ValueError."""
    with pytest.raises(RelayError):
        encode_text("😀", 0x03)
    with pytest.raises(ValueError, match="not in"):
        encode_text("😀", 0x03)


def test_decode_accepts_memoryview_and_bytearray() -> None:
    """Inputs may be bytes, bytearray or memoryview; output is str."""
    assert decode_text(memoryview(b"\x00A"), 0x08) == "A"
    assert decode_text(bytearray(b"hi"), 0x01) == "hi"


# --- UCS2 -------------------------------------------------------------------------------


def test_ucs2_encodes_non_bmp_as_surrogate_pair() -> None:
    """0x08 is UTF-16BE: U+1F600 becomes D83D DE00."""
    assert encode_text("a😀", 0x08) == bytes.fromhex("0061D83DDE00")
    assert decode_text(bytes.fromhex("0061D83DDE00"), 0x08) == "a😀"


def test_ucs2_odd_length_is_error() -> None:
    """An odd byte count is a TextError at the last byte."""
    with pytest.raises(TextError) as info:
        decode_text(b"\x00a\x00", 0x08)
    assert info.value.position == 2


@pytest.mark.parametrize(
    ("data", "position"),
    [("0041D800", 2), ("0041DC000041", 2), ("D8000041", 0), ("D83DD83DDE00", 0)],
)
def test_ucs2_lone_surrogate_is_error(data: str, position: int) -> None:
    """A high surrogate without low, or a lone low surrogate, is a TextError."""
    with pytest.raises(TextError) as info:
        decode_text(bytes.fromhex(data), 0x08)
    assert info.value.position == position


def test_ucs2_encode_lone_surrogate_is_error() -> None:
    """A str holding a lone surrogate cannot be encoded: TextError at its index."""
    with pytest.raises(TextError) as info:
        encode_text("ab\ud800", 0x08)
    assert info.value.position == 2


# --- KS C 5601 ---------------------------------------------------------------------------


def test_ksc5601_encodes_hangul_as_two_bytes() -> None:
    """0x0E: 한 is C7 D1, ASCII one byte, € A2 E6 (KS X 1001:1998)."""
    assert encode_text("a한€", 0x0E) == bytes.fromhex("61C7D1A2E6")


@pytest.mark.parametrize(
    ("text", "position"),
    [
        ("똠", 0),
        ("가나햏", 2),
        ("요금 ₩1000", 3),
        ("a\u00a0b", 1),
        ("안녕😀", 2),
        ("ab똠햏", 2),
    ],
)
def test_ksc5601_rejects_characters_outside_ks_x_1001(text: str, position: int) -> None:
    """CP949-only syllables, ₩, NBSP and emoji are TextError at the first one, never '?'."""
    with pytest.raises(TextError) as info:
        encode_text(text, 0x0E)
    assert info.value.position == position
    assert info.value.data_coding == 0x0E


def test_ksc5601_never_emits_euc_kr_make_up_sequence() -> None:
    """Python's euc_kr turns 똠 into 8 bytes starting A4 D4; we refuse instead."""
    assert "똠".encode("euc_kr").startswith(b"\xa4\xd4")  # the codec behaviour guarded against
    with pytest.raises(TextError):
        encode_text("똠", 0x0E)


def test_ksc5601_filler_and_jamo_round_trip_uncomposed() -> None:
    """A4 D4 A4 A8 A4 C7 A4 B1 decodes to U+3164 + ㄸㅗㅁ, not 똠, and encodes back."""
    data = bytes.fromhex("A4D4A4A8A4C7A4B1")
    text = decode_text(data, 0x0E)
    assert text == "\u3164\u3138\u3157\u3141"
    assert "똠" not in text
    assert encode_text(text, 0x0E) == data


def test_ksc5601_decode_invalid_bytes_reports_offset() -> None:
    """A truncated pair or an undefined lead byte is a TextError at its offset."""
    with pytest.raises(TextError) as info:
        decode_text(b"ab\xb0", 0x0E)
    assert info.value.position == 2
    with pytest.raises(TextError) as info:
        decode_text(b"a\xff\xff", 0x0E)
    assert info.value.position == 1


def test_ksc5601_accepts_exactly_the_ks_x_1001_repertoire() -> None:
    """Every BMP character encodes in 0x0E iff euc_kr encodes it in at most 2 bytes."""
    allowed = set(KSX1001_NON_ASCII)
    assert len(allowed) == 8226  # 8,354 in KS X 1001 incl. ASCII; 2,350 Hangul syllables
    for cp in range(0x80, 0x10000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        ch = chr(cp)
        try:
            encoded = encode_text(ch, 0x0E)
        except TextError:
            assert ch not in allowed, hex(cp)
        else:
            assert ch in allowed, hex(cp)
            assert len(encoded) == 2
            assert all(0xA1 <= b <= 0xFE for b in encoded)


# --- round trips ------------------------------------------------------------------------


@PROPERTY
@given(text=gsm7_text, data_coding=st.sampled_from([0x00, 0xF0, 0xF1, 0xF2, 0xF3]))
def test_gsm7_round_trip_and_septet_count(text: str, data_coding: int) -> None:
    """GSM text round-trips; the septet count equals the unpacked length."""
    encoded = encode_text(text, data_coding)
    assert all(b <= 0x7F for b in encoded)
    assert decode_text(encoded, data_coding) == text
    assert gsm7_septet_count(text) == len(encoded)
    assert len(encoded) == len(text) + sum(ch in GSM7_EXTENSION.values() for ch in text)


@PROPERTY
@given(text=ascii_text)
def test_ascii_round_trip(text: str) -> None:
    """0x01 and 0x00-as-ASCII round-trip every 7-bit string."""
    assert decode_text(encode_text(text, 0x01), 0x01) == text
    ascii0 = DefaultAlphabet.ASCII
    assert (
        decode_text(encode_text(text, 0, default_alphabet=ascii0), 0, default_alphabet=ascii0)
        == text
    )


@PROPERTY
@given(text=latin1_text)
def test_latin1_round_trip(text: str) -> None:
    """0x03 round-trips every Latin-1 string, one octet per character."""
    encoded = encode_text(text, 0x03)
    assert len(encoded) == len(text)
    assert decode_text(encoded, 0x03) == text


@PROPERTY
@given(text=ucs2_text)
def test_ucs2_round_trip(text: str) -> None:
    """0x08 round-trips any text; non-BMP characters take 4 bytes."""
    encoded = encode_text(text, 0x08)
    assert len(encoded) == 2 * len(text) + 2 * sum(ord(ch) > 0xFFFF for ch in text)
    assert decode_text(encoded, 0x08) == text


@PROPERTY
@given(text=ksc_text)
def test_ksc5601_round_trip_and_byte_count(text: str) -> None:
    """0x0E round-trips KS X 1001 text: ASCII 1 byte, everything else 2."""
    encoded = encode_text(text, 0x0E)
    assert len(encoded) == sum(1 if ord(ch) < 0x80 else 2 for ch in text)
    assert encoded == text.encode("euc_kr")
    assert decode_text(encoded, 0x0E) == text


@PROPERTY
@given(
    data=st.binary(max_size=64),
    data_coding=st.sampled_from([0x00, 0x01, 0x03, 0x08, 0x0E, 0xF0, 0x02, 0x05, 0xF6]),
)
def test_decode_garbage_gives_text_or_text_error(data: bytes, data_coding: int) -> None:
    """Any bytes decode to str or raise TextError, never another exception."""
    try:
        result: str | TextError = decode_text(data, data_coding)
    except TextError as exc:
        result = exc
    if isinstance(result, TextError):
        assert result.data_coding == data_coding
    else:
        assert isinstance(result, str)


# --- choose_data_coding -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "prefer_ksc5601", "expected"),
    [
        ("안녕하세요 hello", True, 0x0E),
        ("hello", True, 0x0E),
        ("똠", True, 0x08),
        ("hi 😀", True, 0x08),
        ("hello €", False, 0x00),
        ("안녕", False, 0x08),
        ("ç", False, 0x08),
    ],
)
def test_choose_data_coding(text: str, prefer_ksc5601: bool, expected: int) -> None:
    """KS X 1001 → 0x0E else UCS2; without preference GSM7 → 0x00 else UCS2."""
    assert choose_data_coding(text, prefer_ksc5601=prefer_ksc5601) == expected
