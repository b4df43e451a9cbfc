"""Automation API: a running desktop's screenshot, input batches, screen-change waits and commands (thin views)."""

from __future__ import annotations

from collections.abc import Mapping

from django import forms
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from desktops.api.serializers import template_reference
from desktops.api.views import VisibleDesktopsMixin
from desktops.models import Desktop
from desktops.services import automation as auto
from desktops.services import automation_exec
from desktops.services.automation_tokens import ACCESS_SCOPES, MAX_TARGETS, create_automation_token, scope_desktops
from hosts.hypervisor.input import KEY_NAMES, PointerButton
from quetzal.api.fields import TenantScopedPrimaryKeyRelatedField
from quetzal.api.filters import parse_query
from quetzal.api.serializers import Serializer
from quetzal.api.viewsets import TenantScopedViewSet
from quetzal.forms import Form, StrictIntegerField
from tenants.api.serializers import NewApiTokenSerializer
from tenants.models import ApiToken
from tenants.services.audit import client_ip

_COORD = {"min_value": 0, "max_value": auto.MAX_SCREEN_PIXELS - 1, "required": False}
# A chord such as "ctrl+alt+delete": key names joined by "+" (the longest is a handful of names).
_CHORD_MAX_CHARS = 100


class InputActionSerializer(Serializer):
    """One action; which fields it needs depends on its type."""

    type = serializers.ChoiceField(choices=auto.ACTION_TYPES)
    text = serializers.CharField(
        required=False,
        max_length=auto.MAX_TEXT_CHARS,
        trim_whitespace=False,
        style={"base_template": "textarea.html"},
        help_text="text: what to type (US layout; a line feed is Enter, a tab is Tab).",
    )
    keys = serializers.CharField(
        required=False,
        max_length=_CHORD_MAX_CHARS,
        help_text=f"key: a chord of key names joined by '+', e.g. 'ctrl+alt+delete' ({', '.join(sorted(KEY_NAMES))}).",
    )
    repeat = serializers.IntegerField(required=False, min_value=1, max_value=50, help_text="key: press it n times.")
    x = serializers.IntegerField(**_COORD)
    y = serializers.IntegerField(**_COORD)
    to_x = serializers.IntegerField(**_COORD, help_text="drag: where to release.")
    to_y = serializers.IntegerField(**_COORD)
    button = serializers.ChoiceField(
        required=False, choices=[b.value for b in PointerButton if not b.value.startswith("wheel")]
    )
    dy = serializers.IntegerField(
        required=False,
        min_value=-auto.MAX_SCROLL_STEPS,
        max_value=auto.MAX_SCROLL_STEPS,
        help_text="scroll: wheel steps, positive scrolls down.",
    )
    ms = serializers.IntegerField(required=False, min_value=0, max_value=auto.MAX_WAIT_MS, help_text="wait: how long.")

    _NEEDS = {
        "text": ("text",),
        "key": ("keys",),
        "move": ("x", "y"),
        "click": ("x", "y"),
        "double_click": ("x", "y"),
        "drag": ("x", "y", "to_x", "to_y"),
        "scroll": ("x", "y", "dy"),
        "wait": ("ms",),
    }

    def validate(self, attrs):
        missing = [f for f in self._NEEDS[attrs["type"]] if f not in attrs]
        if missing:
            raise serializers.ValidationError(
                {name: f"A {attrs['type']} action needs {name}." for name in missing}, code="required"
            )
        return attrs


class InputSerializer(Serializer):
    actions = serializers.ListField(
        child=InputActionSerializer(), min_length=1, max_length=auto.MAX_ACTIONS, help_text="Carried out in order."
    )


class InputResultSerializer(Serializer):
    actions = serializers.IntegerField(read_only=True)
    keys = serializers.IntegerField(read_only=True)
    elapsed_ms = serializers.IntegerField(read_only=True)


class ScreenChangeSerializer(Serializer):
    changed = serializers.BooleanField(read_only=True, required=False)
    still = serializers.BooleanField(read_only=True, required=False)
    digest = serializers.CharField(read_only=True)
    waited_ms = serializers.IntegerField(read_only=True)


