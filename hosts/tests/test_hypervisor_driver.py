"""LibvirtHypervisor against libvirt's built-in test driver (test:///default and node files)."""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from tests.services import require_module

libvirt = require_module("libvirt", "libvirt-python (make libvirt-binding)")

from hosts.hypervisor import libvirt_driver  # noqa: E402
from hosts.hypervisor.base import ConsoleAddress, DomainState, Hypervisor, detect_virt_type  # noqa: E402
from hosts.hypervisor.domain import DESKTOP_XMLNS, DomainSpec, GraphicsSpec  # noqa: E402
from hosts.hypervisor.errors import (  # noqa: E402
    AlreadyExists,
    DomainNotFound,
    HostUnavailable,
    InvalidDomainState,
    NotSupported,
    OperationFailed,
    PoolNotFound,
    SnapshotNotFound,
    VolumeNotFound,
)
from hosts.hypervisor.libvirt_driver import LibvirtHypervisor, forget_hypervisors, get_hypervisor  # noqa: E402
from hosts.hypervisor.parsing import format_version  # noqa: E402
from hosts.tests.test_hypervisor_domain import assert_valid_domain_xml, make_spec  # noqa: E402
from quetzal.api.errors import exception_handler  # noqa: E402

HOSTXML = Path(__file__).resolve().parent / "hostxml"
DEFAULT_URI = "test:///default"
SMALL_URI = f"test://{HOSTXML / 'small.xml'}"
LARGE_URI = f"test://{HOSTXML / 'large.xml'}"


def unique_name() -> str:
    """A domain/volume name no other test uses (test:///default is shared per process)."""
    return f"qtest-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def hv() -> Iterator[LibvirtHypervisor]:
    """A fresh, uncached driver on test:///default with fast polling."""
    hypervisor = LibvirtHypervisor(DEFAULT_URI, poll_interval_s=0.02)
    yield hypervisor
    hypervisor.close()


@pytest.fixture
def small() -> Iterator[LibvirtHypervisor]:
    """A driver on the small node file (private state per connection)."""
    hypervisor = LibvirtHypervisor(SMALL_URI, poll_interval_s=0.02)
    yield hypervisor
    hypervisor.close()


@pytest.fixture
def define(hv: LibvirtHypervisor, tmp_path: Path) -> Iterator[Callable[..., DomainSpec]]:
    """Define schema-validated domains with unique names; undefine them afterwards."""
    names: list[str] = []

    def _define(**overrides: Any) -> DomainSpec:
        fields: dict[str, Any] = {
            "name": unique_name(),
            "uuid": str(uuid.uuid4()),
            "desktop_id": 1000 + len(names),
            "virt_type": "qemu",
        }
        fields.update(overrides)
        spec = make_spec(**fields)
        assert_valid_domain_xml(spec.to_xml(), tmp_path)
        hv.define(spec)
        names.append(spec.name)
        return spec

    yield _define
    for name in names:
        hv.undefine(name)


# Host


def test_it_satisfies_the_hypervisor_protocol(hv: LibvirtHypervisor) -> None:
    assert isinstance(hv, Hypervisor)


def test_it_reports_the_small_host(small: LibvirtHypervisor) -> None:
    info = small.host_info()
    assert (info.arch, info.cpus, info.memory_mib) == ("x86_64", 2, 4096)
    assert info.gpus == () and info.mdev_types == ()
    assert info.hypervisor_type == "test"
    assert info.libvirt_version == format_version(libvirt.getVersion())
    assert info.virt_types == ("test",)
    assert detect_virt_type(info) == "qemu"


def test_it_reports_the_large_host_with_its_gpus_but_not_its_nic() -> None:
    large = LibvirtHypervisor(LARGE_URI)
    try:
        info = large.host_info()
    finally:
        large.close()
    assert (info.cpus, info.memory_mib) == (64, 256 * 1024)
    assert [g.address for g in info.gpus] == ["0000:3b:00.0", "0000:af:00.0"]
    assert {g.product_name for g in info.gpus} == {"TU104GL [Tesla T4]", "GA102GL [RTX A5000]"}
    assert [(m.type_id, m.available_instances, m.parent_address) for m in info.mdev_types] == [
        ("nvidia-222", 16, "0000:3b:00.0"),
        ("nvidia-230", 2, "0000:3b:00.0"),
    ]


