"""The executable specification of the SMPP v3.4 wire format, declared with construct.

Every PDU body of SMPP 3.4 §4 (all 27 command ids) is declared once below: the
mandatory fields in the wire order of the digest §6 with their maximum sizes,
then the TLV stream (§3.2.4) whose standard tags are typed from the digest §7
table. The tables are written from the specification, independently of
``protocol/constants.py`` (``TLV_TYPES``) and of the ``LAYOUT`` of
``protocol/pdu.py``; the tests compare the two declarations and prove that
:func:`spec_decode` / :func:`spec_encode` and the hand-written
``protocol/codec.py`` agree byte for byte and field for field, on valid PDUs and
on garbage alike.

This module is not on the hot path: clarity over speed. Nothing is compiled —
construct's compiled parser was seen to accept truncated PDUs (digest §13), and
it cannot run the custom classes below anyway. Every length is therefore
checked explicitly: ``command_length`` against the bytes given, every field
against the end of the body, and the body must be consumed exactly.

Behaviour mirrored from the hand-written codec (its module docstring):

* C-Octet Strings are Latin-1 (every octet survives a round trip); one running
  past its maximum is the field's own status (ESME_RINVSRCADR for source_addr,
  ...), one running past the end of the body ESME_RINVCMDLEN;
* any other field running past the end of the body is ESME_RINVCMDLEN;
  sm_length 255 or past the end is ESME_RINVMSGLEN; number_of_dests > 254 is
  ESME_RINVNUMDESTS and a dest_flag other than 1/2 ESME_RINVDESTFLAG;
* a TLV header or value running past the body is ESME_RINVOPTPARSTREAM, an
  integer TLV of the wrong size or a C-string TLV over its maximum
  ESME_RINVPARLEN; C-string TLVs are lenient: the value stops at the first NUL
  or at the end of the value (some SMSCs omit the NUL of receipted_message_id);
  unknown and vendor tags keep their raw bytes;
* a response with an empty body decodes with default fields; an error response
  whose fields are all defaults and which has no TLVs encodes header-only
  (SMPP 3.4 §4.1.2, §4.4.2); header-only PDUs may carry a TLV stream ([v5.0]
  peers append e.g. congestion_state); unknown command_status values are kept;
* an unknown command_id is ESME_RINVCMDID.

How errors travel: the custom constructs raise :class:`SpecError`, a
``ConstructError`` carrying the SMPP status; :func:`spec_decode` turns it into
:class:`~protocol.errors.PduError` and :func:`spec_encode` turns any construct
error into :class:`~protocol.errors.LocalProtocolError`. Encoding is stricter
than the hand-written codec about TLV value types: a standard tag takes exactly
its declared Python type (``int``/``str``/``bytes``/``None``), an unknown tag
only ``bytes``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Final

from construct import (
    Adapter,
    Array,
    Bytes,
    Construct,
    ConstructError,
    GreedyBytes,
    Int8ub,
    Int16ub,
    Int32ub,
    Prefixed,
    Rebuild,
    SizeofError,
    StreamError,
    Struct,
    Subconstruct,
    Switch,
    len_,
    this,
)

from protocol.constants import CommandStatus as S
from protocol.errors import LocalProtocolError, PduError
from protocol.pdu import (
    AlertNotification,
    BindReceiver,
    BindReceiverResp,
    BindTransceiver,
    BindTransceiverResp,
    BindTransmitter,
    BindTransmitterResp,
    CancelSm,
    CancelSmResp,
    DataSm,
    DataSmResp,
    DeliverSm,
    DeliverSmResp,
    DistributionList,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    Outbind,
    Pdu,
    QuerySm,
    QuerySmResp,
    ReplaceSm,
    ReplaceSmResp,
    Response,
    SmeAddress,
    SubmitMulti,
    SubmitMultiResp,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    UnbindResp,
    UnsuccessSme,
)
from protocol.tlv import Tlv

__all__ = [
    "BODIES",
    "COMMANDS",
    "HEADER",
    "TLV_TABLE",
    "CString",
    "SpecError",
    "spec_decode",
    "spec_encode",
    "tlv_kind",
]

# SMPP 3.4 §3.2, digest §2: four 4-octet header fields.
HEADER_OCTETS: Final = 16


# ============================================================================ building blocks


class SpecError(ConstructError):  # type: ignore[misc]  # construct ships no type stubs
    """A rule of the specification broken while parsing or building.

    Attributes:
        status: the SMPP 3.4 §5.1.3 command_status a peer is answered with when
            the rule was broken while parsing.
        reason: the message without construct's path prefix.
    """

    def __init__(self, reason: str, status: int, path: str | None = None) -> None:
        super().__init__(reason, path=path)
        self.status = status
        self.reason = reason


def _at_eof(stream: Any) -> bool:
    here = stream.tell()
    more = stream.read(1)
    stream.seek(here)
    return not more


class CString(Construct):  # type: ignore[misc]
    """C-Octet String (SMPP 3.4 §3.1): characters then one NUL, at most
    ``max_octets`` octets *including* the NUL (§3.1 note iii). Latin-1, which maps
    every octet to one character (digest §1, codec docstring).

    Parsing looks for the NUL within the first ``max_octets`` octets. If there is
    none and that many octets are present, the field is too long: ``status``.
    If the body ends first, a ``StreamError`` (truncation) is raised, which the
    enclosing body maps to ESME_RINVCMDLEN.
    """

    def __init__(self, max_octets: int, status: int = S.ESME_RINVPARLEN) -> None:
        super().__init__()
        self.max_octets = max_octets
        self.status = status

    def _parse(self, stream: Any, context: Any, path: str) -> str:
        start = stream.tell()
        window: bytes = stream.read(self.max_octets)
        nul = window.find(0)
        if nul < 0:
            if len(window) == self.max_octets:
                raise SpecError(
                    f"C-string longer than {self.max_octets - 1} octets", self.status, path
                )
            raise StreamError("C-string runs past the end of the body", path=path)
        stream.seek(start + nul + 1)
        return window[:nul].decode("latin-1")

    def _build(self, obj: Any, stream: Any, context: Any, path: str) -> Any:
        if not isinstance(obj, str):
            raise SpecError(f"C-string value must be str, not {obj!r}", S.ESME_RSYSERR, path)
        try:
            raw = obj.encode("latin-1")
        except UnicodeEncodeError as exc:
            raise SpecError(f"not a Latin-1 string: {obj!r}", S.ESME_RSYSERR, path) from exc
        if len(raw) >= self.max_octets:
            raise SpecError(
                f"{len(raw)} octets, max {self.max_octets - 1} before the NUL", S.ESME_RSYSERR, path
            )
        if 0 in raw:
            raise SpecError("C-string holds a NUL octet", S.ESME_RSYSERR, path)
        stream.write(raw + b"\x00")
        return obj

    def _sizeof(self, context: Any, path: str) -> int:
        raise SizeofError("a C-Octet String has a variable size", path=path)


class AtMost(Subconstruct):  # type: ignore[misc]
    """An integer field whose value may not exceed ``limit`` (``status`` if it does)."""

    def __init__(self, subcon: Any, limit: int, status: int) -> None:
        super().__init__(subcon)
        self.limit = limit
        self.status = status

    def _parse(self, stream: Any, context: Any, path: str) -> int:
        value: int = self.subcon._parsereport(stream, context, path)
        if value > self.limit:
            raise SpecError(f"{value} is more than {self.limit}", self.status, path)
        return value

    def _build(self, obj: Any, stream: Any, context: Any, path: str) -> Any:
        if obj > self.limit:
            raise SpecError(f"{obj} is more than {self.limit}", self.status, path)
        return self.subcon._build(obj, stream, context, path)


class OnTruncation(Subconstruct):  # type: ignore[misc]
    """Reading past the end of the (sub)stream inside ``subcon`` means ``status``."""

    def __init__(self, subcon: Any, status: int, reason: str) -> None:
        super().__init__(subcon)
        self.status = status
        self.reason = reason

    def _parse(self, stream: Any, context: Any, path: str) -> Any:
        try:
            return self.subcon._parsereport(stream, context, path)
        except StreamError as exc:
            raise SpecError(self.reason, self.status, path) from exc


class Exactly(OnTruncation):
    """As :class:`OnTruncation`, and ``subcon`` must also consume its (sub)stream
    to the last octet: the guard against declarative parsers that stop early."""

    def _parse(self, stream: Any, context: Any, path: str) -> Any:
        obj = super()._parse(stream, context, path)
        if not _at_eof(stream):
            raise SpecError(self.reason, self.status, path)
        return obj


class Reject(Construct):  # type: ignore[misc]
    """A branch that is never valid (the ``default`` of a Switch)."""

    def __init__(self, reason: str, status: int) -> None:
        super().__init__()
        self.reason = reason
        self.status = status

    def _parse(self, stream: Any, context: Any, path: str) -> Any:
        raise SpecError(self.reason, self.status, path)

    def _build(self, obj: Any, stream: Any, context: Any, path: str) -> Any:
        raise SpecError(self.reason, self.status, path)


# ============================================================================ TLVs (§3.2.4, §5.3)

INT1: Final = "int1"
INT2: Final = "int2"
INT4: Final = "int4"
CSTRING: Final = "cstring"  # value is str; encoded with its NUL
OCTETS: Final = "octets"  # value is bytes
EMPTY: Final = "empty"  # no value: None

# SMPP 3.4 §5.3.2, digest §7: (tag, name, value type, max octets of a C-string value
# with its NUL). Sizes of Octet String values (network_error_code 3, its_session_info
# 2, callback_num 4..19, ...) are documented in the digest but, as in the codec, not
# enforced: the value is kept as the peer sent it.
TLV_TABLE: Final[tuple[tuple[int, str, str, int], ...]] = (
    (0x0005, "dest_addr_subunit", INT1, 0),  # §5.3.2.1
    (0x0006, "dest_network_type", INT1, 0),  # §5.3.2.3
    (0x0007, "dest_bearer_type", INT1, 0),  # §5.3.2.5
    (0x0008, "dest_telematics_id", INT2, 0),  # §5.3.2.7
    (0x000D, "source_addr_subunit", INT1, 0),  # §5.3.2.2
    (0x000E, "source_network_type", INT1, 0),  # §5.3.2.4
    (0x000F, "source_bearer_type", INT1, 0),  # §5.3.2.6
    (0x0010, "source_telematics_id", INT1, 0),  # §5.3.2.8: 1 octet, unlike dest's 2
    (0x0017, "qos_time_to_live", INT4, 0),  # §5.3.2.9
    (0x0019, "payload_type", INT1, 0),  # §5.3.2.10
    (0x001D, "additional_status_info_text", CSTRING, 256),  # §5.3.2.11: 1..256
    (0x001E, "receipted_message_id", CSTRING, 65),  # §5.3.2.12: 1..65
    (0x0030, "ms_msg_wait_facilities", INT1, 0),  # §5.3.2.13
    (0x0201, "privacy_indicator", INT1, 0),  # §5.3.2.14
    (0x0202, "source_subaddress", OCTETS, 0),  # §5.3.2.15: 2..23
    (0x0203, "dest_subaddress", OCTETS, 0),  # §5.3.2.16: 2..23
    (0x0204, "user_message_reference", INT2, 0),  # §5.3.2.17
    (0x0205, "user_response_code", INT1, 0),  # §5.3.2.18
    (0x020A, "source_port", INT2, 0),  # §5.3.2.20
    (0x020B, "destination_port", INT2, 0),  # §5.3.2.21
    (0x020C, "sar_msg_ref_num", INT2, 0),  # §5.3.2.22
    (0x020D, "language_indicator", INT1, 0),  # §5.3.2.19
    (0x020E, "sar_total_segments", INT1, 0),  # §5.3.2.23
    (0x020F, "sar_segment_seqnum", INT1, 0),  # §5.3.2.24
    (0x0210, "sc_interface_version", INT1, 0),  # §5.3.2.25
    (0x0302, "callback_num_pres_ind", INT1, 0),  # §5.3.2.37
    (0x0303, "callback_num_atag", OCTETS, 0),  # §5.3.2.38: ≤ 65
    (0x0304, "number_of_messages", INT1, 0),  # §5.3.2.39
    (0x0381, "callback_num", OCTETS, 0),  # §5.3.2.36: 4..19
    (0x0420, "dpf_result", INT1, 0),  # §5.3.2.28
    (0x0421, "set_dpf", INT1, 0),  # §5.3.2.29
    (0x0422, "ms_availability_status", INT1, 0),  # §5.3.2.30
    (0x0423, "network_error_code", OCTETS, 0),  # §5.3.2.31: 3 (type int1 + error int2)
    (0x0424, "message_payload", OCTETS, 0),  # §5.3.2.32: up to 64 K
    (0x0425, "delivery_failure_reason", INT1, 0),  # §5.3.2.33
    (0x0426, "more_messages_to_send", INT1, 0),  # §5.3.2.34
    (0x0427, "message_state", INT1, 0),  # §5.3.2.35
    (0x0501, "ussd_service_op", INT1, 0),  # §5.3.2.44
    (0x1201, "display_time", INT1, 0),  # §5.3.2.26
    (0x1203, "sms_signal", INT2, 0),  # §5.3.2.40
    (0x1204, "ms_validity", INT1, 0),  # §5.3.2.27
    (0x130C, "alert_on_message_delivery", EMPTY, 0),  # §5.3.2.41: length 0
    (0x1380, "its_reply_type", INT1, 0),  # §5.3.2.42
    (0x1383, "its_session_info", OCTETS, 0),  # §5.3.2.43: 2
)

_KIND_OF_TAG: Final[dict[int, str]] = {tag: kind for tag, _, kind, _ in TLV_TABLE}


def tlv_kind(tag: int) -> str:
    """The value type of ``tag`` in :data:`TLV_TABLE`; unknown tags are ``"octets"``."""
    return _KIND_OF_TAG.get(tag, OCTETS)


class _TlvCString(Adapter):  # type: ignore[misc]
    """A C-string TLV value. Lenient on input: the value is everything up to the
    first NUL or the end of the value; longer than ``max_octets`` is ESME_RINVPARLEN,
    and so is a value without a NUL that would not fit ``max_octets`` with one."""

    def __init__(self, max_octets: int) -> None:
        super().__init__(GreedyBytes)
        self.max_octets = max_octets

    def _decode(self, obj: bytes, context: Any, path: str) -> str:
        if len(obj) > self.max_octets:
            raise SpecError(
                f"C-string TLV of {len(obj)} octets, max {self.max_octets}", S.ESME_RINVPARLEN, path
            )
        nul = obj.find(0)
        if nul < 0 and len(obj) >= self.max_octets:
            # Without its NUL the value must still fit max_octets once the NUL is
            # added back, or it could not be relayed (re-encoded) unchanged.
            raise SpecError(
                f"C-string TLV of {len(obj)} octets without a NUL, max {self.max_octets - 1}",
                S.ESME_RINVPARLEN,
                path,
            )
        return (obj if nul < 0 else obj[:nul]).decode("latin-1")

    def _encode(self, obj: Any, context: Any, path: str) -> bytes:
        try:
            raw: bytes = obj.encode("latin-1") + b"\x00"
        except UnicodeEncodeError as exc:
            raise SpecError(f"not a Latin-1 string: {obj!r}", S.ESME_RSYSERR, path) from exc
        if len(raw) > self.max_octets or 0 in raw[:-1]:
            raise SpecError("C-string TLV too long or holds a NUL", S.ESME_RSYSERR, path)
        return raw


class _EmptyValue(Adapter):  # type: ignore[misc]
    """No value (length 0) is None; [v5.0] gives alert_on_message_delivery a
    1-octet value, which is kept raw."""

    def _decode(self, obj: bytes, context: Any, path: str) -> bytes | None:
        return obj or None

    def _encode(self, obj: Any, context: Any, path: str) -> bytes:
        return b"" if obj is None else bytes(obj)


def _int_value(sub: Any, octets: int) -> Any:
    return Exactly(sub, S.ESME_RINVPARLEN, f"an integer TLV value must be {octets} octet(s)")


def _value_construct(kind: str, max_octets: int) -> Any:
    if kind == INT1:
        return _int_value(Int8ub, 1)
    if kind == INT2:
        return _int_value(Int16ub, 2)
    if kind == INT4:
        return _int_value(Int32ub, 4)
    if kind == CSTRING:
        return _TlvCString(max_octets)
    if kind == EMPTY:
        return _EmptyValue(GreedyBytes)
    return GreedyBytes  # OCTETS


# The value of every standard tag; anything else (vendor 0x1400..0x3FFF, reserved,
# [v5.0] tags) is raw bytes (§3.3: unknown tags are skipped, not fatal).
_TLV_VALUES: Final[dict[int, Any]] = {
    tag: _value_construct(kind, max_octets) for tag, _, kind, max_octets in TLV_TABLE
}

_PY_TYPES: Final[dict[str, tuple[type, ...]]] = {
    INT1: (int,),
    INT2: (int,),
    INT4: (int,),
    CSTRING: (str,),
    OCTETS: (bytes, bytearray, memoryview),
    EMPTY: (type(None), bytes, bytearray, memoryview),
}


class _TlvAdapter(Adapter):  # type: ignore[misc]
    """Container(tag, value) ⇄ :class:`~protocol.tlv.Tlv`, checking the value's
    Python type against the tag's declared type when building."""

    def _decode(self, obj: Any, context: Any, path: str) -> Tlv:
        return Tlv(obj.tag, obj.value)

    def _encode(self, obj: Any, context: Any, path: str) -> dict[str, Any]:
        tag, value = obj
        kind = tlv_kind(tag)
        if not isinstance(value, _PY_TYPES[kind]):
            raise SpecError(f"TLV 0x{tag:04X} takes {kind}, not {value!r}", S.ESME_RSYSERR, path)
        if isinstance(value, bytearray | memoryview):
            value = bytes(value)
        return {"tag": tag, "value": value}


