"""The SQLite store: message history for lookups, and the WAL's checkpoint.

Theory of operation
-------------------
The write-ahead log (``relayd/wal.py``) is the source of truth for messages in
flight; this store is everything else that must be *queryable* or *kept*
(architecture.md §3):

* **history** — one ``messages`` row per message (its current state, for
  ``query_sm`` and ``relayctl msg``) and one ``events`` row per thing that
  happened to it (accepted, each carrier attempt, the final outcome, the
  report upstream);
* **checkpoint** — a snapshot of the relay's live state (one opaque msgpack
  blob per message not yet fully reported) and the WAL sequence number it
  covers, so the relay can delete older WAL segments and keep the WAL bounded.

One owner. A single task owns the ``aiosqlite`` connection (style §2); nobody
else touches it. Everyone reaches it through two inboxes:

* ``record_events()`` — *sync*, never waits: history events go into a bounded
  deque. When it is full the whole call is refused (returns ``False``) and the
  events are counted as dropped: history is best-effort next to the WAL, but a
  drop is never silent (``statistics().events_dropped`` and one log line per
  episode). The store never sits on the ack path (architecture.md §3).
* awaited methods (``get_message``, ``save_checkpoint``, ``flush``, ...) —
  a request with a future goes into a bounded queue; the caller awaits it.

The owner loop, each round: wait to be woken; if only history is pending, linger
a few milliseconds so that more of it arrives (an ``aiosqlite`` call is a thread
hop costing 40–170 µs, so a batch must be worth several hops); snapshot the
number of queued requests, write every queued event in batches of at most
``batch_max`` — each batch ONE transaction (a handful of ``executemany`` calls,
never one call per message) — then serve the snapshotted requests in order.
Because requests are served after the events that were queued before them,
every request reads its caller's earlier writes, and ``flush()`` is simply an
empty request.

Ordering and idempotence. Events are applied in arrival order. Per message the
``messages`` row only moves forward: ``QUEUED`` (accepted) → ``SUBMITTED`` (a
part reached a carrier) → a final state; a late or replayed ``submitted`` never
un-finalises a message, and a replayed ``accepted`` never resets its state.
Re-recording an event already stored (same message, kind, part and timestamp —
what a WAL replay would produce) is a no-op, by a unique index.

Durability. The store runs ``journal_mode=WAL, synchronous=NORMAL``: a history
commit is atomic and survives a process kill, but the last few may be lost on
power failure — acceptable, because every message in flight is in the relay's
own WAL, and history is re-derivable from it until it is checkpointed. The
checkpoint is different: once ``save_checkpoint`` returns, the relay deletes the
WAL segments it covers, so that one transaction runs with
``synchronous=FULL`` (SQLite fsyncs its WAL file before the commit returns; that
fsync also covers every earlier NORMAL commit in the file). See
:meth:`Store.save_checkpoint`.

Errors. A history batch that SQLite refuses (disk full, I/O error) is rolled
back, counted (``write_errors``, ``events_dropped``) and logged; the loop goes
on. An awaited method raises :class:`StoreError` chaining the SQLite error. Any
other exception in the owner is a bug: it ends the owner, fails every waiter
with :class:`StoreClosed`, and ``close()`` raises it.

Nothing here logs a phone number or a message body (style §12); use
:func:`mask_number` to display a stored number.
"""

from __future__ import annotations

import asyncio
import logging
import operator
import sqlite3
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Final, NamedTuple, TypedDict, TypeVar

import aiosqlite

from protocol.constants import MessageState
from protocol.errors import RelayError

__all__ = [
    "EVENT_KINDS",
    "FINAL_STATES",
    "SMPP_MESSAGE_STATE",
    "EventRecord",
    "MessageRecord",
    "Store",
    "StoreClosed",
    "StoreError",
    "StoreStatistics",
    "mask_number",
]

log = logging.getLogger("relayd.store")

_T = TypeVar("_T")

SCHEMA_VERSION: Final = 2

#: A history event, one of (timestamps are epoch seconds)::
#:
#:     ("accepted", msg_id, account, source, destination, parts, registered_delivery, at)
#:     ("submitted", msg_id, part, carrier, carrier_msg_id, at)
#:     ("attempt_failed", msg_id, part, carrier, status, temporary, at)
#:     ("final", msg_id, state, code, stat, at)      # state in FINAL_STATES, code int|None
#:     ("reported", msg_id, at)
#:     ("done", msg_id, account, source, destination, parts, registered_delivery,
#:      accepted_at, carrier, carrier_msg_ids, submitted_at, state, code, stat,
#:      final_at, reported_at)
#:
#: ``done`` is a message's whole life in one event, recorded by the relay when
#: it is over (reported upstream, or no report asked for). It writes the
#: message's ``messages`` row once, marked ``done``, and one ``submitted`` event
#: row per part (carrier ids stay indexed); :meth:`Store.get_message` derives
#: its ``accepted``, ``final`` and ``reported`` events from that row. Two rows
#: per message instead of five writes of the row and four event rows: the
#: history thread's work (and its share of the GIL) drops accordingly. Messages
#: still in flight live in the relay's memory and WAL.
HistoryEvent = tuple[Any, ...]

#: Tuple length of each event kind, checked by ``record_events`` so that a
#: malformed event is the caller's error, not a failed batch of 5,000.
EVENT_KINDS: Final[dict[str, int]] = {
    "accepted": 8,
    "submitted": 6,
    "attempt_failed": 7,
    "final": 6,
    "reported": 3,
    "done": 16,
}
# Where each kind that carries a state has it (must be in FINAL_STATES).
_STATE_INDEX: Final[dict[str, int]] = {"final": 2, "done": 11}

