"""Data keys, kept only wrapped under the key-encryption key (quetzal/kek.py owns the wrapping)."""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from desktops.choices import KeyPurpose


class DataKey(models.Model):
    """One random 32-byte key: a desktop's or a home disk's LUKS passphrase, or a tenant's recording key.

    Deleting the row is the crypto-erase: the disk or recordings it opened become noise. A disk key
    without a desktop is a spare: a ready encrypted overlay at `spare_path` on `host`, claimed by the
    next desktop placed there.
    """

    uuid = models.UUIDField(
        verbose_name=_("uuid"),
        default=uuid.uuid4,
        unique=True,
        editable=False,
        help_text=_("Also the libvirt secret's."),
    )
    purpose = models.CharField(verbose_name=_("purpose"), max_length=16, choices=KeyPurpose.choices)
    tenant = models.ForeignKey(
        "tenants.Tenant",
        verbose_name=_("tenant"),
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="data_keys",
    )
    desktop = models.OneToOneField(
        "desktops.Desktop",
        verbose_name=_("desktop"),
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="disk_key",
    )
    # A home disk's key lives as long as the home (one person's files in one tenant), whatever desktops come and go.
    home = models.OneToOneField(
        "desktops.HomeDisk",
        verbose_name=_("home"),
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="disk_key",
    )
    host = models.ForeignKey(
        "hosts.Host", verbose_name=_("host"), null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    spare_path = models.CharField(verbose_name=_("spare path"), max_length=500, blank=True)
    # What the spare overlay is already made for: a claim takes only a spare of its base and size.
    spare_backing_path = models.CharField(verbose_name=_("spare backing path"), max_length=500, blank=True)
    spare_capacity_bytes = models.BigIntegerField(verbose_name=_("spare capacity bytes"), null=True, blank=True)
    wrapped = models.BinaryField(verbose_name=_("wrapped"))
    kek_id = models.CharField(
        verbose_name=_("kek id"), max_length=16, help_text=_("Which key-encryption key wrapped this key.")
    )
    created_at = models.DateTimeField(verbose_name=_("created at"), default=timezone.now)
    rewrapped_at = models.DateTimeField(verbose_name=_("rewrapped at"), null=True, blank=True)

    class Meta:
        verbose_name = _("data key")
        verbose_name_plural = _("data keys")
        constraints = [
            models.UniqueConstraint(
                fields=["tenant"], condition=Q(purpose=KeyPurpose.RECORDING), name="datakey_one_recording_key"
            ),
            models.CheckConstraint(
                condition=Q(purpose=KeyPurpose.DISK) | Q(tenant__isnull=False, desktop__isnull=True),
                name="datakey_recording_key_has_tenant",
            ),
            # A home key belongs to one home and never to a desktop; no other key points at a home.
            models.CheckConstraint(
                condition=Q(purpose=KeyPurpose.HOME, home__isnull=False, desktop__isnull=True)
                | (~Q(purpose=KeyPurpose.HOME) & Q(home__isnull=True)),
                name="datakey_home_key_has_home",
            ),
        ]
        indexes = [models.Index(fields=["host", "purpose"], condition=Q(desktop__isnull=True), name="datakey_spares")]

    def __str__(self) -> str:
        return f"{self.purpose} key {self.uuid}"

    @property
    def context(self) -> str:
        """What the wrapping is bound to: a wrapped key moved to another row will not open."""
        return f"{self.purpose}:{self.uuid}"
