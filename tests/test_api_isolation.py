"""The tenant isolation matrix, generated from the URL configuration (reads) and the serializers (writes)."""

from __future__ import annotations

import re
from urllib.parse import urlencode

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from rest_framework.test import APIClient

from quetzal.api.fields import TenantScopedPrimaryKeyRelatedField
from tests.fixtures import api_client
from tests.isolation_cases import CASES, WRITE_CASES
from tests.references import (
    QUANTITIES,
    database_rows,
    is_shared,
    project_serializers,
    serializer_references,
    target_model,
    writable_fields,
)


def api_route_names() -> set[str]:
    """Every named route of the API (the `api` namespace: /api/v1/ and /api/desktop/)."""
    names: set[str] = set()

    def walk(patterns, prefix: str, namespace: str) -> None:
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                ns = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
                walk(pattern.url_patterns, route, ns)
            elif isinstance(pattern, URLPattern) and namespace.startswith("api:") and pattern.name:
                names.add(namespace + pattern.name)

    walk(get_resolver().url_patterns, "", "")
    return names


def test_it_has_a_case_for_every_api_route():
    missing = sorted(api_route_names() - set(CASES))
    assert not missing, f"API routes without an isolation case (add them to tests/isolation_cases.py): {missing}"
    stale = sorted(set(CASES) - api_route_names())
    assert not stale, f"Isolation cases for routes that no longer exist: {stale}"


def _is_detail(name: str, case) -> bool:
    return case.detail or name.endswith("-detail") or case.kwargs is not None or case.query is not None


def _url(name: str, case, obj) -> str:
    if case.kwargs is not None:
        url = reverse(name, kwargs=case.kwargs(obj))
    elif case.detail or name.endswith("-detail"):
        url = reverse(name, kwargs={"pk": obj.pk})
    else:
        url = reverse(name)
    return f"{url}?{urlencode(case.query(obj))}" if case.query is not None else url


def _ids(response) -> set:
    data = response.json()
    if isinstance(data, dict) and "desktops" in data:
        data = data["desktops"]
    rows = data.get("results", data) if isinstance(data, dict) else data
    return {row.get("id") for row in rows} if isinstance(rows, list) else {data.get("id")}


def _body(case, obj) -> dict:
    return case.body(obj) if callable(case.body) else case.body


def _snapshot(obj) -> dict | None:
    """Every field of the object as stored, to prove outsiders changed nothing."""
    row = type(obj).objects.filter(pk=obj.pk).values().first()
    return row


@pytest.mark.parametrize("name", sorted(CASES))
def test_it_isolates_tenants(name, alice, bob):
    case = CASES[name]
    obj = case.make(alice) if case.make else alice.tenant
    url = _url(name, case, obj)
    body = _body(case, obj)
    before = _snapshot(obj)

    # (a) a member of tenant A (with the role the route needs) reads A's object.
    if case.reader:
        own = api_client(getattr(alice, case.reader), alice.tenant).get(url)
        assert own.status_code == 200, (name, own.content)
        if case.make:
            assert obj.pk in _ids(own), f"{name}: A cannot see its own object"

    # (b) an admin of tenant B never reaches A's object: 404 on it, never in a list, never acted on.
    outsider = api_client(bob.admin, bob.tenant)
    for method in case.methods:
        response = getattr(outsider, method)(url, body, format="json")
        if _is_detail(name, case) or (method != "get" and case.make):
            assert response.status_code in (400, 404), (name, method, response.status_code, response.content)
            if _is_detail(name, case):
                assert response.status_code == 404 and response.json()["code"] == "not_found"
        elif method == "get":
            assert response.status_code == 200
            if case.make:
                assert obj.pk not in _ids(response), f"{name}: B sees A's object"
            else:
                assert re.search(rb"alice", response.content) is None, f"{name}: B sees A's data"
    assert _snapshot(obj) == before, f"{name}: B's requests changed A's object"
    alice.tenant.refresh_from_db()
    assert alice.tenant.name == "Alice"

    # (c) anonymous callers are refused with 401/403.
    for method in case.methods:
        response = getattr(APIClient(), method)(url, body, format="json")
        assert response.status_code in (401, 403), (name, method, response.status_code)
        assert response.json()["code"] == "not_authenticated"


# --- writes: every reference a request writes resolves through the tenant scope -----------------


def test_it_resolves_every_reference_field_of_the_api_through_the_tenant_scope():
    # Every writable related (or id-like) field of every serializer the API uses is the scoped field class.
    wrong = [
        f"{key}: {type(field).__name__}"
        for key, field in serializer_references().items()
        if not isinstance(field, TenantScopedPrimaryKeyRelatedField) and not is_shared(target_model(field))
    ]
    assert not wrong, (
        f"Use quetzal.api.fields.TenantScopedPrimaryKeyRelatedField (or TenantScopedModelSerializer): {wrong}"
    )


def test_it_has_a_write_case_for_every_reference_field_of_the_api():
    scoped = {key for key, field in serializer_references().items() if not is_shared(target_model(field))}
    missing = sorted(scoped - set(WRITE_CASES))
    assert not missing, f"Reference fields without a write case (add them to WRITE_CASES in isolation_cases): {missing}"
    assert not sorted(set(WRITE_CASES) - scoped), "Write cases for fields that no longer exist"


def test_it_exempts_only_numeric_fields_that_still_exist_as_quantities():
    # An exemption outlives its field only by mistake; a related field is never a quantity.
    numeric = {
        f"{cls.__name__}.{name}": field
        for cls in project_serializers()
        for name, field in writable_fields(cls)
        if type(field).__name__ in ("IntegerField", "FloatField", "DecimalField")
    }
    assert set(QUANTITIES) <= set(numeric), sorted(set(QUANTITIES) - set(numeric))


WRITES = [(key, index) for key, cases in sorted(WRITE_CASES.items()) for index in range(len(cases))]


@pytest.mark.parametrize(("key", "index"), WRITES, ids=[f"{key}-{case}" for key, case in WRITES])
def test_it_refuses_another_tenants_row_in_a_write(key, index, alice, bob):
    case = WRITE_CASES[key][index]
    # Given tenant B's own resource and a row of tenant A the field could name
    theirs = case.make(alice)
    url = reverse(case.route, kwargs={"pk": case.resource(bob).pk}) if case.resource else reverse(case.route)
    client = api_client(getattr(bob, case.person), bob.tenant)
    before = database_rows()
    # When B writes A's row into its own resource: refused as if the row did not exist, and nothing changed
    response = getattr(client, case.method)(url, case.body(theirs), format="json")
    assert response.status_code in (400, 404), (key, response.status_code, response.content)
    assert response.json()["code"], response.content
    assert database_rows() == before, f"{key}: a refused write changed the database"
    # Then the same request naming B's own row is accepted, so the refusal came from the field's scope
    mine = getattr(client, case.method)(url, case.body(case.make(bob)), format="json")
    assert mine.status_code == case.accepted, (key, mine.status_code, mine.content)
