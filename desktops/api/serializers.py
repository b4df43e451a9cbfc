"""API shapes of templates, desktops, operations and pools."""

from __future__ import annotations

from datetime import datetime

from django.core.validators import RegexValidator
from django.urls import reverse
from django.utils.translation import gettext
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from desktops.choices import DesktopState
from desktops.models import Desktop, DesktopSnapshot, DesktopTemplate, Operation, Pool
from desktops.models.template import MAX_DISK_GIB, MAX_MEMORY_MIB, MAX_VCPUS, MIN_MEMORY_MIB
from desktops.services import network, pools, sizes
from desktops.services.idle import idle_deadline, session_deadline
from desktops.services.templates import launchable
from hosts.choices import HostState
from quetzal.api.fields import TenantScopedModelSerializer, TenantScopedPrimaryKeyRelatedField
from quetzal.api.serializers import ModelSerializer, ResponseSerializer, Serializer


def template_reference(**kwargs) -> TenantScopedPrimaryKeyRelatedField:
    """A template id in a request body: one the active tenant may launch, else 404 template_unavailable."""
    return TenantScopedPrimaryKeyRelatedField(
        queryset=DesktopTemplate.objects.all(),
        scope=launchable,
        not_found_code="template_unavailable",
        not_found_detail="No such template for your organisation.",
        **kwargs,
    )


# A refusal as the API answers one: the limit's stable code and a sentence for people.
HELD_BACK_SCHEMA = {
    "type": "object",
    "nullable": True,
    "properties": {"code": {"type": "string"}, "detail": {"type": "string"}},
    "required": ["code", "detail"],
}


# Where a desktop is on its tenant's network (null until it is placed, or with tenant networks off).
NETWORK_SCHEMA = {
    "type": "object",
    "nullable": True,
    "properties": {k: {"type": "string"} for k in ("network", "subnet", "gateway", "ip", "mac")},
    "required": ["network", "subnet", "gateway", "ip", "mac"],
}


class SizeOptionSerializer(ResponseSerializer):
    """One size a template offers: the default (name "") or a named one, with its price per hour."""

    name = serializers.CharField()
    label = serializers.CharField()
    vcpus = serializers.IntegerField(source="size.vcpus")
    memory_mib = serializers.IntegerField(source="size.memory_mib")
    disk_gib = serializers.IntegerField(source="size.disk_gib")
    price_per_hour = serializers.DecimalField(max_digits=12, decimal_places=4)


_RANGE = {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2}
BOUNDS_SCHEMA = {
    "type": "object",
    "properties": {"vcpus": _RANGE, "memory_mib": _RANGE, "disk_gib": _RANGE},
    "required": ["vcpus", "memory_mib", "disk_gib"],
}


class SizeFields(Serializer):
    """A size in a request body: a template's named size, or any of vcpus, memory_mib, disk_gib (bounded)."""

    size = serializers.CharField(max_length=50, required=False, allow_blank=True)
    vcpus = serializers.IntegerField(min_value=1, max_value=MAX_VCPUS, required=False)
    memory_mib = serializers.IntegerField(min_value=MIN_MEMORY_MIB, max_value=MAX_MEMORY_MIB, required=False)
    disk_gib = serializers.IntegerField(min_value=1, max_value=MAX_DISK_GIB, required=False)

    SIZE_KEYS = ("size", "vcpus", "memory_mib", "disk_gib")

    def size_arguments(self) -> dict:
        return {key: self.validated_data[key] for key in self.SIZE_KEYS if key in self.validated_data}

    def asks_size(self) -> bool:
        return any(self.validated_data.get(key) not in (None, "") for key in self.SIZE_KEYS)


class TemplateSerializer(ModelSerializer):
    price_per_hour = serializers.DecimalField(max_digits=10, decimal_places=4, read_only=True)
    sizes = serializers.SerializerMethodField(help_text="The default and the named sizes, with their prices.")
    bounds = serializers.SerializerMethodField(help_text="The ranges a custom size may take: [low, high] each.")

    class Meta:
        model = DesktopTemplate
        fields = [
            "id",
            "name",
            "description",
            "os_family",
            "vcpus",
            "memory_mib",
            "disk_gib",
            "gpu_kind",
            "gpu_mdev_type",
            "price_per_hour",
            "price_per_vcpu_hour",
            "price_per_gib_ram_hour",
            "price_per_disk_gib_hour",
            "sizes",
            "bounds",
            "visibility",
            "automation_exec_enabled",
            "keyboard_layout",
        ]

    @extend_schema_field(SizeOptionSerializer(many=True))
    def get_sizes(self, template: DesktopTemplate) -> list:
        return SizeOptionSerializer(sizes.options(template), many=True).data

    @extend_schema_field(BOUNDS_SCHEMA)
    def get_bounds(self, template: DesktopTemplate) -> dict:
        limits = sizes.bounds(template)
        return {"vcpus": list(limits.vcpus), "memory_mib": list(limits.memory_mib), "disk_gib": list(limits.disk_gib)}


