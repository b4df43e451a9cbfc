"""File manager API: /api/v1/files/... — thin views over desktops.services.files."""

from __future__ import annotations

from django import forms
from django.core.validators import RegexValidator
from django.http import StreamingHttpResponse
from django.utils.translation import gettext
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from desktops.services import files
from hosts.homefs.paths import MAX_PATH_CHARS, PATH_PATTERN
from quetzal.api.filters import parse_query
from quetzal.api.serializers import Serializer
from quetzal.api.viewsets import TenantScopedMixin
from quetzal.errors import NotFound, ServiceError
from quetzal.forms import MAX_ID, Form, IdField, StrictIntegerField
from tenants.services.audit import client_ip

# One file per upload up to 2 GiB: bounded below the integer columns the input checks hold every number to.
MAX_UPLOAD_BYTES = 2**31 - 2


# The path rules in the schema too, so a client (and the fuzzer) knows which paths are refused.
_PATH = RegexValidator(PATH_PATTERN, message="Not a valid path in your home folder.", code="invalid_path")


class PathSerializer(Serializer):
    path = serializers.CharField(
        max_length=MAX_PATH_CHARS, allow_blank=True, trim_whitespace=False, default="", validators=[_PATH]
    )


class OwnerQuery(Form):
    """?path= and ?owner=: another member's home (admins, where the tenant policy allows it), resolved through the
    tenant's memberships, so an id from another tenant is a 404."""

    path = forms.CharField(required=False, max_length=MAX_PATH_CHARS, strip=False, validators=[_PATH])
    owner = IdField(required=False)


class MoveSerializer(Serializer):
    source = serializers.CharField(max_length=MAX_PATH_CHARS, trim_whitespace=False, validators=[_PATH])
    dest = serializers.CharField(max_length=MAX_PATH_CHARS, trim_whitespace=False, validators=[_PATH])


class BeginUploadSerializer(Serializer):
    path = serializers.CharField(max_length=MAX_PATH_CHARS, trim_whitespace=False, validators=[_PATH])
    size = serializers.IntegerField(min_value=0, max_value=MAX_UPLOAD_BYTES)


HOME_PARAMETERS = [
    OpenApiParameter(
        "path",
        {"type": "string", "maxLength": MAX_PATH_CHARS, "pattern": PATH_PATTERN},
        description="A path relative to the home folder ('' is its root).",
    ),
    OpenApiParameter(
        "owner",
        {"type": "integer", "minimum": 1, "maximum": MAX_ID},
        description="Another member's id (tenant admins, where the policy allows it).",
    ),
]


class ChunkQuery(Form):
    offset = StrictIntegerField(min_value=0, max_value=MAX_UPLOAD_BYTES)


def _upload_body(upload) -> dict:
    return {
        "id": str(upload.id),
        "path": upload.path,
        "size": upload.size,
        "received": upload.received,
        "chunk_max": files.MAX_CHUNK_BYTES,
    }


