"""The metrics engine: the daily history of every metric of every customer, set-based with Ibis.

A metric definition (``MetricDefinition``) counts something in a window ending on the
measured day ``d``: a rolling window of N days, ``(d − N, d]``, or the calendar month to date,
``[1st of d's month, d]``. The history is computed for a whole range of days and the whole
population at once, and the same expression runs on DuckDB and on PySpark.

How, in one pass per range (see ``_chunk_expr``):

1. The usage events of the range (plus the longest window before it) are reduced once to a
   daily aggregate per customer, day, user, feature and event type.
2. Every metric becomes a stream of *changes*: an event counted in a 28-day window adds its
   count on its day and takes it away 28 days later; a user who is active on some days
   enters a distinct-user count on the first day of a run of coverage and leaves N days
   after the last day of it; a subscription adds its seats on its start date and takes them
   away on its end date. All changes are summed per customer and day.
3. A dense grid of customers × days takes the running sum of each stream, which is the
   metric's value on every day, whatever the window. A change metric compares the base
   value with the one N rows (days) earlier on the same grid.

So the cost is one scan of the events plus one sort of the grid, not one query per day or
per customer. Long ranges are cut into chunks of days only to bound memory.

Which rows exist. A customer has a value on day ``d`` when it is *in service* on ``d`` (a
subscription with ``start_date <= d < end_date``, KPI.md) or had at least one usage event in
the metric's window. Counts are then 0 when there was no (qualifying) usage; ``null`` means
undefined: no licensed seats for a seat utilisation, an empty or absent previous window for
a change. A customer neither in service nor using the product has no row at all.
"""

import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Literal

import ibis
import ibis.expr.types as ir
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone

from kizuna.analytics import engine as engines
from kizuna.analytics import lake
from kizuna.analytics.models import (
    CustomerMetric,
    MetricDefinition,
    MetricKind,
    MetricRun,
    WindowKind,
)
from kizuna.customers.models import Customer, Subscription

logger = logging.getLogger(__name__)

Step = Literal["day", "week"]
STEPS: tuple[Step, ...] = ("day", "week")

# (description, days done, days in all)
Progress = Callable[[str, int, int], None]

# Subscription units that count licensed seats (compared case-insensitively). A subscription
# in another unit (a flat fee, GB, API calls) is in service but licenses no seats.
SEAT_UNITS = frozenset(
    {
        "seat",
        "seats",
        "席",
        "user",
        "users",
        "ユーザー",
        "ユーザ",
        "license",
        "licenses",
        "licence",
        "licences",
        "ライセンス",
        "id",
        "ids",
    }
)

# The incremental run never reaches further back than this.
MAX_INCREMENTAL_DAYS = 400

# Customer-days of the grid computed in one chunk: bounds the memory of a long backfill.
CHUNK_CELLS = 2_000_000

EPOCH = date(1970, 1, 1)
VALUE_TYPE = ibis.dtype("decimal(38, 6)")  # exact sums: +x and −x cancel on every engine
SEATS_ARROW_TYPE = pa.decimal128(38, 6)


class MetricDefinitionError(ValueError):
    """A definition that cannot be computed, naming the metric and the field."""

    def __init__(self, key: str, field_name: str, message: str) -> None:
        super().__init__(f"metric {key}: {field_name}: {message}")
        self.key = key
        self.field = field_name
        self.message = message


@dataclass(frozen=True)
class MetricSpec:
    """What the engine needs of a definition (plain values, no ORM)."""

    key: str
    kind: MetricKind
    event_types: tuple[str, ...] = ()
    window_kind: WindowKind = WindowKind.ROLLING
    window_days: int = 28
    base: "MetricSpec | None" = None

    @property
    def calendar(self) -> bool:
        return self.window_kind == WindowKind.CALENDAR_MONTH

    def compare_day(self, day: date) -> date:
        """The day whose value is this metric's "previous window" value for ``day``.

        ``day − N`` for a rolling window (and for a change metric); for a calendar month the
        same day of the previous month (its last day when shorter), i.e. last month to date.
        """
        if self.calendar and self.kind != MetricKind.WINDOW_CHANGE:
            first_of_month = day.replace(day=1)
            previous_last = first_of_month - timedelta(days=1)
            return previous_last.replace(day=min(day.day, previous_last.day))
        return day - timedelta(days=self.window_days)


