"""The onboarding KPIs of KPI.md, computed for a contract-start cohort.

A cohort is the customers whose first subscription started in ``[start, end)`` (a month is
``[first day, first day of the next month]``, as elsewhere in KPI.md), restricted to the
population the caller passes (a subquery of customer ids). Values are judged as of
``as_of`` (today by default): a plan still inside its target days counts as "not
completed yet", so a recent cohort reads low until its window has passed; ``details``
shows how many are still in progress so nobody mistakes that for failure. Only what had
happened by ``as_of`` counts: a plan, milestone or goal completed after it is still open,
an event after it is not yet used.

A customer's plan is its **first plan that was not cancelled** (by start date). A program
filter (``program_id``, and ``version_id`` for one version) takes each customer's first
plan of that program (version) instead, and narrows every KPI to the cohort customers that
have one — so initial usage, outcome and time to first value compare program versions too.

Each function reads its rows in one query (the lake in one grouped scan for initial usage);
medians are taken in Python over the fetched day counts. Shares are rounded to 6 places.
"""

import statistics
from dataclasses import asdict, dataclass, field
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


RATE_PLACES = 6


def _ratio(numerator: int, denominator: int) -> float | None:
    return None if not denominator else round(numerator / denominator, RATE_PLACES)


def _by(day: date | None, as_of: date) -> date | None:
    """``day`` if it is on or before ``as_of`` (it had happened), else None."""
    return day if day is not None and day <= as_of else None


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


def _cohort(
    *,
    start: date,
    end: date,
    customers: QuerySet[Any] | None,
    version_id: int | None,
    program_id: int | None,
) -> QuerySet[Customer]:
    """The cohort; with a program filter, only the customers with a plan of it."""
    cohort = cohort_customers(start=start, end=end, customers=customers)
    if version_id is None and program_id is None:
        return cohort
    plans = _first_plans(
        start=start, end=end, customers=customers, version_id=version_id, program_id=program_id
    )
    return cohort.filter(pk__in=plans.values("customer_id"))


def _first_plans(
    *,
    start: date,
    end: date,
    customers: QuerySet[Any] | None,
    version_id: int | None = None,
    program_id: int | None = None,
) -> QuerySet[OnboardingPlan]:
    """Each cohort customer's first plan that was not cancelled (optionally of one program
    or one version)."""
    plans = OnboardingPlan.objects.filter(cancelled_at__isnull=True)
    if version_id is not None:
        plans = plans.filter(version_id=version_id)
    if program_id is not None:
        plans = plans.filter(version__program_id=program_id)
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
    program_id: int | None = None,
    as_of: date | None = None,
) -> OnboardingValue:
    """Cohort customers whose plan completed within its target days / cohort customers with a
    plan. ``details.by_day`` gives the share completed within 30/60/90 days of the start among
    plans that are at least that old."""
    as_of = as_of or timezone.localdate()
    rows = [
        (begun, target, _by(done, as_of))
        for begun, target, done in _first_plans(
            start=start, end=end, customers=customers, version_id=version_id, program_id=program_id
        ).values_list("start_date", "target_date", "completed_on")
    ]
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
    *,
    start: date,
    end: date,
    customers: QuerySet[Any] | None = None,
    version_id: int | None = None,
    program_id: int | None = None,
    as_of: date | None = None,
) -> OnboardingValue:
    """Cohort customers with an active user within 30 days of their first start / the cohort.

    Active follows KPI.md: a qualifying event (Settings → Metrics), or any usage event when
    none are configured, on a day from the first start date up to 29 days after it (and on
    or before ``as_of``).
    """
    as_of = as_of or timezone.localdate()
    cohort: list[tuple[int, date]] = [
        (pk, first)
        for pk, first in _cohort(
            start=start, end=end, customers=customers, version_id=version_id, program_id=program_id
        ).values_list("pk", "first_start_date")
        if first is not None
    ]
    events = has_usage_data()
    used = _customers_with_early_use(cohort, as_of) if cohort and events else 0
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
            "has_usage_data": events,
            "as_of": as_of.isoformat(),
        },
    )


