"""Operators' admin for hosts, GPUs, images and allocations; every write goes through a service."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from hosts import dispatch
from hosts.choices import HostState
from hosts.models import OPERATOR_FIELDS, Allocation, Host, HostDevice, Image, ImageCopy
from hosts.services import enrolment, overview
from hosts.services import hosts as host_services
from hosts.services import images as image_services
from quetzal.admin import ReadOnlyAdmin
from quetzal.errors import ServiceError
from quetzal.forms import ModelForm

# The operator settings, name aside (asked for on its own, first): the add form, the change form's fieldset.
HOST_SETTINGS = [f for f in OPERATOR_FIELDS if f != "name"]

_STATE_COLOURS = {HostState.UP: "#2e7d32", HostState.DOWN: "#c62828", HostState.UNKNOWN: "#757575"}


def capacity_bar(used: int, capacity: int, unit: str = "") -> str:
    """A small HTML bar of used/capacity, red when over 90 %."""
    fraction = min(1.0, used / capacity) if capacity > 0 else 1.0
    colour = "#c62828" if fraction > 0.9 else "#f9a825" if fraction > 0.7 else "#2e7d32"
    return format_html(
        '<div title="{} / {}{}" style="display:inline-block;width:90px;height:8px;background:#e0e0e0;'
        'vertical-align:middle"><div style="width:{}%;height:8px;background:{}"></div></div> {}/{}{}',
        used,
        capacity,
        unit,
        round(fraction * 100),
        colour,
        used,
        capacity,
        unit,
    )


def memory_use(host: Host) -> str:
    """Allocated against measured use, merged pages, the overcommit ratio and a swap warning, for the host list."""
    merged = "—" if host.merged_memory_mib is None else f"{host.merged_memory_mib} MiB"
    text = format_html(
        "{}: {} MiB · {}: {} MiB · {}: {} · {}: {}x",
        gettext("allocated"),
        host.allocated_memory_mib,
        gettext("used"),
        host.used_memory_mib,
        gettext("merged"),
        merged,
        gettext("overcommit"),
        f"{host.ram_ratio:g}",
    )
    if host.short_of_memory:
        warning = gettext("short of free memory: the host may be swapping")
        text = format_html('{} <b style="color:#c62828" data-testid="swap-warning">⚠ {}</b>', text, warning)
    return text


def _age(moment) -> str:
    if moment is None:
        return "never"
    seconds = int((timezone.now() - moment).total_seconds())
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h ago"


class HostDeviceInline(admin.TabularInline):
    model = HostDevice
    extra = 0
    can_delete = False
    fields = readonly_fields = [
        "pci_address",
        "vendor_name",
        "product_name",
        "driver",
        "present",
        "mdev_types",
        "assigned_desktop_id",
        "mdev_type_in_use",
        "mdev_instances_used",
        "mdev_capacity",
    ]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class ImageCopyInline(admin.TabularInline):
    model = ImageCopy
    extra = 0
    can_delete = False
    fields = readonly_fields = ["image", "host", "state", "volume_path", "error", "started_at", "finished_at"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class HostAddForm(ModelForm):
    """Enrolling a host connects to it and checks it first; what is missing is a form error and saves nothing."""

    actor = None

    class Meta:
        model = Host
        fields = ["uri", "name", *HOST_SETTINGS]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["name"].required = False
        self.fields["name"].help_text = gettext("Empty: the host's own name.")
        self.fields["console_address"].help_text += " Empty: the host named in the URI."

    def _post_clean(self) -> None:
        super()._post_clean()
        if self.errors:
            return
        settings = {key: self.cleaned_data[key] for key in HOST_SETTINGS}
        if not settings["console_address"]:
            settings.pop("console_address")
        try:
            self.instance, self.check = enrolment.enrol_host(
                self.cleaned_data["uri"], name=self.cleaned_data["name"] or None, actor=self.actor, **settings
            )
        except enrolment.HostNotReady as exc:
            # Each missing thing on its own line, with what to do about it.
            for finding in exc.check.missing:
                if finding.blocking:
                    self.add_error("uri" if finding.item == "reachable" else None, f"{finding.item}: {finding.detail}")
        except ServiceError as exc:
            self.add_error("uri" if exc.code in ("host_unavailable", "host_exists") else None, exc.detail)


@admin.register(Host)
class HostAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "uri",
        "state_badge",
        "heartbeat_age",
        "vcpu_bar",
        "memory_bar",
        "effective_virt_type",
        "windows_ready",
        "enabled",
        "maintenance",
        "drain",
    ]
    list_filter = ["state", "enabled", "maintenance", "drain"]
    search_fields = ["name", "uri", "hostname"]
    actions = [
        "maintenance_on",
        "maintenance_off",
        "drain_on",
        "drain_off",
        "heartbeat_now",
        "copy_all_images",
        "residents_report",
    ]
    learned = [
        "hostname",
        "arch",
        "cpus",
        "memory_mib",
        "free_memory_mib",
        "virt_types",
        "detected_virt_type",
        "libvirt_version",
        "hypervisor_version",
        "offers_uefi",
        "offers_secure_boot",
        "offers_tpm",
    ]
    health = [
        "state",
        "last_heartbeat_at",
        "last_error",
        "last_error_at",
        "allocated_vcpus",
        "allocated_memory_mib",
        "used_memory_mib",
        "measured_allocation_mib",
        "merged_memory_mib",
        "memory_merging",
    ]
    fieldsets = [
        (None, {"fields": ["name", "uri"]}),
        ("Operator settings", {"fields": HOST_SETTINGS}),
        ("Learned from libvirt", {"fields": learned}),
        ("Health and capacity", {"fields": health}),
    ]

    def get_readonly_fields(self, request, obj=None):
        # The URI identifies the host's domains and volumes; a new URI is a new host.
        return ["uri", *self.learned, *self.health] if obj else []

    def get_fieldsets(self, request, obj=None):
        return self.fieldsets if obj else [(None, {"fields": HostAddForm.Meta.fields})]

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is not None:
            return super().get_form(request, obj, change=change, **kwargs)
        kwargs["form"] = HostAddForm
        kwargs["fields"] = HostAddForm.Meta.fields
        form_class = super().get_form(request, obj, change=change, **kwargs)
        return type("HostAddForm", (form_class,), {"actor": request.user})

    def get_inlines(self, request, obj):
        # None on add: the form registers the host, so nothing else may fail after it.
        return [HostDeviceInline, ImageCopyInline] if obj else []

    def save_model(self, request, obj, form, change) -> None:
        if not change:
            return  # registered by the form, which connected to the host first
        # Only what the operator changed is written: a whole-row save would overwrite the counters
        # with the values read when the page was opened.
        changes = {f: form.cleaned_data[f] for f in form.changed_data if f in OPERATOR_FIELDS}
        if changes:
            host_services.update_host(host=obj, changes=changes, actor=request.user)
            obj.refresh_from_db()

    # --- the live host dashboard (operators) -------------------------------------------------

    def get_urls(self):
        dashboard = [
            path("dashboard/", self.admin_site.admin_view(self.dashboard_view), name="hosts_host_dashboard"),
            path("dashboard/rows/", self.admin_site.admin_view(self.dashboard_rows), name="hosts_host_dashboard_rows"),
        ]
        return dashboard + super().get_urls()

    def _dashboard(self, request, template: str) -> TemplateResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        context = {
            **self.admin_site.each_context(request),
            "title": "Live host dashboard",
            "opts": self.model._meta,
            "fleet": overview.fleet(),
        }
        return TemplateResponse(request, template, context)

    def dashboard_view(self, request) -> TemplateResponse:
        """Every host's health and capacity, refreshed in place every few seconds."""
        return self._dashboard(request, "admin/hosts/host/dashboard.html")

    def dashboard_rows(self, request) -> TemplateResponse:
        """The dashboard's figures alone, for its refresh."""
        return self._dashboard(request, "admin/hosts/host/dashboard_figures.html")

    @admin.display(description="State", ordering="state")
    def state_badge(self, host: Host) -> str:
        return format_html('<b style="color:{}">{}</b>', _STATE_COLOURS[host.state], host.get_state_display())

    @admin.display(description="Heartbeat", ordering="last_heartbeat_at")
    def heartbeat_age(self, host: Host) -> str:
        return _age(host.last_heartbeat_at)

    @admin.display(description="vCPUs")
    def vcpu_bar(self, host: Host) -> str:
        return capacity_bar(host.allocated_vcpus, host.vcpu_capacity)

    # One column for memory: the list is wider than a laptop's window already, and a column of its own for the
    # measured use landed past the table's right edge.
    @admin.display(description=_("Memory: allocated, used, merged"))
    def memory_bar(self, host: Host) -> str:
        bar = capacity_bar(host.allocated_memory_mib, host.memory_capacity_mib)
        return format_html("{}<br><small>{}</small>", bar, memory_use(host))

    @admin.display(description="Virt")
    def effective_virt_type(self, host: Host) -> str:
        return host.effective_virt_type

    @admin.display(description="Windows 11-ready", boolean=True)
    def windows_ready(self, host: Host) -> bool | None:
        return host.windows_ready

    def _flag(self, request, queryset, setter, on: bool, label: str) -> None:
        changed = sum(setter(host=host, on=on, actor=request.user) for host in queryset)
        messages.success(
            request, gettext("%(label)s: %(changed)s host(s) changed.") % {"label": label, "changed": changed}
        )

    @admin.action(description="Put in maintenance (no new desktops)")
    def maintenance_on(self, request, queryset) -> None:
        self._flag(request, queryset, host_services.set_maintenance, True, "Maintenance on")

    @admin.action(description="End maintenance")
    def maintenance_off(self, request, queryset) -> None:
        self._flag(request, queryset, host_services.set_maintenance, False, "Maintenance off")

    @admin.action(description="Drain (no new desktops, running ones stay)")
    def drain_on(self, request, queryset) -> None:
        self._flag(request, queryset, host_services.set_drain, True, "Drain on")

    @admin.action(description="Stop draining")
    def drain_off(self, request, queryset) -> None:
        self._flag(request, queryset, host_services.set_drain, False, "Drain off")

    @admin.action(description="Check now (heartbeat)")
    def heartbeat_now(self, request, queryset) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        for host_id in ids:
            dispatch.on_commit(dispatch.HEARTBEAT_HOST, host_id)
        messages.success(request, gettext("Heartbeat queued for %(len)s host(s).") % {"len": len(ids)})

    @admin.action(description="Report what still runs on these hosts")
    def residents_report(self, request, queryset) -> None:
        for host in queryset:
            report = host_services.residents(host=host)
            lines = "; ".join(report.lines()) or "nothing"
            note = f" (host did not answer: {report.unreachable})" if report.unreachable else ""
            messages.info(
                request,
                gettext("%(name)s (%(mode)s): %(len)s desktop(s): %(lines)s%(note)s")
                % {"name": host.name, "mode": report.mode, "len": len(report.desktops), "lines": lines, "note": note},
            )

    @admin.action(description="Copy every image to these hosts")
    def copy_all_images(self, request, queryset) -> None:
        hosts = list(queryset)
        for image in Image.objects.all():
            image_services.request_copies(image=image, hosts=hosts, actor=request.user)
        messages.success(request, gettext("Copies queued to %(len)s host(s).") % {"len": len(hosts)})


