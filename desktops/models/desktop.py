"""Desktops: a person's (or a pool's) VM, its intent and where it lives."""

from __future__ import annotations

import uuid
from typing import ClassVar

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from desktops.choices import DesktopKind, DesktopState
from tenants.querysets import TenantOwned, TenantQuerySet


class DesktopQuerySet(TenantQuerySet):
    def alive(self) -> DesktopQuerySet:
        return self.exclude(state=DesktopState.DELETED)

    def owned_by(self, user) -> DesktopQuerySet:
        return self.filter(user=user)


# A named manager class: type checkers see the queryset's methods on `objects`.
DesktopManager = models.Manager.from_queryset(DesktopQuerySet)


class Desktop(TenantOwned):
    """One VM. The database holds the intent; the hypervisor is the truth about the VM."""

    tenant = models.ForeignKey(
        "tenants.Tenant", verbose_name=_("tenant"), on_delete=models.CASCADE, related_name="desktops"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="desktops",
    )
    template = models.ForeignKey(
        "desktops.DesktopTemplate", verbose_name=_("template"), on_delete=models.PROTECT, related_name="desktops"
    )
    pool = models.ForeignKey(
        "desktops.Pool",
        verbose_name=_("pool"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="desktops",
    )
    kind = models.CharField(
        verbose_name=_("kind"), max_length=16, choices=DesktopKind.choices, default=DesktopKind.PERSONAL
    )
    name = models.CharField(verbose_name=_("name"), max_length=100)

    state = models.CharField(
        verbose_name=_("state"), max_length=16, choices=DesktopState.choices, default=DesktopState.REQUESTED
    )
    state_changed_at = models.DateTimeField(verbose_name=_("state changed at"), default=timezone.now)
    status_reason = models.CharField(
        verbose_name=_("status reason"), max_length=300, blank=True, help_text=_("Why it last stopped or failed.")
    )

    host = models.ForeignKey(
        "hosts.Host", verbose_name=_("host"), null=True, blank=True, on_delete=models.PROTECT, related_name="desktops"
    )
    domain_uuid = models.UUIDField(verbose_name=_("domain uuid"), default=uuid.uuid4, unique=True, editable=False)
    disk_volume = models.CharField(verbose_name=_("disk volume"), max_length=200, blank=True)
    seed_volume = models.CharField(verbose_name=_("seed volume"), max_length=200, blank=True)
    disk_encrypted = models.BooleanField(
        verbose_name=_("disk encrypted"), default=False, help_text=_("Its disk is a LUKS overlay (key in DataKey).")
    )
    # The size it has now (chosen at launch within its template's bounds, changed by a resize).
    vcpus = models.PositiveIntegerField(verbose_name=_("vcpus"))
    memory_mib = models.PositiveIntegerField(verbose_name=_("memory mib"))
    disk_gib = models.PositiveIntegerField(
        verbose_name=_("disk gib"), default=0, help_text=_("0 on desktops made before sizes: the template's.")
    )
    size_name = models.CharField(
        verbose_name=_("size name"),
        max_length=50,
        blank=True,
        help_text=_("The template's named size, if one was chosen."),
    )

    created_at = models.DateTimeField(verbose_name=_("created at"), default=timezone.now)
    running_since = models.DateTimeField(verbose_name=_("running since"), null=True, blank=True)
    # Set when the guest says it is ready for input (serial line, agent, or a settled screen) after
    # its last start; None while it boots. The console holds keystrokes back until then.
    ready_at = models.DateTimeField(verbose_name=_("ready at"), null=True, blank=True)
    # For guests with no readiness signal: "<screen hash> <unix time first seen>" of the last look.
    ready_probe = models.CharField(verbose_name=_("ready probe"), max_length=100, blank=True, editable=False)
    last_activity_at = models.DateTimeField(
        verbose_name=_("last activity at"), null=True, blank=True, help_text=_("Last console connect, input or leave.")
    )
    consoles_open = models.PositiveIntegerField(verbose_name=_("consoles open"), default=0)
    # A disposable desktop is deleted once this passes (desktops.services.disposable, from the beat).
    expires_at = models.DateTimeField(verbose_name=_("expires at"), null=True, blank=True, db_index=True)
    automation_at = models.DateTimeField(
        verbose_name=_("automation at"),
        null=True,
        blank=True,
        help_text=_("Last input batch sent through the automation API (the console says so)."),
    )
    assigned_at = models.DateTimeField(verbose_name=_("assigned at"), null=True, blank=True)
    # Set when desktops.services.warm_personal starts it ahead of its owner's usual arrival.
    warm_until = models.DateTimeField(
        verbose_name=_("warm until"),
        null=True,
        blank=True,
        help_text=_("Started ahead of its owner's usual arrival: the idle policy leaves it running until then."),
    )
    deleted_at = models.DateTimeField(verbose_name=_("deleted at"), null=True, blank=True)

    objects: ClassVar[DesktopManager] = DesktopManager()

    class Meta:
        verbose_name = _("desktop")
        verbose_name_plural = _("desktops")
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["tenant", "state"]), models.Index(fields=["host", "state"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind=DesktopKind.POOLED) | Q(user__isnull=False), name="personal_desktop_has_user"
            )
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def domain_name(self) -> str:
        """The libvirt domain name: stable, unique, and free of user-supplied text."""
        return f"qz-{self.pk}-{self.domain_uuid.hex[:8]}"


class DesktopSnapshot(models.Model):
    """A named point in a desktop's disk history."""

    desktop = models.ForeignKey(Desktop, verbose_name=_("desktop"), on_delete=models.CASCADE, related_name="snapshots")
    name = models.CharField(verbose_name=_("name"), max_length=64)
    created_at = models.DateTimeField(verbose_name=_("created at"), default=timezone.now)
    # Taken while the VM ran: reverting a stopped desktop to it starts the desktop (the running limits apply).
    running = models.BooleanField(verbose_name=_("running"), default=False)

    class Meta:
        verbose_name = _("desktop snapshot")
        verbose_name_plural = _("desktop snapshots")
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["desktop", "name"], name="snapshot_unique_name")]

    def __str__(self) -> str:
        return f"{self.desktop} @ {self.name}"


class DesktopLabel(TenantOwned):
    """A label on a desktop (a test run, a demo): disposable desktops are listed and torn down by label."""

    tenant = models.ForeignKey("tenants.Tenant", verbose_name=_("tenant"), on_delete=models.CASCADE, related_name="+")
    desktop = models.ForeignKey(Desktop, verbose_name=_("desktop"), on_delete=models.CASCADE, related_name="labels")
    value = models.CharField(verbose_name=_("value"), max_length=63)

    class Meta:
        verbose_name = _("desktop label")
        verbose_name_plural = _("desktop labels")
        indexes = [models.Index(fields=["tenant", "value"])]
        constraints = [models.UniqueConstraint(fields=["desktop", "value"], name="desktop_label_unique")]

    def __str__(self) -> str:
        return self.value
