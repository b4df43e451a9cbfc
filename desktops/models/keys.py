"""Data keys, kept only wrapped under the key-encryption key (quetzal/kek.py owns the wrapping)."""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q
from django.utils import timezone

from desktops.choices import KeyPurpose


class DataKey(models.Model):
    """One random 32-byte key: a desktop disk's LUKS passphrase, or a tenant's recording key.

    Deleting the row is the crypto-erase: the disk or recordings it opened become noise. A disk key
    without a desktop is a spare: a ready encrypted overlay at `spare_path` on `host`, claimed by the
    next desktop placed there.
    """

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False, help_text="Also the libvirt secret's.")
    purpose = models.CharField(max_length=16, choices=KeyPurpose.choices)
    tenant = models.ForeignKey(
        "tenants.Tenant", null=True, blank=True, on_delete=models.CASCADE, related_name="data_keys"
    )
    desktop = models.OneToOneField(
        "desktops.Desktop", null=True, blank=True, on_delete=models.CASCADE, related_name="disk_key"
    )
    host = models.ForeignKey("hosts.Host", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    spare_path = models.CharField(max_length=500, blank=True)
    # What the spare overlay is already made for: a claim takes only a spare of its base and size.
    spare_backing_path = models.CharField(max_length=500, blank=True)
    spare_capacity_bytes = models.BigIntegerField(null=True, blank=True)
    wrapped = models.BinaryField()
    kek_id = models.CharField(max_length=16, help_text="Which key-encryption key wrapped this key.")
    created_at = models.DateTimeField(default=timezone.now)
    rewrapped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant"], condition=Q(purpose=KeyPurpose.RECORDING), name="datakey_one_recording_key"
            ),
            models.CheckConstraint(
                condition=Q(purpose=KeyPurpose.DISK) | Q(tenant__isnull=False, desktop__isnull=True),
                name="datakey_recording_key_has_tenant",
            ),
        ]
        indexes = [models.Index(fields=["host", "purpose"], condition=Q(desktop__isnull=True), name="datakey_spares")]

    def __str__(self) -> str:
        return f"{self.purpose} key {self.uuid}"

    @property
    def context(self) -> str:
        """What the wrapping is bound to: a wrapped key moved to another row will not open."""
        return f"{self.purpose}:{self.uuid}"
