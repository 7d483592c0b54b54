"""A small test ESME built on :class:`simulators.link.SmppLink` (role ESME):
futures for responses, a queue of received deliver_sm."""

from __future__ import annotations

import asyncio
from typing import Any

from protocol.config import SessionConfig
from protocol.events import (
    BindFailed,
    Bound,
    ConnectionClosed,
    PduRejected,
    RequestReceived,
    ResponseReceived,
    ResponseTimedOut,
    UnbindReceived,
)
from protocol.pdu import (
    BindReceiver,
    BindTransceiver,
    BindTransmitter,
    DeliverSm,
    DeliverSmResp,
    Request,
    Response,
    SubmitSm,
)
from protocol.session import Role
from simulators.link import SmppLink

_BIND_CLASSES = {"tx": BindTransmitter, "rx": BindReceiver, "trx": BindTransceiver}


class Esme:
    """A test ESME: one SmppLink (role ESME) with futures for responses and a
    queue of received deliver_sm (answered with ``deliver_status`` unless
    ``answer_deliver`` is False)."""

    def __init__(self, *, deliver_status: int = 0, answer_deliver: bool = True) -> None:
        self.link: SmppLink | None = None
        self.deliver_status = deliver_status
        self.answer_deliver = answer_deliver
        self._waiting: dict[int, asyncio.Future[Response | None]] = {}
        self._bind: asyncio.Future[Bound | BindFailed] | None = None
        self.delivered: asyncio.Queue[DeliverSm] = asyncio.Queue()
        self.rejected: list[PduRejected] = []
        self.closed_event: ConnectionClosed | None = None
        self.peer_unbound = False

    async def connect(
        self, port: int, *, window: int = 1000, response_timeout_s: float = 5.0
    ) -> Esme:
        loop = asyncio.get_running_loop()
        config = SessionConfig(
            window_size=window,
            response_timeout_s=response_timeout_s,
            enquire_link_interval_s=None,
            inactivity_timeout_s=None,
        )
        _, link = await loop.create_connection(
            lambda: SmppLink(config, Role.ESME, self._on_event, name="test-esme"),
            "127.0.0.1",
            port,
        )
        self.link = link
        return self

    def _on_event(self, link: SmppLink, event: Any) -> None:
        t = type(event)
        if t is Bound or t is BindFailed:
            if self._bind is not None and not self._bind.done():
                self._bind.set_result(event)
        elif t is ResponseReceived:
            fut = self._waiting.pop(event.request.sequence_number, None)
            if fut is not None and not fut.done():
                fut.set_result(event.response)
        elif t is ResponseTimedOut:
            fut = self._waiting.pop(event.request.sequence_number, None)
            if fut is not None and not fut.done():
                fut.set_result(None)
        elif t is RequestReceived:
            req = event.request
            if isinstance(req, DeliverSm):
                self.delivered.put_nowait(req)
                if self.answer_deliver:
                    link.session.send_response(
                        DeliverSmResp(self.deliver_status, req.sequence_number)
                    )
            else:
                link.session.respond(req, 0)
        elif t is UnbindReceived:
            self.peer_unbound = True
        elif t is PduRejected:
            self.rejected.append(event)
        elif t is ConnectionClosed:
            self.closed_event = event
            for fut in self._waiting.values():
                if not fut.done():
                    fut.set_result(None)
            self._waiting.clear()
            if self._bind is not None and not self._bind.done():
                self._bind.cancel()

    @property
    def session_link(self) -> SmppLink:
        assert self.link is not None
        return self.link

    async def bind(
        self,
        kind: str = "trx",
        system_id: str = "relayd",
        password: str = "relaypw",
        *,
        interface_version: int = 0x34,
    ) -> Bound | BindFailed:
        loop = asyncio.get_running_loop()
        self._bind = loop.create_future()
        pdu = _BIND_CLASSES[kind](
            system_id=system_id, password=password, interface_version=interface_version
        )
        self.session_link.send_request(pdu)
        return await self._bind

    def send(self, pdu: Request, timeout_s: float | None = None) -> asyncio.Future[Response | None]:
        """Queue a request; the future gets its response (None on timeout or close)."""
        fut: asyncio.Future[Response | None] = asyncio.get_running_loop().create_future()
        seq = self.session_link.send_request(pdu, timeout_s)
        self._waiting[seq] = fut
        return fut

    async def request(self, pdu: Request, timeout_s: float | None = None) -> Response | None:
        return await self.send(pdu, timeout_s)

    def submit_pdu(
        self,
        destination: str,
        text: bytes = b"hello",
        *,
        source: str = "15881234",
        registered_delivery: int = 1,
        **fields: Any,
    ) -> SubmitSm:
        return SubmitSm(
            source_addr=source,
            destination_addr=destination,
            short_message=text,
            registered_delivery=registered_delivery,
            **fields,
        )

    async def submit(self, destination: str, text: bytes = b"hello", **kw: Any) -> Response:
        resp = await self.request(self.submit_pdu(destination, text, **kw))
        assert resp is not None, "no submit_sm_resp"
        return resp

    async def receipt(self, wait_s: float = 3.0) -> DeliverSm:
        return await asyncio.wait_for(self.delivered.get(), wait_s)

    async def no_receipt(self, wait_s: float = 0.25) -> None:
        await asyncio.sleep(wait_s)
        assert self.delivered.empty(), "unexpected deliver_sm"

    async def close(self) -> None:
        link = self.link
        if link is None:
            return
        if link.session.bound:
            link.unbind()
            try:
                await asyncio.wait_for(link.closed.wait(), 0.5)
            except TimeoutError:
                link.abort()
        else:
            link.abort()
        await link.closed.wait()
