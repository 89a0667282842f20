"""The event side of the adoption KPIs (KPI.md): active customers and users, seats, key features.

The reports context decides which customers count (from subscriptions, in the primary
database) and hands them over as an Arrow table; the functions here join that population to
the product events with Ibis, aggregate on the engine (DuckDB by default, or Spark) and return
plain totals per period. A monthly series costs a few grouped scans, not one per month.

Vocabulary (KPI.md, Conventions): a user is **active on day d** when it has a qualifying event
(one of ``qualifying_event_types``, or any usage event when that list is empty) whose
``event_date`` is d. A period ``[days[k], days[k + 1]]`` covers the days from ``days[k]`` up to
but not including ``days[k + 1]``: dates are taken as midnight, so a month is
``[first day, first day of the next month]`` and consecutive months share no day. A user is
the pair (customer, user key), so one id seen under two customers counts twice.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import ibis
import ibis.expr.types as ir
import pyarrow as pa

from kizuna.analytics import engine, lake
from kizuna.analytics.metrics import SEAT_UNITS as METRIC_SEAT_UNITS
from kizuna.analytics.models import UsageSettings

# Units of a subscription's ``quantity`` that count licensed seats (compared trimmed and
# lower-cased): the metrics engine's list, so the login rate and seat utilisation agree. Any
# other unit (connectors, GB, blank …) is no seat count.
SEAT_UNITS: tuple[str, ...] = tuple(sorted(METRIC_SEAT_UNITS))

# What the caller passes in. ``k`` is the period (or window) index.
PERIOD_POPULATION_SCHEMA = pa.schema(
    [("k", pa.int64()), ("customer_id", pa.int64()), ("seated", pa.bool_())]
)
WINDOW_POPULATION_SCHEMA = pa.schema([("k", pa.int64()), ("customer_id", pa.int64())])


@dataclass(frozen=True, kw_only=True)
class PeriodUsage:
    """Usage of one period by the population customers of that period."""

    active_customers: int  # customers with at least one active user in the period
    active_users: int  # sum over customers of distinct users active in the period (MAU)
    seated_users: int  # the part of active_users that belongs to customers with seats
    user_days: int  # sum over the period's days of the users active that day (Σ DAU)
    known_users: int  # customers without seats: distinct users seen before the period's end
    feature_customers: dict[str, int]  # key feature -> active customers that used it


@dataclass(frozen=True, kw_only=True)
class WindowActivity:
    """Activity churn of one period: who was active before start, who still was before end."""

    active_before_start: int
    inactive_before_end: int


def has_usage_data() -> bool:
    """Whether there are events to read: a file in the lake, or a configured warehouse table.

    The warehouse itself is not probed (that would connect to it on every page view).
    """
    if lake.event_files():
        return True
    return UsageSettings.objects.exclude(external_connection="").exists()


def _period_index(day: ir.DateValue, days: Sequence[date]) -> ir.IntegerValue:
    """The index k of the period [days[k], days[k + 1]) holding ``day`` (null outside)."""
    cases = [(day < end, k) for k, end in enumerate(days[1:])]
    return ibis.cases(*cases, else_=None).cast("int64")


def _qualifying(events: ir.Table, qualifying_event_types: Sequence[str]) -> ir.Table:
    if not qualifying_event_types:
        return events
    return events.filter(events.event_type.isin(list(qualifying_event_types)))


def _known_events(events: ir.Table) -> ir.Table:
    """Events of a known customer by an identified user (an event without either counts nowhere)."""
    return events.filter(events.customer_id.notnull(), events.user_key.notnull())


def _to_rows(con: ibis.BaseBackend, expression: ir.Table) -> list[dict[str, Any]]:
    """A small result (a few rows per period) as plain dicts."""
    rows: list[dict[str, Any]] = con.to_pyarrow(expression).to_pylist()
    return rows


def period_usage(
    con: ibis.BaseBackend,
    *,
    days: Sequence[date],
    population: pa.Table,
    qualifying_event_types: Sequence[str],
    key_features: Sequence[str],
    count_known_users: bool,
) -> list[PeriodUsage]:
    """Usage of each period [days[k], days[k + 1]) by the population of that period.

    ``population`` (PERIOD_POPULATION_SCHEMA) holds for each period ``k`` the customers it
    counts and whether each has a seat count (``seated``). A key feature is used by a customer
    when any usage event of the period (qualifying or not) names it as its ``feature``
    (``event_type`` when the event has no feature); only active customers are counted.
    ``known_users`` reads all history before each period's end, so it is computed only on
    request. ``days`` must be in order, at least two.
    """
    periods = len(days) - 1
    last_day = days[-1] - timedelta(days=1)
    customers = ibis.memtable(population.cast(PERIOD_POPULATION_SCHEMA))
    events = _known_events(
        engine.usage_events(con, None if count_known_users else days[0], last_day)
    )
    in_periods = events.filter(events.event_date >= days[0], events.event_date <= last_day)
    in_periods = in_periods.mutate(k=_period_index(in_periods.event_date, days))

    active = _qualifying(in_periods, qualifying_event_types)
    user_days = active.select("k", "customer_id", "user_key", "event_date").distinct()
    user_days = user_days.join(customers, ["k", "customer_id"])
    per_customer = user_days.group_by("k", "customer_id", "seated").aggregate(
        users=user_days.user_key.nunique(), user_days=user_days.count()
    )
    totals = per_customer.group_by("k").aggregate(
        active_customers=per_customer.count(),
        active_users=per_customer.users.sum(),
        seated_users=per_customer.users.sum(where=per_customer.seated),
        user_days=per_customer.user_days.sum(),
    )
    by_period: dict[int, dict[str, Any]] = {int(row["k"]): row for row in _to_rows(con, totals)}

    features: dict[int, dict[str, int]] = {k: {} for k in range(periods)}
    if key_features:
        used = in_periods.filter(in_periods.feature.isin(list(key_features)))
        used = used.select("k", "customer_id", "feature").distinct()
        used = used.join(per_customer.select("k", "customer_id"), ["k", "customer_id"])
        per_feature = used.group_by("k", "feature").aggregate(customers=used.count())
        for row in _to_rows(con, per_feature):
            features[int(row["k"])][str(row["feature"])] = int(row["customers"])

    known: dict[int, int] = {}
    if count_known_users:
        unseated = customers.filter(~customers.seated)
        ends = ibis.memtable(
            pa.table(
                {"k": list(range(periods)), "period_end": list(days[1:])},
                schema=pa.schema([("k", pa.int64()), ("period_end", pa.date32())]),
            )
        )
        history = events.join(unseated.select("customer_id").distinct(), "customer_id")
        first_seen = history.group_by("customer_id", "user_key").aggregate(
            first_day=history.event_date.min()
        )
        counted = first_seen.join(unseated.join(ends, "k"), "customer_id")
        counted = counted.filter(counted.first_day < counted.period_end)
        for row in _to_rows(con, counted.group_by("k").aggregate(users=counted.count())):
            known[int(row["k"])] = int(row["users"])

    return [
        PeriodUsage(
            active_customers=_int(by_period.get(k, {}).get("active_customers")),
            active_users=_int(by_period.get(k, {}).get("active_users")),
            seated_users=_int(by_period.get(k, {}).get("seated_users")),
            user_days=_int(by_period.get(k, {}).get("user_days")),
            known_users=known.get(k, 0),
            feature_customers={feature: features[k].get(feature, 0) for feature in key_features},
        )
        for k in range(periods)
    ]


def _int(value: Any) -> int:
    return int(value or 0)


def _local_midnight(day: date) -> datetime:
    """The instant ``day`` begins in the company's time zone, in UTC."""
    return datetime.combine(day, time(0), tzinfo=lake.company_zone()).astimezone(UTC)


