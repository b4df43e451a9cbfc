"""Celery beat task of single sign-on: re-reading the routed domains' ownership records."""

from __future__ import annotations

from celery import shared_task

from tenants.sso import domains


@shared_task(acks_late=True)
def recheck_domains() -> int:
    """Beat: read the TXT record of each domain not checked for a while (a removed record ends its verification)."""
    return domains.recheck_due()
