"""Re-wrap every data key under the configured key-encryption key; disks and recordings stay as they are."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from desktops.services import disk_keys
from quetzal import kek
from quetzal.env import env_kek


class Command(BaseCommand):
    help = (
        "Re-wrap every disk and recording key under the current KEK (QUETZAL_KEK / QUETZAL_KEK_FILE). "
        "The old KEK comes from QUETZAL_OLD_KEK or QUETZAL_OLD_KEK_FILE. All keys change in one transaction."
    )

    def handle(self, *args: object, **options: object) -> None:
        try:
            old_key = env_kek("QUETZAL_OLD_KEK", "QUETZAL_OLD_KEK_FILE", required=True)
        except ImproperlyConfigured as error:
            raise CommandError(str(error)) from None
        assert old_key is not None
        old, new = kek.Kek(old_key), kek.current_kek()
        if old.kek_id == new.kek_id:
            raise CommandError("the old and the new KEK are the same; set QUETZAL_KEK to the new one")
        try:
            count = disk_keys.rotate_kek(old=old, new=new)
        except kek.UnwrapError as error:
            raise CommandError(f"nothing changed: {error}") from None
        self.stdout.write(f"Re-wrapped {count} keys from KEK {old.kek_id} to KEK {new.kek_id}.")
