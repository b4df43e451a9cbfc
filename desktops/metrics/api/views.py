"""Metrics API views: chart series for a desktop, the tenant's totals and (operators) a host."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, viewsets
from rest_framework.response import Response

from desktops.api.views import VisibleDesktopsMixin
from desktops.metrics import queries
from desktops.metrics.filters import RangeParameters
from desktops.models import Desktop
from hosts.models import Host
from quetzal.api.filters import parse_query
from quetzal.api.permissions import IsOperator
from quetzal.api.serializers import ResponseSerializer
from quetzal.api.viewsets import TenantScopedViewSet

RANGE_PARAMETER = OpenApiParameter(
    "range",
    str,
    enum=list(queries.RANGES),
    default=queries.DEFAULT_RANGE,
    description="15m and 1h: raw samples; 6h and 24h: per minute; 7d, 30d, 90d: per hour.",
)
TENANT_RANGE_PARAMETER = OpenApiParameter(
    "range",
    str,
    enum=list(queries.RANGES),
    default=queries.DEFAULT_RANGE,
    description="Up to 24h: per minute; 7d, 30d, 90d: per hour.",
)


def _series_serializer(name: str, fields: tuple[str, ...], extra: dict | None = None) -> type[ResponseSerializer]:
    """A schema for columnar series: `t` and one list per figure, aligned index by index."""
    columns = {f: serializers.ListField(child=serializers.FloatField(allow_null=True)) for f in fields}
    attrs = {
        "__module__": __name__,  # the metaclass would otherwise name DRF's module as this class's home
        **(extra or {}),
        "range": serializers.CharField(),
        "resolution": serializers.ChoiceField(choices=["raw", "minute", "hour"]),
        "step_s": serializers.FloatField(help_text="Seconds between points."),
        "start": serializers.FloatField(help_text="Seconds since the epoch."),
        "end": serializers.FloatField(help_text="Seconds since the epoch."),
        "t": serializers.ListField(child=serializers.FloatField(), help_text="Point times, seconds since the epoch."),
        **columns,
    }
    return type(name, (ResponseSerializer,), attrs)


DesktopSeriesSerializer = _series_serializer(
    "DesktopSeriesSerializer",
    queries.DESKTOP_FIELDS,
    {"id": serializers.IntegerField(), "name": serializers.CharField()},
)
TenantSeriesSerializer = _series_serializer("TenantSeriesSerializer", queries.TENANT_FIELDS)
HostSeriesSerializer = _series_serializer(
    "HostSeriesSerializer", queries.HOST_FIELDS, {"id": serializers.IntegerField(), "name": serializers.CharField()}
)


class DesktopMetricsViewSet(VisibleDesktopsMixin, TenantScopedViewSet):
    """A desktop's CPU %, memory and I/O: its owner's, or any desktop of the tenant for admins."""

    queryset = Desktop.objects.all()
    serializer_class = DesktopSeriesSerializer
    owner_field = "user"

    def get_queryset(self):
        return self.visible(super().get_queryset().alive())

    @extend_schema(parameters=[RANGE_PARAMETER], responses=DesktopSeriesSerializer)
    def retrieve(self, request, pk=None):
        desktop = self.get_object()
        range_key = parse_query(request, RangeParameters)["range"]
        series = queries.desktop_series(desktop=desktop, range_key=range_key)
        return Response({"id": desktop.pk, "name": desktop.name, **series.as_dict()})


class TenantMetricsViewSet(TenantScopedViewSet):
    """The active tenant's totals (tenant admins): desktops reporting, CPU in use, memory and I/O."""

    serializer_class = TenantSeriesSerializer
    pagination_class = None
    admin_only = True

    @extend_schema(parameters=[TENANT_RANGE_PARAMETER], responses=TenantSeriesSerializer)
    def series(self, request):
        range_key = parse_query(request, RangeParameters)["range"]
        return Response(queries.tenant_series(tenant=request.tenant, range_key=range_key).as_dict())


class HostMetricsViewSet(viewsets.GenericViewSet):
    """A host's totals and allocation against capacity (operators; anyone else sees no such host)."""

    queryset = Host.objects.all()
    serializer_class = HostSeriesSerializer
    permission_classes = [IsOperator]

    @extend_schema(parameters=[RANGE_PARAMETER], responses=HostSeriesSerializer)
    def retrieve(self, request, pk=None):
        host = self.get_object()
        range_key = parse_query(request, RangeParameters)["range"]
        series = queries.host_series(host=host, range_key=range_key)
        return Response({"id": host.pk, "name": host.name, **series.as_dict()})
