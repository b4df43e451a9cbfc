"""A liveness endpoint for load balancers and `make run`."""

from __future__ import annotations

from django.db import connection
from django.http import HttpRequest, JsonResponse


def healthz(request: HttpRequest) -> JsonResponse:
    """200 when the database answers; `https` says whether Django saw the request as secure.

    Behind a TLS-terminating proxy that is what X-Forwarded-Proto told it (SECURE_PROXY_SSL_HEADER):
    `manage.py doctor --url` reads it to tell a proxy that drops the header from one that passes it.
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok", "https": request.is_secure()})
