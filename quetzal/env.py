"""Small validating readers for settings taken from environment variables."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import overload
from urllib.parse import parse_qs, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@overload
def env_str(name: str, default: str, *, required: bool = False) -> str: ...
@overload
def env_str(name: str, default: None = None, *, required: bool = False) -> str | None: ...
def env_str(name: str, default: str | None = None, *, required: bool = False) -> str | None:
    """Return a string variable, or the default; raise when required and missing."""
    value = os.environ.get(name)
    if value is None or value == "":
        if required:
            raise ImproperlyConfigured(f"{name} must be set")
        return default
    return value


def env_bool(name: str, default: bool = False) -> bool:
    """Return a boolean variable written as 1/0, true/false, yes/no or on/off."""
    value = os.environ.get(name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), got {value!r}")


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """Return an integer variable within optional bounds."""
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {number}")
    if maximum is not None and number > maximum:
        raise ImproperlyConfigured(f"{name} must be at most {maximum}, got {number}")
    return number


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    """Return a comma-separated list variable without empty items."""
    value = os.environ.get(name)
    if value is None:
        return list(default or [])
    return [item.strip() for item in value.split(",") if item.strip()]


def env_network(name: str, default: str) -> str:
    """Return an IPv4 network in CIDR form (host bits must be zero), canonicalised."""
    value = os.environ.get(name, "").strip() or default
    try:
        return str(ipaddress.IPv4Network(value))
    except ValueError as error:
        raise ImproperlyConfigured(f"{name} must be an IPv4 network such as 10.200.0.0/16, got {value!r}: {error}")


def env_nameserver(name: str) -> tuple[str, int] | None:
    """Return a DNS server written as an IP address with an optional port (1.2.3.4, 1.2.3.4:5353, [::1]:53), or None
    when unset (the system resolver)."""
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    host, port = value, "53"
    if value.startswith("["):
        host, bracket, rest = value[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            host = ""  # not an address: refused below
        port = rest.removeprefix(":") or "53"
    elif value.count(":") == 1:
        host, _, port = value.partition(":")
    try:
        address = ipaddress.ip_address(host)
        number = int(port)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an IP address with an optional :port, got {value!r}") from None
    if not 0 < number < 65536:
        raise ImproperlyConfigured(f"{name}'s port must be 1-65535, got {number}")
    return str(address), number


def env_networks(name: str, default: list[str]) -> list[str]:
    """Return a comma-separated list of IPv4 networks in CIDR form."""
    items = env_list(name, default)
    try:
        return [str(ipaddress.IPv4Network(item)) for item in items]
    except ValueError as error:
        raise ImproperlyConfigured(f"{name} must list IPv4 networks such as 169.254.0.0/16: {error}")


def env_commands(name: str) -> dict[str, list[str]]:
    """Return a JSON object of key -> command line, each split into argv words (as a shell would)."""
    value = os.environ.get(name, "").strip()
    if not value:
        return {}
    try:
        parsed = json.loads(value)
    except ValueError as error:
        raise ImproperlyConfigured(f"{name} must be a JSON object of URI to command, got {value!r}: {error}")
    if not isinstance(parsed, dict) or not all(isinstance(v, str) for v in parsed.values()):
        raise ImproperlyConfigured(f'{name} must be a JSON object such as {{"qemu+tls://h1/system": "ssh root@h1"}}')
    commands = {str(key): shlex.split(command) for key, command in parsed.items()}
    empty = [key for key, argv in commands.items() if not argv]
    if empty:
        raise ImproperlyConfigured(f"{name} names no command for {', '.join(empty)}")
    return commands


def env_choice(name: str, choices: tuple[str, ...], default: str) -> str:
    """Return a variable that must be one of a fixed set of words."""
    value = os.environ.get(name, default).strip().lower()
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def parse_kek(text: str, *, source: str) -> bytes:
    """A key-encryption key written as base64 of exactly 32 random bytes."""
    cleaned = "".join(text.split())
    try:
        raw = base64.b64decode(cleaned.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise ImproperlyConfigured(f"{source} must be base64 of 32 random bytes (`openssl rand -base64 32`)") from None
    if len(raw) != 32:
        raise ImproperlyConfigured(f"{source} must decode to 32 bytes, got {len(raw)}")
    if len(set(raw)) < 8:
        raise ImproperlyConfigured(f"{source} does not look random")
    return raw


def env_kek(name: str, file_name: str, *, required: bool = False) -> bytes | None:
    """The key-encryption key from `name` (base64) or the file `file_name` names; never both."""
    value = os.environ.get(name, "").strip()
    path = os.environ.get(file_name, "").strip()
    if value and path:
        raise ImproperlyConfigured(f"set only one of {name} and {file_name}")
    if path:
        try:
            text = Path(path).read_text()
        except OSError as error:
            raise ImproperlyConfigured(f"{file_name}: cannot read {path}: {error.strerror}") from None
        return parse_kek(text, source=f"{file_name} ({path})")
    if value:
        return parse_kek(value, source=name)
    if required:
        raise ImproperlyConfigured(f"{name} or {file_name} must be set: disks and recordings are encrypted under it")
    return None


def _sqlite(path: str) -> dict:
    """A SQLite entry that a web process, a worker and beat can share without "database is locked"."""
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": path,
        "OPTIONS": {
            # WAL lets readers run beside the one writer; IMMEDIATE takes the write lock at BEGIN,
            # so two writers queue on the busy timeout instead of one failing on a lock upgrade.
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
        },
    }


def env_database(name: str, default_sqlite: Path) -> dict:
    """Return a Django DATABASES entry from a sqlite:/// or postgres:// URL."""
    url = os.environ.get(name, "").strip()
    if not url:
        return _sqlite(str(default_sqlite))
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        path = unquote(parts.path)
        if not path or path == "/":
            raise ImproperlyConfigured(f"{name} needs a file path, e.g. sqlite:////var/lib/quetzal/db.sqlite3")
        # As in dj-database-url: sqlite:///relative.db and sqlite:////absolute.db.
        return _sqlite(path[1:])
    if parts.scheme in {"postgres", "postgresql", "pgsql"}:
        dbname = unquote(parts.path.lstrip("/"))
        if not dbname:
            raise ImproperlyConfigured(f"{name} must name a database, e.g. postgres://user@host:5432/quetzal")
        try:
            port = parts.port
        except ValueError:
            raise ImproperlyConfigured(f"{name} has an invalid port") from None
        options = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": dbname,
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(port or ""),
            "OPTIONS": options,
            "CONN_MAX_AGE": 60,
            "CONN_HEALTH_CHECKS": True,
        }
    raise ImproperlyConfigured(f"{name} must start with sqlite:// or postgres://, got {parts.scheme or url!r}")


@dataclass(frozen=True)
class RedisUrl:
    """A validated redis:// URL."""

    url: str


def env_redis(name: str) -> RedisUrl | None:
    """Return the Redis URL, or None when unset (the embedded Redis is used then)."""
    url = os.environ.get(name, "").strip()
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in {"redis", "rediss", "unix"}:
        raise ImproperlyConfigured(f"{name} must start with redis://, rediss:// or unix://, got {url!r}")
    return RedisUrl(url)
