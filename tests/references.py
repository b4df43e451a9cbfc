"""Every reference a request can write, found from the code: URL conf, serializers, forms, models, view sources.

The write-isolation tests (tests/test_api_isolation.py, desktops/tests/test_pages_permissions.py) are
generated from what this module finds, so a reference field added later needs a case there.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path

from django import forms
from django.apps import apps
from django.conf import settings
from django.db import models
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils.module_loading import autodiscover_modules
from rest_framework import serializers
from rest_framework.relations import ManyRelatedField, RelatedField

from tenants.models import Tenant, User
from tenants.querysets import is_tenant_owned

# Rows no tenant owns that every tenant may name: operators' images (a private template is built on one).
SHARED_MODELS: frozenset[str] = frozenset({"hosts.Image"})


@cache
def project_apps() -> tuple[str, ...]:
    """The installed apps that are this project's code (not Django's, not third parties')."""
    base = Path(settings.BASE_DIR).resolve()
    return tuple(
        config.name
        for config in apps.get_app_configs()
        if Path(config.path).resolve().is_relative_to(base) and ".venv" not in Path(config.path).parts
    )


def _is_project(cls: type) -> bool:
    return cls.__module__.split(".")[0] in project_apps() and ".tests" not in cls.__module__


def label(model: type[models.Model]) -> str:
    return model._meta.label


def scoped_models() -> list[type[models.Model]]:
    """Models whose rows belong to one tenant (people and tenants themselves included)."""
    found = [m for m in apps.get_models() if m._meta.app_config.name in project_apps() and is_tenant_owned(m)]
    return [*found, Tenant, User]


@cache
def reference_names() -> frozenset[str]:
    """Names a field that carries an id of a tenant's row would have, from the models and their foreign keys."""
    targets = {label(m) for m in scoped_models()}
    stems: set[str] = set()
    for model in scoped_models():
        stems.add(model._meta.model_name)
        stems.add(re.findall(r"[A-Z][a-z]*", model.__name__)[-1].lower())  # DesktopTemplate -> template
    for model in apps.get_models():
        for field in model._meta.get_fields():
            if field.is_relation and field.concrete and field.related_model and label(field.related_model) in targets:
                stems.add(field.name)
    return frozenset(f"{stem}{suffix}" for stem in stems for suffix in ("", "s", "_id", "_ids", "_pk"))


def _looks_like_an_id(name: str, field) -> bool:
    """An `_id`-style name, or a model's name on a form field or a numeric API field (API text is names)."""
    if name.endswith(("_id", "_ids", "_pk")):
        return True
    id_like = (serializers.IntegerField, serializers.UUIDField, serializers.ListField, forms.Field)
    return name in reference_names() and isinstance(field, id_like)


def _subclasses(cls: type) -> Iterator[type]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _import_the_code() -> None:
    """Load every view the URL conf names, and the modules they take serializers and forms from."""
    get_resolver().url_patterns  # noqa: B018  (importing the URL conf imports every view)
    autodiscover_modules("forms", "api.serializers", "api.views", "views")


# --- the API ---------------------------------------------------------------------------------


def api_viewsets() -> set[type]:
    """The view classes of every API route in the URL conf."""
    found: set[type] = set()

    def walk(patterns, namespace: str) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace)
            elif isinstance(pattern, URLPattern) and namespace.startswith("api:"):
                view = getattr(pattern.callback, "cls", None)
                if view is not None:
                    found.add(view)

    walk(get_resolver().url_patterns, "")
    return found


def project_serializers() -> list[type[serializers.BaseSerializer]]:
    """Every serializer class of the project: those the API viewsets name and those their actions build."""
    _import_the_code()
    defined = {cls for cls in _subclasses(serializers.BaseSerializer) if _is_project(cls)}
    # Serializers built with type() carry DRF's module name, so the viewsets' own are added by reference.
    named = {getattr(view, "serializer_class", None) for view in api_viewsets()} - {None}
    found = defined | named
    return sorted((cls for cls in found if not _is_a_base(cls)), key=_key)


def _is_a_base(cls: type) -> bool:
    """List wrappers and model serializers with no model yet (the bases in quetzal.api) have no fields."""
    return issubclass(cls, serializers.ListSerializer) or (
        issubclass(cls, serializers.ModelSerializer) and not hasattr(cls, "Meta")
    )


