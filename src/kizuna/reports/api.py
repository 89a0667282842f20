"""KPI endpoints (mounted at /api/v1/kpis): the catalog, one KPI for a period (optionally
broken down by a dimension), its monthly trend, and the time customers spend in each stage.

The onboarding KPIs take the period as a cohort of first start dates and also read
``program`` and ``version``; the other KPIs refuse those two (422 naming them)."""

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
    Population,
    compute_grouped_kpi,
    compute_kpi,
    last_complete_month,
    parse_group_by,
    program_filter,
    resolve_population,
    trend,
)
from kizuna.reports.kpis.population import parse_cohort
from kizuna.reports.kpis.trend import MAX_MONTHS
from kizuna.reports.time_in_stage import time_in_stage

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
    as_of: date | None = None  # the day the dimensions are read on; default each period's start


class ProgramQuery(Schema):
    program: str = ""  # onboarding KPIs only: a program's key
    version: int | None = None  # onboarding KPIs only, with program: a version number


class PeriodQuery(PopulationQuery, ProgramQuery):
    start: date
    end: date
    inactivity_days: int = DEFAULT_INACTIVITY_DAYS  # activity_churn_rate only
    group_by: str = ""  # segment, touch_model, stage or owner: adds ``groups``


class TimeInStageQuery(Schema):
    segment: str = ""  # segment key, as of today
    touch_model: str = ""  # as of today
    cohort: str = ""  # YYYY-MM of the first start date


class TrendQuery(PopulationQuery, ProgramQuery):
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


def _population(query: PopulationQuery) -> Population:
    return resolve_population(
        segment=query.segment,
        touch_model=query.touch_model,
        stage=query.stage,
        owner=query.owner,
        product=query.product,
        cohort=query.cohort,
        as_of=query.as_of,
    )


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
    "/time-in-stage",
    response={200: dict[str, Any], 422: DetailOut},
    summary="Days customers spend in each lifecycle stage (completed and current stays)",
)
def get_time_in_stage(
    request: HttpRequest, query: Query[TimeInStageQuery]
) -> Status[dict[str, Any]]:
    """Per stage: customers, and count, median and mean days of completed and current stays.

    From the stage history; a stay open since the beginning starts on the customer's first
    start date. ``segment`` and ``touch_model`` filter on today's values, ``cohort`` on the
    month of the first start date. Days are numbers (``null`` without stays).
    """
    require(request.user, Capability.VIEW)
    try:
        report = time_in_stage(
            segment=query.segment, touch_model=query.touch_model, cohort=query.cohort
        )
    except KpiInputError as exc:
        return _refused(exc)
    return Status(200, report.as_json())


@router.get(
    "/{kpi_id}",
    response={200: dict[str, Any], 400: DetailOut, 404: DetailOut, 422: DetailOut},
    summary="One KPI for a period, with its numerator and denominator",
)
def get_kpi(request: HttpRequest, kpi_id: str, query: Query[PeriodQuery]) -> Status[dict[str, Any]]:
    """Rates are fractions (``null`` when the denominator is empty); money in the base currency.

    ``inactivity_days`` (1–366, default 14) is the window of ``activity_churn_rate``.
    Segment, touch model, stage and owner are read as of ``as_of`` (default: ``start``) from
    the lifecycle history. ``group_by`` (``segment``, ``touch_model``, ``stage``, ``owner``)
    adds ``group_by``, ``as_of``, ``groups_overlap`` and ``groups``: one entry per group value
    (``key``, ``label``, ``value``, ``numerator``, ``denominator``, ``details``).

    Onboarding KPIs: the customers whose first start date is in ``[start, end)``, judged
    today (or on ``as_of``, which then also reads the dimensions); ``program`` (a key) and
    ``version`` (a number) narrow them to the customers whose first plan is of it.
    """
    require(request.user, Capability.VIEW)
    definition = KPIS.get(kpi_id)
    if definition is None:
        return _unknown(kpi_id)
    names = {"name_en": definition.name_en, "name_ja": definition.name_ja}
    try:
        group_by = parse_group_by(query.group_by)
        population = _population(query)
        program = program_filter(kpi_id, program=query.program, version=query.version)
        if group_by is not None:
            grouped = compute_grouped_kpi(
                kpi_id=kpi_id,
                start=query.start,
                end=query.end,
                population=population,
                group_by=group_by,
                inactivity_days=query.inactivity_days,
                program=program,
            )
            return Status(200, grouped.as_json(**names))
        result = compute_kpi(
            kpi_id=kpi_id,
            start=query.start,
            end=query.end,
            population=population,
            inactivity_days=query.inactivity_days,
            program=program,
        )
    except KpiInputError as exc:
        return _refused(exc)
    return Status(200, result.as_json(**names))


@router.get(
    "/{kpi_id}/trend",
    response={200: dict[str, Any], 400: DetailOut, 404: DetailOut, 422: DetailOut},
    summary="One KPI for each of the last months (period: first day to first day of next month)",
)
def get_kpi_trend(
    request: HttpRequest, kpi_id: str, query: Query[TrendQuery]
) -> Status[dict[str, Any]]:
    """An onboarding KPI gives one point per monthly cohort, every cohort judged today (or
    on ``as_of``)."""
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
            population=_population(query),
            inactivity_days=query.inactivity_days,
            program=program_filter(kpi_id, program=query.program, version=query.version),
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
