"""The scoring engine: every active customer's health score on a day, computed set-based.

For a day ``d``:

1. **Who.** The customers active on ``d`` (a subscription with ``start_date <= d`` and no end or
   ``end_date > d``), each given the first active scorecard with a published version whose
   touch model and segment match the customer's current fields (empty matches any), by
   priority then id. A customer no scorecard matches is not scored.
2. **Inputs.** One query (or one Parquet scan) per source for all customers, each as of ``d``:
   ``metric`` — the latest metric day file on or before ``d`` (``lake/metrics/<m>/metrics.parquet``),
   at most ``MAX_METRIC_LAG_DAYS`` (3) days old — metrics are computed up to the last full
   day, so today's run reads yesterday's file; the measure line then says which day it read
   (``"metric_day"``); with no file so recent the metric measures are missing; ``days_to_renewal``
   — earliest ``end_date`` of the subscriptions active on ``d``, minus ``d``;
   ``onboarding_progress`` — share of the required milestones completed by ``d`` in the latest
   plan started by ``d`` (not cancelled by then), 1.0 once the plan is completed;
   ``nps`` — mean of each contact's latest answer in the 365 days ending on ``d``;
   ``days_since_touch`` — days since the last meeting, call, training, review meeting or email;
   ``open_signals`` — risk signals open on ``d`` (0 when none); ``sentiment`` — the latest CSM
   sentiment recorded in the 180 days ending on ``d``. Anything else is *missing*, never 0.
3. **Arithmetic** (numpy, one pass per measure): points by linear interpolation between the
   thresholds (clamped outside them), or the mid-rank percentile among the customers scored
   by the same version that day (0 for the lowest, 100 for the highest, ties share the mean
   of their ranks, a lone customer gets 50; ``higher_is_better=False`` gives 100 − it). Then
   ``score = Σ points·w / Σ w`` over the measures that have a value (re-weighting),
   ``contribution = points·w / Σ w present`` (they add up to the score), ``missing_weight =
   Σ w missing / Σ w``; the score is null when every measure is missing. Band from the
   version's limits: good from ``good_from``, watch from ``watch_from``, else at risk.
4. **Write.** The measure lines become JSON (orjson); the day's rows are replaced (delete then
   one bulk insert: ``COPY`` on PostgreSQL, ``executemany`` on SQLite) in one transaction.

The daily run scores a range of one day; a backfill scores chunks of ``CHUNK_DAYS`` days, each
source read once for the chunk (one DuckDB scan of its metric files, one query per database
source with each day's window applied in numpy or DuckDB) and the rows written a few days at a
time. Both go through the same code, so a backfilled day equals the daily run of that day.

Percentiles are always ranked over the whole population of a version, even when only some
customers are written (``customer_ids``), so a partial run gives the same numbers as a full one.
"""

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import orjson
import pyarrow as pa
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, F, Max, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone
from django.utils.translation import gettext as _

from kizuna.analytics import lake
from kizuna.core.models import TimelineEntry, TimelineKind
from kizuna.customers.models import Customer, Subscription
from kizuna.customers.selectors import active_on
from kizuna.health.models import (
    Band,
    CsmSentiment,
    HealthScore,
    Mapping,
    Measure,
    MeasureSource,
    RiskSignal,
    Scorecard,
    ScorecardVersion,
    VersionStatus,
)
from kizuna.health.scorecards import ScorecardError

logger = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]

NPS_WINDOW_DAYS = 365
SENTIMENT_WINDOW_DAYS = 180
TOUCH_KINDS = (
    TimelineKind.MEETING,
    TimelineKind.CALL,
    TimelineKind.TRAINING,
    TimelineKind.REVIEW_MEETING,
    TimelineKind.EMAIL,
)
PLACES = 4  # points, contributions and scores are stored to 4 decimal places
# Metric measures of day d read the latest metric file on or before d at most this many days
# old (the signals package allows the same lag).
MAX_METRIC_LAG_DAYS = 3
CHUNK_DAYS = 31  # a backfill reads its inputs this many days at a time
WRITE_ROWS = 50_000  # and writes about this many rows per transaction
_DELETE_CHUNK = 5000


@dataclass(frozen=True, kw_only=True)
class ScoringResult:
    """What a scoring run wrote: rows (customer-days), of which ``not_scored`` had every
    measure missing; ``bands`` counts the rows per band; ``days`` the days scored."""

    days: int = 0
    rows: int = 0
    not_scored: int = 0
    bands: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def scored(self) -> int:
        return self.rows - self.not_scored

    def __add__(self, other: "ScoringResult") -> "ScoringResult":
        bands = dict(self.bands)
        for band, count in other.bands.items():
            bands[band] = bands.get(band, 0) + count
        return ScoringResult(
            days=self.days + other.days,
            rows=self.rows + other.rows,
            not_scored=self.not_scored + other.not_scored,
            bands=bands,
            seconds=self.seconds + other.seconds,
        )


# ---------------------------------------------------------------------------------------
# Scorecards that apply


@dataclass(frozen=True, kw_only=True)
class _Card:
    scorecard_id: int
    version_id: int
    touch_model: str
    segment: str
    good_from: float
    watch_from: float


@dataclass(frozen=True, kw_only=True)
class _MeasureSpec:
    key: str
    label: str
    source: str
    metric_key: str
    weight: float
    mapping: str
    xs: np.ndarray
    ps: np.ndarray
    higher_is_better: bool

    @property
    def source_key(self) -> str:
        return f"metric:{self.metric_key}" if self.source == MeasureSource.METRIC else self.source


