"""The SQLite store: history, lookups, batching, backpressure, checkpoint durability.

Real SQLite files in ``tmp_path``; a kill -9 of a child process for crash durability.
"""

from __future__ import annotations

import asyncio
import random
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from relayd import store as store_module
from relayd.store import (
    SMPP_MESSAGE_STATE,
    Store,
    StoreClosed,
    StoreError,
    mask_number,
)

REPO = Path(__file__).resolve().parents[2]
T0 = 1_800_000_000.0  # an epoch timestamp for events


@pytest_asyncio.fixture
async def loop_guard() -> AsyncIterator[list[dict[str, Any]]]:
    """Fail the test if anything reached the event loop's exception handler."""
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    try:
        yield errors
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(previous)
    if errors:
        pytest.fail(f"unexpected exceptions in asynchronous code: {errors!r}")


@pytest_asyncio.fixture
async def store(tmp_path: Path, loop_guard: list[dict[str, Any]]) -> AsyncIterator[Store]:
    s = await Store.open(tmp_path / "relayd.db")
    try:
        yield s
    finally:
        await s.close()


def accepted(msg_id: str, account: str = "acme", parts: int = 1, at: float = T0) -> tuple[Any, ...]:
    return ("accepted", msg_id, account, "0212345678", "01012345678", parts, 1, at)


def delivered_history(msg_id: str, account: str = "acme") -> list[tuple[Any, ...]]:
    return [
        accepted(msg_id, account),
        ("submitted", msg_id, 1, "skt", f"c-{msg_id}", T0 + 1),
        ("final", msg_id, "DELIVERED", 1000, "DELIVRD", T0 + 2),
        ("reported", msg_id, T0 + 3),
    ]


# --------------------------------------------------------------------- history


def done(msg_id: str, *, reported_at: float | None = T0 + 5) -> tuple[Any, ...]:
    return (
        "done",
        msg_id,
        "acme",
        "0212345678",
        "01012345678",
        2,
        1,
        T0,
        "kt",
        ("K-1", "K-2"),
        T0 + 3,
        "UNDELIVERABLE",
        2001,
        "UNDELIV",
        T0 + 4,
        reported_at,
    )


@pytest.mark.asyncio
async def test_done_event_writes_a_whole_life_in_one_event(store: Store) -> None:
    """The relay records a finished message as one ``done`` event: it reads back
    as the same row and events as recording each step (accepted, final and
    reported derived from the row, submitted parts stored and still found by
    carrier id), interleaved in time with events recorded earlier (a failed
    attempt), many per batch (more rows than one statement may bind), and a
    repeat (reported again after a crash) refreshes the row."""
    async with asyncio.timeout(10):
        assert store.record(("attempt_failed", "m3", 0, "skt", 0x58, True, T0 + 2))
        await store.flush()
        assert store.record_events([done(f"bulk{i}") for i in range(300)] + [done("m3")])
        await store.flush()
        got = await store.get_message("m3")
        assert got is not None
        assert (got["account"], got["parts"], got["carrier"], got["carrier_msg_id"]) == (
            "acme",
            2,
            "kt",
            "K-2",
        )
        assert (got["state"], got["code"], got["stat"]) == ("UNDELIVERABLE", 2001, "UNDELIV")
        assert (got["accepted_at"], got["final_at"], got["reported_at"]) == (T0, T0 + 4, T0 + 5)
        events = got["events"]
        assert [(e["kind"], e["part"], e["at"]) for e in events] == [
            ("accepted", None, T0),
            ("attempt_failed", 0, T0 + 2),
            ("submitted", 0, T0 + 3),
            ("submitted", 1, T0 + 3),
            ("final", None, T0 + 4),
            ("reported", None, T0 + 5),
        ]
        assert [e["carrier_msg_id"] for e in events[2:4]] == ["K-1", "K-2"]
        assert (events[4]["state"], events[4]["code"]) == ("UNDELIVERABLE", 2001)
        assert await store.find_by_carrier_id("kt", "K-2") == "m3"  # the latest submission
        bulk = await store.get_message("bulk299")
        assert bulk is not None
        assert len(bulk["events"]) == 5

        # Reported again after a restart: the row moves on, history says so.
        assert store.record(done("m3", reported_at=T0 + 60))
        await store.flush()
        again = await store.get_message("m3")
        assert again is not None
        assert again["reported_at"] == T0 + 60
        assert [(e["kind"], e["at"]) for e in again["events"]][-1] == ("reported", T0 + 60)
        assert [e["kind"] for e in again["events"]].count("reported") == 1
        assert [e["kind"] for e in again["events"]].count("submitted") == 2

        # No report asked for: no reported event, reported_at stays empty.
        assert store.record(done("m4", reported_at=None))
        await store.flush()
        quiet = await store.get_message("m4")
        assert quiet is not None
        assert quiet["reported_at"] is None
        assert "reported" not in [e["kind"] for e in quiet["events"]]
        with pytest.raises(ValueError, match="unknown state"):
            store.record(("done", *done("m5")[1:11], "GONE", *done("m5")[12:]))