def spec_of(definition: MetricDefinition, by_id: dict[int, MetricDefinition]) -> MetricSpec:
    """The spec of ``definition`` (``by_id`` holds the definitions a change metric may use)."""
    key = definition.key
    try:
        kind = MetricKind(definition.kind)
    except ValueError:
        raise MetricDefinitionError(key, "kind", f"unknown kind {definition.kind!r}") from None
    try:
        window_kind = WindowKind(definition.window_kind)
    except ValueError:
        raise MetricDefinitionError(
            key, "window_kind", f"unknown window {definition.window_kind!r}"
        ) from None
    event_types = definition.event_types or []
    if not isinstance(event_types, list) or not all(
        isinstance(item, str) and item for item in event_types
    ):
        raise MetricDefinitionError(key, "event_types", "must be a list of event type names")
    days = int(definition.window_days or 0)
    if kind == MetricKind.WINDOW_CHANGE:
        if days < 1:
            raise MetricDefinitionError(key, "window_days", "must be at least 1")
        base_definition = by_id.get(definition.base_metric_id or 0)
        if base_definition is None:
            raise MetricDefinitionError(key, "base_metric", "a change metric needs a base metric")
        if base_definition.kind == MetricKind.WINDOW_CHANGE:
            raise MetricDefinitionError(
                key, "base_metric", "the base of a change metric cannot be a change metric"
            )
        base = spec_of(base_definition, by_id)
        return MetricSpec(key, kind, (), WindowKind.ROLLING, days, base)
    if window_kind == WindowKind.ROLLING and days < 1:
        raise MetricDefinitionError(key, "window_days", "must be at least 1")
    return MetricSpec(
        key,
        kind,
        tuple(sorted(set(event_types))),
        window_kind,
        days if window_kind == WindowKind.ROLLING else 0,
    )


def metric_specs(definitions: Iterable[MetricDefinition]) -> list[MetricSpec]:
    """Specs of ``definitions``, in order; raises ``MetricDefinitionError`` for a bad one."""
    wanted = list(definitions)
    by_id = {definition.pk: definition for definition in wanted}
    missing_bases = {
        definition.base_metric_id
        for definition in wanted
        if definition.base_metric_id and definition.base_metric_id not in by_id
    }
    if missing_bases:
        by_id.update(MetricDefinition.objects.in_bulk(list(missing_bases)))
    return [spec_of(definition, by_id) for definition in wanted]


def measured_days(start: date, end: date, step: Step = "day") -> list[date]:
    """The days a run measures: every day, or every 7th day counting back from ``end``."""
    if end < start:
        raise ValueError("end must not be before start")
    if step not in STEPS:
        raise ValueError(f"step must be one of {', '.join(STEPS)}")
    every = 1 if step == "day" else 7
    count = (end - start).days // every + 1
    return [end - timedelta(days=every * k) for k in reversed(range(count))]


# ---------------------------------------------------------------------------------------------
# Streams: every metric is the running sum of one or two streams of changes.


@dataclass(frozen=True)
class _Stream:
    source: Literal["events", "values", "days", "users", "features"]
    event_types: tuple[str, ...]
    calendar: bool
    days: int  # rolling window length (0 for a calendar month)

    @property
    def distinct(self) -> bool:
        return self.source in ("users", "features")

    @property
    def decimal(self) -> bool:
        return self.source == "values"

    @property
    def lookback(self) -> int:
        """Days before the grid's first day whose events still count on it (month: ≤ 30)."""
        return 30 if self.calendar else self.days - 1


_SOURCE_OF_KIND: dict[MetricKind, Literal["events", "values", "days", "users", "features"]] = {
    MetricKind.EVENT_COUNT: "events",
    MetricKind.VALUE_SUM: "values",
    MetricKind.ACTIVE_DAYS: "days",
    MetricKind.ACTIVE_USERS: "users",
    MetricKind.FEATURE_BREADTH: "features",
    MetricKind.SEAT_UTILISATION: "users",
}


