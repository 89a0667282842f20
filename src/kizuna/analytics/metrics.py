"""The metrics engine: the daily history of every metric of every customer, set-based with Ibis.

A metric definition (``MetricDefinition``) counts something in a window ending on the
measured day ``d``: a rolling window of N days, ``(d − N, d]``, or the calendar month to date,
``[1st of d's month, d]``. The history is computed for a whole range of days and the whole
population at once, and the same expression runs on DuckDB and on PySpark.

How (see ``_history``), for a whole range of days at once:

1. The engine (Ibis on DuckDB or PySpark) reads the usage events of the range plus the
   longest window before it in a few grouped scans: per customer and day, the number of
   events and the exact sum of ``event_value`` of each event-type filter; and for distinct
   counts (users, features), the days each key was active, where one window function per key
   finds when it enters and leaves each count. A user counts on the N days after each of its
   active days, so a run of overlapping coverage enters once and leaves N days after its
   last active day; in a calendar month it enters on its first active day of the month.
2. Every metric is then the running sum of a stream of *changes* on a dense customers × days
   grid: a day's events enter a 28-day window on their day and leave it 28 days later; a
   subscription adds its seats on its start date and takes them away on its end date. The
   running sums are exact integer prefix sums in numpy (by chunks of days, to bound memory),
   so the result is the same whichever engine gave the changes. A change metric compares the
   base value with the one N days earlier on the same grid.

So the cost is a few scans of the events plus a prefix sum of the grid, never one query per
day or per customer. (Running sums as SQL window functions were measured first: DuckDB's
framed SUMs took over 20 s on a 1.7M-cell grid where numpy takes a fraction of a second.)

Which rows exist. A customer has a value on day ``d`` when it is *in service* on ``d`` (a
subscription with ``start_date <= d < end_date``, KPI.md) or had at least one usage event in
the metric's window. Counts are then 0 when there was no (qualifying) usage; ``null`` means
undefined: no licensed seats for a seat utilisation, an empty or absent previous window for
a change. A customer neither in service nor using the product has no row at all.
"""

import itertools
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
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
    UsageSettings,
    WindowKind,
)
from kizuna.customers.models import Subscription

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
CHUNK_CELLS = 500_000

EPOCH = date(1970, 1, 1)
# Event values are summed as integer thousandths (exact, so every engine gives the same sums);
# seats as integer millionths.
VALUE_UNITS = 1_000
MICRO = 1_000_000
WRITERS = 2  # threads writing metric history files
MAX_VALUE = 1e12  # larger (or non-finite) event values count as missing: sums cannot overflow


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


# Kinds that count *active* users or days: without event types of their own they follow the
# company's qualifying event types (UsageSettings, KPI.md "a user is active on day d").
ACTIVITY_KINDS = frozenset(
    {MetricKind.ACTIVE_USERS, MetricKind.ACTIVE_DAYS, MetricKind.SEAT_UTILISATION}
)


def spec_of(
    definition: MetricDefinition,
    by_id: dict[int, MetricDefinition],
    qualifying: Sequence[str] = (),
) -> MetricSpec:
    """The spec of ``definition`` (``by_id`` holds the definitions a change metric may use;
    ``qualifying`` are the event types that make a user active, empty for any)."""
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
        base = spec_of(base_definition, by_id, qualifying)
        return MetricSpec(key, kind, (), WindowKind.ROLLING, days, base)
    if window_kind == WindowKind.ROLLING and days < 1:
        raise MetricDefinitionError(key, "window_days", "must be at least 1")
    if not event_types and kind in ACTIVITY_KINDS:
        event_types = [str(item) for item in qualifying if item]
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
    qualifying = UsageSettings.load().qualifying_event_types or []
    if not isinstance(qualifying, list):
        qualifying = []
    return [spec_of(definition, by_id, qualifying) for definition in wanted]


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
    def key(self) -> str:
        """The column whose distinct values a distinct stream counts."""
        return "user_key" if self.source == "users" else "feature"

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
    """The streams of a set of metrics: one main and one presence stream per computed
    metric, shared when equal (k = position in ``streams``)."""

    specs: list[MetricSpec]
    streams: list[_Stream] = field(default_factory=list)

    def __post_init__(self) -> None:
        for spec in self.computed():
            for stream in (_main_stream(spec), _presence_stream(spec)):
                if stream not in self.streams:
                    self.streams.append(stream)

    def computed(self) -> list[MetricSpec]:
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
    def filters(self) -> list[tuple[str, ...]]:
        """The event-type filters of the additive streams (one column pair each)."""
        return list(
            dict.fromkeys(stream.event_types for stream in self.streams if not stream.distinct)
        )

    @property
    def lookback(self) -> int:
        return max((stream.lookback for stream in self.streams), default=0)


