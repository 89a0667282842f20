"""Usage totals for the adoption KPIs: the population from subscriptions, its use from events.

Which customers count comes from the primary database (one SQL statement over the
subscriptions, the same filters as the contract KPIs); what they did comes from the event
lake through ``kizuna.analytics.usage_kpis`` (Ibis on the configured engine). Like the
contract totals, a monthly series is computed in one pass per part, not one per month.

Periods follow KPI.md with dates taken as midnight: the events of ``[start, end]`` are those
of the days from ``start`` up to but not including ``end`` (a month is ``[first day, first
day of the next month]``), while "customers active on ``end``" reads the subscriptions on
``end`` itself, as the contract KPIs do.
"""

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Any

import pyarrow as pa
from django.db import connection

from kizuna.analytics import engine
from kizuna.analytics.models import UsageSettings
from kizuna.analytics.usage_kpis import (
    PERIOD_POPULATION_SCHEMA,
    SEAT_UNITS,
    WINDOW_POPULATION_SCHEMA,
    period_usage,
    window_activity,
)
from kizuna.customers.models import Subscription
from kizuna.reports.kpis.population import KpiInputError, Population

DEFAULT_INACTIVITY_DAYS = 14
MAX_INACTIVITY_DAYS = 366


class UsagePart(StrEnum):
    """What a usage KPI reads; each part is one or two grouped scans of the events."""

    ACTIVITY = "activity"  # active customers, active users, user-days in the period
    SEATS = "seats"  # licensed seats, and known users where there are none (all history)
    FEATURES = "features"  # key features used by active customers
    WINDOWS = "windows"  # activity before start and before end (activity churn)


PERIOD_PARTS = frozenset({UsagePart.ACTIVITY, UsagePart.SEATS, UsagePart.FEATURES})
ALL_PARTS = frozenset(UsagePart)


@dataclass(frozen=True, kw_only=True)
class UsageTotals:
    """What the adoption KPIs need for one period; counts of the population's customers.

    ``customers_end`` are the population's customers active on ``end`` (by subscription); the
    period fields count their users and events. ``windows_*`` count the population's customers
    for ``activity_churn_rate``. Parts that were not requested are zero.
    """

    start: date
    end: date
    days: int  # days in the period: end − start
    inactivity_days: int
    qualifying_event_types: tuple[str, ...]  # empty: any usage event
    key_features: tuple[str, ...]
    customers_end: int
    active_customers: int  # customers_end with at least one active user in the period
    active_users: int  # distinct (customer, user) pairs active in the period: MAU
    user_days: int  # sum over the period's days of DAU
    seat_customers: int  # customers_end with a seat count on end
    seats: Decimal  # their licensed seats on end
    seated_users: int  # active users of seat_customers
    known_users: int  # customers without seats: distinct users seen before end
    feature_customers: dict[str, int] = field(default_factory=dict)  # feature -> active customers
    active_before_start: int  # qualifying event in the inactivity window before start
    inactive_before_end: int  # of those, none in the window before end


def _seat_unit_condition() -> tuple[str, list[Any]]:
    placeholders = ", ".join(["%s"] * len(SEAT_UNITS))
    return f"LOWER(TRIM(s.unit)) IN ({placeholders})", list(SEAT_UNITS)


def _boundaries(days: Sequence[date]) -> tuple[str, list[Any]]:
    """``boundary (k, day) AS (VALUES …)``: the days as a table, k from 0."""
    values = ", ".join(["(%s, %s)"] * len(days))
    params: list[Any] = [item for k, day in enumerate(days) for item in (k, day)]
    return f"boundary (k, day) AS (VALUES {values})", params


def _single_day(member_days: Sequence[date]) -> date | None:
    """The one day every period reads its population on, or None when they differ."""
    distinct = set(member_days)
    return next(iter(distinct)) if len(distinct) == 1 else None


def _members_cte(population: Population, member_days: Sequence[date]) -> tuple[str, list[Any]]:
    """``members (k, customer_id) AS (…)``: the population of each k, read on member_days[k]."""
    selects: list[str] = []
    params: list[Any] = []
    for k, day in enumerate(member_days):
        ids_sql, ids_params = population.customer_ids_sql(day)
        select = f"SELECT {int(k)} AS k, x.id AS customer_id FROM ({ids_sql}) x"  # noqa: S608 - the ORM's subquery
        selects.append(select)
        params.extend(ids_params)
    return f"members (k, customer_id) AS ({' UNION ALL '.join(selects)})", params


