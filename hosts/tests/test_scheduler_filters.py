"""Scheduler filters, each alone: a host failing it is skipped, and alone it names the reason."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from hosts import scheduling
from hosts.choices import CopyState, HostState, VirtType
from hosts.errors import NoCapacity
from hosts.hypervisor import GuestMemory, MemoryFacts
from hosts.models import Host
from hosts.scheduling import PlacementRequest
from hosts.services import health
from hosts.tests.factories import HostDeviceFactory, HostFactory, ImageCopyFactory, ImageFactory
from quetzal.errors import ServiceError

pytestmark = pytest.mark.django_db


def request(desktop_id: int = 1, **overrides) -> PlacementRequest:
    return PlacementRequest(**{"desktop_id": desktop_id, "vcpus": 2, "memory_mib": 4096, **overrides})


def busy_host(**fields):
    """A healthy host that spread ranks last (half full), so skipping the other one is visible."""
    return HostFactory(allocated_vcpus=32, allocated_memory_mib=32 * 1024, **fields)


HOST_RULES = [
    ("disabled", {"enabled": False}, "no host is enabled"),
    ("maintenance", {"maintenance": True}, "every enabled host is in maintenance or draining"),
    ("drain", {"drain": True}, "every enabled host is in maintenance or draining"),
    ("down", {"state": HostState.DOWN}, "no enabled host is up"),
    ("unknown", {"state": HostState.UNKNOWN}, "no enabled host is up"),
    ("silent", {"last_heartbeat_at_ago": 61}, "no enabled host is up (none answered in the last 40 s)"),
]


def _host_failing(fields: dict):
    fields = dict(fields)
    if "last_heartbeat_at_ago" in fields:
        fields["last_heartbeat_at"] = timezone.now() - timedelta(seconds=fields.pop("last_heartbeat_at_ago"))
    return HostFactory(**fields)


@pytest.mark.parametrize(("case", "fields", "message"), HOST_RULES, ids=[c[0] for c in HOST_RULES])
def test_it_skips_a_host_the_rule_excludes(case, fields, message):
    # given an empty host failing the rule and a half-full healthy one
    _host_failing(fields)
    healthy = busy_host()
    # when a desktop is placed
    placement = scheduling.place(request())
    # then it lands on the healthy host although spread prefers emptier ones
    assert placement.host_id == healthy.pk


@pytest.mark.parametrize(("case", "fields", "message"), HOST_RULES, ids=[c[0] for c in HOST_RULES])
def test_it_names_the_rule_when_it_excludes_every_host(case, fields, message):
    # given only a host failing the rule
    host = _host_failing(fields)
    # when a desktop is placed
    with pytest.raises(NoCapacity) as caught:
        scheduling.place(request())
    # then the error says why and nothing was taken
    assert caught.value.code == "no_capacity" and caught.value.status == 409
    assert message in caught.value.detail
    host.refresh_from_db()
    assert (host.allocated_vcpus, host.allocated_memory_mib) == (0, 0)


def test_it_says_when_no_host_is_registered():
    # given no hosts; when placing; then the reason is plain
    with pytest.raises(NoCapacity, match=r"^no host is registered$") as refused:
        scheduling.place(request())
    assert refused.value.reason == "no_host"


def test_it_keeps_vcpus_under_the_cpu_ratio():
    # given 2 CPUs at ratio 4 (8 vCPUs) with 6 taken, and a roomy busier host
    small = HostFactory(cpus=2, cpu_ratio=4.0, allocated_vcpus=6)
    big = busy_host()
    # when 2 vCPUs are asked they still fit on the small host (6 + 2 = 8, exactly the ratio)
    assert scheduling.place(request(1, vcpus=2, memory_mib=512)).host_id == small.pk
    # then the next one does not fit there any more
    assert scheduling.place(request(2, vcpus=1, memory_mib=512)).host_id == big.pk
    small.refresh_from_db()
    assert small.allocated_vcpus == 8


def test_it_keeps_memory_under_the_ram_ratio_after_the_reserve():
    # given 8 GiB with 1 GiB reserved at ratio 1.5: (8192 - 1024) * 1.5 = 10752 MiB placeable
    host = HostFactory(memory_mib=8192, reserved_memory_mib=1024, ram_ratio=1.5, cpus=64)
    # and a first desktop the host holds in full, then measured low while running
    assert scheduling.place(request(1, memory_mib=7168)).host_id == host.pk
    health.store_memory_facts(
        host_id=host.pk, facts=MemoryFacts(available_mib=7000, guests=(GuestMemory(desktop_id=1, used_mib=512),))
    )
    # when the rest of the ratio's room is asked, then it fits
    assert scheduling.place(request(2, memory_mib=3584)).host_id == host.pk
    # when one more MiB is asked, then the host is full
    with pytest.raises(NoCapacity, match="no enabled host has 1 MiB RAM free") as caught:
        scheduling.place(request(3, memory_mib=1))
    assert caught.value.reason == "full"


def test_it_tells_a_desktop_too_big_for_any_host_from_full_hosts():
    # given two hosts, the larger offering 64 vCPUs and 63 GiB, both empty
    HostFactory(cpus=16, memory_mib=64 * 1024)
    HostFactory(cpus=4, memory_mib=8 * 1024)
    # when a desktop asks for more RAM than any host has
    with pytest.raises(NoCapacity) as caught:
        scheduling.place(request(vcpus=2, memory_mib=128 * 1024))
    # then the error says no host is big enough, not that hosts are full
    assert caught.value.reason == "too_big"
    assert caught.value.detail == (
        "no host is big enough for 2 vCPUs and 128 GiB RAM: the largest offer 64 vCPUs and 63 GiB RAM"
    )


def test_it_says_hosts_are_full_when_a_fitting_size_has_no_room():
    # given a 64 GiB host already holding 60 GiB
    HostFactory(memory_mib=64 * 1024, allocated_memory_mib=60 * 1024)
    # when 8 GiB are asked (the host could take it if it were empty)
    with pytest.raises(NoCapacity) as caught:
        scheduling.place(request(memory_mib=8 * 1024))
    # then the reason is "full", naming the amount
    assert caught.value.reason == "full"
    assert caught.value.detail == "no enabled host has 8 GiB RAM free"


def test_it_places_only_where_the_image_is_ready():
    # given an image ready on a busy host, still copying to an empty one, and missing on a third
    image = ImageFactory(name="Windows 11")
    ready = busy_host()
    copying = HostFactory()
    HostFactory()
    ImageCopyFactory(image=image, host=ready)
    ImageCopyFactory(image=image, host=copying, state=CopyState.COPYING)
    # when placing a desktop of that image, then only the ready host qualifies
    assert scheduling.place(request(image_id=image.pk)).host_id == ready.pk
    assert scheduling.rank(request(2, image_id=image.pk)) == [ready.pk]


def test_it_names_the_image_when_no_host_has_it():
    # given a host without the image
    HostFactory()
    image = ImageFactory(name="Windows 11")
    # when placing, then the error names the image
    with pytest.raises(NoCapacity, match="image 'Windows 11' is not ready on any usable host") as caught:
        scheduling.place(request(image_id=image.pk))
    assert caught.value.reason == "no_image"


def test_it_matches_the_virt_type_with_the_override_first():
    # given a KVM host overridden to TCG, and a detected-TCG host that is busier
    overridden = HostFactory(detected_virt_type=VirtType.KVM, virt_type=VirtType.QEMU)
    tcg = busy_host(detected_virt_type=VirtType.QEMU)
    kvm = busy_host(detected_virt_type=VirtType.KVM)
    # when asking for each type, then the effective type decides
    assert scheduling.rank(request(virt_type="qemu")) == [overridden.pk, tcg.pk]
    assert scheduling.rank(request(virt_type="kvm")) == [kvm.pk]
    # and when no host runs a type, the reason names it
    Host.objects.filter(pk__in=[overridden.pk, tcg.pk]).update(virt_type=VirtType.KVM)
    with pytest.raises(NoCapacity, match="no usable host runs qemu guests"):
        scheduling.place(request(virt_type="qemu"))


def test_it_skips_excluded_hosts():
    # given two hosts, the emptier one excluded (e.g. it just failed to start the desktop)
    first = HostFactory()
    second = busy_host()
    # when placing, then the other host is used
    placement = scheduling.place(request(exclude_host_ids=frozenset({first.pk})))
    assert placement.host_id == second.pk
    with pytest.raises(NoCapacity) as caught:
        scheduling.place(request(2, exclude_host_ids=frozenset({first.pk, second.pk})))
    assert caught.value.reason == "excluded"


def test_it_places_passthrough_desktops_on_hosts_with_a_free_gpu():
    # given an empty host without GPU, a host whose GPU is taken and one with a free GPU
    HostFactory()
    taken = busy_host()
    HostDeviceFactory(host=taken, assigned_desktop_id=99)
    free = busy_host()
    gpu = HostDeviceFactory(host=free)
    # when a passthrough desktop is placed
    placement = scheduling.place(request(gpu_profile="passthrough"))
    # then it gets the free GPU, which is now assigned to it
    assert placement == scheduling.Placement(host_id=free.pk, gpu_device_id=gpu.pk)
    gpu.refresh_from_db()
    assert gpu.assigned_desktop_id == 1


def test_it_says_no_host_has_the_gpu_type():
    # given hosts with a T4 offering nvidia-222 only
    HostDeviceFactory(mdev_types={"nvidia-222": {"name": "GRID T4-1B", "max_instances": 16}})
    # when asking for nvidia-63
    with pytest.raises(NoCapacity) as caught:
        scheduling.place(request(gpu_profile="mdev:nvidia-63"))
    # then the reason names the type
    assert caught.value.detail == "no host has a GPU of type nvidia-63"
    assert caught.value.reason == "no_gpu"


def test_it_says_when_every_gpu_of_the_type_is_busy():
    # given a GPU of the type passed through whole to another desktop
    HostDeviceFactory(assigned_desktop_id=7, mdev_types={"nvidia-63": {"name": "GRID", "max_instances": 4}})
    # when asking for a vGPU of that type
    with pytest.raises(NoCapacity) as caught:
        scheduling.place(request(gpu_profile="mdev:nvidia-63"))
    # then the reason is that it is in use, not that it does not exist
    assert caught.value.reason == "gpu_busy"
    assert "has it in use" in caught.value.detail


def test_it_ignores_gpus_a_heartbeat_no_longer_sees():
    # given the only GPU is gone from its host
    HostDeviceFactory(present=False)
    # when placing a passthrough desktop, then there is no GPU
    with pytest.raises(NoCapacity, match="no host has a GPU for passthrough"):
        scheduling.place(request(gpu_profile="passthrough"))


def test_it_refuses_a_malformed_request():
    # given/when a request with no vCPUs or an unknown GPU profile, then it is refused at once
    with pytest.raises(Exception, match="at least 1 vCPU"):
        request(vcpus=0)
    with pytest.raises(Exception, match="Unknown GPU profile"):
        request(gpu_profile="mdev:")


# The guest's virtual PC: Windows 11 needs UEFI with Secure Boot and a TPM 2.0 from the host's QEMU.

PLATFORM_GAPS = [
    ("no_ovmf", {"offers_uefi": False, "offers_secure_boot": False}, "UEFI firmware and Secure Boot and a TPM 2.0"),
    ("no_secure_boot", {"offers_secure_boot": False}, "UEFI firmware and Secure Boot and a TPM 2.0"),
    ("no_swtpm", {"offers_tpm": False}, "UEFI firmware and Secure Boot and a TPM 2.0"),
]


@pytest.mark.parametrize(("case", "fields", "named"), PLATFORM_GAPS, ids=[c[0] for c in PLATFORM_GAPS])
def test_a_windows_guest_goes_only_where_its_virtual_pc_can_boot(case, fields, named):
    # given an empty host lacking part of Windows 11's PC and a half-full host offering all of it
    lacking = HostFactory(**fields)
    ready = busy_host()
    windows = {"firmware": "uefi-secure", "tpm": True}
    # when a Windows guest is placed, then only the ready host qualifies
    assert scheduling.rank(request(**windows)) == [ready.pk]
    assert scheduling.place(request(**windows)).host_id == ready.pk
    # and with only the lacking host left, the refusal names what is missing and how to get it
    Host.objects.filter(pk=ready.pk).update(maintenance=True)
    with pytest.raises(NoCapacity) as caught:
        scheduling.place(request(2, **windows))
    assert caught.value.reason == "no_platform"
    assert named in caught.value.detail and "install ovmf and swtpm" in caught.value.detail
    lacking.refresh_from_db()
    assert (lacking.allocated_vcpus, lacking.allocated_memory_mib) == (0, 0)


def test_a_host_that_could_not_tell_its_firmware_is_not_refused():
    # given only a host whose driver could not say what it offers (libvirt's test driver; a host not heard from
    # since the upgrade that learns it)
    host = HostFactory(offers_uefi=None, offers_secure_boot=None, offers_tpm=None)
    # when a Windows guest and a plain BIOS guest are placed, then both land there, as before the check existed
    assert scheduling.place(request(1, firmware="uefi-secure", tpm=True)).host_id == host.pk
    assert scheduling.place(request(2)).host_id == host.pk


@pytest.mark.parametrize(
    ("firmware", "tpm", "fields"),
    [
        ("uefi", False, {"offers_secure_boot": False, "offers_tpm": False}),
        ("bios", True, {"offers_uefi": False, "offers_secure_boot": False}),
    ],
)
def test_it_asks_a_host_only_for_what_the_guest_uses(firmware, tpm, fields):
    # given a host offering just what this guest uses
    host = HostFactory(**fields)
    # when placed, then it fits there
    assert scheduling.place(request(firmware=firmware, tpm=tpm)).host_id == host.pk


def test_it_refuses_a_firmware_it_does_not_know():
    with pytest.raises(ServiceError, match="Unknown firmware 'coreboot'") as caught:
        request(firmware="coreboot")
    assert caught.value.code == "invalid_request"
