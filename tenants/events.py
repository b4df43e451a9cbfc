"""The audit log's vocabulary and one typed constructor per kind of event (as Saleor's `events.py`).

Services write audit events only through these functions, never with a free action string: the
stored strings stay in one place, and `tests/test_audit_events.py` checks that every one of them
is written by a constructor and reaches the tenant's audit page.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import models
from django.utils import translation
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from tenants.models import ApiToken, AuditEvent, Invitation, Membership, Tenant, User
from tenants.services.audit import client_ip

if TYPE_CHECKING:
    # For type checkers only: at run time tenants imports no higher app (imports go one way).
    from typing import TypeAlias

    from django.contrib.auth.models import AnonymousUser
    from django.http import HttpRequest

    from billing.models import BillingAccount, UsageInterval
    from desktops.console.models import ConsoleSession, Recording
    from desktops.models import Desktop, DesktopTemplate, FirewallRule, HomeDisk, Pool, TemplateSize
    from hosts.models import Host, Image
    from tenants.scim.models import ScimDirectory, ScimGroup, ScimUser
    from tenants.sso.models import EmailDomain, IdentityProvider

    # Who did it: a signed-in person; nobody (the system) or an anonymous request is stored as no actor.
    Actor: TypeAlias = User | AnonymousUser | None


class AuditAction(models.TextChoices):
    """Every action string the audit log stores; the values are data, never rename one."""

    # Organisations, people, tokens
    TENANT_CREATE = "tenant.create", _("Organisation created")
    TENANT_POLICIES = "tenant.policies", _("Policies changed")
    TENANT_ACTIVE = "tenant.active", _("Organisation reactivated")
    TENANT_SUSPENDED = "tenant.suspended", _("Organisation suspended")
    TENANT_PENDING = "tenant.pending", _("Organisation awaiting approval")
    TENANT_APPROVE = "tenant.approve", _("Organisation approved")
    MEMBER_ROLE = "member.role", _("Role changed")
    MEMBER_REMOVE = "member.remove", _("Member removed")
    MEMBER_LEAVE = "member.leave", _("Member left")
    INVITATION_CREATE = "invitation.create", _("Invitation sent")
    INVITATION_ACCEPT = "invitation.accept", _("Invitation accepted")
    INVITATION_REVOKE = "invitation.revoke", _("Invitation revoked")
    TOKEN_CREATE = "token.create", _("API token created")
    TOKEN_REVOKE = "token.revoke", _("API token revoked")
    TOKEN_USE = "token.use", _("API token used")
    LOGIN_SUCCESS = "login.success", _("Signed in")
    LOGIN_FAILED = "login.failed", _("Sign-in refused")
    LOGIN_LOGOUT = "login.logout", _("Signed out")
    LOGIN_SSO = "login.sso", _("Signed in through single sign-on")
    LOGIN_SSO_REFUSED = "login.sso_refused", _("Single sign-on refused")
    SSO_PROVIDER_SAVE = "sso.provider.save", _("Single sign-on provider saved")
    SSO_PROVIDER_DELETE = "sso.provider.delete", _("Single sign-on provider removed")
    SSO_MEMBER_JOIN = "sso.member.join", _("Joined through single sign-on")
    SSO_MEMBER_ROLE = "sso.member.role", _("Role changed to follow the directory groups")
    SSO_MEMBER_REMOVE = "sso.member.remove", _("Removed: in no mapped group of the provider")
    SSO_DOMAIN_VERIFIED = "sso.domain.verified", _("Email domain verified")
    SSO_DOMAIN_CHECK_FAILED = "sso.domain.check_failed", _("Email domain verification failed")
    SSO_DOMAIN_REMOVE = "sso.domain.remove", _("Email domain removed")
    SCIM_TOKEN_CREATE = "scim.token.create", _("Provisioning token created")
    SCIM_TOKEN_REVOKE = "scim.token.revoke", _("Provisioning token revoked")
    SCIM_MAPPING = "scim.mapping", _("Provisioning group roles changed")
    SCIM_USER_CREATE = "scim.user.create", _("Person provisioned by the directory")
    SCIM_USER_UPDATE = "scim.user.update", _("Person changed by the directory")
    SCIM_USER_SUSPEND = "scim.user.suspend", _("Person deactivated by the directory")
    SCIM_USER_RESTORE = "scim.user.restore", _("Person reactivated by the directory")
    SCIM_USER_DELETE = "scim.user.delete", _("Person removed by the directory")
    SCIM_GROUP_SAVE = "scim.group.save", _("Group saved by the directory")
    SCIM_GROUP_DELETE = "scim.group.delete", _("Group removed by the directory")
    SCIM_MEMBER_ROLE = "scim.member.role", _("Role changed to follow groups pushed by the directory")
    # Sign-in and the person's own settings
    TWO_FACTOR_ENROL = "2fa.enrol", _("Two-factor authentication enrolled")
    TWO_FACTOR_VERIFY = "2fa.verify", _("Second factor verified")
    TWO_FACTOR_RECOVERY_CODE = "2fa.recovery_code", _("Recovery code used")
    TWO_FACTOR_FAILED = "2fa.failed", _("Second factor refused")
    TWO_FACTOR_REMOVE = "2fa.remove", _("Two-factor authentication removed")
    TWO_FACTOR_RECOVERY_CODES = "2fa.recovery_codes", _("Recovery codes regenerated")
    USER_PREFERENCES = "user.preferences", _("Console preferences changed")
    # Hosts and images (platform events: no tenant)
    HOST_REGISTER = "host.register", _("Host registered")
    HOST_UPDATE = "host.update", _("Host settings changed")
    HOST_UP = "host.up", _("Host back up")
    HOST_DOWN = "host.down", _("Host down")
    HOST_MAINTENANCE_ON = "host.maintenance.on", _("Host in maintenance")
    HOST_MAINTENANCE_OFF = "host.maintenance.off", _("Host out of maintenance")
    HOST_DRAIN_ON = "host.drain.on", _("Host draining")
    HOST_DRAIN_OFF = "host.drain.off", _("Host no longer draining")
    HOST_ENABLED_ON = "host.enabled.on", _("Host enabled")
    HOST_ENABLED_OFF = "host.enabled.off", _("Host disabled")
    HOST_ORPHAN_DESTROYED = "host.orphan_destroyed", _("Orphan domain destroyed")
    IMAGE_IMPORT = "image.import", _("Image imported")
    IMAGE_UPLOAD = "image.upload", _("Image uploaded")
    IMAGE_COPY_REQUEST = "image.copy.request", _("Image copy requested")
    IMAGE_COPY = "image.copy", _("Image copied to a host")
    # Desktops: one action per operation kind, plus claims and bulk requests
    DESKTOP_CREATE = "desktop.create", _("Desktop created")
    DESKTOP_START = "desktop.start", _("Desktop start requested")
    DESKTOP_STOP = "desktop.stop", _("Desktop stop requested")
    DESKTOP_REBOOT = "desktop.reboot", _("Desktop reboot requested")
    DESKTOP_SUSPEND = "desktop.suspend", _("Desktop suspend requested")
    DESKTOP_RESUME = "desktop.resume", _("Desktop resume requested")
    DESKTOP_HIBERNATE = "desktop.hibernate", _("Desktop hibernate requested")
    DESKTOP_RESTORE = "desktop.restore", _("Desktop restore requested")
    DESKTOP_SNAPSHOT = "desktop.snapshot", _("Snapshot requested")
    DESKTOP_REVERT = "desktop.revert", _("Revert to snapshot requested")
    DESKTOP_DELETE_SNAPSHOT = "desktop.delete_snapshot", _("Snapshot deletion requested")
    DESKTOP_DELETE = "desktop.delete", _("Desktop deletion requested")
    DESKTOP_REBUILD = "desktop.rebuild", _("Desktop rebuild requested")
    DESKTOP_MIGRATE = "desktop.migrate", _("Desktop move to another host requested")
    DESKTOP_RESIZE = "desktop.resize", _("Desktop resize requested")
    DESKTOP_ATTACH_HOME = "desktop.attach_home", _("Home folder attached")
    DESKTOP_CLAIM = "desktop.claim", _("Pooled desktop claimed")
    DESKTOP_KEEP_RUNNING = "desktop.keep_running", _("Kept running (idle shutdown put off)")
    DESKTOP_STOP_NOTICE = "desktop.stop_notice", _("Stop announced in the console (ramp-down)")
    DESKTOP_BULK_SNAPSHOT = "desktop.bulk_snapshot", _("Snapshot of many desktops requested")
    DESKTOP_BULK_STOP_IDLE = "desktop.bulk_stop_idle", _("Idle desktops stopped")
    DESKTOP_KEYS_ERASE = "desktop.keys_erase", _("Disk keys destroyed (crypto-erase)")
    DESKTOP_INPUT = "desktop.input", _("Automation input sent")
    DESKTOP_EXEC = "desktop.exec", _("Automation command run")
    KEYS_ROTATE = "keys.rotate", _("Key-encryption key rotated")
    TEMPLATE_CREATE = "template.create", _("Template created")
    TEMPLATE_UPDATE = "template.update", _("Template changed")
    TEMPLATE_SIZE_CREATE = "template.size.create", _("Template size added")
    TEMPLATE_SIZE_UPDATE = "template.size.update", _("Template size changed")
    TEMPLATE_SIZE_DELETE = "template.size.delete", _("Template size removed")
    POOL_SAVE = "pool.save", _("Pool saved")
    POOL_DELETE = "pool.delete", _("Pool removed")
    POOL_SCALING = "pool.scaling", _("Pool scaling plan or calendar changed")
    FIREWALL_RULE_CREATE = "firewall.rule.create", _("Firewall rule added")
    FIREWALL_RULE_UPDATE = "firewall.rule.update", _("Firewall rule changed")
    FIREWALL_RULE_DELETE = "firewall.rule.delete", _("Firewall rule removed")
    NETWORK_POLICY = "network.policy", _("Network policy changed")
    # Home disks and the file manager
    HOME_CREATE = "home.create", _("Home disk created")
    FILES_UPLOAD = "files.upload", _("File uploaded")
    FILES_DOWNLOAD = "files.download", _("File downloaded")
    FILES_DELETE = "files.delete", _("File deleted")
    FILES_ADMIN_ACCESS = "files.admin_access", _("Admin opened the home folder of a member")
    # Consoles and their recordings
    CONSOLE_OPEN = "console.open", _("Console opened")
    CONSOLE_CLOSE = "console.close", _("Console closed")
    CONSOLE_REFUSED = "console.refused", _("Console refused")
    CONSOLE_RECORDING_REPLAY = "console.recording.replay", _("Recording replayed")
    CONSOLE_RECORDING_DELETE = "console.recording.delete", _("Recording deleted")
    CONSOLE_RECORDING_EXPIRE = "console.recording.expire", _("Recordings expired")
    # Billing
    BILLING_CUSTOMER_CREATED = "billing.customer_created", _("Stripe customer created")
    BILLING_SUBSCRIPTION_CREATED = "billing.subscription_created", _("Subscription created")
    BILLING_CHECKOUT_STARTED = "billing.checkout_started", _("Checkout started")
    BILLING_PORTAL_OPENED = "billing.portal_opened", _("Billing portal opened")
    BILLING_PAYMENT_METHOD_SET = "billing.payment_method_set", _("Payment method set")
    BILLING_EXEMPT = "billing.exempt", _("Usage no longer charged")
    BILLING_CHARGED = "billing.charged", _("Usage charged again")
    BILLING_PAYMENT_FAILED = "billing.payment_failed", _("Payment failed")
    BILLING_ARREARS_CLEARED = "billing.arrears_cleared", _("Arrears cleared")
    BILLING_HOST_DOWN_CLOSED = "billing.host_down_closed", _("Usage closed for a host that went down")
    BILLING_INTERVAL_REPAIRED = "billing.interval_repaired", _("Usage interval repaired")
    BILLING_PRICE_CHANGE = "billing.price_change", _("Price changed")


def _record(
    action: AuditAction,
    *,
    actor: Actor = None,
    tenant: Tenant | None = None,
    target: models.Model | None = None,
    ip: str | None = None,
    data: Mapping[str, Any] | None = None,
) -> AuditEvent:
    """Append one event; callers run it inside their own transaction.

    Written in the site's language whatever the request's: the log is a record read later by others, in their own
    language (what it stores is codes and names; a text an event renders is rendered here, in LANGUAGE_CODE).
    """
    with translation.override(settings.LANGUAGE_CODE):
        return AuditEvent.objects.create(
            action=AuditAction(action).value,
            actor=actor if isinstance(actor, User) else None,
            tenant=tenant,
            target_type=target._meta.label_lower if target is not None else "",
            target_id=str(target.pk) if target is not None else "",
            target_repr=str(target)[:200] if target is not None else "",
            ip_address=ip,
            data=_plain(data or {}),
        )


def _plain(value: Any) -> Any:
    """`value` with lazy translations rendered (in the active language) and containers copied."""
    if isinstance(value, Promise):
        return str(value)
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


# ------------------------------------------------------------------------ organisations and people


def tenant_created(*, actor: Actor, tenant: Tenant, ip: str | None = None) -> AuditEvent:
    return _record(AuditAction.TENANT_CREATE, actor=actor, tenant=tenant, target=tenant, ip=ip)


def tenant_policies_changed(
    *, actor: Actor, tenant: Tenant, before: Mapping[str, Any], after: Mapping[str, Any], ip: str | None = None
) -> AuditEvent:
    data = {"before": before, "after": after}
    return _record(AuditAction.TENANT_POLICIES, actor=actor, tenant=tenant, target=tenant, ip=ip, data=data)


def tenant_status_changed(*, actor: Actor, tenant: Tenant, status: str, reason: str) -> AuditEvent:
    """The tenant became `status` (a TenantStatus value)."""
    action = AuditAction(f"tenant.{status}")
    return _record(action, actor=actor, tenant=tenant, target=tenant, data={"reason": reason})


def member_role_changed(
    *, actor: Actor, membership: Membership, previous: str, role: str, ip: str | None = None
) -> AuditEvent:
    data = {"email": membership.user.email, "from": previous, "to": role}
    return _record(AuditAction.MEMBER_ROLE, actor=actor, tenant=membership.tenant, target=membership, ip=ip, data=data)


def member_removed(*, actor: Actor, membership: Membership, leaving: bool, ip: str | None = None) -> AuditEvent:
    """Someone was removed from the tenant, or (`leaving`) left it themselves."""
    action = AuditAction.MEMBER_LEAVE if leaving else AuditAction.MEMBER_REMOVE
    data = {"email": membership.user.email, "role": membership.role}
    return _record(action, actor=actor, tenant=membership.tenant, target=membership, ip=ip, data=data)


def invitation_created(*, actor: Actor, invitation: Invitation, ip: str | None = None) -> AuditEvent:
    data = {"email": invitation.email, "role": invitation.role}
    return _record(
        AuditAction.INVITATION_CREATE, actor=actor, tenant=invitation.tenant, target=invitation, ip=ip, data=data
    )


def invitation_accepted(
    *, actor: Actor, invitation: Invitation, membership: Membership, ip: str | None = None
) -> AuditEvent:
    return _record(AuditAction.INVITATION_ACCEPT, actor=actor, tenant=invitation.tenant, target=membership, ip=ip)


def invitation_revoked(*, actor: Actor, invitation: Invitation, ip: str | None = None) -> AuditEvent:
    return _record(AuditAction.INVITATION_REVOKE, actor=actor, tenant=invitation.tenant, target=invitation, ip=ip)


def token_created(*, actor: Actor, token: ApiToken, ip: str | None = None) -> AuditEvent:
    return _record(AuditAction.TOKEN_CREATE, actor=actor, tenant=token.tenant, target=token, ip=ip)


def token_used(*, token: ApiToken, ip: str | None = None) -> AuditEvent:
    return _record(AuditAction.TOKEN_USE, actor=token.user, tenant=token.tenant, target=token, ip=ip)


def tenant_approved(*, actor: Actor, tenant: Tenant, ip: str | None = None) -> AuditEvent:
    return _record(AuditAction.TENANT_APPROVE, actor=actor, tenant=tenant, target=tenant, ip=ip)


def token_revoked(*, actor: Actor, token: ApiToken, ip: str | None = None) -> AuditEvent:
    return _record(AuditAction.TOKEN_REVOKE, actor=actor, tenant=token.tenant, target=token, ip=ip)


# ------------------------------------------------------------------------ sign-in and personal settings


def _two_factor(action: AuditAction, user: Actor, request: HttpRequest | None) -> AuditEvent:
    # The tenant the person was working in, when the request has one (sign-in happens before any).
    return _record(action, actor=user, tenant=getattr(request, "tenant", None), ip=client_ip(request))


def recovery_codes_regenerated(*, user: Actor, request: HttpRequest | None = None) -> AuditEvent:
    return _two_factor(AuditAction.TWO_FACTOR_RECOVERY_CODES, user, request)


def _each_tenant_of(
    action: AuditAction, user: User, request: HttpRequest | None, data: dict | None
) -> list[AuditEvent]:
    """One event in each of the person's tenants, so every tenant's admins see their people's sign-ins."""
    ip = client_ip(request)
    tenants: list[Tenant | None] = [m.tenant for m in Membership.objects.filter(user=user).select_related("tenant")]
    return [_record(action, actor=user, tenant=tenant, target=user, ip=ip, data=data) for tenant in tenants or [None]]


