"""Admin console pages for the tenant's sign-in providers, and the sign-in page's routing answer (views stay thin)."""

from __future__ import annotations

from allauth.account.adapter import get_adapter as get_account_adapter
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext
from django.views import View
from django.views.decorators.http import require_GET

from quetzal.errors import ServiceError
from quetzal.kek import UnwrapError
from tenants.mixins import TenantPageMixin
from tenants.redirects import safe_next
from tenants.services.audit import client_ip
from tenants.sso import domains as domain_services
from tenants.sso import flows, saml, services, trust
from tenants.sso.choices import DomainStatus, ProviderKind
from tenants.sso.discovery import ProviderUnreachable
from tenants.sso.forms import LdapPasswordForm, LdapProviderForm, ProviderForm, SamlProviderForm, provider_form
from tenants.sso.models import EmailDomain, IdentityProvider

MAX_EMAIL_CHARS = 254


class ProviderPage(TenantPageMixin):
    admin_required = True

    def provider(self, pk: int) -> IdentityProvider:
        return get_object_or_404(self.scoped(IdentityProvider.objects.all()), pk=pk)

    def save(
        self, request: HttpRequest, form, provider: IdentityProvider | None, template: str, extra: dict | None = None
    ):
        if form.is_valid():
            try:
                saved = services.save_provider(
                    tenant=request.tenant,
                    actor=request.user,
                    values={**form.values(), "kind": form.kind},
                    domains=form.cleaned_data["email_domains"],
                    client_secret=form.secret(),
                    provider=provider,
                    ip=client_ip(request),
                )
            except ServiceError as error:
                form.add_error("email_domains" if error.code == "sso_domain_taken" else None, error.detail)
            else:
                messages.success(
                    request,
                    gettext(
                        "%(name)s saved. Publish each new domain's DNS record and verify it, and test the connection, "
                        "before people use it."
                    )
                    % {"name": saved.name},
                )
                return redirect("sso:provider", pk=saved.pk)
        return render(request, template, {**self.context(request, form, provider), **(extra or {})}, status=400)

    def context(self, request: HttpRequest, form, provider: IdentityProvider | None) -> dict:
        callback = service_provider = expires = ldap_ca = None
        if provider is not None and provider.is_ldap and provider.ldap_ca_certificate:
            ldap_ca = trust.summary(provider.ldap_ca_certificate)
        if provider is not None and provider.is_saml:
            service_provider = saml.service_provider(request, provider)
            expires = saml.certificate_expiry(provider.saml_certificate) if provider.saml_certificate else None
        elif provider is not None and not provider.is_ldap:
            callback = request.build_absolute_uri(f"/accounts/oidc/{provider.provider_id}/login/callback/")
        domains = provider.domains.select_related("provider") if provider is not None else self.domains()
        return {
            "form": form,
            "provider": provider,
            "callback_url": callback,
            "service_provider": service_provider,
            "certificate_expires": expires,
            "ldap_ca": ldap_ca,
            "domains": domains,
        }

    def domains(self):
        return self.scoped(EmailDomain.objects.select_related("provider"))


class ProvidersView(ProviderPage, View):
    """The tenant's providers, and a form to add one."""

    template = "sso/providers.html"

    def forms(self, posted=None) -> dict:
        """The "new provider" forms, one of each kind; the posted one (with its errors) in its place."""
        forms = {"form": ProviderForm(), "saml_form": SamlProviderForm(), "ldap_form": LdapProviderForm()}
        if posted is not None:
            names = {ProviderKind.LDAP: "ldap_form", ProviderKind.SAML: "saml_form"}
            forms[names.get(posted.kind, "form")] = posted
        return forms

    def page(self, request: HttpRequest, posted=None, status: int = 200) -> HttpResponse:
        providers = self.scoped(IdentityProvider.objects.prefetch_related("domains"))
        context = {"providers": providers, "domains": self.domains(), **self.forms(posted)}
        return render(request, self.template, context, status=status)

    def get(self, request: HttpRequest) -> HttpResponse:
        return self.page(request)

    def post(self, request: HttpRequest) -> HttpResponse:
        form = provider_form(request.POST.get("kind"))(request.POST)
        if form.is_valid():
            providers = self.scoped(IdentityProvider.objects.prefetch_related("domains"))
            extra = {"providers": providers, "domains": self.domains(), **self.forms(form)}
            return self.save(request, form, None, self.template, extra)
        return self.page(request, form, status=400)


class ProviderEditView(ProviderPage, View):
    template = "sso/provider_edit.html"

    def get(self, request: HttpRequest, pk: int) -> HttpResponse:
        provider = self.provider(pk)
        form = provider_form(provider.kind)(instance=provider)
        return render(request, self.template, self.context(request, form, provider))

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        provider = self.provider(pk)
        form = provider_form(provider.kind)(request.POST, instance=IdentityProvider.objects.get(pk=provider.pk))
        return self.save(request, form, provider, self.template)


