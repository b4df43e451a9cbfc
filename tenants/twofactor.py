"""Second-factor state of a person and a request (django-otp devices)."""

from __future__ import annotations

from django.conf import settings
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.models import Device
from django_otp.plugins.otp_totp.models import TOTPDevice

# What a sign-in through a tenant's provider left in the session (tenants.sso writes it): whether the
# provider's own second factor is trusted, or Quetzal's code is required whatever the tenant's policy.
SSO_SESSION_KEY = "quetzal_sso"


def _sso(request) -> dict:
    session = getattr(request, "session", None)
    state = session.get(SSO_SESSION_KEY) if session is not None else None
    return state if isinstance(state, dict) else {}


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
    if _sso(request).get("provider_mfa"):
        return False  # the tenant trusts its provider's second factor, and the provider said one was used
    return has_confirmed_device(user)


def enrolment_required(request) -> bool:
    """The active tenant (or the provider the person came through) requires 2FA and they have no device yet."""
    tenant = getattr(request, "tenant", None)
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return False
    if _sso(request).get("require_totp"):
        return not has_confirmed_device(user)
    if _sso(request).get("provider_mfa"):
        return False
    if tenant is None or not tenant.require_2fa:
        return False
    return not has_confirmed_device(user)


def session_verified(user, session) -> bool:
    """Whether this session (a socket's, say) entered a code of one of the person's confirmed devices."""
    persistent_id = session.get(DEVICE_ID_SESSION_KEY) if session is not None else None
    device = Device.from_persistent_id(persistent_id) if persistent_id else None
    return device is not None and device.user_id == user.pk and device.confirmed


def is_operator_account(user) -> bool:
    """Whether the account is an operator's (staff), powers or not: what keeps a tenant's rules off it."""
    return bool(user is not None and user.is_authenticated and user.is_staff)


def operator_powers(user, *, verified: bool) -> bool:
    """The one test of operator powers: staff, and past a second factor when ADMIN_REQUIRE_2FA is on."""
    if user is None or not user.is_authenticated or not user.is_staff:
        return False
    return verified or not settings.ADMIN_REQUIRE_2FA


def is_operator(request) -> bool:
    """Whether the request acts with operator powers (see operator_powers)."""
    user = getattr(request, "user", None)
    is_verified = getattr(user, "is_verified", None)
    return operator_powers(user, verified=bool(is_verified and is_verified()))


def is_operator_socket(user, session) -> bool:
    """Whether a socket's person acts with operator powers, judged from the socket's session."""
    return operator_powers(
        user, verified=user is not None and user.is_authenticated and session_verified(user, session)
    )


def operator_enrolment_required(request) -> bool:
    """An operator who lacks operator powers only for want of a second factor (ADMIN_REQUIRE_2FA is on)."""
    user = getattr(request, "user", None)
    staff = user is not None and user.is_authenticated and user.is_staff
    return staff and not is_operator(request)
