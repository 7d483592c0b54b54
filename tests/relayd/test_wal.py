"""Tests of the write-ahead log (relayd/wal.py).

Pure framing first (no loop, Hypothesis; style guide §8.3 "WAL replay"), then the
asyncio writer on real files in ``tmp_path`` with real fdatasync. A small seam,
``Wal._write_and_sync``, is replaced where a test must hold or fail the disk.
Two tests run a child process: one is killed with SIGKILL mid-run (the
durability promise), one hits a real kernel write error (RLIMIT_FSIZE → EFBIG).
"""

from __future__ import annotations

import asyncio
import errno
import gc
import json
import logging
import os
import signal
import sys
import threading
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from hypothesis import given
from hypothesis import strategies as st

from relayd.wal import (
    MAX_RECORD_BYTES,
    QUARANTINE_DIR,
    Wal,
    WalError,
    WalFullError,
    encode_record,
    iter_records,
    scan_records,
    segment_name,
)

REPO = Path(__file__).resolve().parents[2]
TIMEOUT_S = 20.0


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


def _segment_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("wal-*.log"))


def _replay(wal: Wal) -> list[Any]:
    return list(wal.replay())


async def _reopen_records(directory: Path) -> list[Any]:
    async with await Wal.open(directory) as wal:
        return _replay(wal)


# ============================================================================ pure framing

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=40)
    | st.binary(max_size=40)
)
records_st = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.text(max_size=8) | st.integers(-100, 100), inner, max_size=4)
    ),
    max_leaves=12,
)
record_lists = st.lists(records_st, min_size=1, max_size=12)


def _framed(records: list[Any]) -> tuple[bytes, list[int]]:
    frames = [encode_record(r) for r in records]
    ends, total = [], 0
    for f in frames:
        total += len(f)
        ends.append(total)
    return b"".join(frames), ends


@given(records=record_lists)
def test_records_round_trip_with_end_offsets(records: list[Any]) -> None:
    """Every encoded record decodes to itself, and end offsets tile the data."""
    data, ends = _framed(records)
    decoded = list(iter_records(data))
    assert [r for r, _ in decoded] == records
    assert [e for _, e in decoded] == ends
    assert scan_records(data).damage is None
    assert scan_records(memoryview(bytearray(data))).valid_bytes == len(data)


@given(records=record_lists, data=st.data())
def test_any_truncation_replays_exactly_the_complete_records(records: list[Any], data: Any) -> None:
    """A cut anywhere yields the records that end at or before the cut, nothing else."""
    blob, ends = _framed(records)
    cut = data.draw(st.integers(0, len(blob)))
    got = list(iter_records(blob[:cut]))
    complete = [i for i, e in enumerate(ends) if e <= cut]
    assert [r for r, _ in got] == [records[i] for i in complete]
    scan = scan_records(blob[:cut])
    assert scan.valid_bytes == (ends[complete[-1]] if complete else 0)
    assert (scan.damage is None) == (cut in (0, *ends))


@given(records=record_lists, data=st.data())
def test_any_corrupted_byte_replays_every_record_before_it_and_nothing_after(
    records: list[Any], data: Any
) -> None:
    """CRC-32 catches any single damaged byte: the scan stops at its record."""
    blob, ends = _framed(records)
    pos = data.draw(st.integers(0, len(blob) - 1))
    flip = data.draw(st.integers(1, 255))
    damaged = bytearray(blob)
    damaged[pos] ^= flip
    hit = next(i for i, e in enumerate(ends) if pos < e)
    got = list(iter_records(bytes(damaged)))
    assert [r for r, _ in got] == records[:hit]
    scan = scan_records(damaged)
    assert scan.damage is not None
    assert scan.valid_bytes == (ends[hit - 1] if hit else 0)


def _frame(payload: bytes, *, length: int | None = None, crc: int | None = None) -> bytes:
    n = len(payload) if length is None else length
    c = zlib.crc32(payload) if crc is None else crc
    return n.to_bytes(4, "big") + c.to_bytes(4, "big") + payload


GOOD = encode_record(["ok", 1])


