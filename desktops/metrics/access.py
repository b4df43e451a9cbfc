"""Who may watch which live topic: the socket's person, in the tenant its session resolved."""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.translation import gettext as _

from desktops.metrics import groups
from desktops.models import Desktop
from tenants.twofactor import has_confirmed_device, is_operator_socket, session_verified


@dataclass(frozen=True)
class Viewer:
    """A signed-in person behind a live socket, as the tenant middleware resolved them."""

    user_id: int
    is_operator: bool  # staff, past a second factor when operators must use one
    tenant_id: int | None
    is_admin: bool


class Refused(Exception):
    """A subscription the viewer may not have, with a stable code."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def _second_factor_pending(user, session) -> bool:
    """Signed in with a password, owns an authenticator, but this session never entered a code."""
    return has_confirmed_device(user) and not session_verified(user, session)


def viewer_for_scope(scope: dict) -> Viewer | None:
    """The socket's person, or None when anonymous, inactive or half-way through two-factor sign-in."""
    user = scope.get("user")
    if user is None or not user.is_authenticated or not user.is_active:
        return None
    if _second_factor_pending(user, scope.get("session")):
        return None
    membership = scope.get("membership")
    if membership is not None and membership.tenant.require_2fa and not has_confirmed_device(user):
        # Pages send this person to enrolment first; their socket gets no tenant data until then.
        membership = None
    return Viewer(
        user_id=user.pk,
        is_operator=is_operator_socket(user, scope.get("session")),
        tenant_id=membership.tenant_id if membership else None,
        is_admin=bool(membership and membership.is_admin),
    )


def authorise(viewer: Viewer, topic: groups.Topic) -> str:
    """The group behind a topic the viewer may watch; Refused otherwise."""
    if topic.kind == groups.OPERATORS:
        if not viewer.is_operator:
            raise Refused("forbidden", _("Host figures are for operators."))
        return groups.operators_group()
    if viewer.tenant_id is None:
        raise Refused("no_tenant", _("You are not a member of an active tenant."))
    if topic.kind == groups.TENANT:
        if not viewer.is_admin:
            raise Refused("admin_required", _("Tenant-wide figures are for tenant admins."))
        return groups.tenant_group(viewer.tenant_id)
    desktops = Desktop.objects.for_tenant(viewer.tenant_id).alive().filter(pk=topic.desktop_id)
    if not viewer.is_admin:
        desktops = desktops.filter(user_id=viewer.user_id)
    # Another tenant's desktop, or a colleague's for a member, looks exactly like a missing one.
    if not desktops.exists():
        raise Refused("not_found", _("No such desktop."))
    return groups.desktop_group(topic.desktop_id)
