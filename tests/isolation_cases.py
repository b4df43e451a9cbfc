"""One case per API route, for the tenant isolation matrix; a new route needs a new case here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from django.utils import timezone

from desktops.tests.factories import DesktopFactory, DesktopTemplateFactory, OperationFactory, PoolFactory
from tenants.choices import Role
from tenants.models import AuditEvent, Invitation, Membership
from tenants.services import tokens
from tests.factories import UserFactory


@dataclass(frozen=True)
class Case:
    """How to make tenant A's object for a route, and who in A may read it."""

    make: Callable | None = None  # (world) -> object of tenant A; None for routes without an object
    reader: str | None = "member"  # which of A's people may GET it (None: the route has no GET)
    methods: tuple[str, ...] = ("get",)  # methods tried by outsiders (must all be 404 / 401)
    body: dict | Callable = field(default_factory=dict)  # a dict, or (object) -> dict
    detail: bool = False  # the URL names the object (pk)
    kwargs: Callable | None = None  # (object) -> the URL's kwargs, for routes that name it otherwise than by pk
    query: Callable | None = None  # (object) -> query parameters naming it (e.g. the owner of a home folder)


def _membership(world):
    user = UserFactory(email=f"extra-{world.tenant.slug}@example.test")
    return Membership.objects.create(user=user, tenant=world.tenant, role=Role.MEMBER)


def _invitation(world):
    return Invitation.objects.create(
        tenant=world.tenant,
        email=f"invitee@{world.tenant.slug}.test",
        token_hash=f"h-{world.tenant.slug}",
        expires_at=timezone.now() + timedelta(days=1),
    )


def _token(world):
    token, _ = tokens.create_token(membership=world.membership(world.member), name="ci")
    return token


def _audit(world):
    return AuditEvent.objects.create(tenant=world.tenant, actor=world.owner, action="test.event")


def _template(world):
    return DesktopTemplateFactory(name=f"{world.tenant.slug} private", visibility="tenant", tenant=world.tenant)


def _desktop(world):
    return DesktopFactory(world=world, template=_template(world), name="isolated")


def _disposable(world):
    return DesktopFactory(
        world=world, template=_template(world), name="disposable", expires_at=timezone.now() + timedelta(hours=1)
    )


def _operation(world):
    return OperationFactory(desktop=_desktop(world), kind="reboot", status="succeeded")


def _pool(world):
    return PoolFactory(world=world, template=_template(world), name="isolated pool", min_ready=0)


def _scaling_exception(world):
    from desktops.models import ScalingException

    pool = _pool(world)
    return ScalingException.objects.create(
        tenant=world.tenant, pool=pool, kind="closure", first_day=timezone.localdate(), last_day=timezone.localdate()
    )


def _console_session(world):
    from desktops.console.models import ConsoleSession

    return ConsoleSession.objects.create(tenant=world.tenant, desktop=_desktop(world), user=world.member)


def _recording(world):
    from desktops.console.models import Recording

    session = _console_session(world)
    return Recording.objects.create(
        tenant=world.tenant, desktop=session.desktop, user=world.member, session=session, path="isolation.qzrec"
    )


def _billing_on() -> None:
    """The billing API answers only with billing on: switch it on for the current test.

    tests.fixtures' autouse `_fast_passwords` has already overridden settings for this test; ending
    that override at teardown puts back the settings from before it, so this one ends with it.
    """
    from django.conf import UserSettingsHolder, settings
    from django.test import override_settings

    assert isinstance(settings._wrapped, UserSettingsHolder), "needs a per-test settings override to unwind"
    override_settings(BILLING_ENABLED=True).enable()


def _usage_interval(world):
    from billing.models import UsageInterval

    _billing_on()
    desktop = _desktop(world)
    return UsageInterval.objects.create(
        tenant=world.tenant,
        desktop=desktop,
        desktop_name=desktop.name,
        user=world.member,
        person_email=world.member.email,
        template=desktop.template,
        template_name=desktop.template.name,
        price_per_hour="0.1000",
        currency="usd",
        started_at=timezone.now(),
    )


