"""`Authorization: Bearer qz_…` personal API tokens."""

from __future__ import annotations

from django.utils.translation import gettext as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from tenants.addresses import client_ip
from tenants.services.tokens import authenticate_token


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """Authenticate scripts by a hashed personal token bound to one tenant."""

    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1").split()
        if not header or header[0] != self.keyword:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(_("Malformed Authorization header."), code="invalid_token")
        token = authenticate_token(header[1], ip=client_ip(request))
        if token is None:
            raise exceptions.AuthenticationFailed(_("Invalid, expired or revoked token."), code="invalid_token")
        return token.user, token

    def authenticate_header(self, request) -> str:
        return self.keyword


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "tenants.api.authentication.ApiTokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "A personal API token (qz_…)."}
