"""Task services: create (resolving an owner role), edit, start, complete, cancel, snooze, wake,
reassign, tick a checklist item; and ``access_task``, the one permission check for a task.

Every service validates, writes in a transaction and returns the task. Bad input raises
``django.core.exceptions.ValidationError`` keyed by the field. Completing a task writes a
``task.completed`` entry on the customer's timeline in the same transaction, so the completion
and its history are one fact.

Who may do what: anyone who can view reads every task; the task's owner and managers
(``manage_tasks``) edit it; an unowned task can be edited (and claimed) by any CSM
(``write_timeline``). Reassigning another person's task is a manager's job; an owner may hand
their own task to someone else.
"""

from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any, Final

from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.translation import gettext as _

from kizuna.core import timeline
from kizuna.core.access import user_can
from kizuna.core.models import TimelineKind, User
from kizuna.core.roles import Capability
from kizuna.customers.models import Customer, LifecycleStage
from kizuna.playbooks.models import (
    OPEN_TASK_STATUSES,
    OwnerRole,
    PlaybookRun,
    Task,
    TaskPriority,
    TaskStatus,
    TaskType,
)

TITLE_MAX = 200
CHECKLIST_ITEM_MAX = 300
CHECKLIST_MAX_ITEMS = 50


class _Unset:
    """Marks an argument of ``update_task`` that was not given (``None`` clears a due date)."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()


# --- Access --------------------------------------------------------------------------------------


def can_edit_task(user: User | AnonymousUser | Any, task: Task) -> bool:
    """True when the user may change the task: its owner, a manager, or any CSM if unowned."""
    if user_can(user, Capability.MANAGE_TASKS):
        return True
    if not user_can(user, Capability.WRITE_TIMELINE):
        return False
    return task.owner_id is None or task.owner_id == user.pk


def can_reassign_task(user: User | AnonymousUser | Any, task: Task) -> bool:
    """Managers reassign any task; a CSM hands on their own task or claims an unowned one."""
    return can_edit_task(user, task)


def access_task(*, user: User | AnonymousUser | Any, task_id: int, write: bool = False) -> Task:
    """The task with this id if the user may see it (and change it when ``write``).

    Raises ``Http404`` for an unknown id and ``PermissionDenied`` otherwise.
    """
    if not user_can(user, Capability.VIEW):
        raise PermissionDenied(_("You may not see tasks."))
    task = get_object_or_404(
        Task.objects.select_related(
            "customer", "owner", "created_by", "completed_by", "run", "run__playbook"
        ),
        pk=task_id,
    )
    if write and not can_edit_task(user, task):
        raise PermissionDenied(_("Only the task's owner or a manager can change this task."))
    return task


def can_create_tasks(user: User | AnonymousUser | Any) -> bool:
    return user_can(user, Capability.WRITE_TIMELINE) or user_can(user, Capability.MANAGE_TASKS)


# --- Owner roles ---------------------------------------------------------------------------------


def resolve_owner_id(customer: Customer, owner_role: str) -> int | None:
    """The user a role stands for on this customer, or ``None`` when nobody holds it.

    ``current`` is the owner for the customer's stage (onboarding → onboarding owner,
    adoption/reactivated → adoption owner, expansion → expansion owner), falling back to any
    owner the customer has; the other roles name one owner, with no fallback (an unresolved
    task stays unowned and shows on the team view for a manager to assign).
    """
    by_role: dict[str, int | None] = {
        OwnerRole.ONBOARDING: customer.onboarding_owner_id,
        OwnerRole.ADOPTION: customer.adoption_owner_id,
        OwnerRole.EXPANSION: customer.expansion_owner_id,
    }
    if owner_role in by_role:
        return by_role[owner_role]
    if owner_role == OwnerRole.CURRENT:
        stage_role: OwnerRole | None = {
            str(LifecycleStage.ONBOARDING): OwnerRole.ONBOARDING,
            str(LifecycleStage.ADOPTION): OwnerRole.ADOPTION,
            str(LifecycleStage.REACTIVATED): OwnerRole.ADOPTION,
            str(LifecycleStage.EXPANSION): OwnerRole.EXPANSION,
        }.get(customer.lifecycle_stage)
        first = by_role.get(stage_role) if stage_role else None
        if first is not None:
            return first
        for role in (OwnerRole.ADOPTION, OwnerRole.ONBOARDING, OwnerRole.EXPANSION):
            if by_role[role] is not None:
                return by_role[role]
    return None


# --- Validation ----------------------------------------------------------------------------------


def _clean_title(title: str) -> str:
    cleaned = (title or "").strip()
    if not cleaned:
        raise ValidationError({"title": [_("Give the task a title.")]})
    if len(cleaned) > TITLE_MAX:
        raise ValidationError(
            {"title": [_("Keep the title under {n} characters.").format(n=TITLE_MAX + 1)]}
        )
    return cleaned


def _clean_type(task_type: str) -> str:
    if task_type not in TaskType.values:
        raise ValidationError(
            {"task_type": [_("Unknown task type “{value}”.").format(value=task_type)]}
        )
    return str(task_type)


def _clean_priority(priority: int) -> int:
    try:
        value = int(priority)
    except (TypeError, ValueError):
        value = -1
    if value not in TaskPriority.values:
        raise ValidationError(
            {"priority": [_("Unknown priority “{value}”.").format(value=priority)]}
        )
    return value


def _clean_owner_role(owner_role: str) -> str:
    if owner_role and owner_role not in OwnerRole.values:
        raise ValidationError(
            {"owner_role": [_("Unknown owner role “{value}”.").format(value=owner_role)]}
        )
    return str(owner_role or "")


def _clean_owner(owner: User | None) -> User | None:
    if owner is not None and not owner.is_active:
        raise ValidationError(
            {"owner": [_("{name} is not an active user.").format(name=owner.get_username())]}
        )
    if owner is not None and not owner.can(Capability.WRITE_TIMELINE):
        raise ValidationError(
            {
                "owner": [
                    _("{name} cannot work on tasks (their role only reads).").format(
                        name=owner.get_username()
                    )
                ]
            }
        )
    return owner


def clean_checklist(items: Iterable[str | Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Checklist items as ``[{"text": str, "done": bool}]``; blank lines are dropped."""
    cleaned: list[dict[str, Any]] = []
    for item in items:
        if isinstance(item, Mapping):
            text, done = str(item.get("text", "")).strip(), bool(item.get("done", False))
        else:
            text, done = str(item).strip(), False
        if not text:
            continue
        if len(text) > CHECKLIST_ITEM_MAX:
            raise ValidationError(
                {
                    "checklist": [
                        _("Keep each checklist item under {n} characters.").format(
                            n=CHECKLIST_ITEM_MAX + 1
                        )
                    ]
                }
            )
        cleaned.append({"text": text, "done": done})
    if len(cleaned) > CHECKLIST_MAX_ITEMS:
        raise ValidationError(
            {"checklist": [_("A checklist has at most {n} items.").format(n=CHECKLIST_MAX_ITEMS)]}
        )
    return cleaned


