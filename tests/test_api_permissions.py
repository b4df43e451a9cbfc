"""Every API route is guarded by one of the project's permissions, generated from the URL configuration.

DRF's own IsAuthenticated/AllowAny skip what quetzal.api.permissions enforces on every request: the 2FA
enrolment rule, the automation-token scope and the read-only tenant (a host-metrics view once used
IsAuthenticated, so an operator's automation-only token read host figures). New routes are covered as they land.
"""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, get_resolver

from quetzal.api.permissions import IsOperator, IsTenantMember

OURS = (IsTenantMember, IsOperator)


def _api_views() -> dict[str, type]:
    """Route name → DRF view class of every route under the `api` namespace."""
    views: dict[str, type] = {}

    def walk(patterns, namespace: str) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace)
            elif isinstance(pattern, URLPattern) and namespace.startswith("api:"):
                cls = getattr(pattern.callback, "cls", None)
                views[namespace + (pattern.name or str(pattern.pattern))] = cls

    walk(get_resolver().url_patterns, "")
    return views


def test_it_finds_the_api_routes_it_checks():
    views = _api_views()
    assert {"api:host-metrics", "api:desktop-list", "api:tenant-metrics"} <= set(views)


def test_every_api_route_is_a_drf_view_guarded_by_our_permissions():
    unguarded = {}
    for name, cls in sorted(_api_views().items()):
        if cls is None:
            unguarded[name] = "not a DRF view"
            continue
        classes = list(cls.permission_classes)
        foreign = [p.__name__ for p in classes if not (isinstance(p, type) and issubclass(p, OURS))]
        if not classes or foreign:
            unguarded[name] = f"{cls.__name__}: {foreign or 'no permission'}"
    assert not unguarded, f"API routes not guarded by quetzal.api.permissions: {unguarded}"
