"""Catch what a real-QEMU test leaves in qemu:///system's pools: a leaked volume is named, then removed.

Home disks outlive desktops by design, so a test that forgets one leaves it for every later run (a full run left
about a dozen `qz-home-*` files behind). Every test marked `qemu` is watched here, not each fixture's own cleanup:
a new test is covered without remembering to be. What is found is written to test-artifacts/leaked-volumes.txt
with the test's id, and deleted unless a domain still uses it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "test-artifacts" / "leaked-volumes.txt"
PREFIXES = (
    "qz-",
    "qtest-",
    "quetzal-spare-",
)  # what the platform (desktop disks, homes, spare encrypted disks) and the hypervisor tests name their volumes


def _connect():
    try:
        import libvirt
    except ImportError:
        return None
    with contextlib.suppress(libvirt.libvirtError):
        return libvirt.open(os.environ.get("QUETZAL_TEST_QEMU_URI", "qemu:///system"))
    return None


def _volumes(conn) -> dict[str, object]:
    """Our volumes in every active pool, by path."""
    found = {}
    for pool in conn.listAllStoragePools():
        if not pool.isActive():
            continue
        with contextlib.suppress(Exception):
            pool.refresh(0)
        for volume in pool.listAllVolumes():
            if volume.name().startswith(PREFIXES):
                found[volume.path()] = volume
    return found


def _paths_in_use(conn) -> set[str]:
    from lxml import etree

    used = set()
    for domain in conn.listAllDomains():
        tree = etree.fromstring(domain.XMLDesc(0))
        used.update(tree.xpath("//devices/disk/source/@file"))
    return used


@pytest.fixture(autouse=True)
def _no_leaked_volumes(request) -> Iterator[None]:
    if request.node.get_closest_marker("qemu") is None:
        yield
        return
    conn = _connect()
    before = set(_volumes(conn)) if conn is not None else set()
    yield
    if conn is None:
        return
    try:
        leaked = {path: volume for path, volume in _volumes(conn).items() if path not in before}
        if not leaked:
            return
        in_use = _paths_in_use(conn)
        REPORT.parent.mkdir(parents=True, exist_ok=True)
        with REPORT.open("a") as report:
            for path, volume in sorted(leaked.items()):
                held = path in in_use
                report.write(f"{request.node.nodeid}: {path}{' (held by a domain)' if held else ''}\n")
                if not held:
                    with contextlib.suppress(Exception):
                        volume.delete(0)
    finally:
        conn.close()


def pytest_sessionstart(session) -> None:
    # The report is this run's (a controller of xdist workers, or a plain run); workers only append.
    if not hasattr(session.config, "workerinput"):
        REPORT.unlink(missing_ok=True)


def pytest_terminal_summary(terminalreporter) -> None:
    if REPORT.exists():
        terminalreporter.section("libvirt volumes tests left behind (removed)")
        terminalreporter.write(REPORT.read_text())
