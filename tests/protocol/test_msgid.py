"""Tests for protocol/msgid.py: submit_sm_resp id ⇄ receipt id correlation (digest §9)."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.errors import RelayError
from protocol.msgid import (
    AS_IS,
    BOTH_DEC,
    BOTH_HEX,
    DEC_RESP_HEX_RECEIPT,
    HEX_RESP_DEC_RECEIPT,
    MAX_NUMERIC_ID_CHARS,
    PRESETS,
    IdFormat,
    IdPolicy,
    MessageIdError,
    policy_from_name,
)

PROPERTY = settings(max_examples=300, deadline=None)


def _match(policy: IdPolicy, resp_id: str, receipt_id: str) -> bool:
    return policy.canonical_resp_id(resp_id) == policy.canonical_receipt_id(receipt_id)


# ------------------------------------------------------------------- the presets


def test_hex_resp_matches_its_decimal_receipt() -> None:
    """'0001A2' in submit_sm_resp and '418' in the receipt are one message (0x1A2 = 418)."""
    assert HEX_RESP_DEC_RECEIPT.canonical_resp_id("0001A2") == "418"
    assert HEX_RESP_DEC_RECEIPT.canonical_receipt_id("418") == "418"
    assert _match(HEX_RESP_DEC_RECEIPT, "0001a2", "0418")


def test_hex_resp_does_not_match_a_different_decimal_receipt() -> None:
    """0x1A2 is not 419."""
    assert not _match(HEX_RESP_DEC_RECEIPT, "0001A2", "419")


def test_as_is_does_not_convert_between_bases() -> None:
    """Under AS_IS the same number in hex and decimal are different ids."""
    assert not _match(AS_IS, "0001A2", "418")


def test_dec_resp_matches_its_hex_receipt() -> None:
    """The reverse pairing: decimal in submit_sm_resp, hex in the receipt."""
    assert _match(DEC_RESP_HEX_RECEIPT, "418", "1a2")
    assert _match(DEC_RESP_HEX_RECEIPT, "0418", "0x01A2")
    assert not _match(DEC_RESP_HEX_RECEIPT, "418", "418")  # '418' hex is 1048


def test_both_hex_ignores_case_and_leading_zeros() -> None:
    """Hex ids compare by value: '00ff', 'FF' and '0xFf' are one id."""
    assert BOTH_HEX.canonical_resp_id("00ff") == BOTH_HEX.canonical_receipt_id("FF") == "255"
    assert BOTH_HEX.canonical_receipt_id("0xFf") == "255"


def test_both_dec_ignores_leading_zeros() -> None:
    """Decimal ids compare by value; all-zero ids are '0'."""
    assert _match(BOTH_DEC, "000123", "123")
    assert BOTH_DEC.canonical_resp_id("000") == "0"
    assert not _match(BOTH_DEC, "123", "1230")


def test_as_is_folds_case_and_strips_whitespace() -> None:
    """TOKEN ids are compared stripped and case-folded by default."""
    assert AS_IS.canonical_resp_id(" 16FD2706-8BAF-433B\n") == "16fd2706-8baf-433b"
    assert _match(AS_IS, "AbC-1", "abc-1")


def test_as_is_keeps_leading_zeros_by_default() -> None:
    """An opaque token '007' is not '7' unless the peer's policy says so."""
    assert not _match(AS_IS, "007", "7")


def test_case_sensitive_token_policy_keeps_case() -> None:
    """case_insensitive=False compares tokens exactly (after stripping whitespace)."""
    policy = IdPolicy(case_insensitive=False)
    assert policy.canonical_resp_id(" AbC ") == "AbC"
    assert not _match(policy, "AbC", "abc")


def test_token_policy_can_strip_leading_zeros() -> None:
    """strip_leading_zeros=True makes '007' and '7' (and '000' and '0') one token."""
    policy = IdPolicy(strip_leading_zeros=True)
    assert _match(policy, "007", "7")
    assert policy.canonical_receipt_id("000") == "0"
    assert policy.canonical_receipt_id("00ab") == "ab"
    assert policy.canonical_receipt_id("") == ""


