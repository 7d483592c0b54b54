"""protocol/ does no I/O, no waiting, reads no clock (style guide §1.1, §4).

Enforced the way trio enforces its layering ("there's a test to enforce this"):
parse every module under protocol/ with ``ast`` (without importing it) and fail
on any import of a forbidden module — including ``from x import y`` forms,
``import a.b`` submodules and ``importlib.import_module("x")`` /
``__import__("x")`` with a literal name. A self-check proves the walker can fail.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PROTOCOL_DIR = Path(__file__).resolve().parents[2] / "protocol"

# Modules protocol/ must never import (prefix match on dotted names).
FORBIDDEN = (
    "asyncio",
    "socket",
    "time",
    "logging.config",
    "aiosqlite",
    "prometheus_client",
    "uvloop",
    "selectors",
    "threading",
)


def _forbidden(name: str) -> bool:
    return any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN)


def forbidden_imports(source: str, filename: str = "<source>") -> list[str]:
    """Every forbidden import in ``source``, as ``"line N: module"`` strings."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source, filename=filename)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module is not None:
                # "from logging import config" imports logging.config.
                names = [node.module]
                if not _forbidden(node.module):
                    names += [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in ("import_module", "__import__") and node.args:
                arg = node.args[0]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    names = [arg.value]
        found.extend(
            f"line {getattr(node, 'lineno', 0)}: {name}" for name in names if _forbidden(name)
        )
    return found


def protocol_modules() -> list[Path]:
    return sorted(PROTOCOL_DIR.rglob("*.py"))


def test_the_walker_finds_the_protocol_package() -> None:
    modules = {p.name for p in protocol_modules()}
    assert {"__init__.py", "session.py", "codec.py", "buffer.py"} <= modules


@pytest.mark.parametrize("path", protocol_modules(), ids=lambda p: str(p.relative_to(PROTOCOL_DIR)))
def test_protocol_module_imports_no_io_clock_or_threads(path: Path) -> None:
    """Style guide §1.1: bytes in, events out — no asyncio, socket, time, ..."""
    assert forbidden_imports(path.read_text(encoding="utf-8"), str(path)) == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import asyncio\n", ["line 1: asyncio"]),
        ("import asyncio.events as ev\n", ["line 1: asyncio.events"]),
        ("from time import monotonic\n", ["line 1: time"]),
        ("from logging import config\n", ["line 1: logging.config"]),
        ("import logging.config\n", ["line 1: logging.config"]),
        ("import os, socket\n", ["line 1: socket"]),
        ("def f():\n    import threading\n", ["line 2: threading"]),
        ("import importlib\nimportlib.import_module('uvloop')\n", ["line 2: uvloop"]),
        ("__import__('selectors')\n", ["line 1: selectors"]),
        ("from prometheus_client import Counter\n", ["line 1: prometheus_client"]),
        ("import aiosqlite\n", ["line 1: aiosqlite"]),
    ],
)
def test_walker_flags_forbidden_imports(source: str, expected: list[str]) -> None:
    """Self-check: the walker must be able to fail."""
    assert forbidden_imports(source) == expected


@pytest.mark.parametrize(
    "source",
    [
        "import logging\nlogging.getLogger(__name__)\n",  # a logger is fine; configuring is not
        "import timeit\nimport datetime\nimport socketserver_like\n",  # prefix ≠ module
        "from . import time\nfrom .socket import x\n",  # relative imports are ours
        "from typing import TYPE_CHECKING\n",
        "x = 'import asyncio'\n",  # a string is not an import
    ],
)
def test_walker_accepts_clean_sources(source: str) -> None:
    assert forbidden_imports(source) == []


def test_walker_flags_a_synthetic_module_on_disk(tmp_path: Path) -> None:
    """End to end on a file, the way the real modules are checked."""
    bad = tmp_path / "bad.py"
    bad.write_text('"""A module that sneaks in the event loop."""\nimport asyncio\n')
    assert forbidden_imports(bad.read_text(), str(bad)) == ["line 2: asyncio"]
