"""Custom sizes: launches within a template's bounds, tenant quotas and host room; resizes as operations.

Everything runs through the API and the worker against libvirt's test driver (its domains keep their
vCPUs and memory, so the definition a resize writes can be read back). Growing a disk needs a real
libvirtd (the test driver has no block or volume resize): desktops/tests/test_sizes_qemu.py does that.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from lxml import etree

from desktops.choices import DesktopKind, DesktopState, OperationKind, OperationStatus
from desktops.models import Desktop, DesktopTemplate, Operation, TemplateSize
from desktops.services import sizes
from desktops.services.resize import request_resize
from desktops.state import ACTIONS, can_request
from desktops.tests.conftest import make_test_host, place_image
from desktops.tests.factories import DesktopFactory, PoolFactory
from hosts.hypervisor import get_hypervisor
from hosts.models import Allocation, Host
from quetzal.errors import ServiceError
from tenants.choices import ResizePolicy
from tenants.models import AuditEvent
from tests.fixtures import api_client


@pytest.fixture
def sized(template: DesktopTemplate) -> DesktopTemplate:
    """The 2 vCPU / 2 GiB / 20 GiB template, open to 1-8 vCPUs, 1-16 GiB, up to 100 GiB, with two named sizes."""
    template.min_vcpus, template.max_vcpus = 1, 8
    template.min_memory_mib, template.max_memory_mib = 1024, 16384
    template.max_disk_gib = 100
    template.price_per_vcpu_hour = Decimal("0.02")
    template.price_per_gib_ram_hour = Decimal("0.01")
    template.price_per_disk_gib_hour = Decimal("0.001")
    template.save()
    TemplateSize.objects.create(template=template, name="Large", vcpus=4, memory_mib=8192, disk_gib=40)
    TemplateSize.objects.create(
        template=template, name="Huge", vcpus=8, memory_mib=16384, disk_gib=100, extra_per_hour=Decimal("1.5")
    )
    return template


def _start(world, body: dict, work=None):
    client = api_client(world.member, world.tenant)
    if work is None:
        return client.post("/api/desktop/start", body, format="json")
    with work():
        return client.post("/api/desktop/start", body, format="json")


def _domain_size(host: Host, desktop: Desktop) -> tuple[int, int]:
    """vCPUs and memory (MiB) of the desktop's domain as libvirt holds it."""
    conn = get_hypervisor(host.uri).connection.get()
    root = etree.fromstring(conn.lookupByName(desktop.domain_name).XMLDesc(0).encode())
    return int(root.findtext("vcpu")), int(root.findtext("memory")) // 1024


# --- launching at a size -----------------------------------------------------------------------------


def test_it_launches_a_named_size_and_places_it_by_that_size(alice, host, sized, work):
    # Given a template offering "Large"; When a member launches it at that size
    response = _start(alice, {"template": sized.pk, "size": "Large"}, work)
    # Then the desktop, its allocation on the host and its VM all have Large's size
    assert response.status_code == 202, response.content
    desktop = Desktop.objects.get(pk=response.json()["desktop"]["id"])
    assert (desktop.vcpus, desktop.memory_mib, desktop.disk_gib, desktop.size_name) == (4, 8192, 40, "Large")
    assert desktop.state == DesktopState.RUNNING
    allocation = Allocation.objects.get(desktop_id=desktop.pk)
    assert (allocation.vcpus, allocation.memory_mib) == (4, 8192)
    assert Host.objects.get(pk=host.pk).allocated_vcpus == 4
    assert _domain_size(host, desktop) == (4, 8192)
    # And the answer shows the size's price: 0.10 + 2 x 0.02 + 6 GiB x 0.01 + 20 GiB x 0.001
    assert Decimal(response.json()["desktop"]["price_per_hour"]) == Decimal("0.2200")


