"""Firewall rules and the tenant's network policy over the API (tenant admins); thin over desktops.services.firewall."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers
from rest_framework.response import Response

from desktops.api.serializers import template_reference
from desktops.models import Desktop, FirewallRule
from desktops.services import firewall
from quetzal.api.fields import TenantScopedModelSerializer, TenantScopedPrimaryKeyRelatedField
from quetzal.api.serializers import Serializer
from quetzal.api.viewsets import TenantScopedViewSet
from tenants.choices import EgressPolicy
from tenants.services.audit import client_ip


class FirewallRuleSerializer(TenantScopedModelSerializer):
    """One rule; `template` or `desktop` (or neither, for the tenant's default list) is fixed at creation."""

    template = template_reference(required=False, allow_null=True)
    desktop = TenantScopedPrimaryKeyRelatedField(
        queryset=Desktop.objects.alive(), required=False, allow_null=True, not_found_detail="No such desktop."
    )
    scope = serializers.CharField(read_only=True)

    class Meta:
        model = FirewallRule
        fields = [
            "id",
            "scope",
            "template",
            "desktop",
            "position",
            "action",
            "cidr",
            "protocol",
            "port_start",
            "port_end",
            "description",
            "created_at",
        ]
        read_only_fields = ["id", "scope", "created_at"]

    def get_fields(self):
        fields = super().get_fields()
        if self.instance is not None:
            # A rule's scope never changes; a rule for somewhere else is a new rule.
            for name in ("template", "desktop"):
                fields[name].read_only = True
        return fields

    def validate(self, attrs):
        # The model's cross-field checks, on the values the rule would have, as field errors.
        candidate = FirewallRule(
            **{
                key: attrs.get(key, getattr(self.instance, key, None))
                for key in ("template", "desktop", "protocol", "port_start", "port_end")
            }
        )
        if candidate.protocol is None:
            candidate.protocol = "any"
        try:
            candidate.clean()
        except DjangoValidationError as error:
            raise serializers.ValidationError(error.message_dict) from None
        return attrs


def _values(data: dict) -> dict:
    return {key: value for key, value in data.items() if key in firewall.RULE_FIELDS}


class FirewallRuleViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    TenantScopedViewSet,
):
    """Ordered egress rules: the tenant's defaults, per template and per desktop (first match wins)."""

    queryset = FirewallRule.objects.select_related("template", "desktop")
    serializer_class = FirewallRuleSerializer
    admin_only = True

    def perform_create(self, serializer):
        data = serializer.validated_data
        serializer.instance = firewall.create_rule(
            tenant=self.request.tenant,
            actor=self.request.user,
            values=_values(data),
            template=data.get("template"),
            desktop=data.get("desktop"),
            ip=client_ip(self.request),
        )

    def perform_update(self, serializer):
        serializer.instance = firewall.update_rule(
            rule=serializer.instance,
            actor=self.request.user,
            values=_values(serializer.validated_data),
            ip=client_ip(self.request),
        )

    def perform_destroy(self, instance):
        firewall.delete_rule(rule=instance, actor=self.request.user, ip=client_ip(self.request))


class NetworkPolicySerializer(Serializer):
    egress_policy = serializers.ChoiceField(choices=EgressPolicy.choices)
    allow_intra_tenant_traffic = serializers.BooleanField()


class NetworkPolicyViewSet(TenantScopedViewSet):
    """What unmatched outbound traffic meets, and whether the tenant's desktops may reach each other."""

    serializer_class = NetworkPolicySerializer
    admin_only = True

    def get_queryset(self):
        return FirewallRule.objects.none()  # no rows here: the policy lives on the tenant

    def _answer(self, tenant) -> Response:
        return Response(NetworkPolicySerializer(tenant).data)

    @extend_schema(responses=NetworkPolicySerializer)
    def retrieve(self, request):
        return self._answer(request.tenant)

    @extend_schema(request=NetworkPolicySerializer, responses=NetworkPolicySerializer)
    def update(self, request):
        body = NetworkPolicySerializer(data=request.data)
        body.is_valid(raise_exception=True)
        tenant = firewall.set_network_policy(
            tenant=request.tenant, actor=request.user, ip=client_ip(request), **body.validated_data
        )
        return self._answer(tenant)
