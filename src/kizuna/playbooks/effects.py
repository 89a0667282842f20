"""Effect of a playbook (the "check" of PDCA): how often it fired, what its tasks became, and
whether customers it acted on did better than the customers it held out.

The unit is a run (one customer, one trigger occurrence). A run is measured ``days`` after it
fired; younger runs are *pending* and not counted. The outcome of a run, by the playbook's
``outcome["kind"]``:

- ``recovered``: the metric ``days`` after the trigger is at least its value 28 days before
  the trigger (usage came back to where it was before the drop);
- ``improved``: the metric ``days`` after the trigger is above its value on the trigger day;
- ``retained``: the customer is still active (a subscription in service) ``days`` after.

A run whose metric values are missing on either day is *unmeasured* (never counted as a
failure). Runs the playbook acted on are compared with the held-out runs whatever happened
to their actions (intention to treat: a failed email is part of what the playbook does).

Each group's rate comes with a 95% Wilson score interval; the difference (acted − held out)
with Newcombe's hybrid score interval (method 10), which behaves with small groups and rates
near 0 or 1 where the normal approximation does not. Whether the sample can tell yet comes
from the usual power calculation for two proportions with unequal groups (Fleiss, 80% power,
5% two-sided), for a 10-point difference.
"""

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import StrEnum
from statistics import NormalDist
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
from django.conf import settings
from django.db.models import Count, Q
from django.db.models.functions import TruncMonth
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from kizuna.analytics import lake
from kizuna.customers.models import Subscription
from kizuna.customers.selectors import active_on
from kizuna.playbooks.models import Playbook, PlaybookRun, RunStatus, Task, TaskStatus

CONFIDENCE = 0.95
POWER = 0.80
DETECTABLE_DIFFERENCE = 0.10
RECOVERY_BASELINE_DAYS = 28


def _z(confidence: float = CONFIDENCE) -> float:
    return NormalDist().inv_cdf(1 - (1 - confidence) / 2)


@dataclass(frozen=True)
class Rate:
    """``numerator / denominator`` with its 95% Wilson interval; all ``None`` when empty."""

    numerator: int
    denominator: int
    value: float | None
    low: float | None
    high: float | None


@dataclass(frozen=True)
class Difference:
    """Acted rate − held-out rate with its 95% interval (Newcombe)."""

    value: float
    low: float
    high: float


def wilson(successes: int, n: int, *, confidence: float = CONFIDENCE) -> Rate:
    """The rate ``successes / n`` with its Wilson score interval (``None`` values for n = 0)."""
    if n <= 0:
        return Rate(successes, n, None, None, None)
    z = _z(confidence)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return Rate(successes, n, p, low, high)


def newcombe(first: Rate, second: Rate) -> Difference | None:
    """``first − second`` with Newcombe's hybrid score interval, from the two Wilson intervals."""
    if first.value is None or second.value is None:
        return None
    assert first.low is not None
    assert first.high is not None
    assert second.low is not None
    assert second.high is not None
    d = first.value - second.value
    low = d - math.sqrt((first.value - first.low) ** 2 + (second.high - second.value) ** 2)
    high = d + math.sqrt((first.high - first.value) ** 2 + (second.value - second.low) ** 2)
    return Difference(d, max(-1.0, low), min(1.0, high))


def required_sample(
    *,
    baseline: float,
    ratio: float,
    difference: float = DETECTABLE_DIFFERENCE,
    power: float = POWER,
    confidence: float = CONFIDENCE,
) -> tuple[int, int]:
    """Runs needed (held out, acted) to detect ``difference`` from ``baseline``.

    ``ratio`` = acted per held-out run (9 for a 10% holdout). Fleiss' formula without
    continuity correction: n₁ = [z_α √((1 + 1/k) p̄ q̄) + z_β √(p₁q₁ + p₂q₂/k)]² / Δ², with
    p₁ the held-out rate, p₂ = p₁ ± Δ the acted rate, k the ratio and p̄ = (p₁ + k p₂)/(1 + k).
    """
    p1 = min(max(baseline, 0.0), 1.0)
    p2 = p1 + difference if p1 + difference <= 1 else p1 - difference
    k = ratio
    p_bar = (p1 + k * p2) / (1 + k)
    z_alpha = _z(confidence)
    z_beta = NormalDist().inv_cdf(power)
    root = z_alpha * math.sqrt((1 + 1 / k) * p_bar * (1 - p_bar)) + z_beta * math.sqrt(
        p1 * (1 - p1) + p2 * (1 - p2) / k
    )
    held = math.ceil(root * root / (difference * difference))
    return held, math.ceil(held * k)


