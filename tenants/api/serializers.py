"""API shapes of tenants, members, invitations, tokens and audit events."""

from __future__ import annotations

from django.utils import timezone
from django.utils.translation import gettext
from rest_framework import serializers

from quetzal.api.serializers import ModelSerializer, Serializer
from tenants.choices import Role
from tenants.models import ApiToken, AuditEvent, Invitation, Membership, Tenant
from tenants.models.tenant import POLICY_FIELDS


class TenantSerializer(ModelSerializer):
    class Meta:
        model = Tenant
        fields = ["id", "slug", "status", *POLICY_FIELDS]
        read_only_fields = ["id", "slug", "status"]


class MembershipSerializer(ModelSerializer):
    email = serializers.EmailField(source="user.email", read_only=True)
    full_name = serializers.CharField(source="user.full_name", read_only=True)

    class Meta:
        model = Membership
        fields = ["id", "email", "full_name", "role", "created_at"]
        read_only_fields = ["id", "email", "full_name", "created_at"]


class RoleSerializer(Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


class MyMembershipSerializer(ModelSerializer):
    tenant = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    tenant_name = serializers.CharField(source="tenant.name", read_only=True)

    class Meta:
        model = Membership
        fields = ["tenant", "tenant_name", "role"]
        read_only_fields = fields


class InvitationSerializer(ModelSerializer):
    class Meta:
        model = Invitation
        fields = ["id", "email", "role", "created_at", "expires_at", "accepted_at", "revoked_at"]
        read_only_fields = ["id", "created_at", "expires_at", "accepted_at", "revoked_at"]


class ApiTokenSerializer(ModelSerializer):
    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "scope", "created_at", "last_used_at", "expires_at", "revoked_at"]
        # Automation tokens are made at /api/v1/automation-tokens/, which names what they may drive.
        read_only_fields = ["id", "prefix", "scope", "created_at", "last_used_at", "revoked_at"]

    def validate_expires_at(self, value):
        # A token born expired is a mistake in the caller's clock or script, never what they meant.
        if value is not None and value <= timezone.now():
            raise serializers.ValidationError(gettext("The expiry must be in the future."), code="token_expiry_past")
        return value


class NewApiTokenSerializer(ApiTokenSerializer):
    token = serializers.CharField(read_only=True, help_text="The secret; shown only this once.")

    class Meta(ApiTokenSerializer.Meta):
        fields = [*ApiTokenSerializer.Meta.fields, "token"]


class AuditEventSerializer(ModelSerializer):
    actor = serializers.EmailField(source="actor.email", read_only=True, default=None, allow_null=True)

    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "action",
            "actor",
            "target_type",
            "target_id",
            "target_repr",
            "ip_address",
            "data",
            "created_at",
        ]
        read_only_fields = fields
