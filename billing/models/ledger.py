"""The usage ledger: one row per stretch of time a desktop ran, at one price; the source of truth."""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from billing.choices import EndedBy
from billing.periods import Period, hours
from tenants.querysets import TenantQuerySet


class UsageIntervalQuerySet(TenantQuerySet):
    def open(self) -> UsageIntervalQuerySet:
        return self.filter(ended_at__isnull=True)

    def closed(self) -> UsageIntervalQuerySet:
        return self.filter(ended_at__isnull=False)

    def in_period(self, period: Period) -> UsageIntervalQuerySet:
        # Rows never cross an hour boundary, so the start alone places a closed row in its month.
        return self.filter(started_at__gte=period.start, started_at__lt=period.end)


class UsageInterval(models.Model):
    """A desktop running from started_at to ended_at at price_per_hour; open while ended_at is null.

    Closed rows never change; a closed row is cut at every hour boundary and price change, so each
    lies within one hour and carries one price. Names are copied so the record outlives renames.
    """

    uuid = models.UUIDField(verbose_name=_("uuid"), default=uuid.uuid4, unique=True, editable=False)
    tenant = models.ForeignKey("tenants.Tenant", verbose_name=_("tenant"), on_delete=models.PROTECT, related_name="+")
    desktop = models.ForeignKey(
        "desktops.Desktop",
        verbose_name=_("desktop"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    desktop_name = models.CharField(verbose_name=_("desktop name"), max_length=100)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    person_email = models.CharField(
        verbose_name=_("person email"),
        max_length=254,
        blank=True,
        help_text=_("Empty for pooled desktops nobody holds."),
    )
    template = models.ForeignKey(
        "desktops.DesktopTemplate",
        verbose_name=_("template"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    template_name = models.CharField(verbose_name=_("template name"), max_length=100)
    price_per_hour = models.DecimalField(
        verbose_name=_("price per hour"), max_digits=10, decimal_places=4, validators=[MinValueValidator(Decimal(0))]
    )
    currency = models.CharField(verbose_name=_("currency"), max_length=3)
    # The desktop's size while the row ran and what that size adds to the template's price (a resize cuts the row).
    size_label = models.CharField(verbose_name=_("size label"), max_length=100, blank=True)
    size_extra_per_hour = models.DecimalField(
        verbose_name=_("size extra per hour"), max_digits=10, decimal_places=4, default=Decimal(0)
    )
    started_at = models.DateTimeField(verbose_name=_("started at"))
    ended_at = models.DateTimeField(verbose_name=_("ended at"), null=True, blank=True)
    seconds = models.PositiveIntegerField(verbose_name=_("seconds"), null=True, blank=True)
    amount = models.DecimalField(verbose_name=_("amount"), max_digits=16, decimal_places=6, null=True, blank=True)
    ended_by = models.CharField(verbose_name=_("ended by"), max_length=16, choices=EndedBy.choices, blank=True)
    report = models.ForeignKey(
        "billing.UsageReport",
        verbose_name=_("report"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="intervals",
    )
    reported_at = models.DateTimeField(verbose_name=_("reported at"), null=True, blank=True)
    created_at = models.DateTimeField(verbose_name=_("created at"), default=timezone.now)

    objects = UsageIntervalQuerySet.as_manager()

    class Meta:
        verbose_name = _("usage interval")
        verbose_name_plural = _("usage intervals")
        ordering = ["-started_at", "-id"]
        constraints = [
            # At most one open interval per desktop: opening twice is refused by the database itself.
            models.UniqueConstraint(
                fields=["desktop"], condition=Q(ended_at__isnull=True), name="billing_one_open_interval_per_desktop"
            ),
            models.CheckConstraint(
                condition=Q(ended_at__isnull=True) | Q(ended_at__gte=F("started_at")),
                name="billing_interval_ends_after_start",
            ),
        ]
        indexes = [
            models.Index(fields=["tenant", "started_at"]),
            models.Index(fields=["report", "ended_at"]),
            models.Index(fields=["desktop", "ended_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.desktop_name} {self.started_at:%Y-%m-%d %H:%M:%S} to {self.ended_at or '…'}"

    @property
    def is_open(self) -> bool:
        return self.ended_at is None

    @property
    def hours(self) -> Decimal | None:
        return None if self.seconds is None else hours(self.seconds)


class PriceChange(models.Model):
    """A template's price per hour from `effective_at` on; the history is append-only."""

    template = models.ForeignKey(
        "desktops.DesktopTemplate", verbose_name=_("template"), on_delete=models.CASCADE, related_name="+"
    )
    price_per_hour = models.DecimalField(
        verbose_name=_("price per hour"), max_digits=10, decimal_places=4, validators=[MinValueValidator(Decimal(0))]
    )
    effective_at = models.DateTimeField(verbose_name=_("effective at"))
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("created by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(verbose_name=_("created at"), default=timezone.now)
    note = models.CharField(verbose_name=_("note"), max_length=200, blank=True)

    class Meta:
        verbose_name = _("price change")
        verbose_name_plural = _("price changes")
        ordering = ["template", "-effective_at", "-id"]
        indexes = [models.Index(fields=["template", "effective_at"])]

    def __str__(self) -> str:
        return f"{self.template_id}: {self.price_per_hour}/h from {self.effective_at:%Y-%m-%d %H:%M:%S}"
