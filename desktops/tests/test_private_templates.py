"""Templates private to a tenant: created and changed by its admins, audited, never another's."""

from __future__ import annotations

import pytest

from desktops.choices import Visibility
from desktops.models import DesktopTemplate
from desktops.services import templates
from desktops.tests.factories import DesktopTemplateFactory
from hosts.choices import CopyState
from hosts.models import ImageCopy
from quetzal.errors import LimitExceeded, NotFound, ServiceError
from tenants.models import AuditEvent
from tests.fixtures import login_client


@pytest.fixture
def ready_image(image, host):
    ImageCopy.objects.filter(image=image).update(state=CopyState.READY)
    return image


def form(image, **overrides) -> dict:
    values = {
        "name": "Data science",
        "description": "JupyterLab",
        "os_family": "linux",
        "image": image.pk,
        "vcpus": 4,
        "memory_mib": 8192,
        "disk_gib": 60,
        "gpu_kind": "none",
        "gpu_mdev_type": "",
        "cloud_init_user": "quetzal",
        "cloud_init_password": "s3cret-pass",
        "cloud_init_ssh_key": "",
        "cloud_init_packages": "python3-pip",
        "enabled": "on",
    }
    values.update(overrides)
    return values


def test_it_creates_a_template_private_to_the_tenant_and_audits_it_without_the_password(alice, ready_image):
    client = login_client(alice.admin, alice.tenant)
    response = client.post("/manage/templates/new/", form(ready_image))
    assert response.status_code == 302
    created = DesktopTemplate.objects.get(name="Data science")
    assert (created.visibility, created.tenant_id, created.vcpus) == (Visibility.TENANT, alice.tenant.pk, 4)
    event = AuditEvent.objects.get(action="template.create")
    assert "cloud_init_password" in event.data["changed"]
    assert "cloud_init_password" not in event.data["after"] and event.data["after"]["vcpus"] == 4


def test_it_changes_a_private_template_and_keeps_the_password_when_left_empty(alice, ready_image):
    client = login_client(alice.admin, alice.tenant)
    client.post("/manage/templates/new/", form(ready_image))
    created = DesktopTemplate.objects.get(name="Data science")
    response = client.post(f"/manage/templates/{created.pk}/", form(ready_image, vcpus=2, cloud_init_password=""))
    assert response.status_code == 302
    created.refresh_from_db()
    assert (created.vcpus, created.cloud_init_password) == (2, "s3cret-pass")
    assert AuditEvent.objects.get(action="template.update").data["changed"] == ["vcpus"]


def test_it_refuses_a_template_bigger_than_the_tenants_quota(alice, ready_image):
    alice.tenant.quota_vcpus = 2
    alice.tenant.save()
    response = login_client(alice.admin, alice.tenant).post("/manage/templates/new/", form(ready_image))
    assert response.status_code == 409 and b"quota of 2" in response.content
    assert not DesktopTemplate.objects.filter(name="Data science").exists()


def test_it_never_lets_a_tenant_change_a_public_template_or_anothers(alice, bob, image):
    public = DesktopTemplateFactory(name="Public", image=image)
    bobs = DesktopTemplateFactory(name="Bob's", image=image, visibility="tenant", tenant=bob.tenant)
    client = login_client(alice.admin, alice.tenant)
    for template in (public, bobs):
        assert client.get(f"/manage/templates/{template.pk}/").status_code == 404
        assert client.post(f"/manage/templates/{template.pk}/", form(image)).status_code == 404
        with pytest.raises(NotFound):
            templates.save_private_template(tenant=alice.tenant, actor=alice.admin, values={}, template=template)


def test_it_refuses_fields_tenants_may_not_set(alice, image):
    with pytest.raises(ServiceError) as refused:
        templates.save_private_template(tenant=alice.tenant, actor=alice.admin, values={"price_per_hour": 0})
    assert refused.value.code == "invalid_field"


def test_it_turns_model_validation_errors_into_refusals(alice, image):
    with pytest.raises(ServiceError) as refused:
        templates.save_private_template(
            tenant=alice.tenant,
            actor=alice.admin,
            values={"name": "vGPU", "image": image, "gpu_kind": "mdev", "gpu_mdev_type": ""},
        )
    assert refused.value.code == "invalid_template"


def test_it_checks_quotas_in_the_service_too(alice, image):
    alice.tenant.quota_ram_mib = 1024
    with pytest.raises(LimitExceeded):
        templates.save_private_template(
            tenant=alice.tenant, actor=alice.admin, values={"name": "Big", "image": image, "memory_mib": 2048}
        )


def test_it_lists_private_templates_disabled_ones_included(alice, bob, image):
    DesktopTemplateFactory(name="Old one", image=image, visibility="tenant", tenant=alice.tenant, enabled=False)
    DesktopTemplateFactory(name="Bob's own", image=image, visibility="tenant", tenant=bob.tenant)
    page = login_client(alice.admin, alice.tenant).get("/manage/templates/").content.decode()
    assert "Old one" in page and "Bob&#x27;s own" not in page and "Bob's own" not in page


def test_it_tells_launchable_templates_from_owned_ones(alice, bob, image):
    # given a public template, two of alice's (one disabled), bob's own and a disabled public one
    public = DesktopTemplate.objects.create(name="Public", image=image)
    DesktopTemplate.objects.create(name="Retired", image=image, enabled=False)
    own = DesktopTemplate.objects.create(name="Own", image=image, visibility="tenant", tenant=alice.tenant)
    old = DesktopTemplate.objects.create(
        name="Old", image=image, visibility="tenant", tenant=alice.tenant, enabled=False
    )
    DesktopTemplate.objects.create(name="Bob's", image=image, visibility="tenant", tenant=bob.tenant)
    # then alice's people may launch the enabled public one and her enabled own one
    assert set(DesktopTemplate.objects.launchable_by(alice.tenant)) == {public, own}
    # and alice owns her two, enabled or not, as for_tenant means on every model
    assert set(DesktopTemplate.objects.for_tenant(alice.tenant)) == {own, old}
    # and without a tenant there is nothing to launch or own
    assert not DesktopTemplate.objects.launchable_by(None).exists()
    assert not DesktopTemplate.objects.for_tenant(None).exists()
