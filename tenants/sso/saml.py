"""SAML 2.0 providers: reading an IdP's metadata, the allauth app and provider of one, what an assertion says of a
person, and the SP metadata Quetzal publishes for the tenant.

The IdP's entity id, sign-in URL and signing certificate are read once, when the admin saves (or tests) the
provider, and kept on its row: a sign-in never waits on the IdP's metadata URL, and an assertion is checked
against the certificate the admin saw on the page. Assertions must be signed (RSA-SHA256 or stronger); a changed
or unsigned one is refused by python3-saml before allauth sees anyone.
"""

from __future__ import annotations

import base64
import binascii
import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests
from allauth.socialaccount.adapter import get_adapter
from allauth.socialaccount.models import SocialApp
from allauth.socialaccount.providers.saml.provider import SAMLProvider
from allauth.socialaccount.providers.saml.utils import build_saml_config
from cryptography import x509
from django.http import HttpRequest
from django.urls import reverse
from django.utils.translation import gettext
from onelogin.saml2.constants import OneLogin_Saml2_Constants
from onelogin.saml2.idp_metadata_parser import OneLogin_Saml2_IdPMetadataParser
from onelogin.saml2.settings import OneLogin_Saml2_Settings
from onelogin.saml2.xml_utils import OneLogin_Saml2_XML

from quetzal.errors import ServiceError
from tenants.sso.choices import SAML_MFA_CONTEXTS
from tenants.sso.models import IdentityProvider

SAML = "saml"
MAX_METADATA_BYTES = 1_000_000
# Entra ID's immutable object id, then the OASIS subject id; else allauth takes the NameID.
UID_ATTRIBUTES = [
    "http://schemas.microsoft.com/identity/claims/objectidentifier",
    "urn:oasis:names:tc:SAML:attribute:subject-id",
]
# Entra ID says which methods the person used in this attribute (multipleauthn: a second factor).
AUTHN_METHODS_ATTRIBUTE = "http://schemas.microsoft.com/claims/authnmethodsreferences"


class MetadataProblem(ServiceError):
    """The IdP's metadata could not be read, or does not describe an IdP Quetzal can use (400, said on the form)."""

    code = "sso_saml_metadata"
    status = 400


@dataclass(frozen=True)
class IdpMetadata:
    xml: str
    entity_id: str
    sso_url: str
    certificate: str  # base64 DER, as the metadata has it


def names(text: str) -> list[str]:
    """An attribute setting's names (separated by spaces or commas)."""
    return [name for name in text.replace(",", " ").split() if name]


def read_metadata(xml: str) -> IdpMetadata:
    """The IdP's entity id, HTTP-Redirect sign-in URL and signing certificate from its metadata XML."""
    xml = xml.strip()
    if not xml:
        raise MetadataProblem(gettext("Give the IdP's metadata URL, or paste its metadata XML."))
    try:
        # python3-saml parses with DTDs and entities forbidden; hostile or broken input raises lxml's, defusedxml's
        # or its own errors, all of which mean the same to the admin.
        found = OneLogin_Saml2_IdPMetadataParser.parse(
            xml, required_sso_binding=OneLogin_Saml2_Constants.BINDING_HTTP_REDIRECT
        )
    except Exception as error:
        raise MetadataProblem(
            gettext("This is not SAML metadata Quetzal can read: %(problem)s") % {"problem": str(error)[:200]}
        ) from error
    idp = found.get("idp") or {}
    entity_id = str(idp.get("entityId") or "")
    sso_url = str((idp.get("singleSignOnService") or {}).get("url") or "")
    if not entity_id:
        raise MetadataProblem(gettext("The metadata describes no identity provider (no IDPSSODescriptor)."))
    if not sso_url.startswith(("https://", "http://")):
        raise MetadataProblem(gettext("The metadata has no sign-in URL for the HTTP-Redirect binding."))
    signing = _signing_certificates(xml, entity_id)
    if not signing:
        raise MetadataProblem(
            gettext("The metadata has no signing certificate: Quetzal accepts signed assertions only.")
        )
    certificate = "".join(str(signing[0]).split())
    if certificate_expiry(certificate) is None:
        raise MetadataProblem(gettext("The signing certificate in the metadata could not be read."))
    return IdpMetadata(xml=xml, entity_id=entity_id[:1024], sso_url=sso_url[:1000], certificate=certificate)


