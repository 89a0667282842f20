"""REST endpoints of tasks (mounted under /api/v1 by kizuna.config.api).

List (filters owner=me|none|id, status, customer, type, due_before; 50 a page), one task,
create (an owner role is resolved to the customer's owner), change (fields, owner, status:
start, reopen, snooze, cancel) and complete (writes the customer's timeline). Doors only: check
access, parse typed input (a wrong type is a 422 naming its field), call one service; rules the
services check become a 400 ``{"detail": {field: [messages]}}``.
"""

from datetime import date, datetime
from math import ceil
from typing import Annotated, Any, ClassVar, Literal

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import F, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext as _
from ninja import Field, Query, Router, Schema
from ninja.responses import Status
from pydantic import StringConstraints

from kizuna.core.access import require
from kizuna.core.models import User
from kizuna.core.roles import Capability
from kizuna.customers.api import ErrorOut, InSchema, Name, ObjectId, PatchSchema, Text
from kizuna.customers.models import Customer
from kizuna.playbooks import tasks
from kizuna.playbooks.models import OPEN_TASK_STATUSES, OwnerRole, Task, TaskType
from kizuna.playbooks.task_selectors import awake_q, sleeping_q

router = Router(tags=["tasks"])

PAGE_SIZE = 50
ERRORS: dict[int, Any] = {400: ErrorOut, 403: ErrorOut, 404: ErrorOut}

Priority = Literal[1, 2, 3, 4]
ChecklistText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=300)]


def _user(request: HttpRequest) -> User | None:
    return request.user if isinstance(request.user, User) else None


def _invalid(field: str, message: str) -> ValidationError:
    return ValidationError({field: [message]})


# --- Shapes --------------------------------------------------------------------------------------


class ChecklistItemOut(Schema):
    text: str
    done: bool


class TaskOut(Schema):
    id: int
    customer: int
    customer_name: str
    title: str
    description: str
    task_type: str = Field(description="onboarding, risk, adoption, expansion, renewal, other")
    priority: int = Field(description="1 low, 2 normal, 3 high, 4 urgent")
    owner: int | None = Field(description="User id; null when the task is unowned.")
    owner_name: str | None
    owner_role: str = Field(description="The role the owner was resolved from, if any.")
    due_on: date | None
    overdue: bool = Field(description="Still to do and due before today.")
    status: str = Field(description="open, in_progress, done, cancelled, snoozed")
    snoozed_until: date | None
    outcome: str = Field(description="The outcome note (or the reason a task was cancelled).")
    checklist: list[ChecklistItemOut]
    run: int | None = Field(description="The playbook run that created the task.")
    playbook: int | None = Field(description="The playbook of that run.")
    created_by: int | None
    created_at: datetime
    completed_at: datetime | None
    completed_by: int | None


class TaskPageOut(Schema):
    items: list[TaskOut]
    count: int
    page: int
    pages: int


class TaskFilters(Schema):
    owner: str | None = Field(
        None,
        pattern=r"^(me|none|[1-9][0-9]{0,9})$",
        description="`me`, `none` (unowned) or a user id.",
    )
    status: Literal["open", "in_progress", "done", "cancelled", "snoozed", "todo"] | None = Field(
        None,
        description="A status, or `todo` (open, in progress or snoozed). Default: every status.",
    )
    customer: ObjectId | None = Field(None, description="Customer id.")
    task_type: TaskType | None = None
    due_before: date | None = Field(None, description="Due strictly before this day.")
    page: int = Field(1, ge=1, le=1_000_000)


def _out(task: Task, today: date) -> dict[str, Any]:
    return {
        "id": task.pk,
        "customer": task.customer_id,
        "customer_name": task.customer.name,
        "title": task.title,
        "description": task.description,
        "task_type": task.task_type,
        "priority": task.priority,
        "owner": task.owner_id,
        "owner_name": task.owner.display_name if task.owner is not None else None,
        "owner_role": task.owner_role,
        "due_on": task.due_on,
        "overdue": bool(
            task.status in OPEN_TASK_STATUSES and task.due_on is not None and task.due_on < today
        ),
        "status": task.status,
        "snoozed_until": task.snoozed_until,
        "outcome": task.outcome,
        "checklist": [
            {"text": str(item.get("text", "")), "done": bool(item.get("done"))}
            for item in task.checklist
        ],
        "run": task.run_id,
        "playbook": task.run.playbook_id if task.run is not None else None,
        "created_by": task.created_by_id,
        "created_at": task.created_at,
        "completed_at": task.completed_at,
        "completed_by": task.completed_by_id,
    }


def _tasks() -> QuerySet[Task]:
    return Task.objects.select_related("customer", "owner", "run")


def _fresh(task_id: int) -> dict[str, Any]:
    return _out(_tasks().get(pk=task_id), timezone.localdate())


# --- Reads ---------------------------------------------------------------------------------------


@router.get(
    "/tasks",
    response={200: TaskPageOut, **ERRORS},
    summary="Tasks, earliest due first, undated last (50 a page)",
)
def list_tasks(request: HttpRequest, filters: Query[TaskFilters]) -> dict[str, Any]:
    require(request.user, Capability.VIEW)
    today = timezone.localdate()
    found = _tasks()
    if filters.owner == "me":
        found = found.filter(owner_id=request.user.pk)
    elif filters.owner == "none":
        found = found.filter(owner__isnull=True)
    elif filters.owner:
        found = found.filter(owner_id=int(filters.owner))
    if filters.status == "todo":
        found = found.filter(awake_q(today) | sleeping_q(today))
    elif filters.status:
        found = found.filter(status=filters.status)
    if filters.customer is not None:
        found = found.filter(customer_id=filters.customer)
    if filters.task_type:
        found = found.filter(task_type=filters.task_type)
    if filters.due_before is not None:
        found = found.filter(due_on__lt=filters.due_before)
    found = found.order_by(F("due_on").asc(nulls_last=True), "-priority", "id")
    count = found.count()
    start = (filters.page - 1) * PAGE_SIZE
    return {
        "items": [_out(task, today) for task in found[start : start + PAGE_SIZE]],
        "count": count,
        "page": filters.page,
        "pages": max(ceil(count / PAGE_SIZE), 1),
    }


