"""Keeping a host's GPU rows in step with what libvirt reports."""

from __future__ import annotations

from django.db import transaction

from hosts.hypervisor import HostInfo
from hosts.models import Host, HostDevice


def reported_mdev_types(info: HostInfo, address: str) -> dict[str, dict[str, object]]:
    """The mdev types a GPU offers, as stored on HostDevice.mdev_types."""
    return {
        t.type_id: {"name": t.name, "max_instances": t.available_instances}
        for t in info.mdev_types
        if t.parent_address == address
    }


def sync_devices(host: Host, info: HostInfo) -> None:
    """Create rows for new GPUs, refresh known ones and mark vanished ones absent (never delete)."""
    seen = []
    for gpu in info.gpus:
        seen.append(gpu.address)
        described = {
            "nodedev_name": gpu.name[:64],
            "vendor_id": gpu.vendor_id,
            "product_id": gpu.product_id,
            "vendor_name": gpu.vendor_name[:200],
            "product_name": gpu.product_name[:200],
            "driver": (gpu.driver or "")[:64],
            "present": True,
        }
        types = reported_mdev_types(info, gpu.address)
        with transaction.atomic():
            device, created = HostDevice.objects.get_or_create(
                host=host, pci_address=gpu.address, defaults={**described, "mdev_types": types}
            )
            if created:
                continue
            HostDevice.objects.filter(pk=device.pk).update(**described)
            # The kernel's available_instances shrinks as our own vGPUs are created, so it is only
            # taken as the device's total while Quetzal holds none on it.
            HostDevice.objects.filter(pk=device.pk, mdev_instances_used=0).update(mdev_types=types)
    HostDevice.objects.filter(host=host).exclude(pci_address__in=seen).update(present=False)
