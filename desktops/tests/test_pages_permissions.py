"""Who reaches which page: members never the manage pages, admins never another tenant, operators' pages staff only.

The matrix is generated from the URL configuration: a new page route needs a case below. The write matrix is
generated from the page forms (tests/references.py): a new form field naming a row needs a case in PAGE_WRITES.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django import forms
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from desktops.console.models import ConsoleSession, Recording
from desktops.models import DesktopTemplate, ScalingException, TemplateSize
from desktops.tests.factories import DesktopFactory, DesktopTemplateFactory, PoolFactory
from quetzal.forms import TenantScopedModelChoiceField
from tenants.models import Invitation, User
from tenants.services import tokens
from tenants.sso.models import IdentityProvider
from tests.fixtures import TenantWorld, login_client
from tests.references import NAMES, database_rows, form_references, is_shared, page_forms, raw_body_ids, target_model

PAGE_NAMESPACES = ("portal", "manage", "tenants", "sso", "scim")


def _provider(world: TenantWorld) -> IdentityProvider:
    # Nothing listens on port 1: a connection test fails at once, as for any unreachable provider.
    return IdentityProvider.objects.create(
        tenant=world.tenant, name=f"{world.tenant.slug} ID", issuer_url="http://127.0.0.1:1", client_identifier="c"
    )


def _domain(world: TenantWorld):
    return _provider(world).domains.create(tenant=world.tenant, domain=f"{world.tenant.slug}.example")


def _template(world: TenantWorld) -> DesktopTemplate:
    return DesktopTemplateFactory(name=f"{world.tenant.slug} private", visibility="tenant", tenant=world.tenant)


def _desktop(world: TenantWorld):
    return DesktopFactory(world=world, template=_template(world), lived_in=True)


def _size(world: TenantWorld):
    return TemplateSize.objects.create(template=_template(world), name="Large", vcpus=4, memory_mib=4096, disk_gib=20)


def _pool(world: TenantWorld):
    return PoolFactory(world=world, template=_template(world), name="pool", min_ready=0)


def _scaling_exception(world: TenantWorld):
    return ScalingException.objects.create(
        tenant=world.tenant, pool=_pool(world), kind="closure", first_day=timezone.localdate()
    )


def _recording(world: TenantWorld):
    desktop = _desktop(world)
    session = ConsoleSession.objects.create(tenant=world.tenant, desktop=desktop, user=world.member)
    return Recording.objects.create(
        tenant=world.tenant, desktop=desktop, user=world.member, session=session, path="missing.qzrec"
    )


@dataclass(frozen=True)
class Page:
    """Who may open a page route, and how to make tenant A's object when the route names one."""

    who: str  # admin | member | signed_in | public
    make: Callable | None = None  # (world) -> object whose pk the route takes
    methods: tuple[str, ...] = ("get",)
    # The owner's desktop pages: another member of the same tenant gets a 404 too.
    owner_only: bool = False
    # Whether an allowed GET answers 200 (false for a file download of a recording that is not there).
    renders: bool = True


