"""Templates private to a tenant: its admins create and change them; operators own the public ones."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from desktops.choices import Visibility
from desktops.models import DesktopTemplate
from desktops.models.template import TemplateQuerySet
from quetzal.errors import LimitExceeded, NotFound, ServiceError
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
    "cloud_init_user",
    "cloud_init_password",
    "cloud_init_ssh_key",
    "cloud_init_packages",
    "enabled",
)
# Never copied into the audit log.
SECRET_FIELDS = frozenset({"cloud_init_password"})


def launchable(templates: TemplateQuerySet, tenant: Tenant | None) -> TemplateQuerySet:
    """The templates a tenant's people may launch: the scope of every template id a request writes."""
    return templates.launchable_by(tenant)


def _check_quotas(tenant: Tenant, template: DesktopTemplate) -> None:
    """A template bigger than the tenant may ever run would only produce refusals at launch."""
    if tenant.quota_vcpus and template.vcpus > tenant.quota_vcpus:
        raise LimitExceeded(
            f"{template.vcpus} vCPUs is more than your organisation's quota of {tenant.quota_vcpus}.",
            code="quota_vcpus",
        )
    if tenant.quota_ram_mib and template.memory_mib > tenant.quota_ram_mib:
        raise LimitExceeded(
            f"{template.memory_mib} MiB is more than your organisation's RAM quota of {tenant.quota_ram_mib} MiB.",
            code="quota_ram",
        )


def _auditable(value: Any) -> Any:
    return value.pk if hasattr(value, "pk") else value


def save_private_template(
    *, tenant: Tenant, actor, values: dict[str, Any], template: DesktopTemplate | None = None, ip: str | None = None
) -> DesktopTemplate:
    """Create or change one of the tenant's own templates, recording what changed."""
    unknown = set(values) - set(TENANT_FIELDS)
    if unknown:
        raise ServiceError(f"Unknown template field: {', '.join(sorted(unknown))}.", code="invalid_field")
    if template is not None and not DesktopTemplate.objects.for_tenant(tenant).filter(pk=template.pk).exists():
        raise NotFound("No such template in your organisation.")
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
