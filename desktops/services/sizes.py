"""Desktop sizes: what a template allows, what a size costs, and whether a host has room for it.

A size is vCPUs, RAM and disk, optionally one of the template's named sizes. A request names a size
(`size`) or gives some of `vcpus`, `memory_mib`, `disk_gib` (the rest default to the template's, or to
the desktop's own for a resize); `resolve` checks it against the template and answers the `Size` or a
400 whose code names the bound it breaks. Prices: a size costs the template's price per hour (whose
history billing keeps) plus its extra, which a named size may fix and otherwise the per-unit rates give.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from decimal import Decimal

from django.utils.translation import gettext

from desktops.models import Desktop, DesktopTemplate, TemplateSize
from desktops.models.template import MAX_DISK_GIB, MAX_MEMORY_MIB, MAX_VCPUS, MIN_MEMORY_MIB
from desktops.services.guest_platform import placement_needs
from hosts import scheduling
from quetzal.errors import Conflict, Forbidden, ServiceError
from tenants.choices import ResizePolicy
from tenants.models import Membership, Tenant

GIB_MIB = 1024


@dataclass(frozen=True)
class Size:
    """A desktop's vCPUs, RAM (MiB) and disk (GiB); `name` when it is one of the template's named sizes."""

    vcpus: int
    memory_mib: int
    disk_gib: int
    name: str = ""

    @property
    def label(self) -> str:
        shape = f"{self.vcpus} vCPU / {_gib(self.memory_mib)} RAM / {self.disk_gib} GiB"
        return f"{self.name}: {shape}" if self.name else shape

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Bounds:
    """The ranges a template allows (each a (low, high) pair; low == high: fixed)."""

    vcpus: tuple[int, int]
    memory_mib: tuple[int, int]
    disk_gib: tuple[int, int]

    @property
    def custom(self) -> bool:
        """Whether a person may pick anything beyond the default and the named sizes."""
        return any(low != high for low, high in (self.vcpus, self.memory_mib, self.disk_gib))

    @property
    def label(self) -> str:
        """Like "1-8 vCPU, 2 GiB RAM, 20-100 GiB disk" (en dashes): a part that cannot change is one number."""

        def span(low: int, high: int, say=str) -> str:
            return say(low) if low == high else f"{say(low)}\N{EN DASH}{say(high)}"

        return f"{span(*self.vcpus)} vCPU, {span(*self.memory_mib, _gib)} RAM, {span(*self.disk_gib)} GiB disk"


def _gib(mib: int) -> str:
    return f"{mib // GIB_MIB} GiB" if mib % GIB_MIB == 0 else f"{mib} MiB"


def default_size(template: DesktopTemplate) -> Size:
    return Size(vcpus=template.vcpus, memory_mib=template.memory_mib, disk_gib=template.disk_gib)


def of_desktop(desktop: Desktop) -> Size:
    """The size a desktop has now (desktops from before sizes: their template's disk)."""
    return Size(
        vcpus=desktop.vcpus,
        memory_mib=desktop.memory_mib,
        disk_gib=desktop.disk_gib or desktop.template.disk_gib,
        name=desktop.size_name,
    )


def bounds(template: DesktopTemplate) -> Bounds:
    return Bounds(
        vcpus=(template.min_vcpus or template.vcpus, template.max_vcpus or template.vcpus),
        memory_mib=(template.min_memory_mib or template.memory_mib, template.max_memory_mib or template.memory_mib),
        disk_gib=(template.disk_gib, template.max_disk_gib or template.disk_gib),
    )


def named_sizes(template: DesktopTemplate) -> list[TemplateSize]:
    return list(template.sizes.all())


def _check(what: str, value: int, low: int, high: int, unit: str, code: str) -> None:
    if not low <= value <= high:
        # Memory in the words people pick it in (the launcher asks GiB): 3 GiB, 1536 MiB.
        say = _gib if unit == "MiB" else lambda amount: f"{amount} {unit}"
        span = say(low) if low == high else f"{say(low)} to {say(high)}"
        raise ServiceError(
            gettext("%(say)s is outside what this template allows for %(what)s: %(span)s.")
            % {"say": say(value), "what": what, "span": span},
            code=code,
        )


def _hard_bounds(vcpus: int, memory_mib: int, disk_gib: int) -> None:
    """Numbers no template allows, whatever it says: checked first so nothing larger reaches a query."""
    _check("vCPUs", vcpus, 1, MAX_VCPUS, "vCPU", "vcpus_out_of_bounds")
    _check("memory", memory_mib, MIN_MEMORY_MIB, MAX_MEMORY_MIB, "MiB", "memory_out_of_bounds")
    _check("disk", disk_gib, 1, MAX_DISK_GIB, "GiB", "disk_out_of_bounds")


def resolve(
    template: DesktopTemplate,
    *,
    size: str = "",
    vcpus: int | None = None,
    memory_mib: int | None = None,
    disk_gib: int | None = None,
    base: Size | None = None,
) -> Size:
    """The size a request asks for, checked against the template; `base` fills what it leaves out."""
    base = base or default_size(template)
    if size:
        if any(value is not None for value in (vcpus, memory_mib, disk_gib)):
            raise ServiceError(
                gettext("Give a named size or vcpus/memory_mib/disk_gib, not both."), code="size_conflict"
            )
        named = template.sizes.filter(name=size).first()
        if named is None:
            offered = ", ".join(s.name for s in named_sizes(template)) or "none"
            raise ServiceError(f"{template.name} has no size named {size!r} (offered: {offered}).", code="size_unknown")
        return Size(vcpus=named.vcpus, memory_mib=named.memory_mib, disk_gib=named.disk_gib, name=named.name)
    wanted = Size(
        vcpus=base.vcpus if vcpus is None else vcpus,
        memory_mib=base.memory_mib if memory_mib is None else memory_mib,
        disk_gib=base.disk_gib if disk_gib is None else disk_gib,
    )
    _hard_bounds(wanted.vcpus, wanted.memory_mib, wanted.disk_gib)
    # A shape equal to a named size is that size (its price), wherever it came from.
    for named in named_sizes(template):
        if (named.vcpus, named.memory_mib, named.disk_gib) == (wanted.vcpus, wanted.memory_mib, wanted.disk_gib):
            return Size(vcpus=named.vcpus, memory_mib=named.memory_mib, disk_gib=named.disk_gib, name=named.name)
    limits, default = bounds(template), default_size(template)
    # A dimension left as the desktop has it, or at the template's default, stays allowed even if the
    # template's ranges changed since: a resize of the disk alone never fails on the vCPUs.
    for what, attr, unit, code in (
        ("vCPUs", "vcpus", "vCPU", "vcpus_out_of_bounds"),
        ("memory", "memory_mib", "MiB", "memory_out_of_bounds"),
        ("disk", "disk_gib", "GiB", "disk_out_of_bounds"),
    ):
        value = getattr(wanted, attr)
        low, high = getattr(limits, attr)
        if value not in (getattr(base, attr), getattr(default, attr)):
            _check(what, value, low, high, unit, code)
    return wanted


def extra_per_hour(template: DesktopTemplate, size: Size) -> Decimal:
    """What the size adds to (or takes off) the template's price per hour."""
    if size.name:
        named = template.sizes.filter(name=size.name).first()
        if named is not None and named.extra_per_hour is not None:
            return named.extra_per_hour
    default = default_size(template)
    extra = (
        template.price_per_vcpu_hour * (size.vcpus - default.vcpus)
        + template.price_per_gib_ram_hour * Decimal(size.memory_mib - default.memory_mib) / GIB_MIB
        + template.price_per_disk_gib_hour * (size.disk_gib - default.disk_gib)
    )
    return extra.quantize(Decimal("0.0001"))


def price_per_hour(template: DesktopTemplate, size: Size, *, base: Decimal | None = None) -> Decimal:
    """The size's price per hour: the template's (or `base`, the one in force) plus the size's extra; never < 0."""
    price = (template.price_per_hour if base is None else base) + extra_per_hour(template, size)
    return max(price, Decimal(0))


def options(template: DesktopTemplate) -> list[dict]:
    """The sizes a launcher offers: the default, then the named sizes, each with its price per hour."""
    choices = [("", f"Default: {default_size(template).label}", default_size(template))]
    for named in named_sizes(template):
        size = Size(vcpus=named.vcpus, memory_mib=named.memory_mib, disk_gib=named.disk_gib, name=named.name)
        choices.append((named.name, size.label, size))
    return [
        {"name": name, "label": label, "size": size, "price_per_hour": price_per_hour(template, size)}
        for name, label, size in choices
    ]


def may_choose(*, tenant: Tenant, actor) -> bool:
    """The tenant's resize policy: members within bounds, or admins only (the system, actor None, always may)."""
    if tenant.resize_policy != ResizePolicy.ADMINS or actor is None:
        return True
    return Membership.objects.for_tenant(tenant).admins().filter(user_id=actor.pk).exists()


def ensure_may_choose(*, tenant: Tenant, actor, what: str) -> None:
    if not may_choose(tenant=tenant, actor=actor):
        raise Forbidden(
            gettext("In %(name)s only admins may %(what)s; ask one of them.") % {"name": tenant.name, "what": what},
            code="resize_admins_only",
        )


def ensure_host_room(*, template: DesktopTemplate, size: Size) -> None:
    """Refuse a size no enabled host could take now (its largest free slot is smaller): 409 no_host_capacity."""
    request = scheduling.PlacementRequest(
        desktop_id=0,
        vcpus=size.vcpus,
        memory_mib=size.memory_mib,
        image_id=template.image_id,
        gpu_profile=template.gpu_profile,
        **placement_needs(template),
    )
    if not scheduling.rank(request, limit=1):
        raise Conflict(
            gettext("No host has room for %(vcpus)s vCPU and %(gib)s RAM right now; choose a smaller size.")
            % {"vcpus": size.vcpus, "gib": _gib(size.memory_mib)},
            code="no_host_capacity",
        )
