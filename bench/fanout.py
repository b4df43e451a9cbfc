"""Live fan-out: 1,000 WebSocket subscribers on one ASGI server process, 200 desktops' metrics every second.

The real path end to end: a publisher process runs the metrics collection service (one
getAllDomainStats per libvirt test-driver host, samples written to PostgreSQL, pushes through the
Redis channel layer) once a second for every host; the server serves /ws/live/ to 1,000 sockets opened
with session cookies made directly in the database (owners on their desktops, tenant admins on their
tenant and a desktop, operators on hosts), read by one asyncio process (aiohttp). Lag is the time
from the sample's timestamp (taken when libvirt answered) to its arrival in the client, so it
includes the database write and the push. Lost = messages published to a socket's topics that
never reached it. Prints the figures and, last,
`fanout_p50_ms=<float> fanout_p99_ms=<float> lost=<int> subscribers=<int>`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchdb

benchdb.configure("quetzal_bench_fanout")


# Redis database 7 is the benchmark's own and is emptied before and after; a REDIS_URL given by the caller is not.
OWN_REDIS = "REDIS_URL" not in os.environ
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/7")

TENANTS = 10
HOSTS = 4
DESKTOPS = 200
OWNER_TABS = 3  # sockets per desktop owner
ADMIN_SOCKETS_PER_TENANT = 30
OPERATOR_SOCKETS = 100
NODE_XML = """<?xml version="1.0"?>
<node>
  <cpu><mhz>2400</mhz><model>x86_64</model><active>64</active><nodes>1</nodes>
    <sockets>1</sockets><cores>64</cores><threads>1</threads></cpu>
  <memory>268435456</memory>
  <pool type="dir"><name>default</name><uuid>{uuid}</uuid>
    <capacity unit="GiB">9000</capacity><allocation unit="GiB">0</allocation><available unit="GiB">9000</available>
    <target><path>/var/lib/libvirt/images</path></target></pool>
