"""Byte-level interop with python-smpplib, an independent SMPP implementation.

smpplib is used here only as an oracle: our bytes must decode in smpplib to the
same fields, and smpplib's bytes must decode in ours. (Its deviations listed in
the digest §13 — e.g. the NPI 0x02 'ISDN' constant — do not touch these fields.)
"""

from __future__ import annotations

from typing import Any

import smpplib.smpp as smpplib_smpp
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import codec
from protocol.constants import Tag
from protocol.pdu import (
    BindTransceiver,
    BindTransceiverResp,
    BindTransmitter,
    DeliverSm,
    EnquireLink,
    EnquireLinkResp,
    SubmitSm,
    SubmitSmResp,
)
from protocol.tlv import Tlv


class _SeqSource:
    """The minimal 'client' smpplib needs to build and parse PDUs."""

    sequence = 0

    def next_sequence(self) -> int:
        self.sequence += 1
        return self.sequence


_CLIENT = _SeqSource()


def _smpplib_build(command: str, *, sequence: int, **fields: Any) -> bytes:
    # smpplib draws request sequence numbers from its client and ignores a
    # `sequence=` field for them; set the attribute after construction instead.
    pdu = smpplib_smpp.make_pdu(command, client=_CLIENT, **fields)
    pdu.sequence = sequence
    return bytes(pdu.generate())


def _smpplib_parse(data: bytes) -> Any:
    return smpplib_smpp.parse_pdu(data, client=_CLIENT)


ascii_cstr = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=15)
digits = st.text(alphabet="0123456789", min_size=0, max_size=20)
byte = st.integers(0, 255)


def test_bind_transmitter_from_smpplib_decodes_in_ours() -> None:
    """smpplib's bind_transmitter decodes to the same fields (SMPP 3.4 §4.1.1)."""
    raw = _smpplib_build(
        "bind_transmitter",
        sequence=1,
        system_id="SMPP3TEST",
        password="secret08",
        system_type="SUBMIT1",
        interface_version=0x34,
        addr_ton=1,
        addr_npi=1,
        address_range="",
    )
    pdu = codec.decode(raw)
    assert pdu == BindTransmitter(
        sequence_number=1,
        system_id="SMPP3TEST",
        password="secret08",
        system_type="SUBMIT1",
        interface_version=0x34,
        addr_ton=1,
        addr_npi=1,
    )


def test_our_bind_transceiver_and_resp_decode_in_smpplib() -> None:
    """Our bind_transceiver and its response decode in smpplib (SMPP 3.4 §4.1.5, §4.1.6)."""
    ours = codec.encode(BindTransceiver(sequence_number=7, system_id="demo", password="pw"))
    theirs = _smpplib_parse(ours)
    assert theirs.command == "bind_transceiver"
    assert theirs.sequence == 7
    assert theirs.system_id == b"demo"
    assert theirs.password == b"pw"
    assert theirs.interface_version == 0x34
    resp = codec.encode(
        BindTransceiverResp(
            sequence_number=7, system_id="relayd", tlvs=(Tlv(Tag.sc_interface_version, 0x34),)
        )
    )
    theirs = _smpplib_parse(resp)
    assert theirs.command == "bind_transceiver_resp"
    assert theirs.system_id == b"relayd"
    assert theirs.sc_interface_version == 0x34


def test_bind_resp_with_error_and_no_body_decodes_in_smpplib() -> None:
    """An error bind_resp carries no body (SMPP 3.4 §4.1.2) and smpplib accepts it."""
    raw = codec.encode(BindTransceiverResp(sequence_number=2, command_status=0x0E))
    assert len(raw) == 16
    theirs = _smpplib_parse(raw)
    assert theirs.status == 0x0E
    assert theirs.sequence == 2


