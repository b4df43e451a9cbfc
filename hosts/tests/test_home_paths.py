"""The file manager's path checks: what a person may name a file, what never reaches a tool, and what they are told."""

from __future__ import annotations

import re

import pytest

from hosts.homefs.paths import (
    MAX_DEPTH,
    MAX_NAME_CHARS,
    MAX_PATH_CHARS,
    PATH_PATTERN,
    HomePath,
    InvalidPath,
    clean_name,
    clean_path,
)


def _refused(check, value, message: str) -> None:
    """Refused with the invalid_path code and exactly this message: it is what the person is shown."""
    with pytest.raises(InvalidPath) as refused:
        check(value)
    assert (refused.value.code, str(refused.value)) == ("invalid_path", message)


EMPTY = "A name cannot be empty, '.' or '..'."
SLASH = "A name cannot contain '/' or '\\'."
CONTROL = "A name cannot contain control characters."
SPACES = "A name cannot start or end with spaces."
ABSOLUTE = "Absolute paths are not allowed; paths are relative to your home."
PARTIAL = "Names starting with .qz-partial- are reserved for transfers in progress."


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (7, "A name must be text."),
        (b"notes", "A name must be text."),
        ("", EMPTY),
        (".", EMPTY),
        ("..", EMPTY),
        ("a/b", SLASH),
        ("a\\b", SLASH),
        ("a\x00b", CONTROL),
        ("tab\there", CONTROL),
        ("\x1f", CONTROL),
        ("del\x7f", CONTROL),
        (" report", SPACES),
        ("report ", SPACES),
        ("\u3000report", SPACES),
        (".qz-partial-1a2b", PARTIAL),
        ("x" * (MAX_NAME_CHARS + 1), f"A name is at most {MAX_NAME_CHARS} characters."),
    ],
)
def test_it_refuses_a_name_with_the_reason(name, message):
    _refused(clean_name, name, message)


@pytest.mark.parametrize(
    "name",
    ["notes.txt", "...", ".profile", "two words", "a!b~c", "é", "\x80odd", ".qz-partial", "x" * MAX_NAME_CHARS],
)
def test_it_keeps_a_name_people_may_use_as_typed(name):
    assert clean_name(name) == name


def test_it_stores_a_name_in_one_unicode_form_whichever_way_it_was_typed():
    # "é" typed as e + combining accent is the same file as the precomposed "é"
    assert clean_name("cafe\u0301") == "caf\u00e9"
    assert clean_path("cafe\u0301/cafe\u0301.txt").parts == ("caf\u00e9", "caf\u00e9.txt")


def test_it_counts_a_names_length_in_characters_not_bytes():
    assert clean_name("é" * MAX_NAME_CHARS) == "é" * MAX_NAME_CHARS


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (7, "A path must be text."),
        (["a"], "A path must be text."),
        ("a\x00b", "A path cannot contain NUL."),
        ("/etc/passwd", ABSOLUTE),
        ("/", ABSOLUTE),
        ("a//b", "A path has no empty parts."),
        ("docs/", "A path has no empty parts."),
        ("..", "'..' is not allowed in a path."),
        ("../x", "'..' is not allowed in a path."),
        ("docs/../../etc", "'..' is not allowed in a path."),
        ("docs/..", "'..' is not allowed in a path."),
        (".", "'.' is not allowed in a path."),
        ("docs/./x", "'.' is not allowed in a path."),
        ("docs/a\\b", SLASH),
        ("docs/ x", SPACES),
        ("docs/.qz-partial-1a2b", PARTIAL),
        ("a/" * 511 + "abc", f"A path is at most {MAX_PATH_CHARS} characters."),
    ],
)
def test_it_refuses_a_path_with_the_reason(path, message):
    _refused(clean_path, path, message)


@pytest.mark.parametrize("root", [None, ""])
def test_it_reads_no_path_as_the_home_itself(root):
    home = clean_path(root)
    assert home == HomePath(()) and home.is_root and home.name == "" and str(home) == ""


def test_it_splits_a_path_into_its_names():
    path = clean_path("docs/2024/report.pdf")
    assert path.parts == ("docs", "2024", "report.pdf")
    assert not path.is_root and path.name == "report.pdf" and str(path) == "docs/2024/report.pdf"


def test_it_takes_the_longest_and_deepest_path_that_fits():
    longest = "a/" * 511 + "a"  # 512 names of one character: 1023 characters
    assert len(clean_path(longest).parts) == MAX_DEPTH
    exact = "a/" * 511 + "a" * 2
    assert len(exact) == MAX_PATH_CHARS and str(clean_path(exact)) == exact


def test_it_walks_up_and_down_a_path():
    path = clean_path("docs/2024")
    assert path.parent == clean_path("docs") and path.parent.parent.is_root
    assert HomePath(()).parent.is_root
    assert path.child("report.pdf") == clean_path("docs/2024/report.pdf")
    assert HomePath(()).child("docs") == clean_path("docs")
    assert path.child("cafe\u0301") == clean_path("docs/2024/caf\u00e9")


@pytest.mark.parametrize(("name", "message"), [("..", EMPTY), ("../x", SLASH), ("a/b", SLASH), ("", EMPTY)])
def test_it_refuses_a_child_that_would_leave_its_folder(name, message):
    _refused(clean_path("docs").child, name, message)


def test_it_makes_the_absolute_path_below_the_mount_point():
    path = clean_path("docs/report.pdf")
    assert path.under("/mnt/qz-home") == "/mnt/qz-home/docs/report.pdf"
    assert path.under("/mnt/qz-home/") == "/mnt/qz-home/docs/report.pdf"
    assert path.under("/") == "/docs/report.pdf"
    assert HomePath(()).under("/mnt/qz-home/") == "/mnt/qz-home"
    assert HomePath(()).under("/") == "/"
    # Only the trailing slashes go: a mount point's own name is kept to its last letter
    assert path.under("/srv/XX/") == "/srv/XX/docs/report.pdf"
    assert HomePath(()).under("/srv/XX/") == "/srv/XX"


@pytest.mark.parametrize(
    "path", ["", "docs", "docs/report.pdf", "...", "é/ü", "../x", "/etc", "a//b", "a/", ".", "a/.", " a", "a ", "a\x01"]
)
def test_it_gives_the_api_schema_the_same_rules(path):
    # The schema's pattern tells API clients in advance what clean_path will refuse
    try:
        clean_path(path)
        accepted = True
    except InvalidPath:
        accepted = False
    assert bool(re.fullmatch(PATH_PATTERN, path)) is accepted
