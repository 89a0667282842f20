"""The ``health`` and ``health_band`` condition fields read the latest stored health score on
or before the rule's day; a customer without one never matches.

The "Dip" customer (see ``health/tests/test_selectors.py``): 67.5 (watch) on 05-18, 35.5
(at risk) on 06-15.
"""

from datetime import date, timedelta

import pytest

from kizuna.customers.models import Customer
from kizuna.health.models import MeasureSource
from kizuna.health.scorecards import MeasureInput
from kizuna.health.scoring import score_customers
from kizuna.health.tests.scores_helpers import customer, published_scorecard, write_metrics
from kizuna.lifecycle.conditions import FIELDS, matching, parse

pytestmark = pytest.mark.django_db

DAY = date(2026, 6, 15)
BEFORE = DAY - timedelta(days=28)

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


def test_the_health_fields_are_in_the_catalog() -> None:
    assert FIELDS["health"].type == "number"
    assert FIELDS["health_band"].choices == ("good", "watch", "at_risk")


def test_conditions_read_the_latest_score_on_or_before_the_day(dip: Customer) -> None:
    never = customer("Never")
    assert never.pk not in set(
        matching(parse("health < 100"), as_of=DAY).values_list("pk", flat=True)
    )
    on_day = set(matching(parse("health < 40"), as_of=DAY).values_list("name", flat=True))
    assert on_day == {"Dip"}  # 35.5 on 06-15
    # On 06-01 the latest score is 05-18's 67.5 (watch).
    june_first = date(2026, 6, 1)
    assert set(
        matching(parse("health >= 60"), as_of=june_first).values_list("name", flat=True)
    ) == {"Dip"}
    assert set(
        matching(parse('health_band = "watch"'), as_of=june_first).values_list("name", flat=True)
    ) == {"Dip"}
    assert set(
        matching(parse('health_band in ("watch", "at_risk")'), as_of=DAY).values_list(
            "name", flat=True
        )
    ) == {"Dip"}
    # A customer without a score never matches a comparison, not even "!=".
    assert set(
        matching(parse('health_band != "good"'), as_of=DAY).values_list("name", flat=True)
    ) == {"Dip"}
    assert not matching(parse("health < 100"), as_of=date(2026, 5, 1)).exists()