def _population_where(
    population: Population, member_days: Sequence[date]
) -> tuple[list[str], list[Any]]:
    """Conditions on ``s`` (subscriptions) for the product, and for the customers when every
    k reads the population on the same day (otherwise the caller joins ``members``)."""
    where: list[str] = []
    params: list[Any] = []
    if population.product_id is not None:
        where.append("s.product_id = %s")
        params.append(population.product_id)
    day = _single_day(member_days)
    if population.filters_customers and day is not None:
        ids_sql, ids_params = population.customer_ids_sql(day)
        where.append(f"s.customer_id IN ({ids_sql})")
        params.extend(ids_params)
    return where, params


def _fetch(sql: str, params: list[Any], schema: pa.Schema) -> pa.Table:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(schema)
    return pa.table(
        [pa.array(column, type=f.type) for column, f in zip(columns, schema, strict=True)],
        schema=schema,
    )


def customers_active_on(
    *, days: Sequence[date], population: Population, member_days: Sequence[date] | None = None
) -> pa.Table:
    """The population's customers active on each ``days[k]``, with their seats on that day.

    Columns ``k``, ``customer_id``, ``seated`` (a subscription active that day counts seats:
    its unit is one of SEAT_UNITS) and ``seat_hundredths`` (the sum of those subscriptions'
    quantities × 100, exact). With a product filter only that product's subscriptions count.
    The population of ``k`` is read as of ``member_days[k]`` (default: ``days[k]``, or the
    population's ``as_of``).
    """
    if member_days is None:
        member_days = [population.day_for(day) for day in days]
    table = connection.ops.quote_name(Subscription._meta.db_table)
    boundary_sql, boundary_params = _boundaries(days)
    seat_sql, seat_params = _seat_unit_condition()
    where, where_params = _population_where(population, member_days)
    where_sql = f"WHERE {' AND '.join(where)}" if where else ""
    members_sql, join_sql = "", ""
    members_params: list[Any] = []
    if population.filters_customers and _single_day(member_days) is None:
        members_sql, members_params = _members_cte(population, member_days)
        members_sql = f", {members_sql}"
        join_sql = "JOIN members m ON m.k = b.k AND m.customer_id = s.customer_id"
    sql = f"""
WITH {boundary_sql}{members_sql}
SELECT b.k, s.customer_id,
       MAX(CASE WHEN {seat_sql} THEN 1 ELSE 0 END),
       SUM(CASE WHEN {seat_sql} THEN CAST(ROUND(s.quantity * 100) AS BIGINT) ELSE 0 END)
FROM {table} s
JOIN boundary b ON s.start_date <= b.day AND (s.end_date IS NULL OR s.end_date > b.day)
{join_sql}
{where_sql}
GROUP BY b.k, s.customer_id
"""  # noqa: S608 - table and column names are ours, values are parameters
    params = [*boundary_params, *members_params, *seat_params, *seat_params, *where_params]
    rows = _fetch(
        sql,
        params,
        pa.schema(
            [
                ("k", pa.int64()),
                ("customer_id", pa.int64()),
                ("seated", pa.int64()),
                ("seat_hundredths", pa.int64()),
            ]
        ),
    )
    return rows.set_column(2, "seated", rows["seated"].cast(pa.bool_()))


def customers_in_population_on(*, days: Sequence[date], population: Population) -> pa.Table:
    """For each ``days[k]``, the customers the activity churn rate may count (``k``, id).

    Every customer matching the filters on that day (or on the population's ``as_of``),
    whatever its contracts; with a product filter, those with a subscription of that product
    active on the day.
    """
    member_days = [population.day_for(day) for day in days]
    if population.product_id is not None:
        return customers_active_on(
            days=days, population=population, member_days=member_days
        ).select(["k", "customer_id"])
    day = _single_day(member_days)
    if day is None:
        members_sql, members_params = _members_cte(population, member_days)
        sql = f"WITH {members_sql} SELECT k, customer_id FROM members"  # noqa: S608 - ours
        return _fetch(sql, members_params, WINDOW_POPULATION_SCHEMA)
    boundary_sql, boundary_params = _boundaries(days)
    ids_sql, ids_params = population.customer_ids_sql(day)
    sql = f"""
WITH {boundary_sql}
SELECT b.k, c.id FROM boundary b CROSS JOIN ({ids_sql}) c
"""  # noqa: S608 - the subquery is the ORM's, values are parameters
    return _fetch(sql, [*boundary_params, *ids_params], WINDOW_POPULATION_SCHEMA)


