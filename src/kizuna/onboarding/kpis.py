"""The onboarding KPIs of KPI.md, computed for a contract-start cohort.

A cohort is the customers whose first subscription started in ``[start, end)`` (a month is
``[first day, first day of the next month]``, as elsewhere in KPI.md), restricted to the
population the caller passes (a subquery of customer ids). Values are judged as of
``as_of`` (today by default): a plan still inside its target days counts as "not
completed yet", so a recent cohort reads low until its window has passed; ``details``
shows how many are still in progress so nobody mistakes that for failure.

Each function reads its rows in one query (the lake in one grouped scan for initial usage);
medians are taken in Python over the fetched day counts.
"""

import statistics
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import ibis
import pyarrow as pa
from django.db.models import OuterRef, QuerySet, Subquery
from django.utils import timezone

from kizuna.analytics import engine
from kizuna.analytics.models import UsageSettings
from kizuna.analytics.usage_kpis import has_usage_data
from kizuna.customers.models import Customer
from kizuna.onboarding.models import (
    GoalStatus,
    MilestoneStatus,
    OnboardingPlan,
    PlanMilestone,
    SuccessGoal,
)

INITIAL_USAGE_DAYS = 30
COMPLETION_MARKS = (30, 60, 90)


@dataclass(frozen=True, kw_only=True)
class OnboardingValue:
    """A KPI value (None when the denominator is empty) with what it was computed from."""

    value: float | None
    numerator: int | float | None
    denominator: int | None
    details: dict[str, Any] = field(default_factory=dict)


def _ratio(numerator: int, denominator: int) -> float | None:
    return None if not denominator else numerator / denominator


def _dated(rows: Any) -> list[tuple[date, date]]:
    """Pairs of dates where both are known."""
    return [
        (later, earlier) for later, earlier in rows if later is not None and earlier is not None
    ]


def _median(values: list[int]) -> float | None:
    return float(statistics.median(values)) if values else None


def cohort_customers(
    *, start: date, end: date, customers: QuerySet[Any] | None = None
) -> QuerySet[Customer]:
    """Customers whose first start date is in ``[start, end)``, within ``customers`` if given."""
    cohort = Customer.objects.filter(first_start_date__gte=start, first_start_date__lt=end)
    if customers is not None:
        cohort = cohort.filter(pk__in=customers)
    return cohort.order_by()


def _first_plans(
    *, start: date, end: date, customers: QuerySet[Any] | None, version_id: int | None
) -> QuerySet[OnboardingPlan]:
    """Each cohort customer's first plan that was not cancelled (optionally of one version)."""
    plans = OnboardingPlan.objects.filter(cancelled_at__isnull=True)
    if version_id is not None:
        plans = plans.filter(version_id=version_id)
    first = (
        plans.filter(customer=OuterRef("customer")).order_by("start_date", "id").values("id")[:1]
    )
    return plans.filter(
        customer__in=cohort_customers(start=start, end=end, customers=customers).values("pk"),
        pk=Subquery(first),
    ).order_by()


def onboarding_completion_rate(
    *,
    start: date,
    end: date,
    customers: QuerySet[Any] | None = None,
    version_id: int | None = None,
    as_of: date | None = None,
) -> OnboardingValue:
    """Cohort customers whose plan completed within its target days / cohort customers with a
    plan. ``details.by_day`` gives the share completed within 30/60/90 days of the start among
    plans that are at least that old."""
    as_of = as_of or timezone.localdate()
    rows = list(
        _first_plans(start=start, end=end, customers=customers, version_id=version_id).values_list(
            "start_date", "target_date", "completed_on"
        )
    )
    on_time = sum(1 for _s, target, done in rows if done is not None and done <= target)
    late = sum(1 for _s, target, done in rows if done is not None and done > target)
    in_progress = sum(1 for _s, target, done in rows if done is None and target >= as_of)
    by_day = {}
    for mark in COMPLETION_MARKS:
        old_enough = [(s, done) for s, _t, done in rows if s + timedelta(days=mark) <= as_of]
        within = sum(1 for s, done in old_enough if done is not None and (done - s).days <= mark)
        by_day[str(mark)] = {
            "plans": len(old_enough),
            "completed": within,
            "rate": _ratio(within, len(old_enough)),
        }
    return OnboardingValue(
        value=_ratio(on_time, len(rows)),
        numerator=on_time,
        denominator=len(rows),
        details={
            "completed_late": late,
            "in_progress_within_target": in_progress,
            "not_completed_past_target": len(rows) - on_time - late - in_progress,
            "by_day": by_day,
            "as_of": as_of.isoformat(),
        },
    )


