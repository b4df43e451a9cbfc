"""Turn a desktop's intent into the typed domain spec and volume names the driver uses."""

from __future__ import annotations

from dataclasses import replace

from django.conf import settings

from desktops.choices import OsFamily
from desktops.cloudinit import SeedConfig
from desktops.models import Desktop
from desktops.services.guest_platform import guest_platform
from hosts.hypervisor import DiskSpec, DomainSpec, GraphicsSpec, HostdevSpec, InterfaceSpec
from hosts.services.installation import installation_id


def disk_volume_name(desktop: Desktop) -> str:
    return f"{desktop.domain_name}.qcow2"


def seed_volume_name(desktop: Desktop) -> str:
    return f"{desktop.domain_name}-seed.iso"


def serial_log_path(desktop: Desktop) -> str:
    """Where libvirt writes the guest's serial console on its host (support and tests read it)."""
    return f"{getattr(settings, 'DESKTOP_SERIAL_LOG_DIR', '/var/log/libvirt/qemu')}/{desktop.domain_name}-serial.log"


GIB = 1024**3


def disk_outgrows_image(desktop: Desktop, disk_gib: int | None = None) -> bool:
    """Whether the desktop's disk (or `disk_gib`) is larger than its image, whose partitions end at the image's size.

    An image of unknown size (0: not measured) counts as smaller: growing a root that fills its disk is a no-op.
    """
    image_bytes = desktop.template.image.virtual_size_bytes
    disk_bytes = (disk_gib or desktop.disk_gib or desktop.template.disk_gib) * GIB
    return not image_bytes or disk_bytes > image_bytes


def seed_config(desktop: Desktop, *, disk_gib: int | None = None) -> SeedConfig:
    """The first-boot configuration; `disk_gib` is the disk it will have when that is not recorded yet (a resize)."""
    template = desktop.template
    packages = tuple(p.strip() for p in template.cloud_init_packages.splitlines() if p.strip())
    return SeedConfig(
        instance_id=str(desktop.domain_uuid),
        hostname=f"desktop-{desktop.pk}",
        username=template.cloud_init_user,
        password=template.cloud_init_password,
        ssh_key=template.cloud_init_ssh_key.strip(),
        packages=packages,
        # cloud-init's growpart and resize_rootfs; Windows images extend their volume with cloudbase-init's own plugin.
        grow_root=template.os_family != OsFamily.WINDOWS and disk_outgrows_image(desktop, disk_gib),
    )


def seed_after_growth(desktop: Desktop, *, from_gib: int, to_gib: int) -> SeedConfig | None:
    """The seed a disk grown from `from_gib` to `to_gib` needs, or None when the one it has says the same."""
    before = seed_config(desktop, disk_gib=from_gib)
    after = seed_config(desktop, disk_gib=to_gib)
    return None if after.user_data() == before.user_data() else after


def gpu_hostdevs(gpu_device) -> tuple[HostdevSpec, ...]:
    """A whole GPU passed through (its PCI address); none when the template asks for no GPU."""
    if gpu_device is None or gpu_device.mdev_type_in_use:
        # Mediated devices need an instance created on the host first; that is not wired yet.
        return ()
    return (HostdevSpec.from_address(gpu_device.pci_address),)


def domain_spec(
    desktop: Desktop,
    *,
    disk_path: str,
    seed_path: str | None,
    image_copy,
    host,
    gpu_device=None,
    interface: InterfaceSpec | None = None,
    disk_secret_uuid: str | None = None,
) -> DomainSpec:
    """The VM for this desktop on this host: its disk (LUKS when keyed), seed CD-ROM, VNC on the management IP,
    on the virtual PC its OS needs (desktops.services.guest_platform)."""
    guest = guest_platform(desktop.template, virt_type=host.effective_virt_type)
    disks = [
        DiskSpec(
            path=disk_path,
            target_dev=guest.disk_target,
            bus=guest.disk_bus,
            driver_type="qcow2",
            encryption_secret_uuid=disk_secret_uuid,
        )
    ]
    if seed_path:
        # The seed CD-ROM is on SATA too: after the system disk when that is SATA.
        disks.append(DiskSpec.cloud_init_seed(seed_path, target_dev="sdb" if guest.disk_bus == "sata" else "sda"))
    kernel = getattr(image_copy, "kernel_path", "") or None
    return DomainSpec(
        name=desktop.domain_name,
        uuid=str(desktop.domain_uuid),
        desktop_id=desktop.pk,
        tenant_slug=desktop.tenant.slug,
        vcpus=desktop.vcpus,
        memory_mib=desktop.memory_mib,
        virt_type=host.effective_virt_type,
        disks=tuple(disks),
        # The NIC on the tenant's own network (desktops.services.network.attach); none without one.
        interfaces=(replace(interface, model=guest.nic_model),) if interface is not None else (),
        graphics=GraphicsSpec(listen_address=host.console_address or "127.0.0.1", video_model=guest.video_model),
        serial_log_path=serial_log_path(desktop),
        kernel=kernel,
        initrd=(getattr(image_copy, "initrd_path", "") or None) if kernel else None,
        cmdline=(desktop.template.image.cmdline or None) if kernel else None,
        hostdevs=gpu_hostdevs(gpu_device),
        title=desktop.name,
        clipboard_channel=desktop.template.clipboard_channel,
        sound=desktop.template.sound,
        # The file manager reaches a running Linux desktop's home through qemu-guest-agent.
        guest_agent=desktop.template.os_family == "linux",
        platform=guest.platform,
        installation=installation_id(),
        machine=guest.machine,
        clock_offset=guest.clock_offset,
    )
