"""Desktop API: thin views over the desktops services, scoped by the tenant base viewset."""

from __future__ import annotations

from django.utils.translation import gettext
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from desktops.api import serializers as s
from desktops.choices import STOPPABLE_STATES, OperationKind
from desktops.filters import OperationFilterSet
from desktops.models import Desktop, DesktopTemplate, Operation, Pool
from desktops.services import idle, launch, pools, ramp_down, readiness, sizes
from desktops.services.requests import request_action, request_create, request_stop
from desktops.services.resize import request_resize
from desktops.services.templates import launchable
from quetzal.api.viewsets import TenantScopedViewSet
from quetzal.errors import ServiceError
from tenants.services.audit import client_ip

# What DesktopSerializer reads besides the row: fetched with it, not one query per field.
DESKTOP_READ = Desktop.objects.select_related("template", "user", "host", "tenant").prefetch_related(
    "snapshots", "labels"
)


def accepted(desktop: Desktop, operation: Operation | None) -> Response:
    """202 with the desktop and the operation to follow (or 200 when nothing had to happen)."""
    desktop = DESKTOP_READ.get(pk=desktop.pk)  # as the action left it, read once with what the answer shows
    return answer(desktop, operation)


def answer(desktop: Desktop, operation: Operation | None, *, addresses: dict | None = None) -> Response:
    """accepted() for a desktop that carries what the answer shows already; `addresses` as DesktopSerializer's."""
    body = {
        "desktop": s.DesktopSerializer(desktop, context={"addresses": addresses}).data,
        "operation": s.OperationSerializer(operation).data if operation else None,
    }
    return Response(body, status=status.HTTP_202_ACCEPTED if operation else status.HTTP_200_OK)


class TemplateViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Templates this person may launch: public ones and the tenant's own."""

    queryset = DesktopTemplate.objects.select_related("image")
    serializer_class = s.TemplateSerializer

    def get_queryset(self):
        # Not the base's owned-by scope: people launch the public templates too.
        return DesktopTemplate.objects.launchable_by(self.request.tenant).select_related("image")


class VisibleDesktopsMixin:
    """Members see their own desktops; tenant admins see the whole tenant's."""

    def visible(self, queryset):
        if self.request.membership.is_admin:
            return queryset
        return queryset.filter(**{self.owner_field: self.request.user})


