"""Place 10,000 desktops on 500 simulated hosts with 4 concurrent workers on PostgreSQL."""

# Creates (and drops afterwards) its own database, DATABASE_URL or
# postgres://postgres@127.0.0.1:5432/quetzal_bench. Runs each claim path (`steps`: rank, lock,
# count, record one query each; `statement`: all in one SQL statement) on the same hosts, emptied
# in between. Prints the figures per path and, last,
# `placements_per_s=<statement> steps_placements_per_s=<steps> over_ratio_hosts=<n> counters_drifted_hosts=<n>`.

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchdb

benchdb.configure("quetzal_bench")

# Desktop sizes (vCPUs, MiB) drawn for the run: mostly small office desktops.
SIZES = [(1, 2048), (2, 4096), (2, 4096), (4, 8192)]
# Host sizes (CPUs, GiB) cycled over the simulated hosts.
HOST_SIZES = [(16, 64), (32, 128), (64, 256)]


def seed(hosts: int) -> int:
    """Create the hosts (healthy, empty) and an image ready on all of them; return the image id."""
    from django.utils import timezone

    from hosts.choices import CopyState, HostState
    from hosts.models import Host, Image, ImageCopy

    now = timezone.now()
    rows = []
    for n in range(hosts):
        cpus, gib = HOST_SIZES[n % len(HOST_SIZES)]
        rows.append(
            Host(
                name=f"sim-{n:04d}",
                uri=f"qemu+ssh://root@sim-{n:04d}/system",
                cpus=cpus,
                memory_mib=gib * 1024,
                state=HostState.UP,
                last_heartbeat_at=now,
                detected_virt_type="kvm",
            )
        )
    created = Host.objects.bulk_create(rows)
    image = Image.objects.create(name="bench", source_path="/dev/null", sha256="0" * 64)
    ImageCopy.objects.bulk_create(
        ImageCopy(image=image, host=host, state=CopyState.READY, volume_path=f"/pool/{host.pk}") for host in created
    )
    return image.pk


def worker(index: int, workers: int, desktops: int, image_id: int, barrier, results) -> None:
    """Place every workers-th desktop starting at index; report (placed, refused, latencies)."""
    from django.db import connections

    from hosts import scheduling
    from hosts.errors import NoCapacity

    connections.close_all()  # never reuse a connection inherited from the parent
    rng = random.Random(index)
    placed = refused = 0
    latencies = []
    barrier.wait()
    for desktop_id in range(index + 1, desktops + 1, workers):
        vcpus, memory = rng.choice(SIZES)
        started = time.perf_counter()
        try:
            scheduling.place(
                scheduling.PlacementRequest(desktop_id=desktop_id, vcpus=vcpus, memory_mib=memory, image_id=image_id)
            )
            placed += 1
        except NoCapacity:
            refused += 1
        latencies.append(time.perf_counter() - started)
    connections.close_all()
    results.put((placed, refused, latencies))


def audit() -> tuple[int, int]:
    """(hosts past a ratio, hosts whose counters differ from their allocations), checked in SQL."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT count(*) FROM hosts_host
            WHERE allocated_vcpus > cpus * cpu_ratio
               OR allocated_memory_mib > (memory_mib - reserved_memory_mib) * ram_ratio
            """
        )
        over = cursor.fetchone()[0]
        cursor.execute(
            """
            SELECT count(*) FROM hosts_host h
            LEFT JOIN (SELECT host_id, sum(vcpus) v, sum(memory_mib) m FROM hosts_allocation GROUP BY host_id) a
              ON a.host_id = h.id
            WHERE h.allocated_vcpus <> coalesce(a.v, 0) OR h.allocated_memory_mib <> coalesce(a.m, 0)
            """
        )
        drifted = cursor.fetchone()[0]
    return over, drifted


def reset() -> None:
    """Empty every host again (between two runs on the same hosts)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM hosts_allocation")
        cursor.execute("UPDATE hosts_host SET allocated_vcpus = 0, allocated_memory_mib = 0")
        cursor.execute("ANALYZE")


def run(claim: str, args, image_id: int) -> tuple[float, int, int]:
    """One run with the given claim path; prints its figures and returns (placements/s, over-ratio hosts)."""
    from django.conf import settings
    from django.db import connections

    settings.SCHEDULER_CLAIM = claim
    connections.close_all()
    # fork: children inherit the configured Django; each opens its own connection.
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(args.workers + 1)
    results = context.Queue()
    processes = [
        context.Process(target=worker, args=(i, args.workers, args.desktops, image_id, barrier, results))
        for i in range(args.workers)
    ]
    for process in processes:
        process.start()
    barrier.wait()
    started = time.perf_counter()
    outcomes = [results.get() for _ in processes]
    elapsed = time.perf_counter() - started
    for process in processes:
        process.join()

    placed = sum(o[0] for o in outcomes)
    refused = sum(o[1] for o in outcomes)
    latencies = sorted(latency for o in outcomes for latency in o[2])
    over, drifted = audit()
    rate = (placed + refused) / elapsed
    print(f"claim={claim} hosts={args.hosts} desktops={args.desktops} workers={args.workers} strategy={args.strategy}")
    print(f"claim={claim} placed={placed} no_capacity={refused} wall_s={elapsed:.2f} cpus={os.cpu_count()}")
    print(
        f"claim={claim} latency_ms p50={statistics.median(latencies) * 1000:.2f} "
        f"p95={latencies[int(len(latencies) * 0.95)] * 1000:.2f} max={latencies[-1] * 1000:.2f}"
    )
    print(f"claim={claim} counters_drifted_hosts={drifted} over_ratio_hosts={over} placements_per_s={rate:.1f}")
    connections.close_all()
    return rate, over, drifted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=500)
    parser.add_argument("--desktops", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--strategy", choices=["spread", "pack"], default="spread")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument(
        "--claim", nargs="+", choices=["steps", "statement"], default=["steps", "statement"], help="claim paths to run"
    )
    args = parser.parse_args()
    os.environ["SCHEDULER_STRATEGY"] = args.strategy

    benchdb.create_database()
    try:
        from django.conf import settings
        from django.db import connections

        settings.SCHEDULER_STRATEGY = args.strategy
        # Simulated hosts get no heartbeats; a long run must not see them go stale midway.
        settings.HOST_DOWN_AFTER_S = 24 * 3600
        image_id = seed(args.hosts)
        with connections["default"].cursor() as cursor:
            # A live database has planner statistics (autovacuum); a bulk-loaded one needs them now.
            cursor.execute("ANALYZE")
        connections.close_all()

        rates, over, drifted = {}, 0, 0
        for index, claim in enumerate(args.claim):
            if index:
                reset()
            rates[claim], run_over, run_drifted = run(claim, args, image_id)
            over, drifted = over + run_over, drifted + run_drifted
        connections.close_all()
    finally:
        if not args.keep:
            benchdb.drop_database()
    figures = "".join(f" {claim}_placements_per_s={rate:.1f}" for claim, rate in rates.items() if claim != "statement")
    print(
        f"placements_per_s={rates.get('statement', 0.0):.1f}{figures} "
        f"over_ratio_hosts={over} counters_drifted_hosts={drifted}"
    )


if __name__ == "__main__":
    main()
