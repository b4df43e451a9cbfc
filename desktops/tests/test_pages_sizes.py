"""Tenant admins set a private template's sizes on the manage pages: named sizes, ranges, who may choose."""

from __future__ import annotations

import re

import pytest

from desktops.models import DesktopTemplate, TemplateSize
from desktops.services import templates
from desktops.tests.factories import DesktopFactory, DesktopTemplateFactory
from quetzal.errors import Conflict, LimitExceeded, NotFound, ServiceError
from tenants.choices import ResizePolicy
from tenants.models import AuditEvent, Tenant
from tests.fixtures import login_client


@pytest.fixture
def own(alice, image) -> DesktopTemplate:
    """Alice's private 2 vCPU / 2 GiB / 20 GiB template."""
    return DesktopTemplateFactory(
        name="Studio", image=image, vcpus=2, memory_mib=2048, disk_gib=20, visibility="tenant", tenant=alice.tenant
    )


@pytest.fixture
def admin(alice):
    return login_client(alice.admin, alice.tenant)


def sizes_url(template: DesktopTemplate) -> str:
    return f"/manage/templates/{template.pk}/sizes/"


def size_body(**overrides) -> dict:
    return {"op": "add", "name": "Large", "vcpus": 4, "memory_mib": 8192, "disk_gib": 40, **overrides}


def errors(response) -> list[str]:
    """The field and form errors the page shows, as text."""
    found = re.findall(r'<small class="field-error" role="alert">(.*?)</small>', response.content.decode())
    found += re.findall(r'<ul class="errorlist nonfield"><li>(.*?)</li>', response.content.decode())
    return [re.sub(r"&#x27;", "'", text) for text in found]


# --- named sizes --------------------------------------------------------------------------------


def test_it_adds_changes_and_removes_a_named_size_with_an_audit_trail(admin, alice, own):
    # Given the sizes page of alice's own template
    page = admin.get(sizes_url(own)).content.decode()
    assert "2 vCPU / 2 GiB RAM / 20 GiB" in page and "None yet" in page
    # When her admin adds Large
    response = admin.post(sizes_url(own), size_body())
    assert response.status_code == 302 and response["Location"] == sizes_url(own)
    large = TemplateSize.objects.get(template=own)
    assert (large.name, large.vcpus, large.memory_mib, large.disk_gib) == ("Large", 4, 8192, 40)
    # Then the page lists it, and the audit log says who added what
    page = admin.get(sizes_url(own)).content.decode()
    assert f'data-size="{large.pk}"' in page and "8 GiB" in page
    created = AuditEvent.objects.get(action="template.size.create")
    assert (created.actor, created.tenant, created.data["after"]["vcpus"]) == (alice.admin, alice.tenant, 4)
    # When she changes it on its own page
    assert admin.get(f"/manage/sizes/{large.pk}/").status_code == 200
    edited = admin.post(
        f"/manage/sizes/{large.pk}/", {"name": "Larger", "vcpus": 6, "memory_mib": 12288, "disk_gib": 60}
    )
    assert edited.status_code == 302
    large.refresh_from_db()
    assert (large.name, large.vcpus, large.memory_mib, large.disk_gib) == ("Larger", 6, 12288, 60)
    updated = AuditEvent.objects.get(action="template.size.update")
    assert updated.data["before"]["vcpus"] == 4 and updated.data["after"]["vcpus"] == 6
    # And removes it
    assert admin.post(f"/manage/sizes/{large.pk}/delete/").status_code == 302
    assert not TemplateSize.objects.filter(pk=large.pk).exists()
    assert AuditEvent.objects.get(action="template.size.delete").data["before"]["name"] == "Larger"


@pytest.mark.parametrize(
    ("overrides", "shown"),
    [
        ({"vcpus": 0}, "Ensure this value is greater than or equal to 1."),
        ({"vcpus": 129}, "Ensure this value is less than or equal to 128."),
        ({"vcpus": "four"}, "Enter a whole number."),
        ({"vcpus": "9" * 30}, "Ensure this value is less than or equal to 128."),
        ({"memory_mib": 32}, "Ensure this value is greater than or equal to 64."),
        ({"memory_mib": 2 * 1024 * 1024}, "Ensure this value is less than or equal to 1048576."),
        ({"disk_gib": 10}, "Must be at least the template's 20 GiB."),
        ({"disk_gib": 17 * 1024}, "Ensure this value is less than or equal to 16384."),
        ({"name": ""}, "This field is required."),
        ({"name": "x" * 51}, "Ensure this value has at most 50 characters (it has 51)."),
        ({"name": "Large\nSmall"}, "Must be one line without NUL or other control characters."),
    ],
)
def test_it_shows_a_bad_size_in_the_form_and_saves_nothing(admin, own, overrides, shown):
    response = admin.post(sizes_url(own), size_body(**overrides))
    assert response.status_code == 400
    assert shown in errors(response)
    assert not TemplateSize.objects.exists() and not AuditEvent.objects.filter(action__startswith="template.").exists()


