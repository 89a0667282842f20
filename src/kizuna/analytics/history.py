"""Reading metric history: a customer's daily values from the lake, latest values from the database."""

from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any, NamedTuple

import duckdb
from django.conf import settings

from kizuna.analytics import lake
from kizuna.analytics.models import CustomerMetric, MetricDefinition, MetricKind


def _files_between(start: date, end: date) -> list[str]:
    root = lake.metrics_dir()
    if not root.exists() or end < start:
        return []
    files = []
    for offset in range((end - start).days + 1):
        path = root / (start + timedelta(days=offset)).isoformat() / "metrics.parquet"
        if path.exists():
            files.append(str(path))
    return files


def metric_history(
    customer_id: int, metric_keys: Sequence[str], start: date, end: date
) -> list[dict[str, Any]]:
    """The customer's values of ``metric_keys`` on each computed day of ``[start, end]``.

    One dict per day with a row, in day order: ``{"day": date, key: value, …}``; a metric
    without a value that day is ``None`` (undefined, or the customer was not measured).
    """
    keys = list(dict.fromkeys(metric_keys))
    files = _files_between(start, end)
    if not keys or not files:
        return []
    # DuckDB reads the day files in parallel and skips what the customer filter rules out.
    con = duckdb.connect(config={"threads": settings.KIZUNA_DUCKDB_THREADS})
    try:
        con.execute("SET enable_progress_bar=false")
        rows = con.execute(
            "SELECT day, metric, value FROM read_parquet(?) "
            "WHERE customer_id = ? AND list_contains(?, metric) ORDER BY day",
            [files, customer_id, keys],
        ).fetchall()
    finally:
        con.close()
    by_day: dict[date, dict[str, Any]] = {}
    for day, metric, value in rows:
        entry = by_day.setdefault(day, {"day": day, **dict.fromkeys(keys)})
        entry[metric] = value
    return list(by_day.values())


class LatestMetric(NamedTuple):
    """A metric's latest value for a customer and its value one window earlier."""

    definition: MetricDefinition
    value: float | None
    previous_value: float | None
    as_of: date

    @property
    def change(self) -> float | None:
        """``value / previous_value − 1``; None when either is missing or the previous is 0,
        and for a change metric (whose value already is a change)."""
        if self.definition.kind == MetricKind.WINDOW_CHANGE:
            return None
        if self.value is None or not self.previous_value:
            return None
        return self.value / self.previous_value - 1


def latest_metrics(customer_id: int) -> list[LatestMetric]:
    """The customer's latest value of every active metric computed for it, in display order."""
    rows = (
        CustomerMetric.objects.filter(customer_id=customer_id, metric__is_active=True)
        .select_related("metric")
        .order_by("metric__position", "metric__key")
    )
    return [LatestMetric(row.metric, row.value, row.previous_value, row.as_of) for row in rows]
