"""The SCIM 2.0 wire format (RFC 7643/7644) through scim2-models: parsing requests, answering resources, errors."""

from __future__ import annotations

import re
import uuid
from typing import Any

from pydantic import ValidationError
from scim2_models import (
    URN,
    Context,
    EnterpriseUser,
    Error,
    Group,
    InvalidValueException,
    PatchOp,
    ResponseParameters,
    SCIMException,
    ScimFilter,
    User,
)
from scim2_models.path.expressions import Comparison

UserResource = User[EnterpriseUser]
LIST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
CONTENT_TYPE = "application/scim+json"
DEFAULT_COUNT = 100
MAX_COUNT = 200
# Past any tenant's people, and within the database's OFFSET (a bigint).
MAX_START_INDEX = 2**31
# Attributes a filter may compare with eq, per resource, and whether the comparison ignores case (RFC 7643 §2.4).
USER_FILTERS = {"username": ("user_name_key", True), "externalid": ("external_id", False), "id": ("scim_id", False)}
GROUP_FILTERS = {
    "displayname": ("display_name_key", True),
    "externalid": ("external_id", False),
    "id": ("scim_id", False),
}


class ScimError(Exception):
    """An answer in SCIM's error shape: status, scimType (or none), detail."""

    def __init__(self, status: int, detail: str, scim_type: str | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.scim_type = status, detail, scim_type

    @classmethod
    def from_exception(cls, error: SCIMException) -> ScimError:
        found = error.to_error()
        return cls(int(found.status or 400), found.detail or str(error), found.scim_type)

    @classmethod
    def from_validation(cls, error: ValidationError) -> ScimError:
        first = Error.from_validation_errors(error)[0]
        return cls(int(first.status or 400), first.detail or "invalid", first.scim_type or "invalidValue")

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"schemas": [ERROR_SCHEMA], "status": str(self.status), "detail": self.detail}
        if self.scim_type:
            body["scimType"] = self.scim_type
        return body


def parse(model: Any, payload: Any, context: Context) -> Any:
    """A request body as a scim2-models object; raises ScimError (400) with the library's reason."""
    if not isinstance(payload, dict):
        raise ScimError(400, "The body must be a JSON object.", "invalidSyntax")
    try:
        return model.model_validate(payload, scim_ctx=context)
    except ValidationError as error:
        raise ScimError.from_validation(error) from error
    except SCIMException as error:
        raise ScimError.from_exception(error) from error


def _without_ids(value: Any) -> Any:
    """Okta's PATCH replace carries the resource's id in its value; id is read-only, and it names this resource."""
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if k != "id"}
    return value


def normalise_patch(payload: Any) -> Any:
    """Entra ID's documented group removal, {"op": "Remove", "path": "members", "value": [{"value": id}]}, as the
    RFC's form (a filter in the path per member); ids dropped from replace values."""
    if not isinstance(payload, dict) or not isinstance(payload.get("Operations"), list):
        return payload
    operations = []
    for op in payload["Operations"]:
        if not isinstance(op, dict):
            operations.append(op)
            continue
        kind = str(op.get("op", "")).lower()
        path = op.get("path")
        value = op.get("value")
        if kind == "remove" and isinstance(path, str) and path.lower() == "members" and isinstance(value, list):
            for member in value:
                member_id = member.get("value") if isinstance(member, dict) else None
                if not isinstance(member_id, str):
                    raise ScimError(400, "Each member to remove needs a value (its id).", "invalidValue")
                operations.append({"op": "remove", "path": f"members[value eq {ScimFilter.quote(member_id)}]"})
            continue
        operations.append({**op, "value": _without_ids(value)} if "value" in op else op)
    return {**payload, "Operations": operations}


# `emails[type eq "work"].value`: a filtered path into a multi-valued attribute, as Entra ID writes its mappings.
TYPED_PATH = re.compile(r'^(?P<attr>\w+)\[type eq "(?P<type>[\w-]+)"\]\.(?P<sub>\w+)$', re.IGNORECASE)