def test_it_refuses_a_second_size_of_the_same_name_whatever_its_case(admin, own):
    assert admin.post(sizes_url(own), size_body()).status_code == 302
    again = admin.post(sizes_url(own), size_body(name="large", vcpus=6))
    assert again.status_code == 409
    assert errors(again) == ["Studio already has a size named 'large'."]
    assert TemplateSize.objects.count() == 1


def test_it_refuses_a_size_larger_than_the_tenants_quota_in_the_form(admin, alice, own):
    Tenant.objects.filter(pk=alice.tenant.pk).update(quota_vcpus=4)
    response = admin.post(sizes_url(own), size_body(vcpus=8))
    assert response.status_code == 409
    assert errors(response) == ["8 vCPUs is more than your organisation's running quota of 4."]
    assert not TemplateSize.objects.exists()


def test_it_keeps_a_refused_edit_off_the_size(admin, own):
    size = TemplateSize.objects.create(template=own, name="Large", vcpus=4, memory_mib=8192, disk_gib=40)
    TemplateSize.objects.create(template=own, name="Huge", vcpus=8, memory_mib=16384, disk_gib=80)
    response = admin.post(f"/manage/sizes/{size.pk}/", {"name": "HUGE", "vcpus": 4, "memory_mib": 8192, "disk_gib": 40})
    assert response.status_code == 409
    # The page's title names the size as stored, and the form says why
    assert "<h1>Size Large of Studio</h1>" in response.content.decode()
    assert errors(response) == ["Studio already has a size named 'HUGE'."]
    size.refresh_from_db()
    assert size.name == "Large"


def test_it_drops_the_operators_price_when_an_admin_changes_a_sizes_shape(alice, own):
    # Given a named size the operators priced
    size = TemplateSize.objects.create(
        template=own, name="Large", vcpus=4, memory_mib=8192, disk_gib=40, extra_per_hour="0.5"
    )
    # When a tenant admin renames it, the price stays (same shape)
    templates.save_size(tenant=alice.tenant, actor=alice.admin, template=own, size=size, values={"name": "Big"})
    size.refresh_from_db()
    assert str(size.extra_per_hour) == "0.5000"
    # When they give it more vCPUs, the template's per-unit rates price it instead
    templates.save_size(tenant=alice.tenant, actor=alice.admin, template=own, size=size, values={"vcpus": 16})
    size.refresh_from_db()
    assert (size.vcpus, size.extra_per_hour) == (16, None)


def test_it_caps_the_named_sizes_of_a_template(alice, own):
    for n in range(templates.MAX_SIZES_PER_TEMPLATE):
        TemplateSize.objects.create(template=own, name=f"S{n}", vcpus=2, memory_mib=2048, disk_gib=20 + n)
    with pytest.raises(LimitExceeded) as refused:
        templates.save_size(
            tenant=alice.tenant,
            actor=alice.admin,
            template=own,
            values={"name": "One more", "vcpus": 2, "memory_mib": 2048, "disk_gib": 20},
        )
    assert refused.value.code == "too_many_sizes"
    page = login_client(alice.admin, alice.tenant).get(sizes_url(own)).content.decode()
    assert "the most a template may offer" in page and 'data-testid="size-form"' not in page


def test_it_checks_sizes_in_the_service_too(alice, own):
    values = {"name": "Tiny disk", "vcpus": 2, "memory_mib": 2048, "disk_gib": 5}
    with pytest.raises(ServiceError) as refused:
        templates.save_size(tenant=alice.tenant, actor=alice.admin, template=own, values=values)
    assert refused.value.code == "disk_below_default"
    with pytest.raises(ServiceError) as refused:
        templates.save_size(tenant=alice.tenant, actor=alice.admin, template=own, values={**values, "disk_gib": 0})
    assert refused.value.code == "invalid_size"
    with pytest.raises(ServiceError) as refused:
        templates.save_size(
            tenant=alice.tenant, actor=alice.admin, template=own, values={**values, "extra_per_hour": 0}
        )
    assert refused.value.code == "invalid_field"
    TemplateSize.objects.create(template=own, name="Big", vcpus=4, memory_mib=4096, disk_gib=20)
    with pytest.raises(Conflict):
        templates.save_size(
            tenant=alice.tenant, actor=alice.admin, template=own, values={**values, "name": " big ", "disk_gib": 30}
        )
    assert not AuditEvent.objects.exists()