def window_activity(
    con: ibis.BaseBackend,
    *,
    days: Sequence[date],
    population: pa.Table,
    qualifying_event_types: Sequence[str],
    inactivity_days: int,
) -> list[WindowActivity]:
    """Activity churn of each period [days[k], days[k + 1]] (KPI.md ``activity_churn_rate``).

    The window before a day d holds the event times t with midnight(d − N) < t <= midnight(d),
    midnights in the company's time zone and N = ``inactivity_days``: the N days before d, an
    event at exactly midnight belonging to the day that ends there. Period k counts the
    customers of ``population`` (WINDOW_POPULATION_SCHEMA, rows with that ``k``) with a
    qualifying event in the window before days[k], and those of them with none in the window
    before days[k + 1].
    """
    first_day = days[0] - timedelta(days=inactivity_days)
    events = _qualifying(
        _known_events(engine.usage_events(con, first_day, days[-1])), qualifying_event_types
    )
    per_day = events.group_by("customer_id", "event_date").aggregate(
        first_time=events.event_time.min(), last_time=events.event_time.max()
    )
    calendar_days = [first_day + timedelta(days=n) for n in range((days[-1] - first_day).days + 1)]
    calendar = ibis.memtable(
        pa.table(
            {
                "day": calendar_days,
                "midnight": [_local_midnight(day) for day in calendar_days],
                "previous_day": [day - timedelta(days=1) for day in calendar_days],
            },
            schema=pa.schema(
                [
                    ("day", pa.date32()),
                    ("midnight", pa.timestamp("us", tz="UTC")),
                    ("previous_day", pa.date32()),
                ]
            ),
        )
    )
    dated = per_day.join(calendar, per_day.event_date == calendar.day)
    # The day an event "belongs to" for windows ending at midnight: its own date, or the day
    # before when it happened at exactly midnight (that instant closes the previous window).
    after_midnight = dated.filter(dated.last_time > dated.midnight).select(
        "customer_id", belongs_to=dated.event_date
    )
    at_midnight = dated.filter(dated.first_time == dated.midnight).select(
        "customer_id", belongs_to=dated.previous_day
    )
    active_days = after_midnight.union(at_midnight)
    windows = ibis.memtable(
        pa.table(
            {
                "window": list(range(len(days))),
                "low": [day - timedelta(days=inactivity_days) for day in days],
                "high": [day - timedelta(days=1) for day in days],
            },
            schema=pa.schema([("window", pa.int64()), ("low", pa.date32()), ("high", pa.date32())]),
        )
    )
    inside = active_days.join(
        windows,
        (active_days.belongs_to >= windows.low) & (active_days.belongs_to <= windows.high),
    )
    inside = inside.select("customer_id", "window").distinct()

    customers = ibis.memtable(population.cast(WINDOW_POPULATION_SCHEMA))
    before_start = customers.join(
        inside,
        (customers.customer_id == inside.customer_id) & (customers.k == inside.window),
    ).select(customers.k, customers.customer_id)
    before_end = inside.select("customer_id", end_k=inside.window - 1)
    flagged = before_start.left_join(
        before_end,
        (before_start.k == before_end.end_k) & (before_start.customer_id == before_end.customer_id),
    )
    flagged = flagged.select("k", inactive=flagged.end_k.isnull().ifelse(1, 0))
    totals = flagged.group_by("k").aggregate(
        active_before_start=flagged.count(), inactive_before_end=flagged.inactive.sum()
    )
    by_period = {int(row["k"]): row for row in _to_rows(con, totals)}
    return [
        WindowActivity(
            active_before_start=_int(by_period.get(k, {}).get("active_before_start")),
            inactive_before_end=_int(by_period.get(k, {}).get("inactive_before_end")),
        )
        for k in range(len(days) - 1)
    ]
