"""Playbook pages: the list, the editor (with "simulate the last 90 days" before saving), the
run log with retry, the effect page, the library and Settings → Webhooks.

Doors only: check the capability, parse the forms, call one service / selector, render. Reading
(list, runs, effect) needs ``view``; changing anything needs ``manage_playbooks``. htmx requests
get the page's fragment (with errors in place and status 200, so htmx swaps it).
"""

from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Count, Prefetch, Q
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
from kizuna.lifecycle import conditions
from kizuna.playbooks import effects, library, services
from kizuna.playbooks import triggers as trigger_rules
from kizuna.playbooks.forms_playbooks import (
    ActionSlot,
    EndpointForm,
    PlaybookForm,
    action_kind_choices,
    place_errors,
    slot_inputs,
    slots_from_playbook,
    slots_from_post,
    trigger_form,
)
from kizuna.playbooks.models import (
    ActionExecution,
    ExecutionStatus,
    Playbook,
    PlaybookRun,
    RunStatus,
    TriggerKind,
    WebhookEndpoint,
)

SIMULATION_DAYS = 90
RUNS_PER_PAGE = 50
# Service error keys → editor form fields.
_FORM_FIELDS = {
    "name": "name",
    "trigger_kind": "trigger_kind",
    "condition": "condition_text",
    "segments": "segments",
    "touch_models": "touch_models",
    "holdout_share": "holdout_percent",
    "outcome": "outcome_kind",
    "outcome.kind": "outcome_kind",
    "outcome.metric": "outcome_metric",
    "outcome.days": "outcome_days",
}
# Trigger parameter names → trigger form fields where they differ.
_TRIGGER_FIELDS = {"kinds": "kind", "payload.kind": "signal_kind", "kind": "kind"}


def _user(request: HttpRequest) -> User | None:
    return request.user if isinstance(request.user, User) else None


def _htmx(request: HttpRequest) -> bool:
    return bool(getattr(request, "htmx", False))


def _subnav(**context: Any) -> dict[str, Any]:
    return {"area": "tasks", "subnav": "playbooks", **context}


# --- List -----------------------------------------------------------------------------------


@require_GET
@requires(Capability.VIEW)
def playbook_list(request: HttpRequest) -> HttpResponse:
    """Every playbook with its state, trigger in words, and runs in the last 30 days."""
    playbooks = list(Playbook.objects.annotate(action_count=Count("actions")).order_by("name"))
    fired = effects.fired_last_30_days([p.pk for p in playbooks])
    failing = dict(
        PlaybookRun.objects.filter(playbook__in=playbooks, status=RunStatus.FAILED)
        .values_list("playbook_id")
        .annotate(n=Count("id"))
        .values_list("playbook_id", "n")
    )
    rows = [
        {
            "playbook": playbook,
            "trigger": trigger_rules.describe_trigger(playbook),
            "fired": fired.get(playbook.pk, 0),
            "failed": failing.get(playbook.pk, 0),
        }
        for playbook in playbooks
    ]
    return render(request, "playbooks/playbooks/list.html", _subnav(rows=rows))


@require_POST
@requires(Capability.MANAGE_PLAYBOOKS)
def playbook_state(request: HttpRequest, pk: int) -> HttpResponse:
    """``action`` = enable | pause | resume | disable; htmx gets the list row back."""
    playbook = get_object_or_404(Playbook, pk=pk)
    action = request.POST.get("action", "")
    changes = {
        "enable": (services.enable_playbook, _("Playbook “{name}” is on.")),
        "pause": (services.pause_playbook, _("Playbook “{name}” is paused.")),
        "resume": (services.resume_playbook, _("Playbook “{name}” is running again.")),
        "disable": (services.disable_playbook, _("Playbook “{name}” is off.")),
    }
    if action not in changes:
        messages.error(request, _("Unknown action “{action}”.").format(action=action))
        return redirect("playbooks:playbook-list")
    change, message = changes[action]
    playbook = change(playbook=playbook, user=_user(request))
    if _htmx(request):
        row = {
            "playbook": playbook,
            "trigger": trigger_rules.describe_trigger(playbook),
            "fired": effects.fired_last_30_days([playbook.pk]).get(playbook.pk, 0),
            "failed": playbook.runs.filter(status=RunStatus.FAILED).count(),
        }
        return render(request, "playbooks/playbooks/list.html#row", {"row": row})
    messages.success(request, message.format(name=playbook.name))
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return redirect(target)
    return redirect("playbooks:playbook-list")


# --- Editor ---------------------------------------------------------------------------------


