"""Automation on a real libvirtd + QEMU: screenshot latency, input round trip, and 20 disposable desktops at once.

Uses the demo image (built and copied to qemu:///system during set-up, not timed) and calls the automation and
disposable services the API calls (no HTTP in between). On one running demo desktop: --shots screenshots
(libvirt's screen dump, decoded, PNG-encoded); then --inputs round trips, each from sending one key through the
input path until the screen-change wait sees the guest's echo (it looks every 100 ms, so that is the grain).
Then --disposables desktops are made in one batch (the quotas checked in one transaction), carried out by
parallel workers (threads here, each running its operation as a Celery worker would) until every one runs, and
torn down by label. Prints each figure and, last,
`screenshot_p95_ms=<float> input_to_change_p95_ms=<float> disposable_20_ready_s=<float>`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchdb

benchdb.configure("quetzal_bench_automation")
URI = "qemu:///system"


def seed():

    from django.core.management import call_command

    from desktops.models import DesktopTemplate
    from hosts.services import images
    from hosts.services.hosts import register_host
    from tenants.models import Membership, Tenant, User

    benchdb.avoid_shared_image_ids()
    host = register_host(URI, name="bench-qemu", virt_type="qemu", reserved_memory_mib=512)
    # Twenty demo guests idle at a shell after booting: overcommit this host's two cores well past the default.
    host.cpu_ratio = 12
    host.save()
    call_command("build_demo_image", "--no-copy", verbosity=0, stdout=open("/dev/null", "w"))  # noqa: SIM115
    template = DesktopTemplate.objects.get(name="Demo Linux")
    images.copy_image_to_host(image=template.image, host=host)
    tenant = Tenant.objects.create(name="Bench", slug="bench", max_running_per_user=0)
    user = User.objects.create_user(email="bench@example.test")
    Membership.objects.create(user=user, tenant=tenant)
    return host, template, tenant, user


def _run(operation_id: int) -> None:
    from django.db import connections

    from desktops.services import execution

    try:
        execution.run(operation_id)
    finally:
        connections.close_all()


def screenshots(desktop, count: int) -> list[float]:
    from desktops.services import automation

    times = []
    for _ in range(count):
        started = time.perf_counter()
        automation.screenshot(desktop=desktop)
        times.append((time.perf_counter() - started) * 1000)
    return times


def input_round_trips(desktop, user, count: int) -> list[float]:
    from desktops.services import automation

    times = []
    for n in range(count):
        before = automation.screenshot(desktop=desktop).digest
        started = time.perf_counter()
        automation.send_input(desktop=desktop, actions=[{"type": "text", "text": "x"}], actor=user)
        seen = automation.wait_for_screen(desktop=desktop, until="change", since=before, timeout_ms=10_000)
        if seen["changed"]:
            times.append((time.perf_counter() - started) * 1000)
        if n % 20 == 19:  # keep the prompt's line short
            automation.send_input(desktop=desktop, actions=[{"type": "key", "keys": "ctrl+u"}], actor=user)
    return times


def disposables(host, template, tenant, user, count: int, workers: int) -> tuple[float, float]:
    from desktops.models import Desktop
    from desktops.services import disposable
    from hosts.services import health

    done = threading.Event()

    def beat() -> None:
        # What beat does every 15 s (placement needs a host heard from in the last 40 s); no beat runs here.
        from django.db import connections

        while not done.is_set():
            health.heartbeat(host_id=host.pk)
            connections.close_all()
            done.wait(10)

    heart = threading.Thread(target=beat, daemon=True)
    heart.start()
    try:
        started = time.perf_counter()
        made = disposable.create(
            tenant=tenant, user=user, template=template, count=count, ttl_minutes=30, labels=["bench"]
        )
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(_run, [operation.pk for _desktop, operation in made]))
        ready = time.perf_counter() - started
    finally:
        done.set()
        heart.join()
    states = list(Desktop.objects.filter(pk__in=[d.pk for d, _ in made]).values_list("state", flat=True))
    if states != ["running"] * count:
        from desktops.models import Operation

        failed = Operation.objects.filter(desktop_id__in=[d.pk for d, _ in made], status="failed").first()
        why = f"{failed.error_code} {failed.error}" if failed else "none failed"
        raise SystemExit(f"not all ran: {states}; first failure: {why}")
    started = time.perf_counter()
    operations = disposable.tear_down(desktops=disposable.labelled(Desktop.objects.all(), "bench"), actor=user)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(_run, [operation.pk for operation in operations]))
    return ready, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shots", type=int, default=50)
    parser.add_argument("--inputs", type=int, default=40)
    parser.add_argument("--disposables", type=int, default=20)
    parser.add_argument("--workers", type=int, default=4, help="parallel operations (as worker processes would)")
    args = parser.parse_args()
    benchdb.create_database()
    host = template = desktop = None
    try:
        host, template, tenant, user = seed()
        from desktops.models import Desktop
        from desktops.services import execution, spec
        from desktops.services.requests import request_create

        desktop, operation = request_create(tenant=tenant, user=user, template=template)
        execution.run(operation.pk)
        desktop = Desktop.objects.get(pk=desktop.pk)
        log = Path(spec.serial_log_path(desktop))
        deadline = time.monotonic() + 300
        while b"QUETZAL-DEMO-READY" not in (log.read_bytes() if log.exists() else b""):
            assert time.monotonic() < deadline, "the demo guest did not boot"
            time.sleep(0.2)
        time.sleep(2)  # the prompt is drawn after the banner
        shots = screenshots(desktop, args.shots)
        p50, p95 = statistics.median(shots), benchdb.percentile(shots, 0.95)
        print(f"screenshots={len(shots)} p50_ms={p50:.1f} p95_ms={p95:.1f}")
        trips = input_round_trips(desktop, user, args.inputs)
        print(f"inputs={args.inputs} seen={len(trips)} p50_ms={statistics.median(trips):.1f} "
              f"p95_ms={benchdb.percentile(trips, 0.95):.1f}")  # fmt: skip
        execution.remove_from_host(Desktop.objects.get(pk=desktop.pk), release=True)
        desktop = None
        ready_s, teardown_s = disposables(host, template, tenant, user, args.disposables, args.workers)
        print(
            f"disposables={args.disposables} workers={args.workers} ready_s={ready_s:.1f} teardown_s={teardown_s:.1f}"
        )
    finally:
        from desktops.models import Desktop
        from desktops.services import execution

        for leftover in Desktop.objects.exclude(state="deleted"):
            try:
                execution.remove_from_host(leftover, release=True)
            except Exception as error:  # a benchmark's clean-up goes on past one failure
                print(f"clean-up of desktop {leftover.pk} failed: {error}")
        if template is not None:
            from hosts.hypervisor import get_hypervisor
            from hosts.services import images

            hv = get_hypervisor(URI)
            for volume in images.volume_names(template.image):
                hv.volume_delete(host.storage_pool, volume)
        benchdb.drop_database()
        from quetzal.celery import app

        app.control.purge()  # the operations' queued copies: the threads above carried them out
    print(
        f"screenshot_p95_ms={benchdb.percentile(shots, 0.95):.1f} "
        f"input_to_change_p95_ms={benchdb.percentile(trips, 0.95):.1f} "
        f"disposable_{args.disposables}_ready_s={ready_s:.1f}"
    )


if __name__ == "__main__":
    main()
