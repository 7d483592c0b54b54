"""Operators' tools against a running relayd (issue 6): relayctl, the admin
endpoint, drain/undrain, message lookup, structured and redacted logs, the
Grafana dashboard.

relayd runs in-process between the carrier simulators (conftest's rig); every
relayctl command is the real ``relayd.ctl.main(argv)``, run in a worker thread
so its blocking HTTP reaches the relay's loop, which keeps running in this one.
Nothing of relayd is mocked: traffic is real SMPP, the checks read the
simulators' accounting, relayctl's output and relayd's log stream. The tests
run on uvloop only (production's loop), to keep the added time small.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest

from relayd import ctl as relayctl
from relayd import logs
from simulators.upstream import make_pdu_factory
from tests.integration.conftest import (
    DEMO,
    DEMO_SENDER,
    REPO,
    Rig,
    RigFactory,
    closed_port,
    wait_for,
)
from tests.integration.test_relay import assert_all_delivered, connect, load_client, receipts

# On uvloop only, the loop `relayd run` uses, to keep the added test time small.
uvloop_only = pytest.mark.asyncio(loop_factories=["uvloop"])

TOKEN = "ops-test-write-token-0123456789"
READ_TOKEN = "ops-test-read-token-9876543210"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """relayctl reads RELAYCTL_URL / RELAYCTL_TOKEN; the tests say everything explicitly.
    The relayd logger's level is restored after a test that changed it at run time."""
    monkeypatch.delenv("RELAYCTL_URL", raising=False)
    monkeypatch.delenv("RELAYCTL_TOKEN", raising=False)
    yield
    logging.getLogger("relayd").setLevel(logging.NOTSET)


