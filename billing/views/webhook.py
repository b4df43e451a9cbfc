"""The Stripe webhook endpoint: raw body in, signature checked, each event applied once."""

from __future__ import annotations

import logging

from django.http import Http404, HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from billing import conf
from billing.services import webhooks
from quetzal.errors import ServiceError

log = logging.getLogger(__name__)


@csrf_exempt
@require_POST
def stripe_webhook(request: HttpRequest) -> JsonResponse:
    """200 once applied (or already applied); 400 when the signature fails; 503 to have Stripe retry."""
    if not conf.billing_enabled():
        raise Http404("Billing is not enabled.")
    try:
        outcome = webhooks.handle(payload=request.body, signature=request.headers.get("Stripe-Signature", ""))
    except ServiceError as error:
        # BadSignature (400, nothing changed) or StripeUnavailable (503: the re-fetch failed; Stripe redelivers).
        return JsonResponse({"code": error.code, "detail": error.detail}, status=error.status)
    except Exception:  # rolled back; Stripe redelivers, and the log says why
        log.exception("Stripe webhook failed")
        return JsonResponse({"code": "webhook_failed", "detail": "Not processed; deliver it again."}, status=503)
    return JsonResponse({"received": True, "outcome": outcome})