# SMPP 3.4 §3.2.4.1: Tag int2, Length int2 (octets of the value only), Value.
TLV: Final = _TlvAdapter(
    Struct(
        "tag" / Int16ub,
        "value" / Prefixed(Int16ub, Switch(this.tag, _TLV_VALUES, default=GreedyBytes)),
    )
)


class TlvStream(Subconstruct):  # type: ignore[misc]
    """Zero or more TLVs up to the end of the body, in wire order (§3.2.4).

    Unlike construct's ``GreedyRange``, which stops silently at the first element
    it cannot parse, a TLV whose header or value runs past the end of the body is
    an error: ESME_RINVOPTPARSTREAM.
    """

    def _parse(self, stream: Any, context: Any, path: str) -> tuple[Tlv, ...]:
        out: list[Tlv] = []
        while not _at_eof(stream):
            try:
                out.append(self.subcon._parsereport(stream, context, path))
            except StreamError as exc:
                raise SpecError(
                    "TLV runs past the end of the body", S.ESME_RINVOPTPARSTREAM, path
                ) from exc
        return tuple(out)

    def _build(self, obj: Any, stream: Any, context: Any, path: str) -> Any:
        for tlv in obj:
            self.subcon._build(tlv, stream, context, path)
        return obj

    def _sizeof(self, context: Any, path: str) -> int:
        raise SizeofError("a TLV stream has a variable size", path=path)


