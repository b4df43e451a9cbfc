"""What people read that Python writes: model field names and choices, form labels, help texts and choices.

Each must be a lazy translation (gettext_lazy, a `Promise`): a plain str was fixed in English when its module was
imported and stays English on a German page. Found from the code as it is (the project's app configs, every form
class its packages define), so a field or form added later is checked without anyone listing it here.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path

from django import forms
from django.apps import apps
from django.db import models
from django.db.models.fields import BLANK_CHOICE_DASH
from django.utils.functional import Promise

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("quetzal", "tenants", "hosts", "desktops", "billing")
# Apps not yet checked, each with the reason; the list only shrinks.
NOT_YET: dict[str, str] = {}
# Parameter parsers of the API: never rendered, their names are the API's (`page_size`, `max_width`).
NOT_RENDERED = (".api.",)
BLANK_LABELS = {label for _, label in BLANK_CHOICE_DASH}  # "---------": no words


def our_app_configs() -> list:
    """The project's own apps (not Django's or a library's), wherever their code lives."""
    found = []
    for config in apps.get_app_configs():
        path = Path(config.path).resolve()
        if path.is_relative_to(ROOT) and not path.is_relative_to(ROOT / ".venv") and config.label not in NOT_YET:
            found.append(config)
    return found


def our_models() -> list[type[models.Model]]:
    return [model for config in our_app_configs() for model in config.get_models()]


def untranslated_model(model: type[models.Model]) -> list[str]:
    """A model's names (the admin's headings, "No such desktop template in your organisation.") as plain str."""
    names = {"verbose_name": model._meta.verbose_name, "verbose_name_plural": model._meta.verbose_name_plural}
    return [f"{key} {value!r}" for key, value in names.items() if not isinstance(value, Promise)]


def our_model_fields() -> Iterator[tuple[str, models.Field]]:
    """(Model.field, field) for every field a model of ours declares (Django's own id and reverse relations aside)."""
    for config in our_app_configs():
        for model in config.get_models():
            for model_field in model._meta.get_fields():
                if not model_field.auto_created:  # reverse relations and Django's own id
                    yield f"{model._meta.label}.{model_field.name}", model_field


def _choice_labels(choices) -> Iterator[tuple[object, object]]:
    for value, label in choices or ():
        if isinstance(label, (list, tuple)):  # a named group of choices
            yield from _choice_labels(label)
        else:
            yield value, label


def _untranslated_choices(choices) -> list[str]:
    # A label that is its stored value is data shown as itself (a time zone such as "Europe/Berlin")
    return [
        str(label)
        for value, label in _choice_labels(choices)
        if not isinstance(label, Promise) and label != value and label not in BLANK_LABELS
    ]


def untranslated_model_field(model_field: models.Field) -> list[str]:
    """What of a model field a person reads (its name, help text, choices) is a plain str."""
    found = []
    if not isinstance(model_field.verbose_name, Promise):
        found.append(f"verbose_name {model_field.verbose_name!r}")
    if model_field.help_text and not isinstance(model_field.help_text, Promise):
        found.append(f"help_text {model_field.help_text!r}")
    found += [f"choice {label!r}" for label in _untranslated_choices(model_field.choices)]
    return found


def untranslated_form_field(form_field: forms.Field) -> list[str]:
    """What of a form field a person reads is a plain str; a field without a label shows its name, in English."""
    found = []
    if not form_field.widget.is_hidden and not isinstance(form_field.label, Promise):
        found.append(f"label {form_field.label!r}")
    if form_field.help_text and not isinstance(form_field.help_text, Promise):
        found.append(f"help_text {form_field.help_text!r}")
    if isinstance(form_field, forms.ChoiceField) and not isinstance(form_field, forms.ModelChoiceField):
        found += [f"choice {label!r}" for label in _untranslated_choices(form_field.choices)]
    # A hidden field's label nobody reads, but its errors are shown on the form all the same.
    found += [
        f"error {key} {message!r}"
        for key, message in form_field.error_messages.items()
        if isinstance(message, str) and not isinstance(message, Promise)
    ]
    return found


def _our_modules() -> Iterator[tuple[str, Path]]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if "tests" in parts or "migrations" in parts or "settings" in parts:
                continue
            yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts), path


def our_form_classes() -> list[type[forms.BaseForm]]:
    """Every form class our packages define (imported first, so a form nobody imports yet is found too)."""
    for module, path in _our_modules():
        if "forms" in path.read_text(encoding="utf-8"):
            importlib.import_module(module)

    def subclasses(cls: type) -> Iterator[type]:
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    return sorted(
        {
            cls
            for cls in subclasses(forms.BaseForm)
            if cls.__module__.split(".")[0] in PACKAGES
            and not any(part in f".{cls.__module__}." for part in NOT_RENDERED)
            and not any(f".{label}." in f".{cls.__module__}." for label in NOT_YET)
        },
        key=lambda cls: f"{cls.__module__}.{cls.__qualname__}",
    )
