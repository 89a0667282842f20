"""Contract KPIs on hand-made books whose answers are worked out by hand."""

import itertools
from datetime import date
from decimal import Decimal

import pytest
from django.test import override_settings

from kizuna.core.models import User
from kizuna.reports.kpis import (
    KPIS,
    KpiInputError,
    Population,
    compute_kpi,
    contract_totals,
    last_complete_month,
    monthly_totals,
    trend,
)
from kizuna.reports.kpis.trend import month_starts
from kizuna.reports.tests.contracts_data import (
    MARCH,
    customer,
    march_book,
    product,
    set_state,
    subscribe,
)

pytestmark = pytest.mark.django_db

EVERYONE = Population()


def kpi(kpi_id: str, start: date = MARCH[0], end: date = MARCH[1], **filters: object):  # type: ignore[no-untyped-def]
    return compute_kpi(kpi_id=kpi_id, start=start, end=end, population=Population(**filters))  # type: ignore[arg-type]


def test_the_catalog_holds_the_contract_kpis_with_both_names() -> None:
    assert set(KPIS) == {
        "logo_churn_rate",
        "logo_retention_rate",
        "mrr_churn_rate",
        "grr",
        "nrr",
        "monthly_equivalent_churn",
        "mrr_movements",
        # adoption KPIs from product events (test_adoption_kpis.py)
        "active_rate",
        "monthly_login_rate",
        "stickiness",
        "feature_usage_rate",
        "activity_churn_rate",
        # onboarding KPIs of a contract-start cohort (test_onboarding_kpis.py)
        "onboarding_completion_rate",
        "initial_usage_rate",
        "initial_outcome_achievement_rate",
        "time_to_first_value",
        "milestone_funnel",
        # the health KPI of the stored scores (health/tests/test_kpis.py)
        "health_improvement_rate",
    }
    assert KPIS["logo_churn_rate"].name_ja == "チャーンレート(顧客数)"
    assert KPIS["nrr"].name_en == "net revenue retention (NRR)"
    assert all(str(definition.description) for definition in KPIS.values())


def test_contract_totals_of_the_march_book_match_the_hand_count() -> None:
    march_book()
    totals = contract_totals(start=MARCH[0], end=MARCH[1], population=EVERYONE)
    assert (totals.customers_start, totals.customers_end) == (6, 7)
    assert (totals.churned_customers, totals.retained_customers) == (2, 4)
    assert (totals.new_customers, totals.reactivated_customers) == (2, 1)
    assert totals.mrr_start == Decimal("1210.00")
    assert totals.churned_mrr == Decimal("500.00")
    assert totals.contraction_mrr == Decimal("50.00")
    assert totals.expansion_mrr == Decimal("150.00")
    assert totals.mrr_end_of_start_customers == Decimal("810.00")
    assert totals.new_mrr == Decimal("570.00")
    assert totals.reactivation_mrr == Decimal("90.00")
    assert totals.mrr_end == Decimal("1470.00")


def test_logo_churn_counts_customers_active_on_start_and_not_on_end() -> None:
    march_book()
    result = kpi("logo_churn_rate")
    # B ended mid-month, C's end date is the end day itself (its first day without service).
    assert (result.numerator, result.denominator) == (2, 6)
    assert result.value == Decimal("0.333333")


def test_logo_retention_is_one_minus_logo_churn() -> None:
    march_book()
    result = kpi("logo_retention_rate")
    assert (result.numerator, result.denominator) == (4, 6)
    assert result.value == Decimal("0.666667")


def test_mrr_churn_rate_adds_churned_and_contraction_mrr() -> None:
    march_book()
    result = kpi("mrr_churn_rate")
    # (500 churned + 50 contraction of D's second product) / 1210
    assert (result.numerator, result.denominator) == (Decimal("550.00"), Decimal("1210.00"))
    assert result.value == Decimal("0.454545")


def test_grr_is_one_minus_mrr_churn_rate() -> None:
    march_book()
    result = kpi("grr")
    assert (result.numerator, result.denominator) == (Decimal("660.00"), Decimal("1210.00"))
    assert result.value == Decimal("0.545455")


def test_nrr_follows_the_start_customers_only() -> None:
    march_book()
    result = kpi("nrr")
    # 100 (A) + 400 (D) + 250 (E) + 60 (H) = 810; F, G and I are not start customers.
    assert (result.numerator, result.denominator) == (Decimal("810.00"), Decimal("1210.00"))
    assert result.value == Decimal("0.669421")


def test_nrr_above_one_when_expansion_beats_churn() -> None:
    who = customer("Grower")
    subscribe(who, "2025-01-01", "2026-03-10", 100)
    subscribe(who, "2026-03-10", None, 180)
    assert kpi("nrr").value == Decimal("1.800000")


