"""Finds the words a person would read in a Django template that no {% translate %} covers.

The template is split by Django's own lexer (so template tags are never mistaken for text); a small HTML
state machine then follows the text tokens across variables and tags to tell page text and the attributes a
person reads (title, aria-label, placeholder, alt, data-confirm, data-label) from markup, scripts and data.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from django.template.base import DebugLexer, Token, TokenType

# Attributes whose values the browser shows or reads aloud (data-confirm: ui.js puts it in the dialog;
# data-label: the phone layout shows it beside each table cell; data-shape: portal.js shows the chosen size).
VISIBLE_ATTRIBUTES = frozenset(
    {"title", "aria-label", "aria-description", "placeholder", "alt", "label"}
    | {"data-confirm", "data-label", "data-shape"}
)
# Filters whose literal argument can end up on the page as text ({{ x|default:"none" }}): they need _("...").
TEXT_FILTERS = ("default", "default_if_none", "yesno")
# Words that are the same in every language. Each needs a reason.
ALLOWED_WORDS = {
    "Quetzal": "the product's name",
    "Stripe": "the payment provider's name",
    "OIDC": "a protocol's name",
    "SAML": "a protocol's name",
    "LDAP": "a protocol's name",
    "TOTP": "a protocol's name",
    "API": "the same abbreviation in German",
    "CPU": "the same abbreviation in German",
    "vCPU": "the same abbreviation in German",
    "vCPUs": "the same abbreviation in German",
    "GiB": "a unit",
    "MiB": "a unit",
    "KiB": "a unit",
    "TiB": "a unit",
    "ms": "a unit",
    "IP": "the same abbreviation in German",
    "VNC": "a protocol's name",
    "HTTP": "a protocol's name",
    "UTC": "a time zone's name",
    "ID": "the same abbreviation in German",
    "en": "a language code (the html element's lang before a language is active)",
}
TRANSLATE_TAGS = ("translate", "trans")
BLOCK_TRANSLATE_TAGS = {"blocktranslate": "endblocktranslate", "blocktrans": "endblocktrans"}
# Elements whose content is not prose: scripts, styles, and code (paths, commands, identifiers).
RAW_TEXT_ELEMENTS = ("script", "style", "code", "kbd", "samp", "pre")
WORD = re.compile(r"[^\W\d_]{2,}")
ENTITY = re.compile(r"&(?:[A-Za-z]+|#\d+|#x[0-9A-Fa-f]+);")
LITERAL_ARGUMENT = re.compile(r"\|(" + "|".join(TEXT_FILTERS) + r"):(\"[^\"]*\"|'[^']*')")


@dataclass(frozen=True)
class Untranslated:
    """A piece of text a person reads that no translate tag covers."""

    path: str
    line: int
    text: str
    where: str  # "text", an attribute's name, or "filter"
    span: tuple[int, int] = field(default=(0, 0), compare=False)  # where it is in the source

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.where}: {self.text!r}"


def readable_words(text: str) -> list[str]:
    """The words in a piece of page text that need a translation (entities and allowed words removed)."""
    return [w for w in WORD.findall(ENTITY.sub(" ", text)) if w not in ALLOWED_WORDS]


@dataclass
class _Html:
    """Where in the HTML the text so far has left off: between tags, inside a tag, or inside a value."""

    state: str = "data"  # data, tag, attr_name, before_value, value, comment, raw
    tag: str = ""
    attribute: str = ""
    quote: str = ""
    raw_until: str = ""
    buffer: list[str] = field(default_factory=list)


def _lines(source: str, start: int) -> int:
    return source.count("\n", 0, start) + 1


def untranslated(source: str, path: str = "<string>") -> Iterator[Untranslated]:
    """Every piece of readable text in a template's source that is outside a translate tag."""
    html = _Html()
    text_start = 0
    pending: list[tuple[int, str]] = []  # (offset, text) of the page text gathered since the last tag

    def flush(where: str) -> Iterator[Untranslated]:
        text = "".join(t for _, t in pending)
        if pending and readable_words(text):
            span = (pending[0][0], pending[-1][0] + 1)
            yield Untranslated(path, _lines(source, span[0]), " ".join(text.split()), where, span)
        pending.clear()

    skip_until: str | None = None
    for token in DebugLexer(source).tokenize():
        if token.token_type == TokenType.COMMENT:
            continue
        if token.token_type == TokenType.BLOCK:
            name = token.contents.split()[0] if token.contents else ""
            if skip_until:
                if name == skip_until:
                    skip_until = None
                continue
            if name in BLOCK_TRANSLATE_TAGS:
                skip_until = BLOCK_TRANSLATE_TAGS[name]
            elif name == "comment":
                skip_until = "endcomment"
            elif name == "block" and "class" in token.contents:
                skip_until = "endblock"  # {% block main_class %}: CSS class names, not text
            elif html.state == "data" and name not in TRANSLATE_TAGS:
                yield from flush("text")  # a tag such as {% if %} ends a run of text
            yield from _literal_arguments(token, source, path)
            continue
        if skip_until:
            continue
        if token.token_type == TokenType.VAR:
            yield from _literal_arguments(token, source, path)
            continue
        text_start = token.position[0]
        for offset, char in enumerate(token.contents):
            yield from _step(html, char, text_start + offset, pending, flush)
    yield from flush("text")


