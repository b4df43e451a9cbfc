"""Receivers of the hosts app's signals (hosts never imports desktops: it tells, desktops listens)."""

from __future__ import annotations

import logging

from django.db import transaction

from desktops.services import host_failure

log = logging.getLogger(__name__)


def on_host_went_down(sender, *, host_id: int, **kwargs) -> None:
    # In a savepoint: a failure here must not undo the host's mark-down, which the next beat would redo forever.
    try:
        with transaction.atomic():
            host_failure.on_host_down(host_id=host_id)
    except Exception:
        log.exception("could not write off the desktops of host %s", host_id)


def on_host_came_back(sender, *, host_id: int, **kwargs) -> None:
    try:
        with transaction.atomic():
            host_failure.on_host_back(host_id=host_id)
    except Exception:
        log.exception("could not clean up after host %s came back", host_id)