class ExecSerializer(Serializer):
    argv = serializers.ListField(
        child=serializers.CharField(
            max_length=automation_exec.MAX_ARG_CHARS,
            allow_blank=True,
            trim_whitespace=False,
            style={"base_template": "textarea.html"},
        ),
        min_length=1,
        max_length=automation_exec.MAX_ARGS,
        help_text="The program (a path, or a name looked up in the agent's PATH) and its arguments; no shell. "
        f"At most {automation_exec.MAX_ARGV_CHARS} characters in all.",
    )
    stdin = serializers.CharField(
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        max_length=automation_exec.MAX_STDIN_BYTES,
        style={"base_template": "textarea.html"},
        help_text=f"Text for the command's standard input (UTF-8, at most {automation_exec.MAX_STDIN_BYTES} bytes).",
    )
    stdin_b64 = serializers.RegexField(
        r"^[A-Za-z0-9+/]*={0,2}\Z",
        required=False,
        allow_blank=True,
        max_length=(automation_exec.MAX_STDIN_BYTES + 2) // 3 * 4,
        help_text="Or the input as base64, for bytes that are not text.",
    )
    timeout_s = serializers.IntegerField(
        required=False,
        min_value=automation_exec.TIMEOUT_BOUNDS[0],
        max_value=automation_exec.TIMEOUT_BOUNDS[1],
        help_text=f"Kill it (and what it started) after this long; default {automation_exec.DEFAULT_TIMEOUT_S}.",
    )
    encoding = serializers.ChoiceField(
        required=False, choices=["utf-8", "base64"], help_text="How stdout and stderr are answered (default utf-8)."
    )

    def to_internal_value(self, data):
        # A list's items are not guarded like top-level fields: 1 would pass as "1".
        argv = data.get("argv") if isinstance(data, Mapping) else None
        if isinstance(argv, list) and not all(isinstance(arg, str) for arg in argv):
            raise serializers.ValidationError({"argv": ["Every item is a string."]}, code="invalid")
        return super().to_internal_value(data)

    def validate(self, attrs):
        if "stdin" in attrs and "stdin_b64" in attrs:
            raise serializers.ValidationError({"stdin_b64": "Give stdin or stdin_b64, not both."})
        return attrs


class ExecResultSerializer(Serializer):
    exit_code = serializers.IntegerField(read_only=True, allow_null=True, help_text="None when it was killed.")
    signal = serializers.IntegerField(
        read_only=True, allow_null=True, help_text="The signal that ended it, if one did."
    )
    stdout = serializers.CharField(read_only=True)
    stderr = serializers.CharField(read_only=True)
    stdout_truncated = serializers.BooleanField(
        read_only=True, help_text=f"Only the first {automation_exec.MAX_OUTPUT_BYTES} bytes are kept."
    )
    stderr_truncated = serializers.BooleanField(read_only=True)
    timed_out = serializers.BooleanField(read_only=True, help_text="It ran past timeout_s and was killed.")
    elapsed_ms = serializers.IntegerField(read_only=True)
    encoding = serializers.CharField(read_only=True)


class ScreenshotQuery(Form):
    max_width = StrictIntegerField(required=False, min_value=auto.SCALE_BOUNDS[0], max_value=auto.SCALE_BOUNDS[1])
    max_height = StrictIntegerField(required=False, min_value=auto.SCALE_BOUNDS[0], max_value=auto.SCALE_BOUNDS[1])


class ScreenChangesQuery(Form):
    until = forms.ChoiceField(required=False, choices=[("change", "change"), ("still", "still")])
    timeout_ms = StrictIntegerField(required=False, min_value=0, max_value=auto.MAX_CHANGE_WAIT_MS)
    still_ms = StrictIntegerField(required=False, min_value=100, max_value=auto.MAX_CHANGE_WAIT_MS)
    since = forms.RegexField(required=False, regex=r"^[0-9a-f]{32}\Z", max_length=32)
    ignore_pixels = StrictIntegerField(required=False, min_value=0, max_value=auto.MAX_IGNORE_PIXELS)


_SCALE = {"type": "integer", "minimum": auto.SCALE_BOUNDS[0], "maximum": auto.SCALE_BOUNDS[1]}
_WAIT = {"type": "integer", "minimum": 0, "maximum": auto.MAX_CHANGE_WAIT_MS}


def _token(request) -> ApiToken | None:
    return request.auth if isinstance(request.auth, ApiToken) else None


