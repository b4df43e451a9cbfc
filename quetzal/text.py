"""What a text input may contain: no NUL and no other control characters.

A name with a newline is accepted by the database but breaks provisioning (libvirt XML, cloud-init YAML,
log lines); a NUL reaches PostgreSQL, which refuses it with a server error. Every text field of the API,
the forms and the query-string filters runs one of these two validators. They are regular expressions
that must match the whole value, so the OpenAPI schema states them as each field's `pattern`.
"""

from __future__ import annotations

from django.core.validators import RegexValidator
from django.utils.deconstruct import deconstructible

# C0 and C1 controls (NUL, line breaks, escape, DEL...) and the Unicode line and paragraph separators;
# multi-line text keeps tab, line feed and carriage return. (Lone surrogates can only come from JSON,
# whose parser refuses them: quetzal/api/parsers.py.)
SINGLE_LINE_PATTERN = r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029]*\Z"
MULTI_LINE_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029]*\Z"


def schema_pattern(pattern: str) -> str:
    """The pattern as OpenAPI (ECMA-262) writes it, the way drf-spectacular converts validators."""
    return pattern.replace(r"\x", r"\u00").replace(r"\Z", "$")


SINGLE_LINE_SCHEMA_PATTERN = schema_pattern(SINGLE_LINE_PATTERN)
MULTI_LINE_SCHEMA_PATTERN = schema_pattern(MULTI_LINE_PATTERN)


@deconstructible
class SingleLineValidator(RegexValidator):
    """A name or a filter: one line, printable."""

    regex = SINGLE_LINE_PATTERN
    message = "Must be one line without NUL or other control characters."
    code = "control_characters"


@deconstructible
class MultiLineValidator(RegexValidator):
    """Free text (a text area): line breaks and tabs, but no NUL or other control characters."""

    regex = MULTI_LINE_PATTERN
    message = "Must not contain NUL or control characters other than line breaks and tabs."
    code = "control_characters"


single_line = SingleLineValidator()
multi_line = MultiLineValidator()
