"""Upstream load client: an ESME that pushes submit_sm through an SMSC as hard as asked.

The benchmarks and integration tests are built on it: today it drives the
carrier simulators, later relayd itself (which speaks the same SMPP to its
upstream apps). It never imports ``relayd``.

Theory of operation
-------------------
One :class:`UpstreamClient` owns ``binds`` connections (``"trx"``: that many
transceivers; ``"tx+rx"``: that many transmitters *and* that many receivers),
each an :class:`~simulators.link.SmppLink` around one ``Session``. The session
does the window *accounting* (``window_free()``); the waiting lives here
(style guide §3.1): nothing calls ``send_request`` without a free slot.

Work comes from three sources, drained in this order by the **pump**:

1. throttled messages due for a resubmit (``retry_throttled=True``);
2. :meth:`UpstreamClient.submit` calls, one queued item each;
3. the current :meth:`UpstreamClient.run` burst: ``make_pdu(i)`` for the next
   ``i`` — PDUs are built only when a slot is free, so a burst of millions
   costs no memory up front beyond its per-message arrays.

The pump is not a task: it runs once per loop turn when a response freed a
slot (scheduled with ``call_soon`` from the event handler, so a read of 200
responses refills 200 slots in one go and the link writes them in one
``transport.write``), when the rate limiter's timer fires, and when writing
resumes. No task and no future per message: a message is an index into
parallel per-message arrays, and a response finds it through the bind's
``sequence_number → index`` map. :meth:`UpstreamClient.submit` is the only
path that creates a future (one per call) — it is the convenience API, not the
hot path.

Rate limit: a token bucket across all binds, ``rate`` tokens per second with a
burst of 10 ms worth (at least one). An empty bucket arms one timer.

Receipts: every ``deliver_sm``/``data_sm`` on any bind is answered at once. A
receipt (esm_class message type 0x04/0x20) is read TLVs first (digest §9), its
id mapped to the canonical form of the configured :class:`~protocol.msgid.IdPolicy`
and looked up among accepted messages. A receipt can overtake its
``submit_sm_resp`` (it may come on another bind, digest §9): it is *parked* by
canonical id and applied when the response arrives; a parked receipt that finds
no message within ``response_timeout_s`` (or when more than ``max_parked`` are
parked) counts as unknown. Only final states (``FINAL_STATES``) complete a
message; intermediate notifications are counted apart.

Outcomes of a message: accepted (ESME_ROK), rejected (any other status; with
``retry_throttled`` ESME_RTHROTTLED/ESME_RMSGQFUL are resubmitted instead, up
to ``max_retries`` times with exponential backoff), ``RESPONSE_TIMEOUT`` (SMPP
3.4 §2.8: assume not processed; a late response is ignored) or
``CONNECTION_CLOSED`` (listed unacknowledged when its bind closed). The last
two appear in ``rejected_by_status`` under those names.

Reconnecting: :meth:`UpstreamClient.reconnect` opens a fresh set of binds
after the old ones closed (an SMSC that crashed and restarted) and keeps every
record, so receipts owed for messages acknowledged before arrive on the new
binds and complete them. Each set of binds is an *epoch*: a second final
receipt for a message in the same epoch is a duplicate (``duplicate_receipts``,
the SMSC sent it twice); one in a later epoch is ``redelivered_receipts`` (an
SMSC that lost the fact that the first was acknowledged, e.g. across a crash).

Memory is bounded by the number of messages: per-message arrays, one dict of
canonical ids (to tell a duplicate receipt from an unknown one), the parked
receipts (capped) and per-bind in-flight maps (capped by the window).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Final, Literal, TypeVar, cast

from protocol.config import SessionConfig
from protocol.constants import (
    ESM_CLASS_TYPE_MASK,
    TAG_KR_RESULT_CODE,
    CommandStatus,
    DataCoding,
    EsmClass,
    Tag,
    status_name,
)
from protocol.errors import RelayError, TextError
from protocol.events import (
    BindFailed,
    Bound,
    ConnectionClosed,
    Event,
    RequestReceived,
    ResponseReceived,
    ResponseTimedOut,
    UnbindReceived,
    UnexpectedResponse,
)
from protocol.msgid import AS_IS, PRESETS, IdPolicy, MessageIdError, policy_from_name
from protocol.pdu import (
    Bind,
    BindReceiver,
    BindTransceiver,
    BindTransmitter,
    DataSm,
    DeliverSm,
    DeliverSmResp,
    Request,
    Response,
    SubmitSm,
)
from protocol.receipt import FINAL_STATES, RECEIPT_ESM_TYPES, parse_receipt, stat_for_state
from protocol.receipt import state_for_stat as _state_for_stat
from protocol.session import Role
from protocol.text import choose_data_coding, encode_text
from simulators.link import SmppLink, tune_gc

__all__ = [
    "DEFAULT_SOURCE_ADDR",
    "DEFAULT_TEXT",
    "BindError",
    "BindMode",
    "LinkClosedError",
    "MessageRecord",
    "UpstreamClient",
    "UpstreamError",
    "main",
    "make_pdu_factory",
    "read_receipt",
]

BindMode = Literal["trx", "tx+rx"]

# A registered-looking Seoul landline (korea-messaging.md §3: digits only, area code).
DEFAULT_SOURCE_ADDR: Final = "0212345678"
# KS X 1001 Hangul + ASCII: 36 octets in KS C 5601, one SMS (korea-messaging.md §2).
DEFAULT_TEXT: Final = "[relayd] 부하 시험 메시지입니다. 수신 거부 080-000-0000"

# Pseudo-statuses for outcomes without a command_status (negative: never on the wire).
STATUS_RESPONSE_TIMEOUT: Final = -1
STATUS_CONNECTION_CLOSED: Final = -2
_PSEUDO_STATUS_NAMES: Final = {
    STATUS_RESPONSE_TIMEOUT: "RESPONSE_TIMEOUT",
    STATUS_CONNECTION_CLOSED: "CONNECTION_CLOSED",
}

_S_OK: Final = int(CommandStatus.ESME_ROK)
# SMPP 3.4 §5.1.3 / digest §11: per-message "not accepted, back off and resubmit".
_THROTTLED: Final = frozenset(
    {int(CommandStatus.ESME_RTHROTTLED), int(CommandStatus.ESME_RMSGQFUL)}
)
_SUBMIT_SM: Final = int(SubmitSm.command_id)
_RECEIPT_TYPES: Final = frozenset(int(t) for t in RECEIPT_ESM_TYPES)
_TAG_RECEIPTED_ID: Final = int(Tag.receipted_message_id)
_TAG_MESSAGE_STATE: Final = int(Tag.message_state)
_UDHI: Final = int(EsmClass.UDHI)
_UCS2: Final = int(DataCoding.UCS2)
_FINAL: Final = frozenset(int(s) for s in FINAL_STATES)

# The canonical Appendix B text exactly as protocol.receipt.build_receipt_text
# writes it. Tokens exclude whitespace, control characters, ',' and ';' — the
# only characters after which protocol.receipt's tolerant scanner starts a key —
# so on a match both readers see the same fields. Anything else goes to
# parse_receipt (~18 µs per receipt here; this path is ~1 µs).
_CANONICAL_RECEIPT_RE: Final = re.compile(
    rb"id:([^\x00-\x20,;]+) sub:[0-9]+ dlvrd:[0-9]+ submit date:[0-9]+ done date:[0-9]+"
    rb" stat:([^\x00-\x20,;]+) err:([^\x00-\x20,;]+) text:"
)
_KR_ERR_RE: Final = re.compile(rb"[1-9][0-9]{3}")

# The records' clock (see MessageRecord).
_clock: Final = time.monotonic

# Parked receipts (arrived before their submit_sm_resp): at most this many.
DEFAULT_MAX_PARKED: Final = 100_000
# Token bucket burst: this many seconds' worth of tokens (at least one token).
_BURST_S: Final = 0.010
# Throttled resubmits: first backoff, doubling per attempt, capped.
_RETRY_BACKOFF_MAX_S: Final = 1.0


class UpstreamError(RelayError):
    """Base class for the load client's errors."""