def _customers_with_early_use(cohort: list[tuple[int, date]], as_of: date) -> int:
    qualifying = [
        str(item).strip()
        for item in (UsageSettings.load().qualifying_event_types or [])
        if str(item).strip()
    ]
    first_day = min(first for _pk, first in cohort)
    last_day = min(
        max(first for _pk, first in cohort) + timedelta(days=INITIAL_USAGE_DAYS - 1), as_of
    )
    if last_day < first_day:
        return 0
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
    *,
    start: date,
    end: date,
    customers: QuerySet[Any] | None,
    version_id: int | None = None,
    program_id: int | None = None,
) -> QuerySet[SuccessGoal]:
    first = (
        SuccessGoal.objects.filter(customer=OuterRef("customer"))
        .order_by("position", "created_at", "id")
        .values("id")[:1]
    )
    cohort = _cohort(
        start=start, end=end, customers=customers, version_id=version_id, program_id=program_id
    )
    return SuccessGoal.objects.filter(
        customer__in=cohort.values("pk"), pk=Subquery(first)
    ).order_by()


def initial_outcome_achievement_rate(
    *,
    start: date,
    end: date,
    customers: QuerySet[Any] | None = None,
    version_id: int | None = None,
    program_id: int | None = None,
    as_of: date | None = None,
) -> OnboardingValue:
    """Cohort customers that achieved their first success goal by its due date (and by
    ``as_of``) / those that set one."""
    as_of = as_of or timezone.localdate()
    rows = [
        (_by(done, as_of) if status == GoalStatus.ACHIEVED else None, due)
        for status, done, due in _first_goals(
            start=start, end=end, customers=customers, version_id=version_id, program_id=program_id
        ).values_list("status", "achieved_on", "due_date")
    ]
    achieved = sum(1 for done, due in rows if done is not None and done <= due)
    achieved_late = sum(1 for done, due in rows if done is not None and done > due)
    still_open = sum(1 for done, due in rows if done is None and due >= as_of)
    return OnboardingValue(
        value=_ratio(achieved, len(rows)),
        numerator=achieved,
        denominator=len(rows),
        details={
            "achieved_late": achieved_late,
            "open_before_due_date": still_open,
            "not_achieved_past_due_date": len(rows) - achieved - achieved_late - still_open,
            "as_of": as_of.isoformat(),
        },
    )


def time_to_first_value(
    *,
    start: date,
    end: date,
    customers: QuerySet[Any] | None = None,
    version_id: int | None = None,
    program_id: int | None = None,
    as_of: date | None = None,
) -> OnboardingValue:
    """Median days from the first start date to the first goal achieved, over the cohort
    customers that reached it by ``as_of``; numerator: those customers, denominator: the
    cohort. ``details`` adds the median days to onboarding completed and the shares that
    have not reached either."""
    as_of = as_of or timezone.localdate()
    total = _cohort(
        start=start, end=end, customers=customers, version_id=version_id, program_id=program_id
    ).count()
    goal_days = [
        (achieved - first).days
        for achieved, first in _dated(
            _first_goals(
                start=start,
                end=end,
                customers=customers,
                version_id=version_id,
                program_id=program_id,
            )
            .filter(status=GoalStatus.ACHIEVED, achieved_on__lte=as_of)
            .values_list("achieved_on", "customer__first_start_date")
        )
    ]
    completed_days = [
        (done - first).days
        for done, first in _dated(
            _first_plans(
                start=start,
                end=end,
                customers=customers,
                version_id=version_id,
                program_id=program_id,
            )
            .filter(completed_on__lte=as_of)
            .values_list("completed_on", "customer__first_start_date")
        )
    ]
    median = _median(goal_days)
    return OnboardingValue(
        value=median,
        numerator=len(goal_days),
        denominator=total,
        details={
            "customers": total,
            "reached_first_value": len(goal_days),
            "not_reached_share": _ratio(total - len(goal_days), total),
            "median_days_to_onboarding_completed": _median(completed_days),
            "completed_onboarding": len(completed_days),
            "not_completed_share": _ratio(total - len(completed_days), total),
            "as_of": as_of.isoformat(),
        },
    )


@dataclass(frozen=True, kw_only=True)
class FunnelStep:
    """One milestone of a version over the cohort's plans of that version.

    ``stalled``: plans not completed by ``as_of`` for which this is the first open required
    milestone (in program order) and its due date has passed — where those plans are stuck.
    """

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
    stalled: int = 0
    stalled_share: float | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, kw_only=True)