def signed_in(*, user: User, request: HttpRequest | None = None) -> list[AuditEvent]:
    return _each_tenant_of(AuditAction.LOGIN_SUCCESS, user, request, None)


def sign_in_failed(*, user: User, request: HttpRequest | None = None, locked_out: bool = False) -> list[AuditEvent]:
    return _each_tenant_of(AuditAction.LOGIN_FAILED, user, request, {"locked_out": locked_out})


def signed_out(*, user: User, request: HttpRequest | None = None) -> list[AuditEvent]:
    return _each_tenant_of(AuditAction.LOGIN_LOGOUT, user, request, None)


def _provider(provider: IdentityProvider) -> dict[str, Any]:
    return {"provider": provider.name, "provider_id": provider.pk}


def sso_provider_saved(
    *, actor: Actor, provider: IdentityProvider, domains: Sequence[str], ip: str | None = None
) -> AuditEvent:
    # Never the secret: whether one is set is enough to read the log by.
    data = {
        **_provider(provider),
        "kind": provider.kind,
        "issuer": provider.address,
        "domains": list(domains),
        "group_roles": provider.role_names(),
        "allow_password": provider.allow_password,
        "mfa_policy": provider.mfa_policy,
        "enabled": provider.enabled,
        "has_secret": provider.has_secret,
    }
    return _record(
        AuditAction.SSO_PROVIDER_SAVE, actor=actor, tenant=provider.tenant, target=provider, ip=ip, data=data
    )


