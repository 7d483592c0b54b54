"""Tests for protocol/korean.py: the Korean xMS rules (korea-messaging.md §2, §2.1)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.errors import RelayError
from protocol.korean import (
    LMS_MAX_BYTES,
    MMS_MAX_BYTES,
    SMS_MAX_BYTES,
    SUBJECT_MAX_BYTES,
    KoreanRuleError,
    MessageType,
    RejectCode,
    classify_message,
    normalise_newlines,
)

PROPERTY = settings(max_examples=200, deadline=None)

HANGUL = "가각간갇갈한글안녕하세요"


def test_limits_match_the_channel_table() -> None:
    """§2: SMS 90, LMS/MMS 2,000, subject 40 bytes."""
    assert (SMS_MAX_BYTES, LMS_MAX_BYTES, MMS_MAX_BYTES, SUBJECT_MAX_BYTES) == (90, 2000, 2000, 40)


def test_45_hangul_is_a_90_byte_sms() -> None:
    """§2: 45 Hangul syllables = 90 bytes, the SMS maximum."""
    result = classify_message("한" * 45)
    assert result.type is MessageType.SMS
    assert result.body_bytes == 90
    assert result.encoded_body == bytes.fromhex("C7D1") * 45


def test_46_hangul_becomes_lms() -> None:
    """§2.1: more than 90 bytes → LMS."""
    result = classify_message("한" * 46)
    assert result.type is MessageType.LMS
    assert result.body_bytes == 92


def test_ascii_counts_one_byte() -> None:
    """§2.1: ASCII is 1 byte: 90 ASCII → SMS, 91 → LMS."""
    assert classify_message("a" * 90).type is MessageType.SMS
    assert classify_message("a" * 91).type is MessageType.LMS


def test_crlf_counts_as_one_byte() -> None:
    """§2.1: CRLF is normalised to LF before counting."""
    body = "a" * 88 + "\r\n" + "b"
    result = classify_message(body)
    assert result.body_bytes == 90
    assert result.type is MessageType.SMS
    assert result.text == "a" * 88 + "\nb"
    assert result.encoded_body == b"a" * 88 + b"\nb"


def test_lone_cr_is_normalised_to_lf() -> None:
    """A lone CR is a line break too: counted and sent as LF."""
    assert normalise_newlines("a\rb\r\nc\n\r") == "a\nb\nc\n\n"
    assert classify_message("a\rb").text == "a\nb"


def test_subject_makes_lms() -> None:
    """§2.1: a subject → LMS even for a short body."""
    result = classify_message("hi", subject="제목")
    assert result.type is MessageType.LMS
    assert result.subject_bytes == 4
    assert result.encoded_subject == "제목".encode("euc_kr")


def test_empty_subject_is_no_subject() -> None:
    """An empty subject does not turn an SMS into an LMS."""
    result = classify_message("hi", subject="")
    assert result.type is MessageType.SMS
    assert result.subject is None
    assert result.subject_bytes == 0


def test_subject_of_40_bytes_accepted_41_rejected() -> None:
    """§2: subject ≤ 40 bytes; 41 is R_LENGTH on the subject."""
    assert classify_message("body", subject="가" * 20).subject_bytes == 40
    with pytest.raises(KoreanRuleError) as info:
        classify_message("body", subject="가" * 20 + "a")
    assert info.value.code is RejectCode.R_LENGTH
    assert info.value.field == "subject"


def test_forced_sms_over_90_bytes_is_rejected_not_truncated() -> None:
    """§2.1: forcing SMS with 91 bytes is R_LENGTH."""
    assert classify_message("a" * 90, force=MessageType.SMS).type is MessageType.SMS
    with pytest.raises(KoreanRuleError) as info:
        classify_message("가" * 45 + "a", force=MessageType.SMS)
    assert info.value.code is RejectCode.R_LENGTH
    assert info.value.field == "body"


def test_forced_sms_with_subject_is_rejected() -> None:
    """SMS has no subject (§2 table): forcing SMS with one is R_LENGTH."""
    with pytest.raises(KoreanRuleError) as info:
        classify_message("hi", subject="s", force=MessageType.SMS)
    assert info.value.code is RejectCode.R_LENGTH


def test_forced_lms_for_short_body() -> None:
    """A client may force LMS for a body that would fit an SMS."""
    assert classify_message("hi", force=MessageType.LMS).type is MessageType.LMS


def test_lms_body_limit_is_2000_bytes() -> None:
    """§2: LMS ≤ 2,000 bytes; 2,001 is R_LENGTH."""
    assert classify_message("가" * 1000).body_bytes == 2000
    with pytest.raises(KoreanRuleError) as info:
        classify_message("가" * 1000 + "a")
    assert info.value.code is RejectCode.R_LENGTH


def test_image_makes_mms() -> None:
    """§2.1: any image → MMS, whatever the body length."""
    assert classify_message("hi", has_image=True).type is MessageType.MMS
    with pytest.raises(KoreanRuleError):
        classify_message("가" * 1001, has_image=True)


@pytest.mark.parametrize("forced", [MessageType.SMS, MessageType.LMS])
def test_forced_text_type_with_image_is_rejected(forced: MessageType) -> None:
    """SMS and LMS cannot carry an image; the type is never silently changed."""
    with pytest.raises(KoreanRuleError) as info:
        classify_message("hi", force=forced, has_image=True)
    assert info.value.code is RejectCode.R_LENGTH


def test_empty_body_rejected_unless_image() -> None:
    """An empty text message is R_LENGTH; a picture-only MMS is accepted."""
    with pytest.raises(KoreanRuleError) as info:
        classify_message("")
    assert info.value.code is RejectCode.R_LENGTH
    assert classify_message("", has_image=True).type is MessageType.MMS


@pytest.mark.parametrize(
    ("body", "position"),
    [("똠", 0), ("안녕 햏", 3), ("₩1000", 0), ("a\u00a0b", 1), ("좋아요👍", 3)],
)
def test_characters_outside_ks_x_1001_are_r_charset(body: str, position: int) -> None:
    """§2.1: emoji, ₩, NBSP and CP949-only syllables are R_CHARSET with their position."""
    with pytest.raises(KoreanRuleError) as info:
        classify_message(body)
    assert info.value.code is RejectCode.R_CHARSET
    assert info.value.field == "body"
    assert info.value.position == position


def test_charset_position_refers_to_the_original_text() -> None:
    """Positions index the string the client sent, before CRLF normalisation."""
    body = "a\r\nb\r\n똠"
    with pytest.raises(KoreanRuleError) as info:
        classify_message(body)
    assert info.value.position == 6
    assert body[info.value.position] == "똠"


def test_subject_charset_error_names_the_subject() -> None:
    """A subject outside KS X 1001 is R_CHARSET on the subject."""
    with pytest.raises(KoreanRuleError) as info:
        classify_message("body", subject="제목😀")
    assert (info.value.code, info.value.field, info.value.position) == (
        RejectCode.R_CHARSET,
        "subject",
        2,
    )


def test_korean_rule_error_is_a_relay_error() -> None:
    """Rejections belong to the project's error hierarchy."""
    with pytest.raises(RelayError):
        classify_message("😀")


