"""Fixed vocabularies of the metrics package."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class Resolution(models.TextChoices):
    RAW = "raw", _("Raw samples")
    MINUTE = "minute", _("Per minute")
    HOUR = "hour", _("Per hour")
