"""relayd's configuration: one TOML file → frozen dataclasses, validated once.

Theory of operation
-------------------
``load_config(path)`` reads the file with :mod:`tomllib` and builds a
:class:`Config` whose sections are frozen, slotted dataclasses (style guide §9,
§11). Everything that can be wrong with a configuration is found here, at
start-up, and reported as **one line** naming the file and the full key path::

    conf/relayd.toml: carriers[1].windw: unknown key (did you mean 'window'?)
    conf/relayd.toml: routes[0].carriers[2]: unknown carrier 'lg' (known: skt, kt, lgu)
    conf/relayd.toml: data_dir: /srv/relayd is not writable: Permission denied

Indices in key paths count ``[[array]]`` tables and array items from 0, in
file order. The relay never reads the file again except on SIGHUP, through
:func:`reload_accounts_and_routes`, which applies new accounts and routes and
refuses every other change (those need a restart).

How a key is declared: every TOML key is a dataclass field made with
:func:`_spec` metadata holding a *parser* ``(value, key) -> value``. A
section's ``__post_init__`` runs each field's parser over the value it was
given, so the same checks and conversions apply whether the section came from
TOML (``"udh8"`` → :class:`ConcatMethod.UDH8`, ``[..]`` → ``tuple``) or was
built in code by a test (``CarrierConfig(name="x", port=1, ...)``). Parsers
accept their own output, so conversion is idempotent. Fields without parser
metadata are derived, not configured (``Config.accounts_by_id``).

Units are in the key names (style guide §7): ``_s`` seconds, ``_bytes`` bytes,
``_per_s`` per second; plain counts are counts. TOML integers are accepted
where a float is expected (``grace_s = 10``); floats are not accepted for
integers. Where a timer may be off, ``0`` means never (TOML has no null); the
``session_config()`` helpers translate that to ``None`` for
:class:`protocol.config.SessionConfig`.

Paths: a relative ``data_dir`` is resolved against the directory of the
configuration file (not the working directory), as nginx and PostgreSQL
resolve paths against their configuration, so ``relayd run -c
/etc/relayd/relayd.toml`` behaves the same from any directory. A relative
``store.path`` is resolved against ``data_dir``. The loader creates
``data_dir`` if it is missing and proves it writable by creating a temporary
file in it.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
import tempfile
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, TypeVar

from protocol.config import SessionConfig
from protocol.constants import HEADER_BYTES, CommandStatus
from protocol.errors import RelayError
from protocol.msgid import IdPolicy, policy_from_name
from protocol.segment import ConcatMethod
from protocol.text import DefaultAlphabet
from relayd import passwords

__all__ = [
    "BUILTIN_TEMPORARY_STATUSES",
    "AccountConfig",
    "AccountType",
    "AdminConfig",
    "BindType",
    "CarrierBindType",
    "CarrierConfig",
    "Config",
    "ConfigError",
    "LogConfig",
    "LogFormat",
    "LogLevel",
    "MetricsConfig",
    "RetryConfig",
    "RouteConfig",
    "ServerConfig",
    "StoreConfig",
    "WalConfig",
    "load_config",
    "reload_accounts_and_routes",
]


# ----------------------------------------------------------------------------- errors


class ConfigError(RelayError):
    """A bad configuration, found at start-up (or on SIGHUP reload).

    ``str(error)`` is one line, ``"<file>: <key path>: <what is wrong>"``, fit to
    print instead of a traceback.

    Attributes:
        message: what is wrong, without file or key.
        key: the full key path (``carriers[1].window``), or None for the file as a whole.
        source: the configuration file as given, or None when not loading a file.
    """

    def __init__(self, message: str, *, key: str | None = None, source: str | None = None) -> None:
        self.message = message
        self.key = key or None
        self.source = source
        super().__init__(": ".join(part for part in (source, self.key, message) if part))

    def within(self, prefix: str) -> ConfigError:
        """The same error with its key placed under ``prefix`` (a table's key path)."""
        if not prefix:
            return self
        key = prefix if self.key is None else f"{prefix}.{self.key}"
        return ConfigError(self.message, key=key, source=self.source)

    def located(self, source: str) -> ConfigError:
        """The same error naming the file it came from."""
        return ConfigError(self.message, key=self.key, source=source)


# ----------------------------------------------------------------------------- parsers

Parser = Callable[[Any, str], Any]
"""``(value, key) -> converted value``; raises ``ConfigError(key=key)``."""

_E = TypeVar("_E", bound=Enum)

_TOML_KINDS: Final[Mapping[type, str]] = MappingProxyType(
    {str: "string", bool: "boolean", int: "integer", float: "float", list: "array", dict: "table"}
)


def _kind(value: Any) -> str:
    """How a TOML value is described in an error: its TOML type, and the value if short."""
    name = _TOML_KINDS.get(type(value), type(value).__name__)
    if isinstance(value, (str, bool, int, float)):
        shown = repr(value) if not isinstance(value, bool) else str(value).lower()
        if len(shown) > 40:
            shown = shown[:37] + "..."
        return f"{name} {shown}"
    return name


def _did_you_mean(word: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _int(lo: int, hi: int | None = None) -> Parser:
    def parse(value: Any, key: str) -> int:
        # bool is an int subclass in Python; TOML true is not a number.
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(f"expected an integer, got {_kind(value)}", key=key)
        if value < lo or (hi is not None and value > hi):
            bound = f"{lo}..{hi}" if hi is not None else f">= {lo}"
            raise ConfigError(f"must be {bound}, got {value}", key=key)
        return int(value)

    return parse


def _float(lo: float = 0.0, *, above: bool = False, hi: float | None = None) -> Parser:
    """A finite number >= lo (> lo with ``above``), <= hi; TOML integers are accepted."""

    def parse(value: Any, key: str) -> float:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ConfigError(f"expected a number, got {_kind(value)}", key=key)
        number = float(value)
        if not math.isfinite(number):
            raise ConfigError(f"must be a finite number, got {value}", key=key)
        if (number <= lo if above else number < lo) or (hi is not None and number > hi):
            bound = f"> {lo:g}" if above else f">= {lo:g}"
            if hi is not None:
                bound += f" and <= {hi:g}"
            raise ConfigError(f"must be {bound}, got {value}", key=key)
        return number

    return parse


def _bool(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"expected true or false, got {_kind(value)}", key=key)
    return value


def _str(
    min_len: int = 0,
    max_len: int | None = None,
    *,
    pattern: str | None = None,
    what: str = "",
    latin1: bool = False,
) -> Parser:
    """A string of ``min_len..max_len`` characters (octets with ``latin1``),
    matching ``pattern`` in full; ``what`` describes the pattern in errors."""
    regex = re.compile(pattern, re.ASCII) if pattern is not None else None

    def parse(value: Any, key: str) -> str:
        if not isinstance(value, str):
            raise ConfigError(f"expected a string, got {_kind(value)}", key=key)
        length = len(value)
        if latin1:
            # SMPP C-Octet Strings (SMPP 3.4 §3.1): one octet per character, no NUL.
            try:
                length = len(value.encode("latin-1"))
            except UnicodeEncodeError:
                raise ConfigError(f"must be Latin-1 text, got {value!r}", key=key) from None
            if "\x00" in value:
                raise ConfigError("must not contain NUL", key=key)
        if length < min_len or (max_len is not None and length > max_len):
            if max_len is None:
                bound = f"at least {min_len}"
            elif min_len == max_len:
                bound = f"exactly {min_len}"
            else:
                bound = f"{min_len}..{max_len}"
            unit = "octets" if latin1 else "characters"
            raise ConfigError(f"must be {bound} {unit}, got {length}", key=key)
        if regex is not None and not regex.fullmatch(value):
            raise ConfigError(f"must be {what or pattern}, got {value!r}", key=key)
        return value

    return parse


def _enum(enum_type: type[_E]) -> Parser:
    values = [str(member.value) for member in enum_type]

    def parse(value: Any, key: str) -> _E:
        if isinstance(value, enum_type):
            return value
        if not isinstance(value, str):
            raise ConfigError(f"expected a string, got {_kind(value)}", key=key)
        try:
            return enum_type(value)
        except ValueError:
            raise ConfigError(
                f"must be one of {', '.join(values)}; got {value!r}{_did_you_mean(value, values)}",
                key=key,
            ) from None

    return parse


def _path(value: Any, key: str) -> Path:
    if isinstance(value, Path):
        return value
    return Path(_str(1, what="a path")(value, key))


def _items(value: Any, key: str, *, nonempty: bool = False) -> list[tuple[str, Any]]:
    """The items of a TOML array (or a tuple/frozenset built in code) with their key paths."""
    if isinstance(value, frozenset):
        value = sorted(value, key=repr)
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"expected an array, got {_kind(value)}", key=key)
    if nonempty and not value:
        raise ConfigError("must not be empty", key=key)
    return [(f"{key}[{i}]", item) for i, item in enumerate(value)]


def _unique_items(item: Parser, *, nonempty: bool = False) -> Callable[[Any, str], list[Any]]:
    """An array whose items each pass ``item`` and are all different."""

    def parse(value: Any, key: str) -> list[Any]:
        seen: dict[Any, int] = {}
        out: list[Any] = []
        for i, (item_key, raw) in enumerate(_items(value, key, nonempty=nonempty)):
            parsed = item(raw, item_key)
            if parsed in seen:
                raise ConfigError(f"repeats item [{seen[parsed]}] ({raw!r})", key=item_key)
            seen[parsed] = i
            out.append(parsed)
        return out

    return parse


def _tuple_of(item: Parser, *, nonempty: bool = False) -> Parser:
    unique = _unique_items(item, nonempty=nonempty)
    return lambda value, key: tuple(unique(value, key))


def _frozenset_of(item: Parser, *, nonempty: bool = False) -> Parser:
    unique = _unique_items(item, nonempty=nonempty)
    return lambda value, key: frozenset(unique(value, key))


def _spec(parse: Parser, *, secret: bool = False) -> Mapping[str, Any]:
    """The field metadata that makes a dataclass field a configuration key.

    ``parse`` checks and converts the value; ``secret`` keeps it out of error
    messages (give the field ``repr=False`` too). A field without a default is
    a required key.
    """
    return MappingProxyType({"parse": parse, "secret": secret})


def _toml_fields(cls: type) -> tuple[dataclasses.Field[Any], ...]:
    """The fields of a config dataclass that are TOML keys, in declaration order."""
    return tuple(f for f in dataclasses.fields(cls) if "parse" in f.metadata)


def _convert_fields(obj: Any) -> None:
    """Run every key's parser over the value ``obj`` was built with (in ``__post_init__``)."""
    for f in _toml_fields(type(obj)):
        object.__setattr__(obj, f.name, f.metadata["parse"](getattr(obj, f.name), f.name))


_T = TypeVar("_T")


def _build(cls: type[_T], table: Any, where: str, **extra: Any) -> _T:
    """Build the config dataclass ``cls`` from a TOML table found at key path ``where``.

    Unknown keys and missing required keys are reported here; types and ranges
    by the field parsers in ``cls.__post_init__``. Every error's key is made
    absolute by prefixing ``where``.
    """
    if isinstance(table, cls):
        return table
    if not isinstance(table, dict):
        raise ConfigError(f"expected a table, got {_kind(table)}", key=where)
    known = {f.name: f for f in _toml_fields(cls)}
    for name in table:
        if name not in known:
            raise ConfigError(f"unknown key{_did_you_mean(name, known)}", key=name).within(where)
    for name, f in known.items():
        if name not in table and f.default is dataclasses.MISSING:
            raise ConfigError("required key is missing", key=name).within(where)
    try:
        return cls(**table, **extra)
    except ConfigError as exc:
        raise exc.within(where) from None


def _table(cls: type[_T]) -> Parser:
    return lambda value, key: _build(cls, value, key)


def _array_of_tables(cls: type[_T]) -> Parser:
    def parse(value: Any, key: str) -> tuple[_T, ...]:
        if isinstance(value, dict):
            name = key.rsplit(".", 1)[-1]
            raise ConfigError(
                f"expected an array of tables ([[{name}]]), got a single table ([{name}])", key=key
            )
        return tuple(_build(cls, item, item_key) for item_key, item in _items(value, key))

    return parse


# ----------------------------------------------------------------------------- value rules

# SMPP 3.4 §4.1.1 (bind_transmitter): system_id C-Octet String of at most 16
# octets including the NUL, password at most 9, system_type at most 13.
_SYSTEM_ID_MAX: Final = 15
_PASSWORD_MAX: Final = 8
_SYSTEM_TYPE_MAX: Final = 12

_system_id = _str(1, _SYSTEM_ID_MAX, latin1=True)
_host = _str(1, what="a host name or address")
_port_or_ephemeral = _int(0, 65535)  # 0 = let the OS choose (tests)
_port = _int(1, 65535)
_digits = _str(0, 20, pattern=r"[0-9]*", what="digits only")


def _sender_number(value: Any, key: str) -> str:
    """A registered sender number, per korea-messaging.md §3 (발신번호 사전등록제).

    Digits only, 8–11 digits (030 numbers up to 12); 15YY/16YY/18YY
    representative numbers exactly 8; 050 call-forwarding numbers cannot be
    registered. Other numbers start with 0 (area code, 010, 070...): the
    representative numbers are the only Korean numbers registrable without one.
    """
    number: str = _str()(value, key)
    if not (number.isascii() and number.isdigit()):
        raise ConfigError(
            f"sender numbers are digits only (no '-', '+' or spaces), got {number!r}", key=key
        )
    if number.startswith("050"):
        raise ConfigError(
            f"050 call-forwarding numbers cannot be registered as senders, got {number!r}", key=key
        )
    if number[:2] in ("15", "16", "18"):
        if len(number) != 8:
            raise ConfigError(
                f"15YY/16YY/18YY representative numbers are exactly 8 digits, got {number!r}",
                key=key,
            )
        return number
    if not number.startswith("0"):
        raise ConfigError(
            "sender numbers start with 0 (with the area code) or are 15YY/16YY/18YY numbers, "
            f"got {number!r}",
            key=key,
        )
    longest = 12 if number.startswith("030") else 11
    if not 8 <= len(number) <= longest:
        raise ConfigError(
            f"sender numbers are 8..{longest} digits, got {len(number)} ({number!r})", key=key
        )
    return number


def _password_hash(value: Any, key: str) -> str:
    encoded: str = _str(1)(value, key)
    try:
        passwords.parse(encoded)
    except ConfigError as exc:
        raise ConfigError(exc.message, key=key) from None
    return encoded


# Admin tokens travel in an HTTP header (Authorization: Bearer ...): visible
# ASCII, no spaces. 16 characters at least, so a token cannot be guessed by
# hand; `openssl rand -hex 32` or `python -c 'import secrets; print(secrets.token_urlsafe())'`.
_TOKEN_MIN: Final = 16
_TOKEN_RE: Final = re.compile(r"[!-~]+")


def _token(value: Any, key: str) -> str:
    """An admin token: "" (none) or >= 16 visible ASCII characters."""
    token: str = _str()(value, key)
    if token and (len(token) < _TOKEN_MIN or not _TOKEN_RE.fullmatch(token)):
        raise ConfigError(
            f"a token is at least {_TOKEN_MIN} visible ASCII characters without spaces", key=key
        )
    return token


def _id_policy(value: Any, key: str) -> str:
    """A :data:`protocol.msgid.PRESETS` name, normalised as policy_from_name reads it."""
    name: str = _str(1)(value, key)
    try:
        policy_from_name(name)
    except ValueError as exc:
        raise ConfigError(str(exc), key=key) from None
    return name.strip().lower().replace("-", "_")


def _command_status(value: Any, key: str) -> int:
    """A command_status: an integer (0..0xFFFFFFFF) or a CommandStatus name."""
    if isinstance(value, str):
        try:
            return int(CommandStatus[value.strip().upper()])
        except KeyError:
            raise ConfigError(
                f"unknown command_status name {value!r}"
                f"{_did_you_mean(value.upper(), CommandStatus.__members__)}",
                key=key,
            ) from None
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(
            f"expected an integer or a CommandStatus name, got {_kind(value)}", key=key
        )
    status: int = _int(0, 0xFFFFFFFF)(value, key)
    return status


def _check_order(obj: Any, low: str, high: str) -> None:
    if getattr(obj, low) > getattr(obj, high):
        raise ConfigError(f"must be >= {low} ({getattr(obj, low):g})", key=high)


def _never_if_zero(value: float) -> float | None:
    return value if value > 0 else None


# ----------------------------------------------------------------------------- enums


class BindType(StrEnum):
    """A bind an upstream account may use (SMPP 3.4 §4.1)."""

    TRANSMITTER = "transmitter"
    """bind_transmitter: submits only."""
    RECEIVER = "receiver"
    """bind_receiver: receipts (deliver_sm) only."""
    TRANSCEIVER = "transceiver"
    """bind_transceiver: both."""


class AccountType(StrEnum):
    """The customer class of an account (korea-messaging.md §1, §4)."""

    PUBLIC = "public"
    """A public agency."""
    ENTERPRISE = "enterprise"
    """A business sending its own traffic."""
    CERTIFIED_RESELLER = "certified_reseller"
    """A reseller with 전송자격인증 (required for ad traffic since 2024-12-01)."""


class CarrierBindType(StrEnum):
    """How relayd binds to a carrier SMSC."""

    TRANSCEIVER = "transceiver"
    """One bind_transceiver per connection: submits and receipts on the same bind."""
    TRANSMITTER_RECEIVER = "transmitter+receiver"
    """A bind_transmitter and a bind_receiver per connection pair, for SMSCs
    without transceiver support (SMPP 3.3 heritage)."""


class LogLevel(StrEnum):
    """relayd's log level (:mod:`relayd.logs`); changeable at run time."""

    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"


class LogFormat(StrEnum):
    """How log lines are written."""

    TEXT = "text"
    """``time LEVEL logger message event=NAME``"""
    JSON = "json"
    """One JSON object per line (ts, level, logger, msg, fields, exc)."""


# SMPP 3.4 §5.1.3 statuses a carrier may answer that do not condemn the
# message: it is requeued (with backoff) instead of ending in a final receipt.
# ESME_RTHROTTLED / ESME_RMSGQFUL are the SMSC's flow control, ESME_RSYSERR a
# fault on its side, ESME_RX_T_APPN the spec's "temporary app error".
BUILTIN_TEMPORARY_STATUSES: Final[frozenset[int]] = frozenset(
    {
        CommandStatus.ESME_RTHROTTLED,
        CommandStatus.ESME_RMSGQFUL,
        CommandStatus.ESME_RSYSERR,
        CommandStatus.ESME_RX_T_APPN,
    }
)


# ----------------------------------------------------------------------------- sections


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerConfig:
    """``[server]``: the upstream SMPP listener, where relayd plays the SMSC."""

    host: str = field(default="127.0.0.1", metadata=_spec(_host))
    """Address to listen on. Loopback by default: exposing the relay is a decision."""

    port: int = field(default=2775, metadata=_spec(_port_or_ephemeral))
    """TCP port; 2775 is SMPP's IANA-registered port. 0 = ephemeral (tests)."""

    system_id: str = field(default="RELAYD", metadata=_spec(_system_id))
    """The system_id our bind_*_resp carries (SMPP 3.4 §4.1.2; at most 15 octets)."""

    window: int = field(default=512, metadata=_spec(_int(1)))
    """Max unanswered submits per upstream bind (count); beyond it the submit is
    answered ESME_RTHROTTLED. Bounds what one bind can keep in flight against the
    WAL's group commit; 512 covers a 100k msg/s client at ~5 ms per fsync batch."""

    receipt_window: int = field(default=64, metadata=_spec(_int(1)))
    """Max deliver_sm (receipts) we keep unanswered per upstream bind (count).
    SMPP 3.4 §2.5 suggests 10; apps answer receipts quickly, 64 keeps a
    round-trip of receipts in flight without flooding a slow app."""

    max_connections: int = field(default=1024, metadata=_spec(_int(1)))
    """Max simultaneous upstream TCP connections (count); beyond it new ones are
    closed at once. Bounds file descriptors and per-connection memory."""

    enquire_link_interval_s: float = field(default=30.0, metadata=_spec(_float()))
    """Seconds of silence on a bind before we send enquire_link (SMPP 3.4 §7.2
    enquire_link_timer); 0 = never. 30 s as Jasmin, below typical NAT idle cut-offs."""

    inactivity_timeout_s: float = field(default=300.0, metadata=_spec(_float()))
    """Seconds with nothing received before the bind is closed (SMPP 3.4 §7.2
    inactivity_timer); 0 = never. 300 s as Jasmin."""

    session_init_timeout_s: float = field(default=30.0, metadata=_spec(_float()))
    """Seconds a connection may stay unbound before it is closed (SMPP 3.4 §7.2
    session_init_timer); 0 = never. 30 s as Jasmin and smpp.twisted."""

    response_timeout_s: float = field(default=30.0, metadata=_spec(_float(above=True)))
    """Seconds to wait for an app's response to our deliver_sm / enquire_link /
    unbind (SMPP 3.4 §7.2 response_timer); an unanswered receipt is sent again."""

    max_pdu_bytes: int = field(default=65536, metadata=_spec(_int(HEADER_BYTES, 16 * 1024 * 1024)))
    """Largest command_length accepted (bytes); beyond it generic_nack
    ESME_RINVCMDLEN and close. 64 KiB: message_payload is "up to 64 K" (SMPP 3.4 §5.3.2.32)."""

    grace_s: float = field(default=10.0, metadata=_spec(_float()))
    """Seconds SIGTERM waits for upstream unbinds and carrier windows to drain
    before cancelling what is left (hypercorn's graceful_timeout)."""

    def __post_init__(self) -> None:
        _convert_fields(self)

    def session_config(self) -> SessionConfig:
        """The :class:`SessionConfig` of one upstream (SMSC-role) session.

        Our own requests there are deliver_sm, so the session window is ``receipt_window``.
        """
        return SessionConfig(
            window_size=self.receipt_window,
            response_timeout_s=self.response_timeout_s,
            enquire_link_interval_s=_never_if_zero(self.enquire_link_interval_s),
            inactivity_timeout_s=_never_if_zero(self.inactivity_timeout_s),
            session_init_timeout_s=_never_if_zero(self.session_init_timeout_s),
            max_pdu_bytes=self.max_pdu_bytes,
            system_id=self.system_id,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricsConfig:
    """``[metrics]``: the Prometheus ``/metrics`` endpoint."""

    enabled: bool = field(default=True, metadata=_spec(_bool))
    """Serve /metrics at all."""

    host: str = field(default="127.0.0.1", metadata=_spec(_host))
    """Address to listen on; loopback, metrics name accounts."""

    port: int = field(default=9775, metadata=_spec(_port_or_ephemeral))
    """TCP port; 0 = ephemeral (tests)."""

    def __post_init__(self) -> None:
        _convert_fields(self)


@dataclass(frozen=True, slots=True, kw_only=True)
class AdminConfig:
    """``[admin]``: the operator API (``/admin/*``, used by ``relayctl``).

    Served by the same HTTP listener as ``/metrics`` ([metrics] host and port),
    on the event loop. Read commands (status, accounts, binds, msg, the log
    level) need no token unless a read token is set; write commands (drain,
    undrain, log-level LEVEL) need the write token, and are disabled while none
    is configured. Tokens go in ``Authorization: Bearer <token>``.
    """

    enabled: bool = field(default=True, metadata=_spec(_bool))
    """Serve /admin/* at all."""

    token: str = field(default="", repr=False, metadata=_spec(_token, secret=True))
    """The write token (>= 16 visible ASCII characters). "" with token_file ""
    = write commands disabled."""

    token_file: str = field(default="", metadata=_spec(_str()))
    """A file whose first line is the write token (instead of ``token``; keeps
    it out of the configuration). Relative to the configuration file's directory."""

    read_token: str = field(default="", repr=False, metadata=_spec(_token, secret=True))
    """If set (or read_token_file), read commands need it or the write token.
    "" = read commands are open to whoever reaches the endpoint."""

    read_token_file: str = field(default="", metadata=_spec(_str()))
    """A file whose first line is the read token (instead of ``read_token``)."""

    loopback_only: bool = field(default=True, metadata=_spec(_bool))
    """Answer /admin/* only to loopback peers (127.0.0.0/8, ::1), even when
    [metrics] listens on another address for Prometheus."""

    request_timeout_s: float = field(default=5.0, metadata=_spec(_float(above=True)))
    """Seconds a client has to send its whole request, and again to read the
    response; a slower client is disconnected (it never holds the loop)."""

    max_request_bytes: int = field(default=16384, metadata=_spec(_int(1024, 1048576)))
    """Largest request (request line, headers and body) accepted (bytes); beyond
    → 413/431. Admin requests are tiny; 16 KiB is h11's default order of magnitude."""

    max_connections: int = field(default=32, metadata=_spec(_int(1)))
    """Simultaneous HTTP connections (scrapes and relayctl) (count); beyond, a
    new one is closed at once."""

    def __post_init__(self) -> None:
        _convert_fields(self)
        for inline, path in (("token", "token_file"), ("read_token", "read_token_file")):
            if getattr(self, inline) and getattr(self, path):
                raise ConfigError(f"set {inline} or {path}, not both", key=path)
        if self.token and self.token == self.read_token:
            raise ConfigError("must differ from token", key="read_token")

    def tokens(self) -> tuple[str, str]:
        """``(write token, read token)``, each "" if not configured; files are read now.

        Raises:
            ConfigError: a token file cannot be read or holds no valid token.
        """
        return (
            self._load(self.token, self.token_file, "token_file"),
            self._load(self.read_token, self.read_token_file, "read_token_file"),
        )

    @staticmethod
    def _load(inline: str, path: str, key: str) -> str:
        if not path:
            return inline
        try:
            with open(path, encoding="utf-8") as f:
                line = f.readline().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}", key=key) from None
        except UnicodeDecodeError:
            raise ConfigError(f"{path} is not UTF-8 text", key=key) from None
        if not line:
            raise ConfigError(f"{path} holds no token", key=key)
        return str(_token(line, key))


@dataclass(frozen=True, slots=True, kw_only=True)
class LogConfig:
    """``[log]``: relayd's log lines (:mod:`relayd.logs`) on stderr."""

    level: LogLevel = field(default=LogLevel.INFO, metadata=_spec(_enum(LogLevel)))
    """debug | info | warning | error | critical. ``relayd run --log-level`` and
    RELAYD_LOG_LEVEL override it; changeable at run time (relayctl log-level,
    SIGUSR1 = debug, SIGUSR2 = back to this)."""

    format: LogFormat = field(default=LogFormat.TEXT, metadata=_spec(_enum(LogFormat)))
    """text | json (one object per line). Either way phone numbers are masked
    and message bodies never written."""

    def __post_init__(self) -> None:
        _convert_fields(self)


@dataclass(frozen=True, slots=True, kw_only=True)
class WalConfig:
    """``[wal]``: the write-ahead log (segment files in ``data_dir``)."""

    segment_bytes: int = field(default=67108864, metadata=_spec(_int(1)))
    """Size at which a segment is closed and a new one started (bytes). 64 MiB:
    a few seconds of peak traffic per segment, so a checkpoint can free space
    soon, and few enough files to list quickly at recovery."""

    max_batch_records: int = field(default=8192, metadata=_spec(_int(1)))
    """Most records written by one group commit (one fdatasync) (count). Bounds
    the latency a batch adds to its last record."""

    queue_max: int = field(default=200000, metadata=_spec(_int(1)))
    """Records waiting for the writer (count); when full, appenders wait, and
    upstream submits are answered ESME_RTHROTTLED — durability is backpressure
    (style guide §3.5)."""

    fsync: bool = field(default=True, metadata=_spec(_bool))
    """fdatasync each batch before acknowledging it. false loses acknowledged
    messages on power loss; only for benchmarks of everything else."""

    def __post_init__(self) -> None:
        _convert_fields(self)


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreConfig:
    """``[store]``: the SQLite checkpoint store."""

    path: Path = field(default=Path("relayd.sqlite3"), metadata=_spec(_path))
    """Database file. Relative to ``data_dir`` (resolved by :func:`load_config`)."""

    checkpoint_interval_s: float = field(default=5.0, metadata=_spec(_float(above=True)))
    """Seconds between checkpoints of WAL state into the store, after which
    covered WAL segments are deleted. Bounds WAL size and recovery time."""

    def __post_init__(self) -> None:
        _convert_fields(self)


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryConfig:
    """``[retry]``: how a message that failed temporarily at a carrier is retried."""

    max_attempts: int = field(default=10, metadata=_spec(_int(1)))
    """Carrier submissions of one message part that may end in a temporary
    error, timeout or disconnect before the message ends undeliverable (count)."""

    backoff_min_s: float = field(default=0.5, metadata=_spec(_float(above=True)))
    """First retry delay (seconds); doubled per attempt, with jitter."""

    backoff_max_s: float = field(default=60.0, metadata=_spec(_float(above=True)))
    """Longest retry delay (seconds)."""

    validity_default_s: float = field(default=86400.0, metadata=_spec(_float(above=True)))
    """Validity of a message whose submit carries no validity_period (seconds):
    without a final receipt by then it ends EXPIRED. 24 h: the SMS result
    deadline seen in the domain (korea-messaging.md §6)."""

    def __post_init__(self) -> None:
        _convert_fields(self)
        _check_order(self, "backoff_min_s", "backoff_max_s")


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountConfig:
    """``[[accounts]]``: one upstream application allowed to bind."""

    system_id: str = field(metadata=_spec(_system_id))
    """Required. The bind's system_id (1..15 octets, SMPP 3.4 §4.1)."""

    password_hash: str = field(repr=False, metadata=_spec(_password_hash, secret=True))
    """Required. ``scrypt$N$r$p$salt$hash`` from ``relayd hash-password``; never the password."""

    bind_types: frozenset[BindType] = field(
        default=frozenset(BindType), metadata=_spec(_frozenset_of(_enum(BindType), nonempty=True))
    )
    """Binds allowed: transmitter, receiver, transceiver (others → ESME_RBINDFAIL)."""

    max_binds: int = field(default=8, metadata=_spec(_int(1)))
    """Simultaneous binds of this system_id (count); beyond → ESME_RBINDFAIL.
    8 matches the carrier simulators' per-account limit."""

    throughput_per_s: float = field(default=10000.0, metadata=_spec(_float()))
    """Submits per second over all binds of the account (token bucket, burst =
    one second's worth); beyond → ESME_RTHROTTLED. 0 = unlimited."""

    senders: frozenset[str] = field(
        default=frozenset(), metadata=_spec(_frozenset_of(_sender_number))
    )
    """Registered sender numbers (korea-messaging.md §3); any other source_addr
    is refused with ESME_RINVSRCADR before a carrier is contacted. Empty = none
    registered: the account cannot send."""

    account_type: AccountType = field(
        default=AccountType.ENTERPRISE, metadata=_spec(_enum(AccountType))
    )
    """public | enterprise | certified_reseller (korea-messaging.md §4: only
    certified resellers may relay ad traffic)."""

    receipt_hold_max: int = field(default=1_000_000, metadata=_spec(_int(1)))
    """Receipts held durably for this account while it has no receiver or
    transceiver bind (count). At the limit, new submits from the account are
    refused (ESME_RMSGQFUL) rather than any receipt dropped."""

    def __post_init__(self) -> None:
        _convert_fields(self)


@dataclass(frozen=True, slots=True, kw_only=True)
class CarrierConfig:
    """``[[carriers]]``: one carrier SMSC, reached over ``binds`` persistent binds."""

    name: str = field(metadata=_spec(_str(1, 32, pattern=r"[a-z0-9_-]+", what="[a-z0-9_-]+")))
    """Required. Our name for the carrier, used by routes, logs and metric labels."""

    host: str = field(default="127.0.0.1", metadata=_spec(_host))
    """SMSC address."""

    port: int = field(metadata=_spec(_port))
    """Required. SMSC TCP port."""

    system_id: str = field(metadata=_spec(_system_id))
    """Required. Our account's system_id at the SMSC (1..15 octets)."""

    password: str = field(
        repr=False, metadata=_spec(_str(0, _PASSWORD_MAX, latin1=True), secret=True)
    )
    """Required. Our account's password at the SMSC (at most 8 octets, SMPP 3.4 §4.1)."""

    system_type: str = field(default="", metadata=_spec(_str(0, _SYSTEM_TYPE_MAX, latin1=True)))
    """system_type sent in the bind (at most 12 octets); empty unless the carrier asks."""

    binds: int = field(default=2, metadata=_spec(_int(1)))
    """Connections to keep bound (count; a transmitter+receiver pair counts once).
    Two, so one reconnecting bind does not stop the carrier."""

    bind_type: CarrierBindType = field(
        default=CarrierBindType.TRANSCEIVER, metadata=_spec(_enum(CarrierBindType))
    )
    """transceiver | transmitter+receiver."""

    window: int = field(default=256, metadata=_spec(_int(1)))
    """Unanswered submits per bind (count); the carrier states its own (the
    simulators: skt 256, kt 128, lgu 64). Above it, an SMSC answers ESME_RMSGQFUL."""

    response_timeout_s: float = field(default=10.0, metadata=_spec(_float(above=True)))
    """Seconds to wait for a submit_sm_resp before the message is requeued
    (SMPP 3.4 §7.2 response_timer). Short: a silently dropped request holds a
    window slot for this long."""

    enquire_link_interval_s: float = field(default=30.0, metadata=_spec(_float()))
    """Seconds of silence before we send enquire_link; 0 = never."""

    reconnect_min_s: float = field(default=0.5, metadata=_spec(_float(above=True)))
    """First reconnect delay after a lost bind (seconds); doubled per failure, jittered."""

    reconnect_max_s: float = field(default=30.0, metadata=_spec(_float(above=True)))
    """Longest reconnect delay (seconds)."""

    id_policy: str = field(default="as_is", metadata=_spec(_id_policy))
    """How the carrier writes message ids in submit_sm_resp and receipts: a
    :data:`protocol.msgid.PRESETS` name (as_is, hex_resp_dec_receipt,
    dec_resp_hex_receipt, both_hex, both_dec); :attr:`policy` is the preset.
    as_is compares ids as opaque tokens, case-insensitively."""

    concat_method: ConcatMethod = field(
        default=ConcatMethod.UDH8, metadata=_spec(_enum(ConcatMethod))
    )
    """How long messages are split: udh8 | udh16 | sar | payload."""

    max_tps: float = field(default=0.0, metadata=_spec(_float()))
    """Submits per second per bind we never exceed (seconds⁻¹); 0 = unlimited
    (the bind's rate then adapts to ESME_RTHROTTLED alone)."""

    default_alphabet: DefaultAlphabet = field(
        default=DefaultAlphabet.GSM7, metadata=_spec(_enum(DefaultAlphabet))
    )
    """What data_coding 0 means at this SMSC (SMPP 3.4 §5.2.19): gsm7 | latin1 | ascii."""

    temporary_statuses: frozenset[int] = field(
        default=frozenset(), metadata=_spec(_frozenset_of(_command_status))
    )
    """Extra submit_sm_resp statuses that requeue the message instead of ending
    it, besides ESME_RTHROTTLED, ESME_RMSGQFUL, ESME_RSYSERR and ESME_RX_T_APPN:
    integers (0x45) or CommandStatus names ("ESME_RSUBMITFAIL")."""

    def __post_init__(self) -> None:
        _convert_fields(self)
        _check_order(self, "reconnect_min_s", "reconnect_max_s")

    @property
    def policy(self) -> IdPolicy:
        """The :class:`IdPolicy` named by :attr:`id_policy`."""
        return policy_from_name(self.id_policy)

    def is_temporary(self, command_status: int) -> bool:
        """True if a submit_sm_resp with ``command_status`` should be retried."""
        return command_status in BUILTIN_TEMPORARY_STATUSES or (
            command_status in self.temporary_statuses
        )

    def session_config(self) -> SessionConfig:
        """The :class:`SessionConfig` of one bind to this carrier (ESME role)."""
        return SessionConfig(
            window_size=self.window,
            response_timeout_s=self.response_timeout_s,
            enquire_link_interval_s=_never_if_zero(self.enquire_link_interval_s),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class RouteConfig:
    """``[[routes]]``: which carriers, in failover order, take a destination.

    See :meth:`Config.route_for` for how one route is chosen.
    """

    prefix: str = field(default="", metadata=_spec(_digits))
    """Destination prefix, digits (empty = every destination)."""

    accounts: tuple[str, ...] = field(default=(), metadata=_spec(_tuple_of(_system_id)))
    """Account system_ids the route applies to (empty = every account)."""

    carriers: tuple[str, ...] = field(
        metadata=_spec(_tuple_of(_str(1, what="a carrier name"), nonempty=True))
    )
    """Required. Carrier names in failover order: the first one up and not
    saturated takes the message."""

    def __post_init__(self) -> None:
        _convert_fields(self)


# ----------------------------------------------------------------------------- Config


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """The whole configuration; built by :func:`load_config`, then only read.

    Derived, read-only lookups (not TOML keys): :attr:`accounts_by_id`,
    :attr:`carriers_by_name`, :meth:`route_for`.

    Raises:
        ConfigError: on construction, when a value or a cross-reference is invalid.
    """

    data_dir: Path = field(default=Path("data"), metadata=_spec(_path))
    """Directory of the WAL segments and the store. Relative to the
    configuration file's directory; created if missing; must be writable."""

    server: ServerConfig = field(default=ServerConfig(), metadata=_spec(_table(ServerConfig)))
    """``[server]``: the upstream listener."""

    metrics: MetricsConfig = field(default=MetricsConfig(), metadata=_spec(_table(MetricsConfig)))
    """``[metrics]``: the Prometheus endpoint."""

    admin: AdminConfig = field(default=AdminConfig(), metadata=_spec(_table(AdminConfig)))
    """``[admin]``: the operator API beside /metrics."""

    log: LogConfig = field(default=LogConfig(), metadata=_spec(_table(LogConfig)))
    """``[log]``: log level and format."""

    wal: WalConfig = field(default=WalConfig(), metadata=_spec(_table(WalConfig)))
    """``[wal]``: the write-ahead log."""

    store: StoreConfig = field(default=StoreConfig(), metadata=_spec(_table(StoreConfig)))
    """``[store]``: the SQLite checkpoint store."""

    retry: RetryConfig = field(default=RetryConfig(), metadata=_spec(_table(RetryConfig)))
    """``[retry]``: retries of temporary carrier failures."""

    accounts: tuple[AccountConfig, ...] = field(
        default=(), metadata=_spec(_array_of_tables(AccountConfig))
    )
    """Upstream accounts (system_ids unique). May be empty: none can bind."""

    carriers: tuple[CarrierConfig, ...] = field(metadata=_spec(_array_of_tables(CarrierConfig)))
    """Required. Carrier SMSCs (names unique)."""

    routes: tuple[RouteConfig, ...] = field(metadata=_spec(_array_of_tables(RouteConfig)))
    """Required, at least one. Routing rules over known carriers and accounts."""

    source: Path | None = None
    """The file this was loaded from (None when built in code). Not a TOML key."""

    accounts_by_id: Mapping[str, AccountConfig] = field(init=False, repr=False, compare=False)
    """Accounts by system_id (read-only)."""

    carriers_by_name: Mapping[str, CarrierConfig] = field(init=False, repr=False, compare=False)
    """Carriers by name (read-only)."""

    _route_tables: Mapping[str, tuple[tuple[str, tuple[str, ...]], ...]] = field(
        init=False, repr=False, compare=False
    )
    _generic_routes: tuple[tuple[str, tuple[str, ...]], ...] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        _convert_fields(self)
        # Paths: data_dir against the file's directory, store.path against data_dir.
        data_dir = self.data_dir
        if self.source is not None and not data_dir.is_absolute():
            data_dir = Path(os.path.abspath(self.source.parent / data_dir))
        object.__setattr__(self, "data_dir", data_dir)
        if not self.store.path.is_absolute():
            store = dataclasses.replace(self.store, path=data_dir / self.store.path)
            object.__setattr__(self, "store", store)
        # Admin token files, like data_dir, against the file's directory.
        if self.source is not None:
            files = {
                name: os.path.abspath(self.source.parent / getattr(self.admin, name))
                for name in ("token_file", "read_token_file")
                if getattr(self.admin, name) and not os.path.isabs(getattr(self.admin, name))
            }
            if files:
                object.__setattr__(self, "admin", dataclasses.replace(self.admin, **files))

        accounts = self._index(self.accounts, "accounts", "system_id")
        carriers = self._index(self.carriers, "carriers", "name")
        object.__setattr__(self, "accounts_by_id", MappingProxyType(accounts))
        object.__setattr__(self, "carriers_by_name", MappingProxyType(carriers))
        self._check_routes()

        # Route tables, most specific first (see route_for): per known account,
        # and one of generic routes for any other system_id.
        def table(account: str | None) -> tuple[tuple[str, tuple[str, ...]], ...]:
            chosen = [r for r in self.routes if not r.accounts or account in r.accounts]
            chosen.sort(key=lambda r: (-len(r.prefix), not r.accounts))
            return tuple((r.prefix, r.carriers) for r in chosen)

        object.__setattr__(self, "_route_tables", MappingProxyType({a: table(a) for a in accounts}))
        object.__setattr__(self, "_generic_routes", table(None))

    @staticmethod
    def _index(items: tuple[Any, ...], where: str, attr: str) -> dict[str, Any]:
        index: dict[str, Any] = {}
        position: dict[str, int] = {}
        for i, item in enumerate(items):
            name = getattr(item, attr)
            if name in index:
                raise ConfigError(
                    f"duplicate {attr} {name!r} (also {where}[{position[name]}])",
                    key=f"{where}[{i}].{attr}",
                )
            index[name] = item
            position[name] = i
        return index

    def _check_routes(self) -> None:
        if not self.routes:
            raise ConfigError("at least one [[routes]] table is required", key="routes")
        seen: dict[tuple[str, str | None], int] = {}
        for i, route in enumerate(self.routes):
            for j, name in enumerate(route.carriers):
                if name not in self.carriers_by_name:
                    known = ", ".join(self.carriers_by_name) or "none"
                    raise ConfigError(
                        f"unknown carrier {name!r}{_did_you_mean(name, self.carriers_by_name)} "
                        f"(known: {known})",
                        key=f"routes[{i}].carriers[{j}]",
                    )
            for j, account in enumerate(route.accounts):
                if account not in self.accounts_by_id:
                    raise ConfigError(
                        f"unknown account {account!r}{_did_you_mean(account, self.accounts_by_id)}",
                        key=f"routes[{i}].accounts[{j}]",
                    )
            # Two routes with the same prefix for the same account would make the
            # choice depend on file order: refuse it.
            scopes: tuple[str | None, ...] = route.accounts or (None,)
            for scope in scopes:
                other = seen.setdefault((route.prefix, scope), i)
                if other != i:
                    whom = f"account {scope!r}" if scope is not None else "every account"
                    raise ConfigError(
                        f"same prefix {route.prefix!r} for {whom} as routes[{other}]: ambiguous",
                        key=f"routes[{i}]",
                    )

    def route_for(self, account: str, destination: str) -> tuple[str, ...]:
        """The carriers, in failover order, for ``account`` sending to ``destination``.

        Among the routes whose ``prefix`` starts ``destination`` and whose
        ``accounts`` is empty or names ``account``, the one with the **longest
        prefix** wins; at equal prefix, a route naming the account wins over a
        generic one. Only the winning route's carriers are returned (the
        route's list *is* the failover order).

        Args:
            account: the submitting account's system_id.
            destination: destination_addr, digits.

        Returns:
            Carrier names, or ``()`` when no route matches.
        """
        for prefix, carriers in self._route_tables.get(account, self._generic_routes):
            if destination.startswith(prefix):
                return carriers
        return ()


# ----------------------------------------------------------------------------- loading


def _prepare_data_dir(path: Path) -> None:
    """Create ``path`` if missing and prove it writable (ConfigError key ``data_dir``)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ConfigError(f"{path} exists and is not a directory", key="data_dir") from None
    except OSError as exc:
        raise ConfigError(f"cannot create {path}: {exc.strerror}", key="data_dir") from None
    try:
        # A real write, not os.access(): it also sees read-only mounts and full quotas.
        with tempfile.TemporaryFile(dir=path, prefix=".relayd-check-"):
            pass
    except OSError as exc:
        raise ConfigError(f"{path} is not writable: {exc.strerror}", key="data_dir") from None


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read, validate and return the configuration in ``path``.

    Creates ``data_dir`` if it does not exist.

    Args:
        path: the TOML file.

    Returns:
        The configuration, with ``data_dir`` and ``store.path`` absolute.

    Raises:
        ConfigError: the file cannot be read, is not TOML, has an unknown key,
            a wrong type, a value out of range, a broken cross-reference, or
            ``data_dir`` cannot be created or written. One line, naming the
            file and the key.
    """
    label = os.fspath(path)
    source = Path(label)
    try:
        with source.open("rb") as f:
            raw = tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", source=label) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML: {exc}", source=label) from None
    try:
        config = _build(Config, raw, "", source=source)
        _prepare_data_dir(config.data_dir)
        try:
            write, read = config.admin.tokens()
        except ConfigError as exc:
            raise exc.within("admin") from None
        if write and write == read:
            raise ConfigError("holds the same token as token_file", key="admin.read_token_file")
    except ConfigError as exc:
        raise exc.located(label) from None
    return config


def _first_difference(
    old: Any, new: Any, key: str, *, secret: bool = False
) -> tuple[str, str] | None:
    """The first key whose value differs between ``old`` and ``new``, and how."""
    if dataclasses.is_dataclass(old) and type(old) is type(new):
        for f in _toml_fields(type(old)):
            diff = _first_difference(
                getattr(old, f.name),
                getattr(new, f.name),
                f"{key}.{f.name}",
                secret=f.metadata["secret"],
            )
            if diff is not None:
                return diff
        return None
    if isinstance(old, tuple) and isinstance(new, tuple) and len(old) == len(new):
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            diff = _first_difference(a, b, f"{key}[{i}]", secret=secret)
            if diff is not None:
                return diff
        return None
    if old == new:
        return None
    if isinstance(old, tuple) and isinstance(new, tuple):
        return key, f"changed from {len(old)} to {len(new)} entries"
    if secret:
        return key, "changed"

    def show(value: Any) -> str:
        return str(value.value) if isinstance(value, Enum) else repr(value)

    return key, f"changed from {show(old)} to {show(new)}"


# Sections SIGHUP may replace; everything else is wired into listeners,
# carrier links, the WAL and the store at start-up.
_RELOADABLE: Final = frozenset({"accounts", "routes"})


def reload_accounts_and_routes(path: str | os.PathLike[str], current: Config) -> Config:
    """Load ``path`` again for SIGHUP: new accounts and routes, nothing else.

    Args:
        path: the TOML file (normally ``current.source``).
        current: the configuration in force.

    Returns:
        A new :class:`Config` to swap in; ``current`` is untouched.

    Raises:
        ConfigError: the file is invalid (as :func:`load_config`), or a key
            outside ``[[accounts]]`` and ``[[routes]]`` changed; the message
            names the key and says a restart is needed. Nothing is applied.
    """
    new = load_config(path)
    for f in _toml_fields(Config):
        if f.name in _RELOADABLE:
            continue
        diff = _first_difference(getattr(current, f.name), getattr(new, f.name), f.name)
        if diff is not None:
            key, what = diff
            raise ConfigError(
                f"{what}; restart relayd to apply it (nothing was reloaded)",
                key=key,
                source=os.fspath(path),
            )
    return new
