"""manage.py host_mode NAME drain|maintenance|active: stop new placements on a host, and say what still runs."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from hosts.models import Host
from hosts.services import hosts as host_services


class Command(BaseCommand):
    help = "Drain a host, put it in maintenance, or make it active again; prints what still runs there."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name", help="host name")
        parser.add_argument("mode", choices=["drain", "maintenance", "active", "report"])

    def handle(self, *args, **options) -> None:
        host = Host.objects.filter(name=options["name"]).first()
        if host is None:
            raise CommandError(f"No host named {options['name']!r}. [not_found]")
        mode = options["mode"]
        if mode != "report":
            host_services.set_mode(host=host, mode=mode)
        report = host_services.residents(host=host)
        self.stdout.write(f"{host.name}: {report.mode}; {len(report.desktops)} desktop(s) still there")
        for line in report.lines():
            self.stdout.write(f"  {line}")
        if report.unreachable:
            self.stdout.write(f"  (host did not answer: {report.unreachable}; listed from the database)")
