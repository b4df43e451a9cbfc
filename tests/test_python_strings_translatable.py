"""What Python writes on a page is translatable too: field names, choices, form labels and help texts.

The templates are checked by tests/test_templates_translatable.py; this is the other half. The scan
(tests/python_text.py) walks every model of the project's apps and every form class of its packages, so a field,
choice or form added later in plain English fails here. The German pages then show
no English label at all (desktops/tests/test_pages_in_german.py).
"""

from __future__ import annotations

import pytest
from django import forms
from django.db import models
from django.utils.translation import gettext_lazy

from tests.python_text import (
    NOT_YET,
    our_app_configs,
    our_form_classes,
    our_model_fields,
    our_models,
    untranslated_form_field,
    untranslated_model,
    untranslated_model_field,
)

# Another name for gettext_lazy, so makemessages does not take this file's examples into the catalogue
lazy = gettext_lazy


def test_every_model_field_has_a_translatable_name_help_text_and_choices():
    fields = dict(our_model_fields())
    # The walk reaches every app of ours (guards the test from passing on an empty list)
    apps = {"tenants", "sso", "hosts", "desktops", "console", "metrics", "billing"}
    assert {c.label for c in our_app_configs()} >= apps
    named = {"tenants.Tenant.idle_action", "desktops.ScalingPlan.peak_unit", "billing.Invoice.status"}
    assert named | {"metrics.HostRollup.resolution"} <= set(fields)
    found = [f"{name}: {what}" for name, field in fields.items() for what in untranslated_model_field(field)]
    assert found == [], "Wrap these in gettext_lazy (and translate them in locale/de):\n" + "\n".join(found)


def test_every_model_has_translatable_names():
    models_found = our_models()
    assert len(models_found) > 30
    found = [f"{model._meta.label}: {what}" for model in models_found for what in untranslated_model(model)]
    assert found == [], "Give these a Meta verbose_name and verbose_name_plural in gettext_lazy:\n" + "\n".join(found)


def test_every_form_has_translatable_labels_help_texts_and_choices():
    classes = our_form_classes()
    names = {f"{c.__module__}.{c.__qualname__}" for c in classes}
    assert {"desktops.manage.forms.ScalingPlanForm", "tenants.forms.PoliciesForm", "hosts.admin.ImageAddForm"} <= names
    found = [
        f"{cls.__module__}.{cls.__qualname__}.{name}: {what}"
        for cls in classes
        for name, form_field in cls.base_fields.items()
        for what in untranslated_form_field(form_field)
    ]
    assert found == [], "Give these a gettext_lazy label / help text (and translate them in locale/de):\n" + "\n".join(
        found
    )


def test_every_app_left_out_says_why():
    assert all(reason.strip() for reason in NOT_YET.values())


@pytest.mark.parametrize(
    ("model_field", "expected"),
    [
        (models.CharField(max_length=9), ["verbose_name None"]),  # no name: Django makes one from the attribute
        (models.CharField("colour", max_length=9), ["verbose_name 'colour'"]),
        (models.IntegerField(verbose_name=lazy("size"), help_text="In GiB."), ["help_text 'In GiB.'"]),
        (
            models.CharField(verbose_name=lazy("kind"), choices=[("a", lazy("All")), ("o", "One")]),
            ["choice 'One'"],
        ),
    ],
)
def test_it_reports_a_model_field_in_plain_english(model_field, expected):
    assert untranslated_model_field(model_field) == expected


def test_it_leaves_translated_fields_and_data_shown_as_itself_alone():
    zone = models.CharField(verbose_name=lazy("time zone"), choices=[("Europe/Berlin", "Europe/Berlin")])
    assert untranslated_model_field(zone) == []
    grouped = forms.ChoiceField(label=lazy("Size"), choices=[("Small", [("s", lazy("One vCPU"))])])
    assert untranslated_form_field(grouped) == []
    assert untranslated_form_field(forms.CharField(widget=forms.HiddenInput)) == []  # nobody reads its label
    hidden_with_its_own_error = forms.CharField(widget=forms.HiddenInput, error_messages={"invalid": "No such one."})
    assert untranslated_form_field(hidden_with_its_own_error) == ["error invalid 'No such one.'"]


@pytest.mark.parametrize(
    ("form_field", "expected"),
    [
        (forms.EmailField(), ["label None"]),  # shown as "Email", in English, whatever the language
        (forms.CharField(label="Name"), ["label 'Name'"]),
        (forms.IntegerField(label=lazy("Size"), help_text="In GiB."), ["help_text 'In GiB.'"]),
        (forms.ChoiceField(label=lazy("Day"), choices=[("1", "Mon")]), ["choice 'Mon'"]),
    ],
)
def test_it_reports_a_form_field_in_plain_english(form_field, expected):
    assert untranslated_form_field(form_field) == expected
