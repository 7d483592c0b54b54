"""relayd's logging: one structured line per event worth an operator's attention.

Theory of operation
-------------------
relayd logs events, not messages: a bind up or down, a reconnect, a refused
bind, a WAL failure, a drain, a reload, the recovery summary. Nothing on the
per-message hot path logs (style §12). Every relayd logger lives under
``relayd``; :func:`set_level` changes that logger's level at run time (admin
endpoint, SIGUSR1/SIGUSR2), while other libraries stay at WARNING, so DEBUG
never turns on, say, aiosqlite's statement tracing (which prints parameters).

Structured fields travel as ``extra=`` attributes (``event``, ``carrier``,
``bind``, ``account``, ...). The text format appends ``event=NAME``; the
JSON format (``[log] format = "json"``) writes one object per line with
``ts``, ``level``, ``logger``, ``msg``, the fields, and ``exc`` when there is a
traceback.

Privacy is enforced here, in ONE place, not at the call sites
(architecture.md §2, "Nothing leaks into logs"): :class:`RedactingFilter` sits
on every handler relayd installs and rewrites each record before any formatter
sees it — the message with its arguments, every string field, the traceback
text and the stack:

* phone numbers (Korean domestic and +82 forms, with or without ``-``/space
  separators) are masked like ``010****5678`` (:func:`relayd.store.mask_number`);
* every ``bytes`` literal (``b'...'``, the form message bodies take in a PDU,
  a WAL record or a ``Msg``) becomes ``b'<redacted>'``;
* a receipt's free ``text:`` field (the first characters of the message,
  SMPP 3.4 Appendix B) is cut.

A message body decoded to ``str`` and passed as a log argument cannot be told
apart from prose; the rule for call sites stays "never pass a body".
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections import deque
from datetime import UTC, datetime
from typing import IO, Any, Final

from relayd.store import mask_number

__all__ = [
    "LEVELS",
    "JsonFormatter",
    "RecentRecords",
    "RedactingFilter",
    "TextFormatter",
    "configure",
    "current_level",
    "redact",
    "reset_level",
    "set_level",
    "unconfigure",
]

#: The levels an operator may choose, lowest first.
LEVELS: Final = ("debug", "info", "warning", "error", "critical")

#: The logger every relayd module logs under (``relayd.core``, ``relayd.carriers``, ...).
ROOT_LOGGER: Final = "relayd"

# Korean phone numbers as they may appear in text: a trunk 0 or the country code
# 82 (optionally +82, optionally followed by the dropped 0), then a mobile code
# (010/011/016-019), Seoul's 2 or a two-digit area/service code (031-064, 050x,
# 070, 080), then 3-4 and 4 digits, each group optionally separated by '-', ' '
# or '.'. The look-arounds keep it from starting or ending inside a longer token,
# so relayd's message ids (digits then letters), zero-padded carrier ids and WAL
# segment names are left alone.
_PHONE: Final = re.compile(
    r"(?<![0-9A-Za-z])"
    r"(?:\+?82[- .]?0?|0)"
    r"(?:1[016789]|2|[3-9][0-9])"
    r"[- .]?[0-9]{3,4}[- .]?[0-9]{4}"
    r"(?![0-9A-Za-z])"
)
# A Python bytes literal as repr() writes it (PDU short_message, TLV values, WAL
# records, Msg.body): message content travels as bytes, so no bytes value is logged.
_BYTES: Final = re.compile(r"""(?<![\w'"])b(?:'(?:[^'\\\n]|\\.)+'|"(?:[^"\\\n]|\\.)+")""")
# SMPP 3.4 Appendix B receipt text: "... err:XXX text:<first 20 chars of the message>".
_RECEIPT_TEXT: Final = re.compile(r"(\berr:\S*\s+text:)[^\n'\"]*")

# Attributes every LogRecord has; anything else on a record came through extra=.
_STANDARD_ATTRS: Final = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys()
    | {"message", "asctime", "taskName", "_relayd_redacted"}
)

_base_level = logging.INFO
_saved_root_level: int | None = None


def redact(text: str) -> str:
    """``text`` with phone numbers masked, bytes literals and receipt texts removed."""
    if not text:
        return text
    text = _BYTES.sub("b'<redacted>'", text)
    text = _RECEIPT_TEXT.sub(r"\1<redacted>", text)
    return _PHONE.sub(lambda m: mask_number(m.group(0)), text)


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    """The structured fields a record carries (its ``extra=`` attributes)."""
    return {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS}


