"""`kizuna kpi`: one KPI with numerator and denominator, as text or JSON; clear errors."""

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from kizuna.reports.tests.contracts_data import march_book, set_state
from kizuna.reports.tests.usage_data import march_usage

pytestmark = pytest.mark.django_db


def kpi(*args: str) -> str:
    out = StringIO()
    call_command("kpi", *args, stdout=out)
    return out.getvalue()


def test_json_output_carries_value_numerator_denominator_and_both_names() -> None:
    march_book()
    payload = json.loads(
        kpi("logo_churn_rate", "--start", "2026-03-01", "--end", "2026-04-01", "--json")
    )
    assert payload == {
        "id": "logo_churn_rate",
        "name_en": "logo churn rate",
        "name_ja": "チャーンレート(顧客数)",
        "start": "2026-03-01",
        "end": "2026-04-01",
        "value": 0.333333,
        "numerator": 2,
        "denominator": 6,
        "details": {"customers_start": 6, "churned_customers": 2, "retained_customers": 4},
    }


def test_movements_in_json_add_up() -> None:
    march_book()
    payload = json.loads(
        kpi("mrr_movements", "--start", "2026-03-01", "--end", "2026-04-01", "--json")
    )
    details = payload["details"]
    assert details["mrr_start"] == 1210.0
    assert details["mrr_end"] == 1470.0
    assert payload["value"] == 260.0


def test_text_output_shows_the_rate_as_a_percentage_and_undefined_as_a_dash() -> None:
    march_book()
    text = kpi("nrr", "--start", "2026-03-01", "--end", "2026-04-01")
    assert "66.94%" in text
    assert "810.00" in text
    assert "1210.00" in text
    assert "— (undefined)" in kpi("nrr", "--start", "2020-01-01", "--end", "2020-02-01")


def test_filters_given_by_name_narrow_the_population(make_user) -> None:  # type: ignore[no-untyped-def]
    book = march_book()
    set_state(book["B"], segment="SMB", adoption_owner=make_user("adoption_csm", username="sato"))
    for option in (["--segment", "SMB"], ["--owner", "sato"]):
        payload = json.loads(
            kpi(
                "logo_churn_rate", "--start", "2026-03-01", "--end", "2026-04-01", *option, "--json"
            )
        )
        assert (payload["numerator"], payload["denominator"]) == (1, 1), option
    payload = json.loads(
        kpi(
            "logo_churn_rate",
            "--start",
            "2026-03-01",
            "--end",
            "2026-04-01",
            "--product",
            "p2",
            "--json",
        )
    )
    assert (payload["numerator"], payload["denominator"]) == (1, 1)


def test_list_names_every_kpi() -> None:
    text = kpi("list")
    for kpi_id in ("logo_churn_rate", "grr", "nrr", "monthly_equivalent_churn", "mrr_movements"):
        assert kpi_id in text
    assert "active_rate                active rate (customers) / アクティブ率 [rate]" in text
    assert {entry["id"] for entry in json.loads(kpi("list", "--json"))} >= {"grr", "nrr"}


def test_without_dates_the_period_is_the_last_complete_month() -> None:
    payload = json.loads(kpi("grr", "--json"))
    assert payload["start"].endswith("-01")
    assert payload["end"].endswith("-01")


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["happiness", "--start", "2026-03-01", "--end", "2026-04-01"], "ID"),
        (["nrr", "--start", "2026-02-30", "--end", "2026-04-01"], "--start"),
        (["nrr", "--start", "2026-03-01", "--end", "April"], "--end"),
        (["nrr", "--start", "2026-04-01", "--end", "2026-03-01"], "--end"),
        (["nrr", "--start", "2026-03-01"], "--end"),
        (
            ["nrr", "--start", "2026-03-01", "--end", "2026-04-01", "--touch-model", "warm"],
            "--touch-model",
        ),
        (["nrr", "--start", "2026-03-01", "--end", "2026-04-01", "--stage", "asleep"], "--stage"),
        (["nrr", "--start", "2026-03-01", "--end", "2026-04-01", "--owner", "nobody"], "--owner"),
        (["nrr", "--start", "2026-03-01", "--end", "2026-04-01", "--product", "nope"], "--product"),
        (["nrr", "--start", "2026-03-01", "--end", "2026-04-01", "--cohort", "2026"], "--cohort"),
    ],
)
def test_bad_arguments_are_refused_naming_the_argument(args: list[str], named: str) -> None:
    with pytest.raises(CommandError) as error:
        kpi(*args)
    assert str(error.value).startswith(f"{named}:")


# Adoption KPIs: the events and answers of usage_data.march_usage.


def test_active_rate_as_json_over_the_march_events() -> None:
    march_usage()
    payload = json.loads(
        kpi("active_rate", "--start", "2026-03-01", "--end", "2026-04-01", "--json")
    )
    # Active on 04-01: A B C E; with a login in March: A B C.
    assert payload == {
        "id": "active_rate",
        "name_en": "active rate (customers)",
        "name_ja": "アクティブ率",
        "start": "2026-03-01",
        "end": "2026-04-01",
        "value": 0.75,
        "numerator": 3,
        "denominator": 4,
        "details": {
            "qualifying_event_types": ["login"],
            "customers_end": 4,
            "active_customers": 3,
        },
    }


def test_inactivity_days_set_the_activity_churn_window() -> None:
    march_usage()
    march = ["--start", "2026-03-01", "--end", "2026-04-01", "--json"]
    default = json.loads(kpi("activity_churn_rate", *march))
    assert (default["numerator"], default["denominator"]) == (2, 6)
    ten = json.loads(kpi("activity_churn_rate", *march, "--inactivity-days", "10"))
    # G's only February login (02-16) is more than 10 days before 03-01: 2 of 5.
    assert (ten["numerator"], ten["denominator"]) == (2, 5)
    assert ten["details"]["window_before_start"] == ["2026-02-19", "2026-03-01"]
    with pytest.raises(CommandError) as error:
        kpi("activity_churn_rate", *march, "--inactivity-days", "0")
    assert str(error.value).startswith("--inactivity-days:")


def test_text_output_lists_the_key_features() -> None:
    march_usage()
    text = kpi("feature_usage_rate", "--start", "2026-03-01", "--end", "2026-04-01")
    assert "44.44%" in text
    assert "feature=reports  customers=2  active_customers=3  rate=0.666667 (66.67%)" in text
    assert "key_features: reports, export, share" in text


def test_a_period_without_days_is_refused_naming_the_end() -> None:
    march_usage()
    with pytest.raises(CommandError) as error:
        kpi("stickiness", "--start", "2026-03-01", "--end", "2026-03-01")
    assert str(error.value).startswith("--end:")
