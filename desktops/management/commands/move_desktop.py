"""manage.py move_desktop ID [--to HOST]: live-migrate a running desktop; --evacuate HOST moves all of a host's."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from desktops.models import Desktop
from desktops.services import moves
from hosts.models import Host
from quetzal.errors import ServiceError


class Command(BaseCommand):
    help = "Move a running desktop to another host without stopping it (or every desktop off a host)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("desktop", nargs="?", type=int, help="desktop id")
        parser.add_argument("--to", help="destination host name (default: the scheduler's choice)")
        parser.add_argument("--evacuate", metavar="HOST", help="move every running desktop off this host")

    def _host(self, name: str) -> Host:
        host = Host.objects.filter(name=name).first()
        if host is None:
            raise CommandError(f"No host named {name!r}. [not_found]")
        return host

    def handle(self, *args, **options) -> None:
        try:
            if options["evacuate"]:
                operations = moves.evacuate(host=self._host(options["evacuate"]), actor=None)
                self.stdout.write(f"Queued {len(operations)} move(s) off {options['evacuate']}.")
                return
            desktop = Desktop.objects.filter(pk=options["desktop"]).first()
            if desktop is None:
                raise CommandError(f"No desktop {options['desktop']}. [not_found]")
            target = self._host(options["to"]) if options["to"] else None
            operation = moves.request_move(desktop=desktop, actor=None, host=target)
        except ServiceError as exc:
            raise CommandError(f"{exc.detail} [{exc.code}]") from None
        self.stdout.write(f"Queued move of {desktop.name} (operation {operation.pk}).")