TLVS: Final = "tlvs" / TlvStream(TLV)


# ============================================================================ mandatory fields


class _DestAddressAdapter(Adapter):  # type: ignore[misc]
    def _decode(self, obj: Any, context: Any, path: str) -> SmeAddress | DistributionList:
        a = obj.address
        if obj.dest_flag == 1:
            return SmeAddress(a.dest_addr_ton, a.dest_addr_npi, a.destination_addr)
        return DistributionList(a.dl_name)

    def _encode(self, obj: Any, context: Any, path: str) -> dict[str, Any]:
        if isinstance(obj, SmeAddress):
            return {
                "dest_flag": 1,
                "address": {
                    "dest_addr_ton": obj.dest_addr_ton,
                    "dest_addr_npi": obj.dest_addr_npi,
                    "destination_addr": obj.destination_addr,
                },
            }
        if isinstance(obj, DistributionList):
            return {"dest_flag": 2, "address": {"dl_name": obj.dl_name}}
        raise SpecError(f"not a dest_address: {obj!r}", S.ESME_RSYSERR, path)


# SMPP 3.4 §4.5.1.1, Tables 4-13..4-15; dest_flag §5.2.25: 1 SME address, 2 distribution list.
DEST_ADDRESS: Final = _DestAddressAdapter(
    Struct(
        "dest_flag" / Int8ub,
        "address"
        / Switch(
            this.dest_flag,
            {
                1: Struct(
                    "dest_addr_ton" / Int8ub,
                    "dest_addr_npi" / Int8ub,
                    "destination_addr" / CString(21, S.ESME_RINVDSTADR),
                ),
                2: Struct("dl_name" / CString(21, S.ESME_RINVDLNAME)),
            },
            default=Reject("dest_flag is neither 1 nor 2", S.ESME_RINVDESTFLAG),
        ),
    )
)


