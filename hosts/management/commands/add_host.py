"""manage.py add_host URI: connect to a libvirt host and register it."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from hosts.choices import VirtType
from quetzal.errors import ServiceError


class Command(BaseCommand):
    help = "Register a libvirt host (qemu:///system, qemu+ssh://root@host/system, ...); it must answer."

    def add_arguments(self, parser) -> None:
        parser.add_argument("uri", help="libvirt connection URI")
        parser.add_argument("--name", help="display name (default: the host's own name)")
        parser.add_argument("--cpu-ratio", type=float, help="vCPUs per physical CPU (default 4.0)")
        parser.add_argument("--ram-ratio", type=float, help="RAM overcommit ratio (default 1.0)")
        parser.add_argument("--reserved-memory-mib", type=int, help="RAM kept for the host (default 1024)")
        parser.add_argument("--virt-type", choices=VirtType.values, help="override the detected kvm/qemu")
        parser.add_argument("--console-address", help="address the console proxy uses to reach VNC")
        parser.add_argument("--storage-pool", help="libvirt storage pool for images and disks (default 'default')")
        parser.add_argument("--disabled", action="store_true", help="register without taking desktops yet")

    def handle(self, *args, **options) -> None:
        from hosts.services.hosts import register_host

        settings = {
            "cpu_ratio": options["cpu_ratio"],
            "ram_ratio": options["ram_ratio"],
            "reserved_memory_mib": options["reserved_memory_mib"],
            "virt_type": options["virt_type"],
            "console_address": options["console_address"],
            "storage_pool": options["storage_pool"],
        }
        if options["disabled"]:
            settings["enabled"] = False
        try:
            host = register_host(options["uri"], name=options["name"], **settings)
        except ServiceError as exc:
            raise CommandError(f"{exc.detail} [{exc.code}]") from None
        self.stdout.write(
            self.style.SUCCESS(f"Registered host {host.name} (id {host.pk}): ")
            + f"{host.cpus} CPUs, {host.memory_mib} MiB, {host.arch}, virt {host.effective_virt_type}, "
            f"libvirt {host.libvirt_version}, capacity {host.vcpu_capacity} vCPUs / {host.memory_capacity_mib} MiB"
        )
