"""factory_boy factories for templates, pools, desktops and operations (rows only: no VM behind them).

`DesktopFactory(world=alice, template=template)` makes a running desktop of alice's member; pass `user=None`
(with `kind=DesktopKind.POOLED`) for a pool's desktop, `lived_in=True` for the timestamps pages show.
"""

from __future__ import annotations

from datetime import timedelta

import factory
from django.utils import timezone

from desktops.choices import DesktopState, KeyPurpose, OperationKind
from desktops.models import DataKey, Desktop, DesktopTemplate, Operation, Pool
from hosts.tests.factories import ImageFactory
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
