"""Staff pages of onboarding: the board of plans, a plan's page and Gantt chart, and the
Customer 360 panel. Thin doors over the engine (``plans``, ``status``, ``goals``) and
``selectors``; milestone, follow-up and goal actions answer htmx with the plan's main section.
"""

import csv
from collections.abc import Iterable
from datetime import date, timedelta
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Case, DateField, QuerySet, Value, When
from django.forms import BaseForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from kizuna.core.access import require, requires, user_can
from kizuna.core.models import TimelineEntry, TimelineKind, User
from kizuna.core.roles import Capability
from kizuna.customers.models import Customer
from kizuna.onboarding import goals, plans, selectors, status
from kizuna.onboarding.calendar import load_calendar
from kizuna.onboarding.forms import (
    MILESTONE_ACTIONS,
    BoardFilterForm,
    BulkAction,
    BulkActionForm,
    CancelPlanForm,
    ChecklistTickForm,
    GoalForm,
    KickoffForm,
    MilestoneStatusForm,
    PlanCreateForm,
    TaskDoneForm,
)
from kizuna.onboarding.models import (
    MilestoneStatus,
    OnboardingPlan,
    PlanMilestone,
    ProgramVersion,
    SuccessGoal,
)

PLANS_PER_PAGE = 50


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


def _add_errors(form: BaseForm, error: ValidationError) -> None:
    if hasattr(error, "error_dict"):
        for name, errors in error.error_dict.items():
            form.add_error(name if name in form.fields else None, errors)
    else:
        form.add_error(None, error)


def _labelled_errors(form: BaseForm) -> list[tuple[str, str]]:
    """``(field label, message)`` pairs (label empty for errors about the whole form)."""
    return [
        (str(form.fields[name].label) if name in form.fields else "", str(message))
        for name, messages_ in form.errors.items()
        for message in messages_
    ]


def _htmx(request: HttpRequest) -> bool:
    return bool(getattr(request, "htmx", False))


# --- A write the engine does not offer (a candidate for ``plans.py``) --------------------------


@transaction.atomic
def shift_open_milestones(*, plan_ids: list[int], days: int, actor: User | None) -> int:
    """Move the due dates of the open milestones of open plans by ``days`` (then to the next
    working day); one UPDATE for all of them. Returns the milestones moved."""
    milestones = PlanMilestone.objects.filter(
        plan_id__in=plan_ids,
        plan__completed_on__isnull=True,
        plan__cancelled_at__isnull=True,
        status__in=selectors.OPEN_MILESTONE_STATUSES,
    )
    old_dates = sorted(set(milestones.values_list("due_date", flat=True)))
    if not old_dates:
        return 0
    calendar = load_calendar(since=min(old_dates) + timedelta(days=min(days, 0)))
    moved_plans = sorted(set(milestones.values_list("plan_id", flat=True)))
    changed = milestones.update(
        due_date=Case(
            *(When(due_date=old, then=Value(calendar.due(old, days))) for old in old_dates),
            output_field=DateField(),
        )
    )
    customers = dict(
        OnboardingPlan.objects.filter(pk__in=moved_plans).values_list("pk", "customer_id")
    )
    TimelineEntry.objects.bulk_create(
        TimelineEntry(
            customer_id=customers[plan_id],
            kind=TimelineKind.MILESTONE_CHANGED,
            title=_("Open milestones moved by %(days)+d days") % {"days": days},
            actor=actor,
            payload={"plan": plan_id, "shift_days": days},
        )
        for plan_id in moved_plans
    )
    return changed


# --- The board -----------------------------------------------------------------------------------


def _board_form(data: Any) -> BoardFilterForm:
    return BoardFilterForm(
        data,
        owners=selectors.board_owners(),
        programs=selectors.board_programs(),
        versions=selectors.board_versions(),
    )


def _board_rows(plans: Iterable[Any], today: date) -> list[dict[str, Any]]:
    """Each plan with its percent done and days late (none for a completed or cancelled plan)."""
    return [
        {
            "plan": plan,
            "percent": selectors.percent(plan.required_done, plan.required_total),
            "days_overdue": selectors.days_overdue(plan, today),
        }
        for plan in plans
    ]


CSV_HEADER = (
    "plan_id", "customer_id", "customer", "external_id", "program", "version", "status",
    "onboarding_csm", "start_date", "target_date", "required_done", "required_total",
    "percent", "next_due", "days_overdue", "completed_on",
)  # fmt: skip


