"""What the tenants app does when Django signs people in and out: audit it, and end the session's sockets."""

from __future__ import annotations

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from tenants import channels
from tenants.lockout import login_name
from tenants.models import Membership, User
from tenants.services import audit


def _record_for_each_tenant(action: str, *, user, request, data: dict | None = None) -> None:
    """One event in each of the person's tenants, so every tenant's admins see their people's sign-ins."""
    ip = audit.client_ip(request)
    tenants = [m.tenant for m in Membership.objects.filter(user=user).select_related("tenant")]
    for tenant in tenants or [None]:
        audit.record(action, actor=user, tenant=tenant, target=user, ip=ip, data=data)


@receiver(user_logged_in, dispatch_uid="tenants.audit_sign_in")
def audit_sign_in(sender, request, user, **kwargs) -> None:
    if request is None or not request.path:
        return  # Django's test client force_login: no request was made
    _record_for_each_tenant("login.success", user=user, request=request)


@receiver(user_login_failed, dispatch_uid="tenants.audit_failed_sign_in")
def audit_failed_sign_in(sender, credentials, request=None, **kwargs) -> None:
    name = login_name(request, credentials)
    user = User.objects.filter(email__iexact=name).first() if name else None
    if user is None:
        return  # unknown addresses are counted by the lockout, not written to any tenant's log
    data = {"locked_out": bool(getattr(request, "axes_locked_out", False))}
    _record_for_each_tenant("login.failed", user=user, request=request, data=data)


@receiver(user_logged_out, dispatch_uid="tenants.end_session_sockets")
def end_session_sockets(sender, request, user, **kwargs) -> None:
    session = getattr(request, "session", None)
    if session is not None and session.session_key:
        group = channels.session_group(session.session_key)
        channels.end_sockets([group], code=channels.SIGNED_OUT, reason="signed_out")
    if user is not None:
        _record_for_each_tenant("login.logout", user=user, request=request)
