"""The one tenant filter: a tenant sees its rows, no tenant sees none, and an unscoped model is refused."""

from __future__ import annotations

import pytest
from django import forms
from rest_framework import serializers

from desktops.models import Desktop, Pool
from desktops.tests.factories import DesktopFactory, PoolFactory
from hosts.models import Image
from quetzal.api.fields import TenantScopedModelSerializer, TenantScopedPrimaryKeyRelatedField
from quetzal.errors import NotFound
from quetzal.forms import TenantScopedForm, TenantScopedModelChoiceField, TenantScopedModelForm
from tenants.querysets import is_tenant_owned, scoped_to


def test_it_gives_each_tenant_its_own_rows_and_no_tenant_none(alice, bob):
    mine, theirs = DesktopFactory(world=alice), DesktopFactory(world=bob)
    assert list(Desktop.objects.for_tenant(alice.tenant)) == [mine]
    assert list(scoped_to(Desktop.objects.all(), bob.tenant)) == [theirs]
    assert list(Desktop.objects.for_tenant(None)) == []
    assert list(scoped_to(Desktop.objects.all(), None)) == []


def test_it_refuses_to_scope_rows_no_tenant_owns():
    assert is_tenant_owned(Desktop) and not is_tenant_owned(Image)
    with pytest.raises(TypeError) as refused:
        scoped_to(Image.objects.all(), None)
    assert str(refused.value) == "Image rows have no tenant scope (no for_tenant on its queryset)."


# API references


class _Request:
    def __init__(self, world, user=None):
        self.tenant = world.tenant
        self.user = user or world.member


def _pools(alice, bob):
    return PoolFactory(world=alice, name="Mine"), PoolFactory(world=bob, name="Theirs")


def test_it_resolves_an_api_reference_only_inside_the_requests_tenant(alice, bob):
    mine, theirs = _pools(alice, bob)

    class Body(serializers.Serializer):
        pool = TenantScopedPrimaryKeyRelatedField(queryset=Pool.objects.all())

    body = Body(data={"pool": mine.pk}, context={"request": _Request(alice)})
    assert body.is_valid() and body.validated_data["pool"] == mine
    # Another tenant's row is a 404 in words, as reading it would be
    with pytest.raises(NotFound) as refused:
        Body(data={"pool": theirs.pk}, context={"request": _Request(alice)}).is_valid()
    assert refused.value.code == "not_found"
    assert str(refused.value) == "No such pool in your organisation."
    # A request without a tenant resolves nothing
    with pytest.raises(NotFound):
        Body(data={"pool": mine.pk}, context={"request": object()}).is_valid()


def test_it_says_what_the_reference_names_when_told(alice, bob):
    _, theirs = _pools(alice, bob)

    class Body(serializers.Serializer):
        pool = TenantScopedPrimaryKeyRelatedField(
            queryset=Pool.objects.all(), not_found_code="pool_unknown", not_found_detail="No such pool here."
        )

    with pytest.raises(NotFound) as refused:
        Body(data={"pool": theirs.pk}, context={"request": _Request(alice)}).is_valid()
    assert (refused.value.code, str(refused.value)) == ("pool_unknown", "No such pool here.")


def test_it_keeps_a_malformed_reference_a_validation_error(alice):
    class Body(serializers.Serializer):
        pool = TenantScopedPrimaryKeyRelatedField(queryset=Pool.objects.all())

    body = Body(data={"pool": "abc"}, context={"request": _Request(alice)})
    assert not body.is_valid() and body.errors["pool"][0].code == "incorrect_type"


def test_it_narrows_a_reference_further_when_asked(alice):
    own = DesktopFactory(world=alice)
    colleagues = DesktopFactory(world=alice, user=alice.owner)

    class Body(serializers.Serializer):
        desktop = TenantScopedPrimaryKeyRelatedField(
            queryset=Desktop.objects.all(), narrow=lambda queryset, request: queryset.filter(user=request.user)
        )

    assert Body(data={"desktop": own.pk}, context={"request": _Request(alice)}).is_valid()
    with pytest.raises(NotFound):
        Body(data={"desktop": colleagues.pk}, context={"request": _Request(alice)}).is_valid()


def test_it_scopes_a_model_serializers_references_to_tenant_rows_only(alice, bob):
    class Body(TenantScopedModelSerializer):
        class Meta:
            model = Desktop
            fields = ["pool", "host"]

    fields = Body(context={"request": _Request(alice)}).fields
    assert type(fields["pool"]) is TenantScopedPrimaryKeyRelatedField
    # Hosts belong to no tenant: a plain reference (allow-listed in the isolation tests)
    assert type(fields["host"]) is serializers.PrimaryKeyRelatedField
    with pytest.raises(TypeError) as refused:
        TenantScopedPrimaryKeyRelatedField(queryset=Image.objects.all())
    assert str(refused.value) == "Image is not tenant-owned: it has no for_tenant scope."