def test_numeric_formats_ignore_the_token_options() -> None:
    """Numeric ids always compare by value, whatever case_insensitive says."""
    policy = IdPolicy(IdFormat.HEX, IdFormat.HEX, case_insensitive=False)
    assert _match(policy, "00AB", "ab")


def test_policy_rejects_mixing_token_with_a_numeric_format() -> None:
    """A TOKEN side and a numeric side could never compare equal reliably."""
    with pytest.raises(ValueError, match="TOKEN"):
        IdPolicy(IdFormat.TOKEN, IdFormat.HEX)
    with pytest.raises(ValueError, match="TOKEN"):
        IdPolicy(IdFormat.DECIMAL, IdFormat.TOKEN)


def test_policy_is_a_frozen_value() -> None:
    """Policies are immutable and compare by value."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        AS_IS.case_insensitive = False  # type: ignore[misc]
    assert IdPolicy(IdFormat.HEX, IdFormat.DECIMAL) == HEX_RESP_DEC_RECEIPT


def test_presets_have_the_documented_formats() -> None:
    """The five presets pair the formats their names say."""
    assert {name: (p.resp_format, p.receipt_format) for name, p in PRESETS.items()} == {
        "as_is": (IdFormat.TOKEN, IdFormat.TOKEN),
        "hex_resp_dec_receipt": (IdFormat.HEX, IdFormat.DECIMAL),
        "dec_resp_hex_receipt": (IdFormat.DECIMAL, IdFormat.HEX),
        "both_hex": (IdFormat.HEX, IdFormat.HEX),
        "both_dec": (IdFormat.DECIMAL, IdFormat.DECIMAL),
    }


# --------------------------------------------------------------- invalid ids


@pytest.mark.parametrize(
    ("policy", "side", "bad"),
    [
        (HEX_RESP_DEC_RECEIPT, "resp", "xyz"),
        (HEX_RESP_DEC_RECEIPT, "receipt", "1a2"),
        (DEC_RESP_HEX_RECEIPT, "resp", "12a"),
        (DEC_RESP_HEX_RECEIPT, "receipt", "0x"),
        (BOTH_DEC, "resp", ""),
        (BOTH_DEC, "receipt", "   "),
        (BOTH_DEC, "resp", "1_000"),
        (BOTH_DEC, "resp", "+5"),
        (BOTH_DEC, "resp", "-5"),
        (BOTH_DEC, "resp", "١٢"),  # Arabic-Indic digits: int() would accept them
        (BOTH_DEC, "resp", "１２"),  # fullwidth digits
        (BOTH_HEX, "receipt", "12 34"),
        (BOTH_HEX, "receipt", "f" * (MAX_NUMERIC_ID_CHARS + 1)),
        (BOTH_DEC, "receipt", "9" * 5000),
    ],
)
def test_invalid_numeric_ids_raise_message_id_error(policy: IdPolicy, side: str, bad: str) -> None:
    """A numeric id that is not valid in its format raises MessageIdError."""
    fn = policy.canonical_resp_id if side == "resp" else policy.canonical_receipt_id
    with pytest.raises(MessageIdError) as excinfo:
        fn(bad)
    assert excinfo.value.message_id == bad
    fmt = policy.resp_format if side == "resp" else policy.receipt_format
    assert excinfo.value.id_format is fmt


def test_message_id_error_is_a_value_error_and_a_relay_error() -> None:
    """Callers may catch it as ValueError or as the project's RelayError."""
    assert issubclass(MessageIdError, ValueError)
    assert issubclass(MessageIdError, RelayError)


def test_longest_smpp_message_id_is_accepted() -> None:
    """64 characters, the SMPP 3.4 message_id maximum without its NUL, still converts."""
    assert BOTH_HEX.canonical_resp_id("F" * MAX_NUMERIC_ID_CHARS) == str(16**64 - 1)


# ------------------------------------------------------------ policy_from_name


@pytest.mark.parametrize("name", list(PRESETS))
def test_policy_from_name_returns_each_preset(name: str) -> None:
    """Every preset is reachable by its configuration name."""
    assert policy_from_name(name) is PRESETS[name]


