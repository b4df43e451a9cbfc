"""A real SAML 2.0 identity provider beside the tests: pysaml2's IdP (its `Server`) behind a WSGI server in a thread.

It publishes its metadata, takes Quetzal's AuthnRequest over the HTTP-Redirect binding, shows a sign-in page, and
answers with a Response whose assertion it signs (RSA-SHA256, with a throwaway key and certificate made here) and
posts back through the HTTP-POST binding, as Entra ID and Okta do. The people it knows and the attributes it says
of them are set by the test; it trusts Quetzal once given Quetzal's own SP metadata (trust()). pysaml2 signs
with Debian's xmlsec1; either missing skips locally and fails under CI=true (tests/services.py).
"""

from __future__ import annotations

import base64
import datetime
import html
import re
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from django.test import Client

from quetzal.server import free_port
from tenants.models import Tenant, User
from tenants.sso import saml, services
from tenants.sso.choices import ProviderKind
from tenants.sso.models import IdentityProvider
from tenants.sso.tests.dnsmasq import mark_verified
from tests.services import require_module, require_tool

# The attribute names Entra ID sends (the SAML provider's defaults read these, and Okta's short names too).
EMAIL = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress"
NAME = "http://schemas.microsoft.com/identity/claims/displayname"
GROUPS = "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups"
AUTHN_METHODS = "http://schemas.microsoft.com/claims/authnmethodsreferences"


def key_and_certificate(folder: Path) -> tuple[Path, Path]:
    """A throwaway RSA key and the self-signed certificate the IdP signs with (PEM files in `folder`)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test IdP signing")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .sign(key, hashes.SHA256())
    )
    key_path, cert_path = folder / "idp.key", folder / "idp.pem"
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args) -> None:
        pass


@dataclass
class SamlIdp:
    """The IdP as the tests drive it: who it knows, whether it signs, and its two pages."""

    base: str
    key_file: Path
    cert_file: Path
    xmlsec: str
    people: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    name_ids: dict[str, str] = field(default_factory=dict)
    sign_assertions: bool = True
    authn_class: str = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
    _sp_metadata: list[str] = field(default_factory=list)
    _pending: dict[str, object] = field(default_factory=dict)
    _server: object = None

    @property
    def entity_id(self) -> str:
        return f"{self.base}/metadata"

    @property
    def metadata_url(self) -> str:
        return f"{self.base}/metadata"

    @property
    def sso_url(self) -> str:
        return f"{self.base}/sso/redirect"

    def person(
        self, name: str, *, email: str, groups: tuple[str, ...] = (), nameid_only: bool = False, **attributes: list[str]
    ) -> None:
        """Set (or replace) what the IdP says of a person: their address (the NameID, and an attribute unless
        `nameid_only`), groups and any other attribute."""
        said = {} if nameid_only else {EMAIL: [email], **attributes}
        if groups:
            said[GROUPS] = list(groups)
        self.people[name] = said
        self.name_ids[name] = email

    def trust(self, sp_metadata_xml: str) -> None:
        """Know Quetzal's SP by its published metadata (its entity id and ACS URL come from there)."""
        self._sp_metadata.append(sp_metadata_xml)
        self._server = None

    def metadata(self) -> str:
        from saml2.metadata import create_metadata_string

        return create_metadata_string(None, config=self._config(), valid=1).decode()

    def sign_in(self, redirect_url: str, name: str, *, unsolicited: bool = False) -> tuple[str, dict[str, str]]:
        """Sign in at the IdP as `name`: where its auto-posting form goes, and the fields it posts (`unsolicited`:
        an answer to no request, as an IdP-initiated sign-in is)."""
        assert redirect_url.startswith(self.sso_url + "?"), redirect_url
        page = requests.get(redirect_url, timeout=10)
        assert page.status_code == 200, page.text[:500]
        key = re.search(r'name="key" value="([^"]+)"', page.text).group(1)
        posted = {"key": key, "user": name, **({"unsolicited": "1"} if unsolicited else {})}
        answer = requests.post(f"{self.base}/sso/login", data=posted, timeout=10)
        assert answer.status_code == 200, answer.text[:2000]
        action = html.unescape(re.search(r'action="([^"]+)"', answer.text).group(1))
        fields = {
            html.unescape(n): html.unescape(v)
            for n, v in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', answer.text)
        }
        return action, fields

    # ------------------------------------------------------------------ the pysaml2 side

    def _config(self):
        from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
        from saml2.config import IdPConfig
        from saml2.saml import NAME_FORMAT_URI, NAMEID_FORMAT_EMAILADDRESS, NAMEID_FORMAT_PERSISTENT

        config = IdPConfig()
        config.load(
            {
                "entityid": self.entity_id,
                "service": {
                    "idp": {
                        "name": "Acme test IdP",
                        "endpoints": {
                            "single_sign_on_service": [
                                (self.sso_url, BINDING_HTTP_REDIRECT),
                                (f"{self.base}/sso/post", BINDING_HTTP_POST),
                            ],
                        },
                        "name_id_format": [NAMEID_FORMAT_EMAILADDRESS, NAMEID_FORMAT_PERSISTENT],
                        "policy": {"default": {"lifetime": {"minutes": 15}, "name_form": NAME_FORMAT_URI}},
                        "want_authn_requests_signed": False,
                    }
                },
                "key_file": str(self.key_file),
                "cert_file": str(self.cert_file),
                "xmlsec_binary": self.xmlsec,
                "metadata": {"inline": list(self._sp_metadata)},
                "allow_unknown_attributes": True,
            }
        )
        return config

    def _idp(self):
        from saml2.server import Server

        if self._server is None:
            self._server = Server(config=self._config())
        return self._server

    def _respond(self, key: str, name: str, unsolicited: bool) -> str:
        from saml2 import BINDING_HTTP_POST
        from saml2.saml import NAMEID_FORMAT_EMAILADDRESS, NameID
        from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

        request, relay_state = self._pending.pop(key)
        identity = self.people[name]
        server = self._idp()
        destination = server.config.metadata.assertion_consumer_service(request.issuer.text, BINDING_HTTP_POST)[0]
        response = server.create_authn_response(
            identity,
            in_response_to=None if unsolicited else request.id,
            destination=destination["location"],
            sp_entity_id=request.issuer.text,
            name_id=NameID(format=NAMEID_FORMAT_EMAILADDRESS, text=self.name_ids[name]),
            authn={"class_ref": self.authn_class, "authn_auth": self.entity_id},
            sign_assertion=self.sign_assertions,
            sign_response=False,
            sign_alg=SIG_RSA_SHA256,
            digest_alg=DIGEST_SHA256,
        )
        encoded = base64.b64encode(str(response).encode()).decode()
        fields = "".join(
            f'<input type="hidden" name="{n}" value="{html.escape(v)}">'
            for n, v in (("SAMLResponse", encoded), ("RelayState", relay_state))
        )
        action = html.escape(destination["location"])
        return f'<form method="post" action="{action}">{fields}<button>Continue</button></form>'

    def __call__(self, environ, start_response):
        from saml2 import BINDING_HTTP_REDIRECT

        path = environ["PATH_INFO"]
        try:
            if path == "/metadata":
                return self._answer(start_response, "200 OK", self.metadata(), "application/samlmetadata+xml")
            if path == "/sso/redirect":
                query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
                parsed = self._idp().parse_authn_request(query["SAMLRequest"], BINDING_HTTP_REDIRECT)
                key = secrets.token_urlsafe(12)
                self._pending[key] = (parsed.message, query.get("RelayState", ""))
                form = f'<form method="post" action="/sso/login"><input name="key" value="{key}"><input name="user">'
                return self._answer(start_response, "200 OK", form)
            if path == "/sso/login" and environ["REQUEST_METHOD"] == "POST":
                length = int(environ.get("CONTENT_LENGTH") or 0)
                posted = {k: v[0] for k, v in parse_qs(environ["wsgi.input"].read(length).decode()).items()}
                return self._answer(
                    start_response, "200 OK", self._respond(posted["key"], posted["user"], "unsolicited" in posted)
                )
        except Exception as error:  # the test reads why in the answer
            return self._answer(start_response, "500 Internal Server Error", f"{type(error).__name__}: {error}")
        return self._answer(start_response, "404 Not Found", "no such page")

    @staticmethod
    def _answer(start_response, status: str, body: str, content_type: str = "text/html; charset=utf-8"):
        start_response(status, [("Content-Type", content_type)])
        return [body.encode()]


