"""Query parameters of the metrics API: the chart range."""

from __future__ import annotations

from django import forms

from desktops.metrics.queries import DEFAULT_RANGE, RANGES
from quetzal.forms import Form


class RangeParameters(Form):
    """?range=15m|1h|6h|24h|7d|30d|90d (1h when absent)."""

    range = forms.ChoiceField(
        choices=[(key, key) for key in RANGES],
        required=False,
        error_messages={"invalid_choice": f"Unknown range %(value)s; use one of {', '.join(RANGES)}."},
    )

    def clean_range(self) -> str:
        return self.cleaned_data["range"] or DEFAULT_RANGE
