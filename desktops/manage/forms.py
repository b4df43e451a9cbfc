"""Forms of the tenant admin (manage) pages."""

from __future__ import annotations

from django import forms

from desktops.models import DesktopTemplate, Pool
from desktops.services.templates import TENANT_FIELDS, launchable
from hosts.choices import CopyState
from hosts.models import Image
from quetzal.forms import ModelForm, TenantScopedModelChoiceField, TenantScopedModelForm


class PoolForm(TenantScopedModelForm):
    """A pool of one template the tenant may launch (the template field is scoped to `tenant=`)."""

    template = TenantScopedModelChoiceField(DesktopTemplate.objects.all(), scope=launchable)

    class Meta(TenantScopedModelForm.Meta):
        model = Pool
        fields = ["template", "name", "min_ready", "max_size", "warm_state", "idle_action", "enabled"]
        help_texts = {
            "min_ready": "Desktops kept warm and unassigned, ready to hand out.",
            "max_size": "Most desktops the pool may hold, handed out or not.",
            "idle_action": "What happens to a handed-out desktop when its person leaves it idle.",
        }

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["name"].required = False
        self.fields["name"].help_text = "Empty: the template's name."
        if self.instance.pk:
            # A pool is one template's; another template is another pool. A disabled field never reads the
            # request, so it shows the pool's own template even when that one is no longer offered.
            self.fields["template"].disabled = True
            self.fields["template"].queryset = DesktopTemplate.objects.filter(pk=self.instance.template_id)

    def clean(self) -> dict:
        data = super().clean()
        low, high = data.get("min_ready"), data.get("max_size")
        if low is not None and high is not None and low > high:
            self.add_error("min_ready", "Must not be more than the maximum size.")
        return data


class TemplateForm(ModelForm):
    class Meta:
        model = DesktopTemplate
        fields = list(TENANT_FIELDS)
        widgets = {
            "description": forms.TextInput(),
            "cloud_init_password": forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
            "cloud_init_ssh_key": forms.Textarea(attrs={"rows": 2}),
            "cloud_init_packages": forms.Textarea(attrs={"rows": 3}),
        }
        labels = {
            "os_family": "Operating system",
            "memory_mib": "Memory (MiB)",
            "disk_gib": "Disk (GiB)",
            "vcpus": "vCPUs",
            "min_vcpus": "Smallest vCPUs people may pick",
            "max_vcpus": "Largest vCPUs people may pick",
            "min_memory_mib": "Smallest memory (MiB)",
            "max_memory_mib": "Largest memory (MiB)",
            "max_disk_gib": "Largest disk (GiB)",
            "gpu_kind": "GPU",
            "gpu_mdev_type": "vGPU type",
            "cloud_init_user": "User name",
            "cloud_init_password": "Password",
            "cloud_init_ssh_key": "SSH public key",
            "cloud_init_packages": "Packages to install",
            "enabled": "Offered to people",
        }

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["image"].queryset = Image.objects.filter(copies__state=CopyState.READY).distinct()
        if self.instance.pk:
            self.fields["cloud_init_password"].help_text = "Empty: keep the current password."

    def service_values(self) -> dict:
        """The cleaned fields for the service; an empty password on edit keeps the stored one."""
        values = {key: self.cleaned_data[key] for key in TENANT_FIELDS if key in self.cleaned_data}
        if self.instance.pk and not values.get("cloud_init_password"):
            values.pop("cloud_init_password", None)
        return values
