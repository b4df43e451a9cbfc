"""The portal's own 400/403/404/500/503 pages: in the shared layout, and never failing themselves.

An error page that raises would turn a 404 into a 500 (or a 500 into a bare traceback-less crash page):
each render falls back to a small static page in the same colours when the layout cannot render (the
database is down, a context processor fails, a template is broken).
"""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse
from django.template import loader
from django.utils.html import escape
from django.utils.translation import gettext_lazy as _

log = logging.getLogger(__name__)

TITLES = {
    400: _("This request could not be understood"),
    403: _("You do not have access to this page"),
    404: _("This page does not exist"),
    500: _("Something went wrong on our side"),
    503: _("Quetzal is busy right now"),
}

_FALLBACK = """<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title} · Quetzal</title>
<style>body{{font-family:system-ui,sans-serif;background:#f5f7f9;color:#1f2933;margin:0;display:grid;place-items:center;min-height:100vh}}
main{{background:#fff;border:1px solid #e3e7ec;border-radius:.5rem;padding:2rem;max-width:32rem;margin:1rem}}
a{{color:#0b7a5e}}</style></head><body><main><h1>{title}</h1>
<p>Error {status}. <a href="/">Back to your desktops</a></p>
</main></body></html>"""


def render_error(request: HttpRequest | None, status: int, *, with_context: bool = True) -> HttpResponse:
    """The error page for `status`; the 500 page renders without the request's context (nothing more can break)."""
    title = str(TITLES.get(status, _("Something went wrong")))
    context = {"status": status, "title": title}
    try:
        template = loader.get_template(f"{status}.html")
        body = template.render(context, request if with_context else None)
    except Exception:  # the page that explains an error must not become one
        log.exception("the %s page could not render; answering the plain one", status)
        body = _FALLBACK.format(title=escape(title), status=status)
    return HttpResponse(body, status=status)