PAGES: dict[str, Page] = {
    # The member portal.
    "portal:home": Page("member"),
    "portal:settings": Page("member", methods=("get", "post")),
    "portal:files": Page("member"),
    "portal:desktop": Page("member", make=_desktop, owner_only=True),
    "portal:desktop-card": Page("member", make=_desktop, owner_only=True),
    "portal:console": Page("member", make=_desktop, owner_only=True),
    # The tenant admin (manage) pages.
    "manage:dashboard": Page("admin"),
    "manage:figures": Page("admin"),
    "manage:desktops": Page("admin"),
    "manage:bulk": Page("admin", methods=("post",)),
    "manage:pools": Page("admin", methods=("get", "post")),
    "manage:pool": Page("admin", make=_pool, methods=("get", "post")),
    "manage:pool-delete": Page("admin", make=_pool, methods=("post",)),
    "manage:pool-scaling": Page("admin", make=_pool, methods=("get", "post")),
    "manage:scaling-exception-add": Page("admin", make=_pool, methods=("post",)),
    "manage:scaling-exception-delete": Page("admin", make=_scaling_exception, methods=("post",)),
    "manage:templates": Page("admin"),
    "manage:network": Page("admin", methods=("get", "post")),
    "manage:new-members": Page("admin", methods=("get", "post")),
    "manage:template-firewall": Page("admin", make=_template, methods=("get", "post")),
    "manage:desktop-firewall": Page("admin", make=_desktop, methods=("get", "post")),
    "manage:template-new": Page("admin", methods=("get", "post")),
    "manage:template": Page("admin", make=_template, methods=("get", "post")),
    "manage:template-sizes": Page("admin", make=_template, methods=("get", "post")),
    "manage:template-size": Page("admin", make=_size, methods=("get", "post")),
    "manage:template-size-delete": Page("admin", make=_size, methods=("post",)),
    "portal:console-sessions": Page("admin"),
    "portal:recording-replay": Page("admin", make=_recording),
    "portal:recording-data": Page("admin", make=_recording, renders=False),
    "tenants:members": Page("admin", methods=("get", "post")),
    "tenants:policies": Page("admin", methods=("get", "post")),
    "tenants:audit": Page("admin"),
    # Single sign-on: the admin console's provider pages, and the sign-in page's routing answer.
    "sso:providers": Page("admin", methods=("get", "post")),
    "sso:provider": Page("admin", make=_provider, methods=("get", "post")),
    "sso:provider-test": Page("admin", make=_provider, methods=("post",)),
    "sso:provider-delete": Page("admin", make=_provider, methods=("post",)),
    "sso:domain-verify": Page("admin", make=_domain, methods=("post",)),
    "sso:domain-remove": Page("admin", make=_domain, methods=("post",)),
    "sso:route": Page("public"),
    "sso:ldap-login": Page("public", methods=("get", "post")),
    # Provisioning (SCIM): the token and group roles. The protocol's own routes (scimv2:*) take the directory's
    # bearer token, not a session: tenants/scim/tests/test_scim_isolation.py covers them.
    "scim:directory": Page("admin", methods=("get", "post")),
    # Pages of the signed-in person, whatever their tenant.
    "tenants:tokens": Page("member", methods=("get", "post")),
    "tenants:leave": Page("member", methods=("post",)),
    "tenants:security": Page("signed_in"),
    "tenants:create": Page("signed_in"),
    "tenants:switch": Page("signed_in", methods=("post",)),
    "tenants:2fa_setup": Page("signed_in"),
    "tenants:2fa_verify": Page("signed_in"),
    # Reached from an emailed link, signed in or not.
    "tenants:invitation_accept": Page("public"),
}
ADMIN_PAGES = sorted(name for name, page in PAGES.items() if page.who == "admin")
OBJECT_PAGES = sorted(name for name, page in PAGES.items() if page.make)


def page_route_names() -> set[str]:
    names: set[str] = set()

    def walk(patterns, namespace: str) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                ns = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
                walk(pattern.url_patterns, ns)
            elif isinstance(pattern, URLPattern) and pattern.name and namespace.rstrip(":") in PAGE_NAMESPACES:
                names.add(namespace + pattern.name)

    walk(get_resolver().url_patterns, "")
    return names


def url_of(name: str, world: TenantWorld) -> str:
    page = PAGES[name]
    return reverse(name, kwargs={"pk": page.make(world).pk}) if page.make else reverse(name)


def test_it_has_a_case_for_every_page_route():
    routes = page_route_names()
    missing = sorted(routes - set(PAGES))
    assert not missing, f"Page routes without a permission case (add them to PAGES): {missing}"
    assert not sorted(set(PAGES) - routes), "Cases for page routes that no longer exist"


@pytest.mark.parametrize("name", ADMIN_PAGES)
def test_it_keeps_members_out_of_the_manage_pages(name, alice):
    url = url_of(name, alice)
    member = login_client(alice.member, alice.tenant)
    for method in PAGES[name].methods:
        assert getattr(member, method)(url).status_code == 403, (name, method)


# Routes that only take a POST (bulk actions, deletes, downloads) have no page to render.
RENDERED_ADMIN_PAGES = [n for n in ADMIN_PAGES if "get" in PAGES[n].methods and PAGES[n].renders]


@pytest.mark.parametrize("name", RENDERED_ADMIN_PAGES)
def test_it_lets_tenant_admins_and_owners_in(name, alice):
    url = url_of(name, alice)
    for person in (alice.admin, alice.owner):
        assert login_client(person, alice.tenant).get(url).status_code == 200, (name, person)


