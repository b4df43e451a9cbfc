"""Registering hosts: what Quetzal learns, operator settings, and no half-made host on errors."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from hosts import dispatch
from hosts.choices import HostState, VirtType
from hosts.errors import HostExists, StoragePoolMissing
from hosts.hypervisor import HostUnavailable
from hosts.models import Host, HostDevice
from hosts.models.host import default_console_address
from hosts.services.hosts import register_host
from hosts.tests.libvirt_hosts import DEAD_URI, DEFAULT_POOL, DEFAULT_URI, LARGE_URI, SMALL_URI
from quetzal.errors import ServiceError
from tenants.models import AuditEvent

pytestmark = pytest.mark.django_db


def test_it_learns_the_host_from_libvirt():
    # given a reachable host
    # when it is registered
    host = register_host(SMALL_URI, name="small")
    # then its facts are stored, it is up, and the defaults apply
    host = Host.objects.get(pk=host.pk)
    assert (host.cpus, host.memory_mib, host.arch) == (2, 4096, "x86_64")
    assert host.libvirt_version and host.hostname
    assert host.state == HostState.UP and host.last_heartbeat_at is not None
    assert (host.cpu_ratio, host.ram_ratio, host.reserved_memory_mib) == (4.0, 1.0, 1024)
    assert (host.vcpu_capacity, host.memory_capacity_mib) == (8, 3072)
    assert host.console_address == "127.0.0.1"
    # the test driver offers no kvm, so TCG is what desktops would use
    assert host.detected_virt_type == VirtType.QEMU and host.effective_virt_type == "qemu"
    # and it has no domain capabilities to ask, so whether it can boot Windows 11 guests stays unknown
    assert (host.offers_uefi, host.offers_secure_boot, host.offers_tpm) == (None, None, None)
    assert AuditEvent.objects.filter(action="host.register", target_id=str(host.pk)).exists()


def test_it_records_the_gpus_and_their_vgpu_types():
    # given a large host with a T4 (vGPU types) and an A5000, plus a NIC that is no GPU
    # when it is registered
    host = register_host(LARGE_URI, name="large")
    # then both GPUs are rows, with the T4's mdev types and their instance counts
    devices = {d.pci_address: d for d in HostDevice.objects.filter(host=host)}
    assert set(devices) == {"0000:3b:00.0", "0000:af:00.0"}
    t4 = devices["0000:3b:00.0"]
    assert t4.product_name == "TU104GL [Tesla T4]"
    assert t4.mdev_types == {
        "nvidia-222": {"name": "GRID T4-1B", "max_instances": 16},
        "nvidia-230": {"name": "GRID T4-8Q", "max_instances": 2},
    }
    assert devices["0000:af:00.0"].mdev_types == {}
    assert (host.cpus, host.memory_mib) == (64, 256 * 1024)


def test_it_applies_operator_settings():
    # given settings an operator passes
    # when registering with them
    host = register_host(
        DEFAULT_URI,
        name="tuned",
        cpu_ratio=8.0,
        ram_ratio=1.5,
        reserved_memory_mib=512,
        virt_type=VirtType.KVM,
        console_address="10.0.0.9",
        storage_pool=DEFAULT_POOL,
        drain=True,
    )
    # then they are kept and the override wins over detection
    host.refresh_from_db()
    assert (host.cpu_ratio, host.ram_ratio, host.reserved_memory_mib) == (8.0, 1.5, 512)
    assert (host.console_address, host.storage_pool, host.drain) == ("10.0.0.9", DEFAULT_POOL, True)
    assert host.effective_virt_type == "kvm" and host.detected_virt_type == "qemu"


def test_it_refuses_an_unreachable_uri_and_keeps_nothing():
    # given a URI nothing answers at
    # when registering it
    with pytest.raises(HostUnavailable) as caught:
        register_host(DEAD_URI, name="ghost")
    # then the error is clear and no host (nor audit event) was made
    assert caught.value.code == "host_unavailable"
    assert DEAD_URI in caught.value.detail
    assert not Host.objects.exists()
    assert not AuditEvent.objects.filter(action="host.register").exists()


def test_it_refuses_a_host_without_the_storage_pool():
    # given test:///default, whose pool is not called "default"
    # when registering with the default pool name
    with pytest.raises(StoragePoolMissing, match="no storage pool named 'default'"):
        register_host(DEFAULT_URI, name="nopool")
    # then nothing is saved
    assert not Host.objects.exists()


def test_it_refuses_a_uri_or_name_twice():
    # given a registered host
    register_host(SMALL_URI, name="small")
    # when the same URI or the same name is registered again, then it is refused
    with pytest.raises(HostExists):
        register_host(SMALL_URI, name="other")
    with pytest.raises(HostExists):
        register_host(LARGE_URI, name="small")
    assert Host.objects.count() == 1


def test_it_refuses_bad_settings_without_saving():
    # given a zero CPU ratio and an unknown setting, when registering, then both are refused
    with pytest.raises(ServiceError) as caught:
        register_host(SMALL_URI, cpu_ratio=0)
    assert caught.value.code == "invalid_setting" and "cpu_ratio" in caught.value.detail
    with pytest.raises(ServiceError) as caught:
        register_host(SMALL_URI, allocated_vcpus=3)
    assert caught.value.code == "unknown_setting"
    assert not Host.objects.exists()


def test_it_names_hosts_uniquely_by_default():
    # given two test hosts reporting the same hostname
    first = register_host(SMALL_URI)
    # when the second is registered without a name
    second = register_host(LARGE_URI)
    # then it gets a numbered name
    assert first.name == first.hostname
    assert second.name == f"{first.hostname}-2"


def test_it_queues_image_copies_to_a_new_host(django_capture_on_commit_callbacks, sent_tasks):
    # given the broker's door is watched
    # when a host is registered and the transaction commits
    with django_capture_on_commit_callbacks(execute=True):
        host = register_host(SMALL_URI, name="small")
    # then every image is queued for it
    assert sent_tasks == [(dispatch.COPY_IMAGES_TO_HOST, (host.pk,))]


def test_it_takes_the_console_address_from_the_uri():
    # given URIs of remote and local hosts, then the address is the remote host or loopback
    assert default_console_address("qemu+ssh://root@10.1.2.3/system") == "10.1.2.3"
    assert default_console_address("qemu+tls://kvm7.example.net/system") == "kvm7.example.net"
    assert default_console_address("qemu:///system") == "127.0.0.1"


def test_it_registers_from_the_command_line():
    # given the add_host command
    # when it is run with options
    call_command("add_host", SMALL_URI, "--name", "cli", "--cpu-ratio", "2", "--virt-type", "kvm", "--disabled")
    # then the host is registered with them
    host = Host.objects.get(name="cli")
    assert (host.cpu_ratio, host.virt_type, host.enabled) == (2.0, "kvm", False)
    # and an unreachable URI fails the command and saves nothing
    with pytest.raises(CommandError, match="host_unavailable"):
        call_command("add_host", DEAD_URI, "--name", "ghost")
    assert not Host.objects.filter(name="ghost").exists()
