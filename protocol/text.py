"""Text ⇄ bytes for the SMPP ``data_coding`` values relayd carries (SMPP 3.4 §5.2.19).

Theory of operation
-------------------
``data_coding`` is decoded by looking at the *whole octet* (digest §8, §13): the
SMPP values 0x01..0x0E are not GSM 03.38 data coding schemes, so masking with
``0x0F`` would read e.g. 0xF1 (GSM class 1, default alphabet) as IA5. Every
supported value maps to one :class:`Charset`:

======================  ================================================
data_coding             charset
======================  ================================================
0x00 SMSC default       per peer: :class:`DefaultAlphabet` (GSM7, LATIN1, ASCII)
0x01 IA5                ASCII, strict 7-bit
0x02, 0x04              binary (8-bit octets, no text)
0x03 Latin 1            ISO-8859-1
0x08 UCS2               UTF-16BE; supplementary characters as surrogate pairs
0x0E KS C 5601          EUC-KR restricted to KS X 1001 (완성형)
0xF0..0xFF              GSM 03.38 group 1111: bit 2 set → binary, else GSM7
anything else           unsupported → :class:`~protocol.errors.TextError`
======================  ================================================

GSM 7-bit text is produced and consumed *unpacked* (one septet per octet, MSB 0),
which is what SMPP peers normally exchange (digest §8); :func:`pack_septets` and
:func:`unpack_septets` convert for peers configured for packed septets.

Every failure is a :class:`~protocol.errors.TextError` carrying ``data_coding`` and
``position``: the index of the first offending *character* when encoding, of the
first offending *byte* when decoding. Nothing is ever replaced by ``?``.

KS C 5601 and Python's codecs (verified on CPython 3.11)
--------------------------------------------------------
* ``str.encode("euc_kr")`` turns the 8,822 syllables that exist only in CP949 (똠,
  햏, ...) into an 8-byte KS X 1001 make-up sequence ``A4 D4 + 3 jamo`` instead of
  failing. ``cp949`` encodes them as a UHC pair whose lead byte is below 0xA1. We
  therefore encode with ``cp949`` (strict) and accept the result only if every
  non-ASCII character became one pair of bytes in 0xA1..0xFE. The set accepted this
  way is exactly the set ``euc_kr`` encodes in at most two bytes (8,354 characters,
  2,350 of them Hangul syllables).
* Decoding ``A4 D4 A4 A8 A4 C7 A4 B1`` with ``euc_kr`` *composes* 똠; with
  ``cp949`` it yields the filler U+3164 and three compatibility jamo, which is what
  the bytes literally say in KS X 1001. ``euc_kr`` also rejects a lone ``A4 D4``
  (U+3164) that cp949 decodes. We decode with ``cp949``: liberal on input (UHC
  pairs from CP949 senders decode too), never composing.
"""

from __future__ import annotations

import re
from enum import Enum, StrEnum

from protocol.constants import DataCoding
from protocol.errors import LocalProtocolError, TextError

__all__ = [
    "GSM7_BASIC",
    "GSM7_ESCAPE",
    "GSM7_EXTENSION",
    "BytesLike",
    "Charset",
    "DefaultAlphabet",
    "charset_for",
    "choose_data_coding",
    "decode_text",
    "encode_text",
    "gsm7_septet_count",
    "is_binary",
    "is_ksx1001_bytes",
    "pack_septets",
    "unpack_septets",
]

BytesLike = bytes | bytearray | memoryview


class DefaultAlphabet(StrEnum):
    """What data_coding 0x00 ("SMSC default alphabet") means for one peer.

    SMPP 3.4 §5.2.19 leaves it to the SMSC; it is configured per peer by the caller.
    """

    GSM7 = "gsm7"
    """GSM 03.38 default alphabet + extension table, unpacked (one septet per octet)."""
    LATIN1 = "latin1"
    """ISO-8859-1, one octet per character."""
    ASCII = "ascii"
    """ANSI X3.4, strict 7-bit."""


class Charset(Enum):
    """The character repertoire and byte layout a data_coding selects."""

    GSM7 = "gsm7"
    ASCII = "ascii"
    LATIN1 = "latin1"
    UCS2 = "ucs2"
    KSC5601 = "ksc5601"
    BINARY = "binary"


