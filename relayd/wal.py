"""The write-ahead log: CRC-framed msgpack records in append-only segment files.

Theory of operation
===================

Promise (architecture.md §2, style guide §3.5): the future returned by
:meth:`Wal.append` resolves successfully only after the record's bytes were
written *and* ``fdatasync`` on its segment returned. The relay answers
``submit_sm_resp`` from that future, so "ack means durable".

On disk
-------
A WAL is one directory::

    wal-0000000000000001.log      segments, append-only, in sequence order
    wal-0000000000000002.log      (the highest one is written to)
    LOCK                          flock()ed by the process that has the WAL open
    quarantine/                   damaged bytes kept for an operator (see Recovery)

Each record is framed as::

    +-----------------+-----------------+---------------------------+
    | length: u32 BE  | crc32: u32 BE   | payload: msgpack(record)  |
    +-----------------+-----------------+---------------------------+

``crc32`` is ``zlib.crc32(payload)``. CRC-32 detects every burst error of at
most 32 bits, so any single damaged byte, in the header or the payload, stops
the scan at that record. The pure half of this module (:func:`encode_record`,
:func:`iter_records`, :func:`scan_records`) does no I/O and is what the
property tests hammer (style guide §8.3: any truncation or corrupted tail
replays every record before the damage and nothing after).

Writing: one writer, group commit
---------------------------------
The file handle has one owner (style guide §2): the writer task, which hands
each batch to a dedicated one-thread executor. :meth:`Wal.append` is a plain
(synchronous) call on the event loop: it encodes the record, puts
``(bytes, future)`` on a bounded queue and returns the future. It never blocks:
when ``queue_max`` records are waiting it raises :class:`WalFullError`, which
the relay answers in-band (``ESME_RMSGQFUL``/``ESME_RTHROTTLED``) — a slow
disk turns into upstream backpressure (§3.5).

The writer loop::

    while open:
        wait until something is queued
        take everything queued (≤ max_batch_records, ≤ MAX_BATCH_BYTES)
        ── one executor hop ──> os.write(joined bytes); fdatasync   (thread)
        resolve the batch's futures                                  (loop)

There is no batching timer: while one batch is being fsynced, new appends
accumulate for the next one, so the fsync itself is the batching window. Under
light load a record waits for one fsync; under heavy load batches grow until the
disk keeps up (measured: one fsync ≈ 120 µs, one thread hop ≈ 75 µs, so one hop
*per batch* is affordable and one per record is not). Nothing touching the file
ever runs on the loop thread (ruff ``ASYNC230``).

Segments: a batch is written whole into one segment. Before writing, if the
current segment is non-empty and the batch would take it past
``segment_bytes``, a new segment is created first; its directory entry is
fsynced *before* any record in it is acknowledged (``fdatasync`` on a file
does not make its name durable). So a segment exceeds ``segment_bytes`` only
when a single batch does.

Failure
-------
Any ``OSError`` from write, fdatasync or segment creation (``ENOSPC``, ``EIO``,
…) moves the WAL to FAILED for good — after a failed fsync the page cache may
have dropped the dirty pages and pretend all is well, so retrying is unsafe
("fsyncgate"). Every future of the failed batch and every queued future fail
with a :class:`WalError` carrying the ``errno``, every later :meth:`Wal.append`
raises one at once (nothing is queued), and :attr:`Wal.healthy` turns false.
The failure is logged once; the failed futures are marked retrieved so that
fire-and-forget appends do not each report "exception never retrieved". The
failed batch is cut off the segment again (``ftruncate`` to the last durable
offset, best effort) so that what replays matches what was acknowledged.
Records made durable before the failure stay durable. Getting out of FAILED
is a restart.

Recovery (:meth:`Wal.open`)
---------------------------
Run in the executor before the writer starts:

1. Take the directory lock (a second process on the same WAL would interleave
   records; refusing is the only safe answer).
2. Scan every segment in order with :func:`scan_records` (CRC *and* msgpack
   decode, so open and replay agree on where the valid prefix ends).
3. At the first damage, everything from the damage on is *not* replayed
   (§8.3). It is not thrown away either: the damaged bytes are copied to
   ``quarantine/wal-<seq>.log.from-<offset>``, every later segment is moved
   into ``quarantine/`` whole, and the damaged segment is truncated to its
   valid prefix. Damage in the last segment is the ordinary torn tail of a
   crash mid-write (logged as a warning); damage in an older segment means
   records that were acknowledged are lost (logged as an error, reported in
   :attr:`Wal.recovery`). Moving the rest aside matters: if it stayed, every
   later restart would stop at the same damage and silently drop everything
   appended since. Each step is restartable if we crash in the middle of it.
4. Start a fresh segment with a sequence number above every one seen, so a
   truncated file is never appended to and sequence numbers only grow.

:meth:`Wal.replay` then iterates over the records of the segments found at
open (up to their recovered sizes), in order.

Checkpointing
-------------
The WAL stays bounded because the relay's store checkpoints its state and then
deletes the segments the checkpoint covers::

    seq = wal.rotate()              # synchronous: segments < seq hold only
                                    # records appended before this call
    blobs = snapshot state          # same loop turn: state after exactly those
    await store.save(seq, blobs)    # recovery replays segments >= seq on top
    await wal.delete_segments_before(seq)

``rotate()`` queues a marker; when the writer reaches it, it closes the current
segment and opens a new one, so records appended after the call never share a
segment with records appended before it. The number it returns is
conservative: the current segment as the loop knows it, plus one. Segments
``>= seq`` may still hold a few records from before the call (when a size
roll was in flight), so applying records must be idempotent
(``relayd/model.py`` says it is); after a crash between commit and delete, the
older segments are still there and ``replay_with_segments()`` lets recovery
skip them. :meth:`Wal.delete_segments_before` never deletes a segment the
writer may still be writing, whatever number it is given.

Threads and ownership
---------------------
Loop side: the queue, the futures, the counters. Executor side (one thread,
one job at a time): the segment fd, its size and sequence number. They meet
only through the arguments and results of the executor job. The class is not
thread-safe: call it from the loop that opened it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import fcntl
import logging
import os
import re
import struct
import time
import zlib
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future as ConcurrentFuture
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import msgpack

from protocol.errors import RelayError

__all__ = [
    "DEFAULT_SEGMENT_BYTES",
    "MAX_BATCH_BYTES",
    "MAX_RECORD_BYTES",
    "Damage",
    "RecoveryReport",
    "Scan",
    "Wal",
    "WalError",
    "WalFullError",
    "WalStatistics",
    "encode_record",
    "iter_records",
    "scan_records",
    "segment_name",
]

log = logging.getLogger("relayd.wal")

_HEADER: Final = struct.Struct(">II")
# One shared Packer: msgpack.packb builds a Packer per call (~1 µs). pack() runs
# in C holding the GIL (no default= hook), so sharing it across threads is safe.
_packer: Final = msgpack.Packer(use_bin_type=True)
_pack: Final = _packer.pack
HEADER_BYTES: Final = _HEADER.size

MAX_RECORD_BYTES: Final = 1 << 20
"""Largest payload accepted (bytes). A relay record (one message with its body,
or a receipt) is well under 2 KiB; the bound lets the scanner reject an absurd
length field at once. Lowering it later would make old logs unreadable."""

DEFAULT_SEGMENT_BYTES: Final = 64 << 20
"""Default segment size (bytes); matches ``[wal] segment_bytes``."""

MAX_BATCH_BYTES: Final = 8 << 20
"""Most bytes per group commit (one write + fdatasync), beside
``max_batch_records``; at least one record is always taken."""

_SEGMENT_RE: Final = re.compile(r"^wal-(\d{16})\.log$")
QUARANTINE_DIR: Final = "quarantine"
LOCK_FILE: Final = "LOCK"

# Queue marker for rotate(). Encoded records are never empty (≥ 9 bytes), so an
# empty bytes object cannot be mistaken for one.
_ROTATE: Final = b""

# fdatasync flushes the data and the metadata needed to read it back (the size),
# which is all an append needs. Platforms without it fall back to fsync.
_fdatasync: Callable[[int], None] = getattr(os, "fdatasync", os.fsync)

Buffer = bytes | bytearray | memoryview
OnBatch = Callable[[int, float], object]


def segment_name(seq: int) -> str:
    """The file name of segment ``seq``: ``wal-{seq:016d}.log``."""
    return f"wal-{seq:016d}.log"


# ============================================================================ errors


class WalError(RelayError):
    """The WAL cannot make records durable (disk error, closed, or corrupt).

    Attributes:
        errno: the ``errno`` of the underlying ``OSError`` (``ENOSPC``, ``EIO``, …),
            or ``None`` when there was none (closed, writer cancelled).
    """

    def __init__(self, message: str, *, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno


class WalFullError(WalError):
    """``queue_max`` records are already waiting for the writer.

    Not a disk problem: answer in-band (``ESME_RMSGQFUL``/``ESME_RTHROTTLED``) and
    let the client retry. A subclass of :class:`WalError` so that a handler
    catching only ``WalError`` still refuses the message; catch this one first
    to answer with the right status.
    """


# ============================================================================ pure framing


def encode_record(record: object) -> bytes:
    """Frame one record: length, CRC-32 and msgpack payload.

    Args:
        record: any msgpack-able object (lists, dicts with scalar keys, str,
            bytes, int, float, bool, None). Tuples come back as lists.

    Returns:
        The framed bytes, ready to be appended to a segment.

    Raises:
        TypeError: the object is not msgpack-able (a caller bug).
        ValueError: the payload is larger than :data:`MAX_RECORD_BYTES`.
    """
    try:
        payload: bytes = _pack(record)
    except Exception:
        # A failed pack leaves the shared Packer's buffer dirty: reset, re-raise.
        _packer.reset()
        raise
    if len(payload) > MAX_RECORD_BYTES:
        raise ValueError(f"WAL record of {len(payload)} bytes exceeds {MAX_RECORD_BYTES}")
    return _HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def _frames(data: Buffer) -> Generator[tuple[Any, int], None, str | None]:
    """Yield ``(record, end_offset)``; return why the scan stopped early, or None."""
    view = memoryview(data)
    size = len(view)
    unpack_header = _HEADER.unpack_from
    unpackb = msgpack.unpackb
    crc32 = zlib.crc32
    offset = 0
    while offset < size:
        if size - offset < HEADER_BYTES:
            return f"short header ({size - offset} bytes) at offset {offset}"
        length, crc = unpack_header(view, offset)
        if length == 0:
            # A zero-filled region (a crash after the size grew but before the
            # data landed) looks like length 0 with crc32(b"") == 0.
            return f"zero-length record at offset {offset}"
        if length > MAX_RECORD_BYTES:
            return f"length {length} beyond MAX_RECORD_BYTES at offset {offset}"
        start = offset + HEADER_BYTES
        end = start + length
        if end > size:
            return f"record at offset {offset} needs {length} bytes, {size - start} present"
        payload = view[start:end]
        if crc32(payload) != crc:
            return f"CRC mismatch at offset {offset}"
        try:
            # strict_map_key=False: encode_record accepts int keys, so decoding
            # must too, or a valid record would read as damage.
            record = unpackb(payload, raw=False, strict_map_key=False)
        except (ValueError, TypeError, msgpack.UnpackException) as exc:
            return f"undecodable payload at offset {offset}: {exc}"
        yield record, end
        offset = end
    return None


def iter_records(data: Buffer) -> Iterator[tuple[Any, int]]:
    """Decode the records of a segment's bytes, stopping at the first damage.

    The scan stops cleanly — no exception — at a short header, a zero or absurd
    length, a length running past the data, a CRC mismatch or an undecodable
    payload. The ``end_offset`` of the last record yielded is where the valid
    prefix ends (0 if nothing was yielded); :func:`scan_records` also says why
    it stopped.

    Args:
        data: the segment's bytes (or any prefix of them).

    Yields:
        ``(record, end_offset)``: the decoded record and the offset just past it.
    """
    return _frames(data)


@dataclass(frozen=True, slots=True)
class Scan:
    """What :func:`scan_records` found.

    Attributes:
        records: records in the valid prefix.
        valid_bytes: length of the valid prefix.
        damage: why the scan stopped before the end, or ``None`` if all was valid.
    """

    records: int
    valid_bytes: int
    damage: str | None


def scan_records(data: Buffer) -> Scan:
    """Validate ``data`` like :func:`iter_records` and summarise the result."""
    frames = _frames(data)
    count = 0
    end = 0
    while True:
        try:
            _, end = next(frames)
        except StopIteration as stop:
            return Scan(count, end, stop.value)
        count += 1


# ============================================================================ reports


@dataclass(frozen=True, slots=True)
class Damage:
    """The first damaged record found at open, and what was done about it.

    Attributes:
        segment: sequence number of the segment holding the damage.
        offset: where its valid prefix ends; it was truncated there.
        reason: what was wrong (from the scanner).
        bytes_cut: bytes removed from that segment (copied to ``quarantine/``).
        quarantined: file names in ``quarantine/``: the copy of the cut bytes and
            every later segment moved there unreplayed.
        later_segments: how many later segments were moved aside; 0 for a torn
            tail of the last segment.
    """

    segment: int
    offset: int
    reason: str
    bytes_cut: int
    quarantined: tuple[str, ...]
    later_segments: int

    @property
    def torn_tail(self) -> bool:
        """True when the damage was in the last segment (the usual crash artefact)."""
        return self.later_segments == 0


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    """What :meth:`Wal.open` found and did.

    Attributes:
        segments: segments whose records :meth:`Wal.replay` will return.
        records: records in them.
        bytes: bytes in them.
        damage: the first damage found, or ``None``.
        current_segment: the fresh segment new records go to.
        duration_s: time the scan and repair took (seconds).
    """

    segments: int
    records: int
    bytes: int
    damage: Damage | None
    current_segment: int
    duration_s: float

    @property
    def truncated_bytes(self) -> int:
        """Bytes cut from the damaged segment (0 when there was no damage)."""
        return self.damage.bytes_cut if self.damage is not None else 0


@dataclass(frozen=True, slots=True)
class WalStatistics:
    """A snapshot of the WAL's counters (style guide §12: metrics read these).

    Attributes:
        records_appended: records accepted by :meth:`Wal.append`.
        records_durable: records whose future resolved successfully.
        batches: group commits completed.
        bytes_written: bytes written by completed group commits.
        last_batch_records: records in the latest completed batch.
        fsync_count: ``fdatasync`` calls on segments by completed batches.
        fsync_seconds_total: time spent in them (seconds).
        queued_records: records waiting for the writer now.
        current_segment: sequence number of the segment being written.
        segments: segment files on disk.
        healthy: false once the WAL has FAILED or is closed.
    """

    records_appended: int
    records_durable: int
    batches: int
    bytes_written: int
    last_batch_records: int
    fsync_count: int
    fsync_seconds_total: float
    queued_records: int
    current_segment: int
    segments: int
    healthy: bool


# ============================================================================ file helpers (thread)


def _write_all(fd: int, data: Buffer) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        if n <= 0:  # a regular file returns 0 only for an empty write
            raise OSError(errno.EIO, "os.write wrote nothing")
        view = view[n:]


def _fsync_dir(dir_fd: int, fsync: bool) -> None:
    if fsync:
        os.fsync(dir_fd)


def _create_segment(directory: Path, dir_fd: int, seq: int, fsync: bool) -> int:
    """Create segment ``seq`` and make its directory entry durable; return its fd."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC
    fd = os.open(directory / segment_name(seq), flags, 0o644)
    try:
        _fsync_dir(dir_fd, fsync)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _list_segments(directory: Path) -> list[int]:
    if not directory.is_dir():
        return []
    seqs = []
    for name in os.listdir(directory):
        m = _SEGMENT_RE.match(name)
        if m is not None:
            seqs.append(int(m.group(1)))
    return sorted(seqs)


