from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DesktopsConfig(AppConfig):
    name = "desktops"
    verbose_name = _("Desktops")

    def ready(self) -> None:
        # desktops.tasks registers the tasks in every process, not only in workers, so dispatch's signatures by
        # name find them and eager mode (no worker) runs them in-process.
        from desktops import receivers, tasks  # noqa: F401
        from hosts.signals import host_came_back, host_went_down
        from tenants.signals import member_joined, member_left

        host_went_down.connect(receivers.on_host_went_down, dispatch_uid="desktops.host_down")
        host_came_back.connect(receivers.on_host_came_back, dispatch_uid="desktops.host_back")
        member_joined.connect(receivers.on_member_joined, dispatch_uid="desktops.member_joined")
        member_left.connect(receivers.on_member_left, dispatch_uid="desktops.member_left")