# --- another tenant's, and public templates ------------------------------------------------------


def test_it_never_touches_a_public_template_or_another_tenants_sizes(alice, bob, image, own):
    public = DesktopTemplateFactory(name="Public", image=image)
    public_size = TemplateSize.objects.create(template=public, name="Large", vcpus=4, memory_mib=4096, disk_gib=20)
    bobs = DesktopTemplateFactory(name="Bob's", image=image, visibility="tenant", tenant=bob.tenant)
    bobs_size = TemplateSize.objects.create(template=bobs, name="Large", vcpus=4, memory_mib=4096, disk_gib=20)
    admin = login_client(alice.admin, alice.tenant)
    for template in (public, bobs):
        assert admin.get(sizes_url(template)).status_code == 404
        assert admin.post(sizes_url(template), size_body(name="Mine")).status_code == 404
        assert admin.post(sizes_url(template), {"op": "ranges", "max_vcpus": 64}).status_code == 404
    for size in (public_size, bobs_size):
        assert admin.get(f"/manage/sizes/{size.pk}/").status_code == 404
        assert admin.post(f"/manage/sizes/{size.pk}/", size_body(name="Mine")).status_code == 404
        assert admin.post(f"/manage/sizes/{size.pk}/delete/").status_code == 404
        with pytest.raises(NotFound):
            templates.delete_size(tenant=alice.tenant, actor=alice.admin, size=size)
        with pytest.raises(NotFound):
            templates.save_size(
                tenant=alice.tenant, actor=alice.admin, template=size.template, size=size, values={"name": "x"}
            )
    # A size of alice's template cannot be moved under bob's template either
    mine = TemplateSize.objects.create(template=own, name="Mine", vcpus=4, memory_mib=4096, disk_gib=20)
    with pytest.raises(NotFound):
        templates.save_size(tenant=alice.tenant, actor=alice.admin, template=bobs, size=mine, values={"name": "y"})
    assert TemplateSize.objects.filter(name="Large").count() == 2 and not AuditEvent.objects.exists()
    assert set(TemplateSize.objects.for_tenant(alice.tenant)) == {mine}
    assert list(TemplateSize.objects.for_tenant(None)) == []


def test_it_keeps_members_out_of_the_sizes_pages(alice, own):
    size = TemplateSize.objects.create(template=own, name="Large", vcpus=4, memory_mib=4096, disk_gib=20)
    member = login_client(alice.member, alice.tenant)
    assert member.get(sizes_url(own)).status_code == 403
    assert member.post(sizes_url(own), size_body(name="Mine")).status_code == 403
    assert member.post(f"/manage/sizes/{size.pk}/delete/").status_code == 403
    assert TemplateSize.objects.count() == 1


# --- ranges and who may choose -------------------------------------------------------------------


def test_it_sets_the_ranges_people_pick_custom_sizes_from(admin, own):
    body = {"op": "ranges", "min_vcpus": 1, "max_vcpus": 8, "min_memory_mib": 1024, "max_memory_mib": 16384}
    response = admin.post(sizes_url(own), {**body, "max_disk_gib": 200})
    assert response.status_code == 302
    own.refresh_from_db()
    assert (own.min_vcpus, own.max_vcpus, own.min_memory_mib, own.max_memory_mib, own.max_disk_gib) == (
        1,
        8,
        1024,
        16384,
        200,
    )
    page = admin.get(sizes_url(own)).content.decode()
    assert "1\N{EN DASH}8 vCPU, 1 GiB\N{EN DASH}16 GiB RAM, 20\N{EN DASH}200 GiB disk" in page
    event = AuditEvent.objects.get(action="template.update")
    assert event.data["after"]["max_disk_gib"] == 200
    # Emptied again, the template offers its default only
    assert admin.post(sizes_url(own), {"op": "ranges"}).status_code == 302
    own.refresh_from_db()
    assert (own.min_vcpus, own.max_vcpus, own.max_disk_gib) == (None, None, None)
    assert "no custom sizes" in admin.get(sizes_url(own)).content.decode()


