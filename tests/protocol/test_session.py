"""Unit and property tests of the sans-IO session (protocol/session.py).

No event loop, no sockets, no clock: every ``now`` is a literal (style guide §8.1).
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.codec import encode
from protocol.config import SessionConfig
from protocol.constants import MAX_SEQUENCE_NUMBER, RESPONSE_BIT, CommandId, CommandStatus, Tag
from protocol.errors import FramingError, LocalProtocolError, PduError, RemoteProtocolError
from protocol.events import (
    BindFailed,
    BindRequested,
    Bound,
    CloseReason,
    ConnectionClosed,
    Event,
    OutbindReceived,
    PduRejected,
    RequestReceived,
    ResponseReceived,
    ResponseTimedOut,
    UnbindReceived,
    Unbound,
    UnexpectedResponse,
)
from protocol.pdu import (
    PDU_CLASSES,
    AlertNotification,
    Bind,
    BindReceiver,
    BindTransceiver,
    BindTransmitter,
    BindTransmitterResp,
    CancelSm,
    DataSm,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    Outbind,
    Pdu,
    QuerySm,
    ReplaceSm,
    Request,
    Response,
    SubmitMulti,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    UnbindResp,
)
from protocol.session import (
    LEGALITY,
    Role,
    Session,
    SessionState,
    render_legality_grid,
    render_legality_table,
)
from tests.protocol.helpers import (
    QUIET,
    SessionPair,
    drain_events,
    event_types,
    pump,
    raw,
    session_in,
)

S = CommandStatus
ST = SessionState
OTHER = {Role.ESME: Role.SMSC, Role.SMSC: Role.ESME}


def header(length: int, command_id: int, status: int = 0, seq: int = 0) -> bytes:
    return struct.pack(">IIII", length, command_id, status, seq)


def decode_all(data: bytes) -> list[Pdu]:
    """Decode a byte string of whole PDUs (what a session queued)."""
    from protocol.codec import decode

    out = []
    while data:
        (length,) = struct.unpack_from(">I", data)
        out.append(decode(data[:length]))
        data = data[length:]
    return out


def submit(text: bytes = b"hello") -> SubmitSm:
    return SubmitSm(source_addr="12345", destination_addr="447700900123", short_message=text)


def bound_pair(bind_cls: type[Bind] = BindTransceiver, **kw: Any) -> SessionPair:
    pair = SessionPair.create(**kw)
    pair.bind(bind_cls)
    return pair


# ============================================================================ bind


@pytest.mark.parametrize(
    ("bind_cls", "state"),
    [
        (BindTransmitter, ST.BOUND_TX),
        (BindReceiver, ST.BOUND_RX),
        (BindTransceiver, ST.BOUND_TRX),
    ],
)
def test_bind_handshake_reaches_the_bound_state_on_both_sides(
    bind_cls: type[Bind], state: SessionState
) -> None:
    """SMPP 3.4 §4.1: ESME binds (OPEN → BINDING), SMSC answers ESME_ROK, both end BOUND_x."""
    pair = SessionPair.create()
    bind = bind_cls(system_id="esme1", password="pw")
    seq = pair.esme.send_request(bind, 0.0)
    assert seq == 1
    assert bind.sequence_number == 1
    assert pair.esme.state is ST.BINDING
    pair.pump()
    assert pair.smsc.state is ST.BINDING
    (requested,) = drain_events(pair.smsc)
    assert isinstance(requested, BindRequested)
    assert requested.request == bind
    assert type(requested.request) is bind_cls

    pair.smsc.respond(requested.request)
    (smsc_bound,) = drain_events(pair.smsc)
    assert isinstance(smsc_bound, Bound)
    assert smsc_bound.state is state
    pair.pump()
    (esme_bound,) = drain_events(pair.esme)
    assert isinstance(esme_bound, Bound)
    assert esme_bound.state is state
    assert esme_bound.request is bind
    assert esme_bound.response.command_id == bind_cls.command_id | RESPONSE_BIT
    # respond() fills system_id from the config and advertises TLV support (§4.1.2).
    assert esme_bound.response.system_id == "SMSC01"  # type: ignore[attr-defined]
    assert esme_bound.response.tlv(Tag.sc_interface_version) == 0x34
    assert pair.esme.state is state
    assert pair.smsc.state is state
    assert pair.esme.bound
    assert pair.smsc.bound
    assert pair.esme.outstanding_count == 0
    assert pair.esme.role is Role.ESME
    assert pair.smsc.role is Role.SMSC
    assert pair.smsc.config is QUIET


def test_bind_rejected_with_invalid_password_leaves_both_sides_open() -> None:
    """A bind_*_resp with a non-zero status → BindFailed, state OPEN; a new bind is allowed."""
    pair = SessionPair.create()
    bind = BindTransmitter(system_id="esme1", password="wrong")
    pair.esme.send_request(bind, 0.0)
    pair.pump()
    (requested,) = drain_events(pair.smsc)
    pair.smsc.respond(requested.request, S.ESME_RINVPASWD)  # type: ignore[union-attr]
    assert [type(e) for e in drain_events(pair.smsc)] == [BindFailed]
    assert pair.smsc.state is ST.OPEN
    pair.pump()
    (failed,) = drain_events(pair.esme)
    assert isinstance(failed, BindFailed)
    assert failed.status == S.ESME_RINVPASWD
    assert failed.request is bind
    assert pair.esme.state is ST.OPEN
    assert not pair.esme.bound
    assert pair.esme.window_free() == QUIET.window_size
    # The error response carries no body (SMPP 3.4 §4.1.2) — 16 bytes on the wire.
    # And a retry on the same connection is legal.
    pair.esme.send_request(BindTransmitter(system_id="esme1", password="pw"), 0.0)
    assert pair.esme.state is ST.BINDING


def test_bind_answered_with_generic_nack_fails_the_bind() -> None:
    """An SMSC without bind_transceiver answers generic_nack/ESME_RINVCMDID (§4.1, digest §3)."""
    esme = Session(QUIET, role=Role.ESME, now=0.0)
    seq = esme.send_request(BindTransceiver(system_id="x"), 0.0)
    esme.receive_data(raw(GenericNack(S.ESME_RINVCMDID), seq), 0.0)
    (failed,) = drain_events(esme)
    assert isinstance(failed, BindFailed)
    assert failed.status == S.ESME_RINVCMDID
    assert esme.state is ST.OPEN


def test_smsc_bind_response_must_answer_the_pending_bind() -> None:
    """A bind_*_resp of the wrong type or sequence_number is refused locally."""
    smsc, _ = session_in(ST.BINDING, Role.SMSC)
    with pytest.raises(LocalProtocolError):
        smsc.send_response(BindTransmitterResp(0, 1))  # pending bind is a transceiver
    with pytest.raises(LocalProtocolError):
        smsc.respond(BindTransceiver(sequence_number=2))  # wrong sequence_number
    assert smsc.state is ST.BINDING
    assert smsc.data_to_send() == b""
    smsc.respond(BindTransceiver(sequence_number=1))
    assert smsc.state is ST.BOUND_TRX


def test_bind_timeout_closes_the_connection() -> None:
    """No bind_*_resp within response_timeout_s: ResponseTimedOut, then CLOSED (BIND_TIMEOUT)."""
    esme = Session(QUIET, role=Role.ESME, now=0.0)
    bind = BindTransmitter(system_id="x")
    esme.send_request(bind, 0.0)
    assert esme.get_timer() == 30.0
    esme.handle_timer(29.9)
    assert drain_events(esme) == []
    esme.handle_timer(30.0)
    timed_out, closed = drain_events(esme)
    assert isinstance(timed_out, ResponseTimedOut)
    assert timed_out.request is bind
    assert isinstance(closed, ConnectionClosed)
    assert closed.reason is CloseReason.BIND_TIMEOUT
    assert closed.unacknowledged == ()
    assert esme.state is ST.CLOSED


def test_outbind_then_bind_receiver() -> None:
    """SMPP 3.4 §2.2.1: the SMSC sends outbind, the ESME answers with bind_receiver."""
    pair = SessionPair.create()
    seq = pair.smsc.send_request(Outbind(system_id="SMSC01", password="pw"), 0.0)
    assert seq == 1
    assert pair.smsc.outstanding_count == 0
    pair.pump()
    (outbind,) = drain_events(pair.esme)
    assert isinstance(outbind, OutbindReceived)
    assert outbind.request.system_id == "SMSC01"
    pair.esme.send_request(BindReceiver(system_id="esme1"), 0.0)
    pair.pump()
    (requested,) = drain_events(pair.smsc)
    pair.smsc.respond(requested.request)  # type: ignore[union-attr]
    pair.pump()
    assert pair.esme.state is ST.BOUND_RX
    assert pair.smsc.state is ST.BOUND_RX


def test_respond_omits_sc_interface_version_for_a_v33_esme() -> None:
    """SMPP 3.4 §3.4: no TLVs towards an ESME that bound with interface_version < 0x34."""
    pair = SessionPair.create()
    pair.esme.send_request(BindTransmitter(system_id="old", interface_version=0x33), 0.0)
    pair.pump()
    (requested,) = drain_events(pair.smsc)
    pair.smsc.respond(requested.request, system_id="SC")  # type: ignore[union-attr]
    pair.pump()
    (bound,) = drain_events(pair.esme)
    assert isinstance(bound, Bound)
    assert bound.response.tlvs == ()
    assert bound.response.system_id == "SC"  # type: ignore[attr-defined]


# ============================================================================ submit / window


def test_submit_sm_and_response() -> None:
    """A submit_sm is delivered to the SMSC app; its resp completes the very request object."""
    pair = bound_pair(BindTransmitter)
    sm = submit()
    seq = pair.esme.send_request(sm, 1.0)
    assert seq == 2  # 1 was the bind
    assert pair.esme.outstanding_count == 1
    assert pair.esme.window_free() == 9
    pair.pump(1.0)
    (received,) = drain_events(pair.smsc)
    assert isinstance(received, RequestReceived)
    assert received.request == sm
    pair.smsc.respond(received.request, message_id="msg-1")
    pair.pump(1.5)
    (done,) = drain_events(pair.esme)
    assert isinstance(done, ResponseReceived)
    assert done.request is sm
    assert isinstance(done.response, SubmitSmResp)
    assert done.response.message_id == "msg-1"
    assert pair.esme.outstanding_count == 0
    assert pair.esme.window_free() == 10


def test_carrier_error_status_is_data_not_an_exception() -> None:
    """Style guide §5.3: ESME_RTHROTTLED or an unknown vendor status is a ResponseReceived."""
    pair = bound_pair(BindTransmitter)
    a, b = submit(), submit()
    pair.esme.send_request(a, 0.0)
    pair.esme.send_request(b, 0.0)
    pair.pump()
    ra, rb = drain_events(pair.smsc)
    pair.smsc.respond(ra.request, S.ESME_RTHROTTLED)  # type: ignore[union-attr]
    pair.smsc.respond(rb.request, 0x401)  # type: ignore[union-attr]
    pair.pump()
    ea, eb = drain_events(pair.esme)
    assert isinstance(ea, ResponseReceived)
    assert ea.response.command_status == S.ESME_RTHROTTLED
    assert isinstance(eb, ResponseReceived)
    assert eb.response.command_status == 0x401
    stats = pair.esme.statistics()
    assert stats.responses_received_by_status[S.ESME_RTHROTTLED] == 1
    assert stats.responses_received_by_status[0x401] == 1


def test_window_full_raises_and_frees_on_response() -> None:
    """send_request with no free slot is a caller bug (style guide §3.1)."""
    config = dataclasses.replace(QUIET, window_size=3)
    pair = bound_pair(config=config)
    sent = [submit() for _ in range(3)]
    for sm in sent:
        pair.esme.send_request(sm, 0.0)
    assert pair.esme.window_free() == 0
    before = pair.esme.data_to_send()
    extra = submit()
    with pytest.raises(LocalProtocolError, match="window full"):
        pair.esme.send_request(extra, 0.0)
    assert extra.sequence_number == 0
    assert pair.esme.data_to_send() == b""
    # enquire_link and unbind are exempt from the window (digest §11).
    pair.esme.send_request(EnquireLink(), 0.0)
    assert pair.esme.outstanding_count == 4
    assert pair.esme.window_free() == 0
    pair.smsc.receive_data(before, 0.0)
    (first, *_) = drain_events(pair.smsc)
    pair.smsc.respond(first.request)  # type: ignore[union-attr]
    pair.pump()
    assert pair.esme.window_free() == 1
    pair.esme.send_request(extra, 0.0)


def test_unbind_is_exempt_from_a_full_window() -> None:
    config = dataclasses.replace(QUIET, window_size=1)
    pair = bound_pair(config=config)
    pair.esme.send_request(submit(), 0.0)
    assert pair.esme.window_free() == 0
    pair.esme.unbind(0.0)
    assert pair.esme.state is ST.UNBINDING


def test_responses_out_of_order_are_matched_by_sequence_number() -> None:
    """SMPP 3.4 §2.5.2 notes: responses need not come back in request order."""
    pair = bound_pair(BindTransmitter)
    sent = [submit(bytes([65 + i])) for i in range(5)]
    for sm in sent:
        pair.esme.send_request(sm, 0.0)
    pair.pump()
    received = [e.request for e in drain_events(pair.smsc)]  # type: ignore[union-attr]
    for order, req in enumerate(reversed(received)):
        pair.smsc.respond(req, message_id=f"id{order}")
    pair.pump()
    events = drain_events(pair.esme)
    assert all(isinstance(e, ResponseReceived) for e in events)
    got = {e.request.short_message: e.response.message_id for e in events}  # type: ignore[union-attr]
    assert got == {b"E": "id0", b"D": "id1", b"C": "id2", b"B": "id3", b"A": "id4"}
    assert [e.request for e in events] == list(reversed(sent))  # type: ignore[union-attr]
    assert all(a is b for a, b in zip([e.request for e in events], reversed(sent), strict=True))  # type: ignore[union-attr]


def test_transceiver_with_colliding_sequence_numbers_in_both_directions() -> None:
    """Each side numbers its own requests (SMPP 3.4 §5.1.4): the SMSC's deliver_sm #5
    must not touch our submit_sm #5, and each resp completes the right request."""
    pair = SessionPair.create(esme_first_seq=4, smsc_first_seq=5)
    pair.bind(BindTransceiver)  # the bind took ESME seq 4
    sm = submit()
    dl = DeliverSm(source_addr="447700900123", destination_addr="12345", short_message=b"mo")
    assert pair.esme.send_request(sm, 0.0) == 5
    assert pair.smsc.send_request(dl, 0.0) == 5
    pair.pump()
    (at_smsc,) = drain_events(pair.smsc)
    (at_esme,) = drain_events(pair.esme)
    assert isinstance(at_smsc, RequestReceived)
    assert at_smsc.request == sm
    assert isinstance(at_esme, RequestReceived)
    assert at_esme.request == dl
    assert pair.esme.outstanding_count == 1
    assert pair.smsc.outstanding_count == 1
    # Answer in "crossed" order; a deliver_sm_resp #5 must not complete submit_sm #5.
    pair.esme.respond(at_esme.request)
    pair.pump()
    assert pair.esme.outstanding_count == 1  # our submit_sm still waits
    (smsc_done,) = drain_events(pair.smsc)
    assert isinstance(smsc_done, ResponseReceived)
    assert smsc_done.request is dl
    assert drain_events(pair.esme) == []
    pair.smsc.respond(at_smsc.request, message_id="m5")
    pair.pump()
    (esme_done,) = drain_events(pair.esme)
    assert isinstance(esme_done, ResponseReceived)
    assert esme_done.request is sm
    assert pair.esme.outstanding_count == 0
    assert pair.smsc.outstanding_count == 0


