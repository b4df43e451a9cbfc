"""File manager throughput and the cost of a home on a warm claim.

* offline: a 64 MiB file uploaded (4 MiB chunks, as the browser sends them) and downloaded through the file
  manager's services with no desktop holding the home: the host side (debugfs on a real ext4 image); then the
  same for an encrypted home (debugfs on qemu-storage-daemon's decrypted view), and a listing's cost on each.
* in session (when libvirtd answers at qemu:///system, unless --offline-only): the same through the guest agent of
  a running demo desktop that has the home attached (one guest boot).
* claims: warm pooled claims (service calls on PostgreSQL) of desktops that get no home (a Windows template) and
  of desktops that do (the hot-plug is queued, not waited for); in session also one real hot-plug timed.

Work runs in-process (eager Celery). Prints the figures and, last,
`upload_offline_mib_s=… download_offline_mib_s=… upload_offline_luks_mib_s=… download_offline_luks_mib_s=…
list_p50_ms=… list_luks_p50_ms=… upload_session_mib_s=… download_session_mib_s=…
claim_p50_ms=… claim_home_p50_ms=… attach_op_p50_ms=… attach_live_ms=…` (n/a where the session part did not run).
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchdb

benchdb.configure("quetzal_bench_files")

CHUNK = 4 * 1024 * 1024


def _transfer(home, user, data: bytes, name: str) -> tuple[float, float, str]:
    """Seconds to upload and to download `data`, and which side served it."""
    from desktops.services import files

    started = time.perf_counter()
    upload = files.begin_upload(home=home, path=name, size=len(data), actor=user)
    for offset in range(0, len(data), CHUNK):
        piece = data[offset : offset + CHUNK]
        upload = files.receive_chunk(upload=upload, offset=offset, stream=io.BytesIO(piece), length=len(piece))
    via = files.finish_upload(upload=upload, actor=user)["via"]
    up = time.perf_counter() - started
    started = time.perf_counter()
    chunks, _, size = files.download(home=home, path=name, actor=user)
    got = sum(len(c) for c in chunks)
    down = time.perf_counter() - started
    assert got == size == len(data), (got, size, len(data))
    return up, down, via


def _world():
    from django.utils import timezone

    from hosts.choices import HostState
    from hosts.models import Host
    from tenants.choices import Role
    from tenants.models import Membership, Tenant, User

    tenant = Tenant.objects.create(name="Bench", slug="bench", max_running_per_user=0, home_disk_gib=1)
    user = User.objects.create_user(email="bench@example.test", password=None)
    Membership.objects.create(user=user, tenant=tenant, role=Role.MEMBER)
    host = Host.objects.create(
        name="bench-files", uri="test:///default", cpus=64, memory_mib=256 * 1024, state=HostState.UP,
        last_heartbeat_at=timezone.now(), virt_types=["qemu"], detected_virt_type="qemu",
    )  # fmt: skip
    return tenant, user, host


def offline(size_mib: int, tmp: Path) -> tuple[float, float]:
    from desktops.choices import HomeDiskState
    from desktops.models import HomeDisk
    from hosts.homefs.image import format_image

    tenant, user, host = _world()
    image = tmp / "home.img"
    with image.open("wb") as handle:
        handle.truncate((size_mib * 2 + 64) * 1024 * 1024)
    format_image(str(image))
    home = HomeDisk.objects.create(
        tenant=tenant, user=user, host=host, state=HomeDiskState.READY, size_gib=1,
        volume_name="bench-home.img", volume_path=str(image),
    )  # fmt: skip
    up, down, via = _transfer(home, user, os.urandom(size_mib * 1024 * 1024), "offline.bin")
    assert via == "host", via
    return size_mib / up, size_mib / down


def offline_encrypted(size_mib: int, tmp: Path) -> tuple[float, float, float, float]:
    """The same with an encrypted home (LUKS qcow2 opened through qemu-storage-daemon for each operation), and
    p50 of a folder listing on the plain home and on the encrypted one: what opening the view adds to each call."""
    from desktops.choices import HomeDiskState
    from desktops.models import HomeDisk
    from desktops.services import disk_keys, files
    from hosts.homefs import luks
    from hosts.homefs.image import format_image
    from tenants.models import Tenant, User

    tenant = Tenant.objects.get(slug="bench")
    plain = HomeDisk.objects.get(tenant=tenant)
    user = User.objects.create_user(email="bench-luks@example.test", password=None)
    home = HomeDisk.objects.create(
        tenant=tenant, user=user, host=plain.host, state=HomeDiskState.READY, size_gib=1, encrypted=True,
        volume_name="bench-home.qcow2", volume_path=str(tmp / "home.qcow2"),
    )  # fmt: skip
    passphrase = disk_keys.passphrase_of(disk_keys.home_key_for(home))
    luks.create(home.volume_path, passphrase, (size_mib * 2 + 64) * 1024 * 1024)
    with luks.opened(home.volume_path, passphrase) as view:
        format_image(view)
    up, down, via = _transfer(home, user, os.urandom(size_mib * 1024 * 1024), "offline.bin")
    assert via == "host", via
    listings = {}
    for which in (plain, home):
        times = []
        for _ in range(20):
            started = time.perf_counter()
            files.listing(home=which, path="")
            times.append((time.perf_counter() - started) * 1000)
        listings[which.pk] = benchdb.percentile(times, 0.5)
    return size_mib / up, size_mib / down, listings[plain.pk], listings[home.pk]


def claims(count: int) -> tuple[float, float, float]:
    """p50 of warm claims without a home (a Windows template) and with one (Linux: the attach is queued), and p50
    of the worker's attach operation that follows (locks, the guarded claim of the home, the hypervisor call,
    which libvirt's test driver refuses at once); the real hot-plug's own time is `attach_live_ms`.
    """
    from django.utils import timezone

    from desktops.choices import DesktopKind, DesktopState, HomeDiskState, OperationKind
    from desktops.models import Desktop, DesktopTemplate, HomeDisk, Operation, Pool
    from desktops.services import execution, pools
    from hosts.models import Host, Image
    from quetzal.celery import app
    from tenants.choices import Role
    from tenants.models import Membership, Tenant, User

    tenant = Tenant.objects.create(name="Claims", slug="claims", max_running_per_user=0)
    host = Host.objects.get(name="bench-files")
    image = Image.objects.create(name="claims", source_path="/dev/null", sha256="0" * 64)
    results = {}
    for os_family in ("windows", "linux"):
        template = DesktopTemplate.objects.create(
            name=f"Bench {os_family}", image=image, os_family=os_family, vcpus=1, memory_mib=1024
        )
        pool = Pool.objects.create(tenant=tenant, template=template, name=os_family, min_ready=0, max_size=count * 2)
        Desktop.objects.bulk_create(
            Desktop(
                tenant=tenant, template=template, pool=pool, kind=DesktopKind.POOLED, name=template.name, vcpus=1,
                memory_mib=1024, state=DesktopState.RUNNING, host=host, running_since=timezone.now(),
            )
            for _ in range(count)
        )  # fmt: skip
        timings, attaches = [], []
        # Queued to a broker no worker reads (as the web tier does); the attach is then run here, timed apart.
        app.conf.task_always_eager = False
        for n in range(count):
            user = User.objects.create_user(email=f"{os_family}{n}@example.test", password=None)
            Membership.objects.create(user=user, tenant=tenant, role=Role.MEMBER)
            HomeDisk.objects.create(
                tenant=tenant, user=user, host=host, state=HomeDiskState.READY, size_gib=1,
                volume_name=f"claims-{n}.img", volume_path=f"/var/lib/libvirt/images/claims-{n}.img",
            )  # fmt: skip
            started = time.perf_counter()
            claimed = pools.claim(tenant=tenant, user=user, template=template)
            timings.append((time.perf_counter() - started) * 1000)
            assert claimed is not None
            attach = Operation.objects.filter(desktop=claimed[0], kind=OperationKind.ATTACH_HOME).first()
            assert (attach is not None) == (os_family == "linux")
            if attach is not None:
                started = time.perf_counter()
                execution.run(attach.pk)
                attaches.append((time.perf_counter() - started) * 1000)
        app.control.purge()
        app.conf.task_always_eager = True
        if attaches:
            results["attach"] = benchdb.percentile(attaches, 0.5)
        results[os_family] = benchdb.percentile(timings, 0.5)
    return results["windows"], results["linux"], results["attach"]


def session(size_mib: int) -> tuple[float, float, float]:
    """Through the guest agent of a running demo desktop (one boot); also one live hot-plug timed."""
    from django.core.management import call_command

    from desktops.models import DesktopTemplate, HomeDisk
    from desktops.services import homes, pools
    from desktops.services.execution import remove_from_host
    from hosts import demo_image as di
    from hosts.hypervisor import get_hypervisor
    from hosts.services import images
    from hosts.services.hosts import register_host
    from tenants.choices import Role
    from tenants.models import Membership, Tenant, User

    host = register_host("qemu:///system", name="bench-qemu", virt_type="qemu", reserved_memory_mib=512)
    call_command("build_demo_image", "--no-copy", stdout=open(os.devnull, "w"))  # noqa: SIM115
    template = DesktopTemplate.objects.get(name="Demo Linux")
    images.copy_image_to_host(image=template.image, host=host)
    tenant = Tenant.objects.create(name="Session", slug="session", max_running_per_user=0, home_disk_gib=1)
    user = User.objects.create_user(email="session@example.test", password=None)
    Membership.objects.create(user=user, tenant=tenant, role=Role.MEMBER)
    from desktops.models import Pool

    pool = Pool.objects.create(tenant=tenant, template=template, name="bench", min_ready=1, max_size=1)
    hv = get_hypervisor(host.uri)
    desktop = None
    try:
        pools.refill(pool)
        claimed = pools.claim(tenant=tenant, user=user, template=template)
        assert claimed is not None
        desktop = claimed[0]
        home = HomeDisk.objects.get(user=user)
        serial_log = Path(f"/var/log/libvirt/qemu/{desktop.domain_name}-serial.log")
        _wait(lambda: f"{di.HOME_BANNER} mounted" in serial_log.read_text(errors="replace"), 600, "home mounted")
        from desktops.services import files

        _wait(lambda: _answers(files, home), 600, "guest agent")
        up, down, via = _transfer(home, user, os.urandom(size_mib * 1024 * 1024), "session.bin")
        assert via == "guest", via
        # One real hot-plug of the home (unplugged first), as a claim's worker does it.
        assert hv.detach_disk(desktop.domain_name, home.serial, timeout_s=60)
        disk, secrets = homes._disk_of(HomeDisk.objects.get(pk=home.pk))  # LUKS where this host encrypts disks
        started = time.perf_counter()
        hv.attach_disk(desktop.domain_name, disk, secrets=secrets)
        attach_ms = (time.perf_counter() - started) * 1000
        return size_mib / up, size_mib / down, attach_ms
    finally:
        if desktop is not None:
            remove_from_host(desktop, release=True)
        for home in HomeDisk.objects.filter(tenant=tenant):
            homes.delete_home_volume(home)
        for volume in images.volume_names(template.image):
            hv.volume_delete(host.storage_pool, volume)


def _answers(files, home) -> bool:
    from quetzal.errors import ServiceError

    try:
        return files.listing(home=home, path="")["via"] == "guest"
    except ServiceError:
        return False


def _wait(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up waiting for {what}")
        time.sleep(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mib", type=int, default=64)
    parser.add_argument("--claims", type=int, default=100)
    parser.add_argument("--offline-only", action="store_true", help="skip the part that boots a demo desktop")
    args = parser.parse_args()
    benchdb.create_database()
    from django.conf import settings

    from quetzal.celery import app

    app.conf.task_always_eager = True
    with tempfile.TemporaryDirectory() as tmp:
        settings.HOME_SPOOL_DIR = Path(tmp) / "spool"
        try:
            up_off, down_off = offline(args.size_mib, Path(tmp))
            print(f"offline (host side, debugfs): upload {up_off:.1f} MiB/s, download {down_off:.1f} MiB/s")
            up_enc, down_enc, list_ms, list_enc_ms = offline_encrypted(args.size_mib, Path(tmp))
            print(f"offline, encrypted home (LUKS view): upload {up_enc:.1f} MiB/s, download {down_enc:.1f} MiB/s")
            print(f"folder listing p50: {list_ms:.1f} ms plain, {list_enc_ms:.1f} ms encrypted")
            claim_ms, claim_home_ms, attach_op_ms = claims(args.claims)
            print(f"warm claims: p50 {claim_ms:.1f} ms without a home, {claim_home_ms:.1f} ms with one (attach queued)")
            print(f"the worker's attach operation after a claim: p50 {attach_op_ms:.1f} ms (test driver, no hot-plug)")
            up_s = down_s = attach_ms = None
            if not args.offline_only and _libvirtd():
                up_s, down_s, attach_ms = session(args.size_mib)
                print(f"in session (guest agent): upload {up_s:.2f} MiB/s, download {down_s:.2f} MiB/s")
                print(f"live hot-plug of the home: {attach_ms:.1f} ms")
            else:
                print("in session: skipped (no libvirtd at qemu:///system, or --offline-only)")
        finally:
            benchdb.drop_database()

    def fmt(value, digits=2):
        return "n/a" if value is None else f"{value:.{digits}f}"

    print(
        f"upload_offline_mib_s={up_off:.1f} download_offline_mib_s={down_off:.1f} "
        f"upload_offline_luks_mib_s={up_enc:.1f} download_offline_luks_mib_s={down_enc:.1f} "
        f"list_p50_ms={list_ms:.1f} list_luks_p50_ms={list_enc_ms:.1f} "
        f"upload_session_mib_s={fmt(up_s)} download_session_mib_s={fmt(down_s)} "
        f"claim_p50_ms={claim_ms:.1f} claim_home_p50_ms={claim_home_ms:.1f} attach_op_p50_ms={attach_op_ms:.1f} "
        f"attach_live_ms={fmt(attach_ms, 1)}"
    )


def _libvirtd() -> bool:
    try:
        from hosts.hypervisor import HypervisorError, get_hypervisor

        get_hypervisor("qemu:///system").host_info()
        return True
    except (ImportError, HypervisorError):
        return False


if __name__ == "__main__":
    main()