class BindError(UpstreamError):
    """The SMSC refused a bind.

    Attributes:
        status: the bind_*_resp command_status (or the generic_nack's).
        status_name: its spec name (``ESME_RINVPASWD``...).
    """

    def __init__(self, msg: str, *, status: int) -> None:
        super().__init__(msg)
        self.status = status
        self.status_name = status_name(status)


class LinkClosedError(UpstreamError):
    """A connection closed under a request that needed it (a bind in progress,
    a :meth:`UpstreamClient.submit` waiting for its response, a burst with no
    transmitter left)."""


# ============================================================================ per-message view


class MessageRecord:
    """A live, read-only view of one message's record (no copy is made).

    Times are ``time.monotonic()`` values — the clock behind asyncio's
    ``loop.time()``; uvloop's ``loop.time()`` reads the same clock but cached
    per loop turn at 1 ms resolution, too coarse for sub-millisecond
    latencies. A field is None until it happens.
    ``submitted_at`` is the send time of the *last* attempt (the one whose
    response and receipt the other fields describe).
    """

    __slots__ = ("_c", "index")

    def __init__(self, client: UpstreamClient, index: int) -> None:
        self._c = client
        self.index = index

    def __repr__(self) -> str:
        return (
            f"<MessageRecord #{self.index} status={self.status_name} id={self.message_id!r} "
            f"receipt={self.receipt_stat}>"
        )

    @property
    def submitted_at(self) -> float | None:
        return self._c._sub_at[self.index]

    @property
    def resp_at(self) -> float | None:
        return self._c._resp_at[self.index]

    @property
    def status(self) -> int | None:
        """The submit_sm_resp command_status; None without a response (pending,
        timed out, connection closed — see :attr:`status_name`)."""
        s = self._c._status[self.index]
        return None if s is None or s < 0 else s

    @property
    def status_name(self) -> str | None:
        s = self._c._status[self.index]
        return None if s is None else _status_label(s)

    @property
    def accepted(self) -> bool:
        return self._c._status[self.index] == _S_OK

    @property
    def message_id(self) -> str | None:
        """The id from submit_sm_resp, as received."""
        return self._c._msg_id[self.index]

    @property
    def attempts(self) -> int:
        return self._c._attempts[self.index]

    @property
    def receipt_at(self) -> float | None:
        """When the final receipt arrived."""
        return self._c._rcpt_at[self.index]

    @property
    def receipt_stat(self) -> str | None:
        """The Appendix B stat of the final receipt's message_state (``DELIVRD``...)."""
        return self._c._rcpt_stat[self.index]

    @property
    def receipt_code(self) -> int | None:
        """The Korean 4-digit result code of the final receipt, when it had one."""
        return self._c._rcpt_code[self.index]


def _status_label(status: int) -> str:
    if status < 0:
        return _PSEUDO_STATUS_NAMES[status]
    return status_name(status)


# ============================================================================ one bind


class _Bind:
    """One connection of the client: its link, role and in-flight submits."""

    __slots__ = (
        "bound",
        "can_submit",
        "client",
        "close_reason",
        "command",
        "inflight",
        "link",
        "lost",
        "name",
    )

    def __init__(self, client: UpstreamClient, name: str, command: type[Bind]) -> None:
        self.client = client
        self.name = name
        self.command = command
        self.can_submit = command is not BindReceiver
        self.link: SmppLink | None = None
        self.inflight: dict[int, int] = {}  # sequence_number -> message index
        self.bound: asyncio.Future[None] | None = None
        self.close_reason: str | None = None
        self.lost = False  # closed while the client was not closing

    def on_event(self, link: SmppLink, event: Event) -> None:
        # Most frequent first: submit_sm_resp, then deliver_sm. Events are
        # unpacked as the tuples they are: typing.cast() is a real call per event.
        t = type(event)
        client = self.client
        if t is ResponseReceived:
            request, response = event  # type: ignore[misc]
            if request.command_id == _SUBMIT_SM:
                client._on_submit_resp(self, request, response)
        elif t is RequestReceived:
            (request,) = event  # type: ignore[misc]
            # Answer first and unconditionally (digest §11: answer every request).
            # The session directly: the link flushes after dispatching events.
            if type(request) is DeliverSm:
                # The hot case, built in place: what session.respond() would
                # send, without its generic checks (~0.35 µs per receipt).
                link.session.send_response(DeliverSmResp(_S_OK, request.sequence_number))
                client._on_deliver(request)
                return
            if request.response_class is not None:
                link.session.respond(request, _S_OK)
            if type(request) is DataSm:
                client._on_deliver(request)
        elif t is ResponseTimedOut:
            request = cast(ResponseTimedOut, event).request
            if request.command_id == _SUBMIT_SM:
                client._on_submit_lost(self, request, STATUS_RESPONSE_TIMEOUT)
        elif t is ConnectionClosed:
            client._on_closed(self, cast(ConnectionClosed, event))
        elif t is Bound:
            if self.bound is not None and not self.bound.done():
                self.bound.set_result(None)
        elif t is BindFailed:
            status = cast(BindFailed, event).status
            if self.bound is not None and not self.bound.done():
                peer = f"{client.host}:{client.port}"
                self.bound.set_exception(
                    BindError(
                        f"{self.command.__name__} as {client.system_id!r} refused by {peer}: "
                        f"{status_name(status)} (0x{status:08X})",
                        status=status,
                    )
                )
        elif t is UnbindReceived:
            # The SMSC unbound us; the session answered. We owe nothing (deliver_sm
            # is answered in place), so leave at once (SMPP 3.4 §4.2).
            if not client._closing:
                client._unexpected_close(self, "the SMSC unbound")
            link.close()
        elif t is UnexpectedResponse:
            client._unexpected_responses += 1


# ============================================================================ the client


