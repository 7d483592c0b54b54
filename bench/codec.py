"""Micro-benchmark of the sans-IO codec: ``python -m bench.codec``.

Prints one JSON line. Pinned to one core (the relay runs one process per core).
Each figure is the median of ``--rounds`` timed rounds of ``--iterations``
operations; a pair is one encode plus one decode of the same PDU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable

from protocol import codec
from protocol.buffer import FrameBuffer
from protocol.constants import TAG_KR_RESULT_CODE, Tag
from protocol.pdu import DeliverSm, SubmitSm, SubmitSmResp
from protocol.tlv import Tlv

# A realistic upstream submit: KS C 5601 text of 80 octets, receipt requested.
SUBMIT = SubmitSm(
    sequence_number=123456,
    source_addr_ton=0,
    source_addr_npi=1,
    source_addr="0212345678",
    dest_addr_ton=0,
    dest_addr_npi=1,
    destination_addr="01012345678",
    registered_delivery=1,
    data_coding=0x0E,
    short_message=(
        "[국세청] 종합소득세 신고 안내: 5월 31일까지 홈택스에서 신고하세요. 문의 126"
    ).encode("cp949")[:80],
)

# A carrier receipt as the simulators send it: Appendix B text + the three
# standard TLVs + the vendor TLV with the Korean result code.
RECEIPT = DeliverSm(
    sequence_number=654321,
    source_addr="01012345678",
    destination_addr="0212345678",
    esm_class=0x04,
    short_message=(
        b"id:4D2A9F11 sub:001 dlvrd:001 submit date:2611282301 done date:2611282301 "
        b"stat:DELIVRD err:1000 text:"
    ),
    tlvs=(
        Tlv(Tag.receipted_message_id, "4D2A9F11"),
        Tlv(Tag.message_state, 2),
        Tlv(Tag.network_error_code, b"\x03\x00\x00"),
        Tlv(TAG_KR_RESULT_CODE, (1000).to_bytes(2, "big")),
    ),
)


def _rate(fn: Callable[[], object], iterations: int, rounds: int) -> float:
    rates = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(iterations):
            fn()
        rates.append(iterations / (time.perf_counter() - t0))
    return statistics.median(rates)


def _stream_rate(pdu_bytes: bytes, batch: int, rounds: int) -> float:
    """PDUs/s framed and decoded from one read holding ``batch`` PDUs."""
    chunk = pdu_bytes * batch
    decode_body = codec.decode_body
    rates = []
    for _ in range(rounds):
        fb = FrameBuffer()
        t0 = time.perf_counter()
        for _ in range(20):
            fb.feed(chunk)
            while (frame := fb.next_frame()) is not None:
                decode_body(frame[1], frame[2], frame[3], frame[4])
        rates.append(20 * batch / (time.perf_counter() - t0))
    return statistics.median(rates)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--iterations", type=int, default=50_000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args(argv)

    pinned = None
    if hasattr(os, "sched_setaffinity"):
        cpus = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpus[-1]})
        pinned = cpus[-1]

    encode, decode = codec.encode, codec.decode
    submit_raw = encode(SUBMIT)
    receipt_raw = encode(RECEIPT)
    assert decode(submit_raw) == SUBMIT
    assert decode(receipt_raw) == RECEIPT
    resp = SubmitSmResp(sequence_number=1, message_id="2611282301000000001S")

    n, r = args.iterations, args.rounds
    result = {
        "bench": "codec",
        "submit_sm_encode_decode_per_s": round(_rate(lambda: decode(encode(SUBMIT)), n, r)),
        "deliver_sm_receipt_encode_decode_per_s": round(
            _rate(lambda: decode(encode(RECEIPT)), n, r)
        ),
        "submit_sm_encode_per_s": round(_rate(lambda: encode(SUBMIT), n, r)),
        "submit_sm_decode_per_s": round(_rate(lambda: decode(submit_raw), n, r)),
        "submit_sm_resp_encode_decode_per_s": round(_rate(lambda: decode(encode(resp)), n, r)),
        "submit_sm_stream_frame_decode_per_s": round(_stream_rate(submit_raw, 500, r)),
        "iterations": n,
        "rounds": r,
        "statistic": "median of rounds",
        "pinned_cpu": pinned,
        "python": platform.python_version(),
        "machine": {"cores": os.cpu_count(), "platform": platform.platform()},
    }
    try:  # the construct specification, for the ratio (slow by design)
        from protocol import spec

        result["construct_spec_submit_sm_encode_decode_per_s"] = round(
            _rate(lambda: spec.spec_decode(spec.spec_encode(SUBMIT)), max(n // 50, 200), r)
        )
    except ImportError:
        pass
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
