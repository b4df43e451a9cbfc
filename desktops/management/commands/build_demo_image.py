"""manage.py build_demo_image [--graphical]: build a demo Linux, register it and its public template."""

# In desktops, not hosts: it creates a DesktopTemplate, and hosts never imports desktops.

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from desktops.models import DesktopTemplate
from hosts import demo_graphical, demo_image
from hosts.errors import ImageExists
from hosts.models import Host
from hosts.services import images
from quetzal.errors import ServiceError


@dataclass(frozen=True)
class Flavour:
    """One demo: the names it registers and the template it makes."""

    image_name: str
    template_name: str
    ready_line: str
    template: dict


TEXT = Flavour(
    image_name="Demo Linux image",
    template_name="Demo Linux",
    ready_line=demo_image.READY_BANNER,
    template={
        "description": "A tiny Linux (busybox shell) that boots in seconds, even without KVM.",
        "vcpus": 1,
        "memory_mib": 256,
        "disk_gib": 1,
        "price_per_hour": Decimal("0.05"),
    },
)
GRAPHICAL = Flavour(
    image_name="Demo Linux desktop image",
    template_name="Demo Linux desktop",
    ready_line=demo_graphical.READY_LINE,
    template={
        "description": "Debian with a window manager, a terminal and a web browser; clipboard and sound.",
        "vcpus": 2,
        "memory_mib": 1024,
        "disk_gib": demo_graphical.TEMPLATE_DISK_GIB,
        "price_per_hour": Decimal("0.10"),
        "clipboard_channel": True,
        "sound": True,
    },
)


class Command(BaseCommand):
    help = "Build a demo image from Debian packages, import it and create its public template."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--dest", help="build directory (default: the demo image cache)")
        parser.add_argument("--no-copy", action="store_true", help="do not copy the image to the hosts now")
        parser.add_argument(
            "--graphical", action="store_true", help="the X desktop (jwm, xterm, dillo) instead of the text demo"
        )
        parser.add_argument(
            "--print-recipe-hash",
            action="store_true",
            help="print the graphical recipe's hash (a CI cache key) and exit",
        )

    def handle(self, *args, **options) -> None:
        if options["print_recipe_hash"]:
            try:
                self.stdout.write(demo_graphical.recipe_hash(demo_graphical.current_recipe()))
            except demo_image.DemoImageError as exc:
                raise CommandError(str(exc)) from None
            return
        flavour = GRAPHICAL if options["graphical"] else TEXT
        try:
            if options["graphical"]:
                dest = Path(options["dest"]) if options["dest"] else demo_graphical.default_graphical_dir()
                built = demo_graphical.build_graphical_image(dest, progress=lambda msg: self.stdout.write(f"  {msg}"))
            else:
                dest = Path(options["dest"]) if options["dest"] else demo_image.default_image_dir()
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
        image = self._import(built, flavour)
        template = self._template(image, flavour)
        self.stdout.write(self.style.SUCCESS(f"Image {image.name!r} (id {image.pk}), template {template.name!r}"))
        if not options["no_copy"]:
            self._copy(image)

    def _import(self, built, flavour: Flavour):
        arguments = {
            "path": built.disk,
            "fmt": built.disk_format,
            "expected_sha256": built.disk_sha256,
            "kernel": built.kernel,
            "initrd": built.initrd,
            "cmdline": built.cmdline,
            "ready_line": flavour.ready_line,
        }
        try:
            try:
                return images.import_image(name=flavour.image_name, **arguments)
            except ImageExists:
                # A rebuilt demo (new kernel or version) is a new image; desktops keep the old one.
                return images.import_image(name=f"{flavour.image_name} {built.disk_sha256[:8]}", **arguments)
        except ServiceError as exc:
            raise CommandError(f"{exc.detail} [{exc.code}]") from None

    def _template(self, image, flavour: Flavour):
        with transaction.atomic():
            template, _ = DesktopTemplate.objects.update_or_create(
                name=flavour.template_name,
                tenant=None,
                defaults={
                    "os_family": "linux",
                    "image": image,
                    "gpu_kind": "none",
                    "visibility": "public",
                    "enabled": True,
                    **flavour.template,
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
