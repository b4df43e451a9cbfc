"""The one way a page form names another row: a choice bound to the request's tenant, like reads."""

from __future__ import annotations

from typing import Any

from django import forms
from django.db import models
from django.db.models import QuerySet

from tenants.querysets import Scope, is_tenant_owned, scoped_to


class TenantScopedModelChoiceField(forms.ModelChoiceField):
    """A choice of one row among those the form's tenant may use (the model's `for_tenant()`, or `scope`).

    Until the form binds it to a tenant it offers and accepts nothing, so a form built without one
    fails closed. The form may narrow the bound choices further (e.g. the person's own tokens).
    """

    def __init__(self, queryset: QuerySet, *, scope: Scope = scoped_to, **kwargs: Any) -> None:
        if not is_tenant_owned(queryset.model):
            raise TypeError(f"{queryset.model.__name__} is not tenant-owned: it has no for_tenant scope.")
        self.unscoped = queryset
        self.scope = scope
        error_messages = {
            "invalid_choice": f"No such {queryset.model._meta.verbose_name} in your organisation.",
            **(kwargs.pop("error_messages", None) or {}),
        }
        super().__init__(queryset.none(), error_messages=error_messages, **kwargs)

    def bind(self, tenant) -> None:
        """Offer and accept only the tenant's rows (and what the model field's limit_choices_to allows)."""
        queryset = self.scope(self.unscoped, tenant)
        limit = self.get_limit_choices_to()
        self.queryset = queryset.complex_filter(limit) if limit else queryset


class TenantScopedFormMixin:
    """Takes the tenant the request works in and binds every tenant-scoped choice field to it."""

    def __init__(self, *args: Any, tenant, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tenant = tenant
        for field in self.fields.values():
            if isinstance(field, TenantScopedModelChoiceField):
                field.bind(tenant)


def tenant_scoped_formfield(db_field: models.Field, **kwargs: Any) -> forms.Field | None:
    """Form field for a model field: a foreign key to a tenant-owned model becomes a scoped choice."""
    if isinstance(db_field, models.ForeignKey) and is_tenant_owned(db_field.related_model):
        return db_field.formfield(form_class=TenantScopedModelChoiceField, **kwargs)
    return db_field.formfield(**kwargs)


class TenantScopedForm(TenantScopedFormMixin, forms.Form):
    """A form whose references resolve in the tenant given as `tenant=`."""


class TenantScopedModelForm(TenantScopedFormMixin, forms.ModelForm):
    """A ModelForm whose generated foreign keys to tenant-owned models are scoped to `tenant=`.

    Subclasses inherit the callback by declaring `class Meta(TenantScopedModelForm.Meta)`.
    """

    class Meta:
        formfield_callback = tenant_scoped_formfield
