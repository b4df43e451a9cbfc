"""Typed query-string filters (django-filter) shared by the API and the pages.

Every query parameter the project reads goes through a FilterSet built on `FilterSet` below, or a form
built on `quetzal.forms.Form`: ids in ASCII digits within bigint range, real dates and offsets, text
without control characters. Each filter type carries the OpenAPI schema of what it accepts, so the
documentation states exactly what the parser takes.
"""

from __future__ import annotations

import django_filters
from django import forms
from drf_spectacular.utils import extend_schema_field

from quetzal.forms import MAX_ID, Form, IdField, StrictDateField, StrictDateTimeField
from quetzal.text import SINGLE_LINE_SCHEMA_PATTERN

TEXT_FILTER_MAX_LENGTH = 200
TEXT_SCHEMA = {
    "type": "string",
    "maxLength": TEXT_FILTER_MAX_LENGTH,
    "pattern": SINGLE_LINE_SCHEMA_PATTERN,
}


class FilterSet(django_filters.FilterSet):
    """A FilterSet whose form is the project's form (its text fields refuse control characters)."""

    def get_form_class(self) -> type[forms.Form]:
        fields = {name: filter_.field for name, filter_ in self.filters.items()}
        return type(f"{type(self).__name__}Form", (Form,), fields)

    def entered(self) -> dict[str, str]:
        """What was typed in each filter, for a page to show in its filter form again."""
        return {name: str(self.data.get(name, "")).strip() for name in self.filters}


@extend_schema_field({"type": "integer", "minimum": 1, "maximum": MAX_ID})
class IdFilter(django_filters.Filter):
    """An object id: ASCII digits, 1 up to the bigint maximum."""

    field_class = IdField


@extend_schema_field({"type": "string", "format": "date-time"})
class DateTimeFilter(django_filters.Filter):
    """An ISO 8601 moment; naive ones are in the installation's time zone."""

    field_class = StrictDateTimeField


@extend_schema_field({"type": "string", "format": "date"})
class DayFilter(django_filters.Filter):
    """A calendar day, YYYY-MM-DD."""

    field_class = StrictDateField


@extend_schema_field(TEXT_SCHEMA)
class TextFilter(django_filters.CharFilter):
    """One line of text, without control characters, up to 200 characters."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("max_length", TEXT_FILTER_MAX_LENGTH)
        super().__init__(*args, **kwargs)