def _simulate(draft: Playbook, steps: list[Any]) -> Any:
    from kizuna.playbooks import simulation

    end = timezone.localdate()
    start = end - timedelta(days=SIMULATION_DAYS - 1)
    return simulation.simulate(playbook=draft, actions=steps, start=start, end=end)


def _editor(
    request: HttpRequest,
    *,
    playbook: Playbook | None,
    form: PlaybookForm,
    trigger_kind: str,
    tform: Any,
    slots: list[ActionSlot],
    show_errors: bool = False,
    errors: dict[str, str] | None = None,
    simulation: Any = None,
    status: int = 200,
) -> HttpResponse:
    context = _subnav(
        playbook=playbook,
        form=form,
        trigger_kind=trigger_kind,
        trigger_kinds=TriggerKind.choices,
        tform=tform,
        slots=slots,
        action_kinds=action_kind_choices(),
        show_errors=show_errors,
        errors=errors or {},
        simulation=simulation,
        simulation_days=SIMULATION_DAYS,
        fields=conditions.describe_fields(),
    )
    if _htmx(request):
        return render(request, "playbooks/playbooks/editor.html#editor", context)
    return render(request, "playbooks/playbooks/editor.html", context, status=status)


def _apply_op(op: str, slots: list[ActionSlot], new_kind: str) -> list[ActionSlot]:
    """Add, remove or move an action slot (the editor's buttons), renumbering the slots."""
    verb, _sep, raw = op.partition("-")
    index = int(raw) if raw.isdigit() else -1
    if verb == "add":
        slots.append(ActionSlot(index=len(slots), kind=new_kind or "create_task"))
    elif verb == "remove" and 0 <= index < len(slots):
        slots.pop(index)
    elif verb == "up" and 0 < index < len(slots):
        slots[index - 1], slots[index] = slots[index], slots[index - 1]
    elif verb == "down" and 0 <= index < len(slots) - 1:
        slots[index + 1], slots[index] = slots[index], slots[index + 1]
    for position, slot in enumerate(slots):
        slot.index = position
    return slots