def test_response_with_matching_seq_but_wrong_command_is_unexpected() -> None:
    """A deliver_sm_resp #2 does not complete our submit_sm #2 (match by command too)."""
    pair = bound_pair(BindTransmitter)
    seq = pair.esme.send_request(submit(), 0.0)
    pair.esme.data_to_send()
    pair.esme.receive_data(raw(DeliverSmResp(), seq), 0.0)
    (event,) = drain_events(pair.esme)
    assert isinstance(event, UnexpectedResponse)
    assert event.response.sequence_number == seq
    assert pair.esme.outstanding_count == 1


def test_unmatched_response_is_reported_and_ignored() -> None:
    pair = bound_pair(BindTransmitter)
    pair.esme.receive_data(raw(SubmitSmResp(message_id="x"), 99), 0.0)
    (event,) = drain_events(pair.esme)
    assert isinstance(event, UnexpectedResponse)
    assert event.response.sequence_number == 99
    assert pair.esme.data_to_send() == b""  # responses are never answered
    assert pair.esme.state is ST.BOUND_TX
    assert pair.esme.statistics().unexpected_responses == 1


def test_generic_nack_completes_the_request_it_names() -> None:
    """A generic_nack with a request's sequence_number answers that request (SMPP 3.4 §4.3)."""
    pair = bound_pair(BindTransmitter)
    sm = submit()
    seq = pair.esme.send_request(sm, 0.0)
    pair.esme.receive_data(raw(GenericNack(S.ESME_RINVCMDLEN), seq), 0.0)
    (event,) = drain_events(pair.esme)
    assert isinstance(event, ResponseReceived)
    assert event.request is sm
    assert isinstance(event.response, GenericNack)
    assert pair.esme.statistics().generic_nacks_received == 1


