"""The hand-written codec (protocol/codec.py), the construct specification
(protocol/spec.py) and the frame buffer (protocol/buffer.py).

* round trips for every PDU class in both codecs;
* the two codecs are equivalent: same bytes from the same PDU, equal PDUs from
  the same bytes, and the two independent declarations (pdu.LAYOUT and
  constants.TLV_TYPES vs. spec.py) agree field by field;
* every kind of malformed input is a PduError with the status the codec's
  docstring names, in both codecs; every bad value refused on encode with
  LocalProtocolError;
* unknown TLVs and command_status values pass through untouched;
* FrameBuffer: chunking never matters; command_length out of bounds is a
  FramingError the moment its four octets arrive, and the buffer stays poisoned.
"""

from __future__ import annotations

import dataclasses
import itertools
import struct
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import codec, spec
from protocol.buffer import DEFAULT_MAX_PDU_BYTES, FrameBuffer
from protocol.constants import TLV_CSTRING_MAX, TLV_TYPES, CommandId, Tag, TlvType
from protocol.constants import CommandStatus as S
from protocol.errors import FramingError, LocalProtocolError, PduError
from protocol.pdu import (
    ALL_PDU_CLASSES,
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
    Kind,
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
from tests.protocol.strategies import hot_pdus, pdu_of, pdus

Decoder = Callable[[bytes], Pdu]
Encoder = Callable[[Pdu], bytes]

DECODERS: list[Decoder] = [codec.decode, spec.spec_decode]
ENCODERS: list[Encoder] = [codec.encode, spec.spec_encode]
both_decoders = pytest.mark.parametrize("decode", DECODERS, ids=["codec", "spec"])
both_encoders = pytest.mark.parametrize("encode", ENCODERS, ids=["codec", "spec"])


def _name(cls: type[Pdu]) -> str:
    return cls.__name__


every_class = pytest.mark.parametrize("cls", ALL_PDU_CLASSES, ids=_name)

# Generation health checks say nothing about the code under test; keep them quiet.
_NOISY = [HealthCheck.too_slow, HealthCheck.data_too_large]
PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=_NOISY)


def frame(command_id: int, body: bytes = b"", status: int = 0, seq: int = 1) -> bytes:
    """A whole PDU: the 16-octet header with a consistent command_length, then ``body``."""
    return struct.pack(">IIII", 16 + len(body), command_id, status, seq) + body


def fix_length(data: bytes) -> bytes:
    """``data`` with its command_length patched to its real size."""
    return struct.pack(">I", len(data)) + data[4:]


def assert_rejected(data: bytes, status: int) -> None:
    """Both decoders raise PduError with ``status`` (and the header's ids, if any)."""
    for decode in DECODERS:
        with pytest.raises(PduError) as info:
            decode(data)
        assert info.value.command_status == status, (decode.__module__, info.value)
        if len(data) >= 16:
            assert info.value.command_id == struct.unpack_from(">I", data, 4)[0]
            assert info.value.sequence_number == struct.unpack_from(">I", data, 12)[0]


def assert_refused(pdu: Pdu) -> None:
    """Both encoders raise LocalProtocolError for ``pdu``."""
    for encode in ENCODERS:
        with pytest.raises(LocalProtocolError):
            encode(pdu)


# One representative, fully populated instance of every class (status 0, no TLVs,
# empty short_message, so that cutting or extending its body is easy to reason about).
SAMPLES: dict[type[Pdu], Pdu] = {
    GenericNack: GenericNack(sequence_number=9),
    BindReceiver: BindReceiver(
        sequence_number=1,
        system_id="relayd",
        password="secret",
        system_type="RX",
        interface_version=0x34,
        addr_ton=1,
        addr_npi=1,
        address_range="^8210",
    ),
    BindReceiverResp: BindReceiverResp(sequence_number=1, system_id="SMSC"),
    BindTransmitter: BindTransmitter(sequence_number=2, system_id="relayd", password="pw"),
    BindTransmitterResp: BindTransmitterResp(sequence_number=2, system_id="SMSC"),
    QuerySm: QuerySm(
        sequence_number=3, message_id="abc", source_addr_ton=1, source_addr_npi=1, source_addr="82"
    ),
    QuerySmResp: QuerySmResp(
        sequence_number=3,
        message_id="abc",
        final_date="240101120000000+",
        message_state=2,
        error_code=0,
    ),
    SubmitSm: SubmitSm(
        sequence_number=4,
        service_type="CMT",
        source_addr_ton=5,
        source_addr="relayd",
        dest_addr_ton=1,
        dest_addr_npi=1,
        destination_addr="821012345678",
        registered_delivery=1,
        schedule_delivery_time="000001000000000R",
    ),
    SubmitSmResp: SubmitSmResp(sequence_number=4, message_id="a1b2c3"),
    DeliverSm: DeliverSm(
        sequence_number=5,
        source_addr_ton=1,
        source_addr_npi=1,
        source_addr="821012345678",
        destination_addr="relayd",
        esm_class=0x04,
    ),
    DeliverSmResp: DeliverSmResp(sequence_number=5),
    Unbind: Unbind(sequence_number=6),
    UnbindResp: UnbindResp(sequence_number=6),
    ReplaceSm: ReplaceSm(
        sequence_number=7, message_id="abc", source_addr="82", validity_period="240101"
    ),
    ReplaceSmResp: ReplaceSmResp(sequence_number=7),
    CancelSm: CancelSm(
        sequence_number=8,
        service_type="CMT",
        message_id="abc",
        source_addr="82",
        destination_addr="83",
    ),
    CancelSmResp: CancelSmResp(sequence_number=8),
    BindTransceiver: BindTransceiver(sequence_number=10, system_id="relayd", password="pw"),
    BindTransceiverResp: BindTransceiverResp(sequence_number=10, system_id="SMSC"),
    Outbind: Outbind(sequence_number=11, system_id="SMSC", password="pw"),
    EnquireLink: EnquireLink(sequence_number=12),
    EnquireLinkResp: EnquireLinkResp(sequence_number=12),
    SubmitMulti: SubmitMulti(
        sequence_number=13,
        source_addr="relayd",
        dest_addresses=(SmeAddress(1, 1, "821011112222"), DistributionList("friends")),
    ),
    SubmitMultiResp: SubmitMultiResp(
        sequence_number=13,
        message_id="m1",
        unsuccess_smes=(UnsuccessSme(1, 1, "821011112222", S.ESME_RINVDSTADR),),
    ),
    AlertNotification: AlertNotification(
        sequence_number=14, source_addr="821012345678", esme_addr_ton=5, esme_addr="relayd"
    ),
    DataSm: DataSm(sequence_number=15, source_addr="relayd", destination_addr="821012345678"),
    DataSmResp: DataSmResp(sequence_number=15, message_id="d1"),
}

