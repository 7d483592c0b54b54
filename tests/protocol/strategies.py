"""Hypothesis strategies for arbitrary *valid* SMPP v3.4 PDUs, for every PDU class.

Import them from any test::

    from tests.protocol.strategies import hot_pdus, pdu_of, pdus

"Valid" means what both codecs accept and round-trip: C-strings of Latin-1
characters without NUL within their maximum size (digest §1, §5), integers in
range, short_message of 0..254 octets, TLVs mixing standard tags with values of
their declared type and size (digest §7) and unknown/vendor tags with raw bytes,
submit_multi destinations of both dest_flag kinds, and responses with any
command_status, unknown ones (vendor 0x400..0x4FF, reserved) included.
Mandatory fields are generated from each class's ``LAYOUT``; the tests check that
``LAYOUT`` against the independent construct declarations in protocol/spec.py.

The strategy constructors are cached: building ``pdus()`` validates 27 nested
strategies, which costs tens of milliseconds, so calling it inside a
``@st.composite`` on every draw would dominate a test's run time.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from hypothesis import strategies as st

from protocol.constants import TLV_CSTRING_MAX, TLV_TYPES, CommandStatus, Tag, TlvType
from protocol.pdu import (
    ALL_PDU_CLASSES,
    DataSm,
    DataSmResp,
    DeliverSm,
    DeliverSmResp,
    DistributionList,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    Kind,
    Pdu,
    Response,
    SmeAddress,
    SubmitSm,
    SubmitSmResp,
    UnsuccessSme,
)
from protocol.tlv import Tlv

__all__ = [
    "HOT_CLASSES",
    "byte",
    "command_statuses",
    "cstrings",
    "dest_addresses",
    "hot_pdus",
    "pdu_of",
    "pdus",
    "sequence_numbers",
    "tlv_tuples",
    "tlvs",
    "unsuccess_smes",
]

# The PDUs the relay runs every message through (protocol/codec.py hot paths).
HOT_CLASSES: tuple[type[Pdu], ...] = (
    SubmitSm,
    SubmitSmResp,
    DeliverSm,
    DeliverSmResp,
    DataSm,
    DataSmResp,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
)

byte = st.integers(0, 0xFF)

_latin1 = st.characters(min_codepoint=0x01, max_codepoint=0xFF)
_digits = st.characters(min_codepoint=ord("0"), max_codepoint=ord("9"))


@cache
def cstrings(max_octets: int) -> st.SearchStrategy[str]:
    """A C-Octet String value of at most ``max_octets`` octets with its NUL:
    Latin-1 without NUL, with the empty and the longest allowed values favoured."""
    longest = max_octets - 1
    return st.one_of(
        st.text(_latin1, max_size=longest),
        st.text(_digits, max_size=longest),
        st.just(""),
        st.text(_latin1, min_size=longest, max_size=longest),
    )


@cache
def sequence_numbers() -> st.SearchStrategy[int]:
    """SMPP 3.4 §5.1.4 values 1..0x7FFFFFFF, plus 0 and the whole 32-bit range,
    which a decoder must keep as it is."""
    return st.one_of(st.integers(1, 0x7FFFFFFF), st.integers(0, 0xFFFFFFFF))


@cache
def command_statuses() -> st.SearchStrategy[int]:
    """Any 32-bit command_status: named (v3.4 and [v5.0]), vendor 0x400..0x4FF,
    reserved; always a plain int (digest §4)."""
    return st.one_of(
        st.sampled_from([int(s) for s in CommandStatus]),
        st.integers(0x400, 0x4FF),
        st.sampled_from([0x401, 0xDEADBEEF, 0xFFFFFFFF]),
        st.integers(0, 0xFFFFFFFF),
    )


def _standard_value(tag: int, kind: TlvType) -> st.SearchStrategy[Any]:
    if kind == TlvType.INT1:
        return byte
    if kind == TlvType.INT2:
        return st.integers(0, 0xFFFF)
    if kind == TlvType.INT4:
        return st.integers(0, 0xFFFFFFFF)
    if kind == TlvType.CSTRING:
        return cstrings(TLV_CSTRING_MAX[tag])
    if kind == TlvType.EMPTY:
        # [v5.0] gives alert_on_message_delivery a 1-octet value: kept raw.
        return st.one_of(st.none(), st.binary(min_size=1, max_size=1))
    if tag == Tag.message_payload:
        return st.binary(max_size=600)
    return st.binary(max_size=40)


_STANDARD_TLVS = [
    st.builds(Tlv, st.just(tag), _standard_value(tag, kind)) for tag, kind in TLV_TYPES.items()
]
_unknown_tags = st.one_of(
    st.integers(0x1400, 0x3FFF),  # SMSC vendor-specific (SMPP 3.4 §5.3.1)
    st.sampled_from([0x0428, 0x0600, 0x060B, 0x1401]),  # [v5.0] tags, Korean result code
    st.integers(0, 0xFFFF).filter(lambda t: t not in TLV_TYPES),
)


@cache
def tlvs() -> st.SearchStrategy[Tlv]:
    """One TLV: a standard tag with a value of its declared type, or an unknown tag
    with raw bytes."""
    unknown = st.builds(Tlv, _unknown_tags, st.binary(max_size=40))
    return st.one_of(st.one_of(_STANDARD_TLVS), unknown)


@cache
def tlv_tuples(max_size: int = 5) -> st.SearchStrategy[tuple[Tlv, ...]]:
    """A TLV stream in wire order, repeated tags allowed."""
    return st.lists(tlvs(), max_size=max_size).map(tuple)


@cache
def dest_addresses() -> st.SearchStrategy[SmeAddress | DistributionList]:
    """A submit_multi dest_address of either kind (SMPP 3.4 Tables 4-14, 4-15)."""
    return st.one_of(
        st.builds(SmeAddress, byte, byte, cstrings(21)),
        st.builds(DistributionList, cstrings(21)),
    )


@cache
def unsuccess_smes() -> st.SearchStrategy[UnsuccessSme]:
    """A submit_multi_resp unsuccess_sme with any error_status_code."""
    return st.builds(UnsuccessSme, byte, byte, cstrings(21), command_statuses())


def _field_strategy(kind: Kind, max_octets: int) -> st.SearchStrategy[Any]:
    if kind == Kind.CSTR:
        return cstrings(max_octets)
    if kind == Kind.INT1:
        return byte
    if kind == Kind.SM:
        return st.binary(max_size=max_octets)
    if kind == Kind.DESTS:
        return st.lists(dest_addresses(), max_size=6).map(tuple)
    if kind == Kind.UNSUCCESS:
        return st.lists(unsuccess_smes(), max_size=6).map(tuple)
    raise AssertionError(kind)


_PDU_OF: dict[type[Pdu], st.SearchStrategy[Pdu]] = {}


def pdu_of(cls: type[Pdu]) -> st.SearchStrategy[Pdu]:
    """Arbitrary valid PDUs of class ``cls``.

    Requests carry command_status 0 (SMPP 3.4 §5.1.3); responses any status, and
    error responses with all-default fields (encoded header-only) are favoured.
    """
    cached = _PDU_OF.get(cls)
    if cached is None:
        cached = _PDU_OF[cls] = _build_pdu_of(cls)
    return cached


def _build_pdu_of(cls: type[Pdu]) -> st.SearchStrategy[Pdu]:
    fields = {spec.name: _field_strategy(spec.kind, spec.max_octets) for spec in cls.LAYOUT}
    is_response = issubclass(cls, Response)
    status = command_statuses() if is_response else st.just(0)
    full = st.builds(
        cls,
        command_status=status,
        sequence_number=sequence_numbers(),
        tlvs=tlv_tuples(),
        **fields,
    )
    if not is_response:
        return full
    bare_error = st.builds(
        cls, command_status=command_statuses().filter(bool), sequence_number=sequence_numbers()
    )
    return st.one_of(full, bare_error)


@cache
def hot_pdus() -> st.SearchStrategy[Pdu]:
    """Arbitrary valid PDUs of the hot-path classes (:data:`HOT_CLASSES`)."""
    return st.one_of([pdu_of(cls) for cls in HOT_CLASSES])


@cache
def pdus() -> st.SearchStrategy[Pdu]:
    """Arbitrary valid PDUs of any of the 27 classes."""
    return st.one_of([pdu_of(cls) for cls in ALL_PDU_CLASSES])
