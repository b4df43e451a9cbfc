"""The project's URLs with billing's mounted, as quetzal/urls.py and quetzal/api/urls.py will have them.

Until those two include lines land, billing's tests use this; afterwards it is the same as the root.
"""

from __future__ import annotations

from django.urls import URLResolver, include, path

from quetzal import urls as root
from quetzal.api import urls as api


def _has(patterns, module: str) -> bool:
    return any(
        isinstance(p, URLResolver) and getattr(p.urlconf_name, "__name__", p.urlconf_name) == module for p in patterns
    )


api_patterns = list(api.urlpatterns)
if not _has(api_patterns, "billing.api.urls"):
    api_patterns.append(path("v1/", include("billing.api.urls")))

urlpatterns = [
    path("api/", include((api_patterns, "api"))) if isinstance(p, URLResolver) and p.namespace == "api" else p
    for p in root.urlpatterns
]
if not any(isinstance(p, URLResolver) and p.namespace == "billing" for p in urlpatterns):
    urlpatterns.append(path("", include("billing.urls")))
