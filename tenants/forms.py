"""Forms of the tenant pages."""

from __future__ import annotations

from django import forms
from django.contrib.auth.password_validation import validate_password
from django.utils.translation import gettext_lazy as _

from quetzal.forms import Form, ModelForm, TenantScopedForm, TenantScopedModelChoiceField
from tenants.choices import Role
from tenants.models import ApiToken, Invitation, Membership, Tenant
from tenants.models.tenant import POLICY_FIELDS


class TenantCreateForm(Form):
    name = forms.CharField(max_length=100, label=_("Organisation name"))
    slug = forms.SlugField(
        max_length=50,
        required=False,
        help_text=_("Short address; made from the name if empty."),
        label=_("Short address"),
    )


class InviteForm(Form):
    email = forms.EmailField(label=_("Email"))
    role = forms.ChoiceField(choices=Role.choices, initial=Role.MEMBER, label=_("Role"))


class MemberForm(TenantScopedForm):
    """Names one person of the active tenant (remove them)."""

    membership = TenantScopedModelChoiceField(
        Membership.objects.all(),
        widget=forms.HiddenInput,
        error_messages={"invalid_choice": _("No such person in your organisation.")},
    )


class RemoveMemberForm(MemberForm):
    """Removes one person of the active tenant, and (when ticked) their desktops in it."""

    delete_desktops = forms.BooleanField(required=False, label=_("Delete their desktops too"))


class RoleForm(MemberForm):
    """Gives one person of the active tenant another role."""

    role = forms.ChoiceField(choices=Role.choices, label=_("Role"))


class InvitationForm(TenantScopedForm):
    """Names one invitation of the active tenant (withdraw it)."""

    invitation = TenantScopedModelChoiceField(Invitation.objects.all(), widget=forms.HiddenInput)


class TokenRevokeForm(TenantScopedForm):
    """Names one of the person's own API tokens in the active tenant."""

    token = TenantScopedModelChoiceField(ApiToken.objects.all(), widget=forms.HiddenInput)

    def __init__(self, *args, user, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["token"].queryset = self.fields["token"].queryset.filter(user=user)


class CodeForm(Form):
    code = forms.CharField(
        max_length=16,
        label=_("Code"),
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True}),
    )


class NewAccountForm(Form):
    full_name = forms.CharField(max_length=150, required=False, label=_("Full name"))
    password = forms.CharField(widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}), label=_("Password"))

    def __init__(self, *args, email: str = "", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.email = email

    def clean_password(self) -> str:
        password = self.cleaned_data["password"]
        from tenants.models import User

        validate_password(password, User(email=self.email))
        return password


class TokenForm(Form):
    name = forms.CharField(max_length=100, label=_("Name"))


class PoliciesForm(ModelForm):
    class Meta:
        model = Tenant
        fields = list(POLICY_FIELDS)
        labels = {
            "name": _("Organisation name"),
            "require_2fa": _("Require two-factor authentication"),
            "inactivity_logout_minutes": _("Sign out after idle minutes in the portal"),
            "idle_timeout_minutes": _("Idle timeout (minutes)"),
            "idle_cpu_threshold_percent": _("…and guest CPU below (%; 0 ignores CPU)"),
            "idle_action": _("When a desktop is idle"),
            "max_session_hours": _("Maximum session (hours)"),
            "quota_desktops": _("Desktops"),
            "quota_vcpus": _("Running vCPUs"),
            "quota_ram_mib": _("Running RAM (MiB)"),
            "max_running_per_user": _("Running desktops per person"),
            "quota_disk_gib": _("Desktop disks (GiB)"),
            "resize_policy": _("Who may choose sizes and resize"),
            "allow_admin_console_access": _("Admins may open members' consoles"),
            "recording_enabled": _("Record console sessions"),
            "recording_retention_days": _("Keep recordings (days)"),
            "max_consoles_per_person": _("Consoles open at once per person"),
            "max_consoles_per_tenant": _("Consoles open at once in the organisation"),
            "clipboard_to_desktop": _("Clipboard: paste into desktops"),
            "clipboard_from_desktop": _("Clipboard: copy out of desktops"),
            "audio_enabled": _("Desktop sound in the browser"),
            "home_disk_gib": _("Home disk per person (GiB)"),
            "quota_home_gib": _("All home disks together (GiB)"),
            "allow_admin_file_access": _("Admins may open members' home folders"),
            "allow_automation": _("Allow automation (screenshots and input through the API)"),
            "warm_personal_desktops": _("Warm personal desktops before their owners usually arrive"),
            "warm_personal_lead_minutes": _("Minutes ahead of the usual arrival"),
        }
