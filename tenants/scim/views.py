"""The SCIM 2.0 endpoints (/scim/v2/…) a tenant's directory calls with its bearer token, thin over the services.

They are plain Django views, not DRF ones: SCIM has its own media type, error shape and authentication, and the
token is a directory's, not a person's (quetzal.api's permissions ask for a member). The tenant comes from the
token alone; nothing in the request can name another.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt
from scim2_models import Group

from tenants import readonly
from tenants.scim import discovery, provisioning, services
from tenants.scim.models import ScimDirectory
from tenants.scim.protocol import CONTENT_TYPE, ScimError, UserResource, list_response, page_bounds, project
from tenants.services.audit import client_ip


def scim_response(body: dict[str, Any] | None, status: int = 200, **headers: str) -> HttpResponse:
    content = json.dumps(body) if body is not None else ""
    response = HttpResponse(content, status=status, content_type=CONTENT_TYPE if body is not None else None)
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def error_response(error: ScimError) -> HttpResponse:
    extra = {"WWW_Authenticate": 'Bearer realm="scim"'} if error.status == 401 else {}
    return scim_response(error.body(), error.status, **extra)


@method_decorator(csrf_exempt, name="dispatch")
class ScimView(View):
    """Authenticate the directory, read the body, turn every refusal into SCIM's error shape."""

    http_method_names = ["get", "post", "put", "patch", "delete"]

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            self.directory = self.authenticate(request)
            if request.method not in readonly.SAFE_METHODS:
                refused = readonly.refusal(self.directory.tenant)
                if refused is not None:
                    raise ScimError(refused.status, refused.detail)
            handler: Callable[..., HttpResponse] | None = getattr(self, (request.method or "").lower(), None)
            if request.method.lower() not in self.http_method_names or handler is None:
                raise ScimError(405, f"{request.method} is not supported here.")
            return handler(request, *args, **kwargs)
        except ScimError as error:
            return error_response(error)

    def authenticate(self, request: HttpRequest) -> ScimDirectory:
        scheme, _, raw = request.headers.get("Authorization", "").partition(" ")
        directory = services.authenticate(raw.strip()) if scheme.lower() == "bearer" else None
        if directory is None:
            raise ScimError(401, "A valid provisioning bearer token is required.")
        return directory

    def payload(self, request: HttpRequest) -> Any:
        try:
            body = request.body
        except RequestDataTooBig as error:
            raise ScimError(413, "The request body is too large.") from error
        # PostgreSQL keeps no NUL in text or JSON: refused here, as SCIM's error, not met as the database's.
        if b"\\u0000" in body or b"\x00" in body:
            raise ScimError(400, "The body holds a NUL character.", "invalidValue")
        try:
            return json.loads(body or b"null")
        except (ValueError, UnicodeDecodeError, RecursionError) as error:
            raise ScimError(400, "The body is not JSON.", "invalidSyntax") from error

    @property
    def ip(self) -> str | None:
        return client_ip(self.request)

    def location(self, kind: str, scim_id: object) -> str:
        return self.request.build_absolute_uri(f"/scim/v2/{kind}/{scim_id}")

    def project(self, model: Any, payload: dict[str, Any]) -> dict[str, Any]:
        params = self.request.GET
        return project(model, payload, params.get("attributes"), params.get("excludedAttributes"))

    def listing(self, request: HttpRequest, rows, render: Callable[[Any], dict[str, Any]]) -> HttpResponse:
        start, count = page_bounds(request.GET.get("startIndex"), request.GET.get("count"))
        total = rows.count()
        page = list(rows.order_by("created_at", "pk")[start - 1 : start - 1 + count]) if count else []
        return scim_response(list_response([render(row) for row in page], total=total, start=start))


class UsersView(ScimView):
    def get(self, request: HttpRequest) -> HttpResponse:
        rows = provisioning.users(self.directory, request.GET.get("filter"))
        return self.listing(request, rows, self.render)

    def post(self, request: HttpRequest) -> HttpResponse:
        person = provisioning.create_user(directory=self.directory, payload=self.payload(request), ip=self.ip)
        body = self.render(provisioning.user(self.directory, str(person.scim_id)))
        return scim_response(body, 201, Location=body["meta"]["location"])

    def render(self, person) -> dict[str, Any]:
        payload = provisioning.user_resource(person, self.location("Users", person.scim_id))
        return self.project(UserResource, payload)


