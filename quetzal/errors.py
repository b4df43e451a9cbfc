"""Errors that services raise; the API and pages turn them into clear answers."""

from __future__ import annotations


class ServiceError(Exception):
    """A refusal with a stable code, a human message and the HTTP status that fits it."""

    code = "error"
    status = 400

    def __init__(self, detail: str, *, code: str | None = None, status: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status


class NotFound(ServiceError):
    """The object does not exist or is not visible to the caller."""

    code = "not_found"
    status = 404


class Conflict(ServiceError):
    """The request clashes with the current state (409)."""

    code = "conflict"
    status = 409


class Forbidden(ServiceError):
    """The caller may not do this (403)."""

    code = "forbidden"
    status = 403


class LimitExceeded(ServiceError):
    """A quota or limit would be exceeded; the message names the limit."""

    code = "limit_exceeded"
    status = 409


class FieldErrors(ServiceError):
    """Bad values a service found, by field: the API answers them under `errors`, a form puts them on its fields."""

    code = "invalid"

    def __init__(self, errors: dict[str, str], *, code: str | None = None) -> None:
        super().__init__("; ".join(f"{name}: {message}" for name, message in errors.items()), code=code)
        self.errors = errors