HEADER_ONLY_CLASSES = [cls for cls in ALL_PDU_CLASSES if not cls.LAYOUT]
BODY_CLASSES = [cls for cls in ALL_PDU_CLASSES if cls.LAYOUT]
RESPONSE_CLASSES: list[type[Pdu]] = [c for c in ALL_PDU_CLASSES if issubclass(c, Response)]
SM_CLASSES = [SubmitSm, DeliverSm, SubmitMulti, ReplaceSm]


def test_samples_cover_every_class() -> None:
    """The hand-picked samples include one instance of each of the 27 PDU classes."""
    assert set(SAMPLES) == set(ALL_PDU_CLASSES)
    assert len(ALL_PDU_CLASSES) == len(CommandId) == 27


# ============================================================================ round trips


@every_class
@PROPERTY
@given(data=st.data())
def test_codec_round_trip_preserves_every_pdu(cls: type[Pdu], data: st.DataObject) -> None:
    """decode(encode(p)) == p for arbitrary valid PDUs of every class (hand-written codec)."""
    pdu = data.draw(pdu_of(cls))
    assert codec.decode(codec.encode(pdu)) == pdu


@every_class
@PROPERTY
@given(data=st.data())
def test_spec_round_trip_preserves_every_pdu(cls: type[Pdu], data: st.DataObject) -> None:
    """spec_decode(spec_encode(p)) == p for arbitrary valid PDUs of every class."""
    pdu = data.draw(pdu_of(cls))
    assert spec.spec_decode(spec.spec_encode(pdu)) == pdu


@every_class
@PROPERTY
@given(data=st.data())
def test_spec_and_codec_are_equivalent_for_every_class(cls: type[Pdu], data: st.DataObject) -> None:
    """Both codecs encode a valid PDU to the same bytes and decode those bytes to equal PDUs."""
    pdu = data.draw(pdu_of(cls))
    raw = codec.encode(pdu)
    assert spec.spec_encode(pdu) == raw
    assert codec.decode(raw) == spec.spec_decode(raw) == pdu


@settings(max_examples=400, deadline=None, suppress_health_check=_NOISY)
@given(pdu=hot_pdus())
def test_spec_and_codec_are_equivalent_on_hot_pdus(pdu: Pdu) -> None:
    """The specialised hot paths (submit_sm, deliver_sm, data_sm, their responses,
    enquire_link, generic_nack) agree with the construct specification."""
    raw = codec.encode(pdu)
    assert spec.spec_encode(pdu) == raw
    assert codec.decode(raw) == spec.spec_decode(raw) == pdu


@settings(max_examples=300, deadline=None, suppress_health_check=_NOISY)
@given(pdu=pdus())
def test_decode_body_agrees_with_decode(pdu: Pdu) -> None:
    """decode_body on a header already read gives the same PDU as decode on the whole."""
    raw = codec.encode(pdu)
    length, command_id, status, seq = struct.unpack_from(">IIII", raw)
    assert length == len(raw)
    assert codec.decode_body(command_id, status, seq, raw[16:]) == pdu


@every_class
def test_sample_round_trips_in_both_codecs(cls: type[Pdu]) -> None:
    """Each hand-picked sample encodes to the same bytes in both codecs and decodes back."""
    pdu = SAMPLES[cls]
    raw = codec.encode(pdu)
    assert spec.spec_encode(pdu) == raw
    assert codec.decode(raw) == spec.spec_decode(raw) == pdu


# ==================================================================== the two declarations agree


def test_spec_declares_every_command_id_with_its_class() -> None:
    """spec.COMMANDS maps all 27 command ids (SMPP 3.4 Table 5-1) to the right PDU class."""
    assert set(spec.COMMANDS) == {int(c) for c in CommandId}
    for command_id, (cls, _) in spec.COMMANDS.items():
        assert cls.command_id == command_id
        if command_id & 0x80000000:
            assert issubclass(cls, Response)