class UserView(UsersView):
    def get(self, request: HttpRequest, scim_id: str) -> HttpResponse:  # type: ignore[override]
        return scim_response(self.render(provisioning.user(self.directory, scim_id)))

    def put(self, request: HttpRequest, scim_id: str) -> HttpResponse:
        person = provisioning.replace_user(
            directory=self.directory, scim_id=scim_id, payload=self.payload(request), ip=self.ip
        )
        return scim_response(self.render(provisioning.user(self.directory, str(person.scim_id))))

    def patch(self, request: HttpRequest, scim_id: str) -> HttpResponse:
        person = provisioning.patch_user(
            directory=self.directory, scim_id=scim_id, payload=self.payload(request), ip=self.ip
        )
        return scim_response(self.render(provisioning.user(self.directory, str(person.scim_id))))

    def delete(self, request: HttpRequest, scim_id: str) -> HttpResponse:
        provisioning.delete_user(directory=self.directory, scim_id=scim_id, ip=self.ip)
        return scim_response(None, 204)

    def post(self, request: HttpRequest, scim_id: str) -> HttpResponse:  # type: ignore[override]
        raise _search_or_not_allowed(scim_id)


def _search_or_not_allowed(scim_id: str) -> ScimError:
    """POST …/.search (RFC 7644 §3.4.3) is not offered: filters go in a GET, as Entra ID and Okta send them."""
    if scim_id == ".search":
        return ScimError(501, "Searching with POST /.search is not supported; use GET with a filter.")
    return ScimError(405, "POST is not supported here.")


def _wants_members(request: HttpRequest) -> bool:
    """Entra ID lists groups with excludedAttributes=members (a large group's members are not needed then)."""
    excluded = {name.strip().lower() for name in request.GET.get("excludedAttributes", "").split(",")}
    return "members" not in excluded


class GroupsView(ScimView):
    def get(self, request: HttpRequest) -> HttpResponse:
        rows = provisioning.groups(self.directory, request.GET.get("filter"))
        return self.listing(request, rows, self.render)

    def post(self, request: HttpRequest) -> HttpResponse:
        found = provisioning.create_group(directory=self.directory, payload=self.payload(request), ip=self.ip)
        body = self.render(provisioning.group(self.directory, str(found.scim_id)))
        return scim_response(body, 201, Location=body["meta"]["location"])

    def render(self, found) -> dict[str, Any]:
        location = self.location("Groups", found.scim_id)
        payload = provisioning.group_resource(found, location, members=_wants_members(self.request))
        return self.project(Group, payload)


class GroupView(GroupsView):
    def get(self, request: HttpRequest, scim_id: str) -> HttpResponse:  # type: ignore[override]
        return scim_response(self.render(provisioning.group(self.directory, scim_id)))

    def put(self, request: HttpRequest, scim_id: str) -> HttpResponse:
        found = provisioning.replace_group(
            directory=self.directory, scim_id=scim_id, payload=self.payload(request), ip=self.ip
        )
        return scim_response(self.render(provisioning.group(self.directory, str(found.scim_id))))

    def patch(self, request: HttpRequest, scim_id: str) -> HttpResponse:
        found = provisioning.patch_group(
            directory=self.directory, scim_id=scim_id, payload=self.payload(request), ip=self.ip
        )
        return scim_response(self.render(provisioning.group(self.directory, str(found.scim_id))))

    def delete(self, request: HttpRequest, scim_id: str) -> HttpResponse:
        provisioning.delete_group(directory=self.directory, scim_id=scim_id, ip=self.ip)
        return scim_response(None, 204)

    def post(self, request: HttpRequest, scim_id: str) -> HttpResponse:  # type: ignore[override]
        raise _search_or_not_allowed(scim_id)


class ServiceProviderConfigView(ScimView):
    def get(self, request: HttpRequest) -> HttpResponse:
        return scim_response(discovery.service_provider_config(request.build_absolute_uri("/scim/v2/")))


class ResourceTypesView(ScimView):
    def get(self, request: HttpRequest, name: str | None = None) -> HttpResponse:
        base = request.build_absolute_uri("/scim/v2/")
        types = discovery.resource_types(base)
        if name is None:
            return scim_response(list_response(types, total=len(types), start=1))
        found = next((t for t in types if t["id"] == name), None)
        if found is None:
            raise ScimError(404, f"No resource type {name}.")
        return scim_response(found)


class SchemasView(ScimView):
    def get(self, request: HttpRequest, urn: str | None = None) -> HttpResponse:
        base = request.build_absolute_uri("/scim/v2/")
        schemas = discovery.schemas(base)
        if urn is None:
            return scim_response(list_response(schemas, total=len(schemas), start=1))
        found = next((s for s in schemas if s["id"] == urn), None)
        if found is None:
            raise ScimError(404, f"No schema {urn}.")
        return scim_response(found)


@method_decorator(csrf_exempt, name="dispatch")
class NotFoundView(ScimView):
    """No such endpoint: SCIM's 404 for every method (after the token, like every endpoint here)."""

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            self.authenticate(request)
        except ScimError as error:
            return error_response(error)
        return error_response(ScimError(404, "No such SCIM endpoint."))


class SearchView(ScimView):
    """The root POST /.search, across resource types: not offered (501, as RFC 7644 §3.4.3 lets a server answer)."""

    def post(self, request: HttpRequest) -> HttpResponse:
        raise _search_or_not_allowed(".search")
