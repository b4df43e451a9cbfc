from __future__ import annotations

from tenants.sso.tests.dnsmasq import dns, dnsmasq_server, silent_dns  # noqa: F401  (fixtures)
from tenants.sso.tests.provider import oidc_provider  # noqa: F401  (fixture)
from tenants.sso.tests.saml_idp import saml_idp  # noqa: F401  (fixture)
from tenants.sso.tests.slapd import slapd  # noqa: F401  (fixture)
