"""A real OpenLDAP server beside the tests: Debian's slapd in a temporary directory, on a free port of 127.0.0.1.

A slapd.conf with the mdb backend, loaded with slapadd before it starts: dc=acme,dc=test with a service account,
ou=people (ana, ben and mallory, whose mail is in another domain) and ou=groups (groupOfNames qz-admins, qz-users).
Ana's seeAlso names her group by DN as Active Directory's memberOf would (slapadd fills no memberOf overlay).
It listens on ldap:// (StartTLS too) and on ldaps://, with a certificate for 127.0.0.1 and localhost that a private
CA made here issued (`Slapd.ca_pem`): no system CA vouches for it.
Missing slapd skips locally and fails under CI=true (tests/services.py).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from ldap3 import MODIFY_ADD, MODIFY_DELETE, MODIFY_REPLACE, Connection, Server

from quetzal.server import free_port
from tenants.models import Tenant, User
from tenants.sso import services
from tenants.sso.choices import ProviderKind
from tenants.sso.models import IdentityProvider
from tenants.sso.tests.certificates import issue_server, make_ca
from tenants.sso.tests.dnsmasq import mark_verified
from tests.services import port_open, require_tool

BASE = "dc=acme,dc=test"
ROOT_DN = f"cn=admin,{BASE}"
ROOT_PASSWORD = "root-of-acme-1"
SERVICE_DN = f"cn=quetzal,ou=services,{BASE}"
SERVICE_PASSWORD = "service-of-acme-1"
PASSWORDS = {"ana": "ana-directory-pw-1", "ben": "ben-directory-pw-1", "mallory": "mallory-directory-pw-1"}
SCHEMAS = ("core", "cosine", "nis", "inetorgperson")

CONFIG = """\
{includes}
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile {dir}/slapd.pid
argsfile {dir}/slapd.args
TLSCertificateFile {dir}/server.pem
TLSCertificateKeyFile {dir}/server.key
database mdb
maxsize 16777216
suffix "{base}"
rootdn "{root_dn}"
rootpw {root_password}
directory {dir}/db
access to attrs=userPassword by self read by anonymous auth by * none
access to * by users read by * none
"""

ENTRIES = """\
dn: {base}
objectClass: dcObject
objectClass: organization
dc: acme
o: Acme

dn: ou=people,{base}
objectClass: organizationalUnit
ou: people

dn: ou=groups,{base}
objectClass: organizationalUnit
ou: groups

dn: ou=services,{base}
objectClass: organizationalUnit
ou: services

dn: {service_dn}
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: quetzal
userPassword: {service_password}

dn: uid=ana,ou=people,{base}
objectClass: inetOrgPerson
uid: ana
cn: Ana Acme
sn: Acme
mail: ana@acme.test
userPassword: {ana}
seeAlso: cn=qz-admins,ou=groups,{base}

dn: uid=ben,ou=people,{base}
objectClass: inetOrgPerson
uid: ben
cn: Ben Acme
sn: Acme
mail: ben@acme.test
userPassword: {ben}

dn: uid=mallory,ou=people,{base}
objectClass: inetOrgPerson
uid: mallory
cn: Mallory
sn: Mallory
mail: ceo@bob.test
userPassword: {mallory}

dn: cn=qz-admins,ou=groups,{base}
objectClass: groupOfNames
cn: qz-admins
member: uid=ana,ou=people,{base}

