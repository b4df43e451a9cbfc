"""What desktops does when lower apps' rows go away."""

from __future__ import annotations

from django.conf import settings
from django.db.models.signals import pre_delete
from django.dispatch import receiver

from desktops.services import disk_keys


@receiver(pre_delete, sender=settings.AUTH_USER_MODEL, dispatch_uid="desktops-erase-person-keys")
def erase_keys_of_deleted_person(sender: type, instance, **kwargs: object) -> None:
    """A deleted person's desktops lose their disk keys: their data is unreadable from then on.

    (A deleted tenant's keys go by cascade with its rows.)
    """
    disk_keys.erase_person_keys(instance)
