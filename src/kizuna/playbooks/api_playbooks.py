"""REST endpoints of playbooks (mounted under /api/v1 by kizuna.config.api).

List, read, create, replace and delete playbooks; simulate one (saved, or a draft in the body)
over the last N days; switch it on, pause, resume or off; its run log and its effect; the
library of ready playbooks. Doors only: a wrong type is a 422 naming its field; the rules the
services check (trigger, condition, each action) are a 400 ``{"detail": {field: [messages]}}``
whose keys name the field (``trigger.kinds``, ``condition``, ``actions[1].title``).
"""

from datetime import date, datetime, timedelta
from math import ceil
from typing import Annotated, Any, Literal

from django.core.exceptions import ValidationError
from django.db.models import Prefetch
from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.translation import gettext as _
from ninja import Field, Query, Router, Schema
from ninja.responses import Status

from kizuna.core.access import require
from kizuna.core.models import User
from kizuna.core.roles import Capability
from kizuna.customers.api import ErrorOut, InSchema, Name
from kizuna.playbooks import effects, library, services, simulation, triggers
from kizuna.playbooks.models import ActionExecution, Playbook, PlaybookRun, RunStatus

router = Router(tags=["playbooks"])

PAGE_SIZE = 50
ERRORS: dict[int, Any] = {400: ErrorOut, 403: ErrorOut, 404: ErrorOut}
MAX_SIMULATION_DAYS = 366


def _user(request: HttpRequest) -> User | None:
    return request.user if isinstance(request.user, User) else None


def _invalid(error: services.PlaybookError) -> ValidationError:
    return ValidationError({key: [message] for key, message in error.errors.items()})


# --- Schemas --------------------------------------------------------------------------------


class ActionIn(InSchema):
    kind: str = Field(description="An action key (GET /playbooks/actions lists them).")
    params: dict[str, Any] = Field(default_factory=dict)
    delay_days: Annotated[int, Field(ge=0, le=365)] = 0


class PlaybookIn(InSchema):
    name: Name
    description: str = Field("", max_length=5000)
    trigger_kind: Literal["timeline", "customer_date", "schedule", "metric"]
    trigger_params: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            'timeline {"kinds": ["risk.raised"], "payload": {"kind": "usage_drop"}}; '
            'customer_date {"date": "first_start_date"|"renewal_date", "offset_days": -90 or '
            '[-120, -90]}; schedule {"every": "week"|"month"|"quarter", "weekday": 0, "nth": 1}; '
            'metric {"metric": "seat_utilisation_28d", "op": ">=", "value": 0.9}.'
        ),
    )
    condition: str = Field(
        "", max_length=5000, description='Condition text, e.g. touch_model = "high". Empty: all.'
    )
    segments: list[str] = Field(default_factory=list, description="Segment keys; empty: all.")
    touch_models: list[str] = Field(default_factory=list, description="Empty: all.")
    holdout_share: Annotated[float, Field(ge=0, le=1)] = 0.0
    outcome: dict[str, Any] = Field(
        default_factory=dict,
        description='{"kind": "recovered"|"improved"|"retained", "days": 60, "metric": "events_28d"}',
    )
    actions: list[ActionIn] = Field(description="The ordered actions.")
    key: str = Field("", max_length=100, description="Create only; empty: made from the name.")

    def inputs(self) -> tuple[services.PlaybookInput, list[services.ActionInput]]:
        data = services.PlaybookInput(
            name=self.name,
            description=self.description,
            trigger_kind=self.trigger_kind,
            trigger_params=self.trigger_params,
            condition_text=self.condition,
            segments=self.segments,
            touch_models=self.touch_models,
            holdout_share=self.holdout_share,
            outcome=self.outcome,
            key=self.key,
        )
        steps = [
            services.ActionInput(kind=a.kind, params=a.params, delay_days=a.delay_days)
            for a in self.actions
        ]
        return data, steps


class ActionOut(Schema):
    position: int
    kind: str
    params: dict[str, Any]
    delay_days: int


