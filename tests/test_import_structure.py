"""Imports go one way (tenants <- hosts <- desktops <- billing) and services and tasks never import in a circle.

Read from the source with `ast`, so every new service, task or dispatch module is covered as it is added.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Lower apps first: an app may import the ones before it, never the ones after it.
APP_ORDER = ("tenants", "hosts", "desktops", "billing")
RANK = {app: rank for rank, app in enumerate(APP_ORDER)}


@dataclass(frozen=True)
class ImportLine:
    path: str  # relative to the repository root
    lineno: int
    names: tuple[str, ...]  # dotted: "pkg.module" or "pkg.module.attribute"
    local: bool  # inside a function body


def _is_excluded(path: Path) -> bool:
    return "tests" in path.parts or "migrations" in path.parts


def watched_files() -> list[Path]:
    """Every services module, tasks module and dispatch module of the four apps (nested apps included)."""
    found: set[Path] = set()
    for app in APP_ORDER:
        base = ROOT / app
        found.update(base.rglob("services/*.py"))
        found.update(base.rglob("tasks.py"))
        found.update(base.rglob("dispatch.py"))
        found.update(base.rglob("scheduling/*.py"))
    return sorted(path for path in found if not _is_excluded(path.relative_to(ROOT)))


def every_module() -> list[Path]:
    """Every module of the four apps, tests included (a test importing upward hides the same coupling)."""
    return sorted(path for app in APP_ORDER for path in (ROOT / app).rglob("*.py") if "migrations" not in path.parts)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _absolute(node: ast.ImportFrom, path: Path) -> str:
    if not node.level:
        return node.module or ""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package.pop()
    base = package[: len(package) - node.level + 1]
    return ".".join([*base, node.module] if node.module else base)


def imports_of(path: Path) -> list[ImportLine]:
    """Every import statement of a file, with the dotted names it brings in, marked local inside a function."""
    tree = ast.parse(path.read_text(), filename=str(path))
    rel = str(path.relative_to(ROOT))
    lines: list[ImportLine] = []

    def visit(node: ast.AST, local: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if _type_checking_only(child):
                continue  # annotations only: nothing is imported at run time
            inside = local or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.Import):
                lines.append(ImportLine(rel, child.lineno, tuple(a.name for a in child.names), local))
            elif isinstance(child, ast.ImportFrom):
                module = _absolute(child, path)
                names = tuple(f"{module}.{a.name}" for a in child.names)
                lines.append(ImportLine(rel, child.lineno, names, local))
            visit(child, inside)

    visit(tree, False)
    return lines


def _type_checking_only(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and ast.unparse(node.test) in {"TYPE_CHECKING", "typing.TYPE_CHECKING"}


def _app_of(dotted: str) -> str | None:
    top = dotted.split(".")[0]
    return top if top in RANK else None


def import_graph() -> dict[str, set[str]]:
    """Module-level imports between the watched modules: module -> modules it imports."""
    files = watched_files()
    modules = {module_name(path) for path in files}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for path in files:
        source = module_name(path)
        for line in imports_of(path):
            if line.local:
                continue
            for dotted in line.names:
                # "from pkg import module" names a module; "from pkg.module import thing" names its module.
                target = dotted if dotted in modules else dotted.rsplit(".", 1)[0]
                if target in modules and target != source:
                    graph[source].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each a cycle of imports."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def upward_imports() -> set[tuple[str, str]]:
    """(file, import) pairs of modules importing an app above their own."""
    found = set()
    for path in every_module():
        own = _app_of(module_name(path))
        for line in imports_of(path):
            for dotted in line.names:
                target = _app_of(dotted)
                if target is not None and RANK[target] > RANK[own]:
                    found.add((line.path, dotted))
    return found


def _commented(lines: list[str], lineno: int) -> bool:
    """A `# ` comment on the import's line or the line above says why it is local."""
    here = lines[lineno - 1]
    above = lines[lineno - 2] if lineno >= 2 else ""
    return "# " in here or above.strip().startswith("# ")


def uncommented_local_imports() -> set[tuple[str, str]]:
    """(file, import) pairs of function-local imports in services and tasks with no comment saying why."""
    found = set()
    for path in watched_files():
        rel = path.relative_to(ROOT)
        if rel.name == "dispatch.py":
            continue
        source = path.read_text().splitlines()
        for line in imports_of(path):
            if line.local and not _commented(source, line.lineno):
                found.update((line.path, dotted) for dotted in line.names)
    return found


def test_it_watches_the_services_tasks_and_dispatch_modules():
    names = {module_name(path) for path in watched_files()}
    assert {"desktops.services.requests", "desktops.tasks", "desktops.dispatch", "billing.services.dunning"} <= names
    assert {"desktops.console.tasks", "hosts.services.images"} <= names


def test_it_finds_no_import_cycle_between_services_and_tasks():
    assert cycles(import_graph()) == []


def test_it_finds_a_cycle_when_there_is_one():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_it_finds_no_import_against_the_app_order():
    assert len(every_module()) > 200
    assert upward_imports() == set()


def test_it_finds_no_function_local_import_without_a_reason():
    assert uncommented_local_imports() == set()


def test_it_reads_local_and_relative_imports(tmp_path, monkeypatch):
    package = tmp_path / "desktops" / "services"
    package.mkdir(parents=True)
    module = package / "sample.py"
    module.write_text(
        "from . import quotas\n"
        "from billing.models import Invoice\n"
        "def f():\n"
        "    from desktops import tasks\n"
        "    # hosts imports this module at start-up\n"
        "    import hosts.models\n"
    )
    (tmp_path / "tenants").mkdir()
    (tmp_path / "tenants" / "events.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from desktops.models import Desktop\n"
    )
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    found = imports_of(module)
    assert [(line.names, line.local) for line in found] == [
        (("desktops.services.quotas",), False),
        (("billing.models.Invoice",), False),
        (("desktops.tasks",), True),
        (("hosts.models",), True),
    ]
    assert upward_imports() == {("desktops/services/sample.py", "billing.models.Invoice")}
    assert uncommented_local_imports() == {("desktops/services/sample.py", "desktops.tasks")}