class ImageAddForm(ModelForm):
    """Upload a disk; it is checksummed while stored, and a wrong checksum keeps nothing."""

    upload = forms.FileField(help_text=_("A qcow2 or raw disk image."), label=_("Upload"))
    expected_sha256 = forms.CharField(
        required=False,
        max_length=71,
        help_text=_("Optional: refuse the upload unless its SHA-256 is this."),
        label=_("Expected SHA-256"),
    )

    class Meta:
        model = Image
        fields = ["name", "format", "description", "kernel_path", "initrd_path", "cmdline"]

    actor = None

    def _post_clean(self) -> None:
        super()._post_clean()
        if self.errors:
            return
        data = self.cleaned_data
        try:
            self.instance = image_services.import_uploaded_image(
                upload=data["upload"],
                name=data["name"],
                fmt=data["format"],
                expected_sha256=data.get("expected_sha256") or None,
                kernel=data.get("kernel_path") or None,
                initrd=data.get("initrd_path") or None,
                cmdline=data.get("cmdline", ""),
                description=data.get("description", ""),
                actor=self.actor,
            )
        except ServiceError as exc:
            field = {"checksum_mismatch": "expected_sha256", "invalid_image": "upload", "image_exists": "name"}
            self.add_error(field.get(exc.code), exc.detail)


