"""Outbound binds to the carriers' SMSCs (relayd as ESME).

Per carrier: ``binds`` connections (transceivers, or transmitter+receiver
pairs), each reconnecting with jittered exponential backoff, each with its own
window (the session's) and an AIMD congestion window cut in half on
ESME_RTHROTTLED / ESME_RMSGQFUL and grown by one slot per window of successes.
The links keep no message state of their own beyond "which message is behind
this sequence number"; every outcome goes straight to the Relay.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import TYPE_CHECKING, Any

from protocol.constants import CommandStatus, EsmClass
from protocol.errors import LocalProtocolError, TextError
from protocol.events import (
    BindFailed,
    Bound,
    ConnectionClosed,
    Event,
    RequestReceived,
    ResponseReceived,
    ResponseTimedOut,
)
from protocol.pdu import (
    BindReceiver,
    BindTransceiver,
    BindTransmitter,
    DataSm,
    DeliverSm,
    SubmitSm,
)
from protocol.receipt import parse_receipt
from protocol.segment import ConcatMethod, split_bytes, split_text
from protocol.session import Role
from protocol.text import DefaultAlphabet, decode_text, is_binary
from relayd.link import Link
from relayd.model import INFLIGHT, QUEUED, Msg

if TYPE_CHECKING:
    from relayd.config import CarrierConfig
    from relayd.core import Relay

log = logging.getLogger("relayd.carriers")
S = CommandStatus
_THROTTLE = frozenset({S.ESME_RTHROTTLED, S.ESME_RMSGQFUL})
SINGLE_SMS_OCTETS = 140

# CarrierBind.submit outcomes.
SENT, NO_ROOM, TOO_BIG = 1, 0, -1


class CarrierBind:
    """One connection slot of a carrier: the current link, if any, and its window."""

    def __init__(self, carrier: Carrier, index: int, kind: str) -> None:
        self.carrier = carrier
        self.index = index
        self.kind = kind  # "trx", "tx" or "rx"
        self.link: Link | None = None
        self.bound = False
        # sequence_number → (message, part, parts, attempt, carrier-wide ordinal);
        # insertion order is send order, so the first entry is the oldest.
        self.inflight: dict[int, tuple[Msg, int, int, int, int]] = {}
        self.cwnd = float(carrier.cfg.window)
        self.blocked_until = 0.0
        self.tokens = 0.0
        self.tokens_at = 0.0
        self.task: asyncio.Task[None] | None = None
        self.bound_this_connection = False
        self.name = f"{carrier.name}/{kind}{index}"

    @property
    def can_send(self) -> bool:
        return self.bound and self.kind != "rx" and self.link is not None

    def free(self, now: float) -> int:
        link = self.link
        if not self.bound or link is None or self.kind == "rx" or now < self.blocked_until:
            return 0
        free = min(link.session.window_free(), int(self.cwnd) - len(self.inflight))
        max_tps = self.carrier.cfg.max_tps
        if max_tps > 0 and free > 0:
            self.tokens = min(max_tps, self.tokens + (now - self.tokens_at) * max_tps)
            self.tokens_at = now
            free = min(free, int(self.tokens))
        return free

    # ---------------------------------------------------------------- sending

    def submit(self, msg: Msg, now: float, free: int | None = None) -> int:
        """Send every part of ``msg`` on this bind, or none of them.

        Returns SENT (sent, or ended: a message that cannot be split is
        rejected), NO_ROOM (the parts do not fit the free window now; the
        message is untouched) or TOO_BIG (more parts than this carrier's whole
        window: never fits here). A message never goes out partly: parts sent
        before a full window would reach the handset again when it is resent.
        An idle bind takes a message whole even beyond its AIMD window.
        ``free``: :meth:`free` as the caller already knows it (this loop turn).
        """
        relay = self.carrier.relay
        link = self.link
        assert link is not None
        try:
            parts = self.carrier.split(msg)
        except (TextError, LocalProtocolError) as exc:
            log.warning("cannot split %s for %s: %s", msg.id, self.carrier.name, exc)
            relay.on_part_rejected(msg, self.carrier.name, S.ESME_RINVMSGLEN)
            return SENT
        n = len(parts)
        if n > 1:
            if n > self.carrier.cfg.window:
                return TOO_BIG
            room = self.free(now) if free is None else free
            if n > link.session.window_free() or (self.inflight and n > room):
                return NO_ROOM
        msg.state = INFLIGHT
        msg.carrier = self.carrier.name
        msg.carrier_ids = [None] * n
        msg.part_finals = [None] * n
        attempt = msg.attempts
        inflight = self.inflight
        carrier = self.carrier
        for i, pdu in enumerate(parts):
            try:
                seq = link.send_request(pdu)
            except LocalProtocolError:
                # The session closed under us (the window was checked): requeue.
                relay.on_part_lost(msg)
                return SENT
            carrier.sent += 1
            inflight[seq] = (msg, i, n, attempt, carrier.sent)
        if self.carrier.cfg.max_tps > 0:
            self.tokens -= n
        relay.metrics.carrier_submit(self.carrier.name, n)
        return SENT

    # ---------------------------------------------------------------- events

    def on_event(self, link: Link, event: Event) -> None:
        relay = self.carrier.relay
        et = type(event)
        if et is ResponseReceived:
            req, resp = event  # type: ignore[misc]
            entry = self.inflight.pop(req.sequence_number, None)
            if entry is None:
                return
            msg, part, nparts, attempt, _ = entry
            status = resp.command_status
            relay.metrics.carrier_response(self.carrier.name, status)
            if msg.attempts != attempt or msg.state != INFLIGHT:
                return  # a stale answer to an attempt already given up
            if status == 0:
                if self.cwnd < self.carrier.cfg.window:
                    self.cwnd += 1.0 / max(self.cwnd, 1.0)
                relay.on_part_acked(msg, part, nparts, self.carrier.name, resp.message_id)
            else:
                if status in _THROTTLE:
                    # AIMD: halve this bind's window and pause it briefly.
                    self.cwnd = max(1.0, self.cwnd / 2)
                    self.blocked_until = relay.loop.time() + 0.05
                    relay.loop.call_later(0.06, relay.dispatch_soon)
                relay.on_part_rejected(msg, self.carrier.name, status)
            relay.dispatch_soon()
        elif et is RequestReceived:
            req = event[0]
            if isinstance(req, DeliverSm | DataSm):
                self._on_deliver(link, req)
            else:
                link.respond(req, S.ESME_RINVCMDID)
        elif et is ResponseTimedOut:
            req = event[0]
            entry = self.inflight.pop(req.sequence_number, None)
            if entry is not None:
                msg, _, _, attempt, _ = entry
                if msg.attempts == attempt:
                    relay.on_part_lost(msg)
            relay.dispatch_soon()
        elif et is Bound:
            self.bound = True
            self.bound_this_connection = True
            self.carrier.attempt_failures = 0
            log.info(
                "carrier bind %s up (%s:%s)",
                self.name,
                self.carrier.cfg.host,
                self.carrier.cfg.port,
                extra={"event": "carrier_bind_up", "carrier": self.carrier.name, "bind": self.name},
            )
            relay.metrics.carrier_binds(self.carrier.name, self.carrier.bound_count())
            relay.dispatch_soon()
        elif et is BindFailed:
            log.warning(
                "carrier bind %s refused: status 0x%08X",
                self.name,
                event[0],
                extra={"event": "carrier_bind_refused", "carrier": self.carrier.name},
            )
            link.close()
        elif et is ConnectionClosed:
            was_bound = self.bound
            self.bound = False
            lost = {id(m): m for (m, _, _, a, _) in self.inflight.values() if m.attempts == a}
            self.inflight.clear()
            for msg in lost.values():
                relay.on_part_lost(msg)
            if was_bound:
                log.log(
                    logging.INFO if self.carrier.stopping else logging.WARNING,
                    "carrier bind %s down: %s",
                    self.name,
                    event[0].value,
                    extra={
                        "event": "carrier_bind_down",
                        "carrier": self.carrier.name,
                        "bind": self.name,
                    },
                )
            relay.metrics.carrier_binds(self.carrier.name, self.carrier.bound_count())
            relay.dispatch_soon()

    def _on_deliver(self, link: Link, req: DeliverSm | DataSm) -> None:
        receipt = parse_receipt(req)
        if receipt is None:
            link.respond(req, 0)  # MO message: not routed by this relay
            return

        def ack(status: int, link: Link = link, req: DeliverSm | DataSm = req) -> None:
            if link.is_open:
                try:
                    link.respond(req, status)
                except LocalProtocolError:
                    pass  # session closed meanwhile; the carrier will resend

        self.carrier.relay.on_carrier_receipt(self.carrier.name, receipt, ack)

    # ---------------------------------------------------------------- connection loop

    async def run(self) -> None:
        cfg = self.carrier.cfg
        loop = asyncio.get_running_loop()
        failures = 0
        session_cfg = cfg.session_config()
        while not self.carrier.stopping:
            try:
                _, link = await loop.create_connection(
                    lambda: Link(session_cfg, Role.ESME, self.on_event, self.name),
                    cfg.host,
                    cfg.port,
                )
            except OSError as exc:
                failures += 1
                delay = self._backoff(failures)
                # The first failure of a streak is worth an operator's attention;
                # the retries behind it (backoff up to reconnect_max_s) are not.
                log.log(
                    logging.WARNING if failures == 1 else logging.DEBUG,
                    "carrier bind %s cannot connect (%s); reconnecting in %.2fs",
                    self.name,
                    exc,
                    delay,
                    extra={"event": "carrier_reconnect", "carrier": self.carrier.name},
                )
                await asyncio.sleep(delay)
                continue
            self.link = link
            self.bound_this_connection = False
            bind_cls: Any = {"trx": BindTransceiver, "tx": BindTransmitter, "rx": BindReceiver}[
                self.kind
            ]
            link.send_request(
                bind_cls(
                    system_id=cfg.system_id, password=cfg.password, system_type=cfg.system_type
                )
            )
            await link.closed.wait()
            self.link = None
            failures = 0 if self.bound_this_connection else failures + 1
            self.bound = False
            if self.carrier.stopping:
                break
            await asyncio.sleep(self._backoff(max(failures, 1)))

    def _backoff(self, failures: int) -> float:
        cfg = self.carrier.cfg
        base = min(cfg.reconnect_max_s, cfg.reconnect_min_s * (2 ** min(failures - 1, 16)))
        return float(base * random.uniform(0.5, 1.5))


class Carrier:
    """One carrier: its binds, its split rules, whether it is drained."""

    def __init__(self, cfg: CarrierConfig, relay: Relay) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.relay = relay
        self.stopping = False
        self.drained = False
        self.attempt_failures = 0
        self.sent = 0  # parts ever submitted: the ordinal of the latest
        self._ref = random.randrange(0, 65536)
        kinds = ["trx"] if cfg.bind_type == "transceiver" else ["tx", "rx"]
        self.binds = [CarrierBind(self, i, k) for i in range(cfg.binds) for k in kinds]
        self._concat = ConcatMethod(cfg.concat_method)
        self._alphabet = DefaultAlphabet(cfg.default_alphabet)

    def oldest_outstanding(self) -> int | None:
        """The ordinal of the oldest submit still awaiting its answer, or None."""
        oldest: int | None = None
        for b in self.binds:
            for entry in b.inflight.values():
                if oldest is None or entry[4] < oldest:
                    oldest = entry[4]
                break  # insertion order: the first is this bind's oldest
        return oldest

    def bound_count(self) -> int:
        return sum(1 for b in self.binds if b.bound)

    @property
    def up(self) -> bool:
        return any(b.can_send for b in self.binds)

    def best_bind(self, now: float) -> CarrierBind | None:
        return self.best_bind_free(now)[0]

    def best_bind_free(self, now: float) -> tuple[CarrierBind | None, int]:
        """The bind with the most free window, and that free count."""
        best: CarrierBind | None = None
        best_free = 0
        for b in self.binds:
            free = b.free(now)
            if free > best_free:
                best, best_free = b, free
        return best, best_free

    def split(self, msg: Msg) -> list[SubmitSm]:
        """The SubmitSm PDUs for ``msg`` on this carrier (SMPP 3.4 §4.4.1; digest §10)."""
        body = msg.body
        if len(body) <= SINGLE_SMS_OCTETS:
            # Hot path, one part: positional, in SMPP 3.4 §4.4.1 order (keywords
            # and a dict of them cost ~1 µs more per message). Registered delivery
            # always 1: every message must end in a final.
            return [
                SubmitSm(
                    0, 0, (), "", msg.src_ton, msg.src_npi, msg.src, msg.dst_ton,
                    msg.dst_npi, msg.dst, msg.esm_class, msg.protocol_id,
                    msg.priority_flag, "", "", 0x01, 0, msg.data_coding, 0, body,
                )
            ]  # fmt: skip
        base = {
            "source_addr_ton": msg.src_ton,
            "source_addr_npi": msg.src_npi,
            "source_addr": msg.src,
            "dest_addr_ton": msg.dst_ton,
            "dest_addr_npi": msg.dst_npi,
            "destination_addr": msg.dst,
            "protocol_id": msg.protocol_id,
            "priority_flag": msg.priority_flag,
            # Always ask the carrier for a receipt: every message must end in a final.
            "registered_delivery": 0x01,
            "data_coding": msg.data_coding,
        }
        if (len(body) <= SINGLE_SMS_OCTETS or msg.esm_class & EsmClass.UDHI) and len(body) <= 254:
            return [SubmitSm(esm_class=msg.esm_class, short_message=body, **base)]  # type: ignore[arg-type]
        self._ref = (self._ref + 1) & 0xFFFF
        ref = self._ref & 0xFF if self._concat == ConcatMethod.UDH8 else self._ref
        if is_binary(msg.data_coding):
            segments = split_bytes(body, method=self._concat, reference=ref)
        else:
            text = decode_text(body, msg.data_coding, default_alphabet=self._alphabet)
            segments = split_text(
                text,
                msg.data_coding,
                method=self._concat,
                reference=ref,
                default_alphabet=self._alphabet,
            )
        return [
            SubmitSm(  # type: ignore[arg-type]
                esm_class=msg.esm_class | seg.esm_class_flags,
                short_message=seg.short_message,
                tlvs=seg.tlvs,
                **base,
            )
            for seg in segments
        ]

    def start(self) -> None:
        for b in self.binds:
            b.task = asyncio.get_running_loop().create_task(b.run(), name=b.name)

    async def stop(self, grace_s: float) -> None:
        """Wait up to ``grace_s`` for in-flight submits, then unbind and close."""
        self.stopping = True
        deadline = asyncio.get_running_loop().time() + grace_s
        # Bounded poll of plain counters (no event fires when a window empties).
        while any(b.inflight for b in self.binds) and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        for b in self.binds:
            if b.link is not None and b.link.is_open:
                try:
                    b.link.unbind()
                except LocalProtocolError:
                    b.link.close()
        waits = [b.link.closed.wait() for b in self.binds if b.link is not None]
        if waits:
            try:
                async with asyncio.timeout(
                    max(0.1, deadline - asyncio.get_running_loop().time()) + 1
                ):
                    await asyncio.gather(*waits)
            except TimeoutError:
                pass
        for b in self.binds:
            if b.link is not None:
                b.link.abort()
            if b.task is not None:
                b.task.cancel()
        await asyncio.gather(
            *(b.task for b in self.binds if b.task is not None), return_exceptions=True
        )


class CarrierPool:
    """All carriers; ``submit(route, msg)`` chooses where the next message of a route goes."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.carriers = {c.name: Carrier(c, relay) for c in relay.config.carriers}
        # Within one dispatch round: carrier → (bind, free slots left on it).
        self._round: dict[str, tuple[CarrierBind, int]] = {}
        for name in self.carriers:
            relay.metrics.carrier_drained(name, False)

    def start(self) -> None:
        for c in self.carriers.values():
            c.start()

    def submit(self, route: tuple[str, ...], msg: Msg) -> bool:
        """Send ``msg`` on the first carrier of ``route`` that is up, not drained and
        has room for all its parts (the bind with the most free window). True if
        the message left the queue (sent, or ended); False if it must wait.

        A message with more parts than every up carrier's whole window can never
        go out: it ends REJECTED (ESME_RINVMSGLEN) rather than block its queue.
        """
        now = self.relay.loop.time()
        tried = too_big = 0
        last = ""
        chosen = self._round
        for name in route:
            c = self.carriers.get(name)
            if c is None or c.drained:
                continue
            pick = chosen.get(name)
            if pick is None or pick[1] <= 0:
                b, free = c.best_bind_free(now)
                if b is None:
                    continue  # down or saturated
            else:
                b, free = pick
            tried += 1
            outcome = b.submit(msg, now, free)
            if outcome == SENT:
                # This bind again for the next message of the round, until the
                # room it had at the start is used (no free() per message) —
                # unless the message did not go out (its session closed under
                # us: requeued) or was refused before sending.
                if msg.state == INFLIGHT and msg.carrier == name:
                    chosen[name] = (b, free - len(msg.carrier_ids))
                else:
                    chosen.pop(name, None)
                return True
            if outcome == TOO_BIG:
                too_big += 1
                last = name
        if tried and too_big == tried:
            log.warning(
                "message %s has more parts than any carrier window of its route; rejected",
                msg.id,
            )
            self.relay.on_part_rejected(msg, last, S.ESME_RINVMSGLEN)
            return True
        return False

    def begin_round(self) -> None:
        """A dispatch round starts: forget the binds chosen in the last one (their
        windows moved since)."""
        self._round.clear()

    def set_drained(self, name: str, drained: bool) -> bool:
        """Take carrier ``name`` out of rotation (``drained``) or put it back.

        A drained carrier gets no new submit: :meth:`submit` skips it, so its
        routes' queued messages (and retries) go to the next carrier of their
        route, or wait if none is left. Its binds stay up: submits already in
        its windows finish normally and its receipts keep arriving. Not
        persisted: a restart undrains.

        Returns:
            True if the state changed.

        Raises:
            KeyError: no such carrier.
        """
        carrier = self.carriers[name]
        if carrier.drained == drained:
            return False
        carrier.drained = drained
        self.relay.metrics.carrier_drained(name, drained)
        inflight = sum(len(b.inflight) for b in carrier.binds)
        log.warning(
            "carrier %s %s (%d submits in its windows)",
            name,
            "drained: no new submits" if drained else "undrained: back in rotation",
            inflight,
            extra={"event": "carrier_drained" if drained else "carrier_undrained", "carrier": name},
        )
        self.relay.dispatch_soon()
        return True

    async def stop(self, grace_s: float) -> None:
        await asyncio.gather(*(c.stop(grace_s) for c in self.carriers.values()))

    def requeue_lost(self) -> None:  # pragma: no cover - used by shutdown paths
        for c in self.carriers.values():
            for b in c.binds:
                for m, _, _, _, _ in b.inflight.values():
                    if m.state == INFLIGHT:
                        m.state = QUEUED
