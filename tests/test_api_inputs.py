"""Hostile inputs get a 4xx in the one JSON error shape, never a 500.

The query-parameter cases are generated from the OpenAPI schema: every parameter of every list route gets
the malformed values of its declared type, so a filter added later is tried too.
"""

from __future__ import annotations

import json
import re
from datetime import time

import pytest
from django.test import RequestFactory
from drf_spectacular.generators import SchemaGenerator
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from quetzal.api import errors
from quetzal.api.schema import TIME_OF_DAY_PATTERN
from tenants.models import AuditEvent
from tests.fixtures import api_client

# Malformed values per declared type: non-ASCII and underscored digits (int() takes both), impossible
# dates and offsets, NUL and line breaks.
BAD_INTEGERS = ["١٢", "1_0", " 12", "12abc", "\x00", "99999999999999999999999"]
BAD_DATETIMES = [
    "2025-02-30T00:00:00Z",
    "2025-01-01T25:00:00Z",
    "2025-01-01T00:00:00+24:00",
    "2025-01-01T00:00:00+99:99",
    "٢٠٢٥-01-01T00:00:00Z",
    "yesterday",
    "2025-01-01T00:00:00Z\x00",
]
BAD_TEXT = ["a\x00b", "a\nb", "a\x1bb", "x" * 201]


def _bad_values(schema: dict) -> list[str]:
    if schema.get("type") == "integer":
        values = list(BAD_INTEGERS)
        if "minimum" in schema:
            values.append(str(schema["minimum"] - 1))
        if "maximum" in schema:
            values.append(str(schema["maximum"] + 1))
        return values
    if schema.get("format") == "date-time":
        return BAD_DATETIMES
    if schema.get("format") == "date":
        return ["2025-02-30", "2025-13-01", "٢٠٢٥-01-01", "\x00"]
    if "enum" in schema:
        return ["\x00", "no-such-choice"]
    if "pattern" in schema or "maxLength" in schema:
        # One character over the parameter's own ceiling (paths in a home may be longer than the usual 200).
        return [*BAD_TEXT[:-1], "x" * (max(schema.get("maxLength", 200), 200) + 1)]
    raise AssertionError(f"no malformed values for a parameter of schema {schema}")


def _query_parameter_cases() -> list[tuple[str, str, list[str]]]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    cases = []
    for path, operations in schema["paths"].items():
        if "{" in path or "get" not in operations:
            continue
        for parameter in operations["get"].get("parameters", []):
            if parameter["in"] == "query":
                cases.append((path, parameter["name"], _bad_values(parameter["schema"])))
    return cases


CASES = _query_parameter_cases()


def test_it_generates_cases_for_the_known_filters():
    names = {(path, name) for path, name, _ in CASES}
    assert {
        ("/api/v1/audit-events/", "since"),
        ("/api/v1/operations/", "desktop"),
        ("/api/v1/recordings/", "person"),
    } <= names
    assert ("/api/v1/billing/usage/", "period") in names and ("/api/v1/desktops/", "page_size") in names


@pytest.mark.parametrize(("path", "name", "values"), CASES, ids=[f"{path}?{name}" for path, name, _ in CASES])
def test_it_refuses_a_malformed_query_parameter_naming_it(alice, settings, path, name, values):
    settings.BILLING_ENABLED = True
    client = api_client(alice.owner, alice.tenant)
    for value in values:
        response = client.get(path, {name: value})
        assert response.status_code == 400, (value, response.content)
        body = response.json()
        assert body["code"] == f"invalid_{name}" and name in body["detail"] and name in body["errors"]


def test_it_still_filters_with_well_formed_parameters(alice):
    AuditEvent.objects.create(tenant=alice.tenant, actor=alice.admin, action="member.role")
    client = api_client(alice.owner, alice.tenant)
    since = "2000-01-01T00:00:00+05:30"
    listed = client.get("/api/v1/audit-events/", {"since": since, "actor": "ADMIN@alice.test", "action": "member."})
    assert [event["action"] for event in listed.json()["results"]] == ["member.role"]
    assert client.get("/api/v1/audit-events/", {"since": "2999-01-01T00:00:00Z"}).json()["results"] == []
    # The extremes of the calendar, moved across an offset, are still moments (no overflow).
    for edge in ("0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59"):
        assert client.get("/api/v1/audit-events/", {"since": edge}).status_code == 200