@pytest.mark.parametrize("name", sorted(n for n, p in PAGES.items() if p.who in ("admin", "member", "signed_in")))
def test_it_sends_anonymous_visitors_to_sign_in(name, alice, client):
    url = url_of(name, alice)
    for method in PAGES[name].methods:
        response = getattr(client, method)(url)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"], (name, method)


@pytest.mark.parametrize("name", OBJECT_PAGES)
def test_it_shows_tenant_admins_nothing_of_another_tenant(name, alice, bob):
    # Given alice's object, when bob's owner (and admin) ask for it: not found, whatever the method
    url = url_of(name, alice)
    for person in (bob.owner, bob.admin):
        outsider = login_client(person, bob.tenant)
        for method in PAGES[name].methods:
            assert getattr(outsider, method)(url).status_code == 404, (name, person, method)


@pytest.mark.parametrize("name", sorted(n for n, p in PAGES.items() if p.owner_only))
def test_it_keeps_a_members_desktop_from_other_members(name, alice):
    url = url_of(name, alice)  # the desktop of alice's member
    colleague = User.objects.create_user(email=f"colleague-{uuid.uuid4().hex[:6]}@alice.test", password="x" * 12)
    alice.tenant.memberships.create(user=colleague, role="member")
    assert login_client(colleague, alice.tenant).get(url).status_code == 404
    assert login_client(alice.member, alice.tenant).get(url).status_code == 200


def test_it_keeps_other_tenants_rows_out_of_an_admins_lists(alice, bob):
    # Given a desktop and a pool in bob's tenant
    bobs = _desktop(bob)
    _pool(bob)
    admin = login_client(alice.admin, alice.tenant)
    # Then alice's admin sees neither in the manage lists or figures
    assert f'data-desktop-row="{bobs.pk}"' not in admin.get("/manage/desktops/").content.decode()
    assert b"data-pool=" not in admin.get("/manage/pools/").content
    assert b'data-testid="running">0<' in admin.get("/manage/figures/").content
    assert b"bob private" not in admin.get("/manage/templates/").content


# --- writes: every id a page form takes resolves through the tenant scope -----------------------


def _membership(world: TenantWorld):
    person = User.objects.create_user(email=f"extra-{uuid.uuid4().hex[:6]}@{world.tenant.slug}.test", password="x" * 12)
    return world.tenant.memberships.create(user=person, role="member")


def _invitation(world: TenantWorld):
    return Invitation.objects.create(
        tenant=world.tenant,
        email=f"invitee-{uuid.uuid4().hex[:6]}@{world.tenant.slug}.test",
        token_hash=uuid.uuid4().hex,
        expires_at=timezone.now() + timedelta(days=1),
    )


def _members_token(world: TenantWorld):
    token, _ = tokens.create_token(membership=world.membership(world.member), name=f"ci-{uuid.uuid4().hex[:6]}")
    return token


@dataclass(frozen=True)
class PageWrite:
    """A page POST that names a row: B sends A's row (refused, nothing changes), then B's own (302)."""

    route: str
    make: Callable  # (world) -> a row of that world's tenant the form field may name
    body: Callable  # (row) -> the POST body
    person: str = "owner"  # who in tenant B sends it


def _pool_form(template) -> dict:
    return {
        "template": template.pk,
        "name": "",
        "min_ready": 0,
        "max_size": 1,
        "warm_state": "running",
        "idle_action": "recycle",
        "enabled": "on",
    }


def _tenant_rule(world: TenantWorld):
    from desktops.models import FirewallRule

    return FirewallRule.objects.create(tenant=world.tenant, action="deny", cidr="192.0.2.0/24")


