"""What the tenants app does when Django signs people in and out (audit it, end the session's sockets), and
when access changes on the rows themselves: however a membership is deleted or downgraded, a person deactivated
or a tenant suspended (a service, the Django admin's forms and inlines, a shell), their sockets end."""

from __future__ import annotations

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver

from tenants import channels, events
from tenants.choices import Role, TenantStatus
from tenants.lockout import login_name
from tenants.models import Membership, Tenant, User

# More is more rights; a change down the list ends the person's sockets in that tenant.
ROLE_RANK = {Role.MEMBER: 0, Role.ADMIN: 1, Role.OWNER: 2}
# The field of each row whose change can take access away, remembered before a save to compare after it.
_WATCHED = {Membership: "role", User: "is_active", Tenant: "status"}


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


@receiver(pre_save, dispatch_uid="tenants.remember_access")
def remember_access(sender, instance, raw=False, **kwargs) -> None:
    field = _WATCHED.get(sender)
    if field is None or raw or instance.pk is None:
        return
    instance._access_before = sender.objects.filter(pk=instance.pk).values_list(field, flat=True).first()


@receiver(post_save, dispatch_uid="tenants.end_sockets_on_lost_access")
def end_sockets_on_lost_access(sender, instance, created=False, raw=False, **kwargs) -> None:
    if sender not in _WATCHED or created or raw:
        return
    before = getattr(instance, "_access_before", None)
    if sender is Membership and before is not None and ROLE_RANK[Role(instance.role)] < ROLE_RANK[Role(before)]:
        # Sockets were authorised for the old role: they reconnect and are authorised again.
        end_member_sockets(instance, "role_downgraded")
    elif sender is User and before is True and not instance.is_active:
        channels.end_sockets([channels.user_group(instance.pk)], code=channels.SIGNED_OUT, reason="deactivated")
    elif sender is Tenant and before == TenantStatus.ACTIVE and instance.status != TenantStatus.ACTIVE:
        # Live figures and consoles were opened in an active tenant; they reconnect read-only.
        end_tenant_sockets(instance.pk, instance.status)


@receiver(post_delete, sender=Membership, dispatch_uid="tenants.end_sockets_of_removed_member")
def end_sockets_of_removed_member(sender, instance, **kwargs) -> None:
    end_member_sockets(instance, "removed")


def end_member_sockets(membership: Membership, reason: str) -> None:
    group = channels.member_group(membership.tenant_id, membership.user_id)
    channels.end_sockets([group], code=channels.ACCESS_CHANGED, reason=reason)


def end_tenant_sockets(tenant_id: int, reason: str) -> None:
    channels.end_sockets([channels.tenant_group(tenant_id)], code=channels.ACCESS_CHANGED, reason=reason)