class VersionFunnel:
    """The milestone funnel of one program version; ``stall_key`` is the step where most
    plans are stuck (None when no plan is)."""

    version_id: int
    program: str  # the program's key
    program_name: str
    version: int  # the version's number
    target_days: int
    plans: int
    completed_plans: int
    steps: list[FunnelStep]
    stall_key: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "version_id": self.version_id,
            "program": self.program,
            "program_name": self.program_name,
            "version": self.version,
            "target_days": self.target_days,
            "plans": self.plans,
            "completed_plans": self.completed_plans,
            "stall_key": self.stall_key,
            "steps": [step.as_json() for step in self.steps],
        }


def milestone_funnels(
    *,
    start: date,
    end: date,
    customers: QuerySet[Any] | None = None,
    version_id: int | None = None,
    program_id: int | None = None,
    as_of: date | None = None,
) -> list[VersionFunnel]:
    """The funnel of every program version that has plans in the cohort (each customer's
    first plan), ordered by program and version number — comparing versions is the PDCA view.

    Per milestone: the share of the version's plans that completed it by ``as_of``, the
    median days from plan start to completion, the share overdue (completed after its due
    date, or still open past it; a skipped milestone is never overdue) and the plans stalled
    there (see ``FunnelStep``). Two queries whatever the number of plans.
    """
    as_of = as_of or timezone.localdate()
    plans = _first_plans(
        start=start, end=end, customers=customers, version_id=version_id, program_id=program_id
    )
    versions: dict[int, dict[str, Any]] = {}
    completed_plans: set[int] = set()
    for plan_id, vid, number, key, name, target_days, done in plans.values_list(
        "pk",
        "version_id",
        "version__number",
        "version__program__key",
        "version__program__name",
        "version__target_days",
        "completed_on",
    ).order_by("version__program__name", "version__program__key", "version__number"):
        version = versions.setdefault(
            vid,
            {
                "program": key,
                "program_name": name,
                "version": number,
                "target_days": target_days,
                "plans": 0,
                "completed": 0,
                "steps": {},
            },
        )
        version["plans"] += 1
        if _by(done, as_of) is not None:
            version["completed"] += 1
            completed_plans.add(plan_id)
    rows = (
        PlanMilestone.objects.filter(plan__in=plans.values("pk"))
        .values_list(
            "plan_id",
            "plan__version_id",
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
    stuck_at: dict[int, tuple[int, int, date]] = {}  # plan → (version, milestone, due)
    for plan_id, vid, pk, key, name, phase, required, status, due, done, plan_start in rows:
        step = versions[vid]["steps"].setdefault(
            pk,
            {
                "key": key,
                "name": name,
                "phase": phase,
                "required": required,
                "plans": 0,
                "days": [],
                "overdue": 0,
                "stalled": 0,
            },
        )
        step["plans"] += 1
        done_by = _by(done, as_of) if status == MilestoneStatus.DONE else None
        if done_by is not None:
            step["days"].append((done_by - plan_start).days)
            if done_by > due:
                step["overdue"] += 1
            continue
        if status == MilestoneStatus.SKIPPED:
            continue
        if due < as_of:
            step["overdue"] += 1
        if required and plan_id not in completed_plans and plan_id not in stuck_at:
            stuck_at[plan_id] = (vid, pk, due)
    for vid, pk, due in stuck_at.values():
        if due < as_of:
            versions[vid]["steps"][pk]["stalled"] += 1
    funnels = []
    for vid, version in versions.items():
        steps = [
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
                stalled=step["stalled"],
                stalled_share=_ratio(step["stalled"], version["plans"]),
            )
            for step in version["steps"].values()
        ]
        most = max((step.stalled for step in steps), default=0)
        funnels.append(
            VersionFunnel(
                version_id=vid,
                program=version["program"],
                program_name=version["program_name"],
                version=version["version"],
                target_days=version["target_days"],
                plans=version["plans"],
                completed_plans=version["completed"],
                steps=steps,
                stall_key=next((s.key for s in steps if most and s.stalled == most), None),
            )
        )
    return funnels


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
    (completed after its due date, or still open past it) — where customers stumble.
    (``milestone_funnels`` for one version.)"""
    funnels = milestone_funnels(
        start=start, end=end, customers=customers, version_id=version_id, as_of=as_of
    )
    return funnels[0].steps if funnels else []
