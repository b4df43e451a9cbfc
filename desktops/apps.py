from __future__ import annotations

from django.apps import AppConfig


class DesktopsConfig(AppConfig):
    name = "desktops"
    verbose_name = "Desktops"