@pytest.mark.asyncio
async def test_history_gives_row_and_events_in_arrival_order(store: Store) -> None:
    """A two-part message retried on another carrier reads back as it happened,
    whether its events arrived in one batch or across several."""
    async with asyncio.timeout(5):
        first = [
            accepted("m1", parts=2),
            ("submitted", "m1", 1, "skt", "S-1", T0 + 1),
            ("attempt_failed", "m1", 2, "skt", 0x58, True, T0 + 2),
        ]
        rest = [
            ("submitted", "m1", 2, "kt", "K-2", T0 + 3),
            ("final", "m1", "DELIVERED", 1000, "DELIVRD", T0 + 4),
            ("reported", "m1", T0 + 5),
        ]
        assert store.record_events(first)
        await store.flush()  # a batch boundary in the middle of the history
        assert store.record_events(rest)
        # The same history for m2, all in one batch.
        assert store.record_events([(ev[0], "m2", *ev[2:]) for ev in first + rest])
        await store.flush()

        for msg_id in ("m1", "m2"):
            got = await store.get_message(msg_id)
            assert got is not None
            assert got["msg_id"] == msg_id
            assert got["account"] == "acme"
            assert (got["source"], got["destination"]) == ("0212345678", "01012345678")
            assert (got["parts"], got["registered_delivery"]) == (2, 1)
            assert (got["state"], got["code"], got["stat"]) == ("DELIVERED", 1000, "DELIVRD")
            assert (got["carrier"], got["carrier_msg_id"]) == ("kt", "K-2")  # latest submission
            assert (got["accepted_at"], got["final_at"], got["reported_at"]) == (
                T0,
                T0 + 4,
                T0 + 5,
            )
            events = got["events"]
            assert [e["kind"] for e in events] == [
                "accepted",
                "submitted",
                "attempt_failed",
                "submitted",
                "final",
                "reported",
            ]
            seqs = [e["seq"] for e in events]
            assert seqs == sorted(seqs)
            failed = events[2]
            assert (failed["part"], failed["carrier"], failed["status"], failed["temporary"]) == (
                2,
                "skt",
                0x58,
                True,
            )
            assert (events[3]["carrier"], events[3]["carrier_msg_id"]) == ("kt", "K-2")
            assert (events[4]["state"], events[4]["code"], events[4]["stat"]) == (
                "DELIVERED",
                1000,
                "DELIVRD",
            )
            assert [e["at"] for e in events] == [T0 + i for i in range(6)]