def _csv(plans: QuerySet[OnboardingPlan], today: date) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="onboarding-plans-{today}.csv"'
    response.write("\ufeff")  # Excel opens UTF-8 (Japanese names) only with a BOM
    writer = csv.writer(response)
    writer.writerow(CSV_HEADER)
    for row in _board_rows(plans, today):
        plan = row["plan"]
        owner = plan.customer.onboarding_owner
        writer.writerow(
            [
                plan.pk, plan.customer_id, plan.customer.name, plan.customer.external_id or "",
                plan.version.program.key, plan.version.number, plan.status,
                owner.username if owner else "", plan.start_date, plan.target_date,
                plan.required_done, plan.required_total, row["percent"],
                plan.next_due or "", row["days_overdue"], plan.completed_on or "",
            ]
        )  # fmt: skip
    return response


def _board_page(
    request: HttpRequest, *, bulk_form: BulkActionForm | None = None, status_code: int = 200
) -> HttpResponse:
    today = timezone.localdate()
    form = _board_form(request.GET)
    filters = form.filters()
    plans = selectors.board_plans(filters)
    if request.GET.get("format") == "csv":
        return _csv(plans, today)
    page = Paginator(plans, PLANS_PER_PAGE).get_page(request.GET.get("page"))
    context = {
        "area": "onboarding",
        "form": form,
        "filtered": any(value not in (None, "") for value in (form.cleaned_data or {}).values()),
        "page": page,
        "rows": _board_rows(page.object_list, today),
        "no_plans_at_all": page.paginator.count == 0 and not OnboardingPlan.objects.exists(),
        "bulk_form": bulk_form or BulkActionForm({}),
        "bulk_errors": _labelled_errors(bulk_form) if bulk_form else [],
        "bulk_actions": BulkAction.choices,
        "can_edit": user_can(request.user, Capability.EDIT_CUSTOMERS),
        "today": today,
    }
    template = "onboarding/board.html"
    if _htmx(request) and request.method == "GET":
        template += "#results"
    return render(request, template, context, status=status_code)


@require_GET
@requires(Capability.VIEW)
def board(request: HttpRequest) -> HttpResponse:
    """Every plan, filtered, most at risk first; ``?format=csv`` exports the filtered list."""
    return _board_page(request)


@require_POST
@requires(Capability.VIEW)
def board_bulk(request: HttpRequest) -> HttpResponse:
    """Run a bulk action on the selected plans; the board's filters ride in the query string."""
    form = BulkActionForm(request.POST)
    if not form.is_valid():
        return _board_page(request, bulk_form=form, status_code=400)
    ids = list(
        OnboardingPlan.objects.filter(pk__in=form.cleaned_data["plans"]).values_list(
            "pk", flat=True
        )
    )
    action = form.cleaned_data["action"]
    today = timezone.localdate()
    if action == BulkAction.EXPORT:
        return _csv(selectors.plans_by_ids(ids), today)
    require(request.user, Capability.EDIT_CUSTOMERS)
    actor = _user(request)
    if action == BulkAction.REFRESH:
        status.refresh_statuses(today, plan_ids=ids)
        messages.success(request, _("Statuses of %(count)d plans refreshed.") % {"count": len(ids)})
    elif action == BulkAction.SHIFT:
        moved = shift_open_milestones(plan_ids=ids, days=form.cleaned_data["days"], actor=actor)
        status.refresh_statuses(today, plan_ids=ids)
        messages.success(request, _("%(count)d open milestones moved.") % {"count": moved})
    elif action == BulkAction.CANCEL:
        cancelled = 0
        open_plans = OnboardingPlan.objects.filter(
            pk__in=ids, completed_on__isnull=True, cancelled_at__isnull=True
        ).select_related("customer")
        for plan in open_plans:
            plans.cancel_plan(plan, actor=actor, reason=form.cleaned_data["reason"])
            cancelled += 1
        messages.success(request, _("%(count)d plans cancelled.") % {"count": cancelled})
    query = request.GET.urlencode()
    return redirect(reverse("onboarding:board") + (f"?{query}" if query else ""))


# --- A plan's page -------------------------------------------------------------------------------


def _plan(pk: int) -> OnboardingPlan:
    return get_object_or_404(selectors.plan_for_page(pk))


