"""Single sign-on: configuring a tenant's providers, routing an address to one, and admitting who it signs in."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import requests
from allauth.socialaccount.adapter import get_adapter
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext

from quetzal import kek
from quetzal.errors import Conflict, ServiceError
from tenants import events, signals
from tenants.choices import Role
from tenants.models import Membership, Tenant, User
from tenants.receivers import ROLE_RANK
from tenants.sso import saml
from tenants.sso.choices import MFA_METHODS, DomainStatus, MfaPolicy, ProviderKind
from tenants.sso.discovery import Discovery, ProviderUnreachable, discover
from tenants.sso.models import EmailDomain, IdentityProvider

# Where an LDAP directory is and how people and their groups are found in it (the LDAP form shows these).
LDAP_FIELDS = (
    "ldap_uri",
    "ldap_bind_dn",
    "ldap_user_base",
    "ldap_user_filter",
    "ldap_email_attribute",
    "ldap_group_attribute",
    "ldap_group_base",
    "ldap_group_filter",
    "ldap_ca_certificate",
    "ldap_start_tls",
)
# A SAML IdP: its metadata, what was read from it (the form reads it), and which attributes say what.
SAML_FIELDS = (
    "saml_metadata_url",
    "saml_metadata_xml",
    "saml_entity_id",
    "saml_sso_url",
    "saml_certificate",
    "saml_email_attributes",
    "saml_name_attributes",
    "saml_groups_attributes",
)
# What a tenant admin edits (the form and this service share the list); secret and domains go apart.
PROVIDER_FIELDS = (
    "name",
    "issuer_url",
    "client_identifier",
    "scopes",
    "groups_claim",
    "group_roles",
    "allow_password",
    "mfa_policy",
    "enabled",
    *LDAP_FIELDS,
    *SAML_FIELDS,
)
MAX_ERROR_CHARS = 500


class SignInRefused(ServiceError):
    """The provider vouched for someone Quetzal will not let in through it (403, with whom to ask)."""

    code = "sso_refused"
    status = 403


# ------------------------------------------------------------------------ configuring


def _secret_context(provider: IdentityProvider) -> str:
    return f"sso-client-secret:{provider.pk}"


def client_secret(provider: IdentityProvider) -> str:
    """The provider's secret, unsealed: the OIDC client secret (empty for public clients) or the LDAP bind password."""
    if not provider.has_secret:
        return ""
    context = _secret_context(provider)
    sealed = kek.unwrap(provider.client_secret_sealed, context=context, kek_id=provider.client_secret_kek_id)
    return sealed.decode()


def _claimed_elsewhere(domains: Sequence[str], provider: IdentityProvider) -> list[str]:
    """The domains this provider may not take: verified by another tenant (deliberately across tenants: a verified
    domain is one tenant's), or routed to another provider of the same tenant."""
    others = EmailDomain.objects.filter(domain__in=domains).exclude(provider=provider)
    taken = others.filter(Q(status=DomainStatus.VERIFIED) | Q(tenant=provider.tenant))
    return sorted(set(taken.values_list("domain", flat=True)))


def save_provider(
    *,
    tenant: Tenant,
    actor: User,
    values: Mapping[str, Any],
    domains: Sequence[str],
    client_secret: str | None,
    provider: IdentityProvider | None = None,
    ip: str | None = None,
) -> IdentityProvider:
    """Create or change a provider of the tenant; a None secret keeps the stored one, "" removes it.

    `values["kind"]` (OpenID Connect unless given) counts only when creating: a provider never changes kind.
    """
    if provider is not None and provider.tenant_id != tenant.pk:
        raise ServiceError(gettext("No such provider in your organisation."), code="not_found", status=404)
    domains = sorted({d.strip().lower() for d in domains if d.strip()})
    with transaction.atomic():
        if provider is None:
            provider = IdentityProvider(tenant=tenant, kind=values.get("kind", ProviderKind.OIDC))
        else:
            provider = IdentityProvider.objects.select_for_update().get(pk=provider.pk)
        for field in PROVIDER_FIELDS:
            if field in values:
                setattr(provider, field, values[field])
        provider.save()
        if client_secret is not None:
            if client_secret:
                sealed, kek_id = kek.seal(client_secret.encode(), context=_secret_context(provider))
                provider.client_secret_sealed, provider.client_secret_kek_id = sealed, kek_id
            else:
                provider.client_secret_sealed, provider.client_secret_kek_id = b"", ""
            provider.save(update_fields=["client_secret_sealed", "client_secret_kek_id"])
        taken = _claimed_elsewhere(domains, provider)
        if taken:
            raise Conflict(
                gettext("Already routed to another provider: %(join)s.") % {"join": ", ".join(taken)},
                code="sso_domain_taken",
            )
        provider.domains.exclude(domain__in=domains).delete()
        existing = set(provider.domains.values_list("domain", flat=True))
        try:
            with transaction.atomic():
                for domain in domains:
                    if domain not in existing:
                        EmailDomain.objects.create(tenant=tenant, provider=provider, domain=domain)
        except IntegrityError:  # another provider claimed one in the meantime
            raise Conflict(
                gettext("One of these domains was just routed to another provider."), code="sso_domain_taken"
            )
        events.sso_provider_saved(actor=actor, provider=provider, domains=domains, ip=ip)
    return provider


