"""The upstream face: relayd as SMSC for the applications that bind to it.

One :class:`~relayd.link.Link` (role SMSC) per TCP connection. Binds are
authenticated against the configured accounts (scrypt hashes, verified off the
event loop and cached); submits are validated, handed to the Relay and answered
only once their WAL record is durable; receipts are pushed to the account's
receiver/transceiver binds within each bind's window. An account only ever
sees its own messages and receipts.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from protocol.constants import CommandStatus, DestFlag, EsmClass, MessageState, Tag
from protocol.errors import LocalProtocolError, TextError
from protocol.events import (
    BindRequested,
    Bound,
    ConnectionClosed,
    Event,
    PduRejected,
    RequestReceived,
    ResponseReceived,
    ResponseTimedOut,
)
from protocol.korean import KoreanRuleError, RejectCode, body_bytes
from protocol.pdu import (
    BindReceiver,
    BindTransceiver,
    BindTransmitter,
    CancelSm,
    DataSm,
    DeliverSm,
    QuerySm,
    ReplaceSm,
    SmeAddress,
    SubmitMulti,
    SubmitSm,
    UnsuccessSme,
)
from protocol.segment import parse_udh
from protocol.session import Role
from protocol.text import decode_text, is_binary
from relayd.link import Link
from relayd.model import FINAL, Msg
from relayd.store import mask_number
from relayd.wal import WalError, WalFullError

if TYPE_CHECKING:
    from relayd.config import AccountConfig
    from relayd.core import Relay

log = logging.getLogger("relayd.upstream")
S = CommandStatus
_UDHI = int(EsmClass.UDHI)  # a plain int: IntFlag & costs an enum construction

# Korean mobile numbers (korea-messaging.md §3, recipients): 010/011/016/017/018/019.
_MOBILE = re.compile(r"01[016789][0-9]{7,8}")
_BIND_KIND = {
    BindTransmitter: "transmitter",
    BindReceiver: "receiver",
    BindTransceiver: "transceiver",
}


# Phone numbers for display: one masking rule everywhere (010****5678).
mask = mask_number


class TokenBucket:
    """Per-account throughput limit: ``rate`` per second, burst of one second."""

    __slots__ = ("at", "rate", "tokens")

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.tokens = rate
        self.at = time.monotonic()

    def take(self, now: float) -> bool:
        tokens = min(self.rate, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if tokens < 1.0:
            self.tokens = tokens
            return False
        self.tokens = tokens - 1.0
        return True


class Conn:
    """Per-connection state of an upstream link."""

    __slots__ = ("account", "bind_kind", "link", "receipts", "unanswered")

    def __init__(self, link: Link) -> None:
        self.link = link
        self.account: AccountConfig | None = None
        self.bind_kind = ""
        self.unanswered = 0
        self.receipts: dict[int, Msg] = {}


def parse_validity(value: str, now: float, default_s: float) -> float:
    """SMPP 3.4 §7.1.1 validity_period → absolute epoch seconds.

    Raises:
        ValueError: not a valid absolute or relative time.
    """
    if not value:
        return now + default_s
    if len(value) != 16 or not value[:15].isdigit() or value[15] not in "+-R":
        raise ValueError(value)
    yy, mo, dd, hh, mi, ss = (int(value[i : i + 2]) for i in range(0, 12, 2))
    if value[15] == "R":
        # YYMMDDhhmmss000R: years/months approximated as 365/30 days.
        return now + ((yy * 365 + mo * 30 + dd) * 86400 + hh * 3600 + mi * 60 + ss)
    tenths, quarter = int(value[12]), int(value[13:15])
    offset = timedelta(minutes=15 * quarter) * (1 if value[15] == "+" else -1)
    dt = datetime(2000 + yy, mo, dd, hh, mi, ss, tenths * 100_000, tzinfo=UTC) - offset
    return dt.timestamp()


class UpstreamServer:
    """The listening socket and every upstream session."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        cfg = relay.config.server
        self.cfg = cfg
        self.session_cfg = cfg.session_config()
        self.server: asyncio.AbstractServer | None = None
        self.conns: set[Conn] = set()
        # account system_id → bound connections (any bind type)
        self.bound: dict[str, list[Conn]] = {}
        self.buckets: dict[str, TokenBucket] = {}
        self._rr: dict[str, int] = {}
        self._pump_dirty: set[str] = set()
        self._pump_handle: asyncio.Handle | None = None
        self._verified: dict[tuple[str, bytes], tuple[str, bool]] = {}
        self._next_id = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.accepting = True

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(
            self._make_link, self.cfg.host, self.cfg.port, backlog=1024
        )

    def _make_link(self) -> Link:
        self._next_id += 1
        link = Link(self.session_cfg, Role.SMSC, self._on_event, f"upstream#{self._next_id}")
        conn = Conn(link)
        link.ctx = conn
        if len(self.conns) >= self.cfg.max_connections or not self.accepting:
            loop = asyncio.get_running_loop()
            loop.call_soon(link.abort)
        self.conns.add(conn)
        return link

    # ================================================================ events

    def _on_event(self, link: Link, event: Event) -> None:
        conn: Conn = link.ctx
        et = type(event)
        if et is RequestReceived:
            req = event[0]
            t = type(req)
            if t is SubmitSm:
                self._on_submit(conn, req)
            elif t is DataSm:
                self._on_data_sm(conn, req)
            elif t is SubmitMulti:
                self._on_submit_multi(conn, req)
            elif t is QuerySm:
                self._on_query(conn, req)
            elif t is CancelSm:
                self._on_cancel(conn, req)
            elif t is ReplaceSm:
                link.respond(req, S.ESME_RREPLACEFAIL)
            else:
                link.respond(req, S.ESME_RINVCMDID)
        elif et is ResponseReceived:
            req, resp = event  # type: ignore[misc]
            msg = conn.receipts.pop(req.sequence_number, None)
            if msg is not None:
                if resp.command_status == 0:
                    self.relay.report_done(msg)
                else:
                    self.relay.report_failed(msg)
                if conn.account is not None:
                    self.pump_reports(conn.account.system_id)
        elif et is ResponseTimedOut:
            msg = conn.receipts.pop(event[0].sequence_number, None)
            if msg is not None:
                self.relay.report_failed(msg)
        elif et is BindRequested:
            self._on_bind(conn, event[0])
        elif et is Bound:
            acct = conn.account
            assert acct is not None
            self.bound.setdefault(acct.system_id, []).append(conn)
            log.info(
                "bind %s account=%s type=%s from %s",
                link.name,
                acct.system_id,
                conn.bind_kind,
                link.peer,
                extra={"event": "upstream_bind", "account": acct.system_id},
            )
            self.relay.metrics.upstream_binds(acct.system_id, len(self.bound[acct.system_id]))
            if conn.bind_kind != "transmitter":
                self.pump_reports(acct.system_id)
        elif et is ConnectionClosed:
            self.conns.discard(conn)
            acct = conn.account
            if acct is not None:
                binds = self.bound.get(acct.system_id, [])
                if conn in binds:
                    binds.remove(conn)
                    log.info(
                        "unbind %s account=%s reason=%s",
                        link.name,
                        acct.system_id,
                        event[0].value,
                        extra={"event": "upstream_unbind", "account": acct.system_id},
                    )
                self.relay.metrics.upstream_binds(acct.system_id, len(binds))
                for msg in conn.receipts.values():
                    self.relay.report_failed(msg)
                conn.receipts.clear()
                if binds:
                    self.pump_reports(acct.system_id)
        elif et is PduRejected:
            self.relay.metrics.upstream_rejected(event[1])

    # ================================================================ bind

    def _on_bind(self, conn: Conn, req: Any) -> None:
        link = conn.link
        accounts = self.relay.config.accounts_by_id
        acct = accounts.get(req.system_id)
        if acct is None:
            link.respond(req, S.ESME_RINVSYSID)
            return
        kind = _BIND_KIND[type(req)]
        if kind not in acct.bind_types:
            link.respond(req, S.ESME_RBINDFAIL)
            return
        if len(self.bound.get(acct.system_id, ())) >= acct.max_binds:
            link.respond(req, S.ESME_RBINDFAIL)
            return
        key = (acct.system_id, hashlib.sha256(req.password.encode("latin-1")).digest())
        cached = self._verified.get(key)
        if cached is not None and cached[0] == acct.password_hash:
            self._finish_bind(conn, req, acct, kind, cached[1])
            return
        # scrypt costs tens of ms: verify off the loop, answer when done.
        from relayd.passwords import verify_password

        fut = asyncio.get_running_loop().run_in_executor(
            None, verify_password, req.password, acct.password_hash
        )

        def done(f: asyncio.Future[bool]) -> None:
            ok = bool(not f.cancelled() and f.exception() is None and f.result())
            if len(self._verified) < 10_000:
                self._verified[key] = (acct.password_hash, ok)
            self._finish_bind(conn, req, acct, kind, ok)

        fut.add_done_callback(done)

    def _finish_bind(self, conn: Conn, req: Any, acct: AccountConfig, kind: str, ok: bool) -> None:
        link = conn.link
        if not link.is_open:
            return
        if not ok:
            log.warning(
                "bind refused for account=%s: bad password",
                acct.system_id,
                extra={"event": "upstream_bind_refused", "account": acct.system_id},
            )
            link.respond(req, S.ESME_RINVPASWD)
            return
        if len(self.bound.get(acct.system_id, ())) >= acct.max_binds:
            link.respond(req, S.ESME_RBINDFAIL)
            return
        conn.account = acct
        conn.bind_kind = kind
        if acct.system_id not in self.buckets and acct.throughput_per_s > 0:
            self.buckets[acct.system_id] = TokenBucket(acct.throughput_per_s)
        link.respond(req, 0)

    # ================================================================ submit

    def _refuse(self, conn: Conn, req: Any, status: int) -> None:
        self.relay.metrics.submit(conn.account.system_id if conn.account else "", status)
        conn.link.respond(req, status)

    def _admit(self, conn: Conn, req: Any) -> int:
        """Flow control before any work: 0, or the status to answer with."""
        acct = conn.account
        if acct is None:
            return S.ESME_RINVBNDSTS
        current = self.relay.config.accounts_by_id.get(acct.system_id)
        if current is not acct:
            # Accounts were reloaded (SIGHUP): binds made before see the new
            # senders and limits; an account that was removed may send no more.
            if current is None:
                return S.ESME_RINVBNDSTS
            conn.account = acct = current
            bucket = self.buckets.get(acct.system_id)
            if acct.throughput_per_s <= 0:
                self.buckets.pop(acct.system_id, None)
            elif bucket is None or bucket.rate != acct.throughput_per_s:
                self.buckets[acct.system_id] = TokenBucket(acct.throughput_per_s)
        if not self.accepting or not self.relay.accepting:
            return S.ESME_RSYSERR
        if not self.relay.wal.healthy:
            return S.ESME_RSYSERR
        if conn.unanswered >= self.cfg.window:
            return S.ESME_RTHROTTLED
        bucket = self.buckets.get(acct.system_id)
        if bucket is not None and not bucket.take(time.monotonic()):
            return S.ESME_RTHROTTLED
        return 0

    def _validate(
        self,
        acct: AccountConfig,
        source: str,
        destination: str,
        esm_class: int,
        registered_delivery: int,
        data_coding: int,
        body: bytes,
    ) -> int:
        """Address, flags, charset and the Korean length rules; 0 or a status."""
        if source not in acct.senders:
            return S.ESME_RINVSRCADR  # korea-messaging.md §3: unregistered sender
        if not _MOBILE.fullmatch(destination):
            return S.ESME_RINVDSTADR
        if esm_class & 0x03 == 0x02 or esm_class & 0x3C:
            return S.ESME_RINVESMCLASS  # forward mode / receipt types not for submits
        if registered_delivery & ~0x1F:
            return S.ESME_RINVREGDLVFLG
        if is_binary(data_coding):
            return 0 if len(body) <= 2000 else S.ESME_RINVMSGLEN
        data = body
        if esm_class & _UDHI:
            try:
                _, data = parse_udh(body)
            except Exception:
                return S.ESME_RINVESMCLASS
        try:
            body_bytes(decode_text(data, data_coding), data, data_coding)
        except TextError:
            return S.ESME_RINVDCS
        except KoreanRuleError as exc:
            return S.ESME_RINVDCS if exc.code == RejectCode.R_CHARSET else S.ESME_RINVMSGLEN
        return 0

    def _new_msg(
        self,
        acct: AccountConfig,
        req: Any,
        src_ton: int,
        src_npi: int,
        src: str,
        d: tuple[int, int, str],
        body: bytes,
    ) -> Msg:
        now = time.time()
        expires = parse_validity(
            getattr(req, "validity_period", ""), now, self.relay.config.retry.validity_default_s
        )
        return Msg(
            self.relay.new_message_id(),
            acct.system_id,
            src_ton,
            src_npi,
            src,
            d[0],
            d[1],
            d[2],
            req.esm_class,
            getattr(req, "protocol_id", 0),
            getattr(req, "priority_flag", 0),
            req.data_coding,
            req.registered_delivery,
            body,
            now,
            expires,
        )

    def _accept(self, conn: Conn, req: Any, msg: Msg) -> None:
        try:
            self.relay.accept(msg, self._answer, (conn, req, time.monotonic()))
        except WalFullError:
            self._refuse(conn, req, S.ESME_RMSGQFUL)
            return
        except WalError:
            self._refuse(conn, req, S.ESME_RSYSERR)
            return
        conn.unanswered += 1

    def _answer(
        self, ctx: tuple[Conn, SubmitSm | DataSm, float], msg: Msg, error: Exception | None
    ) -> None:
        """The submit's A record is durable (``error`` None) or failed: answer it."""
        conn, req, t0 = ctx
        conn.unanswered -= 1
        status = 0 if error is None else S.ESME_RSYSERR
        self.relay.metrics.submit(msg.account, status, time.monotonic() - t0)
        link = conn.link
        if link.is_open:
            try:
                if status == 0:
                    link.respond_ok(req, msg.id)
                else:
                    link.respond(req, status)
            except LocalProtocolError:
                pass  # the session closed or unbound meanwhile

    def _on_submit(self, conn: Conn, req: SubmitSm) -> None:
        body = req.short_message
        payload = req.tlv(Tag.message_payload)
        if payload is not None:
            if body:
                self._refuse(conn, req, S.ESME_RINVMSGLEN)  # §3.2.3: never both
                return
            body = bytes(payload)  # type: ignore[arg-type]
        if req.schedule_delivery_time:
            self._refuse(conn, req, S.ESME_RINVSCHED)  # scheduled delivery not offered
            return
        self._submit_one(conn, req, body)

    def _on_data_sm(self, conn: Conn, req: DataSm) -> None:
        # SMPP 3.4 §4.7.1: data_sm's user data travels in message_payload.
        self._submit_one(conn, req, bytes(req.tlv(Tag.message_payload, b"") or b""))  # type: ignore[arg-type]

    def _submit_one(self, conn: Conn, req: SubmitSm | DataSm, body: bytes) -> None:
        """submit_sm and data_sm alike: admit, validate, build, accept."""
        status = self._admit(conn, req)
        if status:
            self._refuse(conn, req, status)
            return
        acct = conn.account
        assert acct is not None
        status = self._validate(
            acct,
            req.source_addr,
            req.destination_addr,
            req.esm_class,
            req.registered_delivery,
            req.data_coding,
            body,
        )
        if status:
            self._refuse(conn, req, status)
            return
        try:
            msg = self._new_msg(
                acct,
                req,
                req.source_addr_ton,
                req.source_addr_npi,
                req.source_addr,
                (req.dest_addr_ton, req.dest_addr_npi, req.destination_addr),
                body,
            )
        except ValueError:
            self._refuse(conn, req, S.ESME_RINVEXPIRY)
            return
        self._accept(conn, req, msg)

    def _on_submit_multi(self, conn: Conn, req: SubmitMulti) -> None:
        """Each SME destination becomes its own message (its own receipt, with its own
        id); the response carries the first accepted id and the refused destinations."""
        status = self._admit(conn, req)
        if status:
            self._refuse(conn, req, status)
            return
        acct = conn.account
        assert acct is not None
        if not req.dest_addresses:
            self._refuse(conn, req, S.ESME_RINVNUMDESTS)
            return
        msgs: list[Msg] = []
        failed: list[UnsuccessSme] = []
        for d in req.dest_addresses:
            if not isinstance(d, SmeAddress):
                failed.append(UnsuccessSme(0, 0, getattr(d, "dl_name", ""), S.ESME_RCNTSUBDL))
                continue
            st = self._validate(
                acct,
                req.source_addr,
                d.destination_addr,
                req.esm_class,
                req.registered_delivery,
                req.data_coding,
                req.short_message,
            )
            if st:
                failed.append(
                    UnsuccessSme(d.dest_addr_ton, d.dest_addr_npi, d.destination_addr, st)
                )
                continue
            msgs.append(
                self._new_msg(
                    acct,
                    req,
                    req.source_addr_ton,
                    req.source_addr_npi,
                    req.source_addr,
                    (d.dest_addr_ton, d.dest_addr_npi, d.destination_addr),
                    req.short_message,
                )
            )
        if not msgs:
            conn.link.respond(req, S.ESME_RSUBMITFAIL)
            return
        link = conn.link
        pending = [0]
        errors: list[Exception] = []

        def answered(_ctx: object, _msg: Msg, error: Exception | None) -> None:
            if error is not None:
                errors.append(error)
            pending[0] -= 1
            if pending[0]:
                return
            conn.unanswered -= 1
            if link.is_open:
                try:
                    if errors:
                        link.respond(req, S.ESME_RSYSERR)
                    else:
                        link.respond(req, 0, message_id=msgs[0].id, unsuccess_smes=tuple(failed))
                except LocalProtocolError:
                    pass

        refused = S.ESME_RSYSERR
        for i, m in enumerate(msgs):
            try:
                self.relay.accept(m, answered, None)
            except WalError as exc:
                # The WAL took the first i: those are ours; the rest are refused
                # destination by destination (§4.5.2 unsuccess_smes).
                refused = S.ESME_RMSGQFUL if isinstance(exc, WalFullError) else S.ESME_RSYSERR
                failed.extend(UnsuccessSme(r.dst_ton, r.dst_npi, r.dst, refused) for r in msgs[i:])
                del msgs[i:]
                break
            pending[0] += 1
        if not msgs:
            self._refuse(conn, req, refused)
            return
        conn.unanswered += 1

    # ================================================================ query / cancel

    def _on_query(self, conn: Conn, req: QuerySm) -> None:
        acct = conn.account
        if acct is None:
            conn.link.respond(req, S.ESME_RINVBNDSTS)
            return
        msg = self.relay.lookup(acct.system_id, req.message_id)
        if msg is not None:
            if msg.final is not None:
                final_date = (
                    datetime.fromtimestamp(msg.final.done_at, UTC).strftime("%y%m%d%H%M%S") + "000+"
                )
                conn.link.respond(
                    req,
                    0,
                    message_id=msg.id,
                    final_date=final_date,
                    message_state=msg.final.state,
                    error_code=0,
                )
            else:
                # Not final yet, whether queued here or already at a carrier.
                conn.link.respond(req, 0, message_id=msg.id, message_state=MessageState.ENROUTE)
            return
        # Not in memory: the store knows finished messages.
        link = conn.link

        async def from_store() -> None:
            row = await self.relay.store.get_message(req.message_id, account=acct.system_id)
            if not link.is_open:
                return
            if row is None:
                link.respond(req, S.ESME_RQUERYFAIL)
                return
            state_name = row.get("state") or "UNKNOWN"
            state = getattr(MessageState, str(state_name), MessageState.ENROUTE)
            final_at = row.get("final_at")
            final_date = (
                datetime.fromtimestamp(float(final_at), UTC).strftime("%y%m%d%H%M%S") + "000+"
                if final_at
                else ""
            )
            link.respond(
                req,
                0,
                message_id=req.message_id,
                final_date=final_date,
                message_state=int(state),
            )

        task = asyncio.get_running_loop().create_task(from_store())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_cancel(self, conn: Conn, req: CancelSm) -> None:
        acct = conn.account
        if acct is None:
            conn.link.respond(req, S.ESME_RINVBNDSTS)
            return
        ok = bool(req.message_id) and self.relay.cancel(acct.system_id, req.message_id)
        conn.link.respond(req, 0 if ok else S.ESME_RCANCELFAIL)

    # ================================================================ receipts upstream

    def _receivers(self, account: str) -> Iterator[Conn]:
        conns = [
            c
            for c in self.bound.get(account, ())
            if c.bind_kind != "transmitter" and c.link.is_open
        ]
        if not conns:
            return
        start = self._rr.get(account, 0) % len(conns)
        self._rr[account] = start + 1
        yield from conns[start:] + conns[:start]

    def pump_reports(self, account: str) -> None:
        """Send held receipts of ``account`` on its RX/TRX binds, within each window —
        at the end of this loop turn, once for everything that asked meanwhile
        (a final or a deliver_sm_resp each ask; one pump serves them all)."""
        self._pump_dirty.add(account)
        if self._pump_handle is None:
            self._pump_handle = asyncio.get_running_loop().call_soon(self._pump_all)

    def _pump_all(self) -> None:
        self._pump_handle = None
        dirty, self._pump_dirty = self._pump_dirty, set()
        for account in dirty:
            self._pump(account)

    def _pump(self, account: str) -> None:
        relay = self.relay
        if not relay.pending_reports(account):
            return
        sent = 0
        empty = False
        for conn in self._receivers(account):
            link = conn.link
            session = link.session
            receipts = conn.receipts
            while session.bound and session.window_free() > 0:
                msg = relay.next_report(account)
                if msg is None:
                    empty = True
                    break
                if msg.state != FINAL:
                    continue
                pdu: DeliverSm = relay.build_upstream_receipt(msg)
                try:
                    seq = link.send_request(pdu)
                except LocalProtocolError:
                    relay.report_failed(msg)
                    break
                receipts[seq] = msg
                sent += 1
            if empty:
                break
        if sent:
            relay.metrics.receipt_out(account, sent)

    # ================================================================ shutdown

    async def stop(self, grace_s: float) -> None:
        """Stop accepting, unbind every session, wait for their answers (bounded)."""
        self.accepting = False
        if self.server is not None:
            self.server.close()
        for conn in list(self.conns):
            if conn.link.session.bound:
                try:
                    conn.link.unbind()
                except LocalProtocolError:
                    conn.link.close()
            else:
                conn.link.close()
        waits = [c.link.closed.wait() for c in list(self.conns)]
        if waits:
            try:
                async with asyncio.timeout(grace_s):
                    await asyncio.gather(*waits)
            except TimeoutError:
                pass
        for conn in list(self.conns):
            conn.link.abort()
        if self.server is not None:
            await self.server.wait_closed()


__all__ = ["DestFlag", "UpstreamServer", "mask", "parse_validity"]
