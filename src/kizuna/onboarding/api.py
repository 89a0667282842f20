"""REST endpoints of onboarding (mounted under /api/v1 by kizuna.config.api).

Programs (read), plans (list like the board, one plan with milestones, follow-ups, goals and
progress), and the writes a CSM makes: create a plan, change a milestone's status, add a goal,
save the kickoff. Doors only: check the capability, parse typed input (a wrong type is a 422
naming its field), call one engine service, shape the answer. Rules the engine or the forms
check become a 400 ``{"detail": {field: [messages]}}``.
"""

from datetime import date, datetime
from math import ceil
from typing import Any, ClassVar, Literal

from django.core.exceptions import ValidationError
from django.db import IntegrityError
from django.db.models import Count, Prefetch
from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.translation import gettext as _
from ninja import Field, Query, Router, Schema
from ninja.responses import Status

from kizuna.core.access import require
from kizuna.core.models import User
from kizuna.core.roles import Capability
from kizuna.customers.api import ErrorOut, InSchema, Line300, Name, ObjectId, PatchSchema, Text
from kizuna.customers.models import Customer, TouchModel
from kizuna.onboarding import goals, plans, selectors, status
from kizuna.onboarding.forms import GoalForm, KickoffForm
from kizuna.onboarding.models import (
    Milestone,
    OnboardingPlan,
    PlanStatus,
    Program,
    ProgramVersion,
    Resource,
    SuccessGoal,
    VersionStatus,
)

router = Router(tags=["onboarding"])

PAGE_SIZE = 50
ERRORS: dict[int, Any] = {400: ErrorOut, 403: ErrorOut, 404: ErrorOut}


def _user(request: HttpRequest) -> User | None:
    return request.user if isinstance(request.user, User) else None


def _invalid(field: str, message: str) -> ValidationError:
    return ValidationError({field: [message]})


# --- Programs ------------------------------------------------------------------------------------


class VersionSummaryOut(Schema):
    number: int
    status: str
    target_days: int
    change_note: str
    published_at: datetime | None
    plans: int = Field(description="Plans made from this version.")


class ResourceOut(Schema):
    kind: str
    title: str
    url: str
    language: str


class MilestoneDefinitionOut(Schema):
    key: str
    name: str
    description: str
    phase: str
    owner_side: str
    due_offset_days: int = Field(description="Due this many days after the plan's start.")
    required: bool
    depends_on: list[str] = Field(description="Keys of the milestones that come first.")
    completion_kind: str
    completion: dict[str, Any] = Field(
        description='{"event_type": …} (first_event) or {"metric", "op", "value"} (metric).'
    )
    resources: list[ResourceOut]


class FollowUpOut(Schema):
    name: str
    day_offset: int
    owner_side: str
    description: str


class VersionOut(VersionSummaryOut):
    phases: list[str] = Field(description="Phase names in order.")
    milestones: list[MilestoneDefinitionOut]
    follow_ups: list[FollowUpOut]


class ProgramOut(Schema):
    key: str
    name: str
    description: str
    touch_model: str = Field(description="Empty: any touch model.")
    segment: str = Field(description="Empty: any segment.")
    priority: int
    is_active: bool
    published_version: int | None = Field(description="Number of the published version.")
    versions: list[VersionSummaryOut]


class ProgramDetailOut(ProgramOut):
    version: VersionOut | None = Field(
        description="The version asked for (?version=), else the published one, else the latest."
    )


def _version_summary(version: ProgramVersion) -> dict[str, Any]:
    return {
        "number": version.number,
        "status": version.status,
        "target_days": version.target_days,
        "change_note": version.change_note,
        "published_at": version.published_at,
        "plans": getattr(version, "plans_count", 0),
    }


