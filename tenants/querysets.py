"""The one tenant filter every tenant-owned model uses."""

from __future__ import annotations

from typing import Self

from django.db import models


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

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")

    objects = TenantQuerySet.as_manager()

    class Meta:
        abstract = True