def test_request_command_status_must_be_zero() -> None:
    pair = bound_pair(BindTransmitter)
    with pytest.raises(LocalProtocolError, match="command_status"):
        pair.esme.send_request(SubmitSm(command_status=1), 0.0)


def test_send_request_that_does_not_encode_changes_nothing() -> None:
    pair = bound_pair(BindTransmitter)
    bad = SubmitSm(source_addr="x" * 30)  # max 20 characters (§4.4.1)
    with pytest.raises(LocalProtocolError):
        pair.esme.send_request(bad, 0.0)
    assert bad.sequence_number == 0
    assert pair.esme.outstanding_count == 0
    assert pair.esme.send_request(submit(), 0.0) == 2  # the number was not consumed


def test_send_request_and_send_response_refuse_the_wrong_kind_of_pdu() -> None:
    pair = bound_pair(BindTransceiver)
    with pytest.raises(LocalProtocolError, match="send_response"):
        pair.esme.send_request(SubmitSmResp(), 0.0)  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError, match="send_request"):
        pair.smsc.send_response(SubmitSm())  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError, match="itself"):
        pair.smsc.send_response(EnquireLinkResp(0, 3))
    with pytest.raises(LocalProtocolError, match="no response"):
        pair.esme.respond(AlertNotification())


# ============================================================================ inbound errors


def test_unknown_command_id_gets_generic_nack_and_the_stream_stays_in_sync() -> None:
    """cloudhopper's decodeBadPduButSkipAllDataInBuffer: an unknown command followed by an
    enquire_link → generic_nack(ESME_RINVCMDID, same seq), then the enquire_link_resp."""
    pair = bound_pair()
    unknown = header(20, 0x00000099, 0, 77) + b"abcd"
    pair.smsc.receive_data(unknown + raw(EnquireLink(), 78), 0.0)
    (rejected,) = drain_events(pair.smsc)
    assert isinstance(rejected, PduRejected)
    assert isinstance(rejected.error, PduError)
    assert rejected.answered_with_status == S.ESME_RINVCMDID
    nack, resp = decode_all(pair.smsc.data_to_send())
    assert isinstance(nack, GenericNack)
    assert nack.command_status == S.ESME_RINVCMDID
    assert nack.sequence_number == 77
    assert isinstance(resp, EnquireLinkResp)
    assert resp.sequence_number == 78
    assert pair.smsc.state is ST.BOUND_TRX


def test_request_with_a_bad_field_gets_its_own_resp_with_the_field_status() -> None:
    """Digest §2: a field error in a known PDU → its own _resp with the specific code."""
    pair = bound_pair(BindTransmitter)
    body = b"\x00\x01\x01" + b"1" * 25 + b"\x00"  # source_addr longer than 20
    body += b"\x01\x01447700900123\x00" + bytes(3) + b"\x00\x00" + bytes(4) + b"\x00"
    pair.smsc.receive_data(header(16 + len(body), CommandId.submit_sm, 0, 9) + body, 0.0)
    (rejected,) = drain_events(pair.smsc)
    assert isinstance(rejected, PduRejected)
    assert rejected.answered_with_status == S.ESME_RINVSRCADR
    (resp,) = decode_all(pair.smsc.data_to_send())
    assert isinstance(resp, SubmitSmResp)
    assert resp.command_status == S.ESME_RINVSRCADR
    assert resp.sequence_number == 9


def test_truncated_request_gets_generic_nack_rinvcmdlen() -> None:
    """A body shorter than its mandatory fields is ESME_RINVCMDLEN → generic_nack."""
    pair = bound_pair(BindTransmitter)
    pair.smsc.receive_data(header(18, CommandId.submit_sm, 0, 4) + b"\x00\x01", 0.0)
    (rejected,) = drain_events(pair.smsc)
    assert rejected.answered_with_status == S.ESME_RINVCMDLEN  # type: ignore[union-attr]
    (nack,) = decode_all(pair.smsc.data_to_send())
    assert isinstance(nack, GenericNack)
    assert nack.sequence_number == 4


def test_malformed_response_gets_generic_nack_but_a_malformed_nack_does_not() -> None:
    """A broken response is nacked; a broken generic_nack never is (no nack ping-pong)."""
    pair = bound_pair(BindTransmitter)
    seq = pair.esme.send_request(submit(), 0.0)
    pair.esme.data_to_send()
    long_id = b"9" * 70 + b"\x00"  # message_id longer than 64
    pair.esme.receive_data(
        header(16 + len(long_id), CommandId.submit_sm_resp, 0, seq) + long_id, 0.0
    )
    (rejected,) = drain_events(pair.esme)
    assert rejected.answered_with_status == S.ESME_RINVMSGID  # type: ignore[union-attr]
    (nack,) = decode_all(pair.esme.data_to_send())
    assert isinstance(nack, GenericNack)
    assert nack.sequence_number == seq
    assert pair.esme.outstanding_count == 1  # the request still waits (or times out)
    # generic_nack with a broken TLV stream: rejected, not answered.
    pair.esme.receive_data(header(19, CommandId.generic_nack, 0, 5) + b"\x00\x01\x00", 0.0)
    (rejected,) = drain_events(pair.esme)
    assert isinstance(rejected, PduRejected)
    assert rejected.answered_with_status is None
    assert pair.esme.data_to_send() == b""


def test_malformed_alert_notification_and_outbind_are_never_answered() -> None:
    """SMPP 3.4 §4.12, §4.1.7: no response PDU exists, even for a broken one."""
    esme, _ = session_in(ST.BOUND_RX, Role.ESME)
    esme.receive_data(header(18, CommandId.alert_notification, 0, 3) + b"\x00\x00", 0.0)
    (rejected,) = drain_events(esme)
    assert isinstance(rejected, PduRejected)
    assert rejected.answered_with_status is None
    esme2 = Session(QUIET, role=Role.ESME, now=0.0)
    esme2.receive_data(header(17, CommandId.outbind, 0, 3) + b"x", 0.0)
    assert [type(e) for e in drain_events(esme2)] == [PduRejected]
    assert esme.data_to_send() == b""
    assert esme2.data_to_send() == b""


def test_submit_sm_before_bind_is_answered_rinvbndsts() -> None:
    """SMPP 3.4 §2.3: a request illegal in the state → its own _resp, ESME_RINVBNDSTS."""
    smsc = Session(QUIET, role=Role.SMSC, now=0.0)
    sm = submit()
    smsc.receive_data(raw(sm, 1), 0.0)
    (rejected,) = drain_events(smsc)
    assert isinstance(rejected, PduRejected)
    assert rejected.pdu == sm
    assert isinstance(rejected.error, RemoteProtocolError)
    assert rejected.answered_with_status == S.ESME_RINVBNDSTS
    (resp,) = decode_all(smsc.data_to_send())
    assert isinstance(resp, SubmitSmResp)
    assert resp.command_status == S.ESME_RINVBNDSTS
    assert resp.sequence_number == 1
    assert smsc.state is ST.OPEN


def test_submit_sm_on_a_receiver_bind_is_answered_rinvbndsts() -> None:
    """Table 2-1: submit_sm needs BOUND_TX or BOUND_TRX; the ESME cannot even send it."""
    pair = bound_pair(BindReceiver)
    with pytest.raises(LocalProtocolError, match="BOUND_RX"):
        pair.esme.send_request(submit(), 0.0)
    pair.smsc.receive_data(raw(submit(), 7), 0.0)
    (rejected,) = drain_events(pair.smsc)
    assert rejected.answered_with_status == S.ESME_RINVBNDSTS  # type: ignore[union-attr]
    (resp,) = decode_all(pair.smsc.data_to_send())
    assert isinstance(resp, SubmitSmResp)
    assert resp.command_status == S.ESME_RINVBNDSTS
    assert pair.smsc.state is ST.BOUND_RX


