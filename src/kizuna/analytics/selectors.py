"""Reads of one customer's product usage straight from the event lake (Customer 360 panel).

These answer from the events themselves, so the usage panel shows data as soon as events reach
the lake, before any metrics run. Each is one grouped query over the customer's events in the
range (DuckDB by default); nothing loops over events in Python.
"""

from dataclasses import dataclass
from datetime import date, timedelta

import ibis
import ibis.expr.types as ir
from ibis import _

from kizuna.analytics import engine
from kizuna.analytics.models import UsageSettings

# The widest rolling window of active users the panel draws (active users over 28 days).
WIDEST_WINDOW_DAYS = 28


@dataclass(frozen=True)
class DailyUsage:
    """One day of a customer's usage: events, and users active that day and in 7 and 28 days."""

    day: date
    events: int
    active_users: int
    active_users_7d: int
    active_users_28d: int


@dataclass(frozen=True)
class FeatureUse:
    """Events and distinct users of one feature in a range; ``is_key`` for configured features."""

    feature: str
    events: int
    users: int
    is_key: bool


@dataclass(frozen=True)
class UsageOverview:
    """What the Customer 360 usage panel shows, read in one session of the engine."""

    daily: list[DailyUsage]
    features: list[FeatureUse]
    has_events: bool  # any usage event of the customer in the lake, in the range or not


def _qualifying(events: ir.Table, event_types: list[str]) -> ir.Table:
    """Events that make a user active (KPI.md): any event, or the configured types."""
    return events.filter(_.event_type.isin(event_types)) if event_types else events


def _daily(
    events: ir.Table, start: date, end: date, qualifying_types: list[str]
) -> list[DailyUsage]:
    """``events`` must cover ``[start − 27 days, end]`` for the 28-day counts to be whole."""
    calendar = ibis.memtable(
        {"day": [start + timedelta(days=offset) for offset in range((end - start).days + 1)]},
        schema={"day": "date"},
    )
    per_day = events.filter(_.event_date >= start).group_by(day=_.event_date).agg(events=_.count())
    user_days = (
        _qualifying(events, qualifying_types)
        .filter(_.user_key.notnull())
        .select(user_key=_.user_key, active_day=_.event_date)
        .distinct()
    )
    windowed = calendar.join(
        user_days,
        [
            user_days.active_day <= calendar.day,
            user_days.active_day > calendar.day - ibis.interval(days=WIDEST_WINDOW_DAYS),
        ],
    )
    users = windowed.group_by("day").agg(
        active_users=_.user_key.nunique(where=_.active_day == _.day),
        active_users_7d=_.user_key.nunique(where=_.active_day > _.day - ibis.interval(days=7)),
        active_users_28d=_.user_key.nunique(),
    )
    rows = (
        calendar.left_join(per_day, calendar.day == per_day.day)
        .select("day", "events")
        .left_join(users, "day")
        .select("day", "events", "active_users", "active_users_7d", "active_users_28d")
        .order_by("day")
        .to_pyarrow()
        .to_pylist()
    )
    return [
        DailyUsage(
            day=row["day"],
            events=row["events"] or 0,
            active_users=row["active_users"] or 0,
            active_users_7d=row["active_users_7d"] or 0,
            active_users_28d=row["active_users_28d"] or 0,
        )
        for row in rows
    ]


def _features(events: ir.Table, start: date, key_features: set[str]) -> list[FeatureUse]:
    rows = (
        events.filter(_.event_date >= start)
        .group_by("feature")
        .agg(events=_.count(), users=_.user_key.nunique())
        .order_by([ibis.desc("events"), "feature"])
        .to_pyarrow()
        .to_pylist()
    )
    return [
        FeatureUse(
            feature=row["feature"],
            events=row["events"],
            users=row["users"],
            is_key=row["feature"] in key_features,
        )
        for row in rows
    ]


def _customer_events(con: ibis.BaseBackend, customer_id: int, start: date, end: date) -> ir.Table:
    events = engine.usage_events(con, start, end)
    return events.filter(_.customer_id == customer_id)


def _any_event(con: ibis.BaseBackend, customer_id: int) -> bool:
    events = engine.usage_events(con)
    found = events.filter(_.customer_id == customer_id).limit(1).count().to_pyarrow()
    return bool(found.as_py())


def daily_usage(*, customer_id: int, start: date, end: date) -> list[DailyUsage]:
    """Every day of ``[start, end]`` (zeros included) with the customer's events and active users.

    ``active_users`` counts distinct users with a qualifying event that day (KPI.md: any event,
    or the types configured in ``UsageSettings``); ``active_users_7d`` / ``_28d`` count them over
    the 7 / 28 days ending on the day. ``events`` counts every usage event (track, page, screen).
    """
    if end < start:
        return []
    qualifying_types = list(UsageSettings.load().qualifying_event_types)
    read_from = start - timedelta(days=WIDEST_WINDOW_DAYS - 1)
    with engine.session() as con:
        return _daily(
            _customer_events(con, customer_id, read_from, end), start, end, qualifying_types
        )


def feature_usage(*, customer_id: int, start: date, end: date) -> list[FeatureUse]:
    """Events and distinct users per feature of the customer in ``[start, end]``, most used first.

    An event without a feature counts under its event type (as ``engine.usage_events`` maps it).
    """
    key_features = set(UsageSettings.load().key_features)
    with engine.session() as con:
        return _features(_customer_events(con, customer_id, start, end), start, key_features)


def usage_overview(
    *, customer_id: int, start: date, end: date, feature_days: int = WIDEST_WINDOW_DAYS
) -> UsageOverview:
    """``daily_usage`` over ``[start, end]`` and ``feature_usage`` over the last ``feature_days``
    days to ``end``, in one engine session; ``has_events`` tells "no events yet" from "none in
    this period" (the lake is searched further only when the period is empty)."""
    usage = UsageSettings.load()
    feature_start = end - timedelta(days=feature_days - 1)
    read_from = min(start, feature_start) - timedelta(days=WIDEST_WINDOW_DAYS - 1)
    with engine.session() as con:
        events = _customer_events(con, customer_id, read_from, end)
        daily = _daily(events, start, end, list(usage.qualifying_event_types))
        features = _features(events, feature_start, set(usage.key_features))
        has_events = any(row.events for row in daily) or bool(features)
        if not has_events:
            has_events = _any_event(con, customer_id)
    return UsageOverview(daily=daily, features=features, has_events=has_events)