def _plan_context(request: HttpRequest, plan: OnboardingPlan, **extra: Any) -> dict[str, Any]:
    today = timezone.localdate()
    progress = status.plan_progress(plan, as_of=today)
    current_id = progress.current_phase.pk if progress.current_phase else None
    context: dict[str, Any] = {
        "area": "onboarding",
        "plan": plan,
        "customer": plan.customer,
        "progress": progress,
        "next_actions": progress.next_actions,
        "phases": selectors.group_by_phase(progress.milestones, current_id),
        "tasks": list(plan.tasks.select_related("owner").order_by("done_on", "due_date", "id")),
        "goals": selectors.plan_goals(plan),
        "today": today,
        "week_end": progress.week_end,
        "is_open": plan.completed_on is None and plan.cancelled_at is None,
        # A completed plan's milestones may still be reopened; a cancelled plan is frozen.
        "can_act": plan.cancelled_at is None,
        "can_edit": user_can(request.user, Capability.EDIT_CUSTOMERS),
        "milestone_actions": MILESTONE_ACTIONS,
        "goal_form": GoalForm(),
        "open_statuses": selectors.OPEN_MILESTONE_STATUSES,
    }
    context.update(extra)
    return context


def _plan_page(
    request: HttpRequest, plan: OnboardingPlan, *, status_code: int = 200, **extra: Any
) -> HttpResponse:
    context = _plan_context(request, plan, **extra)
    context.setdefault(
        "kickoff_form", KickoffForm(initial=plans.kickoff_initial(plan), instance=plan)
    )
    context.setdefault("cancel_form", CancelPlanForm())
    return render(request, "onboarding/plan.html", context, status=status_code)


def _plan_answer(
    request: HttpRequest, plan: OnboardingPlan, *, error: bool = False, **extra: Any
) -> HttpResponse:
    """After an action: htmx gets the main section (errors shown in place, 200 so it swaps);
    a plain form post is redirected back to the page, or shown the page with a 400."""
    if _htmx(request):
        plan = _plan(plan.pk)
        return render(request, "onboarding/plan.html#main", _plan_context(request, plan, **extra))
    if error:
        return _plan_page(request, _plan(plan.pk), status_code=400, **extra)
    return redirect("onboarding:plan", plan.pk)


@require_GET
@requires(Capability.VIEW)
def plan_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _plan_page(request, _plan(pk))


@require_POST
@requires(Capability.EDIT_CUSTOMERS)
def milestone_status(request: HttpRequest, pk: int, milestone_pk: int) -> HttpResponse:
    """Complete, start, block (reason), skip (optional only, reason) or reopen a milestone."""
    plan = _plan(pk)
    pm = get_object_or_404(plan.milestones.select_related("milestone"), pk=milestone_pk)
    form = MilestoneStatusForm(request.POST, required=pm.milestone.required)
    if form.is_valid():
        try:
            plans.set_milestone_status(
                pm,
                form.cleaned_data["status"],
                actor=_user(request),
                reason=form.cleaned_data["reason"],
            )
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            return _plan_answer(request, plan)
    return _plan_answer(request, plan, error=True, action_form=form, action_milestone=pm.pk)


@require_POST
@requires(Capability.EDIT_CUSTOMERS)
def task_done(request: HttpRequest, pk: int, task_pk: int) -> HttpResponse:
    """Mark a follow-up task done with its outcome."""
    plan = _plan(pk)
    task = get_object_or_404(plan.tasks.select_related("plan"), pk=task_pk)
    form = TaskDoneForm(request.POST)
    if form.is_valid() and task.done_on is not None:
        form.add_error("outcome", _("This follow-up is already done."))
    if form.is_valid():
        try:
            plans.complete_task(
                task,
                outcome=form.cleaned_data["outcome"],
                actor=_user(request),
                on=timezone.localdate(),
            )
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            return _plan_answer(request, plan)
    return _plan_answer(request, plan, error=True, task_form=form, task_error=task.pk)


