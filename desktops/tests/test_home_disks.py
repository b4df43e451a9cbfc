"""Home disks: one per person per tenant, sized by the tenant's policy within its quota, attached at most once."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from desktops.choices import DesktopState
from desktops.models import Desktop, HomeDisk
from desktops.services import homes
from desktops.tests.factories import DesktopFactory, HomeDiskFactory
from hosts.tests.factories import HostFactory
from quetzal.errors import LimitExceeded
from tenants.models import AuditEvent
from tests.concurrency import at_once, require_postgresql
from tests.factories import MembershipFactory, UserFactory


@pytest.mark.django_db
def test_it_creates_one_home_per_person_with_the_tenants_size(alice, bob):
    # Given a tenant whose policy gives 7 GiB homes, and a host
    HostFactory()
    alice.tenant.home_disk_gib = 7
    alice.tenant.save()
    # When the same person's home is asked for twice, and a person of another tenant's
    first = homes.ensure_home(tenant=alice.tenant, user=alice.member)
    again = homes.ensure_home(tenant=alice.tenant, user=alice.member)
    other = homes.ensure_home(tenant=bob.tenant, user=bob.member)
    # Then there is one row per person per tenant, sized by each tenant's policy, and its creation is audited
    assert first == again and first.size_gib == 7 and other.size_gib == 10
    assert HomeDisk.objects.count() == 2
    assert AuditEvent.objects.filter(action="home.create", tenant=alice.tenant).count() == 1


@pytest.mark.django_db
def test_it_never_names_a_new_home_after_a_file_an_earlier_one_may_have_left(alice):
    # Given a person's home whose row went while its file may still be on the host (or another installation
    # sharing the host has the same tenant and user ids)
    HostFactory()
    earlier = homes.ensure_home(tenant=alice.tenant, user=alice.member)
    HomeDisk.objects.filter(pk=earlier.pk).delete()
    # When the same person's home is made again
    again = homes.ensure_home(tenant=alice.tenant, user=alice.member)
    # Then its volume has a name of its own, so the old file is never taken for it
    assert again.volume_name != earlier.volume_name
    assert again.volume_name.startswith(f"qz-home-t{alice.tenant.pk}-u{alice.member.pk}-")


@pytest.mark.django_db
def test_it_refuses_a_home_beyond_the_tenants_home_quota(alice):
    # Given a tenant with 25 GiB for homes of 10 GiB each, two of which exist
    HostFactory()
    alice.tenant.quota_home_gib = 25
    alice.tenant.save()
    homes.ensure_home(tenant=alice.tenant, user=alice.member)
    homes.ensure_home(tenant=alice.tenant, user=alice.admin)
    # When a third person's home is asked for
    with pytest.raises(LimitExceeded) as refused:
        homes.ensure_home(tenant=alice.tenant, user=alice.owner)
    # Then it is refused with the quota's code and nothing is made
    assert refused.value.code == "quota_home"
    assert not HomeDisk.objects.filter(user=alice.owner).exists()


@pytest.mark.django_db
def test_it_bounds_the_home_size_policy(alice):
    from django.core.exceptions import ValidationError

    from tenants.services.tenants import update_policies

    for bad in (0, 100_000):
        with pytest.raises(ValidationError):
            update_policies(tenant=alice.tenant, changes={"home_disk_gib": bad}, actor=alice.owner)


@pytest.mark.django_db
def test_it_attaches_a_home_to_one_desktop_only(alice):
    # Given a person's home and their two running desktops
    home = HomeDiskFactory(world=alice)
    first, second = DesktopFactory(world=alice), DesktopFactory(world=alice)
    # When both claim it, the first wins and the second is refused
    assert homes.claim(home, first) is True
    assert homes.claim(HomeDisk.objects.get(pk=home.pk), second) is False
    assert HomeDisk.objects.get(pk=home.pk).attached_to == first
    # When the first stops (its claim goes stale) the second may take it over
    Desktop.objects.filter(pk=first.pk).update(state=DesktopState.STOPPED)
    assert homes.claim(HomeDisk.objects.get(pk=home.pk), second) is True


@pytest.mark.django_db
def test_it_keeps_the_attach_once_rule_in_the_database(alice):
    # Given two homes of two people, one attached to a desktop
    desktop = DesktopFactory(world=alice)
    HomeDiskFactory(world=alice, attached_to=desktop)
    # When a write bypasses the services and attaches another home to the same desktop, the database refuses
    with pytest.raises(IntegrityError), transaction.atomic():
        HomeDiskFactory(world=alice, user=alice.admin, attached_to=desktop)


@pytest.mark.django_db
def test_it_releases_the_home_when_the_desktop_lets_go(alice):
    desktop = DesktopFactory(world=alice)
    home = HomeDiskFactory(world=alice, attached_to=desktop)
    assert homes.release(desktop=desktop) is True
    assert HomeDisk.objects.get(pk=home.pk).attached_to is None
    assert homes.release(desktop=desktop) is False


@pytest.mark.django_db(transaction=True)
def test_it_hands_a_home_to_exactly_one_of_many_desktops_claiming_it_at_once(alice):
    require_postgresql()
    # Given a person's home and eight of their running desktops
    home = HomeDiskFactory(world=alice)
    desktops = [DesktopFactory(world=alice) for _ in range(8)]
    # When all claim it at the same moment, each on its own connection
    results = at_once([lambda d=d: homes.claim(HomeDisk.objects.get(pk=home.pk), d) for d in desktops])
    # Then exactly one won, and the row names that one
    assert sorted(results) == [False] * 7 + [True]
    winner = desktops[results.index(True)]
    assert HomeDisk.objects.get(pk=home.pk).attached_to_id == winner.pk


@pytest.mark.django_db(transaction=True)
def test_it_keeps_the_tenants_home_quota_under_concurrent_first_uses(alice):
    require_postgresql()
    # Given 30 GiB for 10 GiB homes and six people using files for the first time at once
    HostFactory()
    alice.tenant.quota_home_gib = 30
    alice.tenant.save()
    people = [UserFactory() for _ in range(6)]
    for person in people:
        MembershipFactory(user=person, tenant=alice.tenant)
    results = at_once([lambda p=p: homes.ensure_home(tenant=alice.tenant, user=p) for p in people])
    # Then exactly three homes were made, the others refused with the quota's code
    made = [r for r in results if isinstance(r, HomeDisk)]
    refused = [r for r in results if isinstance(r, LimitExceeded)]
    assert len(made) == 3 and len(refused) == 3, results
    assert HomeDisk.objects.filter(tenant=alice.tenant).count() == 3


@pytest.mark.django_db
def test_it_tells_the_second_running_desktop_that_the_home_is_on_the_first(alice):
    # Given a person's home attached to their first running desktop
    first = DesktopFactory(world=alice, name="Ubuntu at work")
    home = HomeDiskFactory(world=alice, attached_to=first)
    Desktop.objects.filter(pk=first.pk).update(host=home.host)
    # When their second desktop (same host) starts and asks for the home
    second = DesktopFactory(world=alice, name="Second")
    Desktop.objects.filter(pk=second.pk).update(host=home.host)
    second.template.os_family = "linux"
    second.template.save()
    note = homes.attach(second)
    # Then it runs without it and says where the home is; the first keeps it
    assert note == "Your home folder is open on Ubuntu at work; this desktop runs without it."
    assert HomeDisk.objects.get(pk=home.pk).attached_to_id == first.pk


@pytest.mark.django_db
def test_it_refuses_to_snapshot_or_revert_a_desktop_holding_the_home(alice, django_capture_on_commit_callbacks):
    from desktops.models import DesktopSnapshot
    from desktops.services.requests import request_action
    from quetzal.errors import Conflict

    # Given a running desktop with its person's home plugged in, and a snapshot of it from before
    desktop = DesktopFactory(world=alice)
    HomeDiskFactory(world=alice, attached_to=desktop)
    DesktopSnapshot.objects.create(desktop=desktop, name="before", running=False)
    # When a snapshot or a revert is asked for, each is refused with a stable code (the home would be taken along
    # into the snapshot, or the person's files rolled back)
    for kind, params in (("snapshot", {"snapshot": "now"}), ("revert", {"snapshot": "before"})):
        with pytest.raises(Conflict) as refused:
            request_action(desktop=desktop, kind=kind, actor=alice.member, params=params)
        assert refused.value.code == "home_plugged_in"
    # When the desktop has stopped (and let go of the home), a snapshot is taken as usual
    homes.release(desktop=desktop)
    Desktop.objects.filter(pk=desktop.pk).update(state=DesktopState.STOPPED)
    with django_capture_on_commit_callbacks():
        operation = request_action(desktop=desktop, kind="snapshot", actor=alice.member, params={"snapshot": "now"})
    assert operation.kind == "snapshot"
