"""Customer onboarding plans: creation from a program version, milestone changes, the kickoff.

Every service validates, writes in a transaction and announces the change on the customer's
timeline after commit. Bad input raises ``django.core.exceptions.ValidationError`` with a
translated message, keyed by the field when there is one.

A plan is completed when every *required* milestone is done (required milestones cannot be
skipped), on the day the last of them was done; nothing else completes it.
"""

import logging
from datetime import date, datetime, time, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, Exists, Max, Model, OuterRef, Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from kizuna.core import timeline
from kizuna.core.models import TimelineKind, User
from kizuna.customers.models import Customer, SalesHandoff, Subscription
from kizuna.onboarding.calendar import load_calendar
from kizuna.onboarding.models import (
    CompletedVia,
    MilestoneStatus,
    OnboardingPlan,
    OnboardingSettings,
    OwnerSide,
    PlanMilestone,
    PlanStatus,
    PlanTask,
    ProgramVersion,
    VersionStatus,
)
from kizuna.onboarding.programs import choose_version, pick_version, published_versions
from kizuna.onboarding.status import refresh_statuses

logger = logging.getLogger(__name__)

# A new customer gets a plan automatically within this many days of their first start.
NEW_CUSTOMER_DAYS = 30

# Timeline kinds not (yet) in core.models.TimelineKind; the timeline accepts any dotted kind.
PLAN_CANCELLED = "onboarding.cancelled"
FOLLOW_UP_DONE = "onboarding.follow_up"

SETTLED = (MilestoneStatus.DONE, MilestoneStatus.SKIPPED)
KICKOFF_FIELDS = (
    "desired_outcomes",
    "current_issues",
    "stakeholders",
    "it_literacy",
    "kickoff_notes",
    "kickoff_on",
)


def _moment(day: date) -> datetime:
    """When something that happened on ``day`` goes on the timeline (now, for today)."""
    if day >= timezone.localdate():
        return timezone.now()
    return timezone.make_aware(datetime.combine(day, time(12)))


def open_plans() -> QuerySet[OnboardingPlan]:
    """Plans neither completed nor cancelled."""
    return OnboardingPlan.objects.filter(completed_on__isnull=True, cancelled_at__isnull=True)


# -- creating plans ---------------------------------------------------------------------------


def create_plan(
    *,
    customer: Customer,
    version: ProgramVersion | None = None,
    start_date: date | None = None,
    actor: User | None = None,
) -> OnboardingPlan:
    """Create the customer's plan from a published version (default: ``pick_version``).

    Copies every milestone with its due date (``start + offset``, moved past weekends and
    holidays per the settings), creates the follow-up tasks (CSM tasks owned by the
    customer's onboarding CSM) and sets the target date. ``start_date`` defaults to the
    customer's first start date, else today. A customer has at most one open plan.
    """
    if version is None:
        version = pick_version(customer)
        if version is None:
            raise ValidationError(
                {
                    "version": _(
                        "No published onboarding program fits this customer "
                        "(touch model %(touch)s, segment %(segment)s)."
                    )
                    % {
                        "touch": customer.get_touch_model_display(),
                        "segment": customer.segment or "-",
                    }
                }
            )
    elif version.status != VersionStatus.PUBLISHED:
        raise ValidationError(
            {
                "version": _("Only a published version makes plans; %(version)s is %(status)s.")
                % {"version": version, "status": version.get_status_display()}
            }
        )
    start = start_date or customer.first_start_date or timezone.localdate()
    already = _("%(customer)s already has an open onboarding plan.") % {"customer": customer}
    if open_plans().filter(customer=customer).exists():
        raise ValidationError(already)
    try:
        with transaction.atomic():
            plan = _create_plan_rows(customer, version, start, actor)
    except IntegrityError:  # made at the same moment by someone else
        raise ValidationError(already) from None
    return plan


