"""Settings come from environment variables; bad values name the variable; deploy checks pass."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from quetzal.env import env_bool, env_database, env_int, env_nameserver, env_redis

ROOT = Path(__file__).resolve().parents[2]


def test_it_reads_a_postgres_url(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://quetzal:s%40cret@db.example:5433/quetzal?sslmode=require")
    config = env_database("DATABASE_URL", Path("/tmp/x.db"))
    assert config["ENGINE"] == "django.db.backends.postgresql"
    assert (config["NAME"], config["USER"], config["PASSWORD"]) == ("quetzal", "quetzal", "s@cret")
    assert (config["HOST"], config["PORT"], config["OPTIONS"]) == ("db.example", "5433", {"sslmode": "require"})


def test_it_defaults_to_a_sqlite_file(monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    config = env_database("DATABASE_URL", Path("/tmp/x.db"))
    assert (config["ENGINE"], config["NAME"]) == ("django.db.backends.sqlite3", "/tmp/x.db")
    # Web, worker and beat share the file: WAL, write lock at BEGIN, and a busy timeout.
    assert config["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert "journal_mode=WAL" in config["OPTIONS"]["init_command"]
    assert config["OPTIONS"]["timeout"] >= 10


@pytest.mark.parametrize(
    ("name", "value", "reader"),
    [
        ("DATABASE_URL", "mysql://x/y", lambda: env_database("DATABASE_URL", Path("/tmp/x"))),
        ("DATABASE_URL", "postgres://host:5432/", lambda: env_database("DATABASE_URL", Path("/tmp/x"))),
        ("REDIS_URL", "http://localhost", lambda: env_redis("REDIS_URL")),
        ("DEBUG", "maybe", lambda: env_bool("DEBUG")),
        ("EMAIL_PORT", "smtp", lambda: env_int("EMAIL_PORT", 25)),
        ("EMAIL_PORT", "70000", lambda: env_int("EMAIL_PORT", 25, maximum=65535)),
    ],
)
def test_it_names_the_variable_with_a_bad_value(monkeypatch, name, value, reader):
    monkeypatch.setenv(name, value)
    with pytest.raises(ImproperlyConfigured, match=name):
        reader()


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY"}}
    environment.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120
    )


def test_it_refuses_to_start_with_a_bad_variable():
    result = _manage("check", DEBUG="sometimes")
    assert result.returncode != 0
    assert "DEBUG must be a boolean" in result.stderr


# Production refuses to start without a key-encryption key (tests/test_kek.py); these tests give one.
PRODUCTION_KEK = base64.b64encode(bytes(range(32))).decode()


def test_it_passes_deploy_checks_with_production_settings():
    result = _manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DJANGO_SETTINGS_MODULE="quetzal.settings.production",
        SECRET_KEY="k" + "".join(chr(33 + (i * 7) % 90) for i in range(60)),
        ALLOWED_HOSTS="desktops.example.com",
        QUETZAL_KEK=PRODUCTION_KEK,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_it_refuses_production_without_a_secret_key():
    result = _manage("check", DJANGO_SETTINGS_MODULE="quetzal.settings.production")
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


PRODUCTION = {
    "DJANGO_SETTINGS_MODULE": "quetzal.settings.production",
    "SECRET_KEY": "k" + "".join(chr(33 + (i * 7) % 90) for i in range(60)),
    "ALLOWED_HOSTS": "desktops.example.com",
    "QUETZAL_KEK": PRODUCTION_KEK,
}
SHOW = "from django.conf import settings as s; print(s.ADMIN_REQUIRE_2FA, s.ACCOUNT_ALLOW_SIGNUP)"


def test_it_asks_operators_for_2fa_and_closes_sign_up_in_production():
    result = _manage("shell", "-c", SHOW, **PRODUCTION)
    assert result.returncode == 0, result.stderr
    # The last line: the shell may first say what it imported.
    assert result.stdout.strip().splitlines()[-1].split() == ["True", "False"]


def test_it_refuses_open_sign_up_without_mandatory_email_verification():
    result = _manage("check", ACCOUNT_ALLOW_SIGNUP="1", ACCOUNT_EMAIL_VERIFICATION="optional")
    assert result.returncode != 0
    assert "ACCOUNT_ALLOW_SIGNUP needs ACCOUNT_EMAIL_VERIFICATION=mandatory" in result.stderr


def test_it_refuses_an_account_limit_below_the_address_limit():
    result = _manage("check", LOGIN_FAILURE_LIMIT="10", LOGIN_ACCOUNT_FAILURE_LIMIT="5")
    assert result.returncode != 0
    assert "LOGIN_ACCOUNT_FAILURE_LIMIT" in result.stderr


def test_it_reads_the_dns_server_of_domain_verification(monkeypatch):
    monkeypatch.delenv("SSO_DNS_NAMESERVER", raising=False)
    assert env_nameserver("SSO_DNS_NAMESERVER") is None  # the system resolver
    for value, expected in [
        ("127.0.0.1", ("127.0.0.1", 53)),
        ("10.1.2.3:5353", ("10.1.2.3", 5353)),
        ("[::1]:15353", ("::1", 15353)),
    ]:
        monkeypatch.setenv("SSO_DNS_NAMESERVER", value)
        assert env_nameserver("SSO_DNS_NAMESERVER") == expected
    for bad in ("dns.example", "127.0.0.1:0", "127.0.0.1:x", "[::1"):
        monkeypatch.setenv("SSO_DNS_NAMESERVER", bad)
        with pytest.raises(ImproperlyConfigured, match="SSO_DNS_NAMESERVER"):
            env_nameserver("SSO_DNS_NAMESERVER")
