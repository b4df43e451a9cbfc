"""manage.py import_image PATH NAME: register a local disk file as an image."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from hosts.choices import ImageFormat
from quetzal.errors import ServiceError


class Command(BaseCommand):
    help = "Register a qcow2 or raw disk file in place (checksummed); optionally copy it to every host."

    def add_arguments(self, parser) -> None:
        parser.add_argument("path")
        parser.add_argument("name")
        parser.add_argument("--format", choices=ImageFormat.values, default=ImageFormat.QCOW2)
        parser.add_argument("--sha256", help="refuse the file unless its SHA-256 is this")
        parser.add_argument("--kernel", help="kernel for direct kernel boot")
        parser.add_argument("--initrd", help="initrd for direct kernel boot")
        parser.add_argument("--cmdline", default="", help="kernel command line")
        parser.add_argument("--copy", action="store_true", help="queue copies to every enabled host")

    def handle(self, *args, **options) -> None:
        from hosts.models import Host
        from hosts.services import images

        try:
            image = images.import_image(
                options["path"],
                options["name"],
                options["format"],
                expected_sha256=options["sha256"],
                kernel=options["kernel"],
                initrd=options["initrd"],
                cmdline=options["cmdline"],
            )
        except ServiceError as exc:
            raise CommandError(f"{exc.detail} [{exc.code}]") from None
        self.stdout.write(self.style.SUCCESS(f"Image {image.name} (id {image.pk}) sha256 {image.sha256}"))
        if options["copy"]:
            copies = images.request_copies(image=image, hosts=Host.objects.filter(enabled=True))
            self.stdout.write(f"Queued copies to {len(copies)} host(s).")
