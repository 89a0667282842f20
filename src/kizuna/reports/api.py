"""KPI endpoints (mounted at /api/v1/kpis): the catalog, one KPI for a period, its monthly trend."""

from datetime import date
from typing import Any

from django.http import HttpRequest
from ninja import Query, Router, Schema
from ninja.responses import Status

from kizuna.core.access import require
from kizuna.core.roles import Capability
from kizuna.reports.kpis import (
    DEFAULT_INACTIVITY_DAYS,
    KPIS,
    AnyKpi,
    KpiInputError,
    compute_kpi,
    last_complete_month,
    resolve_population,
    trend,
)
from kizuna.reports.kpis.population import parse_cohort
from kizuna.reports.kpis.trend import MAX_MONTHS

router = Router(tags=["kpis"])


class KpiOut(Schema):
    id: str
    name_en: str
    name_ja: str
    unit: str
    description: str


class DetailOut(Schema):
    detail: Any


class PopulationQuery(Schema):
    segment: str = ""
    touch_model: str = ""
    stage: str = ""
    owner: str = ""  # username
    product: str = ""  # product code
    cohort: str = ""  # YYYY-MM


class PeriodQuery(PopulationQuery):
    start: date
    end: date
    inactivity_days: int = DEFAULT_INACTIVITY_DAYS  # activity_churn_rate only


class TrendQuery(PopulationQuery):
    months: int = 12
    end: str = ""  # YYYY-MM, default: the last complete month
    inactivity_days: int = DEFAULT_INACTIVITY_DAYS  # activity_churn_rate only


def _invalid(field: str, message: str) -> Status[dict[str, Any]]:
    """422 in the shape django-ninja gives its own validation errors."""
    return Status(
        422, {"detail": [{"type": "value_error", "loc": ["query", field], "msg": message}]}
    )


def _refused(exc: KpiInputError) -> Status[dict[str, Any]]:
    """A bad parameter is a 422 naming it; a subscription currency without a rate is a 400."""
    if exc.field == "currency":
        return Status(400, {"detail": str(exc)})
    return _invalid(exc.field, exc.message)


def _unknown(kpi_id: str) -> Status[dict[str, Any]]:
    return Status(404, {"detail": f"unknown KPI '{kpi_id}'; known: {', '.join(sorted(KPIS))}"})


def _catalog_entry(definition: AnyKpi) -> dict[str, str]:
    return {
        "id": definition.id,
        "name_en": definition.name_en,
        "name_ja": definition.name_ja,
        "unit": str(definition.unit),
        "description": str(definition.description),
    }


@router.get("", response=list[KpiOut], summary="The KPI catalog")
def list_kpis(request: HttpRequest) -> list[dict[str, str]]:
    require(request.user, Capability.VIEW)
    return [_catalog_entry(definition) for definition in KPIS.values()]


@router.get(
    "/{kpi_id}",
    response={200: dict[str, Any], 400: DetailOut, 404: DetailOut, 422: DetailOut},
    summary="One KPI for a period, with its numerator and denominator",
)
def get_kpi(request: HttpRequest, kpi_id: str, query: Query[PeriodQuery]) -> Status[dict[str, Any]]:
    """Rates are fractions (``null`` when the denominator is empty); money in the base currency.

    ``inactivity_days`` (1–366, default 14) is the window of ``activity_churn_rate``.
    """
    require(request.user, Capability.VIEW)
    definition = KPIS.get(kpi_id)
    if definition is None:
        return _unknown(kpi_id)
    try:
        result = compute_kpi(
            kpi_id=kpi_id,
            start=query.start,
            end=query.end,
            population=resolve_population(
                segment=query.segment,
                touch_model=query.touch_model,
                stage=query.stage,
                owner=query.owner,
                product=query.product,
                cohort=query.cohort,
            ),
            inactivity_days=query.inactivity_days,
        )
    except KpiInputError as exc:
        return _refused(exc)
    return Status(200, result.as_json(name_en=definition.name_en, name_ja=definition.name_ja))


@router.get(
    "/{kpi_id}/trend",
    response={200: dict[str, Any], 400: DetailOut, 404: DetailOut, 422: DetailOut},
    summary="One KPI for each of the last months (period: first day to first day of next month)",
)
def get_kpi_trend(
    request: HttpRequest, kpi_id: str, query: Query[TrendQuery]
) -> Status[dict[str, Any]]:
    require(request.user, Capability.VIEW)
    definition = KPIS.get(kpi_id)
    if definition is None:
        return _unknown(kpi_id)
    try:
        end_month = parse_cohort(query.end) if query.end else last_complete_month()
    except KpiInputError as exc:
        return _invalid("end", exc.message)
    if not 1 <= query.months <= MAX_MONTHS:
        return _invalid("months", f"must be between 1 and {MAX_MONTHS}")
    try:
        points = trend(
            kpi_id,
            months=query.months,
            end_month=end_month,
            population=resolve_population(
                segment=query.segment,
                touch_model=query.touch_model,
                stage=query.stage,
                owner=query.owner,
                product=query.product,
                cohort=query.cohort,
            ),
            inactivity_days=query.inactivity_days,
        )
    except KpiInputError as exc:
        return _refused(exc)
    names = {"name_en": definition.name_en, "name_ja": definition.name_ja}
    return Status(
        200,
        {
            **_catalog_entry(definition),
            "months": query.months,
            "end": end_month.strftime("%Y-%m"),
            "points": [{"month": point.month, **point.result.as_json(**names)} for point in points],
        },
    )
