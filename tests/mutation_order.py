"""A pytest plugin for mutation runs (scripts/mutation.py adds it to the work tree's conftest): fast tests
first, one database per concurrent mutant, migrated once.

mutmut runs a mutant's covering tests with -x, so the first failing test ends the run. Tests in a
rolled-back transaction take milliseconds; the races (transaction=True, real threads) take seconds.
Running the former first, each group fastest first by the durations mutmut measured (mutmut-stats.json),
lets most mutants die quickly; the set of tests, and so the verdict, is unchanged.

Two mutants tested at once must not share a test database: one's race test empties the tables under the
other's. Each test session takes a free slot (a lock file held until the process ends) and uses the test
database named after it. The first session in a slot migrates that database; every later one (hundreds
per module) only points Django at it, which is most of what one mutant's tests cost.
"""

from __future__ import annotations

import fcntl
import importlib
import json
import os
from pathlib import Path

import pytest

_held = []


def _slow(item) -> bool:
    marker = item.get_closest_marker("django_db")
    return bool(marker and marker.kwargs.get("transaction")) or "transactional_db" in item.fixturenames


def pytest_collection_modifyitems(items) -> None:
    try:
        durations = json.loads(Path("mutmut-stats.json").read_text())["duration_by_test"]
    except (OSError, ValueError, KeyError):
        durations = {}
    items.sort(key=lambda item: (_slow(item), durations.get(item.nodeid, 0.0)))


def pytest_collection_finish(session) -> None:
    """Refuse to run against the original sources: mutmut would count every mutant of them as untested."""
    mutants = Path.cwd().absolute()
    for name in filter(None, os.environ.get("MUTATION_MODULES", "").split(",")):
        path = Path(importlib.import_module(name).__file__ or "").absolute()
        if not path.is_relative_to(mutants):
            raise pytest.UsageError(f"{name} was imported from {path}, not from the mutated tree {mutants}")


def _take_slot(slots: Path) -> str:
    for slot in range(int(os.environ.get("MUTATION_SLOTS", "2"))):
        handle = (slots / f"slot{slot}.lock").open("w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        _held.append(handle)
        return f"slot{slot}"
    raise RuntimeError(f"no free mutation slot in {slots}")


@pytest.fixture(scope="session")
def django_db_setup(django_test_environment, django_db_blocker):
    from django.conf import settings
    from django.db import connections
    from django.test.utils import setup_databases

    slots = Path(os.environ["MUTATION_SLOT_DIR"])
    slot = _take_slot(slots)
    for alias, database in settings.DATABASES.items():
        name = f"test_{database['NAME']}_{slot}"
        database.setdefault("TEST", {})["NAME"] = name
        connections[alias].settings_dict.setdefault("TEST", {})["NAME"] = name
    ready = slots / f"{slot}.ready"
    if not ready.exists():
        with django_db_blocker.unblock():
            setup_databases(verbosity=0, interactive=False, keepdb=True)
        ready.touch()
        return
    for connection in connections.all():
        name = connection.settings_dict["TEST"]["NAME"]
        connection.close()
        settings.DATABASES[connection.alias]["NAME"] = name
        connection.settings_dict["NAME"] = name