def test_policy_from_name_ignores_case_dashes_and_whitespace() -> None:
    """'Hex-Resp-Dec-Receipt' in a config file is the same preset."""
    assert policy_from_name(" Hex-Resp-Dec-Receipt ") is HEX_RESP_DEC_RECEIPT
    assert policy_from_name("AS_IS") is AS_IS


@pytest.mark.parametrize("name", ["", "hex", "1", "both-octal"])
def test_policy_from_name_rejects_unknown_names_listing_valid_ones(name: str) -> None:
    """Unknown names (Jasmin/Kannel numbers included) fail with the valid names listed."""
    with pytest.raises(ValueError, match="as_is, hex_resp_dec_receipt") as excinfo:
        policy_from_name(name)
    assert not isinstance(excinfo.value, MessageIdError)
    for valid in PRESETS:
        assert valid in str(excinfo.value)


# --------------------------------------------------------------- property tests

_N = st.integers(min_value=0, max_value=10**40)


@PROPERTY
@given(n=_N, pad=st.integers(0, 10), upper=st.booleans())
def test_hex_resp_and_decimal_receipt_of_one_number_agree(n: int, pad: int, upper: bool) -> None:
    """format(n,'x'/'X'), zero-padded, matches str(n) under HEX_RESP_DEC_RECEIPT."""
    hex_id = "0" * pad + format(n, "X" if upper else "x")
    assert HEX_RESP_DEC_RECEIPT.canonical_resp_id(hex_id) == str(n)
    assert HEX_RESP_DEC_RECEIPT.canonical_receipt_id("0" * pad + str(n)) == str(n)


@PROPERTY
@given(n=_N, pad=st.integers(0, 10), upper=st.booleans())
def test_decimal_resp_and_hex_receipt_of_one_number_agree(n: int, pad: int, upper: bool) -> None:
    """str(n), zero-padded, matches format(n,'x'/'X') under DEC_RESP_HEX_RECEIPT."""
    hex_id = "0" * pad + format(n, "X" if upper else "x")
    assert _match(DEC_RESP_HEX_RECEIPT, "0" * pad + str(n), hex_id)


@PROPERTY
@given(n=_N, pad_a=st.integers(0, 10), pad_b=st.integers(0, 10))
def test_both_hex_and_both_dec_compare_by_value(n: int, pad_a: int, pad_b: int) -> None:
    """Differently padded and cased spellings of n are one id under BOTH_HEX / BOTH_DEC."""
    assert _match(BOTH_HEX, "0" * pad_a + format(n, "x"), "0" * pad_b + format(n, "X"))
    assert _match(BOTH_DEC, "0" * pad_a + str(n), "0" * pad_b + str(n))


@PROPERTY
@given(a=_N, b=_N)
def test_different_numbers_never_match(a: int, b: int) -> None:
    """Canonical forms are injective: distinct values stay distinct."""
    if a != b:
        assert not _match(HEX_RESP_DEC_RECEIPT, format(a, "x"), str(b))
        assert not _match(BOTH_HEX, format(a, "x"), format(b, "x"))


@PROPERTY
@given(s=st.text(max_size=80), name=st.sampled_from(list(PRESETS)))
def test_canonical_ids_raise_nothing_but_message_id_error(s: str, name: str) -> None:
    """Any string is canonicalised or refused with MessageIdError, never another error."""
    policy = PRESETS[name]
    for fn in (policy.canonical_resp_id, policy.canonical_receipt_id):
        try:
            out = fn(s)
        except MessageIdError:
            assert policy is not AS_IS  # tokens are never invalid
        else:
            assert isinstance(out, str)


@PROPERTY
@given(s=st.text(max_size=40), name=st.sampled_from(list(PRESETS)))
def test_canonical_form_is_a_fixed_point(s: str, name: str) -> None:
    """Canonicalising a canonical decimal or token id changes nothing."""
    policy = PRESETS[name]
    try:
        c = policy.canonical_receipt_id(s)
    except MessageIdError:
        return
    same_format = IdPolicy(policy.receipt_format, policy.receipt_format)
    if policy.receipt_format is IdFormat.HEX:
        return  # the canonical form is decimal; re-reading it as hex changes the value
    assert same_format.canonical_receipt_id(c) == c
