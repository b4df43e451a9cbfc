"""Partials that draw from their own arguments only, checked over every template in the tree.

An include sees the caller's whole context: the icon partial once drew `width="Huge (16 vCPU …)"` on the sizes
page, whose context has a `size` of its own. Such partials are included with `only`, so no page's variables
leak into them.
"""

from __future__ import annotations

import re
from pathlib import Path

from django.conf import settings

# Partials whose arguments share names with what pages put in their context (size, name, class).
ISOLATED_PARTIALS = ("partials/icon.html",)


def _templates() -> list[Path]:
    roots = [Path(d) for d in settings.TEMPLATES[0]["DIRS"]]
    return sorted(p for root in roots for p in root.rglob("*.html"))


def test_it_includes_the_isolated_partials_with_only():
    include = re.compile(r'\{%\s*include\s+"(?P<name>[^"]+)"(?P<rest>[^%]*)%\}')
    found, leaky = 0, []
    for path in _templates():
        for match in include.finditer(path.read_text()):
            if match["name"] in ISOLATED_PARTIALS:
                found += 1
                if not re.search(r"\bonly\s*$", match["rest"]):
                    leaky.append(f"{path}: {match.group(0)}")
    assert found > 10, "the scan found no icon includes: the pattern or the template directories changed"
    assert not leaky, leaky
