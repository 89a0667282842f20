"""Writes of playbooks and webhook endpoints: save (validated), enable, pause, resume, disable,
delete; endpoint create/update/delete and the "send test" post.

Validation names what is wrong so a form, the API and the CLI can point at it: the error's
``errors`` maps a field (``name``, ``trigger.kinds``, ``condition``, ``holdout_share``,
``outcome.metric``, ``actions[1].title`` — the position in the ordered list, 0-based) to a
message. The engine's own checks are used as they are: ``triggers.validate_trigger`` for the
trigger, ``lifecycle.conditions.parse`` for the condition, each ``ActionType.validate`` for the
actions, so a rule that saves is a rule the runner can run.
"""

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify
from django.utils.translation import gettext as _

from kizuna.analytics.metric_defaults import DEFAULT_METRICS
from kizuna.analytics.models import MetricDefinition
from kizuna.core.models import User
from kizuna.customers.models import TouchModel
from kizuna.lifecycle import conditions
from kizuna.playbooks import actions as action_registry
from kizuna.playbooks import triggers
from kizuna.playbooks.models import (
    ActionExecution,
    ExecutionStatus,
    Playbook,
    PlaybookAction,
    PlaybookRun,
    RunStatus,
    TriggerKind,
    WebhookDelivery,
    WebhookEndpoint,
)

MAX_ACTIONS = 20
MAX_DELAY_DAYS = 365
MAX_HOLDOUT_SHARE = 0.5
OUTCOME_KINDS = ("recovered", "retained", "improved")
MAX_OUTCOME_DAYS = 365


class PlaybookError(ValueError):
    """A playbook (or endpoint) that cannot be saved: ``errors`` maps each field to a message.

    ``field`` and ``message`` are the first of them (what a single-error caller shows).
    """

    def __init__(self, errors: Mapping[str, str]) -> None:
        self.errors = dict(errors)
        self.field, self.message = next(iter(self.errors.items()))
        super().__init__("; ".join(f"{key}: {value}" for key, value in self.errors.items()))


@dataclass(frozen=True)
class ActionInput:
    """One step as a person or the API wrote it (``kind`` is an action registry key)."""

    kind: str
    params: Mapping[str, Any] = field(default_factory=dict)
    delay_days: int = 0


@dataclass(frozen=True)
class PlaybookInput:
    """Everything about a playbook but its actions. ``condition_text`` empty: everyone."""

    name: str
    trigger_kind: str
    trigger_params: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    condition_text: str = ""
    segments: Sequence[str] = ()
    touch_models: Sequence[str] = ()
    holdout_share: float = 0.0
    outcome: Mapping[str, Any] = field(default_factory=dict)
    key: str = ""
    library_key: str = ""


@dataclass(frozen=True)
class CheckedPlaybook:
    """A playbook input that passed every check, normalised (what ``save_playbook`` writes)."""

    data: PlaybookInput
    trigger_params: dict[str, Any]
    condition: dict[str, Any]
    condition_text: str
    segments: list[str]
    touch_models: list[str]
    outcome: dict[str, Any]
    actions: list[ActionInput]


def _metric_keys() -> set[str]:
    keys = {metric.key for metric in DEFAULT_METRICS}
    keys.update(MetricDefinition.objects.values_list("key", flat=True))
    return keys


def _check_outcome(outcome: Mapping[str, Any], errors: dict[str, str]) -> dict[str, Any]:
    """``{}`` (no outcome) or ``{"kind", "days", "metric"?}`` checked."""
    if not outcome:
        return {}
    if not isinstance(outcome, Mapping):
        errors["outcome"] = _("Give the outcome as an object with kind, days and metric.")
        return {}
    kind = outcome.get("kind")
    if kind not in OUTCOME_KINDS:
        errors["outcome.kind"] = _("Choose one of: {choices}.").format(
            choices=", ".join(OUTCOME_KINDS)
        )
        return {}
    days = outcome.get("days")
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_OUTCOME_DAYS:
        errors["outcome.days"] = _("Give a whole number of days from 1 to {max}.").format(
            max=MAX_OUTCOME_DAYS
        )
        return {}
    checked: dict[str, Any] = {"kind": kind, "days": days}
    if kind in ("recovered", "improved"):
        metric = str(outcome.get("metric") or "").strip()
        if not metric:
            errors["outcome.metric"] = _("This outcome needs a metric.")
            return {}
        if metric not in _metric_keys():
            errors["outcome.metric"] = _("No metric has the key “{key}”.").format(key=metric)
            return {}
        checked["metric"] = metric
    return checked


