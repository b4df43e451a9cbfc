"""The provisioning page's form: which directory groups give which role."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from quetzal.errors import FieldErrors
from quetzal.forms import Form
from tenants.scim import services

MAX_MAPPING_CHARS = 20_000


class MappingForm(Form):
    group_roles = forms.CharField(
        label=_("Groups and roles"),
        required=False,
        max_length=MAX_MAPPING_CHARS,
        widget=forms.Textarea(attrs={"rows": 4, "placeholder": "Quetzal Admins = admin\nIT = owner"}),
        help_text=_(
            "One line per directory group: the group's name = owner, admin or member. People in no listed group "
            "are members."
        ),
    )

    def clean_group_roles(self) -> dict[str, str]:
        try:
            return services.parse_mapping(self.cleaned_data["group_roles"])
        except FieldErrors as error:
            raise forms.ValidationError(error.errors["group_roles"], code="invalid_mapping") from error

    @staticmethod
    def text_of(mapping: dict[str, str]) -> str:
        return "\n".join(f"{group} = {role}" for group, role in mapping.items())
