from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SsoConfig(AppConfig):
    name = "tenants.sso"
    label = "sso"
    verbose_name = _("Single sign-on")

    def ready(self) -> None:
        from tenants.sso import receivers  # noqa: F401 (connects the SSO sign-in receiver)
