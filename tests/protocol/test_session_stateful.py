"""Hypothesis stateful test of the session window and request accounting
(style guide §8.3): rules send_request, deliver_response (in any order),
advance_time, disconnect — and a few more that stir the pot (the SMSC's own
deliver_sm with colliding sequence numbers, dropped requests, unbind).

Invariants, checked after every step:

* the requests outstanding against the window never exceed ``window_size``, and
  ``window_free()`` agrees with the model;
* every request the ESME sent ends exactly once — a response, a timeout, or
  listed in the one ConnectionClosed — and a response always belongs to its
  own request (the SMSC app echoes the request's payload in the message_id).
"""

from __future__ import annotations

import dataclasses
import random

from hypothesis import currently_in_test_context, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from protocol.constants import MAX_SEQUENCE_NUMBER, CommandStatus
from protocol.errors import LocalProtocolError
from protocol.events import (
    Bound,
    ConnectionClosed,
    PduRejected,
    RequestReceived,
    ResponseReceived,
    ResponseTimedOut,
    UnbindReceived,
    Unbound,
    UnexpectedResponse,
)
from protocol.pdu import BindTransceiver, DeliverSm, Request, SubmitSm, Unbind
from protocol.session import SessionState
from tests.protocol.helpers import QUIET, SessionPair, drain_events

CONFIG = dataclasses.replace(
    QUIET,
    window_size=4,
    response_timeout_s=10.0,
    enquire_link_interval_s=15.0,
)


