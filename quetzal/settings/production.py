"""Production settings: TLS-only cookies, HSTS and a required secret key."""

from __future__ import annotations

import os

from django.core.exceptions import ImproperlyConfigured

os.environ.setdefault("QUETZAL_REQUIRE_SECRET_KEY", "1")

from quetzal.env import env_bool, env_int  # noqa: E402
from quetzal.settings.base import *  # noqa: E402,F403
from quetzal.settings.base import DEBUG, SECRET_KEY  # noqa: E402

if DEBUG:
    raise ImproperlyConfigured("DEBUG must be off with production settings")
if SECRET_KEY is None or len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5:
    raise ImproperlyConfigured("SECRET_KEY must be at least 50 random characters in production")

SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
# Behind a TLS-terminating proxy, the proxy redirects and tells us with X-Forwarded-Proto.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
if env_bool("SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