def _invoice(world):
    from billing.models import BillingAccount, Invoice

    _billing_on()
    account = BillingAccount.objects.create(
        tenant=world.tenant, currency="usd", stripe_customer_id=f"cus_{world.tenant.slug}"
    )
    return Invoice.objects.create(
        tenant=world.tenant, account=account, stripe_id=f"in_{world.tenant.slug}", status="open", currency="usd"
    )


def _rule(world):
    from desktops.models import FirewallRule

    return FirewallRule.objects.create(tenant=world.tenant, action="deny", cidr="192.0.2.0/24", position=10)


def _desktop_rule(world):
    from desktops.models import FirewallRule

    return FirewallRule.objects.create(tenant=world.tenant, desktop=_desktop(world), action="deny", cidr="192.0.2.0/24")


def _host(world):
    from hosts.models import Host

    return Host.objects.create(name=f"{world.tenant.slug}-host", uri=f"test:///{world.tenant.slug}-isolation")


def _home(world):
    from desktops.tests.factories import HomeDiskFactory

    return HomeDiskFactory(world=world)


def _home_upload(world):
    from desktops.models import HomeUpload

    home = _home(world)
    return HomeUpload.objects.create(tenant=world.tenant, home=home, user=world.member, path="isolated.bin", size=1)


def _owner(obj) -> dict:
    """Name A's member's home: outsiders asking for it get a 404 whatever the route does next."""
    home = getattr(obj, "home", obj)
    return {"owner": home.user_id, "path": "isolated.bin"}


def _files(methods: tuple[str, ...] = ("post",), **extra) -> Case:
    return Case(make=_home, reader=None, methods=methods, query=_owner, **extra)


def _desktop_action(name: str) -> Case:
    return Case(make=_desktop, reader=None, methods=("post",), detail=True, body={"snapshot": "s"})


