"""Request middleware: active tenant, portal inactivity logout, 2FA gates."""

from __future__ import annotations

import time

from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.translation import gettext

from tenants import readonly
from tenants.resolution import resolve_page_tenant
from tenants.twofactor import enrolment_required, operator_enrolment_required, second_factor_pending

LAST_SEEN_KEY = "quetzal_last_seen"


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
                messages.info(
                    request,
                    gettext("You were signed out after %(inactivity_logout_minutes)s idle minutes.")
                    % {"inactivity_logout_minutes": tenant.inactivity_logout_minutes},
                )
                return redirect_to_login(request.get_full_path())
            # Writing on every request would save the session each time; a minute's precision is enough.
            if last_seen is None or now - last_seen > 30:
                request.session[LAST_SEEN_KEY] = now
        return self.get_response(request)


class TwoFactorMiddleware:
    """Until the second factor is done, a session reaches only the code page and sign-out.

    Decided per route (an allow-list of URL names), not per path prefix, so a page added later is
    guarded without anyone remembering to. Three gates, in order:
    - password accepted, code not yet entered: the code page, sign-out, nothing else;
    - the active tenant requires 2FA and the person has no device: enrolment (and their account pages);
    - an operator without a verified device on the Django admin, when ADMIN_REQUIRE_2FA is on.
    """

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs) -> HttpResponse | None:
        match = request.resolver_match
        route = match.view_name if match is not None else ""
        if second_factor_pending(request):
            if route in PENDING_ALLOWED:
                return None
            if _is_api(match) and "HTTP_AUTHORIZATION" not in request.META:
                return JsonResponse(
                    {"code": "otp_required", "detail": "Two-factor verification is required before using the API."},
                    status=401,
                )
            return _to_page("tenants:2fa_verify", request)
        if enrolment_required(request):
            if route in ENROLMENT_ALLOWED or route.startswith("account_") or _is_api(match):
                return None  # the API refuses with its own code (otp_enrolment_required)
            return redirect("tenants:2fa_setup")
        if operator_enrolment_required(request) and match is not None and "admin" in match.namespaces:
            messages.info(request, gettext("Operators use two-factor authentication: set up an authenticator first."))
            return redirect("tenants:2fa_setup")
        return None


# What a session that passed the password but not the code may reach.
PENDING_ALLOWED = frozenset({"tenants:2fa_verify", "account_logout", "healthz", "set_language"})
# What a person whose tenant requires 2FA may reach before enrolling (besides allauth's account pages).
ENROLMENT_ALLOWED = frozenset(
    {"tenants:2fa_setup", "tenants:2fa_verify", "tenants:switch", "account_logout", "healthz"}
)


def _is_api(match) -> bool:
    return match is not None and "api" in match.namespaces


def _to_page(name: str, request: HttpRequest) -> HttpResponse:
    """Redirect to a gate page that sends the person back here afterwards."""
    back = request.get_full_path() if request.method == "GET" else "/"
    return redirect(f"{reverse(name)}?{urlencode({'next': back})}")


class ReadOnlyTenantMiddleware:
    """Refuse every page write in a suspended or pending tenant, except the routes tenants.readonly allows."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs) -> HttpResponse | None:
        if request.method in readonly.SAFE_METHODS:
            return None
        refused = readonly.refusal(getattr(request, "tenant", None))
        if refused is None or readonly.page_route_writable(request.resolver_match, request, view_func):
            return None
        return render(request, "tenants/read_only.html", {"refusal": refused}, status=refused.status)
