"""manage.py enrol_host URI: make the keys a host's wire needs, check the host, and register it."""

from __future__ import annotations

import subprocess
from urllib.parse import urlsplit

from django.core.management.base import BaseCommand, CommandError

from hosts.choices import VirtType
from hosts.hypervisor import ksm
from hosts.services import enrolment
from quetzal.errors import ServiceError


class Command(BaseCommand):
    help = (
        "Enrol a libvirt host: qemu+tls://host/system (a CA and certificates are made; copy the server "
        "bundle to the host), qemu+ssh://root@host/system (an SSH key is made; --install-key runs "
        "ssh-copy-id), or qemu+tcp:// on a private wire. Checks reachability, virtualisation type, "
        "storage pool and free capacity, and names what is missing."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("uri", help="libvirt connection URI")
        parser.add_argument("--name", help="display name (default: the host's own name)")
        parser.add_argument("--prepare-only", action="store_true", help="make keys and print the host's steps")
        parser.add_argument("--check-only", action="store_true", help="check the host without registering it")
        parser.add_argument("--install-key", action="store_true", help="qemu+ssh: run ssh-copy-id with the new key")
        parser.add_argument("--cpu-ratio", type=float, help="vCPUs per physical CPU (default 4.0)")
        parser.add_argument("--ram-ratio", type=float, help="RAM overcommit ratio (default 1.0)")
        parser.add_argument("--reserved-memory-mib", type=int, help="RAM kept for the host (default 1024)")
        parser.add_argument("--virt-type", choices=VirtType.values, help="override the detected kvm/qemu")
        parser.add_argument("--console-address", help="address the console proxy uses to reach VNC")
        parser.add_argument("--storage-pool", help="libvirt storage pool for images and disks (default 'default')")
        parser.add_argument("--disabled", action="store_true", help="enrol without taking desktops yet")
        parser.add_argument(
            "--merge-memory-pages",
            action="store_true",
            help="merge identical memory pages (KSM); switched on here when run on the host itself as root",
        )

    def handle(self, *args, **options) -> None:
        uri = options["uri"]
        try:
            preparation = enrolment.prepare(uri)
        except ServiceError as exc:
            raise CommandError(f"{exc.detail} [{exc.code}]") from None
        for step in preparation.steps:
            self.stdout.write(f"  host step: {step}")
        if options["install_key"]:
            self._install_key(uri, preparation)
        if options["prepare_only"]:
            return
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
        if options["merge_memory_pages"]:
            settings["merge_memory_pages"] = True
        if options["check_only"]:
            check = enrolment.check_host(
                preparation.uri,
                storage_pool=settings["storage_pool"] or "default",
                virt_type=settings["virt_type"] or "",
            )
            self._print(check)
            if not check.ready:
                raise CommandError("The host is not ready; see MISSING above. [host_not_ready]")
            return
        try:
            host, check = enrolment.enrol_host(uri, name=options["name"], **settings)
        except enrolment.HostNotReady as exc:
            self._print(exc.check)
            raise CommandError(f"{exc.detail} [{exc.code}]") from None
        except ServiceError as exc:
            raise CommandError(f"{exc.detail} [{exc.code}]") from None
        self._print(check)
        if host.merge_memory_pages:
            self._merge_memory_pages(uri)
        self.stdout.write(
            self.style.SUCCESS(f"Enrolled host {host.name} (id {host.pk}) at {host.uri}: ")
            + f"virt {host.effective_virt_type}, capacity {host.vcpu_capacity} vCPUs / {host.memory_capacity_mib} MiB"
        )

    def _print(self, check: enrolment.HostCheck) -> None:
        for line in check.lines():
            self.stdout.write(f"  {line}")

    def _merge_memory_pages(self, uri: str) -> None:
        """Switch KSM on when this command runs on the host itself; libvirt cannot do it remotely."""
        if urlsplit(uri).hostname not in (None, "", "localhost", "127.0.0.1", "::1"):
            self.stdout.write(
                f"  host step: KSM is switched on on the host itself: echo 1 > {ksm.KSM_DIR / 'run'} as root "
                "(or MERGE_MEMORY_PAGES=1 scripts/start-libvirtd); the heartbeat reports whether it merges"
            )
            return
        self.stdout.write(f"  {ksm.switch_on()}")

    def _install_key(self, uri: str, preparation: enrolment.Preparation) -> None:
        if enrolment.transport(uri) != "ssh":
            raise CommandError("--install-key is for qemu+ssh:// hosts. [invalid_option]")
        parts = urlsplit(uri)
        key = dict(p.split("=", 1) for p in urlsplit(preparation.uri).query.split("&"))["keyfile"]
        target = f"{parts.username or 'root'}@{parts.hostname}"
        argv = ["ssh-copy-id", "-i", f"{key}.pub"] + (["-p", str(parts.port)] if parts.port else []) + [target]
        # Interactive on purpose: the operator types the host's password once, here, never in a worker.
        if subprocess.run(argv).returncode != 0:
            raise CommandError(f"ssh-copy-id to {target} failed. [ssh_copy_failed]")
