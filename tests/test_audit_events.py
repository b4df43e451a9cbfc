"""The audit log's vocabulary: written only by the constructors in tenants/events.py, every action shown to its tenant.

The constructors are found and called from their signatures, so a new one is covered without editing this file
(unless it takes a kind of argument the sample table below does not know yet, which then fails loudly).
"""

from __future__ import annotations

import ast
import inspect
import itertools
import re
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import models
from django.http import HttpRequest
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone, translation

from desktops.choices import OperationKind
from tenants import events
from tenants.choices import TenantStatus
from tenants.events import AuditAction
from tenants.models import AuditEvent, Tenant, User
from tenants.services.audit import CATEGORIES
from tests.fixtures import api_client, login_client

ROOT = Path(settings.BASE_DIR)
EVENTS_MODULE = Path(events.__file__).resolve()

# The stored strings as they are in existing databases: renaming one orphans old rows from the page's filters.
STORED_ACTIONS = {
    "tenant.create", "tenant.policies", "tenant.active", "tenant.suspended", "tenant.pending", "tenant.approve",
    "member.role", "member.remove", "member.leave",
    "invitation.create", "invitation.accept", "invitation.revoke", "token.create", "token.revoke", "token.use",
    "login.success", "login.failed", "login.logout", "login.sso", "login.sso_refused",
    "sso.provider.save", "sso.provider.delete", "sso.member.join", "sso.member.role", "sso.member.remove",
    "sso.domain.verified", "sso.domain.check_failed", "sso.domain.remove",
    "scim.token.create", "scim.token.revoke", "scim.mapping", "scim.user.create", "scim.user.update",
    "scim.user.suspend", "scim.user.restore", "scim.user.delete", "scim.group.save", "scim.group.delete",
    "scim.member.role",
    "2fa.enrol", "2fa.verify", "2fa.recovery_code", "2fa.failed", "2fa.remove", "2fa.recovery_codes",
    "user.preferences",
    "host.register", "host.update", "host.up", "host.down", "host.orphan_destroyed",
    "host.maintenance.on", "host.maintenance.off", "host.drain.on", "host.drain.off",
    "host.enabled.on", "host.enabled.off",
    "image.import", "image.upload", "image.copy.request", "image.copy",
    "desktop.create", "desktop.start", "desktop.stop", "desktop.reboot", "desktop.suspend", "desktop.resume",
    "desktop.hibernate", "desktop.restore", "desktop.snapshot", "desktop.revert", "desktop.delete_snapshot",
    "desktop.delete", "desktop.rebuild", "desktop.migrate", "desktop.resize", "desktop.claim", "desktop.keep_running",
    "desktop.stop_notice", "desktop.bulk_snapshot",
    "desktop.bulk_stop_idle", "desktop.keys_erase", "desktop.input", "desktop.exec", "keys.rotate",
    "template.create", "template.update", "pool.save", "pool.delete", "pool.scaling",
    "template.size.create", "template.size.update", "template.size.delete",
    "console.open", "console.close", "console.refused",
    "console.recording.replay", "console.recording.delete", "console.recording.expire",
    "billing.customer_created", "billing.subscription_created", "billing.checkout_started",
    "billing.portal_opened", "billing.payment_method_set", "billing.exempt", "billing.charged",
    "billing.payment_failed", "billing.arrears_cleared", "billing.host_down_closed",
    "billing.interval_repaired", "billing.price_change",
    "firewall.rule.create", "firewall.rule.update", "firewall.rule.delete", "network.policy",
    "desktop.attach_home", "home.create", "files.upload", "files.download", "files.delete", "files.admin_access",
}  # fmt: skip

# Events about the platform rather than one tenant: only operators see them (Django admin), no tenant's log.
PLATFORM_ACTIONS = {
    "host.register", "host.update", "host.up", "host.down", "host.orphan_destroyed",
    "host.maintenance.on", "host.maintenance.off", "host.drain.on", "host.drain.off",
    "host.enabled.on", "host.enabled.off",
    "image.import", "image.upload", "image.copy.request", "image.copy",
    "billing.host_down_closed", "user.preferences", "keys.rotate",
}  # fmt: skip


# ------------------------------------------------------------------------ nobody writes a free string


def _is_audit_writer(node: ast.expr) -> bool:
    """`audit.record`, `events._record`, `tenants.services.audit.record` or a bare `record`/`_record`."""
    if isinstance(node, ast.Name):
        return node.id in {"record", "_record"}
    if isinstance(node, ast.Attribute) and node.attr in {"record", "_record"}:
        owner = node.value
        name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")
        return name in {"audit", "events"}
    return False


def _creates_audit_event(node: ast.expr) -> bool:
    """`AuditEvent(...)` or `AuditEvent.objects.create/bulk_create/get_or_create/update_or_create(...)`."""
    if isinstance(node, ast.Name):
        return node.id == "AuditEvent"
    return (
        isinstance(node, ast.Attribute)
        and node.attr in {"create", "bulk_create", "get_or_create", "update_or_create"}
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "objects"
        and isinstance(node.value.value, ast.Name)
        and node.value.value.id == "AuditEvent"
    )