def test_reject_codes_are_the_documented_strings() -> None:
    """§8: the codes are the relay's names."""
    assert RejectCode.R_LENGTH == "R_LENGTH"
    assert RejectCode.R_CHARSET == "R_CHARSET"


KSC_ALPHABET = st.sampled_from(list(HANGUL + "abc XYZ 123\n\r€①ㄱㅤ"))


@PROPERTY
@given(
    body=st.text(alphabet=KSC_ALPHABET, min_size=1, max_size=120),
    subject=st.none() | st.text(alphabet=KSC_ALPHABET, max_size=25),
)
def test_byte_count_and_type_follow_euc_kr_length(body: str, subject: str | None) -> None:
    """Counts equal euc_kr bytes of the normalised text; type follows §2.1."""
    expected = len(normalise_newlines(body).encode("euc_kr"))
    expected_subject = len(normalise_newlines(subject).encode("euc_kr")) if subject else 0
    if expected_subject > SUBJECT_MAX_BYTES:
        with pytest.raises(KoreanRuleError) as info:
            classify_message(body, subject=subject)
        assert info.value.code is RejectCode.R_LENGTH
        return
    result = classify_message(body, subject=subject)
    assert result.body_bytes == expected == len(result.encoded_body)
    assert result.subject_bytes == expected_subject
    if expected <= SMS_MAX_BYTES and not subject:
        assert result.type is MessageType.SMS
    else:
        assert result.type is MessageType.LMS
    assert "\r" not in result.text
