"""Reading health scores: latest scores, history, sparklines, explanations, the portfolio
overview and the churn that followed each band ("the score proves itself")."""

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
from django.conf import settings
from django.db.models import Count, Max, OuterRef, Q, Subquery, Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from kizuna.customers.models import Customer, Subscription
from kizuna.customers.selectors import active_on
from kizuna.health.models import Band, HealthScore, MeasureSource, RiskSignal, Severity

MOVERS = 10


# ---------------------------------------------------------------------------------------
# Scores


def latest_scores(customer_ids: Iterable[int]) -> dict[int, HealthScore]:
    """Each customer's most recent stored score (one query); customers never scored are absent."""
    ids = list(customer_ids)
    if not ids:
        return {}
    newest = (
        HealthScore.objects.filter(customer=OuterRef("customer")).order_by("-day").values("day")[:1]
    )
    rows = HealthScore.objects.filter(customer_id__in=ids, day=Subquery(newest)).select_related(
        "version__scorecard"
    )
    return {row.customer_id: row for row in rows}


def score_on(customer_id: int, day: date) -> HealthScore | None:
    """The customer's score on ``day``, or the latest one before it."""
    return (
        HealthScore.objects.filter(customer_id=customer_id, day__lte=day)
        .select_related("version__scorecard")
        .order_by("-day")
        .first()
    )


def score_history(*, customer_id: int, start: date, end: date) -> list[HealthScore]:
    """The customer's stored scores of ``[start, end]``, oldest first."""
    return list(
        HealthScore.objects.filter(customer_id=customer_id, day__gte=start, day__lte=end).order_by(
            "day"
        )
    )


def sparklines(
    customer_ids: Iterable[int], *, days: int = 90, end: date | None = None
) -> dict[int, list[float | None]]:
    """For each customer, its score on each of the ``days`` days ending on ``end`` (today),
    oldest first, None where it has none (one query). Customers without any score in the
    window map to a list of None."""
    ids = list(customer_ids)
    end = end or timezone.localdate()
    start = end - timedelta(days=days - 1)
    lines: dict[int, list[float | None]] = {pk: [None] * days for pk in ids}
    if not ids or days <= 0:
        return lines
    for customer_id, day, score in (
        HealthScore.objects.filter(customer_id__in=ids, day__gte=start, day__lte=end)
        .values_list("customer_id", "day", "score")
        .order_by()
    ):
        lines[customer_id][(day - start).days] = score
    return lines


def latest_scored_day() -> date | None:
    """The most recent day with any stored score."""
    day: date | None = HealthScore.objects.aggregate(last=Max("day"))["last"]
    return day


# ---------------------------------------------------------------------------------------
# Explanations


@dataclass(frozen=True, kw_only=True)
class Explanation:
    """A score and why it moved since ``previous_day`` (lines sorted by |delta|)."""

    customer_id: int
    day: date | None
    score: float | None
    band: str
    missing_weight: float
    version_id: int | None
    scorecard: str
    previous_day: date | None
    previous_score: float | None
    change: float | None
    lines: list[dict[str, Any]] = field(default_factory=list)

    @property
    def scored(self) -> bool:
        return self.day is not None

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("day", "previous_day"):
            data[key] = None if data[key] is None else data[key].isoformat()
        return data


def _metric_kinds(keys: Iterable[str]) -> dict[str, str]:
    from kizuna.analytics.models import MetricDefinition

    wanted = [key for key in set(keys) if key]
    if not wanted:
        return {}
    return dict(MetricDefinition.objects.filter(key__in=wanted).values_list("key", "kind"))


def _number(value: float, places: int = 1) -> str:
    text = f"{int(value):,}" if float(value).is_integer() else f"{value:,.{places}f}"
    return text.replace("-", "−")


