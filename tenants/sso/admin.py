"""Operators' view of the email domains tenants route to their providers: who claims what, and in what state.

Read-only: a tenant adds and removes its domains in its admin console (tenants.sso.domains audits both). An
operator may look a record up again now, through the same check a tenant's Verify runs.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from quetzal.errors import ServiceError
from tenants.addresses import client_ip
from tenants.sso import domains
from tenants.sso.choices import DomainStatus
from tenants.sso.models import EmailDomain


@admin.register(EmailDomain)
class EmailDomainAdmin(admin.ModelAdmin):
    list_display = [
        "domain",
        "tenant",
        "provider",
        "status",
        "grandfathered",
        "verified_at",
        "last_checked_at",
        "problem",
    ]
    list_filter = ["status", "grandfathered"]
    search_fields = ["domain", "tenant__name", "tenant__slug"]
    list_select_related = ["tenant", "provider"]
    ordering = ["domain", "tenant__name"]
    actions = ["check_now"]

    @admin.display(description=_("last problem"))
    def problem(self, row: EmailDomain) -> str:
        return row.last_error

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # a removal is the tenant's, through its console (audited there)

    @admin.action(description=_("Look the DNS record up again now"), permissions=["view"])
    def check_now(self, request, queryset) -> None:
        ip = client_ip(request)
        checked = []
        for row in queryset:
            try:
                checked.append(domains.check(domain=row, actor=request.user, ip=ip))
            except ServiceError as error:  # removed by its tenant meanwhile
                messages.warning(request, f"{row.domain}: {error.detail}")
        verified = sum(1 for row in checked if row.status == DomainStatus.VERIFIED)
        messages.info(
            request,
            gettext("Checked %(count)s domain(s): %(verified)s verified.")
            % {"count": len(checked), "verified": verified},
        )
