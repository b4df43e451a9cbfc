"""Operators' admin for templates, desktops, operations and pools."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import Count, Q
from django.utils.html import format_html
from django.utils.translation import gettext

from desktops.choices import TRANSITIONAL_STATES, DesktopState, OperationKind
from desktops.models import Desktop, DesktopTemplate, Operation, Pool, TemplateSize
from desktops.services.requests import request_action
from quetzal.errors import ServiceError

_TONES = {
    DesktopState.RUNNING: "ok",
    DesktopState.ERROR: "bad",
    DesktopState.HIBERNATED: "sleep",
    DesktopState.SUSPENDED: "sleep",
    **{state: "busy" for state in TRANSITIONAL_STATES},
}


class TemplateSizeInline(admin.TabularInline):
    """Named sizes ("Large: 4 vCPU / 16 GiB") with the operators' extra price per hour."""

    model = TemplateSize
    extra = 0
    fields = ["name", "vcpus", "memory_mib", "disk_gib", "extra_per_hour"]


@admin.register(DesktopTemplate)
class DesktopTemplateAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "os_family",
        "size",
        "gpu_kind",
        "price_per_hour",
        "visibility",
        "tenant",
        "image",
        "desktops_alive",
        "enabled",
    ]
    list_filter = ["visibility", "os_family", "gpu_kind", "enabled", "image"]
    list_select_related = ["tenant", "image"]
    search_fields = ["name", "tenant__name"]
    autocomplete_fields = ["tenant"]
    inlines = [TemplateSizeInline]
    fieldsets = [
        (None, {"fields": ["name", "description", "os_family", "image", "enabled"]}),
        ("Default size", {"fields": ["vcpus", "memory_mib", "disk_gib", "gpu_kind", "gpu_mdev_type"]}),
        (
            "Sizes people may pick (empty: the default only) and their prices per unit away from the default",
            {
                "fields": [
                    ("min_vcpus", "max_vcpus"),
                    ("min_memory_mib", "max_memory_mib"),
                    "max_disk_gib",
                    ("price_per_vcpu_hour", "price_per_gib_ram_hour", "price_per_disk_gib_hour"),
                ]
            },
        ),
        (
            "Virtual PC (empty follows the OS family: Windows gets UEFI with Secure Boot and a TPM 2.0)",
            {"fields": ["firmware", "tpm", "virtio_drivers", "clipboard_channel", "sound"]},
        ),
        ("Who may launch it, at what price", {"fields": ["visibility", "tenant", "price_per_hour"]}),
        ("Automation", {"fields": ["automation_exec_enabled", "keyboard_layout"]}),
        (
            "First boot (cloud-init)",
            {
                "fields": ["cloud_init_user", "cloud_init_password", "cloud_init_ssh_key", "cloud_init_packages"],
                "classes": ["collapse"],
            },
        ),
    ]

    def get_queryset(self, request):
        alive = Count("desktops", filter=~Q(desktops__state=DesktopState.DELETED))
        return super().get_queryset(request).annotate(alive_count=alive)

    @admin.display(description="Size")
    def size(self, template: DesktopTemplate) -> str:
        return f"{template.vcpus} vCPU · {template.memory_mib} MiB · {template.disk_gib} GiB"

    @admin.display(description="Desktops", ordering="alive_count")
    def desktops_alive(self, template: DesktopTemplate) -> int:
        return template.alive_count


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
        messages.success(request, gettext("Queued %(kind)s for %(done)s desktop(s).") % {"kind": kind, "done": done})

    run.__name__ = f"bulk_{kind}"
    return run


@admin.register(Desktop)
class DesktopAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "tenant",
        "user",
        "kind",
        "state_badge",
        "host",
        "vcpus",
        "memory_mib",
        "running_since",
    ]
    list_filter = ["state", "kind", "tenant", "host"]
    list_select_related = ["tenant", "user", "host", "template"]
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
        _bulk(OperationKind.RESUME, "Resume"),
        _bulk(OperationKind.SNAPSHOT, "Snapshot"),
        _bulk(OperationKind.DELETE, "Delete"),
    ]

    @admin.display(description="State", ordering="state")
    def state_badge(self, desktop: Desktop) -> str:
        tone = _TONES.get(desktop.state, "")
        return format_html('<span class="q-badge {}">{}</span>', tone, desktop.get_state_display())


@admin.register(Operation)
class OperationAdmin(admin.ModelAdmin):
    list_display = ["id", "desktop", "tenant", "kind", "status", "step", "queued_at", "finished_at", "error_code"]
    list_filter = ["status", "kind", "tenant"]
    list_select_related = ["desktop", "tenant"]
    date_hierarchy = "queued_at"
    search_fields = ["desktop__name", "error"]
    readonly_fields = [f.name for f in Operation._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False  # operations come from the services that start work; an empty one breaks a constraint


@admin.register(Pool)
class PoolAdmin(admin.ModelAdmin):
    list_display = ["name", "tenant", "template", "min_ready", "max_size", "warm_state", "ready", "enabled"]
    list_filter = ["enabled", "warm_state", "tenant"]
    list_select_related = ["tenant", "template"]

    @admin.display(description="Warm now")
    def ready(self, pool: Pool) -> int:
        return pool.ready_count()
