"""The adapter between one socket and one :class:`protocol.session.Session` (style §1.3).

A :class:`Link` feeds received bytes to its session, hands every event to its
owner (a sync callback: the relay decides in place, it never awaits per PDU),
writes whatever the session queued once per loop iteration (one
``transport.write`` per turn, not per PDU), keeps the session's timer armed and
sets TCP_NODELAY. It makes no protocol decision of its own.

Backpressure: when the owner cannot take more (WAL queue full, too many
unanswered submits) it calls :meth:`Link.pause_reading`; the kernel's socket
buffer then fills and the peer's writes stall — explicit, bounded, per link.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any, cast

from protocol.config import SessionConfig
from protocol.events import ConnectionClosed, Event
from protocol.pdu import Request, Response
from protocol.session import Role, Session

EventHandler = Callable[["Link", Event], None]

# Close paths: the transport may already be gone (reset by peer, loop closing).
_CLOSE_ERRORS = (ConnectionError, OSError, RuntimeError)


class Link(asyncio.Protocol):
    """One SMPP connection: socket ⇄ Session, events → ``handler``.

    Args:
        config: session configuration.
        role: SMSC for upstream connections, ESME for carrier binds.
        handler: sync callback for every event.
        name: for logs ("upstream#12", "skt/1").
    """

    def __init__(self, config: SessionConfig, role: Role, handler: EventHandler, name: str) -> None:
        self._loop = asyncio.get_running_loop()
        self.session = Session(config, role=role, now=self._loop.time())
        self.handler = handler
        self.name = name
        self.transport: asyncio.Transport | None = None
        self.peer: Any = None
        self.closed = asyncio.Event()
        self._flush_handle: asyncio.Handle | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._dispatching = False
        self._reading_paused = False
        # Owner's per-link state (account, carrier bind index, counters ...).
        self.ctx: Any = None

    def __repr__(self) -> str:
        return f"<Link {self.name} {self.session.state.name}>"

    # ---------------------------------------------------------------- asyncio side

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCPTransport does not subclass asyncio.Transport: cast, not assert.
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.peer = transport.get_extra_info("peername")
        self._kick()

    def data_received(self, data: bytes) -> None:
        self.session.receive_data(data, self._loop.time())
        self._dispatch()
        self._kick()

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.session.receive_data(b"", self._loop.time())
        self._dispatch()
        self.transport = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        self.closed.set()

    # ---------------------------------------------------------------- owner API

    @property
    def is_open(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()

    # Calls from outside an event handler (a future's callback, a timer) can
    # produce events (e.g. Bound when answering a bind): dispatch them now.
    # Inside a handler _dispatch() is a no-op and the running loop drains them.

    def send_request(self, pdu: Request, timeout_s: float | None = None) -> int:
        seq = self.session.send_request(pdu, self._loop.time(), timeout_s)
        self._kick()
        return seq

    def respond(self, request: Request, status: int = 0, **fields: object) -> None:
        self.session.respond(request, status, **fields)
        self._kick()
        if not self._dispatching:
            self._dispatch()

    def respond_ok(self, request: Request, message_id: str) -> None:
        """:meth:`respond` with status 0 and a message_id (submit_sm, data_sm), for
        the hot path: the response is built positionally, no keyword dicts."""
        cls = request.response_class
        assert cls is not None
        self.session.send_response(cls(0, request.sequence_number, (), message_id))  # type: ignore[call-arg]
        self._kick()
        if not self._dispatching:
            self._dispatch()

    def send_response(self, response: Response) -> None:
        self.session.send_response(response)
        self._kick()
        if not self._dispatching:
            self._dispatch()

    def unbind(self) -> None:
        self.session.unbind(self._loop.time())
        self._kick()
        if not self._dispatching:
            self._dispatch()

    def close(self) -> None:
        """Flush what is queued, then close."""
        self._flush()
        self.session.close()
        self._dispatch()
        if self.transport is not None:
            try:
                self.transport.close()
            except _CLOSE_ERRORS:
                pass

    def abort(self) -> None:
        self.session.close()
        self._dispatch()
        if self.transport is not None:
            self.transport.abort()

    def pause_reading(self) -> None:
        if not self._reading_paused and self.is_open:
            assert self.transport is not None
            self.transport.pause_reading()
            self._reading_paused = True

    def resume_reading(self) -> None:
        if self._reading_paused and self.is_open:
            assert self.transport is not None
            self.transport.resume_reading()
        self._reading_paused = False

    @property
    def reading_paused(self) -> bool:
        return self._reading_paused

    # ---------------------------------------------------------------- internals

    def _dispatch(self) -> None:
        # Not re-entrant: a handler that sends (which may queue events, e.g. a
        # close) must not recurse into dispatch; the outer loop drains them in order.
        if self._dispatching:
            return
        self._dispatching = True
        try:
            session = self.session
            handler = self.handler
            # One pop per batch of events (not one call per PDU); events the
            # handlers cause meanwhile come in the next round of the loop.
            while events := session.pop_events():
                for event in events:
                    handler(self, event)
                    if type(event) is ConnectionClosed and self.transport is not None:
                        self._flush()
                        try:
                            self.transport.close()
                        except _CLOSE_ERRORS:
                            pass
        finally:
            self._dispatching = False

    def _kick(self) -> None:
        # Hot path: only schedule the end-of-turn flush; the timer is re-armed
        # there, once per loop turn rather than once per PDU sent.
        if self._flush_handle is None:
            if self.transport is not None:
                self._flush_handle = self._loop.call_soon(self._flush)
            else:
                self._arm_timer()

    def _flush(self) -> None:
        self._flush_handle = None
        data = self.session.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)
        self._arm_timer()

    def _arm_timer(self) -> None:
        timer_at = self.session.get_timer()
        if self._timer is not None and (
            timer_at is None or self._timer_at is None or timer_at < self._timer_at
        ):
            # Re-arm only when the deadline moved earlier; an early firing just
            # calls handle_timer and re-arms (saves a cancel per read).
            self._timer.cancel()
            self._timer = None
        if self._timer is None and timer_at is not None and self.transport is not None:
            self._timer = self._loop.call_at(timer_at, self._on_timer)
            self._timer_at = timer_at

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self.session.handle_timer(self._loop.time())
        self._dispatch()
        self._kick()
