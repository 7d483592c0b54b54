"""Fuzz the decoders: garbage in, RemoteProtocolError out (style guide §8.3).

Invariant (after h11's fuzz/afl-server.py): whatever bytes a peer sends, the
hand-written codec, the construct specification and FrameBuffer + decode_body
either produce a PDU or raise a :class:`~protocol.errors.RemoteProtocolError`
(PduError/FramingError) — never IndexError, struct.error, UnicodeDecodeError, a
construct error or anything else. And because the specification is the
reference, both decoders must reach the *same* outcome on every input: equal
PDUs, or a PduError with the same command_status.

Inputs: random byte strings; random bodies behind a consistent header for every
command id; and mutated valid encodings (bytes flipped, set, inserted, deleted,
truncated), usually with command_length patched to stay consistent so that the
body parsers, not the length check, see the damage.
"""

from __future__ import annotations

import itertools
import struct
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import codec, spec
from protocol.buffer import FrameBuffer
from protocol.constants import CommandId
from protocol.errors import FramingError, PduError, RemoteProtocolError
from protocol.pdu import Pdu
from tests.protocol.strategies import hot_pdus, pdus


def fuzz(examples: int) -> settings:
    """Hypothesis settings for a fuzz test: ``examples`` inputs, no deadline."""
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# Known ids, plus a few unknown ones (reserved, [v5.0], vendor).
_COMMAND_IDS = [int(c) for c in CommandId] + [0x0000000A, 0x00000111, 0x80010200]
_ANY_PDU = pdus()


def outcome(decode: Any, data: bytes) -> Pdu | tuple[str, int]:
    """The PDU, or ("error", status) for a RemoteProtocolError. Anything else escapes
    and fails the test."""
    try:
        result: Pdu = decode(data)
    except RemoteProtocolError as exc:
        return ("error", exc.command_status)
    return result


@st.composite
def framed_bodies(draw: st.DrawFn) -> bytes:
    """A consistent header for any command id, then a random body (often short,
    often built of NULs and small numbers so that C-strings and lengths line up)."""
    command_id = draw(st.sampled_from(_COMMAND_IDS))
    status = draw(st.sampled_from([0, 1, 0x401, 0xDEADBEEF]))
    body = draw(
        st.one_of(
            st.binary(max_size=120),
            st.lists(st.sampled_from([0, 1, 2, 3, 0x41, 0xFF]), max_size=120).map(bytes),
        )
    )
    return struct.pack(">IIII", 16 + len(body), command_id, status, 7) + body


@st.composite
def mutated_encodings(draw: st.DrawFn, source: st.SearchStrategy[Pdu] | None = None) -> bytes:
    """A valid encoding damaged by 1..4 mutations; command_length usually patched back
    to the real size."""
    data = bytearray(codec.encode(draw(source if source is not None else _ANY_PDU)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        size = len(data)
        if size == 0:
            break
        # Mostly hit the body: the header is checked first and would hide the rest.
        low = 16 if size > 16 and draw(st.integers(0, 4)) else 0
        pos = draw(st.integers(low, size - 1))
        if op == "flip":
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            data[pos] = draw(st.sampled_from([0x00, 0x01, 0x02, 0x03, 0xFE, 0xFF]))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=6))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 6))]
        else:
            del data[pos:]
    if len(data) >= 4 and draw(st.integers(0, 4)):
        data[0:4] = struct.pack(">I", len(data))
    return bytes(data)


def _assert_same_outcome(data: bytes) -> None:
    hand = outcome(codec.decode, data)
    assert outcome(spec.spec_decode, data) == hand, data.hex()
    if isinstance(hand, Pdu):
        # Whatever decodes re-encodes (C-string TLVs may gain their NUL) and decodes
        # to the same PDU again: the codec accepts nothing it could not relay.
        assert codec.decode(codec.encode(hand)) == hand


def _drain(fb: FrameBuffer, chunks: list[bytes]) -> int:
    """Feed ``chunks`` and decode every frame; returns the number of frames."""
    frames = 0
    try:
        for chunk in chunks:
            fb.feed(chunk)
            while (f := fb.next_frame()) is not None:
                frames += 1
                try:
                    codec.decode_body(*f[1:])
                except PduError:
                    pass
    except FramingError:
        assert fb.buffered_bytes == 0
    return frames


@fuzz(2000)
@given(data=st.binary(max_size=200))
def test_codec_decode_of_random_bytes_is_a_pdu_or_remote_error(data: bytes) -> None:
    """Random bytes: codec.decode returns a PDU or raises RemoteProtocolError."""
    outcome(codec.decode, data)


@fuzz(500)
@given(data=st.binary(max_size=200))
def test_spec_decode_of_random_bytes_is_a_pdu_or_remote_error(data: bytes) -> None:
    """Random bytes: spec_decode returns a PDU or raises RemoteProtocolError."""
    outcome(spec.spec_decode, data)


@fuzz(2000)
@given(data=framed_bodies())
def test_random_bodies_behind_valid_headers_give_same_outcome(data: bytes) -> None:
    """A random body for any command id: both decoders agree on the PDU or the status."""
    _assert_same_outcome(data)


@fuzz(2000)
@given(data=mutated_encodings())
def test_mutated_encodings_give_same_outcome(data: bytes) -> None:
    """Damaged valid PDUs of every class: both decoders agree on the PDU or the status."""
    _assert_same_outcome(data)


@fuzz(1000)
@given(data=mutated_encodings(hot_pdus()))
def test_mutated_hot_pdus_give_same_outcome(data: bytes) -> None:
    """Damaged hot-path PDUs (submit_sm, deliver_sm, data_sm, ...): both agree."""
    _assert_same_outcome(data)


@fuzz(1500)
@given(
    stream=st.lists(st.one_of(mutated_encodings(), st.binary(max_size=40)), max_size=5),
    cuts=st.lists(st.integers(0, 1 << 16), max_size=10),
    cap=st.sampled_from([16, 64, 1024, 64 * 1024]),
)
def test_framebuffer_and_decode_body_on_garbage_raise_only_remote_errors(
    stream: list[bytes], cuts: list[int], cap: int
) -> None:
    """Garbage streams in any chunking through FrameBuffer + decode_body: only
    FramingError or PduError, and a framing error leaves nothing buffered."""
    data = b"".join(stream)
    points = sorted({c % (len(data) + 1) for c in cuts})
    chunks = [data[a:b] for a, b in itertools.pairwise([0, *points, len(data)])]
    _drain(FrameBuffer(cap), chunks)


@fuzz(300)
@given(good=st.lists(pdus(), min_size=1, max_size=4), junk=mutated_encodings())
def test_a_bad_pdu_does_not_desynchronise_the_stream(good: list[Pdu], junk: bytes) -> None:
    """A damaged PDU whose command_length is sane consumes exactly its bytes: the
    valid PDUs after it still decode (style guide §5.1)."""
    length = struct.unpack_from(">I", junk)[0] if len(junk) >= 16 else 0
    if length != len(junk):
        junk = struct.pack(">I", len(junk)) + junk[4:] if len(junk) >= 16 else b""
    fb = FrameBuffer()
    fb.feed(junk + b"".join(codec.encode(p) for p in good))
    frames = []
    while (f := fb.next_frame()) is not None:
        frames.append(f)
    tail = frames[-len(good) :]
    assert [codec.decode_body(*f[1:]) for f in tail] == good
