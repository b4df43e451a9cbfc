"""manage.py doctor: check a deployment (database, Redis, KEK, hosts, TLS, check --deploy) and say what is wrong."""

from __future__ import annotations

import io
import json
import os
import shutil
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, SystemCheckError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

OK, WARN, FAIL = "ok", "warn", "FAIL"


@dataclass(frozen=True)
class Result:
    status: str
    name: str
    detail: str


def check_database() -> list[Result]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    results = [Result(OK, "database", f"{connection.vendor} {connection.settings_dict.get('NAME')} answers")]
    executor = MigrationExecutor(connection)
    pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if pending:
        results.append(Result(FAIL, "migrations", f"{len(pending)} not applied: run manage.py migrate"))
    else:
        results.append(Result(OK, "migrations", "all applied"))
    if connection.vendor == "sqlite":
        results.append(Result(WARN, "database", "SQLite is for one machine and a small office; use PostgreSQL"))
    return results


def check_redis() -> list[Result]:
    url = getattr(settings, "REDIS_URL", "") or ""
    if not url:
        return [Result(FAIL, "redis", "REDIS_URL is not set (the embedded Redis is for `make run` only)")]
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3).ping()
    except redis.RedisError as exc:
        return [Result(FAIL, "redis", f"{url} does not answer: {exc}")]
    return [Result(OK, "redis", f"{url} answers")]


def check_kek() -> list[Result]:
    # The key-encryption key wraps every disk key; the setting arrives with encrypted disks.
    names = [n for n in ("KEY_ENCRYPTION_KEY", "QUETZAL_KEK", "KEK") if hasattr(settings, n)]
    if not names:
        return [Result(WARN, "key-encryption key", "no KEK setting in this version (disks are not encrypted yet)")]
    value = getattr(settings, names[0])
    if not value:
        return [Result(FAIL, "key-encryption key", f"{names[0]} is empty: encrypted disks cannot be opened")]
    return [Result(OK, "key-encryption key", f"{names[0]} is set")]


def check_hosts() -> list[Result]:
    from hosts.hypervisor import HypervisorError, open_hypervisor
    from hosts.models import Host

    hosts = list(Host.objects.filter(enabled=True))
    if not hosts:
        return [Result(WARN, "hosts", "no enabled host: enrol one with manage.py enrol_host URI")]
    results = []
    for host in hosts:
        hypervisor = open_hypervisor(host.uri, open_timeout_s=5.0)
        try:
            info = hypervisor.host_info()
            results.append(Result(OK, f"host {host.name}", f"answers: libvirt {info.libvirt_version}, {host.state}"))
            results += _windows_support(host, hypervisor)
        except HypervisorError as exc:
            results.append(Result(FAIL, f"host {host.name}", f"{host.uri} does not answer: {exc}"))
        finally:
            hypervisor.close()
    return results


def _windows_support(host, hypervisor) -> list[Result]:
    """Whether the host can run Windows 11 templates (UEFI with Secure Boot, a TPM 2.0): a warning when not."""
    from hosts.hypervisor import NotSupported

    try:
        support = hypervisor.platform_support(host.effective_virt_type)
    except NotSupported:
        return []  # libvirt's test driver: no QEMU to ask
    if support.windows_ready:
        return [Result(OK, f"host {host.name}", "Windows 11-ready: UEFI with Secure Boot and a TPM 2.0")]
    return [
        Result(WARN, f"host {host.name}", f"cannot run Windows 11 templates: no {' and no '.join(support.missing())}")
    ]


# What the file manager runs here to reach home disks (hosts.homefs): the tool and the Debian package it comes in.
HOME_TOOLS = (("debugfs", "e2fsprogs"), ("mkfs.ext4", "e2fsprogs"), ("e2fsck", "e2fsprogs"))
ENCRYPTED_HOME_TOOLS = (("qemu-storage-daemon", "qemu-system-common"),)
FUSE_DEVICE = "/dev/fuse"


def check_home_tools() -> list[Result]:
    """Whether this machine can open home disks for the file manager: ext4 tools, and for encrypted homes
    qemu-storage-daemon with a FUSE device to export the decrypted view on."""
    missing = [f"{tool} (apt-get install {package})" for tool, package in HOME_TOOLS if not shutil.which(tool)]
    if missing:
        return [Result(WARN, "home files", f"the file manager cannot open home disks here: no {', no '.join(missing)}")]
    encrypted = [
        f"{tool} (apt-get install {package})" for tool, package in ENCRYPTED_HOME_TOOLS if not shutil.which(tool)
    ]
    if not os.access(FUSE_DEVICE, os.R_OK | os.W_OK):
        encrypted.append(f"a usable {FUSE_DEVICE} (load the fuse module; in a container, pass the device)")
    if encrypted:
        return [Result(WARN, "home files", f"plain homes open, encrypted ones cannot: no {', no '.join(encrypted)}")]
    return [Result(OK, "home files", "plain and encrypted home disks open for the file manager")]


def check_tls() -> list[Result]:
    results = []
    if not getattr(settings, "SESSION_COOKIE_SECURE", False):
        results.append(Result(FAIL, "tls", "SESSION_COOKIE_SECURE is off: use quetzal.settings.production"))
    if not getattr(settings, "SECURE_PROXY_SSL_HEADER", None) and not getattr(settings, "SECURE_SSL_REDIRECT", False):
        results.append(Result(WARN, "tls", "neither SECURE_PROXY_SSL_HEADER nor SECURE_SSL_REDIRECT is set"))
    if getattr(settings, "SECURE_HSTS_SECONDS", 0) < 86400:
        results.append(Result(WARN, "tls", "HSTS is off or shorter than a day (SECURE_HSTS_SECONDS)"))
    return results or [Result(OK, "tls", "secure cookies, HSTS and the proxy's scheme header are configured")]


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A redirect is itself the finding (a proxy that drops X-Forwarded-Proto makes every page redirect to itself).
    def redirect_request(self, *args, **kwargs):
        return None


