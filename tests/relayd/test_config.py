"""relayd/config.py and relayd/passwords.py: loading, validation, routing, reload.

Plain synchronous tests: no event loop, no sockets. Hashing uses a tiny scrypt
cost (N=16) except where the shipped demo hash is checked once.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import shutil
import tomllib
from pathlib import Path
from typing import Any

import pytest

from protocol.config import SessionConfig
from protocol.constants import CommandStatus
from protocol.errors import RelayError
from protocol.msgid import HEX_RESP_DEC_RECEIPT
from protocol.segment import ConcatMethod
from relayd import passwords
from relayd.config import (
    AccountConfig,
    AdminConfig,
    BindType,
    CarrierConfig,
    Config,
    ConfigError,
    LogConfig,
    MetricsConfig,
    RetryConfig,
    RouteConfig,
    ServerConfig,
    StoreConfig,
    WalConfig,
    load_config,
    reload_accounts_and_routes,
)
from relayd.passwords import hash_password, verify_password

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "conf" / "relayd.toml"

FAST = {"n": 16, "r": 1, "p": 1}
PW_HASH = hash_password("secret", **FAST)


# ----------------------------------------------------------------------------- helpers


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(value)


def dump_toml(doc: dict[str, Any]) -> str:
    """A minimal TOML writer for test documents (scalars, arrays, tables, arrays of tables)."""
    lines: list[str] = []
    tables: list[tuple[str, dict[str, Any]]] = []
    arrays: list[tuple[str, list[dict[str, Any]]]] = []
    for key, value in doc.items():
        if isinstance(value, dict):
            tables.append((key, value))
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            arrays.append((key, value))
        else:
            lines.append(f"{key} = {_toml_value(value)}")
    for name, table in tables:
        lines.append(f"\n[{name}]")
        lines.extend(f"{k} = {_toml_value(v)}" for k, v in table.items())
    for name, items in arrays:
        for item in items:
            lines.append(f"\n[[{name}]]")
            lines.extend(f"{k} = {_toml_value(v)}" for k, v in item.items())
    return "\n".join(lines) + "\n"


def base_doc() -> dict[str, Any]:
    """A small valid configuration: two accounts, three carriers, one route."""
    return {
        "data_dir": "data",
        "server": {"port": 0},
        "metrics": {"port": 0},
        "accounts": [
            {"system_id": "app1", "password_hash": PW_HASH, "senders": ["0212345678"]},
            {"system_id": "app2", "password_hash": PW_HASH},
        ],
        "carriers": [
            {"name": "skt", "port": 2776, "system_id": "relayd", "password": "relaypw"},
            {"name": "kt", "port": 2777, "system_id": "relayd", "password": "relaypw"},
            {"name": "lgu", "port": 2778, "system_id": "relayd", "password": "relaypw"},
        ],
        "routes": [{"carriers": ["skt", "kt", "lgu"]}],
    }


@pytest.fixture
def write(tmp_path: Path) -> Any:
    """Write a document (dict or TOML text) to tmp_path/conf/relayd.toml; return the path."""

    def _write(doc: dict[str, Any] | str) -> Path:
        path = tmp_path / "conf" / "relayd.toml"
        path.parent.mkdir(exist_ok=True)
        path.write_text(doc if isinstance(doc, str) else dump_toml(doc), encoding="utf-8")
        return path

    return _write


def load_error(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return info.value


def _toml_fields(cls: type) -> list[dataclasses.Field[Any]]:
    return [f for f in dataclasses.fields(cls) if "parse" in f.metadata]


SECTIONS = {
    "server": ServerConfig,
    "metrics": MetricsConfig,
    "admin": AdminConfig,
    "log": LogConfig,
    "wal": WalConfig,
    "store": StoreConfig,
    "retry": RetryConfig,
}
ARRAYS = {"accounts": AccountConfig, "carriers": CarrierConfig, "routes": RouteConfig}


# ----------------------------------------------------------------------------- shipped file


@pytest.fixture
def shipped(tmp_path: Path) -> Path:
    """conf/relayd.toml copied to tmp_path/conf/, so its data_dir lands in tmp_path."""
    path = tmp_path / "conf" / "relayd.toml"
    path.parent.mkdir()
    shutil.copy(SHIPPED, path)
    return path


def test_shipped_config_loads_for_the_simulators(shipped: Path) -> None:
    """conf/relayd.toml loads and targets the three simulators on their default ports."""
    config = load_config(shipped)
    assert (config.server.host, config.server.port) == ("127.0.0.1", 2775)
    assert (config.metrics.host, config.metrics.port) == ("127.0.0.1", 9775)
    assert [(c.name, c.host, c.port) for c in config.carriers] == [
        ("skt", "127.0.0.1", 2776),
        ("kt", "127.0.0.1", 2777),
        ("lgu", "127.0.0.1", 2778),
    ]
    for carrier in config.carriers:
        assert (carrier.system_id, carrier.password) == ("relayd", "relaypw")
    kt = config.carriers_by_name["kt"]
    assert kt.policy == HEX_RESP_DEC_RECEIPT
    # lgu: lower-case UUID in the resp, upper case in the receipt text.
    lgu = config.carriers_by_name["lgu"].policy
    uuid = "3f2c9a1e-5b7d-4c2a-9e1f-00000000002a"
    assert lgu.canonical_resp_id(uuid) == lgu.canonical_receipt_id(uuid.upper())
    # kt: 8 hex digits in the resp, the same number in 10 decimal digits in the receipt.
    assert kt.policy.canonical_resp_id("0000002A") == kt.policy.canonical_receipt_id("0000000042")
    demo = config.accounts_by_id["demo"]
    assert {"0212345678", "0311234567", "15881234"} <= demo.senders
    assert verify_password("demo", demo.password_hash)
    assert config.route_for("demo", "01012345678") == ("skt", "kt", "lgu")
    assert config.data_dir == shipped.parent.parent / "data"
    assert config.data_dir.is_dir()
    assert config.store.path == config.data_dir / "relayd.sqlite3"


def test_shipped_config_lists_every_key() -> None:
    """Every key of every config dataclass appears in conf/relayd.toml (it cannot drift)."""
    raw = tomllib.loads(SHIPPED.read_text(encoding="utf-8"))
    missing = [f.name for f in _toml_fields(Config) if f.name not in raw]
    for name, cls in SECTIONS.items():
        missing += [f"{name}.{f.name}" for f in _toml_fields(cls) if f.name not in raw[name]]
    for name, cls in ARRAYS.items():
        for i, entry in enumerate(raw[name]):
            missing += [f"{name}[{i}].{f.name}" for f in _toml_fields(cls) if f.name not in entry]
    assert missing == []
    # ... and nothing else: the shipped file loads, so it has no unknown key.
    assert set(SECTIONS) | set(ARRAYS) | {"data_dir"} == set(raw)


def test_shipped_config_sections_show_the_defaults() -> None:
    """[server], [metrics], [wal], [store], [retry] in the file are the code's defaults."""
    raw = tomllib.loads(SHIPPED.read_text(encoding="utf-8"))
    for name, cls in SECTIONS.items():
        for f in _toml_fields(cls):
            assert f.metadata["parse"](raw[name][f.name], f.name) == f.default, f"{name}.{f.name}"


