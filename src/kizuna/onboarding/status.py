"""Computed statuses of plan milestones and plans, and a plan's progress for the pages.

Statuses are never typed: ``refresh_statuses`` derives them from dependencies, due dates and
completions for all plans at once in a few UPDATE … WHERE queries, and stores them so that
lists sort and filter on them.

Milestone: done, blocked and skipped are set by people or rules and stay; otherwise a
milestone is *in progress* when every milestone it depends on is done or skipped, and *not
started* while one of them is open.

Plan, first rule that applies: *completed* when it has a completion date; *overdue* when a
required milestone is past due and not done, or the target date has passed; *at risk* when
a required milestone is due within ``OnboardingSettings.at_risk_days`` or any milestone is
blocked; else *on track*. Cancelled plans stay cancelled.
"""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.db.models import Exists, F, IntegerField, OuterRef, Q, QuerySet, Value
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Coalesce
from django.utils import timezone
from django.utils.translation import gettext as _

from kizuna.core.models import TimelineEntry, TimelineKind
from kizuna.onboarding.models import (
    MilestoneStatus,
    OnboardingPlan,
    OnboardingSettings,
    Phase,
    PlanMilestone,
    PlanStatus,
    PlanTask,
)

SETTLED = (MilestoneStatus.DONE, MilestoneStatus.SKIPPED)


def refresh_statuses(as_of: date, plan_ids: list[int] | None = None) -> int:
    """Recompute milestone and plan statuses as of a day (all plans, or ``plan_ids``).

    Seven set-based UPDATEs whatever the number of plans; returns the number of rows whose
    status changed.
    """
    at_risk_days = OnboardingSettings.load().at_risk_days
    milestones = PlanMilestone.objects.filter(plan__cancelled_at__isnull=True)
    plans = OnboardingPlan.objects.all()
    if plan_ids is not None:
        milestones = milestones.filter(plan_id__in=plan_ids)
        plans = plans.filter(pk__in=plan_ids)

    open_dependency = Exists(
        PlanMilestone.objects.filter(
            plan_id=OuterRef("plan_id"), milestone__unlocks=OuterRef("milestone_id")
        ).exclude(status__in=SETTLED)
    )
    changed = (
        milestones.filter(status=MilestoneStatus.NOT_STARTED)
        .exclude(open_dependency)
        .update(
            status=MilestoneStatus.IN_PROGRESS,
            started_on=Coalesce(F("started_on"), Value(as_of)),
        )
    )
    changed += (
        milestones.filter(status=MilestoneStatus.IN_PROGRESS)
        .filter(open_dependency)
        .update(status=MilestoneStatus.NOT_STARTED)
    )

    def open_required(**due: date) -> Exists:
        return Exists(
            PlanMilestone.objects.filter(
                plan_id=OuterRef("pk"), milestone__required=True, **due
            ).exclude(status__in=SETTLED)
        )

    overdue = open_required(due_date__lt=as_of) | Q(target_date__lt=as_of)
    at_risk = open_required(due_date__lte=as_of + timedelta(days=at_risk_days)) | Exists(
        PlanMilestone.objects.filter(plan_id=OuterRef("pk"), status=MilestoneStatus.BLOCKED)
    )
    live = plans.filter(cancelled_at__isnull=True, completed_on__isnull=True)
    targets = [
        (plans.filter(cancelled_at__isnull=False), PlanStatus.CANCELLED),
        (plans.filter(cancelled_at__isnull=True, completed_on__isnull=False), PlanStatus.COMPLETED),
        (live.filter(overdue), PlanStatus.OVERDUE),
        (live.exclude(overdue).filter(at_risk), PlanStatus.AT_RISK),
        (live.exclude(overdue).exclude(at_risk), PlanStatus.ON_TRACK),
    ]
    for rows, status in targets:
        changed += rows.exclude(status=status).update(status=status)
    _record_overdue_milestones(as_of, milestones)
    return changed


