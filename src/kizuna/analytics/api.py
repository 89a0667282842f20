"""REST endpoints of usage analytics (mounted under /api/v1 by kizuna.config.api).

A customer's latest metric values and one metric's daily history, the metric definitions, and
the ingestion totals for operators. Doors only: check the caller's capability, parse the
query, call one selector, shape the answer. Values are plain numbers; a change is a fraction
(``null`` when undefined, KPI.md).
"""

from datetime import date, timedelta
from typing import Any

from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from django.utils import timezone
from ninja import Field, Query, Router, Schema
from ninja.responses import Status

from kizuna.analytics import history, stats
from kizuna.analytics.models import MetricDefinition
from kizuna.analytics.presentation import metric_values
from kizuna.core.access import require
from kizuna.core.roles import Capability
from kizuna.customers.models import Customer

router = Router(tags=["usage"])

DEFAULT_HISTORY_DAYS = 90
MAX_HISTORY_DAYS = 3 * 366 + 1


class DetailOut(Schema):
    detail: Any


class MetricValueOut(Schema):
    key: str
    name: str = Field(description="In the caller's language.")
    kind: str
    value: float | None
    previous_value: float | None = Field(description="The value one window earlier.")
    change: float | None = Field(
        description=(
            "value / previous − 1; null when undefined (no previous value, or 0) and for a "
            "change metric, whose value already is the change."
        )
    )
    as_of: date


class CustomerMetricsOut(Schema):
    customer: int
    metrics: list[MetricValueOut]


class HistoryPointOut(Schema):
    day: date
    value: float | None


class MetricHistoryOut(Schema):
    customer: int
    metric: str
    start: date
    end: date
    points: list[HistoryPointOut] = Field(description="One per day with a computed value.")


class HistoryQuery(Schema):
    start: date | None = Field(
        None, description=f"Default: {DEFAULT_HISTORY_DAYS} days before end."
    )
    end: date | None = Field(None, description="Default: today.")


class MetricDefinitionOut(Schema):
    key: str
    name: str
    name_ja: str
    kind: str
    event_types: list[str] = Field(description="Empty means every event.")
    window_kind: str
    window_days: int
    base_metric: str | None = Field(description="Key of the compared metric (change metrics).")
    is_active: bool
    position: int

    @staticmethod
    def resolve_base_metric(definition: MetricDefinition) -> str | None:
        return definition.base_metric.key if definition.base_metric else None


def _invalid(field: str, message: str) -> Status[dict[str, Any]]:
    """422 in the shape django-ninja gives its own validation errors."""
    return Status(
        422, {"detail": [{"type": "value_error", "loc": ["query", field], "msg": message}]}
    )


@router.get(
    "/customers/{customer_id}/metrics",
    response={200: CustomerMetricsOut, 403: DetailOut, 404: DetailOut},
    summary="A customer's latest metric values with their change vs the previous window",
)
def customer_metrics(request: HttpRequest, customer_id: int) -> dict[str, Any]:
    require(request.user, Capability.VIEW)
    customer = get_object_or_404(Customer, pk=customer_id)
    return {"customer": customer.pk, "metrics": metric_values(history.latest_metrics(customer.pk))}


@router.get(
    "/customers/{customer_id}/metrics/{key}/history",
    response={200: MetricHistoryOut, 403: DetailOut, 404: DetailOut, 422: DetailOut},
    summary="One metric's daily values for a customer (from the lake's metric history)",
)
def customer_metric_history(
    request: HttpRequest, customer_id: int, key: str, query: Query[HistoryQuery]
) -> Status[dict[str, Any]]:
    require(request.user, Capability.VIEW)
    customer = get_object_or_404(Customer, pk=customer_id)
    if not MetricDefinition.objects.filter(key=key).exists():
        return Status(404, {"detail": f"unknown metric '{key}'"})
    end = query.end or timezone.localdate()
    start = query.start or end - timedelta(days=DEFAULT_HISTORY_DAYS - 1)
    if start > end:
        return _invalid("start", "start must not be after end")
    if (end - start).days >= MAX_HISTORY_DAYS:
        return _invalid("start", f"ask for at most {MAX_HISTORY_DAYS} days at a time")
    rows = history.metric_history(customer.pk, [key], start, end)
    points = [{"day": row["day"], "value": row[key]} for row in rows]
    return Status(
        200,
        {
            "customer": customer.pk,
            "metric": key,
            "start": start,
            "end": end,
            "points": points,
        },
    )


@router.get(
    "/metrics",
    response={200: list[MetricDefinitionOut], 403: DetailOut},
    summary="The metric definitions (active and inactive)",
)
def list_metrics(request: HttpRequest) -> list[MetricDefinition]:
    require(request.user, Capability.VIEW)
    return list(MetricDefinition.objects.select_related("base_metric"))


@router.get(
    "/events/stats",
    response={200: dict[str, Any], 403: DetailOut},
    summary="Events received, waiting in the inbox, in the lake, and rejected (by reason)",
)
def events_stats(request: HttpRequest) -> dict[str, Any]:
    require(request.user, Capability.MANAGE_SOURCES)
    return stats.event_stats()
