"""Every hot-path shortcut in protocol/ gives exactly what its reference gives.

Each fast path keeps its general counterpart as the reference, and falls back
to it for anything unusual; these properties check, on generated and damaged
inputs, that the two reach the same outcome — the same value, or the same
error (the same command_status for a PduError, the same position for a
TextError):

* codec: ``_decode_sm_fast`` (one regex) ≡ ``_decode_sm`` (straight-line);
  ``_encode_sm`` (one %-format) ≡ ``_encode_sm_checked``;
* buffer: ``FrameBuffer.pop_frames`` ≡ repeated ``next_frame``, in any chunking,
  framing errors included;
* session: ``Session.pop_events`` ≡ ``next_event`` until None;
* text: ``_decode_gsm7`` (bytes.translate) ≡ ``_decode_gsm7_loop``;
* receipt: ``parse_receipt`` / ``parse_receipt_text`` with the canonical-layout
  fast path ≡ the general tolerant scanner.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import codec, korean, receipt, text
from protocol.buffer import FrameBuffer
from protocol.config import SessionConfig
from protocol.constants import TAG_KR_RESULT_CODE, Tag
from protocol.errors import FramingError, LocalProtocolError, PduError, TextError
from protocol.events import Event
from protocol.pdu import BindTransceiver, DeliverSm, SubmitSm
from protocol.session import Role, Session, SessionState
from protocol.tlv import Tlv
from tests.protocol.strategies import pdu_of, pdus

PROPERTY = settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _outcome(fn: Callable[[], Any]) -> Any:
    """The value, or ("error", type, detail) for the errors the paths may raise."""
    try:
        return fn()
    except PduError as exc:
        return ("PduError", exc.command_status)
    except TextError as exc:
        return ("TextError", exc.position)
    except (LocalProtocolError, TypeError, AttributeError, ValueError):
        # What codec.encode() turns into LocalProtocolError.
        return ("LocalProtocolError",)


# ============================================================================ codec: decode

_SM_CLASSES = st.sampled_from([SubmitSm, DeliverSm])


@st.composite
def _sm_bodies(draw: st.DrawFn) -> bytes:
    """submit_sm/deliver_sm bodies: valid, damaged, or built of NULs and small numbers."""
    kind = draw(st.integers(0, 2))
    if kind == 2:
        return draw(st.lists(st.sampled_from([0, 1, 0x41, 0xFF, 0xFE]), max_size=140).map(bytes))
    body = bytearray(codec.encode(draw(pdu_of(draw(_SM_CLASSES)))))[16:]
    if kind == 1:
        for _ in range(draw(st.integers(1, 4))):
            if not body:
                break
            pos = draw(st.integers(0, len(body) - 1))
            op = draw(st.sampled_from(["set", "insert", "delete", "truncate"]))
            if op == "set":
                body[pos] = draw(st.sampled_from([0x00, 0x01, 0x41, 0xFE, 0xFF]))
            elif op == "insert":
                body[pos:pos] = draw(st.binary(min_size=1, max_size=4))
            elif op == "delete":
                del body[pos : pos + draw(st.integers(1, 4))]
            else:
                del body[pos:]
    return bytes(body)


@PROPERTY
@given(cls=_SM_CLASSES, body=_sm_bodies())
def test_decode_sm_fast_equals_straight_line_decoder(
    cls: type[SubmitSm] | type[DeliverSm], body: bytes
) -> None:
    """The regex decoder and the straight-line decoder agree on every body."""
    fast = _outcome(lambda: codec._decode_sm_fast(cls, 5, 7, body))
    assert fast == _outcome(lambda: codec._decode_sm(cls, 5, 7, body)), body.hex()


def test_decode_sm_fast_takes_the_regex_path_for_a_valid_body() -> None:
    """A plain valid submit_sm does not fall back (the shortcut is really used)."""
    pdu = SubmitSm(source_addr="0212345678", destination_addr="01012345678", short_message=b"x")
    body = codec.encode(pdu)[16:]
    assert codec._SM_MATCH(body.decode("latin-1")) is not None
    assert codec._decode_sm_fast(SubmitSm, 0, 0, body) == pdu


# ============================================================================ codec: encode

_WEIRD_STR = st.one_of(
    st.text(max_size=25),  # too long, NULs, non-Latin-1
    st.none(),
    st.binary(max_size=3),
    st.integers(0, 3),
)
_WEIRD_INT = st.one_of(
    st.integers(-2, 300),
    st.booleans(),
    st.none(),
    st.binary(min_size=1, max_size=1),  # %c would take it; struct must refuse it
    st.floats(0, 2),
    st.text(max_size=1),
)
_WEIRD_SM = st.one_of(
    st.binary(max_size=256),
    st.binary(max_size=10).map(bytearray),
    st.binary(max_size=10).map(memoryview),
    st.lists(st.integers(0, 255), max_size=5),
    st.text(max_size=5),
)
_STR_FIELDS = (
    "service_type",
    "source_addr",
    "destination_addr",
    "schedule_delivery_time",
    "validity_period",
)
_INT_FIELDS = (
    "source_addr_ton",
    "source_addr_npi",
    "dest_addr_ton",
    "dest_addr_npi",
    "esm_class",
    "protocol_id",
    "priority_flag",
    "registered_delivery",
    "replace_if_present_flag",
    "data_coding",
    "sm_default_msg_id",
)


@st.composite
def _sm_pdus_to_encode(draw: st.DrawFn) -> SubmitSm | DeliverSm:
    """Valid submit_sm/deliver_sm, then a few fields replaced by odd values."""
    pdu = draw(pdu_of(draw(_SM_CLASSES)))
    assert isinstance(pdu, SubmitSm | DeliverSm)
    for _ in range(draw(st.integers(0, 3))):
        which = draw(st.integers(0, 2))
        if which == 0:
            setattr(pdu, draw(st.sampled_from(_STR_FIELDS)), draw(_WEIRD_STR))
        elif which == 1:
            setattr(pdu, draw(st.sampled_from(_INT_FIELDS)), draw(_WEIRD_INT))
        else:
            pdu.short_message = draw(_WEIRD_SM)
    return pdu


@PROPERTY
@given(pdu=_sm_pdus_to_encode())
def test_encode_sm_fast_equals_checked_encoder(pdu: SubmitSm | DeliverSm) -> None:
    """The %-format encoder and the checked encoder give the same bytes, or both refuse."""
    assert _outcome(lambda: codec._encode_sm(pdu)) == _outcome(
        lambda: codec._encode_sm_checked(pdu)
    )


def test_encode_sm_refuses_a_one_octet_bytes_in_an_integer_field() -> None:
    """bytes %c would write b"A" as 0x41: the integer check must refuse it first."""
    with pytest.raises(LocalProtocolError):
        codec.encode(SubmitSm(esm_class=b"A"))  # type: ignore[arg-type]


# ============================================================================ FrameBuffer


def _by_next_frame(chunks: list[bytes], cap: int) -> list[Any]:
    fb = FrameBuffer(cap)
    out: list[Any] = []
    try:
        for chunk in chunks:
            fb.feed(chunk)
            while (f := fb.next_frame()) is not None:
                out.append(f[1:])
    except FramingError as exc:
        out.append(("FramingError", exc.sequence_number))
    out.append(fb.buffered_bytes)
    return out


def _by_pop_frames(chunks: list[bytes], cap: int) -> list[Any]:
    fb = FrameBuffer(cap)
    out: list[Any] = []
    try:
        for chunk in chunks:
            fb.feed(chunk)
            while frames := fb.pop_frames():
                out.extend(frames)
    except FramingError as exc:
        out.append(("FramingError", exc.sequence_number))
    out.append(fb.buffered_bytes)
    return out


@PROPERTY
@given(
    stream=st.lists(
        st.one_of(
            pdus().map(codec.encode),
            st.binary(max_size=24),  # garbage: bad lengths, partial headers
            st.integers(0, 70).map(lambda n: struct.pack(">I", n)),
        ),
        max_size=6,
    ),
    cuts=st.lists(st.integers(0, 1 << 16), max_size=12),
    cap=st.sampled_from([16, 64, 1024, 64 * 1024]),
)
def test_pop_frames_equals_repeated_next_frame(
    stream: list[bytes], cuts: list[int], cap: int
) -> None:
    """Same frames, same framing error at the same point, in any chunking (also byte
    by byte)."""
    data = b"".join(stream)
    points = sorted({c % (len(data) + 1) for c in cuts})
    chunks = [data[a:b] for a, b in itertools.pairwise([0, *points, len(data)])]
    assert _by_pop_frames(chunks, cap) == _by_next_frame(chunks, cap)
    one_by_one = [data[i : i + 1] for i in range(len(data))]
    assert _by_pop_frames(one_by_one, cap) == _by_next_frame(one_by_one, cap)


def test_framebuffer_keeps_no_copy_of_a_chunk_of_whole_frames() -> None:
    """A chunk of whole frames is sliced as received (one copy per body)."""
    raw = codec.encode(SubmitSm(sequence_number=1)) + codec.encode(SubmitSm(sequence_number=2))
    fb = FrameBuffer()
    fb.feed(raw)
    assert fb._buf is raw
    assert [f[2] for f in fb.pop_frames()] == [1, 2]
    assert fb.buffered_bytes == 0


# ============================================================================ session events


def _smsc_session() -> Session:
    return Session(SessionConfig(window_size=8, system_id="SMSC"), role=Role.SMSC, now=0.0)


def _drive(session: Session, inputs: list[bytes], drain: Callable[[Session], list[Event]]) -> Any:
    seen: list[Any] = []
    for data in inputs:
        session.receive_data(data, 1.0)
        for event in drain(session):
            seen.append(repr(event))  # repr: error objects compare by identity
            if type(event).__name__ == "BindRequested" and session.state is not SessionState.CLOSED:
                session.respond(event.request)  # type: ignore[union-attr]
                seen.extend(repr(e) for e in drain(session))
    return seen, session.data_to_send(), session.state


def _by_next_event(session: Session) -> list[Event]:
    out = []
    while (event := session.next_event()) is not None:
        out.append(event)
    return out


@PROPERTY
@given(
    stream=st.lists(st.one_of(pdus().map(codec.encode), st.binary(max_size=30)), max_size=6),
    cuts=st.lists(st.integers(0, 1 << 16), max_size=6),
)
def test_pop_events_equals_next_event_until_none(stream: list[bytes], cuts: list[int]) -> None:
    """A bound SMSC session fed any PDUs and garbage yields the same events either way."""
    bind = codec.encode(BindTransceiver(sequence_number=1, system_id="a", password="b"))
    data = bind + b"".join(stream)
    points = sorted({c % (len(data) + 1) for c in cuts})
    chunks = [data[a:b] for a, b in itertools.pairwise([0, *points, len(data)])]
    assert _drive(_smsc_session(), chunks, Session.pop_events) == _drive(
        _smsc_session(), chunks, _by_next_event
    )


# ============================================================================ GSM 7-bit text

_GSM_OCTETS = st.one_of(
    st.binary(max_size=200),
    st.lists(
        st.sampled_from([0x00, 0x10, 0x11, 0x1A, 0x1B, 0x24, 0x40, 0x41, 0x65, 0x7F, 0x80, 0xFF]),
        max_size=40,
    ).map(bytes),
    st.lists(st.integers(0, 0x7F), max_size=200).map(bytes),
)


@PROPERTY
@given(data=_GSM_OCTETS)
def test_decode_gsm7_fast_equals_per_septet_loop(data: bytes) -> None:
    """The translate path and the per-septet loop give the same text or the same error."""
    assert _outcome(lambda: text._decode_gsm7(data, 0)) == _outcome(
        lambda: text._decode_gsm7_loop(data, 0)
    )


# ============================================================================ receipts

# Token material rich in what the tolerant scanner treats specially: separators
# after which a key may start, str.split() whitespace of Latin-1, key words.
_TRICKY = st.sampled_from(
    [" ", "\t", "\x00", "\x1f", "\x85", "\xa0", ",", ";", ":", "id", "stat:", "text:", "err:"]
)
_PIECES = st.one_of(st.characters(min_codepoint=0x21, max_codepoint=0xFF), _TRICKY)
_CLEAN = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0xFF, exclude_characters=",;\x85\xa0"),
    min_size=1,
    max_size=12,
)
# Mostly values the fast path takes, often values it must leave to the scanner.
_TOKENS = st.one_of(_CLEAN, _CLEAN, _CLEAN, st.lists(_PIECES, max_size=8).map("".join))
_DIGITS = st.from_regex(r"[0-9]{1,9}", fullmatch=True)
_COUNTS = st.one_of(
    _DIGITS, _DIGITS, _DIGITS, st.from_regex(r"[0-9]{10,12}", fullmatch=True), _TOKENS
)
_STATS = st.one_of(
    st.sampled_from(["DELIVRD", "UNDELIV", "FAILED", "delivrd", "ENROUTE", "X"]), _TOKENS
)


@st.composite
def _receipt_texts(draw: st.DrawFn) -> str:
    """Receipt texts: half of them canonical (what the fast path takes), the rest
    canonical but for tricky values, another separator, key case or padding."""
    keys = ["id:", "sub:", "dlvrd:", "submit date:", "done date:", "stat:", "err:"]
    if draw(st.booleans()):
        values = [draw(_CLEAN), draw(_DIGITS), draw(_DIGITS), draw(_CLEAN), draw(_CLEAN)]
        values += [draw(st.one_of(_STATS, _CLEAN)), draw(_CLEAN)]
        sep = " "
    else:
        values = [draw(_TOKENS), draw(_COUNTS), draw(_COUNTS), draw(_TOKENS), draw(_TOKENS)]
        values += [draw(_STATS), draw(_TOKENS)]
        sep = " " if draw(st.integers(0, 3)) else draw(st.sampled_from(["  ", ",", "\t", "\n"]))
        if draw(st.integers(0, 4)) == 0:
            keys[draw(st.integers(0, 6))] = draw(st.sampled_from(["ID:", "Sub:", "submit_date:"]))
    body = sep.join(k + v for k, v in zip(keys, values, strict=True))
    tail = "".join(
        draw(st.lists(st.one_of(st.characters(max_codepoint=0xFF), _TRICKY), max_size=20))
    )
    pad = draw(st.sampled_from(["", "", "", " ", "\x00", "\n", " \x00"]))
    return pad + body + " text:" + tail + pad


_TLV_VALUE = st.one_of(
    st.none(), st.integers(-5, 70000), st.binary(max_size=5), st.text(max_size=8)
)
_RECEIPT_TLVS = st.lists(
    st.tuples(
        st.sampled_from(
            [
                Tag.receipted_message_id,
                Tag.message_state,
                Tag.network_error_code,
                Tag.message_payload,
                TAG_KR_RESULT_CODE,
                0x1402,
            ]
        ),
        _TLV_VALUE,
    ),
    max_size=6,
)


@PROPERTY
@given(t=_receipt_texts())
def test_parse_receipt_text_fast_path_equals_the_scanner(t: str) -> None:
    """Canonical-looking texts: the fast path and the tolerant scanner agree."""
    expected = receipt._receipt_from(receipt._scan(t.strip(receipt._STRIP)))
    assert receipt.parse_receipt_text(t) == expected
    assert receipt.parse_receipt_text(t.encode("latin-1")) == expected


@PROPERTY
@given(
    t=_receipt_texts(),
    esm_class=st.sampled_from([0x04, 0x20, 0x44, 0x00, 0x24]),
    data_coding=st.sampled_from([0, 1, 3, 8, 0x0E]),
    tags=_RECEIPT_TLVS,
)
def test_parse_receipt_fast_path_equals_the_general_parser(
    t: str, esm_class: int, data_coding: int, tags: list[tuple[int, object]]
) -> None:
    """Receipt PDUs with canonical-looking text and any TLVs: same Receipt (or None)."""
    pdu = DeliverSm(
        esm_class=esm_class,
        data_coding=data_coding,
        short_message=t.encode("latin-1")[:254],
        tlvs=tuple(Tlv(tag, value) for tag, value in tags),  # type: ignore[arg-type]
    )
    assert receipt.parse_receipt(pdu) == receipt._parse_receipt_general(pdu)


def test_parse_receipt_takes_the_fast_path_for_a_built_receipt() -> None:
    """What build_receipt_pdu writes matches the canonical layout."""
    r = receipt.Receipt(
        "12345", 1, 1, "2406011230", "2406011231", "DELIVRD", "1000", "hello", result_code=1000
    )
    pdu = receipt.build_receipt_pdu(r, source_addr="01012345678", destination_addr="021234")
    assert receipt._canonical_fields(pdu.short_message.decode("latin-1")) is not None
    assert receipt.parse_receipt(pdu) == receipt._parse_receipt_general(pdu) == r


# ============================================================================ korean: body_bytes


def _korean_outcome(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except korean.KoreanRuleError as exc:
        return ("KoreanRuleError", exc.code, exc.field, exc.position, str(exc))


_KO_ALPHABET = st.sampled_from(
    [
        "가",
        "힣",
        "똠",
        "햏",
        "ㄱ",
        "ㅏ",
        "a",
        "Z",
        "0",
        " ",
        "\n",
        "\r",
        "\t",
        "₩",
        "😀",
        "\xa0",
        "é",
    ]
)


@PROPERTY
@given(
    chars=st.lists(st.one_of(_KO_ALPHABET, st.characters()), max_size=1200),
    raw=st.binary(max_size=2100),
)
def test_body_bytes_equals_classify_message(chars: list[str], raw: bytes) -> None:
    """Same count, same error (code, field, position, message) as classify_message,
    from text alone, from text with the KS C 5601 bytes it came from, and from raw
    bytes decoded as data_coding 0x0E (valid or not)."""
    body = "".join(chars)

    def reference(t: str) -> Any:
        return _korean_outcome(lambda: korean.classify_message(t).body_bytes)

    assert _korean_outcome(lambda: korean.body_bytes(body)) == reference(body)
    try:
        encoded = body.encode("cp949")
    except UnicodeEncodeError:
        encoded = None
    if encoded is not None:
        assert _korean_outcome(lambda: korean.body_bytes(body, encoded, 0x0E)) == reference(body)
    try:
        decoded = text.decode_text(raw, 0x0E)
    except TextError:
        return
    assert _korean_outcome(lambda: korean.body_bytes(decoded, raw, 0x0E)) == reference(decoded)


def test_body_bytes_takes_the_fast_path_for_korean_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    """A valid KS C 5601 body is counted without classify_message (no re-encode)."""

    def slow_path(*_: object, **__: object) -> None:
        raise AssertionError("took the slow path")

    monkeypatch.setattr(korean, "classify_message", slow_path)
    raw = ("안녕하세요 " * 30).encode("cp949")
    assert korean.body_bytes(raw.decode("cp949"), raw, 0x0E) == len(raw)
    assert korean.body_bytes("x" * 2000) == 2000


@PROPERTY
@given(
    chars=st.lists(st.one_of(_KO_ALPHABET, st.characters()), max_size=200),
    raw=st.binary(max_size=300),
)
def test_is_ksx1001_bytes_equals_the_byte_pattern(chars: list[str], raw: bytes) -> None:
    """On cp949-decodable bytes (its contract) the euc_kr check is the regex."""
    candidates = [raw]
    try:
        candidates.append("".join(chars).encode("cp949"))
    except UnicodeEncodeError:
        pass
    # Make-up sequences (A4 D4 + jamo), valid and broken.
    candidates += [b"\xa4\xd4\xa4\xa1\xa4\xbf\xa4\xd4", b"\xa4\xd4\xa4\xa1", b"a\xa4\xd4"]
    for data in candidates:
        try:
            data.decode("cp949")
        except UnicodeDecodeError:
            continue
        assert text.is_ksx1001_bytes(data) == text._is_ksx1001(data), data