def test_it_answers_a_page_past_the_end_with_a_json_404(alice):
    response = api_client(alice.owner, alice.tenant).get("/api/v1/members/", {"page": 99})
    assert response.status_code == 404 and response.json()["code"] == "not_found"


def _post(client, body: str | bytes, content_type: str = "application/json"):
    return client.generic("POST", "/api/v1/tokens/", body, content_type=content_type)


def test_it_refuses_json_nested_too_deep(alice):
    client = api_client(alice.member, alice.tenant)
    for depth in (33, 100_000):
        response = _post(client, "[" * depth + "]" * depth)
        assert response.status_code == 400 and response.json()["code"] == "too_deep"
    nested = {"name": "ci"}
    for _ in range(40):
        nested = {"x": nested}
    assert _post(client, json.dumps(nested)).json()["code"] == "too_deep"


def test_it_refuses_a_body_over_the_limit_with_a_json_413(alice, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 4096
    response = _post(api_client(alice.member, alice.tenant), json.dumps({"name": "x" * 5000}))
    assert response.status_code == 413 and response.json()["code"] == "request_too_large"


@pytest.mark.parametrize("body", ['{"name": "\\ud800"}', '{"name": NaN}', "{not json", b'{"name": "\xff"}'])
def test_it_refuses_bodies_that_are_not_valid_json_text(alice, body):
    response = _post(api_client(alice.member, alice.tenant), body)
    assert response.status_code == 400 and response.json()["code"] == "parse_error"


def test_it_refuses_a_body_that_is_not_json_with_a_json_415(alice):
    response = _post(api_client(alice.member, alice.tenant), "name=ci", "application/x-www-form-urlencoded")
    assert response.status_code == 415 and response.json()["code"] == "unsupported_media_type"


def test_it_refuses_control_characters_in_names_written_through_the_api(alice):
    client = api_client(alice.member, alice.tenant)
    for name in ("ci\nrm -rf", "ci\x00"):
        response = _post(client, json.dumps({"name": name}))
        assert response.status_code == 400 and "name" in response.json()["errors"]


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("get", "/api/v1/no-such-thing/", 404, "not_found"),
        ("get", "/api/v1/tokens/999999/", 404, "not_found"),
        ("put", "/api/v1/tenant/mine/", 405, "method_not_allowed"),
        ("delete", "/api/desktop/status", 405, "method_not_allowed"),
    ],
)
def test_it_answers_every_api_error_in_the_json_shape(alice, method, path, status, code):
    response = getattr(api_client(alice.member, alice.tenant), method)(path)
    assert response.status_code == status and response["Content-Type"].startswith("application/json")
    assert response.json()["code"] == code and response.json()["detail"]


def test_it_answers_throttling_in_the_json_shape():
    class Refuse(BaseThrottle):
        def allow_request(self, request, view) -> bool:
            return False

        def wait(self) -> float:
            return 30

    class Throttled(APIView):
        authentication_classes: list = []
        permission_classes: list = []
        throttle_classes = [Refuse]

        def get(self, request):
            return Response({})

    response = Throttled.as_view()(APIRequestFactory().get("/api/v1/anything/"))
    assert response.status_code == 429 and response.data["code"] == "throttled" and response["Retry-After"] == "30"


def test_it_answers_django_level_errors_under_the_api_in_json():
    request = RequestFactory().get("/api/v1/desktops/")
    for response, status in (
        (errors.server_error(request), 500),
        (errors.bad_request(request), 400),
        (errors.permission_denied(request), 403),
        (errors.page_not_found(request), 404),
    ):
        assert response.status_code == status and set(json.loads(response.content)) == {"code", "detail"}
    page = errors.page_not_found(RequestFactory().get("/desktops/"), None)
    assert page.status_code == 404 and not page["Content-Type"].startswith("application/json")


def test_the_schema_describes_times_of_day_as_the_api_writes_them():
    # DRF writes "00:00:00"; RFC 3339's "time" format (what `format: time` means) would refuse it without an offset.
    written = [serializers.TimeField().to_representation(t) for t in (time(0, 0), time(23, 59, 59, 123456))]
    assert all(re.fullmatch(TIME_OF_DAY_PATTERN, value) for value in written), written
    schema = json.dumps(SchemaGenerator().get_schema(request=None, public=True))
    assert '"format": "time"' not in schema and TIME_OF_DAY_PATTERN.replace("\\", "\\\\") in schema
