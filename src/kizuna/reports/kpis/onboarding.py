"""The onboarding KPIs of KPI.md in the catalog, from ``kizuna.onboarding.kpis``.

The period ``[start, end)`` of an onboarding KPI is a **cohort**: the customers of the
population whose first start date falls in it (a month is ``--start 2026-03-01 --end
2026-04-01``, as for every KPI). The population's segment, touch model, stage and owner are
read on the cohort's first day (or on ``as_of``), like any KPI; the plans, goals and events
are judged on the ``as_of`` the caller passes (today by default). A program filter (a
program, optionally one of its versions) narrows the cohort to the customers whose first plan
of that program (version) exists, so versions can be compared (PDCA).
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, Protocol

from django.db.models import QuerySet
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from kizuna.onboarding import kpis as onboarding
from kizuna.onboarding.models import Program
from kizuna.reports.kpis.population import KpiInputError, Population
from kizuna.reports.kpis.results import KpiResult, Unit, fraction, rounded_rate


@dataclass(frozen=True, kw_only=True)
class ProgramFilter:
    """Plans of one program (``program`` is its key), or of one of its versions."""

    program_id: int
    program: str
    version_id: int | None = None
    version: int | None = None  # the version's number

    def as_json(self) -> dict[str, Any]:
        return {"program": self.program, "version": self.version}


def resolve_program(program: str = "", version: int | str | None = None) -> ProgramFilter | None:
    """A ProgramFilter from a program key and an optional version number (None: neither).

    Raises KpiInputError naming ``program`` (unknown key, or a version without a program) or
    ``version`` (not a whole number, or not a version of that program).
    """
    program = (program or "").strip()
    text = "" if version is None else str(version).strip()
    if not program:
        if text:
            raise KpiInputError("program", "give the program whose version you choose")
        return None
    found = Program.objects.filter(key=program).values_list("pk", flat=True).first()
    if found is None:
        known = ", ".join(Program.objects.order_by("key").values_list("key", flat=True)) or "none"
        raise KpiInputError("program", f"no program with key '{program}' (known: {known})")
    if not text:
        return ProgramFilter(program_id=found, program=program)
    if not text.isdigit() or int(text) < 1:
        raise KpiInputError("version", f"'{text}' is not a version number (1, 2, …)")
    number = int(text)
    version_id = (
        Program.objects.get(pk=found)
        .versions.filter(number=number)
        .values_list("pk", flat=True)
        .first()
    )
    if version_id is None:
        raise KpiInputError("version", f"program '{program}' has no version {number}")
    return ProgramFilter(program_id=found, program=program, version_id=version_id, version=number)


class OnboardingCompute(Protocol):
    def __call__(
        self,
        start: date,
        end: date,
        population: Population,
        as_of: date,
        program: ProgramFilter | None = None,
    ) -> KpiResult: ...


@dataclass(frozen=True)
class OnboardingKpiDefinition:
    """A KPI of a contract-start cohort: ``compute(start, end, population, as_of, program)``
    where ``as_of`` is the day the plans, goals and events are judged on."""

    id: str
    name_en: str
    name_ja: str
    description: Promise
    unit: Unit
    compute: OnboardingCompute


@dataclass(frozen=True, kw_only=True)
class _Scope:
    customers: QuerySet[Any] | None
    program_id: int | None
    version_id: int | None


def _scope(start: date, end: date, population: Population, program: ProgramFilter | None) -> _Scope:
    """The cohort's population subquery and program ids; KpiInputError for what cannot apply."""
    if end <= start:
        raise KpiInputError(
            "end",
            f"{end.isoformat()} must be after start {start.isoformat()} (cohort [start, end))",
        )
    if population.product_id is not None:
        raise KpiInputError(
            "product",
            "the onboarding KPIs count customers by their first start date, not a product's "
            "subscriptions; leave product out",
        )
    customers = (
        population.customers(population.day_for(start)) if population.filters_customers else None
    )
    return _Scope(
        customers=customers,
        program_id=None if program is None else program.program_id,
        version_id=None if program is None else program.version_id,
    )


def _computed(
    compute: Callable[..., onboarding.OnboardingValue],
    start: date,
    end: date,
    population: Population,
    as_of: date,
    program: ProgramFilter | None,
) -> onboarding.OnboardingValue:
    """One onboarding KPI of ``kizuna.onboarding.kpis`` for the cohort's population and program."""
    scope = _scope(start, end, population, program)
    return compute(
        start=start,
        end=end,
        customers=scope.customers,
        program_id=scope.program_id,
        version_id=scope.version_id,
        as_of=as_of,
    )


def _details(value: onboarding.OnboardingValue, program: ProgramFilter | None) -> dict[str, object]:
    details = dict(value.details)
    if program is not None:
        details.update(program.as_json())
    return details


