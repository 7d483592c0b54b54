"""Session events: past-tense facts the session reports (style guide §7).

The caller pops them one at a time with :meth:`protocol.session.Session.next_event`
and matches on their type::

    match event:
        case RequestReceived(request):
            ...
        case ResponseReceived(request, response):
            ...
        case _:
            assert_never(event)   # a new event type cannot be ignored silently

Why NamedTuples and not frozen dataclasses: one or two events are built per
PDU, on the hot path. Measured on the reference machine, a frozen slotted
dataclass costs ~370 ns to build, a NamedTuple built with ``tuple.__new__``
~130 ns (the session does exactly that). NamedTuples are immutable and
slot-free by construction; ``__match_args__`` makes them pattern-matchable.
The one catch is that tuples compare by value *across* types
(``RequestReceived(p) == BindRequested(p)``): compare ``type(event)`` too when
it matters.

Accounting invariant (see ``protocol/session.py``): every request the caller
sent that expects a response ends in exactly one of ``ResponseReceived``,
``Bound``, ``BindFailed``, ``Unbound``, ``ResponseTimedOut`` or the
``unacknowledged`` tuple of the single ``ConnectionClosed``.
"""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, NamedTuple, TypeAlias

from protocol.errors import RemoteProtocolError
from protocol.pdu import Bind, Outbind, Pdu, Request, Response, Unbind

if TYPE_CHECKING:  # only for annotations: session.py imports this module
    from protocol.session import SessionState

__all__ = [
    "BindFailed",
    "BindRequested",
    "Bound",
    "CloseReason",
    "ConnectionClosed",
    "Event",
    "OutbindReceived",
    "PduRejected",
    "RequestReceived",
    "ResponseReceived",
    "ResponseTimedOut",
    "UnbindReceived",
    "Unbound",
    "UnexpectedResponse",
]


class CloseReason(Enum):
    """Why a session reached CLOSED. A bounded set: fit for a metrics label."""

    UNBOUND = "unbound"
    """Our unbind was answered (SMPP 3.4 §4.2)."""
    PEER_UNBOUND = "peer_unbound"
    """The peer unbound us, we answered, and it did not close the connection
    within ``response_timeout_s``."""
    PEER_CLOSED = "peer_closed"
    """The peer closed the TCP connection (``receive_data(b"")``)."""
    LOCAL_CLOSE = "local_close"
    """The caller called ``close()``."""
    FRAMING_ERROR = "framing_error"
    """command_length out of bounds: no trustworthy PDU boundary (SMPP 3.4 §3.2.2)."""
    BIND_TIMEOUT = "bind_timeout"
    """Our bind was not answered within ``response_timeout_s``."""
    UNBIND_TIMEOUT = "unbind_timeout"
    """Our unbind was not answered within ``response_timeout_s``."""
    ENQUIRE_LINK_TIMEOUT = "enquire_link_timeout"
    """The keepalive enquire_link was not answered: the link is dead (SMPP 3.4 §7.2)."""
    INACTIVITY_TIMEOUT = "inactivity_timeout"
    """Nothing received for ``inactivity_timeout_s`` (SMPP 3.4 §7.2)."""
    SESSION_INIT_TIMEOUT = "session_init_timeout"
    """SMSC role: not bound within ``session_init_timeout_s`` (SMPP 3.4 §7.2)."""


class BindRequested(NamedTuple):
    """SMSC role: the peer sent a bind in OPEN; the state is now BINDING.

    Answer it with ``respond(request, status)``: ESME_ROK binds the session,
    anything else (ESME_RINVPASWD, ESME_RBINDFAIL...) returns it to OPEN.
    """

    request: Bind


class RequestReceived(NamedTuple):
    """The peer sent a request that is legal in this state. Answer it with
    ``respond(request, status, **fields)`` — except alert_notification, which
    has no response (SMPP 3.4 §4.12)."""

    request: Request


class OutbindReceived(NamedTuple):
    """ESME role: the SMSC asked us to bind (SMPP 3.4 §2.2.1, §4.1.7); reply with
    a bind_receiver. Outbind itself is never answered."""

    request: Outbind


class Bound(NamedTuple):
    """The bind handshake succeeded; ``state`` is BOUND_TX, BOUND_RX or BOUND_TRX.

    Reported to both roles: the ESME on receiving the response, the SMSC on
    sending it. ``response`` is the successful bind_*_resp.
    """

    state: SessionState
    request: Bind
    response: Response


class BindFailed(NamedTuple):
    """The bind was refused (``response`` is a bind_*_resp with a non-zero status,
    or a generic_nack); the state is OPEN again. Reported to both roles."""

    status: int
    request: Bind
    response: Response


class ResponseReceived(NamedTuple):
    """One of our requests was answered. ``response.command_status`` may be any
    value, including unknown ones: a carrier's status is data (style guide §5.3).
    ``response`` is the request's own ``*_resp`` or a ``generic_nack``."""

    request: Request
    response: Response


class ResponseTimedOut(NamedTuple):
    """No response within the request's timeout. Its window slot is free again;
    SMPP 3.4 §2.8: assume it was **not** processed. A late response is reported
    as ``UnexpectedResponse``."""

    request: Request


class UnbindReceived(NamedTuple):
    """The peer unbound; the session answered unbind_resp and is UNBINDING.

    Stop sending requests, answer what you still owe, then ``close()`` (the peer
    normally closes the connection itself; the session closes after
    ``response_timeout_s`` otherwise).
    """

    request: Unbind


class Unbound(NamedTuple):
    """Our unbind was answered; a ``ConnectionClosed(UNBOUND)`` follows at once."""

    request: Unbind
    response: Response


class PduRejected(NamedTuple):
    """Informational: the peer sent something broken or illegal and the session
    already answered it (or, for outbind/alert_notification and generic_nack,
    deliberately did not).

    Attributes:
        error: what was wrong; ``error.command_status`` is the status involved.
        answered_with_status: the status put on the wire (in the PDU's own
            ``*_resp`` or a generic_nack), or None if nothing was sent.
        pdu: the decoded PDU when it could be decoded (an illegal request),
            else None.
    """

    error: RemoteProtocolError
    answered_with_status: int | None
    pdu: Pdu | None


class UnexpectedResponse(NamedTuple):
    """A response that matches none of our outstanding requests (late after a
    timeout, duplicated, or the peer's bug). Ignored by the session."""

    response: Response


class ConnectionClosed(NamedTuple):
    """The session is CLOSED. Reported exactly once per session.

    Attributes:
        reason: why.
        unacknowledged: every request the caller sent that was still awaiting
            its response, in send order — requeue what must not be lost
            (SMPP 3.4 §2.8: without a response, assume it was not received).
        detail: human-readable context, for logs.
    """

    reason: CloseReason
    unacknowledged: tuple[Request, ...]
    detail: str


Event: TypeAlias = (
    BindRequested
    | RequestReceived
    | OutbindReceived
    | Bound
    | BindFailed
    | ResponseReceived
    | ResponseTimedOut
    | UnbindReceived
    | Unbound
    | PduRejected
    | UnexpectedResponse
    | ConnectionClosed
)