def _program_out(program: Program) -> dict[str, Any]:
    versions = list(program.versions.all())
    published = next((v.number for v in versions if v.status == VersionStatus.PUBLISHED), None)
    return {
        "key": program.key,
        "name": program.name,
        "description": program.description,
        "touch_model": program.touch_model,
        "segment": program.segment_key,
        "priority": program.priority,
        "is_active": program.is_active,
        "published_version": published,
        "versions": [_version_summary(version) for version in versions],
    }


def _programs() -> Any:
    versions = ProgramVersion.objects.annotate(plans_count=Count("plans")).order_by("-number")
    return Program.objects.prefetch_related(Prefetch("versions", queryset=versions))


def _version_out(version: ProgramVersion) -> dict[str, Any]:
    milestones = (
        Milestone.objects.filter(version=version)
        .select_related("phase")
        .prefetch_related(
            Prefetch("resources", queryset=Resource.objects.order_by("id")), "depends_on"
        )
    )
    return {
        **_version_summary(version),
        "phases": list(version.phases.order_by("position", "id").values_list("name", flat=True)),
        "milestones": [
            {
                "key": milestone.key,
                "name": milestone.name,
                "description": milestone.description,
                "phase": milestone.phase.name,
                "owner_side": milestone.owner_side,
                "due_offset_days": milestone.due_offset_days,
                "required": milestone.required,
                "depends_on": sorted(dep.key for dep in milestone.depends_on.all()),
                "completion_kind": milestone.completion_kind,
                "completion": milestone.completion,
                "resources": list(milestone.resources.all()),
            }
            for milestone in milestones
        ],
        "follow_ups": list(version.follow_ups.order_by("day_offset", "id")),
    }


@router.get(
    "/onboarding/programs",
    response={200: list[ProgramOut], **ERRORS},
    summary="Onboarding programs with their versions",
)
def list_programs(request: HttpRequest) -> list[dict[str, Any]]:
    require(request.user, Capability.VIEW)
    return [_program_out(program) for program in _programs().order_by("priority", "name")]


@router.get(
    "/onboarding/programs/{key}",
    response={200: ProgramDetailOut, **ERRORS},
    summary="One program with the content of a version (phases, milestones, follow-ups)",
)
def get_program(request: HttpRequest, key: str, version: int | None = None) -> dict[str, Any]:
    require(request.user, Capability.VIEW)
    program = get_object_or_404(_programs(), key=key)
    out = _program_out(program)
    versions = list(program.versions.all())
    if version is not None:
        chosen = next((v for v in versions if v.number == version), None)
        if chosen is None:
            raise _invalid("version", _("This program has no version %(n)d.") % {"n": version})
    else:
        chosen = next((v for v in versions if v.status == VersionStatus.PUBLISHED), None) or (
            versions[0] if versions else None
        )
    out["version"] = _version_out(chosen) if chosen else None
    return out


# --- Plans ---------------------------------------------------------------------------------------


class PlanSummaryOut(Schema):
    id: int
    customer: int
    customer_name: str
    program: str = Field(description="The program's key.")
    version: int = Field(description="The program version's number.")
    status: str
    start_date: date
    target_date: date
    completed_on: date | None
    onboarding_owner: int | None = Field(description="User id of the customer's onboarding CSM.")
    required_done: int
    required_total: int
    percent: int = Field(description="Required milestones done, in whole percent.")
    next_due: date | None = Field(description="The earliest due date of an open milestone.")
    days_overdue: int


class PlanPageOut(Schema):
    items: list[PlanSummaryOut]
    count: int
    page: int
    pages: int


class PlanMilestoneOut(Schema):
    key: str
    name: str
    phase: str
    owner_side: str
    required: bool
    due_date: date
    status: str
    started_on: date | None
    completed_on: date | None
    completed_via: str
    blocked_reason: str
    skipped_reason: str


class TaskOut(Schema):
    id: int
    title: str
    due_date: date
    owner_side: str
    done_on: date | None
    outcome: str


class ChecklistItemOut(Schema):
    text: str
    done: bool