@pytest.mark.asyncio
async def test_failed_and_queued_messages_and_state_counts(store: Store) -> None:
    """A permanent failure keeps its Korean code; a message still with us is QUEUED;
    stats_counts counts messages by state; query_sm's state maps from the row."""
    async with asyncio.timeout(5):
        store.record_events(delivered_history("ok"))
        store.record_events(
            [
                accepted("bad"),
                ("submitted", "bad", 1, "lgu", "L-9", T0 + 1),
                ("final", "bad", "UNDELIVERABLE", 2005, "UNDELIV", T0 + 2),
            ]
        )
        store.record_events([accepted("waiting")])
        store.record_events([accepted("out"), ("submitted", "out", 1, "kt", "K-1", T0 + 1)])

        bad = await store.get_message("bad")
        assert bad is not None
        assert (bad["state"], bad["code"], bad["stat"], bad["reported_at"]) == (
            "UNDELIVERABLE",
            2005,
            "UNDELIV",
            None,
        )
        waiting = await store.get_message("waiting", include_events=False)
        assert waiting is not None
        assert (waiting["state"], waiting["events"]) == ("QUEUED", [])
        assert await store.stats_counts() == {
            "DELIVERED": 1,
            "UNDELIVERABLE": 1,
            "QUEUED": 1,
            "SUBMITTED": 1,
        }
        assert SMPP_MESSAGE_STATE["QUEUED"] == SMPP_MESSAGE_STATE["SUBMITTED"] == 1  # ENROUTE
        assert SMPP_MESSAGE_STATE["UNDELIVERABLE"] == 5


@pytest.mark.asyncio
async def test_get_message_reads_events_queued_before_it_without_flush(store: Store) -> None:
    """A query is served after every event queued before it: read-your-writes."""
    async with asyncio.timeout(5):
        store.record_events([accepted("fresh")])
        got = await store.get_message("fresh")
        assert got is not None
        assert got["state"] == "QUEUED"
        assert await store.get_message("never-seen") is None


@pytest.mark.asyncio
async def test_get_message_with_account_hides_other_tenants(store: Store) -> None:
    """An account sees its own message; another account's is reported as unknown."""
    async with asyncio.timeout(5):
        store.record_events(delivered_history("a-1", account="alpha"))
        store.record_events(delivered_history("b-1", account="beta"))
        mine = await store.get_message("a-1", account="alpha")
        assert mine is not None
        assert mine["account"] == "alpha"
        assert len(mine["events"]) == 4
        assert await store.get_message("a-1", account="beta") is None
        assert await store.get_message("b-1", account="alpha") is None
        assert await store.get_message("nope", account="alpha") is None
        theirs = await store.get_message("b-1")  # operators (no account) see everything
        assert theirs is not None
        assert theirs["account"] == "beta"


@pytest.mark.asyncio
async def test_find_by_carrier_id_matches_every_part_and_attempt(store: Store) -> None:
    """Each part's and each attempt's carrier id maps back; ids are per carrier."""
    async with asyncio.timeout(5):
        store.record_events(
            [
                accepted("long", parts=3),
                ("submitted", "long", 1, "skt", "100", T0 + 1),
                ("submitted", "long", 2, "skt", "101", T0 + 1.1),
                ("submitted", "long", 3, "skt", "102", T0 + 1.2),
                accepted("retried"),
                ("submitted", "retried", 1, "skt", "200", T0 + 1),
                ("submitted", "retried", 1, "kt", "200", T0 + 9),  # same id, other carrier
                accepted("other"),
                ("submitted", "other", 1, "kt", "100", T0 + 1),
            ]
        )
        for carrier_msg_id in ("100", "101", "102"):
            assert await store.find_by_carrier_id("skt", carrier_msg_id) == "long"
        assert await store.find_by_carrier_id("skt", "200") == "retried"
        assert await store.find_by_carrier_id("kt", "200") == "retried"
        assert await store.find_by_carrier_id("kt", "100") == "other"
        assert await store.find_by_carrier_id("lgu", "100") is None
        assert await store.find_by_carrier_id("skt", "999") is None


