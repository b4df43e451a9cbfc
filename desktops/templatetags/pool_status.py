"""Why a pool is short of warm desktops, for the pool pages (the same answer the pool API gives)."""

from __future__ import annotations

from django import template

from desktops.models import Pool
from desktops.services.pools import held_back as pool_held_back
from quetzal.errors import ServiceError

register = template.Library()


@register.simple_tag
def held_back(pool: Pool) -> ServiceError | None:
    """`{% held_back pool as hold %}`: the quota (or suspension) refill waits on, with its code and message."""
    return pool_held_back(pool)
