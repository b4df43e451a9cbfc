"""The one gate for tests that need a system service or tool: skip with a reason locally, fail under CI=true.

Tests never call pytest.skip, skipif or importorskip themselves (tests/test_service_gates.py checks the tree):
a missing tool there would pass silently in CI.
"""

from __future__ import annotations

import importlib
import os
import shutil
import socket
from types import ModuleType
from typing import NoReturn

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require(available: bool, what: str) -> None:
    """Skip (or, in CI, fail) when a service the test needs is missing; also at module level."""
    if available:
        return
    if in_ci():
        pytest.fail(f"{what} is required under CI=true but is not available", pytrace=False)
    pytest.skip(f"{what} is not available on this machine", allow_module_level=True)


def missing(what: str) -> NoReturn:
    """The gate for a service found missing (in an except clause, say): skip, or fail in CI."""
    require(False, what)
    raise AssertionError("unreachable: require(False, ...) always raises")


def require_tool(command: str, package: str) -> str:
    """The path of a command-line tool, through the gate; `package` is the Debian package that has it."""
    path = shutil.which(command)
    require(path is not None, f"{command} (apt-get install {package})")
    assert path is not None
    return path


def require_module(name: str, what: str) -> ModuleType:
    """An importable Python module (e.g. a binding built against a system library), through the gate."""
    try:
        return importlib.import_module(name)
    except ImportError as error:
        missing(f"{what} ({error})")


def optional(available: bool, what: str) -> None:
    """Skip, even under CI, a test of a host feature Quetzal works without (say why in `what`)."""
    if not available:
        pytest.skip(f"{what} is not set up on this host (optional)")


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