def test_lookups_use_their_indexes(tmp_path: Path) -> None:
    """The receipt-correlation and history queries are index lookups, not scans."""
    db = sqlite3.connect(tmp_path / "plan.db")
    try:
        db.executescript(store_module._SCHEMA)
        for sql, params, index in (
            (store_module._SELECT_BY_CARRIER_ID, ("skt", "1"), "events_carrier_id"),
            (store_module._SELECT_EVENTS, ("m",), "events_identity"),
            (store_module._SELECT_MESSAGE, ("m",), "PRIMARY KEY"),
        ):
            plan = " ".join(str(row[-1]) for row in db.execute(f"EXPLAIN QUERY PLAN {sql}", params))
            assert index in plan, plan
    finally:
        db.close()


@pytest.mark.asyncio
async def test_replayed_and_late_events_never_move_a_message_backwards(store: Store) -> None:
    """Recording a history twice (a WAL replay) adds nothing; a late `submitted`
    or a replayed `accepted` never un-finalises a message."""
    async with asyncio.timeout(5):
        history = delivered_history("m")
        store.record_events(history)
        await store.flush()
        store.record_events(history)  # replay: same events, same timestamps
        store.record_events([("submitted", "m", 1, "kt", "late", T0 + 10), accepted("m")])
        got = await store.get_message("m")
        assert got is not None
        assert got["state"] == "DELIVERED"
        assert [e["kind"] for e in got["events"]] == [
            "accepted",
            "submitted",
            "final",
            "reported",
            "submitted",  # the late one is history; it did not change the state
        ]
        assert await store.stats_counts() == {"DELIVERED": 1}


@pytest.mark.asyncio
async def test_history_without_its_accepted_event_is_still_shown(store: Store) -> None:
    """If `accepted` never reached the store, later events still make a row (for
    operators), but no account can see it."""
    async with asyncio.timeout(5):
        store.record_events(
            [
                ("submitted", "orphan", 1, "skt", "77", T0),
                ("final", "orphan", "EXPIRED", 3001, "EXPIRED", T0 + 1),
            ]
        )
        got = await store.get_message("orphan")
        assert got is not None
        assert (got["account"], got["state"], got["carrier_msg_id"]) == (None, "EXPIRED", "77")
        assert await store.get_message("orphan", account="acme") is None


@pytest.mark.asyncio
async def test_large_batches_write_every_kind_correctly(store: Store) -> None:
    """Batches big enough for the multi-row statements (plus a remainder) store
    every kind exactly as small ones do."""
    async with asyncio.timeout(10):
        n = 300  # 2 full statements of 128 rows + 44 single rows, per kind
        events: list[tuple[Any, ...]] = []
        for i in range(n):
            m = f"m{i}"
            events += [
                accepted(m, account=f"acct{i % 3}", parts=2),
                ("submitted", m, 1, "skt", f"S{i}", T0 + 1),
                ("attempt_failed", m, 2, "skt", 0x14, i % 2 == 0, T0 + 2),
                ("submitted", m, 2, "kt", f"K{i}", T0 + 3),
                ("final", m, "DELIVERED" if i % 4 else "EXPIRED", 1000 + i, "X", T0 + 4),
                ("reported", m, T0 + 5),
            ]
        assert store.record_events(events)
        await store.flush()
        assert store.statistics().batches == 1
        assert await store.stats_counts() == {"DELIVERED": 225, "EXPIRED": 75}
        for i in (0, 127, 128, 255, 256, 299):
            got = await store.get_message(f"m{i}", account=f"acct{i % 3}")
            assert got is not None
            assert (got["code"], got["carrier_msg_id"], got["reported_at"]) == (
                1000 + i,
                f"K{i}",
                T0 + 5,
            )
            kinds = [e["kind"] for e in got["events"]]
            assert kinds == [
                "accepted",
                "submitted",
                "attempt_failed",
                "submitted",
                "final",
                "reported",
            ]
            assert got["events"][2]["temporary"] is (i % 2 == 0)
            assert await store.find_by_carrier_id("skt", f"S{i}") == f"m{i}"