def delete_provider(*, provider: IdentityProvider, actor: User, ip: str | None = None) -> None:
    with transaction.atomic():
        events.sso_provider_deleted(actor=actor, provider=provider, ip=ip)
        provider.delete()


def rewrap_secrets(*, old: kek.Kek, new: kek.Kek) -> int:
    """Re-seal every provider's client secret under `new` (the KEK rotation's part for SSO); how many changed."""
    rows = list(
        IdentityProvider.objects.select_for_update()
        .exclude(client_secret_kek_id="")
        .exclude(client_secret_kek_id=new.kek_id)
    )
    for row in rows:
        context = _secret_context(row)
        secret = kek.unwrap(row.client_secret_sealed, context=context, kek_id=row.client_secret_kek_id, keks=[old])
        row.client_secret_sealed, row.client_secret_kek_id = kek.seal(secret, context=context, kek=new)
    IdentityProvider.objects.bulk_update(rows, ["client_secret_sealed", "client_secret_kek_id"], batch_size=500)
    return len(rows)


def record_error(provider: IdentityProvider, message: str) -> None:
    """Keep the provider's last failure for its admins to read on the provider's page."""
    IdentityProvider.objects.filter(pk=provider.pk).update(
        last_error=message[:MAX_ERROR_CHARS], last_error_at=timezone.now()
    )


def test_provider(provider: IdentityProvider) -> str:
    """The admin's connection test of any kind: what answered, as a sentence; raises ProviderUnreachable (SAML:
    MetadataProblem)."""
    if provider.is_ldap:
        # Function-local: tenants.sso.ldap builds on this module (admit, apply), so it cannot be imported above.
        from tenants.sso import ldap

        return ldap.test_connection(provider)
    if provider.is_saml:
        answer, fresh = saml.test_connection(provider)
        if fresh is not None:  # the IdP rolled its certificate or moved: trust what its metadata URL says now
            IdentityProvider.objects.filter(pk=provider.pk).update(
                saml_metadata_xml=fresh.xml,
                saml_entity_id=fresh.entity_id,
                saml_sso_url=fresh.sso_url,
                saml_certificate=fresh.certificate,
            )
        return answer
    found = test_connection(provider)
    return f"Connected: {found.issuer} answers, its keys are there, it knows the client."


def test_connection(provider: IdentityProvider) -> Discovery:
    """Read the provider's discovery and keys and try its client credentials; raises ProviderUnreachable."""
    found = discover(provider.issuer_url)
    missing = sorted(set(provider.scopes.split()) - set(found.scopes_supported)) if found.scopes_supported else []
    if "openid" not in provider.scopes.split():
        raise ProviderUnreachable(gettext("The scopes must include openid."), code="sso_scopes")
    if missing:
        raise ProviderUnreachable(
            gettext("The provider does not offer the scopes %(join)s.") % {"join": ", ".join(missing)},
            code="sso_scopes",
        )
    with get_adapter().get_requests_session() as session:
        try:
            keys = session.get(found.jwks_uri)
            # A code that cannot be valid: a provider that knows the client says invalid_grant, else invalid_client.
            answer = session.post(
                found.token_endpoint,
                data={"grant_type": "authorization_code", "code": "quetzal-connection-test", "redirect_uri": "x"},
                auth=(provider.client_identifier, client_secret(provider)),
            )
        except requests.RequestException as error:
            raise ProviderUnreachable(
                gettext("The provider stopped answering: %(name)s.") % {"name": type(error).__name__}
            ) from error
    if keys.status_code != 200:
        raise ProviderUnreachable(
            gettext("The provider's signing keys (%(jwks_uri)s) answered HTTP %(status_code)s.")
            % {"jwks_uri": found.jwks_uri, "status_code": keys.status_code}
        )
    if answer.status_code == 401 or _oauth_error(answer) == "invalid_client":
        raise ProviderUnreachable(
            gettext("The provider refused the client id or secret (invalid_client)."), code="sso_client_refused"
        )
    return found