def test_shipped_config_carrier_defaults_where_not_site_specific() -> None:
    """Carrier keys the file sets away from the default are the simulator-specific ones."""
    raw = tomllib.loads(SHIPPED.read_text(encoding="utf-8"))
    site_specific = {"name", "port", "system_id", "password", "window", "id_policy"}
    for entry in raw["carriers"]:
        for f in _toml_fields(CarrierConfig):
            if f.name in site_specific:
                continue
            assert f.metadata["parse"](entry[f.name], f.name) == f.default, f.name


# ----------------------------------------------------------------------------- unknown keys, types


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d.update(data_dri="x"), "data_dri: unknown key (did you mean 'data_dir'?)"),
        (lambda d: d.update(sevrer={}), "sevrer: unknown key (did you mean 'server'?)"),
        (
            lambda d: d["server"].update(windw=5),
            "server.windw: unknown key (did you mean 'window'?)",
        ),
        (
            lambda d: d["carriers"][1].update(windw=5),
            "carriers[1].windw: unknown key (did you mean 'window'?)",
        ),
        (lambda d: d["accounts"][0].update(colour="red"), "accounts[0].colour: unknown key"),
        (
            lambda d: d["routes"][0].update(prefixes=["1"]),
            "routes[0].prefixes: unknown key (did you mean 'prefix'?)",
        ),
    ],
)
def test_unknown_key_is_named_with_its_path(write: Any, mutate: Any, expected: str) -> None:
    """An unknown key anywhere stops loading with one line naming its full path."""
    doc = base_doc()
    mutate(doc)
    path = write(doc)
    error = load_error(path)
    assert str(error) == f"{path}: {expected}"
    assert "\n" not in str(error)


