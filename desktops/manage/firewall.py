"""Tenant admin pages for the network: the policy and default rules, a template's rules, a desktop's rules."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views import View

from desktops.manage.views import AdminPage
from desktops.models import Desktop, DesktopTemplate, FirewallRule
from desktops.services import firewall, network
from quetzal.errors import ServiceError
from quetzal.forms import Form, ModelForm, TenantScopedForm, TenantScopedModelChoiceField
from tenants.choices import EgressPolicy
from tenants.services.audit import client_ip


class FirewallRuleForm(ModelForm):
    """One rule's match and action; the scope comes from the page, never from the form."""

    class Meta:
        model = FirewallRule
        fields = ["action", "cidr", "protocol", "port_start", "port_end", "position", "description"]
        labels = {"cidr": _("Destination (CIDR)"), "port_start": _("First port"), "port_end": _("Last port")}
        help_texts = {
            "position": _("Lower comes first; empty puts it last."),
            "port_end": _("Empty: just the first port."),
        }

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["position"].required = False
        if not self.instance.pk:
            self.initial["position"] = None  # the model's default 0 would put every new rule first


class RuleRemoveForm(TenantScopedForm):
    """Names one rule of the tenant (the page narrows it to the list it shows)."""

    rule = TenantScopedModelChoiceField(FirewallRule.objects.all(), widget=forms.HiddenInput)


class NetworkPolicyForm(Form):
    egress_policy = forms.ChoiceField(choices=EgressPolicy.choices, label=_("Outbound traffic no rule matches"))
    allow_intra_tenant_traffic = forms.BooleanField(
        required=False, label=_("Let this organisation's desktops reach each other")
    )


class FirewallView(AdminPage, View):
    """GET shows a rule list and its forms; POST adds or removes a rule, or (tenant scope) changes the policy."""

    scope = "tenant"

    def target(self, pk: int | None) -> tuple[DesktopTemplate | None, Desktop | None]:
        if self.scope == "desktop":
            return None, get_object_or_404(self.scoped(Desktop.objects.alive().select_related("template")), pk=pk)
        if self.scope == "template":
            return get_object_or_404(DesktopTemplate.objects.launchable_by(self.request.tenant), pk=pk), None
        return None, None

    def rules(self, template, desktop):
        rules = self.scoped(FirewallRule.objects.all())
        if desktop is not None:
            return rules.filter(desktop=desktop)
        if template is not None:
            return rules.filter(template=template, desktop__isnull=True)
        return rules.filter(template__isnull=True, desktop__isnull=True)

    def render_page(self, request, template, desktop, *, form=None, policy_form=None, status=200) -> HttpResponse:
        tenant = request.tenant
        context = {
            "scope": self.scope,
            "template_obj": template,
            "desktop": desktop,
            "rules": self.rules(template, desktop),
            "form": form or FirewallRuleForm(),
            "policy_form": policy_form
            or NetworkPolicyForm(
                initial={
                    "egress_policy": tenant.egress_policy,
                    "allow_intra_tenant_traffic": tenant.allow_intra_tenant_traffic,
                }
            ),
            "tenant_policy": tenant.get_egress_policy_display(),
            "address": network.address(desktop) if desktop is not None else None,
            "effective": network.effective_rules(desktop) if desktop is not None else None,
            "desktop_rows": self.addresses(template) if self.scope != "desktop" else [],
            "templates_for_rules": DesktopTemplate.objects.launchable_by(tenant) if self.scope == "tenant" else [],
        }
        return render(request, "desktops/manage/firewall.html", context, status=status)

    def addresses(self, template) -> list[tuple[Desktop, dict | None]]:
        desktops = self.scoped(Desktop.objects.alive().select_related("user", "template"))
        if template is not None:
            desktops = desktops.filter(template=template)
        shown = list(desktops.order_by("name", "pk")[:200])
        where = network.addresses(d.pk for d in shown)
        return [(d, where.get(d.pk)) for d in shown]

    def get(self, request: HttpRequest, pk: int | None = None) -> HttpResponse:
        template, desktop = self.target(pk)
        return self.render_page(request, template, desktop)

    def post(self, request: HttpRequest, pk: int | None = None) -> HttpResponse:
        template, desktop = self.target(pk)
        op = request.POST.get("op", "add")
        here = request.path
        if op == "delete":
            remove = RuleRemoveForm(request.POST, tenant=request.tenant)
            remove.fields["rule"].queryset = self.rules(template, desktop)
            if not remove.is_valid():
                messages.error(request, gettext("No such rule in this list."))
                return self.render_page(request, template, desktop, status=400)
            firewall.delete_rule(rule=remove.cleaned_data["rule"], actor=request.user, ip=client_ip(request))
            messages.success(request, gettext("Rule removed; running desktops follow at once."))
            return redirect(here)
        if op == "policy" and self.scope == "tenant":
            policy_form = NetworkPolicyForm(request.POST)
            if not policy_form.is_valid():
                return self.render_page(request, template, desktop, policy_form=policy_form, status=400)
            firewall.set_network_policy(
                tenant=request.tenant, actor=request.user, ip=client_ip(request), **policy_form.cleaned_data
            )
            messages.success(request, gettext("Network policy saved; running desktops follow at once."))
            return redirect(here)
        form = FirewallRuleForm(request.POST)
        if form.is_valid():
            values = {key: form.cleaned_data[key] for key in form.Meta.fields}
            if values["position"] is None:
                values.pop("position")
            try:
                firewall.create_rule(
                    tenant=request.tenant,
                    actor=request.user,
                    values=values,
                    template=template,
                    desktop=desktop,
                    ip=client_ip(request),
                )
            except ValidationError as error:
                form.add_error(None, "; ".join(error.messages))
            except ServiceError as error:
                form.add_error(None, error.detail)
            else:
                messages.success(request, gettext("Rule added; running desktops follow at once."))
                return redirect(here)
        return self.render_page(request, template, desktop, form=form, status=400)
