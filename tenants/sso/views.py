"""Admin console pages for the tenant's sign-in providers, and the sign-in page's routing answer (views stay thin)."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views import View
from django.views.decorators.http import require_GET

from quetzal.errors import ServiceError
from tenants.mixins import TenantPageMixin
from tenants.services.audit import client_ip
from tenants.sso import services
from tenants.sso.discovery import ProviderUnreachable
from tenants.sso.forms import ProviderForm
from tenants.sso.models import IdentityProvider

MAX_EMAIL_CHARS = 254


class ProviderPage(TenantPageMixin):
    admin_required = True

    def provider(self, pk: int) -> IdentityProvider:
        return get_object_or_404(self.scoped(IdentityProvider.objects.all()), pk=pk)

    def save(self, request: HttpRequest, form: ProviderForm, provider: IdentityProvider | None, template: str):
        if form.is_valid():
            try:
                saved = services.save_provider(
                    tenant=request.tenant,
                    actor=request.user,
                    values=form.values(),
                    domains=form.cleaned_data["email_domains"],
                    client_secret=form.secret(),
                    provider=provider,
                    ip=client_ip(request),
                )
            except ServiceError as error:
                form.add_error("email_domains" if error.code == "sso_domain_taken" else None, error.detail)
            else:
                messages.success(request, f"{saved.name} saved. Test the connection before people use it.")
                return redirect("sso:provider", pk=saved.pk)
        return render(request, template, self.context(request, form, provider), status=400)

    def context(self, request: HttpRequest, form: ProviderForm, provider: IdentityProvider | None) -> dict:
        callback = None
        if provider is not None:
            callback = request.build_absolute_uri(f"/accounts/oidc/{provider.provider_id}/login/callback/")
        return {"form": form, "provider": provider, "callback_url": callback}


class ProvidersView(ProviderPage, View):
    """The tenant's providers, and a form to add one."""

    template = "sso/providers.html"

    def page(self, request: HttpRequest, form: ProviderForm, status: int = 200) -> HttpResponse:
        providers = self.scoped(IdentityProvider.objects.prefetch_related("domains"))
        return render(request, self.template, {"providers": providers, "form": form}, status=status)

    def get(self, request: HttpRequest) -> HttpResponse:
        return self.page(request, ProviderForm())

    def post(self, request: HttpRequest) -> HttpResponse:
        form = ProviderForm(request.POST)
        if form.is_valid():
            return self.save(request, form, None, self.template)
        return self.page(request, form, status=400)


class ProviderEditView(ProviderPage, View):
    template = "sso/provider_edit.html"

    def get(self, request: HttpRequest, pk: int) -> HttpResponse:
        provider = self.provider(pk)
        return render(request, self.template, self.context(request, ProviderForm(instance=provider), provider))

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        provider = self.provider(pk)
        form = ProviderForm(request.POST, instance=IdentityProvider.objects.get(pk=provider.pk))
        return self.save(request, form, provider, self.template)


class ProviderTestView(ProviderPage, View):
    """Read the provider's discovery and keys and try the client: the result as a message on its page."""

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        provider = self.provider(pk)
        try:
            found = services.test_connection(provider)
        except ProviderUnreachable as error:
            services.record_error(provider, error.detail)
            messages.error(request, f"Connection failed ({error.code}): {error.detail}")
        else:
            messages.success(request, f"Connected: {found.issuer} answers, its keys are there, it knows the client.")
        return redirect("sso:provider", pk=provider.pk)


class ProviderDeleteView(ProviderPage, View):
    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        provider = self.provider(pk)
        services.delete_provider(provider=provider, actor=request.user, ip=client_ip(request))
        messages.success(request, f"{provider.name} removed: its people sign in with a password again.")
        return redirect("sso:providers")


@require_GET
def route(request: HttpRequest) -> JsonResponse:
    """Whether an address signs in through a provider (the sign-in page hides the password then).

    It names the provider of a domain, never whether an account exists.
    """
    email = request.GET.get("email", "")[:MAX_EMAIL_CHARS]
    provider = services.provider_for_email(email) if "@" in email else None
    if provider is None:
        return JsonResponse({"sso": False})
    return JsonResponse({"sso": True, "provider": provider.name, "password_allowed": provider.allow_password})
