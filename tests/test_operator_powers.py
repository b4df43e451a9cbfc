"""Operator powers are decided in one place (tenants.twofactor.operator_powers), so ADMIN_REQUIRE_2FA holds
for every operator-only page, API and socket, including ones added later: no other module reads is_staff."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APPS = ("quetzal", "tenants", "hosts", "desktops", "billing")
# The one test of operator powers, and the model that defines the flag.
ALLOWED = {"tenants/twofactor.py", "tenants/models/user.py"}


def _reads_of_is_staff(path: Path) -> list[int]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr == "is_staff" and isinstance(node.ctx, ast.Load)
    ]


def _modules():
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if "/tests/" in relative or "/migrations/" in relative or relative in ALLOWED:
                continue
            yield relative, path


def test_it_finds_the_modules_it_checks():
    # A walk that found nothing would pass below; the operator checks it replaced are among them.
    names = {name for name, _ in _modules()}
    assert {"desktops/metrics/access.py", "desktops/metrics/views.py", "tenants/views/pages.py"} <= names


def test_it_decides_operator_powers_only_in_twofactor():
    offenders = [f"{name}:{line}" for name, path in _modules() for line in _reads_of_is_staff(path)]
    assert not offenders, "use tenants.twofactor.is_operator / is_operator_socket: " + ", ".join(offenders)