def _create_plan_rows(
    customer: Customer, version: ProgramVersion, start: date, actor: User | None
) -> OnboardingPlan:
    calendar = load_calendar(since=start)
    plan = OnboardingPlan.objects.create(
        customer=customer,
        version=version,
        start_date=start,
        target_date=calendar.due(start, version.target_days),
        created_by=actor,
    )
    PlanMilestone.objects.bulk_create(
        [
            PlanMilestone(plan=plan, milestone=m, due_date=calendar.due(start, m.due_offset_days))
            for m in version.milestones.all()
        ]
    )
    PlanTask.objects.bulk_create(
        [
            PlanTask(
                plan=plan,
                follow_up=f,
                title=f.name,
                due_date=calendar.due(start, f.day_offset),
                owner_side=f.owner_side,
                owner_id=customer.onboarding_owner_id if f.owner_side == OwnerSide.CSM else None,
            )
            for f in version.follow_ups.all()
        ]
    )
    refresh_statuses(timezone.localdate(), plan_ids=[plan.pk])
    plan.refresh_from_db()
    program = version.program
    timeline.record_after_commit(
        customer_id=customer.pk,
        kind=TimelineKind.ONBOARDING_PLAN_CREATED,
        title=_("Onboarding plan created: %(program)s v%(number)s")
        % {"program": program.name, "number": version.number},
        actor=actor,
        payload={
            "plan": plan.pk,
            "version": version.pk,
            "program": program.key,
            "start_date": start.isoformat(),
            "target_date": plan.target_date.isoformat(),
        },
    )
    return plan


def create_missing_plans(as_of: date) -> int:
    """Create plans for new customers who have none; returns how many were created.

    New: the first subscription (``start_date`` = the customer's first start date) started
    within the last 30 days up to ``as_of``; the customer has never had a plan. Nothing is
    created when ``OnboardingSettings.create_plans_automatically`` is off. Customers no
    program fits are skipped (and logged).
    """
    if not OnboardingSettings.load().create_plans_automatically:
        return 0
    first_subscription = Subscription.objects.filter(
        customer=OuterRef("pk"), start_date=OuterRef("first_start_date")
    )
    any_plan = OnboardingPlan.objects.filter(customer=OuterRef("pk"))
    customers = list(
        Customer.objects.filter(
            first_start_date__lte=as_of,
            first_start_date__gte=as_of - timedelta(days=NEW_CUSTOMER_DAYS),
        )
        .filter(Exists(first_subscription))
        .exclude(Exists(any_plan))
        .exclude(churn_date__lte=as_of)
        .order_by("first_start_date", "pk")
    )
    versions = published_versions()
    created = 0
    for customer in customers:
        version = choose_version(
            versions, touch_model=customer.touch_model, segment=customer.segment
        )
        if version is None:
            logger.info("no onboarding program fits customer %s", customer.pk)
            continue
        try:
            create_plan(customer=customer, version=version, start_date=customer.first_start_date)
        except ValidationError:  # made meanwhile by someone else
            continue
        created += 1
    return created


# -- milestone changes ------------------------------------------------------------------------


def _copy_into(target: Model, source: Model) -> None:
    """Give the caller's instance the saved values (services also return the fresh row)."""
    if target is not source:
        for field in source._meta.concrete_fields:
            setattr(target, field.attname, getattr(source, field.attname))


def _locked(pm: PlanMilestone) -> PlanMilestone:
    return (
        PlanMilestone.objects.select_for_update().select_related("plan", "milestone").get(pk=pm.pk)
    )


def _ensure_open(plan: OnboardingPlan) -> None:
    if plan.cancelled_at is not None:
        raise ValidationError(_("This plan was cancelled; its milestones can no longer change."))


def _record_change(
    pm: PlanMilestone,
    *,
    from_status: str,
    via: str,
    actor: User | None,
    reason: str = "",
    on: date | None = None,
) -> None:
    label = MilestoneStatus(pm.status).label
    timeline.record_after_commit(
        customer_id=pm.plan.customer_id,
        kind=TimelineKind.MILESTONE_CHANGED,
        title=_("%(milestone)s: %(status)s") % {"milestone": pm.milestone.name, "status": label},
        body=reason,
        actor=actor,
        occurred_at=_moment(on) if on else None,
        payload={
            "plan": pm.plan_id,
            "milestone": pm.milestone.key,
            "from": from_status,
            "to": pm.status,
            "via": via,
        },
    )