class PlaybookOut(Schema):
    id: int
    key: str
    name: str
    description: str
    trigger_kind: str
    trigger_params: dict[str, Any]
    trigger_summary: str
    condition: str = Field(description="The condition text (empty: every customer).")
    segments: list[str]
    touch_models: list[str]
    holdout_share: float = Field(description="A fraction in [0, 1].")
    outcome: dict[str, Any]
    enabled: bool
    paused: bool
    live: bool = Field(description="Enabled and not paused.")
    enabled_at: datetime | None
    library_key: str
    actions: list[ActionOut]
    fired_last_30_days: int
    created_at: datetime
    updated_at: datetime


class PlaybookPageOut(Schema):
    items: list[PlaybookOut]
    count: int
    page: int
    pages: int


def _playbook_out(playbook: Playbook, fired: dict[int, int] | None = None) -> dict[str, Any]:
    counts = fired if fired is not None else effects.fired_last_30_days([playbook.pk])
    return {
        "id": playbook.pk,
        "key": playbook.key,
        "name": playbook.name,
        "description": playbook.description,
        "trigger_kind": playbook.trigger_kind,
        "trigger_params": playbook.trigger_params,
        "trigger_summary": triggers.describe_trigger(playbook),
        "condition": playbook.condition_text,
        "segments": playbook.segments,
        "touch_models": playbook.touch_models,
        "holdout_share": playbook.holdout_share,
        "outcome": playbook.outcome,
        "enabled": playbook.enabled,
        "paused": playbook.paused,
        "live": playbook.is_live,
        "enabled_at": playbook.enabled_at,
        "library_key": playbook.library_key,
        "actions": [
            {"position": a.position, "kind": a.kind, "params": a.params, "delay_days": a.delay_days}
            for a in playbook.actions.all()
        ],
        "fired_last_30_days": counts.get(playbook.pk, 0),
        "created_at": playbook.created_at,
        "updated_at": playbook.updated_at,
    }


def _playbooks() -> Any:
    return Playbook.objects.prefetch_related("actions")


# --- Playbooks ------------------------------------------------------------------------------


class PlaybookFilters(Schema):
    page: Annotated[int, Field(ge=1)] = 1
    state: Literal["on", "paused", "off"] | None = Field(None, description="Filter by state.")
    trigger_kind: Literal["timeline", "customer_date", "schedule", "metric"] | None = None


@router.get(
    "/playbooks",
    response={200: PlaybookPageOut, **ERRORS},
    summary="Playbooks by name (50 a page)",
)
def list_playbooks(request: HttpRequest, filters: Query[PlaybookFilters]) -> dict[str, Any]:
    require(request.user, Capability.VIEW)
    playbooks = _playbooks().order_by("name", "id")
    if filters.state == "on":
        playbooks = playbooks.filter(enabled=True, paused=False)
    elif filters.state == "paused":
        playbooks = playbooks.filter(enabled=True, paused=True)
    elif filters.state == "off":
        playbooks = playbooks.filter(enabled=False)
    if filters.trigger_kind:
        playbooks = playbooks.filter(trigger_kind=filters.trigger_kind)
    count = playbooks.count()
    start = (filters.page - 1) * PAGE_SIZE
    page = list(playbooks[start : start + PAGE_SIZE])
    fired = effects.fired_last_30_days([p.pk for p in page])
    return {
        "items": [_playbook_out(p, fired) for p in page],
        "count": count,
        "page": filters.page,
        "pages": max(ceil(count / PAGE_SIZE), 1),
    }


@router.post(
    "/playbooks",
    response={201: PlaybookOut, **ERRORS},
    summary="Create a playbook (switched off: enable it after simulating)",
)
def create_playbook(request: HttpRequest, payload: PlaybookIn) -> Status[dict[str, Any]]:
    require(request.user, Capability.MANAGE_PLAYBOOKS)
    data, steps = payload.inputs()
    try:
        playbook = services.save_playbook(data=data, actions=steps, user=_user(request))
    except services.PlaybookError as error:
        raise _invalid(error) from None
    return Status(201, _playbook_out(get_object_or_404(_playbooks(), pk=playbook.pk)))