@pytest.mark.parametrize(
    ("mutate", "key", "fragment"),
    [
        (lambda d: d["server"].update(port="2775"), "server.port", "expected an integer"),
        (lambda d: d["server"].update(window=True), "server.window", "got boolean true"),
        (lambda d: d["server"].update(window=1.5), "server.window", "got float 1.5"),
        (lambda d: d["server"].update(grace_s="10"), "server.grace_s", "expected a number"),
        (lambda d: d.update(wal={"fsync": 1}), "wal.fsync", "expected true or false"),
        (lambda d: d.update(server=5), "server", "expected a table, got integer 5"),
        (lambda d: d.update(data_dir=3), "data_dir", "expected a string"),
        (
            lambda d: d.update(accounts={"system_id": "x"}),
            "accounts",
            "expected an array of tables ([[accounts]])",
        ),
        (
            lambda d: d["accounts"][0].update(senders="0212345678"),
            "accounts[0].senders",
            "expected an array",
        ),
        (
            lambda d: d["accounts"][1].update(bind_types=["transmiter"]),
            "accounts[1].bind_types[0]",
            "did you mean 'transmitter'?",
        ),
        (
            lambda d: d["carriers"][0].update(concat_method="udh"),
            "carriers[0].concat_method",
            "must be one of udh8, udh16, sar, payload",
        ),
        (
            lambda d: d["carriers"][2].update(id_policy="hex"),
            "carriers[2].id_policy",
            "unknown message-id policy",
        ),
    ],
)
def test_wrong_type_is_named(write: Any, mutate: Any, key: str, fragment: str) -> None:
    """A value of the wrong type or outside its choices names the key and what was expected."""
    doc = base_doc()
    mutate(doc)
    error = load_error(write(doc))
    assert error.key == key
    assert fragment in error.message


def test_integer_is_accepted_where_a_float_is_expected(write: Any) -> None:
    """TOML `grace_s = 10` is a float of 10 seconds."""
    doc = base_doc()
    doc["server"]["grace_s"] = 10
    config = load_config(write(doc))
    assert config.server.grace_s == 10.0
    assert isinstance(config.server.grace_s, float)


@pytest.mark.parametrize(
    ("mutate", "key", "fragment"),
    [
        (lambda d: d["server"].update(port=70000), "server.port", "must be 0..65535"),
        (lambda d: d["carriers"][0].update(port=0), "carriers[0].port", "must be 1..65535"),
        (lambda d: d["server"].update(window=0), "server.window", "must be >= 1"),
        (lambda d: d["server"].update(response_timeout_s=0), "server.response_timeout_s", "> 0"),
        (
            lambda d: d.update(retry={"backoff_min_s": 5, "backoff_max_s": 1}),
            "retry.backoff_max_s",
            ">= backoff_min_s",
        ),
        (
            lambda d: d["carriers"][0].update(reconnect_min_s=60.0),
            "carriers[0].reconnect_max_s",
            ">= reconnect_min_s",
        ),
        (
            lambda d: d["carriers"][0].update(password="123456789"),
            "carriers[0].password",
            "0..8 octets",
        ),
        (lambda d: d["carriers"][0].update(name="SKT"), "carriers[0].name", "[a-z0-9_-]+"),
        (
            lambda d: d["accounts"][0].update(system_id="x" * 16),
            "accounts[0].system_id",
            "1..15 octets",
        ),
        (
            lambda d: d["accounts"][0].update(bind_types=[]),
            "accounts[0].bind_types",
            "must not be empty",
        ),
        (lambda d: d["routes"][0].update(prefix="01x"), "routes[0].prefix", "digits only"),
        (lambda d: d["routes"][0].update(carriers=[]), "routes[0].carriers", "must not be empty"),
        (lambda d: d["carriers"][1].pop("port"), "carriers[1].port", "required key is missing"),
        (lambda d: d.pop("routes"), "routes", "required key is missing"),
        (lambda d: d.update(routes=[]), "routes", "at least one [[routes]]"),
        (lambda d: d["server"].update(max_pdu_bytes=8), "server.max_pdu_bytes", "must be 16.."),
    ],
)
def test_out_of_range_value_is_named(write: Any, mutate: Any, key: str, fragment: str) -> None:
    """Values out of range, missing required keys and empty lists name the key."""
    doc = base_doc()
    mutate(doc)
    error = load_error(write(doc))
    assert error.key == key
    assert fragment in error.message