def test_it_launches_a_custom_size_through_the_v1_api(alice, host, sized, work):
    client = api_client(alice.member, alice.tenant)
    with work():
        response = client.post(
            "/api/v1/desktops/", {"template": sized.pk, "vcpus": 3, "memory_mib": 3072, "disk_gib": 30}, format="json"
        )
    assert response.status_code == 202, response.content
    desktop = Desktop.objects.get(pk=response.json()["desktop"]["id"])
    assert (desktop.vcpus, desktop.memory_mib, desktop.disk_gib, desktop.size_name) == (3, 3072, 30, "")
    assert _domain_size(host, desktop) == (3, 3072)


def test_it_keeps_the_template_default_without_a_size(alice, host, sized, work):
    response = _start(alice, {"template": sized.pk}, work)
    desktop = Desktop.objects.get(pk=response.json()["desktop"]["id"])
    assert (desktop.vcpus, desktop.memory_mib, desktop.disk_gib) == (2, 2048, 20)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"vcpus": 9}, "vcpus_out_of_bounds"),
        ({"memory_mib": 512}, "memory_out_of_bounds"),
        ({"memory_mib": 32768}, "memory_out_of_bounds"),
        ({"disk_gib": 101}, "disk_out_of_bounds"),
        ({"disk_gib": 10}, "disk_out_of_bounds"),  # below the template's disk: the image is cloned at 20 GiB
        ({"size": "Gigantic"}, "size_unknown"),
        ({"size": "Large", "vcpus": 2}, "size_conflict"),
    ],
)
def test_it_refuses_sizes_outside_the_template_with_a_code_naming_the_bound(alice, host, sized, body, code):
    response = _start(alice, {"template": sized.pk, **body})
    assert response.status_code == 400, response.content
    assert response.json()["code"] == code
    assert not Desktop.objects.filter(tenant=alice.tenant).exists()


@pytest.mark.parametrize("body", [{"vcpus": 10**9}, {"memory_mib": 10**12}, {"disk_gib": -1}, {"vcpus": "many"}])
def test_it_refuses_unbounded_numbers_before_any_template_rule(alice, host, sized, body):
    response = _start(alice, {"template": sized.pk, **body})
    assert response.status_code == 400
    assert not Desktop.objects.filter(tenant=alice.tenant).exists()


def test_it_refuses_any_custom_size_on_a_template_without_ranges(alice, host, template):
    response = _start(alice, {"template": template.pk, "vcpus": 4})
    assert response.status_code == 400 and response.json()["code"] == "vcpus_out_of_bounds"


def test_it_refuses_a_size_over_the_tenant_quotas(alice, host, sized):
    alice.tenant.quota_vcpus, alice.tenant.quota_disk_gib = 6, 50
    alice.tenant.save()
    assert _start(alice, {"template": sized.pk, "size": "Huge"}).json()["code"] == "quota_vcpus"
    answer = _start(alice, {"template": sized.pk, "vcpus": 2, "disk_gib": 60})
    assert answer.status_code == 409 and answer.json()["code"] == "quota_disk"
    assert not Desktop.objects.filter(tenant=alice.tenant).exists()


def test_it_refuses_a_size_no_host_has_a_slot_for(alice, tmp_path, image, sized):
    # Given the only host has 4 vCPUs (ratio 1) and 4 GiB
    small = make_test_host(tmp_path, cpus=4, memory_gib=4, cpu_ratio=1, ram_ratio=1)
    place_image(small, image)
    sized.image = image
    sized.save()
    # When a member asks for 8 vCPUs / 16 GiB
    response = _start(alice, {"template": sized.pk, "size": "Huge"})
    # Then 409 names the host capacity, and nothing was made
    assert response.status_code == 409 and response.json()["code"] == "no_host_capacity"
    assert not Desktop.objects.filter(tenant=alice.tenant).exists()


def test_it_refuses_a_launch_at_another_size_than_the_persons_desktop(alice, host, sized, work):
    _start(alice, {"template": sized.pk, "size": "Large"}, work)
    again = _start(alice, {"template": sized.pk, "vcpus": 1})
    assert again.status_code == 409 and again.json()["code"] == "size_differs"
    # The same size (or none) just opens the desktop the person has
    assert _start(alice, {"template": sized.pk, "size": "Large"}).status_code == 200
    assert _start(alice, {"template": sized.pk}).status_code == 200


