"""Disposable desktops API: make N from a template with a time to live and labels, list and tear down by label."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from desktops.api.serializers import DesktopSerializer, OperationSerializer, template_reference
from desktops.api.views import VisibleDesktopsMixin
from desktops.models import Desktop
from desktops.services import disposable
from desktops.services.automation_tokens import require_access, scope_desktops, token_templates
from quetzal.api.filters import parse_query
from quetzal.api.serializers import Serializer
from quetzal.api.viewsets import TenantScopedViewSet
from quetzal.errors import NotFound
from quetzal.forms import Form
from tenants.models import ApiToken
from tenants.services.audit import client_ip

_LABEL = serializers.RegexField(disposable.LABEL_PATTERN, max_length=63)
_LABEL_SCHEMA = {"type": "string", "pattern": disposable.LABEL_PATTERN.replace(r"\Z", "$"), "maxLength": 63}


class CreateDisposableSerializer(Serializer):
    template = template_reference()
    count = serializers.IntegerField(min_value=1, max_value=disposable.MAX_COUNT, default=1)
    ttl_minutes = serializers.IntegerField(min_value=1, max_value=disposable.MAX_TTL_MINUTES)
    labels = serializers.ListField(child=_LABEL, required=False, max_length=disposable.MAX_LABELS)
    wait = serializers.ChoiceField(choices=["none", "ready"], default="none", help_text="ready: answer once they run.")
    timeout_s = serializers.IntegerField(
        min_value=1, max_value=disposable.MAX_WAIT_S, default=300, help_text="wait=ready: the longest wait."
    )


class DisposableRunSerializer(Serializer):
    desktops = DesktopSerializer(many=True, read_only=True)
    operations = OperationSerializer(many=True, read_only=True)


class LabelQuery(Form):
    label = forms.RegexField(regex=disposable.LABEL_PATTERN, max_length=63)


class LabelFilter(Form):
    label = forms.RegexField(regex=disposable.LABEL_PATTERN, max_length=63, required=False)


def _token(request) -> ApiToken | None:
    return request.auth if isinstance(request.auth, ApiToken) else None


class DisposableDesktopViewSet(VisibleDesktopsMixin, TenantScopedViewSet):
    """Disposable desktops of yours (all of the tenant's for admins); an automation token sees its own scope."""

    queryset = Desktop.objects.select_related("template", "user", "host").prefetch_related("snapshots", "labels")
    serializer_class = DesktopSerializer
    owner_field = "user"
    automation_tokens = True
    # A template not yours (404), quotas (409).
    extra_error_statuses = ("404", "409")
    # A run is at most a few quotas' worth of desktops, listed whole (MAX_COUNT per request).
    pagination_class = None

    def get_queryset(self):
        disposables = super().get_queryset().alive().filter(expires_at__isnull=False)
        return scope_desktops(self.visible(disposables), _token(self.request))

    @extend_schema(
        parameters=[OpenApiParameter("label", _LABEL_SCHEMA, description="Only those with this label.")],
        responses={200: DesktopSerializer(many=True)},
    )
    def list(self, request):
        label = parse_query(request, LabelFilter).get("label")
        desktops = disposable.labelled(self.get_queryset(), label) if label else self.get_queryset()
        return Response(DesktopSerializer(desktops, many=True).data)

    @extend_schema(
        request=CreateDisposableSerializer, responses={200: DisposableRunSerializer, 202: DisposableRunSerializer}
    )
    def create(self, request):
        body = CreateDisposableSerializer(data=request.data, context=self.get_serializer_context())
        body.is_valid(raise_exception=True)
        values = body.validated_data
        token = _token(request)
        if token is not None and token.is_automation_only:
            require_access(tenant=request.tenant, token=token, write=True)
            if not token_templates(token).filter(template=values["template"]).exists():
                raise NotFound(gettext("No such template for this token."), code="template_unavailable")
        made = disposable.create(
            tenant=request.tenant,
            user=request.user,
            template=values["template"],
            count=values["count"],
            ttl_minutes=values["ttl_minutes"],
            labels=values.get("labels") or [],
            actor=request.user,
            ip=client_ip(request),
        )
        desktops, operations = [d for d, _ in made], [o for _, o in made]
        ready = values["wait"] == "ready"
        if ready:
            desktops = disposable.wait_ready(desktops, values["timeout_s"])
        for operation in operations:
            operation.refresh_from_db()
        body = {
            "desktops": DesktopSerializer(desktops, many=True).data,
            "operations": OperationSerializer(operations, many=True).data,
        }
        all_running = ready and all(d.state == "running" for d in desktops)
        return Response(body, status=status.HTTP_200_OK if all_running else status.HTTP_202_ACCEPTED)

    @extend_schema(
        parameters=[OpenApiParameter("label", _LABEL_SCHEMA, required=True, description="Tear down this run.")],
        request=None,
        responses={202: DisposableRunSerializer},
    )
    def tear_down(self, request):
        label = parse_query(request, LabelQuery)["label"]
        desktops = disposable.labelled(self.get_queryset(), label)
        operations = disposable.tear_down(desktops=desktops, actor=request.user, ip=client_ip(request))
        body = {"desktops": [], "operations": OperationSerializer(operations, many=True).data}
        return Response(body, status=status.HTTP_202_ACCEPTED)