</node>"""


def seed(tmp: Path) -> dict:
    """Tenants, people, hosts, 200 running desktops, and one database session per planned socket."""
    import uuid

    from django.contrib.sessions.backends.db import SessionStore
    from django.utils import timezone

    from desktops.models import Desktop, DesktopTemplate
    from hosts.choices import HostState
    from hosts.models import Host, Image
    from tenants.choices import Role
    from tenants.models import Membership, Tenant, User
    from tenants.resolution import SESSION_KEY

    def session(user, tenant=None) -> str:
        store = SessionStore()
        store["_auth_user_id"] = str(user.pk)
        store["_auth_user_backend"] = "tenants.sso.backends.PasswordBackend"
        store["_auth_user_hash"] = user.get_session_auth_hash()
        if tenant is not None:
            store[SESSION_KEY] = tenant.pk
        store.create()
        return store.session_key

    hosts = []
    for n in range(HOSTS):
        node = tmp / f"node-{n}.xml"
        node.write_text(NODE_XML.format(uuid=uuid.uuid4()))
        hosts.append(
            Host.objects.create(
                name=f"bench-host-{n}", uri=f"test://{node}", cpus=64, memory_mib=256 * 1024, state=HostState.UP,
                last_heartbeat_at=timezone.now(), virt_types=["qemu"], detected_virt_type="qemu",
            )
        )  # fmt: skip
    image = Image.objects.create(name="bench", source_path="/dev/null", sha256="0" * 64)
    template = DesktopTemplate.objects.create(name="Bench Linux", image=image, vcpus=2, memory_mib=2048)
    plan: list[dict] = []  # one entry per socket: session key and topics
    desktop_host: dict[int, int] = {}
    tenant_hosts: dict[str, set[int]] = defaultdict(set)
    per_tenant = DESKTOPS // TENANTS
    for t in range(TENANTS):
        tenant = Tenant.objects.create(name=f"Bench {t}", slug=f"bench-{t}", max_running_per_user=0)
        desks = []
        for d in range(per_tenant):
            owner = User.objects.create_user(email=f"owner{d}@bench-{t}.test", password=None)
            Membership.objects.create(user=owner, tenant=tenant, role=Role.MEMBER)
            host = hosts[(t * per_tenant + d) % HOSTS]
            desk = Desktop.objects.create(
                tenant=tenant, user=owner, template=template, name=f"desk {t}-{d}", vcpus=2, memory_mib=2048,
                host=host, state="running", running_since=timezone.now(),
            )  # fmt: skip
            desks.append(desk)
            desktop_host[desk.pk] = host.pk
            tenant_hosts[f"tenant:{tenant.pk}"].add(host.pk)
            for _ in range(OWNER_TABS):
                plan.append({"session": session(owner, tenant), "topics": [f"desktop:{desk.pk}"], "tenant": tenant.pk})
        admins = []
        for a in range(3):
            admin = User.objects.create_user(email=f"admin{a}@bench-{t}.test", password=None)
            Membership.objects.create(user=admin, tenant=tenant, role=Role.ADMIN)
            admins.append(admin)
        for s in range(ADMIN_SOCKETS_PER_TENANT):
            desk = desks[s % len(desks)]
            plan.append(
                {
                    "session": session(admins[s % len(admins)], tenant),
                    "topics": ["tenant", f"desktop:{desk.pk}"],
                    "tenant": tenant.pk,
                }
            )
    for s in range(OPERATOR_SOCKETS):
        staff = User.objects.create_user(email=f"operator{s % 5}-{s}@bench.test", password=None, is_staff=True)
        plan.append({"session": session(staff), "topics": ["operators"], "tenant": None})
    return {
        "plan": plan,
        "desktop_host": desktop_host,
        "tenant_hosts": {k: sorted(v) for k, v in tenant_hosts.items()},
        "hosts": [h.pk for h in hosts],
    }


def publisher(seconds: int) -> None:
    """Child process: start every desktop's domain in this process's test drivers, then collect each second."""
    import django

    django.setup()
    from desktops.metrics import collection, live
    from desktops.models import Desktop
    from desktops.services import spec
    from hosts.hypervisor import get_hypervisor
    from hosts.models import Host

    for desk in Desktop.objects.select_related("host", "tenant", "template__image"):
        hv = get_hypervisor(desk.host.uri)
        hv.define(spec.domain_spec(desk, disk_path="/dev/null", seed_path=None, image_copy=None, host=desk.host))
        hv.start(desk.domain_name)
    host_ids = list(Host.objects.values_list("pk", flat=True))
    print(json.dumps({"ready": True}), flush=True)
    sys.stdin.readline()  # the client's go: every socket is subscribed
    cpu_at_go = time.process_time()
    collections: Counter[int] = Counter()
    push_ms: list[float] = []
    published_at: dict[float, float] = {}  # sample time -> when its pushes started
    publish_ms: list[float] = []
    publish = live.publish

    def timed_publish(pushes):
        started = time.time()
        published_at[json.loads(pushes[0].text)["at"]] = started
        try:
            return publish(pushes)
        finally:
            publish_ms.append((time.time() - started) * 1000)

    live.publish = timed_publish
    start = time.time()
    for tick in range(seconds):
        for host_id in host_ids:
            result = collection.collect_host(host_id=host_id)
            if result is not None and not result.skipped:
                collections[host_id] += 1
                push_ms.append((time.time() - result.at.timestamp()) * 1000)
        time.sleep(max(0.0, start + tick + 1 - time.time()))
    print(
        json.dumps(
            {
                "collections": collections,
                "push_ms": push_ms,
                "published_at": published_at,
                "publish_ms": publish_ms,
                "cpu_s": time.process_time() - cpu_at_go,
            }
        ),
        flush=True,
    )


async def client(port: int, world: dict, seconds: int, publisher_proc: subprocess.Popen) -> dict:
    """Open every socket, subscribe, let the publisher run, and measure what arrives."""
    import aiohttp

    plan = world["plan"]
    arrivals: list[tuple[int, str, float, float]] = []  # (socket, topic, received, sample time)
    ready = [asyncio.Event() for _ in plan]
    refused: Counter[str] = Counter()
    origin = f"http://127.0.0.1:{port}"
    url = f"ws://127.0.0.1:{port}/ws/live/"
    gate = asyncio.Semaphore(50)
    stop = asyncio.Event()

    async def run(index: int, entry: dict, session: aiohttp.ClientSession) -> None:
        async with gate:
            ws = await session.ws_connect(
                url, headers={"Origin": origin, "Cookie": f"sessionid={entry['session']}"}, heartbeat=None
            )
            for topic in entry["topics"]:
                await ws.send_str(json.dumps({"subscribe": topic}))
        pending = set(entry["topics"])
        async for frame in ws:
            if frame.type != aiohttp.WSMsgType.TEXT:
                break
            now = time.time()
            message = json.loads(frame.data)
            kind = message["type"]
            if kind in ("metrics", "host"):
                arrivals.append((index, message["topic"], now, message["at"]))
            elif kind == "subscribed":
                pending.discard(message["topic"])
                if not pending:
                    ready[index].set()
            elif kind == "error":
                refused[message["code"]] += 1
                ready[index].set()
            if stop.is_set():
                break
        await ws.close()

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.monotonic()
        tasks = [asyncio.create_task(run(i, entry, session)) for i, entry in enumerate(plan)]
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in ready)), 180)
        connect_s = time.monotonic() - started
        client_cpu = time.process_time()
        publisher_proc.stdin.write("go\n")
        publisher_proc.stdin.flush()
        summary_line = await asyncio.to_thread(publisher_proc.stdout.readline)
        await asyncio.sleep(3)  # let the last pushes drain
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "client_cpu_s": time.process_time() - client_cpu,
        "arrivals": arrivals,
        "refused": refused,
        "connect_s": connect_s,
        "publisher": json.loads(summary_line),
    }


def count_lost(world: dict, result: dict) -> tuple[Counter, int]:
    """(lost by topic kind, expected): messages published to each socket's topics that it never got."""
    collections = {int(k): v for k, v in result["publisher"]["collections"].items()}
    all_hosts = sum(collections.values())
    lost: Counter[str] = Counter()
    expected_total = 0
    for entry, counts in zip(world["plan"], result["received"], strict=True):
        for topic in entry["topics"]:
            if topic == "operators":
                expected = all_hosts
            elif topic == "tenant":
                expected = sum(collections.get(h, 0) for h in world["tenant_hosts"][f"tenant:{entry['tenant']}"])
            else:
                expected = collections.get(world["desktop_host"][int(topic.split(":")[1])], 0)
            expected_total += expected
            lost[topic.split(":")[0]] += max(0, expected - counts[topic])
    return lost, expected_total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--publisher", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.publisher:
        publisher(args.seconds)
        return
    _raise_open_files_limit()
    _flush_own_redis()
    benchdb.create_database()
    with tempfile.TemporaryDirectory() as tmp:
        try:
            world = seed(Path(tmp))
            from django.db import connections

            connections.close_all()
            server, port = benchdb.serve()
            publisher_proc = subprocess.Popen(
                [sys.executable, __file__, "--publisher", "--seconds", str(args.seconds)],
                cwd=benchdb.ROOT,
                env=dict(os.environ),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            try:
                assert json.loads(publisher_proc.stdout.readline()).get("ready")
                cpu_before = _cpu_s(server.pid)
                result = asyncio.run(client(port, world, args.seconds, publisher_proc))
                server_cpu = _cpu_s(server.pid) - cpu_before
            finally:
                publisher_proc.kill()
                server.terminate()
                server.wait(10)
        finally:
            benchdb.drop_database()
            _flush_own_redis()
    report(world, result, args.seconds, server_cpu)


def _flush_own_redis() -> None:
    if OWN_REDIS:
        import redis

        redis.Redis.from_url(os.environ["REDIS_URL"]).flushdb()


def _raise_open_files_limit() -> None:
    """A thousand sockets on each side need more descriptors than the usual soft limit of 1024."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 8192 if hard == resource.RLIM_INFINITY else min(hard, 8192)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def report(world: dict, result: dict, seconds: int, server_cpu: float) -> None:
    # Fan-out lag: from the moment the collection started pushing to the socket's receipt.
    published_at = {float(k): v for k, v in result["publisher"]["published_at"].items()}
    # Only this run's collections count: pub/sub channels are server-wide, and a stray event
    # (another installation on the same Redis) must neither hide a loss nor skew the figures.
    ours = [a for a in result["arrivals"] if a[3] in published_at]
    result["received"] = [Counter() for _ in world["plan"]]
    for index, topic, _, _ in ours:
        result["received"][index][topic] += 1
    lags = [(received - published_at[at]) * 1000 for _, _, received, at in ours]
    # End to end: from the sample's time (libvirt answered) to receipt, so with the database write.
    sample_lags = [(received - at) * 1000 for _, _, received, at in ours]
    lost_by_kind, expected = count_lost(world, result)
    lost = sum(lost_by_kind.values())
    delivered = sum(sum(c.values()) for c in result["received"])
    push_ms = result["publisher"]["push_ms"]
    p50, p99 = benchdb.percentile(lags, 0.50), benchdb.percentile(lags, 0.99)
    print(f"subscribers={len(world['plan'])} connected_and_subscribed_in_s={result['connect_s']:.1f}")
    print(f"refused={dict(result['refused'])} collections={sum(result['publisher']['collections'].values())}")
    print(f"expected={expected} delivered={delivered} per_second={delivered / max(seconds, 1):.0f}")
    print(f"lost_by_topic={dict(lost_by_kind)} foreign_messages_ignored={len(result['arrivals']) - len(ours)}")
    print(f"fanout_lag_ms p50={p50:.1f} p90={benchdb.percentile(lags, 0.9):.1f} p99={p99:.1f} max={max(lags):.1f}")
    print(
        f"sample_to_browser_ms p50={benchdb.percentile(sample_lags, 0.5):.1f} "
        f"p99={benchdb.percentile(sample_lags, 0.99):.1f} (includes the collection's database write)"
    )
    publish_ms = result["publisher"]["publish_ms"]
    print(
        f"publish_call_ms p50={benchdb.percentile(publish_ms, 0.5):.1f} p99={benchdb.percentile(publish_ms, 0.99):.1f} "
        f"({len(publish_ms)} calls of ~{DESKTOPS // HOSTS + TENANTS + 1} pushes)"
    )
    print(
        f"collect_to_pushed_ms p50={benchdb.percentile(push_ms, 0.5):.1f} p99={benchdb.percentile(push_ms, 0.99):.1f}"
    )
    print(
        f"cpu_s server={server_cpu:.1f} publisher={result['publisher']['cpu_s']:.1f} "
        f"client={result['client_cpu_s']:.1f} (run: {seconds}s + 3s drain)"
    )
    print(f"fanout_p50_ms={p50:.1f} fanout_p99_ms={p99:.1f} lost={lost} subscribers={len(world['plan'])}")


if __name__ == "__main__":
    main()