def sso_provider_deleted(*, actor: Actor, provider: IdentityProvider, ip: str | None = None) -> AuditEvent:
    action = AuditAction.SSO_PROVIDER_DELETE
    return _record(action, actor=actor, tenant=provider.tenant, target=provider, ip=ip, data=_provider(provider))


def _domain(domain: EmailDomain) -> dict[str, Any]:
    return {**_provider(domain.provider), "domain": domain.domain, "record": domain.record_name}


def sso_domain_verified(*, actor: Actor, domain: EmailDomain, ip: str | None = None) -> AuditEvent:
    """The domain's TXT record proved the tenant owns it; actor None: the periodic re-check found it."""
    action = AuditAction.SSO_DOMAIN_VERIFIED
    return _record(action, actor=actor, tenant=domain.tenant, target=domain, ip=ip, data=_domain(domain))


def sso_domain_check_failed(*, actor: Actor, domain: EmailDomain, ip: str | None = None) -> AuditEvent:
    """A check found no proof (its code: nxdomain, no_txt, wrong_value, timeout, ..., verified_elsewhere).

    The problem is described from the row's code and parameters, in the log's language (see _record).
    """
    with translation.override(settings.LANGUAGE_CODE):
        problem = domain.last_error
    data = {**_domain(domain), "code": domain.last_error_code, "problem": problem, "status": domain.status}
    action = AuditAction.SSO_DOMAIN_CHECK_FAILED
    return _record(action, actor=actor, tenant=domain.tenant, target=domain, ip=ip, data=data)