def _cards() -> list[_Card]:
    """Published versions of active scorecards, in the order they are tried."""
    versions = ScorecardVersion.objects.filter(
        status=VersionStatus.PUBLISHED, scorecard__is_active=True
    ).order_by("scorecard__priority", "scorecard_id")
    return [
        _Card(
            scorecard_id=row[0],
            version_id=row[1],
            touch_model=row[2],
            segment=row[3],
            good_from=row[4],
            watch_from=row[5],
        )
        for row in versions.values_list(
            "scorecard_id",
            "pk",
            "scorecard__touch_model",
            "scorecard__segment",
            "good_from",
            "watch_from",
        )
    ]


def _specs(version_ids: Sequence[int]) -> dict[int, list[_MeasureSpec]]:
    specs: dict[int, list[_MeasureSpec]] = {vid: [] for vid in version_ids}
    for m in Measure.objects.filter(version_id__in=version_ids).order_by(
        "version_id", "position", "id"
    ):
        pairs = sorted((float(v), float(p)) for v, p in (m.thresholds or []))
        specs[m.version_id].append(
            _MeasureSpec(
                key=m.key,
                label=m.label,
                source=m.source,
                metric_key=m.metric_key,
                weight=float(m.weight),
                mapping=m.mapping,
                xs=np.array([v for v, _p in pairs], dtype=float),
                ps=np.array([p for _v, p in pairs], dtype=float),
                higher_is_better=m.higher_is_better,
            )
        )
    return specs


def active_customers(day: date) -> QuerySet[Customer]:
    """Customers active on ``day`` (a subscription in service), unordered."""
    in_service = Subscription.objects.filter(active_on(day), customer=OuterRef("pk"))
    return Customer.objects.filter(Exists(in_service)).order_by()


def _assign(
    days: Sequence[date], cards: Sequence[_Card]
) -> dict[date, tuple[np.ndarray, np.ndarray]]:
    """For each of ``days`` (ascending): (customer ids active on it, sorted; index into
    ``cards`` or −1). Two queries for the whole range: subscriptions and customers."""
    first, last = days[0], days[-1]
    in_range = Q(start_date__lte=last) & (Q(end_date__isnull=True) | Q(end_date__gt=first))
    subscriptions = list(
        Subscription.objects.filter(in_range)
        .order_by("customer_id")
        .values_list("customer_id", "start_date", "end_date")
    )
    empty = (np.array([], dtype=np.int64), np.array([], dtype=np.int64))
    if not subscriptions:
        return dict.fromkeys(days, empty)
    in_service = Subscription.objects.filter(in_range, customer=OuterRef("pk"))
    rows = sorted(
        Customer.objects.filter(Exists(in_service))
        .order_by()
        .values_list("pk", "touch_model", "segment")
    )
    ids = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
    touch = np.array([row[1] or "" for row in rows], dtype=object)
    segment = np.array([row[2] or "" for row in rows], dtype=object)
    which = np.full(len(ids), -1, dtype=np.int64)
    for index, card in enumerate(cards):
        fits = which == -1
        if card.touch_model:
            fits &= touch == card.touch_model
        if card.segment:
            fits &= segment == card.segment
        which[fits] = index
    owner = np.array([r[0] for r in subscriptions], dtype=np.int64)
    starts = _day64([r[1] for r in subscriptions])
    ends = _day64([r[2] for r in subscriptions])
    found: dict[date, tuple[np.ndarray, np.ndarray]] = {}
    for day in days:
        d64 = np.datetime64(day, "D")
        active = np.unique(owner[(starts <= d64) & (ends > d64)])
        found[day] = (active, which[np.searchsorted(ids, active)])
    return found


# ---------------------------------------------------------------------------------------
# Sources: for each day of a range, (customer ids sorted unique, values) of all customers.
# Every source loads the rows its whole range needs in one query and applies each day's
# window in numpy or DuckDB, so the daily run (a range of one day) and a backfill (ranges of
# ``CHUNK_DAYS``) compute every day the same way.


Source = tuple[np.ndarray, np.ndarray]
_EMPTY: Source = (np.array([], dtype=np.int64), np.array([], dtype=float))
_NEVER = np.datetime64("9999-12-31", "D")


def _source(ids: Iterable[Any], values: Iterable[Any]) -> Source:
    """Arrays sorted by customer id, the first value kept for a repeated id."""
    id_array = np.asarray(ids if isinstance(ids, np.ndarray) else list(ids), dtype=np.int64)
    value_array = np.asarray(
        values if isinstance(values, np.ndarray) else list(values), dtype=float
    )
    if not len(id_array):
        return _EMPTY
    order = np.argsort(id_array, kind="stable")
    id_array, value_array = id_array[order], value_array[order]
    unique, first = np.unique(id_array, return_index=True)
    return unique, value_array[first]


def _first_per_customer(ids: np.ndarray, values: np.ndarray) -> Source:
    """For ``ids`` already sorted (ties in the wanted order): the first value of each id."""
    if not len(ids):
        return _EMPTY
    first = np.r_[True, ids[1:] != ids[:-1]]
    return ids[first], values[first].astype(float)


def _midnight(day: date) -> datetime:
    """The start of ``day`` in the company's time zone (aware)."""
    return timezone.make_aware(datetime.combine(day, clock(0, 0)))


