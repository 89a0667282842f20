"""Task pages: My day (the CSM's home, with quick complete), a task's page and its actions, the
new-task and edit forms, the manager's team view and the Customer 360 "Tasks" panel.

Thin doors: parse the form, check access with ``tasks.access_task``, call one service or
selector, render. Actions answer htmx with the fragment they change (a My day row, the task's
main section, the customer panel) and plain requests with a redirect.
"""

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.forms import BaseForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from kizuna.core.access import requires
from kizuna.core.models import User
from kizuna.core.roles import Capability
from kizuna.customers.models import Customer
from kizuna.playbooks import task_selectors, tasks
from kizuna.playbooks.forms_tasks import (
    CancelForm,
    CompleteForm,
    NewTaskForm,
    ReassignForm,
    SnoozeForm,
    TaskForm,
    TeamFilterForm,
)
from kizuna.playbooks.models import OPEN_TASK_STATUSES, Task


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


def _htmx(request: HttpRequest) -> bool:
    return bool(getattr(request, "htmx", False))


def _add_errors(form: BaseForm, error: ValidationError) -> None:
    if hasattr(error, "error_dict"):
        for name, errors in error.error_dict.items():
            form.add_error(name if name in form.fields else None, errors)
    else:
        form.add_error(None, error)


def _next_url(request: HttpRequest, default: str) -> str:
    """Where a plain (non-htmx) action returns: a safe ``next`` or the default."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return default


# --- My day ------------------------------------------------------------------------------------


@require_GET
@requires(Capability.VIEW)
def my_day(request: HttpRequest) -> HttpResponse:
    """The signed-in person's open tasks: overdue, due today, this week, later."""
    today = timezone.localdate()
    day = task_selectors.my_day(user=_user(request), today=today)
    groups = [
        ("overdue", _("Overdue"), day.overdue, day.overdue_count),
        ("today", _("Due today"), day.due_today, day.due_today_count),
        ("week", _("This week"), day.this_week, day.this_week_count),
        ("later", _("Later or no due date"), day.later, day.later_count),
    ]
    context = {
        "area": "tasks",
        "subnav": "my-day",
        "day": day,
        "groups": groups,
        "today": today,
        "can_create": tasks.can_create_tasks(request.user),
        "complete_form": CompleteForm(),
    }
    return render(request, "playbooks/tasks/my_day.html", context)


def _row_context(request: HttpRequest, task: Task, **extra: Any) -> dict[str, Any]:
    return {
        "task": task,
        "today": timezone.localdate(),
        "can_edit": tasks.can_edit_task(request.user, task),
        "complete_form": CompleteForm(),
        **extra,
    }


@require_POST
@requires(Capability.VIEW)
def task_complete(request: HttpRequest, pk: int) -> HttpResponse:
    """Complete a task with an outcome note (quick complete on My day, or the task's page)."""
    task = tasks.access_task(user=request.user, task_id=pk, write=True)
    form = CompleteForm(request.POST)
    if form.is_valid():
        try:
            task = tasks.complete_task(
                task=task, user=_user(request), outcome=form.cleaned_data["outcome"]
            )
        except ValidationError as exc:
            _add_errors(form, exc)
    if _htmx(request) and request.POST.get("from") == "row":
        # htmx swaps only 2xx answers: the row carries its own error message.
        context = _row_context(request, task, complete_form=form)
        return render(request, "playbooks/tasks/_row.html", context)
    if form.errors:
        return _detail(request, task, complete_form=form, status=400)
    return _after_action(request, task, _("Task completed: {title}").format(title=task.title))


# --- A task's page -----------------------------------------------------------------------------


def _detail(request: HttpRequest, task: Task, *, status: int = 200, **forms: Any) -> HttpResponse:
    can_edit = tasks.can_edit_task(request.user, task)
    context: dict[str, Any] = {
        "area": "tasks",
        "subnav": "my-day",
        "task": task,
        "today": timezone.localdate(),
        "can_edit": can_edit,
        "is_open": task.status in OPEN_TASK_STATUSES,
        "checklist_done": sum(1 for item in task.checklist if item.get("done")),
        "complete_form": forms.get("complete_form") or CompleteForm(),
        "snooze_form": forms.get("snooze_form") or SnoozeForm(),
        "cancel_form": forms.get("cancel_form") or CancelForm(),
        "reassign_form": forms.get("reassign_form")
        or ReassignForm(initial={"owner": task.owner_id}),
    }
    template = "playbooks/tasks/detail.html"
    if _htmx(request):
        # htmx swaps only 2xx answers: the section shows its forms' errors itself.
        return render(request, template + "#main", context)
    return render(request, template, context, status=status)