#: States a ``final`` event may carry: SMPP 3.4 §5.2.28 final message_states.
FINAL_STATES: Final = frozenset(
    {"DELIVERED", "UNDELIVERABLE", "EXPIRED", "REJECTED", "DELETED", "UNKNOWN", "ACCEPTED"}
)

#: ``messages.state`` → the SMPP 3.4 §5.2.28 ``message_state`` that ``query_sm_resp``
#: carries. QUEUED (with us) and SUBMITTED (with a carrier) are both ENROUTE.
SMPP_MESSAGE_STATE: Final[dict[str, MessageState]] = {
    "QUEUED": MessageState.ENROUTE,
    "SUBMITTED": MessageState.ENROUTE,
    **{name: MessageState[name] for name in FINAL_STATES},
}

# Bound on awaited requests waiting for the owner. Each awaiting coroutine holds
# at most one; beyond this many, callers (e.g. a query_sm flood) wait in put().
_REQUESTS_MAX: Final = 1024

# Rows per multi-row statement. sqlite3 releases the GIL around every
# sqlite3_step — once per row in a plain executemany — and whenever the event-loop
# thread is busy, getting the GIL back can take up to the switch interval (5 ms).
# Measured with the loop saturated by 1 ms callbacks, a 20k-row checkpoint took
# 0.1–5.1 s one row per statement, 77–155 ms at 128 rows per statement (one step
# each); unloaded it is 55 vs 34 ms. 128 rows x at most 8 parameters stays under
# SQLite's oldest limit of 999 bound variables.
_ROWS_PER_STATEMENT: Final = 128

# Default linger before writing a small history batch. History is written when a
# message is over (one "done" event each), so 50 ms more is invisible to an
# operator, and at a paced 2,000 msg/s it turns ~200 small transactions a second
# (each a handful of 75 µs thread hops) into ~20. Requests (lookups, flush) and
# full batches skip it, so nobody waits for it.
_DEFAULT_LINGER_S: Final = 0.05

# Beyond this size SQLite truncates its -wal file after a checkpoint: one 100k-blob
# snapshot is ~25 MB of WAL frames; keep room for that, but bound the file.
_JOURNAL_SIZE_LIMIT: Final = 64 * 1024 * 1024

# External readers (the sqlite3 shell during an incident) may hold a lock briefly;
# wait for it in the connection's thread rather than failing a batch.
_BUSY_TIMEOUT_MS: Final = 5000


# --------------------------------------------------------------------- errors


class StoreError(RelayError):
    """The store could not do what was asked (open, query, checkpoint)."""


class StoreClosed(StoreError):
    """The store is closed or closing (or its task died); nothing more is accepted."""


# --------------------------------------------------------------------- records


class EventRecord(TypedDict):
    """One row of a message's history, as :meth:`Store.get_message` returns it.

    Each kind fills its own fields and leaves the others ``None``: ``submitted``
    has ``part``, ``carrier``, ``carrier_msg_id``; ``attempt_failed`` has ``part``,
    ``carrier``, ``status`` (the carrier's command_status), ``temporary``;
    ``final`` has ``state``, ``code`` (Korean result code), ``stat``;
    ``accepted`` and ``reported`` only ``at`` (the message's row has the rest).
    """

    seq: int | None  # None: derived from a done message's row (no event row)
    kind: str
    part: int | None
    carrier: str | None
    carrier_msg_id: str | None
    status: int | None
    temporary: bool | None
    state: str | None
    code: int | None
    stat: str | None
    at: float


class MessageRecord(TypedDict):
    """A message's row and its whole history, oldest event first.

    ``source``/``destination`` are stored as given: mask them with
    :func:`mask_number` before display. ``state`` is ``QUEUED``, ``SUBMITTED`` or a
    final state (:data:`FINAL_STATES`); ``carrier``/``carrier_msg_id`` are those of
    the latest submission. Row fields are ``None`` when the message's ``accepted``
    event never reached the store (history is best-effort).
    """

    msg_id: str
    account: str | None
    source: str | None
    destination: str | None
    parts: int | None
    registered_delivery: int | None
    state: str | None
    code: int | None
    stat: str | None
    carrier: str | None
    carrier_msg_id: str | None
    accepted_at: float | None
    final_at: float | None
    reported_at: float | None
    events: list[EventRecord]


@dataclass(frozen=True, slots=True)
class StoreStatistics:
    """A snapshot for ``relayd/metrics.py`` (trio's ``statistics()`` convention)."""

    batches: int
    """History transactions committed."""
    events_written: int
    """History events committed (replayed duplicates included; they are no-ops)."""
    events_dropped: int
    """Events refused because the inbox was full, or lost with a failed batch."""
    write_errors: int
    """History batches SQLite refused (rolled back)."""
    inbox_depth: int
    """History events waiting for the owner."""
    inbox_max: int
    requests_waiting: int
    """Awaited requests (queries, checkpoints, flushes) waiting for the owner."""
    last_batch_size: int
    last_batch_latency_s: float
    """Wall time of the last history transaction, BEGIN to COMMIT."""
    checkpoints: int
    """Checkpoints saved since open."""
    last_checkpoint_live: int
    last_checkpoint_latency_s: float
    checkpoint_wal_seq: int | None
    """WAL sequence number covered by the stored checkpoint."""


# --------------------------------------------------------------------- masking

# Characters kept as they are when masking: number formatting, not digits.
_SEPARATORS: Final = frozenset("+-() .")


def mask_number(s: str) -> str:
    """Mask a phone number for display: ``01012345678`` → ``010****5678``.

    Keeps the first 3 and the last 4 digits and masks the ones between, one ``*``
    per digit. A number of fewer than 10 digits (too short to hide anything that
    way: ``1588-1234``, ``02-123-4567``) keeps only its last 2. Separators
    (``+-() .``) stay in place; any other character counts as a digit, so an
    alphanumeric sender is masked too.
    """
    positions = [i for i, c in enumerate(s) if c not in _SEPARATORS]
    n = len(positions)
    hidden = positions[3:-4] if n >= 10 else positions[: max(n - 2, 0)]
    if not hidden:
        return s
    chars = list(s)
    for i in hidden:
        chars[i] = "*"
    return "".join(chars)