class Verdict(StrEnum):
    NO_OUTCOME = "no_outcome"
    NO_HOLDOUT = "no_holdout"
    NOT_ENOUGH = "not_enough"
    HELPS = "helps"
    HURTS = "hurts"
    NO_DIFFERENCE = "no_difference"


@dataclass(frozen=True)
class MonthCount:
    month: date
    acted: int
    held_out: int


@dataclass(frozen=True)
class Effect:
    """What ``playbook_effect`` returns (frozen: safe to hand to templates and the API)."""

    playbook_id: int
    as_of: date
    fired: int
    acted: int
    held_out: int
    fired_last_30_days: int
    failed_runs: int
    by_month: list[MonthCount]
    tasks_created: int
    tasks_completed: int
    tasks_open: int
    completion: Rate
    median_days_to_completion: float | None
    outcome: dict[str, Any]
    outcome_label: str
    acted_outcome: Rate | None
    held_out_outcome: Rate | None
    difference: Difference | None
    pending: int
    unmeasured: int
    verdict: Verdict
    verdict_text: str
    needed_more: int | None = None
    needed: tuple[int, int] | None = field(default=None)


def outcome_label(outcome: dict[str, Any]) -> str:
    """A person's words for an outcome definition (empty when there is none)."""
    kind, days, metric = outcome.get("kind"), outcome.get("days"), outcome.get("metric", "")
    if kind == "recovered":
        return _(
            "{metric} {days} days later is back to at least its level 28 days before the trigger"
        ).format(metric=metric, days=days)
    if kind == "improved":
        return _("{metric} {days} days later is higher than on the trigger day").format(
            metric=metric, days=days
        )
    if kind == "retained":
        return _("the customer is still a customer {days} days later").format(days=days)
    return ""


def _metric_values(
    metric: str, rows: Sequence[tuple[int, int, date, date]]
) -> dict[int, tuple[float | None, float | None]]:
    """``run_id → (value on the first day, value on the second day)`` from the metric lake,
    in one DuckDB query over the day files needed."""
    if not rows:
        return {}
    root = lake.metrics_dir()
    days = {day for _run, _customer, first, second in rows for day in (first, second)}
    files = [
        str(path)
        for path in (root / day.isoformat() / "metrics.parquet" for day in sorted(days))
        if path.exists()
    ]
    if not files:
        return {run: (None, None) for run, *_rest in rows}
    runs = pa.table(
        {
            "run_id": pa.array([row[0] for row in rows], pa.int64()),
            "customer_id": pa.array([row[1] for row in rows], pa.int64()),
            "first_day": pa.array([row[2] for row in rows], pa.date32()),
            "second_day": pa.array([row[3] for row in rows], pa.date32()),
        }
    )
    con = duckdb.connect(config={"threads": settings.KIZUNA_DUCKDB_THREADS})
    try:
        con.execute("SET enable_progress_bar=false")
        con.register("runs", runs)
        result = con.execute(
            "WITH m AS (SELECT CAST(day AS DATE) AS day, customer_id, value "
            "FROM read_parquet(?) WHERE metric = ?) "
            "SELECT r.run_id, a.value, b.value FROM runs r "
            "LEFT JOIN m a ON a.customer_id = r.customer_id AND a.day = r.first_day "
            "LEFT JOIN m b ON b.customer_id = r.customer_id AND b.day = r.second_day",
            [files, metric],
        ).fetchall()
    finally:
        con.close()
    return {int(run): (first, second) for run, first, second in result}