def check_actions(actions: Sequence[ActionInput], errors: dict[str, str]) -> list[ActionInput]:
    """The actions checked by their action types; what is wrong goes into ``errors`` under
    ``actions[<index>].<field>``."""
    if not actions:
        errors["actions"] = _("Add at least one action.")
        return []
    if len(actions) > MAX_ACTIONS:
        errors["actions"] = _("A playbook has at most {max} actions.").format(max=MAX_ACTIONS)
        return []
    checked: list[ActionInput] = []
    for index, step in enumerate(actions):
        prefix = f"actions[{index}]"
        try:
            action_type = action_registry.action_type(step.kind)
        except (KeyError, LookupError):
            errors[f"{prefix}.kind"] = _("Unknown action “{kind}”.").format(kind=step.kind)
            continue
        delay = step.delay_days
        if isinstance(delay, bool) or not isinstance(delay, int) or not 0 <= delay <= 365:
            errors[f"{prefix}.delay_days"] = _(
                "Give the delay as a whole number of days from 0 to {max}."
            ).format(max=MAX_DELAY_DAYS)
            continue
        try:
            params = action_type.validate(dict(step.params or {}))
        except action_registry.ActionError as error:
            errors[f"{prefix}.{error.field}" if error.field else prefix] = str(error.message)
            continue
        checked.append(ActionInput(kind=step.kind, params=params, delay_days=delay))
    return checked


def check_playbook(*, data: PlaybookInput, actions: Sequence[ActionInput]) -> CheckedPlaybook:
    """``data`` and ``actions`` checked and normalised; raises ``PlaybookError`` naming every
    field at fault (all of them, so a form shows every mistake at once)."""
    errors: dict[str, str] = {}
    if not str(data.name or "").strip():
        errors["name"] = _("Give the playbook a name.")
    elif len(data.name.strip()) > 200:
        errors["name"] = _("At most 200 characters.")
    trigger_params: dict[str, Any] = {}
    if data.trigger_kind not in TriggerKind.values:
        errors["trigger_kind"] = _("Choose one of: {choices}.").format(
            choices=", ".join(TriggerKind.values)
        )
    else:
        try:
            trigger_params = triggers.validate_trigger(
                data.trigger_kind, dict(data.trigger_params or {})
            )
        except triggers.TriggerError as error:
            key = f"trigger.{error.field}" if error.field else "trigger"
            errors[key] = str(error.message)
    condition_text = str(data.condition_text or "").strip()
    condition: dict[str, Any] = {}
    if condition_text:
        try:
            condition = conditions.parse(condition_text)
        except conditions.ConditionError as error:
            errors["condition"] = str(error)
    segments = [str(key).strip() for key in data.segments if str(key).strip()]
    touch_models = [str(key).strip() for key in data.touch_models if str(key).strip()]
    unknown = [key for key in touch_models if key not in TouchModel.values]
    if unknown:
        errors["touch_models"] = _("Unknown touch model “{key}”; choose from {choices}.").format(
            key=unknown[0], choices=", ".join(TouchModel.values)
        )
    share = data.holdout_share
    if (
        isinstance(share, bool)
        or not isinstance(share, int | float)
        or not 0 <= share <= MAX_HOLDOUT_SHARE
    ):
        errors["holdout_share"] = _("Give a share from 0 to {max} (0.1 holds out 10%).").format(
            max=MAX_HOLDOUT_SHARE
        )
    outcome = _check_outcome(data.outcome, errors)
    outcome_errors = any(key.startswith("outcome") for key in errors)
    if share and not outcome and "holdout_share" not in errors and not outcome_errors:
        errors["holdout_share"] = _(
            "Holding customers out only makes sense with an outcome to compare; set one, or "
            "make the share 0."
        )
    checked_actions = check_actions(actions, errors)
    if errors:
        raise PlaybookError(errors)
    return CheckedPlaybook(
        data=data,
        trigger_params=trigger_params,
        condition=condition,
        condition_text=condition_text,
        segments=sorted(set(segments)),
        touch_models=sorted(set(touch_models)),
        outcome=outcome,
        actions=checked_actions,
    )


def unique_key(wanted: str) -> str:
    """``wanted`` as a slug, numbered (``-2``, ``-3``…) when a playbook already holds it."""
    return _unique_key(wanted, "", exclude=None)