class SessionWindowMachine(RuleBasedStateMachine):
    """An ESME/SMSC pair on a transceiver bind, driven at random."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.counter = 0
        self.sent: list[Request] = []  # every request the ESME caller sent
        self.ended: dict[int, int] = {}  # id(request) -> how many times it ended
        self.held: list[Request] = []  # requests the SMSC app has not answered yet
        self.esme_closed_events = 0
        self.smsc_closed_events = 0
        self.sessions = 0

    @initialize(first_seq=st.sampled_from([1, 1000, MAX_SEQUENCE_NUMBER - 3]))
    def connect_and_bind(self, first_seq: int) -> None:
        # Starting near 0x7FFFFFFF makes the sequence wrap happen mid-run.
        self.pair = SessionPair.create(
            CONFIG, now=self.now, esme_first_seq=first_seq, smsc_first_seq=first_seq
        )
        self.pair.bind(BindTransceiver, now=self.now)
        self.sessions += 1
        self.esme_closed_events = 0
        self.smsc_closed_events = 0

    # ------------------------------------------------------------------ bookkeeping

    def _end(self, request: Request) -> None:
        assert id(request) in self.ended, f"ended a request never sent: {request!r}"
        self.ended[id(request)] += 1

    def _settle(self) -> None:
        """Let both apps react to their events, like an adapter would."""
        esme, smsc = self.pair.esme, self.pair.smsc
        for _ in range(20):
            progressed = False
            for ev in drain_events(esme):
                progressed = True
                _note(type(ev).__name__)
                if isinstance(ev, ResponseReceived):
                    if isinstance(ev.request, SubmitSm):
                        # The SMSC app echoes the payload: a mismatch is a mis-correlation.
                        echoed = ev.response.message_id  # type: ignore[attr-defined]
                        assert echoed in ("", ev.request.short_message.hex())
                    self._end(ev.request)
                elif isinstance(ev, ResponseTimedOut | Unbound):
                    self._end(ev.request)
                elif isinstance(ev, ConnectionClosed):
                    self.esme_closed_events += 1
                    _note(f"closed: {ev.reason.value}, {len(ev.unacknowledged)} unacked")
                    for request in ev.unacknowledged:
                        self._end(request)
                elif isinstance(ev, RequestReceived):
                    try:  # a deliver_sm from the SMSC: answer at once
                        esme.respond(ev.request)
                    except LocalProtocolError:
                        assert esme.state is SessionState.CLOSED
                else:
                    # PduRejected: e.g. a deliver_sm that crossed our unbind (RINVBNDSTS).
                    assert isinstance(
                        ev, UnexpectedResponse | UnbindReceived | Bound | PduRejected
                    ), ev
            for ev in drain_events(smsc):
                progressed = True
                if isinstance(ev, RequestReceived):
                    self.held.append(ev.request)
                elif isinstance(ev, ConnectionClosed):
                    self.smsc_closed_events += 1
                    self.held.clear()
            # One TCP connection: when one side is closed, the other sees EOF.
            if esme.state is SessionState.CLOSED and smsc.state is not SessionState.CLOSED:
                smsc.receive_data(b"", self.now)
                progressed = True
            if smsc.state is SessionState.CLOSED and esme.state is not SessionState.CLOSED:
                esme.receive_data(b"", self.now)
                progressed = True
            if not progressed:
                return
        raise AssertionError("apps did not settle")

    def _outstanding_in_window(self) -> int:
        return sum(
            1
            for request in self.sent
            if self.ended[id(request)] == 0 and not isinstance(request, Unbind)
        )

    # ------------------------------------------------------------------ rules

    @rule(count=st.integers(1, 3), transmit=st.booleans())
    def send_request(self, count: int, transmit: bool) -> None:
        esme = self.pair.esme
        for _ in range(count):
            self.counter += 1
            sm = SubmitSm(destination_addr="447700900123", short_message=self.counter.to_bytes(4))
            legal = esme.state in (SessionState.BOUND_TX, SessionState.BOUND_TRX)
            if not legal or esme.window_free() == 0:
                try:
                    esme.send_request(sm, self.now)
                except LocalProtocolError:
                    continue
                raise AssertionError(f"send_request accepted in {esme.state} with a full window")
            seq = esme.send_request(sm, self.now)
            assert 1 <= seq <= MAX_SEQUENCE_NUMBER
            assert seq == sm.sequence_number
            self.sent.append(sm)
            self.ended[id(sm)] = 0
        if transmit:
            self.pair.pump(self.now)
        self._settle()

    @rule()
    def transmit(self) -> None:
        self.pair.pump(self.now)
        self._settle()

    @precondition(lambda self: bool(self.held))
    @rule(
        data=st.data(),
        status=st.sampled_from([0, 0, 0, CommandStatus.ESME_RTHROTTLED, 0x401]),
    )
    def deliver_response(self, data: st.DataObject, status: int) -> None:
        """The SMSC app answers one held request — any of them, so out of order."""
        index = data.draw(st.integers(0, len(self.held) - 1))
        request = self.held.pop(index)
        fields = {}
        if isinstance(request, SubmitSm) and status == 0:
            fields["message_id"] = request.short_message.hex()
        try:
            self.pair.smsc.respond(request, status, **fields)
        except LocalProtocolError:
            assert self.pair.smsc.state is SessionState.CLOSED
        self.pair.pump(self.now)
        self._settle()

    @precondition(lambda self: bool(self.held))
    @rule(data=st.data())
    def drop_request(self, data: st.DataObject) -> None:
        """The SMSC app loses a request: the ESME must time it out."""
        self.held.pop(data.draw(st.integers(0, len(self.held) - 1)))

    @rule()
    def smsc_sends_deliver_sm(self) -> None:
        """MO traffic the other way: its sequence numbers collide with the ESME's."""
        smsc = self.pair.smsc
        if smsc.bound and smsc.window_free() > 0:
            smsc.send_request(DeliverSm(short_message=b"mo"), self.now)
            self.pair.pump(self.now)
        self._settle()

    @rule(dt=st.floats(min_value=0.5, max_value=25.0))
    def advance_time(self, dt: float) -> None:
        self.now += dt
        self.pair.esme.handle_timer(self.now)
        self.pair.smsc.handle_timer(self.now)
        self._settle()

    @precondition(lambda self: bool(self.sent))
    @rule()
    def esme_unbinds(self) -> None:
        esme = self.pair.esme
        if esme.bound:
            unbind = Unbind()
            esme.send_request(unbind, self.now)
            self.sent.append(unbind)
            self.ended[id(unbind)] = 0
        self._settle()

    # Ending the connection only once some traffic flowed keeps runs interesting.
    @precondition(lambda self: self.pair.esme.state is not SessionState.CLOSED and self.sent)
    @rule()
    def disconnect(self) -> None:
        self.pair.esme.receive_data(b"", self.now)
        self._settle()

    @precondition(lambda self: self.pair.esme.state is SessionState.CLOSED)
    @rule(first_seq=st.sampled_from([1, MAX_SEQUENCE_NUMBER]))
    def reconnect(self, first_seq: int) -> None:
        """A new connection: everything sent on the old one has already ended."""
        assert all(count == 1 for count in self.ended.values())
        self.held.clear()
        self.connect_and_bind(first_seq)

    # ------------------------------------------------------------------ invariants

    @invariant()
    def window_is_respected(self) -> None:
        in_window = self._outstanding_in_window()
        assert in_window <= CONFIG.window_size
        esme = self.pair.esme
        if esme.state is SessionState.CLOSED:
            assert in_window == 0
            assert esme.window_free() == 0
            assert esme.outstanding_count == 0
        else:
            assert esme.window_free() == CONFIG.window_size - in_window

    @invariant()
    def nothing_ends_twice(self) -> None:
        assert all(count <= 1 for count in self.ended.values())
        assert self.esme_closed_events <= 1
        assert self.smsc_closed_events <= 1

    def teardown(self) -> None:
        if not hasattr(self, "pair"):
            return
        self.pair.esme.close()
        self._settle()
        assert self.esme_closed_events == 1
        unended = [r for r in self.sent if self.ended[id(r)] != 1]
        assert unended == [], unended
        _note(f"{self.sessions} session(s), {len(self.sent)} requests")


