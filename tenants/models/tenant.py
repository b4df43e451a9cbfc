"""Tenants, who belongs to them, and invitations to join."""

from __future__ import annotations

from zoneinfo import available_timezones

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from tenants.choices import ADMIN_ROLES, EgressPolicy, IdleAction, ResizePolicy, Role, TenantStatus
from tenants.querysets import TenantQuerySet

# Every number a tenant admin sets has a ceiling: a value near the column's range (2**31 minutes) made
# each later deadline computation overflow, and with it every desktop listing of the tenant.
MAX_MINUTES = 30 * 24 * 60
MAX_SESSION_HOURS = 365 * 24
MAX_RETENTION_DAYS = 10 * 365
MAX_QUOTA_DESKTOPS = 100_000
MAX_QUOTA_VCPUS = 1_000_000
MAX_QUOTA_RAM_MIB = 1024**3  # 1 PiB
MAX_RUNNING_PER_USER = 1000

# What tenant admins may change: the form, the API and the service share this list.
POLICY_FIELDS = (
    "name",
    "require_2fa",
    "idle_timeout_minutes",
    "idle_action",
    "inactivity_logout_minutes",
    "idle_cpu_threshold_percent",
    "quota_desktops",
    "quota_vcpus",
    "quota_ram_mib",
    "max_running_per_user",
    "quota_disk_gib",
    "resize_policy",
    "max_session_hours",
    "allow_admin_console_access",
    "recording_enabled",
    "recording_retention_days",
    "max_consoles_per_person",
    "max_consoles_per_tenant",
    "clipboard_to_desktop",
    "clipboard_from_desktop",
    "audio_enabled",
    "home_disk_gib",
    "quota_home_gib",
    "allow_admin_file_access",
    "allow_automation",
    "time_zone",
    "warm_hit_target_percent",
)

# Bounds of the console fair-share policy.
MAX_CONSOLES_PER_PERSON = 50
MAX_CONSOLES_PER_TENANT = 1_000_000

# Bounds of the home-disk policy: a home disk is a sparse file, but its size is a promise of space.
HOME_DISK_GIB_MAX = 2048
QUOTA_HOME_GIB_MAX = 1024 * 1024


def validate_time_zone(value: str) -> None:
    if value not in available_timezones():
        raise ValidationError("Not a known time zone (e.g. Europe/Paris).", code="invalid_time_zone")


def time_zone_choices() -> list[tuple[str, str]]:
    return [(zone, zone) for zone in sorted(available_timezones())]


