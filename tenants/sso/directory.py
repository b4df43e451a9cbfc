"""Talking to a tenant's LDAP / Active Directory server (ldap3): check its settings, find a person, check a password.

The only module that imports ldap3. A person is found with the service account's bind, then their password is
checked by binding as them; their groups come from a group search or from an attribute of their entry.
"""

from __future__ import annotations

import contextlib
import re
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from ldap3 import BASE, NONE, SUBTREE, Connection, Server, Tls
from ldap3.core.exceptions import LDAPException, LDAPInvalidDnError, LDAPInvalidFilterError
from ldap3.operation.search import parse_filter
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import parse_dn

from tenants.sso.discovery import ProviderUnreachable

CONNECT_TIMEOUT_S = 5
RECEIVE_TIMEOUT_S = 10
MAX_GROUPS = 500
USER_PLACEHOLDERS = ("{email}", "{username}")
GROUP_PLACEHOLDERS = ("{dn}", "{username}")
_PLACEHOLDER = re.compile(r"\{[^}]*\}")
_ATTRIBUTE = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,63}$")


class DirectoryUnavailable(ProviderUnreachable):
    """The directory could not be reached, or refused the service account, or its settings do not fit (502)."""

    code = "ldap_unavailable"


@dataclass(frozen=True)
class DirectorySettings:
    """What the directory client needs of a provider (the bind password already unsealed)."""

    uri: str
    bind_dn: str
    bind_password: str
    user_base: str
    user_filter: str
    email_attribute: str
    group_attribute: str
    group_base: str
    group_filter: str
    # PEM CA certificates: the only trust anchors of this server's TLS when set (else the system's CAs).
    ca_certificate: str = ""
    start_tls: bool = False


@dataclass(frozen=True)
class Person:
    """Someone the directory found and whose password it accepted."""

    dn: str
    email: str
    groups: tuple[str, ...]


# ------------------------------------------------------------------------ checking settings (the form's rules)


def uri_problem(uri: str) -> str | None:
    """Why a server URI cannot be used, or None: ldap:// or ldaps://, a host, maybe a port, nothing more."""
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        return "Write it as ldap://host[:port] or ldaps://host[:port]."
    if parts.scheme not in ("ldap", "ldaps") or not parts.hostname:
        return "Write it as ldap://host[:port] or ldaps://host[:port]."
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username or port == 0:
        return "Only the scheme, host and port: the search base and filter have their own fields."
    return None


def dn_problem(dn: str) -> str | None:
    try:
        parse_dn(dn)
    except LDAPInvalidDnError:
        return "Not a distinguished name (write it like ou=people,dc=example,dc=com)."
    return None


def filter_problem(text: str, placeholders: tuple[str, ...]) -> str | None:
    """Why a search filter cannot be used, or None: one of the placeholders, no other, valid LDAP syntax."""
    used = set(_PLACEHOLDER.findall(text))
    unknown = sorted(used - set(placeholders))
    if unknown:
        return f"Unknown placeholder {', '.join(unknown)}: use {' or '.join(placeholders)}."
    if not used:
        example = "(mail={email})" if "{email}" in placeholders else "(member={dn})"
        return f"Put {' or '.join(placeholders)} where the person's name goes, e.g. {example}."
    sample = _PLACEHOLDER.sub("x", text)
    try:
        parse_filter(sample, None, False, False, None, False)
    except (LDAPInvalidFilterError, LDAPException, ValueError, IndexError):
        return "Not a valid LDAP filter: write it in parentheses, e.g. (&(objectClass=person)(mail={email}))."
    if not (sample.startswith("(") and sample.endswith(")")):
        return "Write the filter in parentheses, e.g. (mail={email})."
    return None


def attribute_problem(name: str) -> str | None:
    return None if _ATTRIBUTE.fullmatch(name) else "An attribute name: letters, digits and hyphens, e.g. memberOf."


# ------------------------------------------------------------------------ talking to the server


def _uses_tls(settings: DirectorySettings) -> bool:
    return settings.start_tls or settings.uri.lower().startswith("ldaps://")


def _server(settings: DirectorySettings) -> Server:
    # TLS checks the server's certificate (ldap3's default would not) against the provider's own CA when it has
    # one, and then that CA alone (the system's CAs are not loaded with it); else against the system's CAs.
    tls = None
    if _uses_tls(settings):
        tls = Tls(validate=ssl.CERT_REQUIRED, ca_certs_data=settings.ca_certificate or None)
    return Server(settings.uri, get_info=NONE, connect_timeout=CONNECT_TIMEOUT_S, tls=tls)


def _connection(server: Server, user: str, password: str) -> Connection:
    # No referral chasing: a referral would send the person's password to a server nobody configured.
    return Connection(
        server,
        user=user,
        password=password,
        read_only=True,
        auto_referrals=False,
        receive_timeout=RECEIVE_TIMEOUT_S,
        raise_exceptions=False,
    )


def _open(server: Server, user: str, password: str, *, start_tls: bool = False) -> Connection:
    """A connection to bind as `user` (over TLS once StartTLS succeeded); DirectoryUnavailable when the server
    does not answer, or its certificate does not verify."""
    connection = _connection(server, user, password)
    try:
        connection.open()
        if start_tls and not server.ssl and not connection.start_tls(read_server_info=False):
            why = connection.result.get("description", "refused") if connection.result else "refused"
            _close(connection)
            raise DirectoryUnavailable(
                f"The server {server.host}:{server.port} refused StartTLS ({why}).", code="ldap_start_tls"
            )
    except LDAPException as error:
        _close(connection)
        # The admin reads why (a refused port, a certificate that does not verify); the person only whom to ask.
        raise DirectoryUnavailable(
            f"Could not reach {server.host}:{server.port}: {type(error).__name__}: {error}"[:400],
            code="ldap_unreachable",
        ) from error
    return connection


