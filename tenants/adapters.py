"""django-allauth hooks."""

from __future__ import annotations

from allauth.account.adapter import DefaultAccountAdapter
from allauth.core import context
from django.conf import settings

from tenants.redirects import is_safe_redirect
from tenants.twofactor import second_factor_pending


class AccountAdapter(DefaultAccountAdapter):
    """Sign-up is closed unless the operator opens it (ACCOUNT_ALLOW_SIGNUP)."""

    def is_open_for_signup(self, request) -> bool:
        return bool(settings.ACCOUNT_ALLOW_SIGNUP)

    def is_safe_url(self, url: str | None) -> bool:
        # allauth's sign-in, sign-out and account pages follow `next` through this: the site's one rule.
        return is_safe_redirect(context.request, url)

    def add_message(self, request, level, message_template=None, message_context=None, extra_tags="", message=None):
        # "Successfully signed in" would greet a person on the code page, before the code is entered.
        if message_template == "account/messages/logged_in.txt" and second_factor_pending(request):
            return
        super().add_message(request, level, message_template, message_context, extra_tags, message)