class UpstreamClient:
    """An asyncio SMPP load client with N binds, a window per bind and an optional
    rate limit.

    Args:
        host: the SMSC's address.
        port: its port.
        system_id: bind system_id.
        password: bind password.
        binds: number of transceivers (``"trx"``), or of transmitters *and* of
            receivers (``"tx+rx"``).
        bind_mode: ``"trx"`` or ``"tx+rx"``.
        window: outstanding submit_sm per transmitting bind.
        rate: messages per second across all binds (token bucket); None = as
            fast as the windows allow.
        registered_delivery: the default PDU factory's ``registered_delivery``
            (1 = final receipt, SMPP 3.4 §5.2.17). Whether a message expects a
            receipt is read from each PDU (bits 1..0 == 01).
        id_policy: how submit_sm_resp ids and receipt ids are compared (digest §9).
        response_timeout_s: SMPP 3.4 §7.2 response_timer, per request.
        enquire_link_interval_s: keepalive after this much silence; None = never.
        system_type: bind system_type.
        retry_throttled: resubmit messages answered ESME_RTHROTTLED or
            ESME_RMSGQFUL (after a backoff) instead of counting them rejected.
        retry_backoff_s: first resubmit delay; doubles per attempt up to 1 s.
        max_retries: resubmits per message before it counts as rejected.
        max_parked: receipts that may wait for their submit_sm_resp at once.

    Raises:
        ValueError: an argument out of range.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        system_id: str,
        password: str,
        binds: int = 1,
        bind_mode: BindMode = "trx",
        window: int = 64,
        rate: float | None = None,
        registered_delivery: int = 1,
        id_policy: IdPolicy = AS_IS,
        response_timeout_s: float = 30.0,
        enquire_link_interval_s: float | None = 30.0,
        system_type: str = "",
        retry_throttled: bool = False,
        retry_backoff_s: float = 0.05,
        max_retries: int = 50,
        max_parked: int = DEFAULT_MAX_PARKED,
    ) -> None:
        if binds < 1:
            raise ValueError(f"binds must be >= 1, got {binds}")
        if bind_mode not in ("trx", "tx+rx"):
            raise ValueError(f"bind_mode must be 'trx' or 'tx+rx', got {bind_mode!r}")
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        if rate is not None and not rate > 0:
            raise ValueError(f"rate must be > 0 or None, got {rate}")
        if not 0 <= registered_delivery <= 0xFF:
            raise ValueError(f"registered_delivery must fit one octet, got {registered_delivery}")
        if retry_backoff_s < 0 or max_retries < 0 or max_parked < 0:
            raise ValueError("retry_backoff_s, max_retries and max_parked must be >= 0")
        self.host = host
        self.port = port
        self.system_id = system_id
        self.password = password
        self.system_type = system_type
        self.binds = binds
        self.bind_mode: BindMode = bind_mode
        self.window = window
        self.rate = rate
        self.registered_delivery = registered_delivery
        self.id_policy = id_policy
        self.response_timeout_s = response_timeout_s
        self.retry_throttled = retry_throttled
        self.retry_backoff_s = retry_backoff_s
        self.max_retries = max_retries
        self.max_parked = max_parked
        self._config = SessionConfig(
            window_size=window,
            response_timeout_s=response_timeout_s,
            enquire_link_interval_s=enquire_link_interval_s,
        )
        self._loop: asyncio.AbstractEventLoop | None = None

        self._binds: list[_Bind] = []
        self._tx: list[_Bind] = []  # bound binds that may submit
        self._connected = False
        self._closing = False

        # Per-message arrays, indexed by message index.
        self._sub_at: list[float | None] = []
        self._resp_at: list[float | None] = []
        self._status: list[int | None] = []
        self._msg_id: list[str | None] = []
        self._attempts: list[int] = []
        self._want: bytearray = bytearray()  # 1 = a final receipt is expected
        self._rcpt_at: list[float | None] = []
        self._rcpt_stat: list[str | None] = []
        self._rcpt_code: list[int | None] = []

        # Work sources (module doc): retries, submit() items, the run() burst.
        self._retry: deque[tuple[float, int, SubmitSm]] = deque()
        self._queue: deque[tuple[int, SubmitSm]] = deque()
        self._waiters: dict[int, asyncio.Future[MessageRecord]] = {}
        self._src_make: Callable[[int], SubmitSm] | None = None
        self._src_next = 0
        self._src_end = 0
        self._src_base = 0
        self._run_left = 0
        self._run_lo = self._run_hi = 0  # message indexes of the active run()
        self._run_done: asyncio.Future[None] | None = None

        # The pump and its timers.
        self._pump_scheduled = False
        self._rate_timer: asyncio.TimerHandle | None = None
        self._retry_timer: asyncio.TimerHandle | None = None
        self._retry_timer_at = 0.0
        self._tokens = 0.0
        self._bucket_at = 0.0
        self._bucket_cap = 1.0 if rate is None else max(1.0, rate * _BURST_S)
        self._write_waits: set[asyncio.Task[None]] = set()

        # Receipts.
        self._canon: dict[str, int] = {}  # canonical id -> message index (accepted)
        self._parked: dict[str, tuple[float, int | None, str, int | None]] = {}
        self._idle_waiters: list[asyncio.Future[None]] = []

        # Counters.
        self._unresolved = 0  # messages queued, in flight or waiting for a resubmit
        self._inflight = 0
        self._submitted = 0
        self._submit_attempts = 0
        self._accepted = 0
        self._retries = 0
        self._rejected: dict[int, int] = {}
        self._receipts = 0
        self._receipts_pending = 0  # accepted, receipt expected, no final receipt yet
        self._rcpt_by_stat: dict[str, int] = {}
        # By result code (None: the receipt had none); str keys only in summary().
        self._rcpt_by_code: dict[int | None, int] = {}
        self._intermediate = 0
        self._duplicates = 0
        self._redelivered = 0
        self._unknown = 0
        # Bind epochs (module doc): the epoch of a first final receipt, recorded
        # only from epoch 1 on (absent = epoch 0), so a client that never
        # reconnects pays nothing for it.
        self._epoch = 0
        self._rcpt_epoch: dict[int, int] = {}
        self._mo = 0
        self._bad_resp_ids = 0
        self._duplicate_resp_ids = 0
        self._unexpected_responses = 0
        self._binds_lost = 0
        self._first_submit_at: float | None = None
        self._last_resp_at: float | None = None
        self._last_receipt_at: float | None = None

    # ------------------------------------------------------------------ lifecycle

    async def connect(self) -> None:
        """Open and bind every connection.

        Raises:
            BindError: the SMSC refused a bind; the message names the status.
                Every connection opened so far is closed first.
            LinkClosedError: a connection closed before its bind was answered.
            OSError: a connection could not be opened.
            TimeoutError: no TCP connection within ``response_timeout_s``.
            RuntimeError: already connected.
        """
        if self._connected or self._binds:
            raise RuntimeError("connect() may be called once")
        self._loop = loop = asyncio.get_running_loop()
        self._bucket_at = loop.time()
        self._tokens = self._bucket_cap
        plan: list[tuple[str, type[Bind]]]
        if self.bind_mode == "trx":
            plan = [(f"trx{i}", BindTransceiver) for i in range(self.binds)]
        else:
            plan = [(f"tx{i}", BindTransmitter) for i in range(self.binds)]
            plan += [(f"rx{i}", BindReceiver) for i in range(self.binds)]
        self._binds = [_Bind(self, name, command) for name, command in plan]
        results = await asyncio.gather(
            *(self._open(b) for b in self._binds), return_exceptions=True
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            for b in self._binds:
                if b.link is not None:
                    b.link.abort()
            await asyncio.gather(*(b.link.closed.wait() for b in self._binds if b.link is not None))
            self._binds = []
            # A refusal explains more than the aborts it caused elsewhere.
            for e in errors:
                if isinstance(e, BindError):
                    raise e
            raise errors[0]
        self._tx = [b for b in self._binds if b.can_submit]
        self._connected = True

    async def _open(self, b: _Bind) -> None:
        loop = asyncio.get_running_loop()
        config = (
            self._config
            if b.can_submit
            else SessionConfig(
                window_size=1,  # a receiver sends no windowed requests
                response_timeout_s=self._config.response_timeout_s,
                enquire_link_interval_s=self._config.enquire_link_interval_s,
            )
        )
        async with asyncio.timeout(self.response_timeout_s):
            _, link = await loop.create_connection(
                lambda: SmppLink(config, Role.ESME, b.on_event, name=f"upstream-{b.name}"),
                self.host,
                self.port,
            )
        b.link = link
        b.bound = loop.create_future()
        link.send_request(
            b.command(
                system_id=self.system_id, password=self.password, system_type=self.system_type
            )
        )
        # The session's response timer bounds this wait (BIND_TIMEOUT closes).
        await b.bound

    async def close(self) -> None:
        """Stop submitting, wait (up to ``response_timeout_s``) for the responses
        still owed, unbind every bind and wait for each connection to close.
        Idempotent. Messages never sent stay unresolved; :meth:`submit` callers
        still waiting get :class:`LinkClosedError`.
        """
        self._closing = True
        self._stop_source()
        for fut in self._waiters.values():
            if not fut.done():
                fut.set_exception(LinkClosedError("the client is closing"))
        self._waiters.clear()
        for timer in (self._rate_timer, self._retry_timer):
            if timer is not None:
                timer.cancel()
        self._rate_timer = self._retry_timer = None
        if self._inflight:
            await self._wait_until(lambda: self._inflight == 0, self.response_timeout_s)
        links = [b.link for b in self._binds if b.link is not None]
        for link in links:
            if link.session.bound:
                link.unbind()
        for link in links:
            try:
                # The unbind is answered or times out within response_timeout_s.
                async with asyncio.timeout(self.response_timeout_s + 1.0):
                    await link.closed.wait()
            except TimeoutError:
                link.abort()
                await link.closed.wait()
        for task in list(self._write_waits):
            task.cancel()
        self._tx = []
        self._connected = False

    async def reconnect(self) -> None:
        """Open and bind a fresh set of connections once the previous ones are
        gone (e.g. the SMSC was restarted), keeping every message record.

        Connections still open are aborted first; their in-flight submits end
        ``CONNECTION_CLOSED`` (not acknowledged). Receipts parked for a
        submit_sm_resp that can no longer arrive count as unknown. Starts a new
        epoch (module doc). Messages never acknowledged are not resubmitted:
        that is the caller's choice (a new :meth:`run`).

        Raises:
            BindError, LinkClosedError, OSError, TimeoutError: as :meth:`connect`;
                the client is then not connected and :meth:`reconnect` may be
                called again.
            RuntimeError: the client is closing or a run() is active.
        """
        if self._closing:
            raise RuntimeError("the client is closing")
        if self._run_done is not None:
            raise RuntimeError("reconnect() during a run()")
        for b in self._binds:
            if b.link is not None and not b.link.closed.is_set():
                b.link.abort()
        for b in self._binds:
            if b.link is not None:
                await b.link.closed.wait()
        self._binds = []
        self._tx = []
        self._connected = False
        self._unknown += len(self._parked)
        self._parked.clear()
        self._epoch += 1
        await self.connect()

    # ------------------------------------------------------------------ submitting

    async def submit(self, pdu: SubmitSm) -> MessageRecord:
        """Submit one message and wait for its submit_sm_resp.

        Waits for a free window slot on the least-loaded transmitting bind (and
        for a token, with a rate limit). A throttled answer is resubmitted when
        ``retry_throttled`` is set.

        Returns:
            The message's record; check ``record.status`` (any command_status
            is data, not an exception — style guide §5.3). A response timeout
            returns a record whose ``status_name`` is ``RESPONSE_TIMEOUT``.

        Raises:
            LinkClosedError: the bind closed before the response, or the client
                is closing or not connected.
        """
        if not self._connected or self._closing:
            raise LinkClosedError("the client is not connected")
        idx = self._alloc(1)
        fut: asyncio.Future[MessageRecord] = self._loop_().create_future()
        self._waiters[idx] = fut
        self._queue.append((idx, pdu))
        self._unresolved += 1
        self._pump_all()
        return await fut

    async def run(
        self,
        count: int,
        make_pdu: Callable[[int], SubmitSm] | None = None,
        *,
        deadline_s: float | None = None,
    ) -> None:
        """Submit ``count`` messages as fast as the windows (and ``rate``) allow,
        and return when every one has its outcome (response, timeout or closed
        connection) — not its receipt: see :meth:`wait_receipts`.

        Args:
            count: number of messages.
            make_pdu: builds message ``i`` (0 ≤ i < count) when a slot is free;
                default: :func:`make_pdu_factory` with ``registered_delivery``.
                Each call must return a new PDU (the session numbers it).
            deadline_s: stop submitting after this many seconds and raise.

        Raises:
            TimeoutError: ``deadline_s`` passed; messages not yet sent are
                never sent, the rest still resolve in the background.
            LinkClosedError: every transmitting bind closed with work left.
            RuntimeError: not connected, or another run() is active.
            Exception: whatever ``make_pdu`` or encoding a PDU raised; the burst
                stops there.
        """
        if not self._connected or self._closing:
            raise RuntimeError("run() needs a connected client")
        if self._run_done is not None:
            raise RuntimeError("another run() is active")
        if count <= 0:
            return
        if not self._tx:
            raise LinkClosedError("no transmitting bind is left")
        loop = self._loop_()
        make = make_pdu or make_pdu_factory(registered_delivery=self.registered_delivery)
        self._src_base = self._alloc(count)
        self._src_make = make
        self._src_next = 0
        self._src_end = count
        self._run_lo, self._run_hi = self._src_base, self._src_base + count
        self._run_left = count
        self._unresolved += count
        done: asyncio.Future[None] = loop.create_future()
        self._run_done = done
        self._pump_all()
        try:
            async with asyncio.timeout(deadline_s):
                await done
        except TimeoutError:
            self._stop_source()
            raise
        finally:
            self._run_done = None
            self._run_lo = self._run_hi = 0

    async def wait_receipts(self, timeout_s: float) -> bool:
        """Wait until no message is in flight and every accepted message that
        asked for a receipt has a final one.

        Returns:
            True if that happened within ``timeout_s``, else False (see
            ``summary()["missing_receipts"]``).
        """
        return await self._wait_until(self._receipts_done, timeout_s)

    def _receipts_done(self) -> bool:
        return self._receipts_pending == 0 and self._inflight == 0 and not self._pending_work()

    async def _wait_until(self, predicate: Callable[[], bool], timeout_s: float) -> bool:
        loop = self._loop_()
        deadline = loop.time() + timeout_s
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            fut: asyncio.Future[None] = loop.create_future()
            self._idle_waiters.append(fut)
            try:
                # Woken when a counter reaches zero; re-checked at least every
                # 250 ms so no wake-up path can be missed for long.
                async with asyncio.timeout(min(remaining, 0.25)):
                    await fut
            except TimeoutError:
                pass
            finally:
                if fut in self._idle_waiters:
                    self._idle_waiters.remove(fut)
        return True

    def _wake(self) -> None:
        waiters = self._idle_waiters
        self._idle_waiters = []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    # ------------------------------------------------------------------ records and summary

    def record(self, index: int) -> MessageRecord:
        """The record of message ``index`` (run() messages are numbered from the
        first index of that run, in allocation order)."""
        if not 0 <= index < len(self._sub_at):
            raise IndexError(index)
        return MessageRecord(self, index)

    @property
    def message_count(self) -> int:
        """Messages allocated so far (submit() calls plus run() counts)."""
        return len(self._sub_at)

    def counters(self) -> dict[str, int]:
        """A cheap snapshot of the running counts (for a progress display):
        submitted, accepted, rejected, receipts, in_flight, missing_receipts
        (accepted, receipt expected, none yet). No sorting, unlike :meth:`summary`."""
        return {
            "submitted": self._submitted,
            "accepted": self._accepted,
            "rejected": sum(self._rejected.values()),
            "receipts": self._receipts,
            "in_flight": self._inflight,
            "missing_receipts": self._receipts_pending,
        }

    def message_times(
        self,
    ) -> tuple[list[float | None], list[float | None], list[float | None], list[bool]]:
        """Copies of the per-message times, in message-index order:
        (submitted_at, resp_at, receipt_at, accepted), on the
        :class:`MessageRecord` clock (``time.monotonic()``); None where it did
        not happen. For per-second timelines, computed after a run."""
        return (
            list(self._sub_at),
            list(self._resp_at),
            list(self._rcpt_at),
            [s == _S_OK for s in self._status],
        )

    def summary(self) -> dict[str, Any]:
        """A JSON-ready snapshot: counts, rates and latency percentiles.

        Keys: submitted, accepted, rejected, rejected_by_status {name: n},
        receipts (final receipts matched), receipts_by_stat, receipts_by_code
        (``"none"`` when a receipt had no result code), missing_receipts,
        duplicate_receipts (same epoch), redelivered_receipts (a later epoch:
        see :meth:`reconnect`), epochs, unknown_receipts (no matching message; includes
        receipts still parked), intermediate_receipts, mo_received,
        elapsed_s (first submit → last response or receipt),
        submit_rate_per_s / accept_rate_per_s (over submit_span_s: first submit
        → last response), receipt_rate_per_s (over receipt_span_s: first submit
        → last receipt),
        submit_resp_ms {p50, p90, p99, max}, receipt_ms {p50, p99, max}
        (submit → final receipt), and the client's shape and extra counters.
        """
        first = self._first_submit_at
        last_resp = self._last_resp_at
        last_rcpt = self._last_receipt_at
        ends = [t for t in (last_resp, last_rcpt) if t is not None]
        elapsed = (max(ends) - first) if first is not None and ends else 0.0
        resp_span = (last_resp - first) if first is not None and last_resp is not None else 0.0
        rcpt_span = (last_rcpt - first) if first is not None and last_rcpt is not None else 0.0
        sub_at = self._sub_at
        resp_lat: list[float] = []
        rcpt_lat: list[float] = []
        for s, r, c in zip(sub_at, self._resp_at, self._rcpt_at, strict=True):
            if s is None:
                continue
            if r is not None:
                resp_lat.append((r - s) * 1000.0)
            if c is not None:
                rcpt_lat.append((c - s) * 1000.0)
        resp_lat.sort()
        rcpt_lat.sort()
        rejected_by = {
            _status_label(s): n for s, n in sorted(self._rejected.items(), key=lambda kv: kv[0])
        }
        return {
            "submitted": self._submitted,
            "accepted": self._accepted,
            "rejected": sum(self._rejected.values()),
            "rejected_by_status": rejected_by,
            "receipts": self._receipts,
            "receipts_by_stat": dict(sorted(self._rcpt_by_stat.items())),
            "receipts_by_code": dict(
                sorted(
                    ("none" if code is None else str(code), n)
                    for code, n in self._rcpt_by_code.items()
                )
            ),
            "missing_receipts": self._receipts_pending,
            "duplicate_receipts": self._duplicates,
            "redelivered_receipts": self._redelivered,
            "epochs": self._epoch + 1,
            "unknown_receipts": self._unknown + len(self._parked),
            "intermediate_receipts": self._intermediate,
            "mo_received": self._mo,
            "elapsed_s": round(elapsed, 6),
            "submit_span_s": round(resp_span, 6),
            "receipt_span_s": round(rcpt_span, 6),
            "submit_rate_per_s": _rate(self._submitted, resp_span),
            "accept_rate_per_s": _rate(self._accepted, resp_span),
            "receipt_rate_per_s": _rate(self._receipts, rcpt_span),
            "submit_resp_ms": _percentiles(resp_lat, (50, 90, 99)),
            "receipt_ms": _percentiles(rcpt_lat, (50, 99)),
            "in_flight": self._inflight,
            "unresolved": self._unresolved,
            "submit_attempts": self._submit_attempts,
            "retries": self._retries,
            "unexpected_responses": self._unexpected_responses,
            "bad_resp_ids": self._bad_resp_ids,
            "duplicate_resp_ids": self._duplicate_resp_ids,
            "binds_lost": self._binds_lost,
            "binds": self.binds,
            "bind_mode": self.bind_mode,
            "window": self.window,
            "rate": self.rate,
        }

    # ------------------------------------------------------------------ internals: work

    def _loop_(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("the client is not connected")
        return self._loop

    def _alloc(self, n: int) -> int:
        """Append ``n`` empty records; return the first new index."""
        base = len(self._sub_at)
        nones: list[Any] = [None] * n
        self._sub_at.extend(nones)
        self._resp_at.extend(nones)
        self._status.extend(nones)
        self._msg_id.extend(nones)
        self._rcpt_at.extend(nones)
        self._rcpt_stat.extend(nones)
        self._rcpt_code.extend(nones)
        self._attempts.extend([0] * n)
        self._want.extend(bytes(n))
        return base

    def _stop_source(self) -> None:
        # Messages not yet made are never sent: they leave the unresolved count.
        left = self._src_end - self._src_next
        if left > 0:
            self._unresolved -= left
            self._run_left -= left
        self._src_end = self._src_next
        while self._queue:
            idx, _ = self._queue.popleft()
            self._unresolved -= 1
            fut = self._waiters.pop(idx, None)
            if fut is not None and not fut.done():
                fut.set_exception(LinkClosedError("not sent: the client stopped"))
        while self._retry:
            _, idx, _ = self._retry.popleft()
            self._resolve_rejected(idx, self._status[idx] or 0)  # its throttled answer stands
        if self._run_left <= 0:
            self._finish_run()

    def _pending_work(self) -> bool:
        return bool(self._retry or self._queue or self._src_next < self._src_end)

    def _schedule_pump(self) -> None:
        if not self._pump_scheduled:
            self._pump_scheduled = True
            self._loop_().call_soon(self._pump_all)

    def _pump_all(self) -> None:
        """Fill every transmitting bind's free slots, least loaded first."""
        self._pump_scheduled = False
        if self._closing or not self._pending_work():
            return
        tx = self._tx
        if len(tx) > 1:
            tx = sorted(tx, key=_free_slots, reverse=True)
        for b in tx:
            if not self._fill(b):
                break

    def _fill(self, b: _Bind) -> bool:
        """Send as many messages on ``b`` as its window, the writer and the rate
        allow. Returns False when no more work may be sent now on *any* bind
        (out of work or tokens)."""
        link = b.link
        assert link is not None
        session = link.session
        free = session.window_free()
        if free <= 0:
            return True
        if link.write_paused:
            self._wait_writable(link)
            return True
        loop = self._loop_()
        now = loop.time()  # the session's clock (deadlines, the link's timers)
        t = _clock()  # the records' clock (MessageRecord)
        if self.rate is not None:
            free = self._take_tokens(free, now)
            if free <= 0:
                return False
        inflight = b.inflight
        sub_at = self._sub_at
        attempts = self._attempts
        want = self._want
        # The session directly, then one link.flush_soon() for the whole batch:
        # link.send_request() re-arms the timer per PDU (~1 µs each).
        send = session.send_request
        sent = 0
        # Rare sources first: due resubmits, then submit() calls.
        while sent < free and (self._retry or self._queue):
            retry = bool(self._retry) and self._retry[0][0] <= now
            if retry:
                _, idx, pdu = self._retry.popleft()
            elif self._queue:
                idx, pdu = self._queue.popleft()
            else:
                self._arm_retry_timer()
                break
            try:
                seq = send(pdu, now)
            except Exception as exc:
                self._fail_message(idx, exc)
                continue
            if retry:
                self._retries += 1
            else:
                self._submitted += 1
                want[idx] = (pdu.registered_delivery & 3) == 1
            inflight[seq] = idx
            sub_at[idx] = t
            attempts[idx] += 1
            sent += 1
        # The burst: a tight loop, locals only.
        start = nxt = self._src_next
        end = min(self._src_end, nxt + (free - sent))
        error: Exception | None = None
        if nxt < end:
            make = self._src_make
            assert make is not None
            base = self._src_base
            try:
                while nxt < end:
                    pdu = make(nxt)
                    seq = send(pdu, now)
                    idx = base + nxt
                    nxt += 1
                    inflight[seq] = idx
                    sub_at[idx] = t
                    attempts[idx] = 1
                    if pdu.registered_delivery & 3 == 1:
                        want[idx] = 1
            except Exception as exc:
                error = exc  # message `nxt` was not sent; the burst stops there
            self._src_next = nxt
            self._submitted += nxt - start
            sent += nxt - start
        if sent:
            link.flush_soon()
            self._inflight += sent
            self._submit_attempts += sent
            if self._first_submit_at is None:
                self._first_submit_at = t
        if self.rate is not None and sent < free:
            self._tokens += free - sent  # give back what was not used
        if error is not None:
            self._abort_run(error)
            return False
        return self._pending_work()

    def _take_tokens(self, want: int, now: float) -> int:
        rate = self.rate
        assert rate is not None
        tokens = min(self._bucket_cap, self._tokens + (now - self._bucket_at) * rate)
        self._bucket_at = now
        n = min(want, int(tokens))
        self._tokens = tokens - n
        if n < want and self._rate_timer is None:
            delay = (1.0 - self._tokens) / rate if self._tokens < 1.0 else 0.0
            self._rate_timer = self._loop_().call_at(now + max(delay, 0.0005), self._on_rate_timer)
        return n

    def _on_rate_timer(self) -> None:
        self._rate_timer = None
        self._pump_all()

    def _arm_retry_timer(self) -> None:
        if not self._retry:
            return
        due = self._retry[0][0]
        if self._retry_timer is not None:
            if self._retry_timer_at <= due:
                return
            self._retry_timer.cancel()
        self._retry_timer_at = due
        self._retry_timer = self._loop_().call_at(due, self._on_retry_timer)

    def _on_retry_timer(self) -> None:
        self._retry_timer = None
        self._pump_all()
        self._arm_retry_timer()

    def _wait_writable(self, link: SmppLink) -> None:
        # Rare (the transport's buffer passed its high-water mark): one task per
        # paused link, not per message; the pump resumes when writing does.
        if link.attrs.get("upstream_wait"):
            return
        link.attrs["upstream_wait"] = True

        async def resume() -> None:
            try:
                await link.wait_writable()
            finally:
                link.attrs["upstream_wait"] = False
            self._schedule_pump()

        task = self._loop_().create_task(resume())
        self._write_waits.add(task)
        task.add_done_callback(self._write_waits.discard)

    def _abort_run(self, exc: BaseException) -> None:
        done = self._run_done
        if done is not None and not done.done():
            done.set_exception(exc)  # before _stop_source() could finish the run
        self._stop_source()

    def _finish_run(self) -> None:
        done = self._run_done
        if done is not None and not done.done():
            done.set_result(None)

    def _fail_message(self, idx: int, exc: BaseException) -> None:
        # A submit() PDU that could not be sent (e.g. does not encode).
        self._unresolved -= 1
        fut = self._waiters.pop(idx, None)
        if fut is not None and not fut.done():
            fut.set_exception(exc)

    # ------------------------------------------------------------------ internals: responses

    def _on_submit_resp(self, b: _Bind, request: Request, response: Response) -> None:
        idx = b.inflight.pop(request.sequence_number)
        t = _clock()
        self._inflight -= 1
        self._last_resp_at = t
        self._resp_at[idx] = t
        status = response.command_status
        self._status[idx] = status
        if status == _S_OK:
            mid: str = response.message_id  # type: ignore[attr-defined]
            self._msg_id[idx] = mid
            self._accepted += 1
            want = self._want[idx]
            if want:
                self._receipts_pending += 1
            try:
                canon = self.id_policy.canonical_resp_id(mid)
            except MessageIdError:
                self._bad_resp_ids += 1  # its receipt will count as unknown
            else:
                canon_map = self._canon
                if canon in canon_map:
                    self._duplicate_resp_ids += 1  # the SMSC reused an id
                canon_map[canon] = idx
                if self._parked:
                    parked = self._parked.pop(canon, None)
                    if parked is not None:
                        self._apply_receipt(idx, *parked)
            self._resolved(idx)
        elif (
            status in _THROTTLED
            and self.retry_throttled
            and self._attempts[idx] <= self.max_retries
        ):
            backoff = min(
                self.retry_backoff_s * (1 << min(self._attempts[idx] - 1, 16)),
                _RETRY_BACKOFF_MAX_S,
            )
            assert isinstance(request, SubmitSm)
            due = self._loop_().time() + backoff  # loop clock: compared in _fill, call_at
            self._retry.append((due, idx, request))
            if len(self._retry) > 1 and self._retry[-2][0] > due:
                # Backoffs differ per attempt: keep the deque sorted by due time.
                self._retry = deque(sorted(self._retry, key=lambda r: r[0]))
            self._arm_retry_timer()
        else:
            self._resolve_rejected(idx, status)
        if not self._pump_scheduled:  # checked here: once per response, skip the call
            self._schedule_pump()

    def _on_submit_lost(self, b: _Bind, request: Request, pseudo_status: int) -> None:
        idx = b.inflight.pop(request.sequence_number, None)
        if idx is None:
            return
        self._inflight -= 1
        self._status[idx] = pseudo_status
        self._resolve_rejected(idx, pseudo_status)
        self._schedule_pump()

    def _resolve_rejected(self, idx: int, status: int) -> None:
        self._rejected[status] = self._rejected.get(status, 0) + 1
        self._resolved(idx)

    def _resolved(self, idx: int) -> None:
        self._unresolved -= 1
        if self._waiters:
            fut = self._waiters.pop(idx, None)
            if fut is not None and not fut.done():
                if self._status[idx] == STATUS_CONNECTION_CLOSED:
                    fut.set_exception(LinkClosedError("the bind closed before the response"))
                else:
                    fut.set_result(MessageRecord(self, idx))
        if self._run_lo <= idx < self._run_hi:
            self._run_left -= 1
            if self._run_left <= 0:
                self._finish_run()
        if self._idle_waiters and (self._inflight == 0 or self._unresolved == 0):
            self._wake()

    def _on_closed(self, b: _Bind, event: ConnectionClosed) -> None:
        reason, unacknowledged, detail = event
        b.close_reason = reason.value
        if b.bound is not None and not b.bound.done():
            b.bound.set_exception(
                LinkClosedError(
                    f"{b.command.__name__} to {self.host}:{self.port}: connection closed "
                    f"before the bind was answered ({reason.value}: {detail})"
                )
            )
        for request in unacknowledged:
            if request.command_id == _SUBMIT_SM:
                self._on_submit_lost(b, request, STATUS_CONNECTION_CLOSED)
        if not self._closing and self._connected:
            self._unexpected_close(b, f"{reason.value}: {detail}")
        elif b in self._tx:
            self._tx.remove(b)
        if self._idle_waiters:
            self._wake()

    def _unexpected_close(self, b: _Bind, why: str) -> None:
        if b.lost:
            return
        self._binds_lost += 1
        b.lost = True
        if b in self._tx:
            self._tx.remove(b)
        if not self._tx and self._pending_work():
            self._abort_run(LinkClosedError(f"every transmitting bind closed ({why})"))

    # ------------------------------------------------------------------ internals: receipts

    def _on_deliver(self, pdu: DeliverSm | DataSm) -> None:
        if (pdu.esm_class & ESM_CLASS_TYPE_MASK) not in _RECEIPT_TYPES:
            self._mo += 1
            return
        fields = read_receipt(pdu)
        if fields is None:
            self._unknown += 1
            return
        rid, state, code = fields
        now = _clock()
        self._last_receipt_at = now
        try:
            canon = self.id_policy.canonical_receipt_id(rid)
        except MessageIdError:
            self._unknown += 1
            return
        idx = self._canon.get(canon)
        stat = stat_for_state(state) if state is not None else "UNKNOWN"
        if idx is not None:
            self._apply_receipt(idx, now, state, stat, code)
            return
        # Before its submit_sm_resp (another bind, or a busy read): park it.
        parked = self._parked
        previous = parked.get(canon)
        if previous is not None:
            if previous[1] in _FINAL:  # keep the first final receipt
                if state in _FINAL:
                    self._duplicates += 1
                else:
                    self._intermediate += 1
                return
            self._intermediate += 1  # an intermediate one, superseded
        parked[canon] = (now, state, stat, code)
        self._expire_parked(now)

    def _expire_parked(self, now: float) -> None:
        parked = self._parked
        horizon = now - self.response_timeout_s
        while parked:
            oldest = next(iter(parked))
            if len(parked) <= self.max_parked and parked[oldest][0] >= horizon:
                break
            del parked[oldest]
            self._unknown += 1

    def _apply_receipt(
        self, idx: int, at: float, state: int | None, stat: str, code: int | None
    ) -> None:
        if state not in _FINAL:
            self._intermediate += 1
            return
        if self._rcpt_at[idx] is not None:
            if self._rcpt_epoch.get(idx, 0) == self._epoch:
                self._duplicates += 1
            else:
                self._redelivered += 1
            return
        if self._epoch:
            self._rcpt_epoch[idx] = self._epoch
        self._rcpt_at[idx] = at
        self._rcpt_stat[idx] = stat
        self._rcpt_code[idx] = code
        self._receipts += 1
        by_stat = self._rcpt_by_stat
        by_stat[stat] = by_stat.get(stat, 0) + 1
        by_code = self._rcpt_by_code
        by_code[code] = by_code.get(code, 0) + 1
        if self._want[idx] and self._status[idx] == _S_OK:
            self._receipts_pending -= 1
            if self._receipts_pending == 0 and self._idle_waiters:
                self._wake()


