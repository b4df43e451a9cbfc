"""`Authorization: Bearer qz_…` personal API tokens, behind a budget of failed attempts per client address."""

from __future__ import annotations

from django.utils.translation import gettext as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, status

from tenants.addresses import client_ip
from tenants.api.throttling import Spent, count_failed_token, failed_tokens
from tenants.services.tokens import authenticate_token


class TooManyFailedTokens(exceptions.APIException):
    """429: the address failed too many token attempts; its token is not looked up until the window ends."""

    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_code = "too_many_failed_tokens"

    def __init__(self, spent: Spent) -> None:
        self.wait = spent.retry_after_s  # DRF answers it as Retry-After
        detail = _("Too many attempts without a valid token from your address; try again in %(seconds)d seconds.") % {
            "seconds": spent.retry_after_s
        }
        super().__init__(detail, self.default_code)


def refuse_if_too_many_failures(ip: str | None) -> None:
    """Raise TooManyFailedTokens when the address has used its budget of failed token attempts."""
    spent = failed_tokens(ip)
    if not spent.allowed:
        raise TooManyFailedTokens(spent)


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """Authenticate scripts by a hashed personal token bound to one tenant."""

    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1").split()
        if not header or header[0] != self.keyword:
            return None
        ip = client_ip(request)
        # Before the lookup: past the budget, guessing gets no answer about any token.
        refuse_if_too_many_failures(ip)
        if len(header) != 2:
            count_failed_token(ip)
            raise exceptions.AuthenticationFailed(_("Malformed Authorization header."), code="invalid_token")
        token = authenticate_token(header[1], ip=ip)
        if token is None:
            count_failed_token(ip)
            raise exceptions.AuthenticationFailed(_("Invalid, expired or revoked token."), code="invalid_token")
        return token.user, token

    def authenticate_header(self, request) -> str:
        return self.keyword


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "tenants.api.authentication.ApiTokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "A personal API token (qz_…)."}