class GoalOut(Schema):
    id: int
    title: str
    kind: str
    metric_key: str
    op: str
    target: float | None
    checklist: list[ChecklistItemOut]
    due_date: date
    status: str
    achieved_on: date | None
    agreed_on: date


class ProgressOut(Schema):
    required_done: int
    required_total: int
    percent: int
    current_phase: str | None
    next_actions: list[str] = Field(description="Keys of the current phase's next milestones.")


class KickoffOut(Schema):
    kickoff_on: date | None
    desired_outcomes: str
    current_issues: str
    stakeholders: str
    it_literacy: str
    kickoff_notes: str


class PlanOut(PlanSummaryOut):
    cancelled_at: datetime | None
    progress: ProgressOut
    milestones: list[PlanMilestoneOut]
    tasks: list[TaskOut]
    goals: list[GoalOut]
    kickoff: KickoffOut


class PlanFilters(Schema):
    status: PlanStatus | None = Field(None, description="Default: every status but cancelled.")
    owner: ObjectId | None = Field(None, description="User id of the onboarding CSM.")
    program: str | None = Field(None, max_length=50, description="Program key.")
    touch_model: TouchModel | None = None
    page: int = Field(1, ge=1, le=1_000_000)


def _summary(plan: OnboardingPlan, today: date) -> dict[str, Any]:
    return {
        "id": plan.pk,
        "customer": plan.customer_id,
        "customer_name": plan.customer.name,
        "program": plan.version.program.key,
        "version": plan.version.number,
        "status": plan.status,
        "start_date": plan.start_date,
        "target_date": plan.target_date,
        "completed_on": plan.completed_on,
        "onboarding_owner": plan.customer.onboarding_owner_id,
        "required_done": plan.required_done,  # type: ignore[attr-defined] # annotation
        "required_total": plan.required_total,  # type: ignore[attr-defined] # annotation
        "percent": selectors.percent(plan.required_done, plan.required_total),  # type: ignore[attr-defined] # annotations
        "next_due": plan.next_due,  # type: ignore[attr-defined] # annotation
        "days_overdue": selectors.days_overdue(plan, today),
    }


def _plan_out(plan_id: int) -> dict[str, Any]:
    today = timezone.localdate()
    plan = get_object_or_404(selectors.plans_by_ids([plan_id]))
    progress = status.plan_progress(plan, as_of=today)
    milestones = progress.milestones  # in program order, with phases loaded
    return {
        **_summary(plan, today),
        "cancelled_at": plan.cancelled_at,
        "progress": {
            "required_done": progress.required_done,
            "required_total": progress.required_total,
            "percent": progress.percent,
            "current_phase": progress.current_phase.name if progress.current_phase else None,
            "next_actions": [pm.milestone.key for pm in progress.next_actions],
        },
        "milestones": [
            {
                "key": pm.milestone.key,
                "name": pm.milestone.name,
                "phase": pm.milestone.phase.name,
                "owner_side": pm.milestone.owner_side,
                "required": pm.milestone.required,
                "due_date": pm.due_date,
                "status": pm.status,
                "started_on": pm.started_on,
                "completed_on": pm.completed_on,
                "completed_via": pm.completed_via,
                "blocked_reason": pm.blocked_reason,
                "skipped_reason": pm.skipped_reason,
            }
            for pm in milestones
        ],
        "tasks": list(plan.tasks.order_by("due_date", "id")),
        "goals": selectors.plan_goals(plan),
        "kickoff": _kickoff(plan),
    }


def _kickoff(plan: OnboardingPlan) -> dict[str, Any]:
    return {name: getattr(plan, name) for name in KickoffForm.Meta.fields}