def set_milestone_status(
    plan_milestone: PlanMilestone,
    status: str,
    *,
    actor: User | None = None,
    via: str = CompletedVia.STAFF,
    reason: str = "",
    on: date | None = None,
) -> PlanMilestone:
    """Set a milestone's status by hand and return the updated row.

    ``done`` completes it (see ``complete_milestone``); ``blocked`` needs a reason;
    ``skipped`` needs a reason and is allowed only for optional milestones; ``not_started``
    or ``in_progress`` reopen it (the computed status follows from its dependencies).
    """
    if status == MilestoneStatus.DONE:
        return complete_milestone(plan_milestone, via=via, actor=actor, on=on)
    if status in (MilestoneStatus.NOT_STARTED, MilestoneStatus.IN_PROGRESS):
        return reopen_milestone(plan_milestone, actor=actor, via=via)
    if status not in (MilestoneStatus.BLOCKED, MilestoneStatus.SKIPPED):
        raise ValidationError({"status": _("Unknown status %(status)r.") % {"status": status}})
    with transaction.atomic():
        pm = _locked(plan_milestone)
        _ensure_open(pm.plan)
        reason = reason.strip()
        if status == MilestoneStatus.SKIPPED and pm.milestone.required:
            raise ValidationError(
                {
                    "status": _(
                        "%(milestone)s is required and cannot be skipped: "
                        "the plan completes only when every required milestone is done."
                    )
                    % {"milestone": pm.milestone.name}
                }
            )
        if not reason:
            message = (
                _("Say why the milestone is blocked.")
                if status == MilestoneStatus.BLOCKED
                else _("Say why the milestone is skipped.")
            )
            raise ValidationError({"reason": message})
        if pm.status == MilestoneStatus.DONE:
            raise ValidationError(
                {
                    "status": _("%(milestone)s is done; reopen it first.")
                    % {"milestone": pm.milestone.name}
                }
            )
        from_status = pm.status
        pm.status = status
        if status == MilestoneStatus.BLOCKED:
            pm.blocked_reason = reason[:300]
            pm.skipped_reason = ""
        else:
            pm.skipped_reason = reason[:300]
            pm.blocked_reason = ""
        pm.save(update_fields=["status", "blocked_reason", "skipped_reason"])
        refresh_statuses(timezone.localdate(), plan_ids=[pm.plan_id])
        _record_change(pm, from_status=from_status, via=via, actor=actor, reason=reason)
        pm.plan.refresh_from_db()
    _copy_into(plan_milestone, pm)
    return pm


def complete_milestone(
    pm: PlanMilestone, *, via: str, actor: User | None = None, on: date | None = None
) -> PlanMilestone:
    """Mark a milestone done on ``on`` (default today) and return the updated row.

    Its dependencies must be done or skipped first (the error names them). Records who and
    how (staff, the customer on the plan page, automatic). When it was the last open
    required milestone, the plan is completed on the latest required completion date and
    ``onboarding.completed`` goes on the timeline. Completing a done milestone changes nothing.
    """
    if via not in CompletedVia.values:
        raise ValidationError({"via": _("Unknown way of completion %(via)r.") % {"via": via}})
    today = timezone.localdate()
    day = on or today
    if via != CompletedVia.AUTOMATIC and day > today:
        raise ValidationError({"on": _("The completion date cannot be in the future.")})
    with transaction.atomic():
        locked = _locked(pm)
        if locked.status == MilestoneStatus.DONE:
            return locked
        _ensure_open(locked.plan)
        waiting = list(
            PlanMilestone.objects.filter(
                plan_id=locked.plan_id, milestone__unlocks=locked.milestone
            )
            .exclude(status__in=SETTLED)
            .select_related("milestone")
            .order_by("milestone__position", "pk")
        )
        if waiting:
            raise ValidationError(
                _("%(milestone)s can be done only after %(dependencies)s.")
                % {
                    "milestone": locked.milestone.name,
                    "dependencies": ", ".join(w.milestone.name for w in waiting),
                }
            )
        from_status = locked.status
        locked.status = MilestoneStatus.DONE
        locked.completed_on = day
        locked.completed_via = via
        locked.completed_by = actor
        locked.blocked_reason = ""
        if locked.started_on is None or locked.started_on > day:
            locked.started_on = day
        locked.save(
            update_fields=[
                "status",
                "completed_on",
                "completed_via",
                "completed_by",
                "blocked_reason",
                "started_on",
            ]
        )
        _record_change(locked, from_status=from_status, via=via, actor=actor, on=day)
        _complete_plan_if_done(locked.plan, actor=actor)
        refresh_statuses(today, plan_ids=[locked.plan_id])
        locked.plan.refresh_from_db()
    _copy_into(pm, locked)
    return locked