CASES: dict[str, Case] = {
    "api:tenant-current": Case(methods=("get", "patch"), body={"name": "hijacked"}),
    "api:tenant-mine": Case(),
    "api:member-list": Case(make=_membership),
    "api:member-detail": Case(make=_membership, methods=("get", "patch", "delete"), body={"role": "owner"}),
    "api:invitation-list": Case(make=_invitation, reader="admin"),
    "api:invitation-detail": Case(make=_invitation, reader="admin", methods=("get", "delete")),
    "api:token-list": Case(make=_token),
    "api:token-detail": Case(make=_token, methods=("get", "delete")),
    "api:auditevent-list": Case(make=_audit, reader="admin"),
    "api:auditevent-detail": Case(make=_audit, reader="admin", methods=("get",)),
    "api:template-list": Case(make=_template),
    "api:template-detail": Case(make=_template),
    "api:desktop-list": Case(make=_desktop, methods=("get", "post"), body=lambda d: {"template": d.template_id}),
    "api:desktop-detail": Case(make=_desktop, methods=("get", "delete")),
    **{
        f"api:desktop-{action}": _desktop_action(action)
        for action in (
            "start",
            "stop",
            "reboot",
            "suspend",
            "resume",
            "hibernate",
            "rebuild",
            "snapshot",
            "revert",
            "delete-snapshot",
            "keep-running",
        )
    },
    "api:desktop-resize": Case(make=_desktop, reader=None, methods=("post",), detail=True, body={"vcpus": 4}),
    "api:operation-list": Case(make=_operation),
    "api:operation-detail": Case(make=_operation),
    "api:pool-list": Case(
        make=_pool, reader="admin", methods=("get", "post"), body=lambda p: {"template": p.template_id}
    ),
    "api:pool-detail": Case(make=_pool, reader="admin", methods=("get", "patch", "delete"), body={"min_ready": 0}),
    "api:pool-scaling": Case(
        make=_pool, reader="admin", methods=("get", "put", "patch"), detail=True, body={"peak_minimum": 0}
    ),
    "api:pool-forecast": Case(make=_pool, reader="admin", detail=True),
    "api:scaling-exception-list": Case(
        make=_scaling_exception,
        reader="admin",
        methods=("get", "post"),
        body=lambda e: {"pool": e.pool_id, "kind": "closure", "first_day": "2027-01-01"},
    ),
    "api:scaling-exception-detail": Case(make=_scaling_exception, reader="admin", methods=("get", "delete")),
    "api:desktop-plan-start": Case(make=_template, reader=None, methods=("post",), body=lambda t: {"template": t.pk}),
    "api:desktop-plan-status": Case(make=_desktop, reader="member"),
    "api:desktop-plan-stop": Case(make=_desktop, reader=None, methods=("post",), body=lambda d: {"desktop": d.pk}),
    "api:desktop-console-ticket": Case(make=_desktop, reader=None, methods=("post",), detail=True),
    # Ramp-down notices: the answer names no desktop (the owner reads null here); outsiders get 404.
    "api:desktop-stop-notice": Case(make=_desktop, reader=None, detail=True),
    "api:desktop-defer-stop": Case(make=_desktop, reader=None, methods=("post",), detail=True),
    # Automation: the owner's reads need a running VM (test_automation.py); outsiders get 404 before any host call.
    "api:desktop-automation-screenshot": Case(make=_desktop, reader=None, detail=True),
    "api:desktop-automation-screen-changes": Case(make=_desktop, reader=None, detail=True),
    "api:desktop-automation-input": Case(
        make=_desktop, reader=None, methods=("post",), detail=True, body={"actions": [{"type": "text", "text": "x"}]}
    ),
    "api:desktop-automation-exec": Case(
        make=_desktop, reader=None, methods=("post",), detail=True, body={"argv": ["/bin/true"]}
    ),
    "api:disposable-desktop-list": Case(
        make=_disposable,
        methods=("get", "post", "delete"),
        body=lambda d: {"template": d.template_id, "ttl_minutes": 5},
    ),
    "api:automation-token-list": Case(
        make=_desktop,
        reader=None,
        methods=("post",),
        body=lambda d: {"name": "t", "access": "read", "desktops": [d.pk]},
    ),
    "api:consolesession-list": Case(make=_console_session, reader="admin"),
    "api:consolesession-detail": Case(make=_console_session, reader="admin"),
    "api:recording-list": Case(make=_recording, reader="admin"),
    "api:recording-detail": Case(make=_recording, reader="admin", methods=("get", "delete")),
    "api:billing-usage-list": Case(make=_usage_interval, reader="admin"),
    "api:billing-usage-detail": Case(make=_usage_interval, reader="admin"),
    "api:billing-invoice-list": Case(make=_invoice, reader="admin"),
    "api:billing-invoice-detail": Case(make=_invoice, reader="admin"),
    "api:desktop-metrics": Case(make=_desktop, reader="member", detail=True),
    "api:desktop-readiness": Case(make=_desktop, reader="member", detail=True),
    "api:tenant-metrics": Case(reader="admin"),
    "api:firewall-rule-list": Case(
        make=_desktop_rule,
        reader="admin",
        methods=("get", "post"),
        body=lambda r: {"desktop": r.desktop_id, "action": "allow", "cidr": "0.0.0.0/0"},
    ),
    "api:firewall-rule-detail": Case(
        make=_rule, reader="admin", methods=("get", "put", "patch", "delete"), body={"cidr": "10.0.0.0/8"}
    ),
    "api:network-policy": Case(
        reader="admin", methods=("get", "put"), body={"egress_policy": "deny_all", "allow_intra_tenant_traffic": True}
    ),
    # Hosts belong to no tenant: no tenant member reads them, and outsiders get a 404 like elsewhere.
    "api:host-metrics": Case(make=_host, reader=None, detail=True),
    # A home folder is named by its owner (and a path), never by a pk; desktops/tests/test_home_files_api.py
    # checks the people of one tenant too.
    "api:files-list": _files(("get",)),
    "api:files-download": _files(("get",)),
    "api:files-folders": _files(),
    "api:files-move": _files(),
    "api:files-remove": _files(),
    "api:files-begin-upload": _files(),
    "api:files-upload": Case(
        make=_home_upload,
        reader=None,
        methods=("get", "put", "delete"),
        query=_owner,
        kwargs=lambda u: {"upload_id": str(u.pk)},
    ),
    "api:files-finish-upload": Case(
        make=_home_upload, reader=None, methods=("post",), query=_owner, kwargs=lambda u: {"upload_id": str(u.pk)}
    ),
}


