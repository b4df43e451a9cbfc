"""The OpenAPI schema class: every operation documents the errors it can answer, in the one error shape.

The statuses follow from what the operation is, the same way the API behaves: any call can fail
authentication (401) or permission (403); a body can be invalid (400), too large (413) or not JSON (415);
query parameters can be invalid (400); an object in the path or a page number can be missing (404); a
write can clash with the desktop's state or a limit (409); a throttled view can answer 429.
"""

from __future__ import annotations

from drf_spectacular import openapi
from rest_framework import serializers

from quetzal.api.serializers import ResponseSerializer

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
    "429": "`throttled`: too many requests; retry after the `Retry-After` header.",
}
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class ErrorSerializer(ResponseSerializer):
    """Every error the API answers: a stable code and a human message."""

    code = serializers.CharField(read_only=True, help_text="Stable, for programs: e.g. `not_found`.")
    detail = serializers.CharField(read_only=True, help_text="For people.")
    errors = serializers.DictField(read_only=True, required=False, help_text="Messages per field or parameter.")


class AutoSchema(openapi.AutoSchema):
    """drf-spectacular's AutoSchema plus the error responses each operation can give."""

    def _has_request_body(self) -> bool:
        return self.method in ("POST", "PUT", "PATCH") and self.get_request_serializer() is not None

    def _has_query_parameters(self) -> bool:
        return bool(self._get_filter_parameters() or self._get_pagination_parameters())

    def error_statuses(self) -> list[str]:
        """The error statuses this operation can answer."""
        statuses = ["401", "403"]
        if self._has_request_body() or self._has_query_parameters() or self.method in UNSAFE_METHODS:
            statuses.append("400")
        if "{" in self.path or self._get_pagination_parameters() or getattr(self.view, "may_be_absent", False):
            statuses.append("404")
        if self.method in UNSAFE_METHODS:
            statuses.append("409")
        if self._has_request_body():
            statuses += ["413", "415"]
        if self.view.throttle_classes:
            statuses.append("429")
        return statuses

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        error = {"application/json": {"schema": self.resolve_serializer(ErrorSerializer, "response").ref}}
        for status_code in self.error_statuses():
            responses.setdefault(status_code, {"description": ERROR_DESCRIPTIONS[status_code], "content": error})
        return responses
