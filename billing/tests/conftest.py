"""Billing fixtures: billing switched on, a Stripe-compatible world, desktops' hosts and templates."""

from __future__ import annotations

import pytest

from billing.tests.stripe_server import SECRET_KEY, WEBHOOK_SECRET, StripeWorld, start_world, stop_world
from desktops.tests.conftest import host, image, template, work  # noqa: F401 - shared desktop fixtures
from tests.services import require

# Nothing listens here: a test that reaches Stripe without the Stripe world fails fast, offline.
NOWHERE = "http://127.0.0.1:9"


@pytest.fixture(autouse=True)
def _billing_urls(settings):
    settings.ROOT_URLCONF = "billing.tests.urls"


@pytest.fixture
def billing_on(settings):
    """Billing enabled, with Stripe pointed at a closed port."""
    settings.BILLING_ENABLED = True
    settings.STRIPE_SECRET_KEY = SECRET_KEY
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    settings.STRIPE_API_BASE = NOWHERE
    settings.STRIPE_TIMEOUT_S = 2
    settings.BILLING_CURRENCY = "usd"
    settings.BILLING_GRACE_DAYS = 7
    return settings


@pytest.fixture(scope="session")
def _stripe_world_session():
    world = start_world()
    yield world
    if world is not None:
        stop_world(world)


@pytest.fixture
def stripe_world(_stripe_world_session, billing_on) -> StripeWorld:
    """localstripe plus the front server for what it lacks; the SDK points at the front server."""
    require(_stripe_world_session is not None, "the localstripe server (pip install localstripe)")
    _stripe_world_session.front.reset()
    billing_on.STRIPE_API_BASE = _stripe_world_session.api_base
    billing_on.STRIPE_TIMEOUT_S = 5
    return _stripe_world_session
