"""The billing app: usage ledger, prices, Stripe, webhooks."""

from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = _("Billing")

    def ready(self) -> None:
        from django.db.models.signals import post_save, pre_save

        from billing import checks, receivers  # noqa: F401 - registers the system checks
        from billing.services import usage
        from desktops.models import DesktopTemplate
        from desktops.services import hours
        from desktops.signals import desktop_resized, desktop_state_changed, host_reconciling
        from hosts.signals import host_went_down

        desktop_state_changed.connect(receivers.on_desktop_state_changed, dispatch_uid="billing.ledger")
        desktop_resized.connect(receivers.on_desktop_resized, dispatch_uid="billing.ledger_resize")
        host_reconciling.connect(receivers.on_host_reconciling, dispatch_uid="billing.ledger_repair")
        host_went_down.connect(receivers.on_host_went_down, dispatch_uid="billing.host_down")
        # The dashboards' desktop-hours come from the ledger while billing is on.
        hours.register_interval_source(usage.running_intervals)
        pre_save.connect(receivers.on_template_pre_save, sender=DesktopTemplate, dispatch_uid="billing.price_pre")
        post_save.connect(receivers.on_template_post_save, sender=DesktopTemplate, dispatch_uid="billing.price_post")
