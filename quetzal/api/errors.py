"""One JSON error shape for the whole API: a stable `code` and a human `detail`."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import OperationalError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.utils.translation import gettext
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from quetzal.error_pages import render_error
from quetzal.errors import FieldErrors, ServiceError

API_PREFIX = "/api/"
# How long a caller should wait when the database cannot take the request (too many connections, restarting).
BUSY_RETRY_AFTER_S = 2


class InvalidQueryParameters(exceptions.APIException):
    """Query parameters a filter refused: 400 with the code `invalid_<first parameter>`."""

    status_code = status.HTTP_400_BAD_REQUEST

    def __init__(self, errors: Mapping[str, Iterable[str]]) -> None:
        self.errors = {name: [str(message) for message in messages] for name, messages in errors.items()}
        name, messages = next(iter(self.errors.items()))
        self.code = f"invalid_{name}"
        detail = gettext("Invalid query parameter '%(name)s': %(message)s") % {"name": name, "message": messages[0]}
        super().__init__(detail=detail, code=self.code)


def _first_code(codes: Any) -> str:
    """Return the first error code found in DRF's nested code structure."""
    if isinstance(codes, str):
        return codes
    if isinstance(codes, dict):
        for value in codes.values():
            return _first_code(value)
    if isinstance(codes, list) and codes:
        return _first_code(codes[0])
    return "error"


def exception_handler(exc: Exception, context: dict) -> Response | None:
    """Turn service, validation and DRF errors into {code, detail[, errors]}."""
    if isinstance(exc, FieldErrors):
        errors = {name: [message] for name, message in exc.errors.items()}
        return Response({"code": exc.code, "detail": exc.detail, "errors": errors}, status=exc.status)
    if isinstance(exc, ServiceError):
        return Response({"code": exc.code, "detail": exc.detail}, status=exc.status)
    if isinstance(exc, RequestDataTooBig):
        # Django's own check, when the body was read before DRF's parser (quetzal/api/parsers.py) saw it.
        detail = gettext("The request body is larger than this API accepts.")
        return Response(
            {"code": "request_too_large", "detail": detail}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
        )
    if isinstance(exc, InvalidQueryParameters):
        return Response({"code": exc.code, "detail": str(exc.detail), "errors": exc.errors}, status=exc.status_code)
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(detail=exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
    if isinstance(exc, Http404):
        return Response({"code": "not_found", "detail": gettext("Not found.")}, status=status.HTTP_404_NOT_FOUND)
    if isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        errors = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        response.data = {"code": "invalid", "detail": gettext("The request has invalid fields."), "errors": errors}
        return response
    if isinstance(exc, exceptions.APIException):
        detail = exc.detail
        code = _first_code(exc.get_codes())
        if isinstance(detail, dict | list):
            response.data = {"code": code, "detail": gettext("The request was refused."), "errors": detail}
        else:
            response.data = {"code": code, "detail": str(detail)}
    return response


# Django's own error views answer requests that never reach a DRF view (an unknown URL, a request
# Django refuses before routing, a crash): under /api/ they answer in the same JSON shape.


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIX)


def _json(code: str, detail: str, status_code: int) -> JsonResponse:
    return JsonResponse({"code": code, "detail": detail}, status=status_code)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _is_api(request):
        return _json("bad_request", gettext("The request could not be understood."), 400)
    return render_error(request, 400)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _is_api(request):
        return _json("permission_denied", gettext("You do not have permission to perform this action."), 403)
    return render_error(request, 403)


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _is_api(request):
        return _json("not_found", gettext("Not found."), 404)
    return render_error(request, 404)


def server_error(request: HttpRequest) -> HttpResponse:
    # Django calls this inside its handler of the uncaught exception, wherever it was raised (a middleware, the
    # view): a database that refuses connections is a busy service to come back to, not a fault to report.
    if isinstance(sys.exc_info()[1], OperationalError):
        return database_busy(request)
    if _is_api(request):
        return _json("server_error", gettext("Something went wrong on our side; it has been logged."), 500)
    return render_error(request, 500, with_context=False)


def database_busy(request: HttpRequest) -> HttpResponse:
    """503 with Retry-After: JSON under /api/, the busy page elsewhere (rendered without the database)."""
    if _is_api(request):
        response = _json(
            "service_busy", gettext("The service is busy; retry after the Retry-After header's seconds."), 503
        )
    else:
        response = render_error(request, 503, with_context=False)
    response["Retry-After"] = str(BUSY_RETRY_AFTER_S)
    return response
