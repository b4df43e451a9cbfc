"""Host memory per idle desktop on a real libvirtd + QEMU, without and with kernel same-page merging (KSM).

Boots N text demo desktops through the real lifecycle (unencrypted disks, so the guests' pages are alike), waits
for each guest's ready banner and lets them idle, then reads the host memory the guests hold: the resident memory
of their QEMU processes, less what KSM shares between them (pages_sharing). Both rounds run with the balloon's
free page reporting (every desktop's domain has it), so freed guest pages are back with the host in both.
KSM is switched on for the second round and restored afterwards (this needs root on the host).

Last line: `mib_per_guest_plain=<float> mib_per_guest_merged=<float> guests=<n>`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchdb

benchdb.configure("quetzal_bench_density")
URI = "qemu:///system"
KSM = Path("/sys/kernel/mm/ksm")
PAGE = 4096


def _ksm(name: str) -> int:
    return int((KSM / name).read_text())


def _set_ksm(name: str, value: int) -> None:
    (KSM / name).write_text(f"{value}\n")


def seed(memory_mib: int):
    from django.core.management import call_command

    from desktops.models import DesktopTemplate
    from hosts.services import images
    from hosts.services.hosts import register_host
    from tenants.models import Membership, Tenant, User

    benchdb.avoid_shared_image_ids()
    host = register_host(URI, name="bench-qemu", virt_type="qemu", reserved_memory_mib=512)
    call_command("build_demo_image", "--no-copy", verbosity=0, stdout=open("/dev/null", "w"))  # noqa: SIM115
    template = DesktopTemplate.objects.get(name="Demo Linux")
    DesktopTemplate.objects.filter(pk=template.pk).update(memory_mib=memory_mib, vcpus=1)
    template.refresh_from_db()
    images.copy_image_to_host(image=template.image, host=host)
    tenant = Tenant.objects.create(name="Bench", slug="bench", max_running_per_user=0)
    user = User.objects.create_user(email="bench@example.test")
    Membership.objects.create(user=user, tenant=tenant)
    return host, template, tenant, user


def _qemu_rss_bytes(domain_names: list[str]) -> int:
    """Resident memory of the QEMU processes running these domains (from /proc)."""
    total = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
            if not any(f"guest={name},".encode() in cmdline for name in domain_names):
                continue
            status = (proc / "status").read_text()
        except OSError:
            continue
        total += next(int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmRSS:"))
    return total


def one_round(host, template, tenant, user, *, guests: int, merge: bool, idle_s: float) -> float:
    """MiB of host memory per guest once `guests` desktops have booted and idled."""
    from desktops.models import Desktop
    from desktops.services import execution, spec
    from desktops.services.requests import request_create
    from hosts.services import health

    _set_ksm("run", 1 if merge else 0)
    desktops = []
    try:
        for _ in range(guests):
            health.heartbeat(host_id=host.pk)
            desktop, operation = request_create(tenant=tenant, user=user, template=template)
            execution.run(operation.pk)
            operation.refresh_from_db()
            assert operation.status == "succeeded", operation.error
            desktops.append(Desktop.objects.get(pk=desktop.pk))
        logs = [Path(spec.serial_log_path(d)) for d in desktops]
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if all(log.exists() and b"QUETZAL-DEMO-READY" in log.read_bytes() for log in logs):
                break
            time.sleep(0.5)
        else:
            raise SystemExit("the guests did not all boot within 600 s")
        scans = _ksm("full_scans")
        time.sleep(idle_s)
        if merge:  # two whole passes over the guests' memory: what KSM merges of idle desktops by then
            while _ksm("full_scans") < scans + 2:
                time.sleep(1)
        rss = _qemu_rss_bytes([d.domain_name for d in desktops])
        shared = _ksm("pages_sharing") * PAGE if merge else 0
        return (rss - shared) / guests / 2**20
    finally:
        for desktop in desktops:
            execution.remove_from_host(Desktop.objects.get(pk=desktop.pk), release=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--guests", type=int, default=4)
    parser.add_argument("--memory-mib", type=int, default=512, help="each desktop's RAM")
    parser.add_argument("--idle-s", type=float, default=20.0, help="idle time after the last guest is ready")
    args = parser.parse_args()
    if not (KSM / "run").exists():
        raise SystemExit("no KSM on this kernel (/sys/kernel/mm/ksm)")
    saved = {name: _ksm(name) for name in ("run", "pages_to_scan")}
    benchdb.create_database()
    template = host = None
    try:
        from django.conf import settings

        settings.DESKTOP_DISK_ENCRYPTION = False
        _set_ksm("pages_to_scan", 2000)  # merge within the run, not within the hour
        host, template, tenant, user = seed(args.memory_mib)
        figures = {}
        for merge in (False, True):
            figures[merge] = one_round(
                host, template, tenant, user, guests=args.guests, merge=merge, idle_s=args.idle_s
            )
            print(f"ksm={'on' if merge else 'off'} guests={args.guests} mib_per_guest={figures[merge]:.1f}", flush=True)
    finally:
        if saved["run"] == 0:
            _set_ksm("run", 2)  # unmerge what the round merged before switching KSM off again
        _set_ksm("run", saved["run"])
        _set_ksm("pages_to_scan", saved["pages_to_scan"])
        if template is not None:
            from hosts.hypervisor import get_hypervisor
            from hosts.services import images

            hv = get_hypervisor(URI)
            for volume in images.volume_names(template.image):
                hv.volume_delete(host.storage_pool, volume)
        benchdb.drop_database()
    print(f"mib_per_guest_plain={figures[False]:.1f} mib_per_guest_merged={figures[True]:.1f} guests={args.guests}")


if __name__ == "__main__":
    main()