def _signing_certificates(xml: str, entity_id: str) -> list[str]:
    """The IdP's certificates for signing (a KeyDescriptor with no `use` is for both): python3-saml's parser hands
    back an encryption-only certificate as its x509cert, which would never verify a signature."""
    root = OneLogin_Saml2_XML.to_etree(xml)
    entities = [root] if root.get("entityID") == entity_id else OneLogin_Saml2_XML.query(root, "//md:EntityDescriptor")
    for entity in entities:
        if entity.get("entityID") != entity_id:
            continue
        path = "./md:IDPSSODescriptor/md:KeyDescriptor[not(contains(@use, 'encryption'))]//ds:X509Certificate"
        return [
            "".join(OneLogin_Saml2_XML.element_text(node).split()) for node in OneLogin_Saml2_XML.query(entity, path)
        ]
    return []


def fetch_metadata(url: str) -> IdpMetadata:
    """The IdP's metadata read from its URL, with a clear error for each way that goes wrong."""
    try:
        with get_adapter().get_requests_session() as session:
            response = session.get(url, headers={"Accept": "application/samlmetadata+xml, application/xml"})
    except requests.RequestException as error:
        raise MetadataProblem(
            gettext("Could not reach %(url)s: %(name)s.") % {"url": url, "name": type(error).__name__}
        ) from error
    if response.status_code != 200:
        raise MetadataProblem(
            gettext("%(url)s answered HTTP %(status_code)s, not the metadata.")
            % {"url": url, "status_code": response.status_code}
        )
    if len(response.content) > MAX_METADATA_BYTES:
        raise MetadataProblem(gettext("%(url)s answered more than 1 MB: not one IdP's metadata.") % {"url": url})
    return read_metadata(response.content.decode("utf-8", errors="replace"))


def certificate_expiry(certificate: str) -> datetime.datetime | None:
    """When the IdP's signing certificate expires (None: it cannot be read)."""
    try:
        return x509.load_der_x509_certificate(base64.b64decode(certificate, validate=True)).not_valid_after_utc
    except (ValueError, binascii.Error):
        return None


# ------------------------------------------------------------------------ allauth


class SamlProvider(SAMLProvider):
    """allauth's SAML provider, keeping the NameID and the authentication context beside the attributes
    (SOCIALACCOUNT_PROVIDERS' provider_class; its URLs stay allauth's)."""

    package = "allauth.socialaccount.providers.saml"

    def extract_extra_data(self, data) -> dict[str, Any]:
        return {
            "attributes": data.get_attributes(),
            "name_id": data.get_nameid(),
            "name_id_format": data.get_nameid_format(),
            "authn_contexts": data.get_last_authn_contexts(),
        }


def as_app(provider: IdentityProvider, domains: list[str]) -> SocialApp:
    """The allauth app of a SAML provider, in memory: its client id is the provider id, the URLs' slug."""
    return SocialApp(
        provider=SAML,
        provider_id=provider.provider_id,
        name=provider.name,
        client_id=provider.provider_id,
        settings={
            "idp": {
                "entity_id": provider.saml_entity_id,
                "sso_url": provider.saml_sso_url,
                "x509cert": provider.saml_certificate,
            },
            "attribute_mapping": {"uid": UID_ATTRIBUTES, "email": names(provider.saml_email_attributes)},
            # The IdP speaks for the domains its tenant routes (verified), and admit() refuses any other address.
            "verified_email": domains,
            "advanced": {
                "strict": True,
                "want_assertion_signed": True,
                "reject_deprecated_algorithm": True,
                "reject_idp_initiated_sso": True,
                # An IdP may say only the NameID (an email address): the person is still known by it.
                "want_attribute_statement": False,
                # Only how URLs are checked: an IdP inside the organisation may be on a one-label host name.
                "allow_single_label_domains": True,
            },
        },
    )


