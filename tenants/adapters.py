"""django-allauth hooks."""

from __future__ import annotations

from allauth.account.adapter import DefaultAccountAdapter
from django.conf import settings


class AccountAdapter(DefaultAccountAdapter):
    """Sign-up is closed unless the operator opens it (ACCOUNT_ALLOW_SIGNUP)."""

    def is_open_for_signup(self, request) -> bool:
        return bool(settings.ACCOUNT_ALLOW_SIGNUP)