class Tenant(models.Model):
    """An organisation: its people, desktops, policies and quotas."""

    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=50, unique=True)
    status = models.CharField(max_length=16, choices=TenantStatus.choices, default=TenantStatus.ACTIVE)
    created_at = models.DateTimeField(default=timezone.now)

    # Policies.
    require_2fa = models.BooleanField(default=False, help_text="Members must enrol a TOTP device.")
    idle_timeout_minutes = models.PositiveIntegerField(
        default=60,
        validators=[MaxValueValidator(MAX_MINUTES)],
        help_text="Minutes without a console before the idle action; 0 disables it.",
    )
    idle_action = models.CharField(max_length=16, choices=IdleAction.choices, default=IdleAction.STOP)
    inactivity_logout_minutes = models.PositiveIntegerField(
        default=0,
        validators=[MaxValueValidator(MAX_MINUTES)],
        help_text="Sign people out after this many idle minutes in the portal; 0 disables it.",
    )

    idle_cpu_threshold_percent = models.PositiveIntegerField(
        default=0,
        validators=[MaxValueValidator(100)],
        help_text="Also require guest CPU below this % over the idle timeout before it counts as idle; 0 ignores CPU.",
    )
    max_session_hours = models.PositiveIntegerField(
        default=0,
        validators=[MaxValueValidator(MAX_SESSION_HOURS)],
        help_text="Stop a desktop after this many hours running; 0 disables it.",
    )
    allow_admin_console_access = models.BooleanField(
        default=False, help_text="Tenant admins may open members' consoles (audited)."
    )
    recording_enabled = models.BooleanField(default=False, help_text="Record console sessions.")
    recording_retention_days = models.PositiveIntegerField(
        default=30, validators=[MaxValueValidator(MAX_RETENTION_DAYS)]
    )
    # Fair share (desktops.console.fair_share): open consoles at once; sessions whose proxy went silent do not count.
    max_consoles_per_person = models.PositiveIntegerField(
        default=3,
        validators=[MaxValueValidator(MAX_CONSOLES_PER_PERSON)],
        help_text="Consoles one person may have open at once (tabs and devices); 0 means unlimited.",
    )
    max_consoles_per_tenant = models.PositiveIntegerField(
        default=0,
        validators=[MaxValueValidator(MAX_CONSOLES_PER_TENANT)],
        help_text="Consoles open at once in the whole organisation; 0 means unlimited.",
    )
    # Data-loss prevention: enforced by the console proxy, which drops the clipboard messages of a
    # forbidden direction (hiding the buttons alone would not stop a VNC client).
    clipboard_to_desktop = models.BooleanField(default=True, help_text="Paste from people's computers into desktops.")
    clipboard_from_desktop = models.BooleanField(default=True, help_text="Copy from desktops to people's computers.")
    audio_enabled = models.BooleanField(default=True, help_text="Desktop sound plays in the browser.")

    # Home disks: one per person, created on first use with this size.
    home_disk_gib = models.PositiveIntegerField(
        default=10,
        validators=[MinValueValidator(1), MaxValueValidator(HOME_DISK_GIB_MAX)],
        help_text="Size of each person's home disk (GiB).",
    )
    quota_home_gib = models.PositiveIntegerField(
        default=0,
        validators=[MaxValueValidator(QUOTA_HOME_GIB_MAX)],
        help_text="All home disks of the organisation together (GiB); 0 means no limit.",
    )
    allow_admin_file_access = models.BooleanField(
        default=False, help_text="Tenant admins may open members' home folders (audited)."
    )
    allow_automation = models.BooleanField(
        default=True, help_text="Scripts and agents may take screenshots of desktops and send them input (audited)."
    )

    # Network policy (desktops.services.firewall changes these and re-applies every desktop's filter).
    egress_policy = models.CharField(
        max_length=16,
        choices=EgressPolicy.choices,
        default=EgressPolicy.ALLOW_ALL,
        help_text="Outbound traffic no firewall rule matches.",
    )
    allow_intra_tenant_traffic = models.BooleanField(
        default=False, help_text="Let this organisation's desktops reach each other on their host's network."
    )

    # Autoscaling: plans run on the organisation's wall clock; predictions aim for this share of warm claims.
    time_zone = models.CharField(
        max_length=64,
        default="UTC",
        choices=time_zone_choices,
        validators=[validate_time_zone],
        help_text="Scaling plans and calendars run on this clock.",
    )
    warm_hit_target_percent = models.PositiveSmallIntegerField(
        default=95,
        validators=[MinValueValidator(50), MaxValueValidator(99)],
        help_text="Predicted pools hold enough warm desktops for this % of claims to find one.",
    )

    # Quotas; 0 means unlimited.
    quota_desktops = models.PositiveIntegerField(default=0, validators=[MaxValueValidator(MAX_QUOTA_DESKTOPS)])
    quota_vcpus = models.PositiveIntegerField(default=0, validators=[MaxValueValidator(MAX_QUOTA_VCPUS)])
    quota_ram_mib = models.PositiveIntegerField(default=0, validators=[MaxValueValidator(MAX_QUOTA_RAM_MIB)])
    max_running_per_user = models.PositiveIntegerField(
        default=2,
        validators=[MaxValueValidator(MAX_RUNNING_PER_USER)],
        help_text="Desktops one person may have running at once; 0 means unlimited.",
    )
    quota_disk_gib = models.PositiveIntegerField(
        default=0,
        validators=[MaxValueValidator(10_000_000)],
        help_text="GiB of desktop disks the organisation may hold in all; 0 means unlimited.",
    )
    resize_policy = models.CharField(
        max_length=16,
        choices=ResizePolicy.choices,
        default=ResizePolicy.MEMBERS,
        help_text="Who may choose a size other than a template's default, and resize desktops.",
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_active(self) -> bool:
        return self.status == TenantStatus.ACTIVE


class MembershipQuerySet(TenantQuerySet):
    def admins(self) -> MembershipQuerySet:
        return self.filter(role__in=ADMIN_ROLES)


class Membership(models.Model):
    """A person's role in one tenant."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(default=timezone.now)

    objects = MembershipQuerySet.as_manager()

    class Meta:
        ordering = ["tenant__name", "user__email"]
        constraints = [models.UniqueConstraint(fields=["user", "tenant"], name="membership_unique_user_tenant")]

    def __str__(self) -> str:
        return f"{self.user} in {self.tenant} ({self.role})"

    @property
    def is_admin(self) -> bool:
        return self.role in ADMIN_ROLES


class Invitation(models.Model):
    """An emailed invitation to join a tenant with a role; accepted once, before it expires."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    invited_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.email} to {self.tenant}"

    @property
    def is_pending(self) -> bool:
        return self.accepted_at is None and self.revoked_at is None and self.expires_at > timezone.now()
