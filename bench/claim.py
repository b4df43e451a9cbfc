"""Claim 200 warm desktops through the API, over HTTP, from a pool on PostgreSQL and the test driver.

Each claim is `POST /api/desktop/start` by a different person (API token) against the production ASGI server, until the
answer says the console is ready to open. Prints the figures and, last,
`claim_p50_ms=<float> claim_p95_ms=<float> claims=<int>` for plain disks, then the same for a
second tenant whose warm desktops have encrypted disks (a key row each), claims alternating.
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


def seed_host(node_xml: Path):
    """The test-driver host and a template whose image is ready on it."""
    from django.utils import timezone

    from desktops.models import DesktopTemplate
    from hosts.choices import CopyState, HostState
    from hosts.models import Host, Image, ImageCopy

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
    return host, template


def seed(claims: int, host, template, *, encrypted: bool) -> list[str]:
    """A tenant with `claims` people (each with an API token) and a pool of as many warm desktops.

    Encrypted: each warm desktop has its own disk key row, as a refill on a LUKS-capable host leaves it.
    """
    from django.utils import timezone

    from desktops.choices import DesktopKind, DesktopState
    from desktops.models import DataKey, Desktop, Pool
    from desktops.services import disk_keys
    from tenants.choices import Role
    from tenants.models import Membership, Tenant, User
    from tenants.services.tokens import create_token

    slug = "bench-encrypted" if encrypted else "bench"
    tenant = Tenant.objects.create(name=slug, slug=slug, max_running_per_user=0)
    pool = Pool.objects.create(tenant=tenant, template=template, name="warm", min_ready=claims, max_size=claims * 2)
    # Warm desktops as the refill would leave them (the refill itself is measured by the lifecycle tests).
    desktops = Desktop.objects.bulk_create(
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
            disk_encrypted=encrypted,
        )
        for _ in range(claims)
    )
    if encrypted:
        rows = [disk_keys.new_key_row(purpose="disk", desktop=d, tenant=tenant)[0] for d in desktops]
        DataKey.objects.bulk_create(rows)
    tokens = []
    for n in range(claims):
        user = User.objects.create_user(email=f"{slug}{n}@example.test", password=None)
        membership = Membership.objects.create(user=user, tenant=tenant, role=Role.MEMBER)
        tokens.append(create_token(membership=membership, name="bench")[1])
    return tokens


def post_launch(port: int, token: str, template_id: int, *, timeout: float = 30) -> tuple[int, str, bytes]:
    """One launch over a fresh keep-alive-less HTTP connection, as a browser's first request would be:
    (status, Content-Type, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(
            "POST",
            "/api/desktop/start",
            body=json.dumps({"template": template_id}),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        conn.close()


def claim(port: int, token: str, template_id: int) -> tuple[float, dict]:
    """post_launch(), timed, with its JSON answer and status."""
    started = time.perf_counter()
    status, _content_type, raw = post_launch(port, token, template_id)
    return (time.perf_counter() - started) * 1000, json.loads(raw) | {"status": status}


TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")


def queries_per_claim(token: str, template_id: int) -> tuple[int, int]:
    """(SQL statements, of which transaction control) of one claim, in-process through the same view."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from tenants.models import ApiToken
    from tenants.services.tokens import hash_token

    # A token used within the minute is not written again: count the steady state, as in a storm.
    ApiToken.objects.filter(token_hash=hash_token(token)).update(last_used_at=timezone.now())
    with CaptureQueriesContext(connection) as captured:
        response = Client().post(
            "/api/desktop/start",
            data=json.dumps({"template": template_id}),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {token}",
            HTTP_HOST="127.0.0.1",
        )
    assert response.status_code == 200, response.content
    control = sum(1 for q in captured.captured_queries if q["sql"].split()[0].upper() in TRANSACTION_CONTROL)
    return len(captured.captured_queries) - control, control


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--claims", type=int, default=200, help="claims of each kind (plain and encrypted)")
    args = parser.parse_args()
    benchdb.create_database()
    timings: dict[bool, list[float]] = {False: [], True: []}
    ready = {False: 0, True: 0}
    with tempfile.TemporaryDirectory() as tmp:
        node_xml = Path(tmp) / "node.xml"
        node_xml.write_text(NODE_XML)
        try:
            host, template = seed_host(node_xml)
            # One more plain person than claimed over HTTP: the one whose claim's queries are counted.
            tokens = {
                kind: seed(args.claims + 1 + (not kind), host, template, encrypted=kind) for kind in (False, True)
            }
            template_id = template.pk
            claim_queries = queries_per_claim(tokens[False].pop(), template_id)
            from django.db import connections

            connections.close_all()
            server, port = benchdb.serve()
            try:
                for kind in (False, True):
                    claim(port, tokens[kind][0], template_id)  # warm the server's imports; not counted
                # Alternate plain and encrypted claims, so both meet the same load.
                for plain_token, encrypted_token in zip(tokens[False][1:], tokens[True][1:], strict=True):
                    for kind, token in ((False, plain_token), (True, encrypted_token)):
                        elapsed, body = claim(port, token, template_id)
                        timings[kind].append(elapsed)
                        ready[kind] += bool(body.get("desktop") and body["desktop"].get("console_url"))
            finally:
                server.terminate()
                server.wait(10)
                from quetzal.celery import app

                app.control.purge()  # the refills the claims queued; no worker runs here
        finally:
            benchdb.drop_database()
    for kind, label in ((False, "plain"), (True, "encrypted")):
        print(f"disk={label} claims={len(timings[kind])} ready_to_open={ready[kind]} max_ms={max(timings[kind]):.1f}")
    print(f"one claim: statements={claim_queries[0]} transaction_control={claim_queries[1]}")
    p50, p95 = benchdb.percentile(timings[False], 0.50), benchdb.percentile(timings[False], 0.95)
    e50, e95 = benchdb.percentile(timings[True], 0.50), benchdb.percentile(timings[True], 0.95)
    print(
        f"claim_p50_ms={p50:.1f} claim_p95_ms={p95:.1f} claims={len(timings[False])} "
        f"claim_encrypted_p50_ms={e50:.1f} claim_encrypted_p95_ms={e95:.1f} claims_encrypted={len(timings[True])} "
        f"queries_per_claim={claim_queries[0]}"
    )


if __name__ == "__main__":
    main()