def test_ephemeral_ports_are_allowed_for_listeners(write: Any) -> None:
    """Port 0 (tests) is valid for [server] and [metrics]."""
    config = load_config(write(base_doc()))
    assert config.server.port == 0
    assert config.metrics.port == 0


def test_invalid_toml_and_missing_file_are_one_line(write: Any, tmp_path: Path) -> None:
    """Syntax errors and unreadable files name the file; no traceback-worthy exception."""
    path = write("server = {port = \n")
    error = load_error(path)
    assert str(error).startswith(f"{path}: invalid TOML:")
    assert "\n" not in str(error)
    missing = tmp_path / "nope.toml"
    assert str(load_error(missing)) == f"{missing}: cannot read: No such file or directory"


def test_config_error_is_a_relay_error() -> None:
    """ConfigError sits in the protocol.errors hierarchy (style guide §5.1)."""
    assert issubclass(ConfigError, RelayError)


# ----------------------------------------------------------------------------- cross-references


def test_route_to_missing_carrier_is_named(write: Any) -> None:
    """A route naming an unknown carrier names routes[i].carriers[j]."""
    doc = base_doc()
    doc["routes"].append({"prefix": "019", "carriers": ["lgu", "lg"]})
    path = write(doc)
    assert str(load_error(path)) == (
        f"{path}: routes[1].carriers[1]: unknown carrier 'lg' (did you mean 'lgu'?) "
        "(known: skt, kt, lgu)"
    )


def test_route_to_missing_account_is_named(write: Any) -> None:
    """A route naming an unknown account names routes[i].accounts[j]."""
    doc = base_doc()
    doc["routes"].append({"accounts": ["app1", "app3"], "carriers": ["kt"]})
    error = load_error(write(doc))
    assert error.key == "routes[1].accounts[1]"
    assert "unknown account 'app3'" in error.message


@pytest.mark.parametrize(
    ("mutate", "key", "fragment"),
    [
        (
            lambda d: d["carriers"].append(dict(d["carriers"][0])),
            "carriers[3].name",
            "duplicate name 'skt' (also carriers[0])",
        ),
        (
            lambda d: d["accounts"].append(dict(d["accounts"][0])),
            "accounts[2].system_id",
            "duplicate system_id 'app1' (also accounts[0])",
        ),
        (
            lambda d: d["routes"][0].update(carriers=["skt", "kt", "skt"]),
            "routes[0].carriers[2]",
            "repeats item [0] ('skt')",
        ),
        (
            lambda d: d["accounts"][0].update(senders=["0212345678", "0212345678"]),
            "accounts[0].senders[1]",
            "repeats item [0]",
        ),
        (
            lambda d: d["routes"].append({"prefix": "", "carriers": ["kt"]}),
            "routes[1]",
            "same prefix '' for every account as routes[0]",
        ),
        (
            lambda d: d["routes"].extend(
                [
                    {"prefix": "010", "accounts": ["app1", "app2"], "carriers": ["kt"]},
                    {"prefix": "010", "accounts": ["app2"], "carriers": ["lgu"]},
                ]
            ),
            "routes[2]",
            "same prefix '010' for account 'app2' as routes[1]",
        ),
    ],
)
def test_duplicates_are_named(write: Any, mutate: Any, key: str, fragment: str) -> None:
    """Duplicate names, ids, list items and ambiguous routes are refused."""
    doc = base_doc()
    mutate(doc)
    error = load_error(write(doc))
    assert error.key == key
    assert fragment in error.message


# ----------------------------------------------------------------------------- sender numbers


@pytest.mark.parametrize(
    ("number", "fragment"),
    [
        ("05012345678", "050 call-forwarding"),
        ("0212345", "8..11 digits"),
        ("021234567890", "8..11 digits"),
        ("0301234567890", "8..12 digits"),
        ("02-1234-5678", "digits only"),
        ("02123456ab", "digits only"),
        ("+821012345678", "digits only"),
        ("158812345", "exactly 8 digits"),
        ("1588123", "exactly 8 digits"),
        ("12345678", "start with 0"),
        ("", "digits only"),
    ],
)
def test_bad_sender_number_is_named(write: Any, number: str, fragment: str) -> None:
    """korea-messaging.md §3 format rules; the error names the sender's index."""
    doc = base_doc()
    doc["accounts"][1]["senders"] = ["0311234567", number]
    error = load_error(write(doc))
    assert error.key == "accounts[1].senders[1]"
    assert fragment in error.message


