"""Tenant admin page of the "desktop for every new member" policy."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views import View

from desktops.manage.forms import NewMemberDesktopForm
from desktops.manage.views import AdminPage
from desktops.services import onboarding
from tenants.services.audit import client_ip


class NewMemberDesktopView(AdminPage, View):
    template_name = "desktops/manage/new_members.html"

    def page(self, request: HttpRequest, form: NewMemberDesktopForm, status: int = 200) -> HttpResponse:
        context = {"form": form, "policy": onboarding.policy_of(request.tenant)}
        return render(request, self.template_name, context, status=status)

    def get(self, request: HttpRequest) -> HttpResponse:
        policy = onboarding.policy_of(request.tenant)
        initial = {"template": policy.template if policy else None, "enabled": policy.enabled if policy else True}
        return self.page(request, NewMemberDesktopForm(tenant=request.tenant, initial=initial))

    def post(self, request: HttpRequest) -> HttpResponse:
        form = NewMemberDesktopForm(request.POST, tenant=request.tenant)
        if not form.is_valid():
            return self.page(request, form, status=400)
        template = form.cleaned_data["template"]
        onboarding.set_policy(
            tenant=request.tenant,
            actor=request.user,
            template=template,
            enabled=form.cleaned_data["enabled"],
            ip=client_ip(request),
        )
        messages.success(request, f"New members get a {template.name} desktop." if template else "Policy turned off.")
        return redirect("manage:new-members")
