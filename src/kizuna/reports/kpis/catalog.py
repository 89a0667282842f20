"""The KPI catalog: each KPI's id, names, definition, unit and how it is computed.

A contract KPI is a function of ``ContractTotals`` (one SQL statement per period), so a
page that shows several KPIs for a period reads the subscriptions once. An adoption KPI
(``adoption.py``) is a function of ``UsageTotals``, which also read the product events. An
onboarding KPI (``onboarding.py``) is computed for the cohort of customers whose first start
date is in ``[start, end)``, judged on a day (today by default), optionally for one program
or program version.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, localcontext

from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from kizuna.reports.kpis.adoption import ADOPTION_KPIS, UsageKpiDefinition
from kizuna.reports.kpis.contracts import ContractTotals, contract_totals
from kizuna.reports.kpis.health import HEALTH_KPIS, HealthKpiDefinition
from kizuna.reports.kpis.onboarding import (
    ONBOARDING_KPIS,
    OnboardingKpiDefinition,
    ProgramFilter,
    resolve_program,
)
from kizuna.reports.kpis.population import KpiInputError, Population
from kizuna.reports.kpis.results import KpiResult, Number, Unit
from kizuna.reports.kpis.results import fraction as _fraction
from kizuna.reports.kpis.results import rounded_rate as _rate
from kizuna.reports.kpis.usage import DEFAULT_INACTIVITY_DAYS, check_inactivity_days, usage_totals

DAYS_PER_MONTH = Decimal(365) / Decimal(12)


@dataclass(frozen=True)
class KpiDefinition:
    id: str
    name_en: str
    name_ja: str
    description: Promise
    unit: Unit
    compute: Callable[[ContractTotals], KpiResult]


def _customer_counts(totals: ContractTotals) -> dict[str, int]:
    return {
        "customers_start": totals.customers_start,
        "churned_customers": totals.churned_customers,
        "retained_customers": totals.retained_customers,
    }


def _mrr_parts(totals: ContractTotals) -> dict[str, object]:
    return {
        "currency": totals.currency,
        "mrr_start": totals.mrr_start,
        "churned_mrr": totals.churned_mrr,
        "contraction_mrr": totals.contraction_mrr,
        "expansion_mrr": totals.expansion_mrr,
        "mrr_end_of_start_customers": totals.mrr_end_of_start_customers,
        "customers_start": totals.customers_start,
    }


def _result(
    kpi_id: str,
    totals: ContractTotals,
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
        details=details,
    )


def logo_churn_rate(totals: ContractTotals) -> KpiResult:
    """Churned customers / customers active on start."""
    value = _rate(_fraction(totals.churned_customers, totals.customers_start))
    return _result(
        "logo_churn_rate",
        totals,
        value,
        totals.churned_customers,
        totals.customers_start,
        {**_customer_counts(totals)},
    )


def logo_retention_rate(totals: ContractTotals) -> KpiResult:
    """1 − logo churn rate; the numerator is the customers active on both days."""
    churn = _rate(_fraction(totals.churned_customers, totals.customers_start))
    return _result(
        "logo_retention_rate",
        totals,
        None if churn is None else 1 - churn,
        totals.retained_customers,
        totals.customers_start,
        {**_customer_counts(totals)},
    )


def mrr_churn_rate(totals: ContractTotals) -> KpiResult:
    """(Churned MRR + contraction MRR) / MRR on start of customers active on start."""
    lost = totals.churned_mrr + totals.contraction_mrr
    return _result(
        "mrr_churn_rate",
        totals,
        _rate(_fraction(lost, totals.mrr_start)),
        lost,
        totals.mrr_start,
        _mrr_parts(totals),
    )


def grr(totals: ContractTotals) -> KpiResult:
    """1 − MRR churn rate; the numerator is start MRR less churned and contraction MRR."""
    lost = totals.churned_mrr + totals.contraction_mrr
    churn = _rate(_fraction(lost, totals.mrr_start))
    return _result(
        "grr",
        totals,
        None if churn is None else 1 - churn,
        totals.mrr_start - lost,
        totals.mrr_start,
        _mrr_parts(totals),
    )


def nrr(totals: ContractTotals) -> KpiResult:
    """MRR on end of customers active on start / their MRR on start (may exceed 1)."""
    return _result(
        "nrr",
        totals,
        _rate(_fraction(totals.mrr_end_of_start_customers, totals.mrr_start)),
        totals.mrr_end_of_start_customers,
        totals.mrr_start,
        _mrr_parts(totals),
    )


def monthly_equivalent_churn(totals: ContractTotals) -> KpiResult:
    """1 − (1 − c)^((365/12) / d) for logo churn rate c over d days; annual uses 365 / d.

    Undefined (None) when no customer is active on start or the period has zero days.
    """
    days = (totals.end - totals.start).days
    churn = _fraction(totals.churned_customers, totals.customers_start)
    monthly = annual = None
    if churn is not None and days > 0:
        with localcontext() as context:
            context.prec = 34
            kept = 1 - churn
            monthly = 1 - kept ** (DAYS_PER_MONTH / days)
            annual = 1 - kept ** (Decimal(365) / days)
    return _result(
        "monthly_equivalent_churn",
        totals,
        _rate(monthly),
        totals.churned_customers,
        totals.customers_start,
        {
            **_customer_counts(totals),
            "days": days,
            "logo_churn_rate": _rate(churn),
            "annual_equivalent": _rate(annual),
        },
    )


def mrr_movements(totals: ContractTotals) -> KpiResult:
    """New, expansion, reactivation, contraction and churned MRR; value = end − start MRR.

    start MRR + new + reactivation + expansion − contraction − churn = end MRR, to the cent.
    """
    return _result(
        "mrr_movements",
        totals,
        totals.mrr_end - totals.mrr_start,
        None,
        None,
        {
            "currency": totals.currency,
            "mrr_start": totals.mrr_start,
            "new_mrr": totals.new_mrr,
            "expansion_mrr": totals.expansion_mrr,
            "reactivation_mrr": totals.reactivation_mrr,
            "contraction_mrr": totals.contraction_mrr,
            "churned_mrr": totals.churned_mrr,
            "mrr_end": totals.mrr_end,
            "customers_start": totals.customers_start,
            "customers_end": totals.customers_end,
            "new_customers": totals.new_customers,
            "reactivated_customers": totals.reactivated_customers,
            "churned_customers": totals.churned_customers,
        },
    )


# Any catalog entry: a contract, adoption (usage), onboarding or health KPI.
AnyKpi = KpiDefinition | UsageKpiDefinition | OnboardingKpiDefinition | HealthKpiDefinition

CONTRACT_KPIS: tuple[KpiDefinition, ...] = (
    KpiDefinition(
        "logo_churn_rate",
        "logo churn rate",
        "チャーンレート(顧客数)",
        _(
            "Customers active on the start day and not on the end day / customers active "
            "on the start day."
        ),
        Unit.RATE,
        logo_churn_rate,
    ),
    KpiDefinition(
        "logo_retention_rate",
        "logo retention rate",
        "顧客維持率",
        _(
            "1 − logo churn rate: customers active on both days / customers active on the "
            "start day."
        ),
        Unit.RATE,
        logo_retention_rate,
    ),
    KpiDefinition(
        "mrr_churn_rate",
        "MRR churn rate (gross)",
        "解約・縮小MRR率",
        _(
            "(Churned MRR + contraction MRR) / MRR on the start day of the customers "
            "active on the start day."
        ),
        Unit.RATE,
        mrr_churn_rate,
    ),
    KpiDefinition(
        "grr",
        "gross revenue retention (GRR)",
        "GRR",
        _("1 − MRR churn rate."),
        Unit.RATE,
        grr,
    ),
    KpiDefinition(
        "nrr",
        "net revenue retention (NRR)",
        "既存顧客売上成長率 / NRR",
        _(
            "MRR on the end day of the customers active on the start day / their MRR on "
            "the start day."
        ),
        Unit.RATE,
        nrr,
    ),
    KpiDefinition(
        "monthly_equivalent_churn",
        "monthly-equivalent churn",
        "月次換算チャーン",
        _(
            "For a period of d days with logo churn rate c: 1 − (1 − c)^((365/12) / d); "
            "the annual equivalent uses 365 / d."
        ),
        Unit.RATE,
        monthly_equivalent_churn,
    ),
    KpiDefinition(
        "mrr_movements",
        "MRR movements",
        "MRR内訳",
        _(
            "New, expansion, reactivation, contraction and churned MRR of the period; "
            "start MRR + movements = end MRR."
        ),
        Unit.MONEY,
        mrr_movements,
    ),
)

_ALL_KPIS: list[AnyKpi] = [*CONTRACT_KPIS, *ADOPTION_KPIS, *ONBOARDING_KPIS, *HEALTH_KPIS]
KPIS: dict[str, AnyKpi] = {definition.id: definition for definition in _ALL_KPIS}


def kpi_definition(kpi_id: str) -> AnyKpi:
    """The catalog entry; KpiInputError naming ``id`` for an unknown KPI."""
    try:
        return KPIS[kpi_id]
    except KeyError:
        raise KpiInputError(
            "id", f"unknown KPI '{kpi_id}'; known: {', '.join(sorted(KPIS))}"
        ) from None


def program_filter(
    kpi_id: str, *, program: str = "", version: int | str | None = None
) -> ProgramFilter | None:
    """The program (version) filter for a KPI; None when neither is given.

    Only the onboarding KPIs read it: for any other KPI a program or version is refused with
    a KpiInputError naming the field given. Otherwise as ``resolve_program``.
    """
    definition = kpi_definition(kpi_id)
    given = "program" if (program or "").strip() else ""
    if not given and version is not None and str(version).strip():
        given = "version"
    if given and not isinstance(definition, OnboardingKpiDefinition):
        raise KpiInputError(
            given,
            f"only the onboarding KPIs ({', '.join(d.id for d in ONBOARDING_KPIS)}) take a "
            f"program or version; '{kpi_id}' does not",
        )
    return resolve_program(program, version)


def judging_day(population: Population, as_of: date | None = None) -> date:
    """The day an onboarding KPI is judged on: ``as_of``, else the population's ``as_of``,
    else today."""
    return as_of or population.as_of or timezone.localdate()


def compute_kpi(
    *,
    kpi_id: str,
    start: date,
    end: date,
    population: Population,
    inactivity_days: int = DEFAULT_INACTIVITY_DAYS,
    program: ProgramFilter | None = None,
    judged_on: date | None = None,
) -> KpiResult:
    """One KPI over [start, end] for the population.

    A contract KPI is one SQL statement; an adoption KPI also reads the events it needs; an
    onboarding KPI reads the plans and goals of the cohort ``[start, end)`` judged on
    ``judged_on`` (default ``judging_day``). ``inactivity_days`` is read by
    ``activity_churn_rate`` only (but checked for all); ``program`` by the onboarding KPIs
    only (KpiInputError naming ``program`` for the others).
    """
    definition = kpi_definition(kpi_id)
    check_inactivity_days(inactivity_days)
    if isinstance(definition, OnboardingKpiDefinition):
        return definition.compute(
            start, end, population, judging_day(population, judged_on), program
        )
    if program is not None:
        raise KpiInputError("program", f"only the onboarding KPIs take a program; not '{kpi_id}'")
    if isinstance(definition, HealthKpiDefinition):
        return definition.compute(start, end, population)
    if isinstance(definition, UsageKpiDefinition):
        totals = usage_totals(
            start=start,
            end=end,
            population=population,
            inactivity_days=inactivity_days,
            parts=definition.parts,
        )
        return definition.compute(totals)
    return definition.compute(contract_totals(start=start, end=end, population=population))