def _complete_plan_if_done(plan: OnboardingPlan, *, actor: User | None) -> bool:
    if plan.completed_on is not None:
        return False
    required = PlanMilestone.objects.filter(plan=plan, milestone__required=True).aggregate(
        total=Count("pk"),
        open=Count("pk", filter=~Q(status=MilestoneStatus.DONE)),
        last=Max("completed_on"),
    )
    if not required["total"] or required["open"]:
        return False
    plan.completed_on = required["last"]
    plan.status = PlanStatus.COMPLETED
    plan.save(update_fields=["completed_on", "status"])
    days = (plan.completed_on - plan.start_date).days
    timeline.record_after_commit(
        customer_id=plan.customer_id,
        kind=TimelineKind.ONBOARDING_COMPLETED,
        title=_("Onboarding completed in %(days)s days") % {"days": days},
        actor=actor,
        occurred_at=_moment(plan.completed_on),
        payload={"plan": plan.pk, "version": plan.version_id, "days": days},
    )
    return True


def reopen_milestone(
    pm: PlanMilestone, *, actor: User | None = None, via: str = CompletedVia.STAFF
) -> PlanMilestone:
    """Undo done, blocked or skipped and return the row; its computed status follows.

    Reopening a required milestone of a completed plan reopens the plan (unless the
    customer has another open plan meanwhile).
    """
    with transaction.atomic():
        locked = _locked(pm)
        _ensure_open(locked.plan)
        if locked.status not in (*SETTLED, MilestoneStatus.BLOCKED):
            return locked
        plan = locked.plan
        if plan.completed_on is not None and locked.milestone.required:
            if open_plans().filter(customer_id=plan.customer_id).exists():
                raise ValidationError(
                    _("The customer has a newer open plan; this completed plan cannot reopen.")
                )
            plan.completed_on = None
            plan.save(update_fields=["completed_on"])
        from_status = locked.status
        locked.status = MilestoneStatus.NOT_STARTED
        locked.completed_on = None
        locked.completed_via = ""
        locked.completed_by = None
        locked.blocked_reason = ""
        locked.skipped_reason = ""
        locked.save(
            update_fields=[
                "status",
                "completed_on",
                "completed_via",
                "completed_by",
                "blocked_reason",
                "skipped_reason",
            ]
        )
        refresh_statuses(timezone.localdate(), plan_ids=[locked.plan_id])
        locked.refresh_from_db(fields=["status", "started_on"])
        _record_change(locked, from_status=from_status, via=via, actor=actor)
        locked.plan.refresh_from_db()
    _copy_into(pm, locked)
    return locked


# -- plan-level changes -----------------------------------------------------------------------


@transaction.atomic
def cancel_plan(
    plan: OnboardingPlan, *, actor: User | None = None, reason: str = ""
) -> OnboardingPlan:
    """Cancel an open plan (the customer may then get a new one by hand) and return it."""
    given, plan = plan, OnboardingPlan.objects.select_for_update().get(pk=plan.pk)
    if plan.cancelled_at is not None or plan.completed_on is not None:
        raise ValidationError(_("Only an open plan can be cancelled."))
    plan.cancelled_at = timezone.now()
    plan.status = PlanStatus.CANCELLED
    plan.save(update_fields=["cancelled_at", "status"])
    _copy_into(given, plan)
    timeline.record_after_commit(
        customer_id=plan.customer_id,
        kind=PLAN_CANCELLED,
        title=_("Onboarding plan cancelled"),
        body=reason,
        actor=actor,
        payload={"plan": plan.pk, "version": plan.version_id},
    )
    return plan


