"""Every route of the URL configuration as a concrete URL, for tests generated from the URL conf."""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.urls.exceptions import Resolver404
from django.urls.resolvers import RegexPattern, RoutePattern
from django.utils.regex_helper import normalize

# Values tried for each parameter, in order, until the URL resolves back to its own route. Ids name
# no row: a test that posts to every route must not delete the people it signs in as.
_CANDIDATES = ("987654", "x", "987654-x", "00000000-0000-0000-0000-000000000001")
_CONVERTER = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<name>\w+)>")


@dataclass(frozen=True)
class Route:
    """One route: its name (namespaced, or its pattern when it has none), a URL reaching it, its namespaces."""

    name: str
    url: str
    namespaces: tuple[str, ...]

    @property
    def is_api(self) -> bool:
        return "api" in self.namespaces


def _alternatives(regex: str, name: str) -> list[str]:
    """The first literal alternatives of a named group such as (?P<app_label>auth|tenants)."""
    found = re.search(rf"\(\?P<{name}>([\w|]+)\)", regex)
    return found.group(1).split("|")[:1] if found else []


def _pieces(pattern) -> list[str]:
    """Concrete strings that a pattern's own part of a URL may be."""
    if isinstance(pattern, RoutePattern):
        text = str(pattern)
        names = [m.group("name") for m in _CONVERTER.finditer(text)]
        fills = []
        for value in _CANDIDATES:
            fills.append(_CONVERTER.sub(value, text))
        return fills if names else [text]
    assert isinstance(pattern, RegexPattern)
    regex = pattern.regex.pattern
    template, params = normalize(regex)[0]
    results = []
    for value in _CANDIDATES:
        values = {param: (_alternatives(regex, param) or [value])[0] for param in params}
        text = template % values
        if re.fullmatch(regex.lstrip("^").rstrip("$"), text) or re.match(regex, text):
            results.append(text)
    return results


def all_routes() -> list[Route]:
    """Every URL pattern of the project (named or not, admin and allauth included), as a URL that reaches it."""
    routes: list[Route] = []
    unbuildable: list[str] = []

    def walk(patterns, prefixes: list[str], namespaces: tuple[str, ...]) -> None:
        for pattern in patterns:
            pieces = [p + piece for p in prefixes for piece in _pieces(pattern.pattern)]
            if isinstance(pattern, URLResolver):
                ns = (*namespaces, pattern.namespace) if pattern.namespace else namespaces
                walk(pattern.url_patterns, pieces, ns)
                continue
            assert isinstance(pattern, URLPattern)
            label = ":".join((*namespaces, pattern.name)) if pattern.name else f"<{'/'.join(namespaces)}>{pattern}"
            url = next((f"/{piece}" for piece in pieces if _reaches(f"/{piece}", pattern)), None)
            if url is None:
                unbuildable.append(label)
            else:
                routes.append(Route(name=label, url=url, namespaces=namespaces))

    walk(get_resolver().url_patterns, [""], ())
    assert not unbuildable, f"Cannot build a URL for: {unbuildable} (teach tenants/tests/routes.py their parameters)"
    return routes


def _reaches(url: str, pattern: URLPattern) -> bool:
    try:
        match = resolve(url)
    except Resolver404:
        return False
    if match.func is pattern.callback or getattr(match.func, "__wrapped__", None) is pattern.callback:
        return True
    # A project route standing in for a library's route of the same name, ahead of it (quetzal/urls.py's SAML
    # metadata, in place of allauth's): the URL reaches what serves that name.
    return bool(pattern.name) and match.url_name == pattern.name and pattern.callback.__module__.startswith("allauth.")