def _retained(rows: Iterable[tuple[int, int, date]]) -> dict[int, bool]:
    """``run_id → customer active on its day``; one query per distinct day (a loop over days)."""
    by_day: dict[date, list[tuple[int, int]]] = defaultdict(list)
    for run, customer, day in rows:
        by_day[day].append((run, customer))
    result: dict[int, bool] = {}
    for day, pairs in by_day.items():
        active = set(
            Subscription.objects.filter(active_on(day), customer_id__in={c for _r, c in pairs})
            .values_list("customer_id", flat=True)
            .distinct()
        )
        result.update({run: customer in active for run, customer in pairs})
    return result


def measure_outcomes(
    *, outcome: dict[str, Any], runs: Sequence[tuple[int, int, date]]
) -> dict[int, bool | None]:
    """Per run ``(id, customer_id, triggered_on)``, whether the outcome happened (None:
    unmeasured). Runs must already be old enough (``triggered_on + days <= as_of``)."""
    kind, days = outcome["kind"], int(outcome["days"])
    if kind == "retained":
        retained = _retained((run, customer, day + timedelta(days)) for run, customer, day in runs)
        return {run: retained.get(run) for run, _customer, _day in runs}
    before = RECOVERY_BASELINE_DAYS if kind == "recovered" else 0
    values = _metric_values(
        str(outcome["metric"]),
        [
            (run, customer, day - timedelta(before), day + timedelta(days))
            for run, customer, day in runs
        ],
    )
    measured: dict[int, bool | None] = {}
    for run, _customer, _day in runs:
        first, second = values.get(run, (None, None))
        if first is None or second is None:
            measured[run] = None
        elif kind == "recovered":
            measured[run] = second >= first
        else:
            measured[run] = second > first
    return measured


def _verdict(
    *,
    playbook: Playbook,
    acted: Rate | None,
    held: Rate | None,
    difference: Difference | None,
) -> tuple[Verdict, str, int | None, tuple[int, int] | None]:
    if not playbook.outcome or acted is None or held is None:
        return (
            Verdict.NO_OUTCOME,
            _("This playbook has no outcome to measure; its effect shows as runs and tasks."),
            None,
            None,
        )
    share = playbook.holdout_share
    if share <= 0 or share >= 1:
        if held.denominator == 0:
            return (
                Verdict.NO_HOLDOUT,
                _(
                    "Nobody is held out, so there is nothing to compare with: set a holdout "
                    "share (for example 10%) to measure the effect."
                ),
                None,
                None,
            )
        ratio = max(acted.denominator, 1) / held.denominator
    else:
        ratio = (1 - share) / share
    if difference is not None and difference.low > 0:
        return (Verdict.HELPS, _("The playbook helps: the difference is above zero."), None, None)
    if difference is not None and difference.high < 0:
        return (
            Verdict.HURTS,
            _("Customers the playbook acted on did worse than those held out."),
            None,
            None,
        )
    measured = [rate for rate in (held, acted) if rate.denominator]
    if held.value is not None:
        baseline = held.value
    elif measured:
        baseline = sum(r.numerator for r in measured) / sum(r.denominator for r in measured)
    else:
        baseline = 0.5
    need_held, need_acted = required_sample(baseline=baseline, ratio=ratio)
    more_held = max(0, need_held - held.denominator)
    more_acted = max(0, need_acted - acted.denominator)
    # Customers arrive in the holdout's proportions: what the slower group needs decides.
    more = max(math.ceil(more_held * (1 + ratio)), math.ceil(more_acted * (1 + ratio) / ratio))
    if more <= 0 and difference is not None:
        return (
            Verdict.NO_DIFFERENCE,
            _("No difference detected: the sample is large enough to see a 10-point difference."),
            0,
            (need_held, need_acted),
        )
    text = ngettext(
        "Not enough customers yet: about {n} more measured run is needed to detect a 10-point "
        "difference.",
        "Not enough customers yet: about {n} more measured runs are needed to detect a 10-point "
        "difference.",
        more,
    ).format(n=more)
    return Verdict.NOT_ENOUGH, text, more, (need_held, need_acted)


