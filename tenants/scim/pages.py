"""The provisioning page of the admin console (views stay thin: the services issue, revoke and map)."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext
from django.views import View

from quetzal.errors import ServiceError
from tenants.mixins import TenantPageMixin
from tenants.scim import services
from tenants.scim.forms import MappingForm
from tenants.scim.models import ScimGroup, ScimUser
from tenants.services.audit import client_ip


class DirectoryView(TenantPageMixin, View):
    """The SCIM base URL to paste into Entra ID or Okta, the token (shown once), and the group → role mapping."""

    admin_required = True
    template = "scim/directory.html"

    def page(self, request: HttpRequest, *, form=None, new_token: str = "", status: int = 200) -> HttpResponse:
        directory = services.directory_of(request.tenant)
        context = {
            "directory": directory,
            "base_url": request.build_absolute_uri("/scim/v2"),
            "new_token": new_token,
            "form": form or MappingForm(initial={"group_roles": MappingForm.text_of(directory.role_names())}),
            "people": ScimUser.objects.for_tenant(request.tenant).count(),
            "groups": ScimGroup.objects.for_tenant(request.tenant).order_by("display_name")[:50],
        }
        return render(request, self.template, context, status=status)

    def get(self, request: HttpRequest) -> HttpResponse:
        return self.page(request)

    def post(self, request: HttpRequest) -> HttpResponse:
        action, ip = request.POST.get("action"), client_ip(request)
        if action == "issue":
            # Rendered, not redirected: the secret is shown in this answer only and kept nowhere but as its hash.
            try:
                _, raw = services.issue_token(tenant=request.tenant, actor=request.user, ip=ip)
            except ServiceError as error:
                messages.error(request, error.detail)
                return redirect("scim:directory")
            return self.page(request, new_token=raw)
        if action == "revoke":
            try:
                services.revoke_token(tenant=request.tenant, actor=request.user, ip=ip)
            except ServiceError as error:
                messages.error(request, error.detail)
            else:
                messages.success(
                    request, gettext("The provisioning token is revoked: the directory can no longer sync.")
                )
            return redirect("scim:directory")
        form = MappingForm(request.POST)
        if not form.is_valid():
            return self.page(request, form=form, status=400)
        try:
            services.save_mapping(
                tenant=request.tenant, actor=request.user, group_roles=form.cleaned_data["group_roles"], ip=ip
            )
        except ServiceError as error:
            form.add_error("group_roles", error.detail)
            return self.page(request, form=form, status=403)
        messages.success(
            request, gettext("Group roles saved; everyone provisioned has the role their groups give now.")
        )
        return redirect("scim:directory")
