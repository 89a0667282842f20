"""``health_improvement_rate`` through the KPI catalog, ``kizuna kpi`` and the API, on the
hand-made scores of ``health/tests/test_kpis.py`` (answers worked out there):
total 2 / 4 = 0.5, mean change 1.25; high touch 2 / 2 (mean 5.5), tech touch 0 / 2 (mean −3).
"""

import json
from collections.abc import Callable
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client

from kizuna.customers.models import Customer
from kizuna.health.tests.scores_helpers import (
    IMPROVEMENT_END as END,
)
from kizuna.health.tests.scores_helpers import (
    IMPROVEMENT_START as START,
)
from kizuna.health.tests.scores_helpers import (
    improvement_scores,
)
from kizuna.reports.kpis import KPIS, KpiInputError, Population, compute_kpi, trend

pytestmark = pytest.mark.django_db

QUERY = "start=2026-05-01&end=2026-06-01"


@pytest.fixture
def scores() -> dict[str, Customer]:
    return improvement_scores()


def test_the_catalog_computes_it_with_numerator_and_denominator(
    scores: dict[str, Customer],
) -> None:
    assert KPIS["health_improvement_rate"].name_ja == "ヘルススコア改善率"
    result = compute_kpi(
        kpi_id="health_improvement_rate", start=START, end=END, population=Population()
    )
    assert (str(result.value), result.numerator, result.denominator) == ("0.500000", 2, 4)
    assert str(result.details["mean_change"]) == "1.25"
    tech = compute_kpi(
        kpi_id="health_improvement_rate",
        start=START,
        end=END,
        population=Population(touch_model="tech"),
    )
    assert (str(tech.value), tech.numerator, tech.denominator) == ("0.000000", 0, 2)
    with pytest.raises(KpiInputError) as refused:
        compute_kpi(
            kpi_id="health_improvement_rate",
            start=START,
            end=END,
            population=Population(product_id=1),
        )
    assert refused.value.field == "product"


def test_the_monthly_trend_compares_the_first_days_of_consecutive_months(
    scores: dict[str, Customer],
) -> None:
    points = trend("health_improvement_rate", months=2, end_month=START, population=Population())
    assert [point.month for point in points] == ["2026-04", "2026-05"]
    assert points[0].result.denominator == 0  # nothing scored on 04-01
    assert points[1].result.numerator == 2


def test_the_command_gives_the_value_and_the_groups_by_touch_model(
    scores: dict[str, Customer],
) -> None:
    out = StringIO()
    call_command(
        "kpi", "health_improvement_rate", "--start", "2026-05-01", "--end", "2026-06-01",
        "--json", stdout=out,
    )  # fmt: skip
    payload = json.loads(out.getvalue())
    assert (payload["value"], payload["numerator"], payload["denominator"]) == (0.5, 2, 4)
    assert payload["details"]["mean_change"] == 1.25
    out = StringIO()
    call_command(
        "kpi", "health_improvement_rate", "--start", "2026-05-01", "--end", "2026-06-01",
        "--group-by", "touch_model", "--json", stdout=out,
    )  # fmt: skip
    groups = {group["key"]: group for group in json.loads(out.getvalue())["groups"]}
    # high: A and B both rose by ≥ 5 (mean 5.5); tech: C and D did not (mean −3).
    assert (groups["high"]["numerator"], groups["high"]["denominator"]) == (2, 2)
    assert groups["high"]["details"]["mean_change"] == 5.5
    assert (groups["tech"]["numerator"], groups["tech"]["denominator"]) == (0, 2)
    assert groups["tech"]["value"] == 0.0


def test_the_api_gives_the_same_numbers(
    scores: dict[str, Customer], api_client: Callable[..., Client]
) -> None:
    response = api_client("viewer").get(f"/api/v1/kpis/health_improvement_rate?{QUERY}")
    assert response.status_code == 200
    body = response.json()
    assert (body["value"], body["numerator"], body["denominator"]) == (0.5, 2, 4)
    grouped = api_client("viewer").get(
        f"/api/v1/kpis/health_improvement_rate?{QUERY}&group_by=touch_model"
    )
    assert {g["key"]: g["numerator"] for g in grouped.json()["groups"]} == {"high": 2, "tech": 0}
    refused = api_client("viewer").get(f"/api/v1/kpis/health_improvement_rate?{QUERY}&product=x")
    assert refused.status_code == 422