class ProviderTestView(ProviderPage, View):
    """Try the provider (OIDC: discovery, keys, client; SAML: metadata, sign-in URL; LDAP: server, service bind,
    bases): a message on its page."""

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        provider = self.provider(pk)
        try:
            answer = services.test_provider(provider)
        except (ProviderUnreachable, saml.MetadataProblem) as error:
            services.record_error(provider, error.detail)
            messages.error(
                request,
                gettext("Connection failed (%(code)s): %(detail)s") % {"code": error.code, "detail": error.detail},
            )
        except UnwrapError as error:
            services.record_error(provider, f"The stored secret does not open under this KEK: {error}")
            messages.error(
                request, gettext("Connection failed (sso_secret): the stored secret does not open; enter it again.")
            )
        else:
            messages.success(request, answer)
        return redirect("sso:provider", pk=provider.pk)


class ProviderDeleteView(ProviderPage, View):
    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        provider = self.provider(pk)
        services.delete_provider(provider=provider, actor=request.user, ip=client_ip(request))
        messages.success(
            request, gettext("%(name)s removed: its people sign in with a password again.") % {"name": provider.name}
        )
        return redirect("sso:providers")


class DomainPage(ProviderPage):
    def domain(self, pk: int) -> EmailDomain:
        return get_object_or_404(self.scoped(EmailDomain.objects.select_related("provider")), pk=pk)

    def back(self, request: HttpRequest, domain: EmailDomain) -> HttpResponse:
        # Back to where the button was: the provider's page or the single sign-on page.
        if request.POST.get("from") == "provider":
            return redirect("sso:provider", pk=domain.provider_id)
        return redirect(f"{reverse('sso:providers')}#domains")


class DomainVerifyView(DomainPage, View):
    """Look the domain's TXT record up now: verified, or the DNS's answer as a sentence (never a 500)."""

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        domain = self.domain(pk)
        try:
            checked = domain_services.verify_now(domain=domain, actor=request.user, ip=client_ip(request))
        except domain_services.VerifyThrottled as error:
            messages.error(request, error.detail)
            return self.back(request, domain)
        except ServiceError as error:
            messages.error(request, error.detail)
            return redirect("sso:providers")
        if checked.status == DomainStatus.VERIFIED and not checked.last_error:
            messages.success(
                request,
                gettext("%(domain)s is verified: its sign-ins go to %(provider)s.")
                % {"domain": checked.domain, "provider": checked.provider.name},
            )
        elif checked.status == DomainStatus.VERIFIED:  # the DNS did not answer: a verification stands until it says
            messages.warning(
                request,
                gettext("%(domain)s stays verified; this check could not finish: %(problem)s")
                % {"domain": checked.domain, "problem": checked.last_error},
            )
        else:
            messages.error(
                request,
                gettext("%(domain)s is not verified: %(problem)s")
                % {"domain": checked.domain, "problem": checked.last_error},
            )
        return self.back(request, checked)


class DomainRemoveView(DomainPage, View):
    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        domain = self.domain(pk)
        domain_services.remove(domain=domain, actor=request.user, ip=client_ip(request))
        messages.success(
            request,
            gettext("%(domain)s removed: its people sign in with a password again.") % {"domain": domain.domain},
        )
        return self.back(request, domain)


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


class LdapSignInView(View):
    """The password page of an address whose domain routes to an LDAP directory: the address picks the provider
    (never a provider id from the request), so one tenant's directory never hears another's people."""

    template = "sso/ldap_login.html"

    def directory_of(self, email: str) -> IdentityProvider | None:
        provider = services.provider_for_email(email[:MAX_EMAIL_CHARS]) if "@" in email else None
        return provider if provider is not None and provider.is_ldap else None

    def get(self, request: HttpRequest) -> HttpResponse:
        email = request.GET.get("login", "").strip()
        provider = self.directory_of(email)
        if provider is None:
            return redirect("account_login")
        form = LdapPasswordForm(initial={"login": email, "next": safe_next(request)[:2000]})
        return render(request, self.template, {"form": form, "provider": provider})

    def post(self, request: HttpRequest) -> HttpResponse:
        form = LdapPasswordForm(request.POST)
        provider = self.directory_of(str(request.POST.get("login", "")).strip())
        if provider is None:
            return redirect("account_login")
        if form.is_valid():
            data = form.cleaned_data
            answer = flows.password_sign_in(request, provider, data["login"], data["password"])
            if answer is not None:
                return answer
            form.add_error(None, get_account_adapter().error_messages["email_password_mismatch"])
        return render(request, self.template, {"form": form, "provider": provider}, status=400)