@pytest.mark.parametrize(
    ("tail", "reason"),
    [
        (GOOD[:5], "short header"),
        (b"\x00" * 64, "zero-length record"),
        (_frame(b"x", length=MAX_RECORD_BYTES + 1), "beyond MAX_RECORD_BYTES"),
        (_frame(b"\x93\x01\x02\x03")[:-1], "needs 4 bytes, 3 present"),
        (_frame(b"\x93\x01\x02\x03", crc=12345), "CRC mismatch"),
        (_frame(b"\xc1"), "undecodable payload"),  # 0xc1 is never used in msgpack
        (_frame(b"\x93\x01"), "undecodable payload"),  # array of 3 with one item
        (_frame(b"\x01\x02"), "undecodable payload"),  # trailing bytes after a value
    ],
)
def test_scan_stops_cleanly_at_each_kind_of_damage(tail: bytes, reason: str) -> None:
    """Each kind of torn or corrupt tail ends the scan without an exception, after GOOD."""
    data = GOOD + tail
    assert [r for r, _ in iter_records(data)] == [["ok", 1]]
    scan = scan_records(data)
    assert scan.records == 1
    assert scan.valid_bytes == len(GOOD)
    assert scan.damage is not None
    assert reason in scan.damage


def test_encode_refuses_what_it_could_not_replay() -> None:
    """Oversized or unencodable records are the caller's bug, raised before queueing."""
    with pytest.raises(ValueError, match="exceeds"):
        encode_record(b"x" * (MAX_RECORD_BYTES + 1))
    with pytest.raises(TypeError):
        encode_record(object())


def test_int_map_keys_and_tuples_replay() -> None:
    """What encode_record accepts, iter_records decodes (int keys; tuples as lists)."""
    rec = {1: ("a", b"b"), "k": [None, 2.5]}
    ((got, _),) = iter_records(encode_record(rec))
    assert got == {1: ["a", b"b"], "k": [None, 2.5]}


# ============================================================================ writer


class Gate:
    """A replacement for ``Wal._write_and_sync`` that writes, then blocks before
    fdatasync until released, optionally failing instead."""

    def __init__(self, wal: Wal) -> None:
        self.wal = wal
        self.entered = threading.Event()
        self.release = threading.Event()
        self.fail_with: OSError | None = None
        self.calls = 0
        self.threads: set[int] = set()
        wal._write_and_sync = self  # type: ignore[method-assign]

    def __call__(self, fd: int, data: bytes) -> float:
        self.calls += 1
        self.threads.add(threading.get_ident())
        os.write(fd, data)
        self.entered.set()
        if not self.release.wait(10):
            raise RuntimeError("gate never released")
        if self.fail_with is not None:
            raise self.fail_with
        os.fdatasync(fd)
        return 0.0

    async def wait_entered(self) -> None:
        assert await asyncio.to_thread(self.entered.wait, 10)


@pytest.mark.asyncio
async def test_append_resolves_only_after_fdatasync_returned(
    tmp_path: Path, loop_guard: list[Any]
) -> None:
    """A record's future stays pending while its bytes are written but not fsynced;
    records appended meanwhile wait for the next batch."""
    async with asyncio.timeout(TIMEOUT_S):
        wal = await Wal.open(tmp_path)
        gate = Gate(wal)
        first = wal.append(["a", 1])
        await gate.wait_entered()
        second = wal.append(["a", 2])
        await asyncio.sleep(0.05)
        seg = tmp_path / segment_name(wal.current_segment)
        assert seg.stat().st_size == len(encode_record(["a", 1]))  # written ...
        assert not first.done()  # ... but not acknowledged
        assert not second.done()
        gate.release.set()
        await first
        await second
        assert gate.calls == 2
        assert threading.get_ident() not in gate.threads  # never on the loop thread
        await wal.close()
        assert await _reopen_records(tmp_path) == [["a", 1], ["a", 2]]


