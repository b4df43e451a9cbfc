"""The first days of the autoscale replay through the real pool code: `pools.refill(now=…)`, `pools.claim`, the
plan and prediction rows, audit events as the claim history, and the libvirt test driver building every desktop.

The clock is simulated: refill runs each simulated minute with `now`, each claim's audit event is dated at its
simulated time, and a desktop's CREATE operation is carried out (`execution.run`, on the test driver) `lead`
simulated minutes after refill asked for it. Celery sends go to an in-memory broker nobody reads: the bench
runs each operation itself, when the simulated clock says it is done. A claimed desktop is deleted at once,
through the real delete (the person's session is not what is measured: a pooled desktop never returns to the pool).
"""

from __future__ import annotations

import os
import tempfile
import time as wall
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import benchdb

NODE_XML = """<?xml version="1.0"?>
<node>
  <cpu><mhz>2400</mhz><model>x86_64</model><active>512</active><nodes>1</nodes>
    <sockets>1</sockets><cores>512</cores><threads>1</threads></cpu>
  <memory>1073741824</memory>
  <pool type="dir"><name>default</name><uuid>0c0e6a7e-2b2a-4a0e-8d1a-bd0bd0c0f19e</uuid>
    <capacity unit="GiB">90000</capacity><allocation unit="GiB">0</allocation><available unit="GiB">90000</available>
    <target><path>/var/lib/libvirt/images</path></target></pool>
</node>"""


@dataclass
class RealResult:
    days: int
    claims: int
    hits: int
    idle_hours: float
    seconds: float
    failed_operations: int

    @property
    def hit_rate(self) -> float:
        return self.hits / self.claims if self.claims else 1.0


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC)


def _setup():
    benchdb.configure("quetzal_bench_autoscale")
    benchdb.create_database()
    from django.conf import settings

    # The profile cache must not outlive the throw-away database (pool ids repeat from run to run).
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    from quetzal.celery import app

    app.conf.task_always_eager = False
    app.conf.broker_url = "memory://"


