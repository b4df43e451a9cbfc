"""The shipped production deployment, started for a test: deploy/nginx/quetzal.conf under Debian's nginx in
front of quetzal-web.service's own command line and deploy/quetzal.env.template, each rendered with only the
values an operator changes (names, certificate, ports, paths, secrets) and nothing else.
"""

from __future__ import annotations

import base64
import contextlib
import os
import pwd
import re
import secrets
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from quetzal.server import free_port
from tests.fixtures import FAST_PASSWORD_HASHER
from tests.processes import ROOT, Child, child_env
from tests.services import port_open
from tests.waiting import wait_until

DEPLOY = ROOT / "deploy"
PUBLIC_NAME = "localhost"  # what the certificate names and the client resolves without /etc/hosts


def render(text: str, replacements: dict[str, str], *, marked_above: bool = False) -> str:
    """`text` with each key replaced by its value; every key must occur, and only lines marked SITE: change.

    nginx's config marks a line at its end; the Caddyfile (whose `caddy fmt` wants comments on lines of their
    own) on the line above it.
    """
    rendered = text
    for old, new in replacements.items():
        assert old in rendered, f"{old!r} is not in the shipped file any more"
        rendered = rendered.replace(old, new)
    lines = text.splitlines()
    changed = [i for i, (old, new) in enumerate(zip(lines, rendered.splitlines(), strict=True)) if old != new]
    marks = [lines[i - 1] if marked_above else lines[i] for i in changed]
    unmarked = [lines[i] for i, mark in zip(changed, marks, strict=True) if "# SITE:" not in mark]
    assert not unmarked, f"a line not marked SITE: was rendered: {unmarked}"
    return rendered


def nginx_site(*, http_port: int, https_port: int, cert: Path, key: Path, upstream_port: int) -> str:
    """deploy/nginx/quetzal.conf with this test's name, certificate and ports: the operator's edit."""
    return render(
        (DEPLOY / "nginx" / "quetzal.conf").read_text(),
        {
            "listen 80;": f"listen 127.0.0.1:{http_port};",
            "listen 443 ssl http2;": f"listen 127.0.0.1:{https_port} ssl http2;",
            "server_name desktops.example.org;": f"server_name {PUBLIC_NAME};",
            "/etc/ssl/quetzal/fullchain.pem": str(cert),
            "/etc/ssl/quetzal/privkey.pem": str(key),
            "server 127.0.0.1:8000;": f"server 127.0.0.1:{upstream_port};",
        },
    )


