"""Query parameters of the metrics API: the chart range."""

from __future__ import annotations

from django import forms
from django.utils.functional import lazy
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from desktops.metrics.queries import DEFAULT_RANGE, RANGES
from quetzal.forms import Form


def _unknown_range() -> str:
    # %(value)s is left for Django to fill in with what was sent
    return gettext("Unknown range %(value)s; use one of %(ranges)s.") % {
        "value": "%(value)s",
        "ranges": ", ".join(RANGES),
    }


# Lazy: the field is made when the module loads, the message is read in the request's language.
unknown_range = lazy(_unknown_range, str)


class RangeParameters(Form):
    """?range=15m|1h|6h|24h|7d|30d|90d (1h when absent)."""

    range = forms.ChoiceField(
        label=_("Range"),
        choices=[(key, key) for key in RANGES],
        required=False,
        error_messages={"invalid_choice": unknown_range()},
    )

    def clean_range(self) -> str:
        return self.cleaned_data["range"] or DEFAULT_RANGE