@pytest.mark.asyncio
async def test_callbacks_and_unwaited_records_complete_in_order_after_fdatasync(
    tmp_path: Path, loop_guard: list[Any]
) -> None:
    """append_then's callback runs only after its record's fdatasync, in append
    order with futures, with its argument; append_nowait records are written in
    sequence with the others; the next batch is already on its way to the disk
    while a finished batch's callbacks run; a callback that raises reaches the
    loop's exception handler and the writer goes on; a disk error calls the
    callbacks of every record not yet durable with the error."""
    seen: list[Any] = []
    async with asyncio.timeout(TIMEOUT_S):
        wal = await Wal.open(tmp_path)
        gate = Gate(wal)
        wal.append_then(
            ["a", 0],
            # Batch 2 left the queue for the disk before batch 1's callbacks ran.
            lambda arg, err: seen.append((arg, err, wal.statistics().queued_records)),
            "zero",
        )
        await gate.wait_entered()
        wal.append_nowait(["n", 1])
        fut = wal.append(["f", 2])
        fut.add_done_callback(lambda _: seen.append(("fut", None)))

        wal.append_then(["a", 3], lambda arg, err: seen.append((arg, err)), "three")
        await asyncio.sleep(0.05)
        assert seen == []  # written, not yet fsynced
        gate.entered.clear()
        gate.release.set()
        await fut
        await wal.flush()
        assert seen[0] == ("zero", None, 0)
        assert seen[1:] == [("fut", None), ("three", None)] or seen[1:] == [
            ("three", None),
            ("fut", None),
        ]

        errors: list[Any] = []
        asyncio.get_running_loop().set_exception_handler(lambda _l, ctx: errors.append(ctx))

        def boom(_arg: Any, _err: Any) -> None:
            raise RuntimeError("caller bug")

        wal.append_then(["b", 4], boom, None)
        await wal.append_wait(["b", 5])  # the writer went on
        assert [str(c["exception"]) for c in errors] == ["caller bug"]

        gate.entered.clear()
        gate.release.clear()
        gate.fail_with = OSError(errno.EIO, "I/O error")
        failed: list[Any] = []
        wal.append_then(["c", 6], lambda arg, err: failed.append((arg, err)), 6)
        await gate.wait_entered()
        wal.append_then(["c", 7], lambda arg, err: failed.append((arg, err)), 7)
        gate.release.set()
        await asyncio.sleep(0.1)
        assert [a for a, _ in failed] == [6, 7]
        assert all(isinstance(e, WalError) and e.errno == errno.EIO for _, e in failed)
        await wal.close()
        assert await _reopen_records(tmp_path) == [
            ["a", 0],
            ["n", 1],
            ["f", 2],
            ["a", 3],
            ["b", 4],
            ["b", 5],
        ]


@pytest.mark.asyncio
async def test_append_frames_exactly_as_encode_record_and_refuses_the_unencodable(
    tmp_path: Path, loop_guard: list[Any]
) -> None:
    """The append path's inlined framing writes encode_record's bytes; a record
    msgpack cannot encode or one over MAX_RECORD_BYTES is refused at the call,
    nothing is queued, and the next record is framed correctly."""
    async with asyncio.timeout(TIMEOUT_S):
        wal = await Wal.open(tmp_path)
        records = [["A", "x" * 300, 1, 2.5, b"\x00\xff", None], ["R", "m1", "m2"]]
        for r in records:
            await wal.append_wait(r)
        with pytest.raises(TypeError):
            wal.append_nowait(["bad", object()])
        with pytest.raises(ValueError, match="exceeds"):
            wal.append_nowait(["big", b"x" * (MAX_RECORD_BYTES + 1)])
        await wal.append_wait(["after", 1])
        await wal.close()
        seg = tmp_path / segment_name(wal.current_segment)
        expected = b"".join(encode_record(r) for r in [*records, ["after", 1]])
        assert seg.read_bytes() == expected


@pytest.mark.asyncio
async def test_group_commit_writes_many_records_per_fsync(
    tmp_path: Path, loop_guard: list[Any]
) -> None:
    """10,000 appends issued without awaiting each take far fewer fsyncs than records."""
    batches: list[tuple[int, float]] = []
    async with asyncio.timeout(TIMEOUT_S):
        wal = await Wal.open(tmp_path, on_batch=lambda n, s: batches.append((n, s)))
        futs = []
        for i in range(10_000):
            futs.append(wal.append(["m", i, "x" * 100]))
            if i % 100 == 99:
                await asyncio.sleep(0)  # as the relay does between socket reads
        await asyncio.gather(*futs)
        await asyncio.sleep(0)  # the last on_batch callback
        stats = wal.statistics()
        assert stats.records_appended == stats.records_durable == 10_000
        assert stats.batches <= 1_000
        assert stats.fsync_count == stats.batches
        assert stats.fsync_seconds_total > 0
        assert sum(n for n, _ in batches) == 10_000
        assert len(batches) == stats.batches
        assert stats.queued_records == 0
        assert stats.healthy
        await wal.close()
        assert await _reopen_records(tmp_path) == [["m", i, "x" * 100] for i in range(10_000)]


