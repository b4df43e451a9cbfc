"""Cold start of a new desktop on a real libvirtd + QEMU: request → running, split by step, plain and encrypted.

Uses the demo image (built and copied to qemu:///system during set-up, not timed). Quetzal's share
is from the request until the domain runs (placing, cloning, seed, defining, starting); the guest's
boot is from then until the demo guest prints its ready banner on the serial console. Runs
alternate between a plain overlay (DESKTOP_DISK_ENCRYPTION off) and a LUKS-encrypted one from the
host's spare stock (refilled between runs, not timed, as the background refill does). Prints each
run and, last, `quetzal_share_s=<float> guest_boot_s=<float>` (plain medians) followed by the
encrypted medians and the difference of Quetzal's share.
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

    benchdb.avoid_shared_image_ids()
    host = register_host(URI, name="bench-qemu", virt_type="qemu", reserved_memory_mib=512)
    call_command("build_demo_image", "--no-copy", verbosity=0, stdout=open("/dev/null", "w"))  # noqa: SIM115
    template = DesktopTemplate.objects.get(name="Demo Linux")
    images.copy_image_to_host(image=template.image, host=host)
    tenant = Tenant.objects.create(name="Bench", slug="bench", max_running_per_user=0)
    user = User.objects.create_user(email="bench@example.test")
    Membership.objects.create(user=user, tenant=tenant)
    return host, template, tenant, user


def one_run(host, template, tenant, user, *, encrypted: bool) -> dict[str, float]:
    from django.conf import settings

    from desktops.models import DataKey, Desktop
    from desktops.services import disk_keys, execution, spec
    from desktops.services.requests import request_create
    from hosts.services import health

    settings.DESKTOP_DISK_ENCRYPTION = encrypted
    settings.DESKTOP_DISK_SPARES = 1
    if encrypted:
        disk_keys.refill_spares(host_ids=[host.pk])  # what the background refill keeps ready; not timed
    health.heartbeat(host_id=host.pk)  # what beat does every 15 s; no beat runs here
    requested = time.perf_counter()
    requested_at = datetime.now().astimezone()
    desktop, operation = request_create(tenant=tenant, user=user, template=template)
    execution.run(operation.pk)
    running = time.perf_counter()
    operation.refresh_from_db()
    assert operation.status == "succeeded", operation.error
    assert Desktop.objects.get(pk=desktop.pk).disk_encrypted == encrypted
    assert DataKey.objects.filter(desktop_id=desktop.pk).exists() == encrypted
    # Step times from the operation's own record: each step lasts until the next begins.
    marks = [(s["step"], datetime.fromisoformat(s["at"])) for s in operation.steps]
    marks.insert(0, ("request", requested_at))
    durations = {a[0]: (b[1] - a[1]).total_seconds() for a, b in itertools.pairwise(marks)}
    log = Path(spec.serial_log_path(Desktop.objects.get(pk=desktop.pk)))
    deadline = time.monotonic() + 300
    try:
        # Quetzal's share is known already; on an overloaded host the guest may not finish booting,
        # which costs that run its boot figure, not the benchmark.
        booted = float("nan")
        while time.monotonic() < deadline:
            if b"QUETZAL-DEMO-READY" in (log.read_bytes() if log.exists() else b""):
                booted = time.perf_counter()
                break
            time.sleep(0.05)
    finally:
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


def secret_roundtrip_ms(rounds: int = 20) -> float:
    """Median cost of what an encrypted start adds around QEMU: unwrap the key, define, set and undefine the secret."""
    import uuid

    from desktops.services import disk_keys
    from hosts.hypervisor import get_hypervisor
    from hosts.hypervisor.libvirt_driver import _ephemeral_secrets

    row, _ = disk_keys.new_key_row(purpose="disk")

    def one(conn) -> float:
        started = time.perf_counter()
        with _ephemeral_secrets(conn, {str(uuid.uuid4()): disk_keys.passphrase_of(row)}):
            pass
        return (time.perf_counter() - started) * 1000

    hv = get_hypervisor(URI)
    return statistics.median(hv.connection.run(one) for _ in range(rounds))


def _median(runs: list[dict[str, float]], key: str) -> float:
    """The median over the runs that have the figure (a guest that never booted has none)."""
    values = [r[key] for r in runs if r[key] == r[key]]
    return statistics.median(values) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="runs of each kind (plain and encrypted)")
    args = parser.parse_args()
    benchdb.create_database()
    host = template = None
    plain: list[dict[str, float]] = []
    encrypted: list[dict[str, float]] = []
    try:
        host, template, tenant, user = seed()
        for n in range(args.runs):
            for kind, runs in (("plain", plain), ("encrypted", encrypted)):
                figures = one_run(host, template, tenant, user, encrypted=kind == "encrypted")
                runs.append(figures)
                print(f"run={n} disk={kind} " + " ".join(f"{k}_s={v:.3f}" for k, v in figures.items()))
        secret_ms = secret_roundtrip_ms()
    finally:
        if template is not None:
            from desktops.models import DataKey
            from hosts.hypervisor import get_hypervisor
            from hosts.services import images

            hv = get_hypervisor(URI)
            for row in DataKey.objects.filter(host=host, desktop__isnull=True):
                hv.encrypted_file_delete(row.spare_path)
            for volume in images.volume_names(template.image):
                hv.volume_delete(host.storage_pool, volume)
        benchdb.drop_database()
    for kind, runs in (("plain", plain), ("encrypted", encrypted)):
        steps = " ".join(f"{k}_s={_median(runs, k):.3f}" for k in ("placing", "cloning", "defining", "starting"))
        print(f"median disk={kind} {steps}")
    print(f"secret_roundtrip_ms={secret_ms:.1f} (unwrap + define + set + undefine the ephemeral secret, median of 20)")
    share, boot = _median(plain, "quetzal_share"), _median(plain, "guest_boot")
    share_enc, boot_enc = _median(encrypted, "quetzal_share"), _median(encrypted, "guest_boot")
    print(
        f"quetzal_share_s={share:.3f} guest_boot_s={boot:.3f} "
        f"quetzal_share_encrypted_s={share_enc:.3f} guest_boot_encrypted_s={boot_enc:.3f} "
        f"quetzal_share_delta_ms={(share_enc - share) * 1000:.0f}"
    )


if __name__ == "__main__":
    main()