def initial_usage_rate(
    *, start: date, end: date, customers: QuerySet[Any] | None = None, as_of: date | None = None
) -> OnboardingValue:
    """Cohort customers with an active user within 30 days of their first start / the cohort.

    Active follows KPI.md: a qualifying event (Settings → Metrics), or any usage event when
    none are configured, on a day from the first start date up to 29 days after it.
    """
    as_of = as_of or timezone.localdate()
    cohort: list[tuple[int, date]] = [
        (pk, first)
        for pk, first in cohort_customers(start=start, end=end, customers=customers).values_list(
            "pk", "first_start_date"
        )
        if first is not None
    ]
    used = _customers_with_early_use(cohort) if cohort and has_usage_data() else 0
    windows_open = sum(
        1 for _pk, first in cohort if first + timedelta(days=INITIAL_USAGE_DAYS) > as_of
    )
    return OnboardingValue(
        value=_ratio(used, len(cohort)),
        numerator=used,
        denominator=len(cohort),
        details={
            "window_days": INITIAL_USAGE_DAYS,
            "customers_whose_window_is_still_open": windows_open,
            "as_of": as_of.isoformat(),
        },
    )


def _customers_with_early_use(cohort: list[tuple[int, date]]) -> int:
    qualifying = [
        str(item).strip()
        for item in (UsageSettings.load().qualifying_event_types or [])
        if str(item).strip()
    ]
    first_day = min(first for _pk, first in cohort)
    last_day = max(first for _pk, first in cohort) + timedelta(days=INITIAL_USAGE_DAYS - 1)
    population = pa.table(
        {
            "cohort_customer_id": pa.array([pk for pk, _first in cohort], pa.int64()),
            "first_start": pa.array([first for _pk, first in cohort], pa.date32()),
        }
    )
    with engine.session() as con:
        events = engine.usage_events(con, first_day, last_day)
        if qualifying:
            events = events.filter(events.event_type.isin(qualifying))
        events = events.filter(events.customer_id.notnull(), events.user_key.notnull())
        members = ibis.memtable(population)
        joined = events.inner_join(members, events.customer_id == members.cohort_customer_id)
        early = joined.filter(
            joined.event_date >= joined.first_start,
            joined.event_date < joined.first_start + ibis.interval(days=INITIAL_USAGE_DAYS),
        )
        count = con.to_pyarrow(early.select("customer_id").distinct().count()).as_py()
    return int(count or 0)


def _first_goals(
    *, start: date, end: date, customers: QuerySet[Any] | None
) -> QuerySet[SuccessGoal]:
    first = (
        SuccessGoal.objects.filter(customer=OuterRef("customer"))
        .order_by("position", "created_at", "id")
        .values("id")[:1]
    )
    return SuccessGoal.objects.filter(
        customer__in=cohort_customers(start=start, end=end, customers=customers).values("pk"),
        pk=Subquery(first),
    ).order_by()


def initial_outcome_achievement_rate(
    *, start: date, end: date, customers: QuerySet[Any] | None = None, as_of: date | None = None
) -> OnboardingValue:
    """Cohort customers that achieved their first success goal by its due date / those that
    set one."""
    as_of = as_of or timezone.localdate()
    rows = list(
        _first_goals(start=start, end=end, customers=customers).values_list(
            "status", "achieved_on", "due_date"
        )
    )
    achieved = sum(
        1
        for status, done, due in rows
        if status == GoalStatus.ACHIEVED and done is not None and done <= due
    )
    still_open = sum(1 for status, _d, due in rows if status == GoalStatus.OPEN and due >= as_of)
    return OnboardingValue(
        value=_ratio(achieved, len(rows)),
        numerator=achieved,
        denominator=len(rows),
        details={"open_before_due_date": still_open, "as_of": as_of.isoformat()},
    )


