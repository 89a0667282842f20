"""The action registry: what a playbook can do, as types any app can add without touching the
runner.

An ``ActionType`` says how its parameters look (``fields``, so the editor renders a form for
any action), checks them (``validate`` → cleaned params, or ``ActionError`` naming the field),
does the action for one customer (``execute`` → a result stored on the execution) and says in
words what it would do (``describe``, for the simulation). ``execute`` may raise
``SkipAction`` when there is nothing to do (no recipient, already in that stage): the execution
is then *skipped*, not failed. Any other exception is an error the runner retries.

Built-ins: create_task, add_note, change_touch_model, change_stage, assign_owner,
enrol_onboarding, notify_email, notify_webhook. Titles, bodies and texts may use the
placeholders ``{customer}``, ``{owner}`` and ``{trigger}``; nothing else is interpolated.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal

from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from kizuna.core import timeline
from kizuna.core.models import TimelineKind, User
from kizuna.customers.models import Customer, LifecycleStage, TouchModel
from kizuna.playbooks.models import (
    ActionExecution,
    OwnerRole,
    Playbook,
    PlaybookRun,
    Task,
    TaskPriority,
    TaskType,
    WebhookEndpoint,
)

__all__ = [
    "ActionContext",
    "ActionError",
    "ActionField",
    "ActionType",
    "SkipAction",
    "action_type",
    "action_types",
    "fill",
    "register_action",
]

FieldKind = Literal[
    "text", "textarea", "int", "bool", "choice", "user", "program", "endpoint", "checklist", "tasks"
]
TITLE_MAX = 200
TEXT_MAX = 4000
MAX_DUE_DAYS = 365
MAX_CHECKLIST = 50


class ActionError(ValueError):
    """Action parameters that cannot be used: ``field`` names the parameter."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}" if field else message)


class SkipAction(Exception):  # noqa: N818 - a signal, not an error
    """Nothing to do for this customer (the reason is kept on the execution)."""


@dataclass(frozen=True)
class ActionField:
    """One parameter as the editor shows it. ``choices`` are ``(value, label)`` pairs; the
    kinds user, program and endpoint are chosen from the users, onboarding programs and webhook
    endpoints; checklist is one item a line; tasks is a list of ``{"title", "due_in_days"}``."""

    name: str
    label: str | Promise
    kind: FieldKind = "text"
    required: bool = False
    choices: tuple[tuple[str, str | Promise], ...] = ()
    help: str | Promise = ""


@dataclass(frozen=True)
class ActionContext:
    """What an action executes for: the run (its customer, trigger), the execution (its params)."""

    run: PlaybookRun
    execution: ActionExecution
    customer: Customer
    playbook: Playbook
    now: datetime

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.execution.params or {})

    @property
    def today(self) -> date:
        return timezone.localdate(self.now)

    def fill(self, text: str) -> str:
        return fill(text, customer=self.customer, trigger=self.run.trigger_summary)


@dataclass(frozen=True)
class ActionType:
    """A kind of action. ``transactional`` actions run inside the transaction that marks their
    execution done (exactly once); the others (posts, emails) run outside it."""

    key: str
    label: str | Promise
    description: str | Promise
    fields: tuple[ActionField, ...]
    validate: Callable[[Mapping[str, Any]], dict[str, Any]]
    execute: Callable[[ActionContext], dict[str, Any]]
    describe: Callable[[Mapping[str, Any], Customer | None], str]
    transactional: bool = True


_registry: dict[str, ActionType] = {}


def register_action(action: ActionType) -> None:
    """Add (or replace) an action type; call it from an app's ``registration.register()``."""
    _registry[action.key] = action


def action_types() -> list[ActionType]:
    """Every registered action type, built-ins first, in registration order."""
    return list(_registry.values())


def action_type(key: str) -> ActionType:
    """The action type ``key``; ``KeyError`` when none is registered."""
    return _registry[key]


# --- Placeholders ---------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\{(customer|owner|trigger)\}")


