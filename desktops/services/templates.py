"""Templates private to a tenant: its admins create and change them and their named sizes; operators own the rest."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext

from desktops.choices import Visibility
from desktops.models import DesktopTemplate, TemplateSize
from desktops.models.template import TemplateQuerySet
from desktops.services import quotas
from quetzal.errors import Conflict, LimitExceeded, NotFound, ServiceError
from tenants import events
from tenants.models import Tenant

# What a tenant admin may set. Price stays with operators: it is what billing charges.
TENANT_FIELDS = (
    "name",
    "description",
    "os_family",
    "image",
    "vcpus",
    "memory_mib",
    "disk_gib",
    # The ranges people may pick sizes from (the per-unit prices stay with operators, like the price).
    "min_vcpus",
    "max_vcpus",
    "min_memory_mib",
    "max_memory_mib",
    "max_disk_gib",
    "gpu_kind",
    "gpu_mdev_type",
    # The virtual PC (desktops.services.guest_platform): empty follows the OS family.
    "firmware",
    "tpm",
    "virtio_drivers",
    "cloud_init_user",
    "cloud_init_password",
    "cloud_init_ssh_key",
    "cloud_init_packages",
    "keyboard_layout",
    "automation_exec_enabled",
    "enabled",
)
# Never copied into the audit log.
SECRET_FIELDS = frozenset({"cloud_init_password"})
# The ranges people may pick custom sizes from (a part of TENANT_FIELDS the sizes page sets).
RANGE_FIELDS = ("min_vcpus", "max_vcpus", "min_memory_mib", "max_memory_mib", "max_disk_gib")
# What a tenant admin may set on a named size; its extra price per hour stays with operators.
SIZE_FIELDS = ("name", "vcpus", "memory_mib", "disk_gib")
DIMENSIONS = ("vcpus", "memory_mib", "disk_gib")
# Named sizes per template: a launcher's list, not a catalogue.
MAX_SIZES_PER_TEMPLATE = 20


def launchable(templates: TemplateQuerySet, tenant: Tenant | None) -> TemplateQuerySet:
    """The templates a tenant's people may launch: the scope of every template id a request writes."""
    return templates.launchable_by(tenant)


def _check_quotas(tenant: Tenant, template: DesktopTemplate) -> None:
    """A template bigger than the tenant may ever run would only produce refusals at launch."""
    if tenant.quota_vcpus and template.vcpus > tenant.quota_vcpus:
        raise LimitExceeded(
            gettext("%(vcpus)s vCPUs is more than your organisation's quota of %(quota_vcpus)s.")
            % {"vcpus": template.vcpus, "quota_vcpus": tenant.quota_vcpus},
            code="quota_vcpus",
        )
    if tenant.quota_ram_mib and template.memory_mib > tenant.quota_ram_mib:
        raise LimitExceeded(
            gettext("%(memory_mib)s MiB is more than your organisation's RAM quota of %(quota_ram_mib)s MiB.")
            % {"memory_mib": template.memory_mib, "quota_ram_mib": tenant.quota_ram_mib},
            code="quota_ram",
        )


def _check_ranges(template: DesktopTemplate) -> None:
    """The ranges people pick from are ordered and hold the default size (a launch without a size always works)."""
    for what, unit, low, high, default in (
        ("vCPUs", "vCPU", template.min_vcpus, template.max_vcpus, template.vcpus),
        ("memory", "MiB", template.min_memory_mib, template.max_memory_mib, template.memory_mib),
    ):
        if low is not None and high is not None and low > high:
            raise ServiceError(
                gettext("The smallest %(what)s (%(low)s %(unit)s) is more than the largest (%(high)s %(unit)s).")
                % {"what": what, "low": low, "unit": unit, "high": high},
                code="range_invalid",
            )
        if (low is not None and default < low) or (high is not None and default > high):
            span = f"at most {high}" if low is None else f"at least {low}" if high is None else f"{low} to {high}"
            raise ServiceError(
                gettext(
                    "The default size's %(what)s (%(default)s %(unit)s) must lie within the range people may pick "
                    "(%(span)s)."
                )
                % {"what": what, "default": default, "unit": unit, "span": span},
                code="range_excludes_default",
            )
    if template.max_disk_gib is not None and template.max_disk_gib < template.disk_gib:
        raise ServiceError(
            gettext(
                "The largest disk (%(max_disk_gib)s GiB) is smaller than the default disk "
                "(%(disk_gib)s GiB); disks only grow from the default."
            )
            % {"max_disk_gib": template.max_disk_gib, "disk_gib": template.disk_gib},
            code="range_excludes_default",
        )


def _auditable(value: Any) -> Any:
    return value.pk if hasattr(value, "pk") else value


