"""Request middleware: active tenant, portal inactivity logout, 2FA gates."""

from __future__ import annotations

import time

from django.contrib import messages
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect

from tenants.resolution import resolve_page_tenant
from tenants.twofactor import enrolment_required, second_factor_pending

LAST_SEEN_KEY = "quetzal_last_seen"
# Paths that must stay reachable while a 2FA step is outstanding.
_TWO_FACTOR_EXEMPT = ("/accounts/", "/static/", "/api/", "/healthz", "/billing/stripe/webhook/")


# WebSockets get theirs from tenants.channels.WebSocketTenantMiddleware.
class ActiveTenantMiddleware:
    """Set request.tenant and request.membership for pages (Django, per HTTP request)."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        resolve_page_tenant(request)
        return self.get_response(request)


class InactivityLogoutMiddleware:
    """Sign out a session idle for longer than the active tenant allows."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        tenant = getattr(request, "tenant", None)
        if request.user.is_authenticated and tenant is not None and tenant.inactivity_logout_minutes:
            now = time.time()
            last_seen = request.session.get(LAST_SEEN_KEY)
            if last_seen is not None and now - last_seen > tenant.inactivity_logout_minutes * 60:
                logout(request)
                if request.path.startswith("/api/"):
                    return JsonResponse(
                        {"code": "session_expired", "detail": "Signed out after inactivity."}, status=401
                    )
                messages.info(request, f"You were signed out after {tenant.inactivity_logout_minutes} idle minutes.")
                return redirect(f"/accounts/login/?next={request.path}")
            # Writing on every request would save the session each time; a minute's precision is enough.
            if last_seen is None or now - last_seen > 30:
                request.session[LAST_SEEN_KEY] = now
        return self.get_response(request)


class TwoFactorMiddleware:
    """Send pages to code entry or enrolment until the second factor is satisfied."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith(_TWO_FACTOR_EXEMPT):
            return self.get_response(request)
        if second_factor_pending(request):
            return redirect(f"/accounts/2fa/verify/?next={request.path}")
        if enrolment_required(request):
            return redirect("/accounts/2fa/setup/")
        return self.get_response(request)
