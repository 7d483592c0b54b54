"""One SMPP v3.4 session over one TCP connection, in either role. Sans-IO.

Theory of operation
===================

The session is a pure state machine (style guide §1): bytes and caller
requests in; events, bytes to send and timer deadlines out. It never reads a
clock, never sleeps and never touches a socket. Three sources drive it
(after aioquic's ``QuicConnection``):

* data from the network: :meth:`Session.receive_data` (``b""`` = the peer closed);
* the caller: :meth:`Session.send_request`, :meth:`Session.send_response` /
  :meth:`Session.respond`, :meth:`Session.unbind`, :meth:`Session.close`;
* a timer firing: :meth:`Session.handle_timer`, armed from :meth:`Session.get_timer`.

Outputs are pulled by the caller: :meth:`Session.next_event` (one event at a
time), :meth:`Session.data_to_send` (every byte queued since the last call, in
one ``bytes``) and :meth:`Session.get_timer` (absolute deadline, on the same
scale as the ``now`` values the caller passes in, e.g. ``loop.time()``).

States (SMPP 3.4 §2.2, plus BINDING and UNBINDING)
--------------------------------------------------

::

    OPEN ──bind──> BINDING ──bind_resp ok──> BOUND_TX | BOUND_RX | BOUND_TRX
     ^               │                            │
     └─bind_resp err─┘                          unbind (either side)
                                                  v
    CLOSED <──unbind_resp── UNBINDING <───────────┘
      ^
      └── from any state: EOF, close(), framing error, timers

* OPEN: connected, not bound. The ESME may send a bind, the SMSC an outbind.
* BINDING: a bind is in flight. Both roles pass through it (role-free): the
  ESME after sending the bind, the SMSC after receiving it and until it sends
  the bind_*_resp. ESME_ROK → BOUND_x; any other status (or generic_nack) → OPEN.
* BOUND_TX / BOUND_RX / BOUND_TRX: what may flow is the legality table below.
* UNBINDING: an unbind was sent by us or by the peer. No new requests (except
  an unbind crossing ours); responses still flow both ways so each side can
  finish what it owes (SMPP 3.4 §4.2, digest §11).
* CLOSED: terminal. Every call that would send raises LocalProtocolError;
  received data is ignored; ``data_to_send()`` still drains bytes queued
  before closing (e.g. the generic_nack of a framing error).

Who drives transitions: the legality table (``LEGALITY``) is data; the session
looks up *who* sent a command (our role when sending, the peer's when
receiving) and *which state* we are in, and the row's ``then`` /
``on_success`` / ``on_failure`` columns say where to go. Following h11's two
rules: everything that moves the state lives in this file, and the table
does not know which role we play — the same rule applies to both parties.

What the session does by itself
-------------------------------

* answers ``enquire_link`` (any bound state, regardless of our window) and
  ``unbind`` (then UNBINDING) — SMPP 3.4 §4.11, §4.2;
* answers a request that is illegal in the current state, or sent by the
  wrong party, with its own ``*_resp`` and ESME_RINVBNDSTS — ESME_RALYBND for a
  bind while bound (SMPP 3.4 §2.3, §5.1.3);
* answers malformed PDUs (digest §2, error table): ESME_RINVCMDID and
  ESME_RINVCMDLEN with ``generic_nack`` (SMPP 3.4 §4.3), other field errors of
  a request with its own ``*_resp``, a malformed response with ``generic_nack``;
  ``outbind``, ``alert_notification`` and ``generic_nack`` itself are never
  answered (a nack of a nack could ping-pong between two peers forever);
* on a framing error (command_length < 16 or > ``max_pdu_bytes``) queues
  ``generic_nack(ESME_RINVCMDLEN)`` and closes: there is no trustworthy PDU
  boundary left (style guide §5.1);
* sends a keepalive ``enquire_link`` after ``enquire_link_interval_s`` of silence
  while bound, and runs the SMPP 3.4 §7.2 timers (below).

Each of these also yields an event (``PduRejected`` is informational).

Invariants
----------

* Sequence numbers of our requests are 1..0x7FFFFFFF (SMPP 3.4 §5.1.4),
  increasing, wrapping to 1, and never equal to one still outstanding.
* A request is registered as outstanding *before* its bytes are queued
  (digest §11), so a response can never arrive for an unknown request.
* Responses are matched only against *our* outstanding requests, by
  sequence_number *and* command (``request.command_id | 0x80000000``, or a
  generic_nack): each direction numbers its own requests (SMPP 3.4 §5.1.4), so
  on a transceiver the peer's deliver_sm #5 never touches our submit_sm #5.
* Every request the caller sent that expects a response ends exactly once:
  ``ResponseReceived`` / ``Bound`` / ``BindFailed`` / ``Unbound`` (answered),
  ``ResponseTimedOut``, or listed in the single ``ConnectionClosed``.
* Outstanding requests that count against the window never exceed
  ``window_size``; enquire_link and unbind are exempt.

Timers (all deadlines absolute; ``get_timer()`` returns the earliest)
--------------------------------------------------------------------

* per request: ``now + (timeout_s or response_timeout_s)`` → ``ResponseTimedOut``
  and the slot is freed; for our bind also close (BIND_TIMEOUT), for our unbind
  close (UNBIND_TIMEOUT), for the keepalive close (ENQUIRE_LINK_TIMEOUT);
* keepalive: while bound, ``last_received + enquire_link_interval_s`` → send
  enquire_link (one at a time);
* inactivity: ``last_received + inactivity_timeout_s`` → close;
* session init (SMSC role, OPEN/BINDING): ``created + session_init_timeout_s`` → close;
* linger after the peer's unbind: ``+ response_timeout_s`` → close (PEER_UNBOUND).

"Received" means any bytes from the peer, a whole PDU or not.

Performance notes
-----------------

relayd pushes tens of thousands of PDUs per second through one process, so
the per-PDU path avoids enum attribute lookups (module-level ints), builds
events with ``tuple.__new__``, checks legality with one ``frozenset`` lookup
(the role's column of the table for the current state, precomputed), keeps
outbound bytes in a list joined once per ``data_to_send()``, and keeps
request deadlines in a FIFO (a deque: with one timeout and a monotonic clock,
deadlines arrive in order; the FIFO item *is* the outstanding entry, so no
extra object per request) with a heap only for per-request timeouts and a
clock that went backwards, both pruned lazily. Window use is derived
(outstanding minus the rare exempt requests), so answering a request touches
one dict and appends one event. The frames of one read come from the buffer
as one list (``FrameBuffer.pop_frames``), and adapters may take a read's
events as one list too (:meth:`Session.pop_events`): one call per read
instead of one or two per PDU.

``render_legality_table()`` and ``render_legality_grid(role)`` print the table
and the per-state sets the session actually consults.

PDUs are mutable slotted dataclasses for speed (see ``protocol/pdu.py``);
``send_request`` *sets* ``pdu.sequence_number``. By convention nobody mutates a
PDU after sending it; the session keeps a reference to report it back in
events.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType
from typing import Any, Final

from protocol.buffer import FrameBuffer
from protocol.codec import decode_body, encode
from protocol.config import SessionConfig
from protocol.constants import (
    INTERFACE_VERSION_34,
    MAX_SEQUENCE_NUMBER,
    RESPONSE_BIT,
    CommandId,
    CommandStatus,
    Tag,
)
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
    Bind,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    Outbind,
    Pdu,
    Request,
    Response,
    Unbind,
    UnbindResp,
)
from protocol.tlv import Tlv

__all__ = [
    "LEGALITY",
    "CommandRule",
    "Role",
    "Session",
    "SessionState",
    "SessionStatistics",
    "render_legality_grid",
    "render_legality_table",
]


# ============================================================================ roles and states


class Role(Enum):
    """Which end of the SMPP session we are (SMPP 3.4 §2.1)."""

    ESME = "ESME"
    SMSC = "SMSC"


class SessionState(Enum):
    """SMPP 3.4 §2.2 session states, plus BINDING and UNBINDING (see module doc)."""

    OPEN = "OPEN"
    BINDING = "BINDING"
    BOUND_TX = "BOUND_TX"
    BOUND_RX = "BOUND_RX"
    BOUND_TRX = "BOUND_TRX"
    UNBINDING = "UNBINDING"
    CLOSED = "CLOSED"


_OTHER: Final = {Role.ESME: Role.SMSC, Role.SMSC: Role.ESME}

OPEN = SessionState.OPEN
BINDING = SessionState.BINDING
BOUND_TX = SessionState.BOUND_TX
BOUND_RX = SessionState.BOUND_RX
BOUND_TRX = SessionState.BOUND_TRX
UNBINDING = SessionState.UNBINDING
CLOSED = SessionState.CLOSED

_BOUND: Final = frozenset({BOUND_TX, BOUND_RX, BOUND_TRX})


# ============================================================================ the legality table


@dataclass(frozen=True, slots=True)
class CommandRule:
    """One row of the legality table: who may issue ``command`` in which states,
    where its response may flow, and what it does to the session state.

    Attributes:
        command: the request (or, for generic_nack, the response) command_id.
        senders: the parties that may issue it.
        states: the states in which it may be issued (sent or received).
        response_states: the states in which its response may flow (sent by a
            party that may receive the request). Empty: there is no response.
        then: the state after the request is issued, if it changes.
        on_success: the state after an ESME_ROK response, if it changes.
        on_failure: the state after an error response or generic_nack.
        spec: the SMPP 3.4 section it comes from.
    """

    command: CommandId
    senders: frozenset[Role]
    states: frozenset[SessionState]
    response_states: frozenset[SessionState] = frozenset()
    then: SessionState | None = None
    on_success: SessionState | None = None
    on_failure: SessionState | None = None
    spec: str = ""


_C = CommandId
_ESME = frozenset({Role.ESME})
_SMSC = frozenset({Role.SMSC})
_BOTH = frozenset({Role.ESME, Role.SMSC})
_TX = frozenset({BOUND_TX, BOUND_TRX})
_RX = frozenset({BOUND_RX, BOUND_TRX})
# Answers to requests received while bound may still be sent after an unbind
# (SMPP 3.4 §4.2: finish outstanding operations, then unbind_resp / close).
_TX_U = _TX | {UNBINDING}
_RX_U = _RX | {UNBINDING}
_BOUND_U = _BOUND | {UNBINDING}
_NOT_CLOSED = frozenset(SessionState) - {CLOSED}

# SMPP 3.4 §2.3, Table 2-1 (digest §3), as data. Read: "<senders> may issue
# <command> in <states>". Deliberate choices, each a reasoned reading of the spec:
# * replace_sm also in BOUND_TRX: Table 2-1 omits it, but TRX is TX + RX (§2.2).
# * data_sm in any bound state from either side (digest §3).
# * unbind also in UNBINDING, so an unbind crossing ours is answered with
#   ESME_ROK rather than refused; both sides then close cleanly.
# * generic_nack in every state but CLOSED: the digest says "any bound state",
#   but §4.3 requires a nack for a garbage PDU, which can arrive before a bind.
LEGALITY: Final[tuple[CommandRule, ...]] = (
    CommandRule(_C.bind_transmitter, _ESME, frozenset({OPEN}), frozenset({BINDING}),
                BINDING, BOUND_TX, OPEN, "4.1.1"),
    CommandRule(_C.bind_receiver, _ESME, frozenset({OPEN}), frozenset({BINDING}),
                BINDING, BOUND_RX, OPEN, "4.1.3"),
    CommandRule(_C.bind_transceiver, _ESME, frozenset({OPEN}), frozenset({BINDING}),
                BINDING, BOUND_TRX, OPEN, "4.1.5"),
    CommandRule(_C.outbind, _SMSC, frozenset({OPEN}), spec="4.1.7"),
    CommandRule(_C.unbind, _BOTH, _BOUND_U, _BOUND_U, UNBINDING, CLOSED, CLOSED, "4.2"),
    CommandRule(_C.generic_nack, _BOTH, _NOT_CLOSED, spec="4.3"),
    CommandRule(_C.submit_sm, _ESME, _TX, _TX_U, spec="4.4"),
    CommandRule(_C.submit_multi, _ESME, _TX, _TX_U, spec="4.5"),
    CommandRule(_C.deliver_sm, _SMSC, _RX, _RX_U, spec="4.6"),
    CommandRule(_C.data_sm, _BOTH, _BOUND, _BOUND_U, spec="4.7"),
    CommandRule(_C.query_sm, _ESME, _TX, _TX_U, spec="4.8"),
    CommandRule(_C.cancel_sm, _ESME, _TX, _TX_U, spec="4.9"),
    CommandRule(_C.replace_sm, _ESME, _TX, _TX_U, spec="4.10"),
    CommandRule(_C.enquire_link, _BOTH, _BOUND, _BOUND_U, spec="4.11"),
    CommandRule(_C.alert_notification, _SMSC, _RX, spec="4.12"),
)  # fmt: skip

_RULES: Final[dict[int, CommandRule]] = {r.command: r for r in LEGALITY}
# Rules by *response* command_id (for error messages about responses).
_RULES_BY_RESPONSE: Final[dict[int, CommandRule]] = {
    r.command | RESPONSE_BIT: r for r in LEGALITY if r.response_states
}


def _legal_ids(sender: Role, state: SessionState) -> frozenset[int]:
    """Every command_id ``sender`` may put on the wire in ``state``: the requests
    it may issue, the responses to requests the other party may issue, and
    generic_nack. This is the role's column of the table for one state."""
    other = _OTHER[sender]
    ids: set[int] = set()
    for rule in LEGALITY:
        if sender in rule.senders and state in rule.states:
            ids.add(rule.command)
        if other in rule.senders and state in rule.response_states:
            ids.add(rule.command | RESPONSE_BIT)
    return frozenset(ids)