def test_good_sender_numbers_are_accepted(write: Any) -> None:
    """Landline with area code, mobile, 070, 030 (12 digits), 15YY/16YY/18YY."""
    good = ["0212345678", "0311234567", "01012345678", "07012345678", "030123456789"]
    good += ["15881234", "16001234", "18001234"]
    doc = base_doc()
    doc["accounts"][0]["senders"] = good
    config = load_config(write(doc))
    assert config.accounts_by_id["app1"].senders == frozenset(good)


# ----------------------------------------------------------------------------- data_dir


def test_data_dir_is_relative_to_the_config_file_and_created(write: Any, tmp_path: Path) -> None:
    """A relative data_dir resolves against the file's directory, whatever the cwd."""
    doc = base_doc()
    doc["data_dir"] = "../state/relay"
    doc["store"] = {"path": "db/x.sqlite3"}
    path = write(doc)
    cwd = os.getcwd()
    os.chdir("/")
    try:
        config = load_config(path)
    finally:
        os.chdir(cwd)
    assert config.data_dir == tmp_path / "state" / "relay"
    assert config.data_dir.is_dir()
    assert config.store.path == tmp_path / "state" / "relay" / "db" / "x.sqlite3"


def test_absolute_store_path_is_kept(write: Any, tmp_path: Path) -> None:
    """An absolute store.path is used as is."""
    doc = base_doc()
    doc["store"] = {"path": str(tmp_path / "elsewhere.sqlite3")}
    assert load_config(write(doc)).store.path == tmp_path / "elsewhere.sqlite3"


def test_uncreatable_data_dir_is_named(write: Any, tmp_path: Path) -> None:
    """A data_dir under a regular file cannot be created (even as root)."""
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    doc = base_doc()
    doc["data_dir"] = str(blocker / "data")
    path = write(doc)
    error = load_error(path)
    assert error.key == "data_dir"
    assert str(error).startswith(f"{path}: data_dir: cannot create {blocker / 'data'}")