def _owner_name(customer: Customer) -> str:
    from kizuna.playbooks.tasks import resolve_owner_id

    owner_id = resolve_owner_id(customer, OwnerRole.CURRENT)
    if owner_id is None:
        return _("(no owner)")
    user: User | None = None
    for role in ("onboarding_owner", "adoption_owner", "expansion_owner"):
        if getattr(customer, f"{role}_id") == owner_id:
            user = getattr(customer, role)  # the related object (loaded once, or prefetched)
            break
    return (user.display_name or user.get_username()) if user is not None else _("(no owner)")


def fill(text: str, *, customer: Customer | None, trigger: str = "") -> str:
    """``text`` with ``{customer}``, ``{owner}`` and ``{trigger}`` replaced (nothing else)."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if customer is None:
            return match.group(0)
        if name == "customer":
            return customer.name
        if name == "owner":
            return _owner_name(customer)
        return trigger

    return _PLACEHOLDER.sub(value, text or "")


# --- Parameter checks -----------------------------------------------------------------------


def _text(params: Mapping[str, Any], name: str, *, required: bool, limit: int) -> str:
    value = params.get(name)
    text = "" if value is None else str(value).strip()
    if required and not text:
        raise ActionError(name, _("This is required."))
    if len(text) > limit:
        raise ActionError(name, _("At most {n} characters.").format(n=limit))
    return text


def _int(
    params: Mapping[str, Any], name: str, *, low: int, high: int, required: bool = False
) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        if required:
            raise ActionError(name, _("This is required."))
        return None
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ActionError(
            name, _("Give a whole number from {low} to {high}.").format(low=low, high=high)
        )
    return value


def _choice(
    params: Mapping[str, Any], name: str, choices: list[str], *, default: str | None = None
) -> str:
    value = params.get(name)
    if (value is None or value == "") and default is not None:
        return default
    if value not in choices:
        raise ActionError(name, _("Choose one of: {choices}.").format(choices=", ".join(choices)))
    return str(value)


def _bool(params: Mapping[str, Any], name: str) -> bool:
    value = params.get(name, False)
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return bool(value)


def _active_user(params: Mapping[str, Any], name: str, *, required: bool) -> int | None:
    user_id = _int(params, name, low=1, high=2**31 - 1, required=required)
    if user_id is None:
        return None
    if not User.objects.filter(pk=user_id, is_active=True).exists():
        raise ActionError(name, _("No active user has the id {id}.").format(id=user_id))
    return user_id


def _lines(value: Any, name: str) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        items = value.splitlines()
    elif isinstance(value, list | tuple):
        items = [
            str(item.get("text", "")) if isinstance(item, Mapping) else str(item) for item in value
        ]
    else:
        raise ActionError(name, _("Give one item a line."))
    cleaned = [item.strip() for item in items if item.strip()]
    if len(cleaned) > MAX_CHECKLIST:
        raise ActionError(name, _("At most {n} items.").format(n=MAX_CHECKLIST))
    for item in cleaned:
        if len(item) > 300:
            raise ActionError(name, _("Keep each item under 300 characters."))
    return cleaned


def _done(**result: Any) -> dict[str, Any]:
    return result


# --- create_task ----------------------------------------------------------------------------

_PRIORITY_NAMES = {str(label).lower(): value for value, label in TaskPriority.choices} | {
    "low": 1,
    "normal": 2,
    "high": 3,
    "urgent": 4,
}


def _priority(params: Mapping[str, Any]) -> int:
    value = params.get("priority", TaskPriority.NORMAL)
    if value in (None, ""):
        return int(TaskPriority.NORMAL)
    if isinstance(value, str):
        value = _PRIORITY_NAMES.get(value.strip().lower(), value.strip())
        if isinstance(value, str) and value.isdigit():
            value = int(value)
    if isinstance(value, bool) or value not in TaskPriority.values:
        raise ActionError(
            "priority",
            _("Choose one of: {choices}.").format(
                choices=", ".join(str(item) for item in TaskPriority.values)
            ),
        )
    return int(value)


def _validate_create_task(params: Mapping[str, Any]) -> dict[str, Any]:
    tasks_raw = params.get("tasks") or []
    if not isinstance(tasks_raw, list):
        raise ActionError("tasks", _("Give a list of tasks with a title and a due day each."))
    tasks: list[dict[str, Any]] = []
    for index, item in enumerate(tasks_raw):
        if not isinstance(item, Mapping):
            raise ActionError(f"tasks[{index}]", _("Give a title and a due day."))
        title = _text(item, "title", required=True, limit=TITLE_MAX)
        try:
            due = _int(item, "due_in_days", low=0, high=MAX_DUE_DAYS)
        except ActionError as error:
            raise ActionError(f"tasks[{index}].due_in_days", error.message) from None
        tasks.append({"title": title, "due_in_days": due})
    owner_id = _active_user(params, "owner_id", required=False)
    owner_role = _choice(params, "owner_role", ["", *OwnerRole.values], default="")
    return {
        "title": _text(params, "title", required=not tasks, limit=TITLE_MAX),
        "description": _text(params, "description", required=False, limit=TEXT_MAX),
        "task_type": _choice(params, "task_type", list(TaskType.values), default=TaskType.OTHER),
        "priority": _priority(params),
        "owner_role": "" if owner_id else owner_role,
        "owner_id": owner_id,
        "due_in_days": _int(params, "due_in_days", low=0, high=MAX_DUE_DAYS),
        "business_days": _bool(params, "business_days"),
        "checklist": _lines(params.get("checklist"), "checklist"),
        "tasks": tasks,
    }


def _add_days(start: date, days: int, *, business: bool, holidays: frozenset[date]) -> date:
    """``start`` + ``days``; with ``business``, counting only weekdays that are not holidays
    (0 business days: today, or the next working day)."""
    if not business:
        return start + timedelta(days=days)
    day = start
    while day.weekday() >= 5 or day in holidays:
        day += timedelta(days=1)
    counted = 0
    while counted < days:
        day += timedelta(days=1)
        if day.weekday() < 5 and day not in holidays:
            counted += 1
    return day


def due_on(today: date, due_in_days: int | None, *, business: bool) -> date | None:
    """The due date of a task created ``today`` (business days skip weekends and holidays)."""
    if due_in_days is None:
        return None
    holidays: frozenset[date] = frozenset()
    if business:
        from kizuna.onboarding.calendar import load_calendar

        holidays = load_calendar(since=today).holidays
    return _add_days(today, due_in_days, business=business, holidays=holidays)


def _execute_create_task(ctx: ActionContext) -> dict[str, Any]:
    from kizuna.playbooks.tasks import create_task

    params = ctx.params
    owner = User.objects.filter(pk=params["owner_id"]).first() if params.get("owner_id") else None
    business = bool(params.get("business_days"))
    items = params.get("tasks") or [
        {"title": params.get("title", ""), "due_in_days": params.get("due_in_days")}
    ]
    ids = []
    for item in items:
        task = create_task(
            customer=ctx.customer,
            title=ctx.fill(str(item["title"]))[:TITLE_MAX],
            task_type=params.get("task_type", TaskType.OTHER),
            priority=int(params.get("priority", TaskPriority.NORMAL)),
            owner=owner if owner is not None and owner.is_active else None,
            owner_role=str(params.get("owner_role", "")) if owner is None else "",
            due_on=due_on(ctx.today, item.get("due_in_days"), business=business),
            description=ctx.fill(str(params.get("description", ""))),
            checklist=[ctx.fill(line) for line in params.get("checklist", [])],
            run=ctx.run,
        )
        ids.append(task.pk)
    # The task exists from when its action ran (the runner's clock, also in a replay).
    Task.objects.filter(pk__in=ids).update(created_at=ctx.now)
    return _done(task_ids=ids)


def _who(params: Mapping[str, Any]) -> str:
    if params.get("owner_id"):
        user = User.objects.filter(pk=params["owner_id"]).first()
        return user.display_name or user.get_username() if user else "?"
    if params.get("owner_role"):
        return str(OwnerRole(params["owner_role"]).label)
    return _("nobody (unowned)")


def _due_words(days: int | None, business: bool) -> str:
    if days is None:
        return _("no due date")
    if business:
        return _("due in {n} business days").format(n=days)
    return _("due in {n} days").format(n=days)


def _describe_create_task(params: Mapping[str, Any], customer: Customer | None) -> str:
    business = bool(params.get("business_days"))
    if params.get("tasks"):
        titles = "; ".join(
            f"“{fill(item['title'], customer=customer)}” ({_due_words(item.get('due_in_days'), business)})"
            for item in params["tasks"]
        )
        return _("Create tasks for {who}: {titles}").format(who=_who(params), titles=titles)
    return _("Create task “{title}” for {who}, {due}").format(
        title=fill(str(params.get("title", "")), customer=customer),
        who=_who(params),
        due=_due_words(params.get("due_in_days"), business),
    )


# --- add_note -------------------------------------------------------------------------------


def _validate_note(params: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "title": _text(params, "title", required=True, limit=TITLE_MAX),
        "body": _text(params, "body", required=False, limit=TEXT_MAX),
    }


def _execute_note(ctx: ActionContext) -> dict[str, Any]:
    entry = timeline.record(
        customer_id=ctx.customer.pk,
        kind=TimelineKind.PLAYBOOK_NOTE,
        title=ctx.fill(ctx.params.get("title", ""))[:TITLE_MAX],
        body=ctx.fill(ctx.params.get("body", "")),
        occurred_at=ctx.now,
        payload={"playbook_id": ctx.playbook.pk, "run_id": ctx.run.pk},
    )
    return _done(entry_id=entry.pk)


def _describe_note(params: Mapping[str, Any], customer: Customer | None) -> str:
    return _("Add a timeline note “{title}”").format(
        title=fill(str(params.get("title", "")), customer=customer)
    )


# --- change_touch_model / change_stage / assign_owner ---------------------------------------


def _default_reason(ctx: ActionContext, reason: str) -> str:
    return ctx.fill(reason) or _("Playbook “{name}”").format(name=ctx.playbook.name)


def _validate_touch(params: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "touch_model": _choice(params, "touch_model", list(TouchModel.values)),
        "reason": _text(params, "reason", required=False, limit=500),
        "days": _int(params, "days", low=1, high=MAX_DUE_DAYS),
    }


def _execute_touch(ctx: ActionContext) -> dict[str, Any]:
    from kizuna.lifecycle.touch import set_override

    params = ctx.params
    days = params.get("days")
    expires = ctx.today + timedelta(days=int(days)) if days else None
    override = set_override(
        customer=ctx.customer,
        touch_model=params["touch_model"],
        reason=_default_reason(ctx, params.get("reason", "")),
        expires_on=expires,
    )
    return _done(override_id=override.pk, touch_model=params["touch_model"])


def _describe_touch(params: Mapping[str, Any], customer: Customer | None) -> str:
    label = TouchModel(params["touch_model"]).label if params.get("touch_model") else "?"
    if params.get("days"):
        return _("Set the touch model to {model} for {n} days").format(
            model=label, n=params["days"]
        )
    return _("Set the touch model to {model}").format(model=label)


def _validate_stage(params: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "stage": _choice(params, "stage", list(LifecycleStage.values)),
        "reason": _text(params, "reason", required=False, limit=500),
    }


def _execute_stage(ctx: ActionContext) -> dict[str, Any]:
    from kizuna.lifecycle.stages import move_stage

    stage = ctx.params["stage"]
    current = Customer.objects.filter(pk=ctx.customer.pk).values_list("lifecycle_stage", flat=True)
    if current.first() == stage:
        raise SkipAction(_("The customer already is in this stage."))
    move_stage(
        customer=ctx.customer,
        stage=stage,
        reason=_default_reason(ctx, ctx.params.get("reason", "")),
        actor=None,
        on=ctx.today,
    )
    return _done(stage=stage)


def _describe_stage(params: Mapping[str, Any], customer: Customer | None) -> str:
    label = LifecycleStage(params["stage"]).label if params.get("stage") else "?"
    return _("Move to the stage {stage}").format(stage=label)


_OWNER_ROLES = [OwnerRole.ONBOARDING, OwnerRole.ADOPTION, OwnerRole.EXPANSION]


def _validate_assign(params: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "role": _choice(params, "role", [str(role) for role in _OWNER_ROLES]),
        "user_id": _active_user(params, "user_id", required=True),
    }


def _execute_assign(ctx: ActionContext) -> dict[str, Any]:
    from kizuna.lifecycle.history import record_changes
    from kizuna.lifecycle.models import OWNER_DIMENSIONS, ChangeSource

    params = ctx.params
    if not User.objects.filter(pk=params["user_id"], is_active=True).exists():
        raise SkipAction(_("The user is no longer active."))
    changed = record_changes(
        dimension=OWNER_DIMENSIONS[params["role"]],
        values={ctx.customer.pk: str(params["user_id"])},
        on=ctx.today,
        source=ChangeSource.RULE,
        reason=_default_reason(ctx, ""),
    )
    if not changed:
        raise SkipAction(_("The customer already has this owner."))
    return _done(role=params["role"], user_id=params["user_id"])


def _describe_assign(params: Mapping[str, Any], customer: Customer | None) -> str:
    user = User.objects.filter(pk=int(params.get("user_id") or 0)).first()
    role = OwnerRole(params["role"]).label if params.get("role") else "?"
    return _("Make {user} the {role}").format(
        user=(user.display_name or user.get_username()) if user else "?", role=role
    )


# --- enrol_onboarding -----------------------------------------------------------------------


def _validate_enrol(params: Mapping[str, Any]) -> dict[str, Any]:
    from kizuna.onboarding.models import Program

    program_id = _int(params, "program_id", low=1, high=2**31 - 1, required=True) or 0
    if not Program.objects.filter(pk=program_id, is_active=True).exists():
        raise ActionError(
            "program_id", _("No active onboarding program has the id {id}.").format(id=program_id)
        )
    return {"program_id": program_id}


def _execute_enrol(ctx: ActionContext) -> dict[str, Any]:
    from kizuna.onboarding.models import ProgramVersion, VersionStatus
    from kizuna.onboarding.plans import create_plan, open_plans

    if open_plans().filter(customer=ctx.customer).exists():
        raise SkipAction(_("The customer already has an open onboarding plan."))
    version = (
        ProgramVersion.objects.filter(
            program_id=ctx.params["program_id"], status=VersionStatus.PUBLISHED
        )
        .order_by("-number")
        .first()
    )
    if version is None:
        raise ValueError(_("The onboarding program has no published version."))
    try:
        plan = create_plan(customer=ctx.customer, version=version, start_date=ctx.today)
    except ValidationError as error:
        raise ValueError("; ".join(error.messages)) from None
    return _done(plan_id=plan.pk)


def _describe_enrol(params: Mapping[str, Any], customer: Customer | None) -> str:
    from kizuna.onboarding.models import Program

    program = Program.objects.filter(pk=int(params.get("program_id") or 0)).first()
    return _("Enrol in the onboarding program “{program}”").format(
        program=program.name if program else "?"
    )


# --- notify_email ---------------------------------------------------------------------------

_RECIPIENTS = ["owner", OwnerRole.ONBOARDING, OwnerRole.ADOPTION, OwnerRole.EXPANSION]


def _validate_email(params: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "to": _choice(params, "to", [str(item) for item in _RECIPIENTS], default="owner"),
        "subject": _text(params, "subject", required=True, limit=TITLE_MAX),
        "body": _text(params, "body", required=True, limit=TEXT_MAX),
    }


def _execute_email(ctx: ActionContext) -> dict[str, Any]:
    from kizuna.playbooks.tasks import resolve_owner_id

    to = ctx.params.get("to", "owner")
    role = OwnerRole.CURRENT if to == "owner" else to
    owner_id = resolve_owner_id(ctx.customer, role)
    user = User.objects.filter(pk=owner_id, is_active=True).first() if owner_id else None
    if user is None or not user.email:
        raise SkipAction(_("Nobody to email: the customer has no such owner with an address."))
    send_mail(
        ctx.fill(ctx.params["subject"])[:TITLE_MAX],
        ctx.fill(ctx.params["body"]),
        None,
        [user.email],
        fail_silently=False,
    )
    return _done(to=user.email)


def _describe_email(params: Mapping[str, Any], customer: Customer | None) -> str:
    to = params.get("to", "owner")
    who = _("the owner") if to == "owner" else str(OwnerRole(to).label)
    return _("Email {who}: “{subject}”").format(
        who=who, subject=fill(str(params.get("subject", "")), customer=customer)
    )


# --- notify_webhook -------------------------------------------------------------------------


def _validate_webhook(params: Mapping[str, Any]) -> dict[str, Any]:
    endpoint_id = _int(params, "endpoint_id", low=1, high=2**31 - 1, required=True) or 0
    if not WebhookEndpoint.objects.filter(pk=endpoint_id).exists():
        raise ActionError(
            "endpoint_id", _("No webhook endpoint has the id {id}.").format(id=endpoint_id)
        )
    return {
        "endpoint_id": endpoint_id,
        "text": _text(params, "text", required=True, limit=TEXT_MAX),
    }


def webhook_payload(endpoint: WebhookEndpoint, *, text: str, ctx: ActionContext) -> dict[str, Any]:
    """What ``notify_webhook`` posts: ``{"text"}`` for Slack/Teams, the event for JSON."""
    if endpoint.style == WebhookEndpoint.Style.SLACK:
        return {"text": text}
    return {
        "event": "playbook.action",
        "text": text,
        "playbook": {"id": ctx.playbook.pk, "key": ctx.playbook.key, "name": ctx.playbook.name},
        "customer": {
            "id": ctx.customer.pk,
            "name": ctx.customer.name,
            "external_id": ctx.customer.external_id,
        },
        "trigger": {
            "occurrence": ctx.run.occurrence_key,
            "summary": ctx.run.trigger_summary,
            "day": ctx.run.triggered_on.isoformat(),
        },
        "run_id": ctx.run.pk,
        "sent_at": ctx.now.isoformat(),
    }


def _execute_webhook(ctx: ActionContext) -> dict[str, Any]:
    from kizuna.playbooks.notify import post_webhook

    endpoint = WebhookEndpoint.objects.filter(pk=ctx.params["endpoint_id"]).first()
    if endpoint is None:
        raise ValueError(_("The webhook endpoint no longer exists."))
    if not endpoint.is_active:
        raise SkipAction(_("The webhook endpoint is switched off."))
    payload = webhook_payload(endpoint, text=ctx.fill(ctx.params["text"]), ctx=ctx)
    delivery = post_webhook(endpoint, payload, execution=ctx.execution)
    return _done(delivery_id=delivery.pk, status_code=delivery.status_code)


def _describe_webhook(params: Mapping[str, Any], customer: Customer | None) -> str:
    endpoint = WebhookEndpoint.objects.filter(pk=int(params.get("endpoint_id") or 0)).first()
    return _("Post to {endpoint}: “{text}”").format(
        endpoint=endpoint.name if endpoint else "?",
        text=fill(str(params.get("text", "")), customer=customer),
    )


# --- The built-ins --------------------------------------------------------------------------

_PLACEHOLDER_HELP = gettext_lazy("You can use {customer}, {owner} and {trigger}.")


def _choices(enum: Any) -> tuple[tuple[str, str | Promise], ...]:
    return tuple((str(value), label) for value, label in enum.choices)


BUILT_INS: tuple[ActionType, ...] = (
    ActionType(
        key="create_task",
        label=gettext_lazy("Create a task"),
        description=gettext_lazy(
            "A task for the customer's owner (or a checklist of tasks), with a due date."
        ),
        fields=(
            ActionField("title", gettext_lazy("Title"), "text", True, help=_PLACEHOLDER_HELP),
            ActionField("description", gettext_lazy("Description"), "textarea"),
            ActionField("task_type", gettext_lazy("Type"), "choice", True, _choices(TaskType)),
            ActionField(
                "priority", gettext_lazy("Priority"), "choice", True, _choices(TaskPriority)
            ),
            ActionField(
                "owner_role",
                gettext_lazy("Owner"),
                "choice",
                False,
                _choices(OwnerRole),
                gettext_lazy("Resolved to the customer's owner when the task is created."),
            ),
            ActionField(
                "owner_id",
                gettext_lazy("Or this person"),
                "user",
                help=gettext_lazy("Takes precedence over the owner role."),
            ),
            ActionField(
                "due_in_days",
                gettext_lazy("Due in (days)"),
                "int",
                help=gettext_lazy("Empty: no due date."),
            ),
            ActionField("business_days", gettext_lazy("Count business days only"), "bool"),
            ActionField("checklist", gettext_lazy("Checklist"), "checklist"),
            ActionField(
                "tasks",
                gettext_lazy("Several tasks"),
                "tasks",
                help=gettext_lazy("Instead of one task: a title and a due day for each."),
            ),
        ),
        validate=_validate_create_task,
        execute=_execute_create_task,
        describe=_describe_create_task,
    ),
    ActionType(
        key="add_note",
        label=gettext_lazy("Add a timeline note"),
        description=gettext_lazy("A note on the customer's timeline."),
        fields=(
            ActionField("title", gettext_lazy("Title"), "text", True, help=_PLACEHOLDER_HELP),
            ActionField("body", gettext_lazy("Text"), "textarea"),
        ),
        validate=_validate_note,
        execute=_execute_note,
        describe=_describe_note,
    ),
    ActionType(
        key="change_touch_model",
        label=gettext_lazy("Change the touch model"),
        description=gettext_lazy(
            "Override the customer's touch model, for some days or until ended."
        ),
        fields=(
            ActionField(
                "touch_model", gettext_lazy("Touch model"), "choice", True, _choices(TouchModel)
            ),
            ActionField("reason", gettext_lazy("Reason"), "text"),
            ActionField(
                "days",
                gettext_lazy("For (days)"),
                "int",
                help=gettext_lazy("Empty: until ended by hand."),
            ),
        ),
        validate=_validate_touch,
        execute=_execute_touch,
        describe=_describe_touch,
    ),
    ActionType(
        key="change_stage",
        label=gettext_lazy("Change the lifecycle stage"),
        description=gettext_lazy(
            "Move the customer to a stage (and hand it to that stage's owner)."
        ),
        fields=(
            ActionField("stage", gettext_lazy("Stage"), "choice", True, _choices(LifecycleStage)),
            ActionField("reason", gettext_lazy("Reason"), "text"),
        ),
        validate=_validate_stage,
        execute=_execute_stage,
        describe=_describe_stage,
    ),
    ActionType(
        key="assign_owner",
        label=gettext_lazy("Assign an owner"),
        description=gettext_lazy(
            "Make someone the customer's onboarding, adoption or expansion CSM."
        ),
        fields=(
            ActionField(
                "role",
                gettext_lazy("Role"),
                "choice",
                True,
                tuple((str(role), role.label) for role in _OWNER_ROLES),
            ),
            ActionField("user_id", gettext_lazy("Person"), "user", True),
        ),
        validate=_validate_assign,
        execute=_execute_assign,
        describe=_describe_assign,
    ),
    ActionType(
        key="enrol_onboarding",
        label=gettext_lazy("Enrol in an onboarding program"),
        description=gettext_lazy(
            "Start an onboarding plan from the program's published version (unless one is open)."
        ),
        fields=(ActionField("program_id", gettext_lazy("Program"), "program", True),),
        validate=_validate_enrol,
        execute=_execute_enrol,
        describe=_describe_enrol,
    ),
    ActionType(
        key="notify_email",
        label=gettext_lazy("Email the owner"),
        description=gettext_lazy("An email to the customer's owner (or the CSM of a role)."),
        fields=(
            ActionField(
                "to",
                gettext_lazy("To"),
                "choice",
                True,
                (
                    ("owner", gettext_lazy("Owner for the customer's stage")),
                    *((str(role), role.label) for role in _OWNER_ROLES),
                ),
            ),
            ActionField("subject", gettext_lazy("Subject"), "text", True, help=_PLACEHOLDER_HELP),
            ActionField("body", gettext_lazy("Text"), "textarea", True),
        ),
        validate=_validate_email,
        execute=_execute_email,
        describe=_describe_email,
        transactional=False,
    ),
    ActionType(
        key="notify_webhook",
        label=gettext_lazy("Post to a webhook"),
        description=gettext_lazy(
            "A Slack/Teams message, or signed JSON for another system (Settings → Webhooks)."
        ),
        fields=(
            ActionField("endpoint_id", gettext_lazy("Endpoint"), "endpoint", True),
            ActionField("text", gettext_lazy("Message"), "textarea", True, help=_PLACEHOLDER_HELP),
        ),
        validate=_validate_webhook,
        execute=_execute_webhook,
        describe=_describe_webhook,
        transactional=False,
    ),
)

for _builtin in BUILT_INS:
    register_action(_builtin)