# _LEGAL[sender][state]: precomputed so the per-PDU check is one set lookup.
_LEGAL: Final[dict[Role, dict[SessionState, frozenset[int]]]] = {
    role: {state: _legal_ids(role, state) for state in SessionState} for role in Role
}


def render_legality_table() -> str:
    """The legality table as text, one row per command (the table *is* the
    documentation, style guide §1.4)."""
    order = list(SessionState)

    def states(s: frozenset[SessionState]) -> str:
        return ",".join(st.name for st in order if st in s) or "-"

    def senders(s: frozenset[Role]) -> str:
        return "+".join(r.value for r in Role if r in s)

    header = ("command", "sent by", "in states", "response in", "then", "ok →", "error →", "§")
    rows = [header]
    rows.extend(
        (
            r.command.name,
            senders(r.senders),
            states(r.states),
            states(r.response_states) if r.response_states else "(none)",
            r.then.name if r.then else "",
            r.on_success.name if r.on_success else "",
            r.on_failure.name if r.on_failure else "",
            r.spec,
        )
        for r in LEGALITY
    )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def render_legality_grid(role: Role) -> str:
    """What ``role`` may put on the wire (S) and accept from its peer (R), per
    command and state, rendered from the precomputed per-state sets the session
    actually consults — so a test can compare it with the table above."""
    states = list(SessionState)
    commands = sorted(CommandId, key=lambda c: (c & 0x7FFFFFFF, c))
    rows = [("command", *(st.name for st in states))]
    for cid in commands:
        cells = []
        for st in states:
            mark = ("S" if cid in _LEGAL[role][st] else "") + (
                "R" if cid in _LEGAL[_OTHER[role]][st] else ""
            )
            cells.append(mark or ".")
        rows.append((cid.name, *cells))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    title = f"{role.value}: S = may send, R = may receive"
    return "\n".join(
        [title]
        + ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    )