@router.get("/tasks/{task_id}", response={200: TaskOut, **ERRORS}, summary="One task")
def get_task(request: HttpRequest, task_id: int) -> dict[str, Any]:
    task = tasks.access_task(user=request.user, task_id=task_id)
    return _out(task, timezone.localdate())


# --- Writes --------------------------------------------------------------------------------------


class TaskIn(InSchema):
    customer: ObjectId
    title: Name
    description: Text = ""
    task_type: TaskType = TaskType.OTHER
    priority: Priority = 2
    owner: ObjectId | None = Field(None, description="User id; or leave out and give a role.")
    owner_role: OwnerRole | Literal[""] = Field(
        "", description="onboarding, adoption, expansion or current (the stage's owner)."
    )
    due_on: date | None = None
    checklist: list[ChecklistText] = Field(default_factory=list, max_length=50)


def _person(field: str, user_id: int) -> User:
    person = User.objects.filter(pk=user_id).first()
    if person is None:
        raise _invalid(field, _("There is no user with this id."))
    return person


@router.post("/tasks", response={201: TaskOut, **ERRORS}, summary="Create a task")
def create_task(request: HttpRequest, payload: TaskIn) -> Status[dict[str, Any]]:
    if not tasks.can_create_tasks(request.user):
        raise PermissionDenied(_("You may not create tasks."))
    customer = Customer.objects.filter(pk=payload.customer).first()
    if customer is None:
        raise _invalid("customer", _("There is no customer with this id."))
    owner = _person("owner", payload.owner) if payload.owner is not None else None
    task = tasks.create_task(
        customer=customer,
        title=payload.title,
        description=payload.description,
        task_type=payload.task_type,
        priority=payload.priority,
        owner=owner,
        owner_role=payload.owner_role,
        due_on=payload.due_on,
        checklist=payload.checklist,
        created_by=_user(request),
    )
    return Status(201, _fresh(task.pk))


class ChecklistItemIn(InSchema):
    text: ChecklistText
    done: bool = False


class TaskPatch(PatchSchema):
    NULLABLE: ClassVar[frozenset[str]] = frozenset({"due_on", "owner"})

    title: Name | None = Field(None)
    description: Text | None = Field(None)
    task_type: TaskType | None = Field(None)
    priority: Priority | None = Field(None)
    due_on: date | None = Field(None, description="null clears the due date.")
    checklist: list[ChecklistItemIn] | None = Field(None, max_length=50)
    owner: ObjectId | None = Field(None, description="Reassign; null leaves the task unowned.")
    status: Literal["open", "in_progress", "snoozed", "cancelled"] | None = Field(
        None,
        description=(
            "in_progress starts it, open reopens (or wakes) it, snoozed needs snoozed_until, "
            "cancelled takes the outcome as its reason. Use /complete to finish a task."
        ),
    )
    snoozed_until: date | None = Field(None)
    outcome: Text | None = Field(None, description="The reason, with status cancelled.")


@router.patch(
    "/tasks/{task_id}",
    response={200: TaskOut, **ERRORS},
    summary="Change a task (only the fields sent change)",
)
@transaction.atomic  # all the changes sent, or none
def update_task(request: HttpRequest, task_id: int, payload: TaskPatch) -> dict[str, Any]:
    task = tasks.access_task(user=request.user, task_id=task_id, write=True)
    user = _user(request)
    sent = payload.model_dump(exclude_unset=True)
    if "snoozed_until" in sent and payload.status != "snoozed":
        raise _invalid("snoozed_until", _("Send it with status snoozed."))
    if "outcome" in sent and payload.status != "cancelled":
        raise _invalid("outcome", _("Send it with status cancelled, or complete the task."))
    fields = {
        name: sent[name]
        for name in ("title", "description", "task_type", "priority", "due_on", "checklist")
        if name in sent
    }
    if fields:
        tasks.update_task(task=task, user=user, **fields)
    if "owner" in sent:
        owner = _person("owner", payload.owner) if payload.owner is not None else None
        tasks.reassign_task(task=task, owner=owner, user=user)
    if payload.status == "in_progress":
        tasks.start_task(task=task, user=user)
    elif payload.status == "open":
        tasks.reopen_task(task=task, user=user)
    elif payload.status == "snoozed":
        if payload.snoozed_until is None:
            raise _invalid("snoozed_until", _("Say until which day."))
        tasks.snooze_task(task=task, until=payload.snoozed_until, user=user)
    elif payload.status == "cancelled":
        tasks.cancel_task(task=task, user=user, reason=payload.outcome or "")
    return _fresh(task.pk)


class CompleteIn(InSchema):
    outcome: Text = Field("", description="What happened; written on the customer's timeline.")


@router.post(
    "/tasks/{task_id}/complete",
    response={200: TaskOut, **ERRORS},
    summary="Complete a task with its outcome (writes task.completed on the timeline)",
)
def complete_task(request: HttpRequest, task_id: int, payload: CompleteIn) -> dict[str, Any]:
    task = tasks.access_task(user=request.user, task_id=task_id, write=True)
    tasks.complete_task(task=task, user=_user(request), outcome=payload.outcome)
    return _fresh(task.pk)
