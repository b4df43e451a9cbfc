"""A person the tenant's directory creates over SCIM gets the new member's desktop, like any other join."""

from __future__ import annotations

import pytest

from desktops.choices import DesktopKind
from desktops.models import Desktop
from desktops.services import onboarding
from tenants.scim import provisioning, services

pytestmark = pytest.mark.django_db
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def test_it_gives_a_person_the_directory_creates_a_desktop_once(alice, template, work):
    # Given alice's policy of a desktop for every new member
    onboarding.set_policy(tenant=alice.tenant, actor=alice.owner, template=template, enabled=True)
    directory = services.directory_of(alice.tenant)
    # When her directory creates a person
    with work():
        person = provisioning.create_user(directory=directory, payload={"userName": "new@alice.test"})
    # Then they have one personal desktop of the template
    made = Desktop.objects.filter(user=person.user, tenant=alice.tenant, template=template)
    assert made.count() == 1 and made.get().kind == DesktopKind.PERSONAL
    # And a deactivation and reactivation keep that one desktop (no second)
    for value in ("False", "True"):
        body = {"schemas": [PATCH], "Operations": [{"op": "Replace", "path": "active", "value": value}]}
        with work():
            provisioning.patch_user(directory=directory, scim_id=str(person.scim_id), payload=body)
    assert Desktop.objects.filter(user=person.user).count() == 1