_DEFAULT_CHARSET: dict[DefaultAlphabet, Charset] = {
    DefaultAlphabet.GSM7: Charset.GSM7,
    DefaultAlphabet.LATIN1: Charset.LATIN1,
    DefaultAlphabet.ASCII: Charset.ASCII,
}

# SMPP 3.4 §5.2.19: the values with a fixed meaning, looked up by the whole octet.
_FIXED_CHARSET: dict[int, Charset] = {
    DataCoding.IA5: Charset.ASCII,
    DataCoding.OCTET_UNSPECIFIED_CDMA: Charset.BINARY,
    DataCoding.LATIN1: Charset.LATIN1,
    DataCoding.OCTET_UNSPECIFIED: Charset.BINARY,
    DataCoding.UCS2: Charset.UCS2,
    DataCoding.KSC5601: Charset.KSC5601,
}

# GSM 03.38 §4, coding group 1111 (0xF0..0xFF): bit 2 is the message coding
# (0 = default alphabet, 1 = 8-bit data); bits 1..0 are the message class.
_GSM_CLASS_GROUP = 0xF0
_GSM_CLASS_8BIT = 0x04


def charset_for(
    data_coding: int, *, default_alphabet: DefaultAlphabet = DefaultAlphabet.GSM7
) -> Charset:
    """Map a data_coding octet to the charset it selects.

    Args:
        data_coding: the SMPP data_coding value (SMPP 3.4 §5.2.19), judged as a whole
            octet.
        default_alphabet: what 0x00 means for this peer.

    Returns:
        The :class:`Charset`; :attr:`Charset.BINARY` for 8-bit data codings.

    Raises:
        TextError: the value is outside 0..255 or a coding relayd does not support
            (JIS, Cyrillic, Hebrew, pictogram, MWI groups, reserved values...).
    """
    if data_coding == DataCoding.SMSC_DEFAULT:
        return _DEFAULT_CHARSET[default_alphabet]
    charset = _FIXED_CHARSET.get(data_coding)
    if charset is not None:
        return charset
    if _GSM_CLASS_GROUP <= data_coding <= 0xFF:
        return Charset.BINARY if data_coding & _GSM_CLASS_8BIT else Charset.GSM7
    raise TextError(f"unsupported data_coding 0x{data_coding:02X}", data_coding=data_coding)


def is_binary(data_coding: int) -> bool:
    """Whether a data_coding carries 8-bit binary data rather than text.

    True for 0x02, 0x04 (SMPP 3.4 §5.2.19) and 0xF4..0xF7, 0xFC..0xFF (GSM 03.38
    group 1111 with bit 2 set). Unsupported text codings (e.g. 0x05 JIS) are not
    binary; :func:`encode_text` rejects them separately.
    """
    if data_coding in (DataCoding.OCTET_UNSPECIFIED_CDMA, DataCoding.OCTET_UNSPECIFIED):
        return True
    return _GSM_CLASS_GROUP <= data_coding <= 0xFF and bool(data_coding & _GSM_CLASS_8BIT)


# ---------------------------------------------------------------------------
# GSM 03.38 default alphabet
# ---------------------------------------------------------------------------

# GSM 03.38 §6.2.1: the default alphabet, indexed by septet. Position 0x1B is the
# escape to the extension table (§6.2.1.1), not a character; it is kept here only
# as a placeholder and removed from the encode map below. Greek capitals are the
# Greek-block code points (U+0394 Δ, U+03A9 Ω...), not the look-alike Ohm sign.
GSM7_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅå"  # 0x00..0x0F
    "\u0394_\u03a6\u0393\u039b\u03a9\u03a0\u03a8\u03a3\u0398\u039e\x1bÆæßÉ"  # 0x10..0x1F
    " !\"#¤%&'()*+,-./"  # 0x20..0x2F (0x24 is ¤ CURRENCY SIGN, not $)
    "0123456789:;<=>?"  # 0x30..0x3F
    "¡ABCDEFGHIJKLMNO"  # 0x40..0x4F
    "PQRSTUVWXYZÄÖÑÜ§"  # 0x50..0x5F
    "¿abcdefghijklmno"  # 0x60..0x6F
    "pqrstuvwxyzäöñüà"  # 0x70..0x7F
)
assert len(GSM7_BASIC) == 128

