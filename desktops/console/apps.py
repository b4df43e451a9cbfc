from __future__ import annotations

from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    name = "desktops.console"
    label = "console"
    verbose_name = "Desktop consoles"
