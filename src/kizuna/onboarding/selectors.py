"""Reads of the staff onboarding pages: the board of plans, a plan's week, its phases, the Gantt.

Everything a list shows is computed by the database for all rows at once (progress, next due
date, risk order); nothing here runs a query per plan.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta

from django.db.models import (
    Case,
    Count,
    IntegerField,
    Min,
    Prefetch,
    Q,
    QuerySet,
    Value,
    When,
)

from kizuna.core.models import User
from kizuna.core.roles import CSM_ROLES, Role
from kizuna.onboarding.models import (
    MilestoneStatus,
    OnboardingPlan,
    Phase,
    PlanMilestone,
    PlanStatus,
    Program,
    ProgramVersion,
    Resource,
    SuccessGoal,
)

OPEN_MILESTONE_STATUSES = (
    MilestoneStatus.NOT_STARTED,
    MilestoneStatus.IN_PROGRESS,
    MilestoneStatus.BLOCKED,
)
# The board's order: the plans that need a CSM first.
RISK_ORDER = (
    PlanStatus.OVERDUE,
    PlanStatus.AT_RISK,
    PlanStatus.ON_TRACK,
    PlanStatus.COMPLETED,
    PlanStatus.CANCELLED,
)
UNASSIGNED = 0  # the board's owner filter value for plans whose customer has no onboarding CSM


# --- The board -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BoardFilters:
    """The board's filters. ``status`` empty means every plan but the cancelled ones."""

    owner_id: int | None = None  # UNASSIGNED: customers without an onboarding CSM
    program_id: int | None = None
    version_id: int | None = None
    status: str = ""
    touch_model: str = ""


def board_plans(filters: BoardFilters) -> QuerySet[OnboardingPlan]:
    """Plans for the board, most at risk first, each annotated with its progress.

    Annotations: ``required_total`` and ``required_done`` (required milestones), ``next_due``
    (the earliest due date of an open milestone) and ``risk`` (the rank of the status). Order:
    overdue, at risk, on track, completed, cancelled; then the earliest open due date (the most
    days overdue first), then the oldest plan.
    """
    plans = OnboardingPlan.objects.select_related(
        "customer", "customer__onboarding_owner", "version", "version__program"
    )
    if filters.status:
        plans = plans.filter(status=filters.status)
    else:
        plans = plans.exclude(status=PlanStatus.CANCELLED)
    if filters.owner_id == UNASSIGNED:
        plans = plans.filter(customer__onboarding_owner__isnull=True)
    elif filters.owner_id is not None:
        plans = plans.filter(customer__onboarding_owner_id=filters.owner_id)
    if filters.version_id is not None:
        plans = plans.filter(version_id=filters.version_id)
    elif filters.program_id is not None:
        plans = plans.filter(version__program_id=filters.program_id)
    if filters.touch_model:
        plans = plans.filter(customer__touch_model=filters.touch_model)
    return _with_progress(plans)


def plans_by_ids(plan_ids: list[int]) -> QuerySet[OnboardingPlan]:
    """The plans with these ids (cancelled ones too), annotated and ordered like the board."""
    return _with_progress(
        OnboardingPlan.objects.filter(pk__in=plan_ids).select_related(
            "customer", "customer__onboarding_owner", "version", "version__program"
        )
    )


def _with_progress(plans: QuerySet[OnboardingPlan]) -> QuerySet[OnboardingPlan]:
    required = Q(milestones__milestone__required=True)
    return plans.annotate(
        required_total=Count("milestones", filter=required),
        required_done=Count(
            "milestones", filter=required & Q(milestones__status=MilestoneStatus.DONE)
        ),
        next_due=Min(
            "milestones__due_date", filter=Q(milestones__status__in=OPEN_MILESTONE_STATUSES)
        ),
        risk=Case(
            *(When(status=status, then=Value(rank)) for rank, status in enumerate(RISK_ORDER)),
            default=Value(len(RISK_ORDER)),
            output_field=IntegerField(),
        ),
    ).order_by("risk", "next_due", "start_date", "id")