def audit_writes_outside_events(source: str) -> list[str]:
    """What in this module writes audit rows by itself instead of through a constructor of tenants/events.py."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and (_is_audit_writer(node.func) or _creates_audit_event(node.func)):
            found.append(f"line {node.lineno}: {ast.unparse(node)[:90]}")
    return found


def _application_modules() -> Iterator[Path]:
    """Every Python module of the product; tests may seed audit rows for what they check."""
    skipped_dirs = {".venv", "node_modules", "static", "tests", "__pycache__", ".git"}
    for path in sorted(ROOT.rglob("*.py")):
        relative = path.relative_to(ROOT)
        if skipped_dirs & set(relative.parts) or path.name.startswith("test_") or path.name == "conftest.py":
            continue
        if path.resolve() != EVENTS_MODULE:
            yield path


@pytest.mark.parametrize(
    "source",
    [
        'audit.record("desktop.create", actor=user)',
        'tenants.services.audit.record(f"desktop.{kind}", tenant=t)',
        "events._record(AuditAction.DESKTOP_CREATE)",
        'AuditEvent.objects.create(action="desktop.start")',
        'AuditEvent(action="x").save()',
        'AuditEvent.objects.bulk_create([AuditEvent(action="y")])',
    ],
)
def test_it_recognises_each_way_of_writing_an_audit_row_by_hand(source):
    assert audit_writes_outside_events(source)


def test_it_does_not_mistake_a_constructor_or_a_read_for_a_write():
    source = 'events.desktop_created(actor=u, tenant=t, desktop=d)\nAuditEvent.objects.filter(action="x")\n'
    assert audit_writes_outside_events(source) == []


def test_it_writes_audit_events_only_through_the_constructors():
    modules = list(_application_modules())
    assert len(modules) > 100  # the walk found the tree (a wrong root would pass with nothing to check)
    offenders = {
        str(path.relative_to(ROOT)): found
        for path in modules
        if (found := audit_writes_outside_events(path.read_text()))
    }
    assert offenders == {}, "write audit events through a constructor of tenants/events.py"


def test_it_keeps_the_stored_action_strings():
    assert set(AuditAction.values) == STORED_ACTIONS


def test_it_refuses_an_action_outside_the_vocabulary(alice):
    desktop = _unsaved(_model("Desktop"), _World(alice))
    with pytest.raises(ValueError, match=r"desktop\.explode"):
        events.desktop_action(kind="explode", actor=alice.admin, desktop=desktop, params={})
    with pytest.raises(ValueError, match=r"tenant\.archived"):
        events.tenant_status_changed(actor=alice.owner, tenant=alice.tenant, status="archived", reason="")
    assert not AuditEvent.objects.exists()


# ------------------------------------------------------------------------ every constructor, called from its signature


class _World:
    """Where the sample events happen: a tenant, and its admin doing it."""

    def __init__(self, world) -> None:
        self.tenant: Tenant = world.tenant
        self.actor: User = world.admin


def _model(name: str) -> type[models.Model]:
    from django.apps import apps

    (model,) = [m for m in apps.get_models() if m.__name__ == name]
    return model


def _annotation_namespace() -> dict[str, Any]:
    """The events module's globals plus what its `if TYPE_CHECKING:` block imports (a stale import fails here)."""
    namespace = dict(vars(events))
    for node in ast.parse(Path(events.__file__).read_text()).body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            exec(compile(ast.Module(body=node.body, type_ignores=[]), events.__file__, "exec"), namespace)
    return namespace


def _constructors() -> list[Callable[..., AuditEvent]]:
    found = [
        function
        for name, function in inspect.getmembers(events, inspect.isfunction)
        if function.__module__ == events.__name__ and not name.startswith("_")
    ]
    assert len(found) > 40
    return found


_ids = itertools.count(9000)


def _unsaved(model: type[models.Model], world: _World, depth: int = 0) -> models.Model:
    """An instance the constructors can describe (pk, str, relations) without a row behind it."""
    instance = model(pk=next(_ids))
    for field in model._meta.concrete_fields:
        if field.many_to_one or field.one_to_one:
            related = field.related_model
            if related is Tenant:
                setattr(instance, field.name, world.tenant)
            elif related is User:
                setattr(instance, field.name, world.actor)
            elif depth < 2:
                setattr(instance, field.name, _unsaved(related, world, depth + 1))
        elif isinstance(field, models.DateTimeField) and getattr(instance, field.attname) is None:
            setattr(instance, field.attname, timezone.now())
    return instance


def _request(world: _World) -> HttpRequest:
    request = RequestFactory().post("/", REMOTE_ADDR="192.0.2.9")
    request.tenant, request.user = world.tenant, world.actor
    return request


# Arguments whose every value writes a different action, or that need a real-looking value.
_BY_NAME: dict[str, list[Any]] = {
    "kind": list(OperationKind.values),
    "status": list(TenantStatus.values),
    "flag": ["maintenance", "drain", "enabled"],
    "change": ["create", "update", "delete"],
    "ip": ["192.0.2.7"],
}


