"""Query-string filters of console sessions and recordings (the API's and the console sessions page)."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

from quetzal.filters import FilterSet, IdFilter


class ConsoleFilterSet(FilterSet):
    """?desktop=<id>&person=<user id>; the model comes from the queryset it filters."""

    desktop = IdFilter(field_name="desktop_id", help_text=_("Only this desktop's."))
    person = IdFilter(field_name="user_id", help_text=_("Only this person's (a user id)."))
