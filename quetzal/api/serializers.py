"""Serializer bases: every writable text field refuses control characters, every id is bounded.

Every serializer of the API builds on `Serializer` or `ModelSerializer` (tests/test_input_fields.py walks
them all), so a field added later gets the same guard without anyone remembering it.
"""

from __future__ import annotations

from rest_framework import serializers

from quetzal.forms import MAX_ID
from quetzal.text import multi_line, single_line


def guard_text_field(field: serializers.Field) -> None:
    """Add the control-character validator to a writable text field (and to list items and nested fields)."""
    if field.read_only:
        return
    if isinstance(field, serializers.CharField):
        multiline = field.style.get("base_template") == "textarea.html"
        validator = multi_line if multiline else single_line
        if validator not in field.validators:
            field.validators.append(validator)
    elif isinstance(field, serializers.ListField | serializers.DictField | serializers.ListSerializer):
        guard_text_field(field.child)
    elif isinstance(field, serializers.BaseSerializer) and not isinstance(field, CleanTextMixin):
        raise TypeError(f"{type(field).__name__} is nested writable: build it on quetzal.api.serializers.")


class CleanTextMixin:
    """Guard every writable text field the serializer has, declared or built from the model."""

    def get_fields(self):
        fields = super().get_fields()
        for field in fields.values():
            guard_text_field(field)
        return fields


class Serializer(CleanTextMixin, serializers.Serializer):
    """The project's plain serializer."""


class ModelSerializer(CleanTextMixin, serializers.ModelSerializer):
    """The project's model serializer."""


class ResponseSerializer(Serializer):
    """A shape the API only answers with: every field is read-only, so nothing in it is ever parsed."""

    def get_fields(self):
        fields = super().get_fields()
        for field in fields.values():
            field.read_only = True
        return fields


class IdField(serializers.IntegerField):
    """An object id in a request body: 1 up to PostgreSQL's bigint maximum."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(**kwargs)
