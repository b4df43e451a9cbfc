"""Claim 200 warm desktops through the API, over HTTP, from a pool on PostgreSQL and the test driver.

Each claim is `POST /api/desktop/start` by a different person (API token) against the production ASGI server, until the
answer says the console is ready to open. Prints the figures and, last,
`claim_p50_ms=<float> claim_p95_ms=<float> claims=<int>`.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchdb

benchdb.configure("quetzal_bench_claim")


NODE_XML = """<?xml version="1.0"?>
<node>
  <cpu><mhz>2400</mhz><model>x86_64</model><active>512</active><nodes>1</nodes>
    <sockets>1</sockets><cores>512</cores><threads>1</threads></cpu>
  <memory>1073741824</memory>
  <pool type="dir"><name>default</name><uuid>0c0e6a7e-2b2a-4a0e-8d1a-bd0bd0c0ffee</uuid>
    <capacity unit="GiB">9000</capacity><allocation unit="GiB">0</allocation><available unit="GiB">9000</available>
    <target><path>/var/lib/libvirt/images</path></target></pool>
</node>"""


def seed(claims: int, node_xml: Path) -> list[str]:
    """A tenant with `claims` people (each with an API token) and a pool of as many warm desktops."""
    from django.utils import timezone

    from desktops.choices import DesktopKind, DesktopState
    from desktops.models import Desktop, DesktopTemplate, Pool
    from hosts.choices import CopyState, HostState
    from hosts.models import Host, Image, ImageCopy
    from tenants.choices import Role
    from tenants.models import Membership, Tenant, User
    from tenants.services.tokens import create_token

    tenant = Tenant.objects.create(name="Bench", slug="bench", max_running_per_user=0)
    host = Host.objects.create(
        name="bench-host",
        uri=f"test://{node_xml}",
        cpus=512,
        memory_mib=1024 * 1024,
        state=HostState.UP,
        last_heartbeat_at=timezone.now(),
        virt_types=["qemu"],
        detected_virt_type="qemu",
    )
    image = Image.objects.create(name="bench", source_path="/dev/null", sha256="0" * 64)
    ImageCopy.objects.create(image=image, host=host, state=CopyState.READY, pool="default", volume_path="/x")
    template = DesktopTemplate.objects.create(name="Bench Linux", image=image, vcpus=1, memory_mib=1024)
    pool = Pool.objects.create(tenant=tenant, template=template, name="warm", min_ready=claims, max_size=claims * 2)
    # Warm desktops as the refill would leave them (the refill itself is measured by the lifecycle tests).
    Desktop.objects.bulk_create(
        Desktop(
            tenant=tenant,
            template=template,
            pool=pool,
            kind=DesktopKind.POOLED,
            name="Bench Linux",
            vcpus=1,
            memory_mib=1024,
            state=DesktopState.RUNNING,
            host=host,
            running_since=timezone.now(),
        )
        for _ in range(claims)
    )
    tokens = []
    for n in range(claims):
        user = User.objects.create_user(email=f"bench{n}@example.test", password=None)
        membership = Membership.objects.create(user=user, tenant=tenant, role=Role.MEMBER)
        tokens.append(create_token(membership=membership, name="bench")[1])
    return tokens, template.pk


def claim(port: int, token: str, template_id: int) -> tuple[float, dict]:
    """One launch over a fresh keep-alive-less HTTP connection, as a browser's first request would be."""
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request(
        "POST",
        "/api/desktop/start",
        body=json.dumps({"template": template_id}),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    response = conn.getresponse()
    body = json.loads(response.read())
    conn.close()
    return (time.perf_counter() - started) * 1000, body | {"status": response.status}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--claims", type=int, default=200)
    args = parser.parse_args()
    benchdb.create_database()
    with tempfile.TemporaryDirectory() as tmp:
        node_xml = Path(tmp) / "node.xml"
        node_xml.write_text(NODE_XML)
        try:
            tokens, template_id = seed(args.claims + 1, node_xml)
            from django.db import connections

            connections.close_all()
            server, port = benchdb.serve()
            try:
                claim(port, tokens[0], template_id)  # warm the server's imports; not counted
                timings, ready = [], 0
                for token in tokens[1:]:
                    elapsed, body = claim(port, token, template_id)
                    timings.append(elapsed)
                    ready += bool(body.get("desktop") and body["desktop"].get("console_url"))
            finally:
                server.terminate()
                server.wait(10)
                from quetzal.celery import app

                app.control.purge()  # the refills the claims queued; no worker runs here
        finally:
            benchdb.drop_database()
    p50, p95 = benchdb.percentile(timings, 0.50), benchdb.percentile(timings, 0.95)
    print(f"claims={len(timings)} ready_to_open={ready} max_ms={max(timings):.1f}")
    print(f"claim_p50_ms={p50:.1f} claim_p95_ms={p95:.1f} claims={len(timings)}")


if __name__ == "__main__":
    main()
