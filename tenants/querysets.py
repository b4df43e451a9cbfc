"""The one tenant filter every tenant-owned model uses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Self

from django.db import models
from django.utils.translation import gettext_lazy as _


class TenantQuerySet(models.QuerySet):
    """A queryset that knows how to restrict itself to one tenant."""

    tenant_field = "tenant"

    def for_tenant(self, tenant) -> Self:
        """Rows of this tenant only; no tenant means no rows, never all rows."""
        if tenant is None:
            return self.none()
        return self.filter(**{self.tenant_field: tenant})


class TenantOwned(models.Model):
    """Abstract base for models that belong to exactly one tenant."""

    tenant = models.ForeignKey("tenants.Tenant", verbose_name=_("tenant"), on_delete=models.CASCADE, related_name="+")

    objects = TenantQuerySet.as_manager()

    class Meta:
        abstract = True


def is_tenant_owned(model: type[models.Model]) -> bool:
    """Whether rows of this model belong to tenants: its default queryset knows `for_tenant`."""
    return callable(getattr(model._default_manager.all(), "for_tenant", None))


# (queryset, tenant) -> the rows of it that tenant may name; scoped_to is the default, templates pass theirs.
Scope = Callable[[models.QuerySet, Any], models.QuerySet]


def scoped_to(queryset: models.QuerySet, tenant) -> models.QuerySet:
    """The rows of `queryset` the tenant may use, by the model's own `for_tenant` (the same scope reads use)."""
    if not callable(getattr(queryset, "for_tenant", None)):
        raise TypeError(f"{queryset.model.__name__} rows have no tenant scope (no for_tenant on its queryset).")
    return queryset.all().for_tenant(tenant)
