"""factory_boy factories for templates, pools, desktops and operations (rows only: no VM behind them).

`DesktopFactory(world=alice, template=template)` makes a running desktop of alice's member; pass `user=None`
(with `kind=DesktopKind.POOLED`) for a pool's desktop, `lived_in=True` for the timestamps pages show.
"""

from __future__ import annotations

import subprocess
import tempfile
from datetime import timedelta
from pathlib import Path

import factory
from django.utils import timezone

from desktops.choices import DesktopState, HomeDiskState, KeyPurpose, OperationKind
from desktops.models import DataKey, Desktop, DesktopTemplate, HomeDisk, Operation, Pool
from hosts.homefs.image import format_image
from hosts.tests.factories import HostFactory, ImageFactory
from tests.factories import TenantFactory, UserFactory


class DesktopTemplateFactory(factory.django.DjangoModelFactory):
    """A public template with the model's default size (2 vCPUs, 2 GiB, 20 GiB disk)."""

    class Meta:
        model = DesktopTemplate

    name = factory.Sequence(lambda n: f"Template {n}")
    image = factory.SubFactory(ImageFactory)


class PoolFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Pool

    class Params:
        world = None  # a tests.fixtures.TenantWorld: the pool is its tenant's

    tenant = factory.Maybe("world", factory.SelfAttribute("world.tenant"), factory.SubFactory(TenantFactory))
    template = factory.SubFactory(DesktopTemplateFactory)
    name = factory.Sequence(lambda n: f"Pool {n}")


def _running_since(desktop) -> object:
    return timezone.now() - timedelta(hours=2, minutes=5) if desktop.state == DesktopState.RUNNING else None


class DesktopFactory(factory.django.DjangoModelFactory):
    """A running desktop sized and named like its template, as a launch makes it."""

    class Meta:
        model = Desktop

    class Params:
        world = None  # a tests.fixtures.TenantWorld: the desktop is its member's, in its tenant
        # Started two hours ago, last used and last changed twenty minutes ago: what the portal and dashboards show.
        lived_in = factory.Trait(
            state_changed_at=factory.LazyFunction(lambda: timezone.now() - timedelta(minutes=20)),
            running_since=factory.LazyAttribute(_running_since),
            last_activity_at=factory.LazyFunction(lambda: timezone.now() - timedelta(minutes=20)),
        )

    tenant = factory.Maybe("world", factory.SelfAttribute("world.tenant"), factory.SubFactory(TenantFactory))
    user = factory.Maybe("world", factory.SelfAttribute("world.member"), factory.SubFactory(UserFactory))
    template = factory.SubFactory(DesktopTemplateFactory)
    name = factory.SelfAttribute("template.name")
    vcpus = factory.SelfAttribute("template.vcpus")
    memory_mib = factory.SelfAttribute("template.memory_mib")
    disk_gib = factory.SelfAttribute("template.disk_gib")
    state = DesktopState.RUNNING


class OperationFactory(factory.django.DjangoModelFactory):
    """A queued start, as a request makes it (one in flight per desktop); pass status= for history."""

    class Meta:
        model = Operation

    desktop = factory.SubFactory(DesktopFactory)
    tenant = factory.SelfAttribute("desktop.tenant")
    kind = OperationKind.START


class DataKeyFactory(factory.django.DjangoModelFactory):
    """A disk key (fresh random key wrapped under the current KEK), by default a desktop's."""

    class Meta:
        model = DataKey

    purpose = KeyPurpose.DISK

    @classmethod
    def _create(cls, model_class, *args, **kwargs):  # type: ignore[no-untyped-def]
        from desktops.services import disk_keys

        row, _ = disk_keys.new_key_row(**kwargs)
        row.save()
        return row


def home_image(size_mib: int = 64, directory: str | None = None) -> str:
    """A real, empty ext4 image file (as create_home_volume leaves it), small for tests."""
    path = Path(directory or tempfile.mkdtemp(prefix="qz-home-test-")) / "home.img"
    with path.open("wb") as handle:
        handle.truncate(size_mib * 1024 * 1024)
    format_image(str(path))
    return str(path)


class HomeDiskFactory(factory.django.DjangoModelFactory):
    """A ready home disk of alice's member (world=alice) backed by a real ext4 image (64 MiB) in a temp dir."""

    class Meta:
        model = HomeDisk

    class Params:
        world = None

    tenant = factory.Maybe("world", factory.SelfAttribute("world.tenant"), factory.SubFactory(TenantFactory))
    user = factory.Maybe("world", factory.SelfAttribute("world.member"), factory.SubFactory(UserFactory))
    host = factory.SubFactory(HostFactory)
    state = HomeDiskState.READY
    size_gib = 1
    volume_name = factory.Sequence(lambda n: f"qz-home-test-{n}.img")
    volume_path = factory.LazyFunction(home_image)


def fsck_clean(path: str) -> bool:
    """Whether e2fsck finds nothing to repair in the image (the host side kept ext4 consistent)."""
    return subprocess.run(["e2fsck", "-fn", path], capture_output=True).returncode == 0


def encrypted_home(**fields) -> HomeDisk:
    """A ready encrypted home (world=..., like HomeDiskFactory): its key row, and a real empty ext4 inside a real
    LUKS qcow2 (64 MiB) made with that key, as create_home_volume leaves one on an encrypting host."""
    from desktops.services import disk_keys
    from hosts.homefs import luks

    home = HomeDiskFactory(encrypted=True, volume_path="", **fields)
    passphrase = disk_keys.passphrase_of(disk_keys.home_key_for(home))
    path = str(Path(tempfile.mkdtemp(prefix="qz-home-test-")) / "home.qcow2")
    luks.create(path, passphrase, 64 * 1024 * 1024)
    with luks.opened(path, passphrase) as view:
        format_image(view)
    HomeDisk.objects.filter(pk=home.pk).update(volume_path=path)
    home.volume_path = path
    return home