def _free_slots(b: _Bind) -> int:
    return b.link.session.window_free() if b.link is not None else 0


def _rate(n: int, span_s: float) -> float:
    return round(n / span_s, 1) if span_s > 0 else 0.0


def _percentiles(sorted_ms: Sequence[float], ps: Sequence[int]) -> dict[str, float | None]:
    """Nearest-rank percentiles of an ascending list, plus its max (None if empty)."""
    out: dict[str, float | None] = {}
    n = len(sorted_ms)
    for p in ps:
        out[f"p{p}"] = round(sorted_ms[max(0, -(-p * n // 100) - 1)], 3) if n else None
    out["max"] = round(sorted_ms[-1], 3) if n else None
    return out


# ============================================================================ receipts, fast


def read_receipt(pdu: DeliverSm | DataSm) -> tuple[str, int | None, int | None] | None:
    """(message id, message_state, Korean result code) of a receipt PDU, with
    the precedence of :func:`protocol.receipt.parse_receipt` (TLVs win, digest
    §9) but without its general text scan when the text is in the canonical
    Appendix B layout — 1 µs instead of ~18 µs. None if it is not a receipt.
    """
    tlv_id: str | None = None
    tlv_state: int | None = None
    tlv_code: int | None = None
    for tag, value in pdu.tlvs:
        if tag == _TAG_RECEIPTED_ID:
            if tlv_id is None:
                tlv_id = _tlv_id(value)
        elif tag == _TAG_MESSAGE_STATE:
            if tlv_state is None:
                if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 0xFF:
                    tlv_state = value
                elif isinstance(value, bytes) and len(value) == 1:
                    tlv_state = value[0]
        elif tag == TAG_KR_RESULT_CODE and tlv_code is None:
            if isinstance(value, bytes) and len(value) == 2:
                tlv_code = int.from_bytes(value, "big")
            elif isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 0xFFFF:
                tlv_code = value
    if type(pdu) is DeliverSm and not pdu.esm_class & _UDHI and pdu.data_coding != _UCS2:
        m = _CANONICAL_RECEIPT_RE.match(pdu.short_message.lstrip(b" \t\r\n\x0b\x0c\x00"))
        if m is not None:
            rid = tlv_id or m.group(1).decode("latin-1")
            state = tlv_state
            if state is None:
                state = int(_state_for_stat(m.group(2).decode("latin-1")))
            code = tlv_code
            if code is None and _KR_ERR_RE.fullmatch(m.group(3)):
                code = int(m.group(3))
            return rid, state, code
    r = parse_receipt(pdu)
    if r is None:
        return None
    return r.message_id, r.message_state, r.result_code


def _tlv_id(value: object) -> str | None:
    if isinstance(value, bytes):
        value = value.split(b"\x00", 1)[0].decode("latin-1")
    if isinstance(value, str):
        value = value.strip(" \t\r\n\x0b\x0c\x00")
        return value or None
    return None


# ============================================================================ PDUs


def make_pdu_factory(
    *,
    text: str = DEFAULT_TEXT,
    data_coding: int | None = None,
    source_addr: str = DEFAULT_SOURCE_ADDR,
    dest_prefix: str = "010",
    registered_delivery: int = 1,
) -> Callable[[int], SubmitSm]:
    """A ``make_pdu`` for :meth:`UpstreamClient.run`: message ``i`` goes to
    ``dest_prefix`` + 8 digits ``10000000 + i`` (mod 9·10⁷), from ``source_addr``,
    with ``text`` encoded once.

    The 8 digits never start with 0, so the default ``010`` prefix stays out of
    the simulators' reserved ranges 0100000xxxx and 0100001xxxx (deterministic
    result codes, conf/simulators.toml) and every message of a burst up to 90
    million has its own recipient (the simulators key unique messages by it).

    Args:
        text: the message text.
        data_coding: default 0x0E (KS C 5601, korea-messaging.md §2.1) if the
            text fits KS X 1001, else 0x08 (UCS2).
        source_addr: the sender number.
        dest_prefix: the recipient prefix.
        registered_delivery: SMPP 3.4 §5.2.17 (1 = final receipt).

    Raises:
        TextError: ``text`` cannot be encoded with ``data_coding``.
    """
    dc = choose_data_coding(text) if data_coding is None else data_coding
    body = encode_text(text, dc)

    def make(i: int) -> SubmitSm:
        # Positional, in SMPP 3.4 §4.4.1 order: keywords cost ~0.4 µs more per PDU.
        # (status, sequence_number, tlvs, service_type, source ton/npi/addr,
        # dest ton/npi/addr, esm_class, protocol_id, priority_flag,
        # schedule_delivery_time, validity_period, registered_delivery,
        # replace_if_present_flag, data_coding, sm_default_msg_id, short_message)
        return SubmitSm(
            0, 0, (), "", 0, 1, source_addr, 0, 1, f"{dest_prefix}{10_000_000 + i % 90_000_000}",
            0, 0, 0, "", "", registered_delivery, 0, dc, 0, body,
        )  # fmt: skip

    return make


# ============================================================================ CLI


def _target(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="relay-sim upstream",
        description="Submit a burst through an SMSC (or relayd), collect receipts, print a "
        "JSON summary.",
    )
    p.add_argument("--target", type=_target, required=True, help="HOST:PORT of the SMSC")
    p.add_argument("--system-id", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--system-type", default="")
    p.add_argument("--count", type=int, default=1000, help="messages to submit")
    p.add_argument("--binds", type=int, default=1)
    p.add_argument("--window", type=int, default=64, help="outstanding submits per bind")
    p.add_argument("--rate", type=float, default=None, help="msg/s across all binds")
    p.add_argument("--bind-mode", choices=("trx", "tx+rx"), default="trx")
    p.add_argument("--registered-delivery", type=int, choices=(0, 1), default=1)
    p.add_argument(
        "--id-policy",
        type=lambda name: name.strip().lower().replace("-", "_"),
        choices=sorted(PRESETS),
        default="as_is",
        help="how submit_sm_resp ids compare with receipt ids (protocol.msgid presets)",
    )
    p.add_argument("--text", default=DEFAULT_TEXT)
    p.add_argument("--dest-prefix", default="010")
    p.add_argument("--source-addr", default=DEFAULT_SOURCE_ADDR)
    p.add_argument("--wait-receipts", type=float, default=60.0, metavar="S", help="seconds to wait")
    p.add_argument("--retry-throttled", action="store_true")
    p.add_argument("--response-timeout", type=float, default=30.0, metavar="S")
    p.add_argument("--deadline", type=float, default=None, metavar="S", help="cap on the burst")
    p.add_argument("--json", dest="json_file", default=None, metavar="FILE")
    return p


async def _main_async(args: argparse.Namespace) -> tuple[int, dict[str, Any] | None]:
    host, port = args.target
    make = make_pdu_factory(
        text=args.text,
        source_addr=args.source_addr,
        dest_prefix=args.dest_prefix,
        registered_delivery=args.registered_delivery,
    )
    client = UpstreamClient(
        host,
        port,
        system_id=args.system_id,
        password=args.password,
        system_type=args.system_type,
        binds=args.binds,
        bind_mode=args.bind_mode,
        window=args.window,
        rate=args.rate,
        registered_delivery=args.registered_delivery,
        id_policy=policy_from_name(args.id_policy),
        response_timeout_s=args.response_timeout,
        retry_throttled=args.retry_throttled,
    )
    try:
        await client.connect()
    except (UpstreamError, OSError, TimeoutError) as exc:
        print(f"relay-sim upstream: {_describe(exc)}", file=sys.stderr)
        return 2, None
    rc = 0
    try:
        await client.run(args.count, make, deadline_s=args.deadline)
        if args.registered_delivery:
            await client.wait_receipts(args.wait_receipts)
    except (UpstreamError, TimeoutError) as exc:
        print(f"relay-sim upstream: {_describe(exc)}", file=sys.stderr)
        rc = 1
    finally:
        await client.close()
    return rc, client.summary()


_T = TypeVar("_T")


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _run(coro: Coroutine[Any, Any, _T]) -> _T:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency
        return asyncio.run(coro)
    return uvloop.run(coro)


def main(argv: list[str] | None = None) -> int:
    """``relay-sim upstream ...``: run one burst and print the JSON summary.

    Args:
        argv: the arguments, with or without a leading ``upstream`` (default
            ``sys.argv[1:]``).

    Returns:
        0 on success, 1 if the burst was cut short (deadline, every bind lost),
        2 if connecting or binding failed (the reason goes to stderr).
    """
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["upstream"]:
        args_list = args_list[1:]
    args = _parser().parse_args(args_list)
    try:
        make_pdu_factory(text=args.text)
    except TextError as exc:
        print(f"relay-sim upstream: --text: {exc}", file=sys.stderr)
        return 2
    tune_gc()  # simulators/link.py
    rc, summary = _run(_main_async(args))
    if summary is None:
        return rc
    line = json.dumps(summary, ensure_ascii=False, sort_keys=False)
    print(line, flush=True)
    if args.json_file:
        with open(args.json_file, "w", encoding="utf-8") as f:
            f.write(line + "\n")
    return rc


if __name__ == "__main__":
    sys.exit(main())
