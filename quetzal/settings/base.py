"""Quetzal settings, read from environment variables through validating helpers."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from quetzal.env import (
    env_bool,
    env_choice,
    env_commands,
    env_database,
    env_int,
    env_kek,
    env_list,
    env_nameserver,
    env_network,
    env_networks,
    env_redis,
    env_str,
)

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(env_str("QUETZAL_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", False)
# Production settings insist on a real key; the default only serves `make run` and tests.
SECRET_KEY = env_str("SECRET_KEY", "insecure-development-key-set-SECRET_KEY-in-production")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
# The key-encryption key that wraps every disk and recording key. Unset (make run, tests): an
# embedded development key generated into QUETZAL_KEK_DEV_FILE on first use; production requires it.
QUETZAL_KEK = env_kek("QUETZAL_KEK", "QUETZAL_KEK_FILE")
QUETZAL_KEK_DEV_FILE = VAR_DIR / "kek"

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_filters",
    "channels",
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.openid_connect",
    "allauth.socialaccount.providers.saml",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "axes",
    "quetzal",
    "tenants",
    "tenants.sso",
    "tenants.scim",
    "hosts",
    "desktops",
    "desktops.console",
    "desktops.metrics",
    "billing",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The language from the person's choice (the footer's picker) or else the browser's Accept-Language.
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "tenants.middleware.ActiveTenantMiddleware",
    "tenants.middleware.InactivityLogoutMiddleware",
    "tenants.middleware.TwoFactorMiddleware",
    "tenants.middleware.ReadOnlyTenantMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "quetzal.urls"
WSGI_APPLICATION = "quetzal.wsgi.application"
ASGI_APPLICATION = "quetzal.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.debug",
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "tenants.context_processors.active_tenant",
            ],
        },
    },
]

DATABASES = {"default": env_database("DATABASE_URL", VAR_DIR / "db.sqlite3")}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # The embedded default keeps its file under var/; make sure the folder is there.
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
# A bounded pool of PostgreSQL connections per process (DB_POOL_SIZE; 0: none, one connection per request thread).
# The web tier serves each request on a thread of its own, so without a pool every request in flight opens a
# connection and a storm runs into max_connections; with one, requests past the pool wait DB_POOL_TIMEOUT_S for
# a connection and then answer 503 `service_busy` with Retry-After (quetzal.api.errors). Celery keeps 0.
DB_POOL_SIZE = env_int("DB_POOL_SIZE", 0, minimum=0, maximum=100)
DB_POOL_TIMEOUT_S = env_int("DB_POOL_TIMEOUT_S", 5, minimum=1, maximum=60)
if DB_POOL_SIZE and DATABASES["default"]["ENGINE"].endswith("postgresql"):
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # the pool keeps the connections; Django must hand them back
    DATABASES["default"]["OPTIONS"]["pool"] = {"min_size": 1, "max_size": DB_POOL_SIZE, "timeout": DB_POOL_TIMEOUT_S}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "tenants.User"
AUTHENTICATION_BACKENDS = [
    # Axes first so a locked-out account is refused before the password is checked.
    "axes.backends.AxesStandaloneBackend",
    # Django's and allauth's password backends, refusing the passwords of provider-only domains (tenants/sso/).
    "tenants.sso.backends.PasswordBackend",
    "tenants.sso.backends.AllauthPasswordBackend",
    # A tenant's LDAP directory checks the password (only for credentials naming its provider: tenants/sso/).
    "tenants.sso.backends.DirectoryBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
PASSWORD_HASHERS = env_list("PASSWORD_HASHERS") or [
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]

LANGUAGE_CODE = "en-us"
LANGUAGES = [("en", "English"), ("de", "Deutsch")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(VAR_DIR / "staticfiles")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))
MEDIA_URL = "/media/"

# Request bodies: the API's JSON parser answers 413 past this size (file uploads are not counted).
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("MAX_REQUEST_BODY_BYTES", 1024 * 1024, minimum=1024)

# Sessions, cookies and security headers. Production tightens these in production.py.
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 60 * 60 * 12, minimum=60)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

# Email: console backend unless an SMTP host is configured.
EMAIL_HOST = env_str("EMAIL_HOST", "")
EMAIL_PORT = env_int("EMAIL_PORT", 587, minimum=1, maximum=65535)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend" if EMAIL_HOST else "django.core.mail.backends.console.EmailBackend",
)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Quetzal <noreply@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# Redis: broker, channel layer and cache. Unset means `make run` starts an embedded one;
# a process started without it (manage.py shell, tests without Redis) falls back to memory.
REDIS = env_redis("REDIS_URL")
REDIS_URL = REDIS.url if REDIS else None

if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "capacity": 1000, "expiry": 30},
        }
    }
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Celery. acks_late + reject_on_worker_lost: a killed worker's task is redelivered, never lost.
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
# Retries back off well under this, so a slow task is never redelivered while still running.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600, minimum=60)}
CELERY_TASK_DEFAULT_QUEUE = "quetzal"
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULE = {
    "hosts-heartbeat": {"task": "hosts.tasks.heartbeat_all", "schedule": 15.0, "options": {"expires": 15}},
    "desktops-reconcile": {"task": "desktops.tasks.reconcile_all", "schedule": 30.0},
    "desktops-refill-pools": {"task": "desktops.tasks.refill_pools", "schedule": 20.0},
    "desktops-refill-disk-spares": {"task": "desktops.tasks.refill_disk_spares", "schedule": 60.0},
    "desktops-enforce-idle": {"task": "desktops.tasks.enforce_idle", "schedule": 60.0},
    # Lead times are whole minutes and arrivals quarter hours: once a minute is on time.
    "desktops-warm-personal": {
        "task": "desktops.tasks.warm_personal_desktops",
        "schedule": 60.0,
        "options": {"expires": 60},
    },
    # Booting desktops: is the guest ready for input yet? Cheap when none boots (one indexed query).
    "desktops-watch-readiness": {
        "task": "desktops.tasks.watch_readiness",
        "schedule": 1.0,
        "options": {"expires": 2},
    },
    "metrics-collect": {"task": "desktops.metrics.tasks.collect_all", "schedule": 5.0, "options": {"expires": 5}},
    "metrics-rollup": {"task": "desktops.metrics.tasks.rollup", "schedule": 60.0},
    "metrics-prune": {"task": "desktops.metrics.tasks.prune", "schedule": 600.0},
    "desktops-console-cleanup": {"task": "desktops.console.tasks.cleanup", "schedule": 60.0},
    "billing-maintain-ledger": {"task": "billing.tasks.maintain_ledger", "schedule": 60.0},
    "billing-report-usage": {"task": "billing.tasks.report_usage", "schedule": 60.0},
    "billing-enforce-grace": {"task": "billing.tasks.enforce_grace", "schedule": 900.0},
    "billing-sync-invoices": {"task": "billing.tasks.sync_invoices", "schedule": 21600.0},
    # Each domain is read at most every tenants.sso.domains.RECHECK_AFTER; the run picks the ones due.
    "sso-recheck-domains": {"task": "tenants.sso.tasks.recheck_domains", "schedule": 900.0},
}

# django-allauth: email is the login; verification by email.
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
# Invitations only by default. Opened, anyone may sign up and create an organisation, which waits
# (read-only, nothing runs) until an operator approves it; the address must be proven first.
ACCOUNT_ALLOW_SIGNUP = env_bool("ACCOUNT_ALLOW_SIGNUP", False)
ACCOUNT_EMAIL_VERIFICATION = env_choice(
    "ACCOUNT_EMAIL_VERIFICATION",
    ("mandatory", "optional", "none"),
    "mandatory" if ACCOUNT_ALLOW_SIGNUP else "optional",
)
if ACCOUNT_ALLOW_SIGNUP and ACCOUNT_EMAIL_VERIFICATION != "mandatory":
    raise ImproperlyConfigured("ACCOUNT_ALLOW_SIGNUP needs ACCOUNT_EMAIL_VERIFICATION=mandatory")
# A self-service organisation starts with these quotas (0 would mean "no limit"), so approving it
# never hands out the operator's whole capacity; operators raise them per tenant.
SIGNUP_QUOTAS = {
    "quota_desktops": env_int("SIGNUP_QUOTA_DESKTOPS", 1, minimum=1, maximum=100_000),
    "quota_vcpus": env_int("SIGNUP_QUOTA_VCPUS", 2, minimum=1, maximum=1_000_000),
    "quota_ram_mib": env_int("SIGNUP_QUOTA_RAM_MIB", 4096, minimum=64, maximum=1024**3),
    "max_running_per_user": env_int("SIGNUP_MAX_RUNNING_PER_USER", 1, minimum=1, maximum=1000),
}
# Sign-up and password reset answer the same whether or not an account exists (with mandatory
# verification, allauth emails the existing account's owner instead of saying "taken").
ACCOUNT_PREVENT_ENUMERATION = True
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
ACCOUNT_ADAPTER = "tenants.adapters.AccountAdapter"
# Email first: an address whose domain a tenant routed to its provider goes there (tenants/sso/).
ACCOUNT_FORMS = {"login": "tenants.sso.forms.LoginForm", "reset_password": "tenants.sso.forms.ResetPasswordForm"}
# Single sign-on: the tenants' OpenID Connect providers are built per request from their rows (secrets sealed
# under the KEK), never SocialApp rows. A provider's first sign-in makes the account (just in time); an address
# is only ever linked to an account by tenants.sso.adapter's own rule, never by allauth's email matching.
SOCIALACCOUNT_ADAPTER = "tenants.sso.adapter.SocialAccountAdapter"
SOCIALACCOUNT_AUTO_SIGNUP = True
SOCIALACCOUNT_EMAIL_AUTHENTICATION = False
SOCIALACCOUNT_EMAIL_AUTHENTICATION_AUTO_CONNECT = False
SOCIALACCOUNT_EMAIL_VERIFICATION = "none"  # the provider speaks for its tenant's domains, and only those
SOCIALACCOUNT_STORE_TOKENS = False
# allauth's SAML provider, keeping what the IdP said of the second factor (its AuthnContextClassRef) for the MFA policy.
SOCIALACCOUNT_PROVIDERS = {"saml": {"provider_class": "tenants.sso.saml.SamlProvider"}}
SOCIALACCOUNT_REQUESTS_TIMEOUT = 10
# Domain verification (tenants/sso/domains.py) reads TXT records from this DNS server, or the system resolver when
# unset; a lookup gives up after the timeout and the admin reads why.
SSO_DNS_NAMESERVER = env_nameserver("SSO_DNS_NAMESERVER")
SSO_DNS_TIMEOUT_SECONDS = env_int("SSO_DNS_TIMEOUT_SECONDS", 3, minimum=1, maximum=30)
# An admin's Verify looks a record up now: each tenant may press it SSO_VERIFY_RATE_LIMIT times per
# SSO_VERIFY_WINDOW_S seconds (counted like the API's budget, tenants/api/throttling.py); the periodic re-check and an
# operator's check in the Django admin are not counted.
SSO_VERIFY_RATE_LIMIT = env_int("SSO_VERIFY_RATE_LIMIT", 10, minimum=1, maximum=1000)
SSO_VERIFY_WINDOW_S = env_int("SSO_VERIFY_WINDOW_S", 60, minimum=1, maximum=3600)
# Failed logins are throttled and locked out by django-axes (one configurable number).
ACCOUNT_RATE_LIMITS = {"login_failed": False}
LOGIN_REDIRECT_URL = "/"
LOGIN_URL = "account_login"
ACCOUNT_LOGOUT_REDIRECT_URL = "/accounts/login/"

# Behind a reverse proxy (or a chain of them), how many: the client address is then read from the
# n-th X-Forwarded-For entry from the right. 0 (direct clients) ignores the header entirely, so a
# forged one moves neither the lockout count nor the audit log (tenants/addresses.py).
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0, minimum=0, maximum=10)

# django-axes: LOGIN_FAILURE_LIMIT failures of one account from one address lock that pair out;
# LOGIN_ACCOUNT_FAILURE_LIMIT failures of one account from anywhere lock the account (tenants/lockout.py).
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1, maximum=1000)
LOGIN_ACCOUNT_FAILURE_LIMIT = env_int("LOGIN_ACCOUNT_FAILURE_LIMIT", 4 * AXES_FAILURE_LIMIT, minimum=1, maximum=10000)
if LOGIN_ACCOUNT_FAILURE_LIMIT < AXES_FAILURE_LIMIT:
    raise ImproperlyConfigured("LOGIN_ACCOUNT_FAILURE_LIMIT must be at least LOGIN_FAILURE_LIMIT")
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "username"]
AXES_HANDLER = "tenants.lockout.AccountAndAddressHandler"
AXES_USERNAME_CALLABLE = "tenants.lockout.login_name"
AXES_CLIENT_IP_CALLABLE = "tenants.addresses.client_ip"
AXES_USERNAME_FORM_FIELD = "login"
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "account/locked_out.html"
AXES_VERBOSE = False

# Operators (staff) reach the Django admin only after a second factor. Production turns it on.
ADMIN_REQUIRE_2FA = env_bool("ADMIN_REQUIRE_2FA", False)

OTP_TOTP_ISSUER = env_str("OTP_ISSUER", "Quetzal")
# Operators must not be able to read (and so clone) someone's authenticator secret in the admin.
OTP_ADMIN_HIDE_SENSITIVE_DATA = True
# A code from a neighbouring 30 s step is still accepted: phones' clocks drift.
OTP_TOTP_TOLERANCE = 1

# Automation's budget: each API token may make API_TOKEN_RATE_LIMIT requests per API_RATE_WINDOW_S seconds, over the
# REST API and /mcp/ together (tenants/api/throttling.py). Counted in Redis (the cache) so every web process shares
# one count.
API_TOKEN_RATE_LIMIT = env_int("API_TOKEN_RATE_LIMIT", 120, minimum=1, maximum=100_000)
API_RATE_WINDOW_S = env_int("API_RATE_WINDOW_S", 60, minimum=1, maximum=3600)
# Guessing's budget: a client address (an IPv6 /64) may fail API_TOKEN_FAILURE_LIMIT token attempts (unknown, revoked,
# expired, malformed; at /mcp/ none at all) per API_TOKEN_FAILURE_WINDOW_S seconds; then its token requests get 429
# `too_many_failed_tokens` without a lookup until the window ends. Successes never count.
API_TOKEN_FAILURE_LIMIT = env_int("API_TOKEN_FAILURE_LIMIT", 20, minimum=1, maximum=10_000)
API_TOKEN_FAILURE_WINDOW_S = env_int("API_TOKEN_FAILURE_WINDOW_S", 300, minimum=1, maximum=86_400)
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "tenants.api.authentication.ApiTokenAuthentication",
        "quetzal.api.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["quetzal.api.permissions.IsTenantMember"],
    "DEFAULT_PAGINATION_CLASS": "quetzal.api.pagination.Pagination",
    # JSON in, JSON out: a bounded parser (quetzal/api/parsers.py) and no HTML rendering of errors.
    "DEFAULT_PARSER_CLASSES": ["quetzal.api.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_FILTER_BACKENDS": ["quetzal.api.filters.FilterBackend"],
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "quetzal.api.schema.AutoSchema",
    "EXCEPTION_HANDLER": "quetzal.api.errors.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": ["tenants.api.throttling.ApiTokenRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"anon": "60/min"},
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Quetzal API",
    "DESCRIPTION": "Self-hosted multi-tenant cloud desktops.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # One name for a choice set several fields share (each phase of a scaling plan has a unit).
    "ENUM_NAME_OVERRIDES": {"MinimumUnitEnum": "desktops.models.scaling.MinimumUnit"},
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "quetzal.api.schema.time_of_day_hook"],
}

# Quetzal's own knobs.
INVITATION_TTL_DAYS = env_int("INVITATION_TTL_DAYS", 7, minimum=1)
BILLING_ENABLED = env_bool("BILLING_ENABLED", False)
STRIPE_SECRET_KEY = env_str("STRIPE_SECRET_KEY", "")
STRIPE_WEBHOOK_SECRET = env_str("STRIPE_WEBHOOK_SECRET", "")
STRIPE_API_BASE = env_str("STRIPE_API_BASE", "")  # empty: api.stripe.com; e.g. http://127.0.0.1:8420 for localstripe
STRIPE_TIMEOUT_S = env_int("STRIPE_TIMEOUT_S", 20, minimum=1)
BILLING_CURRENCY = env_str("BILLING_CURRENCY", "usd").lower()
BILLING_GRACE_DAYS = env_int("BILLING_GRACE_DAYS", 7, minimum=0)
BILLING_METER_EVENT_NAME = env_str("BILLING_METER_EVENT_NAME", "quetzal_desktop_usage")
BILLING_REPORT_LEASE_S = env_int("BILLING_REPORT_LEASE_S", 120, minimum=30)

# Consoles.
CONSOLE_TICKET_TTL_S = env_int("CONSOLE_TICKET_TTL_S", 30, minimum=5, maximum=60)
CONSOLE_HEARTBEAT_S = env_int("CONSOLE_HEARTBEAT_S", 30, minimum=5, maximum=300)
RECORDINGS_ROOT = Path(env_str("RECORDINGS_ROOT", str(VAR_DIR / "recordings")))

# The file manager: uploads land here (chunk by chunk) before a worker writes them into the home, and
# downloads are staged here by the worker before the web streams them. Web and workers share it.
HOME_SPOOL_DIR = Path(env_str("HOME_SPOOL_DIR", str(VAR_DIR / "home-spool")))
# Route file-manager work to one queue per host ("files.<host name>"), consumed by a worker on that host;
# off by default, where one worker (on the only host) takes everything from the default queue.
HOME_FILES_HOST_QUEUES = env_bool("HOME_FILES_HOST_QUEUES", False)
# How long a page or API call waits for a worker to answer a file operation.
HOME_FILES_TIMEOUT_S = env_int("HOME_FILES_TIMEOUT_S", 120, minimum=5, maximum=3600)

# Live metrics.
METRICS_INTERVAL_S = env_int("METRICS_INTERVAL_S", 5, minimum=1)
METRICS_RAW_RETENTION_H = env_int("METRICS_RAW_RETENTION_H", 24, minimum=1)
METRICS_MINUTE_RETENTION_D = env_int("METRICS_MINUTE_RETENTION_D", 7, minimum=1)
METRICS_HOUR_RETENTION_D = env_int("METRICS_HOUR_RETENTION_D", 90, minimum=1)
METRICS_TOKEN = env_str("METRICS_TOKEN", "")  # Prometheus bearer token, >= 16 chars; empty = staff session only
CELERY_BEAT_SCHEDULE["metrics-collect"].update(
    schedule=float(METRICS_INTERVAL_S), options={"expires": float(METRICS_INTERVAL_S)}
)

# Hosts and placement.
SCHEDULER_STRATEGY = env_choice("SCHEDULER_STRATEGY", ("spread", "pack"), "spread")
# statement: a placement is one SQL statement (PostgreSQL); steps: rank, lock, count, record one by one.
SCHEDULER_CLAIM = env_choice("SCHEDULER_CLAIM", ("statement", "steps"), "statement")
# Silent this long after its last heartbeat: down. With 15 s beats a dead host is marked down within 55 s.
HOST_DOWN_AFTER_S = env_int("HOST_DOWN_AFTER_S", 40, minimum=15)
HOST_HEARTBEAT_INTERVAL_S = env_int("HOST_HEARTBEAT_INTERVAL_S", 15, minimum=1)
IMAGE_COPY_STALE_AFTER_S = env_int("IMAGE_COPY_STALE_AFTER_S", 3600, minimum=60)
SCHEDULER_CANDIDATES = env_int("SCHEDULER_CANDIDATES", 8, minimum=1)

# Desktop lifecycle.
DESKTOP_STOP_TIMEOUT_S = env_int("DESKTOP_STOP_TIMEOUT_S", 60, minimum=1)
# Each tenant gets its own NAT network per host, its subnet carved out of this range (rule 9).
TENANT_NETWORKS = env_bool("TENANT_NETWORKS", True)  # off: desktops get no NIC at all
TENANT_NETWORK_RANGE = env_network("QUETZAL_TENANT_NETWORK_RANGE", "10.200.0.0/16")
TENANT_SUBNET_PREFIX = env_int(
    "QUETZAL_TENANT_SUBNET_PREFIX", 24, minimum=int(TENANT_NETWORK_RANGE.split("/")[1]), maximum=29
)
# Desktops never reach these (link-local metadata services, the hosts' own management network, ...).
TENANT_NETWORK_BLOCKED = env_networks("QUETZAL_TENANT_NETWORK_BLOCKED", ["169.254.0.0/16"])
# Encrypted desktop disks: spare LUKS overlays kept ready per host (each ~2.5 s of CPU to make,
# QEMU calibrates its key derivation however low the iteration time), so a cold start only renames one.
DESKTOP_DISK_SPARES = env_int("DESKTOP_DISK_SPARES", 2, minimum=0, maximum=100)
# Off only to measure what encryption costs (bench/cold_start.py): new disks are then plain overlays.
DESKTOP_DISK_ENCRYPTION = env_bool("DESKTOP_DISK_ENCRYPTION", True)
# How qemu-img reaches a remote host's disks (for encrypted disks there): per host URI, a command that runs
# its last argument as a shell command line on that host, e.g. {"qemu+tls://h1/system": "ssh root@h1"}.
# Local qemu:/// hosts need none; a remote host without one keeps plain disks.
HOST_SHELLS = env_commands("QUETZAL_HOST_SHELLS")
DESKTOP_SERIAL_LOG_DIR = env_str("DESKTOP_SERIAL_LOG_DIR", "/var/log/libvirt/qemu")
# Reconcile fails an operation whose worker has been silent this long (killed, lost)...
OPERATION_STUCK_AFTER_S = env_int("OPERATION_STUCK_AFTER_S", 900, minimum=30)
# ...or that no worker picked up in this time.
OPERATION_QUEUED_TIMEOUT_S = env_int("OPERATION_QUEUED_TIMEOUT_S", 3600, minimum=60)
# An unclaimed Quetzal domain is destroyed after this grace period.
ORPHAN_GRACE_S = env_int("ORPHAN_GRACE_S", 600, minimum=0)
# The name this installation stamps on its domains (hosts.services.installation); empty: from its database's name.
QUETZAL_INSTALLATION_ID = env_str("QUETZAL_INSTALLATION_ID", "")
if QUETZAL_INSTALLATION_ID and not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", QUETZAL_INSTALLATION_ID):
    raise ImproperlyConfigured("QUETZAL_INSTALLATION_ID: letters, digits, - and _ only, at most 64")

LOG_LEVEL = env_choice("LOG_LEVEL", ("debug", "info", "warning", "error"), "info").upper()
# Every periodic task announces itself at INFO in Celery; an operator reads INFO for what happened
# to desktops and hosts, so the per-task chatter shows only when LOG_LEVEL=DEBUG.
_ROUTINE_LEVEL = "DEBUG" if LOG_LEVEL == "DEBUG" else "WARNING"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        **{name: {"level": _ROUTINE_LEVEL} for name in ("celery.app.trace", "celery.worker.strategy", "celery.beat")},
    },
}