class FilesViewSet(TenantScopedMixin, viewsets.ViewSet):
    """The person's home folder (or, for admins where allowed, a member's), whichever desktop has it."""

    # No such home or file (404); the desktop holding it is busy, or no host keeps it yet (409); a chunk too
    # large (413) or without its length (411); the host did not answer (504).
    extra_error_statuses = ("404", "409", "411", "413", "504")
    # For the schema generator only (each action names its own shapes).
    serializer_class = PathSerializer

    def _home(self):
        query = parse_query(self.request, OwnerQuery)
        owner_id = query.get("owner")
        owner = None
        if owner_id is not None and owner_id != self.request.user.pk:
            membership = self.request.tenant.memberships.filter(user_id=owner_id).select_related("user").first()
            if membership is None:
                raise NotFound(gettext("No such home folder."))
            owner = membership.user
        home = files.open_home(
            tenant=self.request.tenant, actor=self.request.user, owner=owner, ip=client_ip(self.request)
        )
        return home, query.get("path") or ""

    @extend_schema(parameters=HOME_PARAMETERS, responses={200: dict})
    def list(self, request):
        home, path = self._home()
        return Response(files.listing(home=home, path=path))

    @extend_schema(request=PathSerializer, responses={201: dict})
    @action(detail=False, methods=["post"])
    def folders(self, request):
        home, _ = self._home()
        body = PathSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        files.make_folder(home=home, path=body.validated_data["path"])
        return Response({"path": body.validated_data["path"]}, status=status.HTTP_201_CREATED)

    @extend_schema(request=MoveSerializer, responses={200: dict})
    @action(detail=False, methods=["post"])
    def move(self, request):
        home, _ = self._home()
        body = MoveSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        files.move(home=home, **body.validated_data)
        return Response(body.validated_data)

    @extend_schema(request=PathSerializer, responses={204: None})
    # Not named `delete`: a ViewSet method of that name would answer HTTP DELETE on every route.
    @action(detail=False, methods=["post"], url_path="delete")
    def remove(self, request):
        home, _ = self._home()
        body = PathSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        if not body.validated_data["path"]:
            raise ServiceError(gettext("The home folder itself cannot be deleted."), code="invalid_path")
        files.delete(home=home, path=body.validated_data["path"], actor=request.user, ip=client_ip(request))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(parameters=HOME_PARAMETERS, responses={(200, "application/octet-stream"): bytes})
    @action(detail=False, methods=["get"])
    def download(self, request):
        home, path = self._home()
        chunks, name, size = files.download(home=home, path=path, actor=request.user, ip=client_ip(request))
        response = StreamingHttpResponse(chunks, content_type="application/octet-stream")
        response["Content-Length"] = str(size)
        response["Content-Disposition"] = _attachment(name)
        response["X-Content-Type-Options"] = "nosniff"
        return response

    @extend_schema(request=BeginUploadSerializer, parameters=HOME_PARAMETERS, responses={201: dict})
    @action(detail=False, methods=["post"], url_path="uploads")
    def begin_upload(self, request):
        home, _ = self._home()
        body = BeginUploadSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        upload = files.begin_upload(home=home, actor=request.user, **body.validated_data)
        return Response(_upload_body(upload), status=status.HTTP_201_CREATED)

    @extend_schema(parameters=HOME_PARAMETERS, responses={200: dict})
    @action(detail=False, methods=["get", "put", "delete"], url_path=r"uploads/(?P<upload_id>[0-9a-f-]{32,36})")
    def upload(self, request, upload_id: str):
        home, _ = self._home()
        upload = files.upload_of(home=home, upload_id=upload_id)
        if request.method == "GET":
            return Response(_upload_body(upload))
        if request.method == "DELETE":
            files.cancel_upload(upload=upload)
            return Response(status=status.HTTP_204_NO_CONTENT)
        offset = parse_query(request, ChunkQuery)["offset"]
        length = _content_length(request)
        # Read from the request stream as it arrives (never request.body): a chunk is copied, not held.
        upload = files.receive_chunk(upload=upload, offset=offset, stream=request._request, length=length)
        return Response(_upload_body(upload))

    @extend_schema(parameters=HOME_PARAMETERS, responses={201: dict})
    @action(detail=False, methods=["post"], url_path=r"uploads/(?P<upload_id>[0-9a-f-]{32,36})/finish")
    def finish_upload(self, request, upload_id: str):
        home, _ = self._home()
        upload = files.upload_of(home=home, upload_id=upload_id)
        result = files.finish_upload(upload=upload, actor=request.user, ip=client_ip(request))
        return Response({"path": upload.path, "size": upload.size, "via": result["via"]}, status=201)


def _content_length(request) -> int:
    try:
        length = int(request.META.get("CONTENT_LENGTH") or "")
    except ValueError:
        raise ServiceError(
            gettext("Send the chunk with a Content-Length."), code="length_required", status=411
        ) from None
    if length < 0 or length > files.MAX_CHUNK_BYTES:
        raise ServiceError(
            gettext("A chunk is at most %(value)s MiB.") % {"value": files.MAX_CHUNK_BYTES // (1024 * 1024)},
            code="chunk_too_large",
            status=413,
        )
    return length


def _attachment(name: str) -> str:
    """A Content-Disposition naming the file safely for any browser (RFC 6266 with an ASCII fallback)."""
    from urllib.parse import quote

    ascii_name = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in name) or "download"
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"
