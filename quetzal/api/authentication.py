"""Browser-session authentication that also demands the second factor."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from tenants.twofactor import second_factor_pending


class SessionAuthentication(authentication.SessionAuthentication):
    """DRF's session auth (with CSRF), refusing sessions whose 2FA step is not done."""

    def authenticate(self, request):
        result = super().authenticate(request)
        if result is not None and second_factor_pending(request._request):
            raise exceptions.AuthenticationFailed(
                "Two-factor verification is required before using the API.", code="otp_required"
            )
        return result


class SessionScheme(OpenApiAuthenticationExtension):
    target_class = "quetzal.api.authentication.SessionAuthentication"
    name = "cookieAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "cookie", "name": "sessionid"}
