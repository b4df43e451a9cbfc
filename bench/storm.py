"""The 9 a.m. storm: many people claim warm desktops at once, over HTTP, against the production ASGI server.

Two runs on PostgreSQL and the test driver, each person with their own API token and their own connection:
- open loop: `--people` claims arriving as a Poisson process over `--seconds` (latency from the moment each
  was due, so a server that falls behind is charged for the wait);
- closed loop: as many claims again, as fast as `--clients` concurrent clients can send them.
Prints per run p50/p95/p99, errors (and how many came back as something other than JSON), claims/s and the
server's CPU per claim, then the statements one claim makes, and last
`storm_p95_ms=<open loop> errors=<both runs> claims_per_s=<closed loop> queries_per_claim=<n>`.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchdb

benchdb.configure("quetzal_bench_storm")

import claim as claim_bench  # noqa: E402  (after the database is configured)


@dataclass
class Run:
    name: str
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    not_json: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, elapsed_ms: float, ok: bool, json_body: bool) -> None:
        with self.lock:
            self.latencies_ms.append(elapsed_ms)
            self.errors += not ok
            self.not_json += not json_body

    def line(self) -> str:
        done = len(self.latencies_ms)
        p = {q: benchdb.percentile(self.latencies_ms, q) for q in (0.50, 0.95, 0.99)}
        return (
            f"run={self.name} claims={done} errors={self.errors} not_json={self.not_json} "
            f"p50_ms={p[0.50]:.1f} p95_ms={p[0.95]:.1f} p99_ms={p[0.99]:.1f} "
            f"claims_per_s={done / self.wall_s:.1f} server_cpu_ms_per_claim={self.cpu_s * 1000 / done:.2f}"
        )


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its children (uvicorn workers), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # After the command: state, ppid, …; utime and stime are fields 14 and 15 of stat(5).
        if int(entry.name) == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def one_claim(port: int, token: str, template_id: int, due: float, run: Run) -> None:
    """One person's claim on a connection of their own; latency counted from `due`."""
    ok = json_body = False
    try:
        status, content_type, raw = claim_bench.post_launch(port, token, template_id, timeout=60)
        json_body = content_type.startswith("application/json")
        ok = status == 200 and bool(json.loads(raw).get("desktop", {}).get("console_url"))
        if not ok and os.environ.get("STORM_DEBUG"):
            print(status, raw[:300], file=sys.stderr)
    except (OSError, ValueError, http.client.HTTPException) as error:
        if os.environ.get("STORM_DEBUG"):
            print("failed:", repr(error), file=sys.stderr)
    run.record((time.perf_counter() - due) * 1000, ok, json_body)


def open_loop(port: int, server_pid: int, tokens: list[str], template_id: int, seconds: float, seed: int) -> Run:
    """Claims arriving at Poisson times over `seconds`, each sent when due (enough threads never to hold one)."""
    rng = random.Random(seed)
    rate = len(tokens) / seconds
    run = Run("open_loop")
    start = time.perf_counter() + 0.5
    due, dues = start, []
    for _ in tokens:
        due += rng.expovariate(rate)
        dues.append(due)

    def at(token: str, when: float) -> None:
        time.sleep(max(0.0, when - time.perf_counter()))
        one_claim(port, token, template_id, when, run)

    cpu = process_cpu_s(server_pid)
    with ThreadPoolExecutor(max_workers=min(len(tokens), 256)) as pool:
        for token, when in zip(tokens, dues, strict=True):
            pool.submit(at, token, when)
    run.wall_s = time.perf_counter() - start
    run.cpu_s = process_cpu_s(server_pid) - cpu
    return run


def closed_loop(port: int, server_pid: int, tokens: list[str], template_id: int, clients: int) -> Run:
    """The same number of claims, as fast as `clients` concurrent clients can send them."""
    run = Run("closed_loop")
    cpu = process_cpu_s(server_pid)
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        for token in tokens:
            pool.submit(lambda t=token: one_claim(port, t, template_id, time.perf_counter(), run))
    run.wall_s = time.perf_counter() - start
    run.cpu_s = process_cpu_s(server_pid) - cpu
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=500, help="claims in each run")
    parser.add_argument("--seconds", type=float, default=30.0, help="the open loop's arrival window")
    parser.add_argument("--clients", type=int, default=50, help="the closed loop's concurrent clients")
    parser.add_argument("--seed", type=int, default=9)
    args = parser.parse_args()
    benchdb.create_database()
    with tempfile.TemporaryDirectory() as tmp:
        node_xml = Path(tmp) / "node.xml"
        node_xml.write_text(claim_bench.NODE_XML)
        try:
            host, template = claim_bench.seed_host(node_xml)
            # Both runs' people, one warm desktop each, plus the one whose claim's statements are counted.
            tokens = claim_bench.seed(2 * args.people + 2, host, template, encrypted=False)
            statements, _control = claim_bench.queries_per_claim(tokens.pop(), template.pk)
            from django.db import connections

            connections.close_all()
            server, port = benchdb.serve()
            try:
                one_claim(port, tokens.pop(), template.pk, time.perf_counter(), Run("warm-up"))  # imports, not counted
                runs = [
                    open_loop(port, server.pid, tokens[: args.people], template.pk, args.seconds, args.seed),
                    closed_loop(port, server.pid, tokens[args.people : 2 * args.people], template.pk, args.clients),
                ]
            finally:
                server.terminate()
                server.wait(10)
                from quetzal.celery import app

                app.control.purge()  # the refills the claims queued; no worker runs here
        finally:
            benchdb.drop_database()
    for run in runs:
        print(run.line())
    print(f"one claim: statements={statements} (transaction control not counted)")
    storm_p95 = benchdb.percentile(runs[0].latencies_ms, 0.95)
    closed = runs[1]
    print(
        f"storm_p95_ms={storm_p95:.1f} errors={sum(r.errors for r in runs)} "
        f"claims_per_s={len(closed.latencies_ms) / closed.wall_s:.1f} queries_per_claim={statements}"
    )


if __name__ == "__main__":
    main()
