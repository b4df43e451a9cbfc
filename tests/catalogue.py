"""Reads gettext catalogues (.po) for the language tests: entries, their flags, and what is left to translate."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

_FIELD = re.compile(r'^(msgctxt|msgid_plural|msgid|msgstr(?:\[\d\])?) (".*")$')


@dataclass(frozen=True)
class Entry:
    context: str | None
    msgid: str
    plural: str | None
    translations: tuple[str, ...]  # msgstr, or msgstr[0], msgstr[1], ...
    fuzzy: bool

    @property
    def key(self) -> tuple[str | None, str]:
        return self.context, self.msgid

    @property
    def untranslated(self) -> bool:
        return any(t == "" for t in self.translations)


def read_po(path: Path) -> list[Entry]:
    """Every live entry of a catalogue (not the header, not the obsolete #~ ones)."""
    entries = []
    for block in path.read_text(encoding="utf-8").split("\n\n"):
        fields: dict[str, str] = {}
        current = None
        fuzzy = False
        for line in block.strip().splitlines():
            if line.startswith("#"):
                fuzzy = fuzzy or (line.startswith("#,") and "fuzzy" in line)
                continue
            match = _FIELD.match(line)
            if match:
                current = match.group(1)
                fields[current] = ast.literal_eval(match.group(2))
            elif line.startswith('"') and current:
                fields[current] += ast.literal_eval(line)
        if "msgid" not in fields or fields["msgid"] == "":
            continue
        translations = tuple(v for k, v in sorted(fields.items()) if k.startswith("msgstr"))
        entries.append(Entry(fields.get("msgctxt"), fields["msgid"], fields.get("msgid_plural"), translations, fuzzy))
    return entries