def _unique_key(wanted: str, name: str, *, exclude: int | None) -> str:
    base = slugify(wanted or name)[:90] or "playbook"
    others = Playbook.objects.filter(key__startswith=base)
    if exclude is not None:
        others = others.exclude(pk=exclude)
    taken = set(others.values_list("key", flat=True))
    if base not in taken:
        return base
    number = 2
    while f"{base}-{number}" in taken:
        number += 1
    return f"{base}-{number}"


def unsaved_playbook(
    checked: CheckedPlaybook, *, playbook: Playbook | None = None
) -> tuple[Playbook, list[PlaybookAction]]:
    """The playbook and actions ``checked`` describes, not saved (what the simulation runs).

    Editing keeps the saved one's id, enabled time and state, so "what would this version
    have done" answers for the playbook as it stands.
    """
    data = checked.data
    draft = Playbook(
        pk=playbook.pk if playbook is not None else None,
        key=playbook.key if playbook is not None else (data.key or "draft"),
        name=data.name.strip(),
        description=data.description.strip(),
        trigger_kind=data.trigger_kind,
        trigger_params=checked.trigger_params,
        condition=checked.condition,
        condition_text=checked.condition_text,
        segments=checked.segments,
        touch_models=checked.touch_models,
        holdout_share=float(data.holdout_share),
        outcome=checked.outcome,
        enabled=playbook.enabled if playbook is not None else False,
        paused=playbook.paused if playbook is not None else False,
        enabled_at=playbook.enabled_at if playbook is not None else None,
        library_key=playbook.library_key if playbook is not None else data.library_key,
    )
    steps = [
        PlaybookAction(
            playbook=draft,
            position=index,
            kind=step.kind,
            params=dict(step.params),
            delay_days=step.delay_days,
        )
        for index, step in enumerate(checked.actions)
    ]
    return draft, steps


@transaction.atomic
def save_playbook(
    *,
    playbook: Playbook | None = None,
    data: PlaybookInput,
    actions: Sequence[ActionInput],
    user: User | None,
) -> Playbook:
    """Create (``playbook`` None) or replace a playbook and its ordered actions.

    Raises ``PlaybookError`` naming each field at fault. Editing replaces the actions; runs
    already fired keep the actions they copied, so history stays what it was. The key is made
    from ``data.key`` or the name (unique) and never changes once saved.
    """
    checked = check_playbook(data=data, actions=actions)
    if playbook is None:
        key = _unique_key(data.key, data.name, exclude=None)
        if data.key and key != slugify(data.key):
            raise PlaybookError({"key": _("A playbook with this key exists.")})
        playbook = Playbook(key=key, created_by=user, library_key=data.library_key)
    playbook.name = data.name.strip()
    playbook.description = data.description.strip()
    playbook.trigger_kind = data.trigger_kind
    playbook.trigger_params = checked.trigger_params
    playbook.condition = checked.condition
    playbook.condition_text = checked.condition_text
    playbook.segments = checked.segments
    playbook.touch_models = checked.touch_models
    playbook.holdout_share = float(data.holdout_share)
    playbook.outcome = checked.outcome
    playbook.save()
    playbook.actions.all().delete()
    PlaybookAction.objects.bulk_create(
        PlaybookAction(
            playbook=playbook,
            position=index,
            kind=step.kind,
            params=dict(step.params),
            delay_days=step.delay_days,
        )
        for index, step in enumerate(checked.actions)
    )
    return playbook


def enable_playbook(*, playbook: Playbook, user: User | None = None) -> Playbook:
    """Switch the playbook on from now: it fires for occurrences on or after this moment only
    (no flood of old history)."""
    playbook.enabled = True
    playbook.paused = False
    playbook.enabled_at = timezone.now()
    playbook.save(update_fields=["enabled", "paused", "enabled_at", "updated_at"])
    return playbook


def pause_playbook(*, playbook: Playbook, user: User | None = None) -> Playbook:
    """Stop firing for now; actions already waiting on a delay are held until resumed."""
    playbook.paused = True
    playbook.save(update_fields=["paused", "updated_at"])
    return playbook


def resume_playbook(*, playbook: Playbook, user: User | None = None) -> Playbook:
    """Fire again, from now: what happened while paused is not caught up."""
    if not playbook.enabled:
        return enable_playbook(playbook=playbook, user=user)
    playbook.paused = False
    playbook.enabled_at = timezone.now()
    playbook.save(update_fields=["paused", "enabled_at", "updated_at"])
    return playbook


