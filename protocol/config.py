"""Configuration of one SMPP session (style guide §9, after aioquic's ``QuicConfiguration``).

A :class:`SessionConfig` is built once (by ``relayd/config.py`` from TOML, or by a
test) and handed to :class:`protocol.session.Session`. Every field has a unit in
its name and a reason for its default. The session reads it and nothing else:
no files, no environment, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol.buffer import DEFAULT_MAX_PDU_BYTES
from protocol.constants import HEADER_BYTES, INTERFACE_VERSION_34

__all__ = ["SessionConfig"]


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """Timers, window and limits of one SMPP session (SMPP 3.4 §2.5–§2.9, §7.2).

    Raises:
        ValueError: on construction, when a value is out of range.
    """

    window_size: int = 10
    """Maximum number of *our* requests awaiting a response (count).

    SMPP 3.4 §2.5.2/§2.6.2/§2.7.1 leave the window to the implementation with
    the guideline "no more than 10 (ten) SMPP messages are outstanding at any
    time"; 10 is that guideline. ``enquire_link`` and ``unbind`` are exempt (the
    session must be able to probe and leave a link whose window is full).
    Carrier accounts usually state their own value: configure it per peer.
    """

    response_timeout_s: float = 30.0
    """Seconds to wait for the response to one of our requests (SMPP 3.4 §7.2
    ``response_timer``) before reporting ``ResponseTimedOut`` and freeing its slot.

    Also bounds the wait for ``bind_*_resp`` (then the connection is closed), for
    our ``unbind_resp``, for the keepalive ``enquire_link_resp`` (then the link
    is declared dead) and how long we linger after the peer unbound us.
    Precedents: 30 s in bulatnig/smpp (``DEFAULT_SMSC_RESPONSE_TIMEOUT``), 60 s in
    smpp.twisted, 120 s in Jasmin. A long timer freezes the window for that
    long when a carrier silently drops a request, so we take the short end.
    """

    enquire_link_interval_s: float | None = 30.0
    """Seconds of silence (nothing *received*) while bound after which we send an
    ``enquire_link`` (SMPP 3.4 §7.2 ``enquire_link_timer``); ``None`` = never.

    Only one keepalive is outstanding at a time; if its response times out the
    link is dead and the session closes. 30 s is Jasmin's default
    (``enquireLinkTimerSecs``) and well below the 60–300 s idle cut-off of
    typical carrier firewalls and NATs.
    """

    inactivity_timeout_s: float | None = 300.0
    """Seconds with nothing received after which the session closes
    (SMPP 3.4 §7.2 ``inactivity_timer``); ``None`` = never.

    A backstop: with the keepalive on, a live peer always answers well within
    this. 300 s is Jasmin's default (``inactivityTimerSecs``).
    """

    session_init_timeout_s: float | None = 30.0
    """SMSC role only: seconds a connection may stay unbound before it is closed
    (SMPP 3.4 §7.2 ``session_init_timer``); ``None`` = never.

    Stops idle or half-open TCP connections from holding server resources.
    30 s is the default of both Jasmin and smpp.twisted (``sessionInitTimerSecs``).
    """

    max_pdu_bytes: int = DEFAULT_MAX_PDU_BYTES
    """Largest ``command_length`` accepted (bytes); a larger one is a framing error
    (generic_nack ESME_RINVCMDLEN, then close — style guide §3.4).

    64 KiB: message_payload is "up to 64 K" (SMPP 3.4 §5.3.2.32), and this bounds
    what one peer can make us buffer per PDU.
    """

    interface_version: int = INTERFACE_VERSION_34
    """The SMPP version we speak (SMPP 3.4 §5.2.4): 0x34.

    SMSC role: :meth:`Session.respond` adds it as the ``sc_interface_version``
    TLV of a successful ``bind_*_resp``, telling the ESME that we accept TLVs
    (SMPP 3.4 §3.4, §4.1.2).
    """

    system_id: str = ""
    """SMSC role: the ``system_id`` our ``bind_*_resp`` carries (SMPP 3.4 §4.1.2,
    C-Octet String of at most 15 characters).

    Used by :meth:`Session.respond` when the caller gives no ``system_id``.
    Empty by default because it names a deployment, not a protocol constant.
    """

    def __post_init__(self) -> None:
        if self.window_size < 1:
            raise ValueError(f"window_size must be >= 1, got {self.window_size}")
        if not self.response_timeout_s > 0:
            raise ValueError(f"response_timeout_s must be > 0, got {self.response_timeout_s}")
        for name in ("enquire_link_interval_s", "inactivity_timeout_s", "session_init_timeout_s"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be > 0 or None, got {value}")
        if self.max_pdu_bytes < HEADER_BYTES:
            raise ValueError(f"max_pdu_bytes must be >= {HEADER_BYTES}, got {self.max_pdu_bytes}")
        if not 0 <= self.interface_version <= 0xFF:
            raise ValueError(f"interface_version must fit one octet, got {self.interface_version}")
        try:
            raw = self.system_id.encode("latin-1")
        except UnicodeEncodeError as exc:
            raise ValueError(f"system_id must be Latin-1: {self.system_id!r}") from exc
        if len(raw) > 15 or 0 in raw:
            raise ValueError(f"system_id must be at most 15 octets without NUL: {self.system_id!r}")
