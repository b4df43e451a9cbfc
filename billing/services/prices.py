"""Prices per hour over time: a change applies from its time on, never to time already run."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext

from billing.models import PriceChange
from billing.periods import to_second
from desktops.models import DesktopTemplate
from quetzal.errors import ServiceError
from tenants import events

_BEGINNING = datetime(2000, 1, 1, tzinfo=UTC)


def price_at(*, template_id: int | None, at: datetime, fallback: Decimal) -> Decimal:
    """The template's price per hour in force at `at`; `fallback` when it has no recorded history."""
    if template_id is None:
        return fallback
    change = (
        PriceChange.objects.filter(template_id=template_id, effective_at__lte=at)
        .order_by("-effective_at", "-id")
        .values_list("price_per_hour", flat=True)
        .first()
    )
    return change if change is not None else fallback


def change_times(*, template_id: int | None, start: datetime, end: datetime) -> list[datetime]:
    """Moments strictly inside (start, end) at which the template's price changes."""
    if template_id is None:
        return []
    return list(
        PriceChange.objects.filter(template_id=template_id, effective_at__gt=start, effective_at__lt=end)
        .order_by("effective_at")
        .values_list("effective_at", flat=True)
        .distinct()
    )


def _decimal_price(value) -> Decimal:
    try:
        price = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise ServiceError(gettext("A price per hour is a number, e.g. 0.25."), code="invalid_price")
    if price < 0 or price != price.quantize(Decimal("0.0001")) or price >= Decimal("1000000"):
        raise ServiceError(
            gettext("A price per hour is zero or more, with at most four decimals."), code="invalid_price"
        )
    return price


def _ensure_history(template_id: int, current: Decimal, since: datetime | None) -> None:
    """Record the price in force so far before the first change, so past usage keeps it."""
    if not PriceChange.objects.filter(template_id=template_id).exists():
        PriceChange.objects.create(
            template_id=template_id,
            price_per_hour=current,
            effective_at=to_second(since) if since else _BEGINNING,
            note="Price in force before the first recorded change",
        )


def change_price(
    *,
    template: DesktopTemplate,
    price_per_hour,
    effective_at: datetime | None = None,
    actor=None,
    note: str = "",
    now: datetime | None = None,
) -> PriceChange:
    """Set a template's price per hour from `effective_at` (default now); the past is refused."""
    now = to_second(now or timezone.now())
    effective = to_second(effective_at) if effective_at is not None else now
    if effective < now:
        raise ServiceError(
            gettext("A price change applies from its time on: choose now or a later time."),
            code="retroactive_price_change",
        )
    price = _decimal_price(price_per_hour)
    with transaction.atomic():
        current = DesktopTemplate.objects.select_for_update().get(pk=template.pk)
        previous = price_at(template_id=current.pk, at=effective, fallback=current.price_per_hour)
        _ensure_history(current.pk, current.price_per_hour, current.created_at)
        change = PriceChange.objects.create(
            template_id=current.pk, price_per_hour=price, effective_at=effective, created_by=actor, note=note[:200]
        )
        if effective <= now:
            # update(), not save(): the save hook would record this change a second time.
            DesktopTemplate.objects.filter(pk=current.pk).update(price_per_hour=price)
            template.price_per_hour = price
        events.price_changed(actor=actor, template=current, previous=previous, price=price, effective_at=effective)
    return change


def record_template_edit(*, template: DesktopTemplate, previous: Decimal, now: datetime | None = None) -> None:
    """A template saved with a new price (e.g. in the admin): that price applies from now on."""
    now = to_second(now or timezone.now())
    new = _decimal_price(template.price_per_hour)
    with transaction.atomic():
        _ensure_history(template.pk, Decimal(previous), template.created_at)
        if price_at(template_id=template.pk, at=now, fallback=Decimal(previous)) == new:
            return
        PriceChange.objects.create(
            template_id=template.pk, price_per_hour=new, effective_at=now, note="Template edited"
        )
        events.price_changed(template=template, previous=previous, price=new, effective_at=now)


def apply_due_changes(*, now: datetime | None = None) -> int:
    """Bring each template's displayed price to the one in force now (scheduled changes come due)."""
    now = now or timezone.now()
    updated = 0
    template_ids = PriceChange.objects.filter(effective_at__lte=now).values_list("template_id", flat=True).distinct()
    for template_id, current in DesktopTemplate.objects.filter(pk__in=template_ids).values_list("pk", "price_per_hour"):
        due = price_at(template_id=template_id, at=now, fallback=current)
        if due != current:
            updated += DesktopTemplate.objects.filter(pk=template_id).update(price_per_hour=due)
    return updated
