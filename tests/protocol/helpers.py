"""Helpers for sans-IO session tests (style guide §8.1): two sessions wired
back to back in memory, pumped by hand, with fixed ``now`` values.

Models: aioquic's ``transfer`` / ``roundtrip`` (tests/test_connection.py) and
h11's ``ConnectionPair`` (h11/tests/helpers.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from protocol.codec import encode
from protocol.config import SessionConfig
from protocol.events import BindRequested, Event, UnbindReceived
from protocol.pdu import Bind, BindReceiver, BindTransceiver, BindTransmitter, Pdu
from protocol.session import Role, Session, SessionState

# Timers off unless a test turns them on: a test about windows should not see
# a keepalive appear.
QUIET = SessionConfig(
    window_size=10,
    response_timeout_s=30.0,
    enquire_link_interval_s=None,
    inactivity_timeout_s=None,
    session_init_timeout_s=None,
    system_id="SMSC01",
)

BIND_FOR_STATE: dict[SessionState, type[Bind]] = {
    SessionState.BOUND_TX: BindTransmitter,
    SessionState.BOUND_RX: BindReceiver,
    SessionState.BOUND_TRX: BindTransceiver,
}


def drain_events(session: Session) -> list[Event]:
    """Pop every pending event."""
    events: list[Event] = []
    while (event := session.next_event()) is not None:
        events.append(event)
    return events


def pump(a: Session, b: Session, now: float = 0.0, max_rounds: int = 100) -> int:
    """Move ``data_to_send()`` of each session into the other until both are
    quiet. Returns the number of bytes moved. Events are left in place."""
    moved = 0
    for _ in range(max_rounds):
        ab = a.data_to_send()
        ba = b.data_to_send()
        if not ab and not ba:
            return moved
        if ab:
            b.receive_data(ab, now)
        if ba:
            a.receive_data(ba, now)
        moved += len(ab) + len(ba)
    raise AssertionError("sessions still talking after max_rounds")


def raw(pdu: Pdu, seq: int | None = None) -> bytes:
    """Wire bytes of ``pdu`` (optionally with a given sequence_number), as a peer
    would send them, without going through a session."""
    if seq is not None:
        pdu.sequence_number = seq
    return encode(pdu)


@dataclass
class SessionPair:
    """An ESME session and an SMSC session connected back to back."""

    esme: Session
    smsc: Session

    @classmethod
    def create(
        cls,
        config: SessionConfig = QUIET,
        *,
        esme_config: SessionConfig | None = None,
        smsc_config: SessionConfig | None = None,
        now: float = 0.0,
        esme_first_seq: int = 1,
        smsc_first_seq: int = 1,
    ) -> SessionPair:
        return cls(
            Session(
                esme_config or config,
                role=Role.ESME,
                now=now,
                initial_sequence_number=esme_first_seq,
            ),
            Session(
                smsc_config or config,
                role=Role.SMSC,
                now=now,
                initial_sequence_number=smsc_first_seq,
            ),
        )

    def pump(self, now: float = 0.0) -> int:
        return pump(self.esme, self.smsc, now=now)

    def bind(
        self, bind_cls: type[Bind] = BindTransceiver, now: float = 0.0, **fields: object
    ) -> None:
        """Run the whole bind handshake (SMSC accepts) and drop the events."""
        self.esme.send_request(bind_cls(system_id="esme1", password="pw", **fields), now)  # type: ignore[arg-type]
        self.pump(now)
        (requested,) = drain_events(self.smsc)
        assert isinstance(requested, BindRequested)
        self.smsc.respond(requested.request)
        self.pump(now)
        drain_events(self.smsc)
        drain_events(self.esme)
        assert self.esme.bound, self.esme.state
        assert self.smsc.bound, self.smsc.state


def session_in(
    state: SessionState, role: Role, config: SessionConfig = QUIET, now: float = 0.0
) -> tuple[Session, Session]:
    """A session of ``role`` driven into ``state`` through the public API only,
    with its peer; both have no pending events or bytes. For BINDING as SMSC
    the pending bind is the transceiver bind the peer sent."""
    pair = SessionPair.create(config, now=now)
    ours, theirs = (pair.esme, pair.smsc) if role is Role.ESME else (pair.smsc, pair.esme)
    if state is SessionState.OPEN:
        pass
    elif state is SessionState.BINDING:
        pair.esme.send_request(BindTransceiver(system_id="esme1"), now)
        if role is Role.SMSC:
            pair.pump(now)
        else:
            pair.esme.data_to_send()  # the bind stays "in flight"
    elif state in BIND_FOR_STATE:
        pair.bind(BIND_FOR_STATE[state], now)
    elif state is SessionState.UNBINDING:
        # Via the *peer's* unbind, so that our own unbind is still allowed.
        pair.bind(BindTransceiver, now)
        theirs.unbind(now)
        ours.receive_data(theirs.data_to_send(), now)
        events = drain_events(ours)
        assert [type(e) for e in events] == [UnbindReceived]
        ours.data_to_send()  # our unbind_resp, never delivered
    elif state is SessionState.CLOSED:
        ours.close()
    else:  # pragma: no cover
        raise AssertionError(state)
    drain_events(ours)
    ours.data_to_send()
    assert ours.state is state, (ours.state, state)
    return ours, theirs


def event_types(events: Iterable[Event]) -> list[str]:
    return [type(e).__name__ for e in events]