class OperationSerializer(ModelSerializer):
    url = serializers.SerializerMethodField()

    class Meta:
        model = Operation
        fields = [
            "id",
            "url",
            "desktop",
            "kind",
            "status",
            "step",
            "steps",
            "params",
            "queued_at",
            "started_at",
            "finished_at",
            "error_code",
            "error",
        ]
        read_only_fields = fields

    def get_url(self, operation: Operation) -> str:
        return reverse("api:operation-detail", kwargs={"pk": operation.pk})


class SnapshotSerializer(ModelSerializer):
    class Meta:
        model = DesktopSnapshot
        fields = ["name", "created_at"]


class DesktopSerializer(ModelSerializer):
    template_name = serializers.CharField(source="template.name", read_only=True)
    owner = serializers.EmailField(source="user.email", read_only=True, default=None, allow_null=True)
    host = serializers.CharField(source="host.name", read_only=True, default=None, allow_null=True)
    host_available = serializers.SerializerMethodField()
    console_url = serializers.SerializerMethodField()
    idle_action_at = serializers.SerializerMethodField()
    session_ends_at = serializers.SerializerMethodField()
    snapshots = SnapshotSerializer(many=True, read_only=True)
    network = serializers.SerializerMethodField(help_text="The tenant network and address on its host, or null.")
    price_per_hour = serializers.SerializerMethodField(help_text="What its size costs per hour now.")
    labels = serializers.SlugRelatedField(slug_field="value", many=True, read_only=True)

    class Meta:
        model = Desktop
        fields = [
            "id",
            "name",
            "kind",
            "state",
            "status_reason",
            "template",
            "template_name",
            "owner",
            "host",
            "host_available",
            "vcpus",
            "memory_mib",
            "disk_gib",
            "size_name",
            "price_per_hour",
            "disk_encrypted",
            "created_at",
            "running_since",
            "ready_at",
            "last_activity_at",
            "consoles_open",
            "automation_at",
            "expires_at",
            "labels",
            "console_url",
            "idle_action_at",
            "session_ends_at",
            "snapshots",
            "network",
        ]
        read_only_fields = fields

    def get_host_available(self, desktop: Desktop) -> bool:
        """False while the desktop's host is down (its VM cannot be reached)."""
        return desktop.host is None or desktop.host.state != HostState.DOWN

    @extend_schema_field(serializers.DecimalField(max_digits=12, decimal_places=4))
    def get_price_per_hour(self, desktop: Desktop) -> str:
        return str(sizes.price_per_hour(desktop.template, sizes.of_desktop(desktop)))

    def get_console_url(self, desktop: Desktop) -> str | None:
        # ready_at (null while the guest boots) says whether it takes input yet; the console page waits for it.
        if desktop.state != DesktopState.RUNNING:
            return None
        return f"/desktops/{desktop.pk}/console/"

    @extend_schema_field(NETWORK_SCHEMA)
    def get_network(self, desktop: Desktop) -> dict | None:
        # A caller that read the addresses with the desktops passes them ({desktop id: address or None}).
        known = self.context.get("addresses")
        if known is not None:
            return known.get(desktop.pk)
        return network.address(desktop)

    def get_idle_action_at(self, desktop: Desktop) -> datetime | None:
        return idle_deadline(desktop) if desktop.state == DesktopState.RUNNING else None

    def get_session_ends_at(self, desktop: Desktop) -> datetime | None:
        return session_deadline(desktop) if desktop.state == DesktopState.RUNNING else None