# GSM 03.38 §6.2.1.1: escape to the extension table.
GSM7_ESCAPE = 0x1B

# GSM 03.38 §6.2.1.1: the default extension table (septet after 0x1B → character).
GSM7_EXTENSION: dict[int, str] = {
    0x0A: "\f",  # form feed (page break)
    0x14: "^",
    0x28: "{",
    0x29: "}",
    0x2F: "\\",
    0x3C: "[",
    0x3D: "~",
    0x3E: "]",
    0x40: "|",
    0x65: "€",
}

_GSM_ENCODE: dict[str, bytes] = {
    ch: bytes((septet,)) for septet, ch in enumerate(GSM7_BASIC) if septet != GSM7_ESCAPE
}
_GSM_ENCODE.update({ch: bytes((GSM7_ESCAPE, septet)) for septet, ch in GSM7_EXTENSION.items()})


def _encode_gsm7(text: str, data_coding: int) -> bytes:
    try:
        return b"".join([_GSM_ENCODE[ch] for ch in text])
    except KeyError:
        pass
    for position, ch in enumerate(text):
        if ch not in _GSM_ENCODE:
            raise TextError(
                f"character U+{ord(ch):04X} at {position} is not in the GSM 03.38 "
                "default alphabet or its extension table",
                data_coding=data_coding,
                position=position,
            )
    raise AssertionError("unreachable")  # pragma: no cover


# The septets whose character is in Latin-1 (all but the escape and the Greek
# capitals Δ Φ Γ Λ Ω Π Ψ Σ Θ Ξ), and a bytes.translate table taking each of them
# to the Latin-1 octet of its character.
_GSM7_LATIN1_SEPTETS = bytes(
    s for s, ch in enumerate(GSM7_BASIC) if s != GSM7_ESCAPE and ord(ch) <= 0xFF
)
_GSM7_TO_LATIN1 = bytes(ord(GSM7_BASIC[b]) if b in _GSM7_LATIN1_SEPTETS else b for b in range(256))


def _decode_gsm7(data: bytes, data_coding: int) -> str:
    # Fast path, the common case: every octet a septet whose character is in
    # Latin-1 (no escape, no Greek capital, MSB 0): two C-level passes
    # (bytes.translate, then a Latin-1 decode) instead of a Python step per
    # septet — ~0.5 µs against ~12 µs for 160 septets, measured. Anything
    # else takes the per-septet loop, which is the reference:
    # tests/protocol/test_text.py proves the two equal (hypothesis).
    if not data.translate(None, _GSM7_LATIN1_SEPTETS):
        return data.translate(_GSM7_TO_LATIN1).decode("latin-1")
    return _decode_gsm7_loop(data, data_coding)


def _decode_gsm7_loop(data: bytes, data_coding: int) -> str:
    out: list[str] = []
    i = 0
    n = len(data)
    while i < n:
        septet = data[i]
        if septet > 0x7F:
            raise TextError(
                f"octet 0x{septet:02X} at {i} is not an unpacked GSM septet (MSB must be 0)",
                data_coding=data_coding,
                position=i,
            )
        if septet != GSM7_ESCAPE:
            out.append(GSM7_BASIC[septet])
            i += 1
            continue
        if i + 1 >= n:
            # An escape with nothing after it is a truncated two-septet character,
            # like an odd UCS2 byte count; the spec defines no meaning for it.
            raise TextError(
                f"escape 0x1B at {i} ends the message", data_coding=data_coding, position=i
            )
        follower = data[i + 1]
        if follower > 0x7F:
            raise TextError(
                f"octet 0x{follower:02X} at {i + 1} is not an unpacked GSM septet",
                data_coding=data_coding,
                position=i + 1,
            )
        extended = GSM7_EXTENSION.get(follower)
        if extended is not None:
            out.append(extended)
        elif follower == GSM7_ESCAPE:
            # GSM 03.38 §6.2.1.1: 1B 1B is reserved for a further extension table;
            # "a receiving entity shall display a space".
            out.append(" ")
        else:
            # GSM 03.38 §6.2.1.1: for an unknown extension code the receiver
            # displays the main-table character.
            out.append(GSM7_BASIC[follower])
        i += 2
    return "".join(out)


