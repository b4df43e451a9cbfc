"""Forms of the member portal pages."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from desktops.services.preferences import Quality, Scaling
from quetzal.forms import Form


class ConsolePreferencesForm(Form):
    scaling = forms.ChoiceField(choices=Scaling.choices, widget=forms.RadioSelect, label=_("Screen scaling"))
    quality = forms.ChoiceField(choices=Quality.choices, widget=forms.RadioSelect, label=_("Picture quality"))
