"""Tenant admins' egress firewall: ordered rules per tenant, template and desktop, and the tenant's network policy.

Every change is audited and re-applied to the affected desktops' filters by a task; libvirt applies a
redefined filter to running guests at once, so no desktop needs a reboot.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import Max
from django.utils.translation import gettext

from desktops import dispatch
from desktops.models import Desktop, DesktopTemplate, FirewallRule
from desktops.models.firewall import MAX_RULES_PER_SCOPE
from desktops.services import quotas
from quetzal.errors import LimitExceeded, NotFound, ServiceError
from tenants import events
from tenants.choices import EgressPolicy
from tenants.models import Tenant

# What a caller may set on a rule; the scope (template or desktop) is fixed at creation.
RULE_FIELDS = ("position", "action", "cidr", "protocol", "port_start", "port_end", "description")


def _scope_rules(tenant: Tenant, *, template: DesktopTemplate | None, desktop: Desktop | None):
    rules = FirewallRule.objects.for_tenant(tenant)
    if desktop is not None:
        return rules.filter(desktop=desktop)
    if template is not None:
        return rules.filter(template=template, desktop__isnull=True)
    return rules.filter(template__isnull=True, desktop__isnull=True)


def affected_desktops(tenant: Tenant, *, template_id: int | None = None, desktop_id: int | None = None) -> list[int]:
    """Ids of the tenant's live desktops whose filter a rule of this scope is part of."""
    desktops = Desktop.objects.for_tenant(tenant).alive()
    if desktop_id is not None:
        desktops = desktops.filter(pk=desktop_id)
    elif template_id is not None:
        desktops = desktops.filter(template_id=template_id)
    return list(desktops.values_list("pk", flat=True))


def _apply_later(tenant: Tenant, rule: FirewallRule | None = None) -> None:
    ids = (
        affected_desktops(tenant)
        if rule is None
        else affected_desktops(tenant, template_id=rule.template_id, desktop_id=rule.desktop_id)
    )
    if ids:
        dispatch.apply_firewall(ids)


def _snapshot(rule: FirewallRule) -> dict[str, Any]:
    return {key: getattr(rule, key) for key in RULE_FIELDS} | {"scope": rule.scope}


def _validated(rule: FirewallRule) -> None:
    """Field and cross-field checks; a Django ValidationError becomes a 400 with field errors in the API."""
    rule.full_clean(exclude=["tenant", "template", "desktop"])


def _check_scope(tenant: Tenant, template: DesktopTemplate | None, desktop: Desktop | None) -> None:
    """Services re-check what they are given (rule 8): the scope must be the tenant's own."""
    if template is not None and desktop is not None:
        raise ServiceError(gettext("A rule belongs to a template or to a desktop, not both."), code="invalid_scope")
    if desktop is not None and not Desktop.objects.for_tenant(tenant).alive().filter(pk=desktop.pk).exists():
        raise NotFound(gettext("No such desktop in your organisation."))
    if template is not None and not DesktopTemplate.objects.launchable_by(tenant).filter(pk=template.pk).exists():
        raise NotFound(gettext("No such template in your organisation."))


def create_rule(
    *,
    tenant: Tenant,
    actor,
    values: dict[str, Any],
    template: DesktopTemplate | None = None,
    desktop: Desktop | None = None,
    ip: str | None = None,
) -> FirewallRule:
    """Add a rule to the tenant's default list, a template's or a desktop's; positions default to the end."""
    unknown = set(values) - set(RULE_FIELDS)
    if unknown:
        raise ServiceError(
            gettext("Unknown rule field: %(join)s.") % {"join": ", ".join(sorted(unknown))}, code="invalid_field"
        )
    _check_scope(tenant, template, desktop)
    with transaction.atomic():
        # The tenant's lock keeps the per-scope limit exact under concurrent requests.
        quotas.lock(tenant)
        existing = _scope_rules(tenant, template=template, desktop=desktop)
        if existing.count() >= MAX_RULES_PER_SCOPE:
            raise LimitExceeded(
                gettext("At most %(MAX_RULES_PER_SCOPE)s rules per list.")
                % {"MAX_RULES_PER_SCOPE": MAX_RULES_PER_SCOPE},
                code="too_many_rules",
            )
        rule = FirewallRule(tenant=tenant, template=template, desktop=desktop, **values)
        if "position" not in values:
            rule.position = (existing.aggregate(m=Max("position"))["m"] or 0) + 10
        _validated(rule)
        rule.save()
        events.firewall_rule_changed(
            actor=actor, tenant=tenant, rule=rule, change="create", after=_snapshot(rule), ip=ip
        )
        _apply_later(tenant, rule)
    return rule


def update_rule(*, rule: FirewallRule, actor, values: dict[str, Any], ip: str | None = None) -> FirewallRule:
    """Change a rule's match, action or position."""
    unknown = set(values) - set(RULE_FIELDS)
    if unknown:
        raise ServiceError(
            gettext("Unknown rule field: %(join)s.") % {"join": ", ".join(sorted(unknown))}, code="invalid_field"
        )
    with transaction.atomic():
        rule = FirewallRule.objects.select_for_update().get(pk=rule.pk)
        before = _snapshot(rule)
        for key, value in values.items():
            setattr(rule, key, value)
        _validated(rule)
        rule.save()
        events.firewall_rule_changed(
            actor=actor, tenant=rule.tenant, rule=rule, change="update", before=before, after=_snapshot(rule), ip=ip
        )
        _apply_later(rule.tenant, rule)
    return rule


def delete_rule(*, rule: FirewallRule, actor, ip: str | None = None) -> None:
    """Remove a rule; the desktops it applied to lose it live."""
    with transaction.atomic():
        rule = FirewallRule.objects.select_for_update().get(pk=rule.pk)
        events.firewall_rule_changed(
            actor=actor, tenant=rule.tenant, rule=rule, change="delete", before=_snapshot(rule), ip=ip
        )
        _apply_later(rule.tenant, rule)
        rule.delete()


def set_network_policy(
    *, tenant: Tenant, actor, egress_policy: str, allow_intra_tenant_traffic: bool, ip: str | None = None
) -> Tenant:
    """Change what unmatched outbound traffic meets, and whether the tenant's desktops may reach each other."""
    if egress_policy not in EgressPolicy.values:
        raise ServiceError(f"Unknown egress policy {egress_policy!r}.", code="invalid_policy")
    with transaction.atomic():
        locked = quotas.lock(tenant)
        before = {
            "egress_policy": locked.egress_policy,
            "allow_intra_tenant_traffic": locked.allow_intra_tenant_traffic,
        }
        after = {"egress_policy": egress_policy, "allow_intra_tenant_traffic": bool(allow_intra_tenant_traffic)}
        Tenant.objects.filter(pk=tenant.pk).update(**after)
        if before != after:
            events.network_policy_changed(actor=actor, tenant=tenant, before=before, after=after, ip=ip)
            _apply_later(tenant)
    tenant.refresh_from_db(fields=["egress_policy", "allow_intra_tenant_traffic"])
    return tenant
