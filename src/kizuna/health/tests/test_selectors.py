"""Reading scores: latest, history, sparklines, explanations, the overview, band outcomes and
the ``health`` / ``health_band`` condition fields; answers worked out in comments."""

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.utils import translation

from kizuna.customers.models import Customer
from kizuna.health.models import (
    HealthScore,
    MeasureSource,
    RiskSignal,
    Scorecard,
    ScorecardVersion,
    Severity,
    SignalKind,
)
from kizuna.health.scorecards import MeasureInput
from kizuna.health.scoring import score_customers
from kizuna.health.selectors import (
    band_outcomes,
    explain,
    health_overview,
    latest_scores,
    score_history,
    sparklines,
)
from kizuna.health.tests.scores_helpers import customer, published_scorecard, write_metrics

pytestmark = pytest.mark.django_db

DAY = date(2026, 6, 15)
BEFORE = DAY - timedelta(days=28)  # 2026-05-18

TREND = MeasureInput(
    key="trend",
    label="Active users vs previous 28 days",
    source=MeasureSource.METRIC,
    metric_key="active_users_28d_change",
    weight=1,
    thresholds=[(-0.5, 0), (0, 70), (0.1, 100)],
)
SEATS = MeasureInput(
    key="seats",
    label="Seat utilisation",
    source=MeasureSource.METRIC,
    metric_key="seat_utilisation_28d",
    weight=1,
    thresholds=[(0, 0), (0.8, 100)],
)


@pytest.fixture
def dip() -> Customer:
    """A customer whose active users fell 35% (vs +5% four weeks earlier); seats unchanged.

    05-18: trend +0.05 → 70 + 0.5 × 30 = 85; seats 0.4 → 50 → score 67.5 (watch);
           contributions 42.5 and 25.
    06-15: trend −0.35 → 0.3 × 70 = 21; seats 0.4 → 50 → score 35.5 (at risk);
           contributions 10.5 and 25. Trend delta −32, seats ±0.
    """
    published_scorecard([TREND, SEATS])
    who = customer("Dip", mrr=1000)
    write_metrics(
        BEFORE, [(who.pk, "active_users_28d_change", 0.05), (who.pk, "seat_utilisation_28d", 0.4)]
    )
    write_metrics(
        DAY, [(who.pk, "active_users_28d_change", -0.35), (who.pk, "seat_utilisation_28d", 0.4)]
    )
    score_customers(day=BEFORE)
    score_customers(day=DAY)
    return who


def test_explain_says_why_the_score_moved(dip: Customer) -> None:
    with translation.override("en"):
        result = explain(customer_id=dip.pk)
    assert (result.day, result.band) == (DAY, "at_risk")
    assert result.score == pytest.approx(35.5)
    assert result.previous_day == BEFORE
    assert result.previous_score == pytest.approx(67.5)
    assert result.change == pytest.approx(-32)
    first, second = result.lines
    assert first["key"] == "trend"
    assert first["delta"] == pytest.approx(-32)
    assert (first["value"], first["previous_value"]) == (-0.35, 0.05)
    assert first["text"] == "−32: Active users vs previous 28 days fell from +5% to −35%"
    assert second["text"] == "±0: Seat utilisation unchanged at 40%"


def test_explain_on_a_day_without_an_earlier_score_lists_contributions(dip: Customer) -> None:
    with translation.override("en"):
        result = explain(customer_id=dip.pk, day=BEFORE)
    assert result.previous_day is None
    assert [line["text"] for line in result.lines] == [
        "+43: Active users vs previous 28 days is +5%",
        "+25: Seat utilisation is 40%",
    ]
    assert explain(customer_id=customer("Nobody").pk).day is None


def test_latest_scores_history_and_sparklines(dip: Customer) -> None:
    other = customer("Other")
    latest = latest_scores([dip.pk, other.pk])
    assert set(latest) == {dip.pk}
    assert latest[dip.pk].day == DAY
    assert [row.day for row in score_history(customer_id=dip.pk, start=BEFORE, end=DAY)] == [
        BEFORE,
        DAY,
    ]
    lines = sparklines([dip.pk, other.pk], days=29, end=DAY)
    assert len(lines[dip.pk]) == 29
    assert lines[dip.pk][0] == pytest.approx(67.5)
    assert lines[dip.pk][-1] == pytest.approx(35.5)
    assert lines[dip.pk][1:-1] == [None] * 27
    assert lines[other.pk] == [None] * 29