def test_it_leaves_sizes_to_admins_when_the_policy_says_so(alice, host, sized, work):
    alice.tenant.resize_policy = ResizePolicy.ADMINS
    alice.tenant.save()
    refused = _start(alice, {"template": sized.pk, "size": "Large"})
    assert refused.status_code == 403 and refused.json()["code"] == "resize_admins_only"
    # The default size is still everyone's
    assert _start(alice, {"template": sized.pk}, work).status_code == 202
    admin = api_client(alice.admin, alice.tenant)
    assert admin.post("/api/desktop/start", {"template": sized.pk, "size": "Large"}, format="json").status_code == 202


def test_it_lists_a_templates_sizes_and_prices(alice, sized):
    body = api_client(alice.member, alice.tenant).get(f"/api/v1/templates/{sized.pk}/").json()
    assert [(s["name"], s["vcpus"], s["price_per_hour"]) for s in body["sizes"]] == [
        ("", 2, "0.1000"),
        ("Large", 4, "0.2200"),
        ("Huge", 8, "1.6000"),
    ]
    assert body["bounds"] == {"vcpus": [1, 8], "memory_mib": [1024, 16384], "disk_gib": [20, 100]}


def test_it_keeps_pools_at_the_template_default(alice, host, sized, work):
    from desktops.services import pools

    # Given a pool of the sized template; When it refills
    pool = PoolFactory(world=alice, template=sized, min_ready=1, max_size=2)
    with work():
        pools.refill(pool)
    [warm] = Desktop.objects.filter(pool=pool)
    assert (warm.vcpus, warm.memory_mib, warm.disk_gib) == (2, 2048, 20)
    # And a launch at a custom size makes a new desktop instead of taking the warm default one
    response = _start(alice, {"template": sized.pk, "size": "Large"}, work)
    assert response.json()["desktop"]["id"] != warm.pk
    assert Desktop.objects.get(pk=warm.pk).user is None


# --- resizing --------------------------------------------------------------------------------------


def _stopped(world, host, template, work) -> Desktop:
    response = _start(world, {"template": template.pk}, work)
    desktop = Desktop.objects.get(pk=response.json()["desktop"]["id"])
    client = api_client(world.member, world.tenant)
    with work():
        assert client.post(f"/api/v1/desktops/{desktop.pk}/stop/").status_code == 202
    desktop.refresh_from_db()
    assert desktop.state == DesktopState.STOPPED
    return desktop


def _resize(world, desktop: Desktop, body: dict, work=None, user=None):
    client = api_client(user or world.member, world.tenant)
    url = f"/api/v1/desktops/{desktop.pk}/resize/"
    if work is None:
        return client.post(url, body, format="json")
    with work():
        return client.post(url, body, format="json")


def test_it_resizes_a_stopped_desktops_vcpus_and_ram_as_an_operation(alice, host, sized, work):
    desktop = _stopped(alice, host, sized, work)
    # When the member asks for 4 vCPUs and 8 GiB (the disk stays: the test driver cannot grow one)
    response = _resize(alice, desktop, {"vcpus": 4, "memory_mib": 8192}, work)
    # Then 202 with a resize operation that succeeded, and the desktop, its allocation and its VM changed
    assert response.status_code == 202, response.content
    operation = Operation.objects.get(pk=response.json()["operation"]["id"])
    assert (operation.kind, operation.status) == (OperationKind.RESIZE, OperationStatus.SUCCEEDED)
    assert [s["step"] for s in operation.steps] == ["claiming host room", "redefining", "resized"]
    desktop.refresh_from_db()
    assert (desktop.vcpus, desktop.memory_mib, desktop.disk_gib, desktop.state) == (4, 8192, 20, DesktopState.STOPPED)
    assert _domain_size(host, desktop) == (4, 8192)
    assert Allocation.objects.get(desktop_id=desktop.pk).vcpus == 4
    assert Host.objects.get(pk=host.pk).allocated_memory_mib == 8192
    # And the request is in the audit log with both sizes
    event = AuditEvent.objects.get(action="desktop.resize", target_id=str(desktop.pk))
    assert event.actor == alice.member
    assert (event.data["from"]["vcpus"], event.data["to"]["vcpus"]) == (2, 4)


