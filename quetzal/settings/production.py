"""Production settings: TLS-only cookies, HSTS and a required secret key."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

from quetzal.env import env_bool, env_int, env_kek, env_str
from quetzal.settings.base import *  # noqa: F403
from quetzal.settings.base import DEBUG

if DEBUG:
    raise ImproperlyConfigured("DEBUG must be off with production settings")
SECRET_KEY = env_str("SECRET_KEY", required=True)
if len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5:
    raise ImproperlyConfigured("SECRET_KEY must be at least 50 random characters in production")
# No embedded development key here: without the operator's KEK the service refuses to start.
QUETZAL_KEK = env_kek("QUETZAL_KEK", "QUETZAL_KEK_FILE", required=True)

# Operators hold the keys to every tenant: the Django admin asks them for a second factor.
ADMIN_REQUIRE_2FA = env_bool("ADMIN_REQUIRE_2FA", True)

SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)
# Behind a TLS-terminating proxy, the proxy may redirect itself and tells us with X-Forwarded-Proto.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
if env_bool("SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
