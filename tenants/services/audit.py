"""Writing the audit log."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from django.db import models
from django.db.models import Q, QuerySet
from django.utils import timezone

from tenants import addresses
from tenants.models import AuditEvent


def client_ip(request) -> str | None:
    """The caller's address, by the same rule as the sign-in lockout (TRUSTED_PROXY_COUNT)."""
    return addresses.client_ip(request)


def record(
    action: str,
    *,
    actor=None,
    tenant=None,
    target: models.Model | None = None,
    ip: str | None = None,
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event; callers run it inside their own transaction."""
    return AuditEvent.objects.create(
        action=action,
        actor=actor if actor is not None and getattr(actor, "is_authenticated", False) else None,
        tenant=tenant,
        target_type=target._meta.label_lower if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        target_repr=str(target)[:200] if target is not None else "",
        ip_address=ip,
        data=data or {},
    )


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
