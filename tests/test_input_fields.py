"""Every writable text field refuses control characters, every number a caller sets has a ceiling, and every
query parameter is parsed strictly: generated from the serializers, forms and FilterSets the project defines,
so a field added later is covered without anyone listing it here."""

from __future__ import annotations

import inspect
from decimal import Decimal

import pytest
from django import forms
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import MaxValueValidator
from rest_framework import serializers
from rest_framework.exceptions import ValidationError

from quetzal.api.serializers import GuardedInputMixin, IdField
from quetzal.filters import FilterSet
from quetzal.forms import (
    MAX_ID,
    CleanTextFormMixin,
    StrictDateField,
    StrictDateTimeField,
    StrictIntegerField,
    TenantScopedFormMixin,
)
from tenants.models import AuditEvent
from tests.project_inputs import label, project_filtersets, project_forms, project_serializers

SERIALIZERS = project_serializers()
FORMS = project_forms()
FILTERSETS = project_filtersets()
# The largest value of the integer columns: a ceiling that high is the column's, not a choice.
COLUMN_MAX = 2**31 - 1


def _serializer_text_fields(fields, prefix: str = ""):
    """(name, field, multiline) for every writable text field, inside list items too."""
    for name, field in fields.items():
        if field.read_only:
            continue
        while isinstance(field, serializers.ListField | serializers.DictField):
            field = field.child
        if isinstance(field, serializers.CharField):
            yield prefix + name, field, field.style.get("base_template") == "textarea.html"


def _form_text_fields(form: forms.BaseForm):
    for name, field in form.fields.items():
        if isinstance(field, forms.CharField) and not field.disabled:
            yield name, field, isinstance(field.widget, forms.Textarea)


def _refused_by_serializer(field, value: str) -> bool:
    try:
        field.run_validation(value)
    except ValidationError:
        return True
    return False


def _refused_by_form(field, value: str) -> bool:
    try:
        field.clean(value)
    except DjangoValidationError:
        return True
    return False


def _bad_text(multiline: bool) -> list[str]:
    return ["a\x00b", "a\x1bb", "a\u2028b"] + ([] if multiline else ["a\nb", "a\rb", "a\tb"])


# Every concrete project form, and every FilterSet (whose form is checked).
FORMS_AND_FILTERSETS = [
    cls for cls in FORMS if not (issubclass(cls, forms.ModelForm) and cls._meta.model is None)
] + FILTERSETS


def _form_of(cls: type) -> forms.BaseForm:
    if issubclass(cls, FilterSet):
        model = cls._meta.model or AuditEvent  # a model-less FilterSet filters whatever queryset it is given
        return cls(data={}, queryset=model.objects.none()).form
    if issubclass(cls, TenantScopedFormMixin):
        # Bound to no tenant its choices are empty (fail closed); its text and number fields are what is checked.
        extra = {"user": None} if "user" in inspect.signature(cls.__init__).parameters else {}
        return cls(tenant=None, **extra)
    return cls()


def test_it_finds_the_project_inputs():
    # A walk that found nothing would make every check below pass.
    assert len(SERIALIZERS) > 20 and len(FORMS) > 10 and len(FILTERSETS) > 4


@pytest.mark.parametrize("serializer_class", SERIALIZERS, ids=label)
def test_it_builds_every_serializer_on_the_project_base(serializer_class):
    assert issubclass(serializer_class, GuardedInputMixin), "build it on quetzal.api.serializers"


@pytest.mark.parametrize("form_class", FORMS, ids=label)
def test_it_builds_every_form_on_the_project_base(form_class):
    assert issubclass(form_class, CleanTextFormMixin), "build it on quetzal.forms"


@pytest.mark.parametrize("filterset_class", FILTERSETS, ids=label)
def test_it_builds_every_filterset_on_the_project_base(filterset_class):
    assert issubclass(filterset_class, FilterSet), "build it on quetzal.filters.FilterSet"