def _utc64(moments: Sequence[datetime | None]) -> np.ndarray:
    """Aware moments as UTC datetime64[us] (None as NaT)."""
    if not moments:
        return np.array([], dtype="datetime64[us]")
    array = pa.array(moments, type=pa.timestamp("us", tz="UTC"))
    return np.asarray(array.to_numpy(zero_copy_only=False), dtype="datetime64[us]")


def _local_days(moments: Sequence[datetime]) -> np.ndarray:
    """The company-zone calendar day of each moment, as datetime64[D]."""
    if not moments:
        return np.array([], dtype="datetime64[D]")
    array = pa.array(moments, type=pa.timestamp("us", tz="UTC"))
    return np.asarray(lake.event_dates(array).to_numpy(zero_copy_only=False), dtype="datetime64[D]")


def _day64(values: Sequence[date | None]) -> np.ndarray:
    """Dates as datetime64[D], None as far in the future."""
    return np.array([_NEVER if v is None else np.datetime64(v, "D") for v in values])


def _metric_path(day: date) -> Path:
    return lake.metrics_dir() / day.isoformat() / "metrics.parquet"


def metric_days(days: Sequence[date]) -> dict[date, date | None]:
    """The metric day each of ``days`` reads: the latest day on or before it that has a metric
    file, at most ``MAX_METRIC_LAG_DAYS`` earlier (None when there is none so recent).

    Metrics are computed up to the last full day, so the daily run for today reads
    yesterday's file; an older file means the metrics job has stopped, and the metric
    measures count as missing rather than show stale usage.
    """
    if not days:
        return {}
    first, last = min(days), max(days)
    span = (last - first).days + MAX_METRIC_LAG_DAYS + 1
    exists = {
        candidate: _metric_path(candidate).exists()
        for candidate in (first - timedelta(days=MAX_METRIC_LAG_DAYS - i) for i in range(span))
    }
    found: dict[date, date | None] = {}
    for day in days:
        found[day] = next(
            (
                day - timedelta(days=lag)
                for lag in range(MAX_METRIC_LAG_DAYS + 1)
                if exists[day - timedelta(days=lag)]
            ),
            None,
        )
    return found


def _metric_range(days: Sequence[date], keys: Sequence[str]) -> dict[date, dict[str, Source]]:
    """The metric measures of each day, from the file ``metric_days`` picks for it; every
    file of the range is read in one DuckDB scan."""
    read = metric_days(days)
    files = sorted({m for m in read.values() if m is not None})
    by_file: dict[date, dict[str, Source]] = {}
    if keys and files:
        paths = [str(_metric_path(m)) for m in files]
        con = duckdb.connect(config={"threads": settings.KIZUNA_DUCKDB_THREADS})
        try:
            con.execute("SET enable_progress_bar=false")
            table = con.sql(
                "SELECT list_position($paths, filename) - 1 AS f, "
                "list_position($keys, metric) - 1 AS k, customer_id, value "
                "FROM read_parquet($paths, filename=true) "
                "WHERE value IS NOT NULL AND NOT isnan(value) AND list_contains($keys, metric) "
                "ORDER BY f, k, customer_id",
                params={"paths": paths, "keys": list(keys)},
            ).to_arrow_table()
        finally:
            con.close()
        group = table["f"].to_numpy().astype(np.int64) * len(keys) + table["k"].to_numpy().astype(
            np.int64
        )
        customers = table["customer_id"].to_numpy().astype(np.int64)
        values = table["value"].to_numpy().astype(float)
        bounds = np.searchsorted(group, np.arange(len(files) * len(keys) + 1))
        for f, metric_day in enumerate(files):
            by_file[metric_day] = {
                f"metric:{key}": _source(customers[lo:hi], values[lo:hi])
                for k, key in enumerate(keys)
                for lo, hi in [(bounds[f * len(keys) + k], bounds[f * len(keys) + k + 1])]
            }
    empty: dict[str, Source] = {f"metric:{key}": _EMPTY for key in keys}
    return {day: dict(by_file.get(read[day] or day, empty)) for day in days}


def _days_to_renewal(days: Sequence[date]) -> dict[date, Source]:
    first, last = days[0], days[-1]
    rows = list(
        Subscription.objects.filter(start_date__lte=last, end_date__gt=first)
        .order_by("customer_id", "end_date")
        .values_list("customer_id", "start_date", "end_date")
    )
    if not rows:
        return dict.fromkeys(days, _EMPTY)
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    starts, ends = _day64([r[1] for r in rows]), _day64([r[2] for r in rows])
    found: dict[date, Source] = {}
    for day in days:
        d64 = np.datetime64(day, "D")
        on = (starts <= d64) & (ends > d64)  # in service on the day, earliest end first
        found[day] = _first_per_customer(ids[on], (ends[on] - d64).astype(float))
    return found