class DesktopViewSet(VisibleDesktopsMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Desktops: create, read, delete, and lifecycle actions that answer 202 with an operation."""

    queryset = DESKTOP_READ
    serializer_class = s.DesktopSerializer
    owner_field = "user"

    def get_queryset(self):
        return self.visible(super().get_queryset().alive())

    @extend_schema(request=s.CreateDesktopSerializer, responses={202: s.AcceptedSerializer})
    def create(self, request):
        body = s.CreateDesktopSerializer(data=request.data, context=self.get_serializer_context())
        body.is_valid(raise_exception=True)
        template = body.validated_data["template"]
        desktop, operation = request_create(
            tenant=request.tenant,
            user=request.user,
            template=template,
            actor=request.user,
            name=body.validated_data.get("name", ""),
            start=body.validated_data["start"],
            size=sizes.resolve(template, **body.size_arguments()),
            ip=client_ip(request),
        )
        return accepted(desktop, operation)

    @extend_schema(responses={202: s.AcceptedSerializer})
    def destroy(self, request, pk=None):
        desktop = self.get_object()
        operation = request_action(
            desktop=desktop, kind=OperationKind.DELETE, actor=request.user, ip=client_ip(request)
        )
        return accepted(desktop, operation)

    @extend_schema(responses={200: s.ReadinessSerializer})
    @action(detail=True, methods=["get"])
    def readiness(self, request, pk=None):
        """Ready for input, or booting for how long: the launcher and the console wait on this."""
        return Response(s.ReadinessSerializer(readiness.watch(self.get_object())).data)

    def _act(self, request, kind: str, params: dict | None = None) -> Response:
        desktop = self.get_object()
        operation = request_action(desktop=desktop, kind=kind, actor=request.user, params=params, ip=client_ip(request))
        return accepted(desktop, operation)

    @extend_schema(request=None, responses={202: s.AcceptedSerializer})
    @action(detail=True, methods=["post"])
    def start(self, request, pk=None):
        return self._act(request, OperationKind.START)

    @extend_schema(request=None, responses={202: s.AcceptedSerializer})
    @action(detail=True, methods=["post"])
    def stop(self, request, pk=None):
        desktop = self.get_object()
        return accepted(desktop, request_stop(desktop=desktop, actor=request.user, ip=client_ip(request)))

    @extend_schema(request=None, responses={202: s.AcceptedSerializer})
    @action(detail=True, methods=["post"])
    def reboot(self, request, pk=None):
        return self._act(request, OperationKind.REBOOT)

    @extend_schema(request=None, responses={202: s.AcceptedSerializer})
    @action(detail=True, methods=["post"])
    def suspend(self, request, pk=None):
        return self._act(request, OperationKind.SUSPEND)

    @extend_schema(request=None, responses={202: s.AcceptedSerializer})
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        return self._act(request, OperationKind.RESUME)

    @extend_schema(request=None, responses={202: s.AcceptedSerializer})
    @action(detail=True, methods=["post"])
    def hibernate(self, request, pk=None):
        return self._act(request, OperationKind.HIBERNATE)

    @extend_schema(request=None, responses={202: s.AcceptedSerializer})
    @action(detail=True, methods=["post"])
    def rebuild(self, request, pk=None):
        return self._act(request, OperationKind.REBUILD)

    @extend_schema(request=None, responses={200: s.DesktopSerializer})
    @action(detail=True, methods=["post"], url_path="keep-running")
    def keep_running(self, request, pk=None):
        """Count now as input: the person is still working, the idle policy waits its full time again."""
        desktop = self.get_object()
        idle.keep_running(desktop=desktop, actor=request.user, ip=client_ip(request))
        return Response(s.DesktopSerializer(desktop).data)

    @extend_schema(request=None, responses={200: s.StopNoticeSerializer})
    @action(detail=True, methods=["get"], url_path="stop-notice")
    def stop_notice(self, request, pk=None):
        """The ramp-down stop the pool's scaling plan announced for this desktop, if any."""
        return Response(s.StopNoticeSerializer.of(ramp_down.notice_of(self.get_object())))

    @extend_schema(request=None, responses={200: s.StopNoticeSerializer})
    @action(detail=True, methods=["post"], url_path="defer-stop")
    def defer_stop(self, request, pk=None):
        """Keep working: put the announced ramp-down stop off by the plan's deferral (where the plan allows)."""
        desktop = self.get_object()
        ramp_down.ensure_held_by(desktop, request.user)
        notice = ramp_down.defer(desktop=desktop, actor=request.user, ip=client_ip(request))
        return Response(s.StopNoticeSerializer.of(notice))

    @extend_schema(
        request=s.ResizeSerializer,
        responses={202: s.AcceptedSerializer},
        description=(
            "Resize a personal desktop to a named size of its template or to vCPUs, RAM and disk within the "
            "template's ranges (what is left out stays as it is). vCPUs and RAM change while it is stopped. The "
            "disk only grows, stopped or running; a running desktop uses its grown disk after its next restart, "
            "when the guest grows its partition and filesystem (cloud-init growpart and resize_rootfs)."
        ),
    )
    @action(detail=True, methods=["post"])
    def resize(self, request, pk=None):
        desktop = self.get_object()
        body = s.ResizeSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        operation = request_resize(desktop=desktop, actor=request.user, ip=client_ip(request), **body.size_arguments())
        return accepted(desktop, operation)

    @extend_schema(request=s.SnapshotNameSerializer, responses={202: s.AcceptedSerializer})
    @action(detail=True, methods=["post"])
    def snapshot(self, request, pk=None):
        return self._act(request, OperationKind.SNAPSHOT, self._snapshot_params(request))

    @extend_schema(request=s.ExistingSnapshotSerializer, responses={202: s.AcceptedSerializer})
    @action(detail=True, methods=["post"])
    def revert(self, request, pk=None):
        return self._act(request, OperationKind.REVERT, self._snapshot_params(request, s.ExistingSnapshotSerializer))

    @extend_schema(request=s.ExistingSnapshotSerializer, responses={202: s.AcceptedSerializer})
    @action(detail=True, methods=["post"], url_path="delete-snapshot")
    def delete_snapshot(self, request, pk=None):
        params = self._snapshot_params(request, s.ExistingSnapshotSerializer)
        return self._act(request, OperationKind.DELETE_SNAPSHOT, params)

    @staticmethod
    def _snapshot_params(request, serializer_class=s.SnapshotNameSerializer) -> dict:
        body = serializer_class(data=request.data)
        body.is_valid(raise_exception=True)
        return {"snapshot": body.validated_data.get("snapshot", "")}


class OperationViewSet(VisibleDesktopsMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Operations, newest first; follow one to see its progress steps."""

    queryset = Operation.objects.select_related("desktop")
    serializer_class = s.OperationSerializer
    filterset_class = OperationFilterSet
    owner_field = "desktop__user"

    def get_queryset(self):
        return self.visible(super().get_queryset())


class PoolViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    TenantScopedViewSet,
):
    """Warm pools per template (tenant admins)."""

    queryset = Pool.objects.select_related("template")
    serializer_class = s.PoolSerializer
    admin_only = True

    def perform_create(self, serializer):
        serializer.instance = pools.save_pool(
            tenant=self.request.tenant, actor=self.request.user, values=serializer.validated_data
        )

    def perform_update(self, serializer):
        serializer.instance = pools.save_pool(
            tenant=self.request.tenant,
            actor=self.request.user,
            values=serializer.validated_data,
            pool=serializer.instance,
        )

    def perform_destroy(self, instance):
        pools.delete_pool(pool=instance, actor=self.request.user)


class PlanViewSet(TenantScopedViewSet):
    """The three calls of the original plan, for scripts: start, status, stop."""

    queryset = Desktop.objects.none()  # the schema's model; the real scope is get_queryset's
    serializer_class = s.AcceptedSerializer

    def get_queryset(self):
        return Desktop.objects.for_tenant(self.request.tenant).alive().owned_by(self.request.user)

    @extend_schema(request=s.LaunchSerializer, responses={200: s.AcceptedSerializer, 202: s.AcceptedSerializer})
    def start(self, request):
        body = s.LaunchSerializer(data=request.data, context=self.get_serializer_context())
        body.is_valid(raise_exception=True)
        template = body.validated_data.get("template") or (
            launchable(DesktopTemplate.objects.all(), request.tenant)
            .filter(os_family=body.validated_data["os_type"])
            .order_by("price_per_hour", "pk")
            .first()
        )
        if template is None:
            raise ServiceError(
                gettext("No matching template is available to you."), code="template_unavailable", status=404
            )
        size = sizes.resolve(template, **body.size_arguments()) if body.asks_size() else None
        result = launch.launch(
            tenant=request.tenant, user=request.user, template=template, size=size, ip=client_ip(request)
        )
        if result.claimed is not None:
            # The claim's statement read what the answer shows, as it left it: nothing to read again.
            return answer(result.desktop, result.operation, addresses={result.desktop.pk: result.claimed.address})
        return accepted(result.desktop, result.operation)

    @extend_schema(responses=s.PlanStatusSerializer)
    def status(self, request):
        desktops = self.get_queryset().select_related("template", "host").prefetch_related("snapshots")
        return Response({"desktops": s.DesktopSerializer(desktops, many=True).data})

    @extend_schema(request=s.StopSerializer, responses={202: s.OperationsQueuedSerializer})
    def stop(self, request):
        body = s.StopSerializer(data=request.data, context=self.get_serializer_context())
        body.is_valid(raise_exception=True)
        chosen = body.validated_data.get("desktop")
        desktops = [chosen] if chosen is not None else self.get_queryset().filter(state__in=STOPPABLE_STATES)
        ip = client_ip(request)
        operations = [request_stop(desktop=desktop, actor=request.user, ip=ip) for desktop in desktops]
        data = {"operations": s.OperationSerializer(operations, many=True).data}
        return Response(data, status=status.HTTP_202_ACCEPTED)
