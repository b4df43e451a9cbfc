from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MetricsConfig(AppConfig):
    name = "desktops.metrics"
    label = "metrics"
    verbose_name = _("Desktop and host metrics")

    def ready(self) -> None:
        from desktops.metrics import checks, receivers  # noqa: F401 - checks registers the system checks

        # Lifecycle events reach live pages (desktop and tenant topics) once committed.
        receivers.connect()