def test_it_leaves_the_desktop_as_it_was_when_the_disk_cannot_grow(alice, host, sized, work):
    # Given a stopped desktop on the test driver, which cannot resize volumes
    desktop = _stopped(alice, host, sized, work)
    # When a resize asks for more vCPUs and a bigger disk
    response = _resize(alice, desktop, {"vcpus": 4, "disk_gib": 30}, work)
    # Then the operation failed and nothing of it stayed: size, VM and host room are the old ones
    operation = Operation.objects.get(pk=response.json()["operation"]["id"])
    assert operation.status == OperationStatus.FAILED
    desktop.refresh_from_db()
    assert (desktop.vcpus, desktop.disk_gib, desktop.state) == (2, 20, DesktopState.STOPPED)
    assert _domain_size(host, desktop) == (2, 2048)
    assert Host.objects.get(pk=host.pk).allocated_vcpus == 2


def test_it_refuses_vcpus_and_ram_on_a_running_desktop(alice, host, sized, work):
    response = _start(alice, {"template": sized.pk}, work)
    desktop = Desktop.objects.get(pk=response.json()["desktop"]["id"])
    refused = _resize(alice, desktop, {"vcpus": 4})
    assert refused.status_code == 409 and refused.json()["code"] == "resize_needs_stop"
    assert not Operation.objects.filter(desktop=desktop, kind=OperationKind.RESIZE).exists()


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"disk_gib": 20}, 400, "size_unchanged"),
        ({"vcpus": 9}, 400, "vcpus_out_of_bounds"),
        ({"size": "Nope"}, 400, "size_unknown"),
        ({}, 400, None),
    ],
)
def test_it_refuses_bad_resizes_and_queues_nothing(alice, host, sized, work, body, status, code):
    desktop = _stopped(alice, host, sized, work)
    refused = _resize(alice, desktop, body)
    assert refused.status_code == status
    if code:
        assert refused.json()["code"] == code
    assert not Operation.objects.filter(desktop=desktop, kind=OperationKind.RESIZE).exists()


def test_it_refuses_to_shrink_a_disk(alice, host, sized, work):
    # Given a desktop launched with a 40 GiB disk
    response = _start(alice, {"template": sized.pk, "size": "Large"}, work)
    desktop = Desktop.objects.get(pk=response.json()["desktop"]["id"])
    # When asked for 30 GiB
    refused = _resize(alice, desktop, {"disk_gib": 30})
    # Then 400 disk_shrink, and the disk keeps its size
    assert refused.status_code == 400 and refused.json()["code"] == "disk_shrink"
    assert "only grow" in refused.json()["detail"]
    desktop.refresh_from_db()
    assert desktop.disk_gib == 40


def test_it_refuses_a_resize_over_quota_or_host_room(alice, tmp_path, image, sized, work):
    small = make_test_host(tmp_path, cpus=4, memory_gib=8, cpu_ratio=1, ram_ratio=1)
    place_image(small, image)
    sized.image = image
    sized.save()
    desktop = _stopped(alice, small, sized, work)
    # The host has 2 vCPUs free: 8 do not fit there
    refused = _resize(alice, desktop, {"vcpus": 8})
    assert refused.status_code == 409 and refused.json()["code"] == "no_host_capacity"
    alice.tenant.quota_disk_gib = 30
    alice.tenant.save()
    over = _resize(alice, desktop, {"disk_gib": 31})
    assert over.status_code == 409 and over.json()["code"] == "quota_disk"
    desktop.refresh_from_db()
    assert (desktop.vcpus, desktop.disk_gib) == (2, 20)


