"""A small hand-made portfolio for the page, API and CLI tests, built with the services.

Scorecard "Test" (watch from 40, good from 70) weighs three measures:
- usage_trend: events_28d_change, weight 2, thresholds (−0.5→0, 0→70, 0.2→100)
- seats: seat_utilisation_28d, weight 1, thresholds (0→0, 1→100)
- sentiment: CSM sentiment, weight 1, thresholds (1→0, 5→100) — nobody has one: missing.

Acme, 28 days ago: change +5% → 77.5 points, seats 50% → 50; score (2·77.5 + 50) / 3 = 68.33
(watch). Today: change −35% → 21 points, seats 30% → 30; score (2·21 + 30) / 3 = 24 (at risk),
contributions 14 and 10, a quarter of the weight missing. Bright today: +20% → 100, seats 90% →
90; score (200 + 90) / 3 = 96.67 (good). Acme has an open usage-drop signal (events fell 35%,
from 1,200 to 780) and Bright a closed one.
"""

from dataclasses import dataclass
from datetime import date, timedelta

from django.utils import timezone

from kizuna.analytics.metric_defaults import ensure_default_metrics
from kizuna.customers.models import Customer
from kizuna.health.models import (
    Mapping,
    MeasureSource,
    Resolution,
    RiskSignal,
    Scorecard,
    Severity,
    SignalKind,
)
from kizuna.health.scorecards import MeasureInput
from kizuna.health.scoring import score_customers
from kizuna.health.tests.scores_helpers import customer, published_scorecard, write_metrics

MEASURES = [
    MeasureInput(
        key="usage_trend",
        label="Events vs previous 28 days",
        source=MeasureSource.METRIC,
        metric_key="events_28d_change",
        weight=2,
        thresholds=[(-0.5, 0), (0, 70), (0.2, 100)],
    ),
    MeasureInput(
        key="seats",
        label="Seat utilisation",
        source=MeasureSource.METRIC,
        metric_key="seat_utilisation_28d",
        weight=1,
        thresholds=[(0, 0), (1, 100)],
    ),
    MeasureInput(
        key="sentiment",
        label="CSM sentiment",
        source=MeasureSource.SENTIMENT,
        weight=1,
        mapping=Mapping.THRESHOLDS,
        thresholds=[(1, 0), (5, 100)],
    ),
]

DROP_DETAILS = {
    "metric": "events_28d",
    "now": 780.0,
    "previous": 1200.0,
    "change": -0.35,
    "window_days": 28,
    "drop_pct": 20.0,
    "weekly_rhythm": "cancels",
    "baseline": {"usual": -0.02, "spread": 0.08, "k": 1.5, "limit": -0.14, "weeks": 26},
    "season": None,
}


@dataclass(frozen=True)
class Portfolio:
    today: date
    earlier: date
    scorecard: Scorecard
    acme: Customer
    bright: Customer
    signal: RiskSignal


def portfolio() -> Portfolio:
    ensure_default_metrics()
    today = timezone.localdate()
    earlier = today - timedelta(days=28)
    card = published_scorecard(MEASURES, name="Test")
    acme = customer("Acme", start="2024-01-01", mrr=2000, segment="enterprise")
    bright = customer("Bright", start="2024-01-01", mrr=500, segment="smb", touch_model="tech")
    write_metrics(
        earlier,
        [
            (acme.pk, "events_28d_change", 0.05),
            (acme.pk, "seat_utilisation_28d", 0.5),
            (bright.pk, "events_28d_change", 0.2),
            (bright.pk, "seat_utilisation_28d", 0.9),
        ],
    )
    write_metrics(
        today,
        [
            (acme.pk, "events_28d_change", -0.35),
            (acme.pk, "seat_utilisation_28d", 0.3),
            (bright.pk, "events_28d_change", 0.2),
            (bright.pk, "seat_utilisation_28d", 0.9),
        ],
    )
    score_customers(day=earlier)
    score_customers(day=today)
    signal = RiskSignal.objects.create(
        customer=acme,
        kind=SignalKind.USAGE_DROP,
        severity=Severity.HIGH,
        reason="Events (28 days) fell 35% (from 1,200 to 780) vs the previous 28 days",
        details=DROP_DETAILS,
        opened_on=today - timedelta(days=3),
        last_seen_on=today,
    )
    RiskSignal.objects.create(
        customer=bright,
        kind=SignalKind.NO_LOGIN,
        severity=Severity.HIGH,
        reason="No login for 14 days",
        details={"days_since": 20, "last_login": (today - timedelta(days=60)).isoformat()},
        opened_on=today - timedelta(days=50),
        last_seen_on=today - timedelta(days=40),
        closed_on=today - timedelta(days=40),
        resolution=Resolution.CLEARED,
    )
    return Portfolio(today, earlier, card, acme, bright, signal)
