"""Reading the audit log (its page filters) and the caller's address; events are written by `tenants.events`."""

from __future__ import annotations

from tenants import addresses


def client_ip(request) -> str | None:
    """The caller's address, by the same rule as the sign-in lockout (TRUSTED_PROXY_COUNT)."""
    return addresses.client_ip(request)


# The audit page's "kind of event" filter: a label and the action prefixes it covers.
CATEGORIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "": ("Every kind of event", ()),
    "console": ("Console sessions", ("console.",)),
    "desktop": ("Desktops", ("desktop.",)),
    "files": ("Home folders and files", ("home.", "files.")),
    "people": ("Members and invitations", ("member.", "invitation.")),
    "policy": ("Policies", ("tenant.",)),
    "network": ("Network and firewall", ("firewall.", "network.")),
    "setup": ("Pools and templates", ("pool.", "template.")),
    "security": ("Sign-in, single sign-on, 2FA and tokens", ("2fa.", "token.", "login.", "user.", "sso.")),
    "billing": ("Billing", ("billing.",)),
}
