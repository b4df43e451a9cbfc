"""A tenant's provisioning token and a client that speaks SCIM with it (Django's test client, no session)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client

from tenants.scim import services
from tests.fixtures import TenantWorld

SCIM = "application/scim+json"


@dataclass
class Directory:
    """The SCIM side of a tenant: its raw token and a sessionless client sending it."""

    world: TenantWorld
    token: str

    def call(self, method: str, path: str, body: Any = None, **params: Any):
        client = Client()
        extra = {"HTTP_AUTHORIZATION": f"Bearer {self.token}"}
        if method == "get":
            return client.get(f"/scim/v2/{path}", params, **extra)
        data = json.dumps(body) if body is not None else ""
        return getattr(client, method)(f"/scim/v2/{path}", data, content_type=SCIM, **extra)

    def create_user(self, user_name: str, **fields: Any) -> dict[str, Any]:
        body = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": user_name, **fields}
        response = self.call("post", "Users", body)
        assert response.status_code == 201, response.content
        return response.json()


def directory_for(world: TenantWorld) -> Directory:
    _, raw = services.issue_token(tenant=world.tenant, actor=world.owner)
    return Directory(world=world, token=raw)


@pytest.fixture
def alice_scim(alice) -> Directory:
    return directory_for(alice)


@pytest.fixture
def bob_scim(bob) -> Directory:
    return directory_for(bob)
