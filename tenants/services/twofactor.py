"""Enrolling TOTP devices, recovery codes and verifying a sign-in's second factor."""

from __future__ import annotations

import base64
import io

import qrcode
import qrcode.image.svg
from django.db import transaction
from django_otp import login as otp_login
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from tenants import events

RECOVERY_DEVICE_NAME = "recovery"
RECOVERY_CODE_COUNT = 10


def start_totp_enrolment(user) -> TOTPDevice:
    """An unconfirmed authenticator whose secret the person scans; replaces older unconfirmed ones."""
    with transaction.atomic():
        TOTPDevice.objects.filter(user=user, confirmed=False).delete()
        return TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=False)


def qr_code_svg(device: TOTPDevice) -> str:
    """The otpauth:// URL of a device as an inline SVG data URL."""
    image = qrcode.make(device.config_url, image_factory=qrcode.image.svg.SvgPathImage, box_size=8)
    buffer = io.BytesIO()
    image.save(buffer)
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode()


def secret_base32(device: TOTPDevice) -> str:
    """The device key as base32, for typing into an app by hand."""
    return base64.b32encode(device.bin_key).decode().rstrip("=")


def confirm_totp(*, user, device: TOTPDevice, code: str, request=None) -> list[str] | None:
    """Confirm enrolment with a first code; returns fresh recovery codes, or None if the code is wrong."""
    if device.user_id != user.pk or device.confirmed or not device.verify_token(code.strip()):
        return None
    with transaction.atomic():
        TOTPDevice.objects.filter(pk=device.pk).update(confirmed=True)
        device.confirmed = True
        codes = regenerate_recovery_codes(user)
        events.two_factor_enrolled(user=user, request=request)
    if request is not None:
        otp_login(request, device)
    return codes


def regenerate_recovery_codes(user, *, request=None) -> list[str]:
    """Replace the person's recovery codes with new one-time codes (audited when a person asks for it)."""
    device, _ = StaticDevice.objects.get_or_create(user=user, name=RECOVERY_DEVICE_NAME, defaults={"confirmed": True})
    device.token_set.all().delete()
    codes = [StaticToken.random_token() for _ in range(RECOVERY_CODE_COUNT)]
    StaticToken.objects.bulk_create([StaticToken(device=device, token=code) for code in codes])
    if request is not None:
        events.recovery_codes_regenerated(user=user, request=request)
    return codes


def verify_second_factor(*, request, code: str) -> bool:
    """Accept a TOTP code (each once) or a recovery code (each once) and mark the session verified."""
    code = code.strip().replace(" ", "")
    user = request.user
    # Route by shape so a recovery code never counts as a failed TOTP attempt (and vice versa):
    # each device throttles its own failures.
    totp_devices = TOTPDevice.objects.filter(user=user, confirmed=True) if code.isdigit() else []
    static_devices = StaticDevice.objects.filter(user=user, confirmed=True) if not code.isdigit() else []
    for device in totp_devices:
        # django-otp keeps the last accepted time step, so a replayed code fails here.
        if device.verify_token(code):
            otp_login(request, device)
            events.two_factor_verified(user=user, request=request)
            return True
    for device in static_devices:
        if device.verify_token(code):  # a static token is deleted when used
            otp_login(request, device)
            events.recovery_code_used(user=user, request=request)
            return True
    events.two_factor_failed(user=user, request=request)
    return False


def remove_devices(*, user, request=None) -> None:
    """Switch 2FA off for this person (their tenant may then send them to enrol again)."""
    with transaction.atomic():
        TOTPDevice.objects.filter(user=user).delete()
        StaticDevice.objects.filter(user=user).delete()
        events.two_factor_removed(user=user, request=request)