class _UnsuccessAdapter(Adapter):  # type: ignore[misc]
    def _decode(self, obj: Any, context: Any, path: str) -> UnsuccessSme:
        return UnsuccessSme(
            obj.dest_addr_ton, obj.dest_addr_npi, obj.destination_addr, obj.error_status_code
        )

    def _encode(self, obj: Any, context: Any, path: str) -> dict[str, Any]:
        if not isinstance(obj, UnsuccessSme):
            raise SpecError(f"not an unsuccess_sme: {obj!r}", S.ESME_RSYSERR, path)
        return dataclasses.asdict(obj)


# SMPP 3.4 §4.5.2, Table 4-17. error_status_code is any command_status, kept as int.
UNSUCCESS_SME: Final = _UnsuccessAdapter(
    Struct(
        "dest_addr_ton" / Int8ub,
        "dest_addr_npi" / Int8ub,
        "destination_addr" / CString(21, S.ESME_RINVDSTADR),
        "error_status_code" / Int32ub,
    )
)

# SMPP 3.4 §5.2.21-22: sm_length 0..254, then that many octets of short_message.
_SHORT_MESSAGE = (
    "sm_length" / Rebuild(AtMost(Int8ub, 254, S.ESME_RINVMSGLEN), len_(this.short_message)),
    "short_message"
    / OnTruncation(Bytes(this.sm_length), S.ESME_RINVMSGLEN, "short_message runs past the body"),
)

