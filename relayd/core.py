"""The relay core: the single owner of every in-flight message (architecture.md §1–§3).

:class:`Relay` owns the message table, the per-route queues, the correlation of
carrier ids to our messages and the receipts owed upstream. Everything runs on
the event loop and every method is synchronous: the upstream server and the
carrier links call in, the core decides, and nothing holds message state across
an ``await``. Durability goes through the WAL (``relayd/wal.py``): a decision
that must survive a crash is appended there and acted upon only when its
group commit returned:

* a submit is answered ``submit_sm_resp`` only after its ``A`` record is durable;
* a carrier receipt is answered ``deliver_sm_resp`` only after the ``F`` record
  is durable (so a crash can never lose a final the carrier will not resend);
* ``S`` and ``R`` records are written without waiting: losing one in a crash
  means a resend (at-least-once toward carriers) or a repeated report on a new
  bind after restart, never a lost message.

Routing: each message is queued on the queue of its route (the ordered carrier
list of ``Config.route_for``). Dispatch walks the queues and, for the message at
each head, takes the first carrier of its list that is up and has a free window
slot — so a dead or saturated carrier is skipped for the next one and nothing
waits behind it while another carrier of its list can take it.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from protocol.constants import TAG_KR_RESULT_CODE, CommandStatus, EsmClass, MessageState, Tag
from protocol.msgid import MessageIdError, policy_from_name
from protocol.pdu import DeliverSm
from protocol.receipt import Receipt
from protocol.resultcodes import RESULT_CODES
from protocol.tlv import Tlv
from relayd.model import (
    FINAL,
    FINAL_STATE_NAMES,
    INFLIGHT,
    K_ACCEPTED,
    K_FINAL,
    K_REPORTED,
    K_SUBMITTED,
    QUEUED,
    SUBMITTED,
    Final,
    Msg,
)

if TYPE_CHECKING:
    from relayd.carriers import CarrierPool
    from relayd.config import Config
    from relayd.metrics import Metrics
    from relayd.store import Store
    from relayd.upstream import UpstreamServer
    from relayd.wal import Wal

log = logging.getLogger("relayd.core")

KST = timezone(timedelta(hours=9))
S = CommandStatus

# Carrier submit statuses that mean "try again later" (digest §4, common practice);
# each carrier may add more in its configuration.
BASE_TEMPORARY_STATUSES = frozenset(
    {S.ESME_RTHROTTLED, S.ESME_RMSGQFUL, S.ESME_RSYSERR, S.ESME_RX_T_APPN}
)

# Submit-time rejections of the Korean table (korea-messaging.md §7): status → code.
_CODE_FOR_SUBMIT_STATUS = {
    row.submit_status: row.code for row in RESULT_CODES.values() if row.submit_status is not None
}


_B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_TAG_RMI = int(Tag.receipted_message_id)
_TAG_STATE = int(Tag.message_state)
_ESM_RECEIPT = int(EsmClass.SMSC_DELIVERY_RECEIPT)


def _now() -> float:
    return time.time()


def final_for_code(code: int) -> Final:
    """A relay-made final for a Korean result code, with the stat and message_state
    of its row in korea-messaging.md §7 (protocol.resultcodes)."""
    row = RESULT_CODES[code]
    assert row.stat is not None
    assert row.message_state is not None
    return Final(row.message_state, code, row.stat, str(code), _now())


class Relay:
    """Owner of message state. Built by ``relayd.main``; see module docstring."""

    def __init__(self, config: Config, wal: Wal, store: Store, metrics: Metrics) -> None:
        self.config = config
        self.wal = wal
        self.store = store
        self.metrics = metrics
        self.loop = asyncio.get_running_loop()
        self.messages: dict[str, Msg] = {}
        # accepted, WAL record not yet durable: part of any checkpoint taken now
        self.pending_accept: dict[str, Msg] = {}
        # route (tuple of carrier names) → FIFO of messages ready to send
        self.queues: dict[tuple[str, ...], deque[Msg]] = {}
        self.retry_heap: list[tuple[float, int, Msg]] = []
        self._retry_seq = 0
        # (carrier, canonical carrier id) → (message, part index)
        self.by_carrier_id: dict[tuple[str, str], tuple[Msg, int]] = {}
        # receipts that arrived before their submit_sm_resp was processed
        # receipts that arrived before their submit_sm_resp was processed:
        # key → (receipt, ack, the carrier's submit ordinal when it arrived)
        self.parked: dict[tuple[str, str], tuple[Receipt, Callable[[int], None], int]] = {}
        # per carrier, in arrival order: (ordinal, key, entry, deadline)
        self._parked_order: dict[str, deque[tuple[int, tuple[str, str], Any, float]]] = {}
        self._parked_timer: asyncio.TimerHandle | None = None
        # finals owed upstream, per account, in order
        self.reports: dict[str, deque[Msg]] = {}
        self.carriers: CarrierPool | None = None
        self.upstream: UpstreamServer | None = None
        self._dispatch_handle: asyncio.Handle | None = None
        self._retry_timer: asyncio.Handle | None = None
        self._retry_at = 0.0
        self._id_counter = 0
        self._id_prefix_ts = ""
        self._id_second = -1
        self.id_policies = {c.name: policy_from_name(c.id_policy) for c in config.carriers}
        self.temporary_statuses = {
            c.name: BASE_TEMPORARY_STATUSES | frozenset(c.temporary_statuses)
            for c in config.carriers
        }
        self.unknown_receipts = 0
        self._date_cache: dict[int, str] = {}
        self.accepting = True
        self._wal_refusals = 0
        self._wal_refusal_logged_at = float("-inf")
        self._reported_ids: list[str] = []
        self._reported_handle: asyncio.Handle | None = None

    # ================================================================ ids

    def new_message_id(self) -> str:
        """korea-messaging.md §13 convention: requestId (14-digit KST time + 8 base32
        chars) + 4-digit recipient index + channel 'S'. The base32 part is a
        per-process counter seeded from the clock, unique across restarts."""
        if not self._id_counter:
            self._id_counter = int(time.time() * 1000) << 8
        self._id_counter += 1
        now = int(time.time())
        if now != self._id_second:
            self._id_second = now
            self._id_prefix_ts = datetime.fromtimestamp(now, KST).strftime("%Y%m%d%H%M%S")
        n = self._id_counter & ((1 << 40) - 1)
        a = _B32
        return (
            f"{self._id_prefix_ts}{a[n >> 35]}{a[(n >> 30) & 31]}{a[(n >> 25) & 31]}"
            f"{a[(n >> 20) & 31]}{a[(n >> 15) & 31]}{a[(n >> 10) & 31]}{a[(n >> 5) & 31]}"
            f"{a[n & 31]}0000S"
        )

    # ================================================================ accept (upstream → WAL)

    def accept(
        self, msg: Msg, answer: Callable[[Any, Msg, Exception | None], None], ctx: Any
    ) -> None:
        """Append the message's ``A`` record; ``answer(ctx, msg, None)`` is called
        when it is durable (then, and only then, the caller answers
        submit_sm_resp) and the message enters the queues at that moment;
        ``answer(ctx, msg, error)`` if the disk failed first (the message is not
        ours). No closure per message: ``answer`` is the caller's bound method.

        Raises:
            WalFullError / WalError: the WAL cannot take it (answer an error status).
        """
        self.wal.append_then(msg.accepted_record(), self._accept_durable, (msg, answer, ctx))
        self.pending_accept[msg.id] = msg

    def _accept_durable(
        self, entry: tuple[Msg, Callable[[Any, Msg, Exception | None], None], Any], error: Any
    ) -> None:
        msg, answer, ctx = entry
        self.pending_accept.pop(msg.id, None)
        if error is None:
            self._on_accept_durable(msg)
        answer(ctx, msg, error)

    def _on_accept_durable(self, msg: Msg) -> None:
        self.messages[msg.id] = msg
        msg.route = self.config.route_for(msg.account, msg.dst)
        if not msg.route:
            self._finalise(msg, final_for_code(3015))  # 전송 경로 없음: no route
            return
        self._enqueue(msg)

    def _enqueue(self, msg: Msg) -> None:
        msg.state = QUEUED
        q = self.queues.get(msg.route)
        if q is None:
            q = self.queues[msg.route] = deque()
        q.append(msg)
        self.dispatch_soon()

    # ================================================================ dispatch (queues → carriers)

    def dispatch_soon(self) -> None:
        if self._dispatch_handle is None:
            self._dispatch_handle = self.loop.call_soon(self._dispatch)

    def _dispatch(self) -> None:
        self._dispatch_handle = None
        pool = self.carriers
        if pool is None:
            return
        now = _now()
        pool.begin_round()
        for route, q in self.queues.items():
            while q:
                msg = q[0]
                if msg.state != QUEUED or msg.id not in self.messages:
                    q.popleft()  # cancelled or finalised meanwhile
                    continue
                if msg.expires_at and now >= msg.expires_at:
                    q.popleft()
                    self._finalise(msg, final_for_code(2000))
                    continue
                if not pool.submit(route, msg):
                    break  # every carrier of this route is down, saturated or full
                q.popleft()
        self.metrics.queue_depth(self.queues)

    def requeue(self, msg: Msg, *, delay_s: float = 0.0, count_attempt: bool = True) -> None:
        """Put a message back (temporary error, timeout, disconnect)."""
        if msg.id not in self.messages or msg.state == FINAL:
            return
        if count_attempt:
            msg.attempts += 1
        if msg.attempts >= self.config.retry.max_attempts:
            self._finalise(msg, final_for_code(3011))  # 서버 오류: retries exhausted
            return
        msg.state = QUEUED
        if msg.carrier is not None:
            # Parts of this attempt already acknowledged must not match later
            # receipts: the whole message is sent again. History keeps them
            # (the message's "done" event names only its last attempt's ids).
            for part, cid in enumerate(msg.carrier_ids):
                if cid is not None:
                    self.by_carrier_id.pop((msg.carrier, cid), None)
                    self.store.record(
                        ("submitted", msg.id, part, msg.carrier, cid, msg.submitted_at)
                    )
        msg.carrier_ids = []
        msg.part_finals = []
        if delay_s <= 0:
            self._enqueue(msg)
            return
        self._retry_seq += 1
        heapq.heappush(self.retry_heap, (self.loop.time() + delay_s, self._retry_seq, msg))
        self._arm_retry()

    def backoff_s(self, msg: Msg) -> float:
        r = self.config.retry
        return float(min(r.backoff_max_s, r.backoff_min_s * (2 ** min(msg.attempts, 16))))

    def _arm_retry(self) -> None:
        if not self.retry_heap:
            return
        due = self.retry_heap[0][0]
        if self._retry_timer is not None:
            # Keep the due time ourselves: uvloop's call_at returns a plain Handle
            # without .when() when the deadline is under 0.5 ms away.
            if self._retry_at <= due:
                return
            self._retry_timer.cancel()
        self._retry_at = due
        self._retry_timer = self.loop.call_at(due, self._on_retry)

    def _on_retry(self) -> None:
        self._retry_timer = None
        now = self.loop.time()
        while self.retry_heap and self.retry_heap[0][0] <= now:
            _, _, msg = heapq.heappop(self.retry_heap)
            if msg.id in self.messages and msg.state == QUEUED:
                self._enqueue(msg)
        self._arm_retry()

    def expire_sweep(self, now: float | None = None) -> int:
        """End every message whose validity period has passed (EXPIRED, 2000), whether
        it waits here or at a carrier that never sent its receipt. Run periodically.
        """
        now = _now() if now is None else now
        expired = [
            m
            for m in self.messages.values()
            if m.final is None and m.expires_at and now >= m.expires_at
        ]
        for msg in expired:
            self._finalise(msg, final_for_code(2000))
        if expired:
            self.dispatch_soon()
        return len(expired)

    # ================================================================ carrier outcomes

    def on_part_acked(
        self, msg: Msg, part: int, nparts: int, carrier: str, carrier_id: str
    ) -> None:
        """A carrier accepted one part and returned its id."""
        if msg.id not in self.messages:
            return
        try:
            canonical = self.id_policies[carrier].canonical_resp_id(carrier_id)
        except MessageIdError:
            canonical = carrier_id
        while len(msg.carrier_ids) < nparts:
            msg.carrier_ids.append(None)
            msg.part_finals.append(None)
        msg.carrier_ids[part] = canonical
        msg.carrier = carrier
        key = (carrier, canonical)
        self.by_carrier_id[key] = (msg, part)
        now = msg.submitted_at = _now()
        self.wal.append_nowait([K_SUBMITTED, msg.id, part, nparts, carrier, canonical, now])
        if None not in msg.carrier_ids and msg.state == INFLIGHT:
            msg.state = SUBMITTED
        parked = self.parked.pop(key, None)
        if parked is not None:
            self.on_carrier_receipt(carrier, parked[0], parked[1])

    def on_part_rejected(self, msg: Msg, carrier: str, status: int) -> None:
        """A carrier answered a submit with a non-zero status."""
        if msg.id not in self.messages or msg.state == FINAL:
            return
        temporary = status in self.temporary_statuses.get(carrier, BASE_TEMPORARY_STATUSES)
        self.store.record(("attempt_failed", msg.id, 0, carrier, status, temporary, _now()))
        if temporary:
            if status == S.ESME_RTHROTTLED:
                # "ESME exceeded allowed message limits": our rate, not the message's
                # fault. Requeue without counting an attempt (the bind's AIMD window
                # slows us down); bounded by the validity period. ESME_RMSGQFUL
                # (1001 Server Busy, class S) is the SMSC's trouble: it counts.
                self.requeue(msg, delay_s=self.config.retry.backoff_min_s, count_attempt=False)
            else:
                self.requeue(msg, delay_s=self.backoff_s(msg))
            return
        code = _CODE_FOR_SUBMIT_STATUS.get(status)
        err = str(code) if code is not None else f"{status & 0xFFF:03X}"
        self._finalise(msg, Final(MessageState.REJECTED, code, "REJECTD", err, _now()))

    def on_part_lost(self, msg: Msg) -> None:
        """No response (timeout) or the bind dropped before it: send again."""
        if msg.id in self.messages and msg.state in (INFLIGHT, QUEUED):
            self.requeue(msg, delay_s=self.backoff_s(msg), count_attempt=True)

    def on_carrier_receipt(
        self,
        carrier: str,
        receipt: Receipt,
        ack: Callable[[int], None],
    ) -> None:
        """A receipt from a carrier. ``ack(status)`` answers its deliver_sm; called once
        the final is durable (or at once for unknown/intermediate receipts)."""
        try:
            canonical = self.id_policies[carrier].canonical_receipt_id(receipt.message_id)
        except MessageIdError:
            self.unknown_receipts += 1
            self.metrics.receipt_unknown(carrier)
            ack(0)
            return
        key = (carrier, canonical)
        entry = self.by_carrier_id.get(key)
        if entry is None:
            pool = self.carriers
            c = pool.carriers.get(carrier) if pool is not None else None
            if (
                c is not None
                and key not in self.parked
                and len(self.parked) < 100_000
                and c.oldest_outstanding() is not None
            ):
                # Maybe its submit_sm_resp is still on its way (another bind, or
                # not yet processed): park it, answered once matched. Only as
                # long as a submit sent to this carrier BEFORE it arrived still
                # awaits its answer (the carrier cannot receipt a message it
                # was not sent), 5 s at most: a parked receipt holds a slot of
                # the carrier's receipt window, and after a restart the carrier
                # resends receipts of messages long finished — those are
                # answered as soon as they cannot be early ones.
                entry = (receipt, ack, c.sent)
                self.parked[key] = entry
                order = self._parked_order.get(carrier)
                if order is None:
                    order = self._parked_order[carrier] = deque()
                order.append((c.sent, key, entry, self.loop.time() + 5.0))
                if self._parked_timer is None:
                    self._parked_timer = self.loop.call_later(0.02, self._sweep_parked)
                return
            self.unknown_receipts += 1
            self.metrics.receipt_unknown(carrier)
            ack(0)
            return
        msg, part = entry
        if not receipt.is_final:
            ack(0)
            return
        state = receipt.message_state if receipt.message_state is not None else MessageState.UNKNOWN
        code = receipt.result_code
        err = receipt.err or (str(code) if code is not None else "")
        stat = receipt.stat or FINAL_STATE_NAMES.get(state, "UNKNOWN")[:7]
        part_final = Final(state, code, stat, err, _now())
        del self.by_carrier_id[key]
        if msg.id not in self.messages or msg.final is not None:
            ack(0)
            return
        while len(msg.part_finals) <= part:
            msg.part_finals.append(None)
        msg.part_finals[part] = part_final
        self.metrics.receipt_in(carrier, stat, code)
        finals = msg.part_finals
        if None in finals or len(finals) < len(msg.carrier_ids):
            ack(0)  # more parts to come; the part's final is recomputed on replay
            return
        # The message's final: delivered only if every part was; else the first failure.
        final = (
            part_final
            if len(finals) == 1
            else next(
                (f for f in finals if f is not None and f.state != MessageState.DELIVERED),
                part_final,
            )
        )
        if not self._finalise(msg, final, ack):
            ack(0)

    def _sweep_parked(self) -> None:
        """Answer parked receipts that can no longer be early ones: every submit
        sent to their carrier before they arrived has been answered (or lost),
        or 5 s passed. Acknowledged, counted unknown, logged once per sweep."""
        self._parked_timer = None
        pool = self.carriers
        now = self.loop.time()
        expired: dict[str, int] = {}
        for carrier, order in self._parked_order.items():
            c = pool.carriers.get(carrier) if pool is not None else None
            oldest = c.oldest_outstanding() if c is not None else None
            while order:
                ordinal, key, entry, deadline = order[0]
                if self.parked.get(key) is not entry:
                    order.popleft()  # matched meanwhile
                    continue
                if oldest is not None and oldest <= ordinal and now < deadline:
                    break  # a submit sent before it still awaits its answer
                order.popleft()
                del self.parked[key]
                self.unknown_receipts += 1
                self.metrics.receipt_unknown(carrier)
                expired[carrier] = expired.get(carrier, 0) + 1
                log.debug("unknown receipt from %s (id %s)", carrier, key[1])
                entry[1](0)
        for carrier, n in expired.items():
            log.warning("%d receipts from %s matched no message; acknowledged", n, carrier)
        if any(self._parked_order.values()):
            self._parked_timer = self.loop.call_later(0.02, self._sweep_parked)

    # ================================================================ finals and reports

    def _finalise(self, msg: Msg, final: Final, ack: Callable[[int], None] | None = None) -> bool:
        """Record the final (WAL ``F``), then queue its receipt upstream. ``ack``
        (a carrier receipt's answer) is called with 0 once the final is durable,
        ESME_RX_T_APPN if the disk failed. Returns False if nothing was recorded
        (already final, or the WAL refused): ``ack`` is then not called."""
        if msg.final is not None:
            return False
        msg.final = final
        msg.state = FINAL
        for cid in msg.carrier_ids:
            if cid is not None and msg.carrier is not None:
                self.by_carrier_id.pop((msg.carrier, cid), None)

        try:
            self.wal.append_then(
                [K_FINAL, msg.id, final.state, final.code, final.stat, final.err, final.done_at],
                self._final_durable,
                (msg, ack),
            )
        except Exception:  # WAL full/failed: the final is re-derived after restart
            self._wal_refused("final", 1)
            recorded = False
        else:
            recorded = True
        self.metrics.final(final.stat, final.code)
        return recorded

    def _final_durable(self, entry: tuple[Msg, Callable[[int], None] | None], error: Any) -> None:
        msg, ack = entry
        if error is None:
            self._queue_report(msg)
        if ack is not None:
            ack(0 if error is None else S.ESME_RX_T_APPN)

    def _queue_report(self, msg: Msg) -> None:
        if not msg.wants_receipt:
            self._reported(msg, False)
            return
        q = self.reports.get(msg.account)
        if q is None:
            q = self.reports[msg.account] = deque()
        q.append(msg)
        if self.upstream is not None:
            self.upstream.pump_reports(msg.account)

    def build_upstream_receipt(self, msg: Msg) -> DeliverSm:
        """The deliver_sm receipt for ``msg``: Appendix B text with our id and the
        carrier's Korean code in ``err:``, plus receipted_message_id, message_state
        and the vendor result-code TLV.

        Hot path (one per message): the text is formatted directly rather than
        through ``protocol.receipt.build_receipt_text`` (a test proves them equal),
        and the minute-resolution dates are cached.
        """
        f = msg.final
        assert f is not None
        err = f.err
        if not err or err.isdigit():
            err = err.zfill(3)
        delivered = 1 if f.state == MessageState.DELIVERED else 0
        text = (
            f"id:{msg.id} sub:001 dlvrd:{delivered:03d}"
            f" submit date:{self._yymmddhhmm(msg.accepted_at)}"
            f" done date:{self._yymmddhhmm(f.done_at)} stat:{f.stat} err:{err} text:"
        )
        code = f.code
        tlvs: tuple[Tlv, ...] = (
            (
                Tlv(_TAG_RMI, msg.id),
                Tlv(_TAG_STATE, int(f.state)),
                Tlv(TAG_KR_RESULT_CODE, (code & 0xFFFF).to_bytes(2, "big")),
            )
            if code is not None
            else (Tlv(_TAG_RMI, msg.id), Tlv(_TAG_STATE, int(f.state)))
        )
        # Positional, SMPP 3.4 §4.6.1 order (as SubmitSm; keywords cost ~1 µs):
        # source = the handset (the message's destination), destination = the app.
        return DeliverSm(
            0, 0, tlvs, "", msg.dst_ton, msg.dst_npi, msg.dst, msg.src_ton, msg.src_npi,
            msg.src, _ESM_RECEIPT, 0, 0, "", "", 0, 0, 0, 0, text.encode("latin-1"),
        )  # fmt: skip

    def _yymmddhhmm(self, ts: float) -> str:
        minute = int(ts // 60)
        cached = self._date_cache.get(minute)
        if cached is None:
            if len(self._date_cache) > 4096:
                self._date_cache.clear()
            cached = self._date_cache[minute] = datetime.fromtimestamp(minute * 60, KST).strftime(
                "%y%m%d%H%M"
            )
        return cached

    def next_report(self, account: str) -> Msg | None:
        q = self.reports.get(account)
        while q:
            msg = q.popleft()
            if msg.id in self.messages:
                return msg
        return None

    def report_failed(self, msg: Msg) -> None:
        """The upstream deliver_sm was not acknowledged: keep it for the next bind."""
        if msg.id in self.messages:
            self.reports.setdefault(msg.account, deque()).appendleft(msg)

    def report_done(self, msg: Msg) -> None:
        self._reported(msg, True)

    def _reported(self, msg: Msg, receipt_sent: bool) -> None:
        if self.messages.pop(msg.id, None) is None:
            return
        # One R record per loop turn for all the messages reported in it.
        self._reported_ids.append(msg.id)
        if self._reported_handle is None:
            self._reported_handle = self.loop.call_soon(self.flush_reported)
        # The whole life in one history event (relayd/store.py "done").
        f = msg.final
        assert f is not None
        self.store.record(
            (
                "done",
                msg.id,
                msg.account,
                msg.src,
                msg.dst,
                max(len(msg.carrier_ids), 1),
                msg.registered_delivery,
                msg.accepted_at,
                msg.carrier,
                msg.carrier_ids,  # not changed any more: the message is over
                msg.submitted_at,
                FINAL_STATE_NAMES.get(f.state, "UNKNOWN"),
                f.code,
                f.stat,
                f.done_at,
                _now() if receipt_sent else None,
            )
        )

    def flush_reported(self) -> None:
        """Append the ``R`` record of the messages reported since the last call."""
        self._reported_handle = None
        ids, self._reported_ids = self._reported_ids, []
        if not ids:
            return
        try:
            self.wal.append_nowait([K_REPORTED, *ids])
        except Exception:
            self._wal_refused("reported", len(ids))

    def _wal_refused(self, kind: str, n: int) -> None:
        """Log WAL refusals once per 10 s with a count, not once per message: a
        failed disk refuses every record, and the WAL already logged why."""
        self._wal_refusals += n
        now = self.loop.time()
        if now - self._wal_refusal_logged_at < 10.0:
            return
        self._wal_refusal_logged_at = now
        log.error(
            "WAL refused %d records (latest: %s) since the last report; finals are "
            "re-derived and reports repeated after a restart",
            self._wal_refusals,
            kind,
        )
        self._wal_refusals = 0

    def pending_reports(self, account: str) -> int:
        return len(self.reports.get(account, ()))

    # ================================================================ query / cancel

    def cancel(self, account: str, msg_id: str) -> bool:
        """cancel_sm: only a message that has not reached a carrier (SMPP 3.4 §4.9)."""
        msg = self.messages.get(msg_id)
        if msg is None or msg.account != account or msg.state != QUEUED or msg.carrier_ids:
            return False
        self._finalise(msg, Final(MessageState.DELETED, None, "DELETED", "000", _now()))
        return True

    def lookup(self, account: str, msg_id: str) -> Msg | None:
        msg = self.messages.get(msg_id)
        if msg is None or msg.account != account:
            return None
        return msg

    # ================================================================ recovery / checkpoint

    def apply_record(self, r: list[Any]) -> None:
        """Replay one WAL record (idempotent)."""
        kind = r[0]
        if kind == K_ACCEPTED:
            if r[1] not in self.messages:
                self.messages[r[1]] = Msg.from_accepted(r)
        elif kind == K_SUBMITTED:
            msg = self.messages.get(r[1])
            if msg is not None and msg.final is None:
                part, nparts, carrier, canonical = r[2], r[3], r[4], r[5]
                while len(msg.carrier_ids) < nparts:
                    msg.carrier_ids.append(None)
                    msg.part_finals.append(None)
                msg.carrier_ids[part] = canonical
                msg.carrier = carrier
                msg.submitted_at = r[6]
                if all(c is not None for c in msg.carrier_ids):
                    msg.state = SUBMITTED
        elif kind == K_FINAL:
            msg = self.messages.get(r[1])
            if msg is not None and msg.final is None:
                msg.final = Final(r[2], r[3], r[4], r[5], r[6])
                msg.state = FINAL
        elif kind == K_REPORTED:
            for mid in r[1:]:  # one record names every message reported in a loop turn
                self.messages.pop(mid, None)

    def load_snapshot(self, blobs: Iterable[bytes]) -> None:
        for blob in blobs:
            m = Msg.from_snapshot(blob)
            self.messages[m.id] = m

    def resume_after_recovery(self) -> dict[str, int]:
        """Rebuild queues, correlation and pending reports from ``self.messages``."""
        requeued = awaiting = to_report = 0
        for msg in list(self.messages.values()):
            msg.route = self.config.route_for(msg.account, msg.dst)
            if msg.final is not None:
                msg.state = FINAL
                self._queue_report(msg)
                to_report += 1
            elif msg.carrier_ids and all(c is not None for c in msg.carrier_ids):
                msg.state = SUBMITTED
                for i, cid in enumerate(msg.carrier_ids):
                    if (
                        cid is not None
                        and msg.carrier is not None
                        and (i >= len(msg.part_finals) or msg.part_finals[i] is None)
                    ):
                        self.by_carrier_id[(msg.carrier, cid)] = (msg, i)
                awaiting += 1
            else:
                # Not confirmed by a carrier before the crash: send again.
                msg.carrier_ids = []
                msg.part_finals = []
                if msg.route:
                    self._enqueue(msg)
                else:
                    self._finalise(msg, final_for_code(3015))
                requeued += 1
        return {"requeued": requeued, "awaiting_receipt": awaiting, "to_report": to_report}

    def snapshot_blobs(self) -> list[bytes]:
        out = [m.snapshot() for m in self.messages.values()]
        out.extend(m.snapshot() for m in self.pending_accept.values())
        return out

    def statistics(self) -> dict[str, int]:
        return {
            "messages": len(self.messages),
            "queued": sum(len(q) for q in self.queues.values()),
            "retrying": len(self.retry_heap),
            "awaiting_receipt": len(self.by_carrier_id),
            "reports_pending": sum(len(q) for q in self.reports.values()),
            "unknown_receipts": self.unknown_receipts,
        }


def epoch_to_utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


__all__ = ["BASE_TEMPORARY_STATUSES", "TAG_KR_RESULT_CODE", "Relay"]
