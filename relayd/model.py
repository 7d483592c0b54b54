"""The relay's message model and its write-ahead-log records.

One :class:`Msg` per acknowledged message, owned by :class:`relayd.core.Relay`.
Its life (architecture.md §1)::

    QUEUED ──dispatch──> INFLIGHT ──parts acked──> SUBMITTED ──receipts──> FINAL ──reported──> gone
       ^                    │ temporary error / timeout / disconnect
       └────────────────────┘ (backoff; until the validity period ends → EXPIRED)

WAL records are msgpack lists whose first item is the kind:

* ``A`` accepted — everything needed to send the message again after a crash;
* ``S`` a part was acknowledged by a carrier, with the carrier's (canonical) id;
* ``F`` the message reached its final state (state, Korean code, stat, err);
* ``R`` the final receipts of these messages were delivered upstream (or none was
  asked for): ``["R", id, id, ...]``, one record per loop turn.

Replay is idempotent: applying a record twice changes nothing.
"""

from __future__ import annotations

from typing import Any

import msgpack

from protocol.constants import MessageState

QUEUED, INFLIGHT, SUBMITTED, FINAL = 0, 1, 2, 3
STATE_NAMES = {QUEUED: "QUEUED", INFLIGHT: "INFLIGHT", SUBMITTED: "SUBMITTED", FINAL: "FINAL"}

K_ACCEPTED, K_SUBMITTED, K_FINAL, K_REPORTED = "A", "S", "F", "R"

FINAL_STATE_NAMES = {
    MessageState.DELIVERED: "DELIVERED",
    MessageState.EXPIRED: "EXPIRED",
    MessageState.DELETED: "DELETED",
    MessageState.UNDELIVERABLE: "UNDELIVERABLE",
    MessageState.UNKNOWN: "UNKNOWN",
    MessageState.REJECTED: "REJECTED",
    MessageState.ACCEPTED: "ACCEPTED",
}


class Final:
    """A message's (or one part's) final outcome."""

    __slots__ = ("code", "done_at", "err", "stat", "state")

    def __init__(self, state: int, code: int | None, stat: str, err: str, done_at: float) -> None:
        self.state = state
        self.code = code
        self.stat = stat
        self.err = err
        self.done_at = done_at

    def to_list(self) -> list[Any]:
        return [self.state, self.code, self.stat, self.err, self.done_at]

    @classmethod
    def from_list(cls, v: list[Any]) -> Final:
        return cls(v[0], v[1], v[2], v[3], v[4])


class Msg:
    """One acknowledged message. Mutable; owned by the Relay only."""

    __slots__ = (
        "accepted_at",
        "account",
        "attempts",
        "body",
        "carrier",
        "carrier_ids",
        "data_coding",
        "dst",
        "dst_npi",
        "dst_ton",
        "esm_class",
        "expires_at",
        "final",
        "id",
        "next_at",
        "part_finals",
        "priority_flag",
        "protocol_id",
        "registered_delivery",
        "route",
        "src",
        "src_npi",
        "src_ton",
        "state",
        "submitted_at",
    )

    def __init__(
        self,
        id: str,  # noqa: A002 - the spec's name
        account: str,
        src_ton: int,
        src_npi: int,
        src: str,
        dst_ton: int,
        dst_npi: int,
        dst: str,
        esm_class: int,
        protocol_id: int,
        priority_flag: int,
        data_coding: int,
        registered_delivery: int,
        body: bytes,
        accepted_at: float,
        expires_at: float,
    ) -> None:
        self.id = id
        self.account = account
        self.src_ton = src_ton
        self.src_npi = src_npi
        self.src = src
        self.dst_ton = dst_ton
        self.dst_npi = dst_npi
        self.dst = dst
        self.esm_class = esm_class
        self.protocol_id = protocol_id
        self.priority_flag = priority_flag
        self.data_coding = data_coding
        self.registered_delivery = registered_delivery
        self.body = body
        self.accepted_at = accepted_at
        self.expires_at = expires_at
        self.state = QUEUED
        self.carrier: str | None = None
        self.carrier_ids: list[str | None] = []
        self.part_finals: list[Final | None] = []
        self.final: Final | None = None
        self.attempts = 0
        self.next_at = 0.0
        self.route: tuple[str, ...] = ()
        self.submitted_at = 0.0  # when a carrier last acknowledged a part (history)

    # ---------------------------------------------------------------- WAL

    def accepted_record(self) -> list[Any]:
        return [
            K_ACCEPTED,
            self.id,
            self.account,
            self.src_ton,
            self.src_npi,
            self.src,
            self.dst_ton,
            self.dst_npi,
            self.dst,
            self.esm_class,
            self.protocol_id,
            self.priority_flag,
            self.data_coding,
            self.registered_delivery,
            self.body,
            self.accepted_at,
            self.expires_at,
        ]

    @classmethod
    def from_accepted(cls, r: list[Any]) -> Msg:
        return cls(*r[1:17])

    # ---------------------------------------------------------------- checkpoint

    def snapshot(self) -> bytes:
        """Everything recovery needs, as one msgpack blob (for the store's checkpoint)."""
        return msgpack.packb(
            [
                self.accepted_record(),
                self.state,
                self.carrier,
                self.carrier_ids,
                [f.to_list() if f is not None else None for f in self.part_finals],
                self.final.to_list() if self.final is not None else None,
                self.attempts,
                self.submitted_at,
            ],
            use_bin_type=True,
        )

    @classmethod
    def from_snapshot(cls, blob: bytes) -> Msg:
        v = msgpack.unpackb(blob, raw=False)
        m = cls.from_accepted(v[0])
        m.state = v[1]
        m.carrier = v[2]
        m.carrier_ids = list(v[3])
        m.part_finals = [Final.from_list(f) if f is not None else None for f in v[4]]
        m.final = Final.from_list(v[5]) if v[5] is not None else None
        m.attempts = v[6]
        m.submitted_at = v[7] if len(v) > 7 else 0.0  # blobs from before it existed
        if m.state == INFLIGHT:
            m.state = QUEUED  # what was in flight at the crash is sent again
        return m

    @property
    def wants_receipt(self) -> bool:
        """SMPP 3.4 §5.2.17: bits 1-0 = 01 any final, 10 failure only, [v5.0] 11 success only."""
        rd = self.registered_delivery & 0x03
        if rd == 0 or self.final is None:
            return False
        delivered = self.final.state == MessageState.DELIVERED
        if rd == 0x02:
            return not delivered
        if rd == 0x03:
            return delivered
        return True
