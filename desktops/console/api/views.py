"""Console API views: tickets for the console WebSocket, console sessions and recordings (tenant admins)."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.response import Response

from desktops.console import reasons, recordings, tickets
from desktops.console.filters import ConsoleFilterSet
from desktops.console.models import ConsoleSession, Recording
from desktops.models import Desktop
from quetzal.api.serializers import ModelSerializer, ResponseSerializer
from quetzal.api.viewsets import TenantScopedViewSet
from tenants.services.audit import client_ip


class TicketSerializer(ResponseSerializer):
    ticket = serializers.CharField(help_text="One-time secret; offer it as the WebSocket subprotocol below.")
    protocols = serializers.ListField(child=serializers.CharField(), help_text="Subprotocols to open the socket with.")
    websocket = serializers.CharField(help_text="Path of the console WebSocket.")
    expires_in = serializers.IntegerField(help_text="Seconds the ticket stays valid.")
    admin_access = serializers.BooleanField()


class ConsoleSessionSerializer(ModelSerializer):
    desktop_name = serializers.CharField(source="desktop.name", read_only=True)
    person = serializers.EmailField(source="user.email", read_only=True, default=None, allow_null=True)
    recording = serializers.PrimaryKeyRelatedField(read_only=True, default=None, allow_null=True)
    end_reason_text = serializers.SerializerMethodField(help_text="Why the session ended, as a sentence.")

    class Meta:
        model = ConsoleSession
        fields = [
            "id",
            "desktop",
            "desktop_name",
            "person",
            "admin_access",
            "client_ip",
            "user_agent",
            "started_at",
            "last_seen_at",
            "ended_at",
            "end_reason",
            "end_reason_text",
            "bytes_to_desktop",
            "bytes_from_desktop",
            "recording",
        ]
        read_only_fields = fields

    def get_end_reason_text(self, session: ConsoleSession) -> str:
        return reasons.describe(session.end_reason) if session.ended_at else ""


class RecordingSerializer(ModelSerializer):
    desktop_name = serializers.CharField(source="desktop.name", read_only=True)
    person = serializers.EmailField(source="user.email", read_only=True, default=None, allow_null=True)
    replay_url = serializers.SerializerMethodField()

    class Meta:
        model = Recording
        fields = [
            "id",
            "desktop",
            "desktop_name",
            "person",
            "session",
            "started_at",
            "ended_at",
            "size_bytes",
            "frames",
            "duration_ms",
            "replay_url",
        ]
        read_only_fields = fields

    def get_replay_url(self, recording: Recording) -> str:
        return reverse("portal:recording-replay", kwargs={"pk": recording.pk})


class ConsoleTicketViewSet(TenantScopedViewSet):
    """A console ticket for a desktop the caller may open (their own; a member's for admins if allowed)."""

    queryset = Desktop.objects.select_related("tenant", "user")
    serializer_class = TicketSerializer

    def get_queryset(self):
        desktops = super().get_queryset().alive()
        return desktops if self.request.membership.is_admin else desktops.owned_by(self.request.user)

    @extend_schema(request=None, responses={201: TicketSerializer})
    def create(self, request, pk=None):
        desktop = self.get_object()
        issued = tickets.issue(
            desktop=desktop,
            user=request.user,
            membership=request.membership,
            session_key=request.session.session_key,
            ip=client_ip(request),
        )
        body = {
            "ticket": issued.token,
            "protocols": [tickets.BINARY_PROTOCOL, issued.protocol],
            "websocket": f"/ws/desktops/{desktop.pk}/console/",
            "expires_in": issued.ttl_s,
            "admin_access": issued.ticket.admin_access,
        }
        return Response(body, status=status.HTTP_201_CREATED)


class ConsoleSessionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Console sessions of the tenant, newest first (tenant admins)."""

    queryset = ConsoleSession.objects.select_related("desktop", "user", "recording")
    serializer_class = ConsoleSessionSerializer
    filterset_class = ConsoleFilterSet
    admin_only = True


class RecordingViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, TenantScopedViewSet):
    """Recorded console sessions (tenant admins); deleting one removes its file."""

    queryset = Recording.objects.select_related("desktop", "user", "tenant")
    serializer_class = RecordingSerializer
    filterset_class = ConsoleFilterSet
    admin_only = True

    def perform_destroy(self, instance: Recording) -> None:
        recordings.delete(recording=instance, actor=self.request.user, ip=client_ip(self.request))