# Defining and listing


def test_it_lists_only_domains_carrying_our_metadata(hv: LibvirtHypervisor, define: Callable[..., DomainSpec]) -> None:
    first = define(desktop_id=501, tenant_slug="alice")
    second = define(desktop_id=502, tenant_slug="bob")
    listed = {d.name: d for d in hv.list_domains()}
    assert "test" not in listed  # the test driver's own domain has no Quetzal metadata
    assert listed[first.name].desktop_id == 501
    assert listed[first.name].tenant_slug == "alice"
    assert listed[first.name].uuid == first.uuid
    assert listed[first.name].state is DomainState.SHUTOFF
    assert listed[second.name].desktop_id == 502


def test_it_lists_domains_defined_by_another_client_and_drops_removed_ones(
    hv: LibvirtHypervisor, tmp_path: Path
) -> None:
    # Given: one of our domains and one foreign domain, both defined behind the driver's back
    raw = libvirt.open(DEFAULT_URI)
    ours = make_spec(name=unique_name(), uuid=str(uuid.uuid4()), desktop_id=777, virt_type="qemu")
    foreign = ours.to_xml().replace(DESKTOP_XMLNS, "urn:someone-else").replace(ours.name, "x" + ours.name)
    foreign = foreign.replace(ours.uuid, str(uuid.uuid4()))
    assert_valid_domain_xml(ours.to_xml(), tmp_path)
    assert_valid_domain_xml(foreign, tmp_path)
    raw.defineXML(ours.to_xml())
    raw.defineXML(foreign)
    try:
        # Then: only ours is listed
        names = {d.name: d.desktop_id for d in hv.list_domains()}
        assert names.get(ours.name) == 777
        assert "x" + ours.name not in names
        # When: it is removed elsewhere, the next listing no longer has it
        raw.lookupByName(ours.name).undefine()
        assert ours.name not in {d.name for d in hv.list_domains()}
        # When: the same UUID comes back for another desktop, the cached answer is not reused
        reused = dataclasses.replace(ours, desktop_id=778).to_xml()
        assert_valid_domain_xml(reused, tmp_path)
        raw.defineXML(reused)
        assert {d.name: d.desktop_id for d in hv.list_domains()}.get(ours.name) == 778
    finally:
        for name in (ours.name, "x" + ours.name):
            with contextlib.suppress(libvirt.libvirtError):
                raw.lookupByName(name).undefine()
        raw.close()


def test_it_updates_a_domain_when_the_same_name_is_defined_again(
    hv: LibvirtHypervisor, define: Callable[..., DomainSpec], tmp_path: Path
) -> None:
    spec = define(memory_mib=512)
    bigger = make_spec(name=spec.name, uuid=spec.uuid, desktop_id=spec.desktop_id, memory_mib=1024)
    assert_valid_domain_xml(bigger.to_xml(), tmp_path)
    info = hv.define(bigger)
    assert info.uuid == spec.uuid
    assert [d.name for d in hv.list_domains()].count(spec.name) == 1
    dom = hv.connection.get().lookupByName(spec.name)
    assert dom.maxMemory() == 1024 * 1024


def test_it_refuses_a_second_domain_with_the_same_name(
    hv: LibvirtHypervisor, define: Callable[..., DomainSpec], tmp_path: Path
) -> None:
    spec = define()
    twin = make_spec(name=spec.name, uuid=str(uuid.uuid4()), virt_type="qemu")
    assert_valid_domain_xml(twin.to_xml(), tmp_path)
    with pytest.raises(AlreadyExists):
        hv.define(twin)


def test_it_keeps_a_hostile_name_and_title_intact(hv: LibvirtHypervisor, define: Callable[..., DomainSpec]) -> None:
    hostile = f"{unique_name()}<b>&c\"d'e"
    define(name=hostile, title="t<i>&\"'")
    assert hv.state(hostile) is DomainState.SHUTOFF
    assert hostile in {d.name for d in hv.list_domains()}
    assert hv.connection.get().lookupByName(hostile).metadata(libvirt.VIR_DOMAIN_METADATA_TITLE, None) == "t<i>&\"'"


