"""Automatic completion of plan milestones from product events and metrics.

``first_event``: the milestone is done on the day of the customer's first usage event of
the rule's ``event_type`` at or after the plan's start (one grouped query over the lake for
every open milestone of every plan). ``metric``: done when the customer's latest metric
value (``CustomerMetric``) meets the threshold, on the day that value was measured (not
before the plan's start). A milestone whose dependencies are still open waits for them;
the next run (daily, and after every lake flush) completes it.
"""

import logging
import operator
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

import ibis
import pyarrow as pa
from django.core.exceptions import ValidationError
from django.utils import timezone

from kizuna.onboarding.models import (
    CompletedVia,
    CompletionKind,
    MilestoneStatus,
    PlanMilestone,
)

logger = logging.getLogger(__name__)

COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "=": operator.eq,
}


def compare(value: float, op: str, target: float) -> bool:
    """``value op target`` for the comparisons programs and goals use (>=, >, <=, <, =)."""
    return COMPARISONS[op](value, target)


@dataclass(frozen=True)
class _Candidate:
    plan_milestone_id: int
    plan_id: int
    customer_id: int
    start_date: date
    rule: dict[str, object]


def _candidates(kind: str) -> list[_Candidate]:
    rows = (
        PlanMilestone.objects.filter(
            plan__cancelled_at__isnull=True, milestone__completion_kind=kind
        )
        .exclude(status__in=(MilestoneStatus.DONE, MilestoneStatus.SKIPPED))
        .values_list(
            "pk", "plan_id", "plan__customer_id", "plan__start_date", "milestone__completion"
        )
    )
    return [
        _Candidate(pk, plan_id, customer_id, start, rule if isinstance(rule, dict) else {})
        for pk, plan_id, customer_id, start, rule in rows
    ]


def first_event_dates(candidates: list[_Candidate], as_of: date) -> dict[int, date]:
    """For each candidate: the first day with its event type at or after its plan's start."""
    wanted = [c for c in candidates if isinstance(c.rule.get("event_type"), str)]
    if not wanted:
        return {}
    from kizuna.analytics import engine

    table = pa.table(
        {
            "w_id": pa.array([c.plan_milestone_id for c in wanted], pa.int64()),
            "w_customer_id": pa.array([c.customer_id for c in wanted], pa.int64()),
            "w_event_type": pa.array([str(c.rule["event_type"]) for c in wanted], pa.string()),
            "w_start": pa.array([c.start_date for c in wanted], pa.date32()),
        }
    )
    start = min(c.start_date for c in wanted)
    with engine.session() as con:
        events = engine.usage_events(con, start, as_of)
        events = events.filter(
            events.customer_id.isin(sorted({c.customer_id for c in wanted})),
            events.event_type.isin(sorted({str(c.rule["event_type"]) for c in wanted})),
        )
        events = events.group_by("customer_id", "event_type", "event_date").aggregate()
        want = ibis.memtable(table)
        joined = events.join(
            want,
            [
                events.customer_id == want.w_customer_id,
                events.event_type == want.w_event_type,
                events.event_date >= want.w_start,
            ],
        )
        firsts = joined.group_by("w_id").aggregate(first=joined.event_date.min())
        rows = firsts.to_pyarrow().to_pylist()
    return {int(row["w_id"]): row["first"] for row in rows}


def metric_dates(candidates: list[_Candidate], as_of: date) -> dict[int, date]:
    """For each candidate whose metric meets its threshold: the day it was measured."""
    from kizuna.analytics.models import CustomerMetric

    keys = {str(c.rule.get("metric")) for c in candidates if c.rule.get("metric")}
    if not keys:
        return {}
    latest = {
        (customer_id, key): (value, measured)
        for customer_id, key, value, measured in CustomerMetric.objects.filter(
            customer_id__in={c.customer_id for c in candidates},
            metric__key__in=keys,
            value__isnull=False,
            as_of__lte=as_of,
        ).values_list("customer_id", "metric__key", "value", "as_of")
    }
    found: dict[int, date] = {}
    for c in candidates:
        op, target = c.rule.get("op"), c.rule.get("value")
        if op not in COMPARISONS or not isinstance(target, int | float):
            continue
        reading = latest.get((c.customer_id, str(c.rule.get("metric"))))
        if reading and reading[0] is not None and compare(reading[0], str(op), float(target)):
            found[c.plan_milestone_id] = max(reading[1], c.start_date)
    return found


def check_completions(as_of: date | None = None) -> int:
    """Complete open automatic milestones whose rule is met by ``as_of`` (default today).

    Returns the number of milestones completed. Reads the lake once (one grouped query) and
    the metric values once, whatever the number of plans.
    """
    day = as_of or timezone.localdate()
    found = first_event_dates(_candidates(CompletionKind.FIRST_EVENT), day)
    found.update(metric_dates(_candidates(CompletionKind.METRIC), day))
    if not found:
        return 0
    from kizuna.onboarding.plans import complete_milestone

    pending = list(
        PlanMilestone.objects.filter(pk__in=found)
        .select_related("milestone")
        .order_by("plan_id", "milestone__phase__position", "milestone__position", "pk")
    )
    completed = 0
    # A milestone may depend on another completed in the same run: retry while progressing.
    while pending:
        waiting: list[PlanMilestone] = []
        for pm in pending:
            try:
                complete_milestone(pm, via=CompletedVia.AUTOMATIC, on=found[pm.pk])
            except ValidationError:
                waiting.append(pm)
                continue
            completed += 1
        if len(waiting) == len(pending):
            break
        pending = waiting
    return completed