class ActionTypeFieldOut(Schema):
    name: str
    label: str
    kind: str
    required: bool
    choices: list[list[str]]
    help: str


class ActionTypeOut(Schema):
    key: str
    label: str
    description: str
    fields: list[ActionTypeFieldOut]


@router.get(
    "/playbooks/actions",
    response={200: list[ActionTypeOut], **ERRORS},
    summary="The actions a playbook can take, with their parameters",
)
def list_action_types(request: HttpRequest) -> list[dict[str, Any]]:
    from kizuna.playbooks.actions import action_types

    require(request.user, Capability.VIEW)
    return [
        {
            "key": t.key,
            "label": str(t.label),
            "description": str(t.description),
            "fields": [
                {
                    "name": f.name,
                    "label": str(f.label),
                    "kind": f.kind,
                    "required": f.required,
                    "choices": [[str(value), str(label)] for value, label in f.choices],
                    "help": str(f.help),
                }
                for f in t.fields
            ],
        }
        for t in action_types()
    ]


class LibraryEntryOut(Schema):
    key: str
    name: str
    description: str
    trigger_kind: str
    trigger_params: dict[str, Any]
    trigger_summary: str
    condition: str
    holdout_share: float
    outcome: dict[str, Any]
    installed: int | None = Field(description="The installed playbook's id, if installed.")


@router.get(
    "/playbooks/library",
    response={200: list[LibraryEntryOut], **ERRORS},
    summary="The ready playbooks and whether each is installed",
)
def list_library(request: HttpRequest) -> list[dict[str, Any]]:
    require(request.user, Capability.VIEW)
    installed = library.installed_keys()
    return [
        {
            "key": entry.key,
            "name": str(entry.name),
            "description": str(entry.description),
            "trigger_kind": entry.trigger_kind,
            "trigger_params": dict(entry.trigger_params),
            "trigger_summary": triggers.describe_trigger(
                Playbook(trigger_kind=entry.trigger_kind, trigger_params=dict(entry.trigger_params))
            ),
            "condition": entry.condition_text,
            "holdout_share": entry.holdout_share,
            "outcome": dict(entry.outcome),
            "installed": installed[entry.key].pk if entry.key in installed else None,
        }
        for entry in library.LIBRARY
    ]


class InstallIn(InSchema):
    keys: list[str] | None = Field(None, description="Library keys; null or absent: all.")
    enable: bool = Field(False, description="Switch the installed playbooks on.")


@router.post(
    "/playbooks/library/install",
    response={200: list[PlaybookOut], **ERRORS},
    summary="Install ready playbooks (idempotent: an installed one is returned as it is)",
)
def install_library(request: HttpRequest, payload: InstallIn) -> list[dict[str, Any]]:
    require(request.user, Capability.MANAGE_PLAYBOOKS)
    try:
        installed = library.install_library(
            keys=payload.keys, enable=payload.enable, user=_user(request)
        )
    except KeyError as error:
        raise ValidationError(
            {"keys": [_("No ready playbook has the key “{key}”.").format(key=error.args[0])]}
        ) from None
    except services.PlaybookError as error:
        raise _invalid(error) from None
    ids = [p.pk for p in installed]
    by_id = {p.pk: p for p in _playbooks().filter(pk__in=ids)}
    fired = effects.fired_last_30_days(ids)
    return [_playbook_out(by_id[pk], fired) for pk in ids]


# --- Simulation -----------------------------------------------------------------------------


class SimulatedActionOut(Schema):
    position: int
    kind: str
    label: str
    description: str
    due_on: date


class SimulatedRunOut(Schema):
    customer: int
    customer_name: str
    day: date
    occurrence_key: str
    trigger_summary: str
    held_out: bool
    actions: list[SimulatedActionOut]


