"""Hand-made histories for the risk-signal tests: customers, metric day files, lake events."""

from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from kizuna.analytics import lake
from kizuna.core.models import TimelineEntry
from kizuna.customers.models import Customer, Product, Subscription
from kizuna.health.models import RiskSignal


def d(text: str) -> date:
    return date.fromisoformat(text)


def days(start: date, end: date) -> list[date]:
    """Every day of ``[start, end]``."""
    return [start + timedelta(n) for n in range((end - start).days + 1)]


def customer(name: str, *, start: str = "2025-01-01", end: str | None = None) -> Customer:
    """A customer (external id = name) with one subscription ``[start, end)``."""
    product, _created = Product.objects.get_or_create(code="core", defaults={"name": "Core"})
    who = Customer.objects.create(name=name, external_id=name, first_start_date=d(start))
    Subscription.objects.create(
        customer=who,
        product=product,
        start_date=d(start),
        end_date=d(end) if end else None,
        mrr=Decimal(1000),
    )
    return who


def write_metrics(
    series: dict[int, Callable[[date], float | None]],
    *,
    start: date,
    end: date,
    metric: str = "events_28d",
) -> None:
    """One metric day file per day of ``[start, end]``: ``series[customer](day)`` for each
    (the values of other metrics already written for the day are kept).

    Written straight with pyarrow (no fsync, no compression): a test's lake is a throwaway
    directory, and a year of day files must be quick to write.
    """
    root = lake.metrics_dir()
    for day in days(start, end):
        rows = [(pk, value(day)) for pk, value in series.items()]
        ids = [pk for pk, v in rows if v is not None]
        table = pa.Table.from_pydict(
            {
                "customer_id": ids,
                "metric": [metric] * len(ids),
                "day": [day] * len(ids),
                "value": [float(v) for _pk, v in rows if v is not None],
            },
            schema=lake.METRIC_SCHEMA,
        )
        path = root / day.isoformat() / "metrics.parquet"
        if path.exists():
            earlier = pq.read_table(path, schema=lake.METRIC_SCHEMA)
            earlier = earlier.filter(pc.not_equal(earlier["metric"], metric))
            table = pa.concat_tables([earlier, table])
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path, compression="none")


def rolling(daily: Callable[[date], float], window: int = 28) -> Callable[[date], float]:
    """The rolling ``window``-day sum of a daily rate: what a ``*_28d`` count metric holds."""

    def value(day: date) -> float:
        return float(sum(daily(day - timedelta(n)) for n in range(window)))

    return value


def write_events(rows: Iterable[tuple[str, str, str, date]], stem: str = "import-000001") -> None:
    """Write (account key, user id, event type, day) track events into the lake (10:00 Tokyo)."""
    rows = list(rows)
    times = [datetime(day.year, day.month, day.day, 1, tzinfo=UTC) for *_rest, day in rows]
    count = len(rows)
    table = pa.table(
        {
            "message_id": [f"m-{stem}-{n}" for n in range(count)],
            "origin": ["import:1"] * count,
            "kind": ["track"] * count,
            "event_type": [event_type for _a, _u, event_type, _d in rows],
            "event_time": pa.array(times, pa.timestamp("us", tz="UTC")),
            "received_at": pa.array(times, pa.timestamp("us", tz="UTC")),
            "user_id": [user for _a, user, _e, _d in rows],
            "anonymous_id": [""] * count,
            "account_key": [account for account, _u, _e, _d in rows],
            "event_value": pa.array([None] * count, pa.float64()),
            "feature": [""] * count,
            "properties": ["{}"] * count,
        }
    )
    table = table.append_column("event_date", lake.event_dates(table["event_time"]))
    lake.write_events(lake.conform(table, lake.EVENT_SCHEMA), stem)


def signals(kind: str | None = None) -> list[RiskSignal]:
    found = RiskSignal.objects.order_by("customer_id", "kind", "opened_on", "id")
    return list(found.filter(kind=kind) if kind else found)


def risk_entries(kind: str) -> list[TimelineEntry]:
    return list(TimelineEntry.objects.filter(kind=kind).order_by("occurred_at", "id"))


def snapshot() -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Every signal and risk timeline entry, comparable between two runs (ids left out)."""
    kinds = {s.pk: (s.customer_id, s.kind, s.opened_on) for s in RiskSignal.objects.all()}
    rows = sorted(
        (s.customer_id, s.kind, s.severity, s.opened_on, s.last_seen_on, s.closed_on,
         s.resolution, s.reason, repr(sorted(s.details.items())))
        for s in RiskSignal.objects.all()
    )  # fmt: skip
    entries = sorted(
        (e.customer_id, e.kind, e.occurred_at, e.title, e.body,
         kinds[e.payload["signal_id"]], e.payload["kind"],
         e.payload.get("severity"), e.payload.get("resolution"))
        for e in TimelineEntry.objects.filter(kind__startswith="risk.")
    )  # fmt: skip
    return rows, entries