@require_POST
@requires(Capability.EDIT_CUSTOMERS)
def goal_add(request: HttpRequest, pk: int) -> HttpResponse:
    """Record a success goal agreed with the customer on this plan."""
    plan = _plan(pk)
    form = GoalForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            goals.add_goal(
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
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            return _plan_answer(request, plan)
    return _plan_answer(request, plan, error=True, goal_form=form, goal_form_open=True)


@require_POST
@requires(Capability.EDIT_CUSTOMERS)
def goal_tick(request: HttpRequest, pk: int, goal_pk: int) -> HttpResponse:
    """Tick or untick one checklist item of a goal."""
    plan = _plan(pk)
    goal = get_object_or_404(SuccessGoal, pk=goal_pk, plan=plan)
    form = ChecklistTickForm(request.POST)
    if form.is_valid():
        try:
            goals.tick_checklist_item(
                goal,
                form.cleaned_data["item"],
                done=form.cleaned_data["done"],
                actor=_user(request),
            )
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            return _plan_answer(request, plan)
    message = "; ".join(str(error) for errors in form.errors.values() for error in errors)
    return _plan_answer(request, plan, error=True, goal_error=goal.pk, goal_error_text=message)


@require_POST
@requires(Capability.EDIT_CUSTOMERS)
def kickoff(request: HttpRequest, pk: int) -> HttpResponse:
    """Save the kickoff record (step 2: understanding the customer)."""
    plan = _plan(pk)
    form = KickoffForm(request.POST, instance=OnboardingPlan.objects.get(pk=plan.pk))
    if form.is_valid():
        data = {name: form.cleaned_data[name] for name in KickoffForm.Meta.fields}
        try:
            plans.save_kickoff(plan, data, actor=_user(request))
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            messages.success(request, _("Kickoff saved."))
            return redirect(reverse("onboarding:plan", args=[plan.pk]) + "#kickoff")
    return _plan_page(request, plan, status_code=400, kickoff_form=form, kickoff_open=True)


@require_POST
@requires(Capability.EDIT_CUSTOMERS)
def plan_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    plan = _plan(pk)
    form = CancelPlanForm(request.POST)
    if form.is_valid():
        try:
            plans.cancel_plan(plan, actor=_user(request), reason=form.cleaned_data["reason"])
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            messages.success(request, _("The plan was cancelled."))
            return redirect("onboarding:plan", plan.pk)
    return _plan_page(request, plan, status_code=400, cancel_form=form, cancel_open=True)


@require_GET
@requires(Capability.VIEW)
def plan_gantt(request: HttpRequest, pk: int) -> HttpResponse:
    """The plan's milestones on a timeline, by phase, with today's line."""
    plan = _plan(pk)
    today = timezone.localdate()
    milestones = selectors.plan_milestones(plan)
    context = {
        "area": "onboarding",
        "plan": plan,
        "customer": plan.customer,
        "chart": selectors.gantt(plan, milestones, today),
        "today": today,
        "legend": [
            (MilestoneStatus.DONE, MilestoneStatus.DONE.label),
            (MilestoneStatus.IN_PROGRESS, MilestoneStatus.IN_PROGRESS.label),
            (MilestoneStatus.NOT_STARTED, MilestoneStatus.NOT_STARTED.label),
            (MilestoneStatus.BLOCKED, MilestoneStatus.BLOCKED.label),
            (MilestoneStatus.SKIPPED, MilestoneStatus.SKIPPED.label),
            ("overdue", _("Overdue")),
        ],
    }
    return render(request, "onboarding/gantt.html", context)


# --- Customer 360 panel --------------------------------------------------------------------------


def _panel_context(request: HttpRequest, customer: Customer, **extra: Any) -> dict[str, Any]:
    plan = selectors.latest_plan(customer.pk)
    today = timezone.localdate()
    open_plan = plan if plan and plan.completed_on is None and plan.cancelled_at is None else None
    context: dict[str, Any] = {
        "customer": customer,
        "plan": plan,
        "open_plan": open_plan,
        "progress": status.plan_progress(plan, as_of=today) if plan else None,
        "goals": selectors.plan_goals(plan) if plan else [],
        "can_edit": user_can(request.user, Capability.EDIT_CUSTOMERS),
        "today": today,
    }
    if open_plan is None:
        context["create_form"] = PlanCreateForm()
    context.update(extra)
    return context


@require_GET
@requires(Capability.VIEW)
def customer_onboarding(request: HttpRequest, pk: int) -> HttpResponse:
    """The customer's onboarding: the open plan's progress, or a form to create one."""
    customer = get_object_or_404(Customer, pk=pk)
    template = "onboarding/customer_panel.html"
    if _htmx(request):
        template += "#panel"
    return render(request, template, _panel_context(request, customer))


@require_POST
@requires(Capability.EDIT_CUSTOMERS)
def plan_create(request: HttpRequest, pk: int) -> HttpResponse:
    """Create the customer's plan by hand from a program (or the automatic pick)."""
    customer = get_object_or_404(Customer, pk=pk)
    form = PlanCreateForm(request.POST)
    if form.is_valid():
        version_id = form.cleaned_data["program"]
        version = (
            ProgramVersion.objects.filter(pk=version_id).first() if version_id is not None else None
        )
        try:
            plan = plans.create_plan(
                customer=customer,
                version=version,
                start_date=form.cleaned_data["start_date"],
                actor=_user(request),
            )
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            url = reverse("onboarding:plan", args=[plan.pk])
            if _htmx(request):
                response = HttpResponse(status=204)
                response["HX-Redirect"] = url
                return response
            return redirect(url)
    if _htmx(request):
        context = _panel_context(request, customer, create_form=form)
        return render(request, "onboarding/customer_panel.html#panel", context)
    context = _panel_context(request, customer, create_form=form)
    return render(request, "onboarding/customer_panel.html", context, status=400)