def test_spec_tlv_table_matches_constants() -> None:
    """The TLV table written in spec.py agrees with constants.Tag/TLV_TYPES/TLV_CSTRING_MAX."""
    kinds = {
        TlvType.INT1: "int1",
        TlvType.INT2: "int2",
        TlvType.INT4: "int4",
        TlvType.CSTRING: "cstring",
        TlvType.OCTETS: "octets",
        TlvType.EMPTY: "empty",
    }
    assert len(spec.TLV_TABLE) == len({t for t, *_ in spec.TLV_TABLE}) == len(TLV_TYPES)
    for tag, name, kind, max_octets in spec.TLV_TABLE:
        assert Tag(tag).name == name
        assert kinds[TLV_TYPES[tag]] == kind == spec.tlv_kind(tag)
        assert TLV_CSTRING_MAX.get(tag, 0) == max_octets


def _spec_fields(struct_: Any) -> list[tuple[str, Any]]:
    return [(sc.name, sc.subcon) for sc in struct_.subcons]


@every_class
def test_spec_body_matches_layout(cls: type[Pdu]) -> None:
    """spec.py and pdu.LAYOUT declare the same mandatory fields, order, sizes and statuses."""
    body = spec.COMMANDS[cls.command_id][1]
    declared = _spec_fields(body)
    assert declared[-1][0] == "tlvs"
    expected: list[tuple[str, int, int]] = []  # (name, max octets, status) of C-strings
    names: list[str] = []
    for fs in cls.LAYOUT:
        if fs.kind == Kind.SM:
            names += ["sm_length", "short_message"]
        elif fs.kind == Kind.DESTS:
            names += ["number_of_dests", "dest_addresses"]
        elif fs.kind == Kind.UNSUCCESS:
            names += ["no_unsuccess", "unsuccess_smes"]
        else:
            names.append(fs.name)
        if fs.kind == Kind.CSTR:
            expected.append((fs.name, fs.max_octets, fs.status))
    assert [n for n, _ in declared[:-1]] == names
    got = [(n, c.max_octets, c.status) for n, c in declared if isinstance(c, spec.CString)]
    assert got == expected


# ============================================================================ malformed input


# SMPP 3.4 §4 sizes (digest §5) and the status the codec docstring names per field.
CSTR_STATUS = {
    "system_id": S.ESME_RINVSYSID,
    "password": S.ESME_RINVPASWD,
    "system_type": S.ESME_RINVSYSTYP,
    "address_range": S.ESME_RINVPARLEN,
    "service_type": S.ESME_RINVSERTYP,
    "source_addr": S.ESME_RINVSRCADR,
    "destination_addr": S.ESME_RINVDSTADR,
    "esme_addr": S.ESME_RINVDSTADR,
    "schedule_delivery_time": S.ESME_RINVSCHED,
    "validity_period": S.ESME_RINVEXPIRY,
    "message_id": S.ESME_RINVMSGID,
    "final_date": S.ESME_RINVPARLEN,
}
CSTR_MAX = {
    "system_id": 16,
    "password": 9,
    "system_type": 13,
    "address_range": 41,
    "service_type": 6,
    "source_addr": 21,
    "destination_addr": 21,
    "schedule_delivery_time": 17,
    "validity_period": 17,
    "message_id": 65,
    "final_date": 17,
}
CSTR_MAX_65 = {DataSm, AlertNotification}  # §4.7.1, §4.12.1: addresses up to 65


def _cstr_cases() -> Iterator[tuple[type[Pdu], str, int, int]]:
    for cls in ALL_PDU_CLASSES:
        for f in dataclasses.fields(cls):
            if f.name in CSTR_STATUS:
                big = cls in CSTR_MAX_65 and f.name.endswith("addr")
                yield cls, f.name, 65 if big else CSTR_MAX[f.name], CSTR_STATUS[f.name]


CSTR_CASES = list(_cstr_cases())


def test_cstr_cases_cover_every_string_field() -> None:
    """The too-long C-string cases include every str field of every PDU class."""
    str_fields = {
        (cls, f.name) for cls in ALL_PDU_CLASSES for f in dataclasses.fields(cls) if f.type == "str"
    }
    assert {(cls, name) for cls, name, _, _ in CSTR_CASES} == str_fields


@pytest.mark.parametrize(
    ("cls", "name", "max_octets", "status"),
    CSTR_CASES,
    ids=[f"{c.__name__}.{n}" for c, n, _, _ in CSTR_CASES],
)
def test_cstring_one_octet_too_long_is_the_fields_status(
    cls: type[Pdu], name: str, max_octets: int, status: int
) -> None:
    """A C-string at its maximum round-trips; one more octet is the field's own status
    on decode and a LocalProtocolError on encode."""
    longest = "Q" * (max_octets - 1)
    pdu = cls(sequence_number=77, **{name: longest})  # type: ignore[arg-type]
    raw = codec.encode(pdu)
    assert spec.spec_encode(pdu) == raw
    assert codec.decode(raw) == spec.spec_decode(raw) == pdu
    too_long = fix_length(raw.replace(longest.encode(), longest.encode() + b"Q", 1))
    assert_rejected(too_long, status)
    assert_refused(cls(**{name: longest + "Q"}))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("pdu", "status"),
    [
        (SubmitMulti(dest_addresses=(SmeAddress(1, 1, "Q" * 20),)), S.ESME_RINVDSTADR),
        (SubmitMulti(dest_addresses=(DistributionList("Q" * 20),)), S.ESME_RINVDLNAME),
        (SubmitMultiResp(unsuccess_smes=(UnsuccessSme(1, 1, "Q" * 20, 0),)), S.ESME_RINVDSTADR),
    ],
    ids=["sme_destination_addr", "dl_name", "unsuccess_destination_addr"],
)
def test_nested_cstring_too_long_is_its_status(pdu: Pdu, status: int) -> None:
    """destination_addr and dl_name inside submit_multi(_resp) entries are limited to 21 octets."""
    raw = codec.encode(pdu)
    assert spec.spec_encode(pdu) == raw
    assert spec.spec_decode(raw) == pdu
    assert_rejected(fix_length(raw.replace(b"Q" * 20, b"Q" * 21, 1)), status)
    assert_refused(dataclasses.replace(pdu, **_grow_nested(pdu)))


