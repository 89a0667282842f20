"""KPIs of KPI.md: the catalog, the SQL and event queries behind it, monthly trends."""

from kizuna.reports.kpis.adoption import ADOPTION_KPIS, UsageKpiDefinition
from kizuna.reports.kpis.catalog import (
    KPIS,
    AnyKpi,
    KpiDefinition,
    compute_kpi,
    judging_day,
    kpi_definition,
    program_filter,
)
from kizuna.reports.kpis.contracts import ContractTotals, contract_totals
from kizuna.reports.kpis.groups import (
    GroupedKpi,
    KpiGroup,
    compute_grouped_kpi,
    group_labels,
    parse_group_by,
)
from kizuna.reports.kpis.inputs import parse_day, resolve_population
from kizuna.reports.kpis.onboarding import (
    ONBOARDING_KPIS,
    OnboardingKpiDefinition,
    ProgramFilter,
    resolve_program,
)
from kizuna.reports.kpis.population import GroupBy, KpiInputError, Population
from kizuna.reports.kpis.results import KpiResult, TrendPoint, Unit
from kizuna.reports.kpis.trend import (
    last_complete_month,
    monthly_totals,
    monthly_usage_totals,
    trend,
)
from kizuna.reports.kpis.usage import (
    DEFAULT_INACTIVITY_DAYS,
    MAX_INACTIVITY_DAYS,
    UsageTotals,
    usage_totals,
)

__all__ = [
    "ADOPTION_KPIS",
    "DEFAULT_INACTIVITY_DAYS",
    "KPIS",
    "MAX_INACTIVITY_DAYS",
    "ONBOARDING_KPIS",
    "AnyKpi",
    "ContractTotals",
    "GroupBy",
    "GroupedKpi",
    "KpiDefinition",
    "KpiGroup",
    "KpiInputError",
    "KpiResult",
    "OnboardingKpiDefinition",
    "Population",
    "ProgramFilter",
    "TrendPoint",
    "Unit",
    "UsageKpiDefinition",
    "UsageTotals",
    "compute_grouped_kpi",
    "compute_kpi",
    "contract_totals",
    "group_labels",
    "judging_day",
    "kpi_definition",
    "last_complete_month",
    "monthly_totals",
    "monthly_usage_totals",
    "parse_day",
    "parse_group_by",
    "program_filter",
    "resolve_population",
    "resolve_program",
    "trend",
    "usage_totals",
]
