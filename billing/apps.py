"""The billing app: usage ledger, prices, Stripe, webhooks."""

from __future__ import annotations

from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing"

    def ready(self) -> None:
        from django.db.models.signals import post_save, pre_save

        from billing import checks, receivers  # noqa: F401 - registers the system checks
        from desktops.models import DesktopTemplate
        from desktops.signals import desktop_state_changed
        from hosts.signals import host_went_down

        desktop_state_changed.connect(receivers.on_desktop_state_changed, dispatch_uid="billing.ledger")
        host_went_down.connect(receivers.on_host_went_down, dispatch_uid="billing.host_down")
        pre_save.connect(receivers.on_template_pre_save, sender=DesktopTemplate, dispatch_uid="billing.price_pre")
        post_save.connect(receivers.on_template_post_save, sender=DesktopTemplate, dispatch_uid="billing.price_post")
