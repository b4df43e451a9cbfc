"""What the tenants app does when Django signs people in and out: audit it, and end the session's sockets."""

from __future__ import annotations

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from tenants import channels, events
from tenants.lockout import login_name
from tenants.models import User


@receiver(user_logged_in, dispatch_uid="tenants.audit_sign_in")
def audit_sign_in(sender, request, user, **kwargs) -> None:
    if request is None or not request.path:
        return  # Django's test client force_login: no request was made
    events.signed_in(user=user, request=request)


@receiver(user_login_failed, dispatch_uid="tenants.audit_failed_sign_in")
def audit_failed_sign_in(sender, credentials, request=None, **kwargs) -> None:
    name = login_name(request, credentials)
    user = User.objects.filter(email__iexact=name).first() if name else None
    if user is None:
        return  # unknown addresses are counted by the lockout, not written to any tenant's log
    events.sign_in_failed(user=user, request=request, locked_out=bool(getattr(request, "axes_locked_out", False)))


@receiver(user_logged_out, dispatch_uid="tenants.end_session_sockets")
def end_session_sockets(sender, request, user, **kwargs) -> None:
    session = getattr(request, "session", None)
    if session is not None and session.session_key:
        group = channels.session_group(session.session_key)
        channels.end_sockets([group], code=channels.SIGNED_OUT, reason="signed_out")
    if user is not None:
        events.signed_out(user=user, request=request)
