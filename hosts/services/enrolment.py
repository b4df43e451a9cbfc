"""Enrolling a host: reach it over the wire it will use, check it can take desktops, name what is missing.

qemu+tcp is for hosts on a wire only Quetzal can reach (the test harness's namespaces); qemu+tls
gets a CA and certificates made here (the server bundle is copied to the host); qemu+ssh gets an SSH
key made here (installed on the host with ssh-copy-id). The checks: reachable, virtualisation type,
storage pool present and active, free disk in it, free RAM. A host that fails one is not saved.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from django.utils.translation import gettext

from hosts import conf, pki
from hosts.hypervisor import HostInfo, Hypervisor, HypervisorError, PoolNotFound, detect_virt_type, open_hypervisor
from hosts.models import Host
from hosts.services.hosts import register_host
from quetzal.errors import ServiceError

GIB = 1024**3
TRANSPORTS = ("tcp", "tls", "ssh", "local")


class HostNotReady(ServiceError):
    """The host answered but lacks something desktops need; `check` says what."""

    code = "host_not_ready"

    def __init__(self, detail: str, *, check: HostCheck) -> None:
        super().__init__(detail)
        self.check = check


@dataclass(frozen=True)
class Finding:
    """One thing checked on a host."""

    item: str
    ok: bool
    detail: str
    # A missing blocking item stops the enrolment; the others are warnings.
    blocking: bool = True


@dataclass
class HostCheck:
    """Everything checked on a host, in order."""

    uri: str
    findings: list[Finding] = field(default_factory=list)
    info: HostInfo | None = None

    @property
    def ready(self) -> bool:
        return all(f.ok or not f.blocking for f in self.findings)

    @property
    def missing(self) -> list[Finding]:
        return [f for f in self.findings if not f.ok]

    def lines(self) -> list[str]:
        """One line per finding, for the command and the admin."""
        return [
            f"{'ok  ' if f.ok else ('MISSING' if f.blocking else 'warn')} {f.item}: {f.detail}" for f in self.findings
        ]


def transport(uri: str) -> str:
    """tcp, tls, ssh or local, from the URI's scheme (qemu+ssh:// ...)."""
    scheme = urlsplit(uri).scheme
    if "+" not in scheme:
        return "local" if not urlsplit(uri).hostname else "tls"  # libvirt's default remote transport
    kind = scheme.split("+", 1)[1]
    if kind not in TRANSPORTS:
        raise ServiceError(
            f"Unsupported libvirt transport {kind!r}; use qemu+tls, qemu+ssh or qemu+tcp.", code="invalid_uri"
        )
    return kind


def with_params(uri: str, **params: str) -> str:
    """The URI with query parameters set (kept when already given)."""
    parts = urlsplit(uri)
    query = dict(parse_qsl(parts.query))
    for key, value in params.items():
        query.setdefault(key, value)
    return urlunsplit(parts._replace(query=urlencode(query, safe="/")))


def connection_uri(uri: str, *, pki_root: Path | None = None) -> str:
    """The URI Quetzal stores for a host: the TLS client certificates or SSH key it must use added."""
    root = pki_root or conf.pki_dir()
    kind = transport(uri)
    if kind == "tls":
        return with_params(uri, pkipath=str(pki.ensure_client(root)))
    if kind == "ssh":
        # Never prompt from a worker: a host that needs a password is a failed check, not a hang.
        return with_params(uri, keyfile=str(pki.ensure_ssh_key(root)), no_tty="1")
    return uri


@dataclass(frozen=True)
class Preparation:
    """What was made for a host's wire, and what the operator does on the host with it."""

    uri: str
    steps: list[str]
    bundle: pki.ServerBundle | None = None


def prepare(uri: str, *, pki_root: Path | None = None) -> Preparation:
    """Make the keys a host's transport needs; the steps say how to install them on the host."""
    root = pki_root or conf.pki_dir()
    kind = transport(uri)
    address = urlsplit(uri).hostname or ""
    final = connection_uri(uri, pki_root=root)
    if kind == "tls":
        bundle = pki.issue_server(root, address)
        steps = [f"copy {bundle.directory}/ to {address}, then there:", *bundle.install_lines()]
        return Preparation(uri=final, steps=steps, bundle=bundle)
    if kind == "ssh":
        key = pki.ensure_ssh_key(root)
        user = urlsplit(uri).username or "root"
        return Preparation(uri=final, steps=[f"ssh-copy-id -i {key}.pub {user}@{address}"])
    if kind == "tcp":
        return Preparation(uri=final, steps=["qemu+tcp is unencrypted: use it only on a private wire."])
    return Preparation(uri=final, steps=[])


