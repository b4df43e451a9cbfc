"""manage.py build_demo_image: build the small demo Linux, register it and its "Demo Linux" template."""

# In desktops, not hosts: it creates a DesktopTemplate, and hosts never imports desktops.

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from desktops.models import DesktopTemplate
from hosts import demo_image
from hosts.errors import ImageExists
from hosts.models import Host
from hosts.services import images
from quetzal.errors import ServiceError

IMAGE_NAME = "Demo Linux image"
TEMPLATE_NAME = "Demo Linux"


class Command(BaseCommand):
    help = "Build the demo image from Debian packages, import it and create the public 'Demo Linux' template."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--dest", help="build directory (default: the demo image cache)")
        parser.add_argument("--no-copy", action="store_true", help="do not copy the image to the hosts now")

    def handle(self, *args, **options) -> None:
        dest = Path(options["dest"]) if options["dest"] else demo_image.default_image_dir()
        try:
            built = demo_image.build_demo_image(dest)
        except demo_image.DemoImageError as exc:
            raise CommandError(f"Cannot build the demo image: {exc}") from None
        if not built.guest_agent:
            self.stderr.write(
                self.style.WARNING(
                    "qemu-guest-agent is not installed here, so the demo desktop has no guest agent: the file "
                    "manager reaches its home only while it is stopped (apt-get install qemu-guest-agent, rebuild)."
                )
            )
        image = self._import(built)
        template = self._template(image)
        self.stdout.write(self.style.SUCCESS(f"Image {image.name!r} (id {image.pk}), template {template.name!r}"))
        if not options["no_copy"]:
            self._copy(image)

    def _import(self, built):
        arguments = {
            "path": built.disk,
            "fmt": built.disk_format,
            "expected_sha256": built.disk_sha256,
            "kernel": built.kernel,
            "initrd": built.initrd,
            "cmdline": built.cmdline,
        }
        try:
            try:
                return images.import_image(name=IMAGE_NAME, **arguments)
            except ImageExists:
                # A rebuilt demo (new kernel or version) is a new image; desktops keep the old one.
                return images.import_image(name=f"{IMAGE_NAME} {built.disk_sha256[:8]}", **arguments)
        except ServiceError as exc:
            raise CommandError(f"{exc.detail} [{exc.code}]") from None

    def _template(self, image):
        with transaction.atomic():
            template, _ = DesktopTemplate.objects.update_or_create(
                name=TEMPLATE_NAME,
                tenant=None,
                defaults={
                    "description": "A tiny Linux (busybox shell) that boots in seconds, even without KVM.",
                    "os_family": "linux",
                    "image": image,
                    "vcpus": 1,
                    "memory_mib": 256,
                    "disk_gib": 1,
                    "gpu_kind": "none",
                    "price_per_hour": Decimal("0.05"),
                    "visibility": "public",
                    "enabled": True,
                },
            )
        return template

    def _copy(self, image) -> None:
        """Copy to every enabled host now, so `make run` can launch the demo at once."""
        for host in Host.objects.filter(enabled=True):
            try:
                copy = images.copy_image_to_host(image=image, host=host)
            except ServiceError as exc:
                self.stderr.write(f"  {host.name}: {exc.detail}")
            else:
                self.stdout.write(f"  {host.name}: {copy.state} ({copy.volume_path})")