class RedactingFilter(logging.Filter):
    """Rewrites each record so that no formatter can print a phone number or a body.

    The message is formatted with its arguments once and stored redacted
    (``args`` cleared), the traceback is formatted and stored redacted in
    ``exc_text`` (formatters print ``exc_text`` when it is set), and so is the
    stack. String fields are redacted too. A record is rewritten only once,
    however many handlers carry this filter.
    """

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_relayd_redacted", False):
            return True
        try:
            message = record.getMessage()
        except Exception:  # a call site's bad format string: still log, still redacted
            message = f"{record.msg!s} {record.args!r}"
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        for key, value in fields_of(record).items():
            if isinstance(value, str):
                setattr(record, key, redact(value))
            elif isinstance(value, bytes | bytearray | memoryview):
                setattr(record, key, "<redacted>")
        record._relayd_redacted = True
        return True


class TextFormatter(logging.Formatter):
    """``2025-01-02 03:04:05,678 INFO relayd.carriers message event=NAME``.

    The message already says what the fields say; only the event's name is
    appended, so ``grep event=carrier_bind_down`` finds every occurrence. The
    JSON format carries every field.
    """

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        event = getattr(record, "event", None)
        return f"{line} event={event}" if event else line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts`` (UTC, ISO 8601), ``level``, ``logger``,
    ``msg``, the record's fields, ``exc`` (traceback) and ``stack`` when present."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in fields_of(record).items():
            out.setdefault(key, value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = record.stack_info
        return json.dumps(out, ensure_ascii=False, default=str)


class RecentRecords(logging.Handler):
    """The last ``maxlen`` WARNING-or-worse records, redacted, for ``relayctl status``.

    Records are kept as small dicts (time, level, logger, message, fields, the
    exception's last line). Bounded: the oldest fall off.
    """

    def __init__(self, maxlen: int = 50, level: int = logging.WARNING) -> None:
        super().__init__(level)
        self.addFilter(RedactingFilter())
        self.records: deque[dict[str, Any]] = deque(maxlen=maxlen)

    def emit(self, record: logging.LogRecord) -> None:
        entry: dict[str, Any] = {
            "at": record.created,
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in fields_of(record).items():
            entry.setdefault(key, value if isinstance(value, int | float | bool) else str(value))
        if record.exc_text:
            lines = record.exc_text.strip().splitlines()
            if lines:
                entry["exc"] = lines[-1]
        self.records.append(entry)

    def snapshot(self) -> list[dict[str, Any]]:
        return list(self.records)


class _RelaydHandler(logging.StreamHandler):  # type: ignore[type-arg]  # generic only in typeshed
    """The handler :func:`configure` installs (marked so a second call replaces it)."""


def _level_number(name: str) -> int:
    key = name.strip().lower()
    if key not in LEVELS:
        raise ValueError(f"unknown log level {name!r} (one of {', '.join(LEVELS)})")
    return int(getattr(logging, key.upper()))


def configure(
    level: str = "info", fmt: str = "text", stream: IO[str] | None = None
) -> logging.Handler:
    """Send relayd's logs to ``stream`` (stderr) as ``fmt`` (text | json) at ``level``.

    Replaces a handler installed by an earlier call. relayd's loggers get
    ``level``; the root logger (other libraries) WARNING, or ``level`` if higher.

    Returns:
        The installed handler (:func:`unconfigure` removes it).

    Raises:
        ValueError: unknown level or format.
    """
    global _base_level, _saved_root_level
    number = _level_number(level)
    if fmt not in ("text", "json"):
        raise ValueError(f"unknown log format {fmt!r} (text or json)")
    root = logging.getLogger()
    installed = [h for h in root.handlers if isinstance(h, _RelaydHandler)]
    if not installed:
        _saved_root_level = root.level
    for old in installed:
        root.removeHandler(old)
    handler = _RelaydHandler(stream if stream is not None else sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root.addHandler(handler)
    root.setLevel(max(number, logging.WARNING))
    logging.getLogger(ROOT_LOGGER).setLevel(number)
    _base_level = number
    return handler


def unconfigure() -> None:
    """Undo :func:`configure`: remove its handler, restore the levels it changed."""
    global _base_level, _saved_root_level
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _RelaydHandler)]:
        root.removeHandler(handler)
    if _saved_root_level is not None:
        root.setLevel(_saved_root_level)
        _saved_root_level = None
    logging.getLogger(ROOT_LOGGER).setLevel(logging.NOTSET)
    _base_level = logging.INFO


def current_level() -> str:
    """The effective level of relayd's loggers, lower case."""
    return logging.getLevelName(logging.getLogger(ROOT_LOGGER).getEffectiveLevel()).lower()


def set_level(name: str) -> str:
    """Set relayd's log level now; returns the previous one (lower case).

    Raises:
        ValueError: ``name`` is not one of :data:`LEVELS`.
    """
    number = _level_number(name)
    previous = current_level()
    logging.getLogger(ROOT_LOGGER).setLevel(number)
    return previous


def reset_level() -> str:
    """Back to the level relayd started with (SIGUSR2); returns the previous one."""
    previous = current_level()
    logging.getLogger(ROOT_LOGGER).setLevel(_base_level)
    return previous