@require_GET
@requires(Capability.VIEW)
def task_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """A task with its checklist, outcome, customer and the playbook run that made it."""
    return _detail(request, tasks.access_task(user=request.user, task_id=pk))


def _after_action(request: HttpRequest, task: Task, message: str) -> HttpResponse:
    if _htmx(request):
        return _detail(request, task)
    messages.success(request, message)
    return redirect(_next_url(request, reverse("playbooks:task", args=[task.pk])))


@require_POST
@requires(Capability.VIEW)
def task_start(request: HttpRequest, pk: int) -> HttpResponse:
    task = tasks.access_task(user=request.user, task_id=pk, write=True)
    try:
        task = tasks.start_task(task=task, user=_user(request))
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("playbooks:task", pk=task.pk)
    return _after_action(request, task, _("Task started."))


@require_POST
@requires(Capability.VIEW)
def task_reopen(request: HttpRequest, pk: int) -> HttpResponse:
    task = tasks.access_task(user=request.user, task_id=pk, write=True)
    task = tasks.reopen_task(task=task, user=_user(request))
    return _after_action(request, task, _("Task reopened."))


@require_POST
@requires(Capability.VIEW)
def task_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    task = tasks.access_task(user=request.user, task_id=pk, write=True)
    form = CancelForm(request.POST)
    if form.is_valid():
        try:
            task = tasks.cancel_task(
                task=task, user=_user(request), reason=form.cleaned_data["reason"]
            )
        except ValidationError as exc:
            _add_errors(form, exc)
    if form.errors:
        return _detail(request, task, cancel_form=form, status=400)
    return _after_action(request, task, _("Task cancelled."))


@require_POST
@requires(Capability.VIEW)
def task_snooze(request: HttpRequest, pk: int) -> HttpResponse:
    task = tasks.access_task(user=request.user, task_id=pk, write=True)
    form = SnoozeForm(request.POST)
    if form.is_valid():
        try:
            task = tasks.snooze_task(
                task=task, until=form.cleaned_data["until"], user=_user(request)
            )
        except ValidationError as exc:
            _add_errors(form, exc)
    if form.errors:
        return _detail(request, task, snooze_form=form, status=400)
    return _after_action(
        request,
        task,
        _("Task snoozed until {day}.").format(day=form.cleaned_data["until"].isoformat()),
    )


@require_POST
@requires(Capability.VIEW)
def task_reassign(request: HttpRequest, pk: int) -> HttpResponse:
    task = tasks.access_task(user=request.user, task_id=pk)
    if not tasks.can_reassign_task(request.user, task):
        raise PermissionDenied(_("Only the task's owner or a manager can reassign this task."))
    form = ReassignForm(request.POST)
    if form.is_valid():
        try:
            task = tasks.reassign_task(
                task=task, owner=form.cleaned_data["owner"], user=_user(request)
            )
        except ValidationError as exc:
            _add_errors(form, exc)
    if form.errors:
        return _detail(request, task, reassign_form=form, status=400)
    return _after_action(request, task, _("Task reassigned."))


@require_POST
@requires(Capability.VIEW)
def checklist_toggle(request: HttpRequest, pk: int, index: int) -> HttpResponse:
    """Tick or untick one checklist item (htmx swaps the task's main section)."""
    task = tasks.access_task(user=request.user, task_id=pk, write=True)
    try:
        task = tasks.toggle_checklist_item(task=task, index=index, user=_user(request))
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("playbooks:task", pk=pk)
    return _after_action(request, task, _("Checklist updated."))


# --- New and edit ------------------------------------------------------------------------------


def _checklist_text(task: Task) -> str:
    return "\n".join(str(item.get("text", "")) for item in task.checklist)


def _merge_checklist(task: Task, lines: list[str]) -> list[dict[str, Any]]:
    """Keep the ticks of items whose text did not change."""
    done = {str(item.get("text")): bool(item.get("done")) for item in task.checklist}
    return [{"text": line, "done": done.get(line, False)} for line in lines]


