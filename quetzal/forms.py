"""Form bases, tenant-scoped choices and strict form fields shared by the pages and the query-string filters.

Every form of the project builds on `Form` or `ModelForm`, so each of its text fields refuses control
characters (line breaks too, except in text areas). The strict fields parse query strings the way a
person writes them: ASCII digits only, real calendar dates, real time-zone offsets.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.functional import lazy
from django.utils.translation import gettext

from quetzal.text import multi_line, single_line
from tenants.querysets import Scope, is_tenant_owned, scoped_to

# The largest id PostgreSQL's bigint (every primary key) can hold.
MAX_ID = 2**63 - 1


def guard_text_fields(fields: dict[str, forms.Field]) -> None:
    """Add the control-character validator to every text field; text areas may hold line breaks."""
    for field in fields.values():
        if isinstance(field, forms.CharField) and not getattr(field, "disabled", False):
            validator = multi_line if isinstance(field.widget, forms.Textarea) else single_line
            if validator not in field.validators:
                field.validators.append(validator)


class CleanTextFormMixin:
    """Mix into a form so its text fields (declared or from the model) refuse control characters."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        guard_text_fields(self.fields)


class Form(CleanTextFormMixin, forms.Form):
    """The project's plain form."""


class ModelForm(CleanTextFormMixin, forms.ModelForm):
    """The project's model form."""


_INTEGER = re.compile(r"-?[0-9]+")
# ISO 8601 as people and scripts write it: a date, optionally a time, optionally Z or an offset.
_DATE = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
_DATETIME = re.compile(
    _DATE + r"(?:[Tt ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?)?(?:[Zz]|[+-][0-9]{2}:?[0-9]{2})?"
)


class StrictIntegerField(forms.IntegerField):
    """A whole number written in ASCII digits (int() also takes '١٢', ' 12 ' and '1_2'), within bounds."""

    widget = forms.TextInput

    def __init__(self, *, min_value: int | None = None, max_value: int | None = None, **kwargs) -> None:
        super().__init__(min_value=min_value, max_value=max_value, **kwargs)

    def to_python(self, value):
        if value in self.empty_values:
            return None
        if isinstance(value, int):
            return value
        if not isinstance(value, str) or not _INTEGER.fullmatch(value) or len(value) > 20:
            raise ValidationError(self.error_messages["invalid"], code="invalid")
        return int(value)


class IdField(StrictIntegerField):
    """A primary key: 1 up to the bigint maximum."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(**kwargs)


def _aware_utc(moment: datetime) -> datetime:
    """The moment as an aware UTC datetime; naive input is in the current time zone."""
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, timezone.get_current_timezone())
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        # Year 1 or 9999 moved across its offset: for a filter the nearest moment there is means the same.
        return (datetime.min if moment.year == 1 else datetime.max).replace(tzinfo=UTC)


class StrictDateTimeField(forms.DateTimeField):
    """An ISO 8601 date or date-time in ASCII digits; impossible dates and offsets are refused, not a 500."""

    widget = forms.TextInput

    def to_python(self, value):
        if value in self.empty_values:
            return None
        if isinstance(value, datetime):
            return _aware_utc(value)
        if not isinstance(value, str) or not _DATETIME.fullmatch(value):
            raise ValidationError(self.error_messages["invalid"], code="invalid")
        try:
            # fromisoformat refuses 2025-02-30, hour 25 and offsets of a day or more.
            parsed = datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
        except ValueError:
            raise ValidationError(self.error_messages["invalid"], code="invalid")
        return _aware_utc(parsed)


class StrictDateField(forms.DateField):
    """A calendar date written YYYY-MM-DD in ASCII digits."""

    widget = forms.TextInput

    def to_python(self, value):
        if value in self.empty_values:
            return None
        if isinstance(value, date):
            return value
        if not isinstance(value, str) or not re.fullmatch(_DATE, value):
            raise ValidationError(self.error_messages["invalid"], code="invalid")
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise ValidationError(self.error_messages["invalid"], code="invalid")


def _not_in_tenant(model: type) -> str:
    return gettext("No such %(object)s in your organisation.") % {"object": model._meta.verbose_name}


# Lazy: the fields are made when their form class is defined, the message is read in the request's language.
not_in_tenant = lazy(_not_in_tenant, str)


class TenantScopedModelChoiceField(forms.ModelChoiceField):
    """A choice of one row among those the form's tenant may use (the model's `for_tenant()`, or `scope`).

    Until the form binds it to a tenant it offers and accepts nothing, so a form built without one
    fails closed. The form may narrow the bound choices further (e.g. the person's own tokens).
    """

    def __init__(self, queryset: QuerySet, *, scope: Scope = scoped_to, **kwargs: Any) -> None:
        if not is_tenant_owned(queryset.model):
            raise TypeError(f"{queryset.model.__name__} is not tenant-owned: it has no for_tenant scope.")
        self.unscoped = queryset
        self.scope = scope
        error_messages = {
            "invalid_choice": not_in_tenant(queryset.model),
            **(kwargs.pop("error_messages", None) or {}),
        }
        super().__init__(queryset.none(), error_messages=error_messages, **kwargs)

    def bind(self, tenant) -> None:
        """Offer and accept only the tenant's rows (and what the model field's limit_choices_to allows)."""
        queryset = self.scope(self.unscoped, tenant)
        limit = self.get_limit_choices_to()
        self.queryset = queryset.complex_filter(limit) if limit else queryset


class TenantScopedFormMixin:
    """Takes the tenant the request works in and binds every tenant-scoped choice field to it."""

    def __init__(self, *args: Any, tenant, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tenant = tenant
        for field in self.fields.values():
            if isinstance(field, TenantScopedModelChoiceField):
                field.bind(tenant)


def tenant_scoped_formfield(db_field: models.Field, **kwargs: Any) -> forms.Field | None:
    """Form field for a model field: a foreign key to a tenant-owned model becomes a scoped choice."""
    if isinstance(db_field, models.ForeignKey) and is_tenant_owned(db_field.related_model):
        return db_field.formfield(form_class=TenantScopedModelChoiceField, **kwargs)
    return db_field.formfield(**kwargs)


class TenantScopedForm(TenantScopedFormMixin, Form):
    """A form whose references resolve in the tenant given as `tenant=`."""


class TenantScopedModelForm(TenantScopedFormMixin, ModelForm):
    """A ModelForm whose generated foreign keys to tenant-owned models are scoped to `tenant=`.

    Subclasses inherit the callback by declaring `class Meta(TenantScopedModelForm.Meta)`.
    """

    class Meta:
        formfield_callback = tenant_scoped_formfield
