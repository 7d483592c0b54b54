"""Micro-benchmark of the WAL's group commit: ``python -m bench.wal``.

Appends ``--records`` small records (≈150 bytes framed, shaped like an
``A`` accepted record) as fast as one producer can, with real ``fdatasync``,
and prints one JSON line: records/s from the first append to the last durable
future, batches, mean records per batch, fsync p50/p99 and append→durable
p50/p99 (sampled every 64th record). ``--rounds`` runs are made on fresh
directories; each figure is the median over rounds.

The producer yields to the loop every ``--yield-every`` appends, as the relay
does between socket reads; without yields the whole run would be one batch.
Then the ack latency is mostly queueing behind the disk. ``--rate R`` paces
the producer at R records/s instead, to read the ack latency at a given load
(e.g. the relay's 15,000 msg/s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from typing import Any

from relayd.wal import Wal, encode_record

SAMPLE_EVERY = 64


def _record(i: int) -> list[Any]:
    return [
        "A",
        f"20260101120000ABCDEFGH{i:04d}S"[-26:],
        "demo",
        0,
        1,
        "0212345678",
        0,
        1,
        "01012345678",
        0,
        0,
        0,
        0x0E,
        1,
        b"x" * 53,
        1767236400.123,
        1767322800.0,
    ]


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def _round(
    directory: str, n: int, yield_every: int, fsync: bool, rate: float
) -> dict[str, float]:
    fsyncs: list[float] = []
    sizes: list[int] = []

    def on_batch(records: int, fsync_s: float) -> None:
        sizes.append(records)
        fsyncs.append(fsync_s)

    wal = await Wal.open(directory, fsync=fsync, on_batch=on_batch)
    clock = time.perf_counter  # not loop.time(): uvloop's has 1 ms resolution
    latencies: list[float] = []
    records = [_record(i) for i in range(256)]

    def append(i: int) -> asyncio.Future[None]:
        fut = wal.append(records[i & 255])
        if i % SAMPLE_EVERY == 0:
            t = clock()
            fut.add_done_callback(lambda _f: latencies.append(clock() - t))
        return fut

    try:
        last: asyncio.Future[None] | None = None
        t0 = clock()
        if rate:
            # Paced: offer `rate` records/s, as the relay would at that load.
            i = 0
            while i < n:
                due = min(n, int((clock() - t0) * rate) + 1)
                while i < due:
                    last = append(i)
                    i += 1
                await asyncio.sleep(0.0005)
        else:
            for i in range(n):
                last = append(i)
                if i % yield_every == yield_every - 1:
                    await asyncio.sleep(0)
        assert last is not None
        await last
        elapsed = clock() - t0
        stats = wal.statistics()
        assert stats.records_durable == n
    finally:
        await wal.close()
    await asyncio.sleep(0)  # let the last on_batch callback run
    return {
        "records_per_s": n / elapsed,
        "batches": stats.batches,
        "mean_records_per_batch": n / stats.batches,
        "max_records_per_batch": max(sizes),
        "fsync_p50_ms": _pct(fsyncs, 0.50) * 1e3,
        "fsync_p99_ms": _pct(fsyncs, 0.99) * 1e3,
        "ack_p50_ms": _pct(latencies, 0.50) * 1e3,
        "ack_p99_ms": _pct(latencies, 0.99) * 1e3,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--yield-every", type=int, default=64)
    ap.add_argument("--dir", default=None, help="parent directory (default: system temp)")
    ap.add_argument("--no-fsync", action="store_true", help="skip fdatasync (not durable)")
    ap.add_argument(
        "--rate", type=float, default=0.0, help="offered records/s (default: as fast as possible)"
    )
    ap.add_argument("--no-uvloop", action="store_true")
    args = ap.parse_args(argv)

    loop_name = "asyncio"
    run: Any = asyncio.run
    if not args.no_uvloop:
        try:
            import uvloop

            run, loop_name = uvloop.run, "uvloop"
        except ImportError:
            pass

    rounds = []
    for _ in range(args.rounds):
        d = tempfile.mkdtemp(prefix="bench-wal-", dir=args.dir)
        try:
            rounds.append(
                run(_round(d, args.records, args.yield_every, not args.no_fsync, args.rate))
            )
        finally:
            shutil.rmtree(d, ignore_errors=True)

    result: dict[str, Any] = {"bench": "wal"}
    for key in rounds[0]:
        value = statistics.median(r[key] for r in rounds)
        result[key] = round(value, 3) if isinstance(value, float) else value
    result.update(
        records=args.records,
        record_bytes=len(encode_record(_record(0))),
        rounds=args.rounds,
        statistic="median of rounds",
        fsync=not args.no_fsync,
        loop=loop_name,
        yield_every=args.yield_every,
        offered_rate=args.rate or None,
        python=platform.python_version(),
        machine={"cores": os.cpu_count(), "platform": platform.platform()},
    )
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