def playbook_effect(*, playbook: Playbook, as_of: date | None = None) -> Effect:
    """The playbook's effect as of ``as_of`` (default today): runs, tasks and outcome."""
    day = as_of or timezone.localdate()
    runs = PlaybookRun.objects.filter(playbook=playbook, triggered_on__lte=day)
    counts = runs.aggregate(
        fired=Count("id"),
        held_out=Count("id", filter=Q(holdout=True)),
        recent=Count("id", filter=Q(triggered_on__gt=day - timedelta(days=30))),
        failed=Count("id", filter=Q(status=RunStatus.FAILED)),
    )
    by_month = [
        MonthCount(
            month=row["month"].date() if hasattr(row["month"], "date") else row["month"],
            acted=row["acted"],
            held_out=row["held"],
        )
        for row in runs.annotate(month=TruncMonth("triggered_on"))
        .values("month")
        .annotate(
            acted=Count("id", filter=Q(holdout=False)), held=Count("id", filter=Q(holdout=True))
        )
        .order_by("month")
    ]
    tasks = Task.objects.filter(run__playbook=playbook, run__triggered_on__lte=day)
    task_counts = tasks.aggregate(
        created=Count("id"),
        done=Count("id", filter=Q(status=TaskStatus.DONE)),
        closed=Count("id", filter=Q(status__in=[TaskStatus.DONE, TaskStatus.CANCELLED])),
    )
    durations = [
        (completed - created).total_seconds() / 86400
        for created, completed in tasks.filter(
            status=TaskStatus.DONE, completed_at__isnull=False
        ).values_list("created_at", "completed_at")
        if completed is not None
    ]
    median = round(float(np.median(durations)), 1) if durations else None

    outcome = dict(playbook.outcome or {})
    acted_rate: Rate | None = None
    held_rate: Rate | None = None
    difference: Difference | None = None
    pending = unmeasured = 0
    if outcome:
        days = int(outcome["days"])
        cutoff = day - timedelta(days=days)
        pending = runs.filter(triggered_on__gt=cutoff).count()
        matured = list(
            runs.filter(triggered_on__lte=cutoff).values_list(
                "id", "customer_id", "triggered_on", "holdout"
            )
        )
        measured = measure_outcomes(
            outcome=outcome, runs=[(run, customer, on) for run, customer, on, _h in matured]
        )
        tally = {True: [0, 0], False: [0, 0]}  # holdout → [successes, measured]
        for run, _customer, _on, holdout in matured:
            result = measured.get(run)
            if result is None:
                unmeasured += 1
                continue
            tally[holdout][1] += 1
            tally[holdout][0] += int(result)
        acted_rate = wilson(*tally[False])
        held_rate = wilson(*tally[True])
        difference = newcombe(acted_rate, held_rate)
    verdict, text, more, needed = _verdict(
        playbook=playbook, acted=acted_rate, held=held_rate, difference=difference
    )
    return Effect(
        playbook_id=playbook.pk,
        as_of=day,
        fired=counts["fired"],
        acted=counts["fired"] - counts["held_out"],
        held_out=counts["held_out"],
        fired_last_30_days=counts["recent"],
        failed_runs=counts["failed"],
        by_month=by_month,
        tasks_created=task_counts["created"],
        tasks_completed=task_counts["done"],
        tasks_open=task_counts["created"] - task_counts["closed"],
        completion=wilson(task_counts["done"], task_counts["created"]),
        median_days_to_completion=median,
        outcome=outcome,
        outcome_label=outcome_label(outcome),
        acted_outcome=acted_rate,
        held_out_outcome=held_rate,
        difference=difference,
        pending=pending,
        unmeasured=unmeasured,
        verdict=verdict,
        verdict_text=text,
        needed_more=more,
        needed=needed,
    )


def fired_last_30_days(playbook_ids: Sequence[int], *, as_of: date | None = None) -> dict[int, int]:
    """Runs per playbook in the 30 days up to ``as_of`` (one query, for the list page)."""
    day = as_of or timezone.localdate()
    rows = (
        PlaybookRun.objects.filter(
            playbook_id__in=playbook_ids,
            triggered_on__gt=day - timedelta(days=30),
            triggered_on__lte=day,
        )
        .values("playbook_id")
        .annotate(n=Count("id"))
    )
    return {row["playbook_id"]: row["n"] for row in rows}