def percent(done: int, total: int) -> int:
    """Whole percent of ``done`` over ``total`` (0 when there is nothing to do)."""
    return round(100 * done / total) if total else 0


def days_overdue(plan: OnboardingPlan, today: date) -> int:
    """Days since the plan's earliest open due date (``next_due`` annotation) passed; 0 when
    nothing open is late, and for a completed or cancelled plan."""
    next_due: date | None = getattr(plan, "next_due", None)
    if plan.completed_on or plan.cancelled_at or next_due is None or next_due >= today:
        return 0
    return (today - next_due).days


def board_owners() -> list[User]:
    """The people a board can be filtered by: active CSMs, managers and administrators."""
    roles = [*CSM_ROLES, Role.ADMIN]
    return list(User.objects.filter(is_active=True, role__in=roles).order_by("username"))


def board_programs() -> list[Program]:
    return list(Program.objects.order_by("priority", "name"))


def board_versions() -> list[ProgramVersion]:
    """Versions that have plans or are published (drafts never carry plans)."""
    return list(
        ProgramVersion.objects.exclude(status="draft")
        .select_related("program")
        .order_by("program__priority", "program__name", "-number")
    )


# --- A plan's page -------------------------------------------------------------------------------


def plan_for_page(pk: int) -> QuerySet[OnboardingPlan]:
    return OnboardingPlan.objects.filter(pk=pk).select_related(
        "customer", "customer__onboarding_owner", "version", "version__program", "created_by"
    )


def plan_milestones(plan: OnboardingPlan) -> list[PlanMilestone]:
    """The plan's milestones in program order, with template, phase, resources and dependencies."""
    return list(
        plan.milestones.select_related("milestone", "milestone__phase", "completed_by")
        .prefetch_related(
            Prefetch("milestone__resources", queryset=Resource.objects.order_by("id")),
            "milestone__depends_on",
        )
        .order_by(
            "milestone__phase__position",
            "milestone__phase_id",
            "milestone__position",
            "due_date",
            "id",
        )
    )


@dataclass
class PhaseGroup:
    """One phase of a plan with its milestones; ``state`` is done, current or later."""

    phase: Phase
    milestones: list[PlanMilestone] = field(default_factory=list)
    state: str = "later"

    @property
    def done(self) -> int:
        return sum(
            1
            for pm in self.milestones
            if pm.status in (MilestoneStatus.DONE, MilestoneStatus.SKIPPED)
        )


def group_by_phase(
    milestones: Iterable[PlanMilestone], current_phase_id: int | None
) -> list[PhaseGroup]:
    """Milestones grouped by phase in phase order, each phase marked done, current or later.

    Phases before the current one are "done" (collapsed), the current one is shown open, later
    ones are collapsed (staged guidance: no information overload). Without a current phase
    (everything done) every phase is "done".
    """
    groups: dict[int, PhaseGroup] = {}
    for pm in milestones:
        phase = pm.milestone.phase
        groups.setdefault(phase.pk, PhaseGroup(phase=phase)).milestones.append(pm)
    ordered = sorted(groups.values(), key=lambda group: (group.phase.position, group.phase.pk))
    seen_current = False
    for group in ordered:
        if current_phase_id is None:
            group.state = "done"
        elif group.phase.pk == current_phase_id:
            group.state = "current"
            seen_current = True
        else:
            group.state = "later" if seen_current else "done"
    return ordered


def plan_goals(plan: OnboardingPlan) -> list[SuccessGoal]:
    return list(plan.goals.order_by("position", "created_at", "id"))


def open_plan(customer_id: int) -> OnboardingPlan | None:
    """The customer's plan that is neither completed nor cancelled (at most one exists)."""
    return (
        OnboardingPlan.objects.filter(
            customer_id=customer_id, completed_on__isnull=True, cancelled_at__isnull=True
        )
        .select_related("version", "version__program")
        .first()
    )


def latest_plan(customer_id: int) -> OnboardingPlan | None:
    """The customer's open plan, else the most recent one."""
    return open_plan(customer_id) or (
        OnboardingPlan.objects.filter(customer_id=customer_id)
        .select_related("version", "version__program")
        .order_by("-start_date", "-id")
        .first()
    )


