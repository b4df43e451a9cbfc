from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = _("Tenants and people")

    def ready(self) -> None:
        from tenants import receivers  # noqa: F401 (connects the sign-in and sign-out receivers)