# Power


def test_it_starts_idempotently_and_shuts_down_gracefully(
    hv: LibvirtHypervisor, define: Callable[..., DomainSpec]
) -> None:
    name = define().name
    hv.start(name)
    hv.start(name)  # already running is success
    assert hv.state(name) is DomainState.RUNNING
    assert hv.shutdown(name, timeout_s=5) is True
    assert hv.state(name) is DomainState.SHUTOFF
    assert hv.shutdown(name, timeout_s=5) is True  # already off is success


def test_it_destroys_a_guest_that_ignores_acpi_after_the_timeout(
    hv: LibvirtHypervisor, define: Callable[..., DomainSpec], monkeypatch: pytest.MonkeyPatch
) -> None:
    name = define().name
    hv.start(name)
    monkeypatch.setattr(libvirt.virDomain, "shutdown", lambda self, *a: 0)  # the guest ignores ACPI
    started = time.monotonic()
    assert hv.shutdown(name, timeout_s=0.3) is False
    assert time.monotonic() - started >= 0.3
    assert hv.state(name) is DomainState.SHUTOFF


def test_it_destroys_idempotently(hv: LibvirtHypervisor, define: Callable[..., DomainSpec]) -> None:
    name = define().name
    hv.destroy(name)  # already off
    hv.start(name)
    hv.destroy(name)
    assert hv.state(name) is DomainState.SHUTOFF


