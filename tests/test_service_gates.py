"""Every test that needs a system tool goes through tests/services.py: skipped with a reason here, failed under CI.

The scan reads the whole test tree, so a test added later with its own skip (which would pass silently in CI) fails.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from _pytest.outcomes import Failed, Skipped

from tests import services

ROOT = Path(__file__).resolve().parents[1]
GATE = ROOT / "tests" / "services.py"
APPS = ("tests", "tenants", "hosts", "desktops", "billing")
# Names that skip (or find a tool to skip without) behind the gate's back; only tests/services.py may use them.
UNGATED = {
    "importorskip": "pytest.importorskip (use services.require_module)",
    "skip": "pytest.skip (use services.require, or services.optional for a feature Quetzal works without)",
    "skipif": "a skipif mark (call services.require in the test or its fixture)",
    "which": "shutil.which (use services.require_tool)",
}


def modules_of_the_test_tree() -> list[Path]:
    """conftest.py files and every module in a tests/ directory of the apps."""
    found: set[Path] = {ROOT / "conftest.py"}
    for app in APPS:
        found.update(p for p in (ROOT / app).rglob("*.py") if "tests" in p.relative_to(ROOT).parts)
        found.update((ROOT / app).rglob("conftest.py"))
    return sorted(p for p in found if p.exists() and p != GATE)


def ungated_skips(source: str, name: str = "<test>") -> list[str]:
    """`file:line: what` for each skip, skip mark or tool lookup that does not go through the gate."""
    problems = []
    for node in ast.walk(ast.parse(source, name)):
        if isinstance(node, ast.Attribute) and node.attr in UNGATED:
            problems.append(f"{name}:{node.lineno}: {UNGATED[node.attr]}")
        elif isinstance(node, ast.ImportFrom) and node.module in {"pytest", "shutil", "_pytest.outcomes"}:
            problems += [
                f"{name}:{node.lineno}: {UNGATED[alias.name]}" for alias in node.names if alias.name in UNGATED
            ]
    return problems


def test_it_finds_the_test_tree():
    files = {p.relative_to(ROOT).as_posix() for p in modules_of_the_test_tree()}
    assert {"conftest.py", "hosts/tests/test_hypervisor_driver.py", "desktops/tests/qemu_world.py"} <= files
    assert "tests/services.py" not in files


def test_it_leaves_every_skip_to_the_shared_gate():
    problems = [found for path in modules_of_the_test_tree() for found in ungated_skips(path.read_text(), str(path))]
    assert problems == []


@pytest.mark.parametrize(
    "source",
    [
        'libvirt = pytest.importorskip("libvirt")',
        'pytest.skip("qemu-img not installed")',
        'pytestmark = pytest.mark.skipif(True, reason="no cpio")',
        'path = shutil.which("qemu-img")',
        "from pytest import importorskip",
        "from shutil import which",
    ],
)
def test_it_catches_each_way_of_skipping_behind_the_gates_back(source):
    assert len(ungated_skips(source)) == 1


def test_it_lets_plain_code_through():
    assert ungated_skips('qemu_img = require_tool("qemu-img", "qemu-utils")\nnames.skip_me = 1') == []


@pytest.mark.parametrize("ci", ["", "false"])
def test_it_skips_with_the_reason_outside_ci(monkeypatch, ci):
    monkeypatch.setenv("CI", ci)
    with pytest.raises(Skipped, match=r"qemu-img-that-does-not-exist .* is not available"):
        services.require_tool("qemu-img-that-does-not-exist", "qemu-utils")


@pytest.mark.parametrize("ci", ["true", "1"])
def test_it_fails_under_ci(monkeypatch, ci):
    monkeypatch.setenv("CI", ci)
    with pytest.raises(Failed, match="required under CI=true"):
        services.require_module("a_module_that_does_not_exist", "the binding")
    with pytest.raises(Failed, match="required under CI=true"):
        services.missing("libvirtd at qemu:///system")


def test_it_skips_an_optional_feature_even_under_ci(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(Skipped, match="optional"):
        services.optional(False, "libvirt's NAT network 'default'")


def test_it_lets_a_present_service_through(monkeypatch):
    monkeypatch.setenv("CI", "true")
    services.require(True, "PostgreSQL")
    assert services.require_module("json", "json").dumps([]) == "[]"
