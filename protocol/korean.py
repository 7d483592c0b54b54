"""The Korean xMS length and charset rules, as one classification function.

korea-messaging.md §2 (channels and limits) and §2.1 (counting bytes):

* Text is carried in EUC-KR restricted to KS X 1001 (SMPP data_coding 0x0E). Lengths
  are *bytes in that encoding*: ASCII 1 byte, everything else 2. Characters outside
  KS X 1001 (emoji, ₩ U+20A9, NBSP, the CP949-only syllables such as 똠 and 햏) are
  rejected with ``R_CHARSET``; never replaced by ``?``.
* Line breaks are normalised to LF before counting, so CRLF counts as 1 byte.
* SMS ≤ 90 bytes, no subject; LMS and MMS ≤ 2,000 bytes with a subject ≤ 40 bytes.
* Type: any image → MMS; else > 90 bytes or a subject → LMS; else SMS. A forced type
  is honoured or rejected (``R_LENGTH``), never truncated or silently changed.

Decisions beyond the document (kept here so they are reviewed in one place):

* A lone CR is normalised to LF as well as CRLF: both are one line break to the
  sender, and the carriers count LF.
* An empty subject (``""``) is treated as no subject.
* An empty body is rejected with ``R_LENGTH`` unless the message carries an image
  (an MMS may be picture-only).
* A subject on a forced SMS, or an image on a forced SMS/LMS, is rejected with
  ``R_LENGTH``: the forced type's capacity for it is zero (§2 table: SMS subject
  "none").
* A forced MMS without an image is accepted (LMS limits apply).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from protocol.constants import DataCoding
from protocol.errors import RelayError, TextError
from protocol.text import encode_text, is_ksx1001_bytes

__all__ = [
    "LMS_MAX_BYTES",
    "MMS_MAX_BYTES",
    "SMS_MAX_BYTES",
    "SUBJECT_MAX_BYTES",
    "Classification",
    "KoreanRuleError",
    "MessageType",
    "RejectCode",
    "body_bytes",
    "classify_message",
    "normalise_newlines",
]

# korea-messaging.md §2, in KS X 1001 / EUC-KR bytes.
SMS_MAX_BYTES = 90
LMS_MAX_BYTES = 2_000
MMS_MAX_BYTES = 2_000
SUBJECT_MAX_BYTES = 40


class MessageType(StrEnum):
    """The carrier channel (korea-messaging.md §2)."""

    SMS = "SMS"
    LMS = "LMS"
    MMS = "MMS"


class RejectCode(StrEnum):
    """Relay pre-send rejection codes used here (korea-messaging.md §8)."""

    R_LENGTH = "R_LENGTH"
    """길이 초과: body or subject over the type's limit, or empty body."""
    R_CHARSET = "R_CHARSET"
    """EUC-KR로 표현할 수 없는 문자: a character outside KS X 1001."""


class KoreanRuleError(RelayError):
    """A message breaks a Korean carrier rule; the relay rejects it before sending.

    Attributes:
        code: the rejection code.
        field: ``"body"`` or ``"subject"``.
        position: for ``R_CHARSET``, the index of the offending character in the
            string the caller passed (before newline normalisation); else None.
    """

    def __init__(
        self, code: RejectCode, msg: str, *, field: str, position: int | None = None
    ) -> None:
        super().__init__(msg)
        self.code = code
        self.field = field
        self.position = position


@dataclass(frozen=True, slots=True)
class Classification:
    """An accepted message and how it will be sent.

    Attributes:
        type: the channel.
        body_bytes: length of the normalised body in KS X 1001 bytes.
        subject_bytes: length of the normalised subject in bytes (0 without one).
        encoded_body: the body encoded for data_coding 0x0E.
        encoded_subject: the subject encoded likewise, or None.
        text: the normalised body (line breaks as LF).
        subject: the normalised subject, or None.
    """

    type: MessageType
    body_bytes: int
    subject_bytes: int
    encoded_body: bytes
    encoded_subject: bytes | None
    text: str
    subject: str | None