def _onboarding_progress(days: Sequence[date]) -> dict[date, Source]:
    from kizuna.onboarding.models import OnboardingPlan, PlanMilestone

    first, last = days[0], days[-1]
    plans = list(
        OnboardingPlan.objects.filter(
            Q(cancelled_at__isnull=True) | Q(cancelled_at__gte=_midnight(first + timedelta(1))),
            start_date__lte=last,
        )
        .order_by("customer_id", "-start_date", "-id")
        .values_list("customer_id", "pk", "start_date", "completed_on", "cancelled_at")
    )
    if not plans:
        return dict.fromkeys(days, _EMPTY)
    customer = np.array([r[0] for r in plans], dtype=np.int64)
    index_of = {row[1]: i for i, row in enumerate(plans)}
    starts, completed = _day64([r[2] for r in plans]), _day64([r[3] for r in plans])
    cancelled = _utc64([r[4] for r in plans])
    milestones = [
        row
        for row in PlanMilestone.objects.filter(
            milestone__required=True, plan__start_date__lte=last
        )
        .order_by()
        .values_list("plan_id", "completed_on")
        if row[0] in index_of
    ]
    plan_index = np.array([index_of[r[0]] for r in milestones], dtype=np.int64)
    done_on = _day64([r[1] for r in milestones])
    total = np.bincount(plan_index, minlength=len(plans)).astype(float)
    found: dict[date, Source] = {}
    for day in days:
        d64 = np.datetime64(day, "D")
        next_midnight = _utc64([_midnight(day + timedelta(1))])[0]
        open_plan = (starts <= d64) & (np.isnat(cancelled) | (cancelled >= next_midnight))
        rows = np.flatnonzero(open_plan)  # the latest plan of each customer comes first
        if not len(rows):
            found[day] = _EMPTY
            continue
        latest = rows[np.r_[True, customer[rows][1:] != customer[rows][:-1]]]
        done = np.bincount(plan_index[done_on <= d64], minlength=len(plans)).astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(total[latest] > 0, done[latest] / total[latest], np.nan)
        values = np.where(completed[latest] <= d64, 1.0, share)
        keep = ~np.isnan(values)  # no required milestone and not completed: unknown
        found[day] = (customer[latest][keep], values[keep])
    return found


def _nps(days: Sequence[date]) -> dict[date, Source]:
    first, last = days[0], days[-1]
    rows = list(
        TimelineEntry.objects.filter(
            kind=TimelineKind.NPS_ANSWERED,
            occurred_at__gte=_midnight(first - timedelta(days=NPS_WINDOW_DAYS - 1)),
            occurred_at__lt=_midnight(last + timedelta(days=1)),
        )
        .values_list("customer_id", "pk", "occurred_at", "payload__score", "payload__contact_id")
        .order_by()
    )
    if not rows:
        return dict.fromkeys(days, _EMPTY)
    answers = pa.table(
        {
            "customer_id": pa.array([r[0] for r in rows], pa.int64()),
            "entry_id": pa.array([r[1] for r in rows], pa.int64()),
            "occurred_at": pa.array([r[2] for r in rows], pa.timestamp("us", tz="UTC")),
            "score": pa.array([_as_score(r[3]) for r in rows], pa.float64()),
            "contact": pa.array([None if r[4] is None else str(r[4]) for r in rows], pa.string()),
        }
    )
    windows = pa.table(
        {
            "n": pa.array(range(len(days)), pa.int64()),
            "lo": pa.array(
                [_midnight(day - timedelta(days=NPS_WINDOW_DAYS - 1)) for day in days],
                pa.timestamp("us", tz="UTC"),
            ),
            "hi": pa.array(
                [_midnight(day + timedelta(days=1)) for day in days],
                pa.timestamp("us", tz="UTC"),
            ),
        }
    )
    con = duckdb.connect(config={"threads": settings.KIZUNA_DUCKDB_THREADS})
    try:
        con.execute("SET enable_progress_bar=false")
        con.register("answers", answers)
        con.register("windows", windows)
        table = con.sql(
            "WITH valid AS (SELECT *, coalesce(contact, 'entry-' || entry_id) AS who "
            "FROM answers WHERE score IS NOT NULL), "
            "latest AS (SELECT w.n, v.customer_id, v.who, "
            "arg_max(v.score, (v.occurred_at, v.entry_id)) AS s "
            "FROM windows w JOIN valid v ON v.occurred_at >= w.lo AND v.occurred_at < w.hi "
            "GROUP BY w.n, v.customer_id, v.who) "
            "SELECT n, customer_id, avg(s) AS nps FROM latest GROUP BY n, customer_id "
            "ORDER BY n, customer_id"
        ).to_arrow_table()
    finally:
        con.close()
    n = table["n"].to_numpy().astype(np.int64)
    customers = table["customer_id"].to_numpy().astype(np.int64)
    values = table["nps"].to_numpy().astype(float)
    bounds = np.searchsorted(n, np.arange(len(days) + 1))
    return {
        day: _source(customers[bounds[i] : bounds[i + 1]], values[bounds[i] : bounds[i + 1]])
        for i, day in enumerate(days)
    }