# --- writes: every reference field a request writes (tests/references.py finds them) -----------


@dataclass(frozen=True)
class WriteCase:
    """A route that writes a reference: B sends A's row (refused, nothing changes), then B's own (accepted)."""

    route: str
    method: str
    make: Callable  # (world) -> a row of that world's tenant the field may name
    body: Callable  # (row) -> the request body
    accepted: int  # the status when B names its own row: proves the request reaches the field
    person: str = "admin"  # who in tenant B sends it
    resource: Callable | None = None  # (world) -> B's own object the URL names; None: the route is a collection


def _rule_body(scope: str) -> Callable:
    return lambda row: {scope: row.pk, "action": "deny", "cidr": "192.0.2.0/24", "protocol": "tcp", "port_start": 22}


def _pool_body(template) -> dict:
    return {"template": template.pk, "name": "warm", "min_ready": 0, "max_size": 1}


WRITE_CASES: dict[str, list[WriteCase]] = {
    "CreateDesktopSerializer.template": [
        WriteCase("api:desktop-list", "post", _template, lambda t: {"template": t.pk, "start": False}, 202, "member"),
    ],
    "LaunchSerializer.template": [
        WriteCase("api:desktop-plan-start", "post", _template, lambda t: {"template": t.pk}, 202, "member"),
    ],
    "StopSerializer.desktop": [
        WriteCase("api:desktop-plan-stop", "post", _desktop, lambda d: {"desktop": d.pk}, 202, "member"),
    ],
    "FirewallRuleSerializer.template": [
        WriteCase("api:firewall-rule-list", "post", _template, _rule_body("template"), 201),
    ],
    "FirewallRuleSerializer.desktop": [
        WriteCase("api:firewall-rule-list", "post", _desktop, _rule_body("desktop"), 201),
    ],
    "CreateDisposableSerializer.template": [
        WriteCase(
            "api:disposable-desktop-list",
            "post",
            _template,
            lambda t: {"template": t.pk, "ttl_minutes": 5},
            202,
            "member",
        ),
    ],
    "AutomationTokenSerializer.desktops": [
        WriteCase(
            "api:automation-token-list",
            "post",
            _desktop,
            lambda d: {"name": "t", "access": "input", "desktops": [d.pk]},
            201,
            "member",
        ),
    ],
    "AutomationTokenSerializer.templates": [
        WriteCase(
            "api:automation-token-list",
            "post",
            _template,
            lambda t: {"name": "t", "access": "read", "templates": [t.pk]},
            201,
            "member",
        ),
    ],
    "ScalingExceptionSerializer.pool": [
        WriteCase(
            "api:scaling-exception-list",
            "post",
            _pool,
            lambda p: {"pool": p.pk, "kind": "slot", "weekday": 2, "start_time": "14:00", "end_time": "15:00"},
            201,
        ),
    ],
    "PoolSerializer.template": [
        WriteCase("api:pool-list", "post", _template, _pool_body, 201),
        # The reported hole: pointing one's own pool at another tenant's private template.
        WriteCase("api:pool-detail", "patch", _template, lambda t: {"template": t.pk}, 200, resource=_pool),
    ],
}