def _literal_arguments(token: Token, source: str, path: str) -> Iterator[Untranslated]:
    for match in LITERAL_ARGUMENT.finditer(token.contents):
        if readable_words(match.group(2)):
            yield Untranslated(path, _lines(source, token.position[0]), match.group(2), "filter", token.position)


def _step(html: _Html, char: str, at: int, pending: list[tuple[int, str]], flush) -> Iterator[Untranslated]:
    """Moves the HTML state machine on by one character, reporting text when a tag or value ends it."""
    state = html.state
    if state == "comment":
        html.buffer.append(char)
        if "".join(html.buffer[-3:]) == "-->":
            html.state, html.buffer = "data", []
        return
    if state == "raw":
        html.buffer.append(char)
        if "".join(html.buffer[-len(html.raw_until) :]).lower() == html.raw_until:
            html.state, html.buffer, html.tag = "tag", [], ""
        return
    if state == "data":
        if char == "<":
            yield from flush("text")
            html.state, html.tag, html.buffer = "tag", "", ["<"]
            return
        pending.append((at, char))
        return
    if state == "tag":
        html.buffer.append(char)
        if "".join(html.buffer) == "<!--":
            html.state, html.buffer = "comment", []
        elif char == ">":
            _end_tag(html)
        elif char.isspace() or char == "/":
            if len(html.buffer) > 1 and not html.tag:
                html.tag = "".join(html.buffer[1:-1]).lower()
        elif html.tag:
            html.state, html.attribute = "attr_name", char
        return
    if state == "attr_name":
        if char == "=":
            html.state = "before_value"
        elif char == ">":
            _end_tag(html)
        elif char.isspace():
            html.state = "tag"
        else:
            html.attribute += char
        return
    if state == "before_value":
        if char in "\"'":
            html.state, html.quote = "value", char
        elif not char.isspace():
            html.state, html.quote = "value", " "
            if html.attribute.lower() in VISIBLE_ATTRIBUTES:
                pending.append((at, char))
        return
    if state == "value":
        if char == html.quote or (html.quote == " " and (char.isspace() or char == ">")):
            if html.attribute.lower() in VISIBLE_ATTRIBUTES:
                yield from flush(html.attribute.lower())
            pending.clear()
            html.state = "tag"
            if char == ">":
                _end_tag(html)
        elif html.attribute.lower() in VISIBLE_ATTRIBUTES:
            pending.append((at, char))


def _end_tag(html: _Html) -> None:
    words = "".join(html.buffer[1:-1]).split()
    name = html.tag or (words[0].lower() if words else "")
    if name in RAW_TEXT_ELEMENTS:
        html.state, html.raw_until, html.buffer = "raw", f"</{name}", []
    else:
        html.state, html.buffer = "data", []
    html.tag = ""


def template_dirs() -> list[Path]:
    """The project's template directories and those of its own apps (not the installed packages')."""
    from django.conf import settings  # settings are configured by the time a test calls this

    root = Path(settings.BASE_DIR)
    dirs = [Path(d) for engine in settings.TEMPLATES for d in engine.get("DIRS", [])]
    dirs += [p for p in root.glob("*/templates") if ".venv" not in p.parts]
    dirs += [p for p in root.glob("*/*/templates") if ".venv" not in p.parts and "node_modules" not in p.parts]
    return sorted(set(dirs))


def project_templates() -> list[Path]:
    return sorted(p for d in template_dirs() for p in d.rglob("*.html"))