def test_the_overview_counts_bands_arr_movers_and_open_signals(dip: Customer) -> None:
    steady = customer("Steady", mrr=500)
    write_metrics(
        DAY,
        [
            (dip.pk, "active_users_28d_change", -0.35),
            (dip.pk, "seat_utilisation_28d", 0.4),
            (steady.pk, "active_users_28d_change", 0.1),  # 100
            (steady.pk, "seat_utilisation_28d", 0.8),  # 100 → good
        ],
    )
    score_customers(day=DAY)
    RiskSignal.objects.create(
        customer=dip,
        kind=SignalKind.USAGE_DROP,
        severity=Severity.HIGH,
        reason="drop",
        opened_on=DAY,
        last_seen_on=DAY,
    )
    with translation.override("en"):
        overview = health_overview()
    assert overview.day == DAY
    bands = {band.band: (band.customers, band.arr) for band in overview.bands}
    # ARR = 12 × MRR: Dip 12,000 at risk; Steady 6,000 good.
    assert bands == {
        "good": (1, Decimal(6000)),
        "watch": (0, Decimal(0)),
        "at_risk": (1, Decimal(12000)),
    }
    assert overview.at_risk_arr == Decimal(12000)
    assert overview.signals_by_severity == {"low": 0, "medium": 0, "high": 1}
    (mover,) = overview.movers  # Steady has no score 28 days earlier
    assert mover.name == "Dip"
    assert mover.change == pytest.approx(-32)
    assert mover.reason == "−32: Active users vs previous 28 days fell from +5% to −35%"
    assert health_overview(touch_model="tech").bands[0].customers == 0


def test_the_overview_before_any_score_is_empty() -> None:
    assert health_overview().empty


def test_band_outcomes_show_the_churn_that_followed_each_band() -> None:
    """Monthly snapshots (1st of a month) of one scorecard, horizon 90 days, as of 06-01:

    good     A 01-01, A 02-01 (active throughout)                  2 known, 0 churned
    watch    C 01-01 (ends 04-01: gone on 04-01), C 03-01 (gone by 05-30), F 01-01 (stays)
                                                                   3 known, 2 churned
    at risk  B 01-01, B 02-01 (ends 03-01)                         2 known, 2 churned
    D on 03-15 is not a 1st; E on 04-01 is pending (06-30 is after 06-01).
    """
    card = published_scorecard([SEATS])
    version = ScorecardVersion.objects.get(scorecard=card)
    other = published_scorecard([SEATS], name="Other")
    people = {
        "A": customer("A", start="2025-01-01"),
        "B": customer("B", start="2025-01-01", end="2026-03-01"),
        "C": customer("C", start="2025-01-01", end="2026-04-01"),
        "D": customer("D", start="2025-01-01", end="2026-04-01"),
        "E": customer("E", start="2025-01-01", end="2026-05-01"),
        "F": customer("F", start="2025-01-01"),
    }
    for name, day, band in [
        ("A", "2026-01-01", "good"),
        ("A", "2026-02-01", "good"),
        ("C", "2026-01-01", "watch"),
        ("C", "2026-03-01", "watch"),
        ("F", "2026-01-01", "watch"),
        ("B", "2026-01-01", "at_risk"),
        ("B", "2026-02-01", "at_risk"),
        ("D", "2026-03-15", "at_risk"),
        ("E", "2026-04-01", "good"),
    ]:
        HealthScore.objects.create(
            customer=people[name], day=date.fromisoformat(day), version=version, score=50, band=band
        )
    HealthScore.objects.create(  # another scorecard's snapshot does not count
        customer=people["F"],
        day=date(2026, 2, 1),
        version=ScorecardVersion.objects.get(scorecard=other),
        score=10,
        band="at_risk",
    )
    outcomes = {
        row.band: (row.snapshots, row.churned, row.rate, row.pending)
        for row in band_outcomes(scorecard_id=card.pk, as_of=date(2026, 6, 1))
    }
    assert outcomes == {
        "good": (2, 0, 0.0, 1),
        "watch": (3, 2, 0.666667, 0),
        "at_risk": (2, 2, 1.0, 0),
    }
    # Limited to January: good 1/0, watch 2 (C churned, F not), at risk 1 (B churned).
    january = {
        row.band: (row.snapshots, row.churned)
        for row in band_outcomes(
            scorecard_id=card.pk,
            start=date(2026, 1, 1),
            end=date(2026, 1, 31),
            as_of=date(2026, 6, 1),
        )
    }
    assert january == {"good": (1, 0), "watch": (2, 1), "at_risk": (1, 1)}
    assert Scorecard.objects.count() == 2
