"""Serializer bases: writable text refuses control characters, values must have their JSON type, ids are bounded.

Every serializer of the API builds on `Serializer` or `ModelSerializer` (tests/test_input_fields.py walks
them all), so a field added later gets the same guards without anyone remembering them.
"""

from __future__ import annotations

from collections.abc import Mapping

from rest_framework import serializers

from quetzal.forms import MAX_ID
from quetzal.text import multi_line, single_line

# The JSON type each kind of field takes. DRF would also take "12" for a number, 0 for a boolean and 12
# for a name; the schema says otherwise, so the API does too. (Order matters: BooleanField first.)
_JSON_TYPES: tuple[tuple[type[serializers.Field], tuple[type, ...], str], ...] = (
    (serializers.BooleanField, (bool,), "a boolean"),
    (serializers.IntegerField, (int,), "an integer"),
    (serializers.FloatField, (int, float), "a number"),
    (serializers.CharField, (str,), "a string"),
    (serializers.DateTimeField, (str,), "a date-time string"),
    (serializers.PrimaryKeyRelatedField, (int,), "an id (integer)"),
    (serializers.ListField, (list,), "a list"),
    (serializers.DictField, (dict,), "an object"),
)


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
    elif isinstance(field, serializers.BaseSerializer) and not isinstance(field, GuardedInputMixin):
        raise TypeError(f"{type(field).__name__} is nested writable: build it on quetzal.api.serializers.")


def json_type_error(field: serializers.Field, value: object) -> str | None:
    """Why `value` is not of the JSON type `field` takes, or None when it is (null is left to the field)."""
    if value is None:
        return None
    for field_class, types, name in _JSON_TYPES:
        if isinstance(field, field_class):
            wrong_bool = isinstance(value, bool) and bool not in types
            return None if isinstance(value, types) and not wrong_bool else f"Must be {name}."
    return None


class GuardedInputMixin:
    """Guard every writable field: text without control characters, values of the field's JSON type."""

    def get_fields(self):
        fields = super().get_fields()
        for field in fields.values():
            guard_text_field(field)
        return fields

    def to_internal_value(self, data):
        if isinstance(data, Mapping):
            errors = {}
            for name, field in self.fields.items():
                if not field.read_only and name in data and (error := json_type_error(field, data[name])):
                    errors[name] = [error]
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)


class Serializer(GuardedInputMixin, serializers.Serializer):
    """The project's plain serializer."""


class ModelSerializer(GuardedInputMixin, serializers.ModelSerializer):
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
