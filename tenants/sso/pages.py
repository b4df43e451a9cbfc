"""The pages a person meets when single sign-on cannot let them in: what happened and whom to ask."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from tenants.sso import services
from tenants.sso.models import IdentityProvider


def refused(request: HttpRequest, provider: IdentityProvider, refusal: services.SignInRefused) -> HttpResponse:
    context = {
        "provider": provider,
        "tenant": provider.tenant,
        "reason": refusal.detail,
        "code": refusal.code,
        "ask": services.whom_to_ask(provider.tenant),
    }
    return render(request, "sso/refused.html", context, status=refusal.status)


def unavailable(request: HttpRequest, provider: IdentityProvider) -> HttpResponse:
    """The provider failed (its admins read why on its page): the person learns only whom to ask."""
    context = {"provider": provider, "tenant": provider.tenant, "ask": services.whom_to_ask(provider.tenant)}
    return render(request, "sso/unavailable.html", context, status=502)