def _main_stream(spec: MetricSpec) -> _Stream:
    return _Stream(_SOURCE_OF_KIND[spec.kind], spec.event_types, spec.calendar, spec.window_days)


def _presence_stream(spec: MetricSpec) -> _Stream:
    """Any usage event in the metric's window (a customer out of service then still has a row)."""
    return _Stream("events", (), spec.calendar, spec.window_days)


@dataclass
class _Plan:
    """The streams and output columns of a set of metrics (one per base, shared when equal)."""

    specs: list[MetricSpec]
    streams: dict[_Stream, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for spec in self._computed():
            for stream in (_main_stream(spec), _presence_stream(spec)):
                self.streams.setdefault(stream, f"s{len(self.streams)}")

    def _computed(self) -> list[MetricSpec]:
        """Every spec whose value the grid needs: the outputs and the bases of change metrics."""
        seen: dict[str, MetricSpec] = {}
        for spec in self.specs:
            base = spec.base if spec.kind == MetricKind.WINDOW_CHANGE else spec
            assert base is not None
            seen.setdefault(base.key, base)
        return list(seen.values())

    @property
    def change_lag(self) -> int:
        """Days before the first measured day the grid must start, for change metrics."""
        return max(
            (spec.window_days for spec in self.specs if spec.kind == MetricKind.WINDOW_CHANGE),
            default=0,
        )

    @property
    def lookback(self) -> int:
        return max((stream.lookback for stream in self.streams), default=0)


def _dn(day: date) -> int:
    return (day - EPOCH).days


def _month_key(day: date) -> int:
    return day.year * 12 + day.month - 1


def _daily(con: ibis.BaseBackend, first: date, last: date) -> ir.Table:
    """Usage events of known customers in ``[first, last]``, one row per customer, day, user,
    feature and event type, with the count and the exact sum of ``event_value``."""
    events = engines.usage_events(con, first, last)
    events = events.filter(events.customer_id.notnull())
    daily = events.group_by(
        ["customer_id", "event_date", "user_key", "feature", "event_type"]
    ).aggregate(n=events.count(), v=events.event_value.cast(VALUE_TYPE).sum())
    return daily.select(
        customer_id=daily.customer_id.cast("int64"),
        dn=daily.event_date.epoch_days().cast("int64"),
        mk=(daily.event_date.year() * 12 + daily.event_date.month() - 1).cast("int64"),
        user_key=daily.user_key,
        feature=daily.feature,
        event_type=daily.event_type,
        n=daily.n.cast("int64"),
        v=ibis.coalesce(daily.v, ibis.literal(0).cast(VALUE_TYPE)),
    )


def _stream_changes(daily: ir.Table, stream: _Stream, g0: int, month_start: int) -> ir.Table:
    """``(customer_id, dn, x)``: the changes of one stream (before clamping to the grid)."""
    rows = daily
    if stream.event_types:
        rows = rows.filter(rows.event_type.isin(list(stream.event_types)))
    rows = rows.filter(rows.dn >= (month_start if stream.calendar else g0 - stream.lookback))
    if not stream.distinct:
        if stream.source == "days":
            per_day = rows.select("customer_id", "dn").distinct()
            per_day = per_day.mutate(x=ibis.literal(1).cast("int64"))
        else:
            per_day = rows.group_by(["customer_id", "dn"]).aggregate(
                x=rows.v.sum() if stream.source == "values" else rows.n.sum()
            )
        if stream.calendar:
            return per_day
        leaving = per_day.select(
            customer_id=per_day.customer_id, dn=per_day.dn + stream.days, x=-per_day.x
        )
        return per_day.union(leaving, distinct=False)

    key = "user_key" if stream.source == "users" else "feature"
    active = rows.filter(rows[key].notnull()).select("customer_id", key, "dn", "mk").distinct()
    one = ibis.literal(1).cast("int64")
    if stream.calendar:
        first = active.group_by(["customer_id", key, "mk"]).aggregate(dn=active.dn.min())
        return first.select(customer_id=first.customer_id, dn=first.dn, x=one)
    # A user counts on days [a, a + N) after an active day a; runs of overlapping coverage
    # enter once (a gap of more than N days since the previous active day) and leave N days
    # after their last active day (more than N days before the next one).
    window = ibis.window(group_by=[active.customer_id, active[key]], order_by=active.dn)
    marked = active.mutate(
        previous=active.dn.lag().over(window), following=active.dn.lead().over(window)
    )
    entering = marked.filter(
        marked.previous.isnull() | (marked.dn - marked.previous > stream.days)
    ).select(customer_id=marked.customer_id, dn=marked.dn, x=one)
    leaving = marked.filter(
        marked.following.isnull() | (marked.following - marked.dn > stream.days)
    ).select(customer_id=marked.customer_id, dn=marked.dn + stream.days, x=-one)
    return entering.union(leaving, distinct=False)


def _subscription_changes(first: date, last: date) -> pa.Table:
    """``(customer_id, dn, in_service, seats)``: +1 and +seats on a subscription's start date,
    −1 and −seats on its end date (the first day without service), for subscriptions in
    service at some time in ``[first, last]``."""
    rows = list(
        Subscription.objects.filter(start_date__lte=last)
        .exclude(end_date__lte=first)
        .values_list("customer_id", "start_date", "end_date", "quantity", "unit")
    )
    customers = pa.array([row[0] for row in rows], pa.int64())
    starts = pa.array([_dn(row[1]) for row in rows], pa.int64())
    ends = pa.array([_dn(row[2]) if row[2] else None for row in rows], pa.int64())
    seat_flags = np.array([(row[4] or "").strip().lower() in SEAT_UNITS for row in rows], bool)
    quantities = pa.array([row[3] for row in rows], SEATS_ARROW_TYPE)
    zero = pa.scalar(0, SEATS_ARROW_TYPE)
    seats = pc.if_else(pa.array(seat_flags, pa.bool_()), quantities, zero)
    has_end = pc.is_valid(ends)
    entering = pa.table(
        {
            "customer_id": customers,
            "dn": starts,
            "in_service": pa.array(np.ones(len(rows), np.int64)),
            "seats": seats,
        }
    )
    leaving = pa.table(
        {
            "customer_id": customers.filter(has_end),
            "dn": ends.filter(has_end),
            "in_service": pa.array(-np.ones(len(rows), np.int64)).filter(has_end),
            "seats": pc.negate(seats).filter(has_end),
        }
    )
    return pa.concat_tables([entering, leaving])


def _calendar(first: date, last: date, measured: Sequence[date]) -> pa.Table:
    days = [first + timedelta(days=k) for k in range((last - first).days + 1)]
    wanted = set(measured)
    return pa.table(
        {
            "dn": pa.array([_dn(day) for day in days], pa.int64()),
            "mk": pa.array([_month_key(day) for day in days], pa.int64()),
            "measured": pa.array([day in wanted for day in days], pa.bool_()),
        }
    )


def _output(index: int) -> tuple[str, str]:
    return f"v{index}", f"p{index}"


def _chunk_expr(
    con: ibis.BaseBackend,
    plan: _Plan,
    daily: ir.Table,
    subscriptions: pa.Table,
    measured: Sequence[date],
) -> ir.Table:
    """The wide history of ``measured`` days: customer_id, dn, then per spec ``v<i>`` (value)
    and ``p<i>`` (whether the customer has a row), only rows with at least one, by day."""
    first_day = measured[0] - timedelta(days=plan.change_lag)
    g0, g1 = _dn(first_day), _dn(measured[-1])
    month_start = _dn(first_day.replace(day=1))
    columns = list(plan.streams.values())
    types = {
        name: VALUE_TYPE if stream.decimal else ibis.dtype("int64")
        for stream, name in plan.streams.items()
    }
    types["in_service"] = ibis.dtype("int64")
    types["seats"] = VALUE_TYPE
    every = [*columns, "in_service", "seats"]

    def zero(name: str) -> ir.Value:
        return ibis.literal(0).cast(types[name])

    # All changes in one long table: stream number k, an integer change n, a decimal one v.
    subscriptions_k = len(columns)
    no_count = ibis.literal(0).cast("int64")
    no_value = ibis.literal(0).cast(VALUE_TYPE)
    parts: list[ir.Table] = []
    for k, stream in enumerate(plan.streams):
        changes = _stream_changes(daily, stream, g0, month_start)
        parts.append(
            changes.select(
                customer_id=changes.customer_id,
                dn=changes.dn,
                k=ibis.literal(k).cast("int64"),
                n=no_count if stream.decimal else changes.x.cast("int64"),
                v=changes.x.cast(VALUE_TYPE) if stream.decimal else no_value,
            )
        )
    subs = ibis.memtable(subscriptions)
    parts.append(
        subs.select(
            customer_id=subs.customer_id,
            dn=subs.dn,
            k=ibis.literal(subscriptions_k).cast("int64"),
            n=subs.in_service.cast("int64"),
            v=subs.seats.cast(VALUE_TYPE),
        )
    )
    changes = parts[0]
    for part in parts[1:]:
        changes = changes.union(part, distinct=False)
    # A change before the grid's first day counts from that day; one after its last, never.
    changes = changes.mutate(dn=ibis.greatest(changes.dn, g0)).filter(lambda t: t.dn <= g1)
    sums: dict[str, ir.Value] = {}
    for k, (stream, name) in enumerate(plan.streams.items()):
        source = changes.v if stream.decimal else changes.n
        sums[name] = source.sum(where=changes.k == k)
    sums["in_service"] = changes.n.sum(where=changes.k == subscriptions_k)
    sums["seats"] = changes.v.sum(where=changes.k == subscriptions_k)
    per_day = changes.group_by(["customer_id", "dn"]).aggregate(**sums)
    calendar = ibis.memtable(_calendar(first_day, measured[-1], measured))
    customers = per_day.select("customer_id").distinct()
    grid = customers.cross_join(calendar)
    joined = grid.left_join(
        per_day, [grid.customer_id == per_day.customer_id, grid.dn == per_day.dn]
    )
    grid = joined.select(
        customer_id=grid.customer_id,
        dn=grid.dn,
        mk=grid.mk,
        measured=grid.measured,
        **{column: ibis.coalesce(per_day[column], zero(column)) for column in every},
    )
    # Running sums: the value of every stream on every day.
    totals = {}
    for column in every:
        stream = next((s for s, name in plan.streams.items() if name == column), None)
        by = ["customer_id", "mk"] if stream is not None and stream.calendar else ["customer_id"]
        totals[column] = grid[column].cumsum(group_by=by, order_by=grid.dn)
    running = grid.select("customer_id", "dn", "measured", **totals)

    in_service = running.in_service > 0
    values: dict[str, ir.Value] = {}
    present: dict[str, ir.Value] = {}
    for spec in plan._computed():
        main = running[plan.streams[_main_stream(spec)]]
        present[spec.key] = in_service | (running[plan.streams[_presence_stream(spec)]] > 0)
        if spec.kind == MetricKind.SEAT_UTILISATION:
            seats = running.seats.cast("float64")
            values[spec.key] = ibis.ifelse(
                running.seats > 0, main.cast("float64") / seats.nullif(0.0), ibis.null("float64")
            )
        else:
            values[spec.key] = main.cast("float64")
    base_columns = {f"b_{key}": value for key, value in values.items()}
    base_columns |= {f"bp_{key}": flag for key, flag in present.items()}
    based = running.select("customer_id", "dn", "measured", **base_columns)

    window = ibis.window(group_by=based.customer_id, order_by=based.dn)
    outputs: dict[str, ir.Value] = {}
    for index, spec in enumerate(plan.specs):
        value_name, present_name = _output(index)
        if spec.kind == MetricKind.WINDOW_CHANGE:
            assert spec.base is not None
            now = based[f"b_{spec.base.key}"]
            before = based[f"b_{spec.base.key}"].lag(spec.window_days).over(window)
            was_there = based[f"bp_{spec.base.key}"].lag(spec.window_days).over(window)
            defined = was_there.fill_null(False) & before.notnull() & (before != 0)
            outputs[value_name] = ibis.ifelse(
                defined & now.notnull(), now / before.nullif(0.0) - 1, ibis.null("float64")
            )
            outputs[present_name] = based[f"bp_{spec.base.key}"]
        else:
            outputs[value_name] = based[f"b_{spec.key}"]
            outputs[present_name] = based[f"bp_{spec.key}"]
    wide = based.select("customer_id", "dn", "measured", **outputs)
    any_present = ibis.literal(False)
    for index in range(len(plan.specs)):
        any_present = any_present | wide[_output(index)[1]]
    wide = wide.filter(wide.measured & any_present).drop("measured")
    return wide.order_by(["dn", "customer_id"])


# ---------------------------------------------------------------------------------------------
# Running: chunks of days, long rows per day.


def _chunks(days: list[date], *, lookback: int, customers: int, cells: int) -> Iterator[list[date]]:
    """Consecutive runs of ``days`` whose grid stays near ``cells`` customer-days."""
    span = max(31, cells // max(1, customers) - lookback)
    chunk: list[date] = []
    for day in days:
        if chunk and (day - chunk[0]).days >= span:
            yield chunk
            chunk = []
        chunk.append(day)
    if chunk:
        yield chunk


def _long_days(
    wide: pa.Table, specs: Sequence[MetricSpec], days: Sequence[date]
) -> Iterator[tuple[date, pa.Table]]:
    """Each of ``days`` with its rows in METRIC_SCHEMA (by metric, then customer)."""
    per_metric: list[tuple[str, pa.Table, np.ndarray]] = []
    for index, spec in enumerate(specs):
        value_name, present_name = _output(index)
        rows = wide.select(["customer_id", "dn", value_name]).filter(wide[present_name])
        day_numbers = rows["dn"].to_numpy()
        per_metric.append((spec.key, rows, day_numbers))
    for day in days:
        number = _dn(day)
        parts = []
        for key, rows, day_numbers in per_metric:
            begin = int(np.searchsorted(day_numbers, number, side="left"))
            stop = int(np.searchsorted(day_numbers, number, side="right"))
            part = rows.slice(begin, stop - begin)
            size = part.num_rows
            parts.append(
                pa.table(
                    {
                        "customer_id": part["customer_id"],
                        "metric": pa.DictionaryArray.from_arrays(
                            pa.array(np.zeros(size, np.int32)), pa.array([key])
                        ),
                        "day": pa.array(np.full(size, number, np.int32)).cast(pa.date32()),
                        "value": part.column(2),
                    }
                )
            )
        table = (
            pa.concat_tables(parts).cast(
                pa.schema(
                    [
                        ("customer_id", pa.int64()),
                        ("metric", pa.string()),
                        ("day", pa.date32()),
                        ("value", pa.float64()),
                    ]
                )
            )
            if parts
            else lake.METRIC_SCHEMA.empty_table()
        )
        yield day, table


def _definitions(keys: Iterable[str] | None = None) -> list[MetricDefinition]:
    definitions = MetricDefinition.objects.filter(is_active=True).order_by("position", "key")
    if keys is not None:
        definitions = definitions.filter(key__in=list(keys))
    return list(definitions)


@contextmanager
def _materialised(con: ibis.BaseBackend, expr: ir.Table) -> Iterator[ir.Table]:
    """``expr`` computed once into a temporary table, dropped afterwards."""
    if con.name != "duckdb":
        # PySpark's cache runs the SQL without registering the in-memory tables it names.
        con._run_pre_execute_hooks(expr)
        cached = expr.cache()
        try:
            yield cached
        finally:
            cached.release()
        return
    # Not ``expr.cache()`` on DuckDB: ibis 12 under sqlglot 30 drops it with a nameless DROP.
    name = f"kizuna_daily_{uuid.uuid4().hex}"
    table = con.create_table(name, expr, temp=True)
    try:
        yield table
    finally:
        con.raw_sql(f'DROP TABLE IF EXISTS "{name}"')


def _history(
    con: ibis.BaseBackend,
    specs: list[MetricSpec],
    days: list[date],
    *,
    cells: int = CHUNK_CELLS,
    progress: Progress | None = None,
) -> Iterator[tuple[date, pa.Table]]:
    plan = _Plan(specs)
    customers = Customer.objects.count()
    done = 0
    for chunk in _chunks(days, lookback=plan.lookback + plan.change_lag, customers=customers,
                         cells=cells):
        if progress:
            progress(f"{chunk[0]} – {chunk[-1]}: computing", done, len(days))
        first_day = chunk[0] - timedelta(days=plan.change_lag)
        events_from = min(first_day.replace(day=1), first_day - timedelta(days=plan.lookback))
        subscriptions = _subscription_changes(first_day, chunk[-1])
        with _materialised(con, _daily(con, events_from, chunk[-1])) as daily:
            wide = _chunk_expr(con, plan, daily, subscriptions, chunk).to_pyarrow()
        for day, table in _long_days(wide, specs, chunk):
            yield day, table
            done += 1
            if progress:
                progress(f"{chunk[0]} – {chunk[-1]}: writing", done, len(days))


def compute_history(
    con: ibis.BaseBackend,
    definitions: Iterable[MetricDefinition],
    start: date,
    end: date,
    step: Step = "day",
) -> pa.Table:
    """The history of ``definitions`` for the days of ``[start, end]`` (METRIC_SCHEMA rows:
    customer_id, metric, day, value), computed on ``con`` without writing anything."""
    specs = metric_specs(definitions)
    days = measured_days(start, end, step)
    if not specs:
        return lake.METRIC_SCHEMA.empty_table()
    return pa.concat_tables(table for _day, table in _history(con, specs, days))


@dataclass(frozen=True)
class MetricRunResult:
    """What a metrics run computed and wrote."""

    run_id: int
    start: date
    end: date
    engine: str
    step: str
    metrics: tuple[str, ...]
    days: int
    rows: int
    customers_updated: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "engine": self.engine,
            "step": self.step,
            "metrics": list(self.metrics),
            "days": self.days,
            "rows": self.rows,
            "customers_updated": self.customers_updated,
            "seconds": round(self.seconds, 3),
        }


def run_metrics(
    start: date,
    end: date,
    engine: engines.Engine | None = None,
    step: Step = "day",
    progress: Progress | None = None,
    *,
    cells: int = CHUNK_CELLS,
) -> MetricRunResult:
    """Compute every active metric for the days of ``[start, end]`` and store the results.

    Each measured day's history replaces that day's file in the lake, so a rerun gives the
    same files. When ``end`` is the latest day computed so far, each customer's latest values
    (``CustomerMetric``: the value on ``end`` and the one on the metric's compare day) are
    replaced too; a backfill of older days leaves them alone. Records a ``MetricRun``.
    """
    began = time.perf_counter()
    engine = engine or engines.default_engine()
    definitions = _definitions()
    specs = metric_specs(definitions)
    days = measured_days(start, end, step)
    rows = 0
    last_day: pa.Table | None = None
    if specs:
        with engines.session(engine) as con:
            for day, table in _history(con, specs, days, cells=cells, progress=progress):
                lake.write_metric_day(table, day)
                rows += table.num_rows
                if day == end:
                    last_day = table
    if progress:
        progress("latest values", len(days), len(days))
    updated = 0
    if last_day is not None:
        updated = _update_latest(definitions, specs, last_day, end)
    seconds = time.perf_counter() - began
    run = MetricRun.objects.create(
        start=start, end=end, engine=engine, rows=rows, seconds=seconds
    )
    logger.info("metrics %s–%s on %s: %s rows in %.1f s", start, end, engine, rows, seconds)
    return MetricRunResult(
        run_id=run.pk,
        start=start,
        end=end,
        engine=engine,
        step=step,
        metrics=tuple(spec.key for spec in specs),
        days=len(days),
        rows=rows,
        customers_updated=updated,
        seconds=seconds,
    )


def _history_of_day(day: date, keys: Sequence[str]) -> pa.Table:
    path = lake.metrics_dir() / day.isoformat() / "metrics.parquet"
    if not path.exists():
        return lake.METRIC_SCHEMA.empty_table()
    return pq.read_table(path, filters=[("metric", "in", list(keys))])


def _update_latest(
    definitions: Sequence[MetricDefinition],
    specs: Sequence[MetricSpec],
    last_day: pa.Table,
    end: date,
) -> int:
    """Replace ``CustomerMetric`` with the values on ``end`` unless later ones are stored."""
    ids = [definition.pk for definition in definitions]
    newest = CustomerMetric.objects.filter(metric_id__in=ids).aggregate(newest=Max("as_of"))
    if newest["newest"] is not None and newest["newest"] > end:
        return 0
    compare_days: dict[date, list[str]] = {}
    for spec in specs:
        compare_days.setdefault(spec.compare_day(end), []).append(spec.key)
    previous_parts = []
    for day, keys in compare_days.items():
        earlier = _history_of_day(day, keys)
        previous_parts.append(earlier.select(["customer_id", "metric", "value"]))
    previous = pa.concat_tables(previous_parts).rename_columns(
        ["customer_id", "metric", "previous_value"]
    )
    latest = last_day.select(["customer_id", "metric", "value"]).join(
        previous, keys=["customer_id", "metric"], join_type="left outer"
    )
    id_of = {definition.key: definition.pk for definition in definitions}
    metric_ids = pa.array([id_of[key] for key in latest["metric"].to_pylist()], pa.int64())
    rows = zip(
        latest["customer_id"].to_pylist(),
        metric_ids.to_pylist(),
        [end] * latest.num_rows,
        latest["value"].to_pylist(),
        latest["previous_value"].to_pylist(),
        strict=True,
    )
    table = connection.ops.quote_name(CustomerMetric._meta.db_table)
    sql = (
        f"INSERT INTO {table} (customer_id, metric_id, as_of, value, previous_value) "  # noqa: S608 - our table name
        "VALUES (%s, %s, %s, %s, %s) "
        "ON CONFLICT (customer_id, metric_id) DO UPDATE SET as_of = excluded.as_of, "
        "value = excluded.value, previous_value = excluded.previous_value"
    )
    with transaction.atomic():
        # Customers that lost their row on ``end`` (out of service, no usage) lose the value.
        CustomerMetric.objects.filter(metric_id__in=ids, as_of__lt=end).delete()
        with connection.cursor() as cursor:
            cursor.executemany(sql, list(rows))
    return len(set(latest["customer_id"].to_pylist()))


def incremental_range(today: date | None = None) -> tuple[date, date]:
    """The days the nightly run computes: ``[start, today]`` in the company's time zone.

    ``start`` is the last day any run reached (recomputed: that run may have ended before the
    day did), or earlier when event files for earlier days arrived since (a bulk import of
    past events); without any run, the first day of the lake. Never more than
    ``MAX_INCREMENTAL_DAYS`` back.
    """
    today = today or timezone.localdate()
    floor = today - timedelta(days=MAX_INCREMENTAL_DAYS)
    last = MetricRun.objects.order_by("-end", "-id").first()
    folders = _event_folders()
    if last is None:
        start = min(folders, default=today)
    else:
        start = min(last.end, today)
        since = (last.created_at - timedelta(seconds=last.seconds)).timestamp()
        late = [
            day
            for day, path in folders.items()
            if day < start and any(file.stat().st_mtime >= since for file in path.glob("*.parquet"))
        ]
        start = min([start, *late])
    return max(start, floor), today


def _event_folders() -> dict[date, Any]:
    root = lake.events_dir()
    folders = {}
    if root.exists():
        for path in root.iterdir():
            try:
                folders[date.fromisoformat(path.name)] = path
            except ValueError:
                continue
    return folders


def run_incremental(engine: engines.Engine | None = None) -> MetricRunResult:
    """The nightly run: every day since the last run (see ``incremental_range``)."""
    start, end = incremental_range()
    return run_metrics(start, end, engine=engine)


def last_run() -> MetricRun | None:
    """The run that reached the latest day (for status pages)."""
    return MetricRun.objects.order_by("-end", "-id").first()


__all__ = [
    "SEAT_UNITS",
    "MetricDefinitionError",
    "MetricRunResult",
    "MetricSpec",
    "compute_history",
    "incremental_range",
    "last_run",
    "measured_days",
    "metric_specs",
    "run_incremental",
    "run_metrics",
]
