"""Rows that make the portal and the manage pages look lived in: desktops in every state, history, pools."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from desktops.choices import DesktopKind, DesktopState, OperationKind, OperationStatus
from desktops.models import Desktop, DesktopSnapshot, TemplateSize
from desktops.tests.factories import DesktopFactory, DesktopTemplateFactory, OperationFactory, PoolFactory
from hosts.models import Image
from tests.fixtures import TenantWorld


def ran(desktop: Desktop, *, hours_ago: float, hours: float, actor=None) -> None:
    """Record a start and a stop that succeeded: one stretch of running in the past."""
    now = timezone.now()
    start = now - timedelta(hours=hours_ago)
    for kind, at in ((OperationKind.START, start), (OperationKind.STOP, start + timedelta(hours=hours))):
        OperationFactory(
            desktop=desktop,
            kind=kind,
            status=OperationStatus.SUCCEEDED,
            actor=actor,
            queued_at=at - timedelta(seconds=5),
            started_at=at - timedelta(seconds=4),
            finished_at=at,
            steps=[{"step": "booting" if kind == OperationKind.START else "shutting down", "at": at.isoformat()}],
        )


def populate(world: TenantWorld, image: Image) -> dict:
    """Templates, desktops in several states with history, a pool and a private template."""
    ubuntu = DesktopTemplateFactory(
        name="Ubuntu 24.04",
        description="GNOME desktop with Firefox, LibreOffice and VS Code.",
        image=image,
        vcpus=2,
        memory_mib=4096,
        disk_gib=40,
        price_per_hour=Decimal("0.12"),
        # Free ranges: the launcher's size picker and the desktop page's resize panel have room to move.
        min_vcpus=1,
        max_vcpus=8,
        min_memory_mib=2048,
        max_memory_mib=16384,
        max_disk_gib=200,
    )
    windows = DesktopTemplateFactory(
        name="Windows 11 Pro",
        description="Office and Teams, joined to nothing.",
        os_family="windows",
        image=image,
        vcpus=4,
        memory_mib=8192,
        disk_gib=80,
        price_per_hour=Decimal("0.34"),
    )
    cad = DesktopTemplateFactory(
        name="CAD workstation",
        description="FreeCAD and Blender on a shared GPU.",
        image=image,
        vcpus=8,
        memory_mib=16384,
        disk_gib=120,
        gpu_kind="mdev",
        gpu_mdev_type="nvidia-63",
        price_per_hour=Decimal("1.10"),
        visibility="tenant",
        tenant=world.tenant,
        max_vcpus=16,
        max_memory_mib=65536,
        max_disk_gib=500,
    )
    # Named sizes as an operator would offer them, one with a fixed extra price.
    TemplateSize.objects.create(template=cad, name="Large", vcpus=12, memory_mib=32768, disk_gib=200)
    TemplateSize.objects.create(
        template=cad, name="Render", vcpus=16, memory_mib=65536, disk_gib=500, extra_per_hour=Decimal("0.90")
    )
    mine = DesktopFactory(world=world, template=ubuntu, lived_in=True)
    ran(mine, hours_ago=50, hours=3.5, actor=world.member)
    ran(mine, hours_ago=26, hours=6, actor=world.member)
    DesktopSnapshot.objects.create(desktop=mine, name="before-upgrade")
    stopped = DesktopFactory(
        world=world,
        template=windows,
        lived_in=True,
        state=DesktopState.STOPPED,
        status_reason="No keyboard or mouse input for 60 min",
        name="Windows 11 Pro",
    )
    ran(stopped, hours_ago=8, hours=4, actor=world.member)
    busy = DesktopFactory(world=world, template=ubuntu, lived_in=True, user=world.admin, consoles_open=1)
    ran(busy, hours_ago=75, hours=7.5, actor=world.admin)
    pool = PoolFactory(world=world, template=ubuntu, name="Ubuntu pool", min_ready=2, max_size=6)
    DesktopFactory(world=world, template=ubuntu, lived_in=True, user=None, kind=DesktopKind.POOLED, pool=pool)
    return {"ubuntu": ubuntu, "windows": windows, "cad": cad, "mine": mine, "stopped": stopped, "pool": pool}
