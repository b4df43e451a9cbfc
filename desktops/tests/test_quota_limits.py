"""Each quota at, below and above its limit, what it counts, and what it says (the races are in test_quotas)."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction

from desktops.choices import DesktopState, OperationKind, OperationStatus
from desktops.services import quotas
from desktops.tests.factories import DesktopFactory, OperationFactory
from quetzal.errors import Forbidden, LimitExceeded
from tenants.choices import TenantStatus
from tenants.models import AuditEvent
from tests.concurrency import require_postgresql


def _tenant(world, **limits):
    world.tenant.__class__.objects.filter(pk=world.tenant.pk).update(**limits)
    world.tenant.refresh_from_db()
    return world.tenant


def _running(world, count: int, *, user=None, vcpus: int = 1, memory_mib: int = 1024, **fields):
    return [
        DesktopFactory(world=world, user=user or world.member, vcpus=vcpus, memory_mib=memory_mib, **fields)
        for _ in range(count)
    ]


def _run_refusal(tenant, *, user=None, vcpus=0, memory_mib=0, **kwargs):
    return quotas.run_refusal(tenant, user=user, vcpus=vcpus, memory_mib=memory_mib, **kwargs)


# The desktop-count quota


@pytest.mark.parametrize(("existing", "refused"), [(2, False), (3, True), (4, True)])
def test_it_allows_desktops_up_to_the_quota_and_not_one_more(alice, existing, refused):
    # Given a tenant allowed 3 desktops, holding `existing` of them
    tenant = _tenant(alice, quota_desktops=3)
    _running(alice, existing, state=DesktopState.STOPPED)
    # When one more is asked for
    refusal = quotas.create_refusal(tenant)
    # Then it is refused exactly from the third on, naming the limit
    if not refused:
        assert refusal is None
        with transaction.atomic():
            quotas.ensure_can_create(tenant=tenant)
        return
    assert refusal.code == "quota_desktops"
    assert str(refusal) == "Your organisation's limit of 3 desktops is reached."
    with transaction.atomic(), pytest.raises(LimitExceeded) as raised:
        quotas.ensure_can_create(tenant=tenant)
    assert raised.value.code == "quota_desktops"


def test_it_counts_every_desktop_not_yet_deleted_and_no_other_tenants(alice, bob):
    tenant = _tenant(alice, quota_desktops=2)
    _running(alice, 1, state=DesktopState.STOPPED)
    _running(alice, 3, state=DesktopState.DELETED)
    _running(bob, 5)
    assert quotas.create_refusal(tenant) is None
    _running(alice, 1, state=DesktopState.ERROR, user=alice.owner)
    assert quotas.create_refusal(tenant).code == "quota_desktops"


def test_it_sets_no_desktop_limit_when_the_quota_is_zero(alice):
    tenant = _tenant(alice, quota_desktops=0)
    _running(alice, 3)
    assert quotas.create_refusal(tenant) is None


# The disk quota


def _disks(world, *sizes: int, state=DesktopState.STOPPED):
    return [DesktopFactory(world=world, disk_gib=size, state=state) for size in sizes]


@pytest.mark.parametrize(("more", "refused"), [(19, False), (20, False), (21, True)])
def test_it_allows_disk_up_to_the_quota_and_not_one_gib_more(alice, bob, more, refused):
    # Given 50 GiB allowed and 30 held (a deleted desktop's and another tenant's disks count for nothing)
    tenant = _tenant(alice, quota_disk_gib=50)
    _disks(alice, 10, 20)
    _disks(alice, 40, state=DesktopState.DELETED)
    _disks(bob, 100)
    # When `more` GiB are asked for, by a new desktop or by a disk that grows
    for refusal in (quotas.disk_refusal(tenant, more_gib=more), quotas.create_refusal(tenant, disk_gib=more)):
        # Then 50 in all is fine and 51 is refused, saying what is held and what was asked
        if not refused:
            assert refusal is None
            continue
        assert refusal.code == "quota_disk"
        assert str(refusal) == (
            "Your organisation's limit of 50 GiB of desktop disks would be exceeded (30 GiB held, 21 GiB more asked)."
        )


def test_it_measures_the_first_disk_against_the_quota_too(alice):
    # Nothing held yet: the request alone is measured (an empty sum is 0 GiB)
    tenant = _tenant(alice, quota_disk_gib=8)
    assert quotas.disk_refusal(tenant, more_gib=8) is None
    refusal = quotas.disk_refusal(tenant, more_gib=9)
    assert str(refusal) == (
        "Your organisation's limit of 8 GiB of desktop disks would be exceeded (0 GiB held, 9 GiB more asked)."
    )


def test_it_never_refuses_a_desktop_that_asks_no_more_disk(alice):
    # Given a tenant already over its disk quota (it was lowered)
    tenant = _tenant(alice, quota_disk_gib=10)
    _disks(alice, 30)
    # Then asking nothing more, or less, is never refused, and a desktop of no stated disk is one of those
    assert quotas.disk_refusal(tenant, more_gib=0) is None
    assert quotas.disk_refusal(tenant, more_gib=-5) is None
    assert quotas.create_refusal(tenant) is None
    with transaction.atomic():
        quotas.ensure_can_create(tenant=tenant)
    assert quotas.disk_refusal(tenant, more_gib=1).code == "quota_disk"


def test_it_sets_no_disk_limit_when_the_quota_is_zero(alice):
    tenant = _tenant(alice, quota_disk_gib=0)
    _disks(alice, 500)
    assert quotas.disk_refusal(tenant, more_gib=10_000) is None


def test_it_names_the_desktop_count_before_the_disk(alice):
    tenant = _tenant(alice, quota_desktops=1, quota_disk_gib=10)
    _disks(alice, 10)
    assert quotas.create_refusal(tenant, disk_gib=5).code == "quota_desktops"


def test_it_refuses_creates_and_disk_grows_by_the_quota_as_it_is_now(alice):
    # Given a tenant object read before its disk quota was set to 50 GiB, with 40 held
    stale = alice.tenant
    _tenant(alice, quota_disk_gib=50)
    _disks(alice, 40)
    # Then the locked checks read the quota afresh: 10 more fit, 11 do not
    with transaction.atomic():
        quotas.ensure_can_create(tenant=stale, disk_gib=10)
        quotas.ensure_can_grow_disk(tenant=stale, more_gib=10)
    for check in (
        lambda: quotas.ensure_can_create(tenant=stale, disk_gib=11),
        lambda: quotas.ensure_can_grow_disk(tenant=stale, more_gib=11),
    ):
        with transaction.atomic(), pytest.raises(LimitExceeded) as raised:
            check()
        assert raised.value.code == "quota_disk"
        assert "(40 GiB held, 11 GiB more asked)" in str(raised.value)


# A size the tenant could never run


@pytest.mark.parametrize(("vcpus", "refused"), [(3, False), (4, False), (5, True)])
def test_it_refuses_a_size_of_more_vcpus_than_the_running_quota(alice, vcpus, refused):
    tenant = _tenant(alice, quota_vcpus=4, quota_ram_mib=0)
    if not refused:
        quotas.ensure_size_fits_quotas(tenant=tenant, vcpus=vcpus, memory_mib=10**6)
        return
    with pytest.raises(LimitExceeded) as raised:
        quotas.ensure_size_fits_quotas(tenant=tenant, vcpus=vcpus, memory_mib=1)
    assert raised.value.code == "quota_vcpus"
    assert str(raised.value) == "5 vCPUs is more than your organisation's running quota of 4."


@pytest.mark.parametrize(("memory_mib", "refused"), [(4095, False), (4096, False), (4097, True)])
def test_it_refuses_a_size_of_more_ram_than_the_running_quota(alice, memory_mib, refused):
    tenant = _tenant(alice, quota_vcpus=0, quota_ram_mib=4096)
    if not refused:
        quotas.ensure_size_fits_quotas(tenant=tenant, vcpus=1000, memory_mib=memory_mib)
        return
    with pytest.raises(LimitExceeded) as raised:
        quotas.ensure_size_fits_quotas(tenant=tenant, vcpus=1, memory_mib=memory_mib)
    assert raised.value.code == "quota_ram"
    assert str(raised.value) == "4097 MiB is more than your organisation's running RAM quota of 4096 MiB."


def test_it_measures_a_size_by_each_quota_on_its_own_and_by_none_when_they_are_zero(alice):
    # What runs already does not matter: the size alone is measured
    _running(alice, 3, vcpus=4, memory_mib=4096)
    tenant = _tenant(alice, quota_vcpus=4, quota_ram_mib=1024)
    quotas.ensure_size_fits_quotas(tenant=tenant, vcpus=4, memory_mib=1024)
    with pytest.raises(LimitExceeded) as raised:
        quotas.ensure_size_fits_quotas(tenant=tenant, vcpus=4, memory_mib=1025)
    assert raised.value.code == "quota_ram"
    tenant = _tenant(alice, quota_vcpus=0, quota_ram_mib=0)
    quotas.ensure_size_fits_quotas(tenant=tenant, vcpus=512, memory_mib=10**7)


# The per-person running limit


@pytest.mark.parametrize(("running", "refused"), [(1, False), (2, True), (3, True)])
def test_it_lets_a_person_run_up_to_their_limit(alice, running, refused):
    tenant = _tenant(alice, max_running_per_user=2)
    _running(alice, running)
    refusal = _run_refusal(tenant, user=alice.member, vcpus=1, memory_mib=1024)
    if not refused:
        assert refusal is None
        return
    assert refusal.code == "limit_running_per_user"
    assert str(refusal) == "You may run 2 desktop(s) at once; stop one first."
    with transaction.atomic(), pytest.raises(LimitExceeded) as raised:
        quotas.ensure_can_run(tenant=tenant, user=alice.member, vcpus=1, memory_mib=1024)
    assert raised.value.code == "limit_running_per_user"


def test_it_counts_only_the_persons_own_running_desktops(alice, bob):
    tenant = _tenant(alice, max_running_per_user=1)
    _running(alice, 2, user=alice.owner)
    _running(bob, 2, user=bob.member)
    _running(alice, 2, state=DesktopState.STOPPED)
    assert _run_refusal(tenant, user=alice.member, vcpus=1) is None


def test_it_does_not_count_the_desktop_being_started_against_itself(alice):
    tenant = _tenant(alice, max_running_per_user=1, quota_vcpus=2)
    (desk,) = _running(alice, 1, vcpus=2)
    assert _run_refusal(tenant, user=alice.member, vcpus=2, exclude_desktop_id=desk.pk) is None
    assert _run_refusal(tenant, user=alice.member, vcpus=2).code == "limit_running_per_user"
    with transaction.atomic():
        quotas.ensure_can_run(tenant=tenant, user=alice.member, vcpus=2, memory_mib=1, exclude_desktop_id=desk.pk)


def test_it_applies_no_personal_limit_to_a_pools_desktops_or_when_it_is_zero(alice):
    tenant = _tenant(alice, max_running_per_user=1)
    _running(alice, 3)
    assert _run_refusal(tenant, user=None, vcpus=1) is None
    tenant = _tenant(alice, max_running_per_user=0)
    assert _run_refusal(tenant, user=alice.member, vcpus=1) is None


# The running vCPU and RAM quotas


@pytest.mark.parametrize(("asked", "refused"), [(1, False), (2, False), (3, True)])
def test_it_runs_vcpus_up_to_the_quota(alice, asked, refused):
    # Given 4 running vCPUs allowed and 2 in use (by two people)
    tenant = _tenant(alice, quota_vcpus=4, max_running_per_user=0)
    _running(alice, 1, vcpus=2)
    # When a desktop of `asked` vCPUs would start
    refusal = _run_refusal(tenant, user=alice.owner, vcpus=asked, memory_mib=512)
    # Then 4 in all is fine and 5 is refused
    if not refused:
        assert refusal is None
        return
    assert refusal.code == "quota_vcpus"
    assert str(refusal) == "Your organisation's limit of 4 running vCPUs would be exceeded."


@pytest.mark.parametrize(("asked", "refused"), [(1024, False), (2048, False), (2049, True)])
def test_it_runs_ram_up_to_the_quota(alice, asked, refused):
    tenant = _tenant(alice, quota_ram_mib=4096, max_running_per_user=0)
    _running(alice, 1, memory_mib=2048)
    refusal = _run_refusal(tenant, user=alice.owner, vcpus=1, memory_mib=asked)
    if not refused:
        assert refusal is None
        return
    assert refusal.code == "quota_ram"
    assert str(refusal) == "Your organisation's limit of 4096 MiB of running RAM would be exceeded."


@pytest.mark.parametrize(("quota", "code"), [("quota_vcpus", "quota_vcpus"), ("quota_ram_mib", "quota_ram")])
def test_it_holds_a_running_quota_against_the_first_desktop_too(alice, quota, code):
    # Nothing runs yet: the request alone is measured (an empty sum is 0, not "no limit")
    tenant = _tenant(alice, **{quota: 1}, max_running_per_user=0)
    assert _run_refusal(tenant, user=alice.member, vcpus=2, memory_mib=2).code == code
    assert _run_refusal(tenant, user=alice.member, vcpus=1 if quota == "quota_vcpus" else 9, memory_mib=1) is None


def test_it_checks_each_running_quota_on_its_own(alice):
    # Given vCPUs to spare but RAM full
    tenant = _tenant(alice, quota_vcpus=100, quota_ram_mib=2048, max_running_per_user=0)
    _running(alice, 1, vcpus=1, memory_mib=2048)
    assert _run_refusal(tenant, vcpus=1, memory_mib=1).code == "quota_ram"
    # And the other way round
    tenant = _tenant(alice, quota_vcpus=1, quota_ram_mib=100_000)
    assert _run_refusal(tenant, vcpus=1, memory_mib=1).code == "quota_vcpus"


def test_it_measures_nothing_for_a_desktop_that_already_runs(alice):
    # A resume or reboot asks for 0 more: it never breaks a full quota
    tenant = _tenant(alice, quota_vcpus=1, quota_ram_mib=1024, max_running_per_user=0)
    _running(alice, 2, vcpus=1, memory_mib=1024)
    assert _run_refusal(tenant, vcpus=0, memory_mib=0) is None
    assert _run_refusal(tenant, vcpus=0, memory_mib=1).code == "quota_ram"
    assert _run_refusal(tenant, vcpus=1, memory_mib=0).code == "quota_vcpus"


def test_it_sets_no_running_limit_when_the_quotas_are_zero(alice):
    tenant = _tenant(alice, quota_vcpus=0, quota_ram_mib=0, max_running_per_user=0)
    _running(alice, 3, vcpus=8, memory_mib=8192)
    assert _run_refusal(tenant, vcpus=64, memory_mib=65536) is None


# What the running quotas count


@pytest.mark.parametrize(
    ("state", "counted"),
    [
        (DesktopState.STARTING, True),
        (DesktopState.RUNNING, True),
        (DesktopState.STOPPING, True),
        (DesktopState.SUSPENDED, True),
        (DesktopState.STOPPED, False),
        (DesktopState.HIBERNATED, False),
        (DesktopState.ERROR, False),
        (DesktopState.DELETED, False),
    ],
)
def test_it_counts_desktops_that_hold_a_hosts_cpu(alice, bob, state, counted):
    (desk,) = _running(alice, 1, state=state)
    _running(bob, 1)
    assert list(quotas.running_desktops(alice.tenant)) == ([desk] if counted else [])


@pytest.mark.parametrize(
    ("kind", "params", "status", "counted"),
    [
        (OperationKind.START, {}, OperationStatus.QUEUED, True),
        (OperationKind.RESTORE, {}, OperationStatus.RUNNING, True),
        (OperationKind.RESUME, {}, OperationStatus.QUEUED, True),
        (OperationKind.CREATE, {"start": True}, OperationStatus.QUEUED, True),
        (OperationKind.CREATE, {"start": False}, OperationStatus.QUEUED, False),
        (OperationKind.CREATE, {}, OperationStatus.QUEUED, False),
        (OperationKind.REVERT, {"boots": True}, OperationStatus.QUEUED, True),
        (OperationKind.REVERT, {"boots": False}, OperationStatus.QUEUED, False),
        (OperationKind.SNAPSHOT, {}, OperationStatus.QUEUED, False),
        (OperationKind.START, {}, OperationStatus.SUCCEEDED, False),
        (OperationKind.START, {}, OperationStatus.FAILED, False),
    ],
)
def test_it_counts_a_stopped_desktop_once_a_boot_is_queued_for_it(alice, kind, params, status, counted):
    # Given a stopped desktop with one operation
    (desk,) = _running(alice, 1, state=DesktopState.STOPPED)
    OperationFactory(desktop=desk, kind=kind, params=params, status=status)
    # Then it holds its vCPUs and RAM only while a boot is in flight
    assert list(quotas.running_desktops(alice.tenant)) == ([desk] if counted else [])


# Suspension


def test_it_refuses_starts_in_a_suspended_tenant_and_names_it(alice):
    quotas.ensure_tenant_active(alice.tenant)
    tenant = _tenant(alice, status=TenantStatus.SUSPENDED)
    with pytest.raises(Forbidden) as refused:
        quotas.ensure_tenant_active(tenant)
    assert refused.value.code == "tenant_suspended"
    assert str(refused.value) == "Alice is suspended: desktops cannot be started until it is reactivated."


def test_it_locks_the_tenant_and_returns_its_quotas_as_they_are_now(alice):
    stale = alice.tenant
    _tenant(alice, quota_desktops=7)
    with transaction.atomic():
        fresh = quotas.lock(stale)
    assert fresh.pk == stale.pk and fresh.quota_desktops == 7


@pytest.mark.django_db(transaction=True)
def test_it_refuses_a_lock_outside_a_transaction_and_lets_the_tenants_other_writes_through(alice):
    require_postgresql()
    with pytest.raises(RuntimeError) as refused:
        quotas.lock(alice.tenant)
    assert str(refused.value) == (
        "quotas.lock() outside transaction.atomic(): the lock would end before the write it guards"
    )
    # Given one request holding the tenant's quota lock (on its own connection)
    locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        try:
            with transaction.atomic():
                quotas.lock(alice.tenant)
                locked.set()
                release.wait(30)
        finally:
            connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert locked.wait(30)
        # When another request writes a row that merely references the tenant (an audit event)
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '3s'")
            AuditEvent.objects.create(tenant=alice.tenant, action="quota_lock_probe")
    finally:
        release.set()
        holder.join(30)
    # Then it went through at once: the quota lock queues quota checks, not everything the tenant does
    assert AuditEvent.objects.filter(action="quota_lock_probe").count() == 1