def _grow_nested(pdu: Pdu) -> dict[str, Any]:
    if isinstance(pdu, SubmitMulti):
        d = pdu.dest_addresses[0]
        if isinstance(d, SmeAddress):
            return {"dest_addresses": (SmeAddress(1, 1, "Q" * 21),)}
        return {"dest_addresses": (DistributionList("Q" * 21),)}
    return {"unsuccess_smes": (UnsuccessSme(1, 1, "Q" * 21, 0),)}


@pytest.mark.parametrize("cls", BODY_CLASSES, ids=_name)
def test_truncated_body_is_invalid_command_length(cls: type[Pdu]) -> None:
    """A body that ends inside any mandatory field is ESME_RINVCMDLEN (the
    command_length does not fit the content), in both codecs."""
    raw = codec.encode(SAMPLES[cls])
    body = raw[16:]
    first = 1 if issubclass(cls, Response) else 0  # an empty response body is valid
    for cut in range(first, len(body)):
        assert_rejected(frame(cls.command_id, body[:cut], seq=5), S.ESME_RINVCMDLEN)


@pytest.mark.parametrize("cls", RESPONSE_CLASSES + HEADER_ONLY_CLASSES, ids=_name)
@pytest.mark.parametrize("status", [0, S.ESME_RSYSERR])
@both_decoders
def test_response_with_empty_body_decodes_to_defaults(
    cls: type[Pdu], status: int, decode: Decoder
) -> None:
    """A response (error or not) or header-only PDU without a body decodes with
    default fields (SMPP 3.4 §4.1.2, §4.4.2; some peers send none on success)."""
    assert decode(frame(cls.command_id, b"", status=status)) == cls(status, 1)


@pytest.mark.parametrize("cls", [c for c in BODY_CLASSES if c not in RESPONSE_CLASSES], ids=_name)
def test_request_without_body_is_invalid_command_length(cls: type[Pdu]) -> None:
    """A request with mandatory fields but no body is ESME_RINVCMDLEN."""
    assert_rejected(frame(cls.command_id, b""), S.ESME_RINVCMDLEN)


@pytest.mark.parametrize("cls", RESPONSE_CLASSES, ids=_name)
@both_encoders
def test_error_response_with_default_fields_is_header_only(cls: type[Pdu], encode: Encoder) -> None:
    """An error response with default fields and no TLVs is sent without a body
    (SMPP 3.4 §4.1.2, §4.4.2); with a TLV, a field set or status 0, the body is sent."""
    assert len(encode(cls(command_status=S.ESME_RSYSERR, sequence_number=3))) == 16
    with_tlv = cls(command_status=S.ESME_RSYSERR, tlvs=(Tlv(Tag.network_error_code, b"\3\0\1"),))
    assert len(encode(with_tlv)) == 16 + 7 + (len(codec.encode(cls())) - 16)
    if cls.LAYOUT:
        assert len(encode(cls(command_status=0))) > 16
        sample = dataclasses.replace(SAMPLES[cls], command_status=1)
        if sample != cls(1, sample.sequence_number):  # a field is set: the body goes
            assert len(encode(sample)) > 16


@pytest.mark.parametrize("cls", SM_CLASSES, ids=_name)
def test_sm_length_255_is_invalid_message_length(cls: type[Pdu]) -> None:
    """sm_length 255 is not allowed (SMPP 3.4 §5.2.21), even with 255 octets present."""
    raw = codec.encode(SAMPLES[cls])
    assert raw[-1] == 0  # sm_length of the empty short_message ends the body
    assert_rejected(fix_length(raw[:-1] + b"\xff" + b"A" * 255), S.ESME_RINVMSGLEN)


@pytest.mark.parametrize("cls", SM_CLASSES, ids=_name)
def test_sm_length_past_the_body_is_invalid_message_length(cls: type[Pdu]) -> None:
    """An sm_length larger than the octets left in the body is ESME_RINVMSGLEN."""
    raw = codec.encode(SAMPLES[cls])
    assert_rejected(fix_length(raw[:-1] + b"\x0a" + b"A" * 9), S.ESME_RINVMSGLEN)
    assert_rejected(fix_length(raw[:-1] + b"\x01"), S.ESME_RINVMSGLEN)


@every_class
@pytest.mark.parametrize(
    "tail",
    [b"\x02", b"\x02\x04", b"\x02\x04\x00", b"\x02\x04\x00\x05abcd", b"\x14\x01\xff\xff"],
    ids=["1_octet", "2_octets", "3_octets", "value_short", "length_ffff"],
)
def test_broken_tlv_stream_is_invalid_optional_part(cls: type[Pdu], tail: bytes) -> None:
    """A TLV header or value running past the body is ESME_RINVOPTPARSTREAM, for every PDU."""
    assert_rejected(fix_length(codec.encode(SAMPLES[cls]) + tail), S.ESME_RINVOPTPARSTREAM)