def test_deliver_sm_on_a_transmitter_bind_is_refused_both_ways() -> None:
    pair = bound_pair(BindTransmitter)
    with pytest.raises(LocalProtocolError):
        pair.smsc.send_request(DeliverSm(), 0.0)
    pair.esme.receive_data(raw(DeliverSm(), 3), 0.0)
    (resp,) = decode_all(pair.esme.data_to_send())
    assert isinstance(resp, DeliverSmResp)
    assert resp.command_status == S.ESME_RINVBNDSTS


def test_bind_while_bound_is_answered_ralybnd() -> None:
    """SMPP 3.4 §5.1.3: ESME_RALYBND — ESME already in bound state."""
    pair = bound_pair(BindTransmitter)
    pair.smsc.receive_data(raw(BindTransmitter(system_id="again"), 50), 0.0)
    (rejected,) = drain_events(pair.smsc)
    assert rejected.answered_with_status == S.ESME_RALYBND  # type: ignore[union-attr]
    (resp,) = decode_all(pair.smsc.data_to_send())
    assert isinstance(resp, BindTransmitterResp)
    assert resp.command_status == S.ESME_RALYBND
    assert resp.sequence_number == 50
    assert pair.smsc.state is ST.BOUND_TX
    with pytest.raises(LocalProtocolError):
        pair.esme.send_request(BindTransceiver(), 0.0)


def test_bind_sent_by_an_smsc_is_refused() -> None:
    """Only an ESME may bind: the SMSC role cannot send one, an ESME rejects one."""
    smsc = Session(QUIET, role=Role.SMSC, now=0.0)
    with pytest.raises(LocalProtocolError, match="only the ESME"):
        smsc.send_request(BindTransmitter(), 0.0)
    esme = Session(QUIET, role=Role.ESME, now=0.0)
    esme.receive_data(raw(BindTransmitter(), 1), 0.0)
    (resp,) = decode_all(esme.data_to_send())
    assert resp.command_status == S.ESME_RINVBNDSTS
    assert esme.state is ST.OPEN


# ============================================================================ enquire_link


def test_enquire_link_is_answered_automatically_even_with_a_full_window() -> None:
    """Digest §11: answer enquire_link promptly and independently of our own window."""
    config = dataclasses.replace(QUIET, window_size=1)
    pair = bound_pair(config=config)
    pair.esme.send_request(submit(), 0.0)
    assert pair.esme.window_free() == 0
    pair.esme.data_to_send()
    pair.esme.receive_data(raw(EnquireLink(), 42), 0.0)
    assert drain_events(pair.esme) == []
    (resp,) = decode_all(pair.esme.data_to_send())
    assert isinstance(resp, EnquireLinkResp)
    assert resp.sequence_number == 42
    assert resp.command_status == 0


def test_caller_sent_enquire_link_reports_its_response() -> None:
    pair = bound_pair()
    probe = EnquireLink()
    pair.esme.send_request(probe, 0.0)
    pair.pump()
    (event,) = drain_events(pair.esme)
    assert isinstance(event, ResponseReceived)
    assert event.request is probe
    assert drain_events(pair.smsc) == []


def test_enquire_link_sent_after_silence_and_answered() -> None:
    """SMPP 3.4 §7.2 enquire_link_timer: probe after interval_s without receiving anything."""
    config = dataclasses.replace(QUIET, enquire_link_interval_s=10.0, response_timeout_s=5.0)
    pair = bound_pair(config=config)  # bound at t=0
    assert pair.esme.get_timer() == 10.0
    pair.esme.handle_timer(9.0)
    assert pair.esme.data_to_send() == b""
    pair.esme.handle_timer(10.0)
    (probe,) = decode_all(pair.esme.data_to_send())
    assert isinstance(probe, EnquireLink)
    assert pair.esme.outstanding_count == 1  # one at a time
    assert pair.esme.get_timer() == 15.0  # now the probe's response deadline
    pair.esme.handle_timer(12.0)
    assert pair.esme.data_to_send() == b""  # still only one keepalive outstanding
    pair.smsc.receive_data(raw(probe), 12.5)
    pair.esme.receive_data(pair.smsc.data_to_send(), 12.5)
    assert drain_events(pair.esme) == []  # the session's own probe: no event
    assert pair.esme.outstanding_count == 0
    assert pair.esme.get_timer() == 22.5  # silence counts from the last receipt
    assert pair.esme.statistics().pdus_sent_by_command[CommandId.enquire_link] == 1


def test_unanswered_enquire_link_declares_the_link_dead() -> None:
    config = dataclasses.replace(QUIET, enquire_link_interval_s=10.0, response_timeout_s=5.0)
    pair = bound_pair(config=config)
    sm = submit()
    pair.esme.send_request(sm, 8.0)  # deadline 13.0
    pair.esme.handle_timer(10.0)  # keepalive sent, deadline 15.0
    pair.esme.handle_timer(20.0)
    events = drain_events(pair.esme)
    assert event_types(events) == ["ResponseTimedOut", "ConnectionClosed"]
    assert events[0].request is sm  # type: ignore[union-attr]
    closed = events[1]
    assert isinstance(closed, ConnectionClosed)
    assert closed.reason is CloseReason.ENQUIRE_LINK_TIMEOUT
    assert closed.unacknowledged == ()  # the internal keepalive is never listed
    assert pair.esme.state is ST.CLOSED


def test_no_keepalive_when_not_bound() -> None:
    config = dataclasses.replace(QUIET, enquire_link_interval_s=10.0)
    esme = Session(config, role=Role.ESME, now=0.0)
    assert esme.get_timer() is None
    esme.handle_timer(100.0)
    assert esme.data_to_send() == b""
    assert esme.state is ST.OPEN


# ============================================================================ other timers


def test_inactivity_timeout_closes_the_session() -> None:
    config = dataclasses.replace(QUIET, inactivity_timeout_s=60.0)
    pair = bound_pair(config=config)
    pair.esme.receive_data(raw(EnquireLink(), 5), 30.0)  # anything received resets it
    pair.esme.data_to_send()
    assert pair.esme.get_timer() == 90.0
    pair.esme.handle_timer(89.0)
    assert pair.esme.state is ST.BOUND_TRX
    pair.esme.handle_timer(90.0)
    (closed,) = drain_events(pair.esme)
    assert isinstance(closed, ConnectionClosed)
    assert closed.reason is CloseReason.INACTIVITY_TIMEOUT
    assert pair.esme.state is ST.CLOSED
    assert pair.esme.get_timer() is None


def test_partial_pdu_counts_as_activity() -> None:
    """'Received' is any bytes: a slow peer mid-PDU is not inactive."""
    config = dataclasses.replace(QUIET, inactivity_timeout_s=60.0)
    pair = bound_pair(config=config)
    pair.esme.receive_data(raw(EnquireLink(), 5)[:7], 50.0)
    assert pair.esme.get_timer() == 110.0


def test_session_init_timeout_closes_an_unbound_smsc_session() -> None:
    """SMPP 3.4 §7.2 session_init_timer: SMSC side only, until bound."""
    config = dataclasses.replace(QUIET, session_init_timeout_s=30.0)
    smsc = Session(config, role=Role.SMSC, now=100.0)
    esme = Session(config, role=Role.ESME, now=100.0)
    assert smsc.get_timer() == 130.0
    assert esme.get_timer() is None
    smsc.handle_timer(130.0)
    (closed,) = drain_events(smsc)
    assert isinstance(closed, ConnectionClosed)
    assert closed.reason is CloseReason.SESSION_INIT_TIMEOUT


def test_session_init_timer_stops_once_bound() -> None:
    config = dataclasses.replace(QUIET, session_init_timeout_s=30.0)
    pair = bound_pair(config=config)
    assert pair.smsc.get_timer() is None
    pair.smsc.handle_timer(1000.0)
    assert pair.smsc.state is ST.BOUND_TRX


