"""Session-level interop over a real loopback socket: python-smpplib's blocking
client against an SMSC driven by our sans-IO Session (no asyncio involved).

smpplib is an independent implementation used only as an oracle: it binds,
submits, receives our delivery receipt, answers our enquire_link, sends its own
enquire_link, and unbinds — every PDU crossing the wire is produced by one side
and parsed by the other.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import smpplib.client
import smpplib.smpp

from protocol.config import SessionConfig
from protocol.constants import CommandStatus
from protocol.events import (
    BindRequested,
    ConnectionClosed,
    RequestReceived,
    ResponseReceived,
    UnbindReceived,
)
from protocol.pdu import EnquireLink, SubmitSm
from protocol.receipt import Receipt, build_receipt_pdu
from protocol.session import Role, Session


class _SessionSmsc(threading.Thread):
    """A one-connection SMSC on 127.0.0.1:0 built on protocol.session.Session."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.log: list[str] = []
        self.submits: list[SubmitSm] = []
        self.enquire_link_answered = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._serve()
        except BaseException as exc:  # surfaced by the test
            self.error = exc

    def _serve(self) -> None:
        self.listener.settimeout(10)
        conn, _ = self.listener.accept()
        conn.settimeout(0.2)
        session = Session(
            SessionConfig(system_id="SIMSMSC", enquire_link_interval_s=None),
            role=Role.SMSC,
            now=time.monotonic(),
        )
        deadline = time.monotonic() + 15
        closed = False
        while not closed and time.monotonic() < deadline:
            try:
                data = conn.recv(65536)
            except TimeoutError:
                data = None
            now = time.monotonic()
            if data is not None:
                session.receive_data(data, now)
                if data == b"":
                    closed = True
            while (event := session.next_event()) is not None:
                self.log.append(type(event).__name__)
                if isinstance(event, BindRequested):
                    req = event.request
                    ok = req.system_id == "esme1" and req.password == "pw1"
                    session.respond(req, 0 if ok else CommandStatus.ESME_RINVPASWD)
                    if ok:
                        # Our own enquire_link to smpplib, which must answer it.
                        session.send_request(EnquireLink(), now)
                elif isinstance(event, RequestReceived) and isinstance(event.request, SubmitSm):
                    sub = event.request
                    self.submits.append(sub)
                    session.respond(sub, 0, message_id="4D2A9F11")
                    receipt = build_receipt_pdu(
                        Receipt(
                            message_id="4D2A9F11",
                            submit_date="2611282301",
                            done_date="2611282302",
                            stat="DELIVRD",
                            err="000",
                            text="hello",
                            result_code=1000,
                        ),
                        source_addr=sub.destination_addr,
                        destination_addr=sub.source_addr,
                    )
                    session.send_request(receipt, now)
                elif isinstance(event, ResponseReceived) and isinstance(event.request, EnquireLink):
                    self.enquire_link_answered.set()
                elif isinstance(event, UnbindReceived):
                    pass
                elif isinstance(event, ConnectionClosed):
                    closed = True
            out = session.data_to_send()
            if out:
                conn.sendall(out)
        conn.close()
        self.listener.close()


def test_smpplib_binds_submits_gets_receipt_and_exchanges_enquire_link() -> None:
    """smpplib and our Session interoperate for bind, submit_sm, receipt, enquire_link, unbind."""
    smsc = _SessionSmsc()
    smsc.start()
    # SMPP 3.4 §3.3: unknown TLVs (our vendor result-code TLV) must be skipped.
    client = smpplib.client.Client("127.0.0.1", smsc.port, timeout=5, allow_unknown_opt_params=True)
    received: list[Any] = []
    sent: list[Any] = []
    client.set_message_received_handler(lambda pdu: received.append(pdu))
    client.set_message_sent_handler(lambda pdu: sent.append(pdu))
    client.connect()
    try:
        resp = client.bind_transceiver(system_id="esme1", password="pw1")
        assert resp.status == 0
        assert resp.system_id == b"SIMSMSC"
        client.send_message(
            source_addr_ton=0,
            source_addr_npi=1,
            source_addr="0212345678",
            dest_addr_ton=0,
            dest_addr_npi=1,
            destination_addr="01012345678",
            short_message=b"hello",
            registered_delivery=1,
        )
        deadline = time.monotonic() + 10
        while (not received or not sent) and time.monotonic() < deadline:
            client.read_once(auto_send_enquire_link=False)
        # smpplib answered our enquire_link while reading; the SMSC thread sees it.
        assert smsc.enquire_link_answered.wait(5), smsc.log
        # Its own enquire_link, answered by our session automatically.
        client.send_pdu(smpplib.smpp.make_pdu("enquire_link", client=client))
        el_resp = client.read_pdu()
        assert el_resp.command == "enquire_link_resp"
        assert el_resp.status == 0
        unbind_resp = client.unbind()
        assert unbind_resp.command == "unbind_resp"
    finally:
        client.disconnect()
    smsc.join(timeout=10)
    assert smsc.error is None
    assert smsc.enquire_link_answered.is_set(), smsc.log
    assert sent
    assert sent[0].message_id == b"4D2A9F11"
    assert len(smsc.submits) == 1
    sub = smsc.submits[0]
    assert (sub.source_addr, sub.destination_addr, sub.short_message) == (
        "0212345678",
        "01012345678",
        b"hello",
    )
    assert sub.registered_delivery == 1
    (dlr,) = received
    assert dlr.command == "deliver_sm"
    assert dlr.esm_class & 0x3C == 0x04  # SMPP 3.4 §5.2.12: SMSC delivery receipt
    assert dlr.receipted_message_id == b"4D2A9F11"
    assert dlr.message_state == 2
    assert b"stat:DELIVRD" in dlr.short_message
    assert (dlr.source_addr, dlr.destination_addr) == (b"01012345678", b"0212345678")
    assert "UnbindReceived" in smsc.log
