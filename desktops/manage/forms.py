"""Forms of the tenant admin (manage) pages."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from desktops.choices import KeyboardLayout
from desktops.models import DesktopTemplate, Pool, ScalingException, ScalingPlan, TemplateSize
from desktops.services import autoscale, scaling
from desktops.services.templates import RANGE_FIELDS, SIZE_FIELDS, TENANT_FIELDS, launchable
from hosts.choices import CopyState
from hosts.models import Image
from quetzal.forms import Form, ModelForm, TenantScopedForm, TenantScopedModelChoiceField, TenantScopedModelForm
from tenants.choices import ResizePolicy


class PoolForm(TenantScopedModelForm):
    """A pool of one template the tenant may launch (the template field is scoped to `tenant=`)."""

    template = TenantScopedModelChoiceField(DesktopTemplate.objects.all(), scope=launchable, label=_("Template"))

    class Meta(TenantScopedModelForm.Meta):
        model = Pool
        fields = ["template", "name", "min_ready", "max_size", "warm_state", "idle_action", "enabled"]
        help_texts = {
            "min_ready": _("Desktops kept warm and unassigned, ready to hand out."),
            "max_size": _("Most desktops the pool may hold, handed out or not."),
            "idle_action": _("What happens to a handed-out desktop when its person leaves it idle."),
        }

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["name"].required = False
        self.fields["name"].help_text = gettext("Empty: the template's name.")
        if self.instance.pk:
            # A pool is one template's; another template is another pool. A disabled field never reads the
            # request, so it shows the pool's own template even when that one is no longer offered.
            self.fields["template"].disabled = True
            self.fields["template"].queryset = DesktopTemplate.objects.filter(pk=self.instance.template_id)

    def clean(self) -> dict:
        data = super().clean()
        low, high = data.get("min_ready"), data.get("max_size")
        if low is not None and high is not None and low > high:
            self.add_error("min_ready", gettext("Must not be more than the maximum size."))
        return data


class TemplateForm(ModelForm):
    """What a private template is and its default size; the ranges people pick from are on its sizes page."""

    class Meta:
        model = DesktopTemplate
        fields = [key for key in TENANT_FIELDS if key not in RANGE_FIELDS]
        widgets = {
            "description": forms.TextInput(),
            "cloud_init_password": forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
            "cloud_init_ssh_key": forms.Textarea(attrs={"rows": 2}),
            "cloud_init_packages": forms.Textarea(attrs={"rows": 3}),
            "tpm": forms.Select(choices=[("", _("The OS family's default")), ("True", _("On")), ("False", _("Off"))]),
        }
        labels = {
            "os_family": _("Operating system"),
            "memory_mib": _("Memory (MiB)"),
            "disk_gib": _("Disk (GiB)"),
            "vcpus": _("vCPUs"),
            "gpu_kind": _("GPU"),
            "gpu_mdev_type": _("vGPU type"),
            "cloud_init_user": _("User name"),
            "cloud_init_password": _("Password"),
            "cloud_init_ssh_key": _("SSH public key"),
            "cloud_init_packages": _("Packages to install"),
            "enabled": _("Offered to people"),
            "tpm": _("TPM 2.0"),
            "virtio_drivers": _("Windows has the virtio drivers"),
            "automation_exec_enabled": _("Scripts may run commands in its desktops (guest agent)"),
            "keyboard_layout": _("The guest's keyboard layout"),
        }

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["image"].queryset = Image.objects.filter(copies__state=CopyState.READY).distinct()
        if self.instance.pk:
            self.fields["cloud_init_password"].help_text = gettext("Empty: keep the current password.")
        # Added after scripts that post this form were written: one that does not send it keeps the layout.
        self.fields["keyboard_layout"].required = False

    def clean_keyboard_layout(self) -> str:
        return self.cleaned_data.get("keyboard_layout") or self.instance.keyboard_layout or KeyboardLayout.US

    def service_values(self) -> dict:
        """The cleaned fields for the service; an empty password on edit keeps the stored one."""
        values = {key: self.cleaned_data[key] for key in TENANT_FIELDS if key in self.cleaned_data}
        if self.instance.pk and not values.get("cloud_init_password"):
            values.pop("cloud_init_password", None)
        return values


class SizeRangesForm(ModelForm):
    """The ranges a person may pick a custom size from; empty: the template's default only, for that part."""

    class Meta:
        model = DesktopTemplate
        fields = list(RANGE_FIELDS)
        labels = {
            "min_vcpus": _("Fewest vCPUs"),
            "max_vcpus": _("Most vCPUs"),
            "min_memory_mib": _("Least RAM (MiB)"),
            "max_memory_mib": _("Most RAM (MiB)"),
            "max_disk_gib": _("Largest disk (GiB)"),
        }

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        template = self.instance
        defaults = {
            "min_vcpus": template.vcpus,
            "max_vcpus": template.vcpus,
            "min_memory_mib": template.memory_mib,
            "max_memory_mib": template.memory_mib,
            "max_disk_gib": template.disk_gib,
        }
        for name, default in defaults.items():
            self.fields[name].widget.attrs["placeholder"] = str(default)
        self.fields["max_disk_gib"].help_text = gettext(
            "Disks start at the default %(disk_gib)s GiB and only grow."
        ) % {"disk_gib": template.disk_gib}

    def clean(self) -> dict:
        data = super().clean()
        template = self.instance
        for low_name, high_name, default, unit in (
            ("min_vcpus", "max_vcpus", template.vcpus, "vCPU"),
            ("min_memory_mib", "max_memory_mib", template.memory_mib, "MiB"),
        ):
            low, high = data.get(low_name), data.get(high_name)
            if low is not None and high is not None and low > high:
                self.add_error(low_name, gettext("Must not be more than the most."))
            elif low is not None and low > default:
                self.add_error(
                    low_name,
                    gettext("Must not be more than the default size's %(default)s %(unit)s.")
                    % {"default": default, "unit": unit},
                )
            elif high is not None and high < default:
                self.add_error(
                    high_name,
                    gettext("Must not be less than the default size's %(default)s %(unit)s.")
                    % {"default": default, "unit": unit},
                )
        top = data.get("max_disk_gib")
        if top is not None and top < template.disk_gib:
            self.add_error(
                "max_disk_gib",
                gettext("Must not be less than the default disk, %(disk_gib)s GiB.") % {"disk_gib": template.disk_gib},
            )
        return data


