"""The adoption KPIs of KPI.md that need product events, each a function of ``UsageTotals``."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from kizuna.reports.kpis.results import KpiResult, Number, Unit, fraction, rounded_rate
from kizuna.reports.kpis.usage import UsagePart, UsageTotals

MEAN_PLACES = Decimal("0.01")


@dataclass(frozen=True)
class UsageKpiDefinition:
    """A KPI computed from ``UsageTotals``; ``parts`` says which totals it reads."""

    id: str
    name_en: str
    name_ja: str
    description: Promise
    unit: Unit
    compute: Callable[[UsageTotals], KpiResult]
    parts: frozenset[UsagePart]


def _result(
    kpi_id: str,
    totals: UsageTotals,
    value: Decimal | None,
    numerator: Number | None,
    denominator: Number | None,
    details: dict[str, object],
) -> KpiResult:
    return KpiResult(
        id=kpi_id,
        start=totals.start,
        end=totals.end,
        value=value,
        numerator=numerator,
        denominator=denominator,
        details={"qualifying_event_types": list(totals.qualifying_event_types), **details},
    )


def _whole(value: Decimal) -> Number:
    """A seat count as an int when it is whole (``30``, not ``30.00``)."""
    return int(value) if value == value.to_integral_value() else value


def active_rate(totals: UsageTotals) -> KpiResult:
    """Customers with at least one active user in the period / customers active on end."""
    return _result(
        "active_rate",
        totals,
        rounded_rate(fraction(totals.active_customers, totals.customers_end)),
        totals.active_customers,
        totals.customers_end,
        {"customers_end": totals.customers_end, "active_customers": totals.active_customers},
    )


def monthly_login_rate(totals: UsageTotals) -> KpiResult:
    """Active users / licensed seats, over the customers active on end: Σ users / Σ seats.

    A customer without a seat count contributes its known users (seen before end) instead.
    The ratio is the seat-weighted mean of the customers' rates; it exceeds 1 when more
    people use the product than it is licensed for.
    """
    denominator = _whole(totals.seats + totals.known_users)
    return _result(
        "monthly_login_rate",
        totals,
        rounded_rate(fraction(totals.active_users, denominator)),
        totals.active_users,
        denominator,
        {
            "customers_end": totals.customers_end,
            "customers_with_seats": totals.seat_customers,
            "customers_without_seats": totals.customers_end - totals.seat_customers,
            "users": totals.active_users,
            "users_of_customers_with_seats": totals.seated_users,
            "users_of_customers_without_seats": totals.active_users - totals.seated_users,
            "seats": _whole(totals.seats),
            "known_users": totals.known_users,
        },
    )


def stickiness(totals: UsageTotals) -> KpiResult:
    """Mean DAU / MAU = (Σ over the period's days of DAU) / (days × MAU).

    DAU(d) counts the users active on d, MAU the users active on any day of the period, both
    over the customers active on end; undefined when no user was active.
    """
    denominator = totals.days * totals.active_users
    mean_dau = fraction(totals.user_days, totals.days)
    return _result(
        "stickiness",
        totals,
        rounded_rate(fraction(totals.user_days, denominator)),
        totals.user_days,
        denominator,
        {
            "days": totals.days,
            "user_days": totals.user_days,
            "mean_dau": None if mean_dau is None else mean_dau.quantize(MEAN_PLACES),
            "mau": totals.active_users,
        },
    )


def feature_usage_rate(totals: UsageTotals) -> KpiResult:
    """Mean over active customers of (key features used / key features configured).

    Numerator: (customer, key feature) pairs used; denominator: active customers × key
    features. Undefined without key features or active customers. ``details.features`` gives
    each key feature's share of active customers that used it.
    """
    used = sum(totals.feature_customers.values())
    denominator = totals.active_customers * len(totals.key_features)
    return _result(
        "feature_usage_rate",
        totals,
        rounded_rate(fraction(used, denominator)),
        used,
        denominator,
        {
            "key_features": list(totals.key_features),
            "active_customers": totals.active_customers,
            "features": [
                {
                    "feature": feature,
                    "customers": totals.feature_customers.get(feature, 0),
                    "active_customers": totals.active_customers,
                    "rate": rounded_rate(
                        fraction(totals.feature_customers.get(feature, 0), totals.active_customers)
                    ),
                }
                for feature in totals.key_features
            ],
        },
    )


def activity_churn_rate(totals: UsageTotals) -> KpiResult:
    """Customers active in the N days before start and not in the N days before end / the former.

    The window before a day d holds the instants after midnight of d − N up to midnight of d.
    """
    inactivity = totals.inactivity_days
    return _result(
        "activity_churn_rate",
        totals,
        rounded_rate(fraction(totals.inactive_before_end, totals.active_before_start)),
        totals.inactive_before_end,
        totals.active_before_start,
        {
            "inactivity_days": inactivity,
            "window_before_start": [totals.start - timedelta(days=inactivity), totals.start],
            "window_before_end": [totals.end - timedelta(days=inactivity), totals.end],
            "active_before_start": totals.active_before_start,
            "inactive_before_end": totals.inactive_before_end,
        },
    )


ADOPTION_KPIS: tuple[UsageKpiDefinition, ...] = (
    UsageKpiDefinition(
        "active_rate",
        "active rate (customers)",
        "アクティブ率",
        _(
            "Customers with at least one active user in the period / customers active on the "
            "end day."
        ),
        Unit.RATE,
        active_rate,
        frozenset({UsagePart.ACTIVITY}),
    ),
    UsageKpiDefinition(
        "monthly_login_rate",
        "monthly login rate",
        "月間ログイン率",
        _(
            "Users with a qualifying event in the period / licensed seats of the customers "
            "active on the end day (known users where a customer has no seat count); the "
            "seat-weighted mean."
        ),
        Unit.RATE,
        monthly_login_rate,
        frozenset({UsagePart.ACTIVITY, UsagePart.SEATS}),
    ),
    UsageKpiDefinition(
        "stickiness",
        "stickiness",
        "DAU/MAU",
        _("Mean daily active users over the period / users active in the period (DAU/MAU)."),
        Unit.RATE,
        stickiness,
        frozenset({UsagePart.ACTIVITY}),
    ),
    UsageKpiDefinition(
        "feature_usage_rate",
        "feature usage rate",
        "機能利用率",
        _(
            "Per active customer, key features used in the period / key features configured, "
            "averaged; per feature, active customers that used it / active customers."
        ),
        Unit.RATE,
        feature_usage_rate,
        frozenset({UsagePart.ACTIVITY, UsagePart.FEATURES}),
    ),
    UsageKpiDefinition(
        "activity_churn_rate",
        "activity churn rate",
        "非アクティブ化率",
        _(
            "Among customers with a qualifying event in the inactivity days (default 14) "
            "before the start day, the share with none in as many days before the end day."
        ),
        Unit.RATE,
        activity_churn_rate,
        frozenset({UsagePart.WINDOWS}),
    ),
)
