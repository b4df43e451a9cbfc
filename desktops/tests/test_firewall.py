"""Firewall rules: validated, ordered, tenant-scoped, audited, and re-applied to the desktops they touch."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from desktops import dispatch
from desktops.api.firewall import FirewallRuleSerializer
from desktops.models import FirewallRule
from desktops.models.firewall import MAX_RULES_PER_SCOPE
from desktops.services import firewall, network
from desktops.tests.factories import DesktopFactory, DesktopTemplateFactory
from quetzal.errors import LimitExceeded, NotFound
from tenants.models import AuditEvent
from tests.fixtures import api_client

RULES = reverse("api:firewall-rule-list")
POLICY = reverse("api:network-policy")


@pytest.fixture
def applied(monkeypatch) -> list[list[int]]:
    """The desktop ids of every re-application the services queue (run when their transaction commits)."""
    calls: list[list[int]] = []
    monkeypatch.setattr(dispatch, "send_on_commit", lambda name, *args, **kw: calls.append(list(args[0])))
    return calls


def test_it_orders_a_desktops_rules_most_specific_first(alice):
    template = DesktopTemplateFactory()
    desktop = DesktopFactory(world=alice, template=template)
    # Given a rule at each level, written tenant first
    tenant_rule = firewall.create_rule(
        tenant=alice.tenant, actor=alice.admin, values={"action": "allow", "cidr": "0.0.0.0/0"}
    )
    template_rule = firewall.create_rule(
        tenant=alice.tenant, actor=alice.admin, template=template, values={"action": "deny", "cidr": "10.0.0.0/8"}
    )
    own = firewall.create_rule(
        tenant=alice.tenant, actor=alice.admin, desktop=desktop, values={"action": "allow", "cidr": "10.1.0.0/16"}
    )
    # Then the desktop's own comes first, then its template's, then the tenant's
    assert network.effective_rules(desktop) == [own, template_rule, tenant_rule]
    # And another desktop of the same template gets the template's and the tenant's only
    assert network.effective_rules(DesktopFactory(world=alice, template=template)) == [template_rule, tenant_rule]


def test_it_audits_every_change_and_reapplies_only_the_desktops_concerned(alice, applied):
    template = DesktopTemplateFactory()
    mine = DesktopFactory(world=alice, template=template)
    other = DesktopFactory(world=alice)
    # When a desktop rule is added, changed and removed
    rule = firewall.create_rule(
        tenant=alice.tenant, actor=alice.admin, desktop=mine, values={"action": "deny", "cidr": "192.0.2.0/24"}
    )
    firewall.update_rule(rule=rule, actor=alice.admin, values={"protocol": "tcp", "port_start": 22})
    firewall.delete_rule(rule=rule, actor=alice.admin)
    # Then each is one audit event with what changed, and only that desktop's filter is re-applied
    events = list(AuditEvent.objects.filter(tenant=alice.tenant, action__startswith="firewall.").order_by("id"))
    assert [e.action for e in events] == ["firewall.rule.create", "firewall.rule.update", "firewall.rule.delete"]
    assert events[1].data["before"]["protocol"] == "any" and events[1].data["after"]["port_start"] == 22
    assert events[0].data["scope"] == "desktop" and events[0].data["desktop"] == mine.pk
    assert applied == [[mine.pk]] * 3
    # When the tenant's default list changes, then every live desktop of the tenant is re-applied
    firewall.create_rule(tenant=alice.tenant, actor=alice.admin, values={"action": "allow", "cidr": "0.0.0.0/0"})
    assert sorted(applied[-1]) == sorted([mine.pk, other.pk])


def test_it_changes_the_network_policy_audited_and_live(alice, bob, applied):
    desktop = DesktopFactory(world=alice)
    DesktopFactory(world=bob)
    tenant = firewall.set_network_policy(
        tenant=alice.tenant, actor=alice.owner, egress_policy="deny_all", allow_intra_tenant_traffic=True
    )
    assert (tenant.egress_policy, tenant.allow_intra_tenant_traffic) == ("deny_all", True)
    event = AuditEvent.objects.get(action="network.policy")
    assert event.data == {
        "before": {"egress_policy": "allow_all", "allow_intra_tenant_traffic": False},
        "after": {"egress_policy": "deny_all", "allow_intra_tenant_traffic": True},
    }
    assert applied == [[desktop.pk]]
    # Saving the same policy again changes nothing and records nothing
    firewall.set_network_policy(
        tenant=alice.tenant, actor=alice.owner, egress_policy="deny_all", allow_intra_tenant_traffic=True
    )
    assert AuditEvent.objects.filter(action="network.policy").count() == 1 and len(applied) == 1


def test_it_refuses_another_tenants_desktop_or_private_template(alice, bob):
    theirs = DesktopFactory(world=bob)
    private = DesktopTemplateFactory(visibility="tenant", tenant=bob.tenant)
    with pytest.raises(NotFound):
        firewall.create_rule(
            tenant=alice.tenant, actor=alice.admin, desktop=theirs, values={"action": "deny", "cidr": "0.0.0.0/0"}
        )
    with pytest.raises(NotFound):
        firewall.create_rule(
            tenant=alice.tenant, actor=alice.admin, template=private, values={"action": "deny", "cidr": "0.0.0.0/0"}
        )
    assert not FirewallRule.objects.exists()


def test_it_bounds_the_rules_of_one_list(alice):
    FirewallRule.objects.bulk_create(
        FirewallRule(tenant=alice.tenant, action="deny", cidr=f"10.0.{n}.0/24", position=n)
        for n in range(MAX_RULES_PER_SCOPE)
    )
    with pytest.raises(LimitExceeded) as refused:
        firewall.create_rule(tenant=alice.tenant, actor=alice.admin, values={"action": "deny", "cidr": "10.9.0.0/16"})
    assert refused.value.code == "too_many_rules"


def test_it_validates_in_the_service_too(alice):
    with pytest.raises(ValidationError) as refused:
        firewall.create_rule(
            tenant=alice.tenant,
            actor=alice.admin,
            values={"action": "deny", "cidr": "10.0.0.0/8", "protocol": "icmp", "port_start": 5},
        )
    assert "protocol" in refused.value.message_dict
    assert not FirewallRule.objects.exists()


# --- the API ------------------------------------------------------------------------------------


def test_it_manages_rules_through_the_api_for_admins_only(alice, bob, applied):
    desktop = DesktopFactory(world=alice)
    admin = api_client(alice.admin, alice.tenant)
    body = {"desktop": desktop.pk, "action": "deny", "cidr": "192.0.2.0/24", "protocol": "tcp", "port_start": 22}
    created = admin.post(RULES, body, format="json")
    assert created.status_code == 201, created.json()
    rule = created.json()
    assert (rule["scope"], rule["desktop"], rule["port_start"], rule["port_end"]) == ("desktop", desktop.pk, 22, None)
    detail = reverse("api:firewall-rule-detail", args=[rule["id"]])
    changed = admin.patch(detail, {"port_end": 23, "desktop": None}, format="json")
    # The scope is fixed: naming another desktop (or none) on update changes nothing
    assert changed.status_code == 200 and changed.json()["port_end"] == 23 and changed.json()["desktop"] == desktop.pk
    assert [r["id"] for r in admin.get(RULES).json()["results"]] == [rule["id"]]
    # Members may not read or write rules; bob's admin does not see alice's
    member = api_client(alice.member, alice.tenant)
    assert member.get(RULES).status_code == 403 and member.post(RULES, body, format="json").status_code == 403
    assert api_client(bob.admin, bob.tenant).get(detail).status_code == 404
    assert admin.delete(detail).status_code == 204
    assert not FirewallRule.objects.exists()


# One or more values each field must refuse with a 400 naming that field; a new writable field fails the
# coverage test below until it has its own bad values here.
BAD_VALUES: dict[str, list[object]] = {
    "template": ["abc", {"id": 1}],
    "desktop": ["abc", [1]],
    "position": [-1, 10_001, "first"],
    "action": ["permit", ""],
    "cidr": ["10.0.0.0/33", "10.0.0.1/8", "example.com", "::/0", "", "1" * 19],
    "protocol": ["gre", "TCP"],
    "port_start": [0, 65_536, "ssh"],
    "port_end": [0, 65_536],
    "description": ["x" * 101],
}


def _writable(serializer_class) -> set[str]:
    return {name for name, field in serializer_class().fields.items() if not field.read_only}


def test_it_has_bad_values_for_every_writable_rule_field():
    assert set(BAD_VALUES) == _writable(FirewallRuleSerializer)


@pytest.mark.parametrize(("field", "value"), [(f, v) for f, values in BAD_VALUES.items() for v in values])
def test_it_answers_a_bad_rule_field_with_a_400_naming_it(alice, field, value):
    base = {"action": "deny", "cidr": "192.0.2.0/24", "protocol": "tcp", "port_start": 80, "port_end": 81}
    response = api_client(alice.admin, alice.tenant).post(RULES, {**base, field: value}, format="json")
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "invalid" and field in body["errors"], body
    assert not FirewallRule.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"protocol": "icmp", "port_start": 1}, "protocol"),
        ({"protocol": "any", "port_start": 1}, "protocol"),
        ({"protocol": "tcp", "port_start": 90, "port_end": 80}, "port_end"),
        ({"protocol": "udp", "port_end": 80}, "port_start"),
    ],
)
def test_it_refuses_ports_that_do_not_fit_the_protocol(alice, body, field):
    response = api_client(alice.admin, alice.tenant).post(
        RULES, {"action": "deny", "cidr": "0.0.0.0/0", **body}, format="json"
    )
    assert response.status_code == 400 and field in response.json()["errors"], response.json()


def test_it_reads_and_sets_the_network_policy_over_the_api(alice, bob, applied):
    admin = api_client(alice.admin, alice.tenant)
    assert admin.get(POLICY).json() == {"egress_policy": "allow_all", "allow_intra_tenant_traffic": False}
    changed = admin.put(POLICY, {"egress_policy": "deny_all", "allow_intra_tenant_traffic": False}, format="json")
    assert changed.status_code == 200 and changed.json()["egress_policy"] == "deny_all"
    for body, field in (
        ({"egress_policy": "sometimes", "allow_intra_tenant_traffic": False}, "egress_policy"),
        ({"egress_policy": "allow_all", "allow_intra_tenant_traffic": "maybe"}, "allow_intra_tenant_traffic"),
    ):
        bad = admin.put(POLICY, body, format="json")
        assert bad.status_code == 400 and set(bad.json()["errors"]) == {field}, bad.json()
    assert api_client(alice.member, alice.tenant).get(POLICY).status_code == 403
    assert api_client(bob.admin, bob.tenant).get(POLICY).json()["egress_policy"] == "allow_all"