def _lock(task: Task) -> Task:
    """Lock the task's row and refresh what a concurrent change may have moved, in place (so the
    caller's instance stays the one that is returned)."""
    status, checklist, snoozed_until = (
        Task.objects.select_for_update()
        .values_list("status", "checklist", "snoozed_until")
        .get(pk=task.pk)
    )
    task.status, task.checklist, task.snoozed_until = status, checklist, snoozed_until
    return task


def _require_open(task: Task, field: str = "status") -> None:
    if task.status not in OPEN_TASK_STATUSES:
        raise ValidationError(
            {
                field: [
                    _("This task is {status}; reopen it first.").format(
                        status=task.get_status_display().lower()
                    )
                ]
            }
        )


# --- Writes --------------------------------------------------------------------------------------


@transaction.atomic
def create_task(
    *,
    customer: Customer,
    title: str,
    task_type: str = TaskType.OTHER,
    priority: int = TaskPriority.NORMAL,
    owner: User | None = None,
    owner_role: str = "",
    due_on: date | None = None,
    description: str = "",
    checklist: Iterable[str | Mapping[str, Any]] = (),
    run: PlaybookRun | None = None,
    created_by: User | None = None,
) -> Task:
    """Create an open task for a customer and return it.

    When ``owner`` is ``None`` and ``owner_role`` is given, the role is resolved to the
    customer's owner now (see ``resolve_owner_id``); when nobody holds it the task is unowned
    (the team view lists unowned tasks). ``checklist`` takes texts or ``{"text", "done"}``.
    """
    owner_role = _clean_owner_role(owner_role)
    owner = _clean_owner(owner)
    owner_id: int | None = owner.pk if owner is not None else None
    if owner_id is None and owner_role:
        owner_id = resolve_owner_id(customer, owner_role)
    return Task.objects.create(
        customer=customer,
        title=_clean_title(title),
        description=(description or "").strip(),
        task_type=_clean_type(task_type),
        priority=_clean_priority(priority),
        owner_id=owner_id,
        owner_role=owner_role,
        due_on=due_on,
        checklist=clean_checklist(checklist),
        run=run,
        created_by=created_by,
    )


