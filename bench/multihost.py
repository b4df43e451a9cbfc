"""Launch demo desktops across three real libvirtd hosts in namespaces, then live-migrate one (root only)."""

# Starts three namespace hosts (tests/namespace_hosts.py), enrols them over qemu+tcp, copies the
# demo image, launches --desktops tiny demo desktops (operations run in-process, as Celery's eager
# mode does) and moves one running desktop to another host. Uses its own database, DATABASE_URL or
# postgres://postgres@127.0.0.1:5432/quetzal_bench_multihost. Last line:
# `launches=<n> spread=<a/b/c> launch_p50_s=<s> launch_max_s=<s> migration_s=<s> migration_downtime_ms=<ms>`.

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchdb

benchdb.configure("quetzal_bench_multihost")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--desktops", type=int, default=3, help="demo desktops to launch (CPU is precious)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("multihost: needs root (network and mount namespaces); not run")
        return
    if not 1 <= args.desktops <= 30:
        parser.error("--desktops must be between 1 and 30")

    benchdb.create_database()
    from tests.namespace_hosts import start_hosts

    root = Path(tempfile.mkdtemp(prefix="qz-bench-nshosts-"))
    root.chmod(0o755)
    hosts_ns = start_hosts(3, root)
    try:
        result = run(args, hosts_ns)
    finally:
        for host in hosts_ns:
            host.destroy()
        benchdb.drop_database()
    print(result)


def run(args, hosts_ns) -> str:
    from django.conf import settings
    from django.core.management import call_command

    from desktops.choices import DesktopState, OperationKind, OperationStatus
    from desktops.models import Desktop, DesktopTemplate, Operation
    from desktops.services import moves
    from desktops.services.requests import request_create
    from hosts.hypervisor import get_hypervisor
    from hosts.services import health, images
    from hosts.services.enrolment import enrol_host
    from quetzal.celery import app
    from tests.fixtures import make_world

    app.conf.task_always_eager = True
    settings.HOST_PKI_DIR = tempfile.mkdtemp(prefix="qz-bench-pki-")
    settings.HOST_DOWN_AFTER_S = 600
    hosts = [enrol_host(h.uri, virt_type="qemu", reserved_memory_mib=256)[0] for h in hosts_ns]
    call_command("build_demo_image", "--no-copy", stdout=io.StringIO())
    template = DesktopTemplate.objects.get(name="Demo Linux")
    for host in hosts:
        images.copy_image_to_host(image=template.image, host=host)
    launches = []
    made = []
    for n in range(args.desktops):
        for host in hosts:
            health.heartbeat(host_id=host.pk)
        world = make_world(f"bench{n}")  # one tenant each: per-person quotas are not what this measures
        started = time.perf_counter()
        desktop, _ = request_create(tenant=world.tenant, user=world.member, template=template, name=f"bench {n}")
        launches.append(time.perf_counter() - started)
        desktop.refresh_from_db()
        if desktop.state != DesktopState.RUNNING:
            raise SystemExit(f"desktop {desktop.pk} did not start: {desktop.status_reason}")
        made.append(desktop)
    per_host = [Desktop.objects.filter(host=h, state=DesktopState.RUNNING).count() for h in hosts]
    print(f"launched={len(made)} per_host={per_host} launch_s={[round(x, 2) for x in launches]}")

    moving = made[0]
    source = moving.host
    started = time.perf_counter()
    moves.request_move(desktop=moving, actor=None)
    migration_s = time.perf_counter() - started
    operation = Operation.objects.get(desktop=moving, kind=OperationKind.MIGRATE)
    if operation.status != OperationStatus.SUCCEEDED:
        raise SystemExit(f"migration failed: {operation.error}")
    moving.refresh_from_db()
    print(
        f"moved desktop {moving.pk} {source.name} -> {moving.host.name} in {migration_s:.2f}s "
        f"(libvirt: elapsed {operation.params['elapsed_ms']} ms, downtime {operation.params['downtime_ms']} ms)"
    )
    for host in hosts:
        hv = get_hypervisor(host.uri)
        for domain in hv.list_domains():
            hv.destroy(domain.name)
            hv.undefine(domain.name)
    return (
        f"launches={len(made)} spread={'/'.join(map(str, per_host))} "
        f"launch_p50_s={statistics.median(launches):.2f} launch_max_s={max(launches):.2f} "
        f"migration_s={migration_s:.2f} migration_downtime_ms={operation.params['downtime_ms']}"
    )


if __name__ == "__main__":
    main()