def _dn(day: date) -> int:
    return (day - EPOCH).days


def _usage(con: ibis.BaseBackend, first: date, last: date) -> ir.Table:
    """Usage events of known customers in ``[first, last]``, with ``value_units``: the event's
    value in integer thousandths (rounded half away from zero on every engine).

    A value that is not finite or beyond ±10¹² counts as missing, so that the exact 64-bit sums
    cannot overflow.
    """
    events = engines.usage_events(con, first, last)
    events = events.filter(events.customer_id.notnull())
    value = events.event_value
    return events.mutate(
        customer_id=events.customer_id.cast("int64"),
        value_units=ibis.ifelse(
            value.abs() < MAX_VALUE,
            (value * VALUE_UNITS).round().cast("int64"),
            ibis.null("int64"),
        ),
    )


def _filter(events: ir.Table, event_types: tuple[str, ...]) -> ir.BooleanValue | None:
    return events.event_type.isin(list(event_types)) if event_types else None


def _day_columns(table: ir.Table) -> dict[str, ir.Value]:
    return {
        "dn": table.event_date.epoch_days().cast("int64"),
        "mk": (table.event_date.year() * 12 + table.event_date.month() - 1).cast("int64"),
    }


def _additive_expr(con: ibis.BaseBackend, plan: "_Plan", first: date, last: date) -> ir.Table:
    """``(customer_id, dn, n0, v0, n1, v1, …)``: per customer and day, the events and the exact
    sum of ``event_value`` (thousandths) of each event-type filter of the plan. One scan."""
    events = _usage(con, first, last)
    aggregates: dict[str, ir.Value] = {}
    for f, event_types in enumerate(plan.filters):
        where = _filter(events, event_types)
        aggregates[f"n{f}"] = events.count(where=where)
        aggregates[f"v{f}"] = events.value_units.sum(where=where)
    daily = events.group_by(["customer_id", "event_date"]).aggregate(**aggregates)
    columns: dict[str, ir.Value] = {"customer_id": daily.customer_id}
    columns["dn"] = _day_columns(daily)["dn"]
    for f in range(len(plan.filters)):
        columns[f"n{f}"] = daily[f"n{f}"].cast("int64")
        columns[f"v{f}"] = ibis.coalesce(daily[f"v{f}"].cast("int64"), 0)
    return daily.select(**columns)


