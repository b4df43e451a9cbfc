"""The operators' admin front page summary, as a template tag (the admin index has no view of ours)."""

from __future__ import annotations

from django import template

from desktops.services.operators import OperatorOverview, overview

register = template.Library()


@register.simple_tag
def operator_overview() -> OperatorOverview:
    return overview()
