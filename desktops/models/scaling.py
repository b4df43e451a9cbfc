"""Scaling plans of pools (phases in the tenant's time zone) and their calendar exceptions."""

from __future__ import annotations

from datetime import time

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from desktops.models.pool import MAX_POOL_SIZE
from tenants.querysets import TenantQuerySet

# A refill that takes longer than four hours is a broken host, not a lead time to plan for.
MAX_LEAD_MINUTES = 240
MAX_PERCENT = 100
# Notice before a ramp-down stop, and each deferral: at most two hours, so the evening still comes.
MAX_NOTICE_MINUTES = 120
DEFAULT_DAYS = "12345"


def validate_days(value: str) -> None:
    if not value or any(c not in "1234567" for c in value) or len(set(value)) != len(value):
        raise ValidationError(
            gettext("Weekdays as ISO digits 1 (Monday) to 7 (Sunday), each once."), code="invalid_days"
        )


class MinimumUnit(models.TextChoices):
    DESKTOPS = "desktops", _("desktops")
    PERCENT = "percent", _("percent of the pool's people")


def _minimum(default: int, verbose_name: Promise) -> models.PositiveIntegerField:
    # One ceiling for counts and percentages alike; the percentage's own ceiling (100) is checked in clean().
    return models.PositiveIntegerField(
        verbose_name=verbose_name, default=default, validators=[MaxValueValidator(MAX_POOL_SIZE)]
    )


def _unit(verbose_name: Promise) -> models.CharField:
    return models.CharField(
        verbose_name=verbose_name, max_length=8, choices=MinimumUnit.choices, default=MinimumUnit.DESKTOPS
    )


class ScalingPlan(models.Model):
    """How many warm desktops a pool holds through the day; without a plan (or disabled) `min_ready` holds."""

    tenant = models.ForeignKey("tenants.Tenant", verbose_name=_("tenant"), on_delete=models.CASCADE, related_name="+")
    pool = models.OneToOneField(
        "desktops.Pool", verbose_name=_("pool"), on_delete=models.CASCADE, related_name="scaling_plan"
    )
    enabled = models.BooleanField(verbose_name=_("enabled"), default=True)
    days = models.CharField(
        verbose_name=_("days"),
        max_length=7,
        default=DEFAULT_DAYS,
        validators=[validate_days],
        help_text=_("Weekdays the phases run."),
    )
    ramp_up_start = models.TimeField(verbose_name=_("ramp up start"), default=time(7, 0))
    ramp_up_minimum = _minimum(2, _("ramp up minimum"))
    ramp_up_unit = _unit(_("ramp up unit"))
    peak_start = models.TimeField(verbose_name=_("peak start"), default=time(8, 30))
    peak_minimum = _minimum(5, _("peak minimum"))
    peak_unit = _unit(_("peak unit"))
    ramp_down_start = models.TimeField(verbose_name=_("ramp down start"), default=time(16, 30))
    ramp_down_minimum = _minimum(1, _("ramp down minimum"))
    ramp_down_unit = _unit(_("ramp down unit"))
    off_peak_start = models.TimeField(verbose_name=_("off peak start"), default=time(19, 0))
    off_peak_minimum = _minimum(0, _("peak minimum"))
    off_peak_unit = _unit(_("peak unit"))
    release_idle = models.BooleanField(
        verbose_name=_("release idle"),
        default=False,
        help_text=_("At ramp-down and off-peak, delete unassigned warm desktops beyond the planned number."),
    )
    stop_in_use = models.BooleanField(
        verbose_name=_("stop desktops in use"),
        default=False,
        help_text=_("At ramp-down and off-peak, also stop (or recycle) the pool's desktops people hold."),
    )
    notice_minutes = models.PositiveSmallIntegerField(
        verbose_name=_("notice minutes"),
        default=15,
        validators=[MaxValueValidator(MAX_NOTICE_MINUTES)],
        help_text=_("Minutes of notice a person connected to such a desktop gets first (0: none)."),
    )
    defer_minutes = models.PositiveSmallIntegerField(
        verbose_name=_("defer minutes"),
        default=0,
        validators=[MaxValueValidator(MAX_NOTICE_MINUTES)],
        help_text=_('Minutes a person\'s "Keep working" puts the stop off (0: they cannot).'),
    )
    prediction_enabled = models.BooleanField(
        verbose_name=_("prediction enabled"),
        default=False,
        help_text=_("Also hold what the claim history predicts (never below the plan)."),
    )
    lead_minutes = models.PositiveIntegerField(
        verbose_name=_("lead minutes"),
        default=10,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_LEAD_MINUTES)],
        help_text=_("Minutes a new warm desktop takes to become ready."),
    )
    updated_at = models.DateTimeField(verbose_name=_("updated at"), default=timezone.now)

    objects = TenantQuerySet.as_manager()

    class Meta:
        verbose_name = _("scaling plan")
        verbose_name_plural = _("scaling plans")

    def __str__(self) -> str:
        return f"Plan of {self.pool_id}"