def test_it_lets_only_admins_resize_when_the_policy_says_so(alice, host, sized, work):
    desktop = _stopped(alice, host, sized, work)
    alice.tenant.resize_policy = ResizePolicy.ADMINS
    alice.tenant.save()
    refused = _resize(alice, desktop, {"vcpus": 3})
    assert refused.status_code == 403 and refused.json()["code"] == "resize_admins_only"
    assert _resize(alice, desktop, {"vcpus": 3}, work, user=alice.admin).status_code == 202
    desktop.refresh_from_db()
    assert desktop.vcpus == 3


def test_it_hides_another_tenants_desktop_from_resizes(alice, bob, host, sized, work):
    desktop = _stopped(alice, host, sized, work)
    answer = api_client(bob.admin, bob.tenant).post(
        f"/api/v1/desktops/{desktop.pk}/resize/", {"vcpus": 4}, format="json"
    )
    assert answer.status_code == 404
    desktop.refresh_from_db()
    assert desktop.vcpus == 2


def test_it_refuses_to_resize_a_pooled_desktop(alice, sized):
    pooled = DesktopFactory(world=alice, template=sized, kind=DesktopKind.POOLED, state=DesktopState.STOPPED)
    with pytest.raises(ServiceError) as refused:
        request_resize(desktop=pooled, actor=alice.admin, vcpus=4)
    assert refused.value.code == "not_personal"


def test_it_has_a_resize_row_in_the_lifecycle_table():
    assert ACTIONS[OperationKind.RESIZE].through is None and ACTIONS[OperationKind.RESIZE].target is None
    assert ACTIONS[OperationKind.RESIZE].sources == (DesktopState.STOPPED, DesktopState.RUNNING)
    # Only its own service queues it (with a checked size), never the generic request_action
    assert not can_request(OperationKind.RESIZE, DesktopState.STOPPED)


# --- prices ----------------------------------------------------------------------------------------


def test_it_prices_sizes_from_the_template_price_and_rates(sized):
    large = sizes.resolve(sized, size="Large")
    small = sizes.resolve(sized, vcpus=1, memory_mib=1024)
    # Given the rates: 0.02 per vCPU, 0.01 per GiB RAM, 0.001 per disk GiB away from 2 / 2 GiB / 20 GiB
    assert sizes.price_per_hour(sized, large) == Decimal("0.2200")
    assert sizes.price_per_hour(sized, small) == Decimal("0.0700")
    # A named size with a fixed extra uses it, whatever the rates say
    assert sizes.price_per_hour(sized, sizes.resolve(sized, size="Huge")) == Decimal("1.6000")
    # A shape equal to a named size is that size
    assert sizes.resolve(sized, vcpus=4, memory_mib=8192, disk_gib=40).name == "Large"


# --- races -----------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_it_holds_the_vcpu_quota_against_simultaneous_launches_of_large_sizes(alice, host, sized):
    from tests.concurrency import at_once, post, require_postgresql
    from tests.factories import MembershipFactory

    require_postgresql()
    # Given a quota of 12 running vCPUs and 20 people each launching the Large size (4 vCPUs) at once
    alice.tenant.quota_vcpus = 12
    alice.tenant.save()
    people = [MembershipFactory(tenant=alice.tenant).user for _ in range(20)]
    clients = [api_client(person, alice.tenant) for person in people]
    answers = at_once([post(c, "/api/desktop/start", {"template": sized.pk, "size": "Large"}) for c in clients])
    # Then exactly 3 fit (12 / 4), the 17 others are refused with the quota's code, and the rows agree
    assert not [a for a in answers if isinstance(a, BaseException)], answers
    statuses = sorted(status for status, _ in answers)
    assert statuses == [202] * 3 + [409] * 17
    assert {body["code"] for status, body in answers if status == 409} == {"quota_vcpus"}
    made = Desktop.objects.filter(tenant=alice.tenant)
    assert made.count() == 3 and {d.vcpus for d in made} == {4}
