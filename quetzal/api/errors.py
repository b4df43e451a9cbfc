"""One JSON error shape for the whole API: a stable `code` and a human `detail`."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from quetzal.errors import ServiceError


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
    if isinstance(exc, ServiceError):
        return Response({"code": exc.code, "detail": exc.detail}, status=exc.status)
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(detail=exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
    if isinstance(exc, Http404):
        return Response({"code": "not_found", "detail": "Not found."}, status=status.HTTP_404_NOT_FOUND)
    if isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        errors = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        response.data = {"code": "invalid", "detail": "The request has invalid fields.", "errors": errors}
        return response
    if isinstance(exc, exceptions.APIException):
        detail = exc.detail
        code = _first_code(exc.get_codes())
        if isinstance(detail, dict | list):
            response.data = {"code": code, "detail": "The request was refused.", "errors": detail}
        else:
            response.data = {"code": code, "detail": str(detail)}
    return response