def test_response_timeout_frees_the_slot_and_a_late_response_is_unexpected() -> None:
    """SMPP 3.4 §7.2 response_timer; §2.8: assume the request was not processed."""
    config = dataclasses.replace(QUIET, window_size=2, response_timeout_s=10.0)
    pair = bound_pair(BindTransmitter, config=config)
    a, b = submit(b"a"), submit(b"b")
    pair.esme.send_request(a, 1.0)
    pair.esme.send_request(b, 2.0, timeout_s=3.0)  # per-request timeout
    assert pair.esme.get_timer() == 5.0
    pair.esme.handle_timer(5.0)
    (timed_out,) = drain_events(pair.esme)
    assert isinstance(timed_out, ResponseTimedOut)
    assert timed_out.request is b
    assert pair.esme.window_free() == 1
    assert pair.esme.get_timer() == 11.0
    pair.esme.handle_timer(11.0)
    (timed_out,) = drain_events(pair.esme)
    assert timed_out.request is a  # type: ignore[union-attr]
    assert pair.esme.window_free() == 2
    assert pair.esme.outstanding_count == 0
    pair.pump(12.0)
    for event in drain_events(pair.smsc):
        pair.smsc.respond(event.request)  # type: ignore[union-attr]
    pair.pump(12.0)
    assert event_types(drain_events(pair.esme)) == ["UnexpectedResponse"] * 2
    assert pair.esme.statistics().responses_timed_out == 2
    assert pair.esme.state is ST.BOUND_TX


def test_get_timer_is_the_earliest_of_all_timers() -> None:
    config = dataclasses.replace(
        QUIET, enquire_link_interval_s=20.0, inactivity_timeout_s=50.0, response_timeout_s=30.0
    )
    pair = bound_pair(config=config)
    pair.esme.send_request(submit(), 0.0, timeout_s=60.0)
    assert pair.esme.get_timer() == 20.0  # keepalive
    pair.esme.send_request(submit(), 0.0, timeout_s=5.0)
    assert pair.esme.get_timer() == 5.0
    pair.esme.handle_timer(5.0)
    assert pair.esme.get_timer() == 20.0


# ============================================================================ unbind


def test_unbind_initiated_by_the_esme() -> None:
    pair = bound_pair()
    seq = pair.esme.unbind(1.0)
    assert pair.esme.state is ST.UNBINDING
    with pytest.raises(LocalProtocolError):
        pair.esme.send_request(submit(), 1.0)  # no new requests after unbind
    with pytest.raises(LocalProtocolError, match="already"):
        pair.esme.unbind(1.0)
    pair.pump(1.0)
    (received,) = drain_events(pair.smsc)
    assert isinstance(received, UnbindReceived)
    assert received.request.sequence_number == seq
    assert pair.smsc.state is ST.UNBINDING
    unbound, closed = drain_events(pair.esme)
    assert isinstance(unbound, Unbound)
    assert isinstance(unbound.response, UnbindResp)
    assert isinstance(closed, ConnectionClosed)
    assert closed.reason is CloseReason.UNBOUND
    assert pair.esme.state is ST.CLOSED
    # The peer closes TCP after unbind_resp: the SMSC sees EOF.
    pair.smsc.receive_data(b"", 2.0)
    (closed,) = drain_events(pair.smsc)
    assert isinstance(closed, ConnectionClosed)
    assert closed.reason is CloseReason.PEER_CLOSED


def test_unbind_initiated_by_the_smsc_lets_the_esme_finish_answering() -> None:
    """SMPP 3.4 §4.2: after the peer's unbind, responses still flow; new requests do not."""
    pair = bound_pair()
    dl = DeliverSm(short_message=b"mo")
    pair.smsc.send_request(dl, 0.0)
    pair.smsc.unbind(0.0)
    pair.pump()
    got, unbind = drain_events(pair.esme)
    assert isinstance(got, RequestReceived)
    assert isinstance(unbind, UnbindReceived)
    assert pair.esme.state is ST.UNBINDING
    assert pair.smsc.state is ST.CLOSED  # its unbind_resp arrived
    unbound, closed = drain_events(pair.smsc)
    assert isinstance(unbound, Unbound)
    assert isinstance(closed, ConnectionClosed)
    assert closed.unacknowledged == (dl,)  # its unbind_resp overtook the deliver_sm_resp
    # The ESME may still answer what it owes, but not start anything new.
    pair.esme.respond(got.request)
    with pytest.raises(LocalProtocolError):
        pair.esme.send_request(submit(), 0.0)


def test_smsc_unbind_lists_its_unanswered_deliver_sm() -> None:
    """An unbind_resp that overtakes a deliver_sm_resp: the deliver_sm is unacknowledged."""
    pair = bound_pair()
    dl = DeliverSm(short_message=b"mo")
    pair.smsc.send_request(dl, 0.0)
    pair.smsc.unbind(0.0)
    pair.pump()
    (_, closed) = drain_events(pair.smsc)
    assert isinstance(closed, ConnectionClosed)
    assert closed.unacknowledged == (dl,)


def test_linger_after_peer_unbind_closes_the_session() -> None:
    pair = bound_pair()
    pair.smsc.unbind(10.0)
    pair.pump(10.0)
    drain_events(pair.esme)
    assert pair.esme.get_timer() == 40.0
    pair.esme.handle_timer(40.0)
    (closed,) = drain_events(pair.esme)
    assert isinstance(closed, ConnectionClosed)
    assert closed.reason is CloseReason.PEER_UNBOUND


def test_crossing_unbinds_both_close_cleanly() -> None:
    pair = bound_pair()
    pair.esme.unbind(0.0)
    pair.smsc.unbind(0.0)
    pair.pump()
    for session in (pair.esme, pair.smsc):
        events = drain_events(session)
        assert event_types(events) == ["UnbindReceived", "Unbound", "ConnectionClosed"]
        assert events[1].response.command_status == 0  # type: ignore[union-attr]
        assert events[2].reason is CloseReason.UNBOUND  # type: ignore[union-attr]


def test_unanswered_unbind_closes_after_the_response_timeout() -> None:
    pair = bound_pair()
    unbind = Unbind()
    pair.esme.send_request(unbind, 0.0)
    pair.esme.handle_timer(30.0)
    timed_out, closed = drain_events(pair.esme)
    assert isinstance(timed_out, ResponseTimedOut)
    assert timed_out.request is unbind
    assert isinstance(closed, ConnectionClosed)
    assert closed.reason is CloseReason.UNBIND_TIMEOUT


def test_unbind_before_bind_is_refused() -> None:
    esme = Session(QUIET, role=Role.ESME, now=0.0)
    with pytest.raises(LocalProtocolError, match="OPEN"):
        esme.unbind(0.0)


# ============================================================================ framing, sequence


@pytest.mark.parametrize("length", [0, 8, 15, QUIET.max_pdu_bytes + 1, 0x48545450])
def test_framing_error_sends_generic_nack_then_closes(length: int) -> None:
    """Style guide §5.1: command_length out of bounds → generic_nack(ESME_RINVCMDLEN), CLOSED."""
    pair = bound_pair(BindTransmitter)
    sm = submit()
    pair.esme.send_request(sm, 0.0)
    pair.esme.data_to_send()
    pair.esme.receive_data(header(length, CommandId.submit_sm_resp, 0, 0x1234), 0.0)
    rejected, closed = drain_events(pair.esme)
    assert isinstance(rejected, PduRejected)
    assert isinstance(rejected.error, FramingError)
    assert rejected.answered_with_status == S.ESME_RINVCMDLEN
    assert isinstance(closed, ConnectionClosed)
    assert closed.reason is CloseReason.FRAMING_ERROR
    assert closed.unacknowledged == (sm,)
    (nack,) = decode_all(pair.esme.data_to_send())
    assert isinstance(nack, GenericNack)
    assert nack.command_status == S.ESME_RINVCMDLEN
    assert nack.sequence_number == 0x1234  # the whole header was present
    assert pair.esme.state is ST.CLOSED
    pair.esme.receive_data(raw(EnquireLink(), 1), 1.0)  # ignored after CLOSED
    assert drain_events(pair.esme) == []
    assert pair.esme.data_to_send() == b""


def test_framing_error_with_only_the_length_known_nacks_sequence_zero() -> None:
    """SMPP 3.4 §4.3.1: generic_nack carries 0 when the header could not be decoded."""
    smsc = Session(QUIET, role=Role.SMSC, now=0.0)
    smsc.receive_data(b"HTTP", 0.0)
    (nack,) = decode_all(smsc.data_to_send())
    assert isinstance(nack, GenericNack)
    assert nack.sequence_number == 0
    assert smsc.state is ST.CLOSED


