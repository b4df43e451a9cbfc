"""Forms of the tenant pages."""

from __future__ import annotations

from django import forms
from django.contrib.auth.password_validation import validate_password

from quetzal.forms import Form, ModelForm, TenantScopedForm, TenantScopedModelChoiceField
from tenants.choices import Role
from tenants.models import ApiToken, Invitation, Membership, Tenant
from tenants.models.tenant import POLICY_FIELDS


class TenantCreateForm(Form):
    name = forms.CharField(max_length=100, label="Organisation name")
    slug = forms.SlugField(max_length=50, required=False, help_text="Short address; made from the name if empty.")


class InviteForm(Form):
    email = forms.EmailField()
    role = forms.ChoiceField(choices=Role.choices, initial=Role.MEMBER)


class MemberForm(TenantScopedForm):
    """Names one person of the active tenant (remove them)."""

    membership = TenantScopedModelChoiceField(
        Membership.objects.all(),
        widget=forms.HiddenInput,
        error_messages={"invalid_choice": "No such person in your organisation."},
    )


class RemoveMemberForm(MemberForm):
    """Removes one person of the active tenant, and (when ticked) their desktops in it."""

    delete_desktops = forms.BooleanField(required=False, label="Delete their desktops too")


class RoleForm(MemberForm):
    """Gives one person of the active tenant another role."""

    role = forms.ChoiceField(choices=Role.choices)


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
        label="Code",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True}),
    )


class NewAccountForm(Form):
    full_name = forms.CharField(max_length=150, required=False)
    password = forms.CharField(widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))

    def __init__(self, *args, email: str = "", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.email = email

    def clean_password(self) -> str:
        password = self.cleaned_data["password"]
        from tenants.models import User

        validate_password(password, User(email=self.email))
        return password


class TokenForm(Form):
    name = forms.CharField(max_length=100)


class PoliciesForm(ModelForm):
    class Meta:
        model = Tenant
        fields = list(POLICY_FIELDS)
        labels = {
            "name": "Organisation name",
            "require_2fa": "Require two-factor authentication",
            "inactivity_logout_minutes": "Sign out after idle minutes in the portal",
            "idle_timeout_minutes": "Idle timeout (minutes)",
            "idle_cpu_threshold_percent": "…and guest CPU below (%; 0 ignores CPU)",
            "idle_action": "When a desktop is idle",
            "max_session_hours": "Maximum session (hours)",
            "quota_desktops": "Desktops",
            "quota_vcpus": "Running vCPUs",
            "quota_ram_mib": "Running RAM (MiB)",
            "max_running_per_user": "Running desktops per person",
            "quota_disk_gib": "Desktop disks (GiB)",
            "resize_policy": "Who may choose sizes and resize",
            "allow_admin_console_access": "Admins may open members' consoles",
            "recording_enabled": "Record console sessions",
            "recording_retention_days": "Keep recordings (days)",
            "max_consoles_per_person": "Consoles open at once per person",
            "max_consoles_per_tenant": "Consoles open at once in the organisation",
            "clipboard_to_desktop": "Clipboard: paste into desktops",
            "clipboard_from_desktop": "Clipboard: copy out of desktops",
            "audio_enabled": "Desktop sound in the browser",
            "home_disk_gib": "Home disk per person (GiB)",
            "quota_home_gib": "All home disks together (GiB)",
            "allow_admin_file_access": "Admins may open members' home folders",
            "allow_automation": "Allow automation (screenshots and input through the API)",
        }
