"""Click-to-ready in Chromium: a warm pooled desktop and a cold one, on a real libvirtd + QEMU.

A person signs in, clicks Launch, and the clock stops when the console says "Ready" (the guest itself said
it takes input: see desktops/services/readiness.py), not when VNC first answers. Warm: the tenant's pool
holds a running, ready desktop of the template. Cold: no pool, so the click creates and boots one.
Everything is real: the production ASGI server, a Celery worker, libvirtd + QEMU (software emulation),
Chromium. Beat is not run: its reconcile loop would treat other Quetzal databases' domains on a shared
libvirtd as orphans. The bench does beat's two jobs it needs itself (refill the pool, probe readiness).

Safe on a libvirtd shared with tests and other checkouts: its image ids and tenant subnets are picked at random
(both name things on the host), and every domain, disk, spare and network it made is removed at the end,
also when a run fails. Use your own REDIS_URL database: the worker takes whatever tasks it finds there.

    .venv/bin/python bench/launch_browser.py [--runs 3] [--graphical]

Last line (always, also after a failure, with the runs done so far):
warm_ready_p95_s=<float> cold_ready_p95_s=<float> warm_runs=<int> cold_runs=<int> [guest_ready_uptime_s=<float>]
[error=<type>]
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchdb

benchdb.configure("quetzal_bench_launch")
# Playwright's sync API keeps an event loop on this thread; the bench's ORM calls stay synchronous (as in the tests).
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
URI = "qemu:///system"
PASSWORD = "bench-launch-password-1"
CHROMIUM = "/usr/bin/chromium"
READY_TIMEOUT_MS = 600_000
SETTLE_TIMEOUT_S = 600
# Tenant subnets are libvirt networks on the host: a range no test or product default (10.200/16) uses.
os.environ.setdefault("QUETZAL_TENANT_NETWORK_RANGE", f"10.{random.randint(201, 250)}.0.0/16")


def seed(graphical: bool):
    from django.core.management import call_command
    from django.db import connection

    from desktops.models import DesktopTemplate
    from hosts.services import images
    from hosts.services.hosts import register_host
    from tenants.models import Tenant

    # Image volumes are named after the image's id: id 1 of another database would be this run's base too,
    # and whichever run cleans up first would delete it under the other.
    with connection.cursor() as cursor:
        cursor.execute("SELECT setval(pg_get_serial_sequence('hosts_image', 'id'), %s)", [random.randint(10**5, 10**9)])
    host = register_host(URI, name="bench-qemu", virt_type="qemu", reserved_memory_mib=512)
    flags = ["--graphical"] if graphical else []
    call_command("build_demo_image", *flags, "--no-copy", verbosity=0, stdout=open(os.devnull, "w"))  # noqa: SIM115
    template = DesktopTemplate.objects.get(name="Demo Linux desktop" if graphical else "Demo Linux")
    images.copy_image_to_host(image=template.image, host=host)
    tenant = Tenant.objects.create(name="Bench", slug="bench", max_running_per_user=0)
    return host, template, tenant


def person(tenant, n: int):
    """A fresh member per run, so Launch never finds an earlier desktop of theirs."""
    from tenants.models import Membership, User

    user = User.objects.create_user(email=f"bench{n}-{time.time_ns()}@example.test", password=PASSWORD)
    Membership.objects.create(user=user, tenant=tenant)
    return user


def warm_pool(tenant, template):
    """A pool with one running desktop whose guest said it is ready."""
    from desktops.models import Desktop, Pool
    from desktops.services import pools, readiness

    pool, _ = Pool.objects.update_or_create(
        tenant=tenant, template=template, defaults={"name": "bench", "min_ready": 1, "max_size": 2, "enabled": True}
    )
    pools.refill(pool)
    deadline = time.monotonic() + READY_TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        readiness.probe_all()
        ready = Desktop.objects.filter(pool=pool, user__isnull=True, state="running", ready_at__isnull=False)
        if ready.exists():
            return pool
        time.sleep(0.5)
    raise SystemExit("the pool's desktop never became ready")


def click_to_ready(browser, base: str, user, template) -> tuple[float, int]:
    """Sign in, click Launch, and time until the console says Ready: (seconds, desktop id)."""
    import re

    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.goto(f"{base}/accounts/login/")
    page.fill("input[name=login]", user.email)
    page.fill("input[name=password]", PASSWORD)
    page.locator("form button[type=submit]").first.click()
    page.wait_for_url(f"{base}/")
    card = page.locator(".template-card", has_text=template.name)
    started = time.perf_counter()
    card.locator("button.launch").click()
    page.wait_for_url(re.compile(r".*/desktops/\d+/console/$"), timeout=READY_TIMEOUT_MS)
    page.wait_for_selector('#console-app[data-state="connected"]', timeout=READY_TIMEOUT_MS)
    seconds = time.perf_counter() - started
    desktop_id = int(re.search(r"/desktops/(\d+)/console/", page.url)[1])
    context.close()
    return seconds, desktop_id


def settle() -> None:
    """Wait until the worker has no operation in flight (one that still runs could define a VM after a clean-up)."""
    from desktops.choices import IN_FLIGHT_STATUSES
    from desktops.models import Operation

    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while Operation.objects.filter(status__in=IN_FLIGHT_STATUSES).exists():
        if time.monotonic() > deadline:
            raise SystemExit("operations still in flight after the runs")
        time.sleep(0.5)


def remove_everything(host, template) -> None:
    """Every domain, disk, spare disk and network this run made, and the image's copies (the workers are stopped)."""
    from desktops.models import DataKey, Desktop
    from desktops.services.execution import remove_from_host
    from hosts.hypervisor import get_hypervisor
    from hosts.services import images

    hv = get_hypervisor(URI)
    for desktop in Desktop.objects.exclude(host=None):
        remove_from_host(desktop, release=True)
    for row in DataKey.objects.filter(host=host, desktop__isnull=True):
        hv.encrypted_file_delete(row.spare_path)
    for volume in images.volume_names(template.image):
        hv.volume_delete(host.storage_pool, volume)


