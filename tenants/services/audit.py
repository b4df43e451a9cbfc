"""Reading the audit log (its page filters) and the caller's address; events are written by `tenants.events`."""

from __future__ import annotations

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from tenants import addresses


def client_ip(request) -> str | None:
    """The caller's address, by the same rule as the sign-in lockout (TRUSTED_PROXY_COUNT)."""
    return addresses.client_ip(request)


# The audit page's "kind of event" filter: a label and the action prefixes it covers.
CATEGORIES: dict[str, tuple[str | Promise, tuple[str, ...]]] = {
    "": (_("Every kind of event"), ()),
    "console": (_("Console sessions"), ("console.",)),
    "desktop": (_("Desktops"), ("desktop.",)),
    "files": (_("Home folders and files"), ("home.", "files.")),
    "people": (_("Members and invitations"), ("member.", "invitation.")),
    "policy": (_("Policies"), ("tenant.",)),
    "network": (_("Network and firewall"), ("firewall.", "network.")),
    "setup": (_("Pools and templates"), ("pool.", "template.")),
    "security": (_("Sign-in, single sign-on, 2FA and tokens"), ("2fa.", "token.", "login.", "user.", "sso.", "scim.")),
    "billing": (_("Billing"), ("billing.",)),
}