@pytest.mark.parametrize(
    ("tag", "value"),
    [
        (Tag.sar_total_segments, b"\x00\x03"),  # int1 with length 2
        (Tag.message_state, b""),  # int1 with length 0
        (Tag.sar_msg_ref_num, b"\x01"),  # int2 with length 1
        (Tag.sar_msg_ref_num, b"\x00\x01\x02"),  # int2 with length 3
        (Tag.qos_time_to_live, b"\x00\x00\x01"),  # int4 with length 3
        (Tag.receipted_message_id, b"A" * 66),  # cstring over 65
        (Tag.additional_status_info_text, b"A" * 256 + b"\x00"),  # cstring over 256
    ],
    ids=["int1_len2", "int1_len0", "int2_len1", "int2_len3", "int4_len3", "cstr_66", "cstr_257"],
)
@pytest.mark.parametrize("cls", [SubmitSm, DeliverSmResp, EnquireLink, QuerySm], ids=_name)
def test_standard_tlv_of_wrong_size_is_invalid_parameter_length(
    tag: int, value: bytes, cls: type[Pdu]
) -> None:
    """A standard TLV whose length does not fit its type is ESME_RINVPARLEN."""
    tlv = struct.pack(">HH", tag, len(value)) + value
    assert_rejected(fix_length(codec.encode(SAMPLES[cls]) + tlv), S.ESME_RINVPARLEN)


@pytest.mark.parametrize("flag", [0, 3, 0xFF])
def test_unknown_dest_flag_is_invalid_dest_flag(flag: int) -> None:
    """A dest_flag other than 1 (SME) or 2 (distribution list) is ESME_RINVDESTFLAG."""
    raw = codec.encode(SubmitMulti(dest_addresses=(DistributionList("zz"),)))
    assert_rejected(raw.replace(b"\x02zz\x00", bytes([flag]) + b"zz\x00", 1), S.ESME_RINVDESTFLAG)


def test_number_of_dests_255_is_invalid_number_of_destinations() -> None:
    """number_of_dests is at most 254 (SMPP 3.4 §5.2.24): 255 is ESME_RINVNUMDESTS."""
    body = b"\x00\x00\x00\x00" + b"\xff" + b"\x02x\x00" * 255 + b"\x00" * 7 + b"\x00\x00\x00"
    assert_rejected(frame(CommandId.submit_multi, body), S.ESME_RINVNUMDESTS)
    ok = SubmitMulti(dest_addresses=(DistributionList("x"),) * 254)
    assert spec.spec_decode(codec.encode(ok)) == codec.decode(spec.spec_encode(ok)) == ok


@pytest.mark.parametrize(
    "command_id", [0x0000000A, 0x8000000B, 0x80000102, 0x00000111, 0x00010200, 0x7FFFFFFF]
)
def test_unknown_command_id_is_invalid_command_id(command_id: int) -> None:
    """A reserved, [v5.0] or vendor command_id is ESME_RINVCMDID, with its ids on the error."""
    assert_rejected(frame(command_id, b"\x00\x01\x02", seq=0x1234), S.ESME_RINVCMDID)


@both_decoders
@pytest.mark.parametrize("size", [0, 1, 4, 15])
def test_fewer_than_16_octets_is_invalid_command_length(decode: Decoder, size: int) -> None:
    """Less than a header is ESME_RINVCMDLEN."""
    with pytest.raises(PduError) as info:
        decode(frame(CommandId.enquire_link)[:size])
    assert info.value.command_status == S.ESME_RINVCMDLEN


@pytest.mark.parametrize("delta", [-1, 1, 100])
def test_command_length_not_matching_the_bytes_is_invalid_command_length(delta: int) -> None:
    """command_length must equal the number of bytes given (digest §13)."""
    raw = codec.encode(SAMPLES[SubmitSm])
    assert_rejected(struct.pack(">I", len(raw) + delta) + raw[4:], S.ESME_RINVCMDLEN)


# ============================================================================ refused on encode


