"""Long messages: splitting, User Data Header parsing and reassembly.

SMPP 3.4 §3.2.3, §5.2.12, §5.3.2.22–24, §5.3.2.32; GSM 03.40 / 3GPP TS 23.040
§9.2.3.24 (digest §10).

Theory of operation
-------------------
Outbound, :func:`split_text` encodes a text once (:func:`protocol.text.encode_text`)
and cuts the encoded bytes into parts by one of four :class:`ConcatMethod` s:

* ``UDH8`` / ``UDH16``: each part's short_message starts with a User Data Header
  holding IEI 0x00 (8-bit reference) or IEI 0x08 (16-bit reference); the caller
  ORs :attr:`Segment.esm_class_flags` (UDHI, 0x40) into esm_class.
* ``SAR``: no UDH; each part carries sar_msg_ref_num, sar_total_segments and
  sar_segment_seqnum TLVs, in that order.
* ``PAYLOAD``: one PDU, empty short_message, the whole body in message_payload;
  the SMSC segments.

A text that fits one message yields exactly one :class:`Segment` without UDH or SAR
TLVs (for ``PAYLOAD`` always one message_payload segment).

Cuts fall only on character boundaries *of the encoded form*: a GSM escape pair
(0x1B + code), a UTF-16 surrogate pair and a two-byte KS C 5601 character are
never split (digest §10). Limits are counted in octets of encoded text after the
UDH; for unpacked GSM 7-bit one octet is one septet, so the GSM limits are the
septet limits of the digest's table. Packing septets (with fill bits after a UDH)
is left to peers configured for packed GSM (:func:`protocol.text.pack_septets`).

Inbound, :func:`concat_info` extracts the concatenation element from a UDH or the
SAR TLVs, and :class:`Reassembler` joins parts. The reassembler is pure and
bounded: it never reads a clock (``now`` is passed in, style guide §1.1), holds at
most ``max_pending`` incomplete messages (evicting and reporting the oldest), and
hands incomplete messages back explicitly through :meth:`Reassembler.expire`.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import NamedTuple

from protocol.constants import CommandStatus, EsmClass, Tag
from protocol.errors import LocalProtocolError, PduError
from protocol.text import (
    GSM7_ESCAPE,
    BytesLike,
    Charset,
    DefaultAlphabet,
    charset_for,
    encode_text,
)
from protocol.tlv import Tlv

__all__ = [
    "DEFAULT_MAX_PENDING",
    "IEI_CONCAT_8BIT",
    "IEI_CONCAT_16BIT",
    "MAX_PARTS",
    "MESSAGE_PAYLOAD_MAX",
    "AddResult",
    "AddState",
    "ConcatInfo",
    "ConcatMethod",
    "Incomplete",
    "InformationElement",
    "Reassembler",
    "Segment",
    "concat_info",
    "default_limits",
    "parse_udh",
    "split_bytes",
    "split_text",
]

# TS 23.040 §9.2.3.24.1 / §9.2.3.24.8: concatenated short messages, 8- and 16-bit
# reference.
IEI_CONCAT_8BIT = 0x00
IEI_CONCAT_16BIT = 0x08

# TS 23.040 §9.2.3.24.1: total and sequence number are one octet each; SMPP 3.4
# §5.3.2.23 sar_total_segments is 1..255.
MAX_PARTS = 255

# SMPP 3.4 §5.3.2.32: message_payload is up to 64K; a TLV length is 2 octets.
MESSAGE_PAYLOAD_MAX = 0xFFFF

_MAX_REF_8 = 0xFF
_MAX_REF_16 = 0xFFFF

# Digest §10 table, in octets of encoded text after the UDH:
# (single message, per part with 8-bit ref UDH (6 octets), per part with 16-bit
# ref UDH (7 octets)). GSM: 140 octets = 160 septets; a 6-octet UDH plus fill takes
# 7 septets (153 left), a 7-octet UDH 8 septets (152 left). UCS2 parts hold whole
# 2-octet units: 134 and floor(133 / 2) * 2 = 132.
_GSM7_LIMITS = (160, 153, 152)
_UCS2_LIMITS = (140, 134, 132)
_OCTET_LIMITS = (140, 134, 133)


class ConcatMethod(Enum):
    """How a long message is carried (digest §10)."""

    UDH8 = "udh8"
    """UDH IEI 0x00, 8-bit reference (``05 00 03 RR TT SS``)."""
    UDH16 = "udh16"
    """UDH IEI 0x08, 16-bit reference (``06 08 04 RR RR TT SS``)."""
    SAR = "sar"
    """SAR TLVs (SMPP 3.4 §5.3.2.22–24), no UDH."""
    PAYLOAD = "payload"
    """One message_payload TLV (SMPP 3.4 §5.3.2.32); the SMSC segments."""


@dataclass(frozen=True, slots=True)
class Segment:
    """One PDU's worth of a (possibly long) message.

    Attributes:
        short_message: the short_message field (UDH included for UDH methods;
            empty for ``PAYLOAD``).
        esm_class_flags: ``EsmClass.UDHI`` (0x40) for a UDH part, else 0; the
            caller ORs it into esm_class.
        tlvs: SAR TLVs (ref, total, seqnum) or the single message_payload TLV.
    """

    short_message: bytes
    esm_class_flags: int
    tlvs: tuple[Tlv, ...]


def default_limits(charset: Charset, method: ConcatMethod) -> tuple[int, int]:
    """The default (single message, per part) limits in octets of encoded text.

    Per digest §10. SAR parts use the 8-bit-reference UDH limits ("size SAR segments
    with the same per-part limits"): the SMSC adds its own UDH when delivering.
    ``PAYLOAD`` is limited only by the message_payload TLV (65,535 octets).
    GSM 7-bit limits are septets, i.e. octets of the unpacked encoding; every
    one-octet-per-character coding (Latin-1, ASCII, KS C 5601, binary) uses the
    8-bit data limits.
    """
    if method is ConcatMethod.PAYLOAD:
        return MESSAGE_PAYLOAD_MAX, MESSAGE_PAYLOAD_MAX
    if charset is Charset.GSM7:
        single, part8, part16 = _GSM7_LIMITS
    elif charset is Charset.UCS2:
        single, part8, part16 = _UCS2_LIMITS
    else:
        single, part8, part16 = _OCTET_LIMITS
    return single, (part16 if method is ConcatMethod.UDH16 else part8)


def split_text(
    text: str,
    data_coding: int,
    *,
    method: ConcatMethod = ConcatMethod.UDH8,
    reference: int,
    default_alphabet: DefaultAlphabet = DefaultAlphabet.GSM7,
    single_limit_octets: int | None = None,
    part_limit_octets: int | None = None,
) -> list[Segment]:
    """Encode ``text`` and split it into PDU-sized segments.

    Args:
        text: the message text.
        data_coding: SMPP 3.4 §5.2.19 value (a text coding; whole octet).
        method: how parts are tied together.
        reference: the concatenation reference: 0..255 for ``UDH8``, 0..65535 for
            ``UDH16`` and ``SAR``; ignored for ``PAYLOAD``. Checked even when the
            text fits one message.
        default_alphabet: what data_coding 0x00 means for this peer.
        single_limit_octets: override the single-message limit (octets of encoded
            text; for ``PAYLOAD`` the cap on the payload).
        part_limit_octets: override the per-part limit (octets of encoded text
            after the UDH).

    Returns:
        One segment if the encoded text fits ``single_limit_octets`` (no UDH, no SAR
        TLVs), else 2..255 parts in sequence order. ``PAYLOAD`` always returns one
        message_payload segment.

    Raises:
        TextError: the coding is binary or unsupported, or the text cannot be
            encoded in it.
        LocalProtocolError: bad reference or limits, more than 255 parts, or a
            payload larger than the message_payload limit.
    """
    charset = charset_for(data_coding, default_alphabet=default_alphabet)
    encoded = encode_text(text, data_coding, default_alphabet=default_alphabet)
    return _split(encoded, charset, method, reference, single_limit_octets, part_limit_octets)


def split_bytes(
    data: BytesLike,
    *,
    method: ConcatMethod = ConcatMethod.UDH8,
    reference: int,
    single_limit_octets: int | None = None,
    part_limit_octets: int | None = None,
) -> list[Segment]:
    """Split binary or pre-encoded data where every octet is a unit.

    Same contract as :func:`split_text` with the 8-bit data limits (140 octets
    single, 134 / 133 per part). Use :func:`split_text` for text, so multi-octet
    characters are never cut.

    Raises:
        LocalProtocolError: bad reference or limits, more than 255 parts, or a
            payload larger than the message_payload limit.
    """
    return _split(
        bytes(data), Charset.BINARY, method, reference, single_limit_octets, part_limit_octets
    )


def _split(
    data: bytes,
    charset: Charset,
    method: ConcatMethod,
    reference: int,
    single_limit: int | None,
    part_limit: int | None,
) -> list[Segment]:
    default_single, default_part = default_limits(charset, method)
    single = default_single if single_limit is None else single_limit
    part = default_part if part_limit is None else part_limit
    if single < 0 or part < 1:
        raise LocalProtocolError(f"invalid limits: single {single}, per part {part}")

    if method is ConcatMethod.PAYLOAD:
        cap = min(single, MESSAGE_PAYLOAD_MAX)
        if len(data) > cap:
            raise LocalProtocolError(
                f"{len(data)} octets exceed the message_payload limit of {cap}"
            )
        return [Segment(b"", 0, (Tlv(Tag.message_payload, data),))]

    max_reference = _MAX_REF_8 if method is ConcatMethod.UDH8 else _MAX_REF_16
    if not 0 <= reference <= max_reference:
        raise LocalProtocolError(
            f"reference {reference} does not fit {method.name} (0..{max_reference})"
        )

    if len(data) <= single:
        return [Segment(data, 0, ())]

    chunks = _cut(data, charset, part)
    total = len(chunks)
    if total > MAX_PARTS:
        raise LocalProtocolError(
            f"message needs {total} parts; at most {MAX_PARTS} can be concatenated"
        )

    segments: list[Segment] = []
    for seqnum, chunk in enumerate(chunks, start=1):
        if method is ConcatMethod.SAR:
            # SMPP 3.4 §5.3.2.22–24: all three on every part, ref constant per message.
            tlvs = (
                Tlv(Tag.sar_msg_ref_num, reference),
                Tlv(Tag.sar_total_segments, total),
                Tlv(Tag.sar_segment_seqnum, seqnum),
            )
            segments.append(Segment(chunk, 0, tlvs))
            continue
        if method is ConcatMethod.UDH8:
            # TS 23.040 §9.2.3.24.1: UDHL 5, IEI 00, IEDL 3, ref, total, seqnum.
            udh = bytes((5, IEI_CONCAT_8BIT, 3, reference, total, seqnum))
        else:
            # TS 23.040 §9.2.3.24.8: UDHL 6, IEI 08, IEDL 4, ref (BE), total, seqnum.
            udh = bytes((6, IEI_CONCAT_16BIT, 4, reference >> 8, reference & 0xFF, total, seqnum))
        segments.append(Segment(udh + chunk, int(EsmClass.UDHI), ()))
    return segments


def _cut(data: bytes, charset: Charset, limit: int) -> list[bytes]:
    """Cut encoded bytes into chunks of at most ``limit`` octets on unit boundaries."""
    if charset in (Charset.BINARY, Charset.ASCII, Charset.LATIN1):
        return [data[i : i + limit] for i in range(0, len(data), limit)]
    chunks: list[bytes] = []
    start = 0
    i = 0
    n = len(data)
    while i < n:
        octet = data[i]
        if charset is Charset.GSM7:
            # GSM 03.38 §6.2.1.1: escape + code is one character of two septets.
            unit = 2 if octet == GSM7_ESCAPE else 1
        elif charset is Charset.UCS2:
            # A high surrogate (D800..DBFF) and its low surrogate are one character.
            unit = 4 if 0xD8 <= octet <= 0xDB else 2
        else:
            # KS X 1001 in EUC-KR: ASCII one octet, everything else two.
            unit = 1 if octet < 0x80 else 2
        if unit > limit:
            raise LocalProtocolError(f"per-part limit {limit} cannot hold a {unit}-octet character")
        if i + unit - start > limit:
            chunks.append(data[start:i])
            start = i
        i += unit
    chunks.append(data[start:])
    return chunks


# ---------------------------------------------------------------------------
# Inbound: UDH and SAR
# ---------------------------------------------------------------------------


class InformationElement(NamedTuple):
    """One UDH information element (TS 23.040 §9.2.3.24): IEI and its data."""

    iei: int
    data: bytes


@dataclass(frozen=True, slots=True)
class ConcatInfo:
    """Where one part sits in a concatenated message.

    Attributes:
        reference: the concatenation reference (constant per message).
        total: number of parts, 1..255.
        seqnum: this part, 1..total.
        reference_bits: 8 (UDH IEI 0x00) or 16 (UDH IEI 0x08, SAR TLVs).
    """

    reference: int
    total: int
    seqnum: int
    reference_bits: int


def parse_udh(short_message: BytesLike) -> tuple[tuple[InformationElement, ...], bytes]:
    """Split a User Data Header off the front of the user data.

    TS 23.040 §9.2.3.24: ``UDHL, {IEI, IEDL, IED...}...`` then the user data. Call
    only when esm_class has UDHI (0x40) set.

    Args:
        short_message: short_message (or message_payload) octets starting with UDHL.

    Returns:
        The information elements in order, and the user data after the header.

    Raises:
        PduError: the header is malformed (empty data, UDHL beyond the data, or an
            IE running past UDHL), with ``ESME_RINVESMCLASS``: esm_class announced a
            UDH that the data does not hold.
    """
    data = bytes(short_message)
    if not data:
        raise PduError("UDHI is set but the user data is empty", CommandStatus.ESME_RINVESMCLASS)
    udhl = data[0]
    if 1 + udhl > len(data):
        raise PduError(
            f"UDHL {udhl} exceeds the {len(data) - 1} octets after it",
            CommandStatus.ESME_RINVESMCLASS,
        )
    header = data[1 : 1 + udhl]
    elements: list[InformationElement] = []
    i = 0
    while i < udhl:
        if i + 2 > udhl:
            raise PduError(
                f"UDH information element at {1 + i} is truncated",
                CommandStatus.ESME_RINVESMCLASS,
            )
        iei = header[i]
        iedl = header[i + 1]
        end = i + 2 + iedl
        if end > udhl:
            raise PduError(
                f"UDH IE 0x{iei:02X} length {iedl} runs past UDHL {udhl}",
                CommandStatus.ESME_RINVESMCLASS,
            )
        elements.append(InformationElement(iei, header[i + 2 : end]))
        i = end
    return tuple(elements), data[1 + udhl :]


def _valid_position(total: int, seqnum: int) -> bool:
    # TS 23.040 §9.2.3.24.1: TT or SS = 0, or SS > TT ⇒ ignore the element.
    return 1 <= seqnum <= total


def _from_udh(elements: Iterable[InformationElement]) -> ConcatInfo | None:
    for iei, ied in elements:
        if iei == IEI_CONCAT_8BIT and len(ied) == 3:
            ref, total, seqnum, bits = ied[0], ied[1], ied[2], 8
        elif iei == IEI_CONCAT_16BIT and len(ied) == 4:
            ref, total, seqnum, bits = (ied[0] << 8) | ied[1], ied[2], ied[3], 16
        else:
            continue
        if _valid_position(total, seqnum):
            return ConcatInfo(ref, total, seqnum, bits)
    return None


def _tlv_int(tlvs: Sequence[Tlv], tag: int, size: int) -> int | None:
    for tlv in tlvs:
        if tlv.tag != tag:
            continue
        value = tlv.value
        if isinstance(value, int):
            return value if 0 <= value < (1 << (8 * size)) else None
        if isinstance(value, bytes) and len(value) == size:
            return int.from_bytes(value, "big")
        return None
    return None


def _from_sar(tlvs: Sequence[Tlv]) -> ConcatInfo | None:
    # SMPP 3.4 §5.3.2.22–24: if one SAR TLV is present all three must be,
    # otherwise they are ignored.
    ref = _tlv_int(tlvs, Tag.sar_msg_ref_num, 2)
    total = _tlv_int(tlvs, Tag.sar_total_segments, 1)
    seqnum = _tlv_int(tlvs, Tag.sar_segment_seqnum, 1)
    if ref is None or total is None or seqnum is None or not _valid_position(total, seqnum):
        return None
    return ConcatInfo(ref, total, seqnum, 16)


def concat_info(
    short_message: BytesLike, esm_class: int, tlvs: Sequence[Tlv] = ()
) -> tuple[ConcatInfo | None, bytes]:
    """Find a message's concatenation element and its user data.

    The UDH is read only when esm_class has UDHI (0x40); the first valid IEI 0x00 or
    0x08 element wins. Otherwise, or if the UDH holds none, the three SAR TLVs are
    used (all three required, SMPP 3.4 §5.3.2.22–24). An element with TT or SS = 0
    or SS > TT is ignored (TS 23.040 §9.2.3.24.1).

    Args:
        short_message: the short_message field. If it is empty and ``tlvs`` holds a
            bytes message_payload, that is used instead (SMPP 3.4 §5.3.2.32: the
            two are exclusive).
        esm_class: the PDU's esm_class.
        tlvs: the PDU's TLVs.

    Returns:
        ``(info, user_data)``: the element, or None when the message is not (validly)
        part of a concatenated message; and the user data with any UDH removed.

    Raises:
        PduError: UDHI is set and the UDH is malformed (see :func:`parse_udh`).
    """
    body = bytes(short_message)
    if not body:
        for tlv in tlvs:
            if tlv.tag == Tag.message_payload and isinstance(tlv.value, bytes):
                body = tlv.value
                break
    user_data = body
    if esm_class & EsmClass.UDHI:
        elements, user_data = parse_udh(body)
        info = _from_udh(elements)
        if info is not None:
            return info, user_data
    return _from_sar(tlvs), user_data


# ---------------------------------------------------------------------------
# Reassembly
# ---------------------------------------------------------------------------


class AddState(Enum):
    """What :meth:`Reassembler.add` did with a part."""

    COMPLETE = "complete"
    """All parts are in; ``payload`` is the joined user data."""
    INCOMPLETE = "incomplete"
    """The part was stored; more are missing."""
    DUPLICATE = "duplicate"
    """The same seqnum with the same bytes was already stored; nothing changed."""
    CONFLICT = "conflict"
    """The same seqnum with different bytes was already stored; the first is kept."""


@dataclass(frozen=True, slots=True)
class Incomplete:
    """An incomplete message dropped by eviction or :meth:`Reassembler.expire`.

    Attributes:
        key: the caller's key.
        reference: the concatenation reference.
        reference_bits: 8 or 16.
        total: the announced number of parts.
        present: the seqnums received, ascending.
        missing: the seqnums never received, ascending.
        first_seen: ``now`` of the first part.
        parts: the received ``(seqnum, payload)`` pairs, ascending.
    """

    key: Hashable
    reference: int
    reference_bits: int
    total: int
    present: tuple[int, ...]
    missing: tuple[int, ...]
    first_seen: float
    parts: tuple[tuple[int, bytes], ...]


@dataclass(frozen=True, slots=True)
class AddResult:
    """The outcome of :meth:`Reassembler.add`.

    Attributes:
        state: what happened to the part.
        payload: the parts' payloads joined in seqnum order, for ``COMPLETE`` only.
        evicted: the oldest incomplete message, if this part started a new message
            while ``max_pending`` were already pending.
    """

    state: AddState
    payload: bytes | None = None
    evicted: Incomplete | None = None


class _Pending:
    __slots__ = ("first_seen", "key", "parts", "reference", "reference_bits", "total")

    def __init__(self, key: Hashable, info: ConcatInfo, first_seen: float) -> None:
        self.key = key
        self.reference = info.reference
        self.reference_bits = info.reference_bits
        self.total = info.total
        self.first_seen = first_seen
        self.parts: dict[int, bytes] = {}

    def snapshot(self) -> Incomplete:
        present = tuple(sorted(self.parts))
        missing = tuple(s for s in range(1, self.total + 1) if s not in self.parts)
        return Incomplete(
            key=self.key,
            reference=self.reference,
            reference_bits=self.reference_bits,
            total=self.total,
            present=present,
            missing=missing,
            first_seen=self.first_seen,
            parts=tuple((s, self.parts[s]) for s in present),
        )


# Bound on incomplete messages held at once (style guide §3.4: bound every buffer).
# 10,000 × at most 255 parts × 140 octets is the worst case; in practice a pending
# message holds a few parts.
DEFAULT_MAX_PENDING = 10_000

_FullKey = tuple[Hashable, int, int, int]


class Reassembler:
    """Joins the parts of concatenated messages; pure and bounded.

    A message is identified by the caller's ``key`` (e.g. ``(source_addr,
    destination_addr)``) together with the reference width, reference and total
    from :class:`ConcatInfo`. Parts may arrive in any order and more than once.

    Incomplete messages leave only by completion, by eviction (when a new message
    arrives while ``max_pending`` are pending, the one first created is dropped and
    returned in :attr:`AddResult.evicted`) or by :meth:`expire`, which the caller
    drives with its own clock. Completed messages are forgotten at once, so a
    duplicate arriving after completion starts a new incomplete message that
    later expires.
    """

    def __init__(self, max_pending: int = DEFAULT_MAX_PENDING) -> None:
        """Create an empty reassembler.

        Args:
            max_pending: maximum number of incomplete messages held (≥ 1).

        Raises:
            LocalProtocolError: ``max_pending`` is below 1.
        """
        if max_pending < 1:
            raise LocalProtocolError(f"max_pending must be at least 1, got {max_pending}")
        self._max_pending = max_pending
        # Insertion-ordered: the first entry is the oldest message.
        self._pending: dict[_FullKey, _Pending] = {}

    @property
    def pending_count(self) -> int:
        """Number of incomplete messages currently held."""
        return len(self._pending)

    def add(self, key: Hashable, info: ConcatInfo, payload: BytesLike, *, now: float) -> AddResult:
        """Store one part and report the message's state.

        Args:
            key: the caller's message key (hashable).
            info: the part's concatenation element (from :func:`concat_info`).
            payload: the part's user data, without UDH.
            now: the caller's clock, recorded for the message's first part.

        Returns:
            ``COMPLETE`` with the joined payload (the message is forgotten),
            ``INCOMPLETE``, ``DUPLICATE`` or ``CONFLICT`` (state unchanged; the first
            copy of the part is kept). ``evicted`` reports a dropped message.

        Raises:
            LocalProtocolError: ``info`` is out of range (total not 1..255, seqnum not
                1..total); nothing is stored.
        """
        if not (1 <= info.total <= MAX_PARTS and 1 <= info.seqnum <= info.total):
            raise LocalProtocolError(f"invalid part {info.seqnum} of {info.total}")
        data = bytes(payload)
        if info.total == 1:
            return AddResult(AddState.COMPLETE, data)

        full_key: _FullKey = (key, info.reference_bits, info.reference, info.total)
        pending = self._pending.get(full_key)
        evicted: Incomplete | None = None
        if pending is None:
            if len(self._pending) >= self._max_pending:
                oldest = next(iter(self._pending))
                evicted = self._pending.pop(oldest).snapshot()
            pending = _Pending(key, info, now)
            self._pending[full_key] = pending

        existing = pending.parts.get(info.seqnum)
        if existing is not None:
            state = AddState.DUPLICATE if existing == data else AddState.CONFLICT
            return AddResult(state, evicted=evicted)

        pending.parts[info.seqnum] = data
        if len(pending.parts) < pending.total:
            return AddResult(AddState.INCOMPLETE, evicted=evicted)
        del self._pending[full_key]
        joined = b"".join(pending.parts[s] for s in range(1, pending.total + 1))
        return AddResult(AddState.COMPLETE, joined, evicted)

    def expire(self, now: float, max_age_s: float) -> list[Incomplete]:
        """Drop and return incomplete messages whose first part is too old.

        Args:
            now: the caller's clock, on the same scale as ``add``'s ``now``.
            max_age_s: messages with ``now - first_seen >= max_age_s`` are dropped.

        Returns:
            The dropped messages, oldest first, with present and missing seqnums.
        """
        expired = [
            full_key
            for full_key, pending in self._pending.items()
            if now - pending.first_seen >= max_age_s
        ]
        return [self._pending.pop(full_key).snapshot() for full_key in expired]
