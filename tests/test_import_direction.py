"""Imports go one way, tenants <- hosts <- desktops <- billing, read from the source of every module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("tenants", "hosts", "desktops", "billing")
# The apps whose every module (tests included) is held to the direction today; desktops joins when
# it tells billing what happened through signals only.
CHECKED = ("tenants", "hosts")
# Where work is handed to Celery and imports hide cycles: function-local imports need a comment.
NO_LOCAL_IMPORTS = ("hosts/services", "hosts/scheduling", "hosts/tasks.py", "hosts/dispatch.py", "billing/tasks.py")


def modules(*places: str) -> list[Path]:
    found: list[Path] = []
    for place in places:
        path = ROOT / place
        found += [path] if path.is_file() else sorted(path.rglob("*.py"))
    return [p for p in found if "migrations" not in p.parts]


def imported_apps(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", modules(*CHECKED), ids=lambda p: str(p.relative_to(ROOT)))
def test_it_imports_no_higher_app(path: Path) -> None:
    # given a module of a checked app, when its imports are read, then none names an app above it
    app = path.relative_to(ROOT).parts[0]
    higher = set(LAYERS[LAYERS.index(app) + 1 :])
    assert not imported_apps(ast.parse(path.read_text())) & higher


def local_imports(tree: ast.AST) -> list[int]:
    """Line numbers of imports inside functions."""
    lines = []
    for function in ast.walk(tree):
        if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            for node in ast.walk(function):
                if isinstance(node, ast.Import | ast.ImportFrom):
                    lines.append(node.lineno)
    return lines


@pytest.mark.parametrize("path", modules(*NO_LOCAL_IMPORTS), ids=lambda p: str(p.relative_to(ROOT)))
def test_it_imports_inside_functions_only_with_a_reason(path: Path) -> None:
    # given a services, scheduling, dispatch or tasks module
    source = path.read_text().splitlines()
    # when its function-local imports are read, then each has a comment on its line or the one above
    unexplained = [
        line
        for line in local_imports(ast.parse("\n".join(source)))
        if "#" not in source[line - 1] and not source[line - 2].strip().startswith("#")
    ]
    assert unexplained == []


def test_it_checks_real_modules() -> None:
    # Guards the two tests above against passing on an empty list (a moved folder, a typo).
    assert len(modules(*CHECKED)) > 50
    assert {p.relative_to(ROOT).as_posix() for p in modules(*NO_LOCAL_IMPORTS)} >= {
        "hosts/tasks.py",
        "hosts/dispatch.py",
        "billing/tasks.py",
        "hosts/services/health.py",
        "hosts/scheduling/placement.py",
    }