def _as_score(value: Any) -> float | None:
    """An NPS answer's score (0–10), None when it is not one."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if 0 <= number <= 10 else None


def _days_since_touch(days: Sequence[date]) -> dict[date, Source]:
    first, last = days[0], days[-1]
    touches = TimelineEntry.objects.filter(kind__in=[str(kind) for kind in TOUCH_KINDS])
    rows = list(
        touches.filter(occurred_at__lt=_midnight(first))
        .values("customer_id")
        .annotate(last=Max("occurred_at"))
        .values_list("customer_id", "last")
        .order_by()
    ) + list(
        touches.filter(
            occurred_at__gte=_midnight(first), occurred_at__lt=_midnight(last + timedelta(1))
        )
        .values_list("customer_id", "occurred_at")
        .order_by()
    )
    if not rows:
        return dict.fromkeys(days, _EMPTY)
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    moments = _utc64([r[1] for r in rows])
    local = _local_days([r[1] for r in rows])
    order = np.lexsort((-local.astype(np.int64), ids))  # each customer's latest first
    ids, moments, local = ids[order], moments[order], local[order]
    found: dict[date, Source] = {}
    for day in days:
        before = moments < _utc64([_midnight(day + timedelta(1))])[0]
        last_ids, last_days = ids[before], local[before]
        if not len(last_ids):
            found[day] = _EMPTY
            continue
        keep = np.r_[True, last_ids[1:] != last_ids[:-1]]
        found[day] = (
            last_ids[keep],
            (np.datetime64(day, "D") - last_days[keep]).astype(float),
        )
    return found


def _open_signals(days: Sequence[date]) -> dict[date, Source]:
    first, last = days[0], days[-1]
    rows = list(
        RiskSignal.objects.filter(
            Q(closed_on__isnull=True) | Q(closed_on__gt=first), opened_on__lte=last
        )
        .order_by("customer_id")
        .values_list("customer_id", "opened_on", "closed_on")
    )
    if not rows:
        return dict.fromkeys(days, _EMPTY)
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    opened, closed = _day64([r[1] for r in rows]), _day64([r[2] for r in rows])
    found: dict[date, Source] = {}
    for day in days:
        d64 = np.datetime64(day, "D")
        unique, counts = np.unique(ids[(opened <= d64) & (closed > d64)], return_counts=True)
        found[day] = (unique, counts.astype(float)) if len(unique) else _EMPTY
    return found


def _sentiment(days: Sequence[date]) -> dict[date, Source]:
    first, last = days[0], days[-1]
    rows = list(
        CsmSentiment.objects.filter(
            recorded_on__lte=last,
            recorded_on__gt=first - timedelta(days=SENTIMENT_WINDOW_DAYS),
        )
        .order_by("customer_id", "-recorded_on", "-id")
        .values_list("customer_id", "recorded_on", "sentiment")
    )
    if not rows:
        return dict.fromkeys(days, _EMPTY)
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    recorded = _day64([r[1] for r in rows])
    values = np.array([r[2] for r in rows], dtype=float)
    found: dict[date, Source] = {}
    for day in days:
        d64 = np.datetime64(day, "D")
        within = (recorded <= d64) & (recorded > d64 - np.timedelta64(SENTIMENT_WINDOW_DAYS, "D"))
        found[day] = _first_per_customer(ids[within], values[within])  # the latest first
    return found


_SOURCES: dict[str, Callable[[Sequence[date]], dict[date, Source]]] = {
    MeasureSource.DAYS_TO_RENEWAL: _days_to_renewal,
    MeasureSource.ONBOARDING_PROGRESS: _onboarding_progress,
    MeasureSource.NPS: _nps,
    MeasureSource.DAYS_SINCE_TOUCH: _days_since_touch,
    MeasureSource.OPEN_SIGNALS: _open_signals,
    MeasureSource.SENTIMENT: _sentiment,
}
# A customer absent from these sources has this value (not missing): no open signal is 0.
_ABSENT_VALUE: dict[str, float] = {MeasureSource.OPEN_SIGNALS: 0.0}


def gather_inputs_range(
    days: Sequence[date], specs: Iterable[_MeasureSpec]
) -> dict[date, dict[str, Source]]:
    """Every source the measures read, for each of ``days`` (consecutive, ascending): one
    query or scan per source for the whole range."""
    days = list(days)
    specs = list(specs)
    metric_keys = sorted({s.metric_key for s in specs if s.source == MeasureSource.METRIC})
    inputs = _metric_range(days, metric_keys)
    for source in sorted({s.source for s in specs if s.source != MeasureSource.METRIC}):
        for day, found in _SOURCES[source](days).items():
            inputs[day][source] = found
    return inputs


def gather_inputs(day: date, specs: Iterable[_MeasureSpec]) -> dict[str, Source]:
    """Every source the measures read, as of ``day`` (one query or scan per source)."""
    return gather_inputs_range([day], specs)[day]


def _align(ids: np.ndarray, source: Source, absent: float = np.nan) -> np.ndarray:
    """The source's value for each id (``absent`` where it has none)."""
    src_ids, src_values = source
    out = np.full(len(ids), absent, dtype=float)
    if not len(src_ids) or not len(ids):
        return out
    pos = np.minimum(np.searchsorted(src_ids, ids), len(src_ids) - 1)
    hit = src_ids[pos] == ids
    out[hit] = src_values[pos[hit]]
    return out


# ---------------------------------------------------------------------------------------
# Arithmetic


def threshold_points(values: np.ndarray, xs: np.ndarray, ps: np.ndarray) -> np.ndarray:
    """Points by linear interpolation between ``(xs, ps)``, clamped outside; NaN stays NaN."""
    out = np.full(len(values), np.nan)
    present = ~np.isnan(values)
    if len(xs) and present.any():
        out[present] = np.interp(values[present], xs, ps)
    return out


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of ``values`` (no NaN), ties sharing the mean of their ranks."""
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    first = np.r_[True, ordered[1:] != ordered[:-1]]
    group = np.cumsum(first) - 1
    starts = np.flatnonzero(first)
    sizes = np.diff(np.r_[starts, len(ordered)])
    ranks = np.empty(len(values), dtype=float)
    ranks[order] = (starts + (sizes + 1) / 2.0)[group]
    return ranks


def percentile_points(values: np.ndarray, *, higher_is_better: bool = True) -> np.ndarray:
    """Mid-rank percentile of each value among the present ones: 0 lowest … 100 highest.

    Ties share the mean of their ranks; a lone value gets 50. NaN (missing) stays NaN.
    """
    out = np.full(len(values), np.nan)
    present = ~np.isnan(values)
    n = int(present.sum())
    if n == 0:
        return out
    if n == 1:
        out[present] = 50.0
    else:
        out[present] = (average_ranks(values[present]) - 1) / (n - 1) * 100.0
    if not higher_is_better:
        out[present] = 100.0 - out[present]
    return out


def band_of(score: float | None, *, good_from: float, watch_from: float) -> str:
    """The band of a score under a version's limits ("" when not scored)."""
    if score is None or score != score:
        return ""
    if score >= good_from:
        return str(Band.GOOD)
    if score >= watch_from:
        return str(Band.WATCH)
    return str(Band.AT_RISK)


