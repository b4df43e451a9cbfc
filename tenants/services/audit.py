"""Writing the audit log."""

from __future__ import annotations

from typing import Any

from django.db import models

from tenants.models import AuditEvent


def client_ip(request) -> str | None:
    """The caller's address as Django sees it (set REMOTE_ADDR correctly behind a proxy)."""
    if request is None:
        return None
    return request.META.get("REMOTE_ADDR") or None


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
