"""The receive buffer: bytes in any chunking → whole PDU frames (SMPP 3.4 §2.4, §3.2).

TCP has no message boundaries: one read may hold part of a PDU or several PDUs.
The buffer frames strictly by ``command_length`` and checks it the moment its
four octets are present — below 16 or above ``max_pdu_bytes`` is a
:class:`~protocol.errors.FramingError` raised before any of the body is kept
(style guide §3.4; cloudhopper checks only the lower bound — don't copy that).
After a framing error the buffer is poisoned: there is no trustworthy boundary
to resume from, so every later call raises the same error.
"""

from __future__ import annotations

import struct

from protocol.constants import HEADER_BYTES
from protocol.errors import FramingError

# Precedents: the digest (§2) suggests a few KB to 64 KB; message_payload is "up
# to 64 K" (§5.3.2.32). 64 KiB bounds what one peer can make us hold per PDU.
DEFAULT_MAX_PDU_BYTES = 64 * 1024

_LEN = struct.Struct(">I")
_HDR = struct.Struct(">IIII")


class FrameBuffer:
    """Accumulates received bytes and hands out whole PDUs.

    Storage: a chunk that arrives while nothing is buffered is kept as the
    ``bytes`` object it is, and frames are sliced out of it — one copy per
    body (a ``bytearray`` costs two: the slice, then ``bytes()``; ~120 ns per
    PDU measured). Only while a frame is incomplete are bytes accumulated in a
    ``bytearray`` (amortised O(1) appends: a frame trickling in a byte at a
    time must not cost O(n²)); it turns back into ``bytes`` once a whole frame
    is in.

    Args:
        max_pdu_bytes: the largest command_length accepted.
    """

    __slots__ = ("_buf", "_error", "_max", "_pos")

    def __init__(self, max_pdu_bytes: int = DEFAULT_MAX_PDU_BYTES) -> None:
        if max_pdu_bytes < HEADER_BYTES:
            raise ValueError("max_pdu_bytes must be at least 16")
        self._max = max_pdu_bytes
        self._buf: bytes | bytearray = b""
        self._pos = 0  # start of unconsumed data in _buf
        self._error: FramingError | None = None

    @property
    def buffered_bytes(self) -> int:
        """Bytes received and not yet handed out."""
        return len(self._buf) - self._pos

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Append received bytes. Checks the next frame's command_length at once.

        Raises:
            FramingError: command_length < 16 or > max_pdu_bytes.
        """
        if self._error is not None:
            raise self._error
        buf = self._buf
        if self._pos >= len(buf):
            # Nothing buffered: keep the chunk itself (no copy for bytes).
            self._buf = data if type(data) is bytes else bytes(data)
            self._pos = 0
        elif type(buf) is bytes:
            # A partial frame waits: accumulate from here on.
            acc = bytearray(memoryview(buf)[self._pos :])
            acc += data
            self._buf = acc
            self._pos = 0
        else:
            buf += data  # a bytearray: in place
        # Check the head frame's command_length now, before more of a bogus
        # frame is kept. Later frames in this chunk are checked as they come up.
        self._check_head()

    def _check_head(self) -> None:
        pos = self._pos
        buf = self._buf
        if len(buf) - pos >= 4:
            (length,) = _LEN.unpack_from(buf, pos)
            if length < HEADER_BYTES or length > self._max:
                seq = 0
                if len(buf) - pos >= HEADER_BYTES:
                    seq = _HDR.unpack_from(buf, pos)[3]
                self._error = FramingError(
                    f"command_length {length} outside 16..{self._max}", sequence_number=seq
                )
                # Drop what we hold: nothing after a bad length can be trusted.
                self._buf = b""
                self._pos = 0
                raise self._error

    def _whole_frame_bytes(self) -> bytes | None:
        """The buffer as ``bytes`` if it holds at least one whole frame (turning
        an accumulating bytearray back into bytes), else None."""
        buf = self._buf
        pos = self._pos
        avail = len(buf) - pos
        if avail < HEADER_BYTES:
            return None
        (length,) = _LEN.unpack_from(buf, pos)
        if avail < length or length < HEADER_BYTES:
            return None
        if type(buf) is bytearray:
            # Once per whole frame, never per fed chunk: linear overall.
            buf = self._buf = bytes(memoryview(buf)[pos:])
            self._pos = 0
        return buf  # type: ignore[return-value]

    def next_frame(self) -> tuple[int, int, int, int, bytes] | None:
        """The next whole PDU as ``(command_length, command_id, command_status,
        sequence_number, body)``, or None if more bytes are needed.

        Frames that arrived complete before a bad command_length are all handed
        out first; the error is raised when the bad header becomes the next frame.

        Raises:
            FramingError: the next frame's command_length is < 16 or > max_pdu_bytes.
        """
        if self._error is not None:
            raise self._error
        self._check_head()
        buf = self._whole_frame_bytes()
        if buf is None:
            return None
        pos = self._pos
        length, command_id, status, seq = _HDR.unpack_from(buf, pos)
        end = pos + length
        self._pos = end
        return length, command_id, status, seq, buf[pos + HEADER_BYTES : end]

    def pop_frames(self) -> list[tuple[int, int, int, bytes]]:
        """Every whole PDU buffered, in order, as ``(command_id, command_status,
        sequence_number, body)`` — what repeated :meth:`next_frame` calls give,
        minus command_length, in one call (the session's per-read hot path: one
        call per read instead of two per PDU). An empty list if more bytes are
        needed.

        As with :meth:`next_frame`, frames before a bad command_length are all
        handed out first; the call after them raises.

        Raises:
            FramingError: the next frame's command_length is < 16 or > max_pdu_bytes.
        """
        if self._error is not None:
            raise self._error
        self._check_head()
        buf = self._whole_frame_bytes()
        if buf is None:
            return []
        out: list[tuple[int, int, int, bytes]] = []
        append = out.append
        unpack = _HDR.unpack_from
        cap = self._max
        pos = self._pos
        size = len(buf)
        while size - pos >= HEADER_BYTES:
            length, command_id, status, seq = unpack(buf, pos)
            end = pos + length
            if end > size or length < HEADER_BYTES or length > cap:
                break  # incomplete, or bad: the next call checks and raises
            append((command_id, status, seq, buf[pos + HEADER_BYTES : end]))
            pos = end
        self._pos = pos
        return out