@dataclass
class _DayScores:
    """The computed rows of one day, column-wise, sorted by customer id; ``measures`` holds
    each row's measure lines as JSON text."""

    customer_id: np.ndarray
    version_id: np.ndarray
    scorecard_id: np.ndarray
    score: np.ndarray  # NaN = not scored
    band: np.ndarray  # object array of str
    missing_weight: np.ndarray
    measures: list[str]

    @classmethod
    def empty(cls) -> "_DayScores":
        return cls(
            customer_id=np.array([], dtype=np.int64),
            version_id=np.array([], dtype=np.int64),
            scorecard_id=np.array([], dtype=np.int64),
            score=np.array([], dtype=float),
            band=np.array([], dtype=object),
            missing_weight=np.array([], dtype=float),
            measures=[],
        )


def _nullable(matrix: np.ndarray) -> list[list[float | None]]:
    """Rows of ``matrix`` as lists, NaN as None (for JSON null)."""
    cells = matrix.astype(object)
    cells[np.isnan(matrix)] = None
    rows: list[list[float | None]] = cells.tolist()
    return rows


def _score_version(
    card: _Card,
    specs: list[_MeasureSpec],
    ids: np.ndarray,
    inputs: dict[str, Source],
    *,
    metric_note: dict[str, str] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Scores, bands, missing weights and measure lines (JSON) of one version's customers.

    ``metric_note`` is added to the lines of metric measures (the metric day read, when it
    is not the day scored)."""
    n, m = len(ids), len(specs)
    points = np.full((n, m), np.nan)
    values = np.full((n, m), np.nan)
    weights = np.array([s.weight for s in specs], dtype=float)
    for j, spec in enumerate(specs):
        column = _align(ids, inputs[spec.source_key], _ABSENT_VALUE.get(spec.source, np.nan))
        values[:, j] = column
        if spec.mapping == Mapping.PERCENTILE:
            points[:, j] = percentile_points(column, higher_is_better=spec.higher_is_better)
        else:
            points[:, j] = threshold_points(column, spec.xs, spec.ps)
    points = np.round(points, PLACES)
    present = ~np.isnan(points)
    values[~present] = np.nan
    present_weight = (present * weights).sum(axis=1)
    total_weight = float(weights.sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(present_weight[:, None] > 0, weights / present_weight[:, None], np.nan)
        contribution = np.round(points * share, PLACES)
        raw = np.where(
            present_weight > 0, np.nansum(points * weights, axis=1) / present_weight, np.nan
        )
    score = np.round(raw, PLACES)
    missing = np.round((total_weight - present_weight) / total_weight, 6)
    bands = np.full(n, "", dtype=object)
    scored = ~np.isnan(score)
    bands[scored & (score >= card.good_from)] = str(Band.GOOD)
    bands[scored & (score < card.good_from) & (score >= card.watch_from)] = str(Band.WATCH)
    bands[scored & (score < card.watch_from)] = str(Band.AT_RISK)
    fixed = [
        (
            s.key,
            s.label,
            s.source,
            s.metric_key,
            s.weight,
            (metric_note or {}) if s.source == MeasureSource.METRIC else {},
        )
        for s in specs
    ]
    measures = [
        orjson.dumps(
            [
                {
                    "key": key,
                    "label": label,
                    "source": source,
                    "metric": metric,
                    "value": value,
                    "points": point,
                    "weight": weight,
                    "contribution": part,
                    "missing": point is None,
                    **note,
                }
                for (key, label, source, metric, weight, note), value, point, part in zip(
                    fixed, row_values, row_points, row_parts, strict=True
                )
            ]
        ).decode()
        for row_values, row_points, row_parts in zip(
            _nullable(values), _nullable(points), _nullable(contribution), strict=True
        )
    ]
    return score, bands, missing, measures


@dataclass(frozen=True)
class _Range:
    """What scoring the days of a range reads, loaded once for the range."""

    cards: list[_Card]
    specs: dict[int, list[_MeasureSpec]]
    used: list[int]  # indexes into ``cards`` of the scorecards scored
    assigned: dict[date, tuple[np.ndarray, np.ndarray]]
    inputs: dict[date, dict[str, Source]]
    metric_days: dict[date, date | None]


def _load_range(days: Sequence[date], *, scorecard_id: int | None = None) -> _Range | None:
    """The scorecards, the customers of each day and every input of ``days`` (ascending,
    consecutive); None when no published scorecard applies."""
    cards = _cards()
    if not cards:
        return None
    specs = _specs([card.version_id for card in cards])
    used = [
        index
        for index, card in enumerate(cards)
        if scorecard_id is None or card.scorecard_id == scorecard_id
    ]
    wanted = [s for i in used for s in specs[cards[i].version_id]]
    has_metric = any(s.source == MeasureSource.METRIC for s in wanted)
    return _Range(
        cards=cards,
        specs=specs,
        used=used,
        assigned=_assign(days, cards),
        inputs=gather_inputs_range(days, wanted),
        metric_days=metric_days(days) if has_metric else dict.fromkeys(days),
    )


def _compute(
    day: date, loaded: _Range | None, customer_ids: Sequence[int] | None = None
) -> _DayScores:
    if loaded is None:
        return _DayScores.empty()
    ids, which = loaded.assigned[day]
    if not len(ids):
        return _DayScores.empty()
    inputs = loaded.inputs[day]
    read = loaded.metric_days.get(day)
    note = {"metric_day": read.isoformat()} if read is not None and read != day else None
    parts: list[tuple[np.ndarray, int, int, np.ndarray, np.ndarray, np.ndarray, list[str]]] = []
    wanted = None if customer_ids is None else np.asarray(list(customer_ids), dtype=np.int64)
    for index in loaded.used:
        card = loaded.cards[index]
        specs = loaded.specs[card.version_id]
        members = ids[which == index]
        if not len(members) or not specs:
            continue
        score, bands, missing, measures = _score_version(
            card, specs, members, inputs, metric_note=note
        )
        if wanted is not None:
            keep = np.isin(members, wanted)
            members, score, bands, missing = members[keep], score[keep], bands[keep], missing[keep]
            measures = [text for text, kept in zip(measures, keep.tolist(), strict=True) if kept]
        parts.append((members, card.version_id, card.scorecard_id, score, bands, missing, measures))
    if not parts:
        return _DayScores.empty()
    customer = np.concatenate([p[0] for p in parts])
    order = np.argsort(customer, kind="stable")
    texts = [text for p in parts for text in p[6]]
    return _DayScores(
        customer_id=customer[order],
        version_id=np.concatenate([np.full(len(p[0]), p[1], dtype=np.int64) for p in parts])[order],
        scorecard_id=np.concatenate([np.full(len(p[0]), p[2], dtype=np.int64) for p in parts])[
            order
        ],
        score=np.concatenate([p[3] for p in parts])[order],
        band=np.concatenate([p[4] for p in parts])[order],
        missing_weight=np.concatenate([p[5] for p in parts])[order],
        measures=[texts[i] for i in order.tolist()],
    )


def compute_day(
    day: date, *, scorecard_id: int | None = None, customer_ids: Sequence[int] | None = None
) -> _DayScores:
    """The scores of ``day`` (not written): of every active customer, or of those scored by
    ``scorecard_id``, or of ``customer_ids`` (percentiles still ranked over everyone)."""
    return _compute(day, _load_range([day], scorecard_id=scorecard_id), customer_ids)


def _rows(day: date, scores: _DayScores) -> list[tuple[Any, ...]]:
    """(customer_id, day, version_id, score, band, measures JSON, missing_weight) per row."""
    return list(
        zip(
            scores.customer_id.tolist(),
            [day] * len(scores.customer_id),
            scores.version_id.tolist(),
            _nullable(scores.score[None, :])[0] if len(scores.score) else [],
            scores.band.tolist(),
            scores.measures,
            scores.missing_weight.tolist(),
            strict=True,
        )
    )


def _insert(rows: Sequence[tuple[Any, ...]]) -> None:
    table = HealthScore._meta.db_table
    columns = "customer_id, day, version_id, score, band, measures, missing_weight, computed_at"
    now = timezone.now()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            raw = cursor.cursor
            with raw.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row((*row, now))
            return
        adapt_day = connection.ops.adapt_datefield_value
        now_value = connection.ops.adapt_datetimefield_value(now)
        cursor.executemany(
            f"INSERT INTO {table} ({columns}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",  # noqa: S608 - table name from the model
            [
                (customer_id, adapt_day(day), version_id, score, band, measures, missing, now_value)
                for customer_id, day, version_id, score, band, measures, missing in rows
            ],
        )


def _chunks(items: Sequence[int], size: int = _DELETE_CHUNK) -> Iterable[list[int]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _write(
    computed: Sequence[tuple[date, _DayScores]],
    *,
    scorecard_id: int | None = None,
    customer_ids: Sequence[int] | None = None,
) -> None:
    """Replace the rows of the computed days (only those of ``customer_ids`` or of the
    scorecard's customers when given) with the computed ones, in one transaction."""
    rows = [row for day, scores in computed for row in _rows(day, scores)]
    days = [day for day, _scores in computed]
    with transaction.atomic():
        if customer_ids is not None:
            for chunk in _chunks(sorted({int(i) for i in customer_ids})):
                HealthScore.objects.filter(day__in=days, customer_id__in=chunk).delete()
        elif scorecard_id is not None:
            HealthScore.objects.filter(day__in=days, version__scorecard_id=scorecard_id).delete()
            for day, scores in computed:
                for chunk in _chunks([int(i) for i in scores.customer_id]):
                    HealthScore.objects.filter(day=day, customer_id__in=chunk).delete()
        else:
            HealthScore.objects.filter(day__in=days).delete()
        if rows:
            _insert(rows)


def _summary(computed: Sequence[tuple[date, _DayScores]]) -> ScoringResult:
    bands: dict[str, int] = {}
    for band in (str(b) for b in Band):
        count = sum(int((scores.band == band).sum()) for _day, scores in computed)
        if count:
            bands[band] = count
    return ScoringResult(
        days=len(computed),
        rows=sum(len(scores.customer_id) for _day, scores in computed),
        not_scored=sum(int(np.isnan(scores.score).sum()) for _day, scores in computed),
        bands=bands,
    )


def _score_days(
    days: Sequence[date],
    *,
    scorecard_id: int | None = None,
    customer_ids: Sequence[int] | None = None,
) -> ScoringResult:
    """Score and store ``days`` (ascending, consecutive): inputs loaded once for all of them,
    rows written in batches of about ``WRITE_ROWS`` (one transaction each)."""
    began = time.perf_counter()
    loaded = _load_range(days, scorecard_id=scorecard_id)
    result = ScoringResult()
    batch: list[tuple[date, _DayScores]] = []
    for day in days:
        batch.append((day, _compute(day, loaded, customer_ids)))
        if sum(len(scores.customer_id) for _day, scores in batch) >= WRITE_ROWS:
            _write(batch, scorecard_id=scorecard_id, customer_ids=customer_ids)
            result += _summary(batch)
            batch = []
    if batch:
        _write(batch, scorecard_id=scorecard_id, customer_ids=customer_ids)
        result += _summary(batch)
    return replace(result, seconds=time.perf_counter() - began)


# ---------------------------------------------------------------------------------------
# Services


def score_customers(*, day: date, customer_ids: Sequence[int] | None = None) -> ScoringResult:
    """Score every customer active on ``day`` (or only ``customer_ids``) and store the rows.

    Replaces the day's rows of those customers (all of the day's rows without
    ``customer_ids``, so a customer no longer active loses its row for that day).
    """
    result = _score_days([day], customer_ids=customer_ids)
    logger.info("health scores %s: %s rows in %.2f s", day, result.rows, result.seconds)
    return result


def backfill_scores(
    *,
    start: date,
    end: date,
    scorecard_id: int | None = None,
    progress: Progress | None = None,
) -> ScoringResult:
    """Score each day of ``[start, end]`` as the daily run would have (the same rows).

    Days go in chunks of ``CHUNK_DAYS``: each chunk's inputs are read at once (one query or
    scan per source for the chunk) and its rows written in a few bulk inserts.
    ``scorecard_id`` limits it to that scorecard's customers."""
    if end < start:
        raise ScorecardError("end", _("The end must not be before the start."))
    total = (end - start).days + 1
    result = ScoringResult()
    for offset in range(0, total, CHUNK_DAYS):
        if progress:
            progress("scoring", offset, total)
        chunk = [start + timedelta(days=i) for i in range(offset, min(total, offset + CHUNK_DAYS))]
        result += _score_days(chunk, scorecard_id=scorecard_id)
    if progress:
        progress("scoring", total, total)
    logger.info("health backfill %s–%s: %s rows in %.2f s", start, end, result.rows, result.seconds)
    return result


def recompute_history(
    *, scorecard_id: int, start: date, end: date, progress: Progress | None = None
) -> ScoringResult:
    """Re-score ``[start, end]`` for the customers of the scorecard with its current published
    version (after a change), replacing their stored rows of those days."""
    if not Scorecard.objects.filter(pk=scorecard_id).exists():
        raise ScorecardError("scorecard_id", _("There is no such scorecard."))
    return backfill_scores(start=start, end=end, scorecard_id=scorecard_id, progress=progress)


def record_band_changes(*, day: date) -> int:
    """Timeline ``health.band_changed`` for each customer whose band on ``day`` differs from
    its band on its previous scored day; returns how many were written.

    Set-based (one query finds them, one bulk insert writes them); a customer whose first
    score this is gets no entry, and running it twice for a day writes nothing new.
    """
    previous = (
        HealthScore.objects.filter(customer=OuterRef("customer"), day__lt=day)
        .exclude(band="")
        .order_by("-day")
        .values("band")[:1]
    )
    changed = _band_rows(day, previous)
    if not changed:
        return 0
    done = set(
        TimelineEntry.objects.filter(
            kind=TimelineKind.HEALTH_BAND_CHANGED, payload__day=day.isoformat()
        ).values_list("customer_id", flat=True)
    )
    labels = dict(Band.choices)
    moment = timezone.now() if day >= timezone.localdate() else _midnight(day)
    entries = [
        TimelineEntry(
            customer_id=customer_id,
            kind=TimelineKind.HEALTH_BAND_CHANGED,
            occurred_at=moment,
            title=_("Health band changed from {old} to {new} (score {score})").format(
                old=labels.get(old, old), new=labels.get(new, new), score=_round(score)
            )[:200],
            payload={"from": old, "to": new, "score": score, "day": day.isoformat()},
        )
        for customer_id, old, new, score in changed
        if customer_id not in done
    ]
    TimelineEntry.objects.bulk_create(entries, batch_size=2000)
    return len(entries)


def _band_rows(day: date, previous: Any) -> list[tuple[int, str, str, float | None]]:
    return list(
        HealthScore.objects.filter(day=day)
        .exclude(band="")
        .annotate(previous=Subquery(previous))
        .filter(previous__isnull=False)
        .exclude(previous=F("band"))
        .values_list("customer_id", "previous", "band", "score")
        .order_by()
    )


def _round(score: float | None) -> str:
    return "—" if score is None else f"{score:.0f}"
