"""Query parameters on the API: the FilterSet backend and a parser for views without a queryset.

Both refuse a bad parameter with 400 and the code `invalid_<parameter>`, e.g.
{"code": "invalid_since", "detail": "Invalid query parameter 'since': Enter a valid date/time.", ...}.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django_filters.rest_framework import DjangoFilterBackend

from quetzal.api.errors import InvalidQueryParameters


class FilterBackend(DjangoFilterBackend):
    """django-filter's DRF backend, answering invalid parameters in the project's error shape."""

    def filter_queryset(self, request, queryset, view):
        filterset = self.get_filterset(request, queryset, view)
        if filterset is None:
            return queryset
        if not filterset.is_valid():
            raise InvalidQueryParameters(filterset.errors)
        return filterset.qs


def parse_query(request, form_class: type[forms.Form]) -> dict[str, Any]:
    """The request's query parameters cleaned by `form_class` (a quetzal.forms.Form), or a 400."""
    form = form_class(request.query_params)
    if not form.is_valid():
        raise InvalidQueryParameters(form.errors)
    return form.cleaned_data
