"""Every serializer, form and FilterSet the project defines, found from the code (for generated tests)."""

from __future__ import annotations

import importlib
import pkgutil

import django_filters
from django import forms
from django.urls import get_resolver
from rest_framework import serializers

PROJECT_APPS = ("quetzal", "tenants", "hosts", "desktops", "billing")
# Modules that define request shapes: importing these (and the URL conf) finds every serializer and form.
SHAPE_MODULES = {"api", "admin", "forms", "filters", "serializers", "views", "pagination", "schema"}


def _import_shape_modules() -> None:
    _ = get_resolver().url_patterns  # imports every view, and so every serializer and form they use
    for app in PROJECT_APPS:
        package = importlib.import_module(app)
        for module in pkgutil.walk_packages(package.__path__, prefix=f"{app}."):
            parts = set(module.name.split("."))
            if parts & {"tests", "migrations", "management"} or not parts & SHAPE_MODULES:
                continue
            importlib.import_module(module.name)


def _subclasses(base: type) -> list[type]:
    found, pending = [], [base]
    while pending:
        for sub in pending.pop().__subclasses__():
            pending.append(sub)
            module = sub.__module__
            if module.split(".")[0] in PROJECT_APPS and ".tests" not in module and sub not in found:
                found.append(sub)
    return sorted(found, key=lambda cls: f"{cls.__module__}.{cls.__qualname__}")


def project_serializers() -> list[type[serializers.BaseSerializer]]:
    _import_shape_modules()
    return [
        cls
        for cls in _subclasses(serializers.BaseSerializer)
        if not issubclass(cls, serializers.ListSerializer)
        and not (issubclass(cls, serializers.ModelSerializer) and not hasattr(cls, "Meta"))  # an abstract base
    ]


def project_forms() -> list[type[forms.BaseForm]]:
    """Forms defined in the project's modules (forms FilterSets build at run time are checked with them)."""
    _import_shape_modules()
    return _subclasses(forms.BaseForm)


def project_filtersets() -> list[type[django_filters.FilterSet]]:
    _import_shape_modules()
    return _subclasses(django_filters.FilterSet)


def label(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"