def sso_domain_removed(*, actor: Actor, domain: EmailDomain, ip: str | None = None) -> AuditEvent:
    data = {**_domain(domain), "status": domain.status}
    return _record(AuditAction.SSO_DOMAIN_REMOVE, actor=actor, tenant=domain.tenant, target=domain, ip=ip, data=data)


def sso_signed_in(*, provider: IdentityProvider, user: User, mfa: bool, ip: str | None = None) -> AuditEvent:
    """A sign-in through the provider; `mfa`: the provider said a second factor was used."""
    data = {**_provider(provider), "provider_mfa": mfa}
    return _record(AuditAction.LOGIN_SSO, actor=user, tenant=provider.tenant, target=user, ip=ip, data=data)


def sso_sign_in_refused(*, provider: IdentityProvider, email: str, reason: str, ip: str | None = None) -> AuditEvent:
    data = {**_provider(provider), "email": email, "reason": reason}
    return _record(AuditAction.LOGIN_SSO_REFUSED, tenant=provider.tenant, target=provider, ip=ip, data=data)


def sso_member_joined(
    *, provider: IdentityProvider, membership: Membership, groups: Sequence[str], ip: str | None = None
) -> AuditEvent:
    data = {**_provider(provider), "email": membership.user.email, "role": membership.role, "groups": list(groups)}
    action = AuditAction.SSO_MEMBER_JOIN
    return _record(action, actor=membership.user, tenant=provider.tenant, target=membership, ip=ip, data=data)


def sso_member_role_changed(
    *, provider: IdentityProvider, membership: Membership, previous: str, ip: str | None = None
) -> AuditEvent:
    data = {**_provider(provider), "email": membership.user.email, "from": previous, "to": membership.role}
    action = AuditAction.SSO_MEMBER_ROLE
    return _record(action, actor=membership.user, tenant=provider.tenant, target=membership, ip=ip, data=data)


def sso_membership_removed(*, provider: IdentityProvider, membership: Membership, ip: str | None = None) -> AuditEvent:
    data = {**_provider(provider), "email": membership.user.email, "role": membership.role}
    action = AuditAction.SSO_MEMBER_REMOVE
    return _record(action, actor=membership.user, tenant=provider.tenant, target=membership, ip=ip, data=data)


# ------------------------------------------------------------------------ provisioning (SCIM)


def scim_token_created(*, actor: Actor, directory: ScimDirectory, ip: str | None = None) -> AuditEvent:
    data = {"prefix": directory.token_prefix}
    action = AuditAction.SCIM_TOKEN_CREATE
    return _record(action, actor=actor, tenant=directory.tenant, target=directory, ip=ip, data=data)


