"""`/metrics` for Prometheus: operators only (a staff session, or the METRICS_TOKEN bearer token)."""

from __future__ import annotations

import hmac
import logging

from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from desktops.metrics import conf, exposition
from tenants.twofactor import is_operator, second_factor_pending

log = logging.getLogger(__name__)


def _bearer(request: HttpRequest) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _space, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _refusal(status: int, code: str, detail: str) -> JsonResponse:
    response = JsonResponse({"code": code, "detail": detail}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="quetzal-metrics"'
    return response


@never_cache
@require_GET
def prometheus(request: HttpRequest) -> HttpResponse:
    """The exposition text; 401 without credentials, 403 for people who are not operators."""
    offered = _bearer(request)
    try:
        expected = conf.token()
    except ImproperlyConfigured:
        # The system check reports it at startup; until it is fixed no token is valid.
        log.error("METRICS_TOKEN is invalid; token access to /metrics is off")
        expected = ""
    if offered is not None:
        # A wrong token is refused even for a staff browser: the caller chose to present it.
        if not expected or not hmac.compare_digest(offered.encode(), expected.encode()):
            return _refusal(401, "invalid_token", _("The metrics token is not valid."))
    else:
        user = request.user
        if not user.is_authenticated or second_factor_pending(request):
            return _refusal(401, "not_authenticated", _("Sign in as an operator or present the metrics token."))
        if not is_operator(request):
            return _refusal(403, "forbidden", _("Metrics are for operators."))
    return HttpResponse(exposition.exposition(), content_type=exposition.CONTENT_TYPE)
