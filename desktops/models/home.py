"""Home disks: one per person per tenant, attached by the hypervisor to whichever desktop they use."""

from __future__ import annotations

import uuid
from typing import ClassVar

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from desktops.choices import HomeDiskState
from tenants.querysets import TenantOwned, TenantQuerySet

HomeDiskManager = models.Manager.from_queryset(TenantQuerySet)


class HomeDisk(TenantOwned):
    """A person's files: an ext4 volume on one host's pool, outliving every desktop it is attached to.

    Encrypted (a LUKS qcow2 with its own key) where desktop disks are, raw elsewhere: a person's files are never
    plain at rest beside an encrypted system disk.

    `attached_to` is one-to-one, so the database itself refuses a second desktop (and a desktop a second
    home); QEMU's image lock stands behind it on the host. Changes to `attached_to` and `state` go through
    the guarded updates in desktops.services.homes, never `save()`.
    """

    tenant = models.ForeignKey(
        "tenants.Tenant", verbose_name=_("tenant"), on_delete=models.CASCADE, related_name="home_disks"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("user"), on_delete=models.CASCADE, related_name="home_disks"
    )
    host = models.ForeignKey("hosts.Host", verbose_name=_("host"), on_delete=models.PROTECT, related_name="home_disks")
    state = models.CharField(
        verbose_name=_("state"), max_length=16, choices=HomeDiskState.choices, default=HomeDiskState.CREATING
    )
    status_reason = models.CharField(verbose_name=_("status reason"), max_length=300, blank=True)
    volume_name = models.CharField(verbose_name=_("volume name"), max_length=200)
    volume_path = models.CharField(verbose_name=_("volume path"), max_length=500, blank=True)
    size_gib = models.PositiveIntegerField(verbose_name=_("size gib"))
    encrypted = models.BooleanField(
        verbose_name=_("encrypted"), default=False, help_text=_("A LUKS qcow2 (key in DataKey), not a raw image.")
    )
    attached_to = models.OneToOneField(
        "desktops.Desktop",
        verbose_name=_("attached to"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="home_disk",
    )
    attached_at = models.DateTimeField(verbose_name=_("attached at"), null=True, blank=True)
    used_bytes = models.BigIntegerField(
        verbose_name=_("used bytes"), default=0, help_text=_("Space used when last looked at.")
    )
    created_at = models.DateTimeField(verbose_name=_("created at"), default=timezone.now)

    objects: ClassVar = HomeDiskManager()

    class Meta:
        verbose_name = _("home disk")
        verbose_name_plural = _("home disks")
        ordering = ["tenant", "user"]
        constraints = [models.UniqueConstraint(fields=["tenant", "user"], name="home_disk_one_per_person")]

    def __str__(self) -> str:
        return f"home of {self.user} in {self.tenant}"

    @property
    def serial(self) -> str:
        """What the guest finds it by in /sys/block/*/serial (virtio keeps 20 bytes)."""
        return f"qzhome{self.pk}"

    @property
    def size_bytes(self) -> int:
        return self.size_gib * 1024**3


class HomeUpload(TenantOwned):
    """A chunked, resumable upload into a home: bytes gather in the spool until all `size` have arrived."""

    id = models.UUIDField(verbose_name=_("id"), primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey("tenants.Tenant", verbose_name=_("tenant"), on_delete=models.CASCADE, related_name="+")
    home = models.ForeignKey(HomeDisk, verbose_name=_("home"), on_delete=models.CASCADE, related_name="uploads")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("user"), on_delete=models.CASCADE, related_name="+"
    )
    path = models.CharField(verbose_name=_("path"), max_length=1100)
    size = models.BigIntegerField(verbose_name=_("size"))
    received = models.BigIntegerField(verbose_name=_("received"), default=0)
    created_at = models.DateTimeField(verbose_name=_("created at"), default=timezone.now)

    objects: ClassVar = HomeDiskManager()

    class Meta:
        verbose_name = _("home upload")
        verbose_name_plural = _("home uploads")
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"upload of {self.path} ({self.received}/{self.size})"

    @property
    def spool_name(self) -> str:
        return f"up-{self.id.hex}"