def test_write_failure_in_data_dir_is_named(
    write: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writability probe's OS error is reported against data_dir (any uid)."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("relayd.config.tempfile.TemporaryFile", refuse)
    path = write(base_doc())
    assert str(load_error(path)) == (
        f"{path}: data_dir: {tmp_path / 'conf' / 'data'} is not writable: Permission denied"
    )


def test_data_dir_that_is_a_file_is_named(write: Any, tmp_path: Path) -> None:
    """A data_dir that exists as a regular file is refused."""
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    doc = base_doc()
    doc["data_dir"] = str(blocker)
    error = load_error(write(doc))
    assert error.key == "data_dir"
    assert "is not a directory" in error.message


def test_unwritable_data_dir_is_named(write: Any, tmp_path: Path) -> None:
    """A read-only data_dir is refused. As root, chmod does not stop writes, so the
    same failure is provoked with a data_dir below a regular file instead."""
    doc = base_doc()
    if os.geteuid() == 0:
        blocker = tmp_path / "a-file"
        blocker.write_text("x")
        doc["data_dir"] = str(blocker / "sub" / "data")
    else:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        doc["data_dir"] = str(locked)
    try:
        error = load_error(write(doc))
    finally:
        if os.geteuid() != 0:
            (tmp_path / "locked").chmod(0o700)
    assert error.key == "data_dir"
    assert "Permission denied" in error.message or "Not a directory" in error.message


# ----------------------------------------------------------------------------- routing


def _routing_config(write: Any) -> Config:
    doc = base_doc()
    doc["routes"] = [
        {"prefix": "", "carriers": ["skt", "kt", "lgu"]},
        {"prefix": "", "accounts": ["app2"], "carriers": ["lgu"]},
        {"prefix": "010", "carriers": ["kt", "skt"]},
        {"prefix": "010", "accounts": ["app1"], "carriers": ["lgu", "kt"]},
        {"prefix": "0101", "carriers": ["skt"]},
        {"prefix": "019", "accounts": ["app1"], "carriers": ["lgu"]},
    ]
    return load_config(write(doc))


@pytest.mark.parametrize(
    ("account", "destination", "expected"),
    [
        # Generic routes only: the longest matching prefix wins.
        ("app2", "01023456789", ("kt", "skt")),
        ("app2", "01912345678", ("lgu",)),  # app2's own catch-all beats the generic one
        ("app9", "01912345678", ("skt", "kt", "lgu")),  # unknown account: generic routes
        ("app9", "01023456789", ("kt", "skt")),
        ("app9", "01012345678", ("skt",)),
        # Equal prefix: the account's route beats the generic one.
        ("app1", "01023456789", ("lgu", "kt")),
        # A longer generic prefix beats a shorter account-specific one.
        ("app1", "01012345678", ("skt",)),
        ("app1", "01912345678", ("lgu",)),
        ("app1", "0212345678", ("skt", "kt", "lgu")),
    ],
)
def test_route_for_precedence(write: Any, account: str, destination: str, expected: Any) -> None:
    """Longest prefix first; at equal prefix the account-specific route first."""
    assert _routing_config(write).route_for(account, destination) == expected


def test_route_for_without_match_is_empty(write: Any) -> None:
    """With no catch-all route, an unmatched destination has no carriers."""
    doc = base_doc()
    doc["routes"] = [{"prefix": "010", "carriers": ["skt"]}]
    config = load_config(write(doc))
    assert config.route_for("app1", "01912345678") == ()
    assert config.route_for("app1", "01012345678") == ("skt",)


# ----------------------------------------------------------------------------- carriers


def test_temporary_statuses_accept_ints_and_names(write: Any) -> None:
    """Extra temporary statuses are ints or CommandStatus names; the built-ins always apply."""
    doc = base_doc()
    doc["carriers"][0]["temporary_statuses"] = ["ESME_RSUBMITFAIL", 0x401, "esme_rinvdstadr"]
    carrier = load_config(write(doc)).carriers[0]
    assert carrier.temporary_statuses == {
        CommandStatus.ESME_RSUBMITFAIL,
        0x401,
        CommandStatus.ESME_RINVDSTADR,
    }
    assert carrier.is_temporary(CommandStatus.ESME_RTHROTTLED)
    assert carrier.is_temporary(CommandStatus.ESME_RX_T_APPN)
    assert carrier.is_temporary(0x401)
    assert not carrier.is_temporary(CommandStatus.ESME_RINVSRCADR)


def test_unknown_status_name_is_named(write: Any) -> None:
    """An unknown CommandStatus name names the list index and suggests a spelling."""
    doc = base_doc()
    doc["carriers"][0]["temporary_statuses"] = [8, "ESME_RSUBMITFAL"]
    error = load_error(write(doc))
    assert error.key == "carriers[0].temporary_statuses[1]"
    assert "did you mean 'ESME_RSUBMITFAIL'?" in error.message


def test_session_configs_map_zero_to_never(write: Any) -> None:
    """0 = never in TOML becomes None in SessionConfig; windows go to the right side."""
    doc = base_doc()
    doc["server"].update(enquire_link_interval_s=0, inactivity_timeout_s=0, receipt_window=7)
    doc["carriers"][0].update(enquire_link_interval_s=0, window=33)
    config = load_config(write(doc))
    upstream = config.server.session_config()
    assert isinstance(upstream, SessionConfig)
    assert upstream.enquire_link_interval_s is None
    assert upstream.inactivity_timeout_s is None
    assert upstream.window_size == 7
    assert upstream.system_id == "RELAYD"
    carrier = config.carriers[0].session_config()
    assert carrier.enquire_link_interval_s is None
    assert carrier.window_size == 33


def test_sections_built_in_code_are_converted_and_checked() -> None:
    """Direct construction runs the same parsers: strings become enums, bad values raise."""
    carrier = CarrierConfig(
        name="x",
        port=1,
        system_id="s",
        password="p",
        concat_method="sar",  # type: ignore[arg-type]
        temporary_statuses=["ESME_RSUBMITFAIL"],  # type: ignore[arg-type]
    )
    assert carrier.concat_method is ConcatMethod.SAR
    assert carrier.temporary_statuses == frozenset({CommandStatus.ESME_RSUBMITFAIL})
    assert "relaypw" not in repr(dataclasses.replace(carrier, password="relaypw"))
    with pytest.raises(ConfigError) as info:
        ServerConfig(window=0)
    assert info.value.key == "window"
    account = AccountConfig(system_id="a", password_hash=PW_HASH)
    assert account.bind_types == frozenset(BindType)
    assert "transmitter" in account.bind_types


# ----------------------------------------------------------------------------- passwords


def test_password_round_trip() -> None:
    """A hash verifies its password and nothing else; salts differ per hash."""
    encoded = hash_password("pw1", **FAST)
    assert encoded.startswith("scrypt$16$1$1$")
    assert verify_password("pw1", encoded)
    assert not verify_password("pw2", encoded)
    assert not verify_password("", encoded)
    assert hash_password("pw1", **FAST) != encoded
    parsed = passwords.parse(encoded)
    assert (parsed.n, parsed.r, parsed.p, len(parsed.salt), len(parsed.digest)) == (
        16,
        1,
        1,
        16,
        32,
    )
    assert parsed.encode() == encoded


def test_default_cost_is_rfc7914_interactive() -> None:
    """Defaults N=2**14, r=8, p=1, and the shipped demo hash uses them."""
    assert (passwords.DEFAULT_N, passwords.DEFAULT_R, passwords.DEFAULT_P) == (2**14, 8, 1)
    raw = tomllib.loads(SHIPPED.read_text(encoding="utf-8"))
    demo = passwords.parse(raw["accounts"][0]["password_hash"])
    assert (demo.n, demo.r, demo.p) == (2**14, 8, 1)


@pytest.mark.parametrize(
    "encoded",
    [
        "",
        "demo",
        "scrypt$16$1$1$c2FsdHNhbHQ",  # too few fields
        "bcrypt$16$1$1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNo",
        "scrypt$15$1$1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNo",  # N not a power of two
        "scrypt$1099511627776$8$1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNo",  # N too large
        "scrypt$16$0$1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNo",  # r = 0
        "scrypt$16$1$x$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNo",
        "scrypt$+16$1$1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNo",
        "scrypt$16$1$1$not*base64!$aGFzaGhhc2hoYXNo",
        "scrypt$16$1$1$c2FsdA$aGFzaGhhc2hoYXNo",  # salt of 4 bytes
    ],
)
def test_malformed_hash_never_verifies(encoded: str) -> None:
    """A broken stored hash lets nobody in and raises nothing; parse() says why."""
    assert not verify_password("demo", encoded)
    with pytest.raises(ConfigError):
        passwords.parse(encoded)


def test_hash_password_rejects_bad_cost() -> None:
    """Out-of-range cost parameters are refused when hashing."""
    with pytest.raises(ValueError, match="power of two"):
        hash_password("x", n=1000)


def test_bad_password_hash_in_config_is_named(write: Any) -> None:
    """accounts[i].password_hash must parse; the error names it and never echoes it."""
    doc = base_doc()
    doc["accounts"][1]["password_hash"] = "demo"
    error = load_error(write(doc))
    assert error.key == "accounts[1].password_hash"
    assert "not a scrypt hash" in error.message
    assert "'demo'" not in str(error)


# ----------------------------------------------------------------------------- reload


def test_reload_applies_account_and_route_changes(write: Any) -> None:
    """SIGHUP reload: accounts and routes may change; other sections are carried over."""
    doc = base_doc()
    path = write(doc)
    current = load_config(path)
    changed = copy.deepcopy(doc)
    changed["accounts"][0]["senders"] = ["0212345678", "15881234"]
    changed["accounts"].append({"system_id": "app3", "password_hash": PW_HASH})
    changed["routes"].append({"prefix": "010", "accounts": ["app3"], "carriers": ["kt"]})
    write(changed)
    new = reload_accounts_and_routes(path, current)
    assert new is not current
    assert "app3" in new.accounts_by_id
    assert "app3" not in current.accounts_by_id
    assert "15881234" in new.accounts_by_id["app1"].senders
    assert new.route_for("app3", "01012345678") == ("kt",)
    assert new.server == current.server
    assert new.carriers == current.carriers


def test_reload_refuses_a_server_port_change(write: Any) -> None:
    """A changed listener port needs a restart; the error names the key."""
    doc = base_doc()
    path = write(doc)
    current = load_config(path)
    doc["server"]["port"] = 2775
    write(doc)
    with pytest.raises(ConfigError) as info:
        reload_accounts_and_routes(path, current)
    assert info.value.key == "server.port"
    assert str(info.value) == (
        f"{path}: server.port: changed from 0 to 2775; restart relayd to apply it "
        "(nothing was reloaded)"
    )


def test_reload_refuses_carrier_changes_without_echoing_secrets(write: Any) -> None:
    """Carrier links are built at start: a changed carrier key needs a restart."""
    doc = base_doc()
    path = write(doc)
    current = load_config(path)
    doc["carriers"][1]["password"] = "newpw"
    write(doc)
    with pytest.raises(ConfigError) as info:
        reload_accounts_and_routes(path, current)
    assert info.value.key == "carriers[1].password"
    assert "newpw" not in str(info.value)
    assert "relaypw" not in str(info.value)
    doc["carriers"][1]["password"] = "relaypw"
    doc["carriers"].pop()
    doc["routes"][0]["carriers"] = ["skt", "kt"]
    write(doc)
    with pytest.raises(ConfigError) as info:
        reload_accounts_and_routes(path, current)
    assert info.value.key == "carriers"
    assert "changed from 3 to 2 entries" in info.value.message


def test_reload_reports_an_invalid_file(write: Any) -> None:
    """An invalid file on reload is the same one-line error as at start-up."""
    doc = base_doc()
    path = write(doc)
    current = load_config(path)
    doc["routes"][0]["carriers"] = ["sk"]
    write(doc)
    with pytest.raises(ConfigError) as info:
        reload_accounts_and_routes(path, current)
    assert info.value.key == "routes[0].carriers[0]"


# ----------------------------------------------------------------------------- [admin], [log]

TOKEN = "w" * 16 + "-write-token"
READ_TOKEN = "r" * 16 + "-read-token"


def test_admin_token_file_is_relative_to_the_config_file(write: Any, tmp_path: Path) -> None:
    """A relative token_file is resolved against the file's directory and read."""
    doc = base_doc()
    doc["admin"] = {"token_file": "secrets/admin.token", "read_token": READ_TOKEN}
    path = write(doc)
    (path.parent / "secrets").mkdir()
    (path.parent / "secrets" / "admin.token").write_text(TOKEN + "\nignored\n")
    config = load_config(path)
    assert config.admin.token_file == str(path.parent / "secrets" / "admin.token")
    assert config.admin.tokens() == (TOKEN, READ_TOKEN)
    assert TOKEN not in repr(config)
    assert READ_TOKEN not in repr(config)


@pytest.mark.parametrize(
    ("admin", "fragment"),
    [
        ({"token": "short"}, "admin.token: a token is at least 16 visible ASCII"),
        ({"token": "has a space in it ok"}, "admin.token: a token is at least 16"),
        ({"token": TOKEN, "token_file": "t"}, "admin.token_file: set token or token_file"),
        ({"token": TOKEN, "read_token": TOKEN}, "admin.read_token: must differ from token"),
        ({"token_file": "missing.token"}, "admin.token_file: cannot read"),
        ({"tokn": TOKEN}, "admin.tokn: unknown key (did you mean 'token'?)"),
        ({"max_request_bytes": 10}, "admin.max_request_bytes: must be 1024..1048576"),
    ],
)
def test_bad_admin_settings_are_named(write: Any, admin: dict[str, Any], fragment: str) -> None:
    doc = base_doc()
    doc["admin"] = admin
    error = load_error(write(doc))
    assert fragment in str(error)
    assert TOKEN not in str(error)


def test_empty_token_file_is_named(write: Any) -> None:
    doc = base_doc()
    doc["admin"] = {"token_file": "empty.token"}
    path = write(doc)
    (path.parent / "empty.token").write_text("\n")
    assert "admin.token_file: " in str(load_error(path))
    assert "holds no token" in str(load_error(path))


@pytest.mark.parametrize(
    ("log", "fragment"),
    [
        ({"level": "verbose"}, "log.level: must be one of debug, info, warning, error, critical"),
        ({"format": "xml"}, "log.format: must be one of text, json"),
    ],
)
def test_bad_log_settings_are_named(write: Any, log: dict[str, Any], fragment: str) -> None:
    doc = base_doc()
    doc["log"] = log
    assert fragment in str(load_error(write(doc)))


def test_admin_tokens_need_a_restart(write: Any) -> None:
    """SIGHUP reloads accounts and routes only; a token change is refused, unechoed."""
    doc = base_doc()
    path = write(doc)
    config = load_config(path)
    doc["admin"] = {"token": TOKEN}
    write(doc)
    with pytest.raises(ConfigError) as info:
        reload_accounts_and_routes(path, config)
    assert "admin.token: changed; restart relayd" in str(info.value)
    assert TOKEN not in str(info.value)
