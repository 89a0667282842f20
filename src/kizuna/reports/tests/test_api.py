"""GET /api/v1/kpis: the catalog, one KPI for a period (same JSON as the CLI), monthly trend."""

import json
from collections.abc import Callable
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client, override_settings

from kizuna.reports.tests.contracts_data import customer, march_book, set_state, subscribe
from kizuna.reports.tests.usage_data import march_usage

pytestmark = pytest.mark.django_db

MARCH = "start=2026-03-01&end=2026-04-01"


def test_the_catalog_lists_ids_names_and_units(api_client: Callable[..., Client]) -> None:
    response = api_client("viewer").get("/api/v1/kpis")
    assert response.status_code == 200
    by_id = {entry["id"]: entry for entry in response.json()}
    assert by_id["grr"]["unit"] == "rate"
    assert by_id["mrr_movements"]["unit"] == "money"
    assert by_id["logo_retention_rate"]["name_ja"] == "顧客維持率"
    assert by_id["stickiness"]["name_ja"] == "DAU/MAU"
    assert by_id["activity_churn_rate"]["unit"] == "rate"


def test_a_kpi_answers_the_same_json_as_the_command(api_client: Callable[..., Client]) -> None:
    march_book()
    response = api_client("viewer").get(f"/api/v1/kpis/mrr_churn_rate?{MARCH}")
    assert response.status_code == 200
    out = StringIO()
    call_command(
        "kpi",
        "mrr_churn_rate",
        "--start",
        "2026-03-01",
        "--end",
        "2026-04-01",
        "--json",
        stdout=out,
    )
    assert response.json() == json.loads(out.getvalue())
    assert response.json()["value"] == 0.454545
    assert (response.json()["numerator"], response.json()["denominator"]) == (550.0, 1210.0)


def test_an_undefined_rate_is_null(api_client: Callable[..., Client]) -> None:
    response = api_client("viewer").get(f"/api/v1/kpis/logo_churn_rate?{MARCH}")
    assert response.status_code == 200
    assert response.json()["value"] is None
    assert response.json()["denominator"] == 0


def test_filters_in_the_query_string(api_client: Callable[..., Client]) -> None:
    book = march_book()
    set_state(book["C"], touch_model="tech")
    response = api_client("viewer").get(f"/api/v1/kpis/logo_churn_rate?{MARCH}&touch_model=tech")
    assert (response.json()["numerator"], response.json()["denominator"]) == (1, 1)


def test_unknown_kpi_is_404(api_client: Callable[..., Client]) -> None:
    response = api_client("viewer").get(f"/api/v1/kpis/happiness?{MARCH}")
    assert response.status_code == 404
    assert "logo_churn_rate" in response.json()["detail"]
    assert api_client("viewer").get("/api/v1/kpis/happiness/trend").status_code == 404


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("start=2026-03-01", "end"),
        ("start=yesterday&end=2026-04-01", "start"),
        ("start=2026-04-01&end=2026-03-01", "end"),
        (f"{MARCH}&touch_model=warm", "touch_model"),
        (f"{MARCH}&owner=nobody", "owner"),
        (f"{MARCH}&product=nope", "product"),
        (f"{MARCH}&cohort=March", "cohort"),
    ],
)
def test_bad_parameters_are_422_naming_the_field(
    api_client: Callable[..., Client], query: str, field: str
) -> None:
    response = api_client("viewer").get(f"/api/v1/kpis/nrr?{query}")
    assert response.status_code == 422
    assert [error["loc"][-1] for error in response.json()["detail"]] == [field]


@override_settings(KIZUNA_BASE_CURRENCY="JPY", KIZUNA_CURRENCY_RATES={})
def test_a_currency_without_a_rate_is_400_naming_it(api_client: Callable[..., Client]) -> None:
    subscribe(customer("Euro"), "2025-01-01", None, 10, currency="EUR")
    response = api_client("viewer").get(f"/api/v1/kpis/nrr?{MARCH}")
    assert response.status_code == 400
    assert "EUR" in response.json()["detail"]