PAGE_WRITES: dict[str, PageWrite] = {
    "RuleRemoveForm.rule": PageWrite(
        "manage:network", _tenant_rule, lambda r: {"op": "delete", "rule": r.pk}, person="admin"
    ),
    "PoolForm.template": PageWrite("manage:pools", _template, _pool_form, person="admin"),
    "NewMemberDesktopForm.template": PageWrite(
        "manage:new-members", _template, lambda t: {"template": t.pk, "enabled": "on"}, person="admin"
    ),
    "RoleForm.membership": PageWrite(
        "tenants:members", _membership, lambda m: {"action": "role", "membership": m.pk, "role": "admin"}
    ),
    "MemberForm.membership": PageWrite(
        "tenants:members", _membership, lambda m: {"action": "remove", "membership": m.pk}
    ),
    "RemoveMemberForm.membership": PageWrite(
        "tenants:members", _membership, lambda m: {"action": "remove", "membership": m.pk, "delete_desktops": "on"}
    ),
    "InvitationForm.invitation": PageWrite(
        "tenants:members", _invitation, lambda i: {"action": "revoke", "invitation": i.pk}, person="admin"
    ),
    "TokenRevokeForm.token": PageWrite(
        "tenants:tokens", _members_token, lambda t: {"action": "revoke", "token": t.pk}, person="member"
    ),
}


def test_it_resolves_every_reference_field_of_the_pages_through_the_tenant_scope():
    # Every model choice (or id-like field) of every page form is the scoped class, or names a shared model.
    wrong = [
        f"{key}: {type(field).__name__}"
        for key, field in form_references().items()
        if not isinstance(field, TenantScopedModelChoiceField) and not is_shared(target_model(field))
    ]
    assert not wrong, f"Use quetzal.forms.TenantScopedModelChoiceField (or TenantScopedModelForm): {wrong}"


def test_it_has_a_write_case_for_every_reference_field_of_the_pages():
    scoped = {key for key, field in form_references().items() if not is_shared(target_model(field))}
    missing = sorted(scoped - set(PAGE_WRITES))
    assert not missing, f"Form fields naming rows without a write case (add them to PAGE_WRITES): {missing}"
    assert not sorted(set(PAGE_WRITES) - scoped), "Write cases for form fields that no longer exist"


def test_it_exempts_only_text_fields_that_still_exist_as_names():
    # An exemption outlives its field only by mistake; a model choice is never a name.
    text = {
        f"{cls.__name__}.{name}"
        for cls in page_forms()
        for name, field in cls.base_fields.items()
        if type(field) in (forms.CharField, forms.RegexField)
    }
    assert set(NAMES) <= text, sorted(set(NAMES) - text)


def test_it_reads_no_id_straight_from_a_request_body():
    # An id taken from request.POST / request.data by hand skips the scoped field classes.
    found = raw_body_ids()
    assert not found, f"Read these ids through a form or serializer with a tenant-scoped field: {found}"


@pytest.mark.parametrize("key", sorted(PAGE_WRITES))
def test_it_refuses_another_tenants_row_in_a_page_form(key, alice, bob):
    case = PAGE_WRITES[key]
    # Given a row of tenant A that B's form field could name
    theirs = case.make(alice)
    client = login_client(getattr(bob, case.person), bob.tenant)
    before = database_rows()
    # When B posts A's row: refused, and nothing changed
    response = client.post(reverse(case.route), case.body(theirs))
    assert response.status_code in (400, 404), (key, response.status_code)
    assert database_rows() == before, f"{key}: a refused write changed the database"
    # Then the same post naming B's own row goes through, so the refusal came from the field's scope
    mine = client.post(reverse(case.route), case.body(case.make(bob)))
    assert mine.status_code == 302, (key, mine.status_code)
    assert database_rows() != before, f"{key}: B's own write changed nothing"


# --- operators (Django admin) ------------------------------------------------------------------

OPERATOR_PAGES = ["/admin/", "/admin/hosts/host/dashboard/", "/admin/hosts/host/dashboard/rows/"]


@pytest.mark.parametrize("path", OPERATOR_PAGES)
def test_it_keeps_operators_pages_for_staff(path, alice):
    # A tenant owner is not an operator: sent to the admin's sign-in
    response = login_client(alice.owner, alice.tenant).get(path)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    operator = User.objects.create_superuser(email=f"op-{uuid.uuid4().hex[:6]}@example.test", password="x" * 12)
    assert login_client(operator).get(path).status_code == 200


def test_it_needs_the_host_view_permission_for_the_host_dashboard(db):
    staff = User.objects.create_user(email="staff@example.test", password="x" * 12, is_staff=True)
    assert login_client(staff).get("/admin/hosts/host/dashboard/").status_code == 403
