"""``health_improvement_rate`` on hand-made scores; every answer is worked out in comments.

The catalog, ``kizuna kpi`` and the API are tested in ``reports/tests/test_health_kpis.py``.

Scores on 2026-05-01 → 2026-06-01 (step 5):
  A high  60 → 66   +6  improved
  B high  50 → 55   +5  improved (exactly the step counts)
  C tech  70 → 60  −10  declined
  D tech  40 → 44   +4  neither
  E high   — → 70       scored only on the end day: left out
  F tech   ∅ → 50       "not scored" on the start day (every measure missing): left out
Denominator 4, numerator 2 → 0.5; mean change (6 + 5 − 10 + 4) / 4 = 1.25.
"""

from datetime import date

import pytest

from kizuna.customers.models import Customer
from kizuna.health.kpis import health_improvement_rate
from kizuna.health.tests.scores_helpers import improvement_scores

pytestmark = pytest.mark.django_db

START, END = date(2026, 5, 1), date(2026, 6, 1)


@pytest.fixture
def scores() -> dict[str, Customer]:
    return improvement_scores()


def test_the_rate_counts_rises_of_at_least_the_step_among_customers_scored_on_both_days(
    scores: dict[str, Customer],
) -> None:
    assert health_improvement_rate(start=START, end=END) == {
        "value": 0.5,
        "numerator": 2,
        "denominator": 4,
        "mean_change": 1.25,
        "step": 5.0,
        "improved": 2,
        "declined": 1,
        "unchanged": 1,
    }


def test_a_larger_step_counts_fewer_and_a_population_narrows_it(
    scores: dict[str, Customer],
) -> None:
    # Step 6: only A rose by 6; only C fell by at least 6.
    six = health_improvement_rate(start=START, end=END, step=6)
    assert (six["numerator"], six["denominator"], six["value"], six["declined"]) == (1, 4, 0.25, 1)
    # Only C and D: neither rose by 5; mean (−10 + 4) / 2 = −3.
    tech = health_improvement_rate(
        start=START, end=END, customer_ids=[scores["C"].pk, scores["D"].pk]
    )
    assert (tech["numerator"], tech["denominator"], tech["value"], tech["mean_change"]) == (
        0,
        2,
        0.0,
        -3.0,
    )


def test_no_customer_scored_on_both_days_is_undefined_not_zero(
    scores: dict[str, Customer],
) -> None:
    result = health_improvement_rate(start=date(2026, 1, 1), end=END)
    assert (result["value"], result["numerator"], result["denominator"]) == (None, 0, 0)
    assert result["mean_change"] is None