@pytest.fixture
def saml_idp(tmp_path) -> Iterator[SamlIdp]:
    require_module("saml2", "the pysaml2 package (requirements-dev.txt)")
    xmlsec = require_tool("xmlsec1", "xmlsec1")
    key_file, cert_file = key_and_certificate(tmp_path)
    port = free_port()
    idp = SamlIdp(base=f"http://127.0.0.1:{port}", key_file=key_file, cert_file=cert_file, xmlsec=xmlsec)
    server: WSGIServer = make_server("127.0.0.1", port, idp, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield idp
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def configure_saml(
    tenant: Tenant,
    actor: User,
    idp: SamlIdp,
    *,
    domains: tuple[str, ...] = ("acme.test",),
    group_roles: dict[str, str] | None = None,
    **values,
) -> IdentityProvider:
    """A SAML provider of the tenant whose metadata is the IdP's (read from its URL, as the admin's form does),
    its domains verified, and the IdP told Quetzal's SP metadata as published at its URL."""
    metadata = saml.fetch_metadata(idp.metadata_url)
    fields = {
        "kind": ProviderKind.SAML,
        "name": "Acme SAML",
        "saml_metadata_url": idp.metadata_url,
        "saml_metadata_xml": metadata.xml,
        "saml_entity_id": metadata.entity_id,
        "saml_sso_url": metadata.sso_url,
        "saml_certificate": metadata.certificate,
        "group_roles": group_roles if group_roles is not None else {"qz-admins": "admin", "qz-users": "member"},
        **values,
    }
    provider = services.save_provider(
        tenant=tenant, actor=actor, values=fields, domains=list(domains), client_secret=None
    )
    published = Client().get(f"/accounts/saml/{provider.provider_id}/metadata/")
    assert published.status_code == 200, published.content[:500]
    idp.trust(published.content.decode())
    return mark_verified(provider)