@pytest.mark.parametrize(
    "pdu",
    [
        pytest.param(SubmitSm(source_addr="1" * 21), id="source_addr_21"),
        pytest.param(SubmitSm(destination_addr="한국"), id="non_latin1"),
        pytest.param(SubmitSm(service_type="CM\x00"), id="nul_inside"),
        pytest.param(SubmitSm(esm_class=256), id="int1_256"),
        pytest.param(SubmitSm(data_coding=-1), id="int1_negative"),
        pytest.param(SubmitSm(short_message=b"x" * 255), id="sm_255"),
        pytest.param(SubmitSm(tlvs=(Tlv(Tag.sar_total_segments, 256),)), id="tlv_int1_256"),
        pytest.param(SubmitSm(tlvs=(Tlv(Tag.sar_msg_ref_num, 0x10000),)), id="tlv_int2_65536"),
        pytest.param(SubmitSm(tlvs=(Tlv(Tag.receipted_message_id, "x" * 65),)), id="tlv_cstr_65"),
        pytest.param(
            SubmitSm(tlvs=(Tlv(Tag.receipted_message_id, "한"),)), id="tlv_cstr_non_latin1"
        ),
        pytest.param(SubmitSm(tlvs=(Tlv(0x1401, 5),)), id="int_on_unknown_tag"),
        pytest.param(
            SubmitSm(tlvs=(Tlv(Tag.message_payload, b"x" * 0x10000),)), id="tlv_value_64k"
        ),
        pytest.param(SubmitSm(sequence_number=2**32), id="seq_2_32"),
        pytest.param(SubmitSmResp(command_status=-1), id="status_negative"),
        pytest.param(DataSm(source_addr="1" * 65), id="data_sm_addr_65"),
        pytest.param(DeliverSmResp(message_id="x" * 65), id="message_id_65"),
        pytest.param(BindTransmitter(password="123456789"), id="password_9"),
        pytest.param(BindTransmitter(interface_version=0x100), id="interface_version_256"),
        pytest.param(SubmitMulti(dest_addresses=(SmeAddress(),) * 255), id="dests_255"),
        pytest.param(
            SubmitMulti(dest_addresses=(SmeAddress(dest_addr_ton=256),)), id="dest_ton_256"
        ),
        pytest.param(SubmitMulti(short_message=b"x" * 255), id="multi_sm_255"),
        pytest.param(
            SubmitMultiResp(unsuccess_smes=(UnsuccessSme(error_status_code=2**32),)),
            id="error_status_2_32",
        ),
        pytest.param(ReplaceSm(short_message=b"x" * 255), id="replace_sm_255"),
        pytest.param(QuerySmResp(final_date="1" * 17), id="final_date_17"),
        pytest.param(
            EnquireLink(tlvs=(Tlv(Tag.message_state, 256),)), id="header_only_tlv_int1_256"
        ),
    ],
)
def test_bad_values_are_refused_on_encode(pdu: Pdu) -> None:
    """Values SMPP cannot carry are a LocalProtocolError in both encoders, never bad bytes."""
    assert_refused(pdu)


@both_encoders
def test_non_pdu_is_refused_on_encode(encode: Encoder) -> None:
    """Encoding something that is not a PDU is a LocalProtocolError."""
    with pytest.raises(LocalProtocolError):
        encode(object())  # type: ignore[arg-type]


# ============================================================================ pass-through


UNKNOWN_TLVS = [
    Tlv(0x1400, b""),
    Tlv(0x1401, b"\x0f\xa1"),  # Korean carrier result code (constants.TAG_KR_RESULT_CODE)
    Tlv(0x3FFF, bytes(range(256))),
    Tlv(0x0428, b"\x50"),  # [v5.0] congestion_state
    Tlv(0x0600, b"\x00\x01"),  # [v5.0] broadcast range
    Tlv(0x0000, b"\x00"),
    Tlv(0xFFFF, b"abc\x00def"),
]


@pytest.mark.parametrize("tlv", UNKNOWN_TLVS, ids=lambda t: f"0x{t.tag:04X}")
@pytest.mark.parametrize(
    "cls", [SubmitSm, DeliverSm, EnquireLinkResp, GenericNack, BindTransmitterResp], ids=_name
)
def test_unknown_tlv_is_kept_raw_and_reencoded_byte_for_byte(tlv: Tlv, cls: type[Pdu]) -> None:
    """Unknown and vendor TLVs (0x1400..0x3FFF, [v5.0], reserved) are skipped, not fatal
    (SMPP 3.4 §3.3): kept as raw bytes and written back unchanged."""
    assert isinstance(tlv.value, bytes)
    wire = struct.pack(">HH", tlv.tag, len(tlv.value)) + tlv.value
    raw = fix_length(codec.encode(SAMPLES[cls]) + wire + b"\x04\x27\x00\x01\x02")
    expected = dataclasses.replace(SAMPLES[cls], tlvs=(tlv, Tlv(Tag.message_state, 2)))
    for decode in DECODERS:
        pdu = decode(raw)
        assert pdu == expected
        assert type(pdu.tlvs[0].value) is bytes
    for encode in ENCODERS:
        assert encode(expected) == raw


@both_decoders
def test_cstring_tlv_without_nul_is_accepted_and_reencoded_with_nul(decode: Decoder) -> None:
    """Some SMSCs omit the NUL of receipted_message_id: the value runs to the end of
    the TLV, and is written back with its NUL (SMPP 3.4 §5.3.2.12)."""
    pdu = decode(fix_length(codec.encode(SAMPLES[DeliverSm]) + b"\x00\x1e\x00\x03abc"))
    assert pdu.tlvs == (Tlv(Tag.receipted_message_id, "abc"),)
    assert codec.encode(pdu).endswith(b"\x00\x1e\x00\x04abc\x00")
    assert spec.spec_encode(pdu) == codec.encode(pdu)


@both_decoders
@pytest.mark.parametrize(
    ("tag", "max_octets"),
    [(Tag.receipted_message_id, 65), (Tag.additional_status_info_text, 256)],
    ids=["receipted_message_id", "additional_status_info_text"],
)
def test_cstring_tlv_without_nul_is_accepted_only_if_it_fits_with_one(
    decode: Decoder, tag: int, max_octets: int
) -> None:
    """A C-string TLV lacking its NUL is accepted up to max-1 octets (so it can be
    relayed unchanged, NUL restored); at max octets it is ESME_RINVPARLEN."""
    base = codec.encode(SAMPLES[DeliverSm])
    fits = struct.pack(">HH", tag, max_octets - 1) + b"A" * (max_octets - 1)
    pdu = decode(fix_length(base + fits))
    assert pdu.tlv(tag) == "A" * (max_octets - 1)
    assert codec.decode(codec.encode(pdu)) == pdu
    assert spec.spec_decode(codec.encode(pdu)) == pdu
    too_long = struct.pack(">HH", tag, max_octets) + b"A" * max_octets
    with pytest.raises(PduError) as exc_info:
        decode(fix_length(base + too_long))
    assert exc_info.value.command_status == S.ESME_RINVPARLEN