dn: cn=qz-users,ou=groups,{base}
objectClass: groupOfNames
cn: qz-users
member: uid=ben,ou=people,{base}
member: uid=mallory,ou=people,{base}
"""


@dataclass
class Slapd:
    uri: str
    # The same server over TLS, its certificate issued by a private CA no system CA vouches for.
    ldaps_uri: str
    # That CA's certificate (PEM): what an organisation pastes into its provider's CA field.
    ca_pem: str

    def person_dn(self, uid: str) -> str:
        return f"uid={uid},ou=people,{BASE}"

    def _modify(self, dn: str, changes: dict) -> None:
        with Connection(Server(self.uri), ROOT_DN, ROOT_PASSWORD, auto_bind=True) as admin:
            assert admin.modify(dn, changes), admin.result

    def remove_from_group(self, uid: str, group: str) -> None:
        self._modify(f"cn={group},ou=groups,{BASE}", {"member": [(MODIFY_DELETE, [self.person_dn(uid)])]})

    def add_to_group(self, uid: str, group: str) -> None:
        self._modify(f"cn={group},ou=groups,{BASE}", {"member": [(MODIFY_ADD, [self.person_dn(uid)])]})

    def set_password(self, uid: str, password: str) -> None:
        self._modify(self.person_dn(uid), {"userPassword": [(MODIFY_REPLACE, [password])]})


def _certificates(directory: Path) -> str:
    """The server's certificate and key, issued by a CA made now; that CA's PEM."""
    ca = make_ca()
    server = issue_server(ca)
    (directory / "server.pem").write_text(server.pem)
    (directory / "server.key").write_text(server.key_pem)
    return ca.pem


def _start(directory: Path) -> tuple[subprocess.Popen, str, str, str]:
    slapd = require_tool("slapd", "slapd")
    slapadd = require_tool("slapadd", "slapd")
    (directory / "db").mkdir()
    ca_pem = _certificates(directory)
    includes = "\n".join(f"include /etc/ldap/schema/{name}.schema" for name in SCHEMAS)
    config = directory / "slapd.conf"
    config.write_text(
        CONFIG.format(includes=includes, dir=directory, base=BASE, root_dn=ROOT_DN, root_password=ROOT_PASSWORD)
    )
    data = directory / "entries.ldif"
    data.write_text(ENTRIES.format(base=BASE, service_dn=SERVICE_DN, service_password=SERVICE_PASSWORD, **PASSWORDS))
    subprocess.run([slapadd, "-f", str(config), "-l", str(data)], check=True, capture_output=True, timeout=30)
    port, tls_port = free_port(), free_port()
    uri, ldaps_uri = f"ldap://127.0.0.1:{port}", f"ldaps://127.0.0.1:{tls_port}"
    log = (directory / "slapd.log").open("wb")
    # -d keeps slapd in the foreground (a child this fixture can stop); level 0 logs only errors.
    command = [slapd, "-f", str(config), "-h", f"{uri}/ {ldaps_uri}/", "-d", "0"]
    process = subprocess.Popen(command, stdout=log, stderr=log)
    deadline = time.monotonic() + 15
    while not (port_open("127.0.0.1", port) and port_open("127.0.0.1", tls_port)):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"slapd did not start: {(directory / 'slapd.log').read_text()[-2000:]}")
        time.sleep(0.05)
    return process, uri, ldaps_uri, ca_pem


@pytest.fixture
def slapd(tmp_path: Path) -> Iterator[Slapd]:
    process, uri, ldaps_uri, ca_pem = _start(tmp_path)
    try:
        yield Slapd(uri=uri, ldaps_uri=ldaps_uri, ca_pem=ca_pem)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def configure_ldap(
    tenant: Tenant,
    actor: User,
    uri: str,
    *,
    domains: tuple[str, ...] = ("acme.test",),
    group_roles: dict[str, str] | None = None,
    verified: bool = True,
    bind_password: str = SERVICE_PASSWORD,
    **values,
) -> IdentityProvider:
    """An LDAP provider of the tenant, configured through the service the admin console uses;
    its domains verified unless `verified` is False."""
    fields = {
        "kind": ProviderKind.LDAP,
        "name": "Acme Directory",
        "ldap_uri": uri,
        "ldap_bind_dn": SERVICE_DN,
        "ldap_user_base": f"ou=people,{BASE}",
        "ldap_user_filter": "(&(objectClass=inetOrgPerson)(mail={email}))",
        "ldap_email_attribute": "mail",
        "ldap_group_attribute": "",
        "ldap_group_base": f"ou=groups,{BASE}",
        "ldap_group_filter": "(&(objectClass=groupOfNames)(member={dn}))",
        "group_roles": group_roles if group_roles is not None else {"qz-admins": "admin", "qz-users": "member"},
        **values,
    }
    provider = services.save_provider(
        tenant=tenant, actor=actor, values=fields, domains=list(domains), client_secret=bind_password
    )
    return mark_verified(provider) if verified else provider
