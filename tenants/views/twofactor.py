"""Two-factor pages: enrol an authenticator, enter a code, manage devices."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext
from django.views.decorators.http import require_http_methods
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from tenants.forms import CodeForm
from tenants.redirects import safe_next
from tenants.services import twofactor
from tenants.twofactor import has_confirmed_device, operator_enrolment_required, second_factor_pending

SETUP_SESSION_KEY = "quetzal_totp_setup_device"


@login_required
@require_http_methods(["GET", "POST"])
def setup(request: HttpRequest) -> HttpResponse:
    """Scan a QR code, confirm with a first code, receive recovery codes."""
    if second_factor_pending(request):
        return redirect("tenants:2fa_verify")
    device = TOTPDevice.objects.filter(
        user=request.user, confirmed=False, pk=request.session.get(SETUP_SESSION_KEY)
    ).first()
    if device is None or (request.method == "GET" and not request.GET.get("keep")):
        device = twofactor.start_totp_enrolment(request.user)
        request.session[SETUP_SESSION_KEY] = device.pk
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        codes = twofactor.confirm_totp(
            user=request.user, device=device, code=form.cleaned_data["code"], request=request
        )
        if codes is not None:
            request.session.pop(SETUP_SESSION_KEY, None)
            return render(request, "tenants/2fa_recovery_codes.html", {"codes": codes})
        form.add_error("code", gettext("That code is not right. Check the time on your phone and try the next code."))
    context = {
        "form": form,
        "qr": twofactor.qr_code_svg(device),
        "secret": twofactor.secret_base32(device),
        "required": bool(request.tenant and request.tenant.require_2fa) or operator_enrolment_required(request),
    }
    return render(request, "tenants/2fa_setup.html", context, status=400 if form.errors else 200)


@login_required
@require_http_methods(["GET", "POST"])
def verify(request: HttpRequest) -> HttpResponse:
    """Enter the code from the authenticator app (or a recovery code) after the password."""
    if not second_factor_pending(request):
        return redirect(safe_next(request))
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if twofactor.verify_second_factor(request=request, code=form.cleaned_data["code"]):
            return redirect(safe_next(request))
        form.add_error("code", gettext("That code is not valid or was already used."))
    return render(request, "tenants/2fa_verify.html", {"form": form}, status=400 if form.errors else 200)


@login_required
@require_http_methods(["GET", "POST"])
def security(request: HttpRequest) -> HttpResponse:
    """The person's 2FA devices, recovery codes, and the way to switch 2FA off."""
    if request.method == "POST":
        action = request.POST.get("action")
        if action == "regenerate" and has_confirmed_device(request.user):
            codes = twofactor.regenerate_recovery_codes(request.user, request=request)
            return render(request, "tenants/2fa_recovery_codes.html", {"codes": codes})
        if action == "remove":
            twofactor.remove_devices(user=request.user, request=request)
            messages.success(request, gettext("Two-factor authentication is off."))
            return redirect("tenants:security")
    recovery = StaticDevice.objects.filter(user=request.user, name=twofactor.RECOVERY_DEVICE_NAME).first()
    context = {
        "devices": TOTPDevice.objects.filter(user=request.user, confirmed=True),
        "recovery_left": recovery.token_set.count() if recovery else 0,
    }
    return render(request, "tenants/security.html", context)