def test_it_treats_already_running_errors_as_success_when_racing(
    hv: LibvirtHypervisor, define: Callable[..., DomainSpec], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given: another client starts the domain between our state check and our create
    name = define().name
    real_create = libvirt.virDomain.create

    def racing_create(self: Any) -> int:
        real_create(self)
        return real_create(self)  # raises "already running" like a lost race

    monkeypatch.setattr(libvirt.virDomain, "create", racing_create)
    hv.start(name)
    assert hv.state(name) is DomainState.RUNNING


def test_it_suspends_and_resumes_idempotently(hv: LibvirtHypervisor, define: Callable[..., DomainSpec]) -> None:
    name = define().name
    with pytest.raises(InvalidDomainState):
        hv.suspend(name)
    with pytest.raises(InvalidDomainState):
        hv.resume(name)
    hv.start(name)
    hv.resume(name)  # running already
    hv.suspend(name)
    hv.suspend(name)
    assert hv.state(name) is DomainState.PAUSED
    hv.resume(name)
    assert hv.state(name) is DomainState.RUNNING
    hv.suspend(name)
    hv.start(name)  # start on a paused domain resumes it
    assert hv.state(name) is DomainState.RUNNING


def test_it_reboots_only_a_running_domain(hv: LibvirtHypervisor, define: Callable[..., DomainSpec]) -> None:
    name = define().name
    with pytest.raises(InvalidDomainState):
        hv.reboot(name)
    hv.start(name)
    hv.reboot(name)
    assert hv.state(name) is DomainState.RUNNING


def test_it_managed_saves_and_restores_on_start(hv: LibvirtHypervisor, define: Callable[..., DomainSpec]) -> None:
    name = define().name
    with pytest.raises(InvalidDomainState):
        hv.managed_save(name)  # nothing to save
    hv.start(name)
    hv.managed_save(name)
    assert hv.state(name) is DomainState.SHUTOFF
    assert hv.has_managed_save(name) is True
    hv.managed_save(name)  # already saved
    hv.start(name)
    assert hv.state(name) is DomainState.RUNNING
    assert hv.has_managed_save(name) is False


# Snapshots


def test_it_creates_lists_reverts_and_deletes_snapshots(
    hv: LibvirtHypervisor, define: Callable[..., DomainSpec]
) -> None:
    name = define().name
    hv.snapshot_create(name, "off-1", description="before first boot")
    hv.start(name)
    hv.snapshot_create(name, "on-2")
    snaps = hv.snapshot_list(name)
    assert [s.name for s in snaps] == ["off-1", "on-2"]
    assert [s.state for s in snaps] == [DomainState.SHUTOFF, DomainState.RUNNING]
    assert [s.current for s in snaps] == [False, True]
    assert snaps[0].description == "before first boot"
    with pytest.raises(AlreadyExists):
        hv.snapshot_create(name, "on-2")

    hv.snapshot_revert(name, "off-1")
    assert hv.state(name) is DomainState.SHUTOFF
    hv.snapshot_revert(name, "on-2")
    assert hv.state(name) is DomainState.RUNNING
    with pytest.raises(SnapshotNotFound):
        hv.snapshot_revert(name, "missing")

    hv.snapshot_delete(name, "off-1")
    hv.snapshot_delete(name, "off-1")  # already gone
    assert [s.name for s in hv.snapshot_list(name)] == ["on-2"]


# Undefine


def test_it_undefines_with_save_image_and_snapshots(hv: LibvirtHypervisor, define: Callable[..., DomainSpec]) -> None:
    spec = define()
    hv.start(spec.name)
    hv.snapshot_create(spec.name, "s1")
    hv.managed_save(spec.name)
    hv.undefine(spec.name)
    with pytest.raises(DomainNotFound):
        hv.state(spec.name)
    assert spec.name not in {d.name for d in hv.list_domains()}
    hv.undefine(spec.name)  # not found is success
    # A new domain of the same name starts clean: no snapshots, no save image.
    hv.define(spec)
    assert hv.snapshot_list(spec.name) == []
    assert hv.has_managed_save(spec.name) is False


def test_it_stops_a_running_domain_before_undefining_it(
    hv: LibvirtHypervisor, define: Callable[..., DomainSpec]
) -> None:
    name = define().name
    hv.start(name)
    hv.undefine(name)
    # Undefining alone would leave a transient domain running.
    assert name not in [d.name() for d in hv.connection.get().listAllDomains(0)]


def test_it_asks_for_nvram_removal_and_falls_back_when_the_driver_refuses(
    hv: LibvirtHypervisor, define: Callable[..., DomainSpec], monkeypatch: pytest.MonkeyPatch
) -> None:
    name = define().name
    seen: list[int] = []
    real = libvirt.virDomain.undefineFlags

    def spy(self: Any, flags: int = 0) -> int:
        seen.append(flags)
        return real(self, flags)

    monkeypatch.setattr(libvirt.virDomain, "undefineFlags", spy)
    hv.undefine(name)
    # The test driver rejects the NVRAM flag, like an older libvirt would.
    assert seen[0] & libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
    assert seen[-1] == libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
    with pytest.raises(DomainNotFound):
        hv.state(name)


@pytest.mark.parametrize(
    "call",
    [
        lambda hv, n: hv.state(n),
        lambda hv, n: hv.start(n),
        lambda hv, n: hv.shutdown(n, 1),
        lambda hv, n: hv.destroy(n),
        lambda hv, n: hv.reboot(n),
        lambda hv, n: hv.suspend(n),
        lambda hv, n: hv.resume(n),
        lambda hv, n: hv.managed_save(n),
        lambda hv, n: hv.has_managed_save(n),
        lambda hv, n: hv.snapshot_create(n, "s"),
        lambda hv, n: hv.snapshot_list(n),
        lambda hv, n: hv.snapshot_revert(n, "s"),
        lambda hv, n: hv.console_address(n),
    ],
)
def test_it_raises_domain_not_found_for_an_unknown_domain(
    hv: LibvirtHypervisor, call: Callable[[LibvirtHypervisor, str], object]
) -> None:
    with pytest.raises(DomainNotFound) as info:
        call(hv, unique_name())
    assert info.value.code == "domain_not_found"
    assert not info.value.retryable


# Stats and console


def test_it_collects_stats_of_our_domains_in_one_call(
    hv: LibvirtHypervisor, define: Callable[..., DomainSpec], monkeypatch: pytest.MonkeyPatch
) -> None:
    running = define(desktop_id=901)
    stopped = define(desktop_id=902)
    hv.start(running.name)
    hv.list_domains()  # warms the metadata cache
    calls: dict[str, int] = {"stats": 0, "metadata": 0}
    real_stats = libvirt.virConnect.getAllDomainStats
    real_metadata = libvirt.virDomain.metadata

    def count_stats(self: Any, *args: Any) -> Any:
        calls["stats"] += 1
        return real_stats(self, *args)

    def count_metadata(self: Any, *args: Any) -> Any:
        calls["metadata"] += 1
        return real_metadata(self, *args)

    monkeypatch.setattr(libvirt.virConnect, "getAllDomainStats", count_stats)
    monkeypatch.setattr(libvirt.virDomain, "metadata", count_metadata)
    stats = {s.name: s for s in hv.all_domain_stats()}
    assert calls == {"stats": 1, "metadata": 0}
    assert "test" not in stats
    assert stats[running.name].desktop_id == 901
    assert stats[running.name].state is DomainState.RUNNING
    assert stats[stopped.name].desktop_id == 902
    assert stats[stopped.name].state is DomainState.SHUTOFF


def test_it_gives_the_console_address_of_a_running_domain(
    hv: LibvirtHypervisor, define: Callable[..., DomainSpec]
) -> None:
    name = define(graphics=GraphicsSpec(listen_address="127.0.0.1", autoport=False, port=5905)).name
    with pytest.raises(InvalidDomainState):
        hv.console_address(name)
    hv.start(name)
    assert hv.console_address(name) == ConsoleAddress(host="127.0.0.1", port=5905)


def test_it_uses_the_uri_host_when_vnc_listens_on_all_addresses(
    hv: LibvirtHypervisor, define: Callable[..., DomainSpec]
) -> None:
    name = define(graphics=GraphicsSpec(listen_address="0.0.0.0", autoport=False, port=5906)).name
    hv.start(name)
    assert hv.console_address(name) == ConsoleAddress(host="127.0.0.1", port=5906)
    assert LibvirtHypervisor("qemu+ssh://root@host7.example/system")._uri_host() == "host7.example"


def test_it_fails_when_no_vnc_port_was_allocated(hv: LibvirtHypervisor, define: Callable[..., DomainSpec]) -> None:
    # The test driver never allocates autoports; QEMU does (see the real-QEMU tests).
    name = define().name
    hv.start(name)
    with pytest.raises(OperationFailed):
        hv.console_address(name)


# Storage


def test_it_creates_and_deletes_volumes(small: LibvirtHypervisor) -> None:
    assert small.pool_path("default") == "/var/lib/libvirt/images"
    path = small.volume_create("default", "base.qcow2", 10 * 2**30)
    assert path == "/var/lib/libvirt/images/base.qcow2"
    assert small.volume_exists("default", "base.qcow2")
    assert small.volume_path("default", "base.qcow2") == path
    with pytest.raises(AlreadyExists):
        small.volume_create("default", "base.qcow2", 2**30)
    small.volume_delete("default", "base.qcow2")
    small.volume_delete("default", "base.qcow2")  # not found is success
    assert not small.volume_exists("default", "base.qcow2")
    with pytest.raises(VolumeNotFound):
        small.volume_path("default", "base.qcow2")


def test_it_creates_a_linked_clone_on_a_backing_image(small: LibvirtHypervisor) -> None:
    base = small.volume_create("default", "golden.qcow2", 8 * 2**30)
    clone = small.volume_create_linked_clone("default", "desktop-1.qcow2", base)
    vol = small.connection.get().storageVolLookupByPath(clone)
    root = etree.fromstring(vol.XMLDesc(0).encode())
    assert root.findtext("backingStore/path") == base
    assert root.find("backingStore/format").get("type") == "qcow2"
    assert root.find("target/format").get("type") == "qcow2"
    assert vol.info()[1] == 8 * 2**30  # sized like its backing image by default
    bigger = small.volume_create_linked_clone("default", "desktop-2.qcow2", base, capacity_bytes=20 * 2**30)
    assert small.connection.get().storageVolLookupByPath(bigger).info()[1] == 20 * 2**30


def test_it_reports_a_missing_pool(small: LibvirtHypervisor) -> None:
    with pytest.raises(PoolNotFound):
        small.volume_create("nope", "x.qcow2", 2**30)


def test_it_rejects_unsupported_volume_formats(small: LibvirtHypervisor) -> None:
    with pytest.raises(ValueError):
        small.volume_create("default", "x.vmdk", 2**30, fmt="vmdk")


def test_it_cleans_up_when_the_driver_cannot_stream_an_upload(small: LibvirtHypervisor, tmp_path: Path) -> None:
    # The test driver implements neither virStorageVolUpload nor Download; QEMU tests cover them.
    src = tmp_path / "image.qcow2"
    src.write_bytes(b"QFI\xfb" + b"\0" * 4096)
    with pytest.raises(NotSupported):
        small.volume_upload("default", "uploaded.qcow2", str(src))
    assert not small.volume_exists("default", "uploaded.qcow2")
    small.volume_create("default", "present.raw", 4096, fmt="raw")
    dest = tmp_path / "out.raw"
    with pytest.raises(NotSupported):
        small.volume_download("default", "present.raw", str(dest))
    assert not dest.exists()
    assert list(tmp_path.iterdir()) == [src]  # no temporary file left behind


def test_it_reads_the_upload_source_before_touching_the_pool(small: LibvirtHypervisor, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        small.volume_upload("default", "x.qcow2", str(tmp_path / "missing.qcow2"))
    assert not small.volume_exists("default", "x.qcow2")


# Connections


def test_it_raises_host_unavailable_quickly_for_a_refused_connection() -> None:
    started = time.monotonic()
    with pytest.raises(HostUnavailable) as info:
        LibvirtHypervisor("qemu+tcp://127.0.0.1:1/system").host_info()
    assert time.monotonic() - started < 5
    assert info.value.retryable and info.value.code == "host_unavailable"


def test_it_answers_an_unavailable_host_as_a_service_error_of_its_own() -> None:
    # given the driver's own error for a refused connection, not wrapped by any service
    with pytest.raises(HostUnavailable) as info:
        LibvirtHypervisor("qemu+tcp://127.0.0.1:1/system").host_info()
    # when the API's error handler meets it, then it is a 502 with the same code, not a 500
    response = exception_handler(info.value, {})
    assert response is not None and response.status_code == 502
    assert response.data == {"code": "host_unavailable", "detail": info.value.message}


def test_it_gives_up_on_a_server_that_never_answers() -> None:
    # A listener that accepts TCP but never speaks the libvirt protocol hangs libvirt.open.
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        hypervisor = LibvirtHypervisor(f"qemu+tcp://127.0.0.1:{port}/system", open_timeout_s=0.5)
        started = time.monotonic()
        with pytest.raises(HostUnavailable, match="timed out"):
            hypervisor.list_domains()
        assert time.monotonic() - started < 3


def test_it_reopens_a_connection_that_was_closed(hv: LibvirtHypervisor) -> None:
    assert hv.host_info().hypervisor_type == "test"
    hv.connection.get().close()  # the handle dies under the driver
    assert hv.host_info().hypervisor_type == "test"
    hv.close()
    assert hv.host_info().hypervisor_type == "test"
    assert hv.connection.opened_count == 3


def test_it_retries_once_on_a_fresh_connection_when_a_call_loses_it(hv: LibvirtHypervisor) -> None:
    used: list[Any] = []

    def call(conn: Any) -> str:
        used.append(conn)
        if len(used) == 1:
            conn.close()  # the connection drops mid-call
        return conn.getHostname()

    assert hv.connection.run(call) == "vm"
    assert len(used) == 2 and used[0] is not used[1]


def test_it_does_not_retry_calls_that_are_not_idempotent(hv: LibvirtHypervisor) -> None:
    used: list[Any] = []

    def call(conn: Any) -> str:
        used.append(conn)
        conn.close()
        return conn.getHostname()

    with pytest.raises(HostUnavailable):
        hv.connection.run(call, retry=False)
    assert len(used) == 1
    assert hv.host_info().hypervisor_type == "test"  # and the next call reconnects


def test_it_raises_host_unavailable_when_reopening_fails(
    hv: LibvirtHypervisor, monkeypatch: pytest.MonkeyPatch
) -> None:
    hv.list_domains()
    hv.connection.get().close()

    def refuse(uri: str) -> Any:
        raise libvirt.libvirtError("simulated: host went away")

    monkeypatch.setattr(libvirt, "open", refuse)
    with pytest.raises(HostUnavailable):
        hv.list_domains()


@pytest.fixture
def private_cache(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, LibvirtHypervisor]]:
    """Swap in an empty get_hypervisor cache, so other tests' cached connections stay open."""
    cache: dict[str, LibvirtHypervisor] = {}
    monkeypatch.setattr(libvirt_driver, "_hypervisors", cache)
    monkeypatch.setattr(libvirt_driver, "_hypervisors_lock", threading.Lock())
    yield cache
    forget_hypervisors()


def test_it_caches_one_driver_per_uri(private_cache: dict[str, LibvirtHypervisor]) -> None:
    first = get_hypervisor(DEFAULT_URI)
    assert get_hypervisor(DEFAULT_URI) is first
    assert get_hypervisor(SMALL_URI) is not first
    first.list_domains()
    forget_hypervisors()
    assert private_cache == {}
    assert get_hypervisor(DEFAULT_URI) is not first


def test_it_never_closes_a_connection_inherited_across_fork(private_cache: dict[str, LibvirtHypervisor]) -> None:
    parent = get_hypervisor(DEFAULT_URI)
    parent.list_domains()
    conn = parent.connection.get()
    try:
        libvirt_driver._after_fork_in_child()
        assert private_cache == {}
        assert get_hypervisor(DEFAULT_URI) is not parent
        assert conn in libvirt_driver._inherited
        assert conn.isAlive()  # still usable by the parent
    finally:
        libvirt_driver._inherited.remove(conn)
        conn.close()


def test_it_maps_libvirt_errors_to_our_exceptions() -> None:
    from hosts.hypervisor.errors import from_libvirt_error, is_connection_error

    def fake(code: int, domain: int, message: str = "boom") -> Any:
        exc = libvirt.libvirtError(message)
        exc.err = (code, domain, message, 2, None, None, None, 0, 0)
        return exc

    cases = [
        (libvirt.VIR_ERR_NO_DOMAIN, libvirt.VIR_FROM_QEMU, "domain_not_found"),
        (libvirt.VIR_ERR_NO_STORAGE_VOL, libvirt.VIR_FROM_STORAGE, "volume_not_found"),
        (libvirt.VIR_ERR_NO_STORAGE_POOL, libvirt.VIR_FROM_STORAGE, "pool_not_found"),
        (libvirt.VIR_ERR_NO_DOMAIN_SNAPSHOT, libvirt.VIR_FROM_QEMU, "snapshot_not_found"),
        (libvirt.VIR_ERR_OPERATION_INVALID, libvirt.VIR_FROM_QEMU, "invalid_domain_state"),
        (libvirt.VIR_ERR_STORAGE_VOL_EXIST, libvirt.VIR_FROM_STORAGE, "already_exists"),
        (libvirt.VIR_ERR_NO_SUPPORT, libvirt.VIR_FROM_TEST, "not_supported"),
        (libvirt.VIR_ERR_INVALID_CONN, libvirt.VIR_FROM_NONE, "host_unavailable"),
        (libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_FROM_RPC, "host_unavailable"),
        (libvirt.VIR_ERR_INTERNAL_ERROR, libvirt.VIR_FROM_REMOTE, "host_unavailable"),
        # The same codes from a storage or QEMU driver are not about the connection.
        (libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_FROM_STORAGE, "operation_failed"),
        (libvirt.VIR_ERR_INTERNAL_ERROR, libvirt.VIR_FROM_QEMU, "operation_failed"),
        (libvirt.VIR_ERR_OPERATION_TIMEOUT, libvirt.VIR_FROM_QEMU, "operation_failed"),
    ]
    for code, domain, expected in cases:
        error = from_libvirt_error(fake(code, domain))
        assert (error.code, error.libvirt_code) == (expected, code), (code, domain)
        assert error.retryable is (expected == "host_unavailable")
        assert is_connection_error(fake(code, domain)) is (expected == "host_unavailable")
    duplicate = fake(libvirt.VIR_ERR_OPERATION_FAILED, libvirt.VIR_FROM_TEST, "domain moment s1 already exists")
    assert from_libvirt_error(duplicate).code == "already_exists"