def _key(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def writable_fields(serializer_class: type[serializers.BaseSerializer]) -> Iterator[tuple[str, object]]:
    """(name, field) of every field a request body can set, list and many-related children unwrapped."""
    for name, field in serializer_class().fields.items():
        if field.read_only:
            continue
        while isinstance(field, serializers.ListField | ManyRelatedField):
            field = field.child if isinstance(field, serializers.ListField) else field.child_relation
        yield name, field


# Numeric fields whose names are a model's but which carry a quantity, never an id: each with its reason.
QUANTITIES = {
    "BeginUploadSerializer.size": "the upload's length in bytes (TemplateSize makes `size` a model name)",
}


def serializer_references() -> dict[str, object]:
    """'Serializer.field' -> field, for every writable field that names a row: related or id-like by name."""
    found: dict[str, object] = {}
    for cls in project_serializers():
        for name, field in writable_fields(cls):
            key = f"{cls.__name__}.{name}"
            if key in QUANTITIES and not isinstance(field, RelatedField):
                continue
            if isinstance(field, RelatedField) or _looks_like_an_id(name, field):
                assert key not in found, f"two serializers named {cls.__name__}: give them distinct names"
                found[key] = field
    return found


# --- the pages -------------------------------------------------------------------------------


def page_forms() -> list[type[forms.BaseForm]]:
    """Every form class of the project's pages (the operators' Django admin forms are for staff, not tenants)."""
    _import_the_code()
    found = {
        cls
        for cls in _subclasses(forms.BaseForm)
        if _is_project(cls) and not cls.__module__.endswith(".admin") and "base_fields" in vars(cls)
    }
    return sorted(found, key=_key)


# Text form fields whose names are a model's but which carry that row's text, never its id, and are matched
# only among the caller's tenant's rows by the service: each with its reason.
NAMES = {
    "LabelQuery.label": "a disposable run's label text; desktops.services.disposable matches it in the tenant only",
    "LabelFilter.label": "a disposable run's label text; desktops.services.disposable matches it in the tenant only",
}


def form_references() -> dict[str, forms.Field]:
    """'Form.field' -> field, for every field that names a row: model choices, or id-like by name."""
    found: dict[str, forms.Field] = {}
    for cls in page_forms():
        for name, field in cls.base_fields.items():
            if f"{cls.__name__}.{name}" in NAMES and type(field) in (forms.CharField, forms.RegexField):
                continue
            if isinstance(field, forms.ModelChoiceField) or _looks_like_an_id(name, field):
                key = f"{cls.__name__}.{name}"
                assert key not in found, f"two forms named {cls.__name__}: give them distinct names"
                found[key] = field
    return found


# --- ids read straight from a request body ---------------------------------------------------

BODIES = ("POST", "data")


def raw_body_ids() -> list[str]:
    """`request.POST.get("desktop")`-style reads of an id, which skip the scoped field classes."""
    found = []
    base = Path(settings.BASE_DIR)
    for top in sorted({app.split(".")[0] for app in project_apps()}):
        for path in sorted((base / top).rglob("*.py")):
            if "tests" in path.parts or "migrations" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                key = _body_key(node)
                if key in reference_names():
                    found.append(f"{path.relative_to(base)}:{node.lineno} reads {key!r} from the request body")
    return found


def _body_key(node: ast.AST) -> str | None:
    """The string key of `x.POST["k"]`, `x.POST.get("k")` or `x.data.getlist("k")`, if the node is one."""
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) and node.value.attr in BODIES:
        key = node.slice
    elif (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("get", "getlist", "pop")
        and isinstance(node.func.value, ast.Attribute)
        and node.func.value.attr in BODIES
        and node.args
    ):
        key = node.args[0]
    else:
        return None
    return key.value if isinstance(key, ast.Constant) and isinstance(key.value, str) else None


# --- what the tests assert of each reference -------------------------------------------------


def target_model(field) -> type[models.Model] | None:
    """The model a related or model-choice field resolves ids in."""
    queryset = getattr(field, "unscoped", None)
    if queryset is None:
        queryset = getattr(field, "queryset", None)
    return None if queryset is None else queryset.model


def is_shared(model: type[models.Model] | None) -> bool:
    """A model on the shared list, which really has no tenant of its own."""
    if model is None or label(model) not in SHARED_MODELS:
        return False
    assert not is_tenant_owned(model), f"{label(model)} is tenant-owned: take it off SHARED_MODELS"
    assert "tenant" not in {f.name for f in model._meta.get_fields()}, f"{label(model)} has a tenant field"
    return True


def database_rows() -> dict[str, list[dict]]:
    """Every row of every project model, to prove a refused write changed nothing at all."""
    return {
        label(model): list(model._base_manager.order_by("pk").values())
        for model in apps.get_models()
        if model._meta.app_config.name in project_apps()
    }