@both_decoders
def test_empty_tlv_with_a_value_is_kept_raw(decode: Decoder) -> None:
    """alert_on_message_delivery has no value in v3.4; a [v5.0] 1-octet value is kept raw."""
    pdu = decode(
        fix_length(codec.encode(SAMPLES[SubmitSm]) + b"\x13\x0c\x00\x00\x13\x0c\x00\x01\x02")
    )
    assert pdu.tlvs == (Tlv(Tag.alert_on_message_delivery, None), Tlv(0x130C, b"\x02"))


@pytest.mark.parametrize("status", [0x401, 0x4FF, 0x500, 0xDEADBEEF, 0xFFFFFFFF])
@pytest.mark.parametrize("cls", RESPONSE_CLASSES, ids=_name)
def test_unknown_command_status_is_kept_as_int(status: int, cls: type[Pdu]) -> None:
    """Unknown and vendor command_status values (digest §4) decode to the same plain
    int and encode back unchanged, with and without a body."""
    with_body = dataclasses.replace(SAMPLES[cls], command_status=status)
    without_body = cls(command_status=status, sequence_number=3)
    for pdu in (with_body, without_body):
        raw = codec.encode(pdu)
        assert spec.spec_encode(pdu) == raw
        assert struct.unpack_from(">I", raw, 8)[0] == status
        for decode in DECODERS:
            got = decode(raw)
            assert got == pdu
            assert type(got.command_status) is int


# ============================================================================ FrameBuffer


def _frames_fed_in(chunks: list[bytes], fb: FrameBuffer | None = None) -> list[tuple[Any, ...]]:
    fb = fb or FrameBuffer()
    out: list[tuple[Any, ...]] = []
    for chunk in chunks:
        fb.feed(chunk)
        while (f := fb.next_frame()) is not None:
            out.append(f)
    assert fb.buffered_bytes == 0
    return out


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in itertools.pairwise([0, *points, len(data)])]


@settings(max_examples=150, deadline=None, suppress_health_check=_NOISY)
@given(
    stream=st.lists(pdus(), min_size=1, max_size=8),
    cuts=st.lists(st.integers(0, 1 << 20), max_size=30),
)
def test_framebuffer_chunking_never_matters(stream: list[Pdu], cuts: list[int]) -> None:
    """The same byte stream fed whole, one byte at a time and in random splits gives
    the same frames, and each frame decodes to the PDU that was sent."""
    encoded = [codec.encode(p) for p in stream]
    data = b"".join(encoded)
    whole = _frames_fed_in([data])
    assert _frames_fed_in([data[i : i + 1] for i in range(len(data))]) == whole
    assert _frames_fed_in(_split(data, cuts)) == whole
    assert [f[0] for f in whole] == [len(e) for e in encoded]
    assert [codec.decode_body(*f[1:]) for f in whole] == stream


def _feed_all(fb: FrameBuffer, chunks: list[bytes], out: list[tuple[Any, ...]]) -> None:
    for chunk in chunks:
        fb.feed(chunk)
        while (f := fb.next_frame()) is not None:
            out.append(f)


def _frames_until_framing_error(chunks: list[bytes]) -> list[tuple[Any, ...]]:
    fb = FrameBuffer()
    out: list[tuple[Any, ...]] = []
    with pytest.raises(FramingError):
        _feed_all(fb, chunks, out)
    assert fb.buffered_bytes == 0
    return out


@settings(max_examples=100, deadline=None, suppress_health_check=_NOISY)
@given(
    stream=st.lists(pdus(), max_size=5),
    bad_length=st.one_of(st.integers(0, 15), st.integers(DEFAULT_MAX_PDU_BYTES + 1, 2**32 - 1)),
    trailer=st.binary(max_size=20),
    cuts=st.lists(st.integers(0, 1 << 20), max_size=20),
)
def test_framebuffer_chunking_never_matters_before_a_framing_error(
    stream: list[Pdu], bad_length: int, trailer: bytes, cuts: list[int]
) -> None:
    """Frames that arrived whole before a bad command_length are all delivered, then
    FramingError, however the bytes were chunked."""
    data = b"".join(codec.encode(p) for p in stream) + struct.pack(">I", bad_length) + trailer
    whole = _frames_until_framing_error([data])
    assert _frames_until_framing_error([data[i : i + 1] for i in range(len(data))]) == whole
    assert _frames_until_framing_error(_split(data, cuts)) == whole
    assert [codec.decode_body(*f[1:]) for f in whole] == stream


def test_framebuffer_keeps_partial_frame_until_complete() -> None:
    """Fewer bytes than command_length: no frame, every byte kept (SMPP 3.4 §2.4)."""
    raw = codec.encode(SAMPLES[SubmitSm])
    fb = FrameBuffer()
    for i in range(len(raw) - 1):
        fb.feed(raw[i : i + 1])
        assert fb.next_frame() is None
        assert fb.buffered_bytes == i + 1
    fb.feed(raw[-1:])
    assert fb.next_frame() == (len(raw), CommandId.submit_sm, 0, 4, raw[16:])
    assert fb.buffered_bytes == 0


