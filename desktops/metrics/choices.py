"""Fixed vocabularies of the metrics package."""

from __future__ import annotations

from django.db import models


class Resolution(models.TextChoices):
    RAW = "raw", "Raw samples"
    MINUTE = "minute", "Per minute"
    HOUR = "hour", "Per hour"