@pytest.mark.parametrize(
    ("body", "shown"),
    [
        ({"min_vcpus": 4, "max_vcpus": 2}, "Must not be more than the most."),
        ({"min_vcpus": 4}, "Must not be more than the default size's 2 vCPU."),
        ({"max_vcpus": 1}, "Must not be less than the default size's 2 vCPU."),
        ({"max_memory_mib": 1024}, "Must not be less than the default size's 2048 MiB."),
        ({"max_disk_gib": 10}, "Must not be less than the default disk, 20 GiB."),
        ({"max_vcpus": 500}, "Ensure this value is less than or equal to 128."),
        ({"max_memory_mib": "lots"}, "Enter a whole number."),
        ({"min_memory_mib": 8}, "Ensure this value is greater than or equal to 64."),
    ],
)
def test_it_shows_bad_ranges_in_the_form_and_keeps_the_old_ones(admin, own, body, shown):
    DesktopTemplate.objects.filter(pk=own.pk).update(max_vcpus=4)
    response = admin.post(sizes_url(own), {"op": "ranges", **body})
    assert response.status_code == 400
    assert shown in errors(response)
    own.refresh_from_db()
    assert (own.min_vcpus, own.max_vcpus, own.max_memory_mib, own.max_disk_gib) == (None, 4, None, None)
    # The page around the form still shows the ranges as they are
    assert "2\N{EN DASH}4 vCPU" in response.content.decode()


def test_it_checks_ranges_in_the_service_too(alice, own):
    for values, code in (
        ({"min_vcpus": 4, "max_vcpus": 2}, "range_invalid"),
        ({"min_memory_mib": 4096}, "range_excludes_default"),
        ({"max_disk_gib": 19}, "range_excludes_default"),
    ):
        with pytest.raises(ServiceError) as refused:
            templates.save_private_template(tenant=alice.tenant, actor=alice.admin, values=values, template=own)
        assert refused.value.code == code, values
    # A default moved outside the ranges from the template's page is refused in words, too
    DesktopTemplate.objects.filter(pk=own.pk).update(max_vcpus=4)
    with pytest.raises(ServiceError) as refused:
        templates.save_private_template(tenant=alice.tenant, actor=alice.admin, values={"vcpus": 8}, template=own)
    assert (
        str(refused.value) == "The default size's vCPUs (8 vCPU) must lie within the range people may pick (at most 4)."
    )


def test_it_keeps_the_ranges_when_the_template_page_is_saved(admin, own, host):
    # Given ranges set on the sizes page
    DesktopTemplate.objects.filter(pk=own.pk).update(min_vcpus=1, max_vcpus=8, max_disk_gib=100)
    # When the template's own page is saved (it has no range fields)
    form = admin.get(f"/manage/templates/{own.pk}/").content.decode()
    assert 'name="max_vcpus"' not in form and f'href="/manage/templates/{own.pk}/sizes/"' in form
    body = {
        "name": "Studio 2",
        "os_family": "linux",
        "image": own.image_id,
        "vcpus": 2,
        "memory_mib": 2048,
        "disk_gib": 20,
        "gpu_kind": "none",
        "cloud_init_user": "quetzal",
    }
    assert admin.post(f"/manage/templates/{own.pk}/", body).status_code == 302
    # Then the ranges are as they were
    own.refresh_from_db()
    assert (own.name, own.min_vcpus, own.max_vcpus, own.max_disk_gib) == ("Studio 2", 1, 8, 100)


def test_it_sets_who_may_choose_sizes_for_the_whole_tenant(admin, alice, own):
    page = admin.get(sizes_url(own)).content.decode()
    assert re.search(r'<input type="radio" name="resize_policy" value="members"[^>]* checked>', page)
    assert admin.post(sizes_url(own), {"op": "policy", "resize_policy": "admins"}).status_code == 302
    assert Tenant.objects.get(pk=alice.tenant.pk).resize_policy == ResizePolicy.ADMINS
    event = AuditEvent.objects.get(action="tenant.policies")
    assert event.data["after"] == {"resize_policy": "admins"}
    refused = admin.post(sizes_url(own), {"op": "policy", "resize_policy": "everyone"})
    assert refused.status_code == 400
    assert "Select a valid choice. everyone is not one of the available choices." in errors(refused)
    assert Tenant.objects.get(pk=alice.tenant.pk).resize_policy == ResizePolicy.ADMINS


