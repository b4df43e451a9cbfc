"""System checks: a bad metrics setting shows at startup, not at the first collection or scrape."""

from __future__ import annotations

from django.core.checks import Error, register
from django.core.exceptions import ImproperlyConfigured

from desktops.metrics import conf

_READERS = (
    ("METRICS_INTERVAL_S", conf.interval_s),
    ("METRICS_RAW_RETENTION_H", conf.raw_retention_h),
    ("METRICS_MINUTE_RETENTION_D", conf.minute_retention_d),
    ("METRICS_HOUR_RETENTION_D", conf.hour_retention_d),
    ("METRICS_PUSH", conf.push_enabled),
    ("METRICS_TOKEN", conf.token),
)


@register()
def metrics_settings(app_configs, **kwargs) -> list[Error]:
    """Every METRICS_* setting reads back valid."""
    errors = []
    for number, (name, read) in enumerate(_READERS, 1):
        try:
            read()
        except ImproperlyConfigured as error:
            errors.append(Error(str(error), obj=name, id=f"desktops.metrics.E{number:03d}"))
    return errors
