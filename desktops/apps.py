from __future__ import annotations

from django.apps import AppConfig


class DesktopsConfig(AppConfig):
    name = "desktops"
    verbose_name = "Desktops"

    def ready(self) -> None:
        # desktops.tasks registers the tasks in every process, not only in workers, so dispatch's signatures by
        # name find them and eager mode (no worker) runs them in-process.
        from desktops import receivers, tasks  # noqa: F401