class SimulationOut(Schema):
    start: date
    end: date
    fired: int
    held_out: int
    customers: int
    actions_by_kind: dict[str, int]
    runs: list[SimulatedRunOut]


def simulation_out(result: simulation.Simulation) -> dict[str, Any]:
    return {
        "start": result.start,
        "end": result.end,
        "fired": result.fired,
        "held_out": result.held_out,
        "customers": result.customers,
        "actions_by_kind": result.actions_by_kind,
        "runs": [
            {
                "customer": run.customer_id,
                "customer_name": run.customer_name,
                "day": run.day,
                "occurrence_key": run.occurrence_key,
                "trigger_summary": run.trigger_summary,
                "held_out": run.held_out,
                "actions": [
                    {
                        "position": a.position,
                        "kind": a.kind,
                        "label": a.label,
                        "description": a.description,
                        "due_on": a.due_on,
                    }
                    for a in run.actions
                ],
            }
            for run in result.runs
        ],
    }


def _period(days: int) -> tuple[date, date]:
    end = timezone.localdate()
    return end - timedelta(days=days - 1), end


Days = Annotated[int, Field(ge=1, le=MAX_SIMULATION_DAYS)]


@router.post(
    "/playbooks/simulate",
    response={200: SimulationOut, **ERRORS},
    summary="Simulate a playbook that is not saved (the body of a create) over the last N days",
)
def simulate_draft(request: HttpRequest, payload: PlaybookIn, days: Days = 90) -> dict[str, Any]:
    require(request.user, Capability.MANAGE_PLAYBOOKS)
    data, steps = payload.inputs()
    try:
        checked = services.check_playbook(data=data, actions=steps)
    except services.PlaybookError as error:
        raise _invalid(error) from None
    draft, actions = services.unsaved_playbook(checked)
    start, end = _period(days)
    return simulation_out(
        simulation.simulate(playbook=draft, actions=actions, start=start, end=end)
    )


@router.get(
    "/playbooks/{playbook_id}",
    response={200: PlaybookOut, **ERRORS},
    summary="One playbook with its actions",
)
def get_playbook(request: HttpRequest, playbook_id: int) -> dict[str, Any]:
    require(request.user, Capability.VIEW)
    return _playbook_out(get_object_or_404(_playbooks(), pk=playbook_id))


@router.put(
    "/playbooks/{playbook_id}",
    response={200: PlaybookOut, **ERRORS},
    summary="Replace a playbook and its actions (runs already fired keep theirs)",
)
def replace_playbook(request: HttpRequest, playbook_id: int, payload: PlaybookIn) -> dict[str, Any]:
    require(request.user, Capability.MANAGE_PLAYBOOKS)
    playbook = get_object_or_404(Playbook, pk=playbook_id)
    data, steps = payload.inputs()
    try:
        services.save_playbook(playbook=playbook, data=data, actions=steps, user=_user(request))
    except services.PlaybookError as error:
        raise _invalid(error) from None
    return _playbook_out(get_object_or_404(_playbooks(), pk=playbook_id))


@router.delete(
    "/playbooks/{playbook_id}",
    response={204: None, **ERRORS},
    summary="Delete a playbook and its run log (tasks it created stay)",
)
def delete_playbook(request: HttpRequest, playbook_id: int) -> Status[None]:
    require(request.user, Capability.MANAGE_PLAYBOOKS)
    services.delete_playbook(
        playbook=get_object_or_404(Playbook, pk=playbook_id), user=_user(request)
    )
    return Status(204, None)


@router.post(
    "/playbooks/{playbook_id}/simulate",
    response={200: SimulationOut, **ERRORS},
    summary="What the playbook would have done over the last N days (nothing is written)",
)
def simulate_playbook(request: HttpRequest, playbook_id: int, days: Days = 90) -> dict[str, Any]:
    require(request.user, Capability.MANAGE_PLAYBOOKS)
    playbook = get_object_or_404(Playbook, pk=playbook_id)
    start, end = _period(days)
    return simulation_out(simulation.simulate(playbook=playbook, start=start, end=end))