@require_http_methods(["GET", "POST"])
@requires(Capability.MANAGE_PLAYBOOKS)
def playbook_form(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    """Create (no ``pk``) or edit a playbook. The form's ``op`` says what to do: ``save``,
    ``simulate`` (check and simulate the last 90 days, saving nothing), ``refresh`` (the
    trigger kind changed), ``add`` / ``remove-N`` / ``up-N`` / ``down-N`` (actions)."""
    playbook = get_object_or_404(Playbook, pk=pk) if pk is not None else None
    if request.method == "GET":
        kind = playbook.trigger_kind if playbook else TriggerKind.TIMELINE
        return _editor(
            request,
            playbook=playbook,
            form=PlaybookForm(playbook=playbook),
            trigger_kind=kind,
            tform=trigger_form(kind, params=playbook.trigger_params if playbook else {}),
            slots=slots_from_playbook(playbook) if playbook else [ActionSlot(0, "create_task")],
        )
    op = request.POST.get("op", "save")
    kind = request.POST.get("trigger_kind", "")
    kind = kind if kind in TriggerKind.values else TriggerKind.TIMELINE
    form = PlaybookForm(request.POST, playbook=playbook)
    tform = trigger_form(kind, data=request.POST)
    slots = slots_from_post(request.POST)

    def show(**extra: Any) -> HttpResponse:
        return _editor(
            request, playbook=playbook, form=form, trigger_kind=kind, tform=tform, **extra
        )

    if op not in ("save", "simulate"):
        slots = _apply_op(op, slots, request.POST.get("new_kind", ""))
        return show(slots=slots)
    valid = form.is_valid()
    valid = tform.is_valid() and valid
    inputs = slot_inputs(slots)
    valid = valid and not any(slot.errors for slot in slots)
    if not valid:
        # Show the actions' own mistakes too, not only the form's, in one round trip.
        action_errors: dict[str, str] = {}
        services.check_actions(inputs, action_errors)
        place_errors(slots, action_errors)
    else:
        data = form.playbook_input(
            tform.params(), library_key=playbook.library_key if playbook else ""
        )
        try:
            if op == "simulate":
                checked = services.check_playbook(data=data, actions=inputs)
                draft, steps = services.unsaved_playbook(checked, playbook=playbook)
                return show(slots=slots, simulation=_simulate(draft, steps))
            saved = services.save_playbook(
                playbook=playbook, data=data, actions=inputs, user=_user(request)
            )
        except services.PlaybookError as error:
            rest = place_errors(slots, error.errors)
            for key, message in rest.items():
                if key in _FORM_FIELDS:
                    form.add_error(_FORM_FIELDS[key], message)
                elif key.startswith("trigger."):
                    name = key.removeprefix("trigger.")
                    name = _TRIGGER_FIELDS.get(name, name.split(".")[0])
                    tform.add_error(name if name in tform.fields else None, message)
                else:
                    form.add_error(None, message)
        else:
            messages.success(request, _("Playbook “{name}” saved.").format(name=saved.name))
            if _htmx(request):
                response = HttpResponse(status=204)
                response["HX-Redirect"] = saved_url(saved)
                return response
            return redirect("playbooks:playbook-detail", pk=saved.pk)
    return show(slots=slots, show_errors=True, status=400)


def saved_url(playbook: Playbook) -> str:
    return reverse("playbooks:playbook-detail", args=[playbook.pk])


@require_POST
@requires(Capability.MANAGE_PLAYBOOKS)
def condition_check(request: HttpRequest) -> HttpResponse:
    """The live check of the condition text: an error with its position, or how many
    customers match it today."""
    text = request.POST.get("condition_text", "")[: conditions.MAX_EXPRESSION_LENGTH + 1]
    context: dict[str, Any] = {"text": text.strip()}
    if text.strip():
        try:
            tree = conditions.parse(text)
        except conditions.ConditionError as error:
            context["error"] = str(error)
            if error.position is not None:
                at = text[error.position : error.position + 1]
                context["mark"] = {
                    "before": text[: error.position],
                    "at": at if at.strip() else "\u2423",
                    "after": text[error.position + 1 :],
                }
        else:
            from kizuna.customers.models import Customer

            context["count"] = conditions.matching(tree).count()
            context["total"] = Customer.objects.count()
    return render(request, "playbooks/playbooks/_condition_check.html", context)


# --- One playbook: detail, simulation, runs, effect, delete ----------------------------------


@require_GET
@requires(Capability.VIEW)
def playbook_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """The playbook in words: trigger, condition, actions, state, and its latest runs."""
    from kizuna.playbooks import actions as action_registry

    playbook = get_object_or_404(Playbook, pk=pk)
    steps = []
    for action in playbook.actions.order_by("position"):
        try:
            label = str(action_registry.action_type(action.kind).label)
        except (KeyError, LookupError):
            label = action.kind
        steps.append({"action": action, "label": label})
    context = _subnav(
        playbook=playbook,
        trigger=trigger_rules.describe_trigger(playbook),
        steps=steps,
        runs=playbook.runs.select_related("customer")[:10],
        fired=effects.fired_last_30_days([playbook.pk]).get(playbook.pk, 0),
        outcome_label=effects.outcome_label(playbook.outcome or {}),
    )
    return render(request, "playbooks/playbooks/detail.html", context)


@require_GET
@requires(Capability.MANAGE_PLAYBOOKS)
def playbook_simulate(request: HttpRequest, pk: int) -> HttpResponse:
    """What the saved playbook would have done over the last 90 days (nothing is written)."""
    playbook = get_object_or_404(Playbook, pk=pk)
    steps = list(playbook.actions.order_by("position"))
    context = _subnav(
        playbook=playbook,
        trigger=trigger_rules.describe_trigger(playbook),
        simulation=_simulate(playbook, steps),
        simulation_days=SIMULATION_DAYS,
    )
    return render(request, "playbooks/playbooks/simulate.html", context)


@require_GET
@requires(Capability.VIEW)
def playbook_runs(request: HttpRequest, pk: int) -> HttpResponse:
    """The run log: customer, trigger, each action's state and error; failed first if asked."""
    playbook = get_object_or_404(Playbook, pk=pk)
    runs = playbook.runs.select_related("customer").prefetch_related(
        Prefetch("executions", queryset=ActionExecution.objects.order_by("position"))
    )
    status = request.GET.get("status", "")
    if status in RunStatus.values:
        runs = runs.filter(status=status)
    elif status == "problems":
        runs = runs.filter(
            Q(status=RunStatus.FAILED)
            | Q(executions__status__in=[ExecutionStatus.RETRYING, ExecutionStatus.FAILED])
        ).distinct()
    page = Paginator(runs.order_by("-triggered_on", "-id"), RUNS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    from kizuna.playbooks.actions import action_types

    labels = {action.key: str(action.label) for action in action_types()}
    for run in page.object_list:
        for execution in run.executions.all():
            execution.label = labels.get(execution.kind, execution.kind)  # type: ignore[attr-defined] # shown by the template
    context = _subnav(
        playbook=playbook,
        page=page,
        status=status,
        statuses=RunStatus.choices,
        trigger=trigger_rules.describe_trigger(playbook),
    )
    return render(request, "playbooks/playbooks/runs.html", context)


@require_POST
@requires(Capability.MANAGE_PLAYBOOKS)
def execution_retry(request: HttpRequest, pk: int) -> HttpResponse:
    """Try a failed (or retrying) action again now and say how it went."""
    from kizuna.playbooks import runner

    execution = get_object_or_404(ActionExecution.objects.select_related("run"), pk=pk)
    execution = runner.retry_execution(execution.pk)
    if execution.status == ExecutionStatus.DONE:
        messages.success(request, _("Tried again: the action is done."))
    elif execution.status == ExecutionStatus.SKIPPED:
        messages.success(
            request,
            _("Tried again: nothing to do ({reason}).").format(reason=execution.last_error or "—"),
        )
    else:
        messages.error(
            request, _("Tried again and failed: {error}").format(error=execution.last_error or "—")
        )
    return redirect("playbooks:playbook-runs", pk=execution.run.playbook_id)


@require_GET
@requires(Capability.VIEW)
def playbook_effect(request: HttpRequest, pk: int) -> HttpResponse:
    """Fired by month, tasks and their completion, outcome acted vs held out with intervals."""
    playbook = get_object_or_404(Playbook, pk=pk)
    effect = effects.playbook_effect(playbook=playbook)
    outcome_rows = [
        {
            "key": key,
            "label": label,
            "rate": rate,
            "percent": _percent_text(rate.value),
            "interval": "—"
            if rate.low is None or rate.high is None
            else f"{_percent_text(rate.low)} – {_percent_text(rate.high)}",
        }
        for key, label, rate in (
            ("acted", _("Acted on"), effect.acted_outcome),
            ("held-out", _("Held out"), effect.held_out_outcome),
        )
        if rate is not None
    ]
    difference = effect.difference
    context = _subnav(
        playbook=playbook,
        effect=effect,
        trigger=trigger_rules.describe_trigger(playbook),
        chart=_effect_chart(effect),
        outcome_rows=outcome_rows,
        difference_text="—"
        if difference is None
        else _("{value} points (interval {low} to {high})").format(
            value=_points(difference.value),
            low=_points(difference.low),
            high=_points(difference.high),
        ),
    )
    return render(request, "playbooks/playbooks/effect.html", context)


def _percent_text(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def _points(value: float) -> str:
    return f"{value * 100:+.1f}"


def _pct(value: float | None) -> float | None:
    return None if value is None else round(value * 100, 1)


def _effect_chart(effect: effects.Effect) -> dict[str, Any]:
    """The charts' data for the page's json_script (percentages; null for undefined)."""
    outcome = []
    for label, rate in (
        (_("Acted on"), effect.acted_outcome),
        (_("Held out"), effect.held_out_outcome),
    ):
        if rate is not None and rate.denominator:
            outcome.append(
                {
                    "label": label,
                    "value": _pct(rate.value),
                    "low": _pct(rate.low),
                    "high": _pct(rate.high),
                    "n": rate.denominator,
                }
            )
    return {
        "months": [item.month.strftime("%Y-%m") for item in effect.by_month],
        "acted": [item.acted for item in effect.by_month],
        "held_out": [item.held_out for item in effect.by_month],
        "labels": {
            "acted": _("Acted on"),
            "held_out": _("Held out"),
            "interval": _("Interval") + " (95%)",
            "rate": _("Outcome rate"),
        },
        "outcome": outcome,
    }


@require_http_methods(["GET", "POST"])
@requires(Capability.MANAGE_PLAYBOOKS)
def playbook_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """GET asks for confirmation; POST deletes the playbook and its runs (tasks stay)."""
    playbook = get_object_or_404(Playbook, pk=pk)
    if request.method == "GET":
        context = _subnav(playbook=playbook, runs=playbook.runs.count())
        return render(request, "playbooks/playbooks/delete.html", context)
    name = playbook.name
    services.delete_playbook(playbook=playbook, user=_user(request))
    messages.success(request, _("Playbook “{name}” deleted.").format(name=name))
    return redirect("playbooks:playbook-list")


# --- Library --------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@requires(Capability.MANAGE_PLAYBOOKS)
def library_page(request: HttpRequest) -> HttpResponse:
    """The ready playbooks; POST ``key`` (one or more) installs them, ``enable`` switches on."""
    if request.method == "POST":
        keys = [key for key in request.POST.getlist("key") if key]
        if not keys:
            messages.error(request, _("Choose a playbook to install."))
            return redirect("playbooks:library")
        try:
            installed = library.install_library(
                keys=keys, enable=request.POST.get("enable") == "1", user=_user(request)
            )
        except KeyError as error:
            messages.error(
                request, _("No ready playbook has the key “{key}”.").format(key=error.args[0])
            )
            return redirect("playbooks:library")
        except services.PlaybookError as error:
            messages.error(request, str(error))
            return redirect("playbooks:library")
        messages.success(
            request,
            _("Installed: {names}.").format(names=", ".join(p.name for p in installed)),
        )
        return redirect("playbooks:library")
    installed_by_key = library.installed_keys()
    entries = [
        {
            "entry": entry,
            "installed": installed_by_key.get(entry.key),
            "trigger": trigger_rules.describe_trigger(
                Playbook(trigger_kind=entry.trigger_kind, trigger_params=dict(entry.trigger_params))
            ),
            "outcome": effects.outcome_label(dict(entry.outcome)),
            "steps": len(entry.actions) + (1 if entry.webhook_text else 0),
        }
        for entry in library.LIBRARY
    ]
    return render(request, "playbooks/playbooks/library.html", _subnav(entries=entries))


# --- Settings → Webhooks --------------------------------------------------------------------


def _settings(**context: Any) -> dict[str, Any]:
    return {"area": "settings", "tab": "webhooks", **context}


@require_GET
@requires(Capability.MANAGE_PLAYBOOKS)
def webhook_list(request: HttpRequest) -> HttpResponse:
    """Endpoints with their last delivery (status or error)."""
    endpoints = list(WebhookEndpoint.objects.order_by("name"))
    last = {}
    for endpoint in endpoints:
        last[endpoint.pk] = endpoint.deliveries.order_by("-sent_at", "-id").first()
    rows = [{"endpoint": e, "last": last.get(e.pk)} for e in endpoints]
    return render(request, "playbooks/playbooks/webhooks.html", _settings(rows=rows))


@require_http_methods(["GET", "POST"])
@requires(Capability.MANAGE_PLAYBOOKS)
def webhook_form(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    endpoint = get_object_or_404(WebhookEndpoint, pk=pk) if pk is not None else None
    if request.method == "GET":
        form = EndpointForm(endpoint=endpoint)
    else:
        form = EndpointForm(request.POST, endpoint=endpoint)
        if form.is_valid():
            try:
                saved = services.save_endpoint(endpoint=endpoint, data=form.endpoint_input())
            except services.PlaybookError as error:
                for key, message in error.errors.items():
                    form.add_error(key if key in form.fields else None, message)
            else:
                messages.success(request, _("Endpoint “{name}” saved.").format(name=saved.name))
                return redirect("playbooks:webhooks")
    context = _settings(form=form, endpoint=endpoint)
    status = 400 if request.method == "POST" else 200
    return render(request, "playbooks/playbooks/webhook_form.html", context, status=status)


@require_http_methods(["GET", "POST"])
@requires(Capability.MANAGE_PLAYBOOKS)
def webhook_delete(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = get_object_or_404(WebhookEndpoint, pk=pk)
    if request.method == "GET":
        return render(
            request, "playbooks/playbooks/webhook_delete.html", _settings(endpoint=endpoint)
        )
    services.delete_endpoint(endpoint=endpoint)
    messages.success(request, _("Endpoint “{name}” deleted.").format(name=endpoint.name))
    return redirect("playbooks:webhooks")


@require_POST
@requires(Capability.MANAGE_PLAYBOOKS)
def webhook_test(request: HttpRequest, pk: int) -> HttpResponse:
    """Send a test message now and say what the endpoint answered."""
    endpoint = get_object_or_404(WebhookEndpoint, pk=pk)
    delivery = services.send_test(endpoint=endpoint, user=_user(request))
    ok = delivery.status_code is not None and 200 <= delivery.status_code < 300
    if _htmx(request):
        return render(
            request,
            "playbooks/playbooks/webhooks.html#test_result",
            {"endpoint": endpoint, "delivery": delivery, "ok": ok},
        )
    if ok:
        messages.success(
            request,
            _("Test sent to “{name}”: answered {code}.").format(
                name=endpoint.name, code=delivery.status_code
            ),
        )
    else:
        messages.error(
            request,
            _("Test to “{name}” failed: {error}").format(
                name=endpoint.name, error=delivery.error or delivery.status_code
            ),
        )
    return redirect("playbooks:webhooks")
