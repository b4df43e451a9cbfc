"""Operators' admin for tenants, people and the audit log."""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.db.models import Count, Q
from django.utils.html import format_html
from django.utils.translation import gettext

from tenants.choices import TenantStatus
from tenants.models import ApiToken, AuditEvent, Invitation, Membership, Tenant, User
from tenants.services import tenants as tenant_services


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "slug",
        "status_badge",
        "members",
        "desktops_running",
        "quota_desktops",
        "quota_vcpus",
        "quota_ram_mib",
        "max_running_per_user",
        "require_2fa",
    ]
    list_filter = ["status", "require_2fa"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]
    actions = ["approve", "suspend", "reactivate"]
    fieldsets = [
        (None, {"fields": ["name", "slug", "status"]}),
        (
            "Quotas (0 means no limit)",
            {"fields": ["quota_desktops", "quota_vcpus", "quota_ram_mib", "max_running_per_user"]},
        ),
        (
            "Policies",
            {
                "fields": [
                    "require_2fa",
                    "idle_timeout_minutes",
                    "idle_action",
                    "inactivity_logout_minutes",
                    "max_session_hours",
                    "allow_admin_console_access",
                    "recording_enabled",
                    "clipboard_to_desktop",
                    "clipboard_from_desktop",
                    "audio_enabled",
                    "recording_retention_days",
                    "max_consoles_per_person",
                    "max_consoles_per_tenant",
                ],
                "classes": ["collapse"],
            },
        ),
    ]

    # Suspension goes through the actions (set_status), so it is audited and billing hears of it.
    readonly_fields = ["status"]

    def save_model(self, request, obj, form, change) -> None:
        policies = {f: form.cleaned_data[f] for f in form.changed_data if f in tenant_services.POLICY_FIELDS}
        if change and policies and len(policies) == len(form.changed_data):
            # Quotas and policies changed by an operator are audited like a tenant admin's change.
            tenant_services.update_policies(tenant=obj, changes=policies, actor=request.user)
            return
        super().save_model(request, obj, form, change)

    def get_queryset(self, request):
        running = Count("desktops", filter=Q(desktops__state="running"), distinct=True)
        people = Count("memberships", distinct=True)
        return super().get_queryset(request).annotate(running_count=running, member_count=people)

    @admin.display(description="Status", ordering="status")
    def status_badge(self, tenant: Tenant) -> str:
        tone = {TenantStatus.ACTIVE: "ok", TenantStatus.PENDING: "warn"}.get(tenant.status, "bad")
        return format_html('<span class="q-badge {}">{}</span>', tone, tenant.get_status_display())

    @admin.display(description="People", ordering="member_count")
    def members(self, tenant: Tenant) -> int:
        return tenant.member_count

    @admin.display(description="Running", ordering="running_count")
    def desktops_running(self, tenant: Tenant) -> int:
        return tenant.running_count

    @admin.action(description="Approve selected tenants (self-service sign-ups)")
    def approve(self, request, queryset):
        approved = [t.name for t in queryset if tenant_services.approve(tenant=t, actor=request.user)]
        if approved:
            messages.success(
                request,
                gettext("Approved %(join)s; their quotas are as set on each tenant.") % {"join": ", ".join(approved)},
            )
        else:
            messages.warning(request, gettext("None of the selected tenants was pending approval."))

    @admin.action(description="Suspend selected tenants")
    def suspend(self, request, queryset):
        for tenant in queryset:
            tenant_services.set_status(tenant=tenant, status=TenantStatus.SUSPENDED, actor=request.user, reason="admin")
        messages.success(request, gettext("Suspended %(count)s tenant(s).") % {"count": queryset.count()})

    @admin.action(description="Reactivate selected tenants")
    def reactivate(self, request, queryset):
        for tenant in queryset:
            tenant_services.set_status(tenant=tenant, status=TenantStatus.ACTIVE, actor=request.user, reason="admin")
        messages.success(request, gettext("Reactivated %(count)s tenant(s).") % {"count": queryset.count()})


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    ordering = ["email"]
    list_display = ["email", "full_name", "is_staff", "is_active", "date_joined"]
    search_fields = ["email", "full_name"]
    fieldsets = [
        (None, {"fields": ["email", "password", "full_name"]}),
        ("Permissions", {"fields": ["is_active", "is_staff", "is_superuser", "groups", "user_permissions"]}),
        ("Dates", {"fields": ["last_login", "date_joined"]}),
    ]
    add_fieldsets = [(None, {"classes": ["wide"], "fields": ["email", "password1", "password2"]})]
    inlines = [MembershipInline]


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = ["email", "tenant", "role", "created_at", "expires_at", "accepted_at", "revoked_at"]
    list_filter = ["role"]
    search_fields = ["email", "tenant__name"]
    readonly_fields = ["token_hash"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "prefix", "user", "tenant", "created_at", "last_used_at", "revoked_at"]
    search_fields = ["name", "user__email"]
    readonly_fields = ["token_hash", "prefix"]


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["created_at", "tenant", "actor", "action", "target_repr", "ip_address"]
    list_filter = ["action"]
    search_fields = ["action", "target_repr", "actor__email"]
    date_hierarchy = "created_at"

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_add_permission(self, request) -> bool:
        return False