def test_sequence_number_wraps_from_0x7fffffff_to_1() -> None:
    """SMPP 3.4 §5.1.4: sequence numbers run 0x00000001..0x7FFFFFFF, then wrap to 1."""
    esme = Session(QUIET, role=Role.ESME, now=0.0, initial_sequence_number=MAX_SEQUENCE_NUMBER - 1)
    SessionPair(esme, Session(QUIET, role=Role.SMSC, now=0.0)).bind(BindTransmitter)
    assert esme.send_request(submit(), 0.0) == MAX_SEQUENCE_NUMBER
    assert esme.send_request(submit(), 0.0) == 1  # never 0, never 0x80000000
    assert esme.send_request(submit(), 0.0) == 2


def test_sequence_wrap_skips_numbers_still_outstanding() -> None:
    """After a wrap, numbers still in flight are skipped: a response must identify
    exactly one request. Wrapping 2^31 times is impractical, so this one test
    rewinds the private counter to MAX; the skip logic is what is under test."""
    config = dataclasses.replace(QUIET, window_size=5)
    esme = Session(config, role=Role.ESME, now=0.0)
    SessionPair(esme, Session(config, role=Role.SMSC, now=0.0)).bind(BindTransmitter)  # #1 done
    a, b = submit(b"a"), submit(b"b")
    assert esme.send_request(a, 0.0) == 2
    assert esme.send_request(b, 0.0) == 3
    esme._next_seq = MAX_SEQUENCE_NUMBER
    assert esme.send_request(submit(), 0.0) == MAX_SEQUENCE_NUMBER
    assert esme.send_request(submit(), 0.0) == 1  # the bind was answered: free again
    assert esme.send_request(submit(), 0.0) == 4  # 2 and 3 are still outstanding
    esme.receive_data(raw(SubmitSmResp(message_id="b"), 3), 0.0)
    (done,) = drain_events(esme)
    assert isinstance(done, ResponseReceived)
    assert done.request is b


def test_connection_closed_lists_outstanding_requests_exactly_once() -> None:
    pair = bound_pair()
    sent = [submit(bytes([i])) for i in range(4)]
    for sm in sent:
        pair.esme.send_request(sm, 0.0)
    pair.pump()
    first = drain_events(pair.smsc)[0]
    pair.smsc.respond(first.request)  # type: ignore[union-attr]
    pair.pump()
    pair.esme.receive_data(b"", 1.0)
    pair.esme.close()
    pair.esme.receive_data(b"", 2.0)
    events = drain_events(pair.esme)
    assert event_types(events) == ["ResponseReceived", "ConnectionClosed"]
    closed = events[1]
    assert isinstance(closed, ConnectionClosed)
    assert closed.reason is CloseReason.PEER_CLOSED
    assert list(closed.unacknowledged) == sent[1:]
    assert all(a is b for a, b in zip(closed.unacknowledged, sent[1:], strict=True))
    assert pair.esme.outstanding_count == 0
    assert pair.esme.window_free() == 0


def test_local_close_fails_outstanding_and_everything_then_raises() -> None:
    pair = bound_pair()
    sm = submit()
    pair.esme.send_request(sm, 0.0)
    pair.esme.close()
    (closed,) = drain_events(pair.esme)
    assert isinstance(closed, ConnectionClosed)
    assert closed.reason is CloseReason.LOCAL_CLOSE
    assert closed.unacknowledged == (sm,)
    assert pair.esme.data_to_send() != b""  # the submit_sm queued before close is kept
    with pytest.raises(LocalProtocolError, match="CLOSED"):
        pair.esme.send_request(submit(), 1.0)
    with pytest.raises(LocalProtocolError, match="CLOSED"):
        pair.esme.send_response(DeliverSmResp(0, 1))
    with pytest.raises(LocalProtocolError, match="CLOSED"):
        pair.esme.unbind(1.0)
    pair.esme.handle_timer(1e9)
    pair.esme.close()
    assert drain_events(pair.esme) == []
    assert pair.esme.get_timer() is None


# ============================================================================ statistics


def test_statistics_snapshot_counts_and_is_immutable() -> None:
    pair = bound_pair()
    for _ in range(3):
        pair.esme.send_request(submit(), 0.0)
    pair.pump()
    events = drain_events(pair.smsc)
    pair.smsc.respond(events[0].request, S.ESME_RTHROTTLED)  # type: ignore[union-attr]
    pair.smsc.respond(events[1].request)  # type: ignore[union-attr]
    pair.smsc.receive_data(header(16, 0x99, 0, 9), 0.0)
    pair.pump()
    stats = pair.smsc.statistics()
    assert stats.pdus_received_by_command[CommandId.submit_sm] == 3
    assert stats.pdus_sent_by_command[CommandId.submit_sm_resp] == 2
    # bind_resp and one submit_sm_resp OK, one throttled, the generic_nack.
    assert stats.responses_sent_by_status == {S.ESME_RTHROTTLED: 1, S.ESME_RINVCMDID: 1, 0: 2}
    assert stats.generic_nacks_sent == 1
    assert stats.pdus_rejected == 1
    with pytest.raises(TypeError):
        stats.pdus_sent_by_command[4] = 0  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        stats.outstanding = 3  # type: ignore[misc]
    before = dict(stats.pdus_sent_by_command)
    pair.smsc.respond(events[2].request)  # type: ignore[union-attr]
    assert dict(stats.pdus_sent_by_command) == before  # a snapshot, not a view
    esme_stats = pair.esme.statistics()
    assert esme_stats.outstanding == 1
    # The SMSC's generic_nack reached the ESME too (as an UnexpectedResponse).
    assert esme_stats.responses_received_by_status == {
        S.ESME_RTHROTTLED: 1,
        S.ESME_RINVCMDID: 1,
        0: 2,
    }
    assert esme_stats.unexpected_responses == 1


def test_config_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="window_size"):
        SessionConfig(window_size=0)
    with pytest.raises(ValueError, match="response_timeout_s"):
        SessionConfig(response_timeout_s=0)
    with pytest.raises(ValueError, match="enquire_link_interval_s"):
        SessionConfig(enquire_link_interval_s=-1)
    with pytest.raises(ValueError, match="system_id"):
        SessionConfig(system_id="x" * 16)
    with pytest.raises(ValueError, match="max_pdu_bytes"):
        SessionConfig(max_pdu_bytes=15)
    with pytest.raises(ValueError, match="initial_sequence_number"):
        Session(QUIET, role=Role.ESME, now=0.0, initial_sequence_number=0)


# ============================================================================ the legality table


def test_legality_table_renders_as_text() -> None:
    """The table is data (style guide §1.4): render it and spot-check rows."""
    text = render_legality_table()
    print(text)
    lines = text.splitlines()
    assert lines[0].split()[:2] == ["command", "sent"]
    assert len(lines) == 1 + len(LEGALITY)
    rows = {line.split()[0]: line for line in lines[1:]}
    assert rows["submit_sm"].split()[1:3] == ["ESME", "BOUND_TX,BOUND_TRX"]
    assert rows["replace_sm"].split()[1:3] == ["ESME", "BOUND_TX,BOUND_TRX"]
    assert rows["deliver_sm"].split()[1:3] == ["SMSC", "BOUND_RX,BOUND_TRX"]
    assert rows["data_sm"].split()[1:3] == ["ESME+SMSC", "BOUND_TX,BOUND_RX,BOUND_TRX"]
    assert rows["outbind"].split()[1:3] == ["SMSC", "OPEN"]
    assert rows["alert_notification"].split()[1:4] == ["SMSC", "BOUND_RX,BOUND_TRX", "(none)"]
    assert "BINDING" in rows["bind_transceiver"]
    assert "BOUND_TRX" in rows["bind_transceiver"]


@pytest.mark.parametrize("role", list(Role))
def test_legality_grid_matches_the_table(role: Role) -> None:
    """The per-state sets the session consults are exactly what the rows say."""
    grid = render_legality_grid(role).splitlines()
    print("\n".join(grid))
    states = grid[1].split()[1:]
    marks = {line.split()[0]: dict(zip(states, line.split()[1:], strict=True)) for line in grid[2:]}
    for cid in CommandId:
        for state in SessionState:
            expected = ("S" if table_allows(cid, role, state) else "") + (
                "R" if table_allows(cid, OTHER[role], state) else ""
            )
            assert marks[cid.name][state.name] == (expected or "."), (cid.name, state.name)