def _close(connection: Connection) -> None:
    with contextlib.suppress(LDAPException):  # the server went away: there is nothing left to close
        connection.unbind()


def _service(settings: DirectorySettings) -> Connection:
    """The service account's connection, bound; DirectoryUnavailable when the server or the account fails."""
    connection = _open(_server(settings), settings.bind_dn, settings.bind_password, start_tls=settings.start_tls)
    try:
        bound = connection.bind()
    except LDAPException as error:
        _close(connection)
        raise DirectoryUnavailable(f"The server stopped answering: {type(error).__name__}.") from error
    if not bound:
        why = connection.result.get("description", "refused")
        _close(connection)
        raise DirectoryUnavailable(f"The server refused the bind DN or its password ({why}).", code="ldap_bind_refused")
    return connection


def _search(connection: Connection, base: str, search_filter: str, attributes: list[str], scope=SUBTREE) -> list:
    try:
        connection.search(base, search_filter, search_scope=scope, attributes=attributes, size_limit=MAX_GROUPS)
    except LDAPException as error:
        raise DirectoryUnavailable(f"The search in {base} failed: {type(error).__name__}.") from error
    result = connection.result.get("description", "")
    if result == "noSuchObject":
        raise DirectoryUnavailable(f"The search base {base} does not exist on the server.", code="ldap_no_base")
    if result not in ("success", "sizeLimitExceeded"):
        raise DirectoryUnavailable(f"The search in {base} failed ({result}).", code="ldap_search_failed")
    return [entry for entry in connection.response or [] if entry.get("type") == "searchResEntry"]


def _fill(template: str, **values: str) -> str:
    for name, value in values.items():
        template = template.replace("{" + name + "}", escape_filter_chars(value))
    return template


def _names(values: list[str]) -> list[str]:
    """A group by its cn and by its full DN (an admin may map either)."""
    names: list[str] = []
    for value in values:
        try:
            rdn = parse_dn(value)[0]
        except (LDAPInvalidDnError, IndexError):
            names.append(value)
            continue
        names.extend([rdn[1], value] if rdn[0].lower() == "cn" else [value])
    return names


def _values(entry: dict, attribute: str) -> list[str]:
    for name, value in (entry.get("attributes") or {}).items():
        if name.lower() == attribute.lower():
            return [str(v) for v in value] if isinstance(value, list) else [str(value)]
    return []


def _groups(connection: Connection, settings: DirectorySettings, entry: dict, username: str) -> tuple[str, ...]:
    if settings.group_base:
        search_filter = _fill(settings.group_filter, dn=entry["dn"], username=username)
        found = _search(connection, settings.group_base, search_filter, ["cn"])
        names = _names([group["dn"] for group in found])
    else:
        names = _names(_values(entry, settings.group_attribute)) if settings.group_attribute else []
    return tuple(dict.fromkeys(names))[:MAX_GROUPS]


def authenticate(settings: DirectorySettings, email: str, password: str) -> Person | None:
    """The person the address names, if the directory accepts the password; None for an unknown person or a wrong
    password (alike, so nobody learns which); DirectoryUnavailable when the directory cannot answer."""
    if not password:
        return None  # an empty password would be an anonymous bind, which servers accept
    username = email.partition("@")[0]
    connection = _service(settings)
    try:
        search_filter = _fill(settings.user_filter, email=email, username=username)
        attributes = [settings.email_attribute] + ([settings.group_attribute] if settings.group_attribute else [])
        found = _search(connection, settings.user_base, search_filter, attributes)
        if len(found) != 1:
            if len(found) > 1:
                raise DirectoryUnavailable(
                    f"The user filter found {len(found)} entries for one address: make it match one person.",
                    code="ldap_ambiguous",
                )
            return None
        entry = found[0]
        if not _password_accepted(connection.server, entry["dn"], password, start_tls=settings.start_tls):
            return None
        directory_email = next(iter(_values(entry, settings.email_attribute)), "") or email
        return Person(dn=entry["dn"], email=directory_email, groups=_groups(connection, settings, entry, username))
    finally:
        _close(connection)


def _password_accepted(server: Server, dn: str, password: str, *, start_tls: bool) -> bool:
    # The person's password goes over the same TLS as the service account's, never in the clear.
    person = _open(server, dn, password, start_tls=start_tls)
    try:
        # invalidCredentials, or locked, expired, refused for another reason: not let in, alike.
        return bool(person.bind())
    except LDAPException as error:
        raise DirectoryUnavailable(f"The server stopped answering: {type(error).__name__}.") from error
    finally:
        _close(person)


def check(settings: DirectorySettings) -> str:
    """The connection test: reach the server, bind as the service account, find the search bases; a sentence."""
    connection = _service(settings)
    try:
        _search(connection, settings.user_base, "(objectClass=*)", [], scope=BASE)
        if settings.group_base:
            _search(connection, settings.group_base, "(objectClass=*)", [], scope=BASE)
    finally:
        _close(connection)
    bases = settings.user_base + (f" and {settings.group_base}" if settings.group_base else "")
    tls = ""
    if _uses_tls(settings):
        starttls = settings.start_tls and not settings.uri.lower().startswith("ldaps://")
        tls = " Over TLS" + (" (StartTLS)" if starttls else "")
        tls += ", its certificate issued by the CA you gave." if settings.ca_certificate else "."
    return f"Connected: {settings.uri} answers, the bind DN signs in, {bases} found.{tls}"
