"""Turn a desktop's intent into the typed domain spec and volume names the driver uses."""

from __future__ import annotations

from django.conf import settings

from desktops.cloudinit import SeedConfig
from desktops.models import Desktop
from hosts.hypervisor import DiskSpec, DomainSpec, GraphicsSpec, HostdevSpec, InterfaceSpec


def disk_volume_name(desktop: Desktop) -> str:
    return f"{desktop.domain_name}.qcow2"


def seed_volume_name(desktop: Desktop) -> str:
    return f"{desktop.domain_name}-seed.iso"


def serial_log_path(desktop: Desktop) -> str:
    """Where libvirt writes the guest's serial console on its host (support and tests read it)."""
    return f"{getattr(settings, 'DESKTOP_SERIAL_LOG_DIR', '/var/log/libvirt/qemu')}/{desktop.domain_name}-serial.log"


def seed_config(desktop: Desktop) -> SeedConfig:
    template = desktop.template
    packages = tuple(p.strip() for p in template.cloud_init_packages.splitlines() if p.strip())
    return SeedConfig(
        instance_id=str(desktop.domain_uuid),
        hostname=f"desktop-{desktop.pk}",
        username=template.cloud_init_user,
        password=template.cloud_init_password,
        ssh_key=template.cloud_init_ssh_key.strip(),
        packages=packages,
    )


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
    """The VM for this desktop on this host: virtio disk (LUKS when keyed), seed CD-ROM, VNC on the management IP."""
    disks = [
        DiskSpec(
            path=disk_path,
            target_dev="vda",
            bus="virtio",
            driver_type="qcow2",
            encryption_secret_uuid=disk_secret_uuid,
        )
    ]
    if seed_path:
        disks.append(DiskSpec.cloud_init_seed(seed_path))
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
        interfaces=(interface,) if interface is not None else (),
        graphics=GraphicsSpec(listen_address=host.console_address or "127.0.0.1"),
        serial_log_path=serial_log_path(desktop),
        kernel=kernel,
        initrd=(getattr(image_copy, "initrd_path", "") or None) if kernel else None,
        cmdline=(desktop.template.image.cmdline or None) if kernel else None,
        hostdevs=gpu_hostdevs(gpu_device),
        title=desktop.name,
    )
