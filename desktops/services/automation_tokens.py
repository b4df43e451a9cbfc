"""Automation API tokens: screenshots only (read), input too, or commands too (exec), on named desktops or a
template's desktops.

A token made here works only on the automation views (quetzal.api.permissions refuses it elsewhere), and those
views narrow their desktops with `scope_desktops`: a desktop outside the token's targets is a 404, as another
tenant's is. The tenant's `allow_automation` policy switches automation off for every token and session alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils.translation import gettext

from desktops.models import AutomationTarget, Desktop, DesktopTemplate
from quetzal.errors import Forbidden, ServiceError
from tenants.models import ApiToken, Membership, Tenant, User
from tenants.models.token import TokenScope
from tenants.services.tokens import create_token

ACCESS_SCOPES = {
    "read": TokenScope.AUTOMATION_READ,
    "input": TokenScope.AUTOMATION_INPUT,
    "exec": TokenScope.AUTOMATION_EXEC,
}
# Running commands in the guest is more than typing into it: only these tokens (and a session) may.
EXEC_SCOPES = frozenset({TokenScope.FULL, TokenScope.AUTOMATION_EXEC})
MAX_TARGETS = 100


def create_automation_token(
    *,
    membership: Membership,
    name: str,
    access: str,
    desktops: Sequence[Desktop] = (),
    templates: Sequence[DesktopTemplate] = (),
    expires_at: datetime | None = None,
    ip: str | None = None,
) -> tuple[ApiToken, str]:
    """A token for automation only, on these desktops and the desktops of these templates; the secret once."""
    if not desktops and not templates:
        raise ServiceError(
            gettext("Name the desktops or templates the token may drive."), code="token_targets_required"
        )
    if len(desktops) + len(templates) > MAX_TARGETS:
        raise ServiceError(
            gettext("A token names at most %(MAX_TARGETS)s desktops and templates.") % {"MAX_TARGETS": MAX_TARGETS},
            code="token_targets",
        )
    require_automation_allowed(membership.tenant)
    with transaction.atomic():
        token, raw = create_token(
            membership=membership, name=name, expires_at=expires_at, scope=ACCESS_SCOPES[access], ip=ip
        )
        tenant = membership.tenant
        AutomationTarget.objects.bulk_create(
            [AutomationTarget(tenant=tenant, token=token, desktop=d) for d in dict.fromkeys(desktops)]
            + [AutomationTarget(tenant=tenant, token=token, template=t) for t in dict.fromkeys(templates)]
        )
    return token, raw


def scope_desktops(queryset: QuerySet, token: ApiToken | None) -> QuerySet:
    """The desktops of queryset an automation token may use (a full token or a session: all of them)."""
    if token is None or not token.is_automation_only:
        return queryset
    targets = AutomationTarget.objects.for_tenant(token.tenant).filter(token=token)
    return queryset.filter(
        Q(pk__in=targets.filter(desktop__isnull=False).values("desktop_id"))
        | Q(template_id__in=targets.filter(template__isnull=False).values("template_id"))
    )


def token_templates(token: ApiToken) -> QuerySet:
    """Template ids an automation token may make disposable desktops from."""
    return AutomationTarget.objects.for_tenant(token.tenant).filter(token=token, template__isnull=False)


def require_automation_allowed(tenant: Tenant) -> None:
    if not tenant.allow_automation:
        raise Forbidden(
            gettext("Your organisation does not allow automation of desktops."), code="automation_forbidden"
        )


def require_access(
    *, tenant: Tenant, token: ApiToken | None, write: bool, desktop: Desktop | None = None, actor: User | None = None
) -> None:
    """Refuse what the tenant's policy or the token's access level does not allow (403 with a stable code).

    Looking at or typing into a member's desktop is what an admin's console would do: the same policy decides.
    """
    require_automation_allowed(tenant)
    owner_id = desktop.user_id if desktop is not None else None
    someone_elses = owner_id is not None and actor is not None and owner_id != actor.pk
    if someone_elses and not tenant.allow_admin_console_access:
        raise Forbidden(
            gettext("Your organisation does not allow admins to open members' desktops."), code="admin_console_disabled"
        )
    if write and token is not None and token.scope == TokenScope.AUTOMATION_READ:
        raise Forbidden(gettext("This token may only look at the screen, not send input."), code="token_read_only")


def require_exec_scope(token: ApiToken | None) -> None:
    """Refuse a read or input token a command (403): exec is its own, stronger access level."""
    if token is None or token.scope in EXEC_SCOPES:
        return
    if token.scope == TokenScope.AUTOMATION_READ:
        raise Forbidden(gettext("This token may only look at the screen, not run commands."), code="token_read_only")
    raise Forbidden(
        gettext("This token may send input but not run commands: make one with exec access."), code="token_no_exec"
    )
