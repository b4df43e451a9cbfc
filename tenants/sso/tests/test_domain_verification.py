"""Proving a routed email domain is the tenant's with a DNS TXT record, against a real DNS server (Debian's dnsmasq).

Only a verified domain (or one routed before verification existed) sends its people to the provider; one tenant
verifies a domain, and a removed record is noticed at the next check.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.test import Client
from django.utils import timezone

from quetzal.errors import ServiceError
from tenants.models import AuditEvent
from tenants.sso import domains, services
from tenants.sso.choices import DomainStatus
from tenants.sso.models import EmailDomain
from tenants.sso.tests.provider import configure
from tests.fixtures import login_client

pytestmark = pytest.mark.django_db

PAGE = "/manage/sign-in/"
CHALLENGE = "_quetzal-challenge.acme.test"


def _routes(email: str) -> bool:
    return Client().get("/accounts/sso/route/", {"email": email}).json()["sso"]


def _verify(client: Client, domain: EmailDomain):
    return client.post(f"/manage/sign-in/domains/{domain.pk}/verify/", follow=True)


def test_it_shows_the_record_to_publish_and_routes_the_domain_only_once_it_is_verified(alice, dns):
    # Given alice's admin adds a provider for acme.test on the single sign-on page
    admin = login_client(alice.admin, alice.tenant)
    configure(alice.tenant, alice.admin, "https://id.acme.test", verified=False)
    domain = EmailDomain.objects.get(domain="acme.test")
    # Then the page lists it as pending, with the record to publish (a token of this claim) and copy buttons
    page = admin.get(PAGE).content.decode()
    assert 'data-domain="acme.test" data-status="pending"' in page
    assert f'value="{CHALLENGE}"' in page and f'value="quetzal-verify={domain.token}"' in page
    assert page.count("data-copy") == 2 and len(domain.token) >= 32
    # And acme.test routes nobody to the provider yet: the password still signs pat in
    assert not _routes("pat@acme.test") and services.password_refused("pat@acme.test") is None
    # When she presses Verify before publishing anything
    answer = _verify(admin, domain)
    # Then the page says the name does not exist, and the domain is failed, checked now
    assert answer.status_code == 200 and answer.redirect_chain[-1][0] == f"{PAGE}#domains"
    assert f"There is no DNS name {CHALLENGE} (NXDOMAIN)." in answer.content.decode()
    domain.refresh_from_db()
    assert domain.status == DomainStatus.FAILED and domain.last_checked_at is not None and not _routes("a@acme.test")
    # When she publishes the record and presses Verify again
    dns.publish(CHALLENGE, "v=spf1 -all", domain.record_value)
    answer = _verify(admin, domain)
    # Then acme.test is verified and routes its people to the provider (who lose their Quetzal password)
    assert "acme.test is verified" in answer.content.decode()
    domain.refresh_from_db()
    assert domain.status == DomainStatus.VERIFIED and domain.verified_at is not None and domain.last_error == ""
    assert _routes("pat@acme.test") and services.password_refused("pat@acme.test") is not None
    assert 'data-domain="acme.test" data-status="verified"' in admin.get(PAGE).content.decode()
    # And both checks are in alice's audit log, by her admin
    failed = AuditEvent.objects.get(tenant=alice.tenant, action="sso.domain.check_failed")
    assert failed.actor == alice.admin and failed.data["code"] == "nxdomain" and failed.data["domain"] == "acme.test"
    verified = AuditEvent.objects.get(tenant=alice.tenant, action="sso.domain.verified")
    assert verified.actor == alice.admin and verified.data["record"] == CHALLENGE
    assert "Email domain verified" in admin.get("/manage/audit/").content.decode()


def test_it_says_why_a_record_does_not_verify(alice, bob, dns):
    mine = configure(alice.tenant, alice.admin, "https://id.acme.test", verified=False).domains.get()
    theirs = configure(bob.tenant, bob.admin, "https://id.bob.test", verified=False).domains.get()
    assert mine.domain == theirs.domain == "acme.test" and mine.token != theirs.token  # a claim each, unverified
    # A name with no TXT record
    dns.publish_host(CHALLENGE)
    checked = domains.check(domain=mine, actor=alice.admin)
    assert checked.status == DomainStatus.FAILED and checked.last_error == f"{CHALLENGE} has no TXT record."
    # A record with another value: bob's token does not prove alice's claim
    dns.clear()
    dns.publish(CHALLENGE, theirs.record_value)
    checked = domains.check(domain=mine, actor=alice.admin)
    assert checked.status == DomainStatus.FAILED
    assert checked.last_error.startswith(f'{CHALLENGE} has TXT records, but not "{mine.record_value}" (found "')
    # A value longer than one TXT string, published split, is read whole
    dns.publish_split(CHALLENGE, mine.record_value[:20], mine.record_value[20:])
    assert domains.check(domain=mine, actor=alice.admin).status == DomainStatus.VERIFIED
    codes = list(AuditEvent.objects.filter(action="sso.domain.check_failed").values_list("data__code", flat=True))
    assert sorted(codes) == ["no_txt", "verified_elsewhere", "wrong_value"]


def test_a_dns_server_that_fails_changes_nothing_but_the_error_shown(alice, dns, silent_dns, settings):
    domain = configure(alice.tenant, alice.admin, "https://id.acme.test").domains.get()  # verified
    # A server that never answers: a timeout after the configured second, the domain stays verified and routing
    checked = domains.check(domain=domain, actor=alice.admin)
    assert checked.last_error == "The DNS server did not answer within 1 s; try again later."
    assert checked.status == DomainStatus.VERIFIED and _routes("pat@acme.test")
    said = _verify(login_client(alice.admin, alice.tenant), domain).content.decode()
    assert "acme.test stays verified; this check could not finish: The DNS server did not answer" in said
    # A server that refuses the question (dnsmasq knows no zone outside .test and has no upstream)
    settings.SSO_DNS_NAMESERVER = dns.nameserver
    outside = configure(alice.tenant, alice.admin, "https://id.acme.example", domains=("acme.example",), verified=False)
    checked = domains.check(domain=outside.domains.get(), actor=alice.admin)
    assert checked.status == DomainStatus.PENDING
    assert checked.last_error.startswith("No DNS server could answer for _quetzal-challenge.acme.example (")
    assert "REFUSED" in checked.last_error
    # And the admin's page shows it (a 200 with the sentence, never a 500)
    answer = _verify(login_client(alice.admin, alice.tenant), outside.domains.get())
    assert answer.status_code == 200 and "No DNS server could answer" in answer.content.decode()


def test_a_domain_one_tenant_verified_is_no_other_tenants(alice, bob, dns):
    # Given both tenants claim acme.test, and its DNS publishes alice's token (she owns the zone)
    mine = configure(alice.tenant, alice.admin, "https://id.acme.test", verified=False).domains.get()
    theirs = configure(bob.tenant, bob.admin, "https://id.bob.test", verified=False).domains.get()
    dns.publish(CHALLENGE, mine.record_value)
    # When alice verifies it
    assert domains.check(domain=mine, actor=alice.admin).status == DomainStatus.VERIFIED
    # Then bob's claim has ended, and says why in bob's page and log
    theirs.refresh_from_db()
    assert theirs.status == DomainStatus.FAILED and theirs.last_error == "Another organisation has verified acme.test."
    lost = AuditEvent.objects.get(tenant=bob.tenant, action="sso.domain.check_failed")
    assert lost.data["code"] == "verified_elsewhere" and lost.actor is None
    assert (
        "Another organisation has verified acme.test." in login_client(bob.admin, bob.tenant).get(PAGE).content.decode()
    )
    # And even with his own token published beside hers, bob's check cannot take it
    dns.publish(CHALLENGE, theirs.record_value)
    assert domains.check(domain=theirs, actor=bob.admin).status == DomainStatus.FAILED
    # Nor can bob add acme.test to another provider of his, on the page or through the service
    bob_admin = login_client(bob.admin, bob.tenant)
    other = configure(bob.tenant, bob.admin, "https://id2.bob.test", domains=("bob.test",))
    form = {"name": "Bob 2", "issuer_url": "https://id2.bob.test", "client_identifier": "c", "scopes": "openid"}
    form |= {"email_domains": "bob.test\nacme.test", "groups_claim": "groups", "mfa_policy": "trust_provider"}
    refused = bob_admin.post(f"/manage/sign-in/{other.pk}/", form)
    assert refused.status_code == 400 and "Already routed to another provider: acme.test." in refused.content.decode()
    with pytest.raises(ServiceError) as error:
        services.save_provider(
            tenant=bob.tenant, actor=bob.admin, values={}, domains=["acme.test"], client_secret=None, provider=other
        )
    assert error.value.code == "sso_domain_taken"
    # And the database holds one verified row per domain whatever a service does
    with pytest.raises(IntegrityError), transaction.atomic():
        EmailDomain.objects.filter(pk=theirs.pk).update(status=DomainStatus.VERIFIED)
    # While acme.test routes to alice's provider alone
    assert services.provider_for_email("pat@acme.test").tenant == alice.tenant


def test_a_grandfathered_domain_routes_until_its_owner_verifies_it(alice, bob, dns):
    # Given alice's tenant routed acme.test before verification existed (migration 0003 grandfathered it)
    configure(alice.tenant, alice.admin, "https://id.acme.test", verified=False)
    EmailDomain.objects.filter(tenant=alice.tenant).update(grandfathered=True)
    assert services.provider_for_email("pat@acme.test").tenant == alice.tenant
    # And a failed check of her own does not stop it (existing tenants keep working)
    grandfathered = EmailDomain.objects.get(tenant=alice.tenant)
    assert domains.check(domain=grandfathered, actor=alice.admin).status == DomainStatus.FAILED
    assert services.provider_for_email("pat@acme.test").tenant == alice.tenant
    # When bob, who does own acme.test, adds and verifies it
    theirs = configure(bob.tenant, bob.admin, "https://id.bob.test", verified=False).domains.get()
    dns.publish(CHALLENGE, theirs.record_value)
    assert domains.check(domain=theirs, actor=bob.admin).status == DomainStatus.VERIFIED
    # Then acme.test routes to bob's provider, and alice's claim is over
    assert services.provider_for_email("pat@acme.test").tenant == bob.tenant
    grandfathered.refresh_from_db()
    assert not grandfathered.grandfathered and grandfathered.status == DomainStatus.FAILED


def test_the_periodic_check_ends_a_verification_whose_record_went_and_verifies_a_new_one(alice, dns):
    # Given acme.test verified through its record, and labs.test pending with its record just published
    provider = configure(alice.tenant, alice.admin, "https://id.acme.test", domains=("acme.test", "labs.test"))
    provider.domains.filter(domain="labs.test").update(status=DomainStatus.PENDING, verified_at=None)
    acme, labs = provider.domains.get(domain="acme.test"), provider.domains.get(domain="labs.test")
    dns.publish(CHALLENGE, acme.record_value)
    dns.publish(labs.record_name, labs.record_value)
    assert domains.recheck_due() == 2
    assert set(provider.domains.values_list("status", flat=True)) == {DomainStatus.VERIFIED}
    assert domains.recheck_due() == 0  # both checked just now: nothing due
    # When the record of acme.test is removed, and the next run comes after RECHECK_AFTER
    dns.withdraw(CHALLENGE)
    provider.domains.update(last_checked_at=timezone.now() - domains.RECHECK_AFTER - timedelta(minutes=1))
    from tenants.sso.tasks import recheck_domains

    assert recheck_domains.apply().get() == 2
    # Then acme.test is no longer verified nor routed, the system says so in the log; labs.test stays
    acme.refresh_from_db()
    assert acme.status == DomainStatus.FAILED and acme.last_error == f"There is no DNS name {CHALLENGE} (NXDOMAIN)."
    assert not _routes("pat@acme.test") and _routes("pat@labs.test")
    lapsed = AuditEvent.objects.get(action="sso.domain.check_failed")
    assert lapsed.actor is None and lapsed.tenant == alice.tenant and lapsed.data["status"] == DomainStatus.FAILED


def test_only_the_tenants_admins_verify_or_remove_its_domains(alice, bob, dns):
    domain = configure(alice.tenant, alice.admin, "https://id.acme.test").domains.get()
    old_token = domain.token
    # Another tenant's admin: 404 (nothing checked, nothing removed); a member: 403
    outsider = login_client(bob.admin, bob.tenant)
    assert outsider.post(f"/manage/sign-in/domains/{domain.pk}/verify/").status_code == 404
    assert outsider.post(f"/manage/sign-in/domains/{domain.pk}/remove/").status_code == 404
    member = login_client(alice.member, alice.tenant)
    assert member.post(f"/manage/sign-in/domains/{domain.pk}/remove/").status_code == 403
    domain.refresh_from_db()
    assert domain.last_checked_at is None
    # The admin removes it: it stops routing, audited; added again, it is a new claim with a new token
    admin = login_client(alice.admin, alice.tenant)
    removed = admin.post(f"/manage/sign-in/domains/{domain.pk}/remove/", {"from": "provider"})
    assert removed.status_code == 302 and removed["Location"] == f"/manage/sign-in/{domain.provider_id}/"
    assert not EmailDomain.objects.exists() and not _routes("pat@acme.test")
    assert AuditEvent.objects.get(action="sso.domain.remove").data["domain"] == "acme.test"
    configure(alice.tenant, alice.admin, "https://id.acme.test", verified=False)
    again = EmailDomain.objects.get()
    assert again.token != old_token and again.status == DomainStatus.PENDING
    dns.publish(CHALLENGE, f"quetzal-verify={old_token}")  # the old claim's record proves nothing now
    assert domains.check(domain=again, actor=alice.admin).status == DomainStatus.FAILED


def test_a_provider_signs_in_no_address_of_a_domain_its_tenant_did_not_verify(alice):
    provider = configure(alice.tenant, alice.admin, "https://id.acme.test", verified=False)
    claims = {"email": "pat@acme.test", "groups": ["qz-users"]}
    with pytest.raises(services.SignInRefused) as refused:
        services.admit(provider=provider, claims=claims, user=None)
    assert refused.value.code == "sso_wrong_domain"
    provider.domains.update(status=DomainStatus.VERIFIED)
    assert services.admit(provider=provider, claims=claims, user=None).email == "pat@acme.test"


def test_a_domain_too_long_for_its_challenge_name_gets_a_sentence_not_a_500(alice, dns):
    # 250 characters is a valid domain, but _quetzal-challenge. in front makes a name DNS cannot carry (255 max)
    long_domain = ".".join(["a" * 60] * 4) + ".test"
    assert len(long_domain) > 240
    domain = configure(alice.tenant, alice.admin, "https://id.acme.test", domains=(long_domain,), verified=False)
    answer = _verify(login_client(alice.admin, alice.tenant), domain.domains.get())
    assert answer.status_code == 200 and "The DNS lookup failed:" in answer.content.decode()
    assert domain.domains.get().status == DomainStatus.PENDING
    # And the page does not let an admin add such a domain at all
    form = {"name": "Long", "issuer_url": "https://id.long.test", "client_identifier": "c", "scopes": "openid"}
    form |= {"email_domains": long_domain, "groups_claim": "groups", "mfa_policy": "trust_provider", "kind": "oidc"}
    refused = login_client(alice.admin, alice.tenant).post(PAGE, form)
    assert refused.status_code == 400 and "Too long to verify in DNS" in refused.content.decode()


def test_the_domains_panel_and_the_dns_answers_speak_german(alice, dns):
    configure(alice.tenant, alice.admin, "https://id.acme.test", verified=False)
    admin = login_client(alice.admin, alice.tenant)
    german = {"HTTP_ACCEPT_LANGUAGE": "de-DE,de;q=0.9"}
    page = admin.get(PAGE, **german).content.decode()
    assert "E-Mail-Domains" in page and "Ausstehend" in page and "Veröffentlichen Sie diesen Eintrag" in page
    assert "Publish this record" not in page and "%(" not in page
    domain = EmailDomain.objects.get()
    answer = admin.post(f"/manage/sign-in/domains/{domain.pk}/verify/", follow=True, **german).content.decode()
    assert f"Den DNS-Namen {CHALLENGE} gibt es nicht (NXDOMAIN)." in answer and "Fehlgeschlagen" in answer
    # The problem is kept as a code, so whoever reads it later reads it in their language
    english = admin.get(PAGE, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert f"There is no DNS name {CHALLENGE} (NXDOMAIN)." in english and "Den DNS-Namen" not in english
    # And the audit log, read later by others, keeps it in the site's language (with its code), not the admin's
    failed = AuditEvent.objects.get(tenant=alice.tenant, action="sso.domain.check_failed")
    assert failed.data["code"] == "nxdomain"
    assert failed.data["problem"] == f"There is no DNS name {CHALLENGE} (NXDOMAIN)."
