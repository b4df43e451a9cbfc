"""Polling for a condition that another process (a worker, a guest, a server) makes true."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T], timeout_s: float, interval_s: float = 0.1, *, explain: str | Callable[[], str] = ""
) -> T:
    """Poll until predicate() is truthy and return it; fail the test on timeout, saying `explain` (e.g. a log tail)."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            break
        time.sleep(interval_s)
    what = getattr(predicate, "__name__", "a condition")
    detail = explain() if callable(explain) else explain
    pytest.fail(f"timed out after {timeout_s}s waiting for {what}" + (f": {detail}" if detail else ""))