# --------------------------------------------------------------------- batching, backpressure


@pytest.mark.asyncio
async def test_ten_thousand_events_take_two_transactions(
    tmp_path: Path, loop_guard: list[dict[str, Any]]
) -> None:
    """Events queued between two owner turns are written batch_max at a time,
    each batch one transaction — not one transaction per event."""
    async with asyncio.timeout(10):
        s = await Store.open(tmp_path / "b.db", batch_max=5_000, linger_s=0)
        try:
            for i in range(10_000):
                assert s.record_events([accepted(f"m{i}")])
            assert s.statistics().inbox_depth == 10_000
            await s.flush()
            st = s.statistics()
            assert (st.batches, st.events_written, st.inbox_depth) == (2, 10_000, 0)
            assert st.last_batch_size == 5_000
            assert st.last_batch_latency_s > 0
            assert (await s.stats_counts())["QUEUED"] == 10_000
        finally:
            await s.close()


@pytest.mark.asyncio
async def test_trickled_events_are_still_batched(store: Store) -> None:
    """Events arriving 100 at a time, with the loop turning between, are gathered
    by the owner's linger into a few transactions, not 100."""
    async with asyncio.timeout(10):
        for i in range(10_000):
            store.record_events([("reported", f"m{i}", T0)])
            if i % 100 == 99:
                await asyncio.sleep(0)
        await store.flush()
        st = store.statistics()
        assert st.events_written == 10_000
        assert st.batches <= 20, st


