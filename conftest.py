"""Make the shared fixtures (tests/fixtures.py) visible to every app's tests."""

import os

pytest_plugins = ["tests.fixtures", "tests.libvirt_leaks"]

# No background stock of spare encrypted disks in tests (each costs seconds of CPU and would outlive
# the test's database on the real host); tests that need a spare make one. Child processes (workers,
# servers) inherit the variable.
os.environ["DESKTOP_DISK_SPARES"] = "0"


def pytest_configure(config) -> None:
    # pytest-django may have read the settings before this file ran; set it there as well, once,
    # without the settings fixture (its change signals make other apps reload their settings).
    from django.conf import settings

    settings.DESKTOP_DISK_SPARES = 0


import pytest  # noqa: E402


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    # Fixtures read `item.failed_call` at teardown to keep what a failure needs explaining (screens, rows).
    report = yield
    if report.when == "call" and report.failed:
        item.failed_call = True
    return report
