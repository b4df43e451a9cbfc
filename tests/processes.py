"""Server and worker processes a test starts against its own database, Redis and channel layer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import connection

from quetzal.server import asgi_server_command, free_port
from tests.services import port_open, require
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[1]


def require_shared_services(who: str) -> None:
    """What a child process shares with the test: a PostgreSQL test database (not SQLite) and Redis."""
    require(connection.vendor == "postgresql", f"PostgreSQL ({who} shares the test database)")
    require(settings.REDIS_URL is not None and port_open("127.0.0.1", 6379), "Redis (REDIS_URL)")


def child_env(**extra: str) -> dict[str, str]:
    """This process's environment pointed at the test database and Redis, plus `extra`."""
    db = connection.settings_dict
    return dict(
        os.environ,
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        REDIS_URL=settings.REDIS_URL,
        # The test users' passwords are hashed with the tests' fast hasher; a server must know it.
        PASSWORD_HASHERS=",".join(settings.PASSWORD_HASHERS),
        PYTHONUNBUFFERED="1",
        **extra,
    )


@dataclass
class Child:
    """A process in a session of its own (so its children stop with it), writing to a log file."""

    process: subprocess.Popen
    log_path: Path

    @classmethod
    def start(cls, command: list[str], *, env: dict[str, str], log_path: Path) -> Child:
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        return cls(process, log_path)

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def kill(self) -> None:
        """SIGKILL the whole process group, as a crash or the OOM killer would."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self, timeout_s: float = 20) -> None:
        """SIGTERM the process group; SIGKILL it if it has not ended within timeout_s."""
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()


def start_asgi_server(*, env: dict[str, str], log_path: Path, workers: int = 1) -> tuple[Child, str]:
    """Quetzal under its production ASGI server on a free port: (the process, its base URL) once it listens."""
    port = free_port()
    server = Child.start(asgi_server_command("127.0.0.1", port, workers=workers), env=env, log_path=log_path)
    wait_until(lambda: port_open("127.0.0.1", port) or server.process.poll() is not None, 60)
    assert server.process.poll() is None, server.log_tail()
    return server, f"http://127.0.0.1:{port}"


def start_celery_worker(*, env: dict[str, str], log_path: Path, options: list[str]) -> Child:
    """A real `celery worker` process; returns once it says it is ready.

    At INFO a worker does not name the tasks it runs; QUETZAL_TEST_WORKER_LOG_LEVEL=DEBUG makes its log say each.
    """
    level = os.environ.get("QUETZAL_TEST_WORKER_LOG_LEVEL", "INFO")
    command = [sys.executable, "-m", "celery", "-A", "quetzal", "worker", "-l", level, *options]
    command += ["--without-heartbeat", "--without-mingle", "--without-gossip"]
    worker = Child.start(command, env=env, log_path=log_path)
    wait_until(lambda: b"ready." in log_path.read_bytes(), 60, explain=worker.log_tail)
    return worker