# SMPP 3.4 §7.1.1: "1 or 17" octets. As in the codec, any string up to 16 characters
# is accepted (SMSC-reported times may be 12 characters, digest §8).
_TIME = 17

# ---------------------------------------------------------------------------- bodies

# §4.1.1, §4.1.3, §4.1.5: bind_transmitter / bind_receiver / bind_transceiver.
BIND: Final = Struct(
    "system_id" / CString(16, S.ESME_RINVSYSID),
    "password" / CString(9, S.ESME_RINVPASWD),
    "system_type" / CString(13, S.ESME_RINVSYSTYP),
    "interface_version" / Int8ub,
    "addr_ton" / Int8ub,
    "addr_npi" / Int8ub,
    "address_range" / CString(41),
    TLVS,
)

# §4.1.2, §4.1.4, §4.1.6: bind_*_resp; optional TLV sc_interface_version.
BIND_RESP: Final = Struct(
    "system_id" / CString(16, S.ESME_RINVSYSID),
    TLVS,
)

# §4.1.7.1: outbind.
OUTBIND: Final = Struct(
    "system_id" / CString(16, S.ESME_RINVSYSID),
    "password" / CString(9, S.ESME_RINVPASWD),
    TLVS,
)

# §4.2, §4.3, §4.9.2, §4.10.2, §4.11: unbind(_resp), generic_nack, cancel_sm_resp,
# replace_sm_resp, enquire_link(_resp). No mandatory field; a TLV stream is allowed.
HEADER_ONLY: Final = Struct(TLVS)

