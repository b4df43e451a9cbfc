"""Mutation testing of the core modules (make mutation): mutmut per module against its covering tests.

mutmut 3 reads one configuration from pyproject.toml in its working directory and copies the tree into
mutants/ there, so each module gets its own working directory under var/mutation/<module>/: symlinks to
the project's sources and a pyproject.toml whose [tool.mutmut] names that module's files and tests.
The modules, their tests and the equivalent mutants are listed under [tool.mutmut] in the project's
pyproject.toml. An equivalent mutant is named with the line it writes, so that when the code moves and
mutmut's numbering shifts the entry stops matching and the mutant counts as a survivor again.

Prints per module generated/killed/survived and a last line `mutation_score=<percent> mutants=<n>`.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "var" / "mutation"
MUTMUT = Path(sys.executable).parent / "mutmut"
# What mutmut copies into mutants/: the apps and the shared test helpers.
LINKED = ["tenants", "hosts", "desktops", "billing", "quetzal", "tests"]
# What the tests read through settings.BASE_DIR, which is mutants/ once quetzal is imported from there.
READ_BY_SETTINGS = ["templates", "static"]
SOURCES = ["tenants", "hosts", "desktops", "billing", "quetzal", "conftest.py"]

# mutmut's exit codes per mutant (mutmut.stats.status_by_exit_code); a timeout means the tests noticed.
# Not 3 (pytest's internal error, which mutmut counts as killed): that is a broken run, not a caught mutant.
KILLED = {1, 24, -24, 152, 255, 36, 37}
SURVIVED = {0}
NO_TESTS = {5, 33}


@dataclass
class Tally:
    name: str
    generated: int = 0
    killed: int = 0
    survived: list[str] = field(default_factory=list)
    equivalent: list[str] = field(default_factory=list)
    other: dict[str, int] = field(default_factory=dict)

    @property
    def counted(self) -> int:
        return self.generated - len(self.equivalent)

    @property
    def score(self) -> float:
        return 100.0 * self.killed / self.counted if self.counted else 100.0


def settings() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]


def pyproject_for(module: dict, shared: dict) -> str:
    """The project's pyproject.toml with a [tool.mutmut] naming this module's files and tests only."""
    text = (ROOT / "pyproject.toml").read_text()
    text = re.split(r"^\[tool\.mutmut", text, flags=re.M)[0]
    config = {
        **{k: v for k, v in shared.items() if not isinstance(v, dict)},
        "source_paths": SOURCES,
        "only_mutate": module["paths"],
        "pytest_add_cli_args_test_selection": module["tests"],
    }
    lines = [f"{key} = {json.dumps(value)}" for key, value in config.items()]
    return text.rstrip() + "\n\n[tool.mutmut]\n" + "\n".join(lines) + "\n"


def prepare(name: str, module: dict, shared: dict, *, keep: bool) -> Path:
    work = WORK / name
    if not keep and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    for entry in LINKED:
        link = work / entry
        if not link.is_symlink():
            link.symlink_to(ROOT / entry)
    (work / "mutants").mkdir(exist_ok=True)
    for entry in READ_BY_SETTINGS:
        link = work / "mutants" / entry
        if not link.is_symlink():
            link.symlink_to(ROOT / entry)
    (work / "pyproject.toml").write_text(pyproject_for(module, shared))
    # The project's conftest plus the mutation plugin (registered after pytest-django, so its fixture wins).
    conftest = (ROOT / "conftest.py").read_text()
    (work / "conftest.py").unlink(missing_ok=True)  # once a symlink: never write through it
    (work / "conftest.py").write_text(conftest + '\npytest_plugins = [*pytest_plugins, "tests.mutation_order"]\n')
    return work


def drop_test_databases(max_children: int) -> None:
    """Start from empty test databases: a killed earlier run may have left a race test's rows behind."""
    import psycopg

    url = urlsplit(os.environ["DATABASE_URL"])
    name = "test_" + unquote(url.path.lstrip("/"))
    with psycopg.connect(urlunsplit(url._replace(path="/postgres")), autocommit=True) as connection:
        for slot in range(max_children):
            connection.execute(f'DROP DATABASE IF EXISTS "{name}_slot{slot}" WITH (FORCE)')


def forget_survivors(work: Path, module: dict) -> None:
    """With --keep: test again every mutant not killed last time (tests may have been added since)."""
    for path in module["paths"]:
        meta = work / "mutants" / (path + ".meta")
        if not meta.exists():
            continue
        data = json.loads(meta.read_text())
        data["exit_code_by_key"] = {k: (v if v in KILLED else None) for k, v in data["exit_code_by_key"].items()}
        meta.write_text(json.dumps(data))


def in_scope(module: dict, mutant: str) -> bool:
    """Whether the mutant is one this module answers for (`mutants`: globs of mutmut names; default all)."""

    def matches(patterns: list[str] | None) -> bool:
        return not patterns or any(fnmatch.fnmatchcase(mutant, pattern) for pattern in patterns)

    return matches(module.get("mutants")) and matches(module.get("scope"))


