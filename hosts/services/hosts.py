"""Registering hosts and changing what the operator controls about them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext

from hosts import dispatch
from hosts.choices import HostState
from hosts.errors import HostExists, StoragePoolMissing
from hosts.hypervisor import (
    HostInfo,
    HostUnavailable,
    HypervisorError,
    PoolNotFound,
    detect_virt_type,
    get_hypervisor,
)
from hosts.models import OPERATOR_FIELDS, Host
from hosts.models.host import default_console_address
from hosts.services.devices import sync_devices
from quetzal.errors import ServiceError
from tenants import events


def host_facts(info: HostInfo) -> dict[str, Any]:
    """The Host fields learned from libvirt."""
    return {
        "hostname": info.hostname[:255],
        "arch": info.arch[:32],
        "cpus": info.cpus,
        "memory_mib": info.memory_mib,
        "free_memory_mib": info.free_memory_mib,
        "virt_types": list(info.virt_types),
        "detected_virt_type": detect_virt_type(info),
        "libvirt_version": info.libvirt_version[:32],
        "hypervisor_version": info.hypervisor_version[:32],
        "offers_uefi": info.platform.uefi if info.platform else None,
        "offers_secure_boot": info.platform.secure_boot if info.platform else None,
        "offers_tpm": info.platform.tpm if info.platform else None,
    }


def _validation_message(exc: ValidationError) -> str:
    if hasattr(exc, "message_dict"):
        return "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items())
    return " ".join(exc.messages)


def register_host(uri: str, *, name: str | None = None, actor=None, **operator_settings: Any) -> Host:
    """Connect to a libvirt URI, learn the host and save it; nothing is saved if it cannot be reached."""
    uri = uri.strip()
    if not uri:
        raise ServiceError(gettext("A host needs a libvirt URI, e.g. qemu+ssh://root@host/system."), code="invalid_uri")
    unknown = set(operator_settings) - set(OPERATOR_FIELDS)
    if unknown:
        raise ServiceError(
            gettext("Unknown host setting: %(join)s.") % {"join": ", ".join(sorted(unknown))}, code="unknown_setting"
        )
    if Host.objects.filter(uri=uri).exists():
        raise HostExists(gettext("A host with URI %(uri)s is already registered.") % {"uri": uri})
    hypervisor = get_hypervisor(uri)
    try:
        info = hypervisor.host_info()
    except HypervisorError as exc:
        raise HostUnavailable(gettext("Cannot reach libvirt at %(uri)s: %(exc)s") % {"uri": uri, "exc": exc}) from exc
    settings = {key: value for key, value in operator_settings.items() if value is not None}
    host = Host(
        uri=uri,
        name=name.strip() if name else _default_name(uri, info),
        console_address=default_console_address(uri),
        state=HostState.UP,
        last_heartbeat_at=timezone.now(),
        **host_facts(info),
    )
    for key, value in settings.items():
        setattr(host, key, value)
    try:
        host.full_clean(validate_unique=False)
    except ValidationError as exc:
        raise ServiceError(_validation_message(exc), code="invalid_setting") from None
    try:
        hypervisor.pool_path(host.storage_pool)
    except PoolNotFound:
        raise StoragePoolMissing(
            f"{uri} has no storage pool named {host.storage_pool!r}; create it or choose another pool."
        ) from None
    except HypervisorError as exc:
        raise HostUnavailable(f"Cannot read storage pool {host.storage_pool!r} on {uri}: {exc}") from exc
    try:
        with transaction.atomic():
            host.save()
            sync_devices(host, info)
            events.host_registered(actor=actor, host=host, uri=uri, settings=settings)
    except IntegrityError:
        raise HostExists(f"A host named {host.name!r} or with URI {uri} is already registered.") from None
    # Copies of every image, so the new host can take desktops without an operator step; a broker
    # outage is logged and does not fail a registration that has committed.
    dispatch.on_commit(dispatch.COPY_IMAGES_TO_HOST, host.pk)
    return host


def _default_name(uri: str, info: HostInfo) -> str:
    """libvirt's hostname, else the URI's host, made unique with a number when taken."""
    candidates = [n for n in (info.hostname, urlsplit(uri).hostname) if n]
    for candidate in candidates:
        if not Host.objects.filter(name=candidate).exists():
            return candidate[:100]
    base = (candidates or ["host"])[0][:90]
    number = 2
    while Host.objects.filter(name=f"{base}-{number}").exists():
        number += 1
    return f"{base}-{number}"


def update_host(*, host: Host, changes: dict[str, Any], actor=None) -> Host:
    """Change operator settings only; counters and learned facts are never written from a stale copy."""
    unknown = set(changes) - set(OPERATOR_FIELDS)
    if unknown:
        raise ServiceError(
            gettext("Not an operator setting: %(join)s.") % {"join": ", ".join(sorted(unknown))}, code="unknown_setting"
        )
    with transaction.atomic():
        current = Host.objects.select_for_update().get(pk=host.pk)
        before = {key: getattr(current, key) for key in changes}
        for key, value in changes.items():
            setattr(current, key, value)
        try:
            current.full_clean()
        except ValidationError as exc:
            raise ServiceError(_validation_message(exc), code="invalid_setting") from None
        changed = {key: value for key, value in changes.items() if before[key] != value}
        if changed:
            Host.objects.filter(pk=host.pk).update(**changed)
            events.host_updated(actor=actor, host=current, before={key: before[key] for key in changed}, after=changed)
    current.refresh_from_db()
    return current


def set_maintenance(*, host: Host, on: bool, actor=None) -> bool:
    """Put a host in or out of maintenance (no new desktops); True if that changed anything."""
    return _set_flag(host, "maintenance", on, actor)


def set_drain(*, host: Host, on: bool, actor=None) -> bool:
    """Start or stop draining a host (no new desktops, running ones stay); True if it changed."""
    return _set_flag(host, "drain", on, actor)


def _set_flag(host: Host, flag: str, on: bool, actor) -> bool:
    with transaction.atomic():
        changed = Host.objects.filter(pk=host.pk).exclude(**{flag: on}).update(**{flag: on})
        if changed:
            events.host_flag_changed(actor=actor, host=host, flag=flag, on=on)
    setattr(host, flag, on)
    return bool(changed)


HOST_MODES = ("active", "drain", "maintenance")


def set_mode(*, host: Host, mode: str, actor=None) -> bool:
    """active (takes desktops), drain (none new; running ones stay) or maintenance (none new; may be moved)."""
    if mode not in HOST_MODES:
        raise ServiceError(f"Unknown host mode {mode!r}; use one of {', '.join(HOST_MODES)}.", code="invalid_mode")
    changed = set_drain(host=host, on=mode == "drain", actor=actor)
    changed = set_maintenance(host=host, on=mode == "maintenance", actor=actor) or changed
    return changed


def mode_of(host: Host) -> str:
    """The operator mode a host is in (maintenance wins over drain)."""
    return "maintenance" if host.maintenance else "drain" if host.drain else "active"


@dataclass(frozen=True)
class Resident:
    """A desktop still on a host, as the database and the hypervisor see it."""

    desktop_id: int
    name: str
    tenant: str
    kind: str
    state: str
    domain_state: str  # what libvirt says; "?" when the host did not answer, "missing" when absent


@dataclass(frozen=True)
class ResidentsReport:
    """What still lives on a host being drained or maintained."""

    host: str
    mode: str
    desktops: list[Resident]
    unreachable: str = ""

    def lines(self) -> list[str]:
        return [
            f"#{d.desktop_id} {d.name} ({d.tenant}, {d.kind}): {d.state}, VM {d.domain_state}" for d in self.desktops
        ]


def residents(*, host: Host) -> ResidentsReport:
    """Desktops still placed on the host, each with what its VM is doing there."""
    host.refresh_from_db()
    unreachable = ""
    domains: dict[int, str] = {}
    try:
        domains = {d.desktop_id: str(d.state) for d in get_hypervisor(host.uri).list_domains()}
    except HypervisorError as exc:
        unreachable = str(exc)
    # The reverse relation keeps hosts free of an import of desktops (imports go one way).
    rows = host.desktops.exclude(state="deleted").values_list("pk", "name", "tenant__slug", "kind", "state")
    desktops = [
        Resident(
            desktop_id=pk,
            name=name,
            tenant=tenant,
            kind=kind,
            state=state,
            domain_state="?" if unreachable else domains.get(pk, "missing"),
        )
        for pk, name, tenant, kind, state in rows.order_by("pk")
    ]
    return ResidentsReport(host=host.name, mode=mode_of(host), desktops=desktops, unreachable=unreachable)