# --- Gantt ---------------------------------------------------------------------------------------

GANTT_LABEL_WIDTH = 220
GANTT_CHART_WIDTH = 640
GANTT_ROW = 24
GANTT_HEADER = 28


@dataclass(frozen=True)
class GanttBar:
    label: str
    status: str  # a MilestoneStatus, or "overdue" for an open milestone past its due date
    start: date
    end: date
    due: date
    x: float
    width: float
    y: int
    required: bool


@dataclass(frozen=True)
class GanttPhase:
    name: str
    y: int


@dataclass(frozen=True)
class GanttTick:
    label: str
    x: float


@dataclass(frozen=True)
class Gantt:
    start: date
    end: date
    phases: list[GanttPhase]
    bars: list[GanttBar]
    ticks: list[GanttTick]
    today_x: float | None
    target_x: float
    width: int
    height: int
    label_width: int


def _bar_span(
    pm: PlanMilestone, plan_start: date, due_by_template: dict[int, date]
) -> tuple[date, date]:
    """A milestone's bar: from when it could start (its start, else the latest due date of what
    it depends on, else the plan's start) to its completion, else its due date."""
    if pm.started_on:
        start = pm.started_on
    else:
        before = [
            due_by_template[dep.pk]
            for dep in pm.milestone.depends_on.all()
            if dep.pk in due_by_template
        ]
        start = max(before) if before else plan_start
    end = pm.completed_on or pm.due_date
    if end < start:
        start = end
    return start, end


def gantt(plan: OnboardingPlan, milestones: list[PlanMilestone], today: date) -> Gantt:
    """Geometry of the plan's timeline: one row per milestone grouped under its phase, x from
    the plan's start to the latest of target, due, completion dates and today."""
    due_by_template = {pm.milestone_id: pm.due_date for pm in milestones}
    spans = {pm.pk: _bar_span(pm, plan.start_date, due_by_template) for pm in milestones}
    start = min([plan.start_date, *(span[0] for span in spans.values())])
    end = max([plan.target_date, *(span[1] for span in spans.values())])
    if plan.status not in (PlanStatus.COMPLETED, PlanStatus.CANCELLED):
        end = max(end, today)
    days = max((end - start).days + 1, 1)
    scale = GANTT_CHART_WIDTH / days

    def x_of(day: date) -> float:
        return round(GANTT_LABEL_WIDTH + (day - start).days * scale, 1)

    phases: list[GanttPhase] = []
    bars: list[GanttBar] = []
    y = GANTT_HEADER
    for group in group_by_phase(milestones, None):
        phases.append(GanttPhase(name=group.phase.name, y=y))
        y += GANTT_ROW
        for pm in group.milestones:
            bar_start, bar_end = spans[pm.pk]
            status = pm.status
            if status in OPEN_MILESTONE_STATUSES and pm.due_date < today:
                status = "overdue"
                bar_end = max(bar_end, today)
            bars.append(
                GanttBar(
                    label=pm.milestone.name,
                    status=status,
                    start=bar_start,
                    end=bar_end,
                    due=pm.due_date,
                    x=x_of(bar_start),
                    width=round(max(((bar_end - bar_start).days + 1) * scale, 3.0), 1),
                    y=y,
                    required=pm.milestone.required,
                )
            )
            y += GANTT_ROW
    step = 7 if days <= 120 else 30
    ticks = [
        GanttTick(
            label=(start + timedelta(days=offset)).strftime("%m/%d"),
            x=x_of(start + timedelta(days=offset)),
        )
        for offset in range(0, days, step)
    ]
    return Gantt(
        start=start,
        end=end,
        phases=phases,
        bars=bars,
        ticks=ticks,
        today_x=x_of(today) if start <= today <= end else None,
        target_x=x_of(plan.target_date),
        width=GANTT_LABEL_WIDTH + GANTT_CHART_WIDTH + 10,
        height=y + 8,
        label_width=GANTT_LABEL_WIDTH,
    )
