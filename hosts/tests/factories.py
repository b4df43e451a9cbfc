"""factory_boy factories for hosts, GPUs, images and copies (rows only; no libvirt)."""

from __future__ import annotations

import factory
from django.utils import timezone

from hosts.choices import CopyState, HostState, VirtType
from hosts.models import Host, HostDevice, Image, ImageCopy


class HostFactory(factory.django.DjangoModelFactory):
    """A healthy simulated host: 16 CPUs and 64 GiB, heard from just now."""

    class Meta:
        model = Host

    name = factory.Sequence(lambda n: f"host-{n}")
    uri = factory.Sequence(lambda n: f"qemu+ssh://root@host-{n}/system")
    hostname = factory.SelfAttribute("name")
    arch = "x86_64"
    cpus = 16
    memory_mib = 64 * 1024
    # A quiet host: all of its memory available, as its heartbeat would read it.
    free_memory_mib = factory.SelfAttribute("memory_mib")
    virt_types = factory.LazyFunction(lambda: ["kvm", "qemu"])
    detected_virt_type = VirtType.KVM
    # A current host (ovmf and swtpm installed): it can boot Windows 11 guests.
    offers_uefi = True
    offers_secure_boot = True
    offers_tpm = True
    console_address = "127.0.0.1"
    state = HostState.UP
    last_heartbeat_at = factory.LazyFunction(timezone.now)


class HostDeviceFactory(factory.django.DjangoModelFactory):
    """A GPU that can be passed through; give mdev_types for a vGPU-capable one."""

    class Meta:
        model = HostDevice

    host = factory.SubFactory(HostFactory)
    pci_address = factory.Sequence(lambda n: f"0000:{(n % 250) + 1:02x}:00.0")
    vendor_id = 0x10DE
    product_id = 0x1EB8
    vendor_name = "NVIDIA Corporation"
    product_name = "TU104GL [Tesla T4]"


class ImageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Image

    name = factory.Sequence(lambda n: f"Image {n}")
    source_path = factory.Sequence(lambda n: f"/srv/images/image-{n}.qcow2")
    size_bytes = 1024**3
    virtual_size_bytes = 10 * 1024**3
    sha256 = "0" * 64


class ImageCopyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ImageCopy

    image = factory.SubFactory(ImageFactory)
    host = factory.SubFactory(HostFactory)
    state = CopyState.READY
    pool = "default"
    volume_name = factory.LazyAttribute(lambda o: f"quetzal-image-{o.image.pk}.qcow2")
    volume_path = factory.LazyAttribute(lambda o: f"/var/lib/libvirt/images/quetzal-image-{o.image.pk}.qcow2")
