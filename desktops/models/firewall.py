"""Egress firewall rules of a tenant, a template (for one tenant) or one desktop."""

from __future__ import annotations

import ipaddress

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from desktops.choices import FirewallAction, FirewallProtocol
from tenants.querysets import TenantQuerySet

# Rules one scope (the tenant default, one template, one desktop) may hold: three scopes fit one nwfilter.
MAX_RULES_PER_SCOPE = 100
PORTED_PROTOCOLS = (FirewallProtocol.TCP, FirewallProtocol.UDP)


def validate_cidr(value: str) -> None:
    """An IPv4 network in CIDR form, host bits zero (a bare address means /32)."""
    try:
        ipaddress.IPv4Network(value)
    except ValueError as error:
        raise ValidationError(
            gettext("Enter an IPv4 network such as 10.0.0.0/8 (%(error)s).") % {"error": error}, code="invalid_cidr"
        ) from None


class FirewallRule(models.Model):
    """One ordered allow/deny rule for outbound traffic; the first rule that matches decides."""

    tenant = models.ForeignKey(
        "tenants.Tenant", verbose_name=_("tenant"), on_delete=models.CASCADE, related_name="firewall_rules"
    )
    template = models.ForeignKey(
        "desktops.DesktopTemplate",
        verbose_name=_("template"),
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="firewall_rules",
    )
    desktop = models.ForeignKey(
        "desktops.Desktop",
        verbose_name=_("desktop"),
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="firewall_rules",
    )
    position = models.PositiveIntegerField(
        verbose_name=_("position"), default=0, validators=[MaxValueValidator(10_000)]
    )
    action = models.CharField(verbose_name=_("action"), max_length=8, choices=FirewallAction.choices)
    cidr = models.CharField(
        verbose_name=_("cidr"), max_length=18, validators=[validate_cidr], help_text=_("Destination, e.g. 10.0.0.0/8.")
    )
    protocol = models.CharField(
        verbose_name=_("protocol"), max_length=8, choices=FirewallProtocol.choices, default=FirewallProtocol.ANY
    )
    port_start = models.PositiveIntegerField(
        verbose_name=_("port start"), null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(65535)]
    )
    port_end = models.PositiveIntegerField(
        verbose_name=_("port end"), null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(65535)]
    )
    description = models.CharField(verbose_name=_("description"), max_length=100, blank=True)
    created_at = models.DateTimeField(verbose_name=_("created at"), default=timezone.now)

    objects = TenantQuerySet.as_manager()

    class Meta:
        verbose_name = _("firewall rule")
        verbose_name_plural = _("firewall rules")
        ordering = ["position", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(template__isnull=True) | Q(desktop__isnull=True), name="firewall_rule_one_scope"
            ),
            models.CheckConstraint(
                condition=Q(port_start__isnull=True, port_end__isnull=True)
                | Q(protocol__in=PORTED_PROTOCOLS, port_start__isnull=False),
                name="firewall_rule_ports_need_tcp_udp",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.protocol} {self.cidr}{self.ports_label and ':' + self.ports_label}"

    @property
    def scope(self) -> str:
        return "desktop" if self.desktop_id else "template" if self.template_id else "tenant"

    @property
    def ports_label(self) -> str:
        if self.port_start is None:
            return ""
        end = self.port_end or self.port_start
        return str(self.port_start) if end == self.port_start else f"{self.port_start}-{end}"

    def clean(self) -> None:
        """Cross-field checks the database constraints also hold, as field errors for forms and the API."""
        errors: dict[str, str] = {}
        if self.template_id and self.desktop_id:
            errors["template"] = gettext("A rule belongs to a template or to a desktop, not both.")
        if self.port_start is None and self.port_end is not None:
            errors["port_start"] = gettext("Give the first port of the range.")
        if self.port_start is not None:
            if self.protocol not in PORTED_PROTOCOLS:
                errors["protocol"] = gettext("Ports need TCP or UDP.")
            if self.port_end is not None and self.port_end < self.port_start:
                errors["port_end"] = gettext("The last port must not be below the first.")
        if errors:
            raise ValidationError(errors)
