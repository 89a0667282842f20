"""Adoption KPIs on the hand-made March 2026 of product events (usage_data.march_usage)."""

from datetime import date
from decimal import Decimal

import pytest

from kizuna.reports.kpis import KPIS, KpiInputError, Population, compute_kpi, trend
from kizuna.reports.kpis.usage import usage_totals_series
from kizuna.reports.tests.contracts_data import product
from kizuna.reports.tests.usage_data import (
    FEBRUARY,
    MARCH,
    configure,
    march_usage,
    write_events,
)

pytestmark = pytest.mark.django_db


def kpi(  # type: ignore[no-untyped-def]
    kpi_id: str, start: date = MARCH[0], end: date = MARCH[1], inactivity_days: int = 14, **filters
):
    return compute_kpi(
        kpi_id=kpi_id,
        start=start,
        end=end,
        population=Population(**filters),
        inactivity_days=inactivity_days,
    )


def test_the_catalog_holds_the_adoption_kpis_with_both_names() -> None:
    names = {kpi_id: (KPIS[kpi_id].name_ja, KPIS[kpi_id].unit) for kpi_id in KPIS}
    assert names["active_rate"] == ("アクティブ率", "rate")
    assert names["monthly_login_rate"] == ("月間ログイン率", "rate")
    assert names["stickiness"] == ("DAU/MAU", "rate")
    assert names["feature_usage_rate"] == ("機能利用率", "rate")
    assert names["activity_churn_rate"] == ("非アクティブ化率", "rate")


def test_active_rate_counts_customers_active_on_end_with_an_active_user_in_the_period() -> None:
    march_usage()
    result = kpi("active_rate")
    # Active on 04-01: A B C E; with a login in March: A B C. D's logins do not count (its
    # contract ended 03-20), nor E's export (not a login), nor the unknown account's.
    assert (result.numerator, result.denominator) == (3, 4)
    assert result.value == Decimal("0.75")
    assert result.details["qualifying_event_types"] == ["login"]


def test_any_usage_event_qualifies_when_no_event_type_is_chosen() -> None:
    march_usage()
    configure(qualifying=[])
    # E's export on 03-12 now makes y2 an active user: A B C E of A B C E.
    result = kpi("active_rate")
    assert (result.numerator, result.denominator, result.value) == (4, 4, Decimal(1))
    # Users: A u1 u2 u3, B v1, C w1 w2, E y2 = 7, over 10 + 5 + 3 known + 4 = 22 seats.
    login = kpi("monthly_login_rate")
    assert (login.numerator, login.denominator) == (7, 22)


def test_monthly_login_rate_is_users_over_seats_with_known_users_where_there_are_no_seats() -> None:
    march_usage()
    result = kpi("monthly_login_rate")
    # Users 2 (A) + 1 (B) + 2 (C) = 5; seats 10 (A, "seats") + 5 (B, "席") + 4 (E, " Seats ")
    # = 19, plus C's 3 known users (its unit is connectors): 5 / 22 = 0.2272727…
    assert (result.numerator, result.denominator) == (5, 22)
    assert result.value == Decimal("0.227273")
    assert result.details == {
        "qualifying_event_types": ["login"],
        "customers_end": 4,
        "customers_with_seats": 3,
        "customers_without_seats": 1,
        "users": 5,
        "users_of_customers_with_seats": 3,
        "users_of_customers_without_seats": 2,
        "seats": 19,
        "known_users": 3,
    }


def test_stickiness_is_mean_daily_active_users_over_monthly_active_users() -> None:
    march_usage()
    result = kpi("stickiness")
    # User-days: A 4 + 1, B 2 (03-01 00:00 is 1 March), C 2 + 1 = 10; MAU 5; 31 days.
    # Mean DAU 10 / 31 = 0.3226; DAU/MAU = 10 / (31 × 5) = 0.0645161…
    assert (result.numerator, result.denominator) == (10, 155)
    assert result.value == Decimal("0.064516")
    assert result.details["mean_dau"] == Decimal("0.32")
    assert result.details["mau"] == 5


def test_feature_usage_rate_averages_key_features_over_active_customers() -> None:
    march_usage()
    result = kpi("feature_usage_rate")
    # Active customers A B C; A used reports (u3's page) and export, B share, C reports:
    # 4 of 3 × 3. D's and E's exports do not count (not counted / not active).
    assert (result.numerator, result.denominator) == (4, 9)
    assert result.value == Decimal("0.444444")
    assert result.details["features"] == [
        {"feature": "reports", "customers": 2, "active_customers": 3, "rate": Decimal("0.666667")},
        {"feature": "export", "customers": 1, "active_customers": 3, "rate": Decimal("0.333333")},
        {"feature": "share", "customers": 1, "active_customers": 3, "rate": Decimal("0.333333")},
    ]


def test_feature_usage_rate_is_undefined_without_key_features() -> None:
    march_usage()
    configure(key_features=[])
    result = kpi("feature_usage_rate")
    assert result.value is None
    assert result.denominator == 0
    assert result.details["features"] == []


