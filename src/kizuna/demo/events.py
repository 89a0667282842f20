"""Product events of simulated customers, in the widely used column set, vectorised per customer.

Each product user (``Identity``) is active on a day with probability
``base_rate × engagement(week) × habit × weekday factor`` while the customer is in service, the
user's seat is provisioned and the person holds it. An active day is one session: a ``login``
and a Poisson number of actions whose mix widens with engagement (advanced features are used
by engaged customers) and includes the add-on's features while the add-on is subscribed.

The columns are those ``kizuna ingest`` accepts without a mapping: ``account_id, event_time,
event_type, user_id, event_value`` plus ``feature``.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from kizuna.demo.config import ANALYTICS, CONNECT, LOGIN_EVENT, DemoConfig, FeatureSpec
from kizuna.demo.simulation import SimulatedCustomer

EVENT_FILE_SCHEMA = pa.schema(
    [
        pa.field("account_id", pa.string()),
        pa.field("event_time", pa.timestamp("us", tz="UTC")),
        pa.field("event_type", pa.string()),
        pa.field("user_id", pa.string()),
        pa.field("event_value", pa.float64()),
        pa.field("feature", pa.string()),
    ]
)
# What ``EventGenerator.table`` builds: the same columns, text dictionary-encoded.
DICTIONARY_SCHEMA = pa.schema(
    [
        pa.field(f.name, pa.dictionary(pa.int32(), pa.string())) if f.type == pa.string() else f
        for f in EVENT_FILE_SCHEMA
    ]
)
MAX_DAILY_PROBABILITY = 0.95
SESSION_START_MINUTES = (8 * 60 + 30, 18 * 60)  # sessions start in working hours, local time


@dataclass(frozen=True)
class Calendar:
    """The days ``[start, end)`` of a window: local midnights (UTC seconds) and weekday factors."""

    start: date
    end: date
    midnight: np.ndarray  # float64 seconds since the epoch of each day's local midnight
    day_factor: np.ndarray  # 1 on weekdays, the weekend factor on Saturdays and Sundays

    @classmethod
    def of(cls, *, start: date, end: date, zone: str, weekend_factor: float) -> "Calendar":
        tz = ZoneInfo(zone)
        days = [start + timedelta(days=n) for n in range((end - start).days)]
        midnight = np.array(
            [datetime.combine(d, time(0), tz).astimezone(UTC).timestamp() for d in days],
            dtype=np.float64,
        )
        factor = np.array([1.0 if d.weekday() < 5 else weekend_factor for d in days])
        return cls(start=start, end=end, midnight=midnight, day_factor=factor)

    def day_start(self, day: date) -> int:
        """Microseconds since the epoch of ``day``'s local midnight (``day`` in the window)."""
        return int(self.midnight[(day - self.start).days] * 1_000_000)


@dataclass(frozen=True)
class _Vocabulary:
    """Every event type the simulator emits; index 0 is the login."""

    features: tuple[FeatureSpec, ...]
    event_types: pa.Array
    feature_names: pa.Array  # each feature once
    feature_of_kind: np.ndarray  # kind → index into feature_names (0 for the login, masked)
    weights: np.ndarray
    depths: np.ndarray
    is_connect: np.ndarray
    value_low: np.ndarray
    value_high: np.ndarray

    @classmethod
    def of(cls, config: DemoConfig) -> "_Vocabulary":
        analytics = next(p for p in config.products if p.code == ANALYTICS.code)
        connect = next(p for p in config.products if p.code == CONNECT.code)
        features = analytics.features + connect.features
        connect_types = {f.event_type for f in connect.features}
        names = list(dict.fromkeys(f.feature for f in features))
        return cls(
            features=features,
            event_types=pa.array([LOGIN_EVENT, *(f.event_type for f in features)], pa.string()),
            feature_names=pa.array(names, pa.string()),
            feature_of_kind=np.array([0, *(names.index(f.feature) for f in features)], np.int32),
            weights=np.array([f.weight for f in features]),
            depths=np.array([f.depth for f in features]),
            is_connect=np.array([f.event_type in connect_types for f in features]),
            value_low=np.array([f.value[0] if f.value else 0 for f in features], np.float64),
            value_high=np.array([f.value[1] if f.value else 0 for f in features], np.float64),
        )


