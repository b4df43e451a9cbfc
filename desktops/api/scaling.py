"""Scaling plans, calendar exceptions and forecasts of pools over the API (tenant admins); thin over the services."""

from __future__ import annotations

from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers
from rest_framework.response import Response

from desktops.models import Pool, ScalingException, ScalingPlan
from desktops.services import autoscale, forecast, scaling
from quetzal.api.errors import InvalidQueryParameters
from quetzal.api.fields import TenantScopedModelSerializer, TenantScopedPrimaryKeyRelatedField
from quetzal.api.serializers import ModelSerializer, ResponseSerializer
from quetzal.api.viewsets import TenantScopedViewSet


class ScalingPlanSerializer(ModelSerializer):
    """A pool's plan; a PUT or PATCH changes the fields it names, the rest keep their values (or defaults)."""

    class Meta:
        model = ScalingPlan
        fields = [*autoscale.PLAN_FIELDS, "updated_at"]
        read_only_fields = ["updated_at"]
        extra_kwargs = {name: {"required": False} for name in autoscale.PLAN_FIELDS}


class TargetSerializer(ResponseSerializer):
    warm = serializers.IntegerField()
    planned = serializers.IntegerField(allow_null=True)
    predicted = serializers.IntegerField(allow_null=True)
    phase = serializers.CharField(allow_null=True)
    release_idle = serializers.BooleanField()
    quota_ceiling = serializers.IntegerField()


class PoolScalingSerializer(ResponseSerializer):
    id = serializers.IntegerField(help_text="The pool's id.")
    time_zone = serializers.CharField()
    plan = ScalingPlanSerializer(allow_null=True)
    target = TargetSerializer()


class ScalingExceptionSerializer(TenantScopedModelSerializer):
    pool = TenantScopedPrimaryKeyRelatedField(queryset=Pool.objects.all(), not_found_detail="No such pool.")

    class Meta:
        model = ScalingException
        fields = ["id", "pool", *autoscale.EXCEPTION_FIELDS, "created_at"]
        read_only_fields = ["id", "created_at"]


class DayPointSerializer(ResponseSerializer):
    at = serializers.TimeField()
    phase = serializers.ChoiceField(choices=scaling.PHASES)
    planned = serializers.IntegerField()
    predicted = serializers.IntegerField(allow_null=True)
    target = serializers.IntegerField()


class HourPointSerializer(ResponseSerializer):
    start = serializers.DateTimeField()
    predicted = serializers.FloatField()
    actual = serializers.IntegerField()


class ForecastSerializer(ResponseSerializer):
    id = serializers.IntegerField(help_text="The pool's id.")
    day = serializers.DateField()
    planned = DayPointSerializer(many=True)
    last_week = HourPointSerializer(many=True)


class PoolScalingViewSet(TenantScopedViewSet):
    """GET the pool's plan and its target now; PUT/PATCH change the plan (created on first write)."""

    queryset = Pool.objects.select_related("tenant", "template")
    serializer_class = ScalingPlanSerializer
    admin_only = True

    def _answer(self, pool: Pool) -> Response:
        row = autoscale.plan_row(pool)
        target = autoscale.warm_target(pool)
        body = {
            "id": pool.pk,
            "time_zone": pool.tenant.time_zone,
            "plan": ScalingPlanSerializer(row).data if row else None,
            "target": {**target.__dict__, "quota_ceiling": autoscale.quota_ceiling(pool)},
        }
        return Response(body)

    @extend_schema(responses=PoolScalingSerializer)
    def retrieve(self, request, pk=None):
        return self._answer(self.get_object())

    @extend_schema(request=ScalingPlanSerializer, responses=PoolScalingSerializer)
    def update(self, request, pk=None):
        pool = self.get_object()
        body = ScalingPlanSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        autoscale.save_plan(pool=pool, actor=request.user, values=dict(body.validated_data))
        return self._answer(pool)

    @extend_schema(responses=ForecastSerializer)
    def forecast(self, request, pk=None):
        pool = self.get_object()
        row = autoscale.plan_row(pool) or ScalingPlan(pool=pool, tenant_id=pool.tenant_id, enabled=False)
        day = scaling.local_moment(timezone.now(), pool.tenant.time_zone).date()
        body = {
            "id": pool.pk,
            "day": day,
            "planned": [point.__dict__ for point in forecast.day_chart(pool, row, day)],
            "last_week": [point.__dict__ for point in forecast.last_week(pool, row)],
        }
        return Response(ForecastSerializer(body).data)


class ScalingExceptionViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    TenantScopedViewSet,
):
    """Calendar exceptions of the tenant's pools: closures (holidays) and weekly slots. `?pool=` narrows."""

    queryset = ScalingException.objects.select_related("pool")
    serializer_class = ScalingExceptionSerializer
    admin_only = True

    def get_queryset(self):
        rows = super().get_queryset()
        pool = self.request.query_params.get("pool")
        if pool is not None and self.action == "list":
            if not pool.isdigit() or len(pool) > 12:
                raise InvalidQueryParameters({"pool": ["Enter a pool id."]})
            rows = rows.filter(pool_id=int(pool))
        return rows

    def perform_create(self, serializer):
        data = dict(serializer.validated_data)
        pool = data.pop("pool")
        serializer.instance = autoscale.add_exception(pool=pool, actor=self.request.user, values=data)

    def perform_destroy(self, instance):
        autoscale.delete_exception(exception=instance, actor=self.request.user)