@pytest.mark.asyncio
async def test_replay_after_close_returns_every_record_in_order(
    tmp_path: Path, loop_guard: list[Any]
) -> None:
    """Records of every shape come back in append order after a clean close."""
    records: list[Any] = [["A", i, {"k": i, 7: b"\x00\xff"}, None, 1.5, True] for i in range(300)]
    async with asyncio.timeout(TIMEOUT_S):
        async with await Wal.open(tmp_path) as wal:
            assert _replay(wal) == []
            for r in records[:100]:
                await wal.append_wait(r)
            futs = [wal.append(r) for r in records[100:]]
        assert all(f.done() and f.exception() is None for f in futs)  # close() flushed them
        async with await Wal.open(tmp_path) as wal:
            assert _replay(wal) == records
            assert wal.recovery.records == 300
            assert wal.recovery.damage is None


@pytest.mark.asyncio
async def test_reopen_appends_to_a_fresh_segment_and_replays_everything(
    tmp_path: Path, loop_guard: list[Any]
) -> None:
    """Each open starts a new, higher segment; replay covers only what was there at
    open, even once appending has started."""
    async with asyncio.timeout(TIMEOUT_S):
        async with await Wal.open(tmp_path) as wal:
            first_seg = wal.current_segment
            for i in range(5):
                await wal.append_wait(["r", i])
        async with await Wal.open(tmp_path) as wal:
            assert wal.current_segment == first_seg + 1
            for i in range(5, 10):
                await wal.append_wait(["r", i])
            assert _replay(wal) == [["r", i] for i in range(5)]  # open-time records only
        async with await Wal.open(tmp_path) as wal:
            assert wal.current_segment == first_seg + 2
            assert _replay(wal) == [["r", i] for i in range(10)]
            assert list(wal.replay(start_segment=first_seg + 1)) == [["r", i] for i in range(5, 10)]


@pytest.mark.asyncio
async def test_segments_roll_over_by_size(tmp_path: Path, loop_guard: list[Any]) -> None:
    """A batch that would take a non-empty segment past segment_bytes goes to a new one."""
    rec_bytes = len(encode_record(["s", 0, "y" * 40]))
    sizes: list[int] = []
    async with asyncio.timeout(TIMEOUT_S):
        async with await Wal.open(
            tmp_path,
            segment_bytes=1024,
            max_batch_records=4,
            on_batch=lambda n, _s: sizes.append(n),
        ) as wal:
            futs = []
            for i in range(200):
                futs.append(wal.append(["s", i, "y" * 40]))
                if i % 10 == 9:
                    await asyncio.sleep(0)
            await asyncio.gather(*futs)
            assert wal.statistics().segments == len(wal.segments) > 200 * rec_bytes // 1024
        assert max(sizes) == 4  # max_batch_records bounds every group commit
        files = _segment_files(tmp_path)
        assert len(files) == len(wal.segments)
        assert all(f.stat().st_size <= 1024 for f in files)
        assert await _reopen_records(tmp_path) == [["s", i, "y" * 40] for i in range(200)]


@pytest.mark.asyncio
async def test_torn_tail_cut_at_every_offset_of_the_last_record(
    tmp_path: Path, loop_guard: list[Any]
) -> None:
    """Whatever prefix of the last record survived a crash, open replays the records
    before it, cuts the rest (kept in quarantine/), and appending works after."""
    records = [["t", i, "z" * 20] for i in range(5)]
    async with asyncio.timeout(TIMEOUT_S * 2):
        ref = tmp_path / "ref"
        async with await Wal.open(ref) as wal:
            seg = wal.current_segment
            for r in records:
                await wal.append_wait(r)
        data = (ref / segment_name(seg)).read_bytes()
        start = len(data) - len(encode_record(records[-1]))
        for cut in range(start, len(data)):
            d = tmp_path / f"cut{cut}"
            d.mkdir()
            (d / segment_name(seg)).write_bytes(data[:cut])
            async with await Wal.open(d) as wal:
                assert _replay(wal) == records[:4]
                assert wal.recovery.truncated_bytes == cut - start
                if cut > start:
                    damage = wal.recovery.damage
                    assert damage is not None
                    assert damage.torn_tail
                    assert damage.offset == start
                    kept = d / QUARANTINE_DIR / damage.quarantined[0]
                    assert kept.read_bytes() == data[start:cut]
                assert (d / segment_name(seg)).stat().st_size == start
                await wal.append_wait(["after", cut])
            assert await _reopen_records(d) == [*records[:4], ["after", cut]]