def nginx_main_conf(prefix: Path, site: Path) -> str:
    """What Debian's /etc/nginx/nginx.conf does around a site, with every path of its own under `prefix`."""
    temp = " ".join(
        f"{kind}_temp_path {prefix / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""
user {pwd.getpwuid(os.geteuid()).pw_name};
daemon off;
worker_processes 1;
pid {prefix / "nginx.pid"};
error_log {prefix / "error.log"} info;
events {{ worker_connections 256; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log {prefix / "access.log"};
    {temp}
    include {site};
}}
"""


def start_nginx(nginx: str, prefix: Path, site_text: str, https_port: int) -> Child:
    prefix.mkdir(parents=True, exist_ok=True)
    site = prefix / "quetzal.conf"
    site.write_text(site_text)
    conf = prefix / "nginx.conf"
    conf.write_text(nginx_main_conf(prefix, site))
    test = subprocess.run([nginx, "-t", "-p", str(prefix), "-c", str(conf)], capture_output=True, text=True)
    assert test.returncode == 0, test.stderr
    proxy = Child.start([nginx, "-p", str(prefix), "-c", str(conf)], env=dict(os.environ), log_path=prefix / "out.log")
    try:
        wait_until(lambda: port_open("127.0.0.1", https_port) or proxy.process.poll() is not None, 30)
        assert proxy.process.poll() is None, proxy.log_tail() + (prefix / "error.log").read_text(errors="replace")
    except BaseException:
        proxy.stop()  # no nginx outlives a test that could not start it
        raise
    return proxy


def caddy_site(*, https_port: int, cert: Path, key: Path, upstream_port: int) -> str:
    """deploy/caddy/Caddyfile with this test's name, port, certificate and upstream: the operator's edit."""
    return render(
        (DEPLOY / "caddy" / "Caddyfile").read_text(),
        {
            "desktops.example.org {": f"{PUBLIC_NAME}:{https_port} {{",
            "# tls /etc/ssl/quetzal/fullchain.pem /etc/ssl/quetzal/privkey.pem": f"tls {cert} {key}",
            "reverse_proxy 127.0.0.1:8000 {": f"reverse_proxy 127.0.0.1:{upstream_port} {{",
        },
        marked_above=True,
    )


def start_caddy(caddy: str, prefix: Path, site_text: str, *, http_port: int, https_port: int) -> Child:
    """Caddy in the foreground: the site after global options that keep it unprivileged and to itself."""
    prefix.mkdir(parents=True, exist_ok=True)
    config = prefix / "Caddyfile"
    # No admin endpoint (its port 2019 is shared), our ports for HTTP and HTTPS, state under the prefix, and
    # nothing installed into the system's trust store.
    config.write_text(
        f"{{\n\tadmin off\n\thttp_port {http_port}\n\thttps_port {https_port}\n"
        f"\tstorage file_system {prefix / 'data'}\n\tskip_install_trust\n}}\n\n{site_text}"
    )
    env = {**os.environ, "HOME": str(prefix), "XDG_DATA_HOME": str(prefix / "data"), "XDG_CONFIG_HOME": str(prefix)}
    check = subprocess.run(
        [caddy, "validate", "--config", str(config), "--adapter", "caddyfile"], capture_output=True, text=True, env=env
    )
    assert check.returncode == 0, check.stderr
    command = [caddy, "run", "--config", str(config), "--adapter", "caddyfile"]
    proxy = Child.start(command, env=env, log_path=prefix / "out.log")
    try:
        wait_until(lambda: port_open("127.0.0.1", https_port) or proxy.process.poll() is not None, 30)
        assert proxy.process.poll() is None, proxy.log_tail()
    except BaseException:
        proxy.stop()
        raise
    return proxy


def make_certificate(directory: Path) -> tuple[Path, Path, Path]:
    """A test CA and a certificate for PUBLIC_NAME it signed: (CA, certificate, key)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_key = directory / "ca.pem", directory / "ca.key"
    cert, key, request = directory / "cert.pem", directory / "key.pem", directory / "cert.csr"
    extensions = directory / "cert.ext"
    extensions.write_text(
        f"subjectAltName=DNS:{PUBLIC_NAME}\nbasicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
    )
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    signed = ["-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-extfile", extensions]
    for command in (
        ["req", "-x509", *ec, "-keyout", ca_key, "-out", ca, "-days", "2", "-subj", "/CN=Quetzal test CA"],
        ["req", *ec, "-keyout", key, "-out", request, "-subj", f"/CN={PUBLIC_NAME}"],
        ["x509", "-req", "-in", request, *signed, "-out", cert, "-days", "2"],
    ):
        subprocess.run(["openssl", *map(str, command)], check=True, capture_output=True)
    return ca, cert, key


def production_env(var: Path, public_origin: str) -> dict[str, str]:
    """deploy/quetzal.env.template as an operator fills it in, on the test database and Redis."""
    template = {}
    for line in (DEPLOY / "quetzal.env.template").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            template[name.strip()] = value.strip()
    kek = var / "kek"
    var.mkdir(parents=True, exist_ok=True)
    kek.write_text(base64.b64encode(secrets.token_bytes(32)).decode())
    # The test database and Redis; and the tests' hasher (set per test, so not yet when a module fixture starts)
    shared = {**child_env(), "PASSWORD_HASHERS": FAST_PASSWORD_HASHER}
    operator = {
        "SECRET_KEY": secrets.token_urlsafe(64),
        "QUETZAL_KEK_FILE": str(kek),
        "DATABASE_URL": shared["DATABASE_URL"],
        "REDIS_URL": shared["REDIS_URL"],
        "WEB_WORKERS": "1",
        "QUETZAL_VAR_DIR": str(var),
        "STATIC_ROOT": str(var / "static"),
        "MEDIA_ROOT": str(var / "media"),
        "RECORDINGS_ROOT": str(var / "recordings"),
        "ALLOWED_HOSTS": PUBLIC_NAME,
        "CSRF_TRUSTED_ORIGINS": public_origin,
        "METRICS_TOKEN": secrets.token_urlsafe(24),
    }
    assert set(operator) <= set(template), f"not in the env template: {set(operator) - set(template)}"
    assert template["DJANGO_SETTINGS_MODULE"] == "quetzal.settings.production"
    return {**shared, **template, **operator}


def web_unit_command(port: int, workers: str) -> list[str]:
    """quetzal-web.service's ExecStart with this venv's interpreter, a free port and WEB_WORKERS filled in."""
    unit = (DEPLOY / "systemd" / "quetzal-web.service").read_text()
    line = re.search(r"^ExecStart=(.+)$", unit, re.MULTILINE)
    assert line, "quetzal-web.service has no ExecStart"
    argv = shlex.split(line.group(1))
    assert argv[0] == "/opt/quetzal/.venv/bin/python" and argv[argv.index("--port") + 1] == "8000", argv
    argv[0] = sys.executable
    argv[argv.index("--port") + 1] = str(port)
    argv[argv.index("--workers") + 1] = workers  # systemd expands ${WEB_WORKERS} from the EnvironmentFile
    return argv


def _start_proxy(
    tmp: Path,
    *,
    nginx: str | None,
    caddy: str | None,
    ports: tuple[int, int],
    cert: Path,
    key: Path,
    upstream_port: int,
) -> Child:
    """The shipped nginx config (`nginx`) or Caddyfile (`caddy`) on these (http, https) ports."""
    http_port, https_port = ports
    if caddy is not None:
        site = caddy_site(https_port=https_port, cert=cert, key=key, upstream_port=upstream_port)
        return start_caddy(caddy, tmp / "caddy", site, http_port=http_port, https_port=https_port)
    assert nginx is not None, "one proxy"
    site = nginx_site(http_port=http_port, https_port=https_port, cert=cert, key=key, upstream_port=upstream_port)
    return start_nginx(nginx, tmp / "nginx", site, https_port)


@dataclass
class Deployment:
    """The running stack: the public https and http origins, the CA to trust, and what started."""

    https: str
    http: str
    ca: Path
    env: dict[str, str]
    upstream_port: int
    cert: Path
    key: Path
    children: list[Child]
    nginx: str | None = None
    caddy: str | None = None

    def stop(self) -> None:
        for child in reversed(self.children):
            child.stop()

    @contextlib.contextmanager
    def another_proxy(self, tmp: Path) -> Iterator[str]:
        """The same shipped proxy in front of the same server on other free ports: its https origin.

        CSRF_TRUSTED_ORIGINS names the first proxy's origin only, so behind this one Django tells a page of its own
        site from another's only by the Host header the proxy passes, port included.
        """
        https_port = free_port()
        proxy = _start_proxy(
            tmp,
            nginx=self.nginx,
            caddy=self.caddy,
            ports=(free_port(), https_port),
            cert=self.cert,
            key=self.key,
            upstream_port=self.upstream_port,
        )
        try:
            yield f"https://{PUBLIC_NAME}:{https_port}"
        finally:
            proxy.stop()


def start_deployment(tmp: Path, *, nginx: str | None = None, caddy: str | None = None) -> Deployment:
    """The production server behind the shipped nginx config (`nginx`) or Caddyfile (`caddy`): the binary given."""
    assert (nginx is None) != (caddy is None), "one proxy"
    ca, cert, key = make_certificate(tmp / "tls")
    http_port, https_port, upstream_port = free_port(), free_port(), free_port()
    https = f"https://{PUBLIC_NAME}:{https_port}"
    env = production_env(tmp / "var", https)
    collect = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=ROOT, env=env, capture_output=True
    )
    assert collect.returncode == 0, collect.stderr.decode()
    children: list[Child] = []
    deployment = Deployment(
        https, f"http://{PUBLIC_NAME}:{http_port}", ca, env, upstream_port, cert, key, children, nginx, caddy
    )
    try:
        # The unit's ExecStart with its EnvironmentFile: the production settings module, on PostgreSQL
        web = Child.start(web_unit_command(upstream_port, env["WEB_WORKERS"]), env=env, log_path=tmp / "web.log")
        children.append(web)
        wait_until(lambda: port_open("127.0.0.1", upstream_port) or web.process.poll() is not None, 60)
        assert web.process.poll() is None, web.log_tail()
        ports = (http_port, https_port)
        children.append(
            _start_proxy(tmp, nginx=nginx, caddy=caddy, ports=ports, cert=cert, key=key, upstream_port=upstream_port)
        )
    except BaseException:
        deployment.stop()
        raise
    return deployment