def test_monthly_equivalent_churn_scales_a_31_day_month_to_365_12_days() -> None:
    march_book()
    result = kpi("monthly_equivalent_churn")
    # c = 1/3 over d = 31 days: 1 − (2/3)^(30.41667/31) = 0.328227; annual 1 − (2/3)^(365/31)
    assert result.value == Decimal("0.328227")
    assert result.details["annual_equivalent"] == Decimal("0.991554")
    assert result.details["days"] == 31
    assert (result.numerator, result.denominator) == (2, 6)


def test_monthly_equivalent_churn_of_a_quarter_is_lower_than_its_logo_churn() -> None:
    # 1 of 4 churns over 90 days: 1 − 0.75^(30.41667/90) = 1 − exp(−0.097226) = 0.092649
    for index in range(4):
        who = customer(f"Q{index}")
        subscribe(who, "2025-01-01", "2026-02-01" if index == 0 else None, 10)
    result = kpi("monthly_equivalent_churn", date(2026, 1, 1), date(2026, 4, 1))
    assert result.details["logo_churn_rate"] == Decimal("0.250000")
    assert result.value == Decimal("0.092649")


def test_mrr_movements_add_up_to_the_end_mrr() -> None:
    march_book()
    result = kpi("mrr_movements")
    details = result.details
    assert details["mrr_start"] == Decimal("1210.00")
    assert details["new_mrr"] == Decimal("570.00")
    assert details["reactivation_mrr"] == Decimal("90.00")
    assert details["expansion_mrr"] == Decimal("150.00")
    assert details["contraction_mrr"] == Decimal("50.00")
    assert details["churned_mrr"] == Decimal("500.00")
    assert details["mrr_end"] == Decimal("1470.00")
    assert result.value == Decimal("260.00")
    assert (result.numerator, result.denominator) == (None, None)


def test_a_period_of_one_day_has_no_churn_and_no_monthly_equivalent() -> None:
    march_book()
    day = date(2026, 3, 1)
    churn = kpi("logo_churn_rate", day, day)
    assert (churn.value, churn.numerator, churn.denominator) == (Decimal(0), 0, 6)
    movements = kpi("mrr_movements", day, day).details
    assert movements["mrr_start"] == movements["mrr_end"] == Decimal("1210.00")
    assert movements["new_mrr"] == movements["churned_mrr"] == Decimal("0.00")
    assert kpi("monthly_equivalent_churn", day, day).value is None


def test_rates_with_an_empty_denominator_are_undefined_not_zero() -> None:
    for kpi_id in ("logo_churn_rate", "logo_retention_rate", "mrr_churn_rate", "grr", "nrr"):
        result = kpi(kpi_id)
        assert result.value is None, kpi_id
        assert result.denominator == 0
    assert kpi("monthly_equivalent_churn").value is None
    assert kpi("mrr_movements").value == Decimal("0.00")


def test_free_customers_have_a_logo_churn_but_no_mrr_churn_rate() -> None:
    subscribe(customer("Free"), "2025-01-01", "2026-03-15", 0)
    assert kpi("logo_churn_rate").value == Decimal(1)
    assert kpi("mrr_churn_rate").value is None
    assert kpi("grr").value is None


def test_end_before_start_is_refused_naming_end() -> None:
    with pytest.raises(KpiInputError) as error:
        kpi("logo_churn_rate", date(2026, 4, 1), date(2026, 3, 1))
    assert error.value.field == "end"


def test_unknown_kpi_is_refused_naming_the_id() -> None:
    with pytest.raises(KpiInputError) as error:
        kpi("happiness")
    assert error.value.field == "id"
    assert "logo_churn_rate" in str(error.value)


def test_segment_touch_model_and_stage_filters_narrow_the_customers() -> None:
    book = march_book()
    for name in "AB":
        set_state(book[name], segment="Enterprise", touch_model="low", lifecycle_stage="adoption")
    # Of A and B, B churned.
    for filters in (
        {"segment": "Enterprise"},
        {"touch_model": "low"},
        {"lifecycle_stage": "adoption"},
    ):
        result = kpi("logo_churn_rate", **filters)
        assert (result.numerator, result.denominator) == (1, 2), filters
    assert kpi("logo_churn_rate", segment="Nobody").value is None


def test_owner_filter_matches_any_of_the_three_phase_owners(make_user) -> None:  # type: ignore[no-untyped-def]
    book = march_book()
    csm: User = make_user("adoption_csm", username="hanako")
    set_state(book["A"], onboarding_owner=csm)
    set_state(book["C"], adoption_owner=csm)
    set_state(book["F"], expansion_owner=csm)
    result = kpi("logo_churn_rate", owner_id=csm.pk)
    # A (retained) and C (churned) were active on start; F is new.
    assert (result.numerator, result.denominator) == (1, 2)
    assert kpi("mrr_movements", owner_id=csm.pk).details["new_mrr"] == Decimal("500.00")