def table_allows(cid: int, sender: Role, state: SessionState) -> bool:
    """Independent reading of LEGALITY: may ``sender`` put ``cid`` on the wire in ``state``?"""
    for rule in LEGALITY:
        if rule.command == cid and sender in rule.senders and state in rule.states:
            return True
        if (
            rule.response_states
            and rule.command | RESPONSE_BIT == cid
            and OTHER[sender] in rule.senders
            and state in rule.response_states
        ):
            return True
    return False


ALL_COMMANDS = sorted(CommandId, key=int)


def instance(cid: int, seq: int = 0) -> Pdu:
    cls = PDU_CLASSES[cid]
    pdu = cls()
    pdu.sequence_number = seq
    return pdu


@settings(max_examples=400)
@given(
    state=st.sampled_from(list(SessionState)),
    role=st.sampled_from(list(Role)),
    cid=st.sampled_from(ALL_COMMANDS),
)
def test_sending_any_command_in_any_state_is_allowed_or_cleanly_refused(
    state: SessionState, role: Role, cid: int
) -> None:
    """h2's test_state_transitions, for SMPP: every (state, role, command) on the send
    side either follows the table or raises LocalProtocolError and changes nothing."""
    ours, _ = session_in(state, role)
    pdu = instance(cid, seq=1)  # seq 1: the pending bind's, for an SMSC in BINDING
    is_response = bool(cid & RESPONSE_BIT)
    allowed = table_allows(cid, role, state)
    # Beyond the table: responses the session sends itself, and a bind_*_resp
    # must answer the pending bind (a bind_transceiver #1 here).
    if cid in (CommandId.enquire_link_resp, CommandId.unbind_resp):
        allowed = False
    if cid in (CommandId.bind_transmitter_resp, CommandId.bind_receiver_resp):
        allowed = False
    try:
        if is_response:
            assert isinstance(pdu, Response)
            ours.send_response(pdu)
        else:
            assert isinstance(pdu, Request)
            ours.send_request(pdu, 0.0)
    except LocalProtocolError:
        assert not allowed, f"{role.name} may send {CommandId(cid).name} in {state.name}"
        assert ours.state is state
        assert ours.data_to_send() == b""
        assert drain_events(ours) == []
    else:
        assert allowed, f"{role.name} must not send {CommandId(cid).name} in {state.name}"
        assert ours.data_to_send() != b""
        rule = next((r for r in LEGALITY if r.command in (cid, cid & ~RESPONSE_BIT)), None)
        assert rule is not None
        if not is_response and rule.then is not None:
            assert ours.state is rule.then
        elif is_response and cid != CommandId.generic_nack and rule.on_success is not None:
            assert ours.state is rule.on_success  # an SMSC's bind_resp ESME_ROK
        else:
            assert ours.state is state


@settings(max_examples=400)
@given(
    state=st.sampled_from(list(SessionState)),
    role=st.sampled_from(list(Role)),
    cid=st.sampled_from(ALL_COMMANDS),
)
def test_receiving_any_command_in_any_state_is_accepted_or_answered_with_an_error(
    state: SessionState, role: Role, cid: int
) -> None:
    """Every (state, role, command) on the receive side: a legal request becomes an
    event (or an automatic answer); an illegal one gets its own _resp with
    ESME_RINVBNDSTS (ESME_RALYBND for a re-bind) or, without a response PDU, no
    answer; a response that matches nothing is UnexpectedResponse. Never raises."""
    ours, _ = session_in(state, role)
    seq = 0x55
    ours.receive_data(raw(instance(cid), seq), 0.0)
    events = drain_events(ours)
    answers = decode_all(ours.data_to_send())
    if state is ST.CLOSED:
        assert events == []
        assert answers == []
        return
    if cid & RESPONSE_BIT:
        assert event_types(events) == ["UnexpectedResponse"]  # nothing outstanding
        assert answers == []
        return
    peer = OTHER[role]
    rule = next(r for r in LEGALITY if r.command == cid)
    if table_allows(cid, peer, state):
        expected_event = {
            CommandId.bind_transmitter: BindRequested,
            CommandId.bind_receiver: BindRequested,
            CommandId.bind_transceiver: BindRequested,
            CommandId.outbind: OutbindReceived,
            CommandId.unbind: UnbindReceived,
            CommandId.enquire_link: None,
        }.get(CommandId(cid), RequestReceived)
        assert event_types(events) == ([] if expected_event is None else [expected_event.__name__])
        if cid in (CommandId.enquire_link, CommandId.unbind):
            (answer,) = answers
            assert answer.command_id == cid | RESPONSE_BIT
            assert answer.command_status == 0
            assert answer.sequence_number == seq
        else:
            assert answers == []
        if rule.then is not None:
            assert ours.state is rule.then
        return
    (rejected,) = events
    assert isinstance(rejected, PduRejected)
    assert rejected.pdu is not None
    if PDU_CLASSES[cid].response_class is None:  # type: ignore[attr-defined]
        assert answers == []
        assert rejected.answered_with_status is None
    else:
        rebind = cid in (1, 2, 9) and state in (ST.BOUND_TX, ST.BOUND_RX, ST.BOUND_TRX)
        status = S.ESME_RALYBND if rebind and peer is Role.ESME else S.ESME_RINVBNDSTS
        (answer,) = answers
        assert answer.command_id == cid | RESPONSE_BIT
        assert answer.command_status == status == rejected.answered_with_status
        assert answer.sequence_number == seq
    assert ours.state is state


# ============================================================================ chunking


def _normalize(event: Event) -> tuple[object, ...]:
    """Events as comparable data (exceptions compare by identity)."""
    fields: list[object] = [type(event).__name__]
    for value in event:
        if isinstance(value, BaseException):
            fields.append(
                (type(value).__name__, str(value), getattr(value, "command_status", None))
            )
        else:
            fields.append(value)
    return tuple(fields)


def _inbound_stream(draw: Callable[..., Any], outstanding: list[int]) -> bytes:
    """Wire bytes an SMSC might send a bound transceiver ESME: responses to its
    outstanding requests in any order, MO traffic, probes, errors of every kind
    and possibly a framing error at the end (its header says seq 0, so the nack
    is the same whether or not the whole header arrived at once)."""
    parts: list[bytes] = []
    order = draw(st.permutations(outstanding))
    kinds = draw(
        st.lists(
            st.sampled_from(
                [
                    "resp",
                    "deliver",
                    "data_sm",
                    "enquire",
                    "unknown",
                    "bad_field",
                    "truncated",
                    "stray_resp",
                    "nack",
                    "alert",
                    "outbind",
                    "rebind",
                    "unbind",
                ]
            ),
            max_size=14,
        )
    )
    seq = 1000
    for kind in kinds:
        seq += 1
        if kind == "resp" and order:
            parts.append(raw(SubmitSmResp(message_id=f"m{seq}"), order.pop()))
        elif kind == "deliver":
            parts.append(raw(DeliverSm(source_addr="1", short_message=b"x" * (seq % 7)), seq))
        elif kind == "data_sm":
            parts.append(raw(DataSm(source_addr="1"), seq))
        elif kind == "enquire":
            parts.append(raw(EnquireLink(), seq))
        elif kind == "unknown":
            parts.append(header(20, 0x00010234, 0, seq) + b"\x01\x02\x03\x04")
        elif kind == "bad_field":
            parts.append(header(16 + 7, CommandId.deliver_sm, 0, seq) + b"toolong")
        elif kind == "truncated":
            parts.append(header(17, CommandId.query_sm, 0, seq) + b"\x00")
        elif kind == "stray_resp":
            parts.append(raw(SubmitSmResp(message_id="stray"), 1))
        elif kind == "nack":
            parts.append(raw(GenericNack(S.ESME_RSYSERR), seq))
        elif kind == "alert":
            parts.append(raw(AlertNotification(source_addr="1", esme_addr="2"), seq))
        elif kind == "outbind":
            parts.append(raw(Outbind(system_id="x"), seq))
        elif kind == "rebind":
            parts.append(raw(BindTransmitter(system_id="x"), seq))
        elif kind == "unbind":
            parts.append(raw(Unbind(), seq))
    parts.extend(raw(SubmitSmResp(message_id="late"), s) for s in order)
    if draw(st.booleans()):
        parts.append(header(draw(st.sampled_from([0, 8, 15, 1 << 20])), 4, 0, 0) + b"junk")
    return b"".join(parts)