def _state_change(request: HttpRequest, playbook_id: int, change: Any) -> dict[str, Any]:
    require(request.user, Capability.MANAGE_PLAYBOOKS)
    playbook = get_object_or_404(Playbook, pk=playbook_id)
    change(playbook=playbook, user=_user(request))
    return _playbook_out(get_object_or_404(_playbooks(), pk=playbook_id))


@router.post(
    "/playbooks/{playbook_id}/enable",
    response={200: PlaybookOut, **ERRORS},
    summary="Switch on from now (it fires for occurrences from this moment)",
)
def enable_playbook(request: HttpRequest, playbook_id: int) -> dict[str, Any]:
    return _state_change(request, playbook_id, services.enable_playbook)


@router.post(
    "/playbooks/{playbook_id}/pause",
    response={200: PlaybookOut, **ERRORS},
    summary="Pause (waiting actions are held)",
)
def pause_playbook(request: HttpRequest, playbook_id: int) -> dict[str, Any]:
    return _state_change(request, playbook_id, services.pause_playbook)


@router.post(
    "/playbooks/{playbook_id}/resume",
    response={200: PlaybookOut, **ERRORS},
    summary="Resume a paused playbook from now",
)
def resume_playbook(request: HttpRequest, playbook_id: int) -> dict[str, Any]:
    return _state_change(request, playbook_id, services.resume_playbook)


@router.post(
    "/playbooks/{playbook_id}/disable",
    response={200: PlaybookOut, **ERRORS},
    summary="Switch off (waiting actions are skipped)",
)
def disable_playbook(request: HttpRequest, playbook_id: int) -> dict[str, Any]:
    return _state_change(request, playbook_id, services.disable_playbook)


# --- Runs and effect ------------------------------------------------------------------------


class ExecutionOut(Schema):
    id: int
    position: int
    kind: str
    status: str
    due_at: datetime
    attempts: int
    next_attempt_at: datetime | None
    last_error: str
    result: dict[str, Any]
    done_at: datetime | None


class RunOut(Schema):
    id: int
    customer: int
    customer_name: str
    occurrence_key: str
    triggered_on: date
    trigger_summary: str
    holdout: bool
    status: str
    error: str
    created_at: datetime
    finished_at: datetime | None
    executions: list[ExecutionOut]


class RunPageOut(Schema):
    items: list[RunOut]
    count: int
    page: int
    pages: int


class RunFilters(Schema):
    page: Annotated[int, Field(ge=1)] = 1
    status: Literal["pending", "done", "failed", "holdout"] | None = None
    customer: int | None = None


@router.get(
    "/playbooks/{playbook_id}/runs",
    response={200: RunPageOut, **ERRORS},
    summary="The run log, newest first (50 a page), with each action's state",
)
def list_runs(request: HttpRequest, playbook_id: int, filters: Query[RunFilters]) -> dict[str, Any]:
    require(request.user, Capability.VIEW)
    playbook = get_object_or_404(Playbook, pk=playbook_id)
    runs = (
        PlaybookRun.objects.filter(playbook=playbook)
        .select_related("customer")
        .prefetch_related(
            Prefetch("executions", queryset=ActionExecution.objects.order_by("position"))
        )
        .order_by("-triggered_on", "-id")
    )
    if filters.status:
        runs = runs.filter(status=RunStatus(filters.status))
    if filters.customer:
        runs = runs.filter(customer_id=filters.customer)
    count = runs.count()
    start = (filters.page - 1) * PAGE_SIZE
    items = [
        {
            "id": run.pk,
            "customer": run.customer_id,
            "customer_name": run.customer.name,
            "occurrence_key": run.occurrence_key,
            "triggered_on": run.triggered_on,
            "trigger_summary": run.trigger_summary,
            "holdout": run.holdout,
            "status": run.status,
            "error": run.error,
            "created_at": run.created_at,
            "finished_at": run.finished_at,
            "executions": list(run.executions.all()),
        }
        for run in runs[start : start + PAGE_SIZE]
    ]
    return {
        "items": items,
        "count": count,
        "page": filters.page,
        "pages": max(ceil(count / PAGE_SIZE), 1),
    }


