"""The scoped field classes themselves: they fail closed, refuse shared models, and never answer a 500."""

from __future__ import annotations

import pytest
from rest_framework import serializers

from desktops.api.serializers import CreateDesktopSerializer
from desktops.models import DesktopTemplate
from hosts.models import Image
from quetzal.api.fields import TenantScopedPrimaryKeyRelatedField
from quetzal.errors import NotFound
from quetzal.forms import TenantScopedModelChoiceField
from tenants.forms import MemberForm
from tests.fixtures import api_client
from tests.isolation_cases import _template


def test_it_resolves_nothing_without_a_request_tenant(alice):
    # Given alice's own template, and a serializer built without the request in its context
    template = _template(alice)
    body = CreateDesktopSerializer(data={"template": template.pk})
    # Then the id resolves to nothing: a forgotten context fails closed, never open
    with pytest.raises(NotFound):
        body.is_valid(raise_exception=True)


def test_it_binds_no_choices_until_the_form_has_a_tenant(alice):
    membership = alice.membership(alice.member)
    with pytest.raises(TypeError):
        MemberForm({"membership": membership.pk})  # the tenant is a required keyword
    form = MemberForm({"membership": membership.pk}, tenant=None)
    assert not form.is_valid() and list(form.fields["membership"].queryset) == []
    assert MemberForm({"membership": membership.pk}, tenant=alice.tenant).is_valid()


def test_it_refuses_to_scope_a_model_no_tenant_owns():
    with pytest.raises(TypeError):
        TenantScopedPrimaryKeyRelatedField(queryset=Image.objects.all())
    with pytest.raises(TypeError):
        TenantScopedModelChoiceField(Image.objects.all())


@pytest.mark.parametrize("value", ["abc", True, [1], {"pk": 1}, 10**30, -1, "\uff11\uff12", 1.5])
def test_it_answers_a_malformed_or_impossible_id_without_a_server_error(value, alice):
    response = api_client(alice.member, alice.tenant).post("/api/desktop/start", {"template": value}, format="json")
    assert response.status_code in (400, 404), (value, response.status_code, response.content)
    assert response.json()["code"] in ("invalid", "template_unavailable")


def test_it_scopes_each_id_of_an_id_list(alice, bob):
    # Given a list of template ids, one of them bob's private one
    class Body(serializers.Serializer):
        templates = TenantScopedPrimaryKeyRelatedField(queryset=DesktopTemplate.objects.all(), many=True)

    mine, theirs = _template(alice), _template(bob)

    class Request:
        tenant = alice.tenant

    assert Body(data={"templates": [mine.pk]}, context={"request": Request()}).is_valid()
    with pytest.raises(NotFound):
        Body(data={"templates": [mine.pk, theirs.pk]}, context={"request": Request()}).is_valid()


def test_it_takes_for_a_template_id_exactly_the_templates_the_tenant_may_launch(alice, bob):
    # Given a public template, alice's own, a disabled one of hers, and bob's private one
    public = DesktopTemplate.objects.create(name="Public", image=_template(alice).image)
    own, disabled, theirs = _template(alice), _template(alice), _template(bob)
    DesktopTemplate.objects.filter(pk=disabled.pk).update(enabled=False)

    class Request:
        tenant = alice.tenant

    def resolves(template) -> bool:
        try:
            return CreateDesktopSerializer(data={"template": template.pk}, context={"request": Request()}).is_valid()
        except NotFound:
            return False

    # Then a template id names a launchable template (public ones too), and nothing else
    assert (resolves(public), resolves(own), resolves(disabled), resolves(theirs)) == (True, True, False, False)
