"""Query-string filters of billing: the month a ledger or a usage page covers."""

from __future__ import annotations

import django_filters
from django import forms
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field

from billing.models import UsageInterval
from billing.periods import PERIOD_PATTERN, Period, parse_period
from quetzal.errors import ServiceError
from quetzal.filters import FilterSet
from quetzal.forms import Form


class PeriodField(forms.CharField):
    """A calendar month written YYYY-MM (UTC), cleaned to its Period."""

    def to_python(self, value) -> Period | None:
        value = super().to_python(value)
        if not value:
            return None
        try:
            return parse_period(value)
        except ServiceError as error:
            raise ValidationError(error.detail, code=error.code)


@extend_schema_field({"type": "string", "pattern": PERIOD_PATTERN})
class PeriodFilter(django_filters.Filter):
    field_class = PeriodField


class UsageIntervalFilterSet(FilterSet):
    """/api/v1/billing/usage/?period=YYYY-MM."""

    period = PeriodFilter(method="in_period", help_text=_("A month, YYYY-MM (UTC)."))

    class Meta:
        model = UsageInterval
        fields: list[str] = []

    def in_period(self, intervals: QuerySet, name: str, value: Period) -> QuerySet:
        return intervals.in_period(value)


class PeriodForm(Form):
    """The usage pages' ?period=."""

    period = PeriodField(required=False, label=_("Period"))
