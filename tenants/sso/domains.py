"""Proving that a tenant owns the email domains it routes to its providers (as Entra ID, Google Workspace and Okta
do): the tenant publishes `_quetzal-challenge.<domain> TXT "quetzal-verify=<token>"`, Quetzal looks it up.

Only a verified domain routes sign-ins to a provider and takes its people's Quetzal passwords away (and a domain
routed before verification existed, grandfathered, until somebody verifies it). One tenant verifies a domain; the
others' claims on it end then. A later check that finds the record gone (NXDOMAIN, no TXT, another value) takes the
verification back; a check the DNS could not answer (timeout, SERVFAIL) changes nothing but the error shown.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from quetzal.errors import ServiceError
from tenants import events
from tenants.api import throttling
from tenants.models import User
from tenants.sso import dnscheck
from tenants.sso.choices import DomainStatus
from tenants.sso.models import EmailDomain

# The periodic task re-reads a domain's record at most this often, and this many domains a run (bounded work).
RECHECK_AFTER = timedelta(hours=6)
RECHECK_BATCH = 200


# What a check writes besides its times.
CHECK_FIELDS = ("status", "last_error_code", "last_error_params")


class VerifyThrottled(ServiceError):
    """The tenant pressed Verify too often: no lookup now (429)."""

    code = "sso_verify_throttled"
    status = 429


def verify_now(*, domain: EmailDomain, actor: User, ip: str | None = None) -> EmailDomain:
    """An admin's Verify: one lookup out of the tenant's budget (shared by its admins and processes), then check();
    VerifyThrottled, with no lookup, once the budget of the window is spent."""
    limit, window = settings.SSO_VERIFY_RATE_LIMIT, settings.SSO_VERIFY_WINDOW_S
    spent = throttling.spend(throttling.tenant_bucket("sso-verify", domain.tenant_id), limit=limit, window=window)
    if not spent.allowed:
        raise VerifyThrottled(
            _(
                "Your organisation has looked up %(limit)s DNS records in %(window)s seconds, the most it may: "
                "try again in %(seconds)s seconds."
            )
            % {"limit": limit, "window": window, "seconds": spent.retry_after_s}
        )
    return check(domain=domain, actor=actor, ip=ip)


def _outcome(domain: EmailDomain) -> dnscheck.TxtAnswer:
    """The record's answer for this claim: values found but none ours is a definite failure too."""
    answer = dnscheck.txt_values(domain.record_name)
    if answer.code or domain.record_value in answer.values:
        return answer
    found = ", ".join(f'"{value[:80]}"' for value in answer.values[:3])
    params = {"name": domain.record_name, "value": f'"{domain.record_value}"', "found": found}
    return dnscheck.TxtAnswer(values=answer.values, code="wrong_value", params=params)


def _fail(row: EmailDomain, code: str, params: dict[str, str]) -> None:
    row.status, row.last_error_code, row.last_error_params = DomainStatus.FAILED, code, params


def check(*, domain: EmailDomain, actor: User | None = None, ip: str | None = None) -> EmailDomain:
    """Look the domain's record up and record what it says; `actor` None: the periodic re-check.

    The lookup runs before the row is locked: a slow DNS server holds no lock.
    """
    answer = _outcome(domain)
    now = timezone.now()
    with transaction.atomic():
        row = EmailDomain.objects.select_for_update().filter(pk=domain.pk).first()
        if row is None:
            raise ServiceError(_("This domain was removed meanwhile."), code="not_found", status=404)
        before = row.status
        row.last_checked_at = now
        row.last_error_code, row.last_error_params = answer.code, answer.params
        if not answer.code:
            _verify(row, now=now, actor=actor, ip=ip)
        elif answer.definite:
            row.status = DomainStatus.FAILED
        row.save(update_fields=[*CHECK_FIELDS, "verified_at", "last_checked_at", "grandfathered"])
        if row.status == DomainStatus.FAILED and (actor is not None or before != row.status):
            events.sso_domain_check_failed(actor=actor, domain=row, ip=ip)
    return row


def _verify(row: EmailDomain, *, now, actor: User | None, ip: str | None) -> None:
    """The record is there: the domain is this tenant's, unless another tenant verified it first."""
    if row.status == DomainStatus.VERIFIED:
        return
    taken = {"domain": row.domain}
    if EmailDomain.objects.filter(domain=row.domain, status=DomainStatus.VERIFIED).exclude(pk=row.pk).exists():
        _fail(row, "verified_elsewhere", taken)
        return
    row.status, row.verified_at, row.grandfathered = DomainStatus.VERIFIED, now, False
    try:
        with transaction.atomic():
            row.save(update_fields=["status", "verified_at", "grandfathered"])
    except IntegrityError:  # verified by another tenant in the meantime (sso_domain_verified_once)
        row.verified_at = None
        _fail(row, "verified_elsewhere", taken)
        return
    events.sso_domain_verified(actor=actor, domain=row, ip=ip)
    # The other tenants' claims end: nothing of theirs routes this domain any more (grandfathered ones included).
    for other in EmailDomain.objects.select_for_update().filter(domain=row.domain).exclude(pk=row.pk):
        _fail(other, "verified_elsewhere", taken)
        other.grandfathered = False
        other.save(update_fields=[*CHECK_FIELDS, "grandfathered"])
        events.sso_domain_check_failed(actor=None, domain=other)


def remove(*, domain: EmailDomain, actor: User, ip: str | None = None) -> None:
    """Stop routing the domain (its people sign in with a password again); audited."""
    with transaction.atomic():
        events.sso_domain_removed(actor=actor, domain=domain, ip=ip)
        EmailDomain.objects.filter(pk=domain.pk).delete()


def due_for_recheck(now=None) -> list[int]:
    """The domains whose record the periodic task reads again, oldest check first: a verified one whose record went
    is seen, and a pending or failed one whose record appeared verifies without anyone pressing Verify."""
    cutoff = (now or timezone.now()) - RECHECK_AFTER
    rows = EmailDomain.objects.exclude(last_checked_at__gte=cutoff)
    return list(rows.order_by("last_checked_at", "pk").values_list("pk", flat=True)[:RECHECK_BATCH])


def recheck_due() -> int:
    """Re-read the record of every domain due (the periodic task); how many were read."""
    count = 0
    for pk in due_for_recheck():
        row = EmailDomain.objects.filter(pk=pk).first()
        if row is not None:
            check(domain=row)
            count += 1
    return count