def format_value(line: dict[str, Any], value: float | None, metric_kinds: dict[str, str]) -> str:
    """A measure's raw value as people read it (percentages for shares and changes)."""
    if value is None:
        return "—"
    source = line.get("source", "")
    kind = metric_kinds.get(line.get("metric") or "", "")
    if source == MeasureSource.METRIC and kind == "window_change":
        sign = "+" if value > 0 else ""
        return f"{sign}{_number(round(value * 100))}%"
    if (source == MeasureSource.METRIC and kind == "seat_utilisation") or (
        source == MeasureSource.ONBOARDING_PROGRESS
    ):
        return f"{_number(round(value * 100))}%"
    if source in (MeasureSource.DAYS_TO_RENEWAL, MeasureSource.DAYS_SINCE_TOUCH):
        return _("{days} days").format(days=_number(value))
    return _number(value)


def _signed(points: float) -> str:
    """Whole points with their sign, halves away from zero: +43, −32, ±0."""
    rounded = math.floor(abs(points) + 0.5) * (1 if points >= 0 else -1)
    if rounded > 0:
        return f"+{rounded}"
    if rounded < 0:
        return f"−{-rounded}"
    return "±0"


def explain_lines(
    measures: Sequence[dict[str, Any]],
    previous: Sequence[dict[str, Any]] | None,
    *,
    compare_days: int = 28,
    metric_kinds: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Per-measure lines ``{"key", "label", "value", "previous_value", "points",
    "contribution", "delta", "missing", "text"}`` sorted by |delta| (largest first), with
    ``metric_day`` — the metric day a metric measure read when it is not the day scored
    (``None`` otherwise).

    ``delta`` is the change in contribution (points of the score) since the previous row,
    None without one; a measure only in the previous row is listed as missing now.
    """
    kinds = (
        metric_kinds
        if metric_kinds is not None
        else _metric_kinds(m.get("metric") or "" for m in [*measures, *(previous or [])])
    )
    before = {m["key"]: m for m in previous or []}
    lines: list[dict[str, Any]] = []
    keys = [m["key"] for m in measures] + [
        k for k in before if k not in {m["key"] for m in measures}
    ]
    now_by_key = {m["key"]: m for m in measures}
    for key in keys:
        now = now_by_key.get(key)
        old = before.get(key)
        line = now or old or {}
        label = str(line.get("label") or key)
        value = None if now is None else now.get("value")
        missing = now is None or bool(now.get("missing"))
        contribution = None if now is None or missing else now.get("contribution")
        old_value = None if old is None or old.get("missing") else old.get("value")
        old_contribution = None if old is None or old.get("missing") else old.get("contribution")
        delta: float | None = None
        if previous is not None:
            delta = round((contribution or 0.0) - (old_contribution or 0.0), 4)
        shown = format_value(line, value, kinds)
        shown_before = format_value(line, old_value, kinds)
        text = _line_text(
            label=label,
            delta=delta,
            value=None if missing else shown,
            previous=None if old_value is None else shown_before,
            contribution=contribution,
            has_previous=previous is not None,
            compare_days=compare_days,
            direction=_direction(value if not missing else None, old_value),
        )
        lines.append(
            {
                "key": key,
                "label": label,
                "value": None if missing else value,
                "previous_value": old_value,
                "points": None if now is None else now.get("points"),
                "weight": line.get("weight"),
                "metric_day": None if now is None else now.get("metric_day"),
                "contribution": contribution,
                "delta": delta,
                "missing": missing,
                "text": text,
            }
        )
    lines.sort(key=lambda row: -abs(row["delta"] if row["delta"] is not None else 0.0))
    return lines


def _direction(value: float | None, previous: float | None) -> int:
    if value is None or previous is None:
        return 0
    return (value > previous) - (value < previous)


def _line_text(
    *,
    label: str,
    delta: float | None,
    value: str | None,
    previous: str | None,
    contribution: float | None,
    has_previous: bool,
    compare_days: int,
    direction: int,
) -> str:
    if not has_previous:
        if value is None:
            return _("{label}: no value; its weight is spread over the other measures").format(
                label=label
            )
        return _("{points}: {label} is {value}").format(
            points=_signed(contribution or 0.0), label=label, value=value
        )
    change = _signed(delta or 0.0)
    if value is None and previous is None:
        return _("{label}: no value; its weight is spread over the other measures").format(
            label=label
        )
    if value is None:
        return _(
            "{change}: {label} has no value now (was {previous}); its weight is spread over "
            "the other measures"
        ).format(change=change, label=label, previous=previous)
    if previous is None:
        return _("{change}: {label} is {value} (no value {days} days earlier)").format(
            change=change, label=label, value=value, days=compare_days
        )
    if direction < 0:
        return _("{change}: {label} fell from {previous} to {value}").format(
            change=change, label=label, previous=previous, value=value
        )
    if direction > 0:
        return _("{change}: {label} rose from {previous} to {value}").format(
            change=change, label=label, previous=previous, value=value
        )
    return _("{change}: {label} unchanged at {value}").format(
        change=change, label=label, value=value
    )


def explain(*, customer_id: int, day: date | None = None, compare_days: int = 28) -> Explanation:
    """The score on ``day`` (the latest on or before it; the latest of all when None) and
    why it differs from the score ``compare_days`` earlier (the latest on or before then).

    Without any score the explanation has ``day`` None and no lines.
    """
    current = (
        score_on(customer_id, day)
        if day is not None
        else HealthScore.objects.filter(customer_id=customer_id)
        .select_related("version__scorecard")
        .order_by("-day")
        .first()
    )
    if current is None:
        return Explanation(
            customer_id=customer_id,
            day=None,
            score=None,
            band="",
            missing_weight=0.0,
            version_id=None,
            scorecard="",
            previous_day=None,
            previous_score=None,
            change=None,
        )
    earlier = score_on(customer_id, current.day - timedelta(days=compare_days))
    lines = explain_lines(
        current.measures,
        None if earlier is None else earlier.measures,
        compare_days=compare_days,
    )
    change = None
    if earlier is not None and earlier.score is not None and current.score is not None:
        change = round(current.score - earlier.score, 4)
    return Explanation(
        customer_id=customer_id,
        day=current.day,
        score=current.score,
        band=current.band,
        missing_weight=current.missing_weight,
        version_id=current.version_id,
        scorecard=current.version.scorecard.name,
        previous_day=None if earlier is None else earlier.day,
        previous_score=None if earlier is None else earlier.score,
        change=change,
        lines=lines,
    )


# ---------------------------------------------------------------------------------------
# Portfolio overview


@dataclass(frozen=True, kw_only=True)
class BandCount:
    band: str
    label: str
    customers: int
    arr: Decimal


@dataclass(frozen=True, kw_only=True)
class Mover:
    customer_id: int
    name: str
    score: float | None
    previous_score: float | None
    change: float
    band: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class Overview:
    """The portfolio on ``day`` (None: nothing scored yet). ARR is 12 × the MRR of the
    subscriptions active on ``day``, summed as stored (currencies are not converted)."""

    day: date | None
    customers: int = 0  # scored rows on the day (including "not scored": every measure missing)
    not_scored: int = 0
    bands: list[BandCount] = field(default_factory=list)
    at_risk_arr: Decimal = Decimal(0)
    currency: str = ""
    movers: list[Mover] = field(default_factory=list)
    signals_by_severity: dict[str, int] = field(default_factory=dict)
    compare_days: int = 28

    @property
    def empty(self) -> bool:
        return self.day is None

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["day"] = None if self.day is None else self.day.isoformat()
        data["at_risk_arr"] = float(self.at_risk_arr)
        for band in data["bands"]:
            band["arr"] = float(band["arr"])
        return data


def _population(segment: str, touch_model: str, owner_id: int | None) -> Q:
    condition = Q()
    if segment:
        condition &= Q(segment=segment)
    if touch_model:
        condition &= Q(touch_model=touch_model)
    if owner_id is not None:
        condition &= (
            Q(onboarding_owner_id=owner_id)
            | Q(adoption_owner_id=owner_id)
            | Q(expansion_owner_id=owner_id)
        )
    return condition


def health_overview(
    *,
    day: date | None = None,
    segment: str = "",
    touch_model: str = "",
    owner_id: int | None = None,
    compare_days: int = 28,
) -> Overview:
    """Counts and ARR per band on ``day`` (default: the latest scored day), at-risk ARR, the
    ``MOVERS`` largest score drops over ``compare_days`` with their top reason, and the open
    risk signals by severity — for the customers matching segment / touch model / owner
    (their current values)."""
    day = day or latest_scored_day()
    customers = Customer.objects.filter(_population(segment, touch_model, owner_id)).order_by()
    signals = dict(
        RiskSignal.objects.filter(closed_on__isnull=True, customer__in=customers.values("pk"))
        .values("severity")
        .annotate(n=Count("pk"))
        .values_list("severity", "n")
        .order_by()
    )
    by_severity = {str(s): int(signals.get(s, 0)) for s in Severity.values}
    if day is None:
        return Overview(day=None, signals_by_severity=by_severity, compare_days=compare_days)
    arr = (
        Subscription.objects.filter(active_on(day), customer=OuterRef("customer"))
        .order_by()
        .values("customer")
        .annotate(total=Sum("mrr"))
        .values("total")[:1]
    )
    rows = (
        HealthScore.objects.filter(day=day, customer__in=customers.values("pk"))
        .annotate(customer_mrr=Subquery(arr))
        .values("band")
        .annotate(n=Count("pk"), mrr=Sum("customer_mrr"))
        .values_list("band", "n", "mrr")
        .order_by()
    )
    counts = {band: (int(n), Decimal(mrr or 0) * 12) for band, n, mrr in rows}
    bands = [
        BandCount(
            band=str(value),
            label=str(label),
            customers=counts.get(str(value), (0, Decimal(0)))[0],
            arr=counts.get(str(value), (0, Decimal(0)))[1],
        )
        for value, label in Band.choices
    ]
    return Overview(
        day=day,
        customers=sum(n for n, _arr in counts.values()),
        not_scored=counts.get("", (0, Decimal(0)))[0],
        bands=bands,
        at_risk_arr=counts.get(str(Band.AT_RISK), (0, Decimal(0)))[1],
        currency=str(settings.KIZUNA_BASE_CURRENCY),
        movers=_movers(day, customers, compare_days),
        signals_by_severity=by_severity,
        compare_days=compare_days,
    )


def _movers(day: date, customers: Any, compare_days: int) -> list[Mover]:
    """The largest drops between the score on ``day`` and on ``day − compare_days``."""
    before = HealthScore.objects.filter(
        customer=OuterRef("customer"), day=day - timedelta(days=compare_days)
    ).values("score")[:1]
    rows = list(
        HealthScore.objects.filter(
            day=day, score__isnull=False, customer__in=customers.values("pk")
        )
        .annotate(before=Subquery(before))
        .filter(before__isnull=False)
        .values_list("customer_id", "score", "before")
        .order_by()
    )
    if not rows:
        return []
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    change = np.array([r[1] - r[2] for r in rows], dtype=float)
    order = np.lexsort((ids, change))  # most negative first, ties by id
    picked = [int(i) for i in order[:MOVERS] if change[int(i)] < 0]
    if not picked:
        return []
    chosen = [int(ids[i]) for i in picked]
    now = {
        row.customer_id: row
        for row in HealthScore.objects.filter(day=day, customer_id__in=chosen).select_related(
            "customer"
        )
    }
    then = {
        row.customer_id: row
        for row in HealthScore.objects.filter(
            day=day - timedelta(days=compare_days), customer_id__in=chosen
        )
    }
    kinds = _metric_kinds(
        m.get("metric") or "" for row in [*now.values(), *then.values()] for m in row.measures
    )
    movers = []
    for index in picked:
        customer_id = int(ids[index])
        current, earlier = now[customer_id], then[customer_id]
        lines = explain_lines(
            current.measures, earlier.measures, compare_days=compare_days, metric_kinds=kinds
        )
        movers.append(
            Mover(
                customer_id=customer_id,
                name=current.customer.name,
                score=current.score,
                previous_score=earlier.score,
                change=round(float(change[index]), 4),
                band=current.band,
                reason=lines[0]["text"] if lines else "",
            )
        )
    return movers


# ---------------------------------------------------------------------------------------
# The score proves itself


@dataclass(frozen=True, kw_only=True)
class BandOutcome:
    """Monthly snapshots (scores on the 1st of a month) in a band, and how many of those
    customers were no longer active ``horizon_days`` later. ``pending`` snapshots are too
    recent to know (their horizon ends after ``as_of``) and are not in the rate."""

    band: str
    label: str
    snapshots: int
    churned: int
    rate: float | None
    pending: int

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def band_outcomes(
    *,
    scorecard_id: int,
    horizon_days: int = 90,
    start: date | None = None,
    end: date | None = None,
    as_of: date | None = None,
) -> list[BandOutcome]:
    """For each band, the scorecard's monthly snapshots in ``[start, end]`` scored in it and
    the share churned within ``horizon_days`` after (not active on snapshot + horizon).

    Two queries (the snapshots; the subscriptions of their customers), joined in DuckDB.
    """
    as_of = as_of or timezone.localdate()
    snapshots = HealthScore.objects.filter(
        version__scorecard_id=scorecard_id, day__day=1, score__isnull=False
    ).exclude(band="")
    if start is not None:
        snapshots = snapshots.filter(day__gte=start)
    if end is not None:
        snapshots = snapshots.filter(day__lte=end)
    rows = list(snapshots.values_list("customer_id", "day", "band").order_by())
    counts: dict[str, tuple[int, int, int]] = {}
    if rows:
        subscriptions = list(
            Subscription.objects.filter(
                customer_id__in=snapshots.values("customer_id")
            ).values_list("customer_id", "start_date", "end_date")
        )
        counts = _outcomes(rows, subscriptions, horizon_days, as_of)
    outcomes = []
    for value, label in Band.choices:
        known, churned, pending = counts.get(str(value), (0, 0, 0))
        outcomes.append(
            BandOutcome(
                band=str(value),
                label=str(label),
                snapshots=known,
                churned=churned,
                rate=None if not known else round(churned / known, 6),
                pending=pending,
            )
        )
    return outcomes


def _outcomes(
    rows: list[tuple[int, date, str]],
    subscriptions: list[tuple[int, date, date | None]],
    horizon_days: int,
    as_of: date,
) -> dict[str, tuple[int, int, int]]:
    snaps = pa.table(
        {
            "customer_id": pa.array([r[0] for r in rows], pa.int64()),
            "day": pa.array([r[1] for r in rows], pa.date32()),
            "band": pa.array([r[2] for r in rows], pa.string()),
        }
    )
    subs = pa.table(
        {
            "customer_id": pa.array([r[0] for r in subscriptions], pa.int64()),
            "start_date": pa.array([r[1] for r in subscriptions], pa.date32()),
            "end_date": pa.array([r[2] for r in subscriptions], pa.date32()),
        }
    )
    con = duckdb.connect()
    try:
        con.execute("SET enable_progress_bar=false")
        con.register("snaps", snaps)
        con.register("subs", subs)
        result = con.execute(
            "WITH s AS (SELECT customer_id, band, day + to_days(CAST(? AS INTEGER)) AS later "
            "FROM snaps), "
            "judged AS (SELECT s.band, s.later, EXISTS (SELECT 1 FROM subs b "
            "WHERE b.customer_id = s.customer_id AND b.start_date <= s.later "
            "AND (b.end_date IS NULL OR b.end_date > s.later)) AS active FROM s) "
            "SELECT band, count(*) FILTER (WHERE later <= ?), "
            "count(*) FILTER (WHERE later <= ? AND NOT active), "
            "count(*) FILTER (WHERE later > ?) FROM judged GROUP BY band",
            [horizon_days, as_of, as_of, as_of],
        ).fetchall()
    finally:
        con.close()
    return {band: (int(k), int(c), int(p)) for band, k, c, p in result}


__all__ = [
    "BandCount",
    "BandOutcome",
    "Explanation",
    "Mover",
    "Overview",
    "band_outcomes",
    "explain",
    "explain_lines",
    "format_value",
    "health_overview",
    "latest_scored_day",
    "latest_scores",
    "score_history",
    "score_on",
    "sparklines",
]
