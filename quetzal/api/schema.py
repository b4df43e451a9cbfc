"""The OpenAPI schema class: every operation documents the errors it can answer, in the one error shape.

The statuses follow from what the operation is, the same way the API behaves: any call can fail
authentication (401) or permission (403); a body can be invalid (400), too large (413) or not JSON (415);
query parameters can be invalid (400); an object in the path or a page number can be missing (404); a
write can clash with the desktop's state or a limit (409); a throttled or token-authenticated view can answer 429.
"""

from __future__ import annotations

from drf_spectacular import openapi
from drf_spectacular.plumbing import ResolvedComponent, force_instance
from rest_framework import serializers

from quetzal.api.serializers import IdField
from quetzal.text import MULTI_LINE_SCHEMA_PATTERN, SINGLE_LINE_SCHEMA_PATTERN
from tenants.api.authentication import ApiTokenAuthentication

ERROR_DESCRIPTIONS = {
    "400": (
        "Invalid input. `invalid`: fields refused, details per field in `errors`; `parse_error` / `too_deep`: "
        "the body is not JSON or nested too deeply; `invalid_<parameter>`: a query parameter refused (e.g. "
        "`invalid_page`, `invalid_since`); or a refusal of the service with its own code (e.g. `invalid_snapshot`, "
        "`invalid_role`)."
    ),
    "401": "`not_authenticated` or `invalid_token`: no valid token or session.",
    "403": (
        "`permission_denied`, `no_tenant`, `admin_required`, `otp_required`, `otp_enrolment_required` or "
        "`tenant_suspended`."
    ),
    "404": "`not_found`: no such object in your organisation (or no such page), or a service's own code.",
    "409": (
        "The request clashes with the current state or a limit: e.g. `invalid_state`, `operation_in_progress`, "
        "`snapshot_exists`, `last_owner`, `already_member`, `quota_desktops`, `quota_vcpus`, `quota_ram`, "
        "`limit_running_per_user`."
    ),
    "413": "`request_too_large`: the body is larger than this installation accepts.",
    "415": "`unsupported_media_type`: the body must be `application/json`.",
    "429": (
        "`throttled`: the API token made too many requests in this window (one budget for the REST API and /mcp/); "
        "`too_many_failed_tokens`: your address failed too many token attempts (unknown, revoked, expired or "
        "malformed tokens), so its token requests are refused until the window ends. Retry after the `Retry-After` "
        "header."
    ),
    "411": "`length_required`: send the chunk with a Content-Length.",
    "502": "`host_unavailable` or `hypervisor_error`: the desktop's host did not answer or refused.",
    "503": "`service_busy`: the service cannot take the request now (its database is busy); retry after `Retry-After`.",
    "504": "`files_timeout`: the host keeping the files did not answer in time; `input_timeout`: a batch cut short.",
}
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
ERROR_SCHEMA = {
    "type": "object",
    "description": "Every error the API answers: a stable code for programs and a message for people.",
    "properties": {
        "code": {"type": "string", "description": "Stable, for programs: e.g. `not_found`, `invalid_state`."},
        "detail": {"type": "string", "description": "For people."},
        "errors": {"type": "object", "description": "Messages per field or query parameter, when some were refused."},
    },
    "required": ["code", "detail"],
}
# The patterns of quetzal.text admit the empty string already; drf-spectacular adds an "or empty" branch
# to blank-able fields with a pattern, under oneOf, where "" would then match both branches.
TEXT_PATTERNS = {SINGLE_LINE_SCHEMA_PATTERN, MULTI_LINE_SCHEMA_PATTERN}
EMPTY_BRANCH = {"type": "string", "maxLength": 0}


class AutoSchema(openapi.AutoSchema):
    """drf-spectacular's AutoSchema plus the error responses each operation can give."""

    def error_statuses(self, operation: dict) -> list[str]:
        """The error statuses this operation can answer."""
        has_body = "requestBody" in operation
        has_query = any(parameter["in"] == "query" for parameter in operation.get("parameters", []))
        statuses = ["401", "403"]
        if has_body or has_query or self.method in UNSAFE_METHODS:
            statuses.append("400")
        paginated = bool(self._get_pagination_parameters())
        if "{" in self.path or paginated or self._body_names_an_object() or getattr(self.view, "may_be_absent", False):
            statuses.append("404")
        if self.method in UNSAFE_METHODS:
            statuses.append("409")
        if has_body:
            statuses += ["413", "415"]
        # A throttled view can refuse a token over its budget; a token-authenticated one an address out of guesses.
        token_door = any(issubclass(cls, ApiTokenAuthentication) for cls in self.view.authentication_classes)
        if self.view.throttle_classes or token_door:
            statuses.append("429")
        # What a view says it may answer besides (e.g. the file manager: a missing home, a busy desktop, a host).
        statuses += [code for code in getattr(self.view, "extra_error_statuses", ()) if code not in statuses]
        # Any operation, when the database refuses (quetzal.api.errors.database_busy).
        return [*statuses, "503"] if "503" not in statuses else statuses

    def _body_names_an_object(self) -> bool:
        """Whether the request body carries an id, which may name nothing the caller can see (404)."""
        body = force_instance(self.get_request_serializer()) if self.method in ("POST", "PUT", "PATCH") else None
        fields = getattr(body, "fields", {}) if isinstance(body, serializers.BaseSerializer) else {}
        return any(isinstance(field, IdField | serializers.RelatedField) for field in fields.values())

    def get_operation(self, *args, **kwargs):
        operation = super().get_operation(*args, **kwargs)
        if operation is None:
            return None
        component = ResolvedComponent(name="Error", type=ResolvedComponent.SCHEMA, schema=ERROR_SCHEMA, object="Error")
        self.registry.register_on_missing(component)
        error = {"application/json": {"schema": component.ref}}
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "query" and not parameter.get("required"):
                # Every query parameter left empty means "not given" (no filter, the first page, the default range);
                # a required one not given is refused.
                parameter["allowEmptyValue"] = True
        for status_code in self.error_statuses(operation):
            operation["responses"].setdefault(
                status_code, {"description": ERROR_DESCRIPTIONS[status_code], "content": error}
            )
        return operation

    def _insert_field_validators(self, field, schema):
        super()._insert_field_validators(field, schema)
        branches = schema.get("oneOf")
        if branches and len(branches) == 2 and branches[1] == EMPTY_BRANCH:
            inner = branches[0]
            if inner.get("pattern") in TEXT_PATTERNS and not ({"format", "minLength"} & set(inner)):
                del schema["oneOf"]
                schema.update(inner)


# DRF writes a time of day as "HH:MM:SS" with no offset, but JSON Schema's "time" format is RFC 3339's full-time,
# which needs one: every time field would read as a violation of its own schema. Say what is really sent.
TIME_OF_DAY_PATTERN = r"^\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?$"


def time_of_day_hook(result: dict, generator, request, public) -> dict:
    """drf-spectacular postprocessing hook: every `format: time` becomes the pattern DRF's TimeField writes."""

    def visit(node) -> None:
        if isinstance(node, dict):
            if node.get("format") == "time" and node.get("type") == "string":
                del node["format"]
                node["pattern"] = TIME_OF_DAY_PATTERN
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(result)
    return result
