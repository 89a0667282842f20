"""Reads behind the report pages."""

from dataclasses import dataclass
from datetime import date

from kizuna.analytics.usage_kpis import has_usage_data
from kizuna.customers.models import Customer, Subscription
from kizuna.lifecycle.models import Segment
from kizuna.onboarding.models import Program
from kizuna.reports.kpis import (
    ADOPTION_KPIS,
    DEFAULT_INACTIVITY_DAYS,
    KPIS,
    AnyKpi,
    GroupBy,
    GroupedKpi,
    KpiResult,
    Population,
    compute_grouped_kpi,
    monthly_totals,
    monthly_usage_totals,
)
from kizuna.reports.kpis.catalog import CONTRACT_KPIS
from kizuna.reports.kpis.population import next_month

# The KPI cards of the contract dashboard, in the order shown.
CARD_KPIS = (
    "logo_churn_rate",
    "logo_retention_rate",
    "mrr_churn_rate",
    "grr",
    "nrr",
    "monthly_equivalent_churn",
)
TREND_KPIS = ("logo_churn_rate", "nrr", "grr")
# The adoption cards (all of them are charted month by month).
ADOPTION_CARD_KPIS = tuple(definition.id for definition in ADOPTION_KPIS)


@dataclass(frozen=True, kw_only=True)
class MonthKpis:
    month: str  # YYYY-MM
    results: dict[str, KpiResult]


@dataclass(frozen=True, kw_only=True)
class ContractDashboard:
    """The chosen month's contract KPIs and the months before it, oldest first."""

    month: date
    cards: list[tuple[AnyKpi, KpiResult]]
    movements: KpiResult
    months: list[MonthKpis]


@dataclass(frozen=True, kw_only=True)
class AdoptionDashboard:
    """The chosen month's adoption KPIs and the months before it, oldest first."""

    month: date
    cards: list[tuple[AnyKpi, KpiResult]]
    months: list[MonthKpis]
    inactivity_days: int


def has_subscriptions() -> bool:
    return Subscription.objects.exists()


def has_events() -> bool:
    """Whether there are product events to compute the adoption KPIs from."""
    return has_usage_data()


def contract_dashboard(
    *, month: date, population: Population, months: int = 12
) -> ContractDashboard:
    """Every contract KPI for each of ``months`` months ending with ``month``.

    One SQL statement for all the months; every KPI of a month comes from the same totals.
    """
    history = [
        MonthKpis(
            month=totals.start.strftime("%Y-%m"),
            results={definition.id: definition.compute(totals) for definition in CONTRACT_KPIS},
        )
        for totals in monthly_totals(months=months, end_month=month, population=population)
    ]
    current = history[-1].results
    return ContractDashboard(
        month=month,
        cards=[(KPIS[kpi_id], current[kpi_id]) for kpi_id in CARD_KPIS],
        movements=current["mrr_movements"],
        months=history,
    )


def adoption_dashboard(
    *,
    month: date,
    population: Population,
    months: int = 12,
    inactivity_days: int = DEFAULT_INACTIVITY_DAYS,
) -> AdoptionDashboard:
    """Every adoption KPI for each of ``months`` months ending with ``month``.

    Each kind of usage total is one pass over the events for all the months together.
    """
    history = [
        MonthKpis(
            month=totals.start.strftime("%Y-%m"),
            results={definition.id: definition.compute(totals) for definition in ADOPTION_KPIS},
        )
        for totals in monthly_usage_totals(
            months=months,
            end_month=month,
            population=population,
            inactivity_days=inactivity_days,
        )
    ]
    current = history[-1].results
    return AdoptionDashboard(
        month=month,
        cards=[(KPIS[kpi_id], current[kpi_id]) for kpi_id in ADOPTION_CARD_KPIS],
        months=history,
        inactivity_days=inactivity_days,
    )


def segment_choices() -> list[tuple[str, str]]:
    """(key, name) of the defined segments in their order, then keys customers hold that no
    segment defines (kept so that old data stays reachable)."""
    defined = list(Segment.objects.order_by("position", "id").values_list("key", "name"))
    known = {key for key, _name in defined}
    held = (
        Customer.objects.exclude(segment="")
        .exclude(segment__in=known)
        .order_by("segment")
        .values_list("segment", flat=True)
        .distinct()
    )
    return [*defined, *((key, key) for key in held)]


def program_choices() -> list[tuple[str, str]]:
    """(key, name) of the onboarding programs, by name."""
    return list(Program.objects.order_by("name", "key").values_list("key", "name"))


def kpi_breakdown(
    *, kpi_id: str, month: date, population: Population, group_by: GroupBy
) -> GroupedKpi:
    """One KPI for ``month`` (first day to first day of the next), per group of ``group_by``
    read as of the month's first day, and in total."""
    return compute_grouped_kpi(
        kpi_id=kpi_id,
        start=month,
        end=next_month(month),
        population=population,
        group_by=group_by,
    )