def scim_token_revoked(*, actor: Actor, directory: ScimDirectory, ip: str | None = None) -> AuditEvent:
    data = {"prefix": directory.token_prefix}
    action = AuditAction.SCIM_TOKEN_REVOKE
    return _record(action, actor=actor, tenant=directory.tenant, target=directory, ip=ip, data=data)


def scim_mapping_changed(*, actor: Actor, directory: ScimDirectory, ip: str | None = None) -> AuditEvent:
    data = {"group_roles": directory.role_names()}
    return _record(AuditAction.SCIM_MAPPING, actor=actor, tenant=directory.tenant, target=directory, ip=ip, data=data)


def _scim_user(person: ScimUser) -> dict[str, Any]:
    return {"user_name": person.user_name, "external_id": person.external_id, "scim_id": str(person.scim_id)}


def _scim_person(action: AuditAction, person: ScimUser, ip: str | None, data: Mapping[str, Any]) -> AuditEvent:
    return _record(action, tenant=person.tenant, target=person, ip=ip, data={**_scim_user(person), **data})


def scim_user_created(*, person: ScimUser, role: str, ip: str | None = None) -> AuditEvent:
    return _scim_person(AuditAction.SCIM_USER_CREATE, person, ip, {"role": role, "active": person.active})


def scim_user_updated(*, person: ScimUser, ip: str | None = None) -> AuditEvent:
    return _scim_person(AuditAction.SCIM_USER_UPDATE, person, ip, {})


def scim_user_suspended(*, person: ScimUser, sessions_ended: int, ip: str | None = None) -> AuditEvent:
    """The directory set active=false: the membership went, with the person's sockets and sessions here."""
    return _scim_person(AuditAction.SCIM_USER_SUSPEND, person, ip, {"sessions_ended": sessions_ended})


def scim_user_restored(*, person: ScimUser, role: str, ip: str | None = None) -> AuditEvent:
    return _scim_person(AuditAction.SCIM_USER_RESTORE, person, ip, {"role": role})


def scim_user_deleted(*, person: ScimUser, ip: str | None = None) -> AuditEvent:
    return _scim_person(AuditAction.SCIM_USER_DELETE, person, ip, {})


def _scim_group(action: AuditAction, group: ScimGroup, ip: str | None, data: Mapping[str, Any]) -> AuditEvent:
    data = {"display_name": group.display_name, "scim_id": str(group.scim_id), **data}
    return _record(action, tenant=group.tenant, target=group, ip=ip, data=data)


def scim_group_saved(*, group: ScimGroup, members: int, ip: str | None = None) -> AuditEvent:
    return _scim_group(AuditAction.SCIM_GROUP_SAVE, group, ip, {"members": members})


def scim_group_deleted(*, group: ScimGroup, ip: str | None = None) -> AuditEvent:
    return _scim_group(AuditAction.SCIM_GROUP_DELETE, group, ip, {})


def scim_member_role_changed(*, membership: Membership, previous: str, ip: str | None = None) -> AuditEvent:
    data = {"email": membership.user.email, "from": previous, "to": membership.role}
    action = AuditAction.SCIM_MEMBER_ROLE
    return _record(action, tenant=membership.tenant, target=membership, ip=ip, data=data)


def two_factor_enrolled(*, user: Actor, request: HttpRequest | None = None) -> AuditEvent:
    return _two_factor(AuditAction.TWO_FACTOR_ENROL, user, request)


def two_factor_verified(*, user: Actor, request: HttpRequest | None = None) -> AuditEvent:
    return _two_factor(AuditAction.TWO_FACTOR_VERIFY, user, request)


def recovery_code_used(*, user: Actor, request: HttpRequest | None = None) -> AuditEvent:
    return _two_factor(AuditAction.TWO_FACTOR_RECOVERY_CODE, user, request)


def two_factor_failed(*, user: Actor, request: HttpRequest | None = None) -> AuditEvent:
    return _two_factor(AuditAction.TWO_FACTOR_FAILED, user, request)


def two_factor_removed(*, user: Actor, request: HttpRequest | None = None) -> AuditEvent:
    return _two_factor(AuditAction.TWO_FACTOR_REMOVE, user, request)


def preferences_changed(*, user: User, console: Mapping[str, Any], ip: str | None = None) -> AuditEvent:
    """A person's own console preferences: theirs in every tenant, so the event has no tenant."""
    return _record(AuditAction.USER_PREFERENCES, actor=user, target=user, ip=ip, data={"console": console})


# ------------------------------------------------------------------------ hosts and images


def host_registered(*, actor: Actor, host: Host, uri: str, settings: Mapping[str, Any]) -> AuditEvent:
    return _record(AuditAction.HOST_REGISTER, actor=actor, target=host, data={"uri": uri, **settings})


def host_updated(*, actor: Actor, host: Host, before: Mapping[str, Any], after: Mapping[str, Any]) -> AuditEvent:
    return _record(AuditAction.HOST_UPDATE, actor=actor, target=host, data={"before": before, "after": after})


def host_flag_changed(*, actor: Actor, host: Host, flag: str, on: bool) -> AuditEvent:
    """The host's maintenance, drain or enabled flag was switched on or off."""
    return _record(AuditAction(f"host.{flag}.{'on' if on else 'off'}"), actor=actor, target=host)


def host_up(*, host: Host, previous: str) -> AuditEvent:
    return _record(AuditAction.HOST_UP, target=host, data={"previous": previous})


def host_down(*, host: Host, last_heartbeat_at: datetime | None, error: str) -> AuditEvent:
    data = {"last_heartbeat_at": last_heartbeat_at.isoformat() if last_heartbeat_at else None, "error": error}
    return _record(AuditAction.HOST_DOWN, target=host, data=data)


