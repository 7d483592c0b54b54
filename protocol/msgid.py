"""Message-id normalisation: match a carrier's submit_sm_resp id with its receipt id.

Theory of operation
-------------------
The id an SMSC returns in ``submit_sm_resp`` (SMPP 3.4 §4.4.2) and the id its
delivery receipt carries (Appendix B ``id:``, or TLV ``receipted_message_id``,
§5.3.2.12) name the same message but are often written differently: hex in
one and decimal in the other, with or without leading zeros, in either case
(digest §9 "Correlating a receipt with its submit"). Mature gateways make the
number base a per-SMSC setting — Kannel's ``msg-id-type``, Jasmin's
``dlr_msgid`` (0 = as is, 1 = resp hex / receipt decimal, 2 = resp decimal /
receipt hex).

An :class:`IdPolicy`, chosen per carrier link, maps both sides to **one
canonical string**, which is what the relay stores and looks up:

* ``DECIMAL`` / ``HEX`` ids → the decimal string of their integer value, no
  leading zeros (``'0001A2'`` hex and ``'418'`` decimal are both ``'418'``);
* ``TOKEN`` ids → the id stripped of surrounding whitespace, case-folded when
  ``case_insensitive`` (the default), leading zeros removed when
  ``strip_leading_zeros``.

``receipt_format`` describes ``Receipt.message_id`` whichever place it came from
(the TLV when present, else the text) — Jasmin likewise converts the receipt id
without asking where it came from. A numeric id that is not valid in its format
raises :class:`MessageIdError`; callers count it as an unknown receipt.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType
from typing import Final

from protocol.errors import RelayError

__all__ = [
    "AS_IS",
    "BOTH_DEC",
    "BOTH_HEX",
    "DEC_RESP_HEX_RECEIPT",
    "HEX_RESP_DEC_RECEIPT",
    "MAX_NUMERIC_ID_CHARS",
    "PRESETS",
    "IdFormat",
    "IdPolicy",
    "MessageIdError",
    "policy_from_name",
]


class MessageIdError(RelayError, ValueError):
    """A message id that is not valid in the format its policy expects
    (``'xyz'`` as HEX, ``'12a'`` as DECIMAL, an empty numeric id).

    Attributes:
        message_id: the offending id, as given.
        id_format: the format it was read as.
    """

    def __init__(self, msg: str, *, message_id: str, id_format: IdFormat) -> None:
        super().__init__(msg)
        self.message_id = message_id
        self.id_format = id_format


class IdFormat(Enum):
    """How one side of a peer writes its message ids."""

    TOKEN = "token"  # opaque: compared as is (optionally case-folded)
    DECIMAL = "decimal"  # base 10 digits
    HEX = "hex"  # base 16 digits, either case, optional 0x prefix


# SMPP 3.4 §4.4.2: message_id is a C-Octet String of at most 65 octets, NUL
# included. Numeric ids longer than that are refused rather than converted:
# int() of thousands of digits is slow and, past 4300 digits, a ValueError.
MAX_NUMERIC_ID_CHARS: Final = 64

_DEC_RE: Final = re.compile(r"[0-9]+", re.ASCII)
_HEX_RE: Final = re.compile(r"(?:0[xX])?([0-9A-Fa-f]+)", re.ASCII)


def _canonical(s: str, fmt: IdFormat, *, case_insensitive: bool, strip_zeros: bool) -> str:
    v = s.strip()
    if fmt is IdFormat.TOKEN:
        if case_insensitive:
            v = v.casefold()
        if strip_zeros and v:
            v = v.lstrip("0") or "0"
        return v
    if len(v) > MAX_NUMERIC_ID_CHARS:
        raise MessageIdError(
            f"{fmt.value} message id longer than {MAX_NUMERIC_ID_CHARS} characters",
            message_id=s,
            id_format=fmt,
        )
    # Validate with an ASCII regex before int(): int() alone would also accept
    # '1_000', ' 12', '+5' and non-ASCII digits such as '١٢'.
    if fmt is IdFormat.DECIMAL:
        if not _DEC_RE.fullmatch(v):
            raise MessageIdError(f"not a decimal message id: {s!r}", message_id=s, id_format=fmt)
        return str(int(v))
    m = _HEX_RE.fullmatch(v)
    if m is None:
        raise MessageIdError(f"not a hex message id: {s!r}", message_id=s, id_format=fmt)
    return str(int(m.group(1), 16))


@dataclass(frozen=True, slots=True)
class IdPolicy:
    """How one carrier link writes its ids in submit_sm_resp and in receipts.

    Attributes:
        resp_format: the format of ``submit_sm_resp.message_id``.
        receipt_format: the format of the receipt's id (``Receipt.message_id``).
        case_insensitive: TOKEN ids compare case-folded (numeric ids always
            ignore case: hex digits are case-free by value).
        strip_leading_zeros: TOKEN ids compare without leading zeros (numeric
            ids always do: they compare by value).

    Raises:
        ValueError: on construction, if TOKEN is combined with a numeric format:
            an opaque token and a number's canonical form are not comparable
            (``'00FF'`` as a token is not ``'255'``), so such a policy would
            silently never match.
    """

    resp_format: IdFormat = IdFormat.TOKEN
    receipt_format: IdFormat = IdFormat.TOKEN
    case_insensitive: bool = True
    strip_leading_zeros: bool = False

    def __post_init__(self) -> None:
        if (self.resp_format is IdFormat.TOKEN) != (self.receipt_format is IdFormat.TOKEN):
            raise ValueError(
                "IdPolicy cannot mix TOKEN with a numeric format: "
                f"resp_format={self.resp_format.name}, receipt_format={self.receipt_format.name}"
            )

    def canonical_resp_id(self, s: str) -> str:
        """The canonical form of an id from ``submit_sm_resp``.

        Args:
            s: the message_id as received.

        Returns:
            The decimal value without leading zeros (DECIMAL/HEX), or the
            stripped, optionally case-folded token (TOKEN).

        Raises:
            MessageIdError: ``s`` is not a valid id of ``resp_format``.
        """
        return _canonical(
            s,
            self.resp_format,
            case_insensitive=self.case_insensitive,
            strip_zeros=self.strip_leading_zeros,
        )

    def canonical_receipt_id(self, s: str) -> str:
        """The canonical form of an id from a delivery receipt.

        Args:
            s: ``Receipt.message_id`` (TLV receipted_message_id or text ``id:``).

        Returns:
            As :meth:`canonical_resp_id`, read with ``receipt_format``.

        Raises:
            MessageIdError: ``s`` is not a valid id of ``receipt_format``.
        """
        return _canonical(
            s,
            self.receipt_format,
            case_insensitive=self.case_insensitive,
            strip_zeros=self.strip_leading_zeros,
        )


# Named presets, for configuration (digest §9; Jasmin dlr_msgid 0/1/2 are
# AS_IS / HEX_RESP_DEC_RECEIPT / DEC_RESP_HEX_RECEIPT). Names, not numbers:
# Kannel's msg-id-type numbers the same cases differently.
AS_IS: Final = IdPolicy(IdFormat.TOKEN, IdFormat.TOKEN)
HEX_RESP_DEC_RECEIPT: Final = IdPolicy(IdFormat.HEX, IdFormat.DECIMAL)
DEC_RESP_HEX_RECEIPT: Final = IdPolicy(IdFormat.DECIMAL, IdFormat.HEX)
BOTH_HEX: Final = IdPolicy(IdFormat.HEX, IdFormat.HEX)
BOTH_DEC: Final = IdPolicy(IdFormat.DECIMAL, IdFormat.DECIMAL)

PRESETS: Final[Mapping[str, IdPolicy]] = MappingProxyType(
    {
        "as_is": AS_IS,
        "hex_resp_dec_receipt": HEX_RESP_DEC_RECEIPT,
        "dec_resp_hex_receipt": DEC_RESP_HEX_RECEIPT,
        "both_hex": BOTH_HEX,
        "both_dec": BOTH_DEC,
    }
)


def policy_from_name(name: str) -> IdPolicy:
    """The preset policy called ``name`` (configuration value).

    Args:
        name: one of ``as_is``, ``hex_resp_dec_receipt``, ``dec_resp_hex_receipt``,
            ``both_hex``, ``both_dec``; case and ``-``/``_`` do not matter.

    Returns:
        The preset.

    Raises:
        ValueError: unknown name; the message lists the valid names.
    """
    key = name.strip().lower().replace("-", "_")
    try:
        return PRESETS[key]
    except KeyError:
        raise ValueError(
            f"unknown message-id policy {name!r}; valid names: {', '.join(PRESETS)}"
        ) from None