def normalise_newlines(text: str) -> str:
    """Replace CRLF and lone CR by LF (korea-messaging.md §2.1: CRLF counts 1 byte)."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _original_position(original: str, normalised_position: int) -> int:
    """Map an index in ``normalise_newlines(original)`` back to ``original``."""
    out = 0
    i = 0
    while i < normalised_position:
        # Each normalised character consumes one original character, or two for CRLF.
        out += 2 if original.startswith("\r\n", out) else 1
        i += 1
    return out


def _encode(original: str, field: str) -> tuple[str, bytes]:
    text = normalise_newlines(original)
    try:
        return text, encode_text(text, DataCoding.KSC5601)
    except TextError as exc:
        position = _original_position(original, exc.position)
        ch = original[position]
        raise KoreanRuleError(
            RejectCode.R_CHARSET,
            f"{field}: character U+{ord(ch):04X} at {position} is not in KS X 1001 (EUC-KR)",
            field=field,
            position=position,
        ) from exc


def classify_message(
    body: str,
    *,
    subject: str | None = None,
    force: MessageType | None = None,
    has_image: bool = False,
) -> Classification:
    """Count a message in KS X 1001 bytes, pick its channel, or reject it.

    Args:
        body: the message text as the client sent it.
        subject: the LMS/MMS subject; None or ``""`` means none.
        force: a channel the client asked for, instead of automatic selection.
        has_image: whether the message carries an image (→ MMS).

    Returns:
        The :class:`Classification`.

    Raises:
        KoreanRuleError: ``R_CHARSET`` for a character outside KS X 1001 (body
            checked first, then subject; ``position`` indexes the original string);
            ``R_LENGTH`` for an empty body without image, a body or subject over
            its limit, a forced SMS over 90 bytes or with a subject, or a forced
            SMS/LMS with an image. Nothing is truncated.
    """
    text, encoded_body = _encode(body, "body")
    normalised_subject: str | None = None
    encoded_subject: bytes | None = None
    if subject:
        normalised_subject, encoded_subject = _encode(subject, "subject")
    body_bytes = len(encoded_body)
    subject_bytes = 0 if encoded_subject is None else len(encoded_subject)

    if has_image:
        if force is not None and force is not MessageType.MMS:
            raise KoreanRuleError(
                RejectCode.R_LENGTH,
                f"a {force} cannot carry an image; send it as MMS",
                field="body",
            )
        kind = MessageType.MMS
    elif force is not None:
        kind = force
    elif body_bytes > SMS_MAX_BYTES or encoded_subject is not None:
        kind = MessageType.LMS
    else:
        kind = MessageType.SMS

    if body_bytes == 0 and not has_image:
        raise KoreanRuleError(RejectCode.R_LENGTH, "the body is empty", field="body")

    if kind is MessageType.SMS:
        if encoded_subject is not None:
            raise KoreanRuleError(
                RejectCode.R_LENGTH, "an SMS cannot carry a subject", field="subject"
            )
        limit = SMS_MAX_BYTES
    else:
        limit = LMS_MAX_BYTES if kind is MessageType.LMS else MMS_MAX_BYTES
        if subject_bytes > SUBJECT_MAX_BYTES:
            raise KoreanRuleError(
                RejectCode.R_LENGTH,
                f"subject is {subject_bytes} bytes; the limit is {SUBJECT_MAX_BYTES}",
                field="subject",
            )
    if body_bytes > limit:
        raise KoreanRuleError(
            RejectCode.R_LENGTH,
            f"{kind} body is {body_bytes} bytes; the limit is {limit}",
            field="body",
        )

    return Classification(
        type=kind,
        body_bytes=body_bytes,
        subject_bytes=subject_bytes,
        encoded_body=encoded_body,
        encoded_subject=encoded_subject,
        text=text,
        subject=normalised_subject,
    )


def body_bytes(text: str, raw: bytes | None = None, data_coding: int | None = None) -> int:
    """``classify_message(text).body_bytes``, raising the same errors, for a body
    with neither subject nor image — without re-encoding when the count is
    already known (the submit hot path):

    * ASCII text without CR: one byte per character;
    * ``raw`` bytes that ``text`` was decoded from with data_coding 0x0E, without
      CR, all in KS X 1001: ``len(raw)`` (cp949 round-trips them exactly).

    Anything else (and any error, so that its message is the precise one) goes
    through :func:`classify_message`. tests/protocol/test_fast_paths.py proves
    the two equal.
    """
    if "\r" not in text:
        if text.isascii():
            n = len(text)
        elif raw is not None and data_coding == DataCoding.KSC5601 and is_ksx1001_bytes(raw):
            n = len(raw)
        else:
            n = 0
        if 0 < n <= LMS_MAX_BYTES:
            return n
    return classify_message(text).body_bytes
