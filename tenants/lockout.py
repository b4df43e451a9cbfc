"""Failed sign-ins lock out one account from one address, and an account attacked from everywhere.

django-axes counts failures per set in AXES_LOCKOUT_PARAMETERS but holds every set to one limit.
Here the (account, address) pair gets LOGIN_FAILURE_LIMIT and the account alone a higher
LOGIN_ACCOUNT_FAILURE_LIMIT: a colleague's typos behind the office's address lock out only that
colleague, one attacker cannot lock anyone out from afar quickly, and a password spray spread over
many addresses still stops.
"""

from __future__ import annotations

from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_failure_limit
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Sum

# The order AXES_LOCKOUT_PARAMETERS must have for the handler below to read its counts.
LOCKOUT_PARAMETERS = [["username", "ip_address"], "username"]
_CREDENTIAL_KEYS = ("email", "username", "login")


def login_name(request, credentials: dict | None = None) -> str | None:
    """The account a sign-in names, lower-cased (AXES_USERNAME_CALLABLE).

    allauth authenticates with `email=`, Django's admin with `username=`; the form field is `login`.
    """
    sources = [credentials or {}, getattr(request, "POST", None) or {}]
    for source in sources:
        for key in _CREDENTIAL_KEYS:
            value = source.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip().lower()
    return None


class AccountAndAddressHandler(AxesDatabaseHandler):
    """Axes' database handler with a limit per (account, address) and a higher one per account."""

    def __init__(self) -> None:
        super().__init__()
        if settings.AXES_LOCKOUT_PARAMETERS != LOCKOUT_PARAMETERS:
            raise ImproperlyConfigured(f"{type(self).__name__} needs AXES_LOCKOUT_PARAMETERS = {LOCKOUT_PARAMETERS}")

    def get_failures(self, request, credentials: dict | None = None) -> int:
        pair, account = (
            attempts.aggregate(total=Sum("failures_since_start"))["total"] or 0
            for attempts in self.get_user_attempts(request, credentials)
        )
        if account >= settings.LOGIN_ACCOUNT_FAILURE_LIMIT:
            # Reported as "at the limit", which is what axes compares against.
            return max(pair, get_failure_limit(request, credentials))
        return pair

    def reset_user_attempts(self, request, credentials: dict | None = None) -> int:
        # A success clears only its own (account, address) pair: were the account-wide count cleared
        # too, every sign-in of the real person would hand a password spray a fresh allowance.
        pair = self.filter_user_attempts(request, credentials)[0]
        deleted, _ = pair.delete()
        return deleted