def test_cohort_filter_takes_the_month_of_the_first_start_date() -> None:
    book = march_book()
    for name, first in {"A": "2025-01-01", "D": "2025-01-31", "B": "2025-06-01"}.items():
        book[name].first_start_date = date.fromisoformat(first)
        book[name].save()
    result = kpi("nrr", cohort="2025-01")
    # A 100 → 100, D 450 → 400
    assert (result.numerator, result.denominator) == (Decimal("500.00"), Decimal("550.00"))
    with pytest.raises(KpiInputError) as error:
        kpi("nrr", cohort="2025-13")
    assert error.value.field == "cohort"


def test_product_filter_churns_a_customer_from_the_product_it_dropped() -> None:
    march_book()
    # Only D had p2; dropping it is a churn of p2 while D stays a customer of p1.
    p2 = kpi("logo_churn_rate", product_id=product("p2").pk)
    assert (p2.numerator, p2.denominator) == (1, 1)
    movements = kpi("mrr_movements", product_id=product("p1").pk).details
    assert movements["contraction_mrr"] == Decimal("0.00")
    assert movements["mrr_start"] == Decimal("1160.00")


def test_a_customer_back_after_a_gap_is_a_reactivation_not_new() -> None:
    who = customer("Returning")
    subscribe(who, "2025-01-01", "2026-01-01", 30)
    subscribe(who, "2026-03-15", None, 35)
    details = kpi("mrr_movements").details
    assert details["reactivation_mrr"] == Decimal("35.00")
    assert details["new_mrr"] == Decimal("0.00")
    assert details["reactivated_customers"] == 1


def test_back_to_back_monthly_rows_are_one_continuous_customer() -> None:
    who = customer("Monthly")
    for start, end in (
        ("2026-02-01", "2026-03-01"),
        ("2026-03-01", "2026-04-01"),
        ("2026-04-01", None),
    ):
        subscribe(who, start, end, 20)
    result = kpi("logo_churn_rate")
    assert (result.numerator, result.denominator) == (0, 1)
    assert kpi("mrr_movements").details["expansion_mrr"] == Decimal("0.00")


@override_settings(KIZUNA_BASE_CURRENCY="JPY", KIZUNA_CURRENCY_RATES={"USD": 150.5})
def test_amounts_in_other_currencies_convert_with_the_configured_rates() -> None:
    subscribe(customer("Yen"), "2025-01-01", None, 1000)
    subscribe(customer("Dollar"), "2025-01-01", None, "10.00", currency="USD")
    totals = contract_totals(start=MARCH[0], end=MARCH[1], population=EVERYONE)
    # 1000 + 10 × 150.5
    assert totals.mrr_start == Decimal("2505.00")
    assert totals.currency == "JPY"


@override_settings(KIZUNA_BASE_CURRENCY="JPY", KIZUNA_CURRENCY_RATES={"USD": 150.5})
def test_a_currency_without_a_rate_is_a_clear_error() -> None:
    subscribe(customer("Euro"), "2025-01-01", None, 10, currency="EUR")
    with pytest.raises(KpiInputError) as error:
        kpi("nrr")
    assert error.value.field == "currency"
    assert "EUR" in str(error.value)
    assert "KIZUNA_CURRENCY_RATES" in str(error.value)


def test_trend_gives_one_point_per_month_ending_with_the_chosen_month() -> None:
    march_book()
    points = trend("logo_churn_rate", months=3, end_month=date(2026, 3, 1), population=EVERYONE)
    assert [point.month for point in points] == ["2026-01", "2026-02", "2026-03"]
    assert points[-1].result.start == date(2026, 3, 1)
    assert points[-1].result.end == date(2026, 4, 1)
    assert points[-1].result.value == Decimal("0.333333")
    # Only G's first subscription ended (2025-12-01 is the first day of January without it:
    # G churned in November's period, not in January's).
    assert points[0].result.numerator == 0


def test_consecutive_months_chain_end_mrr_into_the_next_start_mrr() -> None:
    march_book()
    points = trend("mrr_movements", months=6, end_month=date(2026, 5, 1), population=EVERYONE)
    for before, after in itertools.pairwise(points):
        assert before.result.details["mrr_end"] == after.result.details["mrr_start"]


def test_month_helpers_cross_year_boundaries() -> None:
    assert month_starts(months=3, end_month=date(2026, 1, 1)) == [
        date(2025, 11, 1),
        date(2025, 12, 1),
        date(2026, 1, 1),
    ]
    assert last_complete_month(today=date(2026, 1, 15)) == date(2025, 12, 1)
    assert last_complete_month(today=date(2026, 3, 31)) == date(2026, 2, 1)
    with pytest.raises(KpiInputError) as error:
        month_starts(months=0, end_month=date(2026, 1, 1))
    assert error.value.field == "months"


def test_a_monthly_series_in_one_statement_equals_each_month_computed_alone() -> None:
    book = march_book()
    subscribe(book["K"], "2025-11-15", "2026-02-01", 33, product_code="p2")
    series = monthly_totals(months=7, end_month=date(2026, 5, 1), population=EVERYONE)
    alone = [
        contract_totals(start=totals.start, end=totals.end, population=EVERYONE)
        for totals in series
    ]
    assert series == alone
    assert series[0].start == date(2025, 11, 1)
