"""How metric values read to people: names in the user's language, values, change vs before.

Shared by the Customer 360 usage panel and the REST API, so both say the same thing. The
change is ``history.LatestMetric.change``: ``value / previous − 1``, undefined (``None``, shown
"—") when either is missing or the previous value is 0 (KPI.md: an empty denominator is
undefined, never 0), and for a change metric, whose value already is a change.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from django.utils.translation import get_language

from kizuna.analytics.history import LatestMetric
from kizuna.analytics.models import MetricDefinition, MetricKind

UNDEFINED = "—"
# Kinds whose value is a fraction, shown as a percentage.
FRACTION_KINDS = frozenset({MetricKind.SEAT_UTILISATION, MetricKind.WINDOW_CHANGE})


@dataclass(frozen=True)
class MetricValue:
    """The latest value of one metric for one customer, with its change vs the previous window."""

    key: str
    name: str
    kind: str
    value: float | None
    previous_value: float | None
    change: float | None
    as_of: date

    @property
    def shown_value(self) -> str:
        return show_value(self.value, self.kind)

    @property
    def shown_change(self) -> str:
        return UNDEFINED if self.change is None else f"{self.change * 100:+.1f}%"

    @property
    def direction(self) -> str:
        """``up``, ``down``, ``flat`` or ``""`` when the change is undefined."""
        if self.change is None:
            return ""
        if self.change > 0:
            return "up"
        return "down" if self.change < 0 else "flat"

    @property
    def arrow(self) -> str:
        return {"up": "▲", "down": "▼", "flat": "→"}.get(self.direction, "")


def metric_name(definition: MetricDefinition) -> str:
    """The metric's name in the user's language (Japanese when set and the language is ja)."""
    if definition.name_ja and (get_language() or "").startswith("ja"):
        return definition.name_ja
    return definition.name


def show_value(value: float | None, kind: str) -> str:
    if value is None:
        return UNDEFINED
    if kind == MetricKind.WINDOW_CHANGE:
        return f"{value * 100:+.1f}%"
    if kind in FRACTION_KINDS:
        return f"{value * 100:.1f}%"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.1f}"


def metric_values(latest: Iterable[LatestMetric]) -> list[MetricValue]:
    """``history.latest_metrics`` rows as ``MetricValue``s, in the same order."""
    return [
        MetricValue(
            key=row.definition.key,
            name=metric_name(row.definition),
            kind=row.definition.kind,
            value=row.value,
            previous_value=row.previous_value,
            change=row.change,
            as_of=row.as_of,
        )
        for row in latest
    ]