@transaction.atomic
def complete_task(
    task: PlanTask,
    *,
    actor: User | None = None,
    outcome: str = "",
    on: date | None = None,
) -> PlanTask:
    """Mark a follow-up task done (with what came out of it) and return it."""
    given, task = task, PlanTask.objects.select_for_update().get(pk=task.pk)
    day = on or timezone.localdate()
    if day > timezone.localdate():
        raise ValidationError({"on": _("The date cannot be in the future.")})
    task.done_on = day
    task.outcome = outcome
    task.save(update_fields=["done_on", "outcome"])
    _copy_into(given, task)
    timeline.record_after_commit(
        customer_id=task.plan.customer_id,
        kind=FOLLOW_UP_DONE,
        title=_("Follow-up done: %(title)s") % {"title": task.title},
        body=outcome,
        actor=actor,
        occurred_at=_moment(day),
        payload={"plan": task.plan_id, "task": task.pk},
    )
    return task


def _parse_day(field: str, value: Any) -> date | None:
    if value in (None, ""):
        return None
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise ValidationError(
            {field: _("%(value)r is not a date (YYYY-MM-DD).") % {"value": value}}
        ) from None


@transaction.atomic
def save_kickoff(
    plan: OnboardingPlan, data: dict[str, Any], *, actor: User | None
) -> OnboardingPlan:
    """Store the kickoff record and return the plan.

    ``data`` holds any of desired_outcomes, current_issues, stakeholders, it_literacy
    (low/medium/high or empty), kickoff_notes, kickoff_on (a date). Unknown keys and bad
    values raise ValidationError naming the field.
    """
    unknown = sorted(set(data) - set(KICKOFF_FIELDS))
    if unknown:
        raise ValidationError({name: _("Not a kickoff field.") for name in unknown})
    given, plan = plan, OnboardingPlan.objects.select_for_update().get(pk=plan.pk)
    changed: list[str] = []
    for name, value in data.items():
        if name == "kickoff_on":
            value = _parse_day(name, value)
        elif value is None:
            value = ""
        else:
            value = str(value).strip() if name != "it_literacy" else str(value)
        if getattr(plan, name) != value:
            setattr(plan, name, value)
            changed.append(name)
    if not changed:
        return plan
    plan.clean_fields(
        exclude=[f.name for f in OnboardingPlan._meta.fields if f.name not in changed]
    )
    plan.save(update_fields=changed)
    _copy_into(given, plan)
    timeline.record_after_commit(
        customer_id=plan.customer_id,
        kind=TimelineKind.KICKOFF_RECORDED,
        title=_("Kickoff recorded"),
        body=plan.desired_outcomes,
        actor=actor,
        payload={"plan": plan.pk, "fields": changed},
    )
    return plan


def prefill_kickoff(customer: Customer) -> dict[str, str]:
    """Kickoff fields from the customer's latest sales handoff (empty strings when none).

    desired_outcomes ← desired outcomes, current_issues ← pains, stakeholders ← stakeholders.
    """
    handoff = (
        SalesHandoff.objects.filter(customer=customer).order_by("-handed_off_on", "-id").first()
    )
    if handoff is None:
        return {"desired_outcomes": "", "current_issues": "", "stakeholders": ""}
    return {
        "desired_outcomes": handoff.desired_outcomes,
        "current_issues": handoff.pains,
        "stakeholders": handoff.stakeholders,
    }


def kickoff_initial(plan: OnboardingPlan) -> dict[str, Any]:
    """The kickoff form's initial values: what the plan stores, else the handoff's pre-fill."""
    values: dict[str, Any] = {name: getattr(plan, name) for name in KICKOFF_FIELDS}
    if not all(values[name] for name in ("desired_outcomes", "current_issues", "stakeholders")):
        for name, value in prefill_kickoff(plan.customer).items():
            if not values[name]:
                values[name] = value
    return values
