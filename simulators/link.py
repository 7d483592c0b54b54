"""The simulators' thin asyncio shell around one :class:`protocol.session.Session`.

One :class:`SmppLink` owns one socket and one session and does the four things
of style guide §1.3: feed bytes in, drain bytes out, arm the session's timer,
and hand events to its owner (a sync callback — simulators answer in place).

Writes are batched: everything the session queued during one loop iteration
goes out in one ``transport.write`` (a write per PDU caps a process near
16–20k msg/s on this kind of machine). TCP_NODELAY is set on every socket:
Nagle plus delayed ACK stalls small windows. Events are taken a read at a
time (``Session.pop_events``). The simulator and load-client processes call
:func:`tune_gc` once at startup (their CLIs and ``bench.sim``).
"""

from __future__ import annotations

import asyncio
import gc
import socket
from collections.abc import Callable
from typing import cast

from protocol.config import SessionConfig
from protocol.events import ConnectionClosed, Event
from protocol.pdu import Request
from protocol.session import Role, Session

# A link's owner: called for every session event, synchronously.
EventHandler = Callable[["SmppLink", Event], None]

# Closing paths: the transport may already be gone (peer reset, loop closing).
_CLOSE_ERRORS = (ConnectionError, OSError, RuntimeError, AttributeError)


# Cyclic-GC settings of the simulator processes (tune_gc): a young-generation
# collection every 50,000 net container allocations instead of 700, a middle
# one every 20 of those; full collections keep CPython's rule (every 10 middle
# ones, and only once the long-lived objects grew by 25%), so the cycles of
# closed connections are still reclaimed in a long run.
GC_THRESHOLDS = (50_000, 20, 10)


def tune_gc() -> None:
    """Make CPython's cyclic garbage collector cheap for a long burst of messages.

    For the processes that run simulators and load clients (their CLIs and
    ``bench.sim``), never for a library caller: freezes what startup allocated
    (modules, classes, profiles: never garbage, never traversed again) and
    collects far less often. Why: with the default thresholds (700, 10, 10)
    the collector ran ~1,400 times per 200k messages in the carrier simulator,
    and each of its ~11 full collections traversed every live message record
    (the store keeps 200,000) — ~15% of the process's CPU, measured, for
    objects that form no cycles. Reference counting still frees every PDU and
    event at once; cycles (asyncio futures, exceptions) are still collected.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def set_nodelay(transport: asyncio.BaseTransport) -> None:
    """Disable Nagle on a TCP transport."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class SmppLink(asyncio.Protocol):
    """asyncio Protocol adapter: socket ⇄ Session, events → ``handler``.

    Args:
        config: the session configuration.
        role: ESME (clients) or SMSC (servers).
        handler: called with every event; may call ``send_request``/``respond``
            on the link; must not block.
        name: for ``repr`` and logs.
    """

    def __init__(
        self,
        config: SessionConfig,
        role: Role,
        handler: EventHandler,
        *,
        name: str = "",
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self.session = Session(config, role=role, now=self._loop.time())
        self._handler = handler
        self.name = name
        self.transport: asyncio.Transport | None = None
        self._flush_handle: asyncio.Handle | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._write_paused = False
        self._dispatching = False
        self._write_resumed = asyncio.Event()
        self._write_resumed.set()
        self.closed = asyncio.Event()
        self.peer: tuple[str, int] | None = None
        # Free-form per-link state for the owner (system_id, counters...).
        self.attrs: dict[str, object] = {}

    def __repr__(self) -> str:
        return f"<SmppLink {self.name} {self.session.state.name}>"

    # ------------------------------------------------------------------ asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # No isinstance check: uvloop's TCPTransport implements the
        # asyncio.Transport interface without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        set_nodelay(transport)
        self.peer = transport.get_extra_info("peername")
        self._after_input()

    def data_received(self, data: bytes) -> None:
        self.session.receive_data(data, self._loop.time())
        self._dispatch()
        self._after_input()

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost follows

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
        self._write_resumed.set()
        self.closed.set()

    def pause_writing(self) -> None:
        self._write_paused = True
        self._write_resumed.clear()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._write_resumed.set()

    # ------------------------------------------------------------------ owner API

    @property
    def write_paused(self) -> bool:
        """True while the transport's buffer is above its high-water mark."""
        return self._write_paused

    async def wait_writable(self) -> None:
        """Wait until the transport accepts writes again (or the link closed)."""
        await self._write_resumed.wait()

    def send_request(self, pdu: Request, timeout_s: float | None = None) -> int:
        """Queue a request on the session; flushed at the end of this loop turn."""
        seq = self.session.send_request(pdu, self._loop.time(), timeout_s)
        self._dispatch()  # e.g. nothing; keeps the contract uniform
        self._after_input()
        return seq

    def respond(self, request: Request, status: int = 0, **fields: object) -> None:
        """Answer a request received from the peer."""
        self.session.respond(request, status, **fields)
        self._after_input()

    def flush_soon(self) -> None:
        """Schedule the flush (and re-arm the timer) after the owner called
        ``self.session`` directly, e.g. a burst of ``send_request`` from a timer:
        one call here per burst instead of the per-PDU bookkeeping of
        :meth:`send_request`. Not needed inside the event handler: the link
        flushes after dispatching events."""
        self._after_input()

    def unbind(self) -> None:
        """Start the unbind handshake."""
        self.session.unbind(self._loop.time())
        self._after_input()

    def abort(self) -> None:
        """Drop the connection at once (fault injection, shutdown)."""
        self.session.close()
        self._dispatch()
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        """Flush what is queued, then close the connection."""
        self._flush()
        self.session.close()
        self._dispatch()
        if self.transport is not None:
            try:
                self.transport.close()
            except _CLOSE_ERRORS:
                pass

    def pause_reading(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def write_raw(self, data: bytes) -> None:
        """Write bytes that bypass the session (fault injection only)."""
        self._flush()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    # ------------------------------------------------------------------ internals

    def _dispatch(self) -> None:
        # Not re-entrant: a handler that calls send_request()/abort()/close()
        # would otherwise pop and handle the *next* events of this batch from
        # inside the current one — out of order, and one stack level per
        # pipelined PDU (a full window of submits answered with receipts in
        # place overflows the recursion limit). The outer loop picks them up.
        if self._dispatching:
            return
        self._dispatching = True
        pop_events = self.session.pop_events
        handler = self._handler
        try:
            # A read's events in one list; events the handler causes come in
            # the next list, so the order is next_event()'s.
            while events := pop_events():
                for event in events:
                    handler(self, event)
                    if type(event) is ConnectionClosed and self.transport is not None:
                        # Flush what the session queued before closing (e.g. a generic_nack).
                        self._flush()
                        try:
                            self.transport.close()
                        except _CLOSE_ERRORS:
                            pass
        finally:
            self._dispatching = False

    def _after_input(self) -> None:
        # Batch: one write per loop iteration, whatever number of PDUs.
        if self._flush_handle is None and self.transport is not None:
            self._flush_handle = self._loop.call_soon(self._flush)
        self._arm_timer()

    def _flush(self) -> None:
        self._flush_handle = None
        data = self.session.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _arm_timer(self) -> None:
        timer_at = self.session.get_timer()
        if self._timer is not None and (
            timer_at is None or self._timer_at is None or timer_at < self._timer_at
        ):
            # Re-arm only when the deadline moved earlier (or vanished): a timer
            # that fires early just calls handle_timer, which re-arms. This keeps
            # the hot path from cancelling a TimerHandle on every read.
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
        self._after_input()