def _feed(chunks: list[bytes]) -> tuple[list[tuple[object, ...]], bytes, SessionState]:
    pair = SessionPair.create(dataclasses.replace(QUIET, window_size=8))
    pair.bind(BindTransceiver)
    for i in range(5):
        pair.esme.send_request(submit(bytes([i])), 0.0)
    pair.esme.data_to_send()
    for chunk in chunks:
        pair.esme.receive_data(chunk, 1.0)
    events = [_normalize(e) for e in drain_events(pair.esme)]
    return events, pair.esme.data_to_send(), pair.esme.state


@settings(max_examples=150)
@given(data=st.data())
def test_chunking_never_changes_events_or_answers(data: st.DataObject) -> None:
    """Style guide §8.3: the same byte stream fed whole, byte by byte and in random
    splits yields the same events, the same answers and the same final state."""
    stream = _inbound_stream(data.draw, [2, 3, 4, 5, 6])
    whole = _feed([stream])
    bytewise = _feed([stream[i : i + 1] for i in range(len(stream))])
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(stream) - 1)), max_size=12)))
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    random_split = _feed([p for p in pieces if p])
    assert whole == bytewise == random_split


def test_frames_before_a_framing_error_are_still_handled() -> None:
    """A submit_sm_resp followed by a garbage header in one read must still complete
    the request before the framing error closes the session — as it does when the
    two arrive in separate reads. (Regression: FrameBuffer.next_frame() used to drop
    the frame it had just cut when the *following* header was bad.)"""
    stream = raw(SubmitSmResp(message_id="ok"), 2) + header(8, 0, 0, 0)

    def run(chunks: list[bytes]) -> list[str]:
        pair = bound_pair(BindTransmitter)
        pair.esme.send_request(submit(), 0.0)
        for chunk in chunks:
            pair.esme.receive_data(chunk, 0.0)
        return event_types(drain_events(pair.esme))

    split = run([stream[:-16], stream[-16:]])
    assert split == ["ResponseReceived", "PduRejected", "ConnectionClosed"]
    assert run([stream]) == split


def test_pdu_with_wrong_kind_of_remote_error_is_still_typed() -> None:
    """PduRejected.error is always a RemoteProtocolError (the peer broke the rules)."""
    smsc = Session(QUIET, role=Role.SMSC, now=0.0)
    smsc.receive_data(header(16, 0x99, 0, 1) + raw(CancelSm(), 2) + raw(QuerySm(), 3), 0.0)
    smsc.receive_data(raw(ReplaceSm(), 4) + raw(SubmitMulti(), 5), 0.0)
    events = drain_events(smsc)
    assert len(events) == 5
    assert all(isinstance(e, PduRejected) for e in events)
    assert all(isinstance(e.error, RemoteProtocolError) for e in events)  # type: ignore[union-attr]
    assert len(decode_all(smsc.data_to_send())) == 5


def test_events_are_immutable_tuples() -> None:
    pair = bound_pair()
    pair.esme.send_request(submit(), 0.0)
    pair.pump()
    (event,) = drain_events(pair.smsc)
    with pytest.raises(AttributeError):
        event.request = None  # type: ignore[misc, union-attr]
    match event:
        case RequestReceived(request):
            assert isinstance(request, SubmitSm)
        case _:  # pragma: no cover
            pytest.fail("not matched")


def test_keepalive_is_exempt_from_a_full_window() -> None:
    config = dataclasses.replace(QUIET, window_size=1, enquire_link_interval_s=5.0)
    pair = bound_pair(config=config)
    pair.esme.send_request(submit(), 0.0)
    pair.esme.data_to_send()
    pair.esme.handle_timer(5.0)
    (probe,) = decode_all(pair.esme.data_to_send())
    assert isinstance(probe, EnquireLink)
    assert pair.esme.window_free() == 0
    assert pair.esme.outstanding_count == 2


def test_pump_helper_moves_bytes_both_ways() -> None:
    pair = bound_pair()
    pair.esme.send_request(EnquireLink(), 0.0)
    assert pump(pair.esme, pair.smsc) > 0
    assert pump(pair.esme, pair.smsc) == 0


def test_encode_of_an_auto_answer_is_header_only() -> None:
    """Error responses carry no body (SMPP 3.4 §4.4.2): 16 octets on the wire."""
    smsc = Session(QUIET, role=Role.SMSC, now=0.0)
    smsc.receive_data(raw(submit(), 3), 0.0)
    assert smsc.data_to_send() == encode(SubmitSmResp(S.ESME_RINVBNDSTS, 3))
    assert len(encode(SubmitSmResp(S.ESME_RINVBNDSTS, 3))) == 16


# ============================================================================ timer bookkeeping


def test_timer_queues_stay_bounded_when_nobody_calls_get_timer() -> None:
    """Lazy deletion must not leak: 2,000 answered requests, get_timer() never called.
    (Reads the private queues: their size *is* the property under test.)"""
    config = dataclasses.replace(QUIET, window_size=4)
    pair = bound_pair(BindTransmitter, config=config)
    for i in range(2000):
        pair.esme.send_request(submit(), float(i), timeout_s=50.0 if i % 7 == 0 else None)
        pair.pump(float(i))
        (received,) = drain_events(pair.smsc)
        pair.smsc.respond(received.request)  # type: ignore[union-attr]
        pair.pump(float(i))
        assert event_types(drain_events(pair.esme)) == ["ResponseReceived"]
        bound = 2 * config.window_size + 64 + 1  # per queue, see Session._prune_timers
        assert len(pair.esme._deadline_fifo) <= bound
        assert len(pair.esme._deadline_heap) <= bound
    assert pair.esme.get_timer() is None
    sm = submit()
    pair.esme.send_request(sm, 3000.0)
    assert pair.esme.get_timer() == 3030.0


def test_clock_going_backwards_keeps_deadlines_in_order() -> None:
    """A non-monotonic ``now`` must not make a later request expire first."""
    pair = bound_pair(BindTransmitter)
    late, early = submit(b"late"), submit(b"early")
    pair.esme.send_request(late, 10.0)  # deadline 40
    pair.esme.send_request(early, 5.0)  # deadline 35
    assert pair.esme.get_timer() == 35.0
    pair.esme.handle_timer(35.0)
    (timed_out,) = drain_events(pair.esme)
    assert timed_out.request is early  # type: ignore[union-attr]
    pair.esme.handle_timer(40.0)
    (timed_out,) = drain_events(pair.esme)
    assert timed_out.request is late  # type: ignore[union-attr]


def test_answered_custom_timeout_request_leaves_no_timer() -> None:
    pair = bound_pair(BindTransmitter)
    seq = pair.esme.send_request(submit(), 0.0, timeout_s=5.0)
    pair.esme.receive_data(raw(SubmitSmResp(), seq), 1.0)
    assert pair.esme.get_timer() is None
    pair.esme.handle_timer(100.0)
    assert event_types(drain_events(pair.esme)) == ["ResponseReceived"]


def test_slow_path_send_checks_the_window_and_restores_on_encode_failure() -> None:
    config = dataclasses.replace(QUIET, window_size=1)
    pair = bound_pair(BindTransmitter, config=config)
    bad = SubmitSm(destination_addr="9" * 25)
    with pytest.raises(LocalProtocolError):
        pair.esme.send_request(bad, 0.0, timeout_s=5.0)
    assert bad.sequence_number == 0
    assert pair.esme.send_request(submit(), 0.0, timeout_s=5.0) == 2
    with pytest.raises(LocalProtocolError, match="window full"):
        pair.esme.send_request(submit(), 0.0, timeout_s=5.0)


def test_a_pdu_the_table_does_not_know_is_refused() -> None:
    @dataclasses.dataclass(slots=True)
    class VendorRequest(Request):
        command_id = 0x00010203  # SMSC vendor range (digest §3)

    pair = bound_pair()
    with pytest.raises(LocalProtocolError, match="not a command"):
        pair.esme.send_request(VendorRequest(), 0.0)


def test_status_counters_are_bounded() -> None:
    """A peer sending thousands of distinct statuses cannot grow the counters without
    bound: past 256 keys the rest are summed under -1."""
    pair = bound_pair(BindTransmitter, config=dataclasses.replace(QUIET, window_size=1))
    for status in range(1, 301):
        seq = pair.esme.send_request(submit(), 0.0)
        pair.esme.receive_data(raw(SubmitSmResp(status), seq), 0.0)
    stats = pair.esme.statistics().responses_received_by_status
    assert len(stats) == 256 + 2  # 256 distinct, "-1", and 0 (the bind_resp)
    assert stats[-1] == 300 - 256
    assert stats[0] == 1
