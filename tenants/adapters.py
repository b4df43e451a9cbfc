"""django-allauth hooks."""

from __future__ import annotations

from allauth.account.adapter import DefaultAccountAdapter
from allauth.core import context
from django.conf import settings

from tenants.redirects import is_safe_redirect


class AccountAdapter(DefaultAccountAdapter):
    """Sign-up is closed unless the operator opens it (ACCOUNT_ALLOW_SIGNUP)."""

    def is_open_for_signup(self, request) -> bool:
        return bool(settings.ACCOUNT_ALLOW_SIGNUP)

    def is_safe_url(self, url: str | None) -> bool:
        # allauth's sign-in, sign-out and account pages follow `next` through this: the site's one rule.
        return is_safe_redirect(context.request, url)
