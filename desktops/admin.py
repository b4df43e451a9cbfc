"""Operators' admin for templates, desktops, operations and pools."""

from __future__ import annotations

from django.contrib import admin, messages
from django.utils.html import format_html

from desktops.choices import OperationKind
from desktops.models import Desktop, DesktopTemplate, Operation, Pool
from desktops.services.requests import request_action
from quetzal.errors import ServiceError


@admin.register(DesktopTemplate)
class DesktopTemplateAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "os_family",
        "vcpus",
        "memory_mib",
        "disk_gib",
        "gpu_kind",
        "price_per_hour",
        "visibility",
        "tenant",
        "enabled",
    ]
    list_filter = ["os_family", "gpu_kind", "visibility", "enabled"]
    search_fields = ["name"]
    autocomplete_fields = ["tenant"]


class OperationInline(admin.TabularInline):
    model = Operation
    extra = 0
    can_delete = False
    fields = ["kind", "status", "step", "queued_at", "finished_at", "error_code", "error"]
    readonly_fields = fields
    ordering = ["-queued_at"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


def _bulk(kind: str, label: str):
    @admin.action(description=label)
    def run(modeladmin, request, queryset):
        done = 0
        for desktop in queryset:
            try:
                request_action(desktop=desktop, kind=kind, actor=request.user)
                done += 1
            except ServiceError as error:
                messages.warning(request, f"{desktop}: {error.detail}")
        messages.success(request, f"Queued {kind} for {done} desktop(s).")

    run.__name__ = f"bulk_{kind}"
    return run


@admin.register(Desktop)
class DesktopAdmin(admin.ModelAdmin):
    list_display = ["name", "tenant", "user", "kind", "state_badge", "host", "vcpus", "memory_mib", "running_since"]
    list_filter = ["state", "kind", "tenant", "host"]
    search_fields = ["name", "user__email", "tenant__name"]
    readonly_fields = [
        "state",
        "state_changed_at",
        "status_reason",
        "domain_uuid",
        "host",
        "disk_volume",
        "seed_volume",
        "running_since",
        "last_activity_at",
        "consoles_open",
        "deleted_at",
    ]
    inlines = [OperationInline]
    actions = [
        _bulk(OperationKind.START, "Start"),
        _bulk(OperationKind.STOP, "Stop"),
        _bulk(OperationKind.REBOOT, "Reboot"),
        _bulk(OperationKind.HIBERNATE, "Hibernate"),
        _bulk(OperationKind.DELETE, "Delete"),
    ]

    @admin.display(description="State", ordering="state")
    def state_badge(self, desktop: Desktop) -> str:
        return format_html('<span class="badge {}">{}</span>', desktop.state, desktop.get_state_display())


@admin.register(Operation)
class OperationAdmin(admin.ModelAdmin):
    list_display = ["id", "desktop", "kind", "status", "step", "queued_at", "finished_at", "error_code"]
    list_filter = ["status", "kind"]
    search_fields = ["desktop__name", "error"]
    readonly_fields = [f.name for f in Operation._meta.fields]


@admin.register(Pool)
class PoolAdmin(admin.ModelAdmin):
    list_display = ["name", "tenant", "template", "min_ready", "max_size", "warm_state", "ready", "enabled"]
    list_filter = ["enabled", "warm_state"]

    @admin.display(description="Warm now")
    def ready(self, pool: Pool) -> int:
        return pool.ready_count()