def _rate_result(
    kpi_id: str,
    start: date,
    end: date,
    value: onboarding.OnboardingValue,
    program: ProgramFilter | None,
) -> KpiResult:
    numerator = int(value.numerator or 0)
    denominator = int(value.denominator or 0)
    return KpiResult(
        id=kpi_id,
        start=start,
        end=end,
        value=rounded_rate(fraction(numerator, denominator)),
        numerator=numerator,
        denominator=denominator,
        details=_details(value, program),
    )


def onboarding_completion_rate(
    start: date,
    end: date,
    population: Population,
    as_of: date,
    program: ProgramFilter | None = None,
) -> KpiResult:
    """Cohort customers whose first plan completed within the version's target days (by
    ``as_of``) / cohort customers with a plan."""
    value = _computed(onboarding.onboarding_completion_rate, start, end, population, as_of, program)
    return _rate_result("onboarding_completion_rate", start, end, value, program)


def initial_usage_rate(
    start: date,
    end: date,
    population: Population,
    as_of: date,
    program: ProgramFilter | None = None,
) -> KpiResult:
    """Cohort customers with an active user within 30 days of their first start date / the
    cohort."""
    value = _computed(onboarding.initial_usage_rate, start, end, population, as_of, program)
    return _rate_result("initial_usage_rate", start, end, value, program)


def initial_outcome_achievement_rate(
    start: date,
    end: date,
    population: Population,
    as_of: date,
    program: ProgramFilter | None = None,
) -> KpiResult:
    """Cohort customers that achieved their first success goal by its due date / those that
    set one."""
    value = _computed(
        onboarding.initial_outcome_achievement_rate, start, end, population, as_of, program
    )
    return _rate_result("initial_outcome_achievement_rate", start, end, value, program)


def time_to_first_value(
    start: date,
    end: date,
    population: Population,
    as_of: date,
    program: ProgramFilter | None = None,
) -> KpiResult:
    """Median days from the first start date to the first goal achieved; numerator: the
    customers that reached it, denominator: the cohort."""
    value = _computed(onboarding.time_to_first_value, start, end, population, as_of, program)
    return KpiResult(
        id="time_to_first_value",
        start=start,
        end=end,
        value=None if value.value is None else Decimal(str(value.value)),
        numerator=int(value.numerator or 0),
        denominator=int(value.denominator or 0),
        details=_details(value, program),
    )


def milestone_funnel(
    start: date,
    end: date,
    population: Population,
    as_of: date,
    program: ProgramFilter | None = None,
) -> KpiResult:
    """No single value: ``details.versions`` holds the funnel of each program version with
    plans in the cohort; the denominator is the number of plans."""
    scope = _scope(start, end, population, program)
    funnels = onboarding.milestone_funnels(
        start=start,
        end=end,
        customers=scope.customers,
        program_id=scope.program_id,
        version_id=scope.version_id,
        as_of=as_of,
    )
    plans = sum(funnel.plans for funnel in funnels)
    details: dict[str, object] = {
        "plans": plans,
        "versions": [funnel.as_json() for funnel in funnels],
        "as_of": as_of.isoformat(),
    }
    if program is not None:
        details.update(program.as_json())
    return KpiResult(
        id="milestone_funnel",
        start=start,
        end=end,
        value=None,
        numerator=None,
        denominator=plans,
        details=details,
    )


ONBOARDING_KPIS: tuple[OnboardingKpiDefinition, ...] = (
    OnboardingKpiDefinition(
        "onboarding_completion_rate",
        "onboarding completion rate",
        "導入完了率 / オンボーディング完了率",
        _(
            "Customers of the cohort whose onboarding plan was completed within the program's "
            "target days / customers of the cohort with a plan."
        ),
        Unit.RATE,
        onboarding_completion_rate,
    ),
    OnboardingKpiDefinition(
        "initial_usage_rate",
        "initial usage rate",
        "初期利用率",
        _(
            "Customers of the cohort with at least one active user within 30 days of their "
            "first start date / customers of the cohort."
        ),
        Unit.RATE,
        initial_usage_rate,
    ),
    OnboardingKpiDefinition(
        "initial_outcome_achievement_rate",
        "initial outcome achievement rate",
        "初期成果達成率",
        _(
            "Customers of the cohort that achieved their first success goal by its due date "
            "/ customers of the cohort that set one."
        ),
        Unit.RATE,
        initial_outcome_achievement_rate,
    ),
    OnboardingKpiDefinition(
        "time_to_first_value",
        "time to first value",
        "初期成果到達日数",
        _(
            "Median days from the first start date to the first goal achieved, over the "
            "customers of the cohort that reached it."
        ),
        Unit.DAYS,
        time_to_first_value,
    ),
    OnboardingKpiDefinition(
        "milestone_funnel",
        "milestone funnel",
        "つまずきポイント",
        _(
            "Per milestone of each program version: share of plans that completed it, median "
            "days to complete, share overdue and plans stalled there."
        ),
        Unit.FUNNEL,
        milestone_funnel,
    ),
)
