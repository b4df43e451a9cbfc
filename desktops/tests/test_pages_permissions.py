"""Who reaches which page: members never the manage pages, admins never another tenant, operators' pages staff only.

The matrix is generated from the URL configuration: a new page route needs a case below.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from desktops.console.models import ConsoleSession, Recording
from desktops.models import DesktopTemplate
from desktops.tests.factories import DesktopFactory, DesktopTemplateFactory, PoolFactory
from tenants.models import User
from tests.fixtures import TenantWorld, login_client

PAGE_NAMESPACES = ("portal", "manage", "tenants")


def _template(world: TenantWorld) -> DesktopTemplate:
    return DesktopTemplateFactory(name=f"{world.tenant.slug} private", visibility="tenant", tenant=world.tenant)


def _desktop(world: TenantWorld):
    return DesktopFactory(world=world, template=_template(world), lived_in=True)


def _pool(world: TenantWorld):
    return PoolFactory(world=world, template=_template(world), name="pool", min_ready=0)


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
    "manage:templates": Page("admin"),
    "manage:template-new": Page("admin", methods=("get", "post")),
    "manage:template": Page("admin", make=_template, methods=("get", "post")),
    "portal:console-sessions": Page("admin"),
    "portal:recording-replay": Page("admin", make=_recording),
    "portal:recording-data": Page("admin", make=_recording, renders=False),
    "tenants:members": Page("admin", methods=("get", "post")),
    "tenants:policies": Page("admin", methods=("get", "post")),
    "tenants:audit": Page("admin"),
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