@router.get(
    "/onboarding/plans",
    response={200: PlanPageOut, **ERRORS},
    summary="Onboarding plans, most at risk first (50 a page)",
)
def list_plans(request: HttpRequest, filters: Query[PlanFilters]) -> dict[str, Any]:
    """Ordered like the board: overdue, at risk, on track, completed; then most days late."""
    require(request.user, Capability.VIEW)
    program_id = None
    if filters.program:
        program_id = (
            Program.objects.filter(key=filters.program).values_list("pk", flat=True).first()
        )
        if program_id is None:
            raise _invalid("program", _("There is no program with this key."))
    plans_ = selectors.board_plans(
        selectors.BoardFilters(
            owner_id=filters.owner,
            program_id=program_id,
            status=filters.status or "",
            touch_model=filters.touch_model or "",
        )
    )
    count = plans_.count()
    start = (filters.page - 1) * PAGE_SIZE
    today = timezone.localdate()
    return {
        "items": [_summary(plan, today) for plan in plans_[start : start + PAGE_SIZE]],
        "count": count,
        "page": filters.page,
        "pages": max(ceil(count / PAGE_SIZE), 1),
    }


@router.get(
    "/onboarding/plans/{plan_id}",
    response={200: PlanOut, **ERRORS},
    summary="One plan: milestones, follow-up tasks, goals, progress and kickoff",
)
def get_plan(request: HttpRequest, plan_id: int) -> dict[str, Any]:
    require(request.user, Capability.VIEW)
    return _plan_out(plan_id)


class PlanIn(InSchema):
    program: str | None = Field(
        None, max_length=50, description="Program key; default: the program that fits the customer."
    )
    version: int | None = Field(
        None, ge=1, description="Version number of the program (default: its published version)."
    )
    start_date: date | None = Field(None, description="Default: the customer's first start date.")


@router.post(
    "/customers/{customer_id}/onboarding-plans",
    response={201: PlanOut, **ERRORS},
    summary="Create a customer's onboarding plan by hand",
)
def create_plan(request: HttpRequest, customer_id: int, payload: PlanIn) -> Status[dict[str, Any]]:
    require(request.user, Capability.EDIT_CUSTOMERS)
    customer = get_object_or_404(Customer, pk=customer_id)
    version: ProgramVersion | None = None
    if payload.version is not None and not payload.program:
        raise _invalid("program", _("Give the program whose version you choose."))
    if payload.program:
        program = Program.objects.filter(key=payload.program).first()
        if program is None:
            raise _invalid("program", _("There is no program with this key."))
        versions = program.versions.all()
        if payload.version is not None:
            version = versions.filter(number=payload.version).first()
            if version is None:
                raise _invalid("version", _("This program has no such version."))
        else:
            version = versions.filter(status=VersionStatus.PUBLISHED).first()
            if version is None:
                raise _invalid("program", _("This program has no published version."))
    if payload.start_date is not None and not 2000 <= payload.start_date.year <= 2999:
        raise _invalid("start_date", _("Give a date between the years 2000 and 2999."))
    try:
        plan = plans.create_plan(
            customer=customer, version=version, start_date=payload.start_date, actor=_user(request)
        )
    except IntegrityError:
        raise ValidationError(_("The customer already has an open onboarding plan.")) from None
    return Status(201, _plan_out(plan.pk))


class MilestoneStatusIn(InSchema):
    status: Literal["done", "in_progress", "blocked", "skipped", "not_started"] = Field(
        description="not_started reopens a done, blocked or skipped milestone."
    )
    reason: Line300 = Field("", description="Required to block or skip.")


@router.post(
    "/onboarding/plans/{plan_id}/milestones/{key}/status",
    response={200: PlanOut, **ERRORS},
    summary="Complete, start, block, skip (optional only) or reopen a plan's milestone",
)
def set_milestone_status(
    request: HttpRequest, plan_id: int, key: str, payload: MilestoneStatusIn
) -> dict[str, Any]:
    require(request.user, Capability.EDIT_CUSTOMERS)
    plan = get_object_or_404(OnboardingPlan, pk=plan_id)
    pm = get_object_or_404(plan.milestones.select_related("milestone"), milestone__key=key)
    if payload.status in ("blocked", "skipped") and not payload.reason:
        raise _invalid("reason", _("Say why (the reason is shown on the plan)."))
    if payload.status == "skipped" and pm.milestone.required:
        raise _invalid("status", _("A required milestone cannot be skipped."))
    plans.set_milestone_status(pm, payload.status, actor=_user(request), reason=payload.reason)
    status.refresh_statuses(timezone.localdate(), plan_ids=[plan.pk])
    return _plan_out(plan.pk)