def check_url(url: str) -> list[Result]:
    """What the portal answers through its reverse proxy: HTTPS with HSTS, the scheme passed on, WebSockets."""
    base = url.rstrip("/")
    opener = urllib.request.build_opener(_NoRedirects())
    try:
        with opener.open(f"{base}/healthz", timeout=5) as response:
            status, headers, body = response.status, response.headers, response.read(4096)
    except urllib.error.HTTPError as exc:  # what a refused redirect or an error status arrives as
        status, headers, body = exc.code, exc.headers, b""
    except OSError as exc:
        return [Result(FAIL, "url", f"{url} does not answer: {exc}")]
    target = urlsplit(headers.get("Location") or "")
    if status in (301, 302, 307, 308) and target.scheme == "https" and target.path == "/healthz":
        return [Result(FAIL, "url", f"{base}/healthz redirects to itself: {_NO_PROTO}")]
    if status != 200:
        return [Result(FAIL, "url", f"{base}/healthz answered {status}")]
    results = [Result(OK, "url", f"{base}/healthz answered 200")]
    if not base.startswith("https://"):
        return [*results, Result(WARN, "url", "not served over https")]
    if not headers.get("Strict-Transport-Security"):
        results.append(Result(WARN, "url", "no Strict-Transport-Security header"))
    try:
        secure = json.loads(body).get("https")
    except (ValueError, AttributeError):
        secure = None
    if secure is False:
        results.append(Result(FAIL, "url", f"Django saw {base}/healthz as plain HTTP: {_NO_PROTO}"))
    elif secure:
        results.append(Result(OK, "url", "the proxy tells Django the request came over HTTPS"))
    return results + check_websocket(base)


_NO_PROTO = (
    "the proxy does not pass X-Forwarded-Proto (nginx: proxy_set_header X-Forwarded-Proto $scheme) "
    "or SECURE_PROXY_SSL_HEADER is not true"
)
# The live socket: any visitor may open it (signed out, it is accepted and closed with 4401), so it shows
# whether the proxy forwards the upgrade without anyone's session.
WEBSOCKET_PATH = "/ws/live/"


def check_websocket(base: str) -> list[Result]:
    """Whether a WebSocket handshake with the portal's own Origin gets through the proxy."""
    from websockets.exceptions import InvalidHandshake, InvalidStatus
    from websockets.sync.client import connect

    origin = urlsplit(base)
    socket_url = f"{'wss' if origin.scheme == 'https' else 'ws'}://{origin.netloc}{WEBSOCKET_PATH}"
    try:
        with connect(socket_url, origin=f"{origin.scheme}://{origin.netloc}", open_timeout=5, close_timeout=2):
            pass
    except InvalidStatus as exc:
        status = exc.response.status_code
        why = (
            f"the portal refused the socket's Origin {origin.scheme}://{origin.netloc}: add it to CSRF_TRUSTED_ORIGINS"
            if status == 403
            else "the proxy does not forward the upgrade (nginx: proxy_http_version 1.1, Upgrade and Connection)"
        )
        return [Result(FAIL, "websocket", f"{socket_url} answered {status}: {why}")]
    except (InvalidHandshake, OSError, TimeoutError) as exc:
        return [Result(FAIL, "websocket", f"{socket_url} failed: {type(exc).__name__}: {exc}")]
    return [Result(OK, "websocket", f"{socket_url} upgrades through the proxy")]


def check_deploy() -> list[Result]:
    out = io.StringIO()
    try:
        call_command("check", deploy=True, stdout=out, stderr=out, fail_level="ERROR")
    except SystemCheckError as exc:
        return [Result(FAIL, "check --deploy", str(exc).strip().splitlines()[-1])]
    warnings = [line for line in out.getvalue().splitlines() if line.startswith("?:") or ": (" in line]
    if warnings:
        return [Result(WARN, "check --deploy", f"{len(warnings)} warning(s): {'; '.join(warnings)[:300]}")]
    return [Result(OK, "check --deploy", "no issues")]


class Command(BaseCommand):
    help = "Check a deployment and say what is wrong; exits non-zero when something fails."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--url", help="the portal's public URL, checked through the reverse proxy")
        parser.add_argument("--skip-hosts", action="store_true", help="do not contact the libvirt hosts")

    def handle(self, *args, **options) -> None:
        checks: list[Callable[[], list[Result]]] = [
            check_database,
            check_redis,
            check_kek,
            check_home_tools,
            check_tls,
            check_deploy,
        ]
        if not options["skip_hosts"]:
            checks.insert(3, check_hosts)
        if options["url"]:
            checks.append(lambda: check_url(options["url"]))
        results: list[Result] = []
        for check in checks:
            try:
                results += check()
            except Exception as exc:  # a check that crashes is a finding, not a traceback
                results.append(Result(FAIL, getattr(check, "__name__", "check"), f"{type(exc).__name__}: {exc}"))
        for result in results:
            style = {OK: self.style.SUCCESS, WARN: self.style.WARNING, FAIL: self.style.ERROR}[result.status]
            self.stdout.write(f"{style(result.status.ljust(4))} {result.name}: {result.detail}")
        failed = [r for r in results if r.status == FAIL]
        if failed:
            raise CommandError(f"{len(failed)} check(s) failed.")
