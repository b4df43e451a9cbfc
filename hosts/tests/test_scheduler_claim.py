"""Claiming and releasing: idempotent per desktop, guarded counters, GPUs, counts and repair."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from hosts import scheduling
from hosts.errors import NoCapacity
from hosts.models import Allocation, Host, HostDevice
from hosts.scheduling import Placement, PlacementRequest, placement
from hosts.tests.factories import HostDeviceFactory, HostFactory, ImageCopyFactory, ImageFactory

pytestmark = pytest.mark.django_db


def request(desktop_id: int = 1, **overrides) -> PlacementRequest:
    return PlacementRequest(**{"desktop_id": desktop_id, "vcpus": 2, "memory_mib": 4096, **overrides})


def test_it_records_the_allocation_and_counts_it_on_the_host():
    # given a host
    host = HostFactory()
    # when a desktop is placed
    placed = scheduling.place(request(5, vcpus=3, memory_mib=2048))
    # then the allocation row and the host counters agree
    assert placed == Placement(host_id=host.pk, gpu_device_id=None)
    allocation = Allocation.objects.get(desktop_id=5)
    assert (allocation.host_id, allocation.vcpus, allocation.memory_mib) == (host.pk, 3, 2048)
    host.refresh_from_db()
    assert (host.allocated_vcpus, host.allocated_memory_mib) == (3, 2048)


def test_it_returns_the_existing_placement_for_a_desktop_already_placed():
    # given a desktop placed on the busier of two hosts (the other one was added later)
    first = HostFactory()
    scheduling.place(request(5))
    HostFactory()
    # when it is placed again (a retried task)
    again = scheduling.place(request(5))
    # then it keeps its host and nothing is counted twice
    assert again.host_id == first.pk
    first.refresh_from_db()
    assert first.allocated_vcpus == 2
    assert Allocation.objects.count() == 1


def test_it_returns_the_existing_placement_even_when_hosts_are_full():
    # given a placed desktop and a host that is now full
    host = HostFactory(memory_mib=5 * 1024)
    scheduling.place(request(5))
    # when it is placed again, then it is not refused for lack of room
    assert scheduling.place(request(5)).host_id == host.pk


def test_it_releases_what_the_desktop_held_once():
    # given two placed desktops
    host = HostFactory()
    scheduling.place(request(1))
    scheduling.place(request(2))
    # when one is released twice, and a desktop never placed is released
    scheduling.release(1)
    scheduling.release(1)
    scheduling.release(404)
    # then only its share went back
    host.refresh_from_db()
    assert (host.allocated_vcpus, host.allocated_memory_mib) == (2, 4096)
    assert list(Allocation.objects.values_list("desktop_id", flat=True)) == [2]
    # and once the other goes too, the host holds nothing, even with counters drifted below what it held
    Host.objects.filter(pk=host.pk).update(allocated_vcpus=1, allocated_memory_mib=1024)
    scheduling.release(2)
    host.refresh_from_db()
    assert (host.allocated_vcpus, host.allocated_memory_mib) == (0, 0)


def test_it_rechecks_capacity_in_the_claim_itself():
    # given a host ranked as fitting, that another worker filled before this claim
    host = HostFactory(memory_mib=5 * 1024)
    ranked = scheduling.rank(request())
    Host.objects.filter(pk=host.pk).update(allocated_memory_mib=4096)
    # when claiming it with the stale ranking
    lost = placement._claim(request(), ranked[0], timezone.now())
    # then the conditional UPDATE matches nothing and nothing is recorded
    assert lost is None
    assert not Allocation.objects.exists()
    host.refresh_from_db()
    assert host.allocated_memory_mib == 4096


def test_it_tries_the_next_candidate_when_a_claim_loses(monkeypatch):
    # given a ranking made before another worker filled the best host (and no lock-free shortcut)
    best, other = HostFactory(), HostFactory(allocated_memory_mib=8 * 1024)
    stale = scheduling.rank(request())
    Host.objects.filter(pk=best.pk).update(allocated_memory_mib=63 * 1024)
    monkeypatch.setattr(placement, "rank", lambda *args, **kwargs: stale)
    monkeypatch.setattr(placement, "_claim_best", lambda *args: None)
    # when placing
    placed = scheduling.place(request())
    # then the first claim loses and the desktop lands on the second candidate
    assert stale == [best.pk, other.pk]
    assert placed.host_id == other.pk


def test_it_places_in_a_handful_of_queries():
    # given 50 hosts holding an image
    image = ImageFactory()
    for _ in range(50):
        ImageCopyFactory(image=image)
    # when placing, then the cost does not grow with the number of hosts
    with CaptureQueriesContext(connection) as queries:
        scheduling.place(request(image_id=image.pk))
    assert len(queries) <= 6, [q["sql"] for q in queries]


def test_the_step_by_step_claim_takes_the_best_host_in_one_pass(settings):
    settings.SCHEDULER_CLAIM = "steps"
    # given an empty host and a busier one
    best = HostFactory()
    HostFactory(allocated_vcpus=8, allocated_memory_mib=16384)
    # when placing, then the best host is locked and claimed in one transaction: no second pass
    # over the ranked hosts (the fallback for when every fitting host is being claimed)
    with CaptureQueriesContext(connection) as queries:
        placed = scheduling.place(request())
    assert placed.host_id == best.pk
    sqls = [q["sql"] for q in queries]
    assert [sql.split()[0] for sql in sqls] == ["SAVEPOINT", "UPDATE", "INSERT", "RELEASE"], sqls


def test_it_shares_a_vgpu_type_until_the_device_is_full_and_frees_it_on_release():
    # given a GPU offering 2 instances of nvidia-230 and 16 of nvidia-222
    gpu = HostDeviceFactory(
        mdev_types={"nvidia-230": {"name": "T4-8Q", "max_instances": 2}, "nvidia-222": {"max_instances": 16}}
    )
    # when three nvidia-230 desktops are placed
    first = scheduling.place(request(1, gpu_profile="mdev:nvidia-230"))
    second = scheduling.place(request(2, gpu_profile="mdev:nvidia-230"))
    with pytest.raises(NoCapacity) as caught:
        scheduling.place(request(3, gpu_profile="mdev:nvidia-230"))
    # then two share the GPU and the third is refused as busy
    assert first.gpu_device_id == second.gpu_device_id == gpu.pk
    assert caught.value.reason == "gpu_busy"
    # and another type cannot join while nvidia-230 is in use
    with pytest.raises(NoCapacity):
        scheduling.place(request(4, gpu_profile="mdev:nvidia-222"))
    # when both are released, then the GPU is idle and takes the other type
    scheduling.release(1)
    scheduling.release(2)
    gpu.refresh_from_db()
    assert (gpu.mdev_instances_used, gpu.mdev_type_in_use) == (0, "")
    assert scheduling.place(request(4, gpu_profile="mdev:nvidia-222")).gpu_device_id == gpu.pk


def test_it_frees_a_passed_through_gpu_on_release():
    # given a passthrough desktop holding the only GPU
    gpu = HostDeviceFactory()
    scheduling.place(request(1, gpu_profile="passthrough"))
    with pytest.raises(NoCapacity):
        scheduling.place(request(2, gpu_profile="passthrough"))
    # when it is released, then the GPU can be taken again
    scheduling.release(1)
    assert scheduling.place(request(2, gpu_profile="passthrough")).gpu_device_id == gpu.pk


def test_it_gives_back_the_host_share_when_the_gpu_claim_loses():
    # given a host whose only GPU is taken between ranking and claiming
    gpu = HostDeviceFactory()
    host = gpu.host
    ranked = scheduling.rank(request(gpu_profile="passthrough"))
    HostDevice.objects.filter(pk=gpu.pk).update(assigned_desktop_id=77)
    # when claiming with the stale ranking
    lost = placement._claim(request(gpu_profile="passthrough"), ranked[0], timezone.now())
    # then the host counters were rolled back with it
    assert lost is None
    host.refresh_from_db()
    assert (host.allocated_vcpus, host.allocated_memory_mib) == (0, 0)


def test_it_counts_how_many_more_desktops_fit():
    # given a host with room for 3 (vCPU-bound) and one with room for 2 (RAM-bound), one in drain
    HostFactory(cpus=2, cpu_ratio=3.0, memory_mib=64 * 1024)  # 6 vCPUs
    HostFactory(cpus=64, memory_mib=9 * 1024)  # 8 GiB placeable
    HostFactory(drain=True)
    # when asking how many 2-vCPU 4-GiB desktops fit
    count = scheduling.fits_count(vcpus=2, memory_mib=4096)
    # then the usable hosts' room is added up
    assert count == 5
    # and placing one lowers the count by one
    scheduling.place(request())
    assert scheduling.fits_count(vcpus=2, memory_mib=4096) == 4


def test_it_counts_gpu_slots_and_image_copies_in_the_fit():
    # given a roomy host with a GPU offering 4 vGPUs with one in use, and one with the image only
    image = ImageFactory()
    gpu = HostDeviceFactory(mdev_types={"nvidia-63": {"max_instances": 4}})
    ImageCopyFactory(image=image, host=gpu.host)
    ImageCopyFactory(image=image)
    scheduling.place(request(1, gpu_profile="mdev:nvidia-63", image_id=image.pk))
    # when counting vGPU desktops and plain desktops of that image
    vgpu = scheduling.fits_count(vcpus=1, memory_mib=1024, gpu_profile="mdev:nvidia-63", image_id=image.pk)
    plain = scheduling.fits_count(vcpus=1, memory_mib=1024, image_id=image.pk)
    whole = scheduling.fits_count(vcpus=1, memory_mib=1024, gpu_profile="passthrough")
    # then the GPU bounds the first, RAM the second, and a vGPU-serving GPU cannot be passed through
    assert vgpu == 3
    assert plain == (63 - 4) + 63  # the vGPU desktop holds 4 GiB
    assert whole == 0


def test_it_repairs_drifted_counters_from_the_allocations():
    # given placed desktops and counters broken by hand (e.g. a restored backup)
    host = HostFactory()
    gpu = HostDeviceFactory(host=host, mdev_types={"nvidia-63": {"max_instances": 4}})
    scheduling.place(request(1))
    scheduling.place(request(2, gpu_profile="mdev:nvidia-63"))
    Host.objects.filter(pk=host.pk).update(allocated_vcpus=40, allocated_memory_mib=1)
    HostDevice.objects.filter(pk=gpu.pk).update(mdev_instances_used=0, mdev_type_in_use="")
    # when the counters are resynchronised
    drifted = scheduling.resync_counters(host.pk)
    # then they match the allocations again, and a second pass finds nothing to fix
    assert drifted
    host.refresh_from_db()
    gpu.refresh_from_db()
    assert (host.allocated_vcpus, host.allocated_memory_mib) == (4, 8192)
    assert (gpu.mdev_instances_used, gpu.mdev_type_in_use) == (1, "nvidia-63")
    assert scheduling.resync_counters(host.pk) is False


def test_it_keeps_counters_when_a_stale_copy_of_the_host_is_saved():
    # given a host read before a desktop was placed on it
    stale = HostFactory()
    scheduling.place(request(1))
    # when the stale copy is saved with a new setting
    stale.cpu_ratio = 2.0
    stale.save()
    # then the setting is saved and the placed still counts
    fresh = Host.objects.get(pk=stale.pk)
    assert fresh.cpu_ratio == 2.0
    assert (fresh.allocated_vcpus, fresh.allocated_memory_mib) == (2, 4096)


@pytest.mark.parametrize(
    ("profile", "types"), [("passthrough", {}), ("mdev:nvidia-63", {"nvidia-63": {"max_instances": 2}})]
)
def test_it_takes_a_gpu_on_the_host_it_places_on(profile, types):
    # Given two hosts with a free GPU each; the first one's GPU has the lower id, but the second host is emptier
    busy, roomy = HostFactory(name="busy"), HostFactory(name="roomy")
    on_busy = HostDeviceFactory(host=busy, mdev_types=types)
    on_roomy = HostDeviceFactory(host=roomy, mdev_types=types)
    Host.objects.filter(pk=busy.pk).update(allocated_vcpus=8, allocated_memory_mib=32768)
    # When a desktop wanting a GPU is placed, then it lands on the emptier host with that host's GPU
    placed = scheduling.place(request(1, vcpus=1, memory_mib=1024, gpu_profile=profile))
    assert placed == Placement(host_id=roomy.pk, gpu_device_id=on_roomy.pk)
    on_busy.refresh_from_db()
    assert (on_busy.assigned_desktop_id, on_busy.mdev_instances_used) == (None, 0)