# §4.4.1 (Table 4-10) submit_sm; §4.6.1 deliver_sm has the same layout.
SHORT_MESSAGE_PDU: Final = Struct(
    "service_type" / CString(6, S.ESME_RINVSERTYP),
    "source_addr_ton" / Int8ub,
    "source_addr_npi" / Int8ub,
    "source_addr" / CString(21, S.ESME_RINVSRCADR),
    "dest_addr_ton" / Int8ub,
    "dest_addr_npi" / Int8ub,
    "destination_addr" / CString(21, S.ESME_RINVDSTADR),
    "esm_class" / Int8ub,
    "protocol_id" / Int8ub,
    "priority_flag" / Int8ub,
    "schedule_delivery_time" / CString(_TIME, S.ESME_RINVSCHED),
    "validity_period" / CString(_TIME, S.ESME_RINVEXPIRY),
    "registered_delivery" / Int8ub,
    "replace_if_present_flag" / Int8ub,
    "data_coding" / Int8ub,
    "sm_default_msg_id" / Int8ub,
    *_SHORT_MESSAGE,
    TLVS,
)

# §4.4.2 submit_sm_resp, §4.6.2 deliver_sm_resp, §4.7.2 data_sm_resp: message_id
# (65 everywhere; submit_sm_resp's "9 33 65" is revision residue, digest §13).
MESSAGE_ID_RESP: Final = Struct(
    "message_id" / CString(65, S.ESME_RINVMSGID),
    TLVS,
)

# §4.5.1 submit_multi.
SUBMIT_MULTI: Final = Struct(
    "service_type" / CString(6, S.ESME_RINVSERTYP),
    "source_addr_ton" / Int8ub,
    "source_addr_npi" / Int8ub,
    "source_addr" / CString(21, S.ESME_RINVSRCADR),
    # §5.2.24: at most 254 destinations.
    "number_of_dests"
    / Rebuild(AtMost(Int8ub, 254, S.ESME_RINVNUMDESTS), len_(this.dest_addresses)),
    "dest_addresses" / Array(this.number_of_dests, DEST_ADDRESS),
    "esm_class" / Int8ub,
    "protocol_id" / Int8ub,
    "priority_flag" / Int8ub,
    "schedule_delivery_time" / CString(_TIME, S.ESME_RINVSCHED),
    "validity_period" / CString(_TIME, S.ESME_RINVEXPIRY),
    "registered_delivery" / Int8ub,
    "replace_if_present_flag" / Int8ub,
    "data_coding" / Int8ub,
    "sm_default_msg_id" / Int8ub,
    *_SHORT_MESSAGE,
    TLVS,
)

# §4.5.2 submit_multi_resp.
SUBMIT_MULTI_RESP: Final = Struct(
    "message_id" / CString(65, S.ESME_RINVMSGID),
    "no_unsuccess" / Rebuild(Int8ub, len_(this.unsuccess_smes)),
    "unsuccess_smes" / Array(this.no_unsuccess, UNSUCCESS_SME),
    TLVS,
)

# §4.7.1 data_sm: addresses up to 65 octets, no short_message.
DATA_SM: Final = Struct(
    "service_type" / CString(6, S.ESME_RINVSERTYP),
    "source_addr_ton" / Int8ub,
    "source_addr_npi" / Int8ub,
    "source_addr" / CString(65, S.ESME_RINVSRCADR),
    "dest_addr_ton" / Int8ub,
    "dest_addr_npi" / Int8ub,
    "destination_addr" / CString(65, S.ESME_RINVDSTADR),
    "esm_class" / Int8ub,
    "registered_delivery" / Int8ub,
    "data_coding" / Int8ub,
    TLVS,
)

# §4.8.1 query_sm.
QUERY_SM: Final = Struct(
    "message_id" / CString(65, S.ESME_RINVMSGID),
    "source_addr_ton" / Int8ub,
    "source_addr_npi" / Int8ub,
    "source_addr" / CString(21, S.ESME_RINVSRCADR),
    TLVS,
)

