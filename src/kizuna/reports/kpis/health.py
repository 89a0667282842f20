"""The health KPI of KPI.md in the catalog, from ``kizuna.health.kpis``.

``health_improvement_rate`` compares each customer's stored health score on ``start`` with
the one on ``end``; the population's segment, touch model, stage and owner are read on the
period's start (or on ``as_of``), like any KPI. A product filter does not apply (scores are
per customer) and is refused naming ``product``.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from kizuna.health import kpis as health
from kizuna.reports.kpis.population import KpiInputError, Population
from kizuna.reports.kpis.results import KpiResult, Unit, fraction, rounded_rate


@dataclass(frozen=True)
class HealthKpiDefinition:
    """A KPI of the stored health scores: ``compute(start, end, population)``."""

    id: str
    name_en: str
    name_ja: str
    description: Promise
    unit: Unit
    compute: Callable[[date, date, Population], KpiResult]


def health_improvement_rate(start: date, end: date, population: Population) -> KpiResult:
    """Customers whose score on ``end`` is at least the step above their score on ``start`` /
    customers scored on both days; ``details.mean_change`` is the mean change in points."""
    if end < start:
        raise KpiInputError("end", f"{end.isoformat()} is before start {start.isoformat()}")
    if population.product_id is not None:
        raise KpiInputError(
            "product", "health scores are per customer, not per product; leave product out"
        )
    customers = (
        population.customers(population.day_for(start)) if population.filters_customers else None
    )
    value = health.health_improvement_rate(start=start, end=end, customer_ids=customers)
    numerator = int(value["numerator"])
    denominator = int(value["denominator"])
    mean = value["mean_change"]
    return KpiResult(
        id="health_improvement_rate",
        start=start,
        end=end,
        value=rounded_rate(fraction(numerator, denominator)),
        numerator=numerator,
        denominator=denominator,
        details={
            "step": value["step"],
            "mean_change": None if mean is None else Decimal(str(mean)),
            "improved": value["improved"],
            "declined": value["declined"],
            "unchanged": value["unchanged"],
        },
    )


HEALTH_KPIS: tuple[HealthKpiDefinition, ...] = (
    HealthKpiDefinition(
        "health_improvement_rate",
        "health score improvement rate",
        "ヘルススコア改善率",
        _(
            "Customers whose health score on the end day is higher than on the start day by at "
            "least the configured step (5 points by default) / customers scored on both days; "
            "with the mean change in points."
        ),
        Unit.RATE,
        health_improvement_rate,
    ),
)
