"""relayd/logs.py: redaction in one place, the two formats, the run-time level.

No event loop: records are built and formatted directly. The end-to-end check
(a burst through a running relayd at DEBUG) is tests/integration/test_ops.py.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from relayd import logs


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    """relayd's handler configured at debug into a buffer; removed afterwards."""
    buf = io.StringIO()
    logs.configure("debug", "text", buf)
    try:
        yield buf
    finally:
        logs.unconfigure()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("to 01012345678 ok", "to 010****5678 ok"),
        ("to 010-1234-5678.", "to 010-****-5678."),
        ("to 0101234567", "to 010***4567"),
        ("from 0212345678", "from 021***5678"),
        ("from 02-123-4567", "from **-***-**67"),
        ("intl +82 10 1234 5678", "intl +82 1* **** 5678"),
        ("intl 821012345678", "intl 821*****5678"),
        ("dst=01000003001,", "dst=010****3001,"),
        ("('01099998888',)", "('010****8888',)"),
    ],
)
def test_phone_numbers_are_masked(text: str, expected: str) -> None:
    """Korean numbers in every written form keep at most 3 leading and 4 trailing digits."""
    assert logs.redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "id 20250101123456ABCDEFGH0000S",  # relayd's message id
        "carrier id 0000000042 and 0000002A",  # kt's ids
        "segment wal-0000000000000001.log",
        "3f2c9a1e-5b7d-4c2a-9e1f-00000000002a",
        "recovered in 0.012345s at 1718000000.123 on 127.0.0.1:2775",
        "sender 15881234 status 0x00000058",
    ],
)
def test_ids_times_and_addresses_are_left_alone(text: str) -> None:
    assert logs.redact(text) == text


def test_bytes_literals_and_receipt_texts_are_removed() -> None:
    """Bodies travel as bytes: no bytes literal survives, nor a receipt's text field."""
    text = (
        "SubmitSm(short_message=b'secret \\'body\\'', tlvs=(Tlv(tag=1060, value=b\"x\"),)) "
        "receipt id:1 sub:001 dlvrd:001 submit date:2501010000 done date:2501010000 "
        "stat:DELIVRD err:000 text:secret start"
    )
    out = logs.redact(text)
    assert "secret" not in out
    assert "short_message=b'<redacted>'" in out
    assert "value=b'<redacted>'" in out
    assert "err:000 text:<redacted>" in out


def test_every_part_of_a_record_is_redacted(stream: io.StringIO) -> None:
    """Message arguments, extra fields, the traceback and the stack: nothing escapes."""
    log = logging.getLogger("relayd.test")
    try:
        raise ValueError("no route for 01099998888 body b'BODY'")
    except ValueError:
        log.exception(
            "submit to %s with %r failed",
            "01012345678",
            b"BODY",
            extra={"event": "test", "peer": "010-2222-3333"},
            stack_info=True,
        )
    out = stream.getvalue()
    assert "BODY" not in out
    for number in ("01099998888", "01012345678", "2222-3333"):
        assert number not in out
    assert "010****5678" in out
    assert "010****8888" in out
    assert "Traceback" in out
    assert out.splitlines()[0].endswith("event=test")


def test_json_lines_carry_the_fields(stream: io.StringIO) -> None:
    logs.configure("info", "json", stream)
    logging.getLogger("relayd.carriers").warning(
        "carrier bind %s down", "skt/trx0", extra={"event": "carrier_bind_down", "carrier": "skt"}
    )
    logging.getLogger("relayd.carriers").debug("not written at info")
    (line,) = stream.getvalue().splitlines()
    obj = json.loads(line)
    assert obj["level"] == "WARNING"
    assert obj["logger"] == "relayd.carriers"
    assert obj["msg"] == "carrier bind skt/trx0 down"
    assert obj["event"] == "carrier_bind_down"
    assert obj["carrier"] == "skt"
    assert obj["ts"].endswith("+00:00")


def test_level_changes_at_run_time_and_resets(stream: io.StringIO) -> None:
    """set_level applies to relayd's loggers at once; reset_level returns to the
    configured one; other libraries stay at WARNING."""
    logs.configure("info", "text", stream)
    assert logs.current_level() == "info"
    assert logs.set_level("DEBUG") == "info"
    logging.getLogger("relayd.x").debug("now visible")
    logging.getLogger("aiosqlite").debug("never visible")
    assert logs.reset_level() == "debug"
    assert logs.current_level() == "info"
    logging.getLogger("relayd.x").debug("hidden again")
    out = stream.getvalue()
    assert "now visible" in out
    assert "never visible" not in out
    assert "hidden again" not in out
    with pytest.raises(ValueError, match="unknown log level"):
        logs.set_level("verbose")


def test_recent_records_keep_redacted_warnings() -> None:
    recent = logs.RecentRecords(maxlen=2)
    log = logging.getLogger("relayd.recent-test")
    log.addHandler(recent)
    try:
        log.info("not kept")
        for i in range(3):
            log.warning("bind %d for 01012345678 down", i, extra={"event": "x"})
    finally:
        log.removeHandler(recent)
    kept = recent.snapshot()
    assert [r["msg"] for r in kept] == [
        "bind 1 for 010****5678 down",
        "bind 2 for 010****5678 down",
    ]
    assert kept[0]["event"] == "x"