def time_to_first_value(
    *, start: date, end: date, customers: QuerySet[Any] | None = None
) -> OnboardingValue:
    """Median days from the first start date to the first goal achieved, over the cohort
    customers that reached it; ``details`` adds the median days to onboarding completed and
    the shares that have not reached either."""
    cohort = cohort_customers(start=start, end=end, customers=customers)
    total = cohort.count()
    goal_days = [
        (achieved - first).days
        for achieved, first in _dated(
            _first_goals(start=start, end=end, customers=customers)
            .filter(status=GoalStatus.ACHIEVED, achieved_on__isnull=False)
            .values_list("achieved_on", "customer__first_start_date")
        )
    ]
    completed_days = [
        (done - first).days
        for done, first in _dated(
            _first_plans(start=start, end=end, customers=customers, version_id=None)
            .filter(completed_on__isnull=False)
            .values_list("completed_on", "customer__first_start_date")
        )
    ]
    median = _median(goal_days)
    return OnboardingValue(
        value=median,
        numerator=median,
        denominator=len(goal_days),
        details={
            "customers": total,
            "reached_first_value": len(goal_days),
            "not_reached_share": _ratio(total - len(goal_days), total),
            "median_days_to_onboarding_completed": _median(completed_days),
            "completed_onboarding": len(completed_days),
            "not_completed_share": _ratio(total - len(completed_days), total),
        },
    )


@dataclass(frozen=True, kw_only=True)
class FunnelStep:
    key: str
    name: str
    phase: str
    required: bool
    plans: int
    completed: int
    completed_share: float | None
    median_days: float | None
    overdue: int
    overdue_share: float | None


def milestone_funnel(
    *,
    version_id: int,
    start: date,
    end: date,
    customers: QuerySet[Any] | None = None,
    as_of: date | None = None,
) -> list[FunnelStep]:
    """Per milestone of a program version, over the cohort's plans of that version: the share
    that completed it, the median days from plan start to completion, and the share overdue
    (completed after its due date, or still open past it) — where customers stumble."""
    as_of = as_of or timezone.localdate()
    plans = _first_plans(start=start, end=end, customers=customers, version_id=version_id)
    rows = (
        PlanMilestone.objects.filter(plan__in=plans.values("pk"))
        .values_list(
            "milestone_id",
            "milestone__key",
            "milestone__name",
            "milestone__phase__name",
            "milestone__required",
            "status",
            "due_date",
            "completed_on",
            "plan__start_date",
        )
        .order_by("milestone__phase__position", "milestone__position", "milestone_id")
    )
    steps: dict[int, dict[str, Any]] = {}
    for pk, key, name, phase, required, status, due, done, plan_start in rows:
        step = steps.setdefault(
            pk,
            {
                "key": key,
                "name": name,
                "phase": phase,
                "required": required,
                "plans": 0,
                "days": [],
                "overdue": 0,
            },
        )
        step["plans"] += 1
        if status == MilestoneStatus.DONE and done is not None:
            step["days"].append((done - plan_start).days)
            if done > due:
                step["overdue"] += 1
        elif status != MilestoneStatus.SKIPPED and due < as_of:
            step["overdue"] += 1
    return [
        FunnelStep(
            key=step["key"],
            name=step["name"],
            phase=step["phase"],
            required=step["required"],
            plans=step["plans"],
            completed=len(step["days"]),
            completed_share=_ratio(len(step["days"]), step["plans"]),
            median_days=_median(step["days"]),
            overdue=step["overdue"],
            overdue_share=_ratio(step["overdue"], step["plans"]),
        )
        for step in steps.values()
    ]