class StopNoticeSerializer(ResponseSerializer):
    """A ramp-down stop announced to the desktop's connected person (all null: none announced)."""

    due_at = serializers.DateTimeField(allow_null=True, help_text="When the plan stops the desktop.")
    clock = serializers.CharField(allow_null=True, help_text="That moment on the tenant's wall clock (HH:MM).")
    deferrable = serializers.BooleanField(help_text="Whether the person may still put it off.")

    @classmethod
    def of(cls, notice) -> dict:
        if notice is None:
            return {"due_at": None, "clock": None, "deferrable": False}
        return cls({"due_at": notice.due_at, "clock": notice.clock, "deferrable": notice.deferrable}).data


class CreateDesktopSerializer(SizeFields):
    template = template_reference()
    name = serializers.CharField(max_length=100, required=False, allow_blank=True)
    start = serializers.BooleanField(default=True)


# What libvirt and the service accept as a snapshot name (desktops.services.requests checks it too).
SNAPSHOT_NAME = RegexValidator(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z", "Use letters, digits, '.', '_' and '-'.")


class SnapshotNameSerializer(Serializer):
    """A new snapshot's name; empty picks one from the time."""

    snapshot = serializers.CharField(max_length=64, required=False, allow_blank=True, validators=[SNAPSHOT_NAME])


class ExistingSnapshotSerializer(Serializer):
    """The snapshot to revert to or delete."""

    snapshot = serializers.CharField(max_length=64, validators=[SNAPSHOT_NAME])


class AcceptedSerializer(ResponseSerializer):
    """A 202 answer: the desktop, the operation now queued, and where to follow it."""

    desktop = DesktopSerializer()
    operation = OperationSerializer(allow_null=True)


class ResizeSerializer(SizeFields):
    """What to resize to; what is left out stays as it is."""

    def validate(self, attrs):
        if not any(attrs.get(key) not in (None, "") for key in self.SIZE_KEYS):
            raise serializers.ValidationError(gettext("Give a size, or vcpus, memory_mib or disk_gib."))
        return attrs


class PlanStatusSerializer(ResponseSerializer):
    """All of the caller's desktops, not paginated."""

    desktops = DesktopSerializer(many=True, read_only=True)


class OperationsQueuedSerializer(ResponseSerializer):
    operations = OperationSerializer(many=True, read_only=True)


class LaunchSerializer(SizeFields):
    os_type = serializers.ChoiceField(choices=["linux", "windows"], required=False)
    template = template_reference(required=False)

    def validate(self, attrs):
        if not attrs.get("os_type") and not attrs.get("template"):
            raise serializers.ValidationError(gettext("Give a template id or an os_type (linux or windows)."))
        return attrs


class StopSerializer(Serializer):
    desktop = TenantScopedPrimaryKeyRelatedField(
        queryset=Desktop.objects.alive(),
        narrow=lambda desktops, request: desktops.owned_by(request.user),
        not_found_detail="No such desktop.",
        required=False,
        help_text="Stop this desktop; omit to stop all of yours.",
    )


class PoolSerializer(TenantScopedModelSerializer):
    template = template_reference()
    ready = serializers.IntegerField(source="ready_count", read_only=True)
    pending = serializers.IntegerField(source="pending_count", read_only=True)
    held_back = serializers.SerializerMethodField(
        help_text="Why refill cannot bring the pool up to min_ready now (a tenant quota), or null."
    )

    class Meta:
        model = Pool
        fields = [
            "id",
            "name",
            "template",
            "min_ready",
            "max_size",
            "warm_state",
            "idle_action",
            "enabled",
            "ready",
            "pending",
            "held_back",
        ]

    @extend_schema_field(HELD_BACK_SCHEMA)
    def get_held_back(self, pool: Pool) -> dict | None:
        refusal = pools.held_back(pool)
        return {"code": refusal.code, "detail": refusal.detail} if refusal else None

    def validate(self, attrs):
        min_ready = attrs.get("min_ready", getattr(self.instance, "min_ready", 1))
        max_size = attrs.get("max_size", getattr(self.instance, "max_size", 10))
        if min_ready > max_size:
            raise serializers.ValidationError({"min_ready": "Must not exceed max_size."})
        return attrs


class ReadinessSerializer(ResponseSerializer):
    """Whether a desktop's guest is ready for input, or how long it has been booting."""

    id = serializers.IntegerField()
    state = serializers.CharField()
    ready = serializers.BooleanField()
    booting_s = serializers.FloatField(allow_null=True)
    interval_ms = serializers.IntegerField(help_text="How often to ask again while it boots.")