def _assert_poisoned(fb: FrameBuffer) -> None:
    assert fb.buffered_bytes == 0
    with pytest.raises(FramingError):
        fb.feed(codec.encode(EnquireLink(sequence_number=1)))
    with pytest.raises(FramingError):
        fb.next_frame()
    assert fb.buffered_bytes == 0


@pytest.mark.parametrize("length", [0, 1, 15])
def test_command_length_below_16_is_framing_error_on_the_fourth_octet(length: int) -> None:
    """command_length < 16 raises FramingError(ESME_RINVCMDLEN) as soon as its four
    octets are in, and the buffer stays poisoned."""
    fb = FrameBuffer()
    head = struct.pack(">I", length)
    fb.feed(head[:3])
    assert fb.next_frame() is None
    assert fb.buffered_bytes == 3
    with pytest.raises(FramingError) as info:
        fb.feed(head[3:])
    assert info.value.command_status == S.ESME_RINVCMDLEN
    _assert_poisoned(fb)


@pytest.mark.parametrize(
    ("cap", "length"),
    [
        (DEFAULT_MAX_PDU_BYTES, DEFAULT_MAX_PDU_BYTES + 1),
        (DEFAULT_MAX_PDU_BYTES, 0x48545450),  # "HTTP": the peer is not speaking SMPP
        (DEFAULT_MAX_PDU_BYTES, 0xFFFFFFFF),
        (1024, 1025),
        (16, 17),
    ],
)
def test_command_length_above_cap_is_framing_error_before_the_body(cap: int, length: int) -> None:
    """command_length above the cap (64 KiB by default) raises as soon as its four octets
    arrive, before any of the body is buffered; the buffer stays poisoned."""
    fb = FrameBuffer() if cap == DEFAULT_MAX_PDU_BYTES else FrameBuffer(cap)
    with pytest.raises(FramingError) as info:
        fb.feed(struct.pack(">I", length))
    assert info.value.command_status == S.ESME_RINVCMDLEN
    _assert_poisoned(fb)


@pytest.mark.parametrize("cap", [1024, DEFAULT_MAX_PDU_BYTES])
def test_command_length_equal_to_cap_is_accepted(cap: int) -> None:
    """A PDU of exactly the cap is framed."""
    payload = cap - len(codec.encode(SubmitSm())) - 4
    raw = codec.encode(SubmitSm(tlvs=(Tlv(Tag.message_payload, b"p" * payload),)))
    assert len(raw) == cap
    assert _frames_fed_in([raw], FrameBuffer(cap))[0][0] == cap


def test_framebuffer_cap_below_header_is_refused() -> None:
    """A cap smaller than the 16-octet header is a configuration error."""
    with pytest.raises(ValueError, match="at least 16"):
        FrameBuffer(15)


def test_framing_error_carries_sequence_number_when_header_is_whole() -> None:
    """With a whole bad header in hand, the error carries its sequence_number for the
    generic_nack (SMPP 3.4 §4.3.1); with only the length, 0."""
    fb = FrameBuffer()
    with pytest.raises(FramingError) as info:
        fb.feed(struct.pack(">IIII", 8, CommandId.submit_sm, 0, 77))
    assert info.value.sequence_number == 77
    fb = FrameBuffer()
    with pytest.raises(FramingError) as info:
        fb.feed(struct.pack(">I", 8))
    assert info.value.sequence_number == 0


def test_bad_length_after_a_frame_raises_once_the_frame_is_taken() -> None:
    """A good frame followed (in a later read) by a bad command_length: the frame is
    delivered, the following feed raises."""
    fb = FrameBuffer()
    good = codec.encode(EnquireLink(sequence_number=1))
    fb.feed(good)
    assert fb.next_frame() == (16, CommandId.enquire_link, 0, 1, b"")
    with pytest.raises(FramingError):
        fb.feed(b"\x00\x00\x00\x05")
    _assert_poisoned(fb)


def test_good_frame_in_the_same_read_as_a_bad_length_is_still_delivered() -> None:
    """Chunking must not matter: a complete frame is delivered even when the next
    command_length, arriving in the same read, is invalid."""
    fb = FrameBuffer()
    fb.feed(codec.encode(EnquireLink(sequence_number=1)) + b"\x00\x00\x00\x05")
    assert fb.next_frame() == (16, CommandId.enquire_link, 0, 1, b"")
    with pytest.raises(FramingError):
        fb.next_frame()
    _assert_poisoned(fb)


@pytest.mark.parametrize(
    "pdu",
    [
        SubmitSm(short_message="abc"),  # type: ignore[arg-type]
        SubmitSm(tlvs=(Tlv("x", b""),)),  # type: ignore[arg-type]
        SubmitMultiResp(unsuccess_smes=(object(),)),  # type: ignore[arg-type]
        DeliverSm(source_addr=5),  # type: ignore[arg-type]
    ],
    ids=["str-short_message", "str-tag", "object-unsuccess", "int-addr"],
)
def test_wrong_python_types_are_local_protocol_errors(pdu: Pdu) -> None:
    """Encoding a field of the wrong Python type raises LocalProtocolError, never a bare
    TypeError/AttributeError (the caller broke the rules: style guide §5.1)."""
    with pytest.raises(LocalProtocolError):
        codec.encode(pdu)