def _distinct_expr(
    con: ibis.BaseBackend, plan: "_Plan", first: date, last: date, first_day: date
) -> ir.Table | None:
    """``(customer_id, dn, k, x)``: the changes of the plan's distinct-count streams ``k``.

    A user (or feature) counts on the days ``[a, a + N)`` after each active day ``a``. Its
    runs of overlapping coverage enter once (more than N days since the previous active day)
    and leave N days after their last active day (more than N days before the next one); in a
    calendar month it enters on its first active day of the month. One scan per kind of key,
    one window per kind of key and filter, shared by every window length. Events are read
    from ``first``; changes before the grid's ``first_day`` count on it (in the grid).
    """
    events = _usage(con, first, last)
    month_start = _dn(first_day.replace(day=1))
    one = ibis.literal(1).cast("int64")
    parts: list[ir.Table] = []
    for key in ("user_key", "feature"):
        streams = [(k, s) for k, s in enumerate(plan.streams) if s.distinct and s.key == key]
        if not streams:
            continue
        filters = list(dict.fromkeys(stream.event_types for _k, stream in streams))
        keyed = events.filter(events[key].notnull())
        flags = {
            f"f{f}": keyed.count(where=_filter(keyed, types)) if types else keyed.count()
            for f, types in enumerate(filters)
        }
        days = keyed.group_by(["customer_id", key, "event_date"]).aggregate(**flags)
        days = days.select("customer_id", key, *flags, **_day_columns(days))
        for f, types in enumerate(filters):
            active = days.filter(days[f"f{f}"] > 0) if types else days
            window = ibis.window(group_by=[active.customer_id, active[key]], order_by=active.dn)
            marked = active.select(
                "customer_id",
                "dn",
                "mk",
                previous=active.dn.lag().over(window),
                previous_mk=active.mk.lag().over(window),
                following=active.dn.lead().over(window),
            )
            for k, stream in streams:
                if stream.event_types != types:
                    continue
                literal_k = ibis.literal(k).cast("int64")
                if stream.calendar:
                    first_in_month = marked.filter(
                        (marked.dn >= month_start)
                        & (marked.previous_mk.isnull() | (marked.previous_mk != marked.mk))
                    )
                    parts.append(
                        first_in_month.select(
                            customer_id=first_in_month.customer_id,
                            dn=first_in_month.dn,
                            k=literal_k,
                            x=one,
                        )
                    )
                    continue
                entering = marked.filter(
                    marked.previous.isnull() | (marked.dn - marked.previous > stream.days)
                )
                leaving = marked.filter(
                    marked.following.isnull() | (marked.following - marked.dn > stream.days)
                )
                parts.append(
                    entering.select(
                        customer_id=entering.customer_id, dn=entering.dn, k=literal_k, x=one
                    )
                )
                parts.append(
                    leaving.select(
                        customer_id=leaving.customer_id,
                        dn=leaving.dn + stream.days,
                        k=literal_k,
                        x=-one,
                    )
                )
    if not parts:
        return None
    changes = parts[0]
    for part in parts[1:]:
        changes = changes.union(part, distinct=False)
    # Changes at or before the grid's first day all land on it; none after its last day.
    return changes.filter(changes.dn <= _dn(last))


def _subscription_changes(first: date, last: date) -> pa.Table:
    """``(customer_id, dn, in_service, seats)``: +1 and +seats (in millionths) on a
    subscription's start date, −1 and −seats on its end date (the first day without service),
    for subscriptions in service at some time in ``[first, last]``."""
    rows = list(
        Subscription.objects.filter(start_date__lte=last)
        .exclude(end_date__lte=first)
        .values_list("customer_id", "start_date", "end_date", "quantity", "unit")
    )
    customers = np.array([row[0] for row in rows], np.int64)
    starts = np.array([_dn(row[1]) for row in rows], np.int64)
    ends = np.array([_dn(row[2]) if row[2] else -1 for row in rows], np.int64)
    seats = np.array(
        [
            int(row[3] * MICRO) if (row[4] or "").strip().lower() in SEAT_UNITS else 0
            for row in rows
        ],
        np.int64,
    )
    ended = ends >= 0
    return pa.table(
        {
            "customer_id": np.concatenate([customers, customers[ended]]),
            "dn": np.concatenate([starts, ends[ended]]),
            "in_service": np.concatenate(
                [np.ones(len(rows), np.int64), -np.ones(int(ended.sum()), np.int64)]
            ),
            "seats": np.concatenate([seats, -seats[ended]]),
        }
    )


# ---------------------------------------------------------------------------------------------
# Running sums over the customers × days grid, and the long rows of each measured day.


def _column(table: pa.Table, name: str) -> np.ndarray:
    return np.asarray(table[name].to_numpy(), dtype=np.int64)


