"""Query-string filters of desktops and operations: the API's and the admin console's."""

from __future__ import annotations

import django_filters
from django.db.models import QuerySet
from django.utils.translation import gettext_lazy as _

from desktops.choices import DesktopState
from desktops.models import Desktop, Operation
from quetzal.filters import FilterSet, IdFilter

IDLE = "idle"


class OperationFilterSet(FilterSet):
    """/api/v1/operations/?desktop=<id>."""

    desktop = IdFilter(field_name="desktop_id", help_text=_("Only this desktop's operations."))

    class Meta:
        model = Operation
        fields: list[str] = []


class AdminDesktopFilterSet(FilterSet):
    """The admin console's desktop list: by state (or idle: running with no console open), person, template."""

    state = django_filters.ChoiceFilter(
        choices=[(IDLE, _("Idle")), *((s.value, s.label) for s in DesktopState if s != DesktopState.DELETED)],
        method="by_state",
    )
    person = IdFilter(field_name="user_id")
    template = IdFilter(field_name="template_id")

    class Meta:
        model = Desktop
        fields: list[str] = []

    def by_state(self, desktops: QuerySet, name: str, value: str) -> QuerySet:
        if value == IDLE:
            return desktops.filter(state=DesktopState.RUNNING, consoles_open=0)
        return desktops.filter(state=value)