def run(work: Path, max_children: int, module: dict) -> None:
    drop_test_databases(max_children)
    slots = work / "slots"
    slots.mkdir(exist_ok=True)
    for ready in slots.glob("*.ready"):
        ready.unlink()
    # Each concurrent mutant gets its own test database (tests/mutation_order.py).
    # MUTATION_MODULES: the plugin checks that the tests import these from mutants/, not the originals.
    modules = ",".join(path.removesuffix(".py").replace("/", ".") for path in module["paths"])
    env = {
        **os.environ,
        "MUTATION_SLOT_DIR": str(slots),
        "MUTATION_SLOTS": str(max_children),
        "MUTATION_MODULES": modules,
    }
    log = work / "mutmut.log"
    with log.open("w") as out:
        done = subprocess.run(
            [str(MUTMUT), "run", "--max-children", str(max_children), *module.get("mutants", [])],
            cwd=work,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    if done.returncode != 0:
        sys.stdout.write(log.read_text()[-4000:])
        raise SystemExit(f"mutmut failed in {work} (exit {done.returncode}); the whole log is {log}")


def exit_codes(work: Path, module: dict) -> dict[str, int | None]:
    codes: dict[str, int | None] = {}
    for path in module["paths"]:
        meta = work / "mutants" / (path + ".meta")
        codes.update(json.loads(meta.read_text())["exit_code_by_key"])
    return codes


def mutated_line(work: Path, mutant: str) -> str:
    """The line the mutant writes (its diff's first added line), or `removed: <line>` when it only deletes."""
    diff = subprocess.run([str(MUTMUT), "show", mutant], cwd=work, capture_output=True, text=True).stdout
    changed = [line for line in diff.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")]
    added = [line[1:].strip() for line in changed if line.startswith("+")]
    if added:
        return added[0]
    return f"removed: {changed[0][1:].strip()}" if changed else ""


def tally(name: str, work: Path, module: dict, equivalent: dict[str, dict], *, show: bool) -> Tally:
    result = Tally(name=name)
    codes = exit_codes(work, module)
    stale = set()
    for mutant, code in sorted(codes.items()):
        if not in_scope(module, mutant):
            continue
        result.generated += 1
        if code in KILLED:
            result.killed += 1
            continue
        known = equivalent.get(mutant)
        if code in SURVIVED and known is not None:
            line = mutated_line(work, mutant)
            if line == known["line"].strip():
                result.equivalent.append(mutant)
                continue
            print(f"  stale equivalent entry {mutant}: it now writes {line!r}, not {known['line']!r}")
            stale.add(mutant)
        if code in SURVIVED:
            result.survived.append(mutant)
        else:
            status = "no tests" if code in NO_TESTS else f"exit {code}"
            result.other[status] = result.other.get(status, 0) + 1
            result.survived.append(mutant)
    # An entry that no longer names a surviving mutant (killed now, or renumbered away) is dead weight.
    prefixes = tuple(path.removesuffix(".py").replace("/", ".") + "." for path in module["paths"])
    for mutant in sorted(set(equivalent) - set(result.equivalent) - stale):
        if mutant.startswith(prefixes) and in_scope(module, mutant):
            why = "killed now" if codes.get(mutant) in KILLED else "no such mutant"
            print(f"  unused equivalent entry {mutant}: {why}")
    if show:
        for mutant in result.survived:
            diff = subprocess.run([str(MUTMUT), "show", mutant], cwd=work, capture_output=True, text=True).stdout
            print(diff)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help="modules to test (default: all listed in pyproject.toml)")
    parser.add_argument("--max-children", type=int, default=int(os.environ.get("MUTATION_CHILDREN", "2")))
    parser.add_argument(
        "--keep", action="store_true", help="keep earlier kills of unchanged functions; test only the rest again"
    )
    parser.add_argument("--report-only", action="store_true", help="count the last run's results, run nothing")
    parser.add_argument("--show", action="store_true", help="print each survivor's diff")
    parser.add_argument(
        "--only", nargs="+", metavar="GLOB", help="test and count only the mutants these mutmut-name globs match"
    )
    args = parser.parse_args()
    shared = settings()
    modules: dict[str, dict] = shared["modules"]
    equivalent: dict[str, dict] = shared.get("equivalent", {})
    names = args.modules or list(modules)
    unknown = set(names) - set(modules)
    if unknown:
        raise SystemExit(f"unknown module(s) {sorted(unknown)}; pyproject.toml lists {sorted(modules)}")
    if "postgres" not in os.environ.get("DATABASE_URL", ""):
        raise SystemExit("set DATABASE_URL to a PostgreSQL database: the covering tests need its locking")
    tallies = []
    for name in names:
        module = modules[name]
        if args.only:
            # Within the module's own scope: its `mutants` globs still apply to the tally.
            module = {**module, "mutants": args.only, "scope": module.get("mutants")}
        work = WORK / name if args.report_only else prepare(name, module, shared, keep=args.keep)
        if not args.report_only:
            if args.keep:
                forget_survivors(work, module)
            run(work, args.max_children, module)
        result = tally(name, work, module, equivalent, show=args.show)
        tallies.append(result)
        other = "".join(f" {status.replace(' ', '_')}={n}" for status, n in sorted(result.other.items()))
        print(
            f"{name}: generated={result.generated} killed={result.killed} survived={len(result.survived)} "
            f"equivalent={len(result.equivalent)}{other} score={result.score:.1f}%",
            flush=True,
        )
        for mutant in result.survived:
            print(f"  survived {mutant}")
    killed = sum(t.killed for t in tallies)
    counted = sum(t.counted for t in tallies)
    generated = sum(t.generated for t in tallies)
    score = 100.0 * killed / counted if counted else 100.0
    print(f"mutation_score={score:.1f} mutants={generated}")


if __name__ == "__main__":
    main()
