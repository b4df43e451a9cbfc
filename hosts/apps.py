from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class HostsConfig(AppConfig):
    name = "hosts"
    verbose_name = _("Hosts and images")

    def ready(self) -> None:
        from hosts import conf
        from hosts.hypervisor import host_shell

        # The hypervisor layer never reads Django settings itself; it asks this when it opens a host.
        host_shell.set_prefixes(conf.host_shells)