def check_host(uri: str, *, storage_pool: str = "default", virt_type: str = "") -> HostCheck:
    """Reach the host at uri and check what desktops need, naming each thing missing."""
    check = HostCheck(uri=uri)
    # A private connection: a failed check leaves no cached connection behind for a host never saved.
    hypervisor = open_hypervisor(uri, open_timeout_s=10.0)
    try:
        try:
            info = hypervisor.host_info()
        except HypervisorError as exc:
            check.findings.append(Finding("reachable", False, f"Cannot reach libvirt at {uri}: {exc}"))
            return check
        check.info = info
        check.findings.append(
            Finding(
                "reachable", True, f"{info.hostname}: libvirt {info.libvirt_version}, {info.cpus} CPUs, {info.arch}"
            )
        )
        _check_virt(check, info, virt_type)
        _check_pool(check, hypervisor, storage_pool)
        _check_memory(check, info)
    finally:
        hypervisor.close()
    return check


def _check_virt(check: HostCheck, info: HostInfo, override: str) -> None:
    offered = ", ".join(info.virt_types) or "none"
    if not info.virt_types:
        check.findings.append(
            Finding("virtualisation", False, "QEMU offers no domain types (is qemu-system-x86 installed?)")
        )
        return
    detected = detect_virt_type(info)
    if override and override not in info.virt_types:
        check.findings.append(Finding("virtualisation", False, f"{override} asked for, host offers {offered}"))
    elif detected == "kvm" or override == "qemu":
        check.findings.append(Finding("virtualisation", True, f"{override or detected} (offers {offered})"))
    else:
        check.findings.append(
            Finding(
                "virtualisation",
                False,
                f"no KVM (offers {offered}): desktops use software emulation, several times slower",
                blocking=False,
            )
        )


def _check_pool(check: HostCheck, hypervisor: Hypervisor, pool: str) -> None:
    try:
        path = hypervisor.pool_path(pool)
        free = hypervisor.pool_free_bytes(pool)
    except PoolNotFound:
        hint = (
            f"virsh pool-define-as {pool} dir --target /var/lib/libvirt/images; "
            f"virsh pool-build {pool}; virsh pool-start {pool}; virsh pool-autostart {pool}"
        )
        check.findings.append(Finding("storage pool", False, f"no pool named {pool!r} ({hint})"))
        return
    except HypervisorError as exc:
        check.findings.append(Finding("storage pool", False, f"pool {pool!r} cannot be used: {exc}"))
        return
    check.findings.append(Finding("storage pool", True, f"{pool} at {path}"))
    need = conf.enrol_min_free_disk_gib()
    ok = free >= need * GIB
    check.findings.append(Finding("free disk", ok, f"{free / GIB:.1f} GiB free in {pool} (needs {need:g} GiB)"))


def _check_memory(check: HostCheck, info: HostInfo) -> None:
    need = conf.enrol_min_free_memory_mib()
    ok = info.free_memory_mib >= need
    # RAM in use now may be freed later (page cache, other guests); the scheduler counts capacity.
    check.findings.append(
        Finding(
            "free memory",
            ok,
            f"{info.free_memory_mib} MiB free of {info.memory_mib} MiB (wants {need:g} MiB)",
            blocking=False,
        )
    )


def enrol_host(
    uri: str, *, name: str | None = None, actor=None, pki_root: Path | None = None, **operator_settings: Any
) -> tuple[Host, HostCheck]:
    """Check the host over its transport and register it; refuse, naming what is missing, if not ready."""
    uri = uri.strip()
    if not uri:
        raise ServiceError(gettext("A host needs a libvirt URI, e.g. qemu+tls://host/system."), code="invalid_uri")
    final = connection_uri(uri, pki_root=pki_root)
    check = check_host(
        final,
        storage_pool=operator_settings.get("storage_pool") or "default",
        virt_type=operator_settings.get("virt_type") or "",
    )
    if not check.ready:
        missing = "; ".join(f"{f.item}: {f.detail}" for f in check.missing if f.blocking)
        raise HostNotReady(
            gettext("%(uri)s cannot take desktops yet. Missing: %(missing)s") % {"uri": uri, "missing": missing},
            check=check,
        )
    host = register_host(final, name=name, actor=actor, **operator_settings)
    return host, check
