"""Portal pages of the tenants app: home, switcher, members, invitations, tokens, audit, policies."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views import View
from django.views.decorators.http import require_POST

from quetzal.errors import ServiceError
from tenants.choices import Role
from tenants.events import AuditAction
from tenants.filters import AuditPageFilterSet
from tenants.forms import (
    InvitationForm,
    InviteForm,
    NewAccountForm,
    PoliciesForm,
    RemoveMemberForm,
    RoleForm,
    TenantCreateForm,
    TokenForm,
    TokenRevokeForm,
)
from tenants.mixins import TenantPageMixin
from tenants.models import ApiToken, AuditEvent, Invitation, Membership, User
from tenants.redirects import safe_next
from tenants.resolution import switch_tenant
from tenants.services import audit, invitations, members, tenants, tokens
from tenants.twofactor import is_operator


@login_required
@require_POST
def tenant_switch(request: HttpRequest) -> HttpResponse:
    """Make another of the person's tenants active."""
    tenant = switch_tenant(request, request.POST.get("slug", ""))
    if tenant is None:
        raise Http404("You are not a member of that organisation.")
    messages.success(request, gettext("Now working in %(name)s.") % {"name": tenant.name})
    return redirect(safe_next(request, "portal:home"))


def can_create_tenant(request) -> bool:
    """Operators always; anyone else only when self-service sign-up is open (and then it waits for approval)."""
    return bool(request.user.is_authenticated and (is_operator(request) or settings.ACCOUNT_ALLOW_SIGNUP))


