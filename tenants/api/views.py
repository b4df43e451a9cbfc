"""API views of the tenants app: thin, scoped by the base viewset, writing through services."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from quetzal.api.viewsets import TenantScopedViewSet
from tenants.api import serializers
from tenants.filters import AuditEventFilterSet
from tenants.models import ApiToken, AuditEvent, Invitation, Membership, Tenant
from tenants.services import audit, invitations, members, tenants, tokens


class TenantViewSet(TenantScopedViewSet):
    """The active tenant: its settings for members, its policies for admins."""

    queryset = Tenant.objects.none()  # the schema's model; the real scope is get_queryset's
    serializer_class = serializers.TenantSerializer
    admin_actions = frozenset({"update_current"})

    def get_queryset(self):  # the tenant itself is the scope, not a tenant-owned row
        return Tenant.objects.filter(pk=getattr(self.request.tenant, "pk", None))

    @extend_schema(responses=serializers.TenantSerializer)
    @action(detail=False, methods=["get"], url_path="current")
    def current(self, request):
        return Response(serializers.TenantSerializer(request.tenant).data)

    @extend_schema(request=serializers.TenantSerializer, responses=serializers.TenantSerializer)
    @current.mapping.patch
    def update_current(self, request):
        serializer = serializers.TenantSerializer(request.tenant, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        tenant = tenants.update_policies(
            tenant=request.tenant,
            changes=dict(serializer.validated_data),
            actor=request.user,
            ip=audit.client_ip(request),
        )
        return Response(serializers.TenantSerializer(tenant).data)

    @extend_schema(responses=serializers.MyMembershipSerializer(many=True))
    @action(detail=False, methods=["get"], url_path="mine", pagination_class=None, filter_backends=[])
    def mine(self, request):
        """Every tenant the caller belongs to."""
        mine = Membership.objects.filter(user=request.user).select_related("tenant")
        return Response(serializers.MyMembershipSerializer(mine, many=True).data)


class MemberViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, TenantScopedViewSet):
    """People in the active tenant; admins change roles and remove people."""

    queryset = Membership.objects.select_related("user", "tenant")
    serializer_class = serializers.MembershipSerializer
    admin_actions = frozenset({"partial_update", "destroy"})

    @extend_schema(request=serializers.RoleSerializer, responses=serializers.MembershipSerializer)
    def partial_update(self, request, pk=None):
        membership = self.get_object()
        body = serializers.RoleSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        if "role" not in body.validated_data:  # a PATCH that changes nothing
            return Response(serializers.MembershipSerializer(membership).data)
        membership = members.change_role(
            membership=membership,
            role=body.validated_data["role"],
            actor_membership=request.membership,
            ip=audit.client_ip(request),
        )
        return Response(serializers.MembershipSerializer(membership).data)

    def perform_destroy(self, instance):
        members.remove_member(
            membership=instance, actor_membership=self.request.membership, ip=audit.client_ip(self.request)
        )


class InvitationViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    TenantScopedViewSet,
):
    """Invitations of the active tenant (admins only)."""

    queryset = Invitation.objects.all()
    serializer_class = serializers.InvitationSerializer
    admin_only = True

    def create(self, request):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        invitation, _ = invitations.invite(
            tenant=request.tenant,
            actor_membership=request.membership,
            base_url=request.build_absolute_uri("/")[:-1],
            ip=audit.client_ip(request),
            **serializer.validated_data,
        )
        return Response(self.get_serializer(invitation).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance):
        invitations.revoke(invitation=instance, actor=self.request.user, ip=audit.client_ip(self.request))


class ApiTokenViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    TenantScopedViewSet,
):
    """The caller's own API tokens in the active tenant."""

    queryset = ApiToken.objects.all()
    serializer_class = serializers.ApiTokenSerializer
    # Revoking ends access: it stays open in a suspended tenant (tenants.readonly).
    writable_when_read_only = frozenset({"destroy"})

    def get_queryset(self):
        return super().get_queryset().filter(user=self.request.user)

    @extend_schema(responses={201: serializers.NewApiTokenSerializer})
    def create(self, request):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        token, raw = tokens.create_token(
            membership=request.membership, ip=audit.client_ip(request), **serializer.validated_data
        )
        data = serializers.NewApiTokenSerializer(token).data
        data["token"] = raw
        return Response(data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance):
        tokens.revoke_token(token=instance, actor=self.request.user, ip=audit.client_ip(self.request))


class AuditEventViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """The active tenant's audit log, newest first (admins only)."""

    queryset = AuditEvent.objects.select_related("actor")
    serializer_class = serializers.AuditEventSerializer
    filterset_class = AuditEventFilterSet
    admin_only = True