@pytest.mark.asyncio
async def test_full_inbox_refuses_the_whole_call_and_counts_it(
    tmp_path: Path, loop_guard: list[dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    """Beyond inbox_max, record_events returns False, queues nothing of the call,
    counts the drop and says so once; once drained, it accepts again."""
    async with asyncio.timeout(5):
        s = await Store.open(tmp_path / "full.db", inbox_max=100)
        try:
            assert s.record_events([accepted(f"a{i}") for i in range(60)])
            assert not s.record_events([accepted(f"b{i}") for i in range(50)])
            assert not s.record_events([accepted("c")] * 41)
            st = s.statistics()
            assert (st.inbox_depth, st.events_dropped, st.inbox_max) == (60, 91, 100)
            assert s.record_events([accepted(f"d{i}") for i in range(40)])  # exactly full
            assert s.statistics().inbox_depth == 100
            await s.flush()
            assert s.record_events([accepted("e")])
            await s.flush()
            st = s.statistics()
            assert (st.events_written, st.events_dropped) == (101, 91)
            assert await s.get_message("b0") is None
            assert await s.get_message("d39") is not None
        finally:
            await s.close()
    drops = [r for r in caplog.records if "dropping history" in r.getMessage()]
    assert len(drops) == 1


@pytest.mark.asyncio
async def test_malformed_events_are_the_callers_error(store: Store) -> None:
    """An unknown kind, a wrong length or an unknown final state raises at once,
    and nothing of that call is queued."""
    async with asyncio.timeout(5):
        bad_calls: list[list[tuple[Any, ...]]] = [
            [accepted("x"), ("bounced", "x", T0)],
            [accepted("x"), ("submitted", "x", 1, "skt", T0)],
            [accepted("x"), ("final", "x", "SUBMITTED", None, "?", T0)],
            [()],
        ]
        for events in bad_calls:
            with pytest.raises(ValueError, match="event"):
                store.record_events(events)
        assert store.statistics().inbox_depth == 0
        assert store.record_events([("final", "x", "UNKNOWN", None, "UNKNOWN", T0)])
        await store.flush()
        assert store.statistics().events_written == 1


@pytest.mark.asyncio
async def test_a_batch_sqlite_refuses_is_counted_and_the_store_goes_on(store: Store) -> None:
    """A batch SQLite cannot write is rolled back and counted; the next one lands."""
    async with asyncio.timeout(5):
        store.record_events([accepted("good-1"), accepted(["not", "bindable"])])  # type: ignore[arg-type]
        await store.flush()
        st = store.statistics()
        assert (st.write_errors, st.events_dropped, st.batches) == (1, 2, 0)
        assert await store.get_message("good-1") is None  # the whole batch rolled back
        store.record_events([accepted("good-2")])
        await store.flush()
        assert await store.get_message("good-2") is not None
        assert store.statistics().batches == 1


# --------------------------------------------------------------------- checkpoint


@pytest.mark.asyncio
async def test_checkpoint_round_trip_and_replace(store: Store) -> None:
    """load returns what save stored, in order; a second save replaces the first
    completely; an empty snapshot is a valid one."""
    async with asyncio.timeout(5):
        assert await store.load_checkpoint() == (None, [])
        assert store.statistics().checkpoint_wal_seq is None
        first = [bytes([i % 256]) * (i % 300) + b"\x00\xff" for i in range(2_000)]
        await store.save_checkpoint(7, first)
        assert await store.load_checkpoint() == (7, first)
        second = [b"only", b"two"]
        await store.save_checkpoint(9, second)
        assert await store.load_checkpoint() == (9, second)
        await store.save_checkpoint(12, [])
        assert await store.load_checkpoint() == (12, [])
        st = store.statistics()
        assert (st.checkpoints, st.checkpoint_wal_seq, st.last_checkpoint_live) == (3, 12, 0)
        with pytest.raises(ValueError, match="wal_seq"):
            await store.save_checkpoint(-1, [])
        with pytest.raises(TypeError):
            await store.save_checkpoint(1.5, [])  # type: ignore[arg-type]
        assert await store.load_checkpoint() == (12, [])


@pytest.mark.asyncio
async def test_checkpoint_and_history_survive_close_and_reopen(
    tmp_path: Path, loop_guard: list[dict[str, Any]]
) -> None:
    """What was saved, and history queued before close, is there after a reopen;
    new events continue the history's sequence."""
    async with asyncio.timeout(5):
        path = tmp_path / "reopen.db"
        blobs = [b"live-%d" % i for i in range(1_000)]
        s = await Store.open(path)
        await s.save_checkpoint(41, blobs)
        s.record_events(delivered_history("m"))  # not flushed: close must write it
        await s.close()

        s = await Store.open(path)
        try:
            assert s.statistics().checkpoint_wal_seq == 41
            assert await s.load_checkpoint() == (41, blobs)
            s.record_events([("attempt_failed", "m", 1, "kt", 8, False, T0 + 9)])
            got = await s.get_message("m")
            assert got is not None
            events = got["events"]
            assert [e["kind"] for e in events][-1] == "attempt_failed"
            assert events[-1]["temporary"] is False
            assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
        finally:
            await s.close()


CHILD = r"""
import asyncio, sys
from relayd.store import Store

async def main(path: str, mode: str) -> None:
    store = await Store.open(path, linger_s=0)

    async def history() -> None:  # keep SQLite writing so the kill lands mid-batch
        i = 0
        while True:  # ~50k events/s: busy, but not a loop that never idles (that
            # starves the connection's thread of the GIL: see _ROWS_PER_STATEMENT)
            store.record_events(
                [("accepted", f"h{i}", "acct", "0212345678", "01012345678", 1, 1, float(i))]
            )
            i += 1
            if i % 50 == 0:
                await asyncio.sleep(0.001)

    task = asyncio.create_task(history())
    if mode == "saved":
        await store.save_checkpoint(42, [b"live-%d" % i for i in range(10_000)])
        print("saved", flush=True)
        await asyncio.sleep(3600)
    seq = 1
    while True:  # "churn": checkpoints of varying size, each derived from its seq
        n = 1_000 + seq % 7 * 500
        await store.save_checkpoint(seq, [b"%d:%d" % (seq, i) for i in range(n)])
        if seq == 1:
            print("first", flush=True)
        seq += 1

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


async def _run_child_and_kill(path: Path, mode: str, line: bytes, delay_s: float) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        str(path),
        mode,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        assert await proc.stdout.readline() == line
        await asyncio.sleep(delay_s)
    finally:
        proc.send_signal(signal.SIGKILL)
        assert await proc.wait() == -signal.SIGKILL


def _integrity(path: Path) -> str:
    db = sqlite3.connect(path)
    try:
        return str(db.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        db.close()


@pytest.mark.asyncio
async def test_checkpoint_survives_kill_9_right_after_save(
    tmp_path: Path, loop_guard: list[dict[str, Any]]
) -> None:
    """A checkpoint whose save returned is there after the process is SIGKILLed
    (while still writing history), and the file is intact."""
    async with asyncio.timeout(15):
        path = tmp_path / "kill.db"
        await _run_child_and_kill(path, "saved", b"saved\n", delay_s=0)
        assert await asyncio.to_thread(_integrity, path) == "ok"
        s = await Store.open(path)
        try:
            assert await s.load_checkpoint() == (42, [b"live-%d" % i for i in range(10_000)])
            assert s.statistics().checkpoint_wal_seq == 42
        finally:
            await s.close()


@pytest.mark.asyncio
async def test_kill_9_during_checkpoints_leaves_one_whole_checkpoint(
    tmp_path: Path, loop_guard: list[dict[str, Any]]
) -> None:
    """Killed at a random moment among back-to-back saves, the store holds exactly
    one complete checkpoint — never a mix of two, never a partial one."""
    async with asyncio.timeout(15):
        path = tmp_path / "churn.db"
        await _run_child_and_kill(path, "churn", b"first\n", delay_s=random.uniform(0.05, 0.4))
        assert await asyncio.to_thread(_integrity, path) == "ok"
        s = await Store.open(path)
        try:
            seq, blobs = await s.load_checkpoint()
            assert seq is not None
            assert seq >= 1
            assert blobs == [b"%d:%d" % (seq, i) for i in range(1_000 + seq % 7 * 500)]
        finally:
            await s.close()


# --------------------------------------------------------------------- lifecycle


@pytest.mark.asyncio
async def test_close_is_idempotent_and_refuses_later_use(
    tmp_path: Path, loop_guard: list[dict[str, Any]]
) -> None:
    """close() twice is fine; afterwards every method raises StoreClosed."""
    async with asyncio.timeout(5):
        s = await Store.open(tmp_path / "c.db")
        assert not s.closed
        await s.close()
        await s.close()
        assert s.closed
        with pytest.raises(StoreClosed):
            s.record_events([accepted("late")])
        with pytest.raises(StoreClosed):
            await s.get_message("late")
        with pytest.raises(StoreClosed):
            await s.flush()
        with pytest.raises(StoreClosed):
            await s.save_checkpoint(1, [])


@pytest.mark.asyncio
async def test_cancelled_close_reraises_and_still_closes_the_connection(
    tmp_path: Path, loop_guard: list[dict[str, Any]]
) -> None:
    """Cancelling close() mid-flush propagates CancelledError; the owner rolls back
    the open batch and closes the connection; nothing is lost without a count."""
    async with asyncio.timeout(10):
        path = tmp_path / "cancel.db"
        s = await Store.open(path, batch_max=1_000)
        total = 50_000
        assert s.record_events([accepted(f"m{i}") for i in range(total)])
        closing = asyncio.create_task(s.close())
        await asyncio.sleep(0.02)
        closing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await closing
        await s.close()  # idempotent: waits for the owner to finish closing
        st = s.statistics()
        assert st.events_written + st.events_dropped == total
        assert st.inbox_depth == 0

        s = await Store.open(path)  # the file is usable and holds what was committed
        try:
            counts = await s.stats_counts()
            assert counts.get("QUEUED", 0) == st.events_written
        finally:
            await s.close()


@pytest.mark.asyncio
async def test_a_failed_request_raises_store_error_and_the_store_goes_on(store: Store) -> None:
    """SQLite refusing one request is that caller's StoreError, nobody else's."""
    async with asyncio.timeout(5):
        with pytest.raises(StoreError, match="request failed"):
            await store.get_message(["not", "bindable"])  # type: ignore[arg-type]
        store.record_events([accepted("after")])
        assert await store.get_message("after") is not None


@pytest.mark.asyncio
async def test_a_bug_in_the_owner_fails_waiters_and_close_reports_it(
    tmp_path: Path, loop_guard: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unexpected exception ends the owner task: waiters get StoreClosed, later
    calls are refused, the connection is closed, and close() raises it once."""
    async with asyncio.timeout(5):
        s = await Store.open(tmp_path / "bug.db", linger_s=0)

        async def boom(_batch: list[tuple[Any, ...]]) -> None:
            raise RuntimeError("bug")

        monkeypatch.setattr(s, "_write_batch", boom)
        s.record_events([accepted("m")])
        with pytest.raises(StoreClosed):
            await s.flush()
        assert s.closed
        with pytest.raises(StoreClosed):
            s.record_events([accepted("n")])
        with pytest.raises(StoreError, match="task failed") as info:
            await s.close()
        assert isinstance(info.value.__cause__, RuntimeError)
        await s.close()  # reported once; idempotent afterwards
        s = await Store.open(tmp_path / "bug.db")  # the file was released
        await s.close()


@pytest.mark.asyncio
async def test_open_refuses_what_it_cannot_use(
    tmp_path: Path, loop_guard: list[dict[str, Any]]
) -> None:
    """A missing directory or a store from a newer relayd is a clear StoreError."""
    async with asyncio.timeout(5):
        with pytest.raises(StoreError, match="cannot open"):
            await Store.open(tmp_path / "no" / "such" / "dir.db")
        newer = tmp_path / "newer.db"
        db = sqlite3.connect(newer)
        db.execute("PRAGMA user_version=99")
        db.close()
        with pytest.raises(StoreError, match="schema version 99"):
            await Store.open(newer)


@pytest.mark.asyncio
async def test_a_version_1_store_is_upgraded_in_place(
    tmp_path: Path, loop_guard: list[dict[str, Any]]
) -> None:
    """A store written by the previous relayd (schema 1: no messages.done) opens,
    keeps its history, and takes done events."""
    async with asyncio.timeout(10):
        path = tmp_path / "v1.db"
        s = await Store.open(path)
        assert s.record_events(delivered_history("old"))
        await s.close()
        db = sqlite3.connect(path)
        db.execute("ALTER TABLE messages DROP COLUMN done")
        db.execute("PRAGMA user_version=1")
        db.commit()
        db.close()
        s = await Store.open(path)
        try:
            assert s.record(done("new"))
            await s.flush()
            old = await s.get_message("old")
            assert old is not None
            assert [e["kind"] for e in old["events"]] == [
                "accepted",
                "submitted",
                "final",
                "reported",
            ]
            new = await s.get_message("new")
            assert new is not None
            assert new["state"] == "UNDELIVERABLE"
        finally:
            await s.close()
        db = sqlite3.connect(path)
        assert db.execute("PRAGMA user_version").fetchone()[0] == 2
        db.close()


# --------------------------------------------------------------------- masking


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("01012345678", "010****5678"),
        ("0101234567", "010***4567"),
        ("010-1234-5678", "010-****-5678"),
        ("+821012345678", "+821*****5678"),
        ("0212345678", "021***5678"),
        ("021234567", "*******67"),
        ("15881234", "******34"),
        ("1234", "**34"),
        ("12", "12"),
        ("1", "1"),
        ("", ""),
        ("KAKAO", "***AO"),
    ],
)
def test_mask_number(number: str, masked: str) -> None:
    """First 3 and last 4 digits stay from 10 digits up; shorter keeps the last 2."""
    assert mask_number(number) == masked