def _write_file(path: Path, data: Buffer, fsync: bool) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        _write_all(fd, data)
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)


def _truncate_file(path: Path, size: int, fsync: bool) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.ftruncate(fd, size)
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(slots=True)
class _Opened:
    """Everything recovery hands to the Wal (produced in the executor thread)."""

    lock_fd: int
    dir_fd: int
    fd: int
    seq: int
    replayable: tuple[tuple[int, int], ...]  # (seq, valid size) found at open
    report: RecoveryReport

    def close_all(self) -> None:
        for fd in (self.fd, self.dir_fd, self.lock_fd):
            try:
                os.close(fd)
            except OSError:  # already closed; nothing else to do on a close path
                pass


def _recover(directory: Path, fsync: bool) -> _Opened:
    """Lock, scan, repair and start a fresh segment (see "Recovery" above)."""
    t0 = time.perf_counter()
    directory.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as undo:
        lock_fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        undo.callback(os.close, lock_fd)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise WalError(
                f"WAL directory {directory} is in use by another WAL (lock held)",
                errno=errno.EWOULDBLOCK,
            ) from None
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        undo.callback(os.close, dir_fd)

        qdir = directory / QUARANTINE_DIR
        seqs = _list_segments(directory)
        highest = max([*seqs, *_list_segments(qdir)], default=0)
        replayable: list[tuple[int, int]] = []
        records = 0
        damage: Damage | None = None
        for i, seq in enumerate(seqs):
            path = directory / segment_name(seq)
            data = path.read_bytes()
            scan = scan_records(data)
            records += scan.records
            replayable.append((seq, scan.valid_bytes))
            if scan.damage is None:
                continue
            later = seqs[i + 1 :]
            tail_name = f"{segment_name(seq)}.from-{scan.valid_bytes}"
            cut = len(data) - scan.valid_bytes
            # Say it before repairing, so a crash during the repair cannot hide it.
            if later:
                log.error(
                    "WAL %s CORRUPT: segment %d at offset %d (%s). Replay stops there: "
                    "%d bytes of it and %d later segment(s) are moved to %s/ unreplayed; "
                    "acknowledged records in them are NOT recovered. Files: %s",
                    directory, seq, scan.valid_bytes, scan.damage, cut, len(later),
                    QUARANTINE_DIR, ", ".join([tail_name, *map(segment_name, later)]),
                )  # fmt: skip
            else:
                log.warning(
                    "WAL %s: cutting a torn tail of %d bytes from segment %d at offset %d "
                    "(%s); the bytes are kept in %s/%s",
                    directory, cut, seq, scan.valid_bytes, scan.damage, QUARANTINE_DIR, tail_name,
                )  # fmt: skip
            # Keep the evidence first, then move later segments aside, then cut:
            # a crash at any point leaves a state this same procedure finishes.
            qdir.mkdir(exist_ok=True)
            _write_file(qdir / tail_name, memoryview(data)[scan.valid_bytes :], fsync)
            for s in later:
                os.replace(directory / segment_name(s), qdir / segment_name(s))
            if fsync:
                qfd = os.open(qdir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                try:
                    os.fsync(qfd)
                finally:
                    os.close(qfd)
                os.fsync(dir_fd)
            _truncate_file(path, scan.valid_bytes, fsync)
            damage = Damage(
                segment=seq,
                offset=scan.valid_bytes,
                reason=scan.damage,
                bytes_cut=cut,
                quarantined=(tail_name, *(segment_name(s) for s in later)),
                later_segments=len(later),
            )
            break

        seq = highest + 1
        fd = _create_segment(directory, dir_fd, seq, fsync)
        undo.callback(os.close, fd)
        report = RecoveryReport(
            segments=sum(1 for _, size in replayable if size),
            records=records,
            bytes=sum(size for _, size in replayable),
            damage=damage,
            current_segment=seq,
            duration_s=time.perf_counter() - t0,
        )
        opened = _Opened(lock_fd, dir_fd, fd, seq, tuple(replayable), report)
        undo.pop_all()
    return opened


def _release_abandoned(job: ConcurrentFuture[_Opened]) -> None:
    """Close what a recovery finished after its open() was cancelled."""
    if not job.cancelled() and job.exception() is None:
        job.result().close_all()


# ============================================================================ the WAL


class Wal:
    """An open write-ahead log with its single writer task. Create with :meth:`open`.

    Attributes:
        directory: the WAL directory.
        recovery: what :meth:`open` found and repaired.
    """

    def __init__(
        self,
        directory: Path,
        opened: _Opened,
        executor: ThreadPoolExecutor,
        *,
        segment_bytes: int,
        max_batch_records: int,
        queue_max: int,
        fsync: bool,
        on_batch: OnBatch | None,
    ) -> None:
        """Private: use :meth:`open`."""
        self.directory = directory
        self.recovery = opened.report
        self._loop = asyncio.get_running_loop()
        self._executor = executor
        self._segment_bytes = segment_bytes
        self._max_batch = max_batch_records
        self._queue_max = queue_max
        self._fsync = fsync
        self._on_batch = on_batch
        self._replayable = opened.replayable

        # Executor-thread side: touched only inside executor jobs.
        self._lock_fd = opened.lock_fd
        self._dir_fd = opened.dir_fd
        self._fd = opened.fd
        self._thread_seq = opened.seq
        self._seg_size = 0

        # Loop side.
        self._current_seq = opened.seq
        self._segments = sorted({*(s for s, _ in opened.replayable), opened.seq})
        self._q_data: list[bytes] = []
        # Per queued record, what to tell when it is durable (or failed): a
        # future (append), a (callback, arg) pair (append_then) or None
        # (append_nowait).
        self._q_futs: list[Any] = []
        self._q_bytes = 0
        self._rotations = 0
        self._enqueued = 0  # queue entries ever (records and rotation markers)
        self._completed = 0  # of those, written (or rotated) successfully
        self._flush_waiters: collections.deque[tuple[int, asyncio.Future[None]]] = (
            collections.deque()
        )
        self._waiter: asyncio.Future[None] | None = None
        self._failure: WalError | None = None
        self._closing = False
        self._writer: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None

        self._records_appended = 0
        self._records_durable = 0
        self._batches = 0
        self._bytes_written = 0
        self._last_batch_records = 0
        self._fsync_count = 0
        self._fsync_seconds = 0.0

    # ------------------------------------------------------------------ open / close

    @classmethod
    async def open(
        cls,
        directory: str | os.PathLike[str],
        *,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        max_batch_records: int = 8192,
        queue_max: int = 200_000,
        fsync: bool = True,
        on_batch: OnBatch | None = None,
    ) -> Wal:
        """Recover the WAL in ``directory`` (created if missing) and start its writer.

        Recovery (module docstring) runs in the WAL's executor thread: lock,
        scan, cut a torn tail, quarantine damage, start a fresh segment. Call
        :meth:`replay` next, before serving.

        Args:
            directory: the WAL directory.
            segment_bytes: start a new segment rather than take one past this size.
            max_batch_records: most records per group commit.
            queue_max: most records waiting for the writer; beyond it
                :meth:`append` raises :class:`WalFullError`.
            fsync: ``False`` skips every fsync — acknowledged records can then be
                lost on power loss. Benchmarks of other parts only.
            on_batch: called on the loop after each group commit with
                ``(records, fsync_seconds)`` (metrics histograms). An exception
                in it goes to the loop's exception handler, not to the writer.

        Returns:
            The open WAL; :attr:`recovery` says what was found.

        Raises:
            WalError: the directory is locked by another open WAL.
            OSError: the directory cannot be created, read or repaired.
            ValueError: a parameter is out of range.
        """
        if segment_bytes < 1 or max_batch_records < 1 or queue_max < 1:
            raise ValueError("segment_bytes, max_batch_records and queue_max must be ≥ 1")
        path = Path(directory)
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="relayd-wal")
        job = executor.submit(_recover, path, fsync)
        try:
            opened = await asyncio.wrap_future(job)
        except asyncio.CancelledError:
            # The thread cannot be stopped; release whatever it ends up opening.
            job.add_done_callback(_release_abandoned)
            executor.shutdown(wait=False)
            raise
        except BaseException:
            executor.shutdown(wait=False)
            raise
        wal = cls(
            path,
            opened,
            executor,
            segment_bytes=segment_bytes,
            max_batch_records=max_batch_records,
            queue_max=queue_max,
            fsync=fsync,
            on_batch=on_batch,
        )
        wal._log_recovery()
        wal._writer = asyncio.get_running_loop().create_task(
            wal._run(), name=f"relayd-wal-writer {path}"
        )
        return wal

    def _log_recovery(self) -> None:
        r = self.recovery
        log.info(
            "WAL %s recovered: %d records in %d segments (%d bytes) in %.3f s; writing segment %d",
            self.directory, r.records, r.segments, r.bytes, r.duration_s, r.current_segment,
        )  # fmt: skip

    async def close(self) -> None:
        """Flush everything queued, then close the files and the executor.

        Every record appended before ``close()`` is written and its future
        resolved (or failed, if the disk fails meanwhile). Idempotent; safe to
        call concurrently. Cancelling ``close()`` does not stop the closing,
        which goes on in the background; calling it again waits for it.

        Raises:
            BaseException: whatever unexpected exception killed the writer task
                (a bug), after the files are closed. Disk errors are not raised
                here: they were delivered through the futures and :attr:`healthy`.
        """
        if self._closer is None:
            self._closing = True
            self._wake()
            self._closer = self._loop.create_task(self._close(), name="relayd-wal-close")
        await asyncio.shield(self._closer)

    async def _close(self) -> None:
        writer = self._writer
        crash: BaseException | None = None
        if writer is not None:
            await asyncio.wait([writer])  # never raises: inspect the outcome below
            if not writer.cancelled():
                crash = writer.exception()
        await self._loop.run_in_executor(self._executor, self._close_files)
        self._executor.shutdown(wait=False)
        if crash is not None:
            raise crash

    def _close_files(self) -> None:
        for fd in (self._fd, self._dir_fd, self._lock_fd):
            try:
                os.close(fd)
            except OSError:  # EIO on close: everything acked was fsynced already
                log.warning("WAL %s: error closing fd %d", self.directory, fd, exc_info=True)

    async def __aenter__(self) -> Wal:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # ------------------------------------------------------------------ properties

    @property
    def healthy(self) -> bool:
        """False once the WAL has FAILED (disk error) or is closing."""
        return self._failure is None and not self._closing

    @property
    def failure(self) -> WalError | None:
        """The error that moved the WAL to FAILED, if any."""
        return self._failure

    @property
    def current_segment(self) -> int:
        """Sequence number of the segment new records go to."""
        return self._current_seq

    @property
    def segments(self) -> tuple[int, ...]:
        """Sequence numbers of the segment files on disk, oldest first."""
        return tuple(self._segments)

    def statistics(self) -> WalStatistics:
        """A snapshot of the counters (cheap; no I/O)."""
        return WalStatistics(
            records_appended=self._records_appended,
            records_durable=self._records_durable,
            batches=self._batches,
            bytes_written=self._bytes_written,
            last_batch_records=self._last_batch_records,
            fsync_count=self._fsync_count,
            fsync_seconds_total=self._fsync_seconds,
            queued_records=len(self._q_data) - self._rotations,
            current_segment=self._current_seq,
            segments=len(self._segments),
            healthy=self.healthy,
        )

    # ------------------------------------------------------------------ replay

    def replay(self, start_segment: int = 0) -> Iterator[Any]:
        """Iterate over every record recovered at open, oldest first.

        Same as :meth:`replay_with_segments` without the segment numbers.
        """
        for _, record in self.replay_with_segments(start_segment):
            yield record

    def replay_with_segments(self, start_segment: int = 0) -> Iterator[tuple[int, Any]]:
        """Iterate over ``(segment, record)`` for every record recovered at open.

        Covers the segments present at :meth:`open` (up to their repaired
        sizes), never records appended since, so it is safe to call after
        appending has started. It reads the files synchronously on the calling
        thread: call it during start-up, before serving (that is when recovery
        happens anyway).

        Args:
            start_segment: skip segments numbered below this (e.g. those a
                checkpoint covers but which were not deleted before a crash).

        Yields:
            ``(segment number, record)``, the record as decoded by msgpack
            (arrays as lists), oldest first.

        Raises:
            WalError: a recovered segment was deleted or changed since open.
        """
        for seq, size in self._replayable:
            if seq < start_segment or size == 0:
                continue
            path = self.directory / segment_name(seq)
            try:
                with path.open("rb") as f:
                    data = f.read(size)
            except FileNotFoundError:
                raise WalError(f"WAL segment {path} was deleted during replay") from None
            valid = 0
            for record, end in iter_records(data):
                yield seq, record
                valid = end
            if len(data) != size or valid != size:
                raise WalError(f"WAL segment {path} changed since open (expected {size} bytes)")

    # ------------------------------------------------------------------ appending

    def append(self, record: object) -> asyncio.Future[None]:
        """Queue ``record``; the returned future resolves once it is durable.

        Never blocks and never waits. The future resolves with ``None`` only
        after the record was written and ``fdatasync`` returned; it fails with
        :class:`WalError` if the disk fails first. Cancelling the future does not
        withdraw the record (it may still be written).

        Args:
            record: any msgpack-able object (see :func:`encode_record`).

        Returns:
            A future on this WAL's loop.

        Raises:
            WalFullError: ``queue_max`` records are waiting; nothing was queued.
            WalError: the WAL has FAILED or is closing; nothing was queued.
            TypeError, ValueError: the record cannot be encoded (a caller bug).
        """
        fut: asyncio.Future[None] = self._loop.create_future()
        self._queue(record, fut)
        return fut

    def append_then(
        self, record: object, done: Callable[[Any, WalError | None], None], arg: Any
    ) -> None:
        """:meth:`append` for the hot path: ``done(arg, None)`` is called once the
        record is durable, ``done(arg, error)`` if the disk fails first — directly
        by the writer, in append order, with no future and no loop callback per
        record (and, with a bound method for ``done``, no closure per record).

        ``done`` must not raise (an exception is reported to the loop's exception
        handler and the writer goes on). Raises as :meth:`append`; then ``done``
        is never called.
        """
        self._queue(record, (done, arg))

    def append_nowait(self, record: object) -> None:
        """:meth:`append` for records nobody waits for (they are written in order
        with the others; a crash before their group commit loses them). Raises as
        :meth:`append`."""
        self._queue(record, None)

    def _queue(self, record: object, completion: Any) -> None:
        if self._failure is not None or self._closing:
            raise self._refusal()
        if len(self._q_data) >= self._queue_max:
            raise WalFullError(f"WAL queue full ({self._queue_max} records waiting)")
        frame = encode_record(record)
        self._q_data.append(frame)
        self._q_futs.append(completion)
        self._q_bytes += len(frame)
        self._records_appended += 1
        self._enqueued += 1
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def append_wait(self, record: object) -> None:
        """:meth:`append`, then wait until the record is durable.

        Raises:
            WalFullError, WalError, TypeError, ValueError: as :meth:`append`, or
                :class:`WalError` when the write fails.
        """
        await self.append(record)

    def _refusal(self) -> WalError:
        # A fresh exception each time: re-raising one instance grows its traceback.
        if self._failure is not None:
            return WalError(f"WAL has failed: {self._failure}", errno=self._failure.errno)
        return WalError("WAL is closed")

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # ------------------------------------------------------------------ checkpointing

    def rotate(self) -> int:
        """Make records appended from now on go to a new segment (for checkpoints).

        Synchronous, so that a snapshot taken in the same loop turn reflects
        exactly the records appended before the call. The writer closes the
        current segment and opens the next one when it reaches this point of
        the queue, even if the current segment is empty.

        Returns:
            A segment number ``seq`` such that every segment numbered below it
            holds only records appended before this call: the checkpoint's
            "replay from here" and the argument for :meth:`delete_segments_before`.

        Raises:
            WalError: the WAL has FAILED or is closing.
        """
        if self._failure is not None or self._closing:
            raise self._refusal()
        boundary = self._current_seq + 1
        # A control entry, not data: it is not refused when the queue is full.
        self._q_data.append(_ROTATE)
        self._q_futs.append(self._loop.create_future())
        self._rotations += 1
        self._enqueued += 1
        self._wake()
        return boundary

    async def flush(self) -> None:
        """Wait until every record appended (and rotation asked) so far is done.

        Raises:
            WalError: the WAL has FAILED, before or while waiting.
        """
        if self._failure is not None:
            raise self._refusal()
        target = self._enqueued
        if self._completed >= target:
            return
        fut: asyncio.Future[None] = self._loop.create_future()
        self._flush_waiters.append((target, fut))
        await fut

    async def delete_segments_before(self, seq: int) -> int:
        """Delete whole segments numbered strictly below ``seq``.

        Never deletes the segment being written, whatever ``seq`` says: if the
        writer has not reached a :meth:`rotate` marker yet, the segment before
        it is kept and goes at a later call. Unlinks run in a worker thread
        (not the writer's, so appends do not wait behind them), hence
        ``async``. Records in deleted segments are gone: call this only for
        segments a durable checkpoint covers (module docstring).

        Args:
            seq: typically the value :meth:`rotate` returned before the checkpoint.

        Returns:
            How many segment files were deleted.

        Raises:
            OSError: a segment could not be deleted (the others still are).
        """
        limit = min(seq, self._current_seq)
        victims = [s for s in self._segments if s < limit]
        if not victims:
            return 0
        deleted = await asyncio.to_thread(self._unlink_segments, victims)
        gone = set(deleted)
        self._segments = [s for s in self._segments if s not in gone]
        return len(deleted)

    def _unlink_segments(self, seqs: list[int]) -> list[int]:
        deleted: list[int] = []
        error: OSError | None = None
        for s in seqs:
            try:
                os.unlink(self.directory / segment_name(s))
            except FileNotFoundError:  # already gone (a concurrent call): counts as done
                deleted.append(s)
            except OSError as exc:
                error = error or exc
            else:
                deleted.append(s)
        if self._fsync and deleted:
            # Not needed for correctness (a resurrected segment replays idempotently),
            # but keeps the directory as the store believes it is.
            dir_fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        if error is not None:
            raise error
        log.info(
            "WAL %s: deleted %d segment(s) below %d", self.directory, len(deleted), seqs[-1] + 1
        )
        return deleted

    # ------------------------------------------------------------------ the writer

    async def _run(self) -> None:
        """The writer task: batches, one executor hop each, futures resolved after."""
        loop = self._loop
        batch: list[Any] = []
        rotate_fut: asyncio.Future[Any] | None = None
        # The executor job of the batch in flight (``batch``/``rotate_fut`` are
        # its waiters), or None.
        job: asyncio.Future[tuple[float, int, int, list[int]]] | None = None
        try:
            while True:
                if job is None:
                    if not self._q_data:
                        if self._closing:
                            return
                        self._waiter = loop.create_future()
                        try:
                            await self._waiter
                        finally:
                            self._waiter = None
                        continue
                    chunks, batch, rotate_fut = self._take_batch()
                    job = loop.run_in_executor(
                        self._executor, self._flush, chunks, rotate_fut is not None
                    )
                try:
                    fsync_s, nbytes, seq, created = await job
                except OSError as exc:
                    self._fail(exc, batch, rotate_fut)
                    return
                # Durable: fdatasync returned for every record of the batch.
                done_batch, done_rotate = batch, rotate_fut
                job, batch, rotate_fut = None, [], None
                if self._q_data:
                    # Start the next group commit before telling this one's
                    # waiters: the disk works while the loop runs their
                    # callbacks (one executor thread keeps batches in order).
                    chunks, batch, rotate_fut = self._take_batch()
                    job = loop.run_in_executor(
                        self._executor, self._flush, chunks, rotate_fut is not None
                    )
                self._complete(done_batch, None)
                if done_rotate is not None and not done_rotate.done():
                    done_rotate.set_result(seq)
                self._completed += len(done_batch) + (done_rotate is not None)
                waiters = self._flush_waiters
                while waiters and waiters[0][0] <= self._completed:
                    done = waiters.popleft()[1]
                    if not done.done():
                        done.set_result(None)
                self._account(len(done_batch), nbytes, fsync_s, seq, created)
        except asyncio.CancelledError:
            # A batch may be in the executor: its outcome is unknown, so it
            # must not be reported durable. Fail it and everything queued.
            self._fail(None, batch, rotate_fut, reason="WAL writer cancelled")
            raise
        except BaseException as exc:
            self._fail(None, batch, rotate_fut, reason=f"WAL writer crashed: {exc!r}")
            raise

    def _complete(self, batch: list[Any], error: WalError | None) -> None:
        """Tell every waiter of ``batch`` (futures, callbacks; None entries have
        none) that its record is durable (``error`` None) or failed."""
        for c in batch:
            if c is None:
                continue
            if type(c) is tuple:
                try:
                    c[0](c[1], error)
                except Exception as exc:  # a caller bug must not stop the writer
                    self._loop.call_exception_handler(
                        {"message": "WAL completion callback failed", "exception": exc}
                    )
                continue
            if not c.done():  # a future; the caller may have cancelled its wait
                if error is None:
                    c.set_result(None)
                else:
                    err = WalError(str(error), errno=error.errno)
                    err.__cause__ = error.__cause__
                    c.set_exception(err)
                    # Marked retrieved: the failure was logged once; callers
                    # that dropped their future must not each report it.
                    c.exception()

    def _take_batch(
        self,
    ) -> tuple[list[bytes], list[Any], asyncio.Future[Any] | None]:
        """Pop the next batch off the queue: ≤ max records, ≤ MAX_BATCH_BYTES,
        ending at the first rotation marker (which is returned separately)."""
        data, futs = self._q_data, self._q_futs
        n = len(data)
        limit = min(n, self._max_batch)
        marker = -1
        if self._rotations:
            try:
                marker = data.index(_ROTATE, 0, limit)
            except ValueError:
                pass
            else:
                limit = marker
        if self._q_bytes > MAX_BATCH_BYTES:
            total = 0
            for i in range(limit):
                total += len(data[i])
                if total > MAX_BATCH_BYTES and i > 0:
                    limit, marker = i, -1
                    break
        take = limit + 1 if marker == limit else limit
        if take == n:
            # Common case under load: hand over the whole queue without copying.
            chunks, batch = data, futs
            self._q_data, self._q_futs = [], []
        else:
            chunks, batch = data[:take], futs[:take]
            del data[:take], futs[:take]
        rotate_fut = None
        if marker == limit:
            chunks.pop()
            rotate_fut = batch.pop()
            self._rotations -= 1
        self._q_bytes -= sum(map(len, chunks))
        return chunks, batch, rotate_fut

    def _flush(self, chunks: list[bytes], rotate: bool) -> tuple[float, int, int, list[int]]:
        """Executor thread: write a batch and fdatasync it; roll segments as needed.

        Returns ``(fsync_seconds, bytes, current_seq, created_seqs)``.
        """
        created: list[int] = []
        fsync_s = 0.0
        nbytes = 0
        if chunks:
            data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            nbytes = len(data)
            if self._seg_size and self._seg_size + nbytes > self._segment_bytes:
                created.append(self._roll())
            try:
                fsync_s = self._write_and_sync(self._fd, data)
            except OSError:
                self._cut_back()
                raise
            self._seg_size += nbytes
        if rotate:
            created.append(self._roll())
        return fsync_s, nbytes, self._thread_seq, created

    def _write_and_sync(self, fd: int, data: bytes) -> float:
        """Executor thread: append ``data`` and fdatasync; return the fsync time.

        The seam tests replace to delay or fail the disk.
        """
        _write_all(fd, data)
        if not self._fsync:
            return 0.0
        t0 = time.perf_counter()
        _fdatasync(fd)
        return time.perf_counter() - t0

    def _roll(self) -> int:
        """Executor thread: create the next segment (durable name) and switch to it."""
        seq = self._thread_seq + 1
        fd = _create_segment(self.directory, self._dir_fd, seq, self._fsync)
        old, self._fd = self._fd, fd
        self._thread_seq, self._seg_size = seq, 0
        try:
            os.close(old)
        except OSError:  # its records were fdatasynced already; nothing is at stake
            log.warning("WAL %s: error closing a full segment", self.directory, exc_info=True)
        return seq

    def _cut_back(self) -> None:
        """Executor thread, after a failed write/fsync: drop the unacknowledged bytes.

        Best effort. If it fails too, the next open cuts a torn tail by CRC, but
        complete records of the failed batch may then replay although they were
        refused: the relay sees them as accepted (at-least-once).
        """
        try:
            os.ftruncate(self._fd, self._seg_size)
            if self._fsync:
                _fdatasync(self._fd)
        except OSError:
            log.warning(
                "WAL %s: could not cut the failed batch back to offset %d",
                self.directory,
                self._seg_size,
                exc_info=True,
            )

    def _account(
        self, records: int, nbytes: int, fsync_s: float, seq: int, created: list[int]
    ) -> None:
        self._records_durable += records
        self._batches += 1
        self._bytes_written += nbytes
        self._last_batch_records = records
        if nbytes and self._fsync:
            self._fsync_count += 1
            self._fsync_seconds += fsync_s
        self._current_seq = seq
        if created:
            self._segments.extend(created)
        if self._on_batch is not None and records:
            # call_soon: an exception in a metrics callback reaches the loop's
            # exception handler instead of stopping the writer.
            self._loop.call_soon(self._on_batch, records, fsync_s)

    def _fail(
        self,
        exc: OSError | None,
        batch: list[Any],
        rotate_fut: asyncio.Future[Any] | None,
        *,
        reason: str = "",
    ) -> None:
        """Enter FAILED: fail the batch and everything queued; refuse from now on."""
        code = exc.errno if exc is not None else None
        if exc is not None:
            reason = f"WAL write failed in segment {self._current_seq}: {exc}"
        if self._failure is None:
            self._failure = WalError(reason, errno=code)
            self._failure.__cause__ = exc
            log.error(
                "WAL %s FAILED (%s): refusing every append from now on; records "
                "acknowledged before stay durable",
                self.directory,
                reason,
                exc_info=exc,
                extra={"event": "wal_failed"},
            )
        pending = [*batch, *self._q_futs, *(f for _, f in self._flush_waiters)]
        if rotate_fut is not None:
            pending.append(rotate_fut)
        self._flush_waiters.clear()
        self._q_data, self._q_futs, self._q_bytes, self._rotations = [], [], 0, 0
        failure = WalError(reason, errno=code)
        failure.__cause__ = exc
        self._complete(pending, failure)