class DesktopAutomationViewSet(VisibleDesktopsMixin, TenantScopedViewSet):
    """Look at and drive a running desktop (409 desktop_not_running otherwise)."""

    queryset = Desktop.objects.select_related("host", "template")
    serializer_class = InputSerializer
    owner_field = "user"
    # Automation tokens work here, narrowed to the desktops they name (quetzal.api.permissions).
    automation_tokens = True
    # Not running (409), the host did not answer (502), a batch cut short (504), no guest agent answering (503).
    extra_error_statuses = ("404", "409", "502", "503", "504")

    def get_queryset(self):
        return scope_desktops(self.visible(super().get_queryset().alive()), _token(self.request))

    @extend_schema(
        parameters=[
            OpenApiParameter("max_width", _SCALE, description="Shrink to at most this width (keeps the aspect)."),
            OpenApiParameter("max_height", _SCALE, description="Shrink to at most this height."),
        ],
        responses={(200, "image/png"): OpenApiResponse(description="The screen as PNG.")},
    )
    @action(detail=True, methods=["get"])
    def screenshot(self, request, pk=None):
        query = parse_query(request, ScreenshotQuery)
        shot = auto.screenshot(
            desktop=self.get_object(),
            actor=request.user,
            token=_token(request),
            max_width=query.get("max_width"),
            max_height=query.get("max_height"),
        )
        response = HttpResponse(shot.png, content_type="image/png")
        response["X-Screen-Width"] = str(shot.width)
        response["X-Screen-Height"] = str(shot.height)
        response["X-Screen-Digest"] = shot.digest
        response["Cache-Control"] = "no-store"
        return response

    @extend_schema(request=InputSerializer, responses={200: InputResultSerializer})
    @action(detail=True, methods=["post"])
    def input(self, request, pk=None):
        body = InputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        result = auto.send_input(
            desktop=self.get_object(),
            actions=body.validated_data["actions"],
            actor=request.user,
            token=_token(request),
            ip=client_ip(request),
        )
        return Response(result)

    @extend_schema(
        parameters=[
            OpenApiParameter("until", {"type": "string", "enum": ["change", "still"]}, description="Default change."),
            OpenApiParameter("timeout_ms", _WAIT, description="Give up after this long (default 5000)."),
            OpenApiParameter("still_ms", {**_WAIT, "minimum": 100}, description="still: how long unchanged."),
            OpenApiParameter(
                "since",
                {"type": "string", "pattern": "^[0-9a-f]{32}$", "maxLength": 32},
                description="change: a digest from a screenshot (X-Screen-Digest) to compare against.",
            ),
            OpenApiParameter(
                "ignore_pixels",
                {"type": "integer", "minimum": 0, "maximum": auto.MAX_IGNORE_PIXELS},
                description=f"Changes of at most this many pixels do not count (default {auto.DEFAULT_IGNORE_PIXELS}: "
                "a blinking text cursor).",
            ),
        ],
        responses={200: ScreenChangeSerializer},
    )
    @action(detail=True, methods=["get"], url_path="screen/changes")
    def screen_changes(self, request, pk=None):
        query = parse_query(request, ScreenChangesQuery)
        result = auto.wait_for_screen(
            desktop=self.get_object(),
            actor=request.user,
            token=_token(request),
            until=query.get("until") or "change",
            timeout_ms=query["timeout_ms"] if query.get("timeout_ms") is not None else 5000,
            still_ms=query.get("still_ms") or 500,
            since=query.get("since") or None,
            ignore_pixels=auto.DEFAULT_IGNORE_PIXELS if query.get("ignore_pixels") is None else query["ignore_pixels"],
        )
        return Response(result)

    @extend_schema(
        request=ExecSerializer,
        responses={200: ExecResultSerializer},
        description="Run a command in the running desktop through its guest agent, where its template allows it "
        "(403 exec_not_enabled otherwise); needs a session, a full token or an exec token. 503 when no guest "
        "agent answers. Audited with the program and the number of arguments, never the input or output.",
    )
    @action(detail=True, methods=["post"], url_path="exec", url_name="exec")
    def run_command(self, request, pk=None):
        body = ExecSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        if "stdin_b64" in data:
            stdin = automation_exec.decode_stdin_b64(data["stdin_b64"])
        else:
            stdin = data.get("stdin", "").encode()
        result = automation_exec.run(
            desktop=self.get_object(),
            argv=data["argv"],
            stdin=stdin,
            timeout_s=data.get("timeout_s", automation_exec.DEFAULT_TIMEOUT_S),
            actor=request.user,
            token=_token(request),
            ip=client_ip(request),
        )
        return Response(result.as_dict(encoding=data.get("encoding", "utf-8")))


class AutomationTokenSerializer(Serializer):
    name = serializers.CharField(max_length=100)
    access = serializers.ChoiceField(
        choices=sorted(ACCESS_SCOPES),
        help_text="read: screenshots only; input: also keys and pointer; exec: also commands (where templates allow).",
    )
    desktops = serializers.ListField(
        child=TenantScopedPrimaryKeyRelatedField(
            queryset=Desktop.objects.alive(),
            narrow=lambda desktops, request: desktops.owned_by(request.user),
            not_found_detail="No such desktop.",
        ),
        required=False,
        max_length=MAX_TARGETS,
        help_text="Desktops of yours the token may drive.",
    )
    templates = serializers.ListField(
        child=template_reference(),
        required=False,
        max_length=MAX_TARGETS,
        help_text="Templates whose desktops (of yours) the token may drive and make disposable desktops from.",
    )
    expires_at = serializers.DateTimeField(required=False, allow_null=True)


class AutomationTokenViewSet(TenantScopedViewSet):
    """Make an API token limited to automation; list and revoke it with the other tokens at /api/v1/tokens/."""

    queryset = ApiToken.objects.none()  # the schema's model; this view only creates
    serializer_class = AutomationTokenSerializer
    # A desktop or template not yours (404), automation forbidden by the tenant (403).
    extra_error_statuses = ("404",)

    @extend_schema(request=AutomationTokenSerializer, responses={201: NewApiTokenSerializer})
    def create(self, request):
        body = AutomationTokenSerializer(data=request.data, context=self.get_serializer_context())
        body.is_valid(raise_exception=True)
        token, raw = create_automation_token(
            membership=request.membership, ip=client_ip(request), **body.validated_data
        )
        data = NewApiTokenSerializer(token).data
        data["token"] = raw
        return Response(data, status=status.HTTP_201_CREATED)
