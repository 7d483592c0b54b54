"""The exception hierarchy of relayd's protocol core.

Split by *who* broke the rules (style guide §5, after h11's LocalProtocolError /
RemoteProtocolError):

    RelayError                      base for everything we raise on purpose
    ├── ProtocolError               abstract: never raised directly
    │   ├── LocalProtocolError      we (the caller of protocol/) broke the rules
    │   └── RemoteProtocolError     the peer broke the rules
    │       ├── FramingError        unrecoverable: no trustworthy PDU boundary → nack, close
    │       └── PduError            recoverable: the PDU's bytes are known → nack/resp, go on
    └── TextError                   text that cannot be encoded/decoded in a data_coding

Every protocol error carries ``command_status``: the SMPP 3.4 §5.1.3 status the
session puts on the wire when it answers (``generic_nack`` or the PDU's own
``*_resp``).
"""

from __future__ import annotations

from protocol.constants import CommandStatus


class RelayError(Exception):
    """Base class for every error relayd raises on purpose."""


class ProtocolError(RelayError):
    """A rule of SMPP was broken. Abstract: raise a subclass.

    Attributes:
        command_status: the SMPP status to answer with.
        command_id: the command_id of the offending PDU, when known.
        sequence_number: its sequence_number, when known (0 otherwise, which is
            what SMPP 3.4 §4.3.1 asks a generic_nack to carry for an undecodable header).
    """

    command_status: int = CommandStatus.ESME_RSYSERR

    def __init__(
        self,
        msg: str,
        command_status: int | None = None,
        *,
        command_id: int | None = None,
        sequence_number: int = 0,
    ) -> None:
        if type(self) is ProtocolError:
            raise TypeError("tried to directly instantiate ProtocolError")
        super().__init__(msg)
        if command_status is not None:
            self.command_status = command_status
        self.command_id = command_id
        self.sequence_number = sequence_number


class LocalProtocolError(ProtocolError):
    """The caller of protocol/ asked for something SMPP forbids (a field too long,
    a request in the wrong session state, no free window slot...)."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something SMPP forbids."""


class FramingError(RemoteProtocolError):
    """command_length is out of bounds: there is no trustworthy boundary to resume
    from. Answer generic_nack(ESME_RINVCMDLEN) and close the connection."""

    command_status = CommandStatus.ESME_RINVCMDLEN


class PduError(RemoteProtocolError):
    """One PDU is bad but its bytes are known and consumed, so the stream is still
    in sync. Answer generic_nack or the PDU's own response with ``command_status``."""


class TextError(RelayError, ValueError):
    """Text that a data_coding cannot carry (encode), or bytes that are not valid
    in it (decode).

    Attributes:
        data_coding: the SMPP data_coding value involved.
        position: index of the first offending character (encode) or byte (decode).
    """

    def __init__(self, msg: str, *, data_coding: int, position: int = -1) -> None:
        super().__init__(msg)
        self.data_coding = data_coding
        self.position = position
