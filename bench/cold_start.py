"""Cold start of a new desktop on a real libvirtd + QEMU: request → running, split by step.

Uses the demo image (built and copied to qemu:///system during set-up, not timed). Quetzal's share
is from the request until the domain runs (placing, cloning, seed, defining, starting); the guest's
boot is from then until the demo guest prints its ready banner on the serial console. Prints each
run and, last, `quetzal_share_s=<float> guest_boot_s=<float>` (medians).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import itertools

import benchdb

benchdb.configure("quetzal_bench_cold")
URI = "qemu:///system"


def seed():
    from django.core.management import call_command

    from desktops.models import DesktopTemplate
    from hosts.services import images
    from hosts.services.hosts import register_host
    from tenants.models import Membership, Tenant, User

    host = register_host(URI, name="bench-qemu", virt_type="qemu", reserved_memory_mib=512)
    call_command("build_demo_image", "--no-copy", verbosity=0, stdout=open("/dev/null", "w"))  # noqa: SIM115
    template = DesktopTemplate.objects.get(name="Demo Linux")
    images.copy_image_to_host(image=template.image, host=host)
    tenant = Tenant.objects.create(name="Bench", slug="bench", max_running_per_user=0)
    user = User.objects.create_user(email="bench@example.test")
    Membership.objects.create(user=user, tenant=tenant)
    return host, template, tenant, user


def one_run(host, template, tenant, user) -> dict[str, float]:
    from desktops.models import Desktop
    from desktops.services import execution, spec
    from desktops.services.requests import request_create

    requested = time.perf_counter()
    requested_at = datetime.now().astimezone()
    desktop, operation = request_create(tenant=tenant, user=user, template=template)
    execution.run(operation.pk)
    running = time.perf_counter()
    operation.refresh_from_db()
    assert operation.status == "succeeded", operation.error
    # Step times from the operation's own record: each step lasts until the next begins.
    marks = [(s["step"], datetime.fromisoformat(s["at"])) for s in operation.steps]
    marks.insert(0, ("request", requested_at))
    durations = {a[0]: (b[1] - a[1]).total_seconds() for a, b in itertools.pairwise(marks)}
    log = Path(spec.serial_log_path(Desktop.objects.get(pk=desktop.pk)))
    deadline = time.monotonic() + 120
    while b"QUETZAL-DEMO-READY" not in (log.read_bytes() if log.exists() else b""):
        if time.monotonic() > deadline:
            raise SystemExit("the guest did not boot within 120 s")
        time.sleep(0.05)
    booted = time.perf_counter()
    execution.remove_from_host(Desktop.objects.get(pk=desktop.pk), release=True)
    return {
        "placing": durations.get("request", 0) + durations.get("placing", 0),
        "cloning": durations.get("cloning disk", 0) + durations.get("writing seed", 0),
        "network": durations.get("connecting network", 0),
        "defining": durations.get("defining", 0),
        "starting": durations.get("booting", 0),
        "quetzal_share": running - requested,
        "guest_boot": booted - running,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    benchdb.create_database()
    host = template = None
    try:
        host, template, tenant, user = seed()
        runs = []
        for n in range(args.runs):
            figures = one_run(host, template, tenant, user)
            runs.append(figures)
            print(f"run={n} " + " ".join(f"{k}_s={v:.3f}" for k, v in figures.items()))
    finally:
        if template is not None:
            from hosts.hypervisor import get_hypervisor
            from hosts.services import images

            for volume in images.volume_names(template.image):
                get_hypervisor(URI).volume_delete(host.storage_pool, volume)
        benchdb.drop_database()
    share = statistics.median(r["quetzal_share"] for r in runs)
    boot = statistics.median(r["guest_boot"] for r in runs)
    print(f"quetzal_share_s={share:.3f} guest_boot_s={boot:.3f}")


if __name__ == "__main__":
    main()