@dataclass(frozen=True)
class _Activity:
    offset: int  # the customer's first day in the window, as an index into the calendar
    engagement: np.ndarray  # per day
    with_connect: np.ndarray  # per day: the add-on is subscribed
    probability: np.ndarray  # users × days: P(active), 0 where the user holds no seat


@dataclass
class CustomerEvents:
    """One customer's events as arrays: identity index, vocabulary index, time (µs), value."""

    identity: np.ndarray
    kind: np.ndarray
    time_us: np.ndarray
    value: np.ndarray

    def __len__(self) -> int:
        return len(self.kind)


class EventGenerator:
    """Generates the events of customers over one calendar window, reproducibly per seed."""

    def __init__(self, *, config: DemoConfig, seed: int, calendar: Calendar) -> None:
        self.config = config
        self.seed = seed
        self.calendar = calendar
        self.vocabulary = _Vocabulary.of(config)

    def _activity(self, c: SimulatedCustomer) -> "_Activity | None":
        """P(active) of each product user on each day of the window (None: no day to show)."""
        calendar, activity = self.calendar, self.config.activity
        first = max(calendar.start, c.first_start)
        days = (calendar.end - first).days
        if days <= 0 or not c.identities:
            return None
        offset = (first - calendar.start).days
        ordinals = np.arange(days) + first.toordinal()
        week = (ordinals - c.first_start.toordinal()) // 7
        week = np.minimum(week, len(c.engagement) - 1)
        engagement = c.engagement[week].astype(np.float64)
        provisioned = c.users[week]
        in_service = _covered(c, ANALYTICS.code, ordinals)
        daily = (
            activity.base_rate
            * engagement
            * calendar.day_factor[offset : offset + days]
            * in_service
        )
        identities = c.identities
        habit = np.array([i.habit for i in identities])
        slot = np.array([i.slot for i in identities])
        since = np.array([i.since.toordinal() for i in identities])
        until = np.array([i.until.toordinal() if i.until else 10**8 for i in identities])
        holds_seat = (
            (ordinals[None, :] >= since[:, None])
            & (ordinals[None, :] < until[:, None])
            & (slot[:, None] < provisioned[None, :])
        )
        probability = np.minimum(habit[:, None] * daily[None, :], MAX_DAILY_PROBABILITY)
        return _Activity(
            offset=offset,
            engagement=engagement,
            with_connect=_covered(c, CONNECT.code, ordinals),
            probability=probability * holds_seat,
        )

    def expected_events(self, c: SimulatedCustomer) -> float:
        """How many events ``customer`` produces on average (no random draw)."""
        found = self._activity(c)
        if found is None:
            return 0.0
        low, high = self.config.activity.actions_per_session
        per_session = 1 + low + high * found.engagement
        return float((found.probability.sum(axis=0) * per_session).sum())

    def customer(self, c: SimulatedCustomer) -> CustomerEvents:
        """The events of ``c`` in the window (possibly none)."""
        calendar, activity = self.calendar, self.config.activity
        rng = np.random.default_rng([self.seed, c.number, 2])
        found = self._activity(c)
        if found is None:
            return _empty()
        offset, engagement, with_connect = found.offset, found.engagement, found.with_connect
        active = rng.random(found.probability.shape) < found.probability
        user, day = np.nonzero(active)
        if len(user) == 0:
            return _empty()

        low, high = activity.actions_per_session
        size = 1 + rng.poisson(low + high * engagement[day])
        total = int(size.sum())
        first_of_session = np.zeros(total, dtype=bool)
        first_of_session[np.cumsum(size) - size] = True
        event_user = np.repeat(user, size)
        event_day = np.repeat(day, size)
        kind = np.zeros(total, dtype=np.int16)
        actions = ~first_of_session
        kind[actions] = 1 + self._features(
            rng, engagement[event_day[actions]], with_connect[event_day[actions]]
        )

        start_minute = rng.integers(*SESSION_START_MINUTES, size=len(user))
        seconds = np.repeat(start_minute * 60, size) + np.where(
            first_of_session, 0, rng.integers(30, activity.session_minutes * 60, size=total)
        )
        midnight = calendar.midnight[offset + event_day]
        time_us = (midnight * 1_000_000).astype(np.int64) + seconds.astype(np.int64) * 1_000_000

        value = np.full(total, np.nan)
        vocabulary = self.vocabulary
        feature = np.maximum(kind.astype(np.int64) - 1, 0)
        valued = actions & (vocabulary.value_high[feature] > 0)
        if valued.any():
            low_v = np.log(vocabulary.value_low[feature[valued]])
            high_v = np.log(vocabulary.value_high[feature[valued]])
            value[valued] = np.round(
                np.exp(low_v + (high_v - low_v) * rng.random(int(valued.sum())))
            )
        return CustomerEvents(event_user.astype(np.int32), kind, time_us, value)

    def _features(
        self, rng: np.random.Generator, engagement: np.ndarray, connect: np.ndarray
    ) -> np.ndarray:
        """Which feature each action uses: advanced ones weigh more as engagement rises."""
        vocabulary = self.vocabulary
        weights = vocabulary.weights[None, :] * engagement[:, None] ** (
            3 * vocabulary.depths[None, :]
        )
        weights = np.where(vocabulary.is_connect[None, :] & ~connect[:, None], 0.0, weights)
        cumulative = weights.cumsum(axis=1)
        draw = rng.random(len(engagement)) * cumulative[:, -1]
        return (cumulative < draw[:, None]).sum(axis=1)

    def table(
        self, customers: Sequence[SimulatedCustomer], events: Sequence[CustomerEvents]
    ) -> pa.Table:
        """The events of several customers as one table.

        Text columns are dictionary-encoded (each account, user and event type stored once),
        which is how Parquet keeps them anyway; ``event_writer`` files read back as plain
        strings (EVENT_FILE_SCHEMA) and ``plain`` casts a table for other uses.
        """
        if not customers or not any(len(e) for e in events):
            return DICTIONARY_SCHEMA.empty_table()
        accounts = pa.array([c.external_id for c in customers], pa.string())
        user_ids = pa.array([i.user_id for c in customers for i in c.identities], pa.string())
        base = np.cumsum([0, *(len(c.identities) for c in customers[:-1])])
        account_index = np.concatenate([np.full(len(e), n, np.int32) for n, e in enumerate(events)])
        user_index = np.concatenate([e.identity + np.int32(base[n]) for n, e in enumerate(events)])
        kind = np.concatenate([e.kind for e in events]).astype(np.int32)
        time_us = np.concatenate([e.time_us for e in events])
        value = np.concatenate([e.value for e in events])
        vocabulary = self.vocabulary
        dictionary = pa.DictionaryArray.from_arrays
        return pa.table(
            {
                "account_id": dictionary(pa.array(account_index), accounts),
                "event_time": pa.array(time_us, pa.timestamp("us", tz="UTC")),
                "event_type": dictionary(pa.array(kind), vocabulary.event_types),
                "user_id": dictionary(pa.array(user_index), user_ids),
                "event_value": pa.array(value, pa.float64(), mask=np.isnan(value)),
                "feature": dictionary(
                    pa.array(vocabulary.feature_of_kind[kind], mask=kind == 0),
                    vocabulary.feature_names,
                ),
            }
        )


def plain(table: pa.Table) -> pa.Table:
    """``table`` with plain string columns (EVENT_FILE_SCHEMA)."""
    return table.cast(EVENT_FILE_SCHEMA)


def event_writer(path: Path) -> pq.ParquetWriter:
    """A Parquet writer for ``EventGenerator.table`` tables; the file reads back as
    EVENT_FILE_SCHEMA (plain strings)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return pq.ParquetWriter(path, DICTIONARY_SCHEMA, compression="zstd", store_schema=False)


def _covered(c: SimulatedCustomer, product_code: str, ordinals: np.ndarray) -> np.ndarray:
    """Whether a subscription of the product covers each day."""
    covered = np.zeros(len(ordinals), dtype=bool)
    for row in c.rows:
        if row.product.code == product_code:
            covered |= (ordinals >= row.start.toordinal()) & (ordinals < row.end.toordinal())
    return covered


def _empty() -> CustomerEvents:
    return CustomerEvents(
        np.zeros(0, np.int32), np.zeros(0, np.int16), np.zeros(0, np.int64), np.zeros(0)
    )