# §4.8.2 query_sm_resp: final_date is a lone NUL until the message is final.
QUERY_SM_RESP: Final = Struct(
    "message_id" / CString(65, S.ESME_RINVMSGID),
    "final_date" / CString(_TIME),
    "message_state" / Int8ub,
    "error_code" / Int8ub,
    TLVS,
)

# §4.9.1 cancel_sm.
CANCEL_SM: Final = Struct(
    "service_type" / CString(6, S.ESME_RINVSERTYP),
    "message_id" / CString(65, S.ESME_RINVMSGID),
    "source_addr_ton" / Int8ub,
    "source_addr_npi" / Int8ub,
    "source_addr" / CString(21, S.ESME_RINVSRCADR),
    "dest_addr_ton" / Int8ub,
    "dest_addr_npi" / Int8ub,
    "destination_addr" / CString(21, S.ESME_RINVDSTADR),
    TLVS,
)

# §4.10.1 replace_sm.
REPLACE_SM: Final = Struct(
    "message_id" / CString(65, S.ESME_RINVMSGID),
    "source_addr_ton" / Int8ub,
    "source_addr_npi" / Int8ub,
    "source_addr" / CString(21, S.ESME_RINVSRCADR),
    "schedule_delivery_time" / CString(_TIME, S.ESME_RINVSCHED),
    "validity_period" / CString(_TIME, S.ESME_RINVEXPIRY),
    "registered_delivery" / Int8ub,
    "sm_default_msg_id" / Int8ub,
    *_SHORT_MESSAGE,
    TLVS,
)

# §4.12.1 alert_notification; TLV ms_availability_status.
ALERT_NOTIFICATION: Final = Struct(
    "source_addr_ton" / Int8ub,
    "source_addr_npi" / Int8ub,
    "source_addr" / CString(65, S.ESME_RINVSRCADR),
    "esme_addr_ton" / Int8ub,
    "esme_addr_npi" / Int8ub,
    "esme_addr" / CString(65, S.ESME_RINVDSTADR),
    TLVS,
)

# SMPP 3.4 §5.1.2.1, Table 5-1 (digest §3): command_id → (PDU class, body).
# Responses are their request's id with bit 31 set.
COMMANDS: Final[dict[int, tuple[type[Pdu], Any]]] = {
    0x80000000: (GenericNack, HEADER_ONLY),
    0x00000001: (BindReceiver, BIND),
    0x80000001: (BindReceiverResp, BIND_RESP),
    0x00000002: (BindTransmitter, BIND),
    0x80000002: (BindTransmitterResp, BIND_RESP),
    0x00000003: (QuerySm, QUERY_SM),
    0x80000003: (QuerySmResp, QUERY_SM_RESP),
    0x00000004: (SubmitSm, SHORT_MESSAGE_PDU),
    0x80000004: (SubmitSmResp, MESSAGE_ID_RESP),
    0x00000005: (DeliverSm, SHORT_MESSAGE_PDU),
    0x80000005: (DeliverSmResp, MESSAGE_ID_RESP),
    0x00000006: (Unbind, HEADER_ONLY),
    0x80000006: (UnbindResp, HEADER_ONLY),
    0x00000007: (ReplaceSm, REPLACE_SM),
    0x80000007: (ReplaceSmResp, HEADER_ONLY),
    0x00000008: (CancelSm, CANCEL_SM),
    0x80000008: (CancelSmResp, HEADER_ONLY),
    0x00000009: (BindTransceiver, BIND),
    0x80000009: (BindTransceiverResp, BIND_RESP),
    0x0000000B: (Outbind, OUTBIND),
    0x00000015: (EnquireLink, HEADER_ONLY),
    0x80000015: (EnquireLinkResp, HEADER_ONLY),
    0x00000021: (SubmitMulti, SUBMIT_MULTI),
    0x80000021: (SubmitMultiResp, SUBMIT_MULTI_RESP),
    0x00000102: (AlertNotification, ALERT_NOTIFICATION),
    0x00000103: (DataSm, DATA_SM),
    0x80000103: (DataSmResp, MESSAGE_ID_RESP),
}

# The body of every command, consumed exactly: anything that reads past its end
# and is not mapped to a more specific status above is ESME_RINVCMDLEN — the
# command_length does not fit the content (digest §2).
BODIES: Final[dict[int, Any]] = {
    command_id: Exactly(body, S.ESME_RINVCMDLEN, "a field runs past the end of the PDU body")
    for command_id, (_, body) in COMMANDS.items()
}