# ============================================================================ statistics


@dataclass(frozen=True, slots=True)
class SessionStatistics:
    """An immutable snapshot of a session's counters (trio's ``statistics()``).

    Mappings are read-only; keys are command_ids (compare with ``CommandId``
    members) or command_status values. Status counters cover responses only
    (a request's command_status is always 0, SMPP 3.4 §5.1.3); at most 256
    distinct non-zero statuses are kept per direction, the rest are summed
    under key -1 so a misbehaving peer cannot grow them without bound.
    """

    pdus_sent_by_command: Mapping[int, int]
    pdus_received_by_command: Mapping[int, int]
    responses_sent_by_status: Mapping[int, int]
    responses_received_by_status: Mapping[int, int]
    responses_timed_out: int
    generic_nacks_sent: int
    generic_nacks_received: int
    pdus_rejected: int
    """PDUs from the peer the session answered with an error (or dropped)."""
    unexpected_responses: int
    outstanding: int


_STATUS_KEYS_MAX = 256


def _status_counts(by_command: dict[int, int], nonzero: dict[int, int]) -> Mapping[int, int]:
    total = sum(n for cid, n in by_command.items() if cid & RESPONSE_BIT)
    out = dict(nonzero)
    ok = total - sum(nonzero.values())
    if ok:
        out[0] = ok
    return MappingProxyType(out)


# ============================================================================ the session

# Module-level ints: enum attribute lookups cost ~50-100 ns each in the hot path.
_RESPONSE_BIT: Final = RESPONSE_BIT
_MAX_SEQ: Final = MAX_SEQUENCE_NUMBER
_NACK: Final = int(CommandId.generic_nack)
_ENQUIRE_LINK: Final = int(CommandId.enquire_link)
_UNBIND: Final = int(CommandId.unbind)
_OUTBIND: Final = int(CommandId.outbind)
_ALERT: Final = int(CommandId.alert_notification)
_ENQUIRE_LINK_RESP: Final = int(CommandId.enquire_link_resp)
_UNBIND_RESP: Final = int(CommandId.unbind_resp)
_BIND_IDS: Final = frozenset(
    {int(CommandId.bind_transmitter), int(CommandId.bind_receiver), int(CommandId.bind_transceiver)}
)
_BIND_RESP_IDS: Final = frozenset(cid | RESPONSE_BIT for cid in _BIND_IDS)
_S_OK: Final = int(CommandStatus.ESME_ROK)
_S_RINVCMDLEN: Final = int(CommandStatus.ESME_RINVCMDLEN)
_S_RINVCMDID: Final = int(CommandStatus.ESME_RINVCMDID)
_S_RINVBNDSTS: Final = int(CommandStatus.ESME_RINVBNDSTS)
_S_RALYBND: Final = int(CommandStatus.ESME_RALYBND)
# Digest §2: these two are answered with generic_nack, never the PDU's own resp.
_NACKED_STATUSES: Final = frozenset({_S_RINVCMDID, _S_RINVCMDLEN})

# Kinds of outstanding request (the last item of an outstanding entry).
# Ordered so that ``kind <= _K_WINDOWED`` means "counts against the window".
_K_PLAIN: Final = 0  # counts against the window; ResponseReceived
_K_BIND: Final = 1  # counts against the window; Bound / BindFailed
_K_WINDOWED: Final = _K_BIND
_K_EXEMPT: Final = 2  # caller's enquire_link: window-exempt; ResponseReceived
_K_UNBIND: Final = 3  # window-exempt; Unbound, then CLOSED
_K_KEEPALIVE: Final = 4  # our own enquire_link: exempt, internal, no event
_KIND_BY_COMMAND: Final[dict[int, int]] = {
    **dict.fromkeys(_BIND_IDS, _K_BIND),
    _UNBIND: _K_UNBIND,
    _ENQUIRE_LINK: _K_EXEMPT,
}

# Responses the session sends by itself; the caller sending them too would
# answer one request twice.
_AUTO_ANSWERED: Final = frozenset({_ENQUIRE_LINK_RESP, _UNBIND_RESP})

_new = tuple.__new__  # build NamedTuple events without the Python-level __new__

# Requests the session handles itself on receipt (the rest become RequestReceived).
_RX_SPECIAL_IDS: Final = _BIND_IDS | {_UNBIND, _ENQUIRE_LINK, _OUTBIND}


def _fast_sets(
    role: Role,
) -> dict[SessionState, tuple[frozenset[int], frozenset[int], frozenset[int]]]:
    """Per state, the subsets of the role's legal ids that take the per-PDU fast
    paths, so each hot call needs one set lookup: (plain requests we may send —
    a response expected, window-counted, no transition; responses we may send
    with no side effect; plain requests the peer may send us)."""
    out = {}
    for state in SessionState:
        ours = _LEGAL[role][state]
        theirs = _LEGAL[_OTHER[role]][state]
        requests = frozenset(
            cid
            for cid in ours
            if not cid & RESPONSE_BIT
            and cid not in _KIND_BY_COMMAND
            and getattr(PDU_CLASSES[cid], "response_class", None) is not None
        )
        responses = frozenset(
            cid
            for cid in ours
            if cid & RESPONSE_BIT and cid not in _AUTO_ANSWERED and cid not in _BIND_RESP_IDS
        )
        received = frozenset(
            cid for cid in theirs if not cid & RESPONSE_BIT and cid not in _RX_SPECIAL_IDS
        )
        out[state] = (requests, responses, received)
    return out