@require_http_methods(["GET", "POST"])
@requires(Capability.VIEW)
def task_edit(request: HttpRequest, pk: int) -> HttpResponse:
    """Edit a task's title, description, type, priority, due date and checklist."""
    task = tasks.access_task(user=request.user, task_id=pk, write=True)
    if request.method == "POST":
        form = TaskForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                tasks.update_task(
                    task=task,
                    user=_user(request),
                    title=data["title"],
                    description=data["description"],
                    task_type=data["task_type"],
                    priority=data["priority"],
                    due_on=data["due_on"],
                    checklist=_merge_checklist(task, data["checklist"]),
                )
            except ValidationError as exc:
                _add_errors(form, exc)
            else:
                messages.success(request, _("Task saved."))
                return redirect("playbooks:task", pk=task.pk)
    else:
        form = TaskForm(
            initial={
                "title": task.title,
                "description": task.description,
                "task_type": task.task_type,
                "priority": task.priority,
                "due_on": task.due_on,
                "checklist": _checklist_text(task),
            }
        )
    context = {"area": "tasks", "subnav": "my-day", "task": task, "form": form}
    return render(request, "playbooks/tasks/form.html", context, status=400 if form.errors else 200)


@require_http_methods(["GET", "POST"])
@requires(Capability.VIEW)
def task_new(request: HttpRequest) -> HttpResponse:
    """A task made by hand; ``?customer=ID`` (from Customer 360) picks the customer."""
    if not tasks.can_create_tasks(request.user):
        raise PermissionDenied(_("You may not create tasks."))
    customer: Customer | None = None
    customer_id = request.GET.get("customer", "")
    if customer_id.isdigit():
        customer = Customer.objects.filter(pk=int(customer_id)).first()
    if request.method == "POST":
        form = NewTaskForm(request.POST)
        if form.is_valid():
            data = form.cleaned_data
            try:
                task = tasks.create_task(
                    customer=data["customer"],
                    title=data["title"],
                    description=data["description"],
                    task_type=data["task_type"],
                    priority=data["priority"],
                    owner=data["owner"],
                    owner_role=data["owner_role"],
                    due_on=data["due_on"],
                    checklist=data["checklist"],
                    created_by=_user(request),
                )
            except ValidationError as exc:
                _add_errors(form, exc)
            else:
                messages.success(request, _("Task created: {title}").format(title=task.title))
                return redirect(_next_url(request, reverse("playbooks:task", args=[task.pk])))
    else:
        initial: dict[str, Any] = {"owner": _user(request).pk}
        if customer is not None:
            initial["customer"] = customer.pk
        form = NewTaskForm(initial=initial)
    context = {
        "area": "tasks",
        "subnav": "my-day",
        "form": form,
        "customer": customer,
        "next": _next_url(request, ""),
    }
    return render(request, "playbooks/tasks/form.html", context, status=400 if form.errors else 200)


# --- Team view ---------------------------------------------------------------------------------


@require_GET
@requires(Capability.MANAGE_TASKS)
def team(request: HttpRequest) -> HttpResponse:
    """Each CSM's open and overdue tasks, unowned tasks, and the filtered list (managers)."""
    today = timezone.localdate()
    form = TeamFilterForm(request.GET or None)
    filters: dict[str, Any] = {}
    page = 1
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        if data["owner"] == "none":
            filters["unowned"] = True
        elif data["owner"]:
            filters["owner_id"] = int(data["owner"])
        filters["status"] = data["status"] or None
        filters["task_type"] = data["task_type"] or None
        page = data["page"] or 1
    view = task_selectors.team_tasks(today=today, page=page, **filters)
    context = {
        "area": "tasks",
        "subnav": "team",
        "team": view,
        "form": form,
        "today": today,
        "filtered": bool(filters.get("owner_id") or filters.get("unowned") or filters.get("status"))
        or bool(filters.get("task_type")),
    }
    return render(
        request,
        "playbooks/tasks/team.html",
        context,
        status=400 if form.is_bound and form.errors else 200,
    )


# --- Customer 360 panel ------------------------------------------------------------------------


@require_GET
@requires(Capability.VIEW)
def customer_tasks(request: HttpRequest, pk: int) -> HttpResponse:
    """The customer's open tasks and the latest finished ones (loaded into Customer 360)."""
    customer = get_object_or_404(Customer, pk=pk)
    today = timezone.localdate()
    context = {
        "customer": customer,
        "today": today,
        "view": task_selectors.customer_tasks(customer.pk, today=today),
        "can_create": tasks.can_create_tasks(request.user),
    }
    template = "playbooks/tasks/customer_panel.html"
    if _htmx(request):
        template += "#panel"
    return render(request, template, context)
