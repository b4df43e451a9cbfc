"""The ?desktop=<id>&person=<user id> filters the console-session and recording lists share (page and API)."""

from __future__ import annotations

from collections.abc import Mapping

from django.db.models import QuerySet


def by_desktop_and_person(queryset: QuerySet, params: Mapping[str, str]) -> QuerySet:
    """Narrow to one desktop and/or one person; a value that is not an id is ignored."""
    desktop, person = params.get("desktop", ""), params.get("person", "")
    if desktop.isdigit():
        queryset = queryset.filter(desktop_id=desktop)
    if person.isdigit():
        queryset = queryset.filter(user_id=person)
    return queryset
