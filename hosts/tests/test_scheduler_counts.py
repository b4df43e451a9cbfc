"""The figures operators read: how many more desktops fit, counters repaired from allocations, a move's accounting."""

from __future__ import annotations

import logging

import pytest

from hosts import scheduling
from hosts.models import Allocation, Host, HostDevice
from hosts.scheduling import PlacementRequest
from hosts.tests.factories import HostDeviceFactory, HostFactory, ImageCopyFactory, ImageFactory

pytestmark = pytest.mark.django_db


def request(desktop_id: int, **overrides) -> PlacementRequest:
    return PlacementRequest(**{"desktop_id": desktop_id, "vcpus": 2, "memory_mib": 4096, **overrides})


def _host(**fields) -> Host:
    # 16 vCPUs and 16 GiB placeable, unless told otherwise
    return HostFactory(**{"cpus": 16, "cpu_ratio": 1, "memory_mib": 16384, "reserved_memory_mib": 0, **fields})


def test_it_counts_whole_desktops_only_on_hosts_with_the_image_and_virt_type():
    image = ImageFactory()
    with_image = _host()
    ImageCopyFactory(image=image, host=with_image)
    _host()  # no copy of the image
    _host(virt_types=["qemu"], detected_virt_type="qemu")  # no KVM
    # 3-vCPU desktops: 16 // 3 = 5 per host, whole desktops only
    assert scheduling.fits_count(vcpus=3, memory_mib=1024) == 15
    assert scheduling.fits_count(vcpus=1, memory_mib=3072) == 15  # 16384 // 3072 = 5
    assert scheduling.fits_count(vcpus=3, memory_mib=1024, image_id=image.pk) == 5
    assert scheduling.fits_count(vcpus=3, memory_mib=1024, virt_type="kvm") == 10


def test_it_counts_passed_through_gpus_per_host_and_only_those_present():
    roomy, lean = _host(), _host(cpus=2)
    HostDeviceFactory(host=roomy)
    HostDeviceFactory(host=roomy, present=False)  # unplugged
    HostDeviceFactory(host=lean)
    HostDeviceFactory(host=lean)
    # roomy: one GPU present; lean: two GPUs but room for one 2-vCPU desktop
    assert scheduling.fits_count(vcpus=2, memory_mib=1024, gpu_profile="passthrough") == 2
    # A host without a GPU adds nothing, whatever its room
    _host()
    assert scheduling.fits_count(vcpus=2, memory_mib=1024, gpu_profile="passthrough") == 2
    vgpus = scheduling.fits_count(vcpus=1, memory_mib=1024, gpu_profile="mdev:nvidia-63")
    assert vgpus == 0  # no GPU offers that type


def test_it_repairs_drifted_counters_and_says_what_it_found(caplog):
    host = _host(name="h1")
    scheduling.place(request(1, vcpus=3, memory_mib=2048))
    Host.objects.filter(pk=host.pk).update(allocated_vcpus=7, allocated_memory_mib=9000)
    caplog.set_level(logging.WARNING)
    assert scheduling.resync_counters(host.pk) is True
    host.refresh_from_db()
    assert (host.allocated_vcpus, host.allocated_memory_mib) == (3, 2048)
    assert "host h1 counters drifted: 7 vCPUs/9000 MiB recorded, 3/2048 allocated" in caplog.text
    # A host holding nothing gets zero, not one; and a host that is gone has nothing to repair
    empty = _host(allocated_vcpus=4, allocated_memory_mib=4096)
    assert scheduling.resync_counters(empty.pk) is True
    empty.refresh_from_db()
    assert (empty.allocated_vcpus, empty.allocated_memory_mib) == (0, 0)
    assert scheduling.resync_counters(Host.objects.order_by("-pk").first().pk + 100) is False


def test_it_reports_drift_of_a_gpu_or_of_the_host_alone():
    # Given a host whose counters are right but whose GPU was left marked as held
    host = _host()
    gpu = HostDeviceFactory(host=host)
    HostDevice.objects.filter(pk=gpu.pk).update(assigned_desktop_id=99)
    assert scheduling.resync_counters(host.pk) is True
    assert HostDevice.objects.get(pk=gpu.pk).assigned_desktop_id is None
    # And a host whose counters drifted while its GPU is right
    Host.objects.filter(pk=host.pk).update(allocated_vcpus=5)
    assert scheduling.resync_counters(host.pk) is True
    assert scheduling.resync_counters(host.pk) is False


def test_it_moves_one_desktops_share_and_leaves_the_others_counted():
    source, target = _host(name="src"), _host(name="dst")
    scheduling.place(request(1))
    scheduling.place(request(2))
    Allocation.objects.filter(desktop_id=2).update(host_id=source.pk)
    Host.objects.filter(pk=source.pk).update(allocated_vcpus=4, allocated_memory_mib=8192)
    Host.objects.filter(pk=target.pk).update(allocated_vcpus=0, allocated_memory_mib=0)
    # When desktop 1 moves to the target
    assert scheduling.relocate(request(1), target_host_id=target.pk).host_id == target.pk
    # Then the source still counts desktop 2, and the target desktop 1
    source.refresh_from_db()
    target.refresh_from_db()
    assert (source.allocated_vcpus, source.allocated_memory_mib) == (2, 4096)
    assert (target.allocated_vcpus, target.allocated_memory_mib) == (2, 4096)
    # And a source whose counters had drifted low never goes below zero
    Host.objects.filter(pk=target.pk).update(allocated_vcpus=1, allocated_memory_mib=1024)
    scheduling.return_to(1, source.pk)
    target.refresh_from_db()
    assert (target.allocated_vcpus, target.allocated_memory_mib) == (0, 0)