# Page forms


def pool_choice() -> type[TenantScopedForm]:
    # Built in the test, not at import: the fields are made when the class is, and a field made once at
    # import would not show whether the field's own code (e.g. its messages) is right.
    class PoolChoice(TenantScopedForm):
        pool = TenantScopedModelChoiceField(Pool.objects.all(), error_messages={"required": "Pick a pool."})
        image = forms.ModelChoiceField(Image.objects.all(), required=False)

    return PoolChoice


def test_it_offers_and_accepts_only_the_forms_tenants_rows(alice, bob):
    mine, theirs = _pools(alice, bob)
    PoolChoice = pool_choice()
    form = PoolChoice({"pool": mine.pk}, tenant=alice.tenant)
    assert form.tenant == alice.tenant
    assert list(form.fields["pool"].queryset) == [mine]
    assert form.is_valid() and form.cleaned_data["pool"] == mine
    refused = PoolChoice({"pool": theirs.pk}, tenant=alice.tenant)
    assert not refused.is_valid()
    assert refused.errors["pool"] == ["No such pool in your organisation."]
    # The form's own messages are kept beside the scoped one
    assert PoolChoice({}, tenant=alice.tenant).errors["pool"] == ["Pick a pool."]


def test_it_leaves_choices_of_shared_rows_as_they_are(alice):
    image = Image.objects.create(name="Shared", source_path="/srv/shared.qcow2")
    assert list(pool_choice()({}, tenant=alice.tenant).fields["image"].queryset) == [image]


def test_it_passes_the_forms_other_arguments_on(alice, bob):
    # Given the data, a prefix and initial values as keywords, as views pass them
    mine, _ = _pools(alice, bob)
    form = pool_choice()(data={"choice-pool": mine.pk}, prefix="choice", initial={"pool": mine.pk}, tenant=alice.tenant)
    # Then the form is bound to that data under that prefix, and scoped all the same
    assert form.is_bound and form.prefix == "choice" and form.initial == {"pool": mine.pk}
    assert form.is_valid() and form.cleaned_data["pool"] == mine


def test_it_offers_nothing_before_a_tenant_is_bound(alice, bob):
    _pools(alice, bob)
    field = TenantScopedModelChoiceField(Pool.objects.all())
    assert list(field.queryset) == []
    with pytest.raises(TypeError) as refused:
        TenantScopedModelChoiceField(Image.objects.all())
    assert str(refused.value) == "Image is not tenant-owned: it has no for_tenant scope."


def test_it_keeps_a_model_fields_limit_on_the_choices(alice):
    wanted, other = PoolFactory(world=alice, name="A"), PoolFactory(world=alice, name="B")
    field = TenantScopedModelChoiceField(Pool.objects.all(), limit_choices_to={"name": "A"})
    field.bind(alice.tenant)
    assert list(field.queryset) == [wanted] and other not in field.queryset


def test_it_scopes_a_model_forms_references_to_tenant_rows_only(alice, bob):
    mine, theirs = _pools(alice, bob)

    class DesktopForm(TenantScopedModelForm):
        class Meta(TenantScopedModelForm.Meta):
            model = Desktop
            fields = ["pool", "host"]

    form = DesktopForm(tenant=alice.tenant)
    assert isinstance(form.fields["pool"], TenantScopedModelChoiceField)
    assert list(form.fields["pool"].queryset) == [mine]
    assert type(form.fields["host"]) is forms.ModelChoiceField
    refused = DesktopForm({"pool": theirs.pk}, tenant=alice.tenant)
    assert not refused.is_valid() and refused.errors["pool"] == ["No such pool in your organisation."]


def test_it_keeps_what_the_model_forms_meta_says_of_a_scoped_reference(alice):
    # Given a model form whose Meta labels, helps and words the errors of a tenant-scoped reference
    class DesktopForm(TenantScopedModelForm):
        class Meta(TenantScopedModelForm.Meta):
            model = Desktop
            fields = ["pool"]
            labels = {"pool": "Desktop pool"}
            help_texts = {"pool": "The pool it belongs to."}
            error_messages = {"pool": {"invalid_choice": "Not one of your pools."}}

    field = DesktopForm(tenant=alice.tenant).fields["pool"]
    # Then the scoped field says it, and keeps the Meta's wording over its own
    assert isinstance(field, TenantScopedModelChoiceField)
    assert (field.label, field.help_text) == ("Desktop pool", "The pool it belongs to.")
    assert field.error_messages["invalid_choice"] == "Not one of your pools."