def _first(attributes: Mapping[str, Any], wanted: list[str]) -> str:
    for name in wanted:
        values = attributes.get(name)
        if isinstance(values, list) and values and isinstance(values[0], str) and values[0].strip():
            return values[0].strip()
    return ""


def claims(provider: IdentityProvider, extra_data: Mapping[str, Any]) -> dict[str, Any]:
    """What a (verified) assertion says of the person, in the shape admit() reads OpenID Connect's claims in."""
    said_attributes = extra_data.get("attributes")
    attributes: dict[str, Any] = said_attributes if isinstance(said_attributes, dict) else {}
    email = _first(attributes, names(provider.saml_email_attributes))
    if not email and extra_data.get("name_id_format") == OneLogin_Saml2_Constants.NAMEID_EMAIL_ADDRESS:
        email = str(extra_data.get("name_id") or "")
    groups: list[str] = []
    for name in names(provider.saml_groups_attributes):
        values = attributes.get(name)
        groups += [v for v in values if isinstance(v, str) and v not in groups] if isinstance(values, list) else []
    said = list(extra_data.get("authn_contexts") or []) + list(attributes.get(AUTHN_METHODS_ATTRIBUTE) or [])
    return {
        "email": email,
        "name": _first(attributes, names(provider.saml_name_attributes)),
        provider.groups_claim or "groups": groups,
        "amr": ["mfa"] if any(context in SAML_MFA_CONTEXTS for context in said) else [],
    }


# ------------------------------------------------------------------------ what Quetzal publishes


@dataclass(frozen=True)
class ServiceProvider:
    """What the IdP's admin enters for Quetzal (Entra ID: Identifier and Reply URL), or reads from the metadata."""

    entity_id: str
    acs_url: str
    metadata_url: str


def service_provider(request: HttpRequest, provider: IdentityProvider) -> ServiceProvider:
    slug = provider.provider_id
    metadata_url = request.build_absolute_uri(reverse("saml_metadata", args=[slug]))
    return ServiceProvider(
        entity_id=metadata_url,  # allauth's rule: the SP's entity id is its metadata URL
        acs_url=request.build_absolute_uri(reverse("saml_acs", args=[slug])),
        metadata_url=metadata_url,
    )


def sp_metadata(request: HttpRequest, provider: IdentityProvider) -> str:
    """The tenant's SP metadata XML (entity id, ACS, signed assertions wanted), as python3-saml writes it."""
    config = build_saml_config(request, as_app(provider, []).settings, provider.provider_id)
    settings = OneLogin_Saml2_Settings(settings=config, sp_validation_only=True)
    metadata = settings.get_sp_metadata()
    return metadata.decode() if isinstance(metadata, bytes) else metadata


# ------------------------------------------------------------------------ the admin's test


def test_connection(provider: IdentityProvider) -> tuple[str, IdpMetadata | None]:
    """Read the metadata URL again (the IdP may have rolled its certificate) and reach the sign-in URL: a sentence,
    and the metadata read when it differs from the stored one; raises MetadataProblem."""
    fresh = fetch_metadata(provider.saml_metadata_url) if provider.saml_metadata_url else None
    sso_url = fresh.sso_url if fresh else provider.saml_sso_url
    try:
        with get_adapter().get_requests_session() as session:
            session.get(sso_url, allow_redirects=False)
    except requests.RequestException as error:
        raise MetadataProblem(
            gettext("Could not reach the IdP's sign-in URL %(url)s: %(name)s.")
            % {"url": sso_url, "name": type(error).__name__}
        ) from error
    stored = (provider.saml_entity_id, provider.saml_sso_url, provider.saml_certificate)
    if fresh is not None and (fresh.entity_id, fresh.sso_url, fresh.certificate) != stored:
        answer = gettext("Connected: %(entity)s answers; its metadata changed and was saved.")
        return answer % {"entity": fresh.entity_id}, fresh
    answer = gettext("Connected: %(entity)s answers, its metadata is as saved.")
    return answer % {"entity": provider.saml_entity_id}, None
