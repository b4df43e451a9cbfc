"""Whatever a directory sends, the endpoint answers in SCIM's shape and never with a 500."""

from __future__ import annotations

import pytest

ODD_BODIES = [
    None,
    {},
    [],
    "text",
    17,
    {"schemas": "x"},
    {"userName": 5},
    {"userName": "ada@alice.test", "emails": "nope"},
    {"userName": "ada@alice.test", "emails": [{"value": "not an address"}]},
    {"userName": "ada@alice.test", "active": "maybe"},
    {"userName": "ada@alice.test", "name": ["x"]},
    {"displayName": "G", "members": [{"value": 5}]},
    {"displayName": "G", "members": "all"},
    {"Operations": None},
    {"Operations": [{}]},
    {"Operations": [{"op": "add"}]},
    {"Operations": [{"op": "replace", "path": "members[", "value": 1}]},
    {"Operations": [{"op": "remove", "path": "userName"}]},
    {"Operations": [{"op": "replace", "path": "id", "value": "x"}]},
    {"Operations": [{"op": "Remove", "path": "members", "value": [{"nope": 1}]}]},
    {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "add", "value": "x"}]},
]
ODD_QUERIES = [
    {"filter": "(((("},
    {"filter": 'userName eq "a" and userName eq "b"'},
    {"filter": 'urn:ietf:params:scim:schemas:core:2.0:User:userName eq "ada@alice.test"'},
    {"filter": 'urn:x:userName eq "a"'},
    {"filter": "id eq 5"},
    {"filter": 'id eq "not-a-uuid"'},
    {"attributes": "!!!"},
    {"excludedAttributes": "name,,"},
    {"startIndex": "1e9"},
    {"count": "-5"},
]


@pytest.fixture
def seeded(alice_scim):
    ada = alice_scim.create_user("ada@alice.test", emails=[{"value": "ada@alice.test", "primary": True}])
    group = alice_scim.call("post", "Groups", {"displayName": "Staff", "members": [{"value": ada["id"]}]}).json()
    return alice_scim, ada["id"], group["id"]


def test_it_answers_odd_bodies_in_scims_error_shape(seeded):
    directory, user_id, group_id = seeded
    failures = []
    for path in ("Users", f"Users/{user_id}", "Groups", f"Groups/{group_id}"):
        for method in ("post", "put", "patch"):
            for body in ODD_BODIES:
                response = directory.call(method, path, body)
                ok = response.status_code < 500 and (
                    response.status_code < 300 or response.json()["schemas"][0].endswith(":Error")
                )
                if not ok:
                    failures.append(f"{method} {path} {body!r} -> {response.status_code}")
    assert not failures, "\n".join(failures)


def test_it_answers_odd_queries_without_a_500(seeded):
    directory, user_id, group_id = seeded
    failures = []
    for path in ("Users", f"Users/{user_id}", "Groups", f"Groups/{group_id}"):
        for query in ODD_QUERIES:
            response = directory.call("get", path, **query)
            if response.status_code >= 500:
                failures.append(f"GET {path} {query!r} -> {response.status_code}")
    assert not failures, "\n".join(failures)
