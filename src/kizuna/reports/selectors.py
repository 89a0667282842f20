"""Reads behind the report pages."""

from dataclasses import dataclass
from datetime import date

from kizuna.customers.models import Subscription
from kizuna.reports.kpis import KPIS, KpiDefinition, KpiResult, Population, monthly_totals

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


@dataclass(frozen=True, kw_only=True)
class MonthKpis:
    month: str  # YYYY-MM
    results: dict[str, KpiResult]


@dataclass(frozen=True, kw_only=True)
class ContractDashboard:
    """The chosen month's contract KPIs and the months before it, oldest first."""

    month: date
    cards: list[tuple[KpiDefinition, KpiResult]]
    movements: KpiResult
    months: list[MonthKpis]


def has_subscriptions() -> bool:
    return Subscription.objects.exists()


def contract_dashboard(
    *, month: date, population: Population, months: int = 12
) -> ContractDashboard:
    """Every contract KPI for each of ``months`` months ending with ``month``.

    One SQL statement per month; every KPI of a month comes from the same totals.
    """
    history = [
        MonthKpis(
            month=totals.start.strftime("%Y-%m"),
            results={kpi_id: definition.compute(totals) for kpi_id, definition in KPIS.items()},
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