class _Grid:
    """The running sums of every stream on a dense customers × days grid, in chunks of days.

    Rows are days from ``first_day`` (the first measured day minus the change lag), columns
    customers. A stream's value on a day is the sum of its changes up to that day: a day's
    events enter a rolling window on their day and leave it N days later; the engine gives
    the changes of distinct counts; subscriptions give seats and service. Changes before the
    first row count on it. Each chunk carries the previous chunk's last sums, the sums at the
    end of the previous month (calendar streams) and the last days of base values (changes).
    """

    def __init__(
        self,
        plan: "_Plan",
        additive: pa.Table,
        distinct: pa.Table | None,
        subscriptions: pa.Table,
        first_day: date,
        measured: Sequence[date],
    ) -> None:
        self.plan = plan
        self.first_day = first_day
        self.days = (measured[-1] - first_day).days + 1
        self.g0 = _dn(first_day)
        self.month_start = _dn(first_day.replace(day=1))
        self.streams = len(plan.streams) + 2  # … in service, seats
        self.calendar = [stream.calendar for stream in plan.streams] + [False, False]
        order = np.argsort(_column(additive, "dn"), kind="stable")
        self.additive = {name: _column(additive, name)[order] for name in additive.column_names}
        # Distinct counts and subscriptions as (row, stream, customer id, change), by row.
        parts = (
            [
                (
                    _column(distinct, "dn"),
                    _column(distinct, "k"),
                    _column(distinct, "customer_id"),
                    _column(distinct, "x"),
                )
            ]
            if distinct is not None
            else []
        )
        subs_day = _column(subscriptions, "dn")
        subs_customer = _column(subscriptions, "customer_id")
        for k, name in ((len(plan.streams), "in_service"), (len(plan.streams) + 1, "seats")):
            parts.append(
                (subs_day, np.full(len(subs_day), k), subs_customer, _column(subscriptions, name))
            )
        day = np.concatenate([p[0] for p in parts])
        row = np.maximum(day, self.g0) - self.g0
        keep = row < self.days
        order = np.argsort(row[keep], kind="stable")
        self.row = row[keep][order]
        self.k = np.concatenate([p[1] for p in parts])[keep][order]
        change_customers = np.concatenate([p[2] for p in parts])[keep][order]
        self.x = np.concatenate([p[3] for p in parts])[keep][order]
        self.customers = np.unique(np.concatenate([self.additive["customer_id"], change_customers]))
        self.column = np.searchsorted(self.customers, change_customers)
        self.additive_column = np.searchsorted(self.customers, self.additive["customer_id"])
        dates = [first_day + timedelta(days=r) for r in range(self.days)]
        self.month_starts = np.array([d.day == 1 for d in dates], bool)
        wanted = set(measured)
        self.measured_rows = np.array([d in wanted for d in dates], bool)

    def _add_additive(self, sums: np.ndarray, r0: int, r1: int) -> None:
        """The changes of the additive streams in rows [r0, r1) (all earlier ones at row 0)."""
        day = self.additive["dn"]
        width = len(self.customers)
        for k, stream in enumerate(self.plan.streams):
            if stream.distinct:
                continue
            f = self.plan.filters.index(stream.event_types)
            counts = self.additive[f"n{f}"]
            if stream.source == "events":
                amount = counts
            elif stream.source == "values":
                amount = self.additive[f"v{f}"]
            else:  # days
                amount = (counts > 0).astype(np.int64)
            shifts = [(0, 1)] if stream.calendar else [(0, 1), (stream.days, -1)]
            for shift, sign in shifts:
                low = self.g0 + r0 - shift if r0 > 0 else np.iinfo(np.int64).min
                if stream.calendar and r0 == 0:
                    low = self.month_start
                begin, stop = np.searchsorted(day, [low, self.g0 + r1 - shift])
                rows = np.maximum(day[begin:stop] + shift - self.g0, 0) - r0
                flat = rows * width + self.additive_column[begin:stop]
                np.add.at(sums[k].reshape(-1), flat, sign * amount[begin:stop])

    def chunks(self, cells: int) -> Iterator[tuple[int, dict[str, tuple[np.ndarray, np.ndarray]]]]:
        """``(first row, {metric key: (values, present)})`` per chunk, arrays of days × customers.

        Values are float64 with NaN where undefined; ``present`` says whether the customer
        has a row that day.
        """
        width = len(self.customers)
        length = max(1, cells // max(1, width))
        carry = np.zeros((self.streams, width), np.int64)
        month_base = np.zeros((self.streams, width), np.int64)
        tails: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for r0 in range(0, self.days, length):
            r1 = min(self.days, r0 + length)
            sums = np.zeros((self.streams, r1 - r0, width), np.int64)
            self._add_additive(sums, r0, r1)
            begin, stop = np.searchsorted(self.row, [r0, r1])
            # Subscriptions may change twice on one day: add, do not assign.
            np.add.at(
                sums,
                (self.k[begin:stop], self.row[begin:stop] - r0, self.column[begin:stop]),
                self.x[begin:stop],
            )
            np.cumsum(sums, axis=1, out=sums)
            sums += carry[:, None, :]
            before = carry
            carry = sums[:, -1, :].copy()
            for k in range(self.streams):
                if self.calendar[k]:
                    sums[k] = self._month_to_date(sums[k], before[k], month_base, k, r0)
            yield r0, self._values(sums, tails)

    def _month_to_date(
        self, sums: np.ndarray, before: np.ndarray, month_base: np.ndarray, k: int, r0: int
    ) -> np.ndarray:
        """Running sums minus the sum at the end of the previous month (kept in month_base)."""
        out = np.empty_like(sums)
        starts = np.flatnonzero(self.month_starts[r0 : r0 + len(sums)])
        edges = [0, *[int(s) for s in starts if s > 0], len(sums)]
        if 0 in starts and r0 > 0:
            month_base[k] = before
        for a, b in itertools.pairwise(edges):
            if a > 0:
                month_base[k] = sums[a - 1]
            out[a:b] = sums[a:b] - month_base[k]
        return out

    def _values(
        self,
        running: np.ndarray,
        tails: dict[str, tuple[np.ndarray, np.ndarray]],
    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        in_service = running[len(self.plan.streams)] > 0
        seats = running[len(self.plan.streams) + 1]
        index = {stream: k for k, stream in enumerate(self.plan.streams)}
        base: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for spec in self.plan.computed():
            main = running[index[_main_stream(spec)]]
            present = in_service | (running[index[_presence_stream(spec)]] > 0)
            if spec.kind == MetricKind.VALUE_SUM:
                value = main / VALUE_UNITS
            elif spec.kind == MetricKind.SEAT_UTILISATION:
                with np.errstate(divide="ignore", invalid="ignore"):
                    value = np.where(seats > 0, main / (seats / MICRO), np.nan)
            else:
                value = main.astype(np.float64)
            base[spec.key] = (value, present)
        out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for spec in self.plan.specs:
            if spec.kind != MetricKind.WINDOW_CHANGE:
                out[spec.key] = base[spec.key]
                continue
            assert spec.base is not None
            now, present = base[spec.base.key]
            width = now.shape[1]
            tail_values, tail_present = tails.get(
                spec.key,
                (
                    np.full((spec.window_days, width), np.nan),
                    np.zeros((spec.window_days, width), bool),
                ),
            )
            all_values = np.concatenate([tail_values, now])
            all_present = np.concatenate([tail_present, present])
            before, was_there = all_values[: len(now)], all_present[: len(now)]
            tails[spec.key] = (all_values[-spec.window_days :], all_present[-spec.window_days :])
            defined = was_there & ~np.isnan(before) & (before != 0) & ~np.isnan(now)
            with np.errstate(divide="ignore", invalid="ignore"):
                out[spec.key] = (np.where(defined, now / before - 1, np.nan), present)
        return out

    def day_tables(self, cells: int) -> Iterator[tuple[date, pa.Table]]:
        """Each measured day with its rows in METRIC_SCHEMA, by customer then metric (so that
        a reader looking for one customer finds its rows together)."""
        keys = [spec.key for spec in self.plan.specs]
        dictionary = pa.array(keys)
        width = len(self.customers)
        customer_of_cell = np.repeat(self.customers, len(keys))
        metric_of_cell = np.tile(np.arange(len(keys), dtype=np.int32), width)
        for r0, values in self.chunks(cells):
            rows = len(values[keys[0]][0]) if keys else 0
            for r in range(r0, r0 + rows):
                if not self.measured_rows[r]:
                    continue
                # customers × metrics, flattened customer by customer
                cells_values = np.stack([values[key][0][r - r0] for key in keys], axis=1).ravel()
                present = np.stack([values[key][1][r - r0] for key in keys], axis=1).ravel()
                day = self.first_day + timedelta(days=r)
                yield (
                    day,
                    _day_table(
                        day,
                        customer_of_cell[present],
                        metric_of_cell[present],
                        cells_values[present],
                        dictionary,
                    ),
                )


def _day_table(
    day: date, customers: np.ndarray, metric: np.ndarray, values: np.ndarray, dictionary: pa.Array
) -> pa.Table:
    return pa.table(
        {
            "customer_id": pa.array(customers, pa.int64()),
            "metric": pa.DictionaryArray.from_arrays(pa.array(metric, pa.int32()), dictionary).cast(
                pa.string()
            ),
            "day": pa.array(np.full(len(values), _dn(day), np.int32)).cast(pa.date32()),
            "value": pa.array(values, pa.float64(), mask=np.isnan(values)),
        },
        schema=lake.METRIC_SCHEMA,
    )


def _definitions(keys: Iterable[str] | None = None) -> list[MetricDefinition]:
    definitions = MetricDefinition.objects.filter(is_active=True).order_by("position", "key")
    if keys is not None:
        definitions = definitions.filter(key__in=list(keys))
    return list(definitions)


def _history(
    con: ibis.BaseBackend,
    specs: list[MetricSpec],
    days: list[date],
    *,
    cells: int = CHUNK_CELLS,
    progress: Progress | None = None,
) -> Iterator[tuple[date, pa.Table]]:
    plan = _Plan(specs)
    first_day = days[0] - timedelta(days=plan.change_lag)
    events_from = min(first_day.replace(day=1), first_day - timedelta(days=plan.lookback))
    if progress:
        progress("reading events", 0, len(days))
    additive = _additive_expr(con, plan, events_from, days[-1]).to_pyarrow()
    distinct_expr = _distinct_expr(con, plan, events_from, days[-1], first_day)
    distinct = distinct_expr.to_pyarrow() if distinct_expr is not None else None
    subscriptions = _subscription_changes(first_day, days[-1])
    grid = _Grid(plan, additive, distinct, subscriptions, first_day, days)
    for done, (day, table) in enumerate(grid.day_tables(cells), start=1):
        yield day, table
        if progress:
            progress("writing", done, len(days))


def iter_history(
    con: ibis.BaseBackend,
    definitions: Iterable[MetricDefinition],
    start: date,
    end: date,
    step: Step = "day",
    *,
    cells: int = CHUNK_CELLS,
) -> Iterator[tuple[date, pa.Table]]:
    """Each measured day of ``[start, end]`` with its history of ``definitions`` (METRIC_SCHEMA
    rows: customer_id, metric, day, value), computed on ``con``; nothing is written.

    The engine work happens once, before the first day; ``cells`` bounds the customer-days of
    the grid held in memory at once.
    """
    specs = metric_specs(definitions)
    days = measured_days(start, end, step)
    if specs:
        yield from _history(con, specs, days, cells=cells)


def compute_history(
    con: ibis.BaseBackend,
    definitions: Iterable[MetricDefinition],
    start: date,
    end: date,
    step: Step = "day",
    *,
    cells: int = CHUNK_CELLS,
) -> pa.Table:
    """The whole history of ``iter_history`` as one table (for tests and small ranges)."""
    tables = [
        table for _day, table in iter_history(con, definitions, start, end, step, cells=cells)
    ]
    return pa.concat_tables(tables) if tables else lake.METRIC_SCHEMA.empty_table()


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
        # Parquet encoding releases the GIL: days are written two at a time while the next
        # ones are assembled, at most a few days held in memory.
        kept = frozenset(
            MetricDefinition.objects.filter(is_active=False).values_list("key", flat=True)
        )
        with (
            engines.session(engine) as con,
            ThreadPoolExecutor(max_workers=WRITERS) as writers,
        ):
            pending: deque[Future[str]] = deque()
            for day, table in _history(con, specs, days, cells=cells, progress=progress):
                pending.append(writers.submit(_write_day, table, day, kept))
                while len(pending) > 2 * WRITERS:
                    pending.popleft().result()
                rows += table.num_rows
                if day == end:
                    last_day = table
            for future in pending:
                future.result()
    if progress:
        progress("latest values", len(days), len(days))
    updated = 0
    if last_day is not None:
        updated = _update_latest(definitions, specs, last_day, end)
    seconds = time.perf_counter() - began
    run = MetricRun.objects.create(start=start, end=end, engine=engine, rows=rows, seconds=seconds)
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


def _write_day(table: pa.Table, day: date, kept: frozenset[str]) -> str:
    """Replace the day's history with ``table``, keeping what it held of the ``kept`` metrics
    (inactive ones: deactivating a metric stops it, its history stays)."""
    path = lake.metrics_dir() / day.isoformat() / "metrics.parquet"
    if kept and path.exists():
        present = set(pc.unique(pq.read_table(path, columns=["metric"])["metric"]).to_pylist())
        keep = sorted(present & kept)
        if keep:
            earlier = pq.read_table(path, filters=[("metric", "in", keep)])
            table = pa.concat_tables([table, earlier.cast(lake.METRIC_SCHEMA)])
    return lake.write_metric_day(table, day)


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
    "iter_history",
    "last_run",
    "measured_days",
    "metric_specs",
    "run_incremental",
    "run_metrics",
]