# --------------------------------------------------------------------- SQL

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS messages (
    msg_id TEXT PRIMARY KEY,
    account TEXT,
    source TEXT,
    destination TEXT,
    parts INTEGER,
    registered_delivery INTEGER,
    state TEXT NOT NULL,
    code INTEGER,
    stat TEXT,
    carrier TEXT,
    carrier_msg_id TEXT,
    accepted_at REAL,
    final_at REAL,
    reported_at REAL,
    done INTEGER
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS messages_account ON messages(account, msg_id);

CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    msg_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    part INTEGER,
    carrier TEXT,
    carrier_msg_id TEXT,
    status INTEGER,
    temporary INTEGER,
    state TEXT,
    code INTEGER,
    stat TEXT,
    at REAL NOT NULL
);
-- Serves get_message (prefix msg_id) and makes a replayed event a no-op.
CREATE UNIQUE INDEX IF NOT EXISTS events_identity
    ON events(msg_id, kind, ifnull(part, -1), at);
-- Receipt correlation: every part and every attempt keeps its carrier id.
CREATE INDEX IF NOT EXISTS events_carrier_id
    ON events(carrier, carrier_msg_id) WHERE kind = 'submitted';

CREATE TABLE IF NOT EXISTS checkpoint_live (idx INTEGER PRIMARY KEY, blob BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
"""

_MESSAGE_COLUMNS: Final = (
    "msg_id",
    "account",
    "source",
    "destination",
    "parts",
    "registered_delivery",
    "state",
    "code",
    "stat",
    "carrier",
    "carrier_msg_id",
    "accepted_at",
    "final_at",
    "reported_at",
)
_EVENT_COLUMNS: Final = (
    "seq",
    "kind",
    "part",
    "carrier",
    "carrier_msg_id",
    "status",
    "temporary",
    "state",
    "code",
    "stat",
    "at",
)


class _Rows(NamedTuple):
    """A statement that takes its rows as ``head VALUES row, row, ... tail``."""

    head: str
    row: str
    tail: str = ""

    def sql(self, rows: int) -> str:
        return f"{self.head} VALUES {', '.join([self.row] * rows)}{self.tail}"


# One narrow INSERT per kind. OR IGNORE: a replayed event hits events_identity.
_EVENT_INSERTS: Final[dict[str, _Rows]] = {
    "accepted": _Rows(
        "INSERT OR IGNORE INTO events(seq, msg_id, kind, at)", "(?, ?, 'accepted', ?)"
    ),
    "submitted": _Rows(
        "INSERT OR IGNORE INTO events(seq, msg_id, kind, part, carrier, carrier_msg_id, at)",
        "(?, ?, 'submitted', ?, ?, ?, ?)",
    ),
    "attempt_failed": _Rows(
        "INSERT OR IGNORE INTO events(seq, msg_id, kind, part, carrier, status, temporary, at)",
        "(?, ?, 'attempt_failed', ?, ?, ?, ?, ?)",
    ),
    "final": _Rows(
        "INSERT OR IGNORE INTO events(seq, msg_id, kind, state, code, stat, at)",
        "(?, ?, 'final', ?, ?, ?, ?)",
    ),
    "reported": _Rows(
        "INSERT OR IGNORE INTO events(seq, msg_id, kind, at)", "(?, ?, 'reported', ?)"
    ),
}
# A replayed `accepted` refreshes the accepted fields but never the state. (SQLite
# applies a multi-row upsert row by row, so one message twice in a statement is fine.)
_UPSERT_ACCEPTED: Final = _Rows(
    "INSERT INTO messages(msg_id, account, source, destination, parts, registered_delivery,"
    " state, accepted_at)",
    "(?, ?, ?, ?, ?, ?, 'QUEUED', ?)",
    " ON CONFLICT(msg_id) DO UPDATE SET account = excluded.account,"
    " source = excluded.source, destination = excluded.destination,"
    " parts = excluded.parts, registered_delivery = excluded.registered_delivery,"
    " accepted_at = excluded.accepted_at",
)
# The latest submission names the carrier; a final state is never undone.
_UPSERT_SUBMITTED: Final = _Rows(
    "INSERT INTO messages(msg_id, state, carrier, carrier_msg_id)",
    "(?, 'SUBMITTED', ?, ?)",
    " ON CONFLICT(msg_id) DO UPDATE SET carrier = excluded.carrier,"
    " carrier_msg_id = excluded.carrier_msg_id,"
    " state = CASE WHEN state IN ('QUEUED', 'SUBMITTED') THEN 'SUBMITTED' ELSE state END",
)
# A whole life at once: every column, marked done (get_message derives the
# accepted/final/reported events from it); a repeat (a report repeated after a
# crash) refreshes the row.
_UPSERT_DONE: Final = _Rows(
    f"INSERT INTO messages({', '.join(_MESSAGE_COLUMNS)}, done)",
    f"({', '.join('?' * len(_MESSAGE_COLUMNS))}, 1)",
    " ON CONFLICT(msg_id) DO UPDATE SET done = 1, "
    + ", ".join(f"{c} = excluded.{c}" for c in _MESSAGE_COLUMNS[1:]),
)
_UPSERT_FINAL: Final = _Rows(
    "INSERT INTO messages(msg_id, state, code, stat, final_at)",
    "(?, ?, ?, ?, ?)",
    " ON CONFLICT(msg_id) DO UPDATE SET state = excluded.state, code = excluded.code,"
    " stat = excluded.stat, final_at = excluded.final_at",
)
# UPDATE ... FROM (SQLite 3.33): no row is created for a message the store never saw.
_UPDATE_REPORTED: Final = _Rows(
    "UPDATE messages SET reported_at = v.column1 FROM (",
    "(?, ?)",
    ") AS v WHERE messages.msg_id = v.column2",
)
_INSERT_LIVE: Final = _Rows("INSERT INTO checkpoint_live(idx, blob)", "(?, ?)")

_SELECT_MESSAGE: Final = (
    f"SELECT {', '.join(_MESSAGE_COLUMNS)}, done FROM messages WHERE msg_id = ?"
)
_SELECT_EVENTS: Final = (
    f"SELECT {', '.join(_EVENT_COLUMNS)} FROM events WHERE msg_id = ? ORDER BY at, seq"
)
_SELECT_BY_CARRIER_ID: Final = (
    "SELECT msg_id FROM events WHERE kind = 'submitted' AND carrier = ? AND carrier_msg_id = ?"
    " ORDER BY seq DESC LIMIT 1"
)
_UPSERT_META: Final = (
    "INSERT INTO meta(key, value) VALUES (?, ?)"
    " ON CONFLICT(key) DO UPDATE SET value = excluded.value"
)


@dataclass(slots=True)
class _Request:
    run: Callable[[aiosqlite.Connection], Awaitable[Any]]
    future: asyncio.Future[Any]


# --------------------------------------------------------------------- store


class Store:
    """The relay's SQLite store. Create with :meth:`open`; end with :meth:`close`.

    Methods may be called from any task on the store's event loop. Only the
    owner task touches the connection.
    """

    def __init__(
        self,
        db: aiosqlite.Connection,
        path: Path,
        *,
        inbox_max: int,
        batch_max: int,
        linger_s: float,
        checkpoint_wal_seq: int | None,
        last_seq: int,
    ) -> None:
        """Private: use :meth:`open`."""
        self.path = path
        self._db = db
        self._inbox_max = inbox_max
        self._batch_max = batch_max
        self._linger_s = linger_s
        # A deque without maxlen: a maxlen deque silently discards the *oldest*
        # entries when full. The bound is enforced by record_events, all-or-nothing.
        self._events: deque[HistoryEvent] = deque()
        self._requests: asyncio.Queue[_Request] = asyncio.Queue(_REQUESTS_MAX)
        self._wake = asyncio.Event()  # anything pending
        self._urgent = asyncio.Event()  # a request, a full batch or close: skip the linger
        self._closing = False
        self._finished = False
        self._failure: BaseException | None = None
        self._failure_raised = False
        self._dropping = False
        self._episode_dropped = 0
        # statistics
        self._batches = 0
        self._events_written = 0
        self._events_dropped = 0
        self._write_errors = 0
        self._last_batch_size = 0
        self._last_batch_latency_s = 0.0
        self._checkpoints = 0
        self._last_checkpoint_live = 0
        self._last_checkpoint_latency_s = 0.0
        self._checkpoint_wal_seq = checkpoint_wal_seq
        self._seq = last_seq  # last events.seq handed out (owner only)
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"relayd.store {path.name}"
        )

    # ----------------------------------------------------------------- open

    @classmethod
    async def open(
        cls,
        path: str | Path,
        *,
        inbox_max: int = 100_000,
        batch_max: int = 5_000,
        linger_s: float = _DEFAULT_LINGER_S,
    ) -> Store:
        """Open (creating if needed) the store at ``path`` and start its owner task.

        Args:
            path: the SQLite file. Its directory must exist and be writable
                (SQLite also creates ``-wal`` and ``-shm`` files beside it).
            inbox_max: history events that may wait for the owner; beyond it
                ``record_events`` refuses. 100k events ≈ 25k messages ≈ 20 MB.
            batch_max: most history events per transaction, which bounds how long
                one transaction keeps queries and checkpoints waiting.
            linger_s: how long the owner waits for more history before writing a
                small batch (0 writes at once).

        Raises:
            StoreError: the file cannot be opened, is not a relayd store of a
                schema this code knows, or the filesystem refuses WAL mode.
        """
        if inbox_max < 1 or batch_max < 1 or linger_s < 0:
            raise ValueError("inbox_max and batch_max must be >= 1, linger_s >= 0")
        p = Path(path)
        try:
            # isolation_level=None: no implicit transactions; every transaction
            # here is an explicit BEGIN ... COMMIT.
            db = await aiosqlite.connect(p, isolation_level=None)
        except sqlite3.Error as e:
            raise StoreError(f"cannot open store {p}: {e}") from e
        try:
            checkpoint_wal_seq, last_seq = await _prepare(db, p)
        except BaseException:
            await db.close()
            raise
        log.info("store open: %s (checkpoint_wal_seq=%s)", p, checkpoint_wal_seq)
        return cls(
            db,
            p,
            inbox_max=inbox_max,
            batch_max=batch_max,
            linger_s=linger_s,
            checkpoint_wal_seq=checkpoint_wal_seq,
            last_seq=last_seq,
        )

    # ----------------------------------------------------------------- history

    def record_events(self, events: Iterable[HistoryEvent]) -> bool:
        """Queue history events for the owner to write. Sync; never waits.

        All or nothing: if the inbox has no room for every event of this call,
        none is queued, they are counted in ``statistics().events_dropped`` and
        the call returns ``False``. The caller decides what that means (for the
        relay: nothing — its WAL holds the message; history just has a gap).

        Args:
            events: :data:`HistoryEvent` tuples. A ``final`` state must be in
                :data:`FINAL_STATES`.

        Returns:
            ``True`` if queued, ``False`` if refused for lack of room.

        Raises:
            ValueError: an event of unknown kind or wrong length, or a ``final``
                with an unknown state. Nothing of the call is queued.
            StoreClosed: the store is closing or closed.
        """
        if self._closing or self._finished:
            raise StoreClosed("store is closed")
        batch = events if isinstance(events, list) else list(events)
        for ev in batch:
            if not ev or EVENT_KINDS.get(ev[0]) != len(ev):
                raise ValueError(f"malformed history event: kind {ev[:1]!r}, length {len(ev)}")
            at = _STATE_INDEX.get(ev[0])
            if at is not None and ev[at] not in FINAL_STATES:
                raise ValueError(f"{ev[0]} event with unknown state {ev[at]!r}")
        queued = self._events
        if len(queued) + len(batch) > self._inbox_max:
            self._events_dropped += len(batch)
            self._episode_dropped += len(batch)
            if not self._dropping:
                self._dropping = True
                log.warning(
                    "store inbox full (%d events): dropping history until it drains",
                    self._inbox_max,
                )
            return False
        if self._dropping:
            self._dropping = False
            log.warning(
                "store inbox drained: %d history events were dropped", self._episode_dropped
            )
            self._episode_dropped = 0
        queued.extend(batch)
        self._wake.set()
        if len(queued) >= self._batch_max:
            self._urgent.set()
        return True

    def record(self, event: HistoryEvent) -> bool:
        """:meth:`record_events` for one event, without building a list: the
        relay's hot path (several events per message). Same contract."""
        if self._closing or self._finished:
            raise StoreClosed("store is closed")
        kind = event[0]
        if EVENT_KINDS.get(kind) != len(event) or (
            kind in _STATE_INDEX and event[_STATE_INDEX[kind]] not in FINAL_STATES
        ):
            return self.record_events([event])  # raises the precise ValueError
        queued = self._events
        if self._dropping or len(queued) >= self._inbox_max:
            return self.record_events([event])  # the refusal/episode bookkeeping
        queued.append(event)
        self._wake.set()
        if len(queued) >= self._batch_max:
            self._urgent.set()
        return True

    async def flush(self) -> None:
        """Return once every event queued before this call is committed.

        A batch that SQLite refused does not make this raise; it is counted in
        ``statistics().write_errors``.

        Raises:
            StoreClosed: the store is closing or closed.
        """
        await self._call(_noop)

    async def get_message(
        self, msg_id: str, *, account: str | None = None, include_events: bool = True
    ) -> MessageRecord | None:
        """A message's row and its whole history, or ``None`` if unknown.

        Args:
            msg_id: our message id.
            account: if given, only a message of this account is returned:
                another account's message is reported as unknown, exactly as a
                missing one (tenants never see each other's messages).
            include_events: ``False`` skips the history (``events`` is empty) —
                enough for ``query_sm``.

        Raises:
            StoreError: SQLite failed. StoreClosed: the store is closed.
        """

        async def run(db: aiosqlite.Connection) -> MessageRecord | None:
            rows = list(await db.execute_fetchall(_SELECT_MESSAGE, (msg_id,)))
            row: Sequence[Any] | None = rows[0][:-1] if rows else None
            done = bool(rows[0][-1]) if rows else False
            if account is not None and (row is None or row[1] != account):
                return None
            events: list[EventRecord] = []
            if include_events:
                for r in await db.execute_fetchall(_SELECT_EVENTS, (msg_id,)):
                    ev = dict(zip(_EVENT_COLUMNS, r, strict=True))
                    if ev["temporary"] is not None:
                        ev["temporary"] = bool(ev["temporary"])
                    events.append(ev)  # type: ignore[arg-type]
                if done and row is not None:
                    events = _with_derived_events(
                        events, dict(zip(_MESSAGE_COLUMNS, row, strict=True))
                    )
            if row is None:
                if not events:
                    return None
                row = (msg_id,) + (None,) * (len(_MESSAGE_COLUMNS) - 1)
            record = dict(zip(_MESSAGE_COLUMNS, row, strict=True))
            record["events"] = events
            return record  # type: ignore[return-value]

        return await self._call(run)

    async def find_by_carrier_id(self, carrier: str, carrier_msg_id: str) -> str | None:
        """Our message id for a carrier's (canonical) message id, or ``None``.

        Every submitted part and every attempt is indexed, so a receipt for part 1
        of 3, or for an attempt that was later retried elsewhere, is matched. If a
        carrier reused an id, the latest submission wins.

        Raises:
            StoreError: SQLite failed. StoreClosed: the store is closed.
        """

        async def run(db: aiosqlite.Connection) -> str | None:
            rows = list(await db.execute_fetchall(_SELECT_BY_CARRIER_ID, (carrier, carrier_msg_id)))
            return str(rows[0][0]) if rows else None

        return await self._call(run)

    async def stats_counts(self) -> dict[str, int]:
        """Number of messages per ``messages.state``.

        A full scan of ``messages`` (O(rows), ~100 ms per million): for
        ``relayctl status``, not for every metrics scrape — the relay's own
        counters serve those.

        Raises:
            StoreError: SQLite failed. StoreClosed: the store is closed.
        """

        async def run(db: aiosqlite.Connection) -> dict[str, int]:
            rows = await db.execute_fetchall("SELECT state, count(*) FROM messages GROUP BY state")
            return {str(state): int(n) for state, n in rows}

        return await self._call(run)

    # ----------------------------------------------------------------- checkpoint

    async def save_checkpoint(self, wal_seq: int, live: Sequence[bytes]) -> None:
        """Replace the checkpoint with ``live`` at ``wal_seq``, durably and atomically.

        One transaction deletes the previous snapshot, inserts ``live`` (with one
        ``executemany``) and sets ``meta.checkpoint_wal_seq``: a crash at any point
        leaves either the old checkpoint or the new one, never a mix.

        Durable on return, against a power cut as well as a kill: the relay then
        deletes the WAL segments older than ``wal_seq``, after which this snapshot
        is the only copy of those messages. The transaction runs with
        ``PRAGMA synchronous=FULL``, under which SQLite in WAL mode fsyncs the
        ``-wal`` file before COMMIT returns (the committed frames are then
        recoverable whatever happens to the process or machine; folding them into
        the main file is SQLite's business). The rest of the store stays at
        NORMAL, which syncs only at SQLite checkpoints.

        Args:
            wal_seq: the WAL sequence number the snapshot covers (>= 0).
            live: one opaque blob per message not yet fully reported. Copied
                before this method first yields, so the caller may reuse it.

        Raises:
            StoreError: SQLite failed; the previous checkpoint is intact and the
                caller must not delete any WAL segment.
            StoreClosed: the store is closed.
        """
        wal_seq = operator.index(wal_seq)  # TypeError for a float or a str
        if wal_seq < 0:
            raise ValueError(f"wal_seq must be >= 0, not {wal_seq}")
        blobs = list(live)

        async def run(db: aiosqlite.Connection) -> None:
            started = time.perf_counter()
            await db.execute("PRAGMA synchronous=FULL")
            try:
                await db.execute("BEGIN IMMEDIATE")
                try:
                    await db.execute("DELETE FROM checkpoint_live")
                    await _write_rows(
                        db, _INSERT_LIVE, len(blobs), lambda a, b: _indexed(blobs, a, b)
                    )
                    await db.executemany(
                        _UPSERT_META,
                        (("checkpoint_wal_seq", wal_seq), ("checkpoint_at", time.time())),
                    )
                    await db.execute("COMMIT")
                except BaseException:
                    await _rollback(db)
                    raise
            finally:
                await db.execute("PRAGMA synchronous=NORMAL")
            self._checkpoints += 1
            self._checkpoint_wal_seq = wal_seq
            self._last_checkpoint_live = len(blobs)
            self._last_checkpoint_latency_s = time.perf_counter() - started

        await self._call(run)

    async def load_checkpoint(self) -> tuple[int | None, list[bytes]]:
        """The stored checkpoint: ``(wal_seq, live blobs in saved order)``.

        Returns ``(None, [])`` if no checkpoint was ever saved.

        Raises:
            StoreError: SQLite failed. StoreClosed: the store is closed.
        """

        async def run(db: aiosqlite.Connection) -> tuple[int | None, list[bytes]]:
            await db.execute("BEGIN")  # one read snapshot for both statements
            try:
                seq_rows = list(
                    await db.execute_fetchall(
                        "SELECT value FROM meta WHERE key = 'checkpoint_wal_seq'"
                    )
                )
                blob_rows = await db.execute_fetchall(
                    "SELECT blob FROM checkpoint_live ORDER BY idx"
                )
            finally:
                await _rollback(db)
            if not seq_rows:
                return None, []
            return int(seq_rows[0][0]), [bytes(r[0]) for r in blob_rows]

        return await self._call(run)

    # ----------------------------------------------------------------- lifecycle

    def statistics(self) -> StoreStatistics:
        """A snapshot of the store's counters (cheap; no I/O)."""
        return StoreStatistics(
            batches=self._batches,
            events_written=self._events_written,
            events_dropped=self._events_dropped,
            write_errors=self._write_errors,
            inbox_depth=len(self._events),
            inbox_max=self._inbox_max,
            requests_waiting=self._requests.qsize(),
            last_batch_size=self._last_batch_size,
            last_batch_latency_s=self._last_batch_latency_s,
            checkpoints=self._checkpoints,
            last_checkpoint_live=self._last_checkpoint_live,
            last_checkpoint_latency_s=self._last_checkpoint_latency_s,
            checkpoint_wal_seq=self._checkpoint_wal_seq,
        )

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called (or the owner task ended)."""
        return self._closing or self._finished

    async def close(self) -> None:
        """Write everything queued, serve queued requests, close the connection.

        Idempotent. If the caller is cancelled meanwhile, the flush is abandoned
        (the open transaction, if any, is rolled back; committed batches stay),
        the connection is still closed by the owner task, and ``CancelledError``
        propagates.

        Raises:
            StoreError: the owner task had died of a bug (raised once, chaining it).
        """
        self._closing = True
        self._urgent.set()
        self._wake.set()
        task = self._task
        if not task.done():
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if not task.done() or (current is not None and current.cancelling()):
                    # We were cancelled: stop the owner too; its finally closes the db.
                    task.cancel()
                    raise
                # Otherwise the owner itself was cancelled (loop shutdown) and has
                # closed the connection on its way out: close() is complete.
            except Exception:  # the owner's bug: kept in self._failure, raised below
                pass
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: it is re-raised below, not "never retrieved"
        if self._failure is not None and not self._failure_raised:
            self._failure_raised = True
            raise StoreError("the store task failed") from self._failure

    # ----------------------------------------------------------------- owner

    async def _call(self, run: Callable[[aiosqlite.Connection], Awaitable[_T]]) -> _T:
        if self._closing or self._finished:
            raise StoreClosed("store is closed")
        future: asyncio.Future[_T] = asyncio.get_running_loop().create_future()
        await self._requests.put(_Request(run, future))
        if self._finished:
            # The owner exited while we waited for room; nobody will serve this.
            raise StoreClosed("store is closed") from self._failure
        self._urgent.set()
        self._wake.set()
        return await future

    async def _run(self) -> None:
        db = self._db
        try:
            while True:
                await self._wake.wait()
                if self._linger_s and not self._urgent.is_set():
                    try:
                        async with asyncio.timeout(self._linger_s):
                            await self._urgent.wait()
                    except TimeoutError:
                        pass  # lingered long enough: write what we have
                self._wake.clear()
                self._urgent.clear()
                n_requests = self._requests.qsize()
                pending = len(self._events)
                while pending:
                    take = min(pending, self._batch_max)
                    pending -= take
                    await self._write_batch([self._events.popleft() for _ in range(take)])
                for _ in range(n_requests):
                    await self._serve(self._requests.get_nowait())
                if self._closing and not self._events and self._requests.empty():
                    return
        except asyncio.CancelledError:
            raise
        except BaseException as e:
            self._failure = e
            log.exception("store task failed")
            raise
        finally:
            self._finished = True
            if self._events:  # only when cancelled or failed: a clean close drains them
                self._events_dropped += len(self._events)
                self._events.clear()
            while not self._requests.empty():
                request = self._requests.get_nowait()
                if not request.future.done():
                    request.future.set_exception(StoreClosed("store is closed"))
            try:
                # An open transaction (cancelled mid-batch) is rolled back by close.
                await db.close()
            except sqlite3.Error as e:
                log.error("store: closing %s failed: %s", self.path, e)
            else:
                log.info("store closed: %s", self.path)

    async def _serve(self, request: _Request) -> None:
        if request.future.done():  # the caller was cancelled while queued
            return
        try:
            result = await request.run(self._db)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            await _rollback(self._db)  # leave no transaction open for the next batch
            error: BaseException = e  # not SQLite's: the request's own bug, for its caller
            if isinstance(e, sqlite3.Error):
                error = StoreError(f"store request failed: {e}")
                error.__cause__ = e
            if not request.future.done():
                request.future.set_exception(error)
        else:
            if not request.future.done():
                request.future.set_result(result)

    async def _write_batch(self, batch: list[HistoryEvent]) -> None:
        """Write ``batch`` as ONE transaction, one ``executemany`` per statement.

        Each kind has its own narrow INSERT (binding 3–7 parameters instead of 11
        halves the cost per row), so rows are grouped by kind; ``seq`` is assigned
        here, in arrival order, so history still reads in arrival order. The
        ``messages`` statements run in lifecycle order (accepted, submitted,
        final, reported), which gives the same row as arrival order because every
        kind only moves a row forward (module docstring); within a kind, order
        is kept.
        """
        rows: dict[str, list[tuple[Any, ...]]] = {kind: [] for kind in _EVENT_INSERTS}
        accepted: list[tuple[Any, ...]] = []
        submitted: list[tuple[Any, ...]] = []
        final: list[tuple[Any, ...]] = []
        reported: list[tuple[Any, ...]] = []
        done: list[tuple[Any, ...]] = []
        seq = self._seq
        for ev in batch:
            seq += 1
            kind = ev[0]
            if kind == "accepted":
                _, mid, account, source, destination, parts, rd, at = ev
                accepted.append((mid, account, source, destination, parts, rd, at))
                rows[kind].append((seq, mid, at))
            elif kind == "submitted":
                _, mid, part, carrier, carrier_msg_id, at = ev
                submitted.append((mid, carrier, carrier_msg_id))
                rows[kind].append((seq, mid, part, carrier, carrier_msg_id, at))
            elif kind == "attempt_failed":
                _, mid, part, carrier, status, temporary, at = ev
                rows[kind].append((seq, mid, part, carrier, status, int(temporary), at))
            elif kind == "final":
                _, mid, state, code, stat, at = ev
                final.append((mid, state, code, stat, at))
                rows[kind].append((seq, mid, state, code, stat, at))
            elif kind == "done":
                (
                    _,
                    mid,
                    account,
                    source,
                    destination,
                    parts,
                    rd,
                    accepted_at,
                    carrier,
                    cids,
                    submitted_at,
                    state,
                    code,
                    stat,
                    final_at,
                    reported_at,
                ) = ev
                last_cid = next((c for c in reversed(cids) if c is not None), None)
                done.append(
                    (
                        mid,
                        account,
                        source,
                        destination,
                        parts,
                        rd,
                        state,
                        code,
                        stat,
                        carrier,
                        last_cid,
                        accepted_at,
                        final_at,
                        reported_at,
                    )
                )
                for part, cid in enumerate(cids):
                    if cid is not None:
                        rows["submitted"].append((seq, mid, part, carrier, cid, submitted_at))
                        seq += 1
            else:  # "reported"; kinds were checked in record_events
                _, mid, at = ev
                reported.append((at, mid))
                rows[kind].append((seq, mid, at))
        # Advanced even if the batch fails: a gap in seq is harmless, a reuse is not.
        self._seq = seq
        statements = [(_EVENT_INSERTS[kind], kind_rows) for kind, kind_rows in rows.items()]
        statements += [  # lifecycle order
            (_UPSERT_ACCEPTED, accepted),
            (_UPSERT_SUBMITTED, submitted),
            (_UPSERT_FINAL, final),
            (_UPDATE_REPORTED, reported),
            (_UPSERT_DONE, done),
        ]

        db = self._db
        started = time.perf_counter()
        try:
            await db.execute("BEGIN IMMEDIATE")
            for stmt, params in statements:
                if params:
                    await _write_rows(db, stmt, len(params), partial(_flat, params))
            await db.execute("COMMIT")
        except sqlite3.Error as e:
            await _rollback(db)
            self._write_errors += 1
            self._events_dropped += len(batch)
            log.error("store: history batch of %d events lost: %s", len(batch), e)
            return
        except BaseException:
            # Cancelled (close() abandoned). The statements already handed to the
            # connection's thread still run; if COMMIT was among them, ROLLBACK
            # finds no transaction and the batch is in fact written.
            if await _rollback(db):
                self._events_dropped += len(batch)
            else:
                self._batches += 1
                self._events_written += len(batch)
            raise
        self._batches += 1
        self._events_written += len(batch)
        self._last_batch_size = len(batch)
        self._last_batch_latency_s = time.perf_counter() - started


# --------------------------------------------------------------------- helpers


_KIND_RANK: Final = {"accepted": 0, "submitted": 1, "attempt_failed": 2, "final": 3, "reported": 4}


def _derived_event(kind: str, at: float, **fields: Any) -> EventRecord:
    ev: dict[str, Any] = dict.fromkeys(_EVENT_COLUMNS)
    ev.update(seq=None, kind=kind, at=at, **fields)
    return ev  # type: ignore[return-value]


def _with_derived_events(events: list[EventRecord], row: dict[str, Any]) -> list[EventRecord]:
    """A ``done`` message's history: its stored events (submitted parts, failed
    attempts) plus the accepted/final/reported events its row stands for —
    unless stored ones of that kind exist (recorded step by step) — in time
    order, lifecycle order within the same instant."""
    have = {e["kind"] for e in events}
    out = list(events)
    if "accepted" not in have and row["accepted_at"] is not None:
        out.append(_derived_event("accepted", row["accepted_at"]))
    if "final" not in have and row["final_at"] is not None:
        out.append(
            _derived_event(
                "final", row["final_at"], state=row["state"], code=row["code"], stat=row["stat"]
            )
        )
    if "reported" not in have and row["reported_at"] is not None:
        out.append(_derived_event("reported", row["reported_at"]))
    out.sort(key=lambda e: (e["at"], _KIND_RANK.get(e["kind"], 5), e["part"] or 0, e["seq"] or 0))
    return out


async def _noop(_db: aiosqlite.Connection) -> None:
    return None


async def _write_rows(
    db: aiosqlite.Connection, stmt: _Rows, n: int, values: Callable[[int, int], list[Any]]
) -> None:
    """Execute ``stmt`` for ``n`` rows, ``_ROWS_PER_STATEMENT`` rows per statement.

    ``values(a, b)`` returns the flat parameters of rows ``a`` to ``b``. It is
    called from generators that ``executemany`` consumes in the connection's
    thread, so building the parameters costs the event loop nothing. The last
    ``n % _ROWS_PER_STATEMENT`` rows go one per statement (one more hop; a
    statement per remainder size would churn sqlite3's statement cache).
    """
    # ≤ 999 bound variables per statement (SQLite's oldest limit).
    k = min(_ROWS_PER_STATEMENT, 999 // stmt.row.count("?"))
    full = n - n % k
    if full:
        await db.executemany(stmt.sql(k), (values(a, a + k) for a in range(0, full, k)))
    if full < n:
        await db.executemany(stmt.sql(1), (values(a, a + 1) for a in range(full, n)))


def _flat(rows: Sequence[Sequence[Any]], a: int, b: int) -> list[Any]:
    return [value for row in rows[a:b] for value in row]


def _indexed(blobs: Sequence[bytes], a: int, b: int) -> list[Any]:
    flat: list[Any] = []
    for i in range(a, b):
        flat += (i, blobs[i])
    return flat


async def _rollback(db: aiosqlite.Connection) -> bool:
    """Roll back the open transaction, if any (after an error or a cancellation).

    Returns:
        False if there was none: it failed before BEGIN, SQLite had already rolled
        back, or the COMMIT had gone through.
    """
    try:
        await db.execute("ROLLBACK")
    except sqlite3.OperationalError:
        return False  # "cannot rollback - no transaction is active"
    return True


async def _prepare(db: aiosqlite.Connection, path: Path) -> tuple[int | None, int]:
    """Set the pragmas, create or check the schema.

    Returns:
        the checkpoint's wal_seq (or None) and the last ``events.seq`` ever used
        (AUTOINCREMENT's high-water mark: never reused, even after deletions).
    """
    try:
        if sqlite3.sqlite_version_info < (3, 33):  # UPDATE ... FROM
            raise StoreError(f"SQLite {sqlite3.sqlite_version} is too old; relayd needs 3.33+")
        rows = list(await db.execute_fetchall("PRAGMA journal_mode=WAL"))
        if not rows or str(rows[0][0]).lower() != "wal":
            raise StoreError(f"store {path}: the filesystem refused WAL journal mode")
        # NORMAL in WAL mode: commits are atomic and survive a process crash; only
        # a power cut can lose the latest ones. Fine for history (the relay's own
        # WAL holds everything in flight); save_checkpoint raises it to FULL.
        await db.execute("PRAGMA synchronous=NORMAL")
        await db.execute(f"PRAGMA journal_size_limit={_JOURNAL_SIZE_LIMIT}")
        await db.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        version = int(next(iter(await db.execute_fetchall("PRAGMA user_version")))[0])
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"store {path} has schema version {version}; this relayd knows {SCHEMA_VERSION}"
            )
        if version < SCHEMA_VERSION:
            await db.execute("BEGIN IMMEDIATE")
            try:
                if version == 1:  # 2: messages.done (a "done" event wrote the row)
                    await db.execute("ALTER TABLE messages ADD COLUMN done INTEGER")
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        await db.execute(statement)
                await db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                await db.execute("COMMIT")
            except BaseException:
                await _rollback(db)
                raise
        seq = list(
            await db.execute_fetchall("SELECT value FROM meta WHERE key = 'checkpoint_wal_seq'")
        )
        last = await db.execute_fetchall(
            "SELECT max(ifnull((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0),"
            " ifnull((SELECT max(seq) FROM events), 0))"
        )
    except sqlite3.Error as e:
        raise StoreError(f"cannot prepare store {path}: {e}") from e
    return (int(seq[0][0]) if seq else None), int(next(iter(last))[0])