@pytest.mark.asyncio
async def test_corrupt_byte_mid_last_segment_replays_only_records_before_it(
    tmp_path: Path, loop_guard: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    """A damaged byte in the middle of the last segment: the records before it replay,
    none after it, and the cut bytes are kept for an operator."""
    records = [["c", i, "w" * 30] for i in range(20)]
    async with asyncio.timeout(TIMEOUT_S):
        async with await Wal.open(tmp_path) as wal:
            seg = wal.current_segment
            for r in records:
                wal.append(r)
        path = tmp_path / segment_name(seg)
        blob = bytearray(path.read_bytes())
        rec_len = len(encode_record(records[0]))
        blob[10 * rec_len + 12] ^= 0x40  # inside record 10's payload
        path.write_bytes(blob)
        with caplog.at_level(logging.WARNING, logger="relayd.wal"):
            async with await Wal.open(tmp_path) as wal:
                assert _replay(wal) == records[:10]
                damage = wal.recovery.damage
                assert damage is not None
                assert damage.torn_tail
                assert "CRC mismatch" in damage.reason
                assert damage.bytes_cut == 10 * rec_len
                await wal.append_wait(["new"])
        assert "torn tail" in caplog.text
        assert await _reopen_records(tmp_path) == [*records[:10], ["new"]]
        kept = tmp_path / QUARANTINE_DIR / f"{segment_name(seg)}.from-{10 * rec_len}"
        assert kept.read_bytes() == bytes(blob[10 * rec_len :])


@pytest.mark.asyncio
async def test_corrupt_record_in_older_segment_stops_replay_and_is_reported(
    tmp_path: Path, loop_guard: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    """Damage in a non-last segment: replay stops at it (nothing after, later segments
    included), an ERROR is logged, later segments move to quarantine/, and records
    appended afterwards are replayed on the next open."""
    async with asyncio.timeout(TIMEOUT_S):
        async with await Wal.open(tmp_path) as wal:
            s1 = wal.current_segment
            for i in range(5):
                wal.append(["o", i])
            s2 = wal.rotate()
            for i in range(5, 10):
                wal.append(["o", i])
            await wal.flush()
            s3 = wal.rotate()
            for i in range(10, 15):
                wal.append(["o", i])
        assert (s2, s3) == (s1 + 1, s1 + 2)
        path = tmp_path / segment_name(s2)
        blob = bytearray(path.read_bytes())
        rec_len = len(encode_record(["o", 5]))
        blob[2 * rec_len + 9] ^= 0x01  # record 7, the third of segment s2
        path.write_bytes(blob)
        with caplog.at_level(logging.ERROR, logger="relayd.wal"):
            async with await Wal.open(tmp_path) as wal:
                assert _replay(wal) == [["o", i] for i in range(7)]
                damage = wal.recovery.damage
                assert damage is not None
                assert not damage.torn_tail
                assert damage.segment == s2
                assert damage.offset == 2 * rec_len
                assert damage.later_segments == 1
                assert segment_name(s3) in damage.quarantined
                assert wal.current_segment == s3 + 1
                await wal.append_wait(["o", "after"])
        assert "CORRUPT" in caplog.text
        assert "NOT recovered" in caplog.text
        assert (tmp_path / QUARANTINE_DIR / segment_name(s3)).exists()
        async with await Wal.open(tmp_path) as wal:
            assert wal.recovery.damage is None
            assert _replay(wal) == [*([["o", i] for i in range(7)]), ["o", "after"]]


@pytest.mark.asyncio
async def test_disk_error_fails_pending_and_later_appends(
    tmp_path: Path, loop_guard: list[Any]
) -> None:
    """ENOSPC on fsync: the batch and everything queued behind it fail with WalError
    (errno kept), the WAL turns unhealthy and refuses at once, the failed bytes are
    cut back, and records acknowledged before stay durable."""
    async with asyncio.timeout(TIMEOUT_S):
        wal = await Wal.open(tmp_path)
        await wal.append_wait(["durable", 0])
        await wal.append_wait(["durable", 1])
        gate = Gate(wal)
        gate.fail_with = OSError(errno.ENOSPC, "No space left on device")
        in_flight = wal.append(["lost", 0])
        await gate.wait_entered()
        queued = [wal.append(["lost", i]) for i in range(1, 4)]
        wal.rotate()
        flushing = asyncio.ensure_future(wal.flush())
        await asyncio.sleep(0)
        gate.release.set()
        for fut in [in_flight, *queued]:
            with pytest.raises(WalError) as info:
                await fut
            assert info.value.errno == errno.ENOSPC
        with pytest.raises(WalError):
            await flushing
        assert not wal.healthy
        assert wal.failure is not None
        assert wal.failure.errno == errno.ENOSPC
        with pytest.raises(WalError) as info:
            wal.append(["refused"])
        assert info.value.errno == errno.ENOSPC
        assert not isinstance(info.value, WalFullError)
        with pytest.raises(WalError):
            wal.rotate()
        with pytest.raises(WalError):
            await wal.flush()
        assert wal.statistics().records_durable == 2
        await wal.close()
        async with await Wal.open(tmp_path) as wal:
            assert wal.recovery.damage is None  # the failed batch was cut back
            assert _replay(wal) == [["durable", 0], ["durable", 1]]


@pytest.mark.asyncio
async def test_dropped_futures_of_failed_records_do_not_flood_the_loop(
    tmp_path: Path, loop_guard: list[Any]
) -> None:
    """Fire-and-forget appends that fail produce no 'exception never retrieved'
    reports (the WAL logs the failure once)."""
    async with asyncio.timeout(TIMEOUT_S):
        wal = await Wal.open(tmp_path)
        gate = Gate(wal)
        gate.fail_with = OSError(errno.EIO, "Input/output error")
        for i in range(50):
            wal.append(["dropped", i])
        gate.release.set()
        await wal.close()
        gc.collect()
        await asyncio.sleep(0)
        assert not wal.healthy


RLIMIT_CHILD = r"""
import asyncio, json, os, resource, signal, sys
from relayd.wal import Wal, WalError, segment_name

async def main(d):
    wal = await Wal.open(d)
    for i in range(10):
        await wal.append_wait(["ok", i])
    seg = os.path.join(d, segment_name(wal.current_segment))
    size = os.path.getsize(seg)
    # A real kernel write error: writes past RLIMIT_FSIZE fail with EFBIG.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size + 40, hard))
    futs = [wal.append(["bad", i, "x" * 50]) for i in range(10)]
    results = await asyncio.gather(*futs, return_exceptions=True)
    try:
        wal.append(["later"])
        later = "accepted"
    except WalError as exc:
        later = exc.errno
    healthy = wal.healthy
    await wal.close()
    print(json.dumps({
        "errnos": [getattr(r, "errno", repr(r)) for r in results],
        "healthy": healthy, "later": later,
        "size": os.path.getsize(seg), "durable_size": size,
    }))

asyncio.run(main(sys.argv[1]))
"""


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


@pytest.mark.asyncio
async def test_real_kernel_write_error_fails_the_wal(tmp_path: Path, loop_guard: list[Any]) -> None:
    """A write refused by the kernel (EFBIG from RLIMIT_FSIZE, after a short write)
    fails the batch with that errno, cuts the partial bytes, keeps the durable ones."""
    async with asyncio.timeout(TIMEOUT_S):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", RLIMIT_CHILD, str(tmp_path),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            cwd=REPO, env=_child_env(),
        )  # fmt: skip
        out, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()
        result = json.loads(out)
        assert result["errnos"] == [errno.EFBIG] * 10
        assert result["healthy"] is False
        assert result["later"] == errno.EFBIG
        assert result["size"] == result["durable_size"]  # the short write was cut back
        async with await Wal.open(tmp_path) as wal:
            assert wal.recovery.damage is None
            assert _replay(wal) == [["ok", i] for i in range(10)]


@pytest.mark.asyncio
async def test_full_queue_raises_walfullerror_without_queueing(
    tmp_path: Path, loop_guard: list[Any]
) -> None:
    """At queue_max waiting records append() refuses in-band, and accepts again once
    the writer drained the queue."""
    async with asyncio.timeout(TIMEOUT_S):
        async with await Wal.open(tmp_path, queue_max=100) as wal:
            futs = [wal.append(["q", i]) for i in range(100)]
            with pytest.raises(WalFullError) as info:
                wal.append(["q", "overflow"])
            assert isinstance(info.value, WalError)  # a WalError-only handler still refuses
            assert wal.statistics().queued_records == 100
            assert wal.statistics().records_appended == 100
            await asyncio.gather(*futs)
            await wal.append_wait(["q", 100])
            assert wal.healthy
        assert await _reopen_records(tmp_path) == [["q", i] for i in range(101)]


@pytest.mark.asyncio
async def test_rotate_and_delete_segments_before(tmp_path: Path, loop_guard: list[Any]) -> None:
    """rotate() splits the log at the call; delete_segments_before() removes whole
    older segments, never the one being written."""
    async with asyncio.timeout(TIMEOUT_S):
        async with await Wal.open(tmp_path) as wal:
            s1 = wal.current_segment
            for i in range(3):
                wal.append(["d", i])
            s2 = wal.rotate()
            assert s2 == s1 + 1
            for i in range(3, 6):
                wal.append(["d", i])
            # Before the writer reached the marker, s1 is still being written: kept.
            assert await wal.delete_segments_before(s2) == 0
            await wal.flush()
            assert wal.current_segment == s2
            s3 = wal.rotate()
            for i in range(6, 8):
                wal.append(["d", i])
            await wal.flush()
            assert wal.segments == (s1, s2, s3)
            assert list(iter_records((tmp_path / segment_name(s2)).read_bytes())) == [
                (["d", i], (i - 2) * len(encode_record(["d", 0]))) for i in range(3, 6)
            ]
            assert await wal.delete_segments_before(s1) == 0
            assert await wal.delete_segments_before(s3) == 2
            assert wal.segments == (s3,)
            assert [p.name for p in _segment_files(tmp_path)] == [segment_name(s3)]
            assert await wal.delete_segments_before(10**12) == 0  # never the current one
            assert wal.statistics().segments == 1
            s4 = wal.rotate()
            await wal.flush()
            s5 = wal.rotate()  # s4 is empty: it rolls anyway, or "d8" would land below s5
            wal.append(["d", 8])
            await wal.flush()
            assert (s4, s5, wal.current_segment) == (s3 + 1, s3 + 2, s3 + 2)
        async with await Wal.open(tmp_path) as wal:
            assert list(wal.replay_with_segments()) == [
                (s3, ["d", 6]),
                (s3, ["d", 7]),
                (s5, ["d", 8]),
            ]


@pytest.mark.asyncio
async def test_rotate_splits_exactly_at_the_call(tmp_path: Path, loop_guard: list[Any]) -> None:
    """Records appended after rotate() are never in a segment below its result, even
    with batches and size rolls in flight when it is called."""
    async with asyncio.timeout(TIMEOUT_S):
        async with await Wal.open(tmp_path, segment_bytes=600, max_batch_records=3) as wal:
            boundaries: list[tuple[int, int]] = []  # (first index after, boundary)
            for i in range(400):
                wal.append(["b", i])
                if i % 37 == 0:
                    boundaries.append((i + 1, wal.rotate()))
                if i % 5 == 0:
                    await asyncio.sleep(0)
        async with await Wal.open(tmp_path) as wal:
            where = {r[1]: seq for seq, r in wal.replay_with_segments()}
        assert sorted(where) == list(range(400))
        for first_after, boundary in boundaries:
            assert all(where[i] >= boundary for i in range(first_after, 400))


@pytest.mark.asyncio
async def test_second_open_of_the_same_directory_is_refused(
    tmp_path: Path, loop_guard: list[Any]
) -> None:
    """Two writers on one WAL would interleave records: the directory lock refuses."""
    async with asyncio.timeout(TIMEOUT_S):
        async with await Wal.open(tmp_path):
            with pytest.raises(WalError, match="in use"):
                await Wal.open(tmp_path)
        async with await Wal.open(tmp_path) as wal:  # released by close()
            assert wal.healthy


@pytest.mark.asyncio
async def test_close_flushes_is_idempotent_and_refuses_later_appends(
    tmp_path: Path, loop_guard: list[Any]
) -> None:
    """close() resolves every queued future, can be called twice, and appends after
    it fail with WalError."""
    async with asyncio.timeout(TIMEOUT_S):
        wal = await Wal.open(tmp_path)
        futs = [wal.append(["f", i]) for i in range(1000)]
        await asyncio.gather(wal.close(), wal.close())
        assert all(f.done() and f.exception() is None for f in futs)
        await wal.close()
        assert not wal.healthy
        with pytest.raises(WalError, match="closed"):
            wal.append(["late"])
        assert await _reopen_records(tmp_path) == [["f", i] for i in range(1000)]


@pytest.mark.asyncio
async def test_cancelled_close_keeps_closing_in_the_background(
    tmp_path: Path, loop_guard: list[Any]
) -> None:
    """Cancelling close() re-raises CancelledError; the flush still completes."""
    async with asyncio.timeout(TIMEOUT_S):
        wal = await Wal.open(tmp_path)
        gate = Gate(wal)
        fut = wal.append(["slow"])
        await gate.wait_entered()
        closing = asyncio.ensure_future(wal.close())
        await asyncio.sleep(0.01)
        closing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await closing
        assert not fut.done()
        gate.release.set()
        await wal.close()
        assert fut.result() is None
        assert await _reopen_records(tmp_path) == [["slow"]]


@pytest.mark.asyncio
async def test_cancelled_writer_never_reports_an_unfinished_batch_durable(
    tmp_path: Path, loop_guard: list[Any]
) -> None:
    """If the writer task is cancelled mid-fsync (loop teardown), its batch and the
    queue fail with WalError: nobody is told "durable" without knowing."""
    async with asyncio.timeout(TIMEOUT_S):
        wal = await Wal.open(tmp_path)
        gate = Gate(wal)
        fut = wal.append(["maybe", 0])
        await gate.wait_entered()
        queued = wal.append(["maybe", 1])
        assert wal._writer is not None
        wal._writer.cancel()
        await asyncio.sleep(0)
        for f in (fut, queued):
            with pytest.raises(WalError, match="cancelled"):
                await f
        assert not wal.healthy
        gate.release.set()
        await wal.close()


@pytest.mark.asyncio
async def test_on_batch_errors_reach_the_loop_not_the_writer(tmp_path: Path) -> None:
    """A failing metrics callback is reported to the loop's exception handler and
    does not stop acknowledgements."""
    loop = asyncio.get_running_loop()
    seen: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: seen.append(context))

    def broken(records: int, fsync_s: float) -> None:
        raise RuntimeError("metrics bug")

    try:
        async with asyncio.timeout(TIMEOUT_S):
            async with await Wal.open(tmp_path, on_batch=broken) as wal:
                await wal.append_wait(["x"])
                await asyncio.sleep(0)
                await wal.append_wait(["y"])
                assert wal.healthy
    finally:
        loop.set_exception_handler(previous)
    assert seen
    assert isinstance(seen[0].get("exception"), RuntimeError)


