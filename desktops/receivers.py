"""What desktops does when lower apps tell it something: a host went down or came back, a person's row goes away.

(Lower apps never import desktops: they tell, desktops listens.)
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction
from django.db.models.signals import pre_delete
from django.dispatch import receiver

from desktops.services import disk_keys, host_failure, onboarding

log = logging.getLogger(__name__)


def on_host_went_down(sender, *, host_id: int, **kwargs) -> None:
    # In a savepoint: a failure here must not undo the host's mark-down, which the next beat would redo forever.
    try:
        with transaction.atomic():
            host_failure.on_host_down(host_id=host_id)
    except Exception:
        log.exception("could not write off the desktops of host %s", host_id)


def on_member_joined(sender, *, membership_id: int, via: str, **kwargs) -> None:
    # After the join committed (tenants.signals): a failure here leaves the member in, without a desktop.
    try:
        with transaction.atomic():
            onboarding.provision(membership_id=membership_id)
    except Exception:
        log.exception("could not make the desktop of new member %s (via %s)", membership_id, via)


def on_member_left(
    sender, *, tenant_id: int, user_id: int, actor_id: int | None, delete_desktops: bool, **kwargs
) -> None:
    if not delete_desktops:
        return  # kept: the admin chose to keep the person's desktops
    try:
        with transaction.atomic():
            onboarding.delete_desktops_of(tenant_id=tenant_id, user_id=user_id, actor_id=actor_id)
    except Exception:
        log.exception("could not delete the desktops of removed member %s of tenant %s", user_id, tenant_id)


def on_host_came_back(sender, *, host_id: int, **kwargs) -> None:
    try:
        with transaction.atomic():
            host_failure.on_host_back(host_id=host_id)
    except Exception:
        log.exception("could not clean up after host %s came back", host_id)


@receiver(pre_delete, sender=settings.AUTH_USER_MODEL, dispatch_uid="desktops-erase-person-keys")
def erase_keys_of_deleted_person(sender: type, instance, **kwargs: object) -> None:
    """A deleted person's desktops lose their disk keys: their data is unreadable from then on.

    (A deleted tenant's keys go by cascade with its rows.)
    """
    disk_keys.erase_person_keys(instance)