def _oauth_error(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    return str(body.get("error", "")) if isinstance(body, dict) else ""


# ------------------------------------------------------------------------ routing


def domain_of(email: str) -> str:
    return email.rpartition("@")[2].strip().lower()


def _route(email: str) -> EmailDomain | None:
    """The routed domain of the address (verified, or grandfathered) whose provider is enabled, in whichever tenant
    routed it (before any sign-in)."""
    domain = domain_of(email)
    if not domain:
        return None
    routes = EmailDomain.objects.routed().filter(domain=domain, provider__enabled=True)
    # A verified route wins over a grandfathered one (verifying ends the others' claims; this is belt and braces).
    return routes.select_related("provider", "provider__tenant").order_by("-verified_at").first()


def provider_for_email(email: str) -> IdentityProvider | None:
    """The enabled provider the address's domain routes to; a domain nobody verified routes nowhere."""
    route = _route(email)
    return route.provider if route else None


def provider_by_id(provider_id: str) -> IdentityProvider | None:
    """The provider an allauth provider id (idp<pk>) names, enabled or not."""
    if not provider_id.startswith("idp") or not provider_id[3:].isdigit() or len(provider_id) > 22:
        return None
    return IdentityProvider.objects.filter(pk=int(provider_id[3:])).select_related("tenant").first()


def password_refused(email: str, *, operator: bool = False) -> IdentityProvider | None:
    """The provider that keeps this address from signing in with a password, if its tenant said so.

    An operator's (staff) password is refused only on a domain its tenant verified: a grandfathered domain is one
    nobody proved is the tenant's, and a tenant's word alone must not lock the platform's operators out. On a
    verified provider-only domain the domain's owner decides for everyone, operators included: break-glass is an
    operator account outside every routed domain (as Entra's emergency accounts are cloud-only, never federated),
    and a shell on the server, where the provider can be turned off or allow passwords again.
    """
    route = _route(email)
    if route is None or route.provider.allow_password:
        return None
    if operator and route.status != DomainStatus.VERIFIED:
        return None
    return route.provider


# ------------------------------------------------------------------------ admitting


@dataclass(frozen=True)
class Admission:
    """Who a provider signed in, and the role its groups give them in the provider's tenant."""

    provider: IdentityProvider
    email: str
    role: str
    groups: tuple[str, ...]
    mfa: bool


def groups_of(provider: IdentityProvider, claims: Mapping[str, Any]) -> tuple[str, ...]:
    value = claims.get(provider.groups_claim or "groups")
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(str(group) for group in value if isinstance(group, str | int))
    return ()


def role_for(provider: IdentityProvider, groups: Sequence[str]) -> str | None:
    """The highest role the groups map to; with no mapping everyone is a member; None: no mapped group."""
    mapping = provider.role_names()
    if not mapping:
        return Role.MEMBER
    roles = [mapping[group] for group in groups if group in mapping]
    return max(roles, key=lambda role: ROLE_RANK[Role(role)]) if roles else None


def provider_claimed_mfa(claims: Mapping[str, Any]) -> bool:
    amr = claims.get("amr")
    return isinstance(amr, list) and any(method in MFA_METHODS for method in amr if isinstance(method, str))


def whom_to_ask(tenant: Tenant) -> list[str]:
    """The addresses of the tenant's admins: whom a refused person should ask."""
    admins = Membership.objects.for_tenant(tenant).admins().select_related("user")
    return [m.user.email for m in admins.order_by("-role", "user__email")[:5]]


def admit(*, provider: IdentityProvider, claims: Mapping[str, Any], user: User | None) -> Admission:
    """Decide whether the person the provider signed in may enter its tenant, and as what; raises SignInRefused.

    `user` is the account already linked to this provider's subject, or else the account with the address.
    """
    tenant = provider.tenant
    email = str(claims.get("email") or "").strip()
    if not provider.enabled:
        raise SignInRefused(
            gettext("Single sign-on for %(name)s is turned off.") % {"name": tenant.name}, code="sso_disabled"
        )
    if not email or "@" not in email:
        raise SignInRefused(
            gettext("%(name)s did not tell Quetzal your email address.") % {"name": provider.name}, code="sso_no_email"
        )
    if not provider.domains.routed().filter(domain=domain_of(email)).exists():
        raise SignInRefused(
            gettext("%(name)s signs in addresses of %(name2)s's domains only, not %(email)s.")
            % {"name": provider.name, "name2": tenant.name, "email": email},
            code="sso_wrong_domain",
        )
    if user is not None and not user.is_active:
        raise SignInRefused(gettext("This account is deactivated."), code="sso_inactive")
    groups = groups_of(provider, claims)
    role = role_for(provider, groups)
    if role is None:
        raise SignInRefused(
            gettext("None of your groups at %(name)s gives access to %(name2)s.")
            % {"name": provider.name, "name2": tenant.name},
            code="sso_no_group",
        )
    return Admission(provider=provider, email=email, role=role, groups=groups, mfa=provider_claimed_mfa(claims))


def may_link(*, provider: IdentityProvider, user: User) -> bool:
    """An account made outside SSO joins a provider only if it is already in the provider's tenant.

    A tenant routes domains it says are its own; linking an account of another tenant on that word alone would
    hand the account to whoever runs the provider.
    """
    return Membership.objects.for_tenant(provider.tenant).filter(user=user).exists()


def refuse(
    *, provider: IdentityProvider, email: str, refusal: SignInRefused, user: User | None, ip: str | None
) -> None:
    """A refused sign-in: the mapped groups no longer admit the person, so their membership goes; audited."""
    with transaction.atomic():
        if user is not None and refusal.code == "sso_no_group":
            _drop_membership(provider=provider, user=user, ip=ip)
        events.sso_sign_in_refused(provider=provider, email=email, reason=refusal.code, ip=ip)


def _drop_membership(*, provider: IdentityProvider, user: User, ip: str | None) -> None:
    membership = Membership.objects.for_tenant(provider.tenant).select_for_update().filter(user=user).first()
    if membership is None:
        return
    owners = Membership.objects.for_tenant(provider.tenant).filter(role=Role.OWNER).select_for_update()
    if membership.role == Role.OWNER and list(owners.values_list("pk", flat=True)) == [membership.pk]:
        return  # the last owner stays (a tenant without one cannot be managed); the sign-in is refused all the same
    events.sso_membership_removed(provider=provider, membership=membership, ip=ip)
    membership.delete()


def apply(*, admission: Admission, user: User, ip: str | None = None) -> Membership:
    """Give the person the membership and role their groups map to now; audited with the provider."""
    provider = admission.provider
    with transaction.atomic():
        membership = Membership.objects.for_tenant(provider.tenant).select_for_update().filter(user=user).first()
        if membership is None:
            membership = Membership.objects.create(tenant=provider.tenant, user=user, role=admission.role)
            events.sso_member_joined(provider=provider, membership=membership, groups=admission.groups, ip=ip)
            signals.announce_join(membership.pk, via="sso")
        elif membership.role != admission.role and not _keeps_last_owner(membership, admission.role):
            previous = membership.role
            membership.role = admission.role
            membership.save(update_fields=["role"])
            events.sso_member_role_changed(provider=provider, membership=membership, previous=previous, ip=ip)
        events.sso_signed_in(provider=provider, user=user, mfa=admission.mfa, ip=ip)
    return membership


def _keeps_last_owner(membership: Membership, role: str) -> bool:
    if membership.role != Role.OWNER or role == Role.OWNER:
        return False
    owners = Membership.objects.for_tenant(membership.tenant).filter(role=Role.OWNER).select_for_update()
    return list(owners.values_list("pk", flat=True)) == [membership.pk]


def requires_totp(provider: IdentityProvider) -> bool:
    return provider.mfa_policy == MfaPolicy.REQUIRE_TOTP
