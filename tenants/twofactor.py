"""Second-factor state of a person and a request (django-otp devices)."""

from __future__ import annotations

from django.conf import settings
from django_otp.plugins.otp_totp.models import TOTPDevice


def has_confirmed_device(user) -> bool:
    """Whether the person has a confirmed TOTP authenticator."""
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def second_factor_pending(request) -> bool:
    """Signed in with a password, owns a device, but has not entered a code yet."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return False
    is_verified = getattr(user, "is_verified", None)
    if is_verified is not None and is_verified():
        return False
    return has_confirmed_device(user)


def enrolment_required(request) -> bool:
    """The active tenant requires 2FA and the person has no confirmed device yet."""
    tenant = getattr(request, "tenant", None)
    user = getattr(request, "user", None)
    if tenant is None or not tenant.require_2fa or user is None or not user.is_authenticated:
        return False
    return not has_confirmed_device(user)


def operator_enrolment_required(request) -> bool:
    """ADMIN_REQUIRE_2FA is on and this operator's session has not passed a second factor."""
    user = getattr(request, "user", None)
    if not getattr(settings, "ADMIN_REQUIRE_2FA", False) or user is None or not user.is_authenticated:
        return False
    if not user.is_staff:
        return False
    is_verified = getattr(user, "is_verified", None)
    return not (is_verified is not None and is_verified())