def _usage_settings() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(qualifying event types, key features), cleaned of blanks and repeats."""
    usage = UsageSettings.load()

    def clean(values: Any) -> tuple[str, ...]:
        items = values if isinstance(values, list) else []
        return tuple(dict.fromkeys(str(item).strip() for item in items if str(item).strip()))

    return clean(usage.qualifying_event_types), clean(usage.key_features)


def check_inactivity_days(inactivity_days: int) -> None:
    """KpiInputError naming ``inactivity_days`` unless it is between 1 and 366."""
    if not 1 <= inactivity_days <= MAX_INACTIVITY_DAYS:
        raise KpiInputError(
            "inactivity_days",
            f"must be between 1 and {MAX_INACTIVITY_DAYS} days, not {inactivity_days}",
        )


def usage_totals(
    *,
    start: date,
    end: date,
    population: Population,
    inactivity_days: int = DEFAULT_INACTIVITY_DAYS,
    parts: frozenset[UsagePart] = ALL_PARTS,
) -> UsageTotals:
    """The usage totals of [start, end] for the population (only the requested parts).

    Raises KpiInputError naming ``end`` when it is before ``start``, or equal to it while a
    period part is requested (the period would hold no day), and naming ``inactivity_days``
    when it is out of range.
    """
    if end < start:
        raise KpiInputError("end", f"{end.isoformat()} is before start {start.isoformat()}")
    if end == start and parts & PERIOD_PARTS:
        raise KpiInputError(
            "end",
            "the period holds no day: events count from the start day up to but not including "
            "the end day (March 2026 is 2026-03-01 → 2026-04-01)",
        )
    return usage_totals_series(
        days=[start, end], population=population, inactivity_days=inactivity_days, parts=parts
    )[0]


def usage_totals_series(
    *,
    days: Sequence[date],
    population: Population,
    inactivity_days: int = DEFAULT_INACTIVITY_DAYS,
    parts: frozenset[UsagePart] = ALL_PARTS,
) -> list[UsageTotals]:
    """Usage totals of each period [days[k], days[k + 1]], each part in one pass for all.

    ``days`` must be in order, at least two.
    """
    if len(days) < 2 or any(b < a for a, b in itertools.pairwise(days)):
        raise KpiInputError("end", "the days of a series must be at least two and in order")
    check_inactivity_days(inactivity_days)
    qualifying, key_features = _usage_settings()
    periods = len(days) - 1

    # Period k counts the customers active on its end day that belonged to the population
    # on its start day (or on the population's as_of).
    at_end = customers_active_on(
        days=days[1:],
        population=population,
        member_days=[population.day_for(day) for day in days[:-1]],
    )
    counts = {
        int(row["k"]): row
        for row in at_end.group_by("k")
        .aggregate([("customer_id", "count"), ("seated", "sum"), ("seat_hundredths", "sum")])
        .to_pylist()
    }

    with engine.session() as con:
        usage = None
        if parts & PERIOD_PARTS:
            usage = period_usage(
                con,
                days=days,
                population=at_end.select(PERIOD_POPULATION_SCHEMA.names),
                qualifying_event_types=qualifying,
                key_features=key_features if UsagePart.FEATURES in parts else (),
                count_known_users=UsagePart.SEATS in parts,
            )
        windows = None
        if UsagePart.WINDOWS in parts:
            windows = window_activity(
                con,
                days=days,
                population=customers_in_population_on(days=days[:-1], population=population),
                qualifying_event_types=qualifying,
                inactivity_days=inactivity_days,
            )

    totals = []
    for k in range(periods):
        count = counts.get(k, {})
        period = usage[k] if usage else None
        window = windows[k] if windows else None
        totals.append(
            UsageTotals(
                start=days[k],
                end=days[k + 1],
                days=(days[k + 1] - days[k]).days,
                inactivity_days=inactivity_days,
                qualifying_event_types=qualifying,
                key_features=key_features,
                customers_end=int(count.get("customer_id_count") or 0),
                active_customers=period.active_customers if period else 0,
                active_users=period.active_users if period else 0,
                user_days=period.user_days if period else 0,
                seat_customers=int(count.get("seated_sum") or 0),
                seats=Decimal(int(count.get("seat_hundredths_sum") or 0)) / 100,
                seated_users=period.seated_users if period else 0,
                known_users=period.known_users if period else 0,
                feature_customers=dict(period.feature_customers) if period else {},
                active_before_start=window.active_before_start if window else 0,
                inactive_before_end=window.inactive_before_end if window else 0,
            )
        )
    return totals