def _note(what: str) -> None:
    if currently_in_test_context():
        event(what)  # shown by pytest --hypothesis-show-statistics


SessionWindowMachine.TestCase.settings = settings(
    max_examples=200, stateful_step_count=50, deadline=None
)
test_session_window = SessionWindowMachine.TestCase


def test_seeded_soak_keeps_every_invariant() -> None:
    """The same machine driven by a seeded random walk of mostly healthy traffic:
    thousands of steps, many responses, sequence wraps, a few reconnects."""
    rng = random.Random(20240611)
    machine = SessionWindowMachine()
    machine.connect_and_bind(MAX_SEQUENCE_NUMBER - 40)
    answered = 0
    for _ in range(4000):
        roll = rng.random()
        if machine.pair.esme.state is SessionState.CLOSED:
            machine.reconnect(rng.choice([1, MAX_SEQUENCE_NUMBER - 5]))
        elif roll < 0.30:
            machine.send_request(rng.randint(1, 3), rng.random() < 0.5)
        elif roll < 0.45:
            machine.transmit()
        elif roll < 0.75:
            if machine.held:
                answered += 1
                index = rng.randrange(len(machine.held))
                machine.held.insert(0, machine.held.pop(index))  # answer out of order
                status = rng.choice([0, 0, 0, CommandStatus.ESME_RTHROTTLED])
                machine.deliver_response(_FixedData(0), status)
        elif roll < 0.85:
            machine.smsc_sends_deliver_sm()
        elif roll < 0.97:
            machine.advance_time(rng.uniform(0.5, 4.0))
        elif roll < 0.98 and machine.held:
            machine.drop_request(_FixedData(0))
        elif roll < 0.99 and machine.sent:
            machine.esme_unbinds()
        elif machine.sent:
            machine.disconnect()
        machine.window_is_respected()
        machine.nothing_ends_twice()
    machine.teardown()
    assert answered > 500
    assert machine.sessions > 1  # it reconnected, so closes were exercised too
    assert len(machine.sent) > 1000


class _FixedData:
    """Stands in for ``st.data()`` when a rule is called by hand."""

    def __init__(self, value: int) -> None:
        self.value = value

    def draw(self, strategy: object) -> int:
        return self.value
