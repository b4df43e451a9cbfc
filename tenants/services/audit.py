"""Reading the audit log (its page filters) and the caller's address; events are written by `tenants.events`."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from django.db.models import Q, QuerySet
from django.utils import timezone

from tenants import addresses


def client_ip(request) -> str | None:
    """The caller's address, by the same rule as the sign-in lockout (TRUSTED_PROXY_COUNT)."""
    return addresses.client_ip(request)


# The audit page's "kind of event" filter: a label and the action prefixes it covers.
CATEGORIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "": ("Every kind of event", ()),
    "console": ("Console sessions", ("console.",)),
    "desktop": ("Desktops", ("desktop.",)),
    "people": ("Members and invitations", ("member.", "invitation.")),
    "policy": ("Policies", ("tenant.",)),
    "setup": ("Pools and templates", ("pool.", "template.")),
    "security": ("Sign-in, 2FA and tokens", ("2fa.", "token.", "login.", "user.")),
    "billing": ("Billing", ("billing.",)),
}


def _day(value: str) -> date | None:
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def filter_events(
    events: QuerySet, *, category: str = "", action: str = "", actor: str = "", since: str = "", until: str = ""
) -> QuerySet:
    """Narrow an (already tenant-scoped) audit queryset by the audit page's filters; bad values are ignored."""
    prefixes = CATEGORIES.get(category, ("", ()))[1]
    if prefixes:
        matches = Q()
        for prefix in prefixes:
            matches |= Q(action__startswith=prefix)
        events = events.filter(matches)
    if action:
        events = events.filter(action__startswith=action)
    if actor:
        events = events.filter(actor__email__icontains=actor)
    zone = timezone.get_current_timezone()
    if start := _day(since):
        events = events.filter(created_at__gte=datetime.combine(start, time.min, tzinfo=zone))
    if end := _day(until):
        events = events.filter(created_at__lt=datetime.combine(end + timedelta(days=1), time.min, tzinfo=zone))
    return events