_FAST: Final = {role: _fast_sets(role) for role in Role}

# An outstanding entry: (deadline, sequence_number, request, expected response
# command_id, kind). The same tuple sits in the deadline FIFO, so a FIFO item is
# live iff ``outstanding.get(item[1]) is item`` (lazy deletion, no extra tuple
# per request). The heap, for out-of-order deadlines, holds
# (deadline, unique counter, entry): the counter keeps ``<`` away from the PDUs.
_Entry = tuple[float, int, Request, int, int]
_HeapItem = tuple[float, int, _Entry]


# Which timer is due (handle_timer's dispatch); ties go to the lower number, so
# ResponseTimedOut events precede a close caused by another timer at the same time.
_T_REQUEST: Final = 0
_T_KEEPALIVE: Final = 1
_T_INACTIVITY: Final = 2
_T_SESSION_INIT: Final = 3
_T_LINGER: Final = 4


class Session:
    """One SMPP session over one TCP connection, in either role.

    Args:
        config: timers, window and limits.
        role: ESME (we bind to an SMSC) or SMSC (ESMEs bind to us).
        now: the current time on the caller's clock; starts the inactivity and
            session-init timers.
        initial_sequence_number: the first sequence_number to use
            (1..0x7FFFFFFF); mostly for tests of the wrap-around.

    Raises:
        ValueError: ``initial_sequence_number`` out of range.
    """

    __slots__ = (
        "_bind_pending",
        "_buffer",
        "_closed",
        "_config",
        "_created",
        "_deadline_fifo",
        "_deadline_heap",
        "_enquire_interval",
        "_events",
        "_heap_counter",
        "_inactivity",
        "_keepalive_out",
        "_last_rx",
        "_linger_at",
        "_n_exempt",
        "_n_rejected",
        "_n_timed_out",
        "_n_unexpected",
        "_next_seq",
        "_out",
        "_outstanding",
        "_prune_at",
        "_response_timeout",
        "_role",
        "_rx_by_command",
        "_rx_by_status",
        "_rx_fast",
        "_rx_legal",
        "_session_init",
        "_state",
        "_tx_by_command",
        "_tx_by_status",
        "_tx_fast_request",
        "_tx_fast_response",
        "_tx_legal",
        "_unbind_sent",
        "_window_size",
    )

    def __init__(
        self,
        config: SessionConfig,
        *,
        role: Role,
        now: float,
        initial_sequence_number: int = 1,
    ) -> None:
        if not 1 <= initial_sequence_number <= _MAX_SEQ:
            raise ValueError(
                f"initial_sequence_number must be in 1..0x7FFFFFFF, got {initial_sequence_number}"
            )
        self._config = config
        self._role = role
        self._buffer = FrameBuffer(config.max_pdu_bytes)
        self._window_size = config.window_size
        self._response_timeout = config.response_timeout_s
        self._enquire_interval = config.enquire_link_interval_s
        self._inactivity = config.inactivity_timeout_s
        # SMPP 3.4 §7.2: the session_init_timer runs on the SMSC only.
        self._session_init = config.session_init_timeout_s if role is Role.SMSC else None
        self._created = now
        self._last_rx = now  # "received" = any bytes from the peer
        self._linger_at: float | None = None

        self._state = OPEN
        self._closed = False
        # The role's column of the legality table for the current state: what
        # we may put on the wire, and what the peer may.
        self._tx_legal = _LEGAL[role][OPEN]
        self._rx_legal = _LEGAL[_OTHER[role]][OPEN]
        self._tx_fast_request, self._tx_fast_response, self._rx_fast = _FAST[role][OPEN]

        # Our requests awaiting a response, by sequence_number, in send order.
        self._outstanding: dict[int, _Entry] = {}
        # Window use is derived: len(outstanding) - n_exempt. Counting the rare
        # exempt requests keeps the per-PDU path free of a counter update.
        self._n_exempt = 0
        self._next_seq = initial_sequence_number
        self._deadline_fifo: deque[_Entry] = deque()
        self._deadline_heap: list[_HeapItem] = []
        self._heap_counter = 0
        self._prune_at = 2 * config.window_size + 64
        self._keepalive_out = False  # our own enquire_link is outstanding
        self._unbind_sent = False
        self._bind_pending: Bind | None = None  # SMSC: the bind we still must answer

        self._events: deque[Event] = deque()
        self._out: list[bytes] = []

        self._tx_by_command: dict[int, int] = {}
        self._rx_by_command: dict[int, int] = {}
        self._tx_by_status: dict[int, int] = {}  # non-zero statuses of responses only
        self._rx_by_status: dict[int, int] = {}
        self._n_timed_out = 0
        self._n_rejected = 0
        self._n_unexpected = 0

    # ------------------------------------------------------------------ introspection

    @property
    def state(self) -> SessionState:
        """The current session state."""
        return self._state

    @property
    def role(self) -> Role:
        """ESME or SMSC, fixed for the session's life."""
        return self._role

    @property
    def config(self) -> SessionConfig:
        """The configuration the session was built with."""
        return self._config

    @property
    def bound(self) -> bool:
        """True in BOUND_TX, BOUND_RX and BOUND_TRX."""
        return self._state in _BOUND

    @property
    def outstanding_count(self) -> int:
        """Requests of ours awaiting a response, window-exempt ones (enquire_link,
        unbind, the session's own keepalive) included."""
        return len(self._outstanding)

    def window_free(self) -> int:
        """Free window slots: how many more window-counted requests
        ``send_request`` accepts now (0 once CLOSED). Re-read it after every
        ``await`` in the adapter (style guide §1.3)."""
        if self._closed:
            return 0
        return self._window_size - len(self._outstanding) + self._n_exempt

    def statistics(self) -> SessionStatistics:
        """An immutable snapshot of the session's counters."""
        tx = self._tx_by_command
        rx = self._rx_by_command
        return SessionStatistics(
            pdus_sent_by_command=MappingProxyType(dict(tx)),
            pdus_received_by_command=MappingProxyType(dict(rx)),
            responses_sent_by_status=_status_counts(tx, self._tx_by_status),
            responses_received_by_status=_status_counts(rx, self._rx_by_status),
            responses_timed_out=self._n_timed_out,
            generic_nacks_sent=tx.get(_NACK, 0),
            generic_nacks_received=rx.get(_NACK, 0),
            pdus_rejected=self._n_rejected,
            unexpected_responses=self._n_unexpected,
            outstanding=len(self._outstanding),
        )

    # ------------------------------------------------------------------ outputs

    def next_event(self) -> Event | None:
        """Pop the oldest pending event, or None when there is none."""
        try:
            return self._events.popleft()
        except IndexError:
            return None

    def pop_events(self) -> list[Event]:
        """Every pending event, oldest first, as one list (empty when there is
        none): what calling :meth:`next_event` until None returns, in one call.
        Adapters use it on the per-read path (one call per read instead of one
        per PDU); events queued while the caller handles these come next time."""
        events = self._events
        if not events:
            return []
        out = list(events)
        events.clear()
        return out

    def data_to_send(self) -> bytes:
        """Every byte queued since the last call, as one ``bytes`` (possibly empty).

        Write it to the socket before awaiting anything. Works after CLOSED too,
        so bytes queued just before closing (the generic_nack of a framing
        error) still reach the peer.
        """
        out = self._out
        if not out:
            return b""
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        return data

    def get_timer(self) -> float | None:
        """The earliest absolute deadline at which :meth:`handle_timer` must be
        called (same scale as ``now``), or None if no timer runs."""
        if self._closed:
            return None
        return self._earliest()[1]

    # ------------------------------------------------------------------ inputs: network

    def receive_data(self, data: bytes | bytearray | memoryview, now: float) -> None:
        """Feed bytes received from the peer, in any chunking (SMPP 3.4 §2.4).

        Every whole PDU is decoded and handled at once: events are queued for
        :meth:`next_event`, automatic answers for :meth:`data_to_send`.

        Args:
            data: the bytes read; ``b""`` means the peer closed the connection
                (→ ``ConnectionClosed(PEER_CLOSED)``).
            now: the current time; resets the inactivity and keepalive timers.

        Never raises for anything the peer sends: protocol errors become wire
        answers and events (``PduRejected``, and for a framing error
        ``ConnectionClosed(FRAMING_ERROR)``). Ignored once CLOSED.
        """
        if self._closed:
            return
        if not data:
            self._close(CloseReason.PEER_CLOSED, "the peer closed the connection")
            return
        self._last_rx = now
        buf = self._buffer
        try:
            buf.feed(data)
            frames = buf.pop_frames()
            if not frames:
                return
            # Hot loop: locals for everything touched per PDU (style guide §10);
            # the frames of a whole read come in one list (FrameBuffer.pop_frames).
            pop_frames = buf.pop_frames
            decode = decode_body
            new = _new
            append = self._events.append
            outstanding = self._outstanding
            rx_count = self._rx_by_command
            special = _RX_SPECIAL
            response_received = ResponseReceived
            request_received = RequestReceived
            while frames:
                for cid, status, seq, body in frames:
                    try:
                        pdu = decode(cid, status, seq, body)
                    except PduError as exc:
                        self._on_bad_pdu(exc, cid, seq)
                        continue
                    rx_count[cid] = rx_count.get(cid, 0) + 1
                    if cid & 0x80000000:  # RESPONSE_BIT, SMPP 3.4 §5.1.2
                        if status:
                            _count_status(self._rx_by_status, status)
                        # Match only our own requests, by sequence_number AND
                        # command (SMPP 3.4 §5.1.4; generic_nack matches any).
                        entry = outstanding.get(seq)
                        if entry is not None and (entry[3] == cid or cid == 0x80000000):
                            del outstanding[seq]
                            if entry[4] == 0:  # _K_PLAIN
                                append(new(response_received, (entry[2], pdu)))
                            else:
                                self._on_special_response(entry, pdu)  # type: ignore[arg-type]
                                if self._closed:  # our unbind was answered
                                    return
                        else:
                            self._n_unexpected += 1
                            append(new(UnexpectedResponse, (pdu,)))
                    elif cid in self._rx_fast:  # re-read: a PDU may change the state
                        append(new(request_received, (pdu,)))
                    elif cid in self._rx_legal:
                        special[cid](self, pdu, now)
                    else:
                        self._reject_illegal(pdu)  # type: ignore[arg-type]
                # Frames before a bad command_length came first; this call raises.
                frames = pop_frames()
        except FramingError as exc:
            self._on_framing_error(exc)

    # ------------------------------------------------------------------ inputs: caller

    def send_request(self, pdu: Request, now: float, timeout_s: float | None = None) -> int:
        """Queue a request, assigning its sequence_number.

        The number is the next in 1..0x7FFFFFFF (wrapping to 1, skipping any
        still outstanding) and is *written into* ``pdu.sequence_number``. A
        request that expects a response is registered as outstanding before
        its bytes are queued; it later ends in exactly one of
        ``ResponseReceived`` (``Bound``/``BindFailed`` for a bind, ``Unbound``
        for an unbind), ``ResponseTimedOut``, or ``ConnectionClosed.unacknowledged``.
        A bind moves the state to BINDING, an unbind to UNBINDING.

        Args:
            pdu: the request. Do not mutate it afterwards: the session reports
                this very object back in events.
            now: the current time; starts the response timer.
            timeout_s: this request's response timeout, overriding
                ``config.response_timeout_s``.

        Returns:
            the sequence_number assigned.

        Raises:
            LocalProtocolError: the legality table forbids our role to send it
                in this state (or the session is CLOSED), the window is full
                (enquire_link and unbind are exempt), an unbind was already
                sent, the request's command_status is not 0, or a field does
                not encode. Nothing is queued and the state is unchanged.
        """
        cid = pdu.command_id
        outstanding = self._outstanding
        if cid not in self._tx_fast_request or timeout_s is not None or pdu.command_status:
            return self._send_request_slow(pdu, now, timeout_s)
        if len(outstanding) - self._n_exempt >= self._window_size:
            raise self._window_full(cid)
        # Hot path, the common case (a plain windowed request with the default
        # timeout): the same steps as _send(), inlined to save a call per PDU.
        seq = self._next_seq
        while seq in outstanding:  # skip numbers still in use (after a wrap)
            seq = seq + 1 if seq < _MAX_SEQ else 1
        old = pdu.sequence_number
        pdu.sequence_number = seq
        try:
            data = encode(pdu)
        except BaseException:
            pdu.sequence_number = old
            raise
        self._next_seq = seq + 1 if seq < _MAX_SEQ else 1
        deadline = now + self._response_timeout
        # Register BEFORE queueing the bytes (digest §11).
        outstanding[seq] = entry = (deadline, seq, pdu, cid | 0x80000000, 0)
        fifo = self._deadline_fifo
        if not fifo or fifo[-1][0] <= deadline:
            fifo.append(entry)
            if len(fifo) > self._prune_at:
                self._prune_timers()
        else:  # the clock went backwards: keep the FIFO sorted
            self._push_heap(entry)
        self._out.append(data)
        tx_count = self._tx_by_command
        tx_count[cid] = tx_count.get(cid, 0) + 1
        return seq

    def _send_request_slow(self, pdu: Request, now: float, timeout_s: float | None) -> int:
        cid = pdu.command_id
        if cid not in self._tx_legal or cid & _RESPONSE_BIT:
            raise self._refusal(pdu, "send_request")
        if pdu.command_status:
            # SMPP 3.4 §5.1.3: command_status is NULL in every request.
            raise LocalProtocolError(
                f"a request's command_status must be 0, got {pdu.command_status}",
                command_id=cid,
            )
        kind = _KIND_BY_COMMAND.get(cid, _K_PLAIN)
        if kind <= _K_WINDOWED and pdu.response_class is not None:
            if len(self._outstanding) - self._n_exempt >= self._window_size:
                raise self._window_full(cid)
        elif kind == _K_UNBIND and self._unbind_sent:
            raise LocalProtocolError("unbind already sent", command_id=cid)
        return self._send(pdu, now, timeout_s, kind)

    def _window_full(self, cid: int) -> LocalProtocolError:
        return LocalProtocolError(
            f"window full: {self._window_size} requests outstanding (SMPP 3.4 §2.5.2)",
            CommandStatus.ESME_RTHROTTLED,
            command_id=cid,
        )

    def send_response(self, pdu: Response) -> None:
        """Queue a response to a request we received.

        SMSC role: answering a ``BindRequested`` with ESME_ROK moves the state
        to BOUND_TX/RX/TRX (event ``Bound``), with any other status back to
        OPEN (event ``BindFailed``).

        Raises:
            LocalProtocolError: ``pdu`` is not a response; the table forbids our
                role to send it in this state (or the session is CLOSED); it is
                an enquire_link_resp or unbind_resp (the session sends those
                itself); a bind_*_resp that does not answer the pending bind;
                or a field does not encode. Nothing is queued then.
        """
        cid = pdu.command_id
        if cid not in self._tx_fast_response:
            if not cid & _RESPONSE_BIT or cid not in self._tx_legal:
                raise self._refusal(pdu, "send_response")
            if cid in _AUTO_ANSWERED:
                raise LocalProtocolError(
                    f"{_name(cid)} is sent by the session itself", command_id=cid
                )
            self._send_bind_response(pdu)  # the only other legal responses
            return
        self._out.append(encode(pdu))
        tx_count = self._tx_by_command
        tx_count[cid] = tx_count.get(cid, 0) + 1
        status = pdu.command_status
        if status:
            _count_status(self._tx_by_status, status)

    def respond(self, request: Request, status: int = _S_OK, **fields: object) -> None:
        """Answer ``request`` with its own response: ``request.make_response(status,
        **fields)`` (sequence_number copied), then :meth:`send_response`.

        For a successful bind_*_resp the ``system_id`` defaults to
        ``config.system_id``, and the ``sc_interface_version`` TLV is added when the
        ESME bound with interface_version ≥ 0x34 (SMPP 3.4 §3.4, §4.1.2) unless
        ``tlvs`` is given.

        Raises:
            LocalProtocolError: ``request`` has no response (outbind,
                alert_notification) or :meth:`send_response` refuses it.
            TypeError: a field the response does not have.
        """
        if request.response_class is None:
            raise LocalProtocolError(
                f"{_name(request.command_id)} has no response PDU (SMPP 3.4 §4.1.7, §4.12)",
                command_id=request.command_id,
            )
        if status == _S_OK and request.command_id in _BIND_IDS:
            assert isinstance(request, Bind)
            fields.setdefault("system_id", self._config.system_id)
            if "tlvs" not in fields and request.interface_version >= INTERFACE_VERSION_34:
                fields["tlvs"] = (Tlv(Tag.sc_interface_version, self._config.interface_version),)
        self.send_response(request.make_response(status, **fields))

    def unbind(self, now: float) -> int:
        """Send ``unbind`` (state → UNBINDING); its ``unbind_resp`` closes the
        session (``Unbound`` then ``ConnectionClosed(UNBOUND)``), no answer within
        ``response_timeout_s`` closes it too (UNBIND_TIMEOUT).

        Wait until ``outstanding_count`` drops (or the requests time out) first:
        requests still outstanding when the session closes are reported in
        ``ConnectionClosed.unacknowledged``.

        Returns:
            the unbind's sequence_number.

        Raises:
            LocalProtocolError: not bound (nor UNBINDING), or already sent.
        """
        return self.send_request(Unbind(), now)

    def close(self) -> None:
        """Abort locally: state CLOSED at once, ``ConnectionClosed(LOCAL_CLOSE)``
        listing every outstanding request. Nothing is sent (use :meth:`unbind`
        for a graceful end); already-queued bytes stay in :meth:`data_to_send`.
        Idempotent."""
        self._close(CloseReason.LOCAL_CLOSE, "closed by the caller")

    def handle_timer(self, now: float) -> None:
        """Fire every timer due at ``now``, earliest first: response timeouts,
        the keepalive enquire_link, inactivity, session init, unbind linger.
        Harmless to call early or after CLOSED."""
        while not self._closed:
            which, at = self._earliest()
            if at is None or at > now:
                return
            if which == _T_REQUEST:
                self._expire_request()
            elif which == _T_KEEPALIVE:
                # SMPP 3.4 §4.11, §7.2: probe the link after silence; one at a time.
                self._keepalive_out = True
                self._send(EnquireLink(), now, None, _K_KEEPALIVE)
            elif which == _T_INACTIVITY:
                self._close(
                    CloseReason.INACTIVITY_TIMEOUT,
                    f"nothing received for {self._inactivity} s",
                )
            elif which == _T_SESSION_INIT:
                self._close(
                    CloseReason.SESSION_INIT_TIMEOUT,
                    f"not bound within {self._session_init} s",
                )
            else:  # _T_LINGER
                self._close(
                    CloseReason.PEER_UNBOUND,
                    f"peer unbound and kept the connection open for {self._response_timeout} s",
                )

    # ------------------------------------------------------------------ sending internals

    def _send(self, pdu: Request, now: float, timeout_s: float | None, kind: int) -> int:
        """Assign a sequence number, register, queue. Legality already checked."""
        outstanding = self._outstanding
        seq = self._next_seq
        while seq in outstanding:  # skip numbers still in use (after a wrap)
            seq = seq + 1 if seq < _MAX_SEQ else 1
        cid = pdu.command_id
        old = pdu.sequence_number
        pdu.sequence_number = seq
        try:
            data = encode(pdu)
        except BaseException:
            pdu.sequence_number = old
            raise
        self._next_seq = seq + 1 if seq < _MAX_SEQ else 1
        if pdu.response_class is not None:
            deadline = now + (self._response_timeout if timeout_s is None else timeout_s)
            # Register BEFORE queueing the bytes (digest §11).
            outstanding[seq] = entry = (deadline, seq, pdu, cid | _RESPONSE_BIT, kind)
            fifo = self._deadline_fifo
            # Only default-timeout deadlines go to the FIFO, so one long custom
            # timeout cannot push every later request into the heap.
            if timeout_s is None and (not fifo or fifo[-1][0] <= deadline):
                fifo.append(entry)
                if len(fifo) > self._prune_at:
                    self._prune_timers()
            else:
                self._push_heap(entry)
            if kind > _K_WINDOWED:
                self._n_exempt += 1
        if kind != _K_PLAIN:
            then = _THEN.get(cid)
            if then is not None:
                self._set_state(then)
            if kind == _K_UNBIND:
                self._unbind_sent = True
        self._out.append(data)
        tx_count = self._tx_by_command
        tx_count[cid] = tx_count.get(cid, 0) + 1
        return seq

    def _send_bind_response(self, pdu: Response) -> None:
        bind = self._bind_pending
        cid = pdu.command_id
        if (
            bind is None
            or bind.command_id | _RESPONSE_BIT != cid
            or bind.sequence_number != pdu.sequence_number
        ):
            raise LocalProtocolError(
                f"{_name(cid)} #{pdu.sequence_number} does not answer the pending bind",
                command_id=cid,
                sequence_number=pdu.sequence_number,
            )
        data = encode(pdu)
        self._bind_pending = None
        rule = _RULES[bind.command_id]
        status = pdu.command_status
        if status == _S_OK:
            assert rule.on_success is not None
            self._set_state(rule.on_success)
            self._events.append(Bound(rule.on_success, bind, pdu))
        else:
            assert rule.on_failure is not None
            self._set_state(rule.on_failure)
            self._events.append(BindFailed(status, bind, pdu))
        self._out.append(data)
        self._tx_by_command[cid] = self._tx_by_command.get(cid, 0) + 1
        if status:
            _count_status(self._tx_by_status, status)

    def _queue_auto(self, pdu: Response) -> None:
        """Queue an answer the session decided on itself (no table check: an
        error answer to an illegal or malformed PDU is always allowed)."""
        self._out.append(encode(pdu))
        cid = pdu.command_id
        self._tx_by_command[cid] = self._tx_by_command.get(cid, 0) + 1
        if pdu.command_status:
            _count_status(self._tx_by_status, pdu.command_status)

    def _refusal(self, pdu: Pdu, method: str) -> LocalProtocolError:
        cid = pdu.command_id
        name = _name(cid)
        if self._closed:
            why = "the session is CLOSED"
        elif method == "send_request" and cid & _RESPONSE_BIT:
            why = "it is a response: use send_response()"
        elif method == "send_response" and not cid & _RESPONSE_BIT:
            why = "it is a request: use send_request()"
        else:
            rule = _RULES.get(cid) or _RULES_BY_RESPONSE.get(cid)
            if rule is None:
                why = "it is not a command this session can send"
            elif cid & _RESPONSE_BIT and cid != _NACK:
                why = f"our role ({self._role.value}) may not answer it in {self._state.name}"
            elif self._role not in rule.senders:
                why = f"only the {'/'.join(r.value for r in rule.senders)} may send it"
            else:
                why = f"it is not allowed in {self._state.name} (SMPP 3.4 §2.3)"
        return LocalProtocolError(
            f"cannot send {name}: {why}",
            CommandStatus.ESME_RINVBNDSTS,
            command_id=cid,
            sequence_number=pdu.sequence_number,
        )

    # ------------------------------------------------------------------ receiving internals

    def _on_special_response(self, entry: _Entry, pdu: Response) -> None:
        _, _, request, _, kind = entry
        if kind > _K_WINDOWED:
            self._n_exempt -= 1
        if kind == _K_EXEMPT:
            self._events.append(ResponseReceived(request, pdu))
        elif kind == _K_KEEPALIVE:
            self._keepalive_out = False
        elif kind == _K_BIND:
            assert isinstance(request, Bind)
            rule = _RULES[request.command_id]
            status = pdu.command_status
            if status == _S_OK and pdu.command_id != _NACK:
                assert rule.on_success is not None
                self._set_state(rule.on_success)
                self._events.append(Bound(rule.on_success, request, pdu))
            else:
                # A bind_*_resp with an error, or a generic_nack (e.g. the SMSC
                # does not know bind_transceiver: SMPP 3.4 §4.1, digest §3).
                assert rule.on_failure is not None
                self._set_state(rule.on_failure)
                self._events.append(BindFailed(status, request, pdu))
        else:  # _K_UNBIND
            assert isinstance(request, Unbind)
            self._events.append(Unbound(request, pdu))
            self._close(CloseReason.UNBOUND, f"unbind answered with status {pdu.command_status}")

    def _rx_bind(self, pdu: Bind, now: float) -> None:
        # SMSC role, OPEN: the ESME asks to bind (SMPP 3.4 §4.1). The caller answers.
        self._bind_pending = pdu
        self._set_state(_THEN[pdu.command_id])
        self._events.append(BindRequested(pdu))

    def _rx_unbind(self, pdu: Unbind, now: float) -> None:
        # SMPP 3.4 §4.2: answer at once; then stop sending requests and let the
        # caller finish what it owes. The peer normally closes after our
        # unbind_resp; if it does not, we close after response_timeout_s.
        self._queue_auto(UnbindResp(_S_OK, pdu.sequence_number))
        self._set_state(_THEN[_UNBIND])
        if self._linger_at is None:
            self._linger_at = now + self._response_timeout
        self._events.append(UnbindReceived(pdu))

    def _rx_enquire_link(self, pdu: EnquireLink, now: float) -> None:
        # SMPP 3.4 §4.11: always answered, regardless of our own window (digest §11).
        self._queue_auto(EnquireLinkResp(_S_OK, pdu.sequence_number))

    def _rx_outbind(self, pdu: Outbind, now: float) -> None:
        # ESME role, OPEN: SMPP 3.4 §2.2.1 — the caller replies with bind_receiver.
        self._events.append(OutbindReceived(pdu))

    def _reject_illegal(self, pdu: Request) -> None:
        """A well-formed request the table forbids the peer in this state."""
        cid = pdu.command_id
        seq = pdu.sequence_number
        peer = _OTHER[self._role]
        rule = _RULES.get(cid)
        if rule is not None and peer not in rule.senders:
            why = f"only the {'/'.join(r.value for r in rule.senders)} may send it"
            status = _S_RINVBNDSTS
        else:
            why = f"it is not allowed in {self._state.name} (SMPP 3.4 §2.3)"
            # SMPP 3.4 §5.1.3: ESME_RALYBND for a bind on a bound session.
            status = _S_RALYBND if cid in _BIND_IDS and self._state in _BOUND else _S_RINVBNDSTS
        error = RemoteProtocolError(
            f"{_name(cid)} from the {peer.value} refused: {why}",
            status,
            command_id=cid,
            sequence_number=seq,
        )
        response_class = pdu.response_class
        answered: int | None = None
        if response_class is not None:  # outbind, alert_notification: never answered
            self._queue_auto(response_class(status, seq))
            answered = status
        self._n_rejected += 1
        self._events.append(PduRejected(error, answered, pdu))

    def _on_bad_pdu(self, exc: PduError, cid: int, seq: int) -> None:
        """A PDU whose body did not decode; its bytes were consumed, so the
        stream is still in sync (style guide §5.1)."""
        status = exc.command_status
        answer: Response | None = None
        if cid & _RESPONSE_BIT:
            if cid != _NACK:  # never nack a nack: two peers could loop forever
                answer = GenericNack(status, seq)
        elif cid != _OUTBIND and cid != _ALERT:  # never answered (SMPP 3.4 §2.8, §4.12)
            cls = PDU_CLASSES.get(cid)
            response_class = (
                cls.response_class if cls is not None and issubclass(cls, Request) else None
            )
            if response_class is None or status in _NACKED_STATUSES:
                answer = GenericNack(status, seq)  # SMPP 3.4 §4.3, digest §2
            else:
                answer = response_class(status, seq)  # field error: the PDU's own resp
        if answer is not None:
            self._queue_auto(answer)
        self._n_rejected += 1
        self._events.append(PduRejected(exc, None if answer is None else status, None))

    def _on_framing_error(self, exc: FramingError) -> None:
        # Style guide §5.1: command_length out of bounds leaves no trustworthy
        # boundary; nack with ESME_RINVCMDLEN (SMPP 3.4 §4.3) and close.
        status = exc.command_status
        self._queue_auto(GenericNack(status, exc.sequence_number))
        self._n_rejected += 1
        self._events.append(PduRejected(exc, status, None))
        self._close(CloseReason.FRAMING_ERROR, str(exc))

    # ------------------------------------------------------------------ state and timers

    def _set_state(self, state: SessionState) -> None:
        self._state = state
        self._tx_legal = _LEGAL[self._role][state]
        self._rx_legal = _LEGAL[_OTHER[self._role]][state]
        self._tx_fast_request, self._tx_fast_response, self._rx_fast = _FAST[self._role][state]

    def _close(self, reason: CloseReason, detail: str) -> None:
        if self._closed:
            return
        self._closed = True
        self._set_state(CLOSED)
        unacknowledged = tuple(
            entry[2] for entry in self._outstanding.values() if entry[4] != _K_KEEPALIVE
        )
        self._outstanding.clear()
        self._deadline_fifo.clear()
        self._deadline_heap.clear()
        self._n_exempt = 0
        self._keepalive_out = False
        self._bind_pending = None
        self._linger_at = None
        self._events.append(ConnectionClosed(reason, unacknowledged, detail))

    def _push_heap(self, entry: _Entry) -> None:
        self._heap_counter += 1
        heapq.heappush(self._deadline_heap, (entry[0], self._heap_counter, entry))
        if len(self._deadline_heap) > self._prune_at:
            self._prune_timers()

    def _prune_timers(self) -> None:
        """Drop timer items of requests already answered (lazy deletion), so
        the queues stay O(outstanding) even if nobody calls get_timer()."""
        get = self._outstanding.get
        self._deadline_fifo = deque(e for e in self._deadline_fifo if get(e[1]) is e)
        heap = [h for h in self._deadline_heap if get(h[2][1]) is h[2]]
        heapq.heapify(heap)
        self._deadline_heap = heap
        # Amortised O(1): at least ~len(outstanding) + 64 sends before the next prune.
        self._prune_at = 2 * len(self._outstanding) + 64

    def _peek_request(self) -> tuple[_Entry | None, bool]:
        """The live outstanding entry with the earliest deadline (popping dead
        timer items on the way), and whether it sits in the heap."""
        get = self._outstanding.get
        fifo = self._deadline_fifo
        # Every answered request's entry is popped here once (lazy deletion):
        # per message, so one index and no repeated fifo[0] per step.
        while fifo:
            head = fifo[0]
            if get(head[1]) is head:
                break
            fifo.popleft()
        heap = self._deadline_heap
        while heap and get(heap[0][2][1]) is not heap[0][2]:
            heapq.heappop(heap)
        if heap and (not fifo or heap[0][0] < fifo[0][0]):
            return heap[0][2], True
        return (fifo[0] if fifo else None), False

    def _expire_request(self) -> None:
        entry, in_heap = self._peek_request()
        assert entry is not None
        if in_heap:
            heapq.heappop(self._deadline_heap)
        else:
            self._deadline_fifo.popleft()
        _, seq, request, _, kind = entry
        del self._outstanding[seq]
        self._n_timed_out += 1
        if kind > _K_WINDOWED:
            self._n_exempt -= 1
        if kind == _K_KEEPALIVE:
            self._keepalive_out = False
            self._close(
                CloseReason.ENQUIRE_LINK_TIMEOUT,
                f"enquire_link not answered within {self._response_timeout} s: link dead",
            )
            return
        # SMPP 3.4 §2.8: without a response, assume the request was not processed.
        self._events.append(ResponseTimedOut(request))
        if kind == _K_BIND:
            self._close(CloseReason.BIND_TIMEOUT, f"{_name(request.command_id)} not answered")
        elif kind == _K_UNBIND:
            self._close(CloseReason.UNBIND_TIMEOUT, "unbind not answered")

    def _earliest(self) -> tuple[int, float | None]:
        """(which timer, its deadline) for the earliest running timer."""
        which = _T_REQUEST
        at: float | None = None
        entry = self._peek_request()[0]
        if entry is not None:
            at = entry[0]
        state = self._state
        interval = self._enquire_interval
        if interval is not None and state in _BOUND and not self._keepalive_out:
            t = self._last_rx + interval
            if at is None or t < at:
                which, at = _T_KEEPALIVE, t
        if self._inactivity is not None:
            t = self._last_rx + self._inactivity
            if at is None or t < at:
                which, at = _T_INACTIVITY, t
        if self._session_init is not None and (state is OPEN or state is BINDING):
            t = self._created + self._session_init
            if at is None or t < at:
                which, at = _T_SESSION_INIT, t
        if self._linger_at is not None:
            t = self._linger_at
            if at is None or t < at:
                which, at = _T_LINGER, t
        return which, at


# ============================================================================ tables using Session


def _count_status(counts: dict[int, int], status: int) -> None:
    if status in counts or len(counts) < _STATUS_KEYS_MAX:
        counts[status] = counts.get(status, 0) + 1
    else:
        counts[-1] = counts.get(-1, 0) + 1


def _name(cid: int) -> str:
    try:
        return CommandId(cid).name
    except ValueError:
        return f"command 0x{cid:08X}"


# State after a request is issued, from the table (bind → BINDING, unbind → UNBINDING).
_THEN: Final[dict[int, SessionState]] = {r.command: r.then for r in LEGALITY if r.then is not None}
# The send path looks _THEN up only for non-plain kinds: keep the two in step.
assert all(cid in _KIND_BY_COMMAND for cid in _THEN), "a command with a transition needs a kind"

# Handlers of the requests the session handles itself on receipt.
_RX_SPECIAL: Final[dict[int, Callable[[Session, Any, float], None]]] = {
    **dict.fromkeys(_BIND_IDS, Session._rx_bind),
    _UNBIND: Session._rx_unbind,
    _ENQUIRE_LINK: Session._rx_enquire_link,
    _OUTBIND: Session._rx_outbind,
}
assert set(_RX_SPECIAL) == _RX_SPECIAL_IDS