def save_private_template(
    *, tenant: Tenant, actor, values: dict[str, Any], template: DesktopTemplate | None = None, ip: str | None = None
) -> DesktopTemplate:
    """Create or change one of the tenant's own templates, recording what changed."""
    unknown = set(values) - set(TENANT_FIELDS)
    if unknown:
        raise ServiceError(
            gettext("Unknown template field: %(join)s.") % {"join": ", ".join(sorted(unknown))}, code="invalid_field"
        )
    if template is not None and not DesktopTemplate.objects.for_tenant(tenant).filter(pk=template.pk).exists():
        raise NotFound(gettext("No such template in your organisation."))
    creating = template is None
    with transaction.atomic():
        if template is None:
            template = DesktopTemplate(tenant=tenant, visibility=Visibility.TENANT)
            before: dict[str, Any] = {}
        else:
            template = DesktopTemplate.objects.select_for_update().get(pk=template.pk)
            before = {key: _auditable(getattr(template, key)) for key in values}
        for key, value in values.items():
            setattr(template, key, value)
        _check_quotas(tenant, template)
        _check_ranges(template)
        try:
            template.full_clean()
        except ValidationError as error:
            raise ServiceError("; ".join(error.messages), code="invalid_template") from None
        template.save()
        after = {key: _auditable(value) for key, value in values.items()}
        changed = {key for key in after if creating or before.get(key) != after[key]}
        events.template_saved(
            actor=actor,
            tenant=tenant,
            template=template,
            created=creating,
            changed=sorted(changed),
            after={k: v for k, v in after.items() if k in changed and k not in SECRET_FIELDS},
            ip=ip,
        )
    return template


# --- named sizes -----------------------------------------------------------------------------------


def _own_template(tenant: Tenant, template: DesktopTemplate) -> DesktopTemplate:
    """The tenant's own template, locked: adds to one template are counted and named one at a time."""
    found = DesktopTemplate.objects.for_tenant(tenant).select_for_update().filter(pk=template.pk).first()
    if found is None:
        raise NotFound(gettext("No such template in your organisation."))
    return found


def _shape(size: TemplateSize) -> dict[str, Any]:
    return {key: getattr(size, key) for key in SIZE_FIELDS}


def _check_size(tenant: Tenant, template: DesktopTemplate, size: TemplateSize) -> None:
    name = (size.name or "").strip()
    if template.sizes.filter(name__iexact=name).exclude(pk=size.pk).exists():
        raise Conflict(f"{template.name} already has a size named {name!r}.", code="size_name_taken")
    try:
        # The unique name is checked above, ignoring case, so "Large" and "large" are not two sizes.
        size.full_clean(validate_constraints=False)
    except ValidationError as error:
        raise ServiceError("; ".join(error.messages), code="invalid_size") from None
    if size.disk_gib < template.disk_gib:
        raise ServiceError(
            gettext(
                "A size's disk must be at least the template's %(disk_gib)s GiB: "
                "desktops are cloned at the template's disk and disks never shrink."
            )
            % {"disk_gib": template.disk_gib},
            code="disk_below_default",
        )
    # A size bigger than the organisation may ever run would only produce refusals at launch.
    quotas.ensure_size_fits_quotas(tenant=tenant, vcpus=size.vcpus, memory_mib=size.memory_mib)


def save_size(
    *,
    tenant: Tenant,
    actor,
    template: DesktopTemplate,
    values: dict[str, Any],
    size: TemplateSize | None = None,
    ip: str | None = None,
) -> TemplateSize:
    """Add a named size to one of the tenant's templates, or change one (`size`), recording what changed."""
    unknown = set(values) - set(SIZE_FIELDS)
    if unknown:
        raise ServiceError(
            gettext("Unknown size field: %(join)s.") % {"join": ", ".join(sorted(unknown))}, code="invalid_field"
        )
    with transaction.atomic():
        template = _own_template(tenant, template)
        if size is None:
            if template.sizes.count() >= MAX_SIZES_PER_TEMPLATE:
                raise LimitExceeded(
                    gettext("%(name)s has %(MAX_SIZES_PER_TEMPLATE)s sizes already; change or remove one.")
                    % {"name": template.name, "MAX_SIZES_PER_TEMPLATE": MAX_SIZES_PER_TEMPLATE},
                    code="too_many_sizes",
                )
            size, before = TemplateSize(template=template), None
        else:
            size = (
                TemplateSize.objects.for_tenant(tenant)
                .select_for_update()
                .filter(pk=size.pk, template=template)
                .first()
            )
            if size is None:
                raise NotFound(gettext("No such size in your organisation."))
            before = _shape(size)
        for key, value in values.items():
            setattr(size, key, value.strip() if isinstance(value, str) else value)
        resized = before is not None and any(before[key] != getattr(size, key) for key in DIMENSIONS)
        if resized and size.extra_per_hour is not None:
            # The operators priced the old shape; the new one costs what the template's per-unit rates say.
            size.extra_per_hour = None
        _check_size(tenant, template, size)
        size.save()
        events.template_size_changed(
            actor=actor,
            tenant=tenant,
            size=size,
            change="create" if before is None else "update",
            before=before,
            after=_shape(size),
            ip=ip,
        )
    return size


def delete_size(*, tenant: Tenant, actor, size: TemplateSize, ip: str | None = None) -> None:
    """Remove a named size; desktops already at it keep their vCPUs, RAM and disk."""
    with transaction.atomic():
        # The template first, as save_size locks them: a delete and a save of one template never deadlock.
        template = _own_template(tenant, size.template)
        found = (
            TemplateSize.objects.for_tenant(tenant).select_for_update().filter(pk=size.pk, template=template).first()
        )
        if found is None:
            raise NotFound(gettext("No such size in your organisation."))
        events.template_size_changed(
            actor=actor, tenant=tenant, size=found, change="delete", before=_shape(found), ip=ip
        )
        found.delete()