def run(*, history, claims, start, days: int, lead: int, plan_values: dict, holidays, people: int) -> RealResult:
    """Replay `days` days of `claims` (naive UTC times) after seeding `history`, through the real pool code."""
    _setup()
    from django.db.models import Q
    from django.utils import timezone

    from desktops.choices import DesktopKind, DesktopState, OperationKind, OperationStatus
    from desktops.models import Desktop, DesktopTemplate, Operation, Pool
    from desktops.services import autoscale, execution, pools
    from desktops.services.requests import request_action
    from hosts.choices import CopyState, HostState
    from hosts.models import Host, Image, ImageCopy
    from tenants import events
    from tenants.choices import Role
    from tenants.events import AuditAction
    from tenants.models import AuditEvent, Membership, Tenant, User

    began = wall.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        node = Path(tmp) / "node.xml"
        node.write_text(NODE_XML)
        try:
            host = Host.objects.create(
                name="bench-host",
                uri=f"test://{node}",
                cpus=512,
                memory_mib=1024 * 1024,
                state=HostState.UP,
                last_heartbeat_at=timezone.now(),
                virt_types=["qemu"],
                detected_virt_type="qemu",
            )
            image = Image.objects.create(name="bench", source_path="/dev/null", sha256="0" * 64)
            ImageCopy.objects.create(image=image, host=host, state=CopyState.READY, pool="default", volume_path="/x")
            template = DesktopTemplate.objects.create(name="Bench Linux", image=image, vcpus=1, memory_mib=512)
            tenant = Tenant.objects.create(name="office", slug="office", max_running_per_user=0, home_disk_gib=1)
            users = []
            for n in range(people):
                user = User.objects.create_user(email=f"person{n}@office.test", password=None)
                Membership.objects.create(user=user, tenant=tenant, role=Role.MEMBER)
                users.append(user)
            pool = Pool.objects.create(tenant=tenant, template=template, name="office", min_ready=0, max_size=80)
            admin = users[0]
            autoscale.save_plan(pool=pool, actor=admin, values=plan_values)
            for day in holidays:
                autoscale.add_exception(
                    pool=pool, actor=admin, values={"kind": "closure", "first_day": day, "minimum": 0}
                )
            # The pool's history starts before the first seeded claim.
            seed = Desktop.objects.create(
                tenant=tenant, template=template, pool=pool, kind=DesktopKind.POOLED, name="seed",
                vcpus=1, memory_mib=512, disk_gib=template.disk_gib, state=DesktopState.DELETED,
            )  # fmt: skip
            Desktop.objects.filter(pk=seed.pk).update(created_at=_aware(history[0]) - timedelta(days=1))
            for i, moment in enumerate(history):
                event = events.desktop_claimed(actor=users[i % people], tenant=tenant, desktop=seed, pool=pool)
                AuditEvent.objects.filter(pk=event.pk).update(created_at=_aware(moment))

            due: dict[int, datetime] = {}  # operation id -> when the simulated clock has it done
            hits = served = 0
            idle_minutes = 0
            index = 0
            moment = datetime.combine(start, time(0))
            end = moment + timedelta(days=days)
            replayed = [c for c in claims if c < end]

            def schedule(now: datetime) -> None:
                queued = Operation.objects.filter(desktop__pool=pool, status=OperationStatus.QUEUED).exclude(
                    pk__in=list(due)
                )
                for op_id, kind in queued.values_list("pk", "kind"):
                    # A release (delete) is done at once; a new desktop takes the lead time.
                    due[op_id] = now + timedelta(minutes=lead if kind == OperationKind.CREATE else 0)

            def carry_out(now: datetime) -> None:
                for op_id in sorted(op for op, at in due.items() if at <= now):
                    execution.run(op_id, worker="bench")
                    del due[op_id]

            while moment < end:
                # Placement wants a host heard from within 40 s of wall time; a loaded machine can take longer
                # than that for a simulated hour, so the bench's host beats every simulated minute.
                Host.objects.filter(pk=host.pk).update(last_heartbeat_at=timezone.now())
                carry_out(moment)
                following = moment + timedelta(minutes=1)
                while index < len(replayed) and replayed[index] < following:
                    at = _aware(replayed[index])
                    user = users[index % people]
                    served += 1
                    claimed = pools.claim(tenant=tenant, user=user, template=template)
                    if claimed is not None:
                        hits += 1
                        desktop = claimed[0]
                        AuditEvent.objects.filter(action=AuditAction.DESKTOP_CLAIM, target_id=str(desktop.pk)).update(
                            created_at=at
                        )
                        # The person is done at once: the desktop is recycled the way a stop recycles it (its
                        # domain, disk and address go back), so the next days find the host as a real day leaves it.
                        Operation.objects.filter(desktop=desktop, status=OperationStatus.QUEUED).delete()
                        request_action(
                            desktop=desktop, kind=OperationKind.DELETE, actor=None, params={"reason": "Session over"}
                        )
                    else:
                        # A cold launch of the template: the demand the pool missed, as the prediction reads it.
                        cold = Desktop.objects.create(
                            tenant=tenant, user=user, template=template, kind=DesktopKind.PERSONAL, name="cold",
                            vcpus=1, memory_mib=512, disk_gib=template.disk_gib, state=DesktopState.DELETED,
                        )  # fmt: skip
                        Desktop.objects.filter(pk=cold.pk).update(created_at=at)
                    pools.refill(pool, now=at)  # the claim's own refill
                    schedule(replayed[index])
                    index += 1
                pools.refill(pool, now=_aware(moment))  # the beat's
                schedule(moment)
                carry_out(moment)  # releases
                idle_minutes += Desktop.objects.filter(
                    Q(pool=pool, user__isnull=True, state=DesktopState.RUNNING)
                ).count()
                moment = following
            failed = Operation.objects.filter(status=OperationStatus.FAILED).count()
            return RealResult(days, served, hits, idle_minutes / 60, wall.monotonic() - began, failed)
        finally:
            if not os.environ.get("BENCH_KEEP_DATABASE"):
                benchdb.drop_database()