class TenantCreateView(View):
    """Create a new organisation and become its owner; a self-service one waits for an operator."""

    def dispatch(self, request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        return super().dispatch(request, *args, **kwargs)

    def get(self, request: HttpRequest) -> HttpResponse:
        context = {"form": TenantCreateForm(), "allowed": can_create_tenant(request)}
        return render(request, "tenants/create.html", context)

    def post(self, request: HttpRequest) -> HttpResponse:
        if not can_create_tenant(request):
            context = {"form": TenantCreateForm(), "allowed": False}
            return render(request, "tenants/create.html", context, status=403)
        form = TenantCreateForm(request.POST)
        if form.is_valid():
            try:
                tenant = tenants.create_tenant(
                    name=form.cleaned_data["name"],
                    slug=form.cleaned_data["slug"],
                    owner=request.user,
                    pending=not is_operator(request),
                    ip=audit.client_ip(request),
                )
            except ServiceError as error:
                form.add_error("slug" if error.code == "slug_taken" else "name", error.detail)
            else:
                switch_tenant(request, tenant.slug)
                return redirect("portal:home")
        return render(request, "tenants/create.html", {"form": form, "allowed": True}, status=400)


class MembersView(TenantPageMixin, View):
    """Tenant admins: people, roles and invitations."""

    admin_required = True

    def context(self, **extra) -> dict:
        return {
            "memberships": self.scoped(Membership.objects.select_related("user")),
            "invitations": [i for i in self.scoped(Invitation.objects.all()) if i.is_pending],
            "invite_form": InviteForm(),
            "roles": RoleForm.base_fields["role"].choices,
            **extra,
        }

    def get(self, request: HttpRequest) -> HttpResponse:
        return render(request, "tenants/members.html", self.context())

    def post(self, request: HttpRequest) -> HttpResponse:
        ip = audit.client_ip(request)
        action = request.POST.get("action")
        try:
            if action == "invite":
                form = InviteForm(request.POST)
                if not form.is_valid():
                    return render(request, "tenants/members.html", self.context(invite_form=form), status=400)
                invitations.invite(
                    tenant=request.tenant,
                    actor_membership=request.membership,
                    ip=ip,
                    base_url=request.build_absolute_uri("/")[:-1],
                    **form.cleaned_data,
                )
                messages.success(
                    request,
                    gettext("Invitation sent to %(email)s.") % {"email": form.cleaned_data["email"]},
                )
            elif action == "role":
                form = RoleForm(request.POST, tenant=request.tenant)
                if not form.is_valid():
                    return self.refuse(request, form)
                membership = form.cleaned_data["membership"]
                members.change_role(
                    membership=membership,
                    role=form.cleaned_data["role"],
                    actor_membership=request.membership,
                    ip=ip,
                )
                messages.success(
                    request,
                    gettext("%(email)s is now %(role)s.")
                    % {"email": membership.user.email, "role": Role(form.cleaned_data["role"]).label},
                )
            elif action == "remove":
                form = RemoveMemberForm(request.POST, tenant=request.tenant)
                if not form.is_valid():
                    return self.refuse(request, form)
                membership = form.cleaned_data["membership"]
                delete_desktops = form.cleaned_data["delete_desktops"]
                members.remove_member(
                    membership=membership, actor_membership=request.membership, delete_desktops=delete_desktops, ip=ip
                )
                said = (
                    gettext("%(email)s was removed; their desktops are being deleted.")
                    if delete_desktops
                    else gettext("%(email)s was removed; their desktops are kept.")
                )
                messages.success(request, said % {"email": membership.user.email})
            elif action == "revoke":
                form = InvitationForm(request.POST, tenant=request.tenant)
                if not form.is_valid():
                    return self.refuse(request, form)
                invitation = form.cleaned_data["invitation"]
                invitations.revoke(invitation=invitation, actor=request.user, ip=ip)
                messages.success(request, gettext("Invitation to %(email)s withdrawn.") % {"email": invitation.email})
        except ServiceError as error:
            messages.error(request, error.detail)
            return render(request, "tenants/members.html", self.context(), status=error.status)
        return redirect("tenants:members")

    def refuse(self, request: HttpRequest, form) -> HttpResponse:
        """The page again, with what was wrong with the action (e.g. a person not in this organisation)."""
        for error in form.errors.values():
            messages.error(request, " ".join(error))
        return render(request, "tenants/members.html", self.context(), status=400)


class LeaveView(TenantPageMixin, View):
    """Leave the active tenant."""

    def post(self, request: HttpRequest) -> HttpResponse:
        try:
            members.remove_member(
                membership=request.membership, actor_membership=request.membership, ip=audit.client_ip(request)
            )
        except ServiceError as error:
            messages.error(request, error.detail)
            return redirect("portal:home")
        messages.success(request, gettext("You left %(name)s.") % {"name": request.tenant.name})
        return redirect("portal:home")


class InvitationAcceptView(View):
    """Accept an invitation: sign in as the invited address, or create that account."""

    def dispatch(self, request, token: str):
        try:
            self.invitation = invitations.find_pending(token)
        except ServiceError as error:
            return render(request, "tenants/invitation_error.html", {"error": error}, status=error.status)
        self.token = token
        return super().dispatch(request, token)

    def get(self, request: HttpRequest, token: str) -> HttpResponse:
        has_account = User.objects.filter(email__iexact=self.invitation.email).exists()
        return render(
            request,
            "tenants/invitation_accept.html",
            {"invitation": self.invitation, "has_account": has_account, "form": NewAccountForm()},
        )

    def post(self, request: HttpRequest, token: str) -> HttpResponse:
        ip = audit.client_ip(request)
        try:
            if request.user.is_authenticated:
                membership = invitations.accept(raw=token, user=request.user, ip=ip)
            else:
                form = NewAccountForm(request.POST, email=self.invitation.email)
                if not form.is_valid():
                    context = {"invitation": self.invitation, "has_account": False, "form": form}
                    return render(request, "tenants/invitation_accept.html", context, status=400)
                membership = invitations.accept_as_new_user(
                    raw=token, password=form.cleaned_data["password"], full_name=form.cleaned_data["full_name"], ip=ip
                )
                from django.contrib.auth import login

                login(request, membership.user, backend="tenants.sso.backends.PasswordBackend")
        except ServiceError as error:
            return render(request, "tenants/invitation_error.html", {"error": error}, status=error.status)
        switch_tenant(request, membership.tenant.slug)
        messages.success(request, gettext("Welcome to %(name)s.") % {"name": membership.tenant.name})
        return redirect("portal:home")


class TokensView(TenantPageMixin, View):
    """The person's API tokens in the active tenant."""

    @staticmethod
    def writable_when_read_only(request: HttpRequest) -> bool:
        # Revoking ends access: a suspended tenant's people may still do that, never create a token.
        return request.POST.get("action") == "revoke"

    def tokens(self):
        return self.scoped(ApiToken.objects.filter(user=self.request.user))

    def get(self, request: HttpRequest) -> HttpResponse:
        return render(request, "tenants/tokens.html", {"tokens": self.tokens(), "form": TokenForm()})

    def post(self, request: HttpRequest) -> HttpResponse:
        ip = audit.client_ip(request)
        if request.POST.get("action") == "revoke":
            revoke = TokenRevokeForm(request.POST, tenant=request.tenant, user=request.user)
            if not revoke.is_valid():
                messages.error(request, " ".join(revoke.errors["token"]))
                context = {"tokens": self.tokens(), "form": TokenForm()}
                return render(request, "tenants/tokens.html", context, status=400)
            token = revoke.cleaned_data["token"]
            try:
                tokens.revoke_token(token=token, actor=request.user, ip=ip)
                messages.success(request, gettext("Token %(name)s revoked.") % {"name": token.name})
            except ServiceError as error:
                messages.error(request, error.detail)
            return redirect("tenants:tokens")
        form = TokenForm(request.POST)
        if not form.is_valid():
            return render(request, "tenants/tokens.html", {"tokens": self.tokens(), "form": form}, status=400)
        _, raw = tokens.create_token(membership=request.membership, name=form.cleaned_data["name"], ip=ip)
        context = {"tokens": self.tokens(), "form": TokenForm(), "new_token": raw}
        return render(request, "tenants/tokens.html", context)


class AuditView(TenantPageMixin, View):
    """Tenant admins: the audit log with filters (kind of event, action, person, dates)."""

    admin_required = True
    limit = 200

    def get(self, request: HttpRequest) -> HttpResponse:
        # Filters that do not parse are left out (the page shows the rest) rather than failing the page.
        filters = AuditPageFilterSet(request.GET, queryset=self.scoped(AuditEvent.objects.select_related("actor")))
        events = list(filters.qs[: self.limit])
        # Each row says what happened in words; the stored string stays beside it for the action filter.
        labels = dict(AuditAction.choices)
        for event in events:
            event.label = labels.get(event.action, event.action)
        context = {
            "events": events,
            "limit": self.limit,
            "categories": [(key, label) for key, (label, _) in audit.CATEGORIES.items()],
            **filters.entered(),
        }
        return render(request, "tenants/audit.html", context)


class PoliciesView(TenantPageMixin, View):
    """Tenant admins: 2FA, idle and session policies, quotas."""

    admin_required = True
    groups = [
        (_("Organisation"), ("name",)),
        (_("Sign-in"), ("require_2fa", "inactivity_logout_minutes")),
        (
            _("Idle desktops and sessions"),
            ("idle_timeout_minutes", "idle_cpu_threshold_percent", "idle_action", "max_session_hours"),
        ),
        (
            _("Quotas (0 means no limit)"),
            ("max_running_per_user", "quota_desktops", "quota_vcpus", "quota_ram_mib", "quota_disk_gib"),
        ),
        (_("Sizes"), ("resize_policy",)),
        (
            _("Consoles"),
            (
                "allow_admin_console_access",
                "recording_enabled",
                "recording_retention_days",
                "max_consoles_per_person",
                "max_consoles_per_tenant",
            ),
        ),
        (_("Clipboard and sound"), ("clipboard_to_desktop", "clipboard_from_desktop", "audio_enabled")),
        (_("Home folders"), ("home_disk_gib", "quota_home_gib", "allow_admin_file_access")),
        (_("Automation"), ("allow_automation",)),
        (_("Warm pools"), ("time_zone", "warm_hit_target_percent")),
        (_("Personal desktops"), ("warm_personal_desktops", "warm_personal_lead_minutes")),
    ]

    def render_form(self, request: HttpRequest, form: PoliciesForm, status: int = 200) -> HttpResponse:
        context = {"form": form, "policy_groups": self.groups}
        return render(request, "tenants/policies.html", context, status=status)

    def get(self, request: HttpRequest) -> HttpResponse:
        return self.render_form(request, PoliciesForm(instance=request.tenant))

    def post(self, request: HttpRequest) -> HttpResponse:
        form = PoliciesForm(request.POST, instance=request.tenant)
        if not form.is_valid():
            return self.render_form(request, form, status=400)
        changes = {field: form.cleaned_data[field] for field in form.changed_data}
        if changes:
            tenants.update_policies(
                tenant=request.tenant, changes=changes, actor=request.user, ip=audit.client_ip(request)
            )
        messages.success(request, gettext("Policies saved."))
        return redirect("tenants:policies")
