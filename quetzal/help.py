"""Help pages, one per audience: the people who use desktops, their organisation's admins, the operators."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

AUDIENCES = {
    "members": "Using your desktops",
    "admins": "Running your organisation",
    "operators": "Operating Quetzal",
}


def page(request: HttpRequest, audience: str = "members") -> HttpResponse:
    """The help page for one audience; any other name is a 404."""
    if audience not in AUDIENCES:
        raise Http404("No such help page.")
    context = {"audience": audience, "audiences": AUDIENCES, "title": AUDIENCES[audience]}
    return render(request, f"help/{audience}.html", context)
