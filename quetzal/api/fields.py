"""The one way an API request names another row: through the active tenant's scope, like reads."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db.models import QuerySet
from django.utils.translation import gettext
from rest_framework import serializers

from quetzal.api.serializers import ModelSerializer
from quetzal.errors import NotFound
from tenants.querysets import Scope, is_tenant_owned, scoped_to

# (queryset already scoped to the tenant, request) -> a narrower queryset, e.g. the caller's own desktops.
Narrowing = Callable[[QuerySet, Any], QuerySet]


class TenantScopedPrimaryKeyRelatedField(serializers.PrimaryKeyRelatedField):
    """A writable reference by id that resolves only rows the request's active tenant may use.

    The queryset is narrowed with the model's own `for_tenant()`, or with `scope` where a reference
    means something else (a template a tenant may launch), so a write follows the same scope as a
    read. An id outside it is a 404 with
    `not_found_code`, as reading that row would be; a malformed id stays a 400. Without a request or
    a tenant in the serializer's context nothing resolves.
    """

    def __init__(
        self,
        *,
        not_found_code: str = "not_found",
        not_found_detail: str | None = None,
        scope: Scope = scoped_to,
        narrow: Narrowing | None = None,
        **kwargs: Any,
    ) -> None:
        self.scope = scope
        self.not_found_code = not_found_code
        self.not_found_detail = not_found_detail
        self.narrow = narrow
        super().__init__(**kwargs)
        if self.queryset is not None and not is_tenant_owned(self.queryset.model):
            raise TypeError(f"{self.queryset.model.__name__} is not tenant-owned: it has no for_tenant scope.")

    def get_queryset(self) -> QuerySet:
        request = self.context.get("request")
        queryset = self.scope(super().get_queryset(), getattr(request, "tenant", None))
        return self.narrow(queryset, request) if self.narrow else queryset

    def to_internal_value(self, data: Any) -> Any:
        try:
            return super().to_internal_value(data)
        except serializers.ValidationError as error:
            if error.get_codes() != ["does_not_exist"]:
                raise
            # Raised past the serializer's error collection on purpose: another tenant's row is a 404.
            detail = self.not_found_detail or gettext("No such %(object)s in your organisation.") % {
                "object": self.queryset.model._meta.verbose_name
            }
            raise NotFound(detail, code=self.not_found_code) from None


class TenantScopedModelSerializer(ModelSerializer):
    """A ModelSerializer whose generated foreign-key fields to tenant-owned models are tenant-scoped."""

    serializer_related_field = TenantScopedPrimaryKeyRelatedField

    def build_relational_field(self, field_name: str, relation_info: Any) -> tuple[type, dict]:
        field_class, kwargs = super().build_relational_field(field_name, relation_info)
        if field_class is TenantScopedPrimaryKeyRelatedField and not is_tenant_owned(relation_info.related_model):
            # Rows no tenant owns (images, hosts) are shared; writable references to them are allow-listed
            # in the isolation tests.
            field_class = serializers.PrimaryKeyRelatedField
        return field_class, kwargs