def add_missing_typed_values(payload: Any, resource: Any) -> Any:
    """Entra ID adds `emails[type eq "work"].value` (or phoneNumbers, addresses) to a user that has no entry of that
    type yet, and expects it made; RFC 7644 would answer noTarget. Such an operation becomes an add of the entry."""
    if not isinstance(payload, dict) or not isinstance(payload.get("Operations"), list):
        return payload
    operations = []
    for op in payload["Operations"]:
        found = (
            TYPED_PATH.match(op.get("path") or "") if isinstance(op, dict) and isinstance(op.get("path"), str) else None
        )
        if found and str(op.get("op", "")).lower() in ("add", "replace"):
            entries = _entries(resource, found["attr"])
            if entries is not None and not any(
                str(getattr(e, "type", "") or "").lower() == found["type"].lower() for e in entries
            ):
                op = {
                    "op": "add",
                    "path": found["attr"],
                    "value": [{"type": found["type"], found["sub"]: op.get("value")}],
                }
        operations.append(op)
    return {**payload, "Operations": operations}


def _entries(resource: Any, attr: str) -> list[Any] | None:
    """The resource's values of a multi-valued attribute named case-insensitively (None: no such attribute)."""
    for name, info in type(resource).model_fields.items():
        if (info.serialization_alias or info.alias or name).lower() == attr.lower() or name.lower() == attr.lower():
            return list(getattr(resource, name) or [])
    return None


def patch(model: Any, resource: Any, payload: Any) -> Any:
    """Apply a PatchOp body to a resource (in memory); raises ScimError."""
    operation = parse(PatchOp[model], normalise_patch(payload), Context.RESOURCE_PATCH_REQUEST)
    try:
        operation.patch(resource)
    except SCIMException as error:
        raise ScimError.from_exception(error) from error
    except ValidationError as error:
        raise ScimError.from_validation(error) from error
    return resource


def filter_lookup(text: str, allowed: dict[str, tuple[str, bool]]) -> dict[str, Any]:
    """The queryset lookup of a filter Entra ID or Okta sends (`userName eq "x"`, `externalId eq "y"`, …)."""
    try:
        node = ScimFilter(text).ast
    except (SCIMException, ValueError) as error:
        raise ScimError(400, f"The filter does not parse: {error}", "invalidFilter") from error
    if not isinstance(node, Comparison) or node.op.value != "eq" or node.attr_path.sub_attr:
        raise ScimError(400, 'Only filters of the form attribute eq "value" are supported.', "invalidFilter")
    name = str(node.attr_path.attr).lower()
    if node.attr_path.uri and str(node.attr_path.uri).lower() not in (
        str(URN(UserResource.__schema__)).lower(),
        str(URN(Group.__schema__)).lower(),
    ):
        raise ScimError(400, "This filter's schema is not supported.", "invalidFilter")
    if name not in allowed or not isinstance(node.value, str):
        raise ScimError(400, f"Cannot filter on {node.attr_path}.", "invalidFilter")
    column, ignore_case = allowed[name]
    value = node.value.lower() if ignore_case else node.value
    if column == "scim_id":
        try:
            value = uuid.UUID(value)
        except ValueError:
            return {"pk__in": []}
    return {column: value}


def page_bounds(start: str | None, count: str | None) -> tuple[int, int]:
    """startIndex (1-based) and count from the query, bounded (RFC 7644 §3.4.2.4: below 1 means 1, negative 0)."""
    try:
        first = int(start) if start not in (None, "") else 1
        size = int(count) if count not in (None, "") else DEFAULT_COUNT
    except ValueError as error:
        raise ScimError(400, "startIndex and count must be integers.", "invalidValue") from error
    return min(max(first, 1), MAX_START_INDEX), min(max(size, 0), MAX_COUNT)


def project(model: Any, payload: dict[str, Any], attributes: str | None, excluded: str | None) -> dict[str, Any]:
    """The resource with only the attributes the client asked for (RFC 7644 §3.9), by scim2-models' rules
    (id and schemas are always returned)."""
    if not attributes and not excluded:
        return payload
    try:
        parameters = ResponseParameters[model](attributes=attributes or None, excluded_attributes=excluded or None)
        resource = model.model_validate(payload, scim_ctx=Context.RESOURCE_QUERY_RESPONSE)
        return resource.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE, response_parameters=parameters)
    except ValidationError as error:
        raise ScimError.from_validation(error) from error
    except SCIMException as error:
        raise ScimError.from_exception(error) from error


def list_response(resources: list[dict[str, Any]], *, total: int, start: int) -> dict[str, Any]:
    return {
        "schemas": [LIST_SCHEMA],
        "totalResults": total,
        "startIndex": start,
        "itemsPerPage": len(resources),
        "Resources": resources,
    }


def unknown_value(detail: str) -> ScimError:
    return ScimError.from_exception(InvalidValueException(detail=detail))