def _record_overdue_milestones(as_of: date, milestones: QuerySet[PlanMilestone]) -> int:
    """Write one ``onboarding.milestone_overdue`` entry per required milestone past due and
    not settled in a live plan, the first time it is seen overdue (playbooks trigger on it).

    Set-based: one query for the overdue milestones without an entry, one bulk insert.
    """
    recorded = (
        TimelineEntry.objects.filter(
            customer_id=OuterRef("plan__customer_id"), kind=TimelineKind.MILESTONE_OVERDUE
        )
        .annotate(milestone_ref=Cast(KT("payload__milestone_id"), IntegerField()))
        .filter(milestone_ref=OuterRef("pk"))
    )
    rows = list(
        milestones.filter(
            milestone__required=True,
            due_date__lt=as_of,
            plan__completed_on__isnull=True,
            plan__cancelled_at__isnull=True,
        )
        .exclude(status__in=SETTLED)
        .exclude(Exists(recorded))
        .values_list("pk", "plan_id", "plan__customer_id", "milestone__name", "due_date")
    )
    if not rows:
        return 0
    now = timezone.now()
    moment = (
        now
        if as_of >= timezone.localdate()
        else timezone.make_aware(datetime.combine(as_of, time(12)))
    )
    TimelineEntry.objects.bulk_create(
        [
            TimelineEntry(
                customer_id=customer_id,
                kind=TimelineKind.MILESTONE_OVERDUE,
                title=_("Milestone overdue: {milestone}").format(milestone=name)[:200],
                body=_("Due on {day}.").format(day=due.isoformat()),
                occurred_at=moment,
                payload={"plan_id": plan_id, "milestone_id": pk, "milestone": name},
            )
            for pk, plan_id, customer_id, name, due in rows
        ],
        batch_size=500,
    )
    return len(rows)


@dataclass(frozen=True)
class Progress:
    """Where a plan stands: counts, the current phase, what to do next, what is due this week.

    ``milestones`` are in program order (phase, then position) with ``milestone``,
    ``milestone.phase``, ``milestone.depends_on`` and ``milestone.resources`` loaded.
    """

    required_done: int
    required_total: int
    percent: int
    done_total: int
    total: int
    current_phase: Phase | None
    next_actions: tuple[PlanMilestone, ...]
    due_milestones: tuple[PlanMilestone, ...]
    due_tasks: tuple[PlanTask, ...]
    milestones: tuple[PlanMilestone, ...]
    week_end: date


def plan_progress(plan: OnboardingPlan, *, as_of: date | None = None) -> Progress:
    """The plan's progress as of a day (default today), in five queries.

    percent = required milestones done / required milestones (rounded). The current phase is
    the first phase (in order) with an open required milestone; next actions are the open
    milestones of that phase whose dependencies are done or skipped (after the last
    required milestone: any such open optional milestone). Due this week: open milestones
    and follow-up tasks not done, due on or before the Sunday of the week of ``as_of``
    (overdue ones included).
    """
    day = as_of or timezone.localdate()
    week_end = day + timedelta(days=6 - day.weekday())
    milestones = list(
        plan.milestones.select_related("milestone__phase")
        .prefetch_related("milestone__depends_on", "milestone__resources")
        .order_by(
            "milestone__phase__position",
            "milestone__phase_id",
            "milestone__position",
            "milestone_id",
        )
    )
    status_of = {pm.milestone_id: pm.status for pm in milestones}

    def ready(pm: PlanMilestone) -> bool:
        return pm.status not in SETTLED and all(
            status_of.get(dependency.pk) in SETTLED for dependency in pm.milestone.depends_on.all()
        )

    required = [pm for pm in milestones if pm.milestone.required]
    required_done = sum(pm.status == MilestoneStatus.DONE for pm in required)
    open_required = [pm for pm in required if pm.status not in SETTLED]
    current_phase = open_required[0].milestone.phase if open_required else None
    next_actions = tuple(
        pm
        for pm in milestones
        if ready(pm) and (current_phase is None or pm.milestone.phase_id == current_phase.pk)
    )
    due_milestones = tuple(
        sorted(
            (pm for pm in milestones if pm.status not in SETTLED and pm.due_date <= week_end),
            key=lambda pm: (pm.due_date, pm.pk),
        )
    )
    due_tasks = tuple(
        plan.tasks.filter(done_on__isnull=True, due_date__lte=week_end).order_by("due_date", "id")
    )
    return Progress(
        required_done=required_done,
        required_total=len(required),
        percent=round(100 * required_done / len(required)) if required else 0,
        done_total=sum(pm.status == MilestoneStatus.DONE for pm in milestones),
        total=len(milestones),
        current_phase=current_phase,
        next_actions=next_actions,
        due_milestones=due_milestones,
        due_tasks=due_tasks,
        milestones=tuple(milestones),
        week_end=week_end,
    )