class GoalIn(InSchema):
    title: Name = Field(description="The goal as agreed with the customer.")
    kind: Literal["metric", "checklist"]
    metric_key: str = Field("", max_length=100, description="For a metric goal: the metric's key.")
    op: Literal[">=", ">", "<=", "<", "="] = ">="
    target: float | None = Field(None, allow_inf_nan=False, description="For a metric goal.")
    checklist: list[Line300] = Field(
        default_factory=list, max_length=50, description="For a checklist goal: the items."
    )
    due_date: date


@router.post(
    "/onboarding/plans/{plan_id}/goals",
    response={201: GoalOut, **ERRORS},
    summary="Record a success goal agreed with the customer",
)
def add_goal(request: HttpRequest, plan_id: int, payload: GoalIn) -> Status[SuccessGoal]:
    require(request.user, Capability.EDIT_CUSTOMERS)
    plan = get_object_or_404(OnboardingPlan.objects.select_related("customer"), pk=plan_id)
    # The page's form holds the rules (metric known, target given, items written…).
    form = GoalForm(
        {
            "title": payload.title,
            "kind": payload.kind,
            "metric_key": payload.metric_key,
            "op": payload.op,
            "target": "" if payload.target is None else repr(payload.target),
            "checklist": "\n".join(payload.checklist),
            "due_date": payload.due_date.isoformat(),
        }
    )
    if not form.is_valid():
        raise ValidationError({name: list(errors) for name, errors in form.errors.items()})
    data = form.cleaned_data
    goal = goals.add_goal(
        customer=plan.customer,
        plan=plan,
        title=data["title"],
        kind=data["kind"],
        due_date=data["due_date"],
        metric_key=data["metric_key"] or "",
        op=data["op"] or ">=",
        target=data["target"],
        checklist=data["checklist"],
        actor=_user(request),
    )
    return Status(201, goal)


class KickoffPatch(PatchSchema):
    NULLABLE: ClassVar[frozenset[str]] = frozenset({"kickoff_on"})

    kickoff_on: date | None = Field(None)
    desired_outcomes: Text | None = Field(None)
    current_issues: Text | None = Field(None)
    stakeholders: Text | None = Field(None)
    it_literacy: Literal["", "low", "medium", "high"] | None = Field(None)
    kickoff_notes: Text | None = Field(None)


@router.patch(
    "/onboarding/plans/{plan_id}/kickoff",
    response={200: KickoffOut, **ERRORS},
    summary="Save the kickoff record (only the fields sent change)",
)
def update_kickoff(request: HttpRequest, plan_id: int, payload: KickoffPatch) -> dict[str, Any]:
    require(request.user, Capability.EDIT_CUSTOMERS)
    plan = get_object_or_404(OnboardingPlan, pk=plan_id)
    data = _kickoff(plan)
    data.update(payload.model_dump(exclude_unset=True))
    form = KickoffForm(
        {name: "" if value is None else value for name, value in data.items()}, instance=plan
    )
    if not form.is_valid():
        raise ValidationError({name: list(errors) for name, errors in form.errors.items()})
    plans.save_kickoff(
        OnboardingPlan.objects.get(pk=plan.pk),
        {name: form.cleaned_data[name] for name in KickoffForm.Meta.fields},
        actor=_user(request),
    )
    return _kickoff(OnboardingPlan.objects.get(pk=plan.pk))