def gsm7_septet_count(text: str) -> int:
    """Count the septets ``text`` takes in the GSM 03.38 default alphabet.

    Extension-table characters (``€ [ ] { } ~ ^ \\ |`` and form feed) count as two
    septets (escape + code, GSM 03.38 §6.2.1.1); every other character as one.

    Raises:
        TextError: a character is not representable (``data_coding`` is 0x00).
    """
    return len(_encode_gsm7(text, DataCoding.SMSC_DEFAULT))


def pack_septets(septets: BytesLike, *, fill_bits: int = 0) -> bytes:
    """Pack unpacked septets (one per octet) into 7-bit packed form.

    GSM 03.38 §6.1.2.1.1: septets are packed least significant bit first, the
    first septet in the low 7 bits of the first octet. ``fill_bits`` zero bits are
    put before the first septet, so that, after a User Data Header, the septets
    start on a septet boundary (GSM 03.40 §9.2.3.24).

    Args:
        septets: values 0x00..0x7F, one per octet.
        fill_bits: 0..6 leading zero bits.

    Returns:
        ``ceil((fill_bits + 7 * len(septets)) / 8)`` octets.

    Raises:
        TextError: an input octet is above 0x7F (``position`` is its index).
        LocalProtocolError: ``fill_bits`` is outside 0..6.
    """
    _check_fill_bits(fill_bits)
    out = bytearray()
    acc = 0
    nbits = fill_bits
    for index, septet in enumerate(septets):
        if septet > 0x7F:
            raise TextError(
                f"octet 0x{septet:02X} at {index} is not a septet",
                data_coding=DataCoding.SMSC_DEFAULT,
                position=index,
            )
        acc |= septet << nbits
        nbits += 7
        while nbits >= 8:
            out.append(acc & 0xFF)
            acc >>= 8
            nbits -= 8
    if nbits:
        out.append(acc & 0xFF)
    return bytes(out)


def unpack_septets(data: BytesLike, count: int, *, fill_bits: int = 0) -> bytes:
    """Unpack ``count`` septets from 7-bit packed form (inverse of :func:`pack_septets`).

    GSM 03.38 §6.1.2.1.1. The septet count comes from outside (TP-UDL) because the
    last octet may hold up to 7 spare bits. Octets beyond the last septet are ignored.

    Args:
        data: packed octets.
        count: number of septets to extract.
        fill_bits: 0..6 leading fill bits to skip.

    Returns:
        ``count`` octets, one septet each (MSB 0).

    Raises:
        TextError: ``data`` is too short for ``count`` septets.
        LocalProtocolError: ``fill_bits`` is outside 0..6 or ``count`` is negative.
    """
    _check_fill_bits(fill_bits)
    if count < 0:
        raise LocalProtocolError(f"septet count {count} is negative")
    needed = (fill_bits + 7 * count + 7) // 8
    if len(data) < needed:
        raise TextError(
            f"{count} packed septets need {needed} octets, got {len(data)}",
            data_coding=DataCoding.SMSC_DEFAULT,
            position=len(data),
        )
    out = bytearray()
    acc = 0
    nbits = 0
    source = iter(memoryview(data)[:needed])
    # Skip the fill bits: they sit in the low bits of the first octet.
    if fill_bits:
        acc = next(source) >> fill_bits
        nbits = 8 - fill_bits
    for _ in range(count):
        if nbits < 7:
            acc |= next(source) << nbits
            nbits += 8
        out.append(acc & 0x7F)
        acc >>= 7
        nbits -= 7
    return bytes(out)


def _check_fill_bits(fill_bits: int) -> None:
    if not 0 <= fill_bits <= 6:
        raise LocalProtocolError(f"fill_bits must be 0..6, got {fill_bits}")


# ---------------------------------------------------------------------------
# KS C 5601 (KS X 1001) in EUC-KR
# ---------------------------------------------------------------------------