def orphan_destroyed(*, host: Host, domain: str, desktop_id: int | None) -> AuditEvent:
    """Reconcile destroyed a Quetzal domain that no desktop claims."""
    data = {"host": host.name, "domain": domain, "desktop_id": desktop_id}
    return _record(AuditAction.HOST_ORPHAN_DESTROYED, data=data)


def image_imported(*, actor: Actor, image: Image, path: str, sha256: str) -> AuditEvent:
    return _record(AuditAction.IMAGE_IMPORT, actor=actor, target=image, data={"path": path, "sha256": sha256})


def image_uploaded(*, actor: Actor, image: Image, file: str, sha256: str) -> AuditEvent:
    return _record(AuditAction.IMAGE_UPLOAD, actor=actor, target=image, data={"file": file, "sha256": sha256})


def image_copy_requested(*, actor: Actor, image: Image, host_ids: Sequence[int]) -> AuditEvent:
    return _record(AuditAction.IMAGE_COPY_REQUEST, actor=actor, target=image, data={"hosts": list(host_ids)})


def image_copied(*, actor: Actor, image: Image, host: Host, volume: str) -> AuditEvent:
    return _record(AuditAction.IMAGE_COPY, actor=actor, target=image, data={"host": host.name, "volume": volume})


# ------------------------------------------------------------------------ desktops, templates, pools


def desktop_created(*, actor: Actor, tenant: Tenant, desktop: Desktop, ip: str | None = None) -> AuditEvent:
    return _record(AuditAction.DESKTOP_CREATE, actor=actor, tenant=tenant, target=desktop, ip=ip)


def desktop_action(
    *, kind: str, actor: Actor, desktop: Desktop, params: Mapping[str, Any], ip: str | None = None
) -> AuditEvent:
    """Someone asked for a lifecycle action (an OperationKind value) on a desktop."""
    action = AuditAction(f"desktop.{kind}")
    return _record(action, actor=actor, tenant=desktop.tenant, target=desktop, ip=ip, data=params)


def desktop_input(
    *,
    actor: Actor,
    desktop: Desktop,
    actions: int,
    kinds: Sequence[str],
    token: ApiToken | None = None,
    ip: str | None = None,
) -> AuditEvent:
    """A batch of automation input (keys, pointer, waits) reached a running desktop; the text typed is not kept."""
    data: dict[str, Any] = {"actions": actions, "kinds": list(kinds)}
    if token is not None:
        data["token"] = token.pk
        data["token_prefix"] = token.prefix
    return _record(AuditAction.DESKTOP_INPUT, actor=actor, tenant=desktop.tenant, target=desktop, ip=ip, data=data)


def desktop_exec(
    *,
    actor: Actor,
    desktop: Desktop,
    program: str,
    args: int,
    exit_code: int | None,
    timed_out: bool,
    token: ApiToken | None = None,
    ip: str | None = None,
) -> AuditEvent:
    """Automation ran a command in the guest: the program and how many arguments, never its input or output."""
    data: dict[str, Any] = {"program": program, "args": args, "exit_code": exit_code, "timed_out": timed_out}
    if token is not None:
        data["token"] = token.pk
        data["token_prefix"] = token.prefix
    return _record(AuditAction.DESKTOP_EXEC, actor=actor, tenant=desktop.tenant, target=desktop, ip=ip, data=data)


def desktop_claimed(*, actor: Actor, tenant: Tenant, desktop: Desktop, pool: Pool, ip: str | None = None) -> AuditEvent:
    data = {"pool": pool.pk}
    return _record(AuditAction.DESKTOP_CLAIM, actor=actor, tenant=tenant, target=desktop, ip=ip, data=data)


def desktop_kept_running(
    *, actor: Actor, desktop: Desktop, until: datetime | None, ip: str | None = None
) -> AuditEvent:
    """Someone said "Keep it running": the idle shutdown now waits until `until` (None: no idle policy)."""
    data = {"until": until.isoformat() if until is not None else None}
    action = AuditAction.DESKTOP_KEEP_RUNNING
    return _record(action, actor=actor, tenant=desktop.tenant, target=desktop, ip=ip, data=data)


def desktop_stop_announced(*, desktop: Desktop, user_id: int, due_at: datetime) -> AuditEvent:
    """The plan's ramp-down told the person connected to the desktop (`user_id`) that it stops at `due_at`."""
    data = {"user": user_id, "due_at": due_at.isoformat()}
    return _record(AuditAction.DESKTOP_STOP_NOTICE, tenant=desktop.tenant, target=desktop, data=data)


def disk_keys_erased(
    *, tenant: Tenant, desktop_ids: Sequence[int], why: str, home_ids: Sequence[int] = ()
) -> AuditEvent:
    """Disk keys destroyed: what those disks (desktops' and homes') held can no longer be read (crypto-erase)."""
    data: dict[str, Any] = {"desktops": list(desktop_ids), "why": why}
    if home_ids:
        data["homes"] = list(home_ids)
    return _record(AuditAction.DESKTOP_KEYS_ERASE, tenant=tenant, data=data)


def keys_rotated(*, old_kek_id: str, new_kek_id: str, count: int) -> AuditEvent:
    """Every data key re-wrapped under a new key-encryption key (the ids are fingerprints, not keys)."""
    return _record(AuditAction.KEYS_ROTATE, data={"old_kek": old_kek_id, "new_kek": new_kek_id, "keys": count})


def home_created(*, actor: Actor, home: HomeDisk) -> AuditEvent:
    data = {"size_gib": home.size_gib, "host": home.host_id}
    return _record(AuditAction.HOME_CREATE, actor=actor, tenant=home.tenant, target=home, data=data)