class RateOut(Schema):
    numerator: int
    denominator: int
    value: float | None = Field(description="A fraction; null when the denominator is 0.")
    low: float | None = Field(description="95% Wilson interval, lower bound.")
    high: float | None = Field(description="95% Wilson interval, upper bound.")


class DifferenceOut(Schema):
    value: float = Field(description="Acted rate − held-out rate (a fraction).")
    low: float
    high: float


class MonthOut(Schema):
    month: str = Field(description="YYYY-MM")
    acted: int
    held_out: int


class EffectOut(Schema):
    playbook: int
    as_of: date
    fired: int
    acted: int
    held_out: int
    fired_last_30_days: int
    failed_runs: int
    by_month: list[MonthOut]
    tasks_created: int
    tasks_completed: int
    tasks_open: int
    task_completion: RateOut
    median_days_to_completion: float | None
    outcome: dict[str, Any]
    outcome_label: str
    acted_outcome: RateOut | None
    held_out_outcome: RateOut | None
    difference: DifferenceOut | None
    pending: int = Field(description="Runs too recent to measure.")
    unmeasured: int = Field(description="Runs without the metric values to judge by.")
    verdict: Literal["no_outcome", "no_holdout", "not_enough", "helps", "hurts", "no_difference"]
    verdict_text: str
    needed_more: int | None = Field(
        description="About how many more measured runs are needed to detect 10 points."
    )


class EffectFilters(Schema):
    as_of: date | None = None


@router.get(
    "/playbooks/{playbook_id}/effect",
    response={200: EffectOut, **ERRORS},
    summary="How often it fired, its tasks, and the outcome acted on vs held out",
)
def get_effect(
    request: HttpRequest, playbook_id: int, filters: Query[EffectFilters]
) -> dict[str, Any]:
    require(request.user, Capability.VIEW)
    playbook = get_object_or_404(Playbook, pk=playbook_id)
    effect = effects.playbook_effect(playbook=playbook, as_of=filters.as_of)
    return effect_out(effect)


def _rate(rate: effects.Rate | None) -> dict[str, Any] | None:
    if rate is None:
        return None
    return {
        "numerator": rate.numerator,
        "denominator": rate.denominator,
        "value": rate.value,
        "low": rate.low,
        "high": rate.high,
    }


def effect_out(effect: effects.Effect) -> dict[str, Any]:
    """The effect as plain JSON-ready values (the API and ``kizuna playbooks effect --json``)."""
    difference = effect.difference
    return {
        "playbook": effect.playbook_id,
        "as_of": effect.as_of,
        "fired": effect.fired,
        "acted": effect.acted,
        "held_out": effect.held_out,
        "fired_last_30_days": effect.fired_last_30_days,
        "failed_runs": effect.failed_runs,
        "by_month": [
            {"month": m.month.strftime("%Y-%m"), "acted": m.acted, "held_out": m.held_out}
            for m in effect.by_month
        ],
        "tasks_created": effect.tasks_created,
        "tasks_completed": effect.tasks_completed,
        "tasks_open": effect.tasks_open,
        "task_completion": _rate(effect.completion),
        "median_days_to_completion": effect.median_days_to_completion,
        "outcome": effect.outcome,
        "outcome_label": effect.outcome_label,
        "acted_outcome": _rate(effect.acted_outcome),
        "held_out_outcome": _rate(effect.held_out_outcome),
        "difference": None
        if difference is None
        else {"value": difference.value, "low": difference.low, "high": difference.high},
        "pending": effect.pending,
        "unmeasured": effect.unmeasured,
        "verdict": str(effect.verdict),
        "verdict_text": effect.verdict_text,
        "needed_more": effect.needed_more,
    }