# KS X 1001 in EUC-KR: ASCII (KS X 1003) as one byte, every other character as a
# pair of bytes both in 0xA1..0xFE. cp949 output is always lead+trail pairs for
# non-ASCII, so matching the whole string pair-wise from the start is unambiguous.
_KSX1001_BYTES = re.compile(rb"(?:[\x00-\x7f]|[\xa1-\xfe][\xa1-\xfe])*")


def _is_ksx1001(encoded: bytes) -> bool:
    return _KSX1001_BYTES.fullmatch(encoded) is not None


def is_ksx1001_bytes(data: bytes) -> bool:
    """Whether ``data``, already known to decode as cp949 (``decode_text`` with
    0x0E), is all KS X 1001: ASCII bytes and pairs of 0xA1–0xFE, no CP949-only
    (UHC) character. The strict ``euc_kr`` decoder, in C, accepts only such
    bytes, at a third of the cost of :data:`_KSX1001_BYTES`; it also refuses a
    broken make-up sequence (A4 D4 + jamo) that the pattern allows, so a refusal
    is settled by the pattern (tests/protocol/test_fast_paths.py proves the
    result equal to the pattern's)."""
    try:
        data.decode("euc_kr")
    except UnicodeDecodeError:
        return _KSX1001_BYTES.fullmatch(data) is not None
    return True


def _encode_ksc5601(text: str, data_coding: int) -> bytes:
    try:
        encoded = text.encode("cp949")
    except UnicodeEncodeError as exc:
        ch = text[exc.start]
        raise TextError(
            f"character U+{ord(ch):04X} at {exc.start} is not in KS X 1001",
            data_coding=data_coding,
            position=exc.start,
        ) from None
    if _is_ksx1001(encoded):
        return encoded
    # Slow path, only on failure: find the first character that cp949 encodes
    # outside KS X 1001 (a UHC-only syllable such as 똠 or 햏).
    for position, ch in enumerate(text):
        if not _is_ksx1001(ch.encode("cp949")):
            raise TextError(
                f"character U+{ord(ch):04X} at {position} exists only in CP949, not in KS X 1001",
                data_coding=data_coding,
                position=position,
            )
    raise AssertionError("unreachable")  # pragma: no cover


def _decode_ksc5601(data: bytes, data_coding: int) -> str:
    try:
        # cp949, not euc_kr: euc_kr composes make-up sequences (A4 D4 + jamo) into
        # syllables; cp949 decodes them literally, as filler + jamo.
        return data.decode("cp949")
    except UnicodeDecodeError as exc:
        raise TextError(
            f"invalid KS C 5601 byte 0x{data[exc.start]:02X} at {exc.start}: {exc.reason}",
            data_coding=data_coding,
            position=exc.start,
        ) from None


# ---------------------------------------------------------------------------
# UCS2 / ASCII / Latin-1
# ---------------------------------------------------------------------------


def _encode_ucs2(text: str, data_coding: int) -> bytes:
    try:
        # Supplementary characters become surrogate pairs (digest §8: "in practice
        # UTF-16BE"); a lone surrogate in the str cannot be encoded.
        return text.encode("utf-16-be")
    except UnicodeEncodeError as exc:
        raise TextError(
            f"lone surrogate U+{ord(text[exc.start]):04X} at {exc.start}",
            data_coding=data_coding,
            position=exc.start,
        ) from None


def _decode_ucs2(data: bytes, data_coding: int) -> str:
    if len(data) % 2:
        raise TextError(
            f"UCS2 data has an odd length {len(data)}",
            data_coding=data_coding,
            position=len(data) - 1,
        )
    try:
        return data.decode("utf-16-be")
    except UnicodeDecodeError as exc:
        raise TextError(
            f"invalid UTF-16 at byte {exc.start}: {exc.reason}",
            data_coding=data_coding,
            position=exc.start,
        ) from None


def _encode_codec(text: str, codec: str, data_coding: int) -> bytes:
    try:
        return text.encode(codec)
    except UnicodeEncodeError as exc:
        raise TextError(
            f"character U+{ord(text[exc.start]):04X} at {exc.start} is not in {codec}",
            data_coding=data_coding,
            position=exc.start,
        ) from None


