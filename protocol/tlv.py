"""The TLV value type shared by PDUs, segmentation and receipts (SMPP 3.4 §3.2.4, §5.3)."""

from __future__ import annotations

from typing import NamedTuple

TlvValue = int | str | bytes | None


class Tlv(NamedTuple):
    """One optional parameter, in wire order.

    ``value`` is typed for the standard tags of §5.3.2 (see
    ``protocol.constants.TLV_TYPES``): ``int`` for Integer TLVs, ``str`` for
    C-Octet String TLVs (the trailing NUL is not part of the value), ``bytes``
    for Octet String TLVs, ``None`` for the no-value TLV alert_on_message_delivery.
    Unknown and vendor tags (0x1400..0x3FFF and any other) keep their raw value
    ``bytes`` and are re-encoded byte for byte.
    """

    tag: int
    value: TlvValue
