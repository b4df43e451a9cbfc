"""manage.py doctor names what is wrong with a deployment, and passes one that is right."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from hosts.tests.factories import HostFactory
from hosts.tests.libvirt_hosts import DEAD_URI, DEFAULT_URI
from tests.services import port_open, require, require_tool

pytestmark = pytest.mark.django_db


def _doctor(*argv: str) -> tuple[str, str]:
    out = io.StringIO()
    try:
        call_command("doctor", *argv, stdout=out)
    except CommandError as exc:
        return out.getvalue(), str(exc)
    return out.getvalue(), ""


def test_it_reports_database_redis_and_a_reachable_host(settings):
    require(port_open("127.0.0.1", 6379), "Redis at 127.0.0.1:6379")
    settings.REDIS_URL = "redis://127.0.0.1:6379/10"
    HostFactory(uri=DEFAULT_URI, name="sim")
    # When the doctor runs on a development configuration
    output, _ = _doctor()
    # Then the database, its migrations, Redis and the host are fine, and TLS settings are flagged
    assert "ok   database:" in output and "ok   migrations: all applied" in output
    assert "ok   redis:" in output and "ok   host sim: answers" in output
    assert "FAIL tls: SESSION_COOKIE_SECURE is off" in output
    assert "key-encryption key" in output


def test_it_names_an_unreachable_host_and_a_dead_redis(settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    HostFactory(uri=DEAD_URI, name="gone")
    # When the doctor runs
    output, error = _doctor()
    # Then it says which host and which service do not answer, and fails
    assert f"FAIL host gone: {DEAD_URI} does not answer" in output
    assert "FAIL redis: redis://127.0.0.1:1/0 does not answer" in output
    assert error.endswith("check(s) failed.")


def test_it_passes_tls_settings_of_production(settings):
    settings.SESSION_COOKIE_SECURE = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_HSTS_SECONDS = 31536000
    output, _ = _doctor("--skip-hosts")
    assert "ok   tls:" in output and "host " not in output


@pytest.mark.qemu
def test_it_says_whether_a_real_host_can_run_windows_11_templates(settings):
    from desktops.tests.qemu_world import QEMU_URI, libvirtd_answers

    require(libvirtd_answers(), f"libvirtd at {QEMU_URI} (run scripts/start-libvirtd)")
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    HostFactory(uri=QEMU_URI, name="local", virt_type="qemu")
    output, _ = _doctor()
    # ovmf and swtpm are among the platform's packages (scripts/system-packages)
    assert "ok   host local: Windows 11-ready: UEFI with Secure Boot and a TPM 2.0" in output


def test_it_says_whether_the_file_manager_can_open_home_disks_here(monkeypatch, tmp_path):
    # given this machine's own tools (e2fsprogs, qemu-storage-daemon, /dev/fuse: what .ci/run installs)
    output, _ = _doctor("--skip-hosts")
    # then the doctor says both kinds of home open
    assert "ok   home files: plain and encrypted home disks open" in output
    # when the tools for encrypted homes are not on the PATH (a directory holding only the ext4 tools)
    for tool in ("debugfs", "mkfs.ext4", "e2fsck"):
        (tmp_path / tool).symlink_to(require_tool(tool, "e2fsprogs"))
    monkeypatch.setenv("PATH", str(tmp_path))
    output, _ = _doctor("--skip-hosts")
    # then it warns that encrypted homes cannot open, naming the package
    assert "warn home files: plain homes open, encrypted ones cannot: no qemu-storage-daemon" in output
    assert "apt-get install qemu-system-common" in output
    # when not even the ext4 tools are there
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    output, _ = _doctor("--skip-hosts")
    # then it names each of them
    assert "warn home files: the file manager cannot open home disks here: no debugfs (apt-get install e2fsprogs)" in (
        output
    )