@settings(max_examples=200, deadline=None)
@given(
    seq=st.integers(1, 0x7FFFFFFF),
    service_type=st.text(alphabet="ABCDEFGHIJ", max_size=5),
    s_ton=byte,
    s_npi=byte,
    src=digits,
    d_ton=byte,
    d_npi=byte,
    dst=digits,
    esm_class=byte,
    protocol_id=byte,
    priority=st.integers(0, 3),
    registered_delivery=byte,
    data_coding=byte,
    short_message=st.binary(max_size=254),
)
def test_submit_sm_both_ways(
    seq: int,
    service_type: str,
    s_ton: int,
    s_npi: int,
    src: str,
    d_ton: int,
    d_npi: int,
    dst: str,
    esm_class: int,
    protocol_id: int,
    priority: int,
    registered_delivery: int,
    data_coding: int,
    short_message: bytes,
) -> None:
    """submit_sm fields survive smpplib→ours and ours→smpplib (SMPP 3.4 §4.4.1)."""
    fields: dict[str, Any] = {
        "service_type": service_type,
        "source_addr_ton": s_ton,
        "source_addr_npi": s_npi,
        "source_addr": src,
        "dest_addr_ton": d_ton,
        "dest_addr_npi": d_npi,
        "destination_addr": dst,
        "esm_class": esm_class,
        "protocol_id": protocol_id,
        "priority_flag": priority,
        "registered_delivery": registered_delivery,
        "data_coding": data_coding,
        "short_message": short_message,
    }
    theirs_raw = _smpplib_build("submit_sm", sequence=seq, **fields)
    ours = SubmitSm(sequence_number=seq, **fields)
    assert codec.decode(theirs_raw) == ours
    assert codec.encode(ours) == theirs_raw
    parsed = _smpplib_parse(codec.encode(ours))
    for name, value in fields.items():
        got = getattr(parsed, name)
        if name == "short_message" and got is None:
            got = b""  # smpplib's reading of sm_length 0
        want = value.encode("latin-1") if isinstance(value, str) else value
        assert got == want, name


def test_submit_sm_resp_both_ways() -> None:
    """submit_sm_resp's message_id survives both ways (SMPP 3.4 §4.4.2)."""
    raw = _smpplib_build("submit_sm_resp", sequence=11, message_id="A1B2C3")
    assert codec.decode(raw) == SubmitSmResp(sequence_number=11, message_id="A1B2C3")
    theirs = _smpplib_parse(codec.encode(SubmitSmResp(sequence_number=12, message_id="42")))
    assert (theirs.command, theirs.sequence, theirs.message_id) == ("submit_sm_resp", 12, b"42")


RECEIPT = (
    b"id:0A1B2C sub:001 dlvrd:001 submit date:2611282301 done date:2611282302"
    b" stat:DELIVRD err:000 text:hello"
)


def test_deliver_sm_receipt_from_smpplib_decodes_in_ours() -> None:
    """A receipt built by smpplib keeps esm_class, text and TLVs (SMPP 3.4 §4.6.1, App. B)."""
    raw = _smpplib_build(
        "deliver_sm",
        sequence=99,
        source_addr="01012345678",
        destination_addr="0212345678",
        esm_class=0x04,
        short_message=RECEIPT,
        receipted_message_id="0A1B2C",
        message_state=2,
    )
    pdu = codec.decode(raw)
    assert isinstance(pdu, DeliverSm)
    assert pdu.esm_class == 0x04
    assert pdu.short_message == RECEIPT
    assert pdu.tlv(Tag.receipted_message_id) == "0A1B2C"
    assert pdu.tlv(Tag.message_state) == 2


def test_our_deliver_sm_receipt_decodes_in_smpplib() -> None:
    """Our receipt with a vendor TLV decodes in smpplib once it allows unknown TLVs."""
    ours = DeliverSm(
        sequence_number=5,
        source_addr="01012345678",
        destination_addr="0212345678",
        esm_class=0x04,
        short_message=RECEIPT,
        tlvs=(
            Tlv(Tag.receipted_message_id, "0A1B2C"),
            Tlv(Tag.message_state, 2),
            Tlv(Tag.network_error_code, b"\x03\x00\x00"),
        ),
    )
    theirs = _smpplib_parse(codec.encode(ours))
    assert theirs.command == "deliver_sm"
    assert theirs.sequence == 5
    assert theirs.esm_class == 0x04
    assert theirs.short_message == RECEIPT
    assert theirs.receipted_message_id == b"0A1B2C"
    assert theirs.message_state == 2
    assert theirs.network_error_code == b"\x03\x00\x00"


def test_enquire_link_and_resp_both_ways() -> None:
    """enquire_link and its response are header-only both ways (SMPP 3.4 §4.11)."""
    raw = _smpplib_build("enquire_link", sequence=77)
    assert raw == codec.encode(EnquireLink(sequence_number=77))
    assert codec.decode(raw) == EnquireLink(sequence_number=77)
    raw = _smpplib_build("enquire_link_resp", sequence=77)
    assert codec.decode(raw) == EnquireLinkResp(sequence_number=77)
    theirs = _smpplib_parse(codec.encode(EnquireLinkResp(sequence_number=78)))
    assert (theirs.command, theirs.sequence, theirs.status) == ("enquire_link_resp", 78, 0)
