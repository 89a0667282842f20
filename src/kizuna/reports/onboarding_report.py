"""Reads behind Reports → Onboarding: a cohort month's onboarding KPIs, the milestone funnel
of each program version and the 12 cohorts up to it."""

from dataclasses import dataclass
from datetime import date

from kizuna.onboarding.models import OnboardingPlan
from kizuna.reports.kpis import (
    KPIS,
    KpiResult,
    OnboardingKpiDefinition,
    Population,
    ProgramFilter,
    TrendPoint,
    compute_kpi,
    trend,
)
from kizuna.reports.kpis.population import next_month

# The cards of the page, in the order shown.
CARD_KPIS = (
    "onboarding_completion_rate",
    "initial_usage_rate",
    "initial_outcome_achievement_rate",
    "time_to_first_value",
)
# The KPIs charted cohort by cohort.
TREND_KPIS = ("onboarding_completion_rate", "time_to_first_value")
# How far back the page opens: the cohort whose windows have (mostly) passed.
DEFAULT_MONTHS_BACK = 3


@dataclass(frozen=True, kw_only=True)
class OnboardingReport:
    """One cohort month judged on ``judged_on``; ``months`` are the cohorts up to it, oldest
    first, each with the ``TREND_KPIS``."""

    cohort: date
    judged_on: date
    cards: list[tuple[OnboardingKpiDefinition, KpiResult]]
    funnel: KpiResult
    months: list[tuple[str, dict[str, KpiResult]]]


def default_cohort(today: date) -> date:
    """The first day of the month ``DEFAULT_MONTHS_BACK`` months before ``today``'s."""
    index = today.year * 12 + today.month - 1 - DEFAULT_MONTHS_BACK
    return date(index // 12, index % 12 + 1, 1)


def has_plans() -> bool:
    """Whether any onboarding plan exists at all (else the page explains where they come from)."""
    return OnboardingPlan.objects.exists()


def onboarding_report(
    *,
    cohort: date,
    population: Population,
    judged_on: date,
    program: ProgramFilter | None = None,
    months: int = 12,
) -> OnboardingReport:
    """The cohort's cards and funnel, and the completion rate and time to first value of the
    ``months`` cohorts ending with it — every cohort judged on ``judged_on``.

    Each KPI of a cohort is a few set-based queries (the funnel two); the trend runs them
    once per cohort month, since each month reads the population on its own first day.
    """
    end = next_month(cohort)

    def one(kpi_id: str) -> KpiResult:
        return compute_kpi(
            kpi_id=kpi_id,
            start=cohort,
            end=end,
            population=population,
            program=program,
            judged_on=judged_on,
        )

    cards: list[tuple[OnboardingKpiDefinition, KpiResult]] = []
    for kpi_id in CARD_KPIS:
        definition = KPIS[kpi_id]
        assert isinstance(definition, OnboardingKpiDefinition)
        cards.append((definition, one(kpi_id)))
    series: dict[str, list[TrendPoint]] = {
        kpi_id: trend(
            kpi_id,
            months=months,
            end_month=cohort,
            population=population,
            program=program,
            judged_on=judged_on,
        )
        for kpi_id in TREND_KPIS
    }
    first = series[TREND_KPIS[0]]
    history = [
        (point.month, {kpi_id: series[kpi_id][n].result for kpi_id in TREND_KPIS})
        for n, point in enumerate(first)
    ]
    return OnboardingReport(
        cohort=cohort,
        judged_on=judged_on,
        cards=cards,
        funnel=one("milestone_funnel"),
        months=history,
    )