# ============================================================================ kill -9

KILL_CHILD = r"""
import asyncio, os, sys
from relayd.wal import Wal

async def main(d):
    wal = await Wal.open(d, segment_bytes=16384)
    start = sum(1 for _ in wal.replay())
    os.write(1, b"ready %d\n" % start)

    def acked(i):
        def cb(fut):
            if not fut.cancelled() and fut.exception() is None:
                os.write(1, b"%d\n" % i)  # only once the record is durable
        return cb

    i = start
    while True:
        for _ in range(50):
            wal.append(["k", i, "p" * 60]).add_done_callback(acked(i))
            i += 1
        await asyncio.sleep(0)
        while wal.statistics().queued_records > 2000:
            await asyncio.sleep(0.0005)

asyncio.run(main(sys.argv[1]))
"""


@pytest.mark.asyncio
async def test_kill_9_loses_no_acknowledged_record(tmp_path: Path, loop_guard: list[Any]) -> None:
    """THE durability promise: a writer SIGKILLed mid-run, five times over; after
    each restart every record it reported durable is replayed, in order."""
    async with asyncio.timeout(TIMEOUT_S * 2):
        acked_total: set[int] = set()
        replayed_before = 0
        for round_no, target in enumerate((1500, 3000, 700, 4000, 2000)):
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-c", KILL_CHILD, str(tmp_path),
                stdout=asyncio.subprocess.PIPE, cwd=REPO, env=_child_env(),
            )  # fmt: skip
            assert proc.stdout is not None
            ready = (await proc.stdout.readline()).split()
            assert ready[0] == b"ready"
            assert int(ready[1]) == replayed_before, f"round {round_no}"
            acked: list[int] = []
            while len(acked) < target:
                line = await proc.stdout.readline()
                assert line, "child died before being killed"
                acked.append(int(line))
            proc.send_signal(signal.SIGKILL)
            rest = await proc.stdout.read()
            await proc.wait()
            assert proc.returncode == -signal.SIGKILL
            acked.extend(int(x) for x in rest.split())
            acked_total.update(acked)
            records = await _reopen_records(tmp_path)
            indices = [r[1] for r in records]
            assert indices == list(range(len(indices)))  # in order, no gap, no garbage
            assert all(r == ["k", i, "p" * 60] for i, r in enumerate(records))
            missing = acked_total - set(indices)
            assert not missing, f"acknowledged but lost: {sorted(missing)[:10]}"
            replayed_before = len(indices)
