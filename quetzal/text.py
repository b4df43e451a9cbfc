"""What a text input may contain: no NUL, no control characters, no lone surrogates.

A name with a newline is accepted by the database but breaks provisioning (libvirt XML, cloud-init YAML,
log lines); a NUL reaches PostgreSQL, which refuses it with a server error; a lone surrogate (JSON allows
"\\ud800") cannot be encoded as UTF-8 at all. Every text field of the API, the forms and the query-string
filters runs one of these two validators. They are regular expressions that must match the whole value,
so the OpenAPI schema states them as each field's `pattern`.
"""

from __future__ import annotations

from django.core.validators import RegexValidator
from django.utils.deconstruct import deconstructible

# C0 and C1 controls (NUL, line breaks, escape, DEL...), the Unicode line and paragraph separators and
# lone surrogates; multi-line text keeps tab, line feed and carriage return.
SINGLE_LINE_PATTERN = r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]*\Z"
MULTI_LINE_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]*\Z"


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
