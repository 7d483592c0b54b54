"""SMSC delivery receipts: SMPP 3.4 Appendix B text, the receipt TLVs, both directions.

Theory of operation
-------------------
A delivery receipt is a ``deliver_sm`` (or ``data_sm``) whose esm_class message
type, bits 5..2, is 0x04 "SMSC delivery receipt" or 0x20 "intermediate delivery
notification" (SMPP 3.4 §5.2.12; digest §8). The UDHI and reply-path bits may be
set too, so receipt-ness is ``esm_class & 0x3C``, never ``esm_class == 4``.

A receipt carries its facts twice (SMPP 3.4 §4.6.1, Appendix B; digest §9):

* as **TLVs** — ``receipted_message_id`` (0x001E, §5.3.2.12), ``message_state``
  (0x0427, §5.3.2.35), ``network_error_code`` (0x0423, §5.3.2.31) and, on our
  Korean links, the vendor TLV ``TAG_KR_RESULT_CODE`` (0x1401, int2) holding the
  4-digit carrier result code (korea-messaging.md §7, "Convention (SMPP link)");
* as **text** in ``short_message`` (or ``message_payload``), on one line::

      id:IIIIIIIIII sub:SSS dlvrd:DDD submit date:YYMMDDhhmm done date:YYMMDDhhmm
      stat:DDDDDDD err:E text: . . .

  Appendix B calls this format "SMSC vendor specific", and real SMSCs vary it:
  key case (``Text:``, ``ID:``), field order, 10/12/14-digit dates, 1..4-digit
  ``err``, missing fields, extra vendor keys, ids in decimal, hex or anything else.

Building is strict and canonical (:func:`build_receipt_text`,
:func:`receipt_tlvs`, :func:`build_receipt_pdu`). Parsing is tolerant and never
raises on a peer's text (:func:`parse_receipt_text`, :func:`parse_receipt`):

1. Keys are found case-insensitively where a token starts (at the beginning of
   the text or after whitespace, a control character, ``,`` or ``;``) and must be
   followed by ``:``. Keys: ``id sub dlvrd submit date done date stat err text``
   (``submit_date``/``submitdate`` spellings accepted).
2. Only the **first** occurrence of each key counts; the value of a key runs up
   to the next counted key. So a ``text:`` that quotes ``id:`` or ``stat:`` (the
   text is the original message, written last) cannot overwrite those fields,
   while a reordered receipt still parses.
3. Every field but ``text`` is one token: the first whitespace-separated word of
   its value; anything after it (an unknown ``vendor:key``) is ignored. ``text``
   is its whole value with surrounding whitespace and NULs stripped.
4. Where the TLVs are present they win (digest §9 "prefer the TLVs"):
   ``receipted_message_id`` over the text id, ``message_state`` over the text
   ``stat``, the vendor result-code TLV over ``err``. The text values are kept as
   received in :attr:`Receipt.stat` and :attr:`Receipt.err`; decisions read
   :attr:`Receipt.message_state`, :attr:`Receipt.result_code` and
   :attr:`Receipt.is_final`.

Dates stay strings as received (``Receipt.submit_date``); :func:`parse_receipt_date`
turns one into a naive ``datetime`` when needed — Appendix B times are SMSC local
time with no zone (digest §8 "Time format"). This module reads no clock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Final

from protocol.constants import (
    ESM_CLASS_TYPE_MASK,
    TAG_KR_RESULT_CODE,
    DataCoding,
    EsmClass,
    MessageState,
    Tag,
)
from protocol.errors import LocalProtocolError
from protocol.pdu import DataSm, DeliverSm
from protocol.tlv import Tlv, TlvValue

__all__ = [
    "FINAL_STATES",
    "RECEIPT_ESM_TYPES",
    "STAT_BY_STATE",
    "TEXT_CHARS",
    "Receipt",
    "build_receipt_pdu",
    "build_receipt_text",
    "format_receipt_date",
    "is_receipt",
    "parse_receipt",
    "parse_receipt_date",
    "parse_receipt_text",
    "receipt_tlvs",
    "stat_for_state",
    "state_for_stat",
]

# --------------------------------------------------------------------------- stat ⇄ state

# SMPP 3.4 Appendix B Table B-2 (digest §8 message_state table): the `stat:` text
# of each message_state. ENROUTE is not in Table B-2 but is used in practice.
# [v5.0] SCHEDULED (0) and SKIPPED (9) have no receipt text: stat_for_state()
# writes UNKNOWN for them while the message_state TLV carries the exact value.
STAT_BY_STATE: Final[dict[int, str]] = {
    MessageState.ENROUTE: "ENROUTE",
    MessageState.DELIVERED: "DELIVRD",
    MessageState.EXPIRED: "EXPIRED",
    MessageState.DELETED: "DELETED",
    MessageState.UNDELIVERABLE: "UNDELIV",
    MessageState.ACCEPTED: "ACCEPTD",
    MessageState.UNKNOWN: "UNKNOWN",
    MessageState.REJECTED: "REJECTD",
}

# Parsing accepts Table B-2 plus the spellings seen in the field (digest §9):
# long forms, and FAILED, which several SMSCs send for an undeliverable message.
_STATE_BY_STAT: Final[dict[str, MessageState]] = {
    **{stat: MessageState(state) for state, stat in STAT_BY_STATE.items()},
    "FAILED": MessageState.UNDELIVERABLE,
    "DELIVERED": MessageState.DELIVERED,
    "UNDELIVERABLE": MessageState.UNDELIVERABLE,
    "REJECTED": MessageState.REJECTED,
    "ACCEPTED": MessageState.ACCEPTED,
}

# Final states per the digest §8 table (SMPP 3.4 §5.2.28; [v5.0] SKIPPED).
# UNKNOWN is marked "—" there: neither final nor intermediate, so not final here.
FINAL_STATES: Final[frozenset[int]] = frozenset(
    {
        MessageState.DELIVERED,
        MessageState.EXPIRED,
        MessageState.DELETED,
        MessageState.UNDELIVERABLE,
        MessageState.ACCEPTED,
        MessageState.REJECTED,
        MessageState.SKIPPED,
    }
)

# SMPP 3.4 §5.2.12: the esm_class message types (bits 5..2) that make a receipt.
RECEIPT_ESM_TYPES: Final[frozenset[int]] = frozenset(
    {EsmClass.SMSC_DELIVERY_RECEIPT, EsmClass.INTERMEDIATE_NOTIFICATION}
)


def state_for_stat(stat: str) -> MessageState:
    """The message_state a receipt ``stat:`` value means (tolerant).

    Args:
        stat: the stat text, any case, surrounding whitespace ignored.

    Returns:
        The Table B-2 state, or the state of a known field spelling (``FAILED`` →
        UNDELIVERABLE, ``DELIVERED`` → DELIVERED, ...); ``MessageState.UNKNOWN``
        for anything else.
    """
    return _STATE_BY_STAT.get(stat.strip().upper(), MessageState.UNKNOWN)


def stat_for_state(state: int) -> str:
    """The Appendix B ``stat:`` text for a message_state; ``UNKNOWN`` if it has none."""
    return STAT_BY_STATE.get(state, "UNKNOWN")


# A Korean carrier result code in the `err:` field: exactly four digits, 1000..9999
# (korea-messaging.md §7). "0000" is a zero-padded generic error, not a carrier code.
_KR_ERR_RE: Final = re.compile(r"[1-9][0-9]{3}", re.ASCII)
_DIGITS_RE: Final = re.compile(r"[0-9]+", re.ASCII)

# The Appendix B text field is "the first 20 characters of the original message".
TEXT_CHARS: Final = 20

# ------------------------------------------------------------------------- the receipt


@dataclass(frozen=True, slots=True)
class Receipt:
    """One delivery receipt, as built for or parsed from the wire.

    Construction fills the gaps one field leaves in another, so a receipt made
    from either the text or the TLVs alone is complete: an empty ``stat`` is
    derived from ``message_state``, a missing ``message_state`` from a non-empty
    ``stat``, a missing ``result_code`` from a 4-digit ``err`` (1000..9999), and
    an empty ``err`` from ``result_code``. Values that disagree (TLV against text)
    are both kept; decisions read ``message_state`` and ``result_code``.

    Attributes:
        message_id: the SMSC's id of the receipted message (the TLV
            receipted_message_id when present, else the text ``id:``).
        submitted: ``sub:``, the number of messages originally submitted.
        delivered: ``dlvrd:``, the number delivered.
        submit_date: ``submit date:`` as on the wire (``YYMMDDhhmm`` and variants).
        done_date: ``done date:`` as on the wire.
        stat: ``stat:`` as on the wire (``DELIVRD``, ``UNDELIV``, ``FAILED``...).
        err: ``err:`` as on the wire (``000``, ``2003``...).
        text: ``text:``, the first 20 characters of the original message.
        message_state: SMPP 3.4 §5.2.28 state (TLV 0x0427, or derived from ``stat``).
        network_error_code: TLV 0x0423, 3 octets: network type int1 + error int2.
        result_code: the Korean 4-digit carrier result code (vendor TLV 0x1401,
            or ``err`` when it is one).
    """

    message_id: str
    submitted: int = 1
    delivered: int = 0
    submit_date: str = ""
    done_date: str = ""
    stat: str = ""
    err: str = ""
    text: str = ""
    message_state: int | None = None
    network_error_code: bytes | None = None
    result_code: int | None = None

    def __post_init__(self) -> None:
        # Frozen dataclass: derived fields are set through object.__setattr__.
        if self.message_state is None and self.stat:
            object.__setattr__(self, "message_state", int(state_for_stat(self.stat)))
        elif not self.stat and self.message_state is not None:
            object.__setattr__(self, "stat", stat_for_state(self.message_state))
        if self.result_code is None and _KR_ERR_RE.fullmatch(self.err):
            object.__setattr__(self, "result_code", int(self.err))
        elif not self.err and self.result_code is not None:
            object.__setattr__(self, "err", f"{self.result_code:04d}")

    @property
    def is_final(self) -> bool:
        """True if ``message_state`` is a final state (digest §8 table).

        ENROUTE, [v5.0] SCHEDULED, UNKNOWN and an unknown state are not final.
        """
        return self.message_state in FINAL_STATES


# ------------------------------------------------------------------------------- dates

# Appendix B dates: 10 = YYMMDDhhmm (the spec), 12 = YYMMDDhhmmss (common),
# 14 = YYYYMMDDhhmmss (some SMSCs) — digest §9.
_DATE_DIGITS: Final = (10, 12, 14)


def format_receipt_date(dt: datetime, *, digits: int = 10) -> str:
    """Format a receipt ``submit date:``/``done date:`` value.

    The wall-clock fields of ``dt`` are written as they are; no zone conversion
    (Appendix B times are SMSC local time, digest §8).

    Args:
        dt: the time to write.
        digits: 10 for ``YYMMDDhhmm`` (Appendix B), 12 for ``YYMMDDhhmmss``,
            14 for ``YYYYMMDDhhmmss``.

    Returns:
        The date string, ``digits`` characters long.

    Raises:
        ValueError: ``digits`` is not 10, 12 or 14.
    """
    if digits not in _DATE_DIGITS:
        raise ValueError(f"receipt date digits must be 10, 12 or 14, not {digits}")
    # f-strings rather than strftime: %y/%Y padding of small years is platform-dependent.
    core = f"{dt.month:02d}{dt.day:02d}{dt.hour:02d}{dt.minute:02d}"
    if digits == 14:
        return f"{dt.year:04d}{core}{dt.second:02d}"
    year = f"{dt.year % 100:02d}"
    return f"{year}{core}{dt.second:02d}" if digits == 12 else f"{year}{core}"


def parse_receipt_date(
    s: str, *, century_pivot: int = 38, tz: tzinfo | None = None
) -> datetime | None:
    """Parse a receipt date of 10, 12 or 14 digits; None if it is not one.

    Two-digit years below ``century_pivot`` are 20YY, the rest 19YY: by default
    00–37 ⇒ 2000–2037 and 38–99 ⇒ 1938–1999 (SMPP 3.4 Appendix C, digest §8,
    which asks for the pivot to be configurable).

    Args:
        s: ``YYMMDDhhmm``, ``YYMMDDhhmmss`` or ``YYYYMMDDhhmmss``; surrounding
            whitespace is ignored.
        century_pivot: 0..100; 0 reads every two-digit year as 19YY, 100 as 20YY.
        tz: attached as ``tzinfo`` when given (the peer's zone, e.g. KST); the
            result is naive otherwise.

    Returns:
        The datetime, or None for anything else (wrong length, non-digits,
        impossible dates such as month 13).

    Raises:
        ValueError: ``century_pivot`` is outside 0..100 (a caller bug, not input).
    """
    if not 0 <= century_pivot <= 100:
        raise ValueError(f"century_pivot must be in 0..100, not {century_pivot}")
    s = s.strip()
    if len(s) not in _DATE_DIGITS or not _DIGITS_RE.fullmatch(s):
        return None
    if len(s) == 14:
        year, rest = int(s[:4]), s[4:]
    else:
        yy = int(s[:2])
        year, rest = (2000 + yy if yy < century_pivot else 1900 + yy), s[2:]
    second = int(rest[8:10]) if len(rest) == 10 else 0
    try:
        return datetime(
            year, int(rest[0:2]), int(rest[2:4]), int(rest[4:6]), int(rest[6:8]), second, tzinfo=tz
        )
    except ValueError:
        return None


# ------------------------------------------------------------------------------ build

_WS_RE: Final = re.compile(r"\s")


def _one_token(name: str, value: str) -> str:
    # Fields other than text are parsed back as one token: refuse to write a
    # value that would not survive that (a caller bug, so LocalProtocolError).
    if _WS_RE.search(value):
        raise LocalProtocolError(f"receipt {name} must not contain whitespace: {value!r}")
    return value


def build_receipt_text(r: Receipt, *, err_digits: int = 3) -> str:
    """Write the SMPP 3.4 Appendix B receipt text for ``r``.

    Exactly ``id:{id} sub:{sub:03d} dlvrd:{dlvrd:03d} submit date:{..}
    done date:{..} stat:{stat} err:{err} text:{text}``, lower-case keys as in
    the Appendix B field table.

    Args:
        r: the receipt.
        err_digits: width ``err`` is zero-padded to when it is numeric (3 per
            Appendix B). Longer codes are not cut: a Korean 4-digit result code
            stays 4 digits. An empty ``err`` is written as zeros.

    Returns:
        The text; ``text`` is cut to its first 20 characters.

    Raises:
        LocalProtocolError: a negative count, ``err_digits`` < 1, or whitespace in
            a single-token field (id, dates, stat, err).
    """
    if r.submitted < 0 or r.delivered < 0:
        raise LocalProtocolError(
            f"receipt counts must be >= 0: sub={r.submitted} dlvrd={r.delivered}"
        )
    if err_digits < 1:
        raise LocalProtocolError(f"err_digits must be >= 1, not {err_digits}")
    err = _one_token("err", r.err)
    if not err or _DIGITS_RE.fullmatch(err):
        err = err.zfill(err_digits)
    return (
        f"id:{_one_token('id', r.message_id)}"
        f" sub:{r.submitted:03d} dlvrd:{r.delivered:03d}"
        f" submit date:{_one_token('submit date', r.submit_date)}"
        f" done date:{_one_token('done date', r.done_date)}"
        f" stat:{_one_token('stat', r.stat)} err:{err}"
        f" text:{r.text[:TEXT_CHARS]}"
    )


def receipt_tlvs(
    r: Receipt, *, include_state_tlvs: bool = True, include_result_code: bool = True
) -> tuple[Tlv, ...]:
    """The TLVs of a receipt deliver_sm, in a fixed order.

    Args:
        r: the receipt.
        include_state_tlvs: add the SMPP 3.4 receipt TLVs — receipted_message_id
            (§5.3.2.12, when the id is not empty), message_state (§5.3.2.35, when
            known) and network_error_code (§5.3.2.31, when known). Pass False
            for a peer bound with interface_version < 0x34, which must get no
            TLVs at all (SMPP 3.4 §3.4).
        include_result_code: add the vendor TLV ``TAG_KR_RESULT_CODE`` (int2,
            big-endian) when ``result_code`` is known (korea-messaging.md §7).

    Returns:
        The TLVs; empty if nothing applies.

    Raises:
        LocalProtocolError: network_error_code is not 3 octets, or result_code
            does not fit an int2.
    """
    out: list[Tlv] = []
    if include_state_tlvs:
        if r.message_id:
            out.append(Tlv(Tag.receipted_message_id, r.message_id))
        if r.message_state is not None:
            out.append(Tlv(Tag.message_state, int(r.message_state)))
        if r.network_error_code is not None:
            if len(r.network_error_code) != 3:
                raise LocalProtocolError(
                    f"network_error_code must be 3 octets, got {len(r.network_error_code)}"
                )
            out.append(Tlv(Tag.network_error_code, bytes(r.network_error_code)))
    if include_result_code and r.result_code is not None:
        if not 0 <= r.result_code <= 0xFFFF:
            raise LocalProtocolError(f"result_code {r.result_code} does not fit an int2")
        out.append(Tlv(TAG_KR_RESULT_CODE, r.result_code.to_bytes(2, "big")))
    return tuple(out)


def build_receipt_pdu(
    r: Receipt,
    *,
    source_addr: str,
    destination_addr: str,
    source_addr_ton: int = 0,
    source_addr_npi: int = 0,
    dest_addr_ton: int = 0,
    dest_addr_npi: int = 0,
    data_coding: int = 0,
    service_type: str = "",
    sequence_number: int = 0,
    err_digits: int = 3,
    include_state_tlvs: bool = True,
    include_result_code: bool = True,
    extra_tlvs: tuple[Tlv, ...] = (),
) -> DeliverSm:
    """Build the deliver_sm that carries receipt ``r`` (SMPP 3.4 §4.6.1, Appendix B).

    The receipt's source is the original message's destination and its
    destination the original source ([v5.0] §4.3.5.1; digest §9): pass them so.

    Args:
        r: the receipt.
        source_addr: the original message's destination_addr.
        destination_addr: the original message's source_addr.
        source_addr_ton: TON of ``source_addr``.
        source_addr_npi: NPI of ``source_addr``.
        dest_addr_ton: TON of ``destination_addr``.
        dest_addr_npi: NPI of ``destination_addr``.
        data_coding: the deliver_sm's data_coding; the text is ASCII either way.
        service_type: the deliver_sm's service_type.
        sequence_number: left 0 for the session to assign, by default.
        err_digits: see :func:`build_receipt_text`.
        include_state_tlvs: see :func:`receipt_tlvs`.
        include_result_code: see :func:`receipt_tlvs`.
        extra_tlvs: appended after the receipt TLVs.

    Returns:
        A DeliverSm with esm_class 0x04 (SMSC delivery receipt) and the receipt
        text in short_message, ASCII-encoded: a non-ASCII character of the
        original message (Hangul, say) becomes ``?``, since the Appendix B text is
        an ASCII convention and peers parse it as such.

    Raises:
        LocalProtocolError: as :func:`build_receipt_text` and :func:`receipt_tlvs`.
            Field sizes are checked by the codec when the PDU is encoded.
    """
    text = build_receipt_text(r, err_digits=err_digits)
    return DeliverSm(
        sequence_number=sequence_number,
        tlvs=receipt_tlvs(
            r, include_state_tlvs=include_state_tlvs, include_result_code=include_result_code
        )
        + tuple(extra_tlvs),
        service_type=service_type,
        source_addr_ton=source_addr_ton,
        source_addr_npi=source_addr_npi,
        source_addr=source_addr,
        dest_addr_ton=dest_addr_ton,
        dest_addr_npi=dest_addr_npi,
        destination_addr=destination_addr,
        esm_class=EsmClass.SMSC_DELIVERY_RECEIPT,
        data_coding=data_coding,
        short_message=text.encode("ascii", "replace"),
    )


# ------------------------------------------------------------------------------ parse

# A key where a token starts: at the beginning, or after whitespace, a control
# character, ',' or ';' (so "msgid:" and "x-id:" are not "id:"), then ':'.
_KEY_RE: Final = re.compile(
    r"(?<![^\s\x00-\x1f,;])"
    r"(id|sub|dlvrd|submit[ _]?date|done[ _]?date|stat|err|text)"
    r"[ \t]*:",
    re.IGNORECASE | re.ASCII,
)
# Characters stripped from the edges of the whole text and of the `text:` value:
# whitespace and the NUL some SMSCs leave at the end of short_message.
_STRIP: Final = " \t\r\n\x0b\x0c\x00"
# sub/dlvrd are 3 digits; allow a few more, but never feed int() an unbounded
# string (int() refuses > 4300 digits with ValueError, and it would be garbage).
_MAX_COUNT_DIGITS: Final = 9


def _canonical_key(raw: str) -> str:
    # "Submit Date", "submit_date", "submitdate" -> "submitdate"
    return raw.lower().replace(" ", "").replace("_", "")


def _scan(text: str) -> dict[str, str]:
    """Split receipt text into {canonical key: raw value}; first occurrence wins."""
    found: list[tuple[str, int, int]] = []  # (key, key start, value start)
    seen: set[str] = set()
    for m in _KEY_RE.finditer(text):
        key = _canonical_key(m.group(1))
        if key in seen:
            continue  # a repeat belongs to the preceding value (rule 2, module doc)
        seen.add(key)
        found.append((key, m.start(), m.end()))
    fields: dict[str, str] = {}
    for i, (key, _start, vstart) in enumerate(found):
        vend = found[i + 1][1] if i + 1 < len(found) else len(text)
        fields[key] = text[vstart:vend]
    return fields


def _token(fields: dict[str, str], key: str) -> str:
    words = fields.get(key, "").split()
    return words[0] if words else ""


def _count(token: str) -> int | None:
    if token and len(token) <= _MAX_COUNT_DIGITS and _DIGITS_RE.fullmatch(token):
        return int(token)
    return None


def _receipt_from(
    fields: dict[str, str],
    *,
    tlv_id: str | None = None,
    tlv_state: int | None = None,
    tlv_nec: bytes | None = None,
    tlv_code: int | None = None,
) -> Receipt | None:
    """Merge text fields and TLV values into a Receipt; TLVs win (digest §9)."""
    text_id = _token(fields, "id")
    stat = _token(fields, "stat")
    message_id = tlv_id or text_id
    state: int | None
    if tlv_state is not None:
        state = tlv_state
    elif stat:
        state = int(state_for_stat(stat))
    else:
        state = None
    if not message_id and state is None:
        return None  # neither an id nor a state: not a receipt
    submitted = _count(_token(fields, "sub"))
    if submitted is None:
        submitted = 1
    delivered = _count(_token(fields, "dlvrd"))
    if delivered is None:
        # Missing dlvrd: infer it from the outcome, so a receipt rebuilt from this
        # one does not say "dlvrd:000 stat:DELIVRD".
        delivered = submitted if state == MessageState.DELIVERED else 0
    return Receipt(
        message_id=message_id,
        submitted=submitted,
        delivered=delivered,
        submit_date=_token(fields, "submitdate"),
        done_date=_token(fields, "donedate"),
        stat=stat,
        err=_token(fields, "err"),
        text=fields.get("text", "").strip(_STRIP),
        message_state=state,
        network_error_code=tlv_nec,
        result_code=tlv_code,
    )


def _as_text(data: str | bytes | bytearray | memoryview) -> str:
    if isinstance(data, str):
        return data
    # Latin-1 maps every byte to one character: never fails, ASCII unchanged.
    return bytes(data).decode("latin-1")


def parse_receipt_text(text: str | bytes) -> Receipt | None:
    """Parse Appendix B receipt text, tolerantly (see the module docstring).

    Accepts keys in any case and order, missing keys, extra unknown keys,
    10/12/14-digit dates, 1..4-digit ``err``, any id token, ``stat:FAILED``, and
    surrounding whitespace or NULs. Bytes are decoded as Latin-1.

    Args:
        text: the short_message/message_payload of a receipt.

    Returns:
        The receipt, or None when the text has neither an ``id:`` nor a
        ``stat:`` value — it does not look like a receipt. Never raises for any
        ``str`` or ``bytes`` input.
    """
    text = _as_text(text).strip(_STRIP)
    fields = _canonical_fields(text)
    if fields is not None:
        return _receipt_from_canonical(fields, None, None, None, None)
    return _receipt_from(_scan(text))


# The canonical layout, exactly as build_receipt_text writes it (and as most
# SMSCs send it): lower-case keys in Appendix B order, one space apart. On a
# match the tolerant scanner (_scan + _token) would read the very same fields,
# because each token excludes
# * every character after which _KEY_RE may start a key (ASCII whitespace and
#   controls \x00-\x20, ',' and ';'), so no key hides inside a token, and
# * every character str.split() splits on in Latin-1 text (those, \x85, \xa0),
#   so _token() returns the whole token;
# keys repeated inside ``text:`` are repeats (rule 2), as for the scanner;
# sub/dlvrd are 1..9 digits, which _count() reads with int(). Anything else
# (other case or order, extra or missing keys, other spacing) is not matched
# and takes the general path. Measured: ~7 µs per receipt against ~18 µs.
# tests/protocol/test_receipt.py proves the two paths equal (hypothesis).
_TOKEN: Final = r"([^\x00-\x20,;\x85\xa0]+)"
_CANONICAL_MATCH: Final = re.compile(
    rf"id:{_TOKEN} sub:([0-9]{{1,9}}) dlvrd:([0-9]{{1,9}}) submit date:{_TOKEN}"
    rf" done date:{_TOKEN} stat:{_TOKEN} err:{_TOKEN} text:(.*)",
    re.DOTALL,
).fullmatch


def _canonical_fields(text: str) -> tuple[str, ...] | None:
    """The eight field values of canonical receipt ``text`` (already stripped),
    or None if the text is not in the canonical layout."""
    m = _CANONICAL_MATCH(text)
    return None if m is None else m.groups()


def _receipt_from_canonical(
    fields: tuple[str, ...],
    tlv_id: str | None,
    tlv_state: int | None,
    tlv_nec: bytes | None,
    tlv_code: int | None,
) -> Receipt:
    """:func:`_receipt_from` for canonical fields: the same merge, no scanning."""
    message_id, sub, dlvrd, submit_date, done_date, stat, err, text = fields
    return Receipt(
        tlv_id or message_id,
        int(sub),
        int(dlvrd),
        submit_date,
        done_date,
        stat,
        err,
        text.strip(_STRIP),
        int(state_for_stat(stat)) if tlv_state is None else tlv_state,
        tlv_nec,
        tlv_code,
    )


def is_receipt(pdu: DeliverSm | DataSm) -> bool:
    """True if ``pdu`` is a delivery receipt or an intermediate notification.

    Tests the esm_class message type bits 5..2 only (SMPP 3.4 §5.2.12, digest
    §8), so UDHI (0x40) or reply path (0x80) set as well does not matter.
    """
    if not isinstance(pdu, DeliverSm | DataSm):
        return False
    return (pdu.esm_class & ESM_CLASS_TYPE_MASK) in RECEIPT_ESM_TYPES


def _payload(pdu: DeliverSm | DataSm) -> bytes:
    # deliver_sm: short_message, or message_payload when short_message is empty
    # (SMPP 3.4 §5.3.2.32); data_sm has message_payload only.
    if isinstance(pdu, DeliverSm) and pdu.short_message:
        return bytes(pdu.short_message)
    value = pdu.tlv(Tag.message_payload)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("latin-1", "replace")
    return b""


def _decode_payload(raw: bytes, data_coding: int) -> str:
    if data_coding == DataCoding.UCS2:
        # A few SMSCs send the receipt text in UCS2 when the original was UCS2.
        return raw.decode("utf-16-be", "replace")
    return raw.decode("latin-1")


def _text_fields(pdu: DeliverSm | DataSm) -> dict[str, str]:
    raw = _payload(pdu)
    if pdu.esm_class & EsmClass.UDHI and raw:
        # UDHI: the payload may start with a UDH (octet 0 = its length). Try the
        # text after it first, but fall back to the whole payload, because some
        # SMSCs set UDHI on receipts that carry no header.
        udh_end = 1 + raw[0]
        if udh_end <= len(raw):
            fields = _scan(_decode_payload(raw[udh_end:], pdu.data_coding).strip(_STRIP))
            if _token(fields, "id") or _token(fields, "stat"):
                return fields
    return _scan(_decode_payload(raw, pdu.data_coding).strip(_STRIP))


def _tlv_id(value: TlvValue) -> str | None:
    if isinstance(value, bytes | bytearray | memoryview):
        value = bytes(value).split(b"\x00", 1)[0].decode("latin-1")
    if isinstance(value, str):
        value = value.strip(_STRIP)
        return value or None
    return None


def _tlv_state(value: TlvValue) -> int | None:
    if isinstance(value, bytes | bytearray | memoryview) and len(value) == 1:
        return bytes(value)[0]
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 0xFF:
        return int(value)
    return None


def _tlv_nec(value: TlvValue) -> bytes | None:
    # §5.3.2.31: exactly 3 octets; anything else is ignored rather than guessed at.
    if isinstance(value, bytes | bytearray | memoryview) and len(value) == 3:
        return bytes(value)
    return None


def _tlv_code(value: TlvValue) -> int | None:
    # Vendor int2 (korea-messaging.md §7). The codec keeps vendor TLVs raw.
    if isinstance(value, bytes | bytearray | memoryview) and len(value) == 2:
        return int.from_bytes(value, "big")
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 0xFFFF:
        return int(value)
    return None


def parse_receipt(pdu: DeliverSm | DataSm) -> Receipt | None:
    """Read the receipt carried by a deliver_sm or data_sm.

    The text comes from short_message, or message_payload when short_message is
    empty (Latin-1; UTF-16BE when data_coding is UCS2; a leading UDH is skipped
    when UDHI is set). TLVs win over the text (digest §9): receipted_message_id
    over ``id:``, message_state over ``stat:``, the vendor result-code TLV over
    ``err:``; network_error_code comes from its TLV only. A receipt carried only
    by TLVs (empty text) or only by text parses either way.

    Args:
        pdu: a decoded deliver_sm or data_sm.

    Returns:
        The receipt; None if the esm_class message type is neither 0x04 (SMSC
        delivery receipt) nor 0x20 (intermediate notification), or if neither
        the TLVs nor the text give an id or a state. Never raises.
    """
    if not is_receipt(pdu):
        return None
    sm = pdu.short_message if isinstance(pdu, DeliverSm) else b""
    if sm and not pdu.esm_class & _UDHI and pdu.data_coding != _UCS2:
        # What _text_fields reads in this case: short_message as Latin-1, stripped.
        fields = _canonical_fields(bytes(sm).decode("latin-1").strip(_STRIP))
        if fields is not None:
            rid, state, nec, code = _first_receipt_tlvs(pdu.tlvs)
            return _receipt_from_canonical(
                fields, _tlv_id(rid), _tlv_state(state), _tlv_nec(nec), _tlv_code(code)
            )
    return _parse_receipt_general(pdu)


def _first_receipt_tlvs(tlvs: tuple[Tlv, ...]) -> tuple[TlvValue, TlvValue, TlvValue, TlvValue]:
    """The values of the first receipted_message_id, message_state,
    network_error_code and result-code TLVs (None when absent): the four
    ``pdu.tlv()`` look-ups of the general path in one pass."""
    rid = state = nec = code = None
    seen = 0
    for tag, value in tlvs:
        if tag == _TAG_RMI:
            if not seen & 1:
                seen |= 1
                rid = value
        elif tag == _TAG_STATE:
            if not seen & 2:
                seen |= 2
                state = value
        elif tag == _TAG_NEC:
            if not seen & 4:
                seen |= 4
                nec = value
        elif tag == TAG_KR_RESULT_CODE and not seen & 8:
            seen |= 8
            code = value
    return rid, state, nec, code


_TAG_RMI: Final = int(Tag.receipted_message_id)
# Plain ints for the hot path: ``int & IntFlag`` builds an enum member each time.
_UDHI: Final = int(EsmClass.UDHI)
_UCS2: Final = int(DataCoding.UCS2)
_TAG_STATE: Final = int(Tag.message_state)
_TAG_NEC: Final = int(Tag.network_error_code)


def _parse_receipt_general(pdu: DeliverSm | DataSm) -> Receipt | None:
    """parse_receipt without the canonical fast path: the reference."""
    if not is_receipt(pdu):
        return None
    return _receipt_from(
        _text_fields(pdu),
        tlv_id=_tlv_id(pdu.tlv(Tag.receipted_message_id)),
        tlv_state=_tlv_state(pdu.tlv(Tag.message_state)),
        tlv_nec=_tlv_nec(pdu.tlv(Tag.network_error_code)),
        tlv_code=_tlv_code(pdu.tlv(TAG_KR_RESULT_CODE)),
    )