class TemplateSizeForm(TenantScopedModelForm):
    """A named size of a tenant's template; the instance carries the template (from the page, never the form)."""

    class Meta(TenantScopedModelForm.Meta):
        model = TemplateSize
        fields = list(SIZE_FIELDS)
        labels = {"vcpus": _("vCPUs"), "memory_mib": _("Memory (MiB)"), "disk_gib": _("Disk (GiB)")}
        help_texts = {"name": _("What people see, e.g. Large.")}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.template = self.instance.template if self.instance.template_id else None
        if self.template is None:
            return
        disk = self.fields["disk_gib"]
        disk.help_text = gettext("At least the template's %(disk_gib)s GiB.") % {"disk_gib": self.template.disk_gib}
        disk.widget.attrs["min"] = str(self.template.disk_gib)
        if not self.instance.pk:
            template = self.template
            self.initial.update(vcpus=template.vcpus, memory_mib=template.memory_mib, disk_gib=template.disk_gib)

    def clean_disk_gib(self) -> int | None:
        value = self.cleaned_data.get("disk_gib")
        if self.template is not None and value is not None and value < self.template.disk_gib:
            raise forms.ValidationError(
                gettext("Must be at least the template's %(disk_gib)s GiB.") % {"disk_gib": self.template.disk_gib}
            )
        return value


class ResizePolicyForm(Form):
    resize_policy = forms.ChoiceField(
        choices=ResizePolicy.choices, label=_("Who may pick a size and resize"), widget=forms.RadioSelect
    )


class NewMemberDesktopForm(TenantScopedForm):
    """The "desktop for every new member" policy: a template the tenant may launch, or none (off)."""

    template = TenantScopedModelChoiceField(
        DesktopTemplate.objects.all(),
        scope=launchable,
        required=False,
        empty_label=_("No desktop (off)"),
        help_text=_("Who joins (an invitation, a first single sign-on) finds a stopped desktop of it, made for them."),
        label=_("Template"),
    )
    enabled = forms.BooleanField(required=False, initial=True, label=_("On"))


class ScalingPlanForm(ModelForm):
    """A pool's scaling plan: the weekdays it runs, four phases, and whether prediction raises it."""

    days = forms.MultipleChoiceField(
        choices=[(str(day), label) for day, label in scaling.WEEKDAY_LABELS.items()],
        widget=forms.CheckboxSelectMultiple,
        label=_("Plan days"),
        help_text=_("Other days are off-peak all day."),
    )

    class Meta:
        model = ScalingPlan
        fields = list(autoscale.PLAN_FIELDS)
        widgets = {
            f"{phase}_start": forms.TimeInput(attrs={"type": "time"}, format="%H:%M") for phase in scaling.PHASES
        }
        labels = {
            **{f"{phase}_start": _("Starts") for phase in scaling.PHASES},
            **{f"{phase}_minimum": _("Warm at least") for phase in scaling.PHASES},
            **{f"{phase}_unit": _("Counted in") for phase in scaling.PHASES},
            "enabled": _("Follow this plan (off: keep Min ready)"),
            "release_idle": _("Release idle warm desktops at ramp-down"),
            "stop_in_use": _("Stop desktops people hold at ramp-down"),
            "notice_minutes": _("Notice to a connected person (minutes, 0: none)"),
            "defer_minutes": _('"Keep working" puts the stop off by (minutes, 0: not allowed)'),
            "prediction_enabled": _("Predict demand from the claim history"),
            "lead_minutes": _("Refill lead time (minutes)"),
        }

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.initial["days"] = list(self.instance.days or "")

    def clean_days(self) -> str:
        return "".join(sorted(self.cleaned_data["days"]))


class ScalingExceptionForm(ModelForm):
    """A closure (whole days) or a weekly slot; the pool is the page's, never the form's."""

    class Meta:
        model = ScalingException
        fields = list(autoscale.EXCEPTION_FIELDS)
        widgets = {
            "first_day": forms.DateInput(attrs={"type": "date"}),
            "last_day": forms.DateInput(attrs={"type": "date"}),
            "start_time": forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
            "end_time": forms.TimeInput(attrs={"type": "time"}, format="%H:%M"),
            "weekday": forms.Select(choices=[("", "—"), *scaling.WEEKDAY_LABELS.items()]),
        }
        labels = {"first_day": _("From (closure)"), "last_day": _("To (closure; empty: one day)"), "unit": _("as")}
        help_texts = {"minimum": _("Warm desktops held meanwhile (a slot only ever raises the plan's).")}
