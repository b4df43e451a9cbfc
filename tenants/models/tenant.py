"""Tenants, who belongs to them, and invitations to join."""

from __future__ import annotations

from zoneinfo import available_timezones

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

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
# How far ahead of an owner's usual arrival a personal desktop may be warmed (desktops.services.warm_personal).
WARM_LEAD_MINUTES_MIN = 5
WARM_LEAD_MINUTES_MAX = 120

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
    "warm_personal_desktops",
    "warm_personal_lead_minutes",
)

# Bounds of the console fair-share policy.
MAX_CONSOLES_PER_PERSON = 50
MAX_CONSOLES_PER_TENANT = 1_000_000

# Bounds of the home-disk policy: a home disk is a sparse file, but its size is a promise of space.
HOME_DISK_GIB_MAX = 2048
QUOTA_HOME_GIB_MAX = 1024 * 1024


def validate_time_zone(value: str) -> None:
    if value not in available_timezones():
        raise ValidationError(gettext("Not a known time zone (e.g. Europe/Paris)."), code="invalid_time_zone")


def time_zone_choices() -> list[tuple[str, str]]:
    return [(zone, zone) for zone in sorted(available_timezones())]


class Tenant(models.Model):
    """An organisation: its people, desktops, policies and quotas."""

    name = models.CharField(verbose_name=_("name"), max_length=100)
    slug = models.SlugField(verbose_name=_("slug"), max_length=50, unique=True)
    status = models.CharField(
        verbose_name=_("status"), max_length=16, choices=TenantStatus.choices, default=TenantStatus.ACTIVE
    )
    created_at = models.DateTimeField(verbose_name=_("created at"), default=timezone.now)

    # Policies.
    require_2fa = models.BooleanField(
        verbose_name=_("require 2fa"), default=False, help_text=_("Members must enrol a TOTP device.")
    )
    idle_timeout_minutes = models.PositiveIntegerField(
        verbose_name=_("idle timeout minutes"),
        default=60,
        validators=[MaxValueValidator(MAX_MINUTES)],
        help_text=_("Minutes without a console before the idle action; 0 disables it."),
    )
    idle_action = models.CharField(
        verbose_name=_("idle action"), max_length=16, choices=IdleAction.choices, default=IdleAction.STOP
    )
    inactivity_logout_minutes = models.PositiveIntegerField(
        verbose_name=_("inactivity logout minutes"),
        default=0,
        validators=[MaxValueValidator(MAX_MINUTES)],
        help_text=_("Sign people out after this many idle minutes in the portal; 0 disables it."),
    )

    idle_cpu_threshold_percent = models.PositiveIntegerField(
        verbose_name=_("idle cpu threshold percent"),
        default=0,
        validators=[MaxValueValidator(100)],
        help_text=_(
            "Also require guest CPU below this percentage over the idle timeout before it counts as idle; "
            "0 ignores CPU."
        ),
    )
    max_session_hours = models.PositiveIntegerField(
        verbose_name=_("max session hours"),
        default=0,
        validators=[MaxValueValidator(MAX_SESSION_HOURS)],
        help_text=_("Stop a desktop after this many hours running; 0 disables it."),
    )
    allow_admin_console_access = models.BooleanField(
        verbose_name=_("allow admin console access"),
        default=False,
        help_text=_("Tenant admins may open members' consoles (audited)."),
    )
    recording_enabled = models.BooleanField(
        verbose_name=_("recording enabled"), default=False, help_text=_("Record console sessions.")
    )
    recording_retention_days = models.PositiveIntegerField(
        verbose_name=_("recording retention days"), default=30, validators=[MaxValueValidator(MAX_RETENTION_DAYS)]
    )
    # Fair share (desktops.console.fair_share): open consoles at once; sessions whose proxy went silent do not count.
    max_consoles_per_person = models.PositiveIntegerField(
        verbose_name=_("consoles open at once per person"),
        default=3,
        validators=[MaxValueValidator(MAX_CONSOLES_PER_PERSON)],
        help_text=_("Consoles one person may have open at once (tabs and devices); 0 means unlimited."),
    )
    max_consoles_per_tenant = models.PositiveIntegerField(
        verbose_name=_("consoles open at once in the organisation"),
        default=0,
        validators=[MaxValueValidator(MAX_CONSOLES_PER_TENANT)],
        help_text=_("Consoles open at once in the whole organisation; 0 means unlimited."),
    )
    # Data-loss prevention: enforced by the console proxy, which drops the clipboard messages of a
    # forbidden direction (hiding the buttons alone would not stop a VNC client).
    clipboard_to_desktop = models.BooleanField(
        verbose_name=_("clipboard to desktop"),
        default=True,
        help_text=_("Paste from people's computers into desktops."),
    )
    clipboard_from_desktop = models.BooleanField(
        verbose_name=_("clipboard from desktop"), default=True, help_text=_("Copy from desktops to people's computers.")
    )
    audio_enabled = models.BooleanField(
        verbose_name=_("audio enabled"), default=True, help_text=_("Desktop sound plays in the browser.")
    )

    # Home disks: one per person, created on first use with this size.
    home_disk_gib = models.PositiveIntegerField(
        verbose_name=_("home disk gib"),
        default=10,
        validators=[MinValueValidator(1), MaxValueValidator(HOME_DISK_GIB_MAX)],
        help_text=_("Size of each person's home disk (GiB)."),
    )
    quota_home_gib = models.PositiveIntegerField(
        verbose_name=_("quota home gib"),
        default=0,
        validators=[MaxValueValidator(QUOTA_HOME_GIB_MAX)],
        help_text=_("All home disks of the organisation together (GiB); 0 means no limit."),
    )
    allow_admin_file_access = models.BooleanField(
        verbose_name=_("allow admin file access"),
        default=False,
        help_text=_("Tenant admins may open members' home folders (audited)."),
    )
    allow_automation = models.BooleanField(
        verbose_name=_("allow automation"),
        default=True,
        help_text=_("Scripts and agents may take screenshots of desktops and send them input (audited)."),
    )

    # Network policy (desktops.services.firewall changes these and re-applies every desktop's filter).
    egress_policy = models.CharField(
        verbose_name=_("egress policy"),
        max_length=16,
        choices=EgressPolicy.choices,
        default=EgressPolicy.ALLOW_ALL,
        help_text=_("Outbound traffic no firewall rule matches."),
    )
    allow_intra_tenant_traffic = models.BooleanField(
        verbose_name=_("allow intra tenant traffic"),
        default=False,
        help_text=_("Let this organisation's desktops reach each other on their host's network."),
    )

    # Autoscaling: plans run on the organisation's wall clock; predictions aim for this share of warm claims.
    time_zone = models.CharField(
        verbose_name=_("time zone"),
        max_length=64,
        default="UTC",
        choices=time_zone_choices,
        validators=[validate_time_zone],
        help_text=_("Scaling plans and calendars run on this clock."),
    )
    warm_hit_target_percent = models.PositiveSmallIntegerField(
        verbose_name=_("warm hit target percent"),
        default=95,
        validators=[MinValueValidator(50), MaxValueValidator(99)],
        help_text=_("Predicted pools hold enough warm desktops for this percentage of claims to find one."),
    )
    # Personal desktops warmed ahead of their owner's usual arrival, learned from that owner's own last weeks.
    warm_personal_desktops = models.BooleanField(
        verbose_name=_("warm personal desktops before their owners usually arrive"),
        default=False,
        help_text=_("Start a stopped personal desktop shortly before the time its owner usually arrives."),
    )
    warm_personal_lead_minutes = models.PositiveSmallIntegerField(
        verbose_name=_("warm-up lead time (minutes)"),
        default=15,
        validators=[MinValueValidator(WARM_LEAD_MINUTES_MIN), MaxValueValidator(WARM_LEAD_MINUTES_MAX)],
        help_text=_("How many minutes before the usual arrival the desktop is started (5 to 120)."),
    )

    # Quotas; 0 means unlimited.
    quota_desktops = models.PositiveIntegerField(
        verbose_name=_("quota desktops"), default=0, validators=[MaxValueValidator(MAX_QUOTA_DESKTOPS)]
    )
    quota_vcpus = models.PositiveIntegerField(
        verbose_name=_("quota vcpus"), default=0, validators=[MaxValueValidator(MAX_QUOTA_VCPUS)]
    )
    quota_ram_mib = models.PositiveIntegerField(
        verbose_name=_("quota ram mib"), default=0, validators=[MaxValueValidator(MAX_QUOTA_RAM_MIB)]
    )
    max_running_per_user = models.PositiveIntegerField(
        verbose_name=_("max running per user"),
        default=2,
        validators=[MaxValueValidator(MAX_RUNNING_PER_USER)],
        help_text=_("Desktops one person may have running at once; 0 means unlimited."),
    )
    quota_disk_gib = models.PositiveIntegerField(
        verbose_name=_("quota disk gib"),
        default=0,
        validators=[MaxValueValidator(10_000_000)],
        help_text=_("GiB of desktop disks the organisation may hold in all; 0 means unlimited."),
    )
    resize_policy = models.CharField(
        verbose_name=_("resize policy"),
        max_length=16,
        choices=ResizePolicy.choices,
        default=ResizePolicy.MEMBERS,
        help_text=_("Who may choose a size other than a template's default, and resize desktops."),
    )

    class Meta:
        verbose_name = _("tenant")
        verbose_name_plural = _("tenants")
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

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("user"), on_delete=models.CASCADE, related_name="memberships"
    )
    tenant = models.ForeignKey(Tenant, verbose_name=_("tenant"), on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(verbose_name=_("role"), max_length=16, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(verbose_name=_("created at"), default=timezone.now)

    objects = MembershipQuerySet.as_manager()

    class Meta:
        verbose_name = _("membership")
        verbose_name_plural = _("memberships")
        ordering = ["tenant__name", "user__email"]
        constraints = [models.UniqueConstraint(fields=["user", "tenant"], name="membership_unique_user_tenant")]

    def __str__(self) -> str:
        return f"{self.user} in {self.tenant} ({self.role})"

    @property
    def is_admin(self) -> bool:
        return self.role in ADMIN_ROLES


class Invitation(models.Model):
    """An emailed invitation to join a tenant with a role; accepted once, before it expires."""

    tenant = models.ForeignKey(Tenant, verbose_name=_("tenant"), on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField(verbose_name=_("email"))
    role = models.CharField(verbose_name=_("role"), max_length=16, choices=Role.choices, default=Role.MEMBER)
    token_hash = models.CharField(verbose_name=_("token hash"), max_length=64, unique=True, editable=False)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("invited by"), null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(verbose_name=_("created at"), default=timezone.now)
    expires_at = models.DateTimeField(verbose_name=_("expires at"))
    accepted_at = models.DateTimeField(verbose_name=_("accepted at"), null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("accepted by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    revoked_at = models.DateTimeField(verbose_name=_("revoked at"), null=True, blank=True)

    objects = TenantQuerySet.as_manager()

    class Meta:
        verbose_name = _("invitation")
        verbose_name_plural = _("invitations")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.email} to {self.tenant}"

    @property
    def is_pending(self) -> bool:
        return self.accepted_at is None and self.revoked_at is None and self.expires_at > timezone.now()
