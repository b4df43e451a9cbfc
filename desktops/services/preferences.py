"""A person's console preferences (scaling, picture quality), kept in User.preferences["console"]."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from django.db import models, transaction
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from quetzal.errors import ServiceError
from tenants import events
from tenants.models import User


class Scaling(models.TextChoices):
    FIT = "fit", _("Fit the desktop to the window")
    ACTUAL = "actual", _("Actual size (scroll when larger)")
    REMOTE = "remote", _("Resize the desktop to the window")


class Quality(models.TextChoices):
    BEST = "best", _("Best picture (fast networks)")
    BALANCED = "balanced", _("Balanced")
    LOW = "low", _("Low bandwidth (mobile data)")


# noVNC's qualityLevel and compressionLevel (0-9) for each choice.
QUALITY_LEVELS = {Quality.BEST: (9, 0), Quality.BALANCED: (6, 2), Quality.LOW: (2, 9)}


@dataclass(frozen=True)
class ConsolePreferences:
    scaling: str = Scaling.FIT
    quality: str = Quality.BALANCED

    @property
    def quality_level(self) -> int:
        return QUALITY_LEVELS[Quality(self.quality)][0]

    @property
    def compression_level(self) -> int:
        return QUALITY_LEVELS[Quality(self.quality)][1]

    def for_console(self) -> dict:
        """What the console page hands noVNC (as data attributes)."""
        return {
            "scaling": self.scaling,
            "quality_level": self.quality_level,
            "compression_level": self.compression_level,
        }


def console_preferences(user: User) -> ConsolePreferences:
    """The person's choices, with defaults for anything unset or no longer valid."""
    stored = (user.preferences or {}).get("console") or {}
    scaling = stored.get("scaling") if stored.get("scaling") in Scaling.values else Scaling.FIT
    quality = stored.get("quality") if stored.get("quality") in Quality.values else Quality.BALANCED
    return ConsolePreferences(scaling=str(scaling), quality=str(quality))


def set_console_preferences(*, user: User, scaling: str, quality: str, ip: str | None = None) -> ConsolePreferences:
    """Store new console preferences; other keys of User.preferences are left alone."""
    if scaling not in Scaling.values or quality not in Quality.values:
        raise ServiceError(gettext("Choose a scaling and a quality from the lists."), code="invalid_preferences")
    chosen = ConsolePreferences(scaling=scaling, quality=quality)
    with transaction.atomic():
        # Locked so two tabs saving different keys of preferences do not lose one another's change.
        locked = User.objects.select_for_update().get(pk=user.pk)
        preferences = dict(locked.preferences or {})
        preferences["console"] = asdict(chosen)
        User.objects.filter(pk=user.pk).update(preferences=preferences)
        events.preferences_changed(user=user, console=asdict(chosen), ip=ip)
    user.preferences = preferences
    return chosen