@pytest.mark.parametrize("serializer_class", SERIALIZERS, ids=label)
def test_it_refuses_control_characters_in_every_serializer_text_field(serializer_class):
    for name, field, multiline in _serializer_text_fields(serializer_class().fields):
        for value in _bad_text(multiline):
            assert _refused_by_serializer(field, value), f"{label(serializer_class)}.{name} accepted {value!r}"


@pytest.mark.parametrize("form_class", FORMS_AND_FILTERSETS, ids=label)
def test_it_refuses_control_characters_in_every_form_text_field(form_class):
    for field_name, field, multiline in _form_text_fields(_form_of(form_class)):
        for value in _bad_text(multiline):
            assert _refused_by_form(field, value), f"{label(form_class)}.{field_name} accepted {value!r}"


def test_it_keeps_line_breaks_in_text_areas():
    from desktops.manage.forms import TemplateForm

    packages = TemplateForm().fields["cloud_init_packages"]
    assert packages.clean("htop\nvim") == "htop\nvim"
    assert _refused_by_form(packages, "htop\x00")


def _ceiling(*candidates) -> float | None:
    values = [value for value in candidates if value is not None]
    return min(values) if values else None


def _max_of(validators) -> float | None:
    return _ceiling(*(v.limit_value for v in validators if isinstance(v, MaxValueValidator)))


def _number_fields_of_serializer(serializer):
    for name, field in serializer.fields.items():
        numeric = isinstance(field, serializers.IntegerField | serializers.FloatField | serializers.DecimalField)
        if numeric and not field.read_only:
            digits = getattr(field, "max_digits", None)
            places = getattr(field, "decimal_places", None) or 0
            by_digits = Decimal(10) ** (digits - places) if digits else None
            yield name, field, _ceiling(field.max_value, _max_of(field.validators), by_digits)


def _number_fields_of_form(form):
    model = getattr(getattr(form, "_meta", None), "model", None)
    for name, field in form.fields.items():
        if isinstance(field, forms.IntegerField | forms.FloatField | forms.DecimalField) and not field.disabled:
            model_max = None
            if model is not None and name in {f.name for f in model._meta.fields}:
                model_field = model._meta.get_field(name)
                model_max = _max_of(model_field.validators)
                if getattr(model_field, "max_digits", None):
                    model_max = _ceiling(
                        model_max, Decimal(10) ** (model_field.max_digits - model_field.decimal_places)
                    )
            yield name, field, _ceiling(field.max_value, _max_of(field.validators), model_max)


def _sane(field, ceiling) -> bool:
    if isinstance(field, IdField | forms.IntegerField) and ceiling == MAX_ID:
        return True  # an id, bounded by the key column
    return ceiling is not None and ceiling < COLUMN_MAX


@pytest.mark.parametrize("serializer_class", SERIALIZERS, ids=label)
def test_it_bounds_every_number_a_serializer_takes(serializer_class):
    for name, field, ceiling in _number_fields_of_serializer(serializer_class()):
        assert _sane(field, ceiling), f"{label(serializer_class)}.{name} has no sane maximum ({ceiling})"


@pytest.mark.parametrize("form_class", FORMS_AND_FILTERSETS, ids=label)
def test_it_bounds_every_number_a_form_takes(form_class):
    for field_name, field, ceiling in _number_fields_of_form(_form_of(form_class)):
        assert _sane(field, ceiling), f"{label(form_class)}.{field_name} has no sane maximum ({ceiling})"


@pytest.mark.parametrize("filterset_class", FILTERSETS, ids=label)
def test_it_parses_every_filter_strictly(filterset_class):
    for name, field in _form_of(filterset_class).fields.items():
        if isinstance(field, forms.IntegerField | forms.FloatField | forms.DecimalField):
            assert isinstance(field, StrictIntegerField), f"{name}: use quetzal.filters.IdFilter or a strict field"
        if isinstance(field, forms.DateTimeField):
            assert isinstance(field, StrictDateTimeField), f"{name}: use quetzal.filters.DateTimeFilter"
        if isinstance(field, forms.DateField):
            assert isinstance(field, StrictDateField), f"{name}: use quetzal.filters.DayFilter"