class ScalingException(models.Model):
    """A calendar exception: a closure (whole days) or a weekly slot that raises the minimum."""

    class Kind(models.TextChoices):
        CLOSURE = "closure", _("Closed (holiday)")
        SLOT = "slot", _("Weekly slot")

    tenant = models.ForeignKey("tenants.Tenant", verbose_name=_("tenant"), on_delete=models.CASCADE, related_name="+")
    pool = models.ForeignKey(
        "desktops.Pool", verbose_name=_("pool"), on_delete=models.CASCADE, related_name="scaling_exceptions"
    )
    kind = models.CharField(verbose_name=_("kind"), max_length=8, choices=Kind.choices)
    name = models.CharField(verbose_name=_("name"), max_length=100, blank=True)
    first_day = models.DateField(verbose_name=_("first day"), null=True, blank=True)
    last_day = models.DateField(verbose_name=_("last day"), null=True, blank=True)
    weekday = models.PositiveSmallIntegerField(
        verbose_name=_("weekday"), null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(7)]
    )
    start_time = models.TimeField(verbose_name=_("start time"), null=True, blank=True)
    end_time = models.TimeField(verbose_name=_("end time"), null=True, blank=True)
    minimum = _minimum(0, _("minimum"))
    unit = _unit(_("unit"))
    created_at = models.DateTimeField(verbose_name=_("created at"), default=timezone.now)

    objects = TenantQuerySet.as_manager()

    class Meta:
        verbose_name = _("scaling exception")
        verbose_name_plural = _("scaling exceptions")
        ordering = ["kind", "first_day", "weekday", "start_time", "id"]

    def __str__(self) -> str:
        return self.name or self.kind


class StopNotice(models.Model):
    """A ramp-down stop announced to the person connected to a desktop: it happens at `due_at`, not before."""

    tenant = models.ForeignKey("tenants.Tenant", verbose_name=_("tenant"), on_delete=models.CASCADE, related_name="+")
    desktop = models.OneToOneField(
        "desktops.Desktop", verbose_name=_("desktop"), on_delete=models.CASCADE, related_name="stop_notice"
    )
    # The person told: a desktop that changed hands since is not stopped on their notice.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("person"), on_delete=models.CASCADE, related_name="+"
    )
    due_at = models.DateTimeField(verbose_name=_("due at"))
    deferrals = models.PositiveSmallIntegerField(verbose_name=_("deferrals"), default=0)
    created_at = models.DateTimeField(verbose_name=_("created at"), default=timezone.now)

    objects = TenantQuerySet.as_manager()

    class Meta:
        verbose_name = _("stop notice")
        verbose_name_plural = _("stop notices")

    def __str__(self) -> str:
        return f"stop of {self.desktop_id} at {self.due_at:%H:%M}"
