"""Hosts fixtures: what the services send to the broker, read at the broker's door."""

from __future__ import annotations

import pytest

from quetzal.celery import app


@pytest.fixture
def sent_tasks(monkeypatch) -> list[tuple[str, tuple]]:
    """(task name, args) of every task sent to the broker, in order; nothing reaches a broker."""
    sent: list[tuple[str, tuple]] = []
    monkeypatch.setattr(app, "send_task", lambda name, args=(), **options: sent.append((name, tuple(args))))
    return sent