def _decode_ascii(data: bytes, data_coding: int) -> str:
    try:
        return data.decode("ascii")
    except UnicodeDecodeError as exc:
        raise TextError(
            f"octet 0x{data[exc.start]:02X} at {exc.start} is not 7-bit ASCII",
            data_coding=data_coding,
            position=exc.start,
        ) from None


# ---------------------------------------------------------------------------
# Public entry points
# ---------------------------------------------------------------------------


def encode_text(
    text: str, data_coding: int, *, default_alphabet: DefaultAlphabet = DefaultAlphabet.GSM7
) -> bytes:
    """Encode ``text`` for the given data_coding.

    Args:
        text: the message text.
        data_coding: SMPP 3.4 §5.2.19 value, judged as a whole octet.
        default_alphabet: what 0x00 means for this peer.

    Returns:
        The encoded bytes (GSM 7-bit unpacked: one septet per octet).

    Raises:
        TextError: the coding is binary or unsupported (``position`` -1), or a
            character cannot be represented (``position`` is its index in
            ``text``). Never substitutes ``?``.
    """
    charset = charset_for(data_coding, default_alphabet=default_alphabet)
    if charset is Charset.GSM7:
        return _encode_gsm7(text, data_coding)
    if charset is Charset.UCS2:
        return _encode_ucs2(text, data_coding)
    if charset is Charset.KSC5601:
        return _encode_ksc5601(text, data_coding)
    if charset is Charset.ASCII:
        return _encode_codec(text, "ascii", data_coding)
    if charset is Charset.LATIN1:
        return _encode_codec(text, "latin-1", data_coding)
    raise TextError(f"data_coding 0x{data_coding:02X} is binary, not text", data_coding=data_coding)


def decode_text(
    data: BytesLike,
    data_coding: int,
    *,
    default_alphabet: DefaultAlphabet = DefaultAlphabet.GSM7,
) -> str:
    """Decode bytes received with the given data_coding.

    Args:
        data: the short_message or message_payload octets (without any UDH).
        data_coding: SMPP 3.4 §5.2.19 value, judged as a whole octet.
        default_alphabet: what 0x00 means for this peer.

    Returns:
        The text. For 0x0E, bytes are decoded with cp949 (a superset of KS X 1001),
        so make-up sequences stay filler + jamo and are never composed.

    Raises:
        TextError: the coding is binary or unsupported (``position`` -1), or the
            bytes are invalid (``position`` is the byte offset): a GSM octet above
            0x7F or a trailing escape, an odd UCS2 length or a lone surrogate, an
            invalid KS C 5601 sequence, a non-ASCII octet for IA5/ASCII.
    """
    charset = charset_for(data_coding, default_alphabet=default_alphabet)
    raw = bytes(data)
    if charset is Charset.GSM7:
        return _decode_gsm7(raw, data_coding)
    if charset is Charset.UCS2:
        return _decode_ucs2(raw, data_coding)
    if charset is Charset.KSC5601:
        return _decode_ksc5601(raw, data_coding)
    if charset is Charset.ASCII:
        return _decode_ascii(raw, data_coding)
    if charset is Charset.LATIN1:
        return raw.decode("latin-1")
    raise TextError(f"data_coding 0x{data_coding:02X} is binary, not text", data_coding=data_coding)


def choose_data_coding(text: str, *, prefer_ksc5601: bool = True) -> int:
    """Pick the data_coding for an outbound text.

    With ``prefer_ksc5601`` (the Korean carrier default, korea-messaging.md §2.1):
    0x0E if every character is in KS X 1001 (ASCII included), else 0x08 (UCS2).
    Without it: 0x00 if the text is representable in the GSM 03.38 default
    alphabet — which assumes the peer's default alphabet is GSM7 — else 0x08.

    UCS2 can carry every string without lone surrogates; for such a string the
    later :func:`encode_text` call raises TextError.
    """
    if prefer_ksc5601:
        try:
            _encode_ksc5601(text, DataCoding.KSC5601)
        except TextError:
            return int(DataCoding.UCS2)
        return int(DataCoding.KSC5601)
    if all(ch in _GSM_ENCODE for ch in text):
        return int(DataCoding.SMSC_DEFAULT)
    return int(DataCoding.UCS2)