def test_activity_churn_takes_the_inactivity_days_before_each_day_as_midnight_to_midnight() -> None:
    march_usage()
    result = kpi("activity_churn_rate")
    # Before 03-01: A B (at 03-01 00:00 exactly) C D E G = 6, not F (02-15 00:00 exactly).
    # Before 04-01: A B C (04-01 00:00 exactly) G; D and E went quiet: 2 / 6.
    assert (result.numerator, result.denominator) == (2, 6)
    assert result.value == Decimal("0.333333")
    assert result.details["window_before_start"] == [date(2026, 2, 15), date(2026, 3, 1)]
    assert result.details["inactivity_days"] == 14


def test_activity_churn_window_follows_the_inactivity_days_option() -> None:
    march_usage()
    # 10 days: before 03-01 = (02-19, 03-01]: A B C D E (G's 02-16 is out) = 5;
    # before 04-01 = (03-22, 04-01]: A (03-25) B (03-31) C (04-01 00:00); G's 03-20 is out
    # but G is not counted; D and E are quiet: 2 / 5.
    result = kpi("activity_churn_rate", inactivity_days=10)
    assert (result.numerator, result.denominator) == (2, 5)
    with pytest.raises(KpiInputError) as error:
        kpi("activity_churn_rate", inactivity_days=0)
    assert error.value.field == "inactivity_days"


def test_a_segment_filter_narrows_every_adoption_kpi() -> None:
    march_usage()
    # Enterprise: A D E. Active on 04-01: A E; A had logins: 1 / 2.
    assert kpi("active_rate", segment="enterprise").value == Decimal("0.5")
    # Users 2 (A) / seats 10 + 4.
    login = kpi("monthly_login_rate", segment="enterprise")
    assert (login.numerator, login.denominator) == (2, 14)
    # Before 03-01: A D E; quiet before 04-01: D E.
    churn = kpi("activity_churn_rate", segment="enterprise")
    assert (churn.numerator, churn.denominator) == (2, 3)


def test_a_product_filter_counts_that_products_customers_and_seats() -> None:
    march_usage()
    p1 = product("p1").pk
    # p1 on 04-01: A B E (C has only "connect"); active A B: 2 / 3.
    active = kpi("active_rate", product_id=p1)
    assert (active.numerator, active.denominator) == (2, 3)
    # Activity churn with a product: customers with it on 03-01 (A B D E): before 03-01 all
    # four were active; D and E went quiet: 2 / 4.
    churn = kpi("activity_churn_rate", product_id=p1)
    assert (churn.numerator, churn.denominator) == (2, 4)


def test_empty_denominators_are_undefined_not_zero() -> None:
    march_usage()
    # Nobody in the segment: no customer on end, no seats, no user, no one before start.
    for kpi_id in ("active_rate", "monthly_login_rate", "stickiness", "activity_churn_rate"):
        result = kpi(kpi_id, segment="nobody")
        assert result.value is None, kpi_id
        assert result.denominator == 0, kpi_id
    # June: customers and seats, but no event at all. Active rate 0 / 4 is a real 0 …
    june = (date(2026, 6, 1), date(2026, 7, 1))
    assert kpi("active_rate", *june).value == Decimal(0)
    # … while DAU/MAU and the feature usage rate have no user or active customer to average.
    assert kpi("stickiness", *june).value is None
    assert kpi("feature_usage_rate", *june).value is None


def test_a_period_without_days_is_refused_for_period_kpis() -> None:
    march_usage()
    with pytest.raises(KpiInputError) as error:
        kpi("active_rate", MARCH[0], MARCH[0])
    assert error.value.field == "end"
    # The activity churn rate compares two windows: the same day twice is no one quiet.
    assert kpi("activity_churn_rate", MARCH[0], MARCH[0]).value == Decimal(0)


def test_monthly_trend_matches_each_month_computed_alone() -> None:
    march_usage()
    points = trend("active_rate", months=2, end_month=date(2026, 3, 1), population=Population())
    assert [point.month for point in points] == ["2026-02", "2026-03"]
    # February: active on 03-01 A B C D E; logins in February: A (u5) C D E = 4 / 5.
    assert (points[0].result.numerator, points[0].result.denominator) == (4, 5)
    assert points[1].result == kpi("active_rate")
    assert points[0].result == kpi("active_rate", *FEBRUARY)
    churn = trend(
        "activity_churn_rate", months=2, end_month=date(2026, 3, 1), population=Population()
    )
    # Before 02-01 nobody had a login (C's 01-10 is a page view): undefined.
    assert churn[0].result.value is None
    assert churn[1].result == kpi("activity_churn_rate")


def test_a_series_of_every_part_agrees_with_single_periods() -> None:
    march_usage()
    write_events([("A", "u9", "track", "login", "", "2026-01-15 10:00")], stem="import-000002")
    days = [date(2026, 1, 1), date(2026, 2, 1), date(2026, 3, 1), date(2026, 4, 1)]
    series = usage_totals_series(days=days, population=Population())
    for k, totals in enumerate(series):
        alone = usage_totals_series(days=days[k : k + 2], population=Population())[0]
        assert totals == alone, totals.start
    # January: u9 is A's only active user; A has 10 seats.
    assert (series[0].active_users, series[0].active_customers) == (1, 1)
