"""KPIs month by month: the period of month M is [first day of M, first day of M + 1].

For an onboarding KPI the month is a cohort (the customers whose first start date is in it),
every cohort judged on the same day (today, or the population's ``as_of``).

``end_date`` is the first day without service, so a contract whose last day is the 31st of
March ends on 1 April. Measuring March up to 1 April counts it as churned in March, and
consecutive months chain (one month's end day is the next month's start day): every change
is counted in exactly one month and one month's end MRR is the next month's start MRR.
"""

from datetime import date

from django.utils import timezone

from kizuna.reports.kpis.adoption import UsageKpiDefinition
from kizuna.reports.kpis.catalog import judging_day, kpi_definition
from kizuna.reports.kpis.contracts import ContractTotals, contract_totals_series
from kizuna.reports.kpis.health import HealthKpiDefinition
from kizuna.reports.kpis.onboarding import OnboardingKpiDefinition, ProgramFilter
from kizuna.reports.kpis.population import KpiInputError, Population, next_month
from kizuna.reports.kpis.results import TrendPoint
from kizuna.reports.kpis.usage import (
    ALL_PARTS,
    DEFAULT_INACTIVITY_DAYS,
    UsagePart,
    UsageTotals,
    check_inactivity_days,
    usage_totals_series,
)

MAX_MONTHS = 60


def last_complete_month(*, today: date | None = None) -> date:
    """The first day of the month before ``today``'s (today in the configured time zone)."""
    today = today or timezone.localdate()
    return date(today.year - 1, 12, 1) if today.month == 1 else date(today.year, today.month - 1, 1)


def month_starts(*, months: int, end_month: date) -> list[date]:
    """The first days of ``months`` consecutive months ending with ``end_month``, oldest first."""
    if not 1 <= months <= MAX_MONTHS:
        raise KpiInputError("months", f"must be between 1 and {MAX_MONTHS}, not {months}")
    first = end_month.replace(day=1)
    index = first.year * 12 + first.month - 1 - (months - 1)
    return [date((index + k) // 12, (index + k) % 12 + 1, 1) for k in range(months)]


def monthly_totals(
    *, months: int = 12, end_month: date | None = None, population: Population
) -> list[ContractTotals]:
    """Contract totals of each month, oldest first (one SQL statement for all of them)."""
    firsts = month_starts(months=months, end_month=end_month or last_complete_month())
    return contract_totals_series(days=[*firsts, next_month(firsts[-1])], population=population)


def monthly_usage_totals(
    *,
    months: int = 12,
    end_month: date | None = None,
    population: Population,
    inactivity_days: int = DEFAULT_INACTIVITY_DAYS,
    parts: frozenset[UsagePart] = ALL_PARTS,
) -> list[UsageTotals]:
    """Usage totals of each month, oldest first (each part one pass over the events)."""
    firsts = month_starts(months=months, end_month=end_month or last_complete_month())
    return usage_totals_series(
        days=[*firsts, next_month(firsts[-1])],
        population=population,
        inactivity_days=inactivity_days,
        parts=parts,
    )


def trend(
    kpi_id: str,
    *,
    months: int = 12,
    end_month: date | None = None,
    population: Population,
    inactivity_days: int = DEFAULT_INACTIVITY_DAYS,
    program: ProgramFilter | None = None,
    judged_on: date | None = None,
) -> list[TrendPoint]:
    """A KPI for each of ``months`` months ending with ``end_month`` (default: last complete).

    An onboarding KPI gives one point per monthly cohort, each judged on ``judged_on``
    (default ``judging_day``), optionally for one program (version); any other KPI refuses a
    ``program`` (KpiInputError naming it).
    """
    definition = kpi_definition(kpi_id)
    check_inactivity_days(inactivity_days)
    if isinstance(definition, OnboardingKpiDefinition):
        firsts = month_starts(months=months, end_month=end_month or last_complete_month())
        day = judging_day(population, judged_on)
        return [
            TrendPoint(
                month=first.strftime("%Y-%m"),
                result=definition.compute(first, next_month(first), population, day, program),
            )
            for first in firsts
        ]
    if program is not None:
        raise KpiInputError("program", f"only the onboarding KPIs take a program; not '{kpi_id}'")
    if isinstance(definition, HealthKpiDefinition):
        firsts = month_starts(months=months, end_month=end_month or last_complete_month())
        return [
            TrendPoint(
                month=first.strftime("%Y-%m"),
                result=definition.compute(first, next_month(first), population),
            )
            for first in firsts
        ]
    if isinstance(definition, UsageKpiDefinition):
        usage = monthly_usage_totals(
            months=months,
            end_month=end_month,
            population=population,
            inactivity_days=inactivity_days,
            parts=definition.parts,
        )
        return [
            TrendPoint(month=totals.start.strftime("%Y-%m"), result=definition.compute(totals))
            for totals in usage
        ]
    return [
        TrendPoint(month=totals.start.strftime("%Y-%m"), result=definition.compute(totals))
        for totals in monthly_totals(months=months, end_month=end_month, population=population)
    ]