@transaction.atomic
def disable_playbook(*, playbook: Playbook, user: User | None = None) -> Playbook:
    """Switch the playbook off; its actions still waiting on a delay are skipped."""
    playbook.enabled = False
    playbook.paused = False
    playbook.save(update_fields=["enabled", "paused", "updated_at"])
    unsettled = [ExecutionStatus.WAITING, ExecutionStatus.RETRYING]
    skipped_runs = set(
        ActionExecution.objects.filter(run__playbook=playbook, status__in=unsettled).values_list(
            "run_id", flat=True
        )
    )
    ActionExecution.objects.filter(run__playbook=playbook, status__in=unsettled).update(
        status=ExecutionStatus.SKIPPED, last_error=_("The playbook was disabled.")
    )
    # A run whose remaining actions were skipped is settled: failed if one of its actions
    # failed, done otherwise.
    now = timezone.now()
    runs = PlaybookRun.objects.filter(pk__in=skipped_runs, status=RunStatus.PENDING)
    runs.filter(executions__status=ExecutionStatus.FAILED).update(
        status=RunStatus.FAILED, finished_at=now
    )
    runs.filter(status=RunStatus.PENDING).update(status=RunStatus.DONE, finished_at=now)
    return playbook


def delete_playbook(*, playbook: Playbook, user: User | None = None) -> None:
    """Delete the playbook with its runs; tasks it created stay (unlinked from the run)."""
    playbook.delete()


# --- Webhook endpoints ----------------------------------------------------------------------


@dataclass(frozen=True)
class EndpointInput:
    name: str
    url: str
    style: str = WebhookEndpoint.Style.SLACK
    secret: str = ""
    is_active: bool = True


def _check_endpoint(data: EndpointInput, *, endpoint: WebhookEndpoint | None) -> None:
    errors: dict[str, str] = {}
    name = data.name.strip()
    if not name:
        errors["name"] = _("Give the endpoint a name.")
    elif (
        WebhookEndpoint.objects.filter(name=name)
        .exclude(pk__in=[endpoint.pk] if endpoint is not None else [])
        .exists()
    ):
        errors["name"] = _("An endpoint with this name exists.")
    parts = urlsplit(data.url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        errors["url"] = _("Give a full http:// or https:// address.")
    elif len(data.url.strip()) > 500:
        errors["url"] = _("At most 500 characters.")
    if data.style not in WebhookEndpoint.Style.values:
        errors["style"] = _("Choose one of: {choices}.").format(
            choices=", ".join(WebhookEndpoint.Style.values)
        )
    if len(data.secret) > 200:
        errors["secret"] = _("At most 200 characters.")
    if errors:
        raise PlaybookError(errors)


def save_endpoint(
    *, endpoint: WebhookEndpoint | None = None, data: EndpointInput
) -> WebhookEndpoint:
    """Create or update an endpoint. A JSON endpoint without a secret gets a random one (its
    receiver checks the signature); an empty secret on edit keeps the current one."""
    _check_endpoint(data, endpoint=endpoint)
    endpoint = endpoint or WebhookEndpoint()
    endpoint.name = data.name.strip()
    endpoint.url = data.url.strip()
    endpoint.style = data.style
    endpoint.is_active = data.is_active
    if data.secret:
        endpoint.secret = data.secret
    elif not endpoint.secret and data.style == WebhookEndpoint.Style.JSON:
        endpoint.secret = secrets.token_hex(24)
    endpoint.save()
    return endpoint


def delete_endpoint(*, endpoint: WebhookEndpoint) -> None:
    """Delete the endpoint; ``notify_webhook`` actions naming it fail (visibly) from now on."""
    endpoint.delete()


def send_test(*, endpoint: WebhookEndpoint, user: User | None = None) -> WebhookDelivery:
    """Post a test message now and return the recorded attempt (its status code or error)."""
    from kizuna.playbooks import notify

    who = (user.display_name if user is not None else "") or "Kizuna"
    text = _("Test message from Kizuna, sent by {name}.").format(name=who)
    if endpoint.style == WebhookEndpoint.Style.SLACK:
        payload: dict[str, Any] = {"text": text}
    else:
        payload = {"event": "test", "text": text, "sent_at": timezone.now().isoformat()}
    try:
        return notify.post_webhook(endpoint, payload)
    except notify.DeliveryError as error:
        return error.delivery