def test_it_repairs_a_passed_through_gpus_holder_and_says_what_it_found(caplog):
    host = _host()
    gpu = HostDeviceFactory(host=host, product_name="RTX", pci_address="0000:01:00.0")
    scheduling.place(request(5, gpu_profile="passthrough"))
    HostDevice.objects.filter(pk=gpu.pk).update(assigned_desktop_id=None)
    caplog.set_level(logging.WARNING)
    assert scheduling.resync_counters(host.pk) is True
    gpu.refresh_from_db()
    assert (gpu.assigned_desktop_id, gpu.mdev_instances_used, gpu.mdev_type_in_use) == (5, 0, "")
    assert (
        "GPU RTX (0000:01:00.0) counters drifted: "
        "{'assigned_desktop_id': None, 'mdev_instances_used': 0, 'mdev_type_in_use': ''} recorded, "
        "{'assigned_desktop_id': 5, 'mdev_instances_used': 0, 'mdev_type_in_use': ''} allocated"
    ) in caplog.text


def test_it_repairs_a_shared_gpus_instances_type_and_capacity():
    host = _host()
    gpu = HostDeviceFactory(host=host, mdev_types={"nvidia-63": {"max_instances": 4}})
    scheduling.place(request(1, vcpus=1, memory_mib=1024, gpu_profile="mdev:nvidia-63"))
    scheduling.place(request(2, vcpus=1, memory_mib=1024, gpu_profile="mdev:nvidia-63"))
    # Given its counters lost (as if the GPU had been re-detected empty)
    HostDevice.objects.filter(pk=gpu.pk).update(mdev_instances_used=0, mdev_type_in_use="", mdev_capacity=0)
    assert scheduling.resync_counters(host.pk) is True
    gpu.refresh_from_db()
    # Then it serves the two vGPUs again, of that type, with the type's capacity
    assert (gpu.mdev_instances_used, gpu.mdev_type_in_use, gpu.mdev_capacity) == (2, "nvidia-63", 4)
    # And a GPU whose driver no longer lists the type gets room for what it holds
    HostDevice.objects.filter(pk=gpu.pk).update(
        mdev_types={}, mdev_instances_used=0, mdev_type_in_use="", mdev_capacity=0
    )
    assert scheduling.resync_counters(host.pk) is True
    gpu.refresh_from_db()
    assert (gpu.mdev_instances_used, gpu.mdev_capacity) == (2, 2)
    # And a GPU that kept its capacity keeps it
    HostDevice.objects.filter(pk=gpu.pk).update(mdev_instances_used=1, mdev_capacity=3)
    assert scheduling.resync_counters(host.pk) is True
    gpu.refresh_from_db()
    assert (gpu.mdev_instances_used, gpu.mdev_capacity) == (2, 3)


def test_it_moves_a_desktop_to_another_host_at_the_size_it_holds_and_refuses_gpu_desktops():
    from quetzal.errors import ServiceError

    # Given a desktop holding 2 vCPUs on the emptiest host, which would be the best one to move to
    here, there = _host(name="here"), _host(name="there", cpus=32)
    Host.objects.filter(pk=there.pk).update(allocated_vcpus=8, allocated_memory_mib=8192)
    assert scheduling.place(request(1)).host_id == here.pk
    # When it is moved, asked with a size that would not fit there (24 vCPUs and 8 GiB are free):
    # it goes there all the same, holding what it holds
    assert scheduling.relocate(request(1, vcpus=30, memory_mib=12288)).host_id == there.pk
    there.refresh_from_db()
    assert (there.allocated_vcpus, there.allocated_memory_mib) == (10, 12288)
    # And a desktop never placed, or one wanting or holding a GPU, is refused saying why
    with pytest.raises(ServiceError, match=r"^The desktop is not placed on a host\.$") as refused:
        scheduling.relocate(request(9))
    assert refused.value.code == "not_placed"
    with pytest.raises(ServiceError, match=r"^Desktops holding a GPU cannot be moved while running\.$") as refused:
        scheduling.relocate(request(1, gpu_profile="passthrough"))
    assert refused.value.code == "not_movable"


def test_it_keeps_a_shared_gpus_type_until_its_last_vgpu_goes():
    host = _host()
    gpu = HostDeviceFactory(host=host, mdev_types={"nvidia-63": {"max_instances": 4}})
    for desktop_id in (1, 2):
        scheduling.place(request(desktop_id, vcpus=1, memory_mib=1024, gpu_profile="mdev:nvidia-63"))
    scheduling.release(1)
    gpu.refresh_from_db()
    assert (gpu.mdev_instances_used, gpu.mdev_type_in_use) == (1, "nvidia-63")
    scheduling.release(2)
    gpu.refresh_from_db()
    assert (gpu.mdev_instances_used, gpu.mdev_type_in_use) == (0, "")


def test_it_moves_only_to_a_named_host_that_passes_every_filter():
    from hosts.errors import NoCapacity

    image = ImageFactory()
    here, drained, bare = _host(name="here"), _host(name="drained"), _host(name="bare")
    ImageCopyFactory(image=image, host=here)
    ImageCopyFactory(image=image, host=drained)
    scheduling.place(request(1, image_id=image.pk))
    Host.objects.filter(pk=drained.pk).update(drain=True)
    # A drained host, one without the desktop's image, and the host it is on already are all refused
    for target in (drained, bare, here):
        with pytest.raises(NoCapacity):
            scheduling.relocate(request(1, image_id=image.pk), target_host_id=target.pk)
    assert Allocation.objects.get(desktop_id=1).host_id == here.pk