def _files(action: AuditAction, actor: Actor, home: HomeDisk, path: str, ip: str | None, **data: Any) -> AuditEvent:
    return _record(action, actor=actor, tenant=home.tenant, target=home, ip=ip, data={"path": path, **data})


def file_uploaded(*, actor: Actor, home: HomeDisk, path: str, size: int, via: str, ip: str | None = None) -> AuditEvent:
    return _files(AuditAction.FILES_UPLOAD, actor, home, path, ip, size=size, via=via)


def file_downloaded(
    *, actor: Actor, home: HomeDisk, path: str, size: int, via: str, ip: str | None = None
) -> AuditEvent:
    return _files(AuditAction.FILES_DOWNLOAD, actor, home, path, ip, size=size, via=via)


def file_deleted(*, actor: Actor, home: HomeDisk, path: str, via: str, ip: str | None = None) -> AuditEvent:
    return _files(AuditAction.FILES_DELETE, actor, home, path, ip, via=via)


def home_opened_by_admin(*, actor: Actor, home: HomeDisk, ip: str | None = None) -> AuditEvent:
    return _files(AuditAction.FILES_ADMIN_ACCESS, actor, home, "", ip, owner=home.user_id)


def bulk_snapshot_requested(
    *, actor: Actor, tenant: Tenant, snapshot: str, queued: int, skipped: int, ip: str | None = None
) -> AuditEvent:
    data = {"snapshot": snapshot, "queued": queued, "skipped": skipped}
    return _record(AuditAction.DESKTOP_BULK_SNAPSHOT, actor=actor, tenant=tenant, ip=ip, data=data)


def bulk_stop_idle_requested(
    *, actor: Actor, tenant: Tenant, queued: int, skipped: int, ip: str | None = None
) -> AuditEvent:
    data = {"queued": queued, "skipped": skipped}
    return _record(AuditAction.DESKTOP_BULK_STOP_IDLE, actor=actor, tenant=tenant, ip=ip, data=data)


def template_saved(
    *,
    actor: Actor,
    tenant: Tenant,
    template: DesktopTemplate,
    created: bool,
    changed: Sequence[str],
    after: Mapping[str, Any],
    ip: str | None = None,
) -> AuditEvent:
    """A template was created or changed; `after` holds the changed values that are not secret."""
    action = AuditAction.TEMPLATE_CREATE if created else AuditAction.TEMPLATE_UPDATE
    data = {"changed": list(changed), "after": after}
    return _record(action, actor=actor, tenant=tenant, target=template, ip=ip, data=data)


def template_size_changed(
    *,
    actor: Actor,
    tenant: Tenant,
    size: TemplateSize,
    change: str,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    ip: str | None = None,
) -> AuditEvent:
    """A named size of a private template was added, changed or removed (`change`); before/after hold its shape."""
    action = AuditAction(f"template.size.{change}")
    data: dict[str, Any] = {"template": size.template_id}
    if before is not None:
        data["before"] = dict(before)
    if after is not None:
        data["after"] = dict(after)
    return _record(action, actor=actor, tenant=tenant, target=size, ip=ip, data=data)


def pool_saved(*, actor: Actor, tenant: Tenant, pool: Pool) -> AuditEvent:
    data = {"min_ready": pool.min_ready, "max_size": pool.max_size}
    return _record(AuditAction.POOL_SAVE, actor=actor, tenant=tenant, target=pool, data=data)


def pool_scaling_changed(*, actor: Actor, pool: Pool, change: str, data: Mapping[str, Any]) -> AuditEvent:
    """The pool's scaling plan saved (`update`), or a calendar exception added (`create`) or removed (`delete`)."""
    values = {"change": change, **data}
    return _record(AuditAction.POOL_SCALING, actor=actor, tenant=pool.tenant, target=pool, data=values)


def pool_deleted(*, actor: Actor, pool: Pool) -> AuditEvent:
    return _record(AuditAction.POOL_DELETE, actor=actor, tenant=pool.tenant, target=pool)


def firewall_rule_changed(
    *,
    actor: Actor,
    tenant: Tenant,
    rule: FirewallRule,
    change: str,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    ip: str | None = None,
) -> AuditEvent:
    """A firewall rule was created, updated or deleted (`change`); before/after hold its fields."""
    action = AuditAction(f"firewall.rule.{change}")
    data: dict[str, Any] = {"scope": rule.scope, "template": rule.template_id, "desktop": rule.desktop_id}
    if before is not None:
        data["before"] = dict(before)
    if after is not None:
        data["after"] = dict(after)
    return _record(action, actor=actor, tenant=tenant, target=rule, ip=ip, data=data)


def network_policy_changed(
    *, actor: Actor, tenant: Tenant, before: Mapping[str, Any], after: Mapping[str, Any], ip: str | None = None
) -> AuditEvent:
    data = {"before": dict(before), "after": dict(after)}
    return _record(AuditAction.NETWORK_POLICY, actor=actor, tenant=tenant, target=tenant, ip=ip, data=data)


# ------------------------------------------------------------------------ consoles and recordings


def console_refused(
    *, actor: Actor, tenant: Tenant, desktop: Desktop | None, desktop_id: int, code: str, ip: str | None = None
) -> AuditEvent:
    """A console connection was refused; `desktop` is None when the id named no desktop of the tenant."""
    data = {"desktop": desktop_id, "code": code}
    return _record(AuditAction.CONSOLE_REFUSED, actor=actor, tenant=tenant, target=desktop, ip=ip, data=data)


def console_opened(
    *,
    actor: Actor,
    desktop: Desktop,
    session: ConsoleSession,
    admin_access: bool,
    recorded: bool,
    ip: str | None = None,
) -> AuditEvent:
    data: dict[str, Any] = {"session": session.pk, "admin_access": admin_access, "recorded": recorded}
    if admin_access:
        # Whose desktop an admin looked at, readable after the desktop is gone.
        data["owner"] = desktop.user.email if desktop.user else None
    return _record(AuditAction.CONSOLE_OPEN, actor=actor, tenant=desktop.tenant, target=desktop, ip=ip, data=data)


