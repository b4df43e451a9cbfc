"""Tenant admin pages for a private template's sizes: the ranges people pick from, named sizes, who may choose."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext
from django.views import View

from desktops.manage.forms import ResizePolicyForm, SizeRangesForm, TemplateSizeForm
from desktops.manage.views import AdminPage
from desktops.models import DesktopTemplate, TemplateSize
from desktops.services import sizes, templates
from desktops.services.templates import RANGE_FIELDS
from quetzal.errors import ServiceError
from tenants.services import tenants
from tenants.services.audit import client_ip


class TemplateSizesView(AdminPage, View):
    """GET shows a template's ranges, named sizes and the resize policy; POST changes one of them (`op`)."""

    def template(self, pk: int) -> DesktopTemplate:
        return get_object_or_404(self.scoped(DesktopTemplate.objects.select_related("image")), pk=pk)

    def render_page(
        self,
        request: HttpRequest,
        template: DesktopTemplate,
        *,
        size_form: TemplateSizeForm | None = None,
        ranges_form: SizeRangesForm | None = None,
        policy_form: ResizePolicyForm | None = None,
        status: int = 200,
    ) -> HttpResponse:
        context = {
            "template_obj": template,
            "named_sizes": template.sizes.all(),
            "default_size": sizes.default_size(template),
            "bounds": sizes.bounds(template),
            "size_form": size_form or TemplateSizeForm(tenant=request.tenant, instance=TemplateSize(template=template)),
            # Its own copy of the row: an invalid form leaves its values on the instance it validated.
            "ranges_form": ranges_form or SizeRangesForm(instance=DesktopTemplate.objects.get(pk=template.pk)),
            "policy_form": policy_form or ResizePolicyForm(initial={"resize_policy": request.tenant.resize_policy}),
            "max_sizes": templates.MAX_SIZES_PER_TEMPLATE,
        }
        return render(request, "desktops/manage/template_sizes.html", context, status=status)

    def get(self, request: HttpRequest, pk: int) -> HttpResponse:
        return self.render_page(request, self.template(pk))

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        template = self.template(pk)
        op = request.POST.get("op", "add")
        if op == "ranges":
            return self.save_ranges(request, template)
        if op == "policy":
            return self.save_policy(request, template)
        form = TemplateSizeForm(request.POST, tenant=request.tenant, instance=TemplateSize(template=template))
        if form.is_valid():
            try:
                saved = templates.save_size(
                    tenant=request.tenant,
                    actor=request.user,
                    template=template,
                    values=form.cleaned_data,
                    ip=client_ip(request),
                )
            except ServiceError as error:
                form.add_error(None, error.detail)
                return self.render_page(request, template, size_form=form, status=error.status)
            messages.success(
                request,
                gettext("Size %(name)s added; people see it when they launch %(name2)s.")
                % {"name": saved.name, "name2": template.name},
            )
            return redirect("manage:template-sizes", pk=template.pk)
        return self.render_page(request, template, size_form=form, status=400)

    def save_ranges(self, request: HttpRequest, template: DesktopTemplate) -> HttpResponse:
        form = SizeRangesForm(request.POST, instance=DesktopTemplate.objects.get(pk=template.pk))
        if form.is_valid():
            values = {key: form.cleaned_data[key] for key in RANGE_FIELDS}
            try:
                templates.save_private_template(
                    tenant=request.tenant, actor=request.user, values=values, template=template, ip=client_ip(request)
                )
            except ServiceError as error:
                form.add_error(None, error.detail)
                return self.render_page(request, template, ranges_form=form, status=error.status)
            messages.success(request, gettext("Ranges saved; they apply to the next launch and resize."))
            return redirect("manage:template-sizes", pk=template.pk)
        return self.render_page(request, template, ranges_form=form, status=400)

    def save_policy(self, request: HttpRequest, template: DesktopTemplate) -> HttpResponse:
        form = ResizePolicyForm(request.POST)
        if not form.is_valid():
            return self.render_page(request, template, policy_form=form, status=400)
        wanted = form.cleaned_data["resize_policy"]
        if wanted != request.tenant.resize_policy:
            tenants.update_policies(
                tenant=request.tenant, changes={"resize_policy": wanted}, actor=request.user, ip=client_ip(request)
            )
        messages.success(request, gettext("Saved: it applies to every template of your organisation."))
        return redirect("manage:template-sizes", pk=template.pk)


class TemplateSizeView(AdminPage, View):
    """Change one named size of a private template."""

    def size(self, pk: int) -> TemplateSize:
        return get_object_or_404(self.scoped(TemplateSize.objects.select_related("template")), pk=pk)

    def render_form(
        self, request: HttpRequest, form: TemplateSizeForm, size: TemplateSize, status: int = 200
    ) -> HttpResponse:
        context = {"form": form, "size": size, "template_obj": size.template}
        return render(request, "desktops/manage/template_size_edit.html", context, status=status)

    def get(self, request: HttpRequest, pk: int) -> HttpResponse:
        size = self.size(pk)
        form = TemplateSizeForm(instance=size, tenant=request.tenant)
        return self.render_form(request, form, size)

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        size = self.size(pk)
        # The form validates a copy: the page's title keeps the stored name when the new one is refused.
        form = TemplateSizeForm(request.POST, instance=TemplateSize.objects.get(pk=size.pk), tenant=request.tenant)
        if not form.is_valid():
            return self.render_form(request, form, size, status=400)
        try:
            saved = templates.save_size(
                tenant=request.tenant,
                actor=request.user,
                template=size.template,
                values=form.cleaned_data,
                size=size,
                ip=client_ip(request),
            )
        except ServiceError as error:
            form.add_error(None, error.detail)
            return self.render_form(request, form, size, status=error.status)
        messages.success(
            request,
            gettext("Size %(name)s saved; desktops already launched keep the size they have.") % {"name": saved.name},
        )
        return redirect("manage:template-sizes", pk=size.template_id)


class TemplateSizeDeleteView(AdminPage, View):
    """Remove a named size; desktops at it keep their vCPUs, RAM and disk."""

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        size = get_object_or_404(self.scoped(TemplateSize.objects.select_related("template")), pk=pk)
        name, template_id = size.name, size.template_id
        templates.delete_size(tenant=request.tenant, actor=request.user, size=size, ip=client_ip(request))
        messages.success(
            request, gettext("Size %(name)s removed; desktops already at it keep their size.") % {"name": name}
        )
        return redirect("manage:template-sizes", pk=template_id)
