"""Carrier SMSC simulator: an SMPP v3.4 server that behaves like SKT, KT or LG U+.

Theory of operation
===================

One :class:`CarrierSimulator` listens on one port with one
:class:`~simulators.profiles.CarrierProfile`. Each accepted connection is a
:class:`~simulators.link.SmppLink` (role SMSC) whose events go, synchronously,
to a per-connection :class:`_Conn`; all state lives in the simulator, owned by
the event loop thread (style guide §2). The simulator never imports ``relayd``.

Binds
-----
bind_transmitter/receiver/transceiver with a system_id and password from
``profile.accounts`` (else ESME_RINVSYSID / ESME_RINVPASWD). At most
``profile.max_binds`` connections per system_id; beyond that the bind gets
**ESME_RBINDFAIL** — not ESME_RALYBND, which SMPP 3.4 §5.1.3 reserves for a bind
sent on an already bound session (the session answers that case itself). The
bind_resp carries ``profile.system_id`` and the sc_interface_version TLV.

Submits
-------
submit_sm, data_sm (body from message_payload) and submit_multi (per
destination; bad destinations in unsuccess_smes, one message_id for the PDU).
In order, per PDU:

1. TPS: a token bucket per bind, rate = burst = ``tps_per_bind``; empty →
   ESME_RTHROTTLED (``throttled``).
2. Window: requests received but not yet answered (only the response-delay
   fault makes any) ≥ ``profile.window`` → **ESME_RMSGQFUL** (``queue_full``),
   so a test can tell it from TPS throttling; korea-messaging §7 maps both to
   1001 "Server Busy".
3. Fault ``error_rate``: answer ``error_status`` (``errors_injected``); the
   message is not accepted.
4. Content: destination must be ASCII digits (ESME_RINVDSTADR), source digits
   or empty (ESME_RINVSRCADR); reserved ranges (``conf/simulators.toml``):
   ``0100000CCCC`` → code CCCC (1001/1002/1003 are the submit status of their
   row: ESME_RMSGQFUL, ESME_RINVDSTADR, ESME_RINVSRCADR), ``0100001xxxx`` →
   accepted, never receipted; other numbers draw from ``result_mix_bp`` with
   the seeded RNG.
5. Accepted: a message id from a counter (``id_start``, formatted per
   profile), a record in a bounded store (query/cancel/replace), the
   unique-message key (a 64-bit hash of source, destination, concatenation
   reference/total/part from UDH or SAR, and the message bytes) and, when
   registered_delivery asks, a receipt scheduled on the heap.
6. Fault ``drop_response_rate``: the message *was processed* but its response
   is never sent — the worst case of a lost response, so a relay that
   resubmits after its response timer shows up as ``duplicates``.
7. Fault ``response_delay_ms``: the response is queued and sent by the tick.

Receipts
--------
Delay ~ log-normal(mu = ln median, sigma = (ln p99 − ln median) / 2.326), or
uniform on [0, ``receipt_uniform_max_s``] when that is set (a bounded spread
for benchmarks); the
message reaches its final state at submit + delay (query_sm reports ENROUTE
before, the final state and ``final_date`` after). Scheduled receipts sit in
a timing wheel of ``TICK_S`` buckets; a single timer (the *tick*, at most every
``TICK_S``) moves due ones to per-system_id queues (``receipts_on_any_bind``)
or, for profiles that prefer the submitting connection, to that connection's
own queue. Queues are pumped into each receiving bind's free window
(``session.window_free()``); deliver_sm_resps free slots, which are refilled
once per loop turn. With no RX/TRX bind the receipts wait
(bounded by ``receipt_queue_max``) until one binds. Unacknowledged receipts
of a connection that closes, and receipts whose response timed out, are
requeued (at-least-once, like real SMSCs); a receipt answered with an error
is retried after ``receipt_retry_s``, at most ``receipt_max_attempts`` times.

The receipt is a deliver_sm with esm_class 0x04, source = original
destination, destination = original source, Appendix B text built with a
format string identical to :func:`protocol.receipt.build_receipt_text` (a
test proves it), ``err:`` = the 4-digit Korean code, the profile's id and
date formats, and TLVs: receipted_message_id (the submit_sm_resp id) +
message_state (+ network_error_code = GSM type 3 + the code, on failure) when
``receipt_state_tlvs``, and always the vendor TLV 0x1401 (int2 code). A bind
with interface_version < 0x34 gets no TLVs (SMPP 3.4 §3.4). ``text:`` is the
first 20 characters of the message decoded per data_coding (UDH skipped),
rendered in ASCII with ``?`` for anything else — as
:func:`protocol.receipt.build_receipt_pdu` does — so a KS C 5601 or UCS-2
Hangul text shows as ``?`` characters; binary or undecodable data gives an
empty text.

query_sm / cancel_sm / replace_sm
---------------------------------
Looked up in the store of the last ``message_store_size`` messages (by the
counter parsed from the id; unknown → ESME_RQUERYFAIL / ESME_RCANCELFAIL /
ESME_RREPLACEFAIL; a non-empty source_addr must match). cancel_sm succeeds
while the message is ENROUTE (before its final state): state DELETED, no
receipt. Cancel by source/destination without a message_id is not supported
(ESME_RCANCELFAIL). replace_sm succeeds while ENROUTE: new text, new
registered_delivery, submit date = replacement time (Appendix B).

Faults (:class:`Faults`), seeded by ``random.Random(seed)``: see the class.
"PDUs received" counts the requests and responses the simulator sees as
events; enquire_link, which the session answers by itself, is not counted.

Accounting: :meth:`CarrierSimulator.accounting`, printed as one JSON object
by ``relay-sim carrier`` on SIGTERM/SIGINT.

Speed: the per-submit path does no logging, no per-message timer, no
per-message task; ids come from a counter, dates are formatted once per
second, the receipt text is one f-string, writes are batched by the link.
``relay-sim carrier`` runs with the GC settings of
:func:`simulators.link.tune_gc` (the message store would otherwise make
every full collection traverse 200,000 records).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import heapq
import json
import math
import os
import random
import re
import signal
import struct
import sys
import time
import tomllib
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Final

from protocol.config import SessionConfig
from protocol.constants import (
    TAG_KR_RESULT_CODE,
    CommandId,
    CommandStatus,
    DataCoding,
    MessageState,
    Tag,
)
from protocol.errors import PduError, TextError
from protocol.events import (
    BindRequested,
    ConnectionClosed,
    PduRejected,
    RequestReceived,
    ResponseReceived,
    ResponseTimedOut,
    UnbindReceived,
    UnexpectedResponse,
)
from protocol.pdu import (
    Bind,
    CancelSm,
    DataSm,
    DataSmResp,
    DeliverSm,
    DistributionList,
    QuerySm,
    QuerySmResp,
    ReplaceSm,
    Request,
    Response,
    SubmitMulti,
    SubmitMultiResp,
    SubmitSm,
    SubmitSmResp,
    UnsuccessSme,
)
from protocol.receipt import TEXT_CHARS, format_receipt_date
from protocol.resultcodes import RESULT_CODES
from protocol.segment import concat_info
from protocol.session import Role, SessionState
from protocol.text import GSM7_BASIC, GSM7_ESCAPE, decode_text
from protocol.tlv import Tlv
from simulators.link import SmppLink, tune_gc
from simulators.profiles import CarrierProfile, ProfileError, load_profile

__all__ = ["TICK_S", "CarrierSimulator", "Faults", "main"]

# The receipt/delayed-response timer fires at most this often (seconds): one
# timer for the whole simulator, never one per message.
TICK_S: Final = 0.005
_PER_TICK: Final = 1.0 / TICK_S

# Korean carriers write receipt dates in KST (UTC+9), with no zone (digest §8).
KST: Final = timezone(timedelta(hours=9), "KST")

S = CommandStatus
_OK: Final = 0
_S_THROTTLED: Final = int(S.ESME_RTHROTTLED)
_S_MSGQFUL: Final = int(S.ESME_RMSGQFUL)
_S_INVDSTADR: Final = int(S.ESME_RINVDSTADR)
_S_INVSRCADR: Final = int(S.ESME_RINVSRCADR)
_S_INVDLNAME: Final = int(S.ESME_RINVDLNAME)

_BIND_TRANSMITTER: Final = int(CommandId.bind_transmitter)
_DELIVER_SM: Final = int(CommandId.deliver_sm)
_ESM_RECEIPT: Final = 0x04
_UDHI: Final = 0x40
_ENROUTE: Final = int(MessageState.ENROUTE)
_DELETED: Final = int(MessageState.DELETED)
_TAG_RMI: Final = int(Tag.receipted_message_id)
_TAG_STATE: Final = int(Tag.message_state)
_TAG_NEC: Final = int(Tag.network_error_code)
_TAG_PAYLOAD: Final = int(Tag.message_payload)
_GSM_NETWORK: Final = 3  # network_error_code type: GSM (SMPP 3.4 §5.3.2.31)

# registered_delivery bits 1-0 → (receipt on failure, receipt on success).
# 01 any final outcome, 10 failure only, 11 [v5.0] success only (reserved in 3.4).
_WANT: Final = ((False, False), (True, True), (True, False), (False, True))

# Octets of user data decoded for the receipt `text:`: 20 characters need at
# most 80 (UCS-2 surrogate pairs; GSM escapes and KS C 5601 need 40), plus 4
# so a character cut at the end can be dropped. The text cache is keyed by
# data_coding, UDHI and the first _TEXT_KEY_MAX octets (a UDH is at most 141).
_TEXT_PROBE: Final = 84
_TEXT_KEY_MAX: Final = 232
_TEXT_CACHE_MAX: Final = 4096
# Per single-octet data_coding, the octets that decode to the same ASCII
# character (GSM 03.38 unpacked differs from ASCII at $ @ [ \\ ] ^ _ ` { | } ~
# and the controls): derived from protocol.text's table, so it cannot drift.
_ASCII_7BIT: Final = bytes(range(0x80))
_ASCII_SAME: Final[dict[int, bytes]] = {
    int(DataCoding.SMSC_DEFAULT): bytes(
        b for b in range(0x80) if b != GSM7_ESCAPE and GSM7_BASIC[b] == chr(b)
    ),
    int(DataCoding.IA5): _ASCII_7BIT,
    int(DataCoding.LATIN1): _ASCII_7BIT,
}

_BOUND_STATES: Final = frozenset(
    {SessionState.BOUND_TX, SessionState.BOUND_RX, SessionState.BOUND_TRX}
)
# Events that stand for a PDU received from the peer (fault counters).
_RX_EVENTS: Final = frozenset(
    {
        RequestReceived,
        BindRequested,
        ResponseReceived,
        UnbindReceived,
        PduRejected,
        UnexpectedResponse,
    }
)
_MALFORMED_SEQ: Final = 0x7FFFFF00
_exp: Final = math.exp
_new_tlv: Final = tuple.__new__  # build a Tlv NamedTuple without its __new__ (hot path)


# ============================================================================ faults


@dataclass(frozen=True, slots=True)
class Faults:
    """Injected faults; each field is a ``relay-sim carrier`` flag
    (``--disconnect-after-pdus N`` ...). All zero = a well-behaved SMSC.
    Random choices use ``random.Random(seed)``: a run is reproducible for a
    given order of arrivals.

    Raises:
        ValueError: on construction, for a value out of range.
    """

    disconnect_after_pdus: int = 0
    """Abort a connection when it has received this many PDUs (the last one is
    not answered: a crash). 0 = off."""
    disconnect_every_s: float = 0.0
    """Abort every connection every this many seconds. 0 = off."""
    stall_after_pdus: int = 0
    """Stop reading a connection for ``stall_s`` once it has received this many
    PDUs (once per connection). 0 = off."""
    stall_every_s: float = 0.0
    """Stop reading every connection for ``stall_s``, every this many seconds. 0 = off."""
    stall_s: float = 0.0
    """Length of a stall (seconds); required by the two stall faults."""
    response_delay_ms: float = 0.0
    """Delay every response to submit_sm/data_sm/submit_multi/query_sm/
    cancel_sm/replace_sm by this much (milliseconds). 0 = off."""
    drop_response_rate: float = 0.0
    """Fraction of submit responses never sent (the message is processed). 0..1."""
    error_rate: float = 0.0
    """Fraction of submits answered with ``error_status`` (not accepted). 0..1."""
    error_status: int = int(S.ESME_RTHROTTLED)
    """The command_status of ``error_rate`` answers (e.g. 0x58, 0x14, 0x08)."""
    refuse_binds: int = 0
    """Refuse this many bind attempts with ESME_RBINDFAIL before accepting
    any; -1 = refuse every bind. 0 = off."""
    malformed_after_pdus: int = 0
    """Once per simulator: when a connection has received this many PDUs, write
    one deliver_sm whose sm_length runs past its body. 0 = off."""

    def __post_init__(self) -> None:
        for name in ("disconnect_after_pdus", "stall_after_pdus", "malformed_after_pdus"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("disconnect_every_s", "stall_every_s", "stall_s", "response_delay_ms"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("drop_response_rate", "error_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in 0..1, got {getattr(self, name)}")
        if not 0 < self.error_status <= 0xFFFFFFFF:
            raise ValueError(
                f"error_status must be a non-zero command_status, got {self.error_status}"
            )
        if self.refuse_binds < -1:
            raise ValueError(f"refuse_binds must be >= -1, got {self.refuse_binds}")
        if (self.stall_after_pdus or self.stall_every_s) and not self.stall_s > 0:
            raise ValueError("stall_after_pdus / stall_every_s need stall_s > 0")


# ============================================================================ records


class _Msg:
    """One accepted message (one destination). Its state is derived: ENROUTE
    until ``due_t``, then the final state of ``code``; DELETED once cancelled."""

    __slots__ = (
        "acct",
        "code",
        "dc",
        "dst",
        "dst_npi",
        "dst_ton",
        "due_t",
        "esm",
        "final_t",
        "group",
        "mid",
        "n",
        "origin",
        "rd",
        "receipt",
        "rejections",
        "scheduled",
        "sent",
        "sm",
        "src",
        "src_npi",
        "src_ton",
        "submit_t",
    )

    def __init__(
        self,
        n: int,
        mid: str,
        src: str,
        src_ton: int,
        src_npi: int,
        dst: str,
        dst_ton: int,
        dst_npi: int,
        sm: bytes,
        dc: int,
        esm: int,
        code: int | None,
        rd: int,
        submit_t: float,
        due_t: float | None,
        acct: _Account,
        origin: _Conn,
    ) -> None:
        self.n = n
        self.mid = mid
        self.src = src
        self.src_ton = src_ton
        self.src_npi = src_npi
        self.dst = dst
        self.dst_ton = dst_ton
        self.dst_npi = dst_npi
        self.sm = sm
        self.dc = dc
        self.esm = esm
        self.code = code
        self.rd = rd
        self.submit_t = submit_t  # loop time
        self.due_t = due_t  # loop time of the final state; None = never
        self.acct = acct
        self.origin = origin
        self.final_t: float | None = None  # set when cancelled
        self.group: tuple[_Msg, ...] | None = None  # submit_multi siblings
        self.receipt: int = 0  # 0 none owed, 1 owed, 2 done (acknowledged or dropped)
        self.scheduled: bool = False  # an entry for it is in the heap
        self.rejections: int = 0
        self.sent: int = 0  # deliver_sm written for it (resends included)


class _Account:
    """Per-system_id state: its connections, receivers and held receipts."""

    __slots__ = (
        "binds",
        "conns",
        "queue",
        "receipts_acknowledged",
        "receipts_sent",
        "receivers",
        "rr",
        "submits",
        "system_id",
    )

    def __init__(self, system_id: str) -> None:
        self.system_id = system_id
        self.conns: list[_Conn] = []
        self.receivers: list[_Conn] = []
        self.queue: deque[_Msg] = deque()
        self.rr = 0
        self.binds = 0
        self.submits = 0
        self.receipts_sent = 0
        self.receipts_acknowledged = 0


class _Conn:
    """One connection: the link, its bind, its token bucket and its receipts."""

    __slots__ = (
        "acct",
        "can_receive",
        "cleaned",
        "closed",
        "inflight",
        "link",
        "owed",
        "own_queue",
        "pdus",
        "refill_t",
        "sim",
        "stalled",
        "tlvs_ok",
        "tokens",
    )

    def __init__(self, sim: CarrierSimulator, now: float) -> None:
        self.sim = sim
        self.link: SmppLink = None  # type: ignore[assignment]  # set right after
        self.acct: _Account | None = None
        self.can_receive = False
        self.tlvs_ok = True
        self.tokens = sim._burst
        self.refill_t = now
        self.pdus = 0
        self.inflight: dict[int, _Msg] = {}  # deliver_sm sequence_number → message
        self.own_queue: deque[_Msg] = deque()  # receipts preferring this connection
        self.owed = 0  # responses queued by the delay fault, not yet sent
        self.closed = False
        self.cleaned = False
        self.stalled = False

    def on_event(self, link: SmppLink, event: Any) -> None:
        sim = self.sim
        t = type(event)
        if sim._pdu_faults and t in _RX_EVENTS and not self.closed and sim._count_pdu(self):
            return
        if t is RequestReceived:
            if self.closed:
                return
            req = event.request
            handler = sim._handlers.get(req.command_id)
            if handler is None:  # pragma: no cover - the session refuses the rest
                link.session.respond(req, S.ESME_RINVCMDID)
            else:
                handler(self, req)
        elif t is ResponseReceived:
            sim._on_response(self, event.request, event.response)
        elif t is BindRequested:
            if not self.closed:
                sim._on_bind(self, event.request)
        elif t is ConnectionClosed:
            sim._on_closed(self)
        elif t is ResponseTimedOut:
            sim._on_response_timeout(self, event.request)
        elif t is UnbindReceived:
            sim._on_unbind(self)
        # Bound/BindFailed (we answered), PduRejected (the session answered),
        # UnexpectedResponse (e.g. the answer to our malformed PDU): nothing to do.


# ============================================================================ the simulator


_HEX_RE: Final = re.compile(r"[0-9A-Fa-f]{1,16}", re.ASCII)
_DEC_RE: Final = re.compile(r"[0-9]{1,19}", re.ASCII)


class CarrierSimulator:
    """An SMSC on ``host:port`` behaving as ``profile`` (see the module doc).

    Args:
        profile: the carrier profile.
        seed: seeds the result-code mix, the receipt delays and the faults.
        faults: faults to inject.
        host: listen address (loopback by default).
        port: listen port; None = ``profile.port``; 0 = ephemeral (read ``.port``).
        id_start: the first message-id counter value (restart a simulator with a
            higher one to keep ids unique across restarts).
    """

    def __init__(
        self,
        profile: CarrierProfile,
        *,
        seed: int = 0,
        faults: Faults = Faults(),  # frozen: a shared default is safe
        host: str = "127.0.0.1",
        port: int | None = None,
        id_start: int = 1,
    ) -> None:
        if id_start < 0:
            raise ValueError(f"id_start must be >= 0, got {id_start}")
        self.profile = profile
        self.seed = seed
        self.faults = faults
        self.host = host
        self.port: int = profile.port if port is None else port
        p = profile
        self._code_rng = random.Random(f"{seed}:codes")
        self._code_random = self._code_rng.random  # bound once: one draw per submit
        self._delay_rng = random.Random(f"{seed}:delays")
        self._fault_rng = random.Random(f"{seed}:faults")
        self._ids_rng = random.Random(f"{seed}:ids")

        # Result-code mix as a 10,000-slot table: one random() per message.
        table: list[int] = []
        for code, bp in sorted(p.result_mix_bp.items()):
            table.extend([code] * bp)
        self._mix: list[int] = table
        self._mu, self._sigma = p.lognormal_params()
        self._median = p.receipt_median_s
        self._uniform_max = p.receipt_uniform_max_s
        self._uniform = self._delay_rng.random
        self._gauss = self._delay_rng.gauss
        self._dedup_max = p.dedup_max_keys
        self._tps = float(p.tps_per_bind)
        self._burst = max(1.0, float(p.tps_per_bind))
        self._window = p.window
        self._store_size = p.message_store_size
        self._code_prefix = p.code_prefix
        self._code_len = len(p.code_prefix) + 4
        self._silent_prefix = p.silent_prefix
        self._silent_len = len(p.silent_prefix) + 4
        self._any_bind = p.receipts_on_any_bind
        self._state_tlvs = p.receipt_state_tlvs
        self._date_digits = p.receipt_date_digits
        self._rid_format = p.receipt_id_format

        # Message ids: resp form, receipt-text form, parser (profile doc).
        self._next_n = id_start
        self._uuid_prefix = ""
        if p.message_id_format == "decimal":
            self._fmt_id: Callable[[int], str] = str
        elif p.message_id_format == "hex8":
            self._fmt_id = "{:08X}".format
        else:
            # UUID-like (version nibble 4, variant nibble a), seeded; the counter
            # is the last group, so ids stay unique and parse back to it.
            h = f"{self._ids_rng.getrandbits(72):018x}"
            self._uuid_prefix = f"{h[:8]}-{h[8:12]}-4{h[12:15]}-a{h[15:18]}-"
            self._fmt_id = (self._uuid_prefix + "{:012x}").format

        # Per result code: (stat, message_state, dlvrd, TLVs after receipted_message_id
        # when the profile sends state TLVs, TLVs when it does not).
        self._rows: dict[int, tuple[str, int, str, tuple[Tlv, ...], tuple[Tlv, ...]]] = {}
        for code, row in RESULT_CODES.items():
            if row.stat is None or row.message_state is None:
                continue
            vendor = Tlv(TAG_KR_RESULT_CODE, code.to_bytes(2, "big"))
            state_tlvs: tuple[Tlv, ...] = (Tlv(_TAG_STATE, int(row.message_state)),)
            if code != 1000:
                state_tlvs += (Tlv(_TAG_NEC, bytes((_GSM_NETWORK,)) + code.to_bytes(2, "big")),)
            delivered = "001" if row.message_state == MessageState.DELIVERED else "000"
            self._rows[code] = (
                row.stat,
                int(row.message_state),
                delivered,
                (*state_tlvs, vendor),
                (vendor,),
            )

        self._handlers: dict[int, Callable[[_Conn, Any], None]] = {
            int(CommandId.submit_sm): self._on_submit_sm,
            int(CommandId.data_sm): self._on_data_sm,
            int(CommandId.submit_multi): self._on_submit_multi,
            int(CommandId.query_sm): self._on_query_sm,
            int(CommandId.cancel_sm): self._on_cancel_sm,
            int(CommandId.replace_sm): self._on_replace_sm,
        }

        f = faults
        self._pdu_faults = bool(
            f.disconnect_after_pdus or f.stall_after_pdus or f.malformed_after_pdus
        )
        self._delay_s = f.response_delay_ms / 1000.0
        self._drop_rate = f.drop_response_rate
        self._error_rate = f.error_rate
        # Window checks only matter when responses can be delayed (module doc).
        self._gated = bool(self._tps or self._delay_s or self._error_rate)
        self._plain_reply = not (self._delay_s or self._drop_rate)

        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._wall_offset = 0.0
        self._conns: set[_Conn] = set()
        self._accounts: dict[str, _Account] = {}
        self._store: dict[int, _Msg] = {}
        self._seen: set[int] = set()
        # Scheduled receipts: a timing wheel of TICK_S buckets (bucket b holds the
        # receipts due in [b·TICK_S, (b+1)·TICK_S), sent once it has passed) and
        # a heap of the bucket numbers in use: one heap push per bucket, not per
        # message.
        self._wheel: dict[int, list[_Msg]] = {}
        self._buckets: list[int] = []
        self._delayed: deque[tuple[float, _Conn, Response]] = deque()
        self._tick_handle: asyncio.TimerHandle | None = None
        self._tick_at = 0.0
        # The periodic fault timers, by fault name (each re-arms itself).
        self._fault_timers: dict[str, asyncio.TimerHandle] = {}
        self._stall_timers: set[asyncio.TimerHandle] = set()
        self._date_cache: dict[int, str] = {}
        self._text_cache: dict[tuple[int, int, bytes], str] = {}
        self._refused_by_fault = 0
        self._pump_pending: set[_Conn] = set()
        self._malformed_done = False
        self._stopping = False

        # Counters (accounting()).
        self._binds = 0
        self._bind_refused = 0
        self._submits = 0
        self._accepted = 0
        self._rejected = 0
        self._duplicates = 0
        self._untracked = 0
        self._code_counts = [0] * 10_000
        self._never_receipted = 0
        self._receipts_sent = 0
        self._receipts_resent = 0
        self._receipts_acked = 0
        self._receipts_rejected = 0
        self._receipts_dropped = 0
        self._receipts_requeued = 0
        self._owed = 0
        self._throttled = 0
        self._queue_full = 0
        self._errors_injected = 0
        self._responses_dropped = 0
        self._responses_delayed = 0
        self._disconnects = 0
        self._stalls = 0
        self._malformed_sent = 0
        self._queries = 0
        self._cancels = 0
        self._replaces = 0

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Listen; returns once accepting (``self.port`` is then the bound port)."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._wall_offset = time.time() - loop.time()
        self._server = await loop.create_server(
            self._new_link, self.host, self.port, reuse_address=True, backlog=1024
        )
        self.port = self._server.sockets[0].getsockname()[1]
        f = self.faults
        if f.disconnect_every_s:
            self._fault_timers["disconnect"] = loop.call_later(
                f.disconnect_every_s, self._disconnect_all
            )
        if f.stall_every_s:
            self._fault_timers["stall"] = loop.call_later(f.stall_every_s, self._stall_all)

    async def stop(self, grace_s: float = 1.0) -> None:
        """Stop listening, unbind every bound connection (the SMSC's unbind),
        wait up to ``grace_s`` for them to close, abort the rest."""
        self._stopping = True  # no more ticks: nothing new goes out
        if self._server is not None:
            self._server.close()
        for handle in (*self._fault_timers.values(), *self._stall_timers):
            handle.cancel()
        self._fault_timers.clear()
        self._stall_timers.clear()
        if self._tick_handle is not None:
            self._tick_handle.cancel()
            self._tick_handle = None
        conns = list(self._conns)
        for conn in conns:
            conn.can_receive = False  # no deliver_sm once our unbind is out
            session = conn.link.session
            if session.state in _BOUND_STATES:
                if conn.stalled:
                    conn.link.resume_reading()
                conn.link.unbind()
            else:
                conn.link.abort()
        waiters = [asyncio.ensure_future(c.link.closed.wait()) for c in conns]
        if waiters:
            _, pending = await asyncio.wait(waiters, timeout=grace_s)
            for w in pending:
                w.cancel()
            for conn in conns:
                if not conn.link.closed.is_set():
                    conn.link.abort()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    def _new_link(self) -> SmppLink:
        p = self.profile
        assert self._loop is not None
        conn = _Conn(self, self._loop.time())
        link = SmppLink(
            SessionConfig(
                window_size=p.receipt_window,
                response_timeout_s=p.response_timeout_s,
                enquire_link_interval_s=p.enquire_link_interval_s or None,
                inactivity_timeout_s=p.inactivity_timeout_s or None,
                session_init_timeout_s=p.session_init_timeout_s or None,
                system_id=p.system_id,
            ),
            Role.SMSC,
            conn.on_event,
            name=f"{p.name}-smsc",
        )
        conn.link = link
        self._conns.add(conn)
        return link

    # ------------------------------------------------------------------ accounting

    def accounting(self) -> dict[str, Any]:
        """Counters since start, JSON-serialisable; ``relay-sim carrier`` prints it.

        Keys: ``binds`` (accepted), ``binds_active``, ``bind_refused``;
        ``submits_received`` (submit_sm + data_sm + submit_multi destinations),
        ``submits_accepted``, ``submits_rejected`` (by content: address, reserved
        submit-time code, UDH); ``unique_messages`` / ``duplicates`` over accepted
        messages (key: source, destination, concatenation ref/total/part, bytes),
        ``dedup_untracked`` (beyond ``dedup_max_keys``); ``never_receipted``
        (silent range); ``by_result_code`` {"CCCC": count} at submit time;
        ``receipts_sent`` (deliver_sm written, resends included),
        ``receipts_resent``, ``receipts_acknowledged`` (distinct receipts answered
        ESME_ROK), ``receipts_rejected`` (error answers), ``receipts_requeued``
        (timeouts, disconnects), ``receipts_dropped``, ``receipts_pending`` (owed:
        scheduled, held, or in flight); ``throttled``, ``queue_full``,
        ``errors_injected``, ``responses_dropped``, ``responses_delayed``,
        ``disconnects_injected``, ``stalls_injected``, ``malformed_sent``;
        ``queries``, ``cancels``, ``replaces``; ``by_system_id`` per account.
        """
        by_code = {str(c): n for c, n in enumerate(self._code_counts) if n}
        by_system = {
            sid: {
                "binds": a.binds,
                "binds_active": len(a.conns),
                "submits_received": a.submits,
                "receipts_sent": a.receipts_sent,
                "receipts_acknowledged": a.receipts_acknowledged,
                "receipts_held": len(a.queue),
            }
            for sid, a in sorted(self._accounts.items())
        }
        return {
            "profile": self.profile.name,
            "seed": self.seed,
            "binds": self._binds,
            "binds_active": sum(len(a.conns) for a in self._accounts.values()),
            "bind_refused": self._bind_refused,
            "submits_received": self._submits,
            "submits_accepted": self._accepted,
            "submits_rejected": self._rejected,
            "unique_messages": len(self._seen),
            "duplicates": self._duplicates,
            "dedup_untracked": self._untracked,
            "never_receipted": self._never_receipted,
            "by_result_code": by_code,
            "receipts_sent": self._receipts_sent,
            "receipts_resent": self._receipts_resent,
            "receipts_acknowledged": self._receipts_acked,
            "receipts_rejected": self._receipts_rejected,
            "receipts_requeued": self._receipts_requeued,
            "receipts_dropped": self._receipts_dropped,
            "receipts_pending": self._owed,
            "throttled": self._throttled,
            "queue_full": self._queue_full,
            "errors_injected": self._errors_injected,
            "responses_dropped": self._responses_dropped,
            "responses_delayed": self._responses_delayed,
            "disconnects_injected": self._disconnects,
            "stalls_injected": self._stalls,
            "malformed_sent": self._malformed_sent,
            "queries": self._queries,
            "cancels": self._cancels,
            "replaces": self._replaces,
            "by_system_id": by_system,
        }

    # ------------------------------------------------------------------ binds

    def _on_bind(self, conn: _Conn, req: Bind) -> None:
        p = self.profile
        session = conn.link.session
        status = _OK
        acct: _Account | None = None
        password = p.accounts.get(req.system_id)
        if password is None:
            status = int(S.ESME_RINVSYSID)
        elif password != req.password:
            status = int(S.ESME_RINVPASWD)
        elif self.faults.refuse_binds and (
            self.faults.refuse_binds < 0 or self._refused_by_fault < self.faults.refuse_binds
        ):
            self._refused_by_fault += 1
            status = int(S.ESME_RBINDFAIL)
        else:
            acct = self._accounts.get(req.system_id)
            if acct is None:
                acct = self._accounts[req.system_id] = _Account(req.system_id)
            if p.max_binds and len(acct.conns) >= p.max_binds:
                status = int(S.ESME_RBINDFAIL)
        if status or acct is None:
            self._bind_refused += 1
            session.respond(req, status)
            return
        session.respond(req, _OK)  # system_id and sc_interface_version from the session
        self._binds += 1
        acct.binds += 1
        acct.conns.append(conn)
        conn.acct = acct
        conn.tlvs_ok = req.interface_version >= 0x34
        conn.can_receive = req.command_id != _BIND_TRANSMITTER
        if conn.can_receive:
            acct.receivers.append(conn)
            if acct.queue:
                self._pump_account(acct, self._now())

    def _on_unbind(self, conn: _Conn) -> None:
        # UNBINDING: no more deliver_sm on this connection (SMPP 3.4 §4.2).
        acct = conn.acct
        if acct is None or not conn.can_receive:
            return
        conn.can_receive = False
        if conn in acct.receivers:
            acct.receivers.remove(conn)
        if conn.own_queue:
            acct.queue.extendleft(reversed(conn.own_queue))
            conn.own_queue.clear()
        if acct.queue:
            self._pump_account(acct, self._now())

    def _on_closed(self, conn: _Conn) -> None:
        if conn.cleaned:
            return
        conn.cleaned = conn.closed = True
        conn.can_receive = False
        self._conns.discard(conn)
        acct = conn.acct
        if acct is None:
            return
        if conn in acct.conns:
            acct.conns.remove(conn)
        if conn in acct.receivers:
            acct.receivers.remove(conn)
        # At-least-once: receipts sent but not acknowledged go back to the queue.
        requeue = [rec for rec in conn.inflight.values() if rec.receipt == 1]
        conn.inflight.clear()
        self._receipts_requeued += len(requeue)
        requeue.extend(conn.own_queue)  # not sent yet: any other bind may take them
        conn.own_queue.clear()
        if requeue:
            acct.queue.extendleft(reversed(requeue))
        if acct.queue:
            self._pump_account(acct, self._now())

    # ------------------------------------------------------------------ submits

    def _now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    def _gate(self, conn: _Conn, now: float) -> int:
        """TPS, window and injected errors, in that order: 0 = go on."""
        if self._tps:
            tokens = conn.tokens + (now - conn.refill_t) * self._tps
            if tokens > self._burst:
                tokens = self._burst
            conn.refill_t = now
            if tokens < 1.0:
                conn.tokens = tokens
                self._throttled += 1
                return _S_THROTTLED
            conn.tokens = tokens - 1.0
        if conn.owed >= self._window:
            self._queue_full += 1
            return _S_MSGQFUL
        if self._error_rate and self._fault_rng.random() < self._error_rate:
            self._errors_injected += 1
            return self.faults.error_status
        return _OK

    def _reply(self, conn: _Conn, resp: Response, now: float, *, droppable: bool) -> None:
        if droppable and self._drop_rate and self._fault_rng.random() < self._drop_rate:
            self._responses_dropped += 1
            return
        if self._delay_s:
            conn.owed += 1
            self._responses_delayed += 1
            due = now + self._delay_s
            self._delayed.append((due, conn, resp))
            if self._tick_handle is None or due < self._tick_at - TICK_S:
                self._arm_tick(now)
            return
        conn.link.session.send_response(resp)

    def _on_submit_sm(self, conn: _Conn, req: SubmitSm) -> None:
        # The hot path: every branch a well-behaved run does not need is behind
        # one flag (_gated: TPS limit or a fault; _plain_reply: no reply fault).
        self._submits += 1
        acct = conn.acct
        assert acct is not None
        acct.submits += 1
        now = self._loop.time()  # type: ignore[union-attr]
        status = self._gate(conn, now) if self._gated else _OK
        mid = ""
        if not status:
            status, rec = self._accept(
                conn,
                acct,
                now,
                req.source_addr,
                req.source_addr_ton,
                req.source_addr_npi,
                req.destination_addr,
                req.dest_addr_ton,
                req.dest_addr_npi,
                req.short_message,
                req.data_coding,
                req.esm_class,
                req.tlvs,
                req.registered_delivery,
                None,
            )
            if rec is not None:
                mid = rec.mid
        resp = SubmitSmResp(status, req.sequence_number, (), mid)
        if self._plain_reply:
            conn.link.session.send_response(resp)
        else:
            self._reply(conn, resp, now, droppable=True)

    def _on_data_sm(self, conn: _Conn, req: DataSm) -> None:
        self._submits += 1
        acct = conn.acct
        assert acct is not None
        acct.submits += 1
        now = self._now()
        status = self._gate(conn, now)
        mid = ""
        if not status:
            payload = req.tlv(_TAG_PAYLOAD, b"")
            status, rec = self._accept(
                conn,
                acct,
                now,
                req.source_addr,
                req.source_addr_ton,
                req.source_addr_npi,
                req.destination_addr,
                req.dest_addr_ton,
                req.dest_addr_npi,
                payload if isinstance(payload, bytes) else b"",
                req.data_coding,
                req.esm_class,
                req.tlvs,
                req.registered_delivery,
                None,
            )
            if rec is not None:
                mid = rec.mid
        self._reply(conn, DataSmResp(status, req.sequence_number, (), mid), now, droppable=True)

    def _on_submit_multi(self, conn: _Conn, req: SubmitMulti) -> None:
        acct = conn.acct
        assert acct is not None
        n_dests = len(req.dest_addresses)
        self._submits += n_dests
        acct.submits += n_dests
        now = self._now()
        status = self._gate(conn, now)
        if status:
            self._reply(conn, SubmitMultiResp(status, req.sequence_number), now, droppable=True)
            return
        n = self._next_n
        self._next_n = n + 1
        mid = self._fmt_id(n)
        unsuccess: list[UnsuccessSme] = []
        recs: list[_Msg] = []
        for dest in req.dest_addresses:
            if isinstance(dest, DistributionList):
                # Distribution lists are an SMSC-side feature this simulator lacks.
                self._rejected += 1
                unsuccess.append(UnsuccessSme(0, 0, dest.dl_name[:20], _S_INVDLNAME))
                continue
            st, rec = self._accept(
                conn,
                acct,
                now,
                req.source_addr,
                req.source_addr_ton,
                req.source_addr_npi,
                dest.destination_addr,
                dest.dest_addr_ton,
                dest.dest_addr_npi,
                req.short_message,
                req.data_coding,
                req.esm_class,
                req.tlvs,
                req.registered_delivery,
                n,
            )
            if rec is None:
                unsuccess.append(
                    UnsuccessSme(dest.dest_addr_ton, dest.dest_addr_npi, dest.destination_addr, st)
                )
            else:
                recs.append(rec)
        if recs:
            group = tuple(recs)
            for rec in recs:
                rec.group = group
            self._remember(n, recs[0])
        self._reply(
            conn,
            SubmitMultiResp(_OK, req.sequence_number, (), mid, tuple(unsuccess)),
            now,
            droppable=True,
        )

    def _accept(
        self,
        conn: _Conn,
        acct: _Account,
        now: float,
        src: str,
        src_ton: int,
        src_npi: int,
        dst: str,
        dst_ton: int,
        dst_npi: int,
        sm: bytes,
        dc: int,
        esm: int,
        tlvs: tuple[Tlv, ...],
        rd: int,
        n: int | None,
    ) -> tuple[int, _Msg | None]:
        """Validate one destination and accept it: (status, record or None)."""
        # Digits only, and short enough to be the receipt's source_addr (≤ 20
        # octets, SMPP 3.4 §4.6.1; data_sm allows 64).
        if not (dst.isdigit() and dst.isascii()) or len(dst) > 20:
            self._rejected += 1
            return _S_INVDSTADR, None
        if src and (not (src.isdigit() and src.isascii()) or len(src) > 20):
            self._rejected += 1
            return _S_INVSRCADR, None
        code: int | None
        if dst.startswith(self._code_prefix) and len(dst) == self._code_len:
            code = int(dst[-4:])
            row = RESULT_CODES.get(code)
            if row is None:
                self._rejected += 1
                return _S_INVDSTADR, None
            if row.submit_status is not None:
                self._rejected += 1
                self._code_counts[code] += 1
                return int(row.submit_status), None
        elif dst.startswith(self._silent_prefix) and len(dst) == self._silent_len:
            code = None
        else:
            code = self._mix[int(self._code_random() * 10_000)]

        concat = b""
        if tlvs or esm & 0x40:  # UDHI
            try:
                info, _ = concat_info(sm, esm, tlvs)
            except PduError as exc:  # UDHI set but no valid UDH
                self._rejected += 1
                return int(exc.command_status), None
            if info is not None:
                concat = b"%d/%d/%d" % (info.reference, info.total, info.seqnum)
        # 64-bit key: hash() of the fields (SipHash for str/bytes, per process).
        # Two distinct messages collide with probability ~n²/2⁶⁵ (3·10⁻⁸ at a
        # million messages); a 16-byte BLAKE2b costs 0.6 µs more per submit.
        key = hash((src, dst, concat, sm))
        seen = self._seen
        if key in seen:
            self._duplicates += 1
        elif len(seen) < self._dedup_max:
            seen.add(key)
        else:
            self._untracked += 1

        single = n is None
        if n is None:
            n = self._next_n
            self._next_n = n + 1
        mid = self._fmt_id(n)
        if code is None:
            due: float | None = None
            self._never_receipted += 1
        else:
            self._code_counts[code] += 1
            sigma = self._sigma
            if self._uniform_max > 0.0:  # bounded (module doc)
                due = now + self._uniform_max * self._uniform()
            elif sigma > 0.0:  # log-normal (module doc)
                due = now + _exp(self._mu + sigma * self._gauss(0.0, 1.0))
            else:
                due = now + self._median
        rec = _Msg(
            n, mid, src, src_ton, src_npi, dst, dst_ton, dst_npi, bytes(sm), dc, esm, code,
            rd, now, due, acct, conn,
        )  # fmt: skip
        if single:
            store = self._store
            store[n] = rec
            store.pop(n - self._store_size, None)  # see _remember
        self._accepted += 1
        if due is not None and code is not None and _WANT[rd & 3][code == 1000]:
            rec.receipt = 1
            self._owed += 1
            # _schedule() inlined for the common case, a bucket already in use.
            bucket = self._wheel.get(int(due * _PER_TICK))
            if bucket is not None:
                rec.scheduled = True
                bucket.append(rec)
            else:
                self._schedule(rec, due, now)
        return _OK, rec

    def _remember(self, n: int, rec: _Msg) -> None:
        # Ids come from a counter, so the oldest entry is the one n - size back:
        # O(1) eviction with no ordered structure.
        store = self._store
        store[n] = rec
        store.pop(n - self._store_size, None)

    def draw_delay(self) -> float:
        """One receipt delay in seconds: uniform on [0, receipt_uniform_max_s]
        when that is set, else log-normal with the profile's median and p99
        (the same draw the submit path inlines)."""
        if self._uniform_max > 0.0:
            return self._uniform_max * self._uniform()
        sigma = self._sigma
        if sigma <= 0.0:
            return self._median
        return _exp(self._mu + sigma * self._gauss(0.0, 1.0))

    def _schedule(self, rec: _Msg, due: float, now: float) -> None:
        rec.scheduled = True
        b = int(due * _PER_TICK)
        bucket = self._wheel.get(b)
        if bucket is not None:
            bucket.append(rec)
            return
        self._wheel[b] = [rec]
        heapq.heappush(self._buckets, b)
        if self._tick_handle is None or (b + 1) * TICK_S < self._tick_at - TICK_S:
            self._arm_tick(now)

    # ------------------------------------------------------------------ query / cancel / replace

    def _find(self, message_id: str) -> _Msg | None:
        fmt = self.profile.message_id_format
        s = message_id.strip()
        if fmt == "decimal":
            if not _DEC_RE.fullmatch(s):
                return None
            n = int(s)
        elif fmt == "hex8":
            if not _HEX_RE.fullmatch(s):
                return None
            n = int(s, 16)
        else:
            s = s.lower()
            prefix = self._uuid_prefix
            if len(s) != len(prefix) + 12 or not s.startswith(prefix):
                return None
            tail = s[len(prefix) :]
            if not _HEX_RE.fullmatch(tail):
                return None
            n = int(tail, 16)
        return self._store.get(n)

    def _state_of(self, rec: _Msg, now: float) -> tuple[int, float | None]:
        if rec.final_t is not None:  # cancelled
            return _DELETED, rec.final_t
        if rec.due_t is None or now < rec.due_t or rec.code is None:
            return _ENROUTE, None
        return self._rows[rec.code][1], rec.due_t

    def _smpp_time(self, t: float) -> str:
        """SMPP 3.4 §7.1.1 absolute time, KST: YYMMDDhhmmsstnnp (nn quarter hours)."""
        wall = t + self._wall_offset
        dt = datetime.fromtimestamp(wall, KST)
        tenths = int((wall % 1) * 10)
        return f"{dt:%y%m%d%H%M%S}{tenths}36+"

    def _on_query_sm(self, conn: _Conn, req: QuerySm) -> None:
        self._queries += 1
        now = self._now()
        rec = self._find(req.message_id)
        if rec is None or (req.source_addr and req.source_addr != rec.src):
            resp: Response = QuerySmResp(int(S.ESME_RQUERYFAIL), req.sequence_number)
        else:
            state, final_t = self._state_of(rec, now)
            resp = QuerySmResp(
                _OK,
                req.sequence_number,
                (),
                rec.mid,
                "" if final_t is None else self._smpp_time(final_t),
                state,
                0,
            )
        self._reply(conn, resp, now, droppable=False)

    def _on_cancel_sm(self, conn: _Conn, req: CancelSm) -> None:
        self._cancels += 1
        now = self._now()
        rec = self._find(req.message_id) if req.message_id else None
        status = int(S.ESME_RCANCELFAIL)
        if (
            rec is not None
            and not (req.source_addr and req.source_addr != rec.src)
            and not (req.destination_addr and rec.group is None and req.destination_addr != rec.dst)
            and self._state_of(rec, now)[0] == _ENROUTE
        ):
            status = _OK
            for r in rec.group or (rec,):
                if self._state_of(r, now)[0] != _ENROUTE:
                    continue
                r.final_t = now
                if r.receipt == 1:
                    r.receipt = 0
                    self._owed -= 1
        self._reply(conn, req.make_response(status), now, droppable=False)

    def _on_replace_sm(self, conn: _Conn, req: ReplaceSm) -> None:
        self._replaces += 1
        now = self._now()
        rec = self._find(req.message_id)
        status = int(S.ESME_RREPLACEFAIL)
        if (
            rec is not None
            and not (req.source_addr and req.source_addr != rec.src)
            and self._state_of(rec, now)[0] == _ENROUTE
        ):
            status = _OK
            for r in rec.group or (rec,):
                if self._state_of(r, now)[0] != _ENROUTE:
                    continue
                r.sm = bytes(req.short_message)
                r.submit_t = now  # Appendix B: time of replacement
                r.rd = req.registered_delivery
                code = r.code
                want = code is not None and _WANT[r.rd & 3][code == 1000]
                if not want:
                    if r.receipt == 1:
                        r.receipt = 0
                        self._owed -= 1
                elif r.receipt == 0:
                    r.receipt = 1
                    self._owed += 1
                    if not r.scheduled and r.due_t is not None:
                        self._schedule(r, r.due_t, now)
        self._reply(conn, req.make_response(status), now, droppable=False)

    # ------------------------------------------------------------------ the tick

    def _arm_tick(self, now: float) -> None:
        if self._stopping:
            return
        nxt: float | None = (self._buckets[0] + 1) * TICK_S if self._buckets else None
        if self._delayed:
            d = self._delayed[0][0]
            if nxt is None or d < nxt:
                nxt = d
        if nxt is None:
            return
        at = nxt if nxt > now + TICK_S else now + TICK_S
        if self._tick_handle is not None:
            if self._tick_at <= at + TICK_S:
                return
            self._tick_handle.cancel()
        assert self._loop is not None
        self._tick_handle = self._loop.call_at(at, self._tick)
        self._tick_at = at

    def _tick(self) -> None:
        self._tick_handle = None
        now = self._now()
        touched: set[_Conn] = set()
        delayed = self._delayed
        while delayed and delayed[0][0] <= now:
            _, conn, resp = delayed.popleft()
            conn.owed -= 1
            if conn.closed:
                continue
            conn.link.session.send_response(resp)
            touched.add(conn)
        buckets = self._buckets
        wheel = self._wheel
        accounts: set[_Account] = set()
        any_bind = self._any_bind
        queue_max = self.profile.receipt_queue_max
        limit = now * _PER_TICK
        due: list[_Msg] = []
        while buckets and buckets[0] + 1 <= limit:
            due.extend(wheel.pop(heapq.heappop(buckets)))
        for rec in due:
            rec.scheduled = False
            if rec.receipt != 1:
                continue  # cancelled, or no longer wanted after replace_sm
            origin = rec.origin
            if (
                not any_bind
                and origin.can_receive
                and not origin.closed
                and len(origin.own_queue) < queue_max
            ):
                origin.own_queue.append(rec)
                touched.add(origin)
                continue
            acct = rec.acct
            if len(acct.queue) >= queue_max:
                rec.receipt = 2
                self._owed -= 1
                self._receipts_dropped += 1
                continue
            acct.queue.append(rec)
            accounts.add(acct)
        for conn in touched:
            if conn.own_queue and not conn.closed:
                self._pump_conn(conn, now)
        for acct in accounts:
            self._pump_account(acct, now, notify=False, touched=touched)
        for conn in touched:
            if not conn.closed:
                conn.link.flush_soon()
        self._arm_tick(now)

    # ------------------------------------------------------------------ receipts out

    def _pump_account(
        self,
        acct: _Account,
        now: float,
        *,
        notify: bool = True,
        touched: set[_Conn] | None = None,
    ) -> None:
        """Send held receipts into the free windows of the account's receivers,
        starting at a rotating receiver (receipts spread over binds)."""
        receivers = acct.receivers
        count = len(receivers)
        if not count or not acct.queue:
            return
        start = acct.rr % count
        acct.rr = start + 1
        for i in range(count):
            conn = receivers[(start + i) % count]
            if conn.closed or conn.link.session.window_free() <= 0:
                continue
            self._pump_conn(conn, now)
            if touched is not None:
                touched.add(conn)
            elif notify:
                conn.link.flush_soon()
            if not acct.queue:
                break

    def _pump_conn(self, conn: _Conn, now: float) -> None:
        """Fill ``conn``'s free window: its own queue first, then its account's."""
        session = conn.link.session
        free = session.window_free()
        if free <= 0 or not conn.can_receive:
            return
        inflight = conn.inflight
        tlvs_ok = conn.tlvs_ok
        acct = conn.acct
        assert acct is not None
        for queue in (conn.own_queue, acct.queue):
            while free > 0 and queue:
                rec = queue.popleft()
                if rec.receipt != 1:
                    continue  # acknowledged meanwhile (a requeued duplicate)
                pdu = self._receipt_pdu(rec, tlvs_ok)
                inflight[session.send_request(pdu, now)] = rec
                free -= 1
                self._receipts_sent += 1
                acct.receipts_sent += 1
                if rec.sent:
                    self._receipts_resent += 1
                rec.sent += 1

    def _receipt_pdu(self, rec: _Msg, tlvs_ok: bool) -> DeliverSm:
        code = rec.code
        assert code is not None
        assert rec.due_t is not None
        stat, _state, dlvrd, state_tlvs, vendor_tlvs = self._rows[code]
        fmt = self._rid_format
        if fmt == "same":
            rid = rec.mid
        elif fmt == "decimal10":
            rid = f"{rec.n:010d}"
        else:
            rid = rec.mid.upper()
        # The date cache inlined (a hit almost always): two calls less per receipt.
        dates = self._date_cache
        off = self._wall_offset
        submitted = dates.get(int(rec.submit_t + off)) or self._date(rec.submit_t)
        done = dates.get(int(rec.due_t + off)) or self._date(rec.due_t)
        text = (
            f"id:{rid} sub:001 dlvrd:{dlvrd} submit date:{submitted}"
            f" done date:{done} stat:{stat} err:{code} text:{self._text20(rec)}"
        )
        if not tlvs_ok:
            tlvs: tuple[Tlv, ...] = ()
        elif self._state_tlvs:
            tlvs = (_new_tlv(Tlv, (_TAG_RMI, rec.mid)), *state_tlvs)
        else:
            tlvs = vendor_tlvs
        # DeliverSm fields in SMPP 3.4 §4.6.1 order (positional: the hot path).
        return DeliverSm(
            0, 0, tlvs, "", rec.dst_ton, rec.dst_npi, rec.dst, rec.src_ton, rec.src_npi,
            rec.src, _ESM_RECEIPT, 0, 0, "", "", 0, 0, 0, 0, text.encode("ascii"),
        )  # fmt: skip

    def _date(self, t: float) -> str:
        sec = int(t + self._wall_offset)
        cache = self._date_cache
        s = cache.get(sec)
        if s is None:
            if len(cache) >= 4096:
                cache.clear()
            s = cache[sec] = format_receipt_date(
                datetime.fromtimestamp(sec, KST), digits=self._date_digits
            )
        return s

    def _text20(self, rec: _Msg) -> str:
        sm = rec.sm
        udhi = rec.esm & _UDHI
        dc = rec.dc
        same = _ASCII_SAME.get(dc)
        if same is not None and not udhi:  # inline fast path of receipt_text_field
            probe = sm[:TEXT_CHARS]
            if not probe.translate(None, same):
                return probe.decode("ascii")
        # Korean (KS C 5601 / UCS-2) bodies repeat in bulk sends: cache them.
        key = (dc, udhi, sm if len(sm) <= _TEXT_KEY_MAX else sm[:_TEXT_KEY_MAX])
        cache = self._text_cache
        text = cache.get(key)
        if text is None:
            if len(cache) >= _TEXT_CACHE_MAX:
                cache.clear()
            text = cache[key] = receipt_text_field(sm, dc, udhi=bool(udhi))
        return text

    # ------------------------------------------------------------------ receipts back

    def _on_response(self, conn: _Conn, request: Request, response: Response) -> None:
        rec = conn.inflight.pop(request.sequence_number, None)
        if rec is None:
            return
        if response.command_status == _OK and response.command_id != 0x80000000:
            if rec.receipt == 1:
                rec.receipt = 2
                self._owed -= 1
                self._receipts_acked += 1
                rec.acct.receipts_acknowledged += 1
        else:
            self._receipts_rejected += 1
            if rec.receipt == 1:
                rec.rejections += 1
                if rec.rejections >= self.profile.receipt_max_attempts:
                    rec.receipt = 2
                    self._owed -= 1
                    self._receipts_dropped += 1
                elif not rec.scheduled:
                    now = self._now()
                    self._schedule(rec, now + self.profile.receipt_retry_s, now)
        if conn.can_receive and (conn.own_queue or rec.acct.queue):
            # A window slot is free: refill it, once per loop turn for all
            # responses read in this turn (not one pump per deliver_sm_resp).
            pending = self._pump_pending
            if not pending:
                assert self._loop is not None
                self._loop.call_soon(self._pump_deferred)
            pending.add(conn)

    def _pump_deferred(self) -> None:
        pending = list(self._pump_pending)
        self._pump_pending.clear()
        now = self._now()
        for conn in pending:
            if not conn.closed and conn.can_receive:
                self._pump_conn(conn, now)
                conn.link.flush_soon()

    def _on_response_timeout(self, conn: _Conn, request: Request) -> None:
        rec = conn.inflight.pop(request.sequence_number, None)
        if rec is None or rec.receipt != 1:
            return
        self._receipts_requeued += 1
        rec.acct.queue.appendleft(rec)
        self._pump_account(rec.acct, self._now())

    # ------------------------------------------------------------------ faults

    def _count_pdu(self, conn: _Conn) -> bool:
        """Count a received PDU; True if the connection was dropped for it."""
        conn.pdus += 1
        n = conn.pdus
        f = self.faults
        if f.malformed_after_pdus and not self._malformed_done and n >= f.malformed_after_pdus:
            self._malformed_done = True
            self._malformed_sent += 1
            conn.link.write_raw(malformed_deliver_sm(_MALFORMED_SEQ))
        if f.stall_after_pdus and n == f.stall_after_pdus:
            self._stall(conn)
        if f.disconnect_after_pdus and n >= f.disconnect_after_pdus:
            self._disconnects += 1
            conn.closed = True
            conn.link.abort()
            return True
        return False

    def _stall(self, conn: _Conn) -> None:
        if conn.closed or conn.stalled:
            return
        self._stalls += 1
        conn.stalled = True
        conn.link.pause_reading()
        assert self._loop is not None
        handle: asyncio.TimerHandle

        def resume() -> None:
            self._stall_timers.discard(handle)
            conn.stalled = False
            if not conn.closed:
                conn.link.resume_reading()

        handle = self._loop.call_later(self.faults.stall_s, resume)
        self._stall_timers.add(handle)

    def _stall_all(self) -> None:
        for conn in list(self._conns):
            self._stall(conn)
        assert self._loop is not None
        self._fault_timers["stall"] = self._loop.call_later(
            self.faults.stall_every_s, self._stall_all
        )

    def _disconnect_all(self) -> None:
        for conn in list(self._conns):
            if not conn.closed:
                self._disconnects += 1
                conn.closed = True
                conn.link.abort()
        assert self._loop is not None
        self._fault_timers["disconnect"] = self._loop.call_later(
            self.faults.disconnect_every_s, self._disconnect_all
        )


# ============================================================================ helpers


def receipt_text_field(sm: bytes, data_coding: int, *, udhi: bool = False) -> str:
    """The Appendix B ``text:`` value for a message: its first 20 characters,
    decoded per ``data_coding`` (a leading UDH skipped when ``udhi``), every
    non-ASCII character written as ``?`` (as ``build_receipt_pdu`` does).

    Undecodable bytes end the text (the longest valid prefix is used); binary
    and unsupported codings give ``""``.
    """
    data = bytes(sm)
    if udhi and data:
        data = data[1 + data[0] :]
    # Fast path, the common case: 20 octets that read the same in ASCII.
    probe = data[:TEXT_CHARS]
    same = _ASCII_SAME.get(data_coding)
    if same is not None and not probe.translate(None, same):
        return probe.decode("ascii")
    data = data[:_TEXT_PROBE]
    try:
        text = decode_text(data, data_coding)
    except TextError as exc:
        if exc.position <= 0:
            return ""
        try:  # a character cut by the probe, or bad bytes later on: keep the prefix
            text = decode_text(data[: exc.position], data_coding)
        except TextError:
            return ""
    return text[:TEXT_CHARS].encode("ascii", "replace").decode("ascii")


def malformed_deliver_sm(sequence_number: int) -> bytes:
    """A deliver_sm whose sm_length (200) runs past its 5-octet body: framed
    correctly (command_length is right, so the stream stays in sync) but its
    short_message is truncated (SMPP 3.4 §4.6.1)."""
    body = (
        b"\x00"  # service_type ""
        + b"\x00\x00\x00"  # source ton, npi, source_addr ""
        + b"\x00\x00\x00"  # dest ton, npi, destination_addr ""
        + bytes((_ESM_RECEIPT, 0, 0))  # esm_class, protocol_id, priority_flag
        + b"\x00\x00"  # schedule_delivery_time, validity_period
        + bytes((0, 0, 0, 0))  # registered_delivery, replace, data_coding, default id
        + bytes((200,))  # sm_length
        + b"short"
    )
    return struct.pack(">IIII", 16 + len(body), _DELIVER_SM, 0, sequence_number) + body


# ============================================================================ CLI

_FAULT_HELP: Final = {
    "disconnect_after_pdus": "abort a connection when it has received N PDUs",
    "disconnect_every_s": "abort every connection every T seconds",
    "stall_after_pdus": "stop reading a connection for --stall-s after N PDUs",
    "stall_every_s": "stop reading every connection for --stall-s every T seconds",
    "stall_s": "stall length in seconds",
    "response_delay_ms": "delay every message response by D milliseconds",
    "drop_response_rate": "fraction (0..1) of submit responses never sent",
    "error_rate": "fraction (0..1) of submits answered with --error-status",
    "error_status": "command_status of injected errors (e.g. 0x58, 0x14)",
    "refuse_binds": "refuse the first N binds with ESME_RBINDFAIL (-1 = all)",
    "malformed_after_pdus": "send one malformed deliver_sm after N PDUs on a connection",
}


def _int_auto(s: str) -> int:
    return int(s, 0)


def _toml_value(s: str) -> Any:
    try:
        return tomllib.loads(f"v = {s}")["v"]
    except tomllib.TOMLDecodeError:
        return s  # a bare string


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="relay-sim carrier",
        description="Carrier SMSC simulator (SMPP v3.4). Runs until SIGTERM/SIGINT, "
        "then prints one JSON object (the accounting) on stdout.",
    )
    ap.add_argument("--profile", required=True, help="skt | kt | lgu (or a name in --config)")
    ap.add_argument("--listen", help="HOST:PORT (default 127.0.0.1:<profile port>; port 0 = any)")
    ap.add_argument("--config", help="TOML file with [carrier.NAME] profiles")
    ap.add_argument("--seed", type=int, default=0, help="seed of every random choice")
    ap.add_argument("--id-start", type=int, default=1, help="first message-id counter value")
    ap.add_argument("--receipt-median-s", type=float, help="receipt delay median (s)")
    ap.add_argument("--receipt-p99-s", type=float, help="receipt delay 99th percentile (s)")
    ap.add_argument(
        "--receipt-uniform-max-s",
        type=float,
        help="receipt delay uniform on [0, S] instead of log-normal (0 = off)",
    )
    ap.add_argument("--tps-per-bind", type=float, help="submits/s per bind (0 = unlimited)")
    ap.add_argument("--window", type=int, help="unanswered requests per bind")
    ap.add_argument("--receipt-window", type=int, help="deliver_sm outstanding per bind")
    ap.add_argument("--max-binds", type=int, help="binds per system_id (0 = unlimited)")
    ap.add_argument(
        "--ready-file",
        help='once listening, write {"port": P, "pid": PID} as JSON here (atomically)',
    )
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any profile key (VALUE in TOML syntax)",
    )
    faults = ap.add_argument_group("faults")
    for f in dataclasses.fields(Faults):
        kind: Callable[[str], Any] = (
            _int_auto if f.name == "error_status" else int if f.type == "int" else float
        )
        faults.add_argument(
            "--" + f.name.replace("_", "-"),
            type=kind,
            default=f.default,
            help=_FAULT_HELP[f.name],
        )
    return ap


def _write_ready_file(path: str, info: dict[str, Any]) -> None:
    # Written once at start-up, then renamed: a reader never sees half a file.
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(json.dumps(info))
    os.replace(tmp, path)


def _run(coro: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency
        return asyncio.run(coro)
    return uvloop.run(coro)


def main(argv: list[str] | None = None) -> int:
    """``relay-sim carrier ...``: run until SIGTERM/SIGINT, print the accounting
    as one JSON object on stdout, exit 0. Bad arguments or config: 2."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["carrier"]:
        args_list = args_list[1:]
    args = _parser().parse_args(args_list)
    prog = "relay-sim carrier"
    overrides: dict[str, Any] = {}
    for flag in (
        "receipt_median_s",
        "receipt_p99_s",
        "receipt_uniform_max_s",
        "tps_per_bind",
        "window",
    ):
        if getattr(args, flag) is not None:
            overrides[flag] = getattr(args, flag)
    for flag in ("receipt_window", "max_binds"):
        if getattr(args, flag) is not None:
            overrides[flag] = getattr(args, flag)
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            print(f"{prog}: --set needs KEY=VALUE, got {item!r}", file=sys.stderr)
            return 2
        overrides[key.strip()] = _toml_value(value.strip())
    try:
        profile = load_profile(args.profile, args.config, **overrides)
        faults = Faults(**{f.name: getattr(args, f.name) for f in dataclasses.fields(Faults)})
    except (ProfileError, ValueError, OSError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    if args.id_start < 0:
        print(f"{prog}: --id-start must be >= 0, got {args.id_start}", file=sys.stderr)
        return 2
    host, port = "127.0.0.1", profile.port
    if args.listen:
        h, sep, p = args.listen.rpartition(":")
        if not sep or not p.isdigit():
            print(f"{prog}: --listen needs HOST:PORT, got {args.listen!r}", file=sys.stderr)
            return 2
        host, port = h or "127.0.0.1", int(p)

    async def run() -> dict[str, Any]:
        sim = CarrierSimulator(
            profile, seed=args.seed, faults=faults, host=host, port=port, id_start=args.id_start
        )
        await sim.start()
        print(
            f"{prog}: profile {profile.name} listening on {host}:{sim.port}",
            file=sys.stderr,
            flush=True,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if args.ready_file:  # after the handlers: a SIGTERM from then on prints accounting
            _write_ready_file(args.ready_file, {"port": sim.port, "pid": os.getpid()})
        await stop.wait()
        await sim.stop()
        return sim.accounting()

    tune_gc()  # ~15% of the CPU otherwise (simulators/link.py)
    accounting = _run(run())
    sys.stdout.write(json.dumps(accounting, sort_keys=True) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
