"""Query-string filters of the audit log: the API's and the audit page's."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import django_filters
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from quetzal.filters import DateTimeFilter, DayFilter, FilterSet, TextFilter
from tenants.models import AuditEvent
from tenants.services.audit import CATEGORIES


class AuditEventFilterSet(FilterSet):
    """/api/v1/audit-events/?action=<prefix>&actor=<email>&since=<date-time>."""

    action = TextFilter(lookup_expr="startswith", help_text=_("Actions starting with this, e.g. `member.`."))
    actor = TextFilter(field_name="actor__email", lookup_expr="iexact", help_text=_("The person's email address."))
    since = DateTimeFilter(field_name="created_at", lookup_expr="gte", help_text=_("Events at or after this moment."))

    class Meta:
        model = AuditEvent
        fields: list[str] = []


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=timezone.get_current_timezone())


class AuditPageFilterSet(FilterSet):
    """The audit page: kind of event, action prefix, person, first and last day (in the site's time zone)."""

    category = django_filters.ChoiceFilter(
        choices=[(key, label) for key, (label, _) in CATEGORIES.items() if key], method="by_category"
    )
    action = TextFilter(lookup_expr="startswith")
    actor = TextFilter(field_name="actor__email", lookup_expr="icontains")
    since = DayFilter(method="from_day")
    until = DayFilter(method="to_day")

    class Meta:
        model = AuditEvent
        fields: list[str] = []

    def by_category(self, events: QuerySet, name: str, value: str) -> QuerySet:
        matches = Q()
        for prefix in CATEGORIES[value][1]:
            matches |= Q(action__startswith=prefix)
        return events.filter(matches)

    def from_day(self, events: QuerySet, name: str, value: date) -> QuerySet:
        return events.filter(created_at__gte=_midnight(value))

    def to_day(self, events: QuerySet, name: str, value: date) -> QuerySet:
        if value == date.max:
            return events
        return events.filter(created_at__lt=_midnight(value + timedelta(days=1)))
