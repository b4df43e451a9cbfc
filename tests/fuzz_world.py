"""What the API fuzz runs against: a tenant with something behind every route, and its owner's real token."""

from __future__ import annotations

import hashlib
from decimal import Decimal

from django.utils import timezone

from desktops.console.models import ConsoleSession, Recording
from desktops.models import Desktop, DesktopTemplate, Operation, Pool
from hosts.models import Image
from tenants.choices import Role
from tenants.models import ApiToken, AuditEvent, Membership
from tenants.services import tokens
from tests.fixtures import make_world

# The fuzzer writes random ids into DELETE and PATCH routes. Its own token and membership sit far from the
# small ids it tries first, so it does not revoke its own access or demote itself halfway through the run.
FUZZER_TOKEN_ID = 7_340_033
FUZZER_MEMBERSHIP_ID = 7_340_034


def populate() -> str:
    """Rows for every kind of object the API shows; returns the raw API token of the tenant's owner."""
    world = make_world("fuzz")
    image = Image.objects.create(name="fuzz", source_path="/dev/null", sha256=hashlib.sha256(b"").hexdigest())
    template = DesktopTemplate.objects.create(
        name="Fuzz Linux", image=image, vcpus=1, memory_mib=512, disk_gib=1, price_per_hour=Decimal("0.01")
    )
    private = DesktopTemplate.objects.create(
        name="Fuzz private", image=image, visibility="tenant", tenant=world.tenant, vcpus=1, memory_mib=512
    )
    now = timezone.now()
    for user, state in ((world.owner, "running"), (world.owner, "stopped"), (world.member, "running")):
        desktop = Desktop.objects.create(
            tenant=world.tenant,
            user=user,
            template=template,
            name=f"{state} desktop",
            vcpus=1,
            memory_mib=512,
            state=state,
            running_since=now if state == "running" else None,
        )
        Operation.objects.create(tenant=world.tenant, desktop=desktop, kind="create", status="succeeded")
        session = ConsoleSession.objects.create(tenant=world.tenant, desktop=desktop, user=user)
        Recording.objects.create(
            tenant=world.tenant, desktop=desktop, user=user, session=session, path=f"fuzz-{desktop.pk}.qzrec"
        )
    Pool.objects.create(tenant=world.tenant, template=private, name="Fuzz pool", min_ready=0, max_size=2)
    AuditEvent.objects.create(tenant=world.tenant, actor=world.owner, action="member.role")
    membership = Membership.objects.get(user=world.owner, tenant=world.tenant)
    Membership.objects.filter(pk=membership.pk).update(id=FUZZER_MEMBERSHIP_ID)
    assert membership.role == Role.OWNER
    token, raw = tokens.create_token(membership=Membership.objects.get(pk=FUZZER_MEMBERSHIP_ID), name="fuzz")
    ApiToken.objects.filter(pk=token.pk).update(id=FUZZER_TOKEN_ID)
    tokens.create_token(membership=world.membership(world.member), name="someone else's")
    return raw
