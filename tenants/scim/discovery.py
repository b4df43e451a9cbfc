"""What the SCIM endpoint tells a client about itself (RFC 7644 §4): features, resource types, schemas."""

from __future__ import annotations

from typing import Any

from scim2_models import (
    AuthenticationScheme,
    Bulk,
    ChangePassword,
    Context,
    EnterpriseUser,
    ETag,
    Filter,
    Group,
    Patch,
    ResourceType,
    ServiceProviderConfig,
    Sort,
    User,
)

from tenants.scim.protocol import MAX_COUNT, UserResource


def service_provider_config(base: str) -> dict[str, Any]:
    config = ServiceProviderConfig(
        documentation_uri=None,
        patch=Patch(supported=True),
        bulk=Bulk(supported=False, max_operations=0, max_payload_size=0),
        filter=Filter(supported=True, max_results=MAX_COUNT),
        change_password=ChangePassword(supported=False),
        sort=Sort(supported=False),
        etag=ETag(supported=False),
        authentication_schemes=[
            AuthenticationScheme(
                type="oauthbearertoken",
                name="Bearer token",
                description="The organisation's provisioning token, made on its Provisioning page.",
                primary=True,
            )
        ],
    )
    payload = config.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)
    payload["meta"] = {"resourceType": "ServiceProviderConfig", "location": f"{base}ServiceProviderConfig"}
    return payload


def resource_types(base: str) -> list[dict[str, Any]]:
    found = []
    for model, endpoint in ((UserResource, "/Users"), (Group, "/Groups")):
        resource_type = ResourceType.from_resource(model)
        resource_type.endpoint = endpoint
        payload = resource_type.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)
        payload["meta"] = {"resourceType": "ResourceType", "location": f"{base}ResourceTypes/{payload['id']}"}
        found.append(payload)
    return found


def schemas(base: str) -> list[dict[str, Any]]:
    found = []
    for model in (User, EnterpriseUser, Group):
        payload = model.to_schema().model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)
        if model is User:
            _require_emails(payload)
        payload["meta"] = {"resourceType": "Schema", "location": f"{base}Schemas/{payload['id']}"}
        found.append(payload)
    return found


def _require_emails(schema: dict[str, Any]) -> None:
    """A Quetzal account is an address: the published User schema says emails are required (a userName that is an
    address is accepted in their place, as Entra ID may send only that)."""
    for attribute in schema.get("attributes", []):
        if attribute.get("name") == "emails":
            attribute["required"] = True
            for sub in attribute.get("subAttributes", []):
                if sub.get("name") == "value":
                    sub["required"] = True