def guest_ready_uptime(desktop_id: int) -> float | None:
    """The graphical guest's uptime when it said it was ready (its serial log), before the desktop goes."""
    from desktops.models import Desktop
    from desktops.services import spec
    from hosts import demo_graphical

    try:
        text = Path(spec.serial_log_path(Desktop.objects.get(pk=desktop_id))).read_text(errors="replace")
    except OSError:
        return None
    return demo_graphical.ready_seconds(text)


def p95(values: list[float]) -> float:
    return benchdb.percentile(values, 0.95) if values else math.nan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--graphical", action="store_true", help="the X desktop instead of the text demo")
    args = parser.parse_args()
    benchdb.create_database()
    from playwright.sync_api import sync_playwright

    from desktops.models import Desktop, Pool
    from desktops.services.execution import remove_from_host
    from tests.processes import child_env, start_asgi_server, start_celery_worker

    host = template = None
    children = []
    warm: list[float] = []
    cold: list[float] = []
    uptimes: list[float] = []
    failure = ""
    logs = Path(tempfile.mkdtemp(prefix="quetzal-bench-launch-"))
    try:
        host, template, tenant = seed(args.graphical)
        env = child_env(QUETZAL_VAR_DIR=str(logs / "var"))
        server, base = start_asgi_server(env=env, log_path=logs / "server.log")
        children.append(server)
        children.append(start_celery_worker(env=env, log_path=logs / "worker.log", options=["-c", "2"]))
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
            )
            for n in range(args.runs):
                warm_pool(tenant, template)
                seconds, desktop_id = click_to_ready(browser, base, person(tenant, n), template)
                warm.append(seconds)
                print(f"run={n} kind=warm click_to_ready_s={seconds:.2f}", flush=True)
                settle()
                remove_from_host(Desktop.objects.get(pk=desktop_id), release=True)
            Pool.objects.filter(tenant=tenant).update(enabled=False)
            settle()
            for desktop in Desktop.objects.filter(pool__tenant=tenant, user__isnull=True).exclude(host=None):
                remove_from_host(desktop, release=True)
            for n in range(args.runs):
                seconds, desktop_id = click_to_ready(browser, base, person(tenant, 100 + n), template)
                cold.append(seconds)
                uptime = guest_ready_uptime(desktop_id) if args.graphical else None
                if uptime is not None:
                    uptimes.append(uptime)
                print(f"run={n} kind=cold click_to_ready_s={seconds:.2f} guest_ready_uptime_s={uptime}", flush=True)
                settle()
                remove_from_host(Desktop.objects.get(pk=desktop_id), release=True)
            browser.close()
    except (Exception, SystemExit, KeyboardInterrupt) as exc:
        failure = type(exc).__name__
        print(f"bench failed: {exc!r} (logs in {logs})", file=sys.stderr, flush=True)
    finally:
        for child in children:
            child.stop()
        try:
            if template is not None:
                remove_everything(host, template)
        except Exception as exc:
            failure = failure or f"cleanup_{type(exc).__name__}"
            print(f"clean-up failed, look for leftovers on {URI}: {exc!r}", file=sys.stderr, flush=True)
        benchdb.drop_database()
    summary = f"warm_ready_p95_s={p95(warm):.2f} cold_ready_p95_s={p95(cold):.2f}"
    summary += f" warm_runs={len(warm)} cold_runs={len(cold)}"
    if uptimes:
        summary += f" guest_ready_uptime_s={statistics.median(uptimes):.1f}"
    if failure:
        summary += f" error={failure}"
    print(summary, flush=True)
    if failure:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
