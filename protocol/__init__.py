"""relayd's sans-IO SMPP v3.4 core: bytes in, events out; no I/O, no clocks.

Modules, each owning one thing (style guide §4):

* ``constants`` — command ids, statuses, TLV tags, TON/NPI, data_coding, esm_class
* ``pdu`` — one dataclass per PDU; ``codec`` — the hand-written codec;
  ``spec`` — the construct declarations (the executable specification)
* ``buffer`` — framing by command_length; ``session`` — the state machine;
  ``events``, ``config``, ``errors``
* ``text`` — data_coding ⇄ text (GSM 03.38, UCS-2, strict KS X 1001);
  ``segment`` — long messages; ``korean`` — the Korean length rules
* ``receipt`` — Appendix B delivery receipts; ``msgid`` — id correlation;
  ``resultcodes`` — the Korean carrier result codes
"""

from __future__ import annotations

from protocol.codec import decode, decode_body, encode
from protocol.config import SessionConfig
from protocol.errors import (
    FramingError,
    LocalProtocolError,
    PduError,
    ProtocolError,
    RelayError,
    RemoteProtocolError,
    TextError,
)
from protocol.session import Role, Session, SessionState

__all__ = [
    "FramingError",
    "LocalProtocolError",
    "PduError",
    "ProtocolError",
    "RelayError",
    "RemoteProtocolError",
    "Role",
    "Session",
    "SessionConfig",
    "SessionState",
    "TextError",
    "decode",
    "decode_body",
    "encode",
]