@transaction.atomic
def update_task(
    *,
    task: Task,
    user: User | None,
    title: str | _Unset = UNSET,
    description: str | _Unset = UNSET,
    task_type: str | _Unset = UNSET,
    priority: int | _Unset = UNSET,
    due_on: date | _Unset | None = UNSET,
    checklist: Iterable[str | Mapping[str, Any]] | _Unset = UNSET,
) -> Task:
    """Change the given fields of a task (``due_on=None`` clears the due date)."""
    changed: list[str] = []
    if not isinstance(title, _Unset):
        task.title = _clean_title(title)
        changed.append("title")
    if not isinstance(description, _Unset):
        task.description = (description or "").strip()
        changed.append("description")
    if not isinstance(task_type, _Unset):
        task.task_type = _clean_type(task_type)
        changed.append("task_type")
    if not isinstance(priority, _Unset):
        task.priority = _clean_priority(priority)
        changed.append("priority")
    if not isinstance(due_on, _Unset):
        task.due_on = due_on
        changed.append("due_on")
    if not isinstance(checklist, _Unset):
        task.checklist = clean_checklist(checklist)
        changed.append("checklist")
    if changed:
        task.save(update_fields=changed)
    return task


@transaction.atomic
def start_task(*, task: Task, user: User | None) -> Task:
    """Mark an open (or snoozed) task as in progress."""
    _lock(task)
    _require_open(task)
    task.status = TaskStatus.IN_PROGRESS
    task.snoozed_until = None
    task.save(update_fields=["status", "snoozed_until"])
    return task


@transaction.atomic
def complete_task(*, task: Task, user: User | None, outcome: str = "") -> Task:
    """Mark the task done with its outcome note and write ``task.completed`` on the timeline.

    The entry's payload is ``{"task_id", "task_type", "run_id", "playbook_id"}`` (the run and
    playbook are ``None`` for a task made by hand) so playbook effects can count completions.
    """
    _lock(task)
    _require_open(task)
    now = timezone.now()
    task.status = TaskStatus.DONE
    task.outcome = (outcome or "").strip()
    task.completed_at = now
    task.completed_by = user
    task.snoozed_until = None
    task.save(update_fields=["status", "outcome", "completed_at", "completed_by", "snoozed_until"])
    timeline.record(
        customer_id=task.customer_id,
        kind=TimelineKind.TASK_COMPLETED,
        title=_("Task completed: {title}").format(title=task.title),
        body=task.outcome,
        actor=user,
        occurred_at=now,
        payload={
            "task_id": task.pk,
            "task_type": task.task_type,
            "run_id": task.run_id,
            "playbook_id": task.run.playbook_id if task.run is not None else None,
        },
    )
    return task


@transaction.atomic
def cancel_task(*, task: Task, user: User | None, reason: str = "") -> Task:
    """Cancel an unfinished task; the reason is kept as its outcome note."""
    _lock(task)
    _require_open(task)
    task.status = TaskStatus.CANCELLED
    task.outcome = (reason or "").strip()
    task.snoozed_until = None
    task.save(update_fields=["status", "outcome", "snoozed_until"])
    return task


@transaction.atomic
def reopen_task(*, task: Task, user: User | None) -> Task:
    """Open a done, cancelled or snoozed task again (a completion already on the timeline
    stays); an open or in-progress task is left as it is."""
    _lock(task)
    if task.status in (TaskStatus.OPEN, TaskStatus.IN_PROGRESS):
        return task
    task.status = TaskStatus.OPEN
    task.snoozed_until = None
    task.completed_at = None
    task.completed_by = None
    task.save(update_fields=["status", "snoozed_until", "completed_at", "completed_by"])
    return task


@transaction.atomic
def snooze_task(*, task: Task, until: date, user: User | None, today: date | None = None) -> Task:
    """Put the task aside until a later day; it comes back as open on ``until``.

    The due date is kept: a task snoozed past its due date comes back overdue.
    """
    _lock(task)
    _require_open(task)
    today = today or timezone.localdate()
    if until <= today:
        raise ValidationError({"until": [_("Snooze until a day after today.")]})
    task.status = TaskStatus.SNOOZED
    task.snoozed_until = until
    task.save(update_fields=["status", "snoozed_until"])
    return task


def wake_snoozed(day: date) -> int:
    """Reopen every task snoozed until ``day`` or earlier; return how many (the daily job)."""
    return Task.objects.filter(status=TaskStatus.SNOOZED, snoozed_until__lte=day).update(
        status=TaskStatus.OPEN, snoozed_until=None
    )


@transaction.atomic
def reassign_task(*, task: Task, owner: User | None, user: User | None) -> Task:
    """Give the task to another person (or to nobody: unowned)."""
    _lock(task)
    _require_open(task, field="owner")
    task.owner = _clean_owner(owner)
    task.save(update_fields=["owner"])
    return task


@transaction.atomic
def toggle_checklist_item(
    *, task: Task, index: int, user: User | None, done: bool | None = None
) -> Task:
    """Tick (or untick) checklist item ``index``; ``done=None`` flips it."""
    _lock(task)
    items = list(task.checklist or [])
    if not 0 <= index < len(items):
        raise ValidationError({"index": [_("There is no checklist item {n}.").format(n=index)]})
    item = dict(items[index])
    item["done"] = (not item.get("done", False)) if done is None else bool(done)
    items[index] = item
    task.checklist = items
    task.save(update_fields=["checklist"])
    return task
