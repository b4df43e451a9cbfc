"""Paths inside a home: relative, normalised, no `..`, no control characters; checked before any tool sees them."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

# Counted in characters (what people and the API schema see); 63 of them stay within ext4's 255 bytes per name.
MAX_NAME_CHARS = 63
MAX_PATH_CHARS = 1024
MAX_DEPTH = MAX_PATH_CHARS // 2  # as deep as a path of that length can go ("a/a/a/...")
# The same rules as a regular expression, for the API schema (clean_path is what enforces them).
_SEGMENT = (
    r"(?!\.\.?(?:/|$))(?!\.qz-partial-)(?! )"
    r"[^/\\\u0000-\u001f\u007f-\u009f\u2028\u2029]{1," + str(MAX_NAME_CHARS) + r"}(?<! )"
)
PATH_PATTERN = rf"^(?:{_SEGMENT}(?:/{_SEGMENT})*)?$"


class InvalidPath(ValueError):
    """A path or name the file manager refuses; the message says why."""

    code = "invalid_path"


@dataclass(frozen=True)
class HomePath:
    """A validated path relative to the home's root; `parts` is empty for the root itself."""

    parts: tuple[str, ...]

    @property
    def is_root(self) -> bool:
        return not self.parts

    @property
    def name(self) -> str:
        return self.parts[-1] if self.parts else ""

    @property
    def parent(self) -> HomePath:
        return HomePath(self.parts[:-1])

    def child(self, name: str) -> HomePath:
        return clean_path("/".join((*self.parts, clean_name(name))))

    def under(self, root: str) -> str:
        """The absolute path below `root` (the guest's mount point, or "/" of the image)."""
        return root.rstrip("/") + "/" + "/".join(self.parts) if self.parts else (root.rstrip("/") or "/")

    def __str__(self) -> str:
        return "/".join(self.parts)


def clean_name(name: str) -> str:
    """One file or folder name as people type it, or InvalidPath."""
    if not isinstance(name, str):
        raise InvalidPath("A name must be text.")
    name = unicodedata.normalize("NFC", name)
    if name in ("", ".", ".."):
        raise InvalidPath("A name cannot be empty, '.' or '..'.")
    if "/" in name or "\\" in name:
        raise InvalidPath("A name cannot contain '/' or '\\'.")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise InvalidPath("A name cannot contain control characters.")
    if name != name.strip():
        raise InvalidPath("A name cannot start or end with spaces.")
    if name.startswith(".qz-partial-"):
        raise InvalidPath("Names starting with .qz-partial- are reserved for transfers in progress.")
    if len(name) > MAX_NAME_CHARS:
        raise InvalidPath(f"A name is at most {MAX_NAME_CHARS} characters.")
    return name


def clean_path(path: str | None) -> HomePath:
    """A relative path inside the home ('' is the root); absolute paths and '..' are refused."""
    if path is None or path == "":
        return HomePath(())
    if not isinstance(path, str):
        raise InvalidPath("A path must be text.")
    if "\x00" in path:
        raise InvalidPath("A path cannot contain NUL.")
    if path.startswith("/"):
        raise InvalidPath("Absolute paths are not allowed; paths are relative to your home.")
    if len(path) > MAX_PATH_CHARS:
        raise InvalidPath(f"A path is at most {MAX_PATH_CHARS} characters.")
    if "//" in path or path.endswith("/"):
        raise InvalidPath("A path has no empty parts.")
    raw_parts = path.split("/")
    if any(p == ".." for p in raw_parts):
        raise InvalidPath("'..' is not allowed in a path.")
    if "." in raw_parts:
        raise InvalidPath("'.' is not allowed in a path.")
    parts = tuple(clean_name(p) for p in raw_parts)
    if len(parts) > MAX_DEPTH:
        raise InvalidPath(f"Folders nest at most {MAX_DEPTH} deep.")
    return HomePath(parts)