def test_it_links_the_sizes_page_from_the_templates_list(admin, own):
    TemplateSize.objects.create(template=own, name="Large", vcpus=4, memory_mib=4096, disk_gib=20)
    page = admin.get("/manage/templates/").content.decode()
    assert f'href="/manage/templates/{own.pk}/sizes/"' in page and "+ 1 named size" in page


# --- the person's side: the launcher's picker and the desktop page's resize form ----------------


@pytest.fixture
def studio(image) -> DesktopTemplate:
    """A public 2 vCPU / 2 GiB / 20 GiB template with ranges and two named sizes."""
    template = DesktopTemplateFactory(
        name="Studio", image=image, vcpus=2, memory_mib=2048, disk_gib=20, max_vcpus=8, max_memory_mib=8192
    )
    template.max_disk_gib = 100
    template.save()
    TemplateSize.objects.create(template=template, name="Small", vcpus=1, memory_mib=1024, disk_gib=20)
    TemplateSize.objects.create(template=template, name="Large", vcpus=4, memory_mib=8192, disk_gib=40)
    return template


def pills(page: str, name: str) -> list[str]:
    """The size choices of one picker (radio name), in order, with the checked one starred."""
    found = re.findall(rf'<input type="radio" name="{name}" value="[^"]*"([^>]*)>([^<]+)</label>', page)
    return [f"{label}*" if " checked" in attrs else label for attrs, label in found]


def test_it_offers_the_named_sizes_and_a_custom_size_on_the_launcher(alice, studio):
    page = login_client(alice.member, alice.tenant).get("/").content.decode()
    assert pills(page, f"size-launch-{studio.pk}") == ["Default*", "Small", "Large", "Custom"]
    # RAM is asked in GiB, within the template's ranges
    assert 'data-size-field="memory_mib" data-unit="gib" name="memory_gib" min="2" max="8"' in page
    assert "Within 2\N{EN DASH}8 vCPUs, 2 GiB\N{EN DASH}8 GiB RAM, 20\N{EN DASH}100 GiB disk." in page


def test_it_lets_only_admins_pick_sizes_when_the_policy_says_so(alice, studio):
    Tenant.objects.filter(pk=alice.tenant.pk).update(resize_policy=ResizePolicy.ADMINS)
    member_page = login_client(alice.member, alice.tenant).get("/").content.decode()
    assert f'data-testid="size-picker-{studio.pk}"' not in member_page
    admin_page = login_client(alice.admin, alice.tenant).get("/").content.decode()
    assert f'data-testid="size-picker-{studio.pk}"' in admin_page
    # And the member's desktop page says whom to ask instead of offering the form
    desktop = DesktopFactory(world=alice, template=studio, state="stopped")
    detail = login_client(alice.member, alice.tenant).get(f"/desktops/{desktop.pk}/").content.decode()
    assert 'data-testid="resize-admins-only"' in detail and 'data-testid="resize-form"' not in detail


def test_it_offers_a_stopped_desktop_every_size_that_keeps_its_disk(alice, studio):
    # Given a stopped desktop at Large (40 GiB disk)
    desktop = DesktopFactory(
        world=alice, template=studio, state="stopped", vcpus=4, memory_mib=8192, disk_gib=40, size_name="Large"
    )
    page = login_client(alice.member, alice.tenant).get(f"/desktops/{desktop.pk}/").content.decode()
    # Then the form starts at Large, leaves out sizes with a smaller disk, and says what happens to the disk
    assert pills(page, f"size-resize-{desktop.pk}") == ["Large*", "Custom"]
    assert 'data-size-field="disk_gib" name="disk_gib" min="40" max="100"' in page
    assert "A disk grown while the desktop runs is usable after its next restart." in page
    assert "vCPUs and RAM change while it is stopped" in page


def test_it_offers_a_running_desktop_only_a_bigger_disk(alice, studio):
    desktop = DesktopFactory(world=alice, template=studio, vcpus=3, memory_mib=3072, disk_gib=30)
    page = login_client(alice.member, alice.tenant).get(f"/desktops/{desktop.pk}/").content.decode()
    # A custom size: "Custom" is chosen, with its numbers; vCPUs and RAM wait until it is stopped
    assert pills(page, f"size-resize-{desktop.pk}") == ["Large", "Custom*"]
    assert re.search(r'data-size-field="vcpus"[^>]* value="3" disabled>', page)
    assert re.search(r'data-size-field="memory_mib"[^>]* value="3" disabled>', page)
    assert re.search(r'data-size-field="disk_gib"[^>]* value="30">', page)
    assert "It is running: only the disk can grow now." in page
