"""Where to go after an action: the `next` a request names, but only ever a page of this site."""

from __future__ import annotations

from django.http import HttpRequest
from django.shortcuts import resolve_url
from django.utils.http import url_has_allowed_host_and_scheme


def is_safe_redirect(request: HttpRequest, url: str | None) -> bool:
    """Whether `url` stays on this site (same host, no scheme change to plain HTTP from HTTPS)."""
    return bool(url) and url_has_allowed_host_and_scheme(
        url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )


def safe_next(request: HttpRequest, default: str = "/") -> str:
    """The request's `next` (form field, then query) when it is safe, else `default` (a URL or a URL name).

    Every view that redirects to a caller-chosen place goes through here; a test scans the code for
    any other reader of `next`.
    """
    target = request.POST.get("next") or request.GET.get("next")
    if is_safe_redirect(request, target):
        return target
    return resolve_url(default)
