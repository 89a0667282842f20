"""Contract KPIs of KPI.md: the catalog, the SQL behind it, monthly trends."""

from kizuna.reports.kpis.catalog import KPIS, KpiDefinition, Unit, compute_kpi, kpi_definition
from kizuna.reports.kpis.contracts import ContractTotals, contract_totals
from kizuna.reports.kpis.inputs import parse_day, resolve_population
from kizuna.reports.kpis.population import KpiInputError, Population
from kizuna.reports.kpis.results import KpiResult, TrendPoint
from kizuna.reports.kpis.trend import last_complete_month, monthly_totals, trend

__all__ = [
    "KPIS",
    "ContractTotals",
    "KpiDefinition",
    "KpiInputError",
    "KpiResult",
    "Population",
    "TrendPoint",
    "Unit",
    "compute_kpi",
    "contract_totals",
    "kpi_definition",
    "last_complete_month",
    "monthly_totals",
    "parse_day",
    "resolve_population",
    "trend",
]