async def ctl(rig: Rig, *argv: str, token: str | None = None) -> tuple[int, str, str]:
    """``relayctl --url <rig> [--token T] ARGV...``: exit status, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    args = ["--url", rig.admin_url, *(["--token", token] if token else []), *argv]
    rc = await asyncio.to_thread(relayctl.main, args, stdout=out, stderr=err)
    return rc, out.getvalue(), err.getvalue()


async def ctl_json(rig: Rig, *argv: str, token: str | None = None) -> Any:
    rc, out, err = await ctl(rig, *argv, "--json", token=token)
    assert rc == 0, err
    return json.loads(out)


def kinds(history: dict[str, Any]) -> list[str]:
    return [e["kind"] for e in history["events"]]


# ============================================================================ read commands


@uvloop_only
async def test_every_read_command_against_a_running_relayd(make_rig: RigFactory) -> None:
    """status, accounts, binds, top, log-level and msg (a delivered message, one
    its carrier reported undeliverable, one the carrier refused at submit, one
    found only in the WAL) answer from a live relayd; numbers are masked, bodies
    never shown."""
    rig = await make_rig(admin={"token": TOKEN})
    async with asyncio.timeout(30):
        esme = await connect(rig, "trx", DEMO)
        try:
            sent = {}
            for name, dst in (
                ("ok", "01012340001"),
                ("undeliv", "01000003001"),
                ("refused", "01000001002"),
            ):
                resp = await esme.submit(dst, b"TOP SECRET " + name.encode(), source=DEMO_SENDER)
                assert resp.command_status == 0
                sent[name] = resp.message_id
            got = {r.message_id: r for r in await receipts(esme, 3)}
            assert {got[i].stat for i in sent.values()} == {"DELIVRD", "UNDELIV", "REJECTD"}
            await wait_for(lambda: not rig.relay.messages, 5, "every receipt reported")

            rc, out, err = await ctl(rig, "binds")
            assert rc == 0, err
            assert "skt/trx0" in out
            assert "lgu/trx1" in out
            binds = await ctl_json(rig, "binds")
            assert [b["account"] for b in binds["upstream"]] == ["demo"]
            assert all(b["bound"] for b in binds["carriers"])
        finally:
            await esme.close()

        rc, out, err = await ctl(rig, "status")
        assert rc == 0, err
        assert "WAL: healthy" in out
        assert re.search(r"^skt +up +2/2", out, re.M), out
        status = await ctl_json(rig, "status")
        assert [c["name"] for c in status["carriers"]] == ["skt", "kt", "lgu"]
        assert status["messages"]["messages"] == 0
        assert status["wal"]["segments"] >= 1

        rc, out, err = await ctl(rig, "accounts")
        assert rc == 0, err
        assert re.search(r"^demo ", out, re.M)
        assert re.search(r"^bank ", out, re.M)
        assert "0212345678" not in out  # a registered sender, masked too
        accounts = {a["system_id"]: a for a in (await ctl_json(rig, "accounts"))["accounts"]}
        assert accounts["demo"]["accepted_total"] == 3

        # msg: a delivered message
        rc, out, err = await ctl(rig, "msg", sent["ok"])
        assert rc == 0, err
        assert "state DELIVERED" in out
        assert "code 1000 성공" in out
        assert "to 010****0001" in out
        assert "01012340001" not in out
        assert "SECRET" not in out
        ok = await ctl_json(rig, "msg", sent["ok"])
        assert kinds(ok) == ["accepted", "submitted", "final", "reported"]
        assert ok["events"][1]["carrier"] == "skt"
        assert ok["final"]["code"] == 1000
        assert ok["sources"] == ["store"]

        # msg: undeliverable by the carrier's receipt (korea-messaging.md §7: 3001)
        rc, out, _ = await ctl(rig, "msg", sent["undeliv"])
        assert "state UNDELIVERABLE" in out
        assert "code 3001 가입자 없음" in out
        # msg: refused by the carrier at submit (permanent: ESME_RINVDSTADR, code 1002)
        refused = await ctl_json(rig, "msg", sent["refused"])
        assert kinds(refused) == ["accepted", "attempt_failed", "final", "reported"]
        failed = refused["events"][1]
        assert (failed["carrier"], failed["status_name"], failed["temporary"]) == (
            "skt",
            "ESME_RINVDSTADR",
            False,
        )
        assert (refused["state"], refused["final"]["code"]) == ("REJECTED", 1002)

        both = await ctl_json(rig, "msg", sent["undeliv"], "--wal")
        assert both["sources"] == ["store", "wal"]
        assert kinds(both) == ["accepted", "submitted", "final", "reported"]
        # msg: history lost by the store (it is best-effort) is read back from the WAL
        with sqlite3.connect(rig.data_dir / "relayd.sqlite3") as db:
            db.execute("DELETE FROM events WHERE msg_id = ?", (sent["ok"],))
            db.execute("DELETE FROM messages WHERE msg_id = ?", (sent["ok"],))
        from_wal = await ctl_json(rig, "msg", sent["ok"])
        assert from_wal["sources"] == ["wal"]
        assert kinds(from_wal) == ["accepted", "submitted", "final", "reported"]
        assert from_wal["destination"] == "010****0001"
        assert from_wal["state"] == "DELIVERED"

        rc, _, err = await ctl(rig, "msg", "20990101000000AAAAAAAA0000S")
        assert rc == relayctl.EXIT_ERROR
        assert "no message" in err

        # top: one frame, and JSON frames
        rc, out, err = await ctl(rig, "top", "--once", "--interval", "0.2")
        assert rc == 0, err
        assert out.startswith("relayd top")
        assert re.search(r"^skt +2/2 +up", out, re.M), out
        assert "submit → submit_sm_resp" in out
        rc, out, err = await ctl(rig, "top", "--json", "--iterations", "2", "--interval", "0.1")
        assert rc == 0, err
        frames = [json.loads(line) for line in out.splitlines()]
        assert len(frames) == 2
        assert [c["name"] for c in frames[0]["carriers"]] == ["skt", "kt", "lgu"]
        assert frames[0]["carriers"][0]["window"] == 512

        rc, out, _ = await ctl(rig, "log-level")
        assert rc == 0
        assert out.startswith("log level ")

        # The dashboard only names metrics relayd serves.
        text = await asyncio.to_thread(relayctl.Client(rig.admin_url, None, 5).get_text, "/metrics")
    served = relayctl.parse_metrics(text).names
    referenced = dashboard_metrics()
    assert {
        "relayd_submits_total",
        "relayd_submit_latency_seconds_bucket",
        "relayd_queue_depth",
        "relayd_carrier_window_in_use",
        "relayd_receipts_total",
        "relayd_wal_fsync_seconds_bucket",
    } <= referenced
    assert sorted(referenced - served) == []


def dashboard_metrics() -> set[str]:
    """Every relayd_* name in the expressions of conf/grafana-relayd.json."""
    dashboard = json.loads((REPO / "conf" / "grafana-relayd.json").read_text(encoding="utf-8"))
    exprs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("expr", "query") and isinstance(value, str):
                    exprs.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(dashboard)
    assert exprs, "the dashboard has no queries"
    return set(re.findall(r"\brelayd_[a-z0-9_]+", " ".join(exprs)))


def test_prometheus_example_scrapes_relayd() -> None:
    text = (REPO / "conf" / "prometheus.yml").read_text(encoding="utf-8")
    assert "metrics_path: /metrics" in text
    assert "127.0.0.1:9775" in text


# ============================================================================ drain / undrain


@uvloop_only
async def test_drain_moves_traffic_elsewhere_and_undrain_brings_it_back(
    make_rig: RigFactory,
) -> None:
    """Draining skt mid-run sends nothing more to it (its accounting stops), the
    rest fails over to kt/lgu, every message gets its one receipt; with every
    carrier of the route drained a message waits, queued, and `msg` says why;
    undraining skt sends it there."""
    rig = await make_rig(admin={"token": TOKEN})
    skt = rig.sims["skt"]
    pool = rig.daemon.pool
    n = 300
    client = load_client(rig, binds=2, window=32, rate=600.0)
    async with asyncio.timeout(40):
        await client.connect()
        try:
            run = asyncio.ensure_future(client.run(n))
            await wait_for(lambda: skt.accounting()["submits_accepted"] >= 50, 10, "skt took 50")
            rc, out, err = await ctl(rig, "drain", "skt", token=TOKEN)
            assert rc == 0, err
            assert out.startswith("skt drained")
            # What is in skt's windows finishes there; then nothing more arrives.
            await wait_for(
                lambda: not any(b.inflight for b in pool.carriers["skt"].binds), 10, "skt idle"
            )
            at_drain = skt.accounting()["submits_received"]
            await run
            assert await client.wait_receipts(15), client.summary()
        finally:
            await client.close()
        assert_all_delivered(client.summary(), n)
        acc = rig.accounting()
        assert acc["skt"]["submits_received"] == at_drain
        moved = acc["kt"]["submits_accepted"] + acc["lgu"]["submits_accepted"]
        assert moved > 0
        assert at_drain + moved >= n
        assert all(b.bound for b in pool.carriers["skt"].binds), "a drained carrier stays bound"
        rc, out, _ = await ctl(rig, "drain", "skt", token=TOKEN)
        assert (rc, out.strip()) == (0, "skt was already drained")

        # Every carrier of the route drained: the message is accepted and waits.
        for name in ("kt", "lgu"):
            assert (await ctl(rig, "drain", name, token=TOKEN))[0] == 0
        esme = await connect(rig, "trx", DEMO)
        try:
            resp = await esme.submit("01012349999", b"waiting", source=DEMO_SENDER)
            assert resp.command_status == 0
            await esme.no_receipt(0.2)
            queued = await ctl_json(rig, "msg", resp.message_id)
            assert queued["state"] == "QUEUED"
            assert queued["sources"][-1] == "memory"
            assert queued["live"]["waiting_for"] == [
                {"carrier": c, "status": "drained"} for c in ("skt", "kt", "lgu")
            ]
            rc, out, _ = await ctl(rig, "msg", resp.message_id)
            assert "waiting for a carrier: skt drained, kt drained, lgu drained" in out
            status = await ctl_json(rig, "status")
            assert status["unroutable_queued"] == 1
            assert [c["drained"] for c in status["carriers"]] == [True, True, True]

            rc, out, err = await ctl(rig, "undrain", "skt", token=TOKEN)
            assert (rc, out.strip()) == (0, "skt back in rotation"), err
            receipt = (await receipts(esme, 1))[0]
            assert (receipt.message_id, receipt.stat) == (resp.message_id, "DELIVRD")
        finally:
            await esme.close()
        assert skt.accounting()["submits_received"] == at_drain + 1
        await wait_for(lambda: not rig.relay.messages, 5, "reported")
        done = await ctl_json(rig, "msg", resp.message_id)
        assert done["state"] == "DELIVERED"
        assert [e.get("carrier") for e in done["events"] if e["kind"] == "submitted"] == ["skt"]


# ============================================================================ tokens, log level


@uvloop_only
async def test_tokens_guard_write_commands_and_the_level_changes_at_run_time(
    make_rig: RigFactory,
) -> None:
    """Reads need no token; drain without one is 401 (exit 4) and drains nothing;
    a wrong one too; with a read token configured, reads need it and it cannot
    write (403). The log level changes at once with the write token."""
    rig = await make_rig(admin={"token": TOKEN})
    async with asyncio.timeout(30):
        for argv in (["status"], ["binds"], ["accounts"], ["log-level"]):
            rc, _, err = await ctl(rig, *argv)
            assert rc == 0, (argv, err)
        rc, out, err = await ctl(rig, "drain", "skt")
        assert (rc, out) == (relayctl.EXIT_AUTH, "")
        assert err.startswith("relayctl: not authorised (401): missing token")
        assert "\n" not in err.strip()
        rc, _, err = await ctl(rig, "drain", "skt", token="not-the-token-at-all")
        assert rc == relayctl.EXIT_AUTH
        assert "wrong token" in err
        assert not rig.daemon.pool.carriers["skt"].drained
        rc, _, err = await ctl(rig, "drain", "nope", token=TOKEN)
        assert rc == relayctl.EXIT_ERROR
        assert "no carrier 'nope'" in err

        relayd_logger = logging.getLogger("relayd")
        rc, out, err = await ctl(rig, "log-level", "debug", token=TOKEN)
        assert rc == 0, err
        assert out.startswith("log level debug (was ")
        assert relayd_logger.getEffectiveLevel() == logging.DEBUG
        assert relayd_logger.isEnabledFor(logging.DEBUG)
        assert (await ctl(rig, "log-level"))[1] == "log level debug\n"
        rc, _, err = await ctl(rig, "log-level", "verbose", token=TOKEN)
        assert rc == relayctl.EXIT_ERROR
        assert "unknown log level" in err
        rc, _, _ = await ctl(rig, "log-level", "warning")
        assert rc == relayctl.EXIT_AUTH
        assert relayd_logger.getEffectiveLevel() == logging.DEBUG

        # A relayd that is not there: one line, exit 3.
        out_buf, err_buf = io.StringIO(), io.StringIO()
        url = f"http://127.0.0.1:{closed_port()}"
        rc = await asyncio.to_thread(
            relayctl.main, ["--url", url, "status"], stdout=out_buf, stderr=err_buf
        )
        assert rc == relayctl.EXIT_UNREACHABLE
        assert "connection refused" in err_buf.getvalue()

        # A read token: reads need it (or the write token); it cannot write.
        guarded = await make_rig(admin={"token": TOKEN, "read_token": READ_TOKEN})
        rc, _, err = await ctl(guarded, "status")
        assert rc == relayctl.EXIT_AUTH
        assert "401" in err
        assert (await ctl(guarded, "status", token=READ_TOKEN))[0] == 0
        assert (await ctl(guarded, "binds", token=TOKEN))[0] == 0
        rc, _, err = await ctl(guarded, "drain", "kt", token=READ_TOKEN)
        assert rc == relayctl.EXIT_AUTH
        assert "(403): the read token cannot run write commands" in err
        # The token from the configuration file (-c), the address from --url.
        rc, out, err = await ctl(guarded, "-c", str(guarded.config_path), "drain", "kt")
        assert rc == 0, err
        assert guarded.daemon.pool.carriers["kt"].drained


# ============================================================================ the endpoint's bounds


async def _exchange(port: int, data: bytes, timeout_s: float = 3.0) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        async with asyncio.timeout(timeout_s):
            return await reader.read()
    finally:
        writer.close()


@uvloop_only
async def test_admin_endpoint_is_bounded(make_rig: RigFactory) -> None:
    """A client that sends half a request is cut off after request_timeout_s
    while others are served at once; oversized requests, wrong methods and
    unknown paths get their status; beyond max_connections a connection is
    closed at once. Without a configured token, write commands are refused."""
    rig = await make_rig(
        admin={"request_timeout_s": 0.5, "max_connections": 4, "max_request_bytes": 2048}
    )
    port = int(rig.daemon.ready["admin_port"])
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(20):
        slow_r, slow_w = await asyncio.open_connection("127.0.0.1", port)
        slow_w.write(b"GET /admin/status HTTP/1.1\r\nHost: relayd\r\n")
        t0 = loop.time()
        fast = await _exchange(port, b"GET /admin/log-level HTTP/1.1\r\n\r\n")
        assert fast.startswith(b"HTTP/1.1 200 OK\r\n")
        assert loop.time() - t0 < 0.4
        assert (await slow_r.read()).startswith(b"HTTP/1.1 408 ")
        assert loop.time() - t0 >= 0.4
        slow_w.close()

        head = b"GET /admin/status HTTP/1.1\r\nX-Pad: " + b"a" * 4000 + b"\r\n\r\n"
        assert (await _exchange(port, head)).startswith(b"HTTP/1.1 431 ")
        big = b"POST /admin/drain/skt HTTP/1.1\r\nContent-Length: 100000\r\n\r\n"
        assert (await _exchange(port, big)).startswith(b"HTTP/1.1 413 ")
        wrong = await _exchange(port, b"DELETE /admin/status HTTP/1.1\r\n\r\n")
        assert wrong.startswith(b"HTTP/1.1 405 ")
        assert b"Allow: GET" in wrong
        missing = await _exchange(port, b"GET /admin/nothing HTTP/1.1\r\n\r\n")
        assert missing.startswith(b"HTTP/1.1 404 ")
        assert json.loads(missing.partition(b"\r\n\r\n")[2])["status"] == 404
        assert (await _exchange(port, b"garbage\r\n\r\n")).startswith(b"HTTP/1.1 400 ")
        disabled = await _exchange(port, b"POST /admin/drain/skt HTTP/1.1\r\n\r\n")
        assert disabled.startswith(b"HTTP/1.1 403 ")
        assert b"write commands are disabled" in disabled
        assert not rig.daemon.pool.carriers["skt"].drained

        idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(4)]
        await asyncio.sleep(0.05)  # the server has taken all four
        extra_r, extra_w = await asyncio.open_connection("127.0.0.1", port)
        try:
            async with asyncio.timeout(0.3):
                assert await extra_r.read() == b""
        except ConnectionResetError:
            pass  # closed at once, as a reset
        extra_w.close()
        for _, w in idle:
            w.close()
        await asyncio.sleep(0.1)
        metrics = await _exchange(port, b"GET /metrics HTTP/1.1\r\n\r\n")
        assert metrics.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"relayd_submits_total" in metrics


# ============================================================================ logs


@uvloop_only
@pytest.mark.parametrize("fmt", ["text", "json"])
async def test_debug_logs_of_a_burst_hold_no_number_and_no_body(
    make_rig: RigFactory, fmt: str
) -> None:
    """relayd's own log stream, at DEBUG, through a burst, binds coming and
    going, a drain and a misbehaving call site: no full phone number and no
    message body in any line; the events an operator needs are there."""
    buf = io.StringIO()
    logs.configure("debug", fmt, buf)
    n = 100
    body = "BODY-MARKER 비밀 본문 01055556666"
    try:
        rig = await make_rig(admin={"token": TOKEN})
        client = load_client(rig, binds=2, window=32)
        async with asyncio.timeout(30):
            await client.connect()
            try:
                await client.run(n, make_pdu_factory(text=body))
                assert (await ctl(rig, "drain", "kt", token=TOKEN))[0] == 0
                assert (await ctl(rig, "undrain", "kt", token=TOKEN))[0] == 0
                await rig.sims["lgu"].crash()
                await wait_for(lambda: "carrier_reconnect" in buf.getvalue(), 5, "a reconnect")
                await rig.sims["lgu"].revive()
                await rig.wait_carriers_bound(("lgu",))
                assert await client.wait_receipts(10), client.summary()
            finally:
                await client.close()
            # A call site that breaks the rules is still masked by the one filter.
            try:
                raise ValueError("no route to 01066667777")
            except ValueError:
                logging.getLogger("relayd.test").exception(
                    "submit to %s failed: %r", "01077778888", body.encode()
                )
            await rig.stop()
    finally:
        logs.unconfigure()
    text = buf.getvalue()
    lines = text.splitlines()
    assert len(lines) > 20
    numbers = {f"010{10_000_000 + i}" for i in range(n)}
    numbers |= {"01055556666", "01066667777", "01077778888", DEMO_SENDER}
    for line in lines:
        assert "BODY-MARKER" not in line, line
        assert "비밀" not in line, line
        for digits in re.findall(r"\d{8,}", line):
            assert digits not in numbers, line
    assert "010****8888" in text
    assert "010****7777" in text
    expected = {
        "recovered",
        "ready",
        "carrier_bind_up",
        "carrier_bind_down",
        "carrier_reconnect",
        "carrier_drained",
        "carrier_undrained",
        "upstream_bind",
        "upstream_unbind",
    }
    if fmt == "json":
        records = [json.loads(line) for line in lines]
        events = {r.get("event") for r in records}
        assert expected <= events, expected - events
        drained = next(r for r in records if r.get("event") == "carrier_drained")
        assert (drained["carrier"], drained["level"]) == ("kt", "WARNING")
        assert any("Traceback" in r.get("exc", "") for r in records)
    else:
        events = set(re.findall(r" event=(\w+)$", text, re.M))
        assert expected <= events, expected - events
