"""A desktop for every new member: the tenant's policy page, and the desktop made when someone joins."""

from __future__ import annotations

import pytest

from desktops.choices import DesktopKind, DesktopState, OperationKind
from desktops.models import Desktop, NewMemberDesktop, Operation
from desktops.services import onboarding
from desktops.tests.factories import DesktopFactory, DesktopTemplateFactory
from tenants.models import AuditEvent, User
from tenants.services import invitations
from tenants.sso import services as sso
from tenants.sso.models import IdentityProvider
from tests.fixtures import login_client

pytestmark = pytest.mark.django_db


def _invite_and_accept(world, email: str):
    _, raw = invitations.invite(tenant=world.tenant, email=email, actor_membership=world.membership(world.owner))
    return invitations.accept_as_new_user(raw=raw, password="a long enough passphrase")


def test_it_gives_a_member_who_joins_by_invitation_a_stopped_desktop_of_the_template(alice, host, template, work):
    # Given alice's admin sets the policy on the manage page
    admin = login_client(alice.admin, alice.tenant)
    assert admin.get("/manage/new-members/").status_code == 200
    saved = admin.post("/manage/new-members/", {"template": template.pk, "enabled": "on"})
    assert saved.status_code == 302 and NewMemberDesktop.objects.get(tenant=alice.tenant).template == template
    assert AuditEvent.objects.filter(tenant=alice.tenant, action="tenant.policies").exists()
    # When someone accepts an invitation (the join commits, then the desktop is made in the background)
    with work():
        membership = _invite_and_accept(alice, "newcomer@alice.test")
    # Then they have one personal desktop of the template, made and left stopped for their first sign-in
    desktop = Desktop.objects.get(user=membership.user)
    assert desktop.tenant == alice.tenant and desktop.template == template and desktop.kind == DesktopKind.PERSONAL
    desktop.refresh_from_db()
    assert desktop.state == DesktopState.STOPPED
    # And a second announcement of the same join makes no second desktop
    assert onboarding.provision(membership_id=membership.pk) is None
    assert Desktop.objects.filter(user=membership.user).count() == 1


def test_it_gives_a_person_a_first_single_sign_on_creates_a_desktop(alice, template, work):
    onboarding.set_policy(tenant=alice.tenant, actor=alice.owner, template=template, enabled=True)
    provider = IdentityProvider.objects.create(
        tenant=alice.tenant, name="Acme", issuer_url="https://id.x", client_identifier="c"
    )
    person = User.objects.create_user(email="jit@acme.test")
    admission = sso.Admission(provider=provider, email=person.email, role="member", groups=(), mfa=False)
    with work():
        sso.apply(admission=admission, user=person)
    assert Desktop.objects.filter(user=person, tenant=alice.tenant, template=template).count() == 1
    # Signing in again is no new join: no second desktop
    with work():
        sso.apply(admission=admission, user=person)
    assert Desktop.objects.filter(user=person).count() == 1


def test_it_makes_nothing_without_the_policy_or_when_it_is_off(alice, template, work):
    with work():
        first = _invite_and_accept(alice, "one@alice.test")
    onboarding.set_policy(tenant=alice.tenant, actor=alice.owner, template=template, enabled=False)
    with work():
        second = _invite_and_accept(alice, "two@alice.test")
    assert not Desktop.objects.filter(user__in=[first.user, second.user]).exists()
    # Choosing no template turns the policy off altogether
    login_client(alice.admin, alice.tenant).post("/manage/new-members/", {"template": ""})
    assert not NewMemberDesktop.objects.exists()


def test_it_lets_the_member_in_and_tells_the_admins_when_the_desktop_is_refused(alice, template, work):
    onboarding.set_policy(tenant=alice.tenant, actor=alice.owner, template=template, enabled=True)
    alice.tenant.quota_desktops = 1
    alice.tenant.save()
    with work():
        _invite_and_accept(alice, "first@alice.test")
        refused = _invite_and_accept(alice, "second@alice.test")
    # The second joined all the same, without a desktop; the admins read why on the policy page
    assert refused.tenant == alice.tenant and not Desktop.objects.filter(user=refused.user).exists()
    policy = NewMemberDesktop.objects.get()
    assert policy.last_error.startswith("second@alice.test: ")
    page = login_client(alice.admin, alice.tenant).get("/manage/new-members/").content.decode()
    assert 'data-testid="new-member-error"' in page and "second@alice.test" in page


def test_it_offers_only_templates_the_tenant_may_launch(alice, bob, template):
    theirs = DesktopTemplateFactory(name="bob private", visibility="tenant", tenant=bob.tenant)
    admin = login_client(alice.admin, alice.tenant)
    page = admin.get("/manage/new-members/").content.decode()
    assert template.name in page and "bob private" not in page
    refused = admin.post("/manage/new-members/", {"template": theirs.pk, "enabled": "on"})
    assert refused.status_code == 400 and not NewMemberDesktop.objects.exists()
    assert login_client(alice.member, alice.tenant).get("/manage/new-members/").status_code == 403


def test_it_deletes_or_keeps_a_removed_members_desktops_as_the_admin_chooses(alice, template, work):
    admin = login_client(alice.admin, alice.tenant)
    gone, kept = _invite_and_accept(alice, "gone@alice.test"), _invite_and_accept(alice, "kept@alice.test")
    desktops = {m.user.email: DesktopFactory(world=alice, user=m.user, template=template) for m in (gone, kept)}
    # When the admin removes one with "and their desktops" ticked, the other without
    with work():
        admin.post("/manage/members/", {"action": "remove", "membership": gone.pk, "delete_desktops": "on"})
        admin.post("/manage/members/", {"action": "remove", "membership": kept.pk})
    # Then the first one's desktop is being deleted (a delete operation by the admin), the other's is kept
    deleting = Operation.objects.filter(desktop=desktops["gone@alice.test"], kind=OperationKind.DELETE)
    assert deleting.count() == 1 and deleting.get().actor == alice.admin
    assert not Operation.objects.filter(desktop=desktops["kept@alice.test"], kind=OperationKind.DELETE).exists()
    assert not alice.tenant.memberships.filter(user__email__in=["gone@alice.test", "kept@alice.test"]).exists()