# SMPP 3.4 §3.2, digest §2.
HEADER: Final = Struct(
    "command_length" / Int32ub,
    "command_id" / Int32ub,
    "command_status" / Int32ub,
    "sequence_number" / Int32ub,
)


# ============================================================================ public API

_HEADER_FIELDS = frozenset({"command_status", "sequence_number", "tlvs"})


def _body_fields(cls: type[Pdu]) -> list[str]:
    """The mandatory-field attributes of ``cls``, in declaration (= wire) order."""
    return [f.name for f in dataclasses.fields(cls) if f.name not in _HEADER_FIELDS]


def _is_header_only_error(pdu: Pdu) -> bool:
    # SMPP 3.4 §4.1.2, §4.4.2: "the … _resp PDU Body is not returned if the
    # command_status field contains a non-zero value". A body is sent anyway when
    # there is something in it (a message_id, TLVs), as some SMSCs do.
    if not isinstance(pdu, Response) or not pdu.command_status or pdu.tlvs:
        return False
    blank = type(pdu)()
    return all(getattr(pdu, name) == getattr(blank, name) for name in _body_fields(type(pdu)))


def spec_decode(data: bytes | bytearray | memoryview) -> Pdu:
    """Decode exactly one whole PDU (header and body) with the construct declarations.

    Args:
        data: the PDU's bytes, from its command_length to its last octet.

    Returns:
        The PDU dataclass of ``protocol.pdu``.

    Raises:
        PduError: fewer than 16 bytes or command_length ≠ len(data)
            (ESME_RINVCMDLEN); unknown command_id (ESME_RINVCMDID); a malformed
            body (the status named in the module docstring). ``command_id`` and
            ``sequence_number`` are set on the error when the header was read.
    """
    raw = bytes(data)
    if len(raw) < HEADER_OCTETS:
        raise PduError(f"{len(raw)} bytes is shorter than a PDU header", S.ESME_RINVCMDLEN)
    header = HEADER.parse(raw[:HEADER_OCTETS])
    command_id: int = header.command_id
    seq: int = header.sequence_number
    status: int = header.command_status
    # digest §13: always check command_length against the bytes actually present.
    if header.command_length != len(raw):
        raise PduError(
            f"command_length {header.command_length} but {len(raw)} bytes",
            S.ESME_RINVCMDLEN,
            command_id=command_id,
            sequence_number=seq,
        )
    entry = COMMANDS.get(command_id)
    if entry is None:
        raise PduError(
            f"unknown command_id 0x{command_id:08X}",
            S.ESME_RINVCMDID,
            command_id=command_id,
            sequence_number=seq,
        )
    cls = entry[0]
    body = raw[HEADER_OCTETS:]
    if not body and issubclass(cls, Response):
        # Error responses usually carry no body (§4.1.2, §4.4.2): default fields.
        return cls(command_status=status, sequence_number=seq)
    try:
        parsed = BODIES[command_id].parse(body)
    except SpecError as exc:
        raise PduError(
            f"malformed {cls.__name__}: {exc.reason} ({exc.path})",
            exc.status,
            command_id=command_id,
            sequence_number=seq,
        ) from exc
    fields: dict[str, Any] = {}
    for name in _body_fields(cls):
        value = parsed[name]
        fields[name] = tuple(value) if isinstance(value, list) else value
    return cls(command_status=status, sequence_number=seq, tlvs=parsed.tlvs, **fields)


def spec_encode(pdu: Pdu) -> bytes:
    """Encode one PDU, header included, with the construct declarations.

    Args:
        pdu: any PDU dataclass of ``protocol.pdu``.

    Returns:
        The PDU's bytes; an error response whose fields are all defaults and which
        has no TLVs is header-only.

    Raises:
        LocalProtocolError: not a PDU, a field too long or holding a NUL, a string
            that is not Latin-1, an integer that does not fit its size, a TLV value
            of the wrong type, more than 254 destinations or a short_message over
            254 octets.
    """
    cls = type(pdu)
    entry = COMMANDS.get(getattr(cls, "command_id", -1))
    if entry is None or entry[0] is not cls:
        raise LocalProtocolError(f"not an SMPP PDU: {pdu!r}")
    try:
        if _is_header_only_error(pdu):
            body = b""
        else:
            obj = {name: getattr(pdu, name) for name in _body_fields(cls)}
            obj["tlvs"] = pdu.tlvs
            body = BODIES[cls.command_id].build(obj)
        header = HEADER.build(
            {
                "command_length": HEADER_OCTETS + len(body),
                "command_id": cls.command_id,
                "command_status": pdu.command_status,
                "sequence_number": pdu.sequence_number,
            }
        )
    except (ConstructError, TypeError, ValueError) as exc:
        raise LocalProtocolError(f"cannot encode {cls.__name__}: {exc}") from exc
    return bytes(header + body)