@admin.register(Image)
class ImageAdmin(admin.ModelAdmin):
    list_display = ["name", "format", "size_gib", "short_sha256", "ready_copies", "direct_kernel_boot", "created_at"]
    search_fields = ["name", "sha256"]
    actions = ["copy_to_all_hosts"]
    readonly_fields = [
        "format",
        "file",
        "source_path",
        "size_bytes",
        "virtual_size_bytes",
        "sha256",
        "kernel_path",
        "initrd_path",
        "created_at",
    ]

    def get_readonly_fields(self, request, obj=None):
        # Desktops are linked clones of the bytes: an image's content never changes once imported.
        return self.readonly_fields if obj else []

    def get_fields(self, request, obj=None):
        if obj is None:
            return [*ImageAddForm.Meta.fields, "upload", "expected_sha256"]
        return ["name", "description", "cmdline", *self.readonly_fields]

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is not None:
            return super().get_form(request, obj, change=change, **kwargs)
        kwargs["form"] = ImageAddForm
        kwargs["fields"] = ImageAddForm.Meta.fields
        form_class = super().get_form(request, obj, change=change, **kwargs)
        return type("ImageAddForm", (form_class,), {"actor": request.user})

    def get_inlines(self, request, obj):
        # None on add: the form's service call stores the image, so nothing else may fail after it.
        return [ImageCopyInline] if obj else []

    def save_model(self, request, obj, form, change) -> None:
        if change:
            super().save_model(request, obj, form, change)
        # On add the form's service call already stored and saved the image.

    @admin.display(description="Size", ordering="size_bytes")
    def size_gib(self, image: Image) -> str:
        return f"{image.size_bytes / 1024**3:.2f} GiB"

    @admin.display(description="SHA-256")
    def short_sha256(self, image: Image) -> str:
        return image.sha256[:12]

    @admin.display(description="Ready on")
    def ready_copies(self, image: Image) -> str:
        ready = image.copies.filter(state="ready").count()
        return f"{ready}/{Host.objects.count()} hosts"

    @admin.display(description="Kernel boot", boolean=True)
    def direct_kernel_boot(self, image: Image) -> bool:
        return image.direct_kernel_boot

    @admin.action(description="Copy to all hosts")
    def copy_to_all_hosts(self, request, queryset) -> None:
        hosts = list(Host.objects.filter(enabled=True))
        for image in queryset:
            image_services.request_copies(image=image, hosts=hosts, actor=request.user)
        messages.success(
            request,
            gettext("Queued copies of %(count)s image(s) to %(len)s host(s).")
            % {"count": queryset.count(), "len": len(hosts)},
        )


@admin.register(Allocation)
class AllocationAdmin(ReadOnlyAdmin):
    """Allocations are the scheduler's ledger: written by place() and release() only."""

    list_display = ["desktop_id", "host", "vcpus", "memory_mib", "gpu_profile", "gpu_device", "created_at"]
    list_filter = ["host", "gpu_profile"]
    search_fields = ["=desktop_id"]