def _samples(function: Callable, name: str, hint: Any, world: _World) -> list[Any]:
    """Every value worth passing for one parameter."""
    if name in _BY_NAME:
        return _BY_NAME[name]
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return _samples(function, name, next(a for a in typing.get_args(hint) if a is not type(None)), world)
    if hint is bool:
        return [True, False]
    if isinstance(hint, type) and issubclass(hint, models.Model):
        if hint is Tenant:
            return [world.tenant]
        return [world.actor] if hint is User else [_unsaved(hint, world)]
    if hint is HttpRequest:
        return [_request(world)]
    simple = {str: "sample", int: 3, Decimal: Decimal("1.25"), datetime: timezone.now()}
    if hint in simple:
        return [simple[hint]]
    if origin is Mapping or hint is Mapping:
        return [{"setting": "value"}]
    if origin is Sequence:
        return [["one", "two"]]
    pytest.fail(f"{function.__name__}({name}: {hint}): teach _samples a value for this kind of argument")


def _calls(world: _World) -> Iterator[tuple[Callable[..., AuditEvent], dict[str, Any]]]:
    namespace = _annotation_namespace()
    for function in _constructors():
        hints = typing.get_type_hints(function, globalns=namespace)
        parameters = inspect.signature(function).parameters
        assert all(p.kind is p.KEYWORD_ONLY for p in parameters.values()), f"{function.__name__}: keywords only"
        choices = {name: _samples(function, name, hints[name], world) for name in parameters}
        for values in itertools.product(*choices.values()):
            yield function, dict(zip(choices, values, strict=True))


def _write_all(world) -> dict[str, list[AuditEvent]]:
    """Each constructor called with every value of its choice arguments, in the world's tenant: action -> events."""
    by_action: dict[str, list[AuditEvent]] = {}
    for function, kwargs in _calls(_World(world)):
        before = AuditEvent.objects.count()
        result = function(**kwargs)
        # Sign-in events go to each of the person's tenants: the world's people belong to one.
        made = result if isinstance(result, list) else [result]
        assert len(made) == 1 and AuditEvent.objects.count() == before + 1, f"{function.__name__} wrote one event"
        for event in made:
            event.refresh_from_db()
            by_action.setdefault(event.action, []).append(event)
    return by_action


@pytest.fixture
def written(alice, bob) -> dict[str, list[AuditEvent]]:
    return _write_all(alice)


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def test_it_writes_every_event_in_the_sites_language_whatever_the_requests(alice):
    """An admin working in German writes the same log as one in English: it is read later, by others."""
    import gettext

    catalog = gettext.GNUTranslations((ROOT / "locale/de/LC_MESSAGES/django.mo").open("rb"))._catalog  # type: ignore[attr-defined]
    german = {text for msgid, text in catalog.items() if isinstance(msgid, str) and msgid and text != msgid}
    assert len(german) > 1000
    with translation.override("de"):
        by_action = _write_all(alice)
    for action, rows in by_action.items():
        for event in rows:
            written_in_german = {text for text in [event.target_repr, *_strings(event.data)] if text in german}
            assert not written_in_german, f"{action} stored German: {written_in_german}"


def test_it_writes_every_action_of_the_vocabulary_and_nothing_else(written):
    assert set(written) == set(AuditAction.values)


def test_it_has_an_audit_action_for_every_operation_kind():
    assert {f"desktop.{kind}" for kind in OperationKind.values} <= set(AuditAction.values)


def test_it_keeps_platform_events_out_of_every_tenants_log(written):
    untenanted = {action for action, rows in written.items() if all(e.tenant_id is None for e in rows)}
    assert untenanted == PLATFORM_ACTIONS
    assert all(e.tenant_id is not None for a, rows in written.items() if a not in PLATFORM_ACTIONS for e in rows)


def _category(action: str) -> str:
    matching = [key for key, (_, prefixes) in CATEGORIES.items() if any(action.startswith(p) for p in prefixes)]
    assert len(matching) == 1, f"{action} belongs to exactly one kind of event on the audit page, not {matching}"
    return matching[0]


def test_it_shows_every_tenant_event_on_that_tenants_audit_page_and_api(written, alice, bob):
    shown = sorted(set(written) - PLATFORM_ACTIONS)
    by_category: dict[str, set[str]] = {}
    for action in shown:
        by_category.setdefault(_category(action), set()).add(action)
    page, api = login_client(alice.admin, alice.tenant), api_client(alice.admin, alice.tenant)
    for category, actions in by_category.items():
        listed = page.get(reverse("tenants:audit"), {"category": category}).content.decode()
        assert set(re.findall(r'data-audit-action="([\w.]+)"', listed)) == actions, category
        # Each in words, not only as the stored string
        assert all(str(AuditAction(action).label) in listed for action in actions), category
    for action in shown:
        results = api.get(reverse("api:auditevent-list"), {"action": action}).json()["results"]
        assert action in {e["action"] for e in results}, action
    assert api_client(bob.admin, bob.tenant).get(reverse("api:auditevent-list")).json()["results"] == []
    bobs_page = login_client(bob.admin, bob.tenant).get(reverse("tenants:audit")).content.decode()
    assert "data-audit-action=" not in bobs_page
