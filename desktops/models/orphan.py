"""Domains that carry Quetzal metadata but no desktop claims: destroyed after a grace period."""

from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class OrphanSighting(models.Model):
    """When reconcile first saw an unclaimed Quetzal domain on a host."""

    host = models.ForeignKey("hosts.Host", verbose_name=_("host"), on_delete=models.CASCADE, related_name="+")
    domain_name = models.CharField(verbose_name=_("domain name"), max_length=200)
    desktop_id = models.BigIntegerField(verbose_name=_("desktop id"), null=True, blank=True)
    first_seen_at = models.DateTimeField(verbose_name=_("first seen at"), default=timezone.now)

    class Meta:
        verbose_name = _("orphan sighting")
        verbose_name_plural = _("orphan sightings")
        constraints = [models.UniqueConstraint(fields=["host", "domain_name"], name="orphan_unique_host_domain")]

    def __str__(self) -> str:
        return self.domain_name