def test_trend_gives_monthly_points_ending_with_the_chosen_month(
    api_client: Callable[..., Client],
) -> None:
    march_book()
    response = api_client("viewer").get("/api/v1/kpis/logo_churn_rate/trend?months=3&end=2026-03")
    assert response.status_code == 200
    body = response.json()
    assert [point["month"] for point in body["points"]] == ["2026-01", "2026-02", "2026-03"]
    assert body["points"][-1]["start"] == "2026-03-01"
    assert body["points"][-1]["end"] == "2026-04-01"
    assert body["points"][-1]["value"] == 0.333333


@pytest.mark.parametrize(("query", "field"), [("months=0", "months"), ("end=2026-3x", "end")])
def test_trend_refuses_bad_parameters_naming_them(
    api_client: Callable[..., Client], query: str, field: str
) -> None:
    response = api_client("viewer").get(f"/api/v1/kpis/nrr/trend?{query}")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][-1] == field


def test_kpis_need_authentication(client: Client) -> None:
    assert client.get("/api/v1/kpis").status_code == 401
    assert client.get(f"/api/v1/kpis/nrr?{MARCH}").status_code == 401


# Adoption KPIs: the events and answers of usage_data.march_usage.


def test_an_adoption_kpi_answers_the_same_json_as_the_command(
    api_client: Callable[..., Client],
) -> None:
    march_usage()
    response = api_client("viewer").get(f"/api/v1/kpis/monthly_login_rate?{MARCH}")
    assert response.status_code == 200
    out = StringIO()
    call_command(
        "kpi", "monthly_login_rate", "--start", "2026-03-01", "--end", "2026-04-01", "--json",
        stdout=out,
    )  # fmt: skip
    assert response.json() == json.loads(out.getvalue())
    # 5 users / (19 seats + 3 known users of C).
    assert (response.json()["numerator"], response.json()["denominator"]) == (5, 22)
    assert response.json()["value"] == 0.227273


def test_activity_churn_takes_inactivity_days_from_the_query(
    api_client: Callable[..., Client],
) -> None:
    march_usage()
    client = api_client("viewer")
    response = client.get(f"/api/v1/kpis/activity_churn_rate?{MARCH}&inactivity_days=10")
    assert (response.json()["numerator"], response.json()["denominator"]) == (2, 5)
    refused = client.get(f"/api/v1/kpis/activity_churn_rate?{MARCH}&inactivity_days=400")
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"] == ["query", "inactivity_days"]


def test_adoption_filters_and_empty_denominators(api_client: Callable[..., Client]) -> None:
    march_usage()
    client = api_client("viewer")
    enterprise = client.get(f"/api/v1/kpis/active_rate?{MARCH}&segment=enterprise").json()
    assert (enterprise["numerator"], enterprise["denominator"]) == (1, 2)
    nobody = client.get(f"/api/v1/kpis/stickiness?{MARCH}&segment=nobody").json()
    assert (nobody["value"], nobody["denominator"]) == (None, 0)
    no_days = client.get("/api/v1/kpis/active_rate?start=2026-03-01&end=2026-03-01")
    assert no_days.status_code == 422
    assert no_days.json()["detail"][0]["loc"] == ["query", "end"]


def test_adoption_trend_gives_monthly_points(api_client: Callable[..., Client]) -> None:
    march_usage()
    response = api_client("viewer").get("/api/v1/kpis/active_rate/trend?months=2&end=2026-03")
    assert response.status_code == 200
    payload = response.json()
    assert payload["name_ja"] == "アクティブ率"
    # February: 4 of the 5 customers active on 03-01 had a login; March 3 of 4.
    assert [(p["month"], p["value"]) for p in payload["points"]] == [
        ("2026-02", 0.8),
        ("2026-03", 0.75),
    ]