def console_closed(
    *, session: ConsoleSession, reason: str, bytes_to_desktop: int, bytes_from_desktop: int, at: datetime
) -> AuditEvent:
    data = {
        "session": session.pk,
        "reason": reason,
        "bytes_to_desktop": bytes_to_desktop,
        "bytes_from_desktop": bytes_from_desktop,
        "seconds": round((at - session.started_at).total_seconds(), 1),
    }
    return _record(
        AuditAction.CONSOLE_CLOSE,
        actor=session.user,
        tenant=session.tenant,
        target=session.desktop,
        ip=session.client_ip,
        data=data,
    )


def recording_replayed(*, actor: Actor, recording: Recording, ip: str | None = None) -> AuditEvent:
    data = {"recording": recording.pk, "session": recording.session_id}
    return _record(
        AuditAction.CONSOLE_RECORDING_REPLAY,
        actor=actor,
        tenant=recording.tenant,
        target=recording.desktop,
        ip=ip,
        data=data,
    )


def recording_deleted(*, actor: Actor, recording: Recording, ip: str | None = None) -> AuditEvent:
    data = {"recording": recording.pk, "session": recording.session_id}
    return _record(
        AuditAction.CONSOLE_RECORDING_DELETE,
        actor=actor,
        tenant=recording.tenant,
        target=recording.desktop,
        ip=ip,
        data=data,
    )


def recordings_expired(*, tenant: Tenant, count: int) -> AuditEvent:
    data = {"count": count, "retention_days": tenant.recording_retention_days}
    return _record(AuditAction.CONSOLE_RECORDING_EXPIRE, tenant=tenant, data=data)


# ------------------------------------------------------------------------ billing


def billing_customer_created(*, tenant: Tenant, account: BillingAccount, customer: str) -> AuditEvent:
    data = {"customer": customer}
    return _record(AuditAction.BILLING_CUSTOMER_CREATED, tenant=tenant, target=account, data=data)


def billing_subscription_created(*, tenant: Tenant, account: BillingAccount, subscription: str) -> AuditEvent:
    data = {"subscription": subscription}
    return _record(AuditAction.BILLING_SUBSCRIPTION_CREATED, tenant=tenant, target=account, data=data)


def billing_checkout_started(
    *, actor: Actor, tenant: Tenant, account: BillingAccount, session: str, ip: str | None = None
) -> AuditEvent:
    data = {"session": session}
    return _record(AuditAction.BILLING_CHECKOUT_STARTED, actor=actor, tenant=tenant, target=account, ip=ip, data=data)


def billing_portal_opened(
    *, actor: Actor, tenant: Tenant, account: BillingAccount, ip: str | None = None
) -> AuditEvent:
    return _record(AuditAction.BILLING_PORTAL_OPENED, actor=actor, tenant=tenant, target=account, ip=ip)


def billing_payment_method_set(*, account: BillingAccount, payment_method: str) -> AuditEvent:
    data = {"payment_method": payment_method}
    return _record(AuditAction.BILLING_PAYMENT_METHOD_SET, tenant=account.tenant, target=account, data=data)


def billing_exemption_changed(*, actor: Actor, account: BillingAccount, exempt: bool) -> AuditEvent:
    """Operators stopped charging a tenant's usage (`exempt`) or started again."""
    action = AuditAction.BILLING_EXEMPT if exempt else AuditAction.BILLING_CHARGED
    return _record(action, actor=actor, tenant=account.tenant, target=account)


def billing_payment_failed(*, account: BillingAccount, invoices: Sequence[str]) -> AuditEvent:
    """The account fell into arrears; its grace period ends at `account.grace_until`."""
    grace_until = account.grace_until.isoformat() if account.grace_until else None
    data = {"grace_until": grace_until, "invoices": list(invoices)}
    return _record(AuditAction.BILLING_PAYMENT_FAILED, tenant=account.tenant, target=account, data=data)


def billing_arrears_cleared(*, account: BillingAccount) -> AuditEvent:
    return _record(AuditAction.BILLING_ARREARS_CLEARED, tenant=account.tenant, target=account)


def billing_host_down_closed(*, host_id: int, at: datetime, intervals: int) -> AuditEvent:
    """Usage of every desktop on a host that went down was closed (a platform event: many tenants)."""
    data = {"host_id": host_id, "at": at.isoformat(), "intervals": intervals}
    return _record(AuditAction.BILLING_HOST_DOWN_CLOSED, data=data)


def usage_interval_closed_by_repair(*, interval: UsageInterval, closed_at: datetime, why: str) -> AuditEvent:
    data = {"desktop_id": interval.desktop_id, "closed_at": closed_at.isoformat(), "why": why}
    return _record(AuditAction.BILLING_INTERVAL_REPAIRED, tenant=interval.tenant, target=interval, data=data)


def usage_interval_opened_by_repair(*, interval: UsageInterval) -> AuditEvent:
    """A running desktop had no open usage interval: one was opened for it."""
    data = {"desktop_id": interval.desktop_id, "opened_at": interval.started_at.isoformat(), "why": "running"}
    return _record(AuditAction.BILLING_INTERVAL_REPAIRED, tenant=interval.tenant, target=interval, data=data)


def price_changed(
    *,
    actor: Actor = None,
    template: DesktopTemplate,
    previous: Decimal,
    price: Decimal,
    effective_at: datetime,
) -> AuditEvent:
    data = {"previous": str(previous), "price_per_hour": str(price), "effective_at": effective_at.isoformat()}
    return _record(AuditAction.BILLING_PRICE_CHANGE, actor=actor, tenant=template.tenant, target=template, data=data)
