"""Forms of the playbook editor and of Settings → Webhooks: they parse; ``services`` checks
the rules (trigger, condition, actions) and writes.

The editor is one HTML form in three parts: the playbook's own fields (``PlaybookForm``), the
trigger's parameters (one small form per trigger kind, prefix ``trigger``), and the ordered
actions, rendered from the action registry's field descriptions (``ActionSlot``; inputs named
``a<index>-<field>``), so an action a later app registers gets its form without a change here.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django import forms
from django.http import QueryDict
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from kizuna.analytics.metric_defaults import DEFAULT_METRICS
from kizuna.analytics.models import MetricDefinition
from kizuna.core.models import TimelineKind
from kizuna.customers.models import Customer, TouchModel
from kizuna.health.models import SignalKind
from kizuna.lifecycle import conditions
from kizuna.lifecycle.models import Segment
from kizuna.playbooks import actions as action_registry
from kizuna.playbooks.models import Playbook, TriggerKind, WebhookEndpoint
from kizuna.playbooks.services import ActionInput, EndpointInput, PlaybookInput

MAX_SLOTS = 20


def metric_choices() -> list[tuple[str, str]]:
    """Metric keys for selects: the definitions in the database, else the defaults."""
    rows = list(MetricDefinition.objects.order_by("position", "key").values_list("key", "name"))
    if not rows:
        rows = [(metric.key, metric.key) for metric in DEFAULT_METRICS]
    return [(key, f"{name} ({key})" if name != key else key) for key, name in rows]


def segment_choices() -> list[tuple[str, str]]:
    """Segment keys defined in Settings → Segments, plus values customers were imported with."""
    defined = dict(Segment.objects.order_by("position", "id").values_list("key", "name"))
    imported = (
        Customer.objects.exclude(segment="").values_list("segment", flat=True).distinct()[:100]
    )
    for key in imported:
        defined.setdefault(key, key)
    return list(defined.items())


OUTCOME_CHOICES = [
    ("", gettext_lazy("No outcome")),
    ("recovered", gettext_lazy("Recovered: the metric is back to its level before the trigger")),
    ("improved", gettext_lazy("Improved: the metric is higher than on the trigger day")),
    ("retained", gettext_lazy("Retained: the customer is still a customer")),
]


class PlaybookForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("Name"), max_length=200)
    description = forms.CharField(
        label=gettext_lazy("Description"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
    )
    trigger_kind = forms.ChoiceField(label=gettext_lazy("Trigger"), choices=TriggerKind.choices)
    condition_text = forms.CharField(
        label=gettext_lazy("Condition"),
        required=False,
        help_text=gettext_lazy(
            "Only customers matching this rule, as of the trigger's day. Empty: every customer. "
            'For example: stage = "adoption" and arr >= 1000000.'
        ),
        widget=forms.Textarea(
            attrs={"rows": 2, "spellcheck": "false", "autocomplete": "off", "class": "rule"}
        ),
    )
    segments = forms.MultipleChoiceField(
        label=gettext_lazy("Segments"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=gettext_lazy("None ticked: every segment."),
    )
    touch_models = forms.MultipleChoiceField(
        label=gettext_lazy("Touch models"),
        required=False,
        choices=TouchModel.choices,
        widget=forms.CheckboxSelectMultiple,
        help_text=gettext_lazy("None ticked: every touch model."),
    )
    holdout_percent = forms.IntegerField(
        label=gettext_lazy("Holdout (%)"),
        min_value=0,
        max_value=50,
        initial=0,
        help_text=gettext_lazy(
            "This share of the customers it would act on is recorded but left alone, to "
            "measure the effect (10 is usual). Needs an outcome."
        ),
    )
    outcome_kind = forms.ChoiceField(
        label=gettext_lazy("Outcome"), choices=OUTCOME_CHOICES, required=False
    )
    outcome_metric = forms.ChoiceField(label=gettext_lazy("Outcome metric"), required=False)
    outcome_days = forms.IntegerField(
        label=gettext_lazy("Measured after (days)"), min_value=1, max_value=365, initial=60
    )

    def __init__(self, *args: Any, playbook: Playbook | None = None, **kwargs: Any) -> None:
        if playbook is not None and "initial" not in kwargs:
            kwargs["initial"] = {
                "name": playbook.name,
                "description": playbook.description,
                "trigger_kind": playbook.trigger_kind,
                "condition_text": playbook.condition_text,
                "segments": playbook.segments,
                "touch_models": playbook.touch_models,
                "holdout_percent": round(playbook.holdout_share * 100),
                "outcome_kind": playbook.outcome.get("kind", ""),
                "outcome_metric": playbook.outcome.get("metric", ""),
                "outcome_days": playbook.outcome.get("days", 60),
            }
        super().__init__(*args, **kwargs)
        field_segments = self.fields["segments"]
        assert isinstance(field_segments, forms.MultipleChoiceField)
        field_segments.choices = segment_choices()
        metric = self.fields["outcome_metric"]
        assert isinstance(metric, forms.ChoiceField)
        metric.choices = [("", "—"), *metric_choices()]
        self.fields["outcome_days"].required = False

    def clean_condition_text(self) -> str:
        text = str(self.cleaned_data.get("condition_text") or "").strip()
        if text:
            try:
                conditions.parse(text)
            except conditions.ConditionError as error:
                raise forms.ValidationError(str(error)) from None
        return text

    def outcome(self) -> dict[str, Any]:
        data = self.cleaned_data
        kind = data.get("outcome_kind") or ""
        if not kind:
            return {}
        outcome: dict[str, Any] = {"kind": kind, "days": data.get("outcome_days") or 60}
        if kind != "retained":
            outcome["metric"] = data.get("outcome_metric") or ""
        return outcome

    def playbook_input(
        self, trigger_params: Mapping[str, Any], *, library_key: str = ""
    ) -> PlaybookInput:
        data = self.cleaned_data
        return PlaybookInput(
            name=data["name"],
            description=data.get("description") or "",
            trigger_kind=data["trigger_kind"],
            trigger_params=dict(trigger_params),
            condition_text=data.get("condition_text") or "",
            segments=list(data.get("segments") or []),
            touch_models=list(data.get("touch_models") or []),
            holdout_share=(data.get("holdout_percent") or 0) / 100,
            outcome=self.outcome(),
            library_key=library_key,
        )


# --- Trigger parameters ----------------------------------------------------------------------


class TriggerParamsForm(forms.Form):
    """The parameters of one trigger kind; ``to_params`` gives ``Playbook.trigger_params``."""

    prefix = "trigger"

    cooldown_days = forms.IntegerField(
        label=gettext_lazy("Not again for the same customer within (days)"),
        required=False,
        min_value=0,
        max_value=365,
        help_text=gettext_lazy(
            "Empty or 0: every occurrence counts. E.g. 30: a signal that flickers open and "
            "closed does not make a second task within a month."
        ),
    )

    @classmethod
    def initial_from(cls, params: Mapping[str, Any]) -> dict[str, Any]:
        return dict(params)

    def to_params(self) -> dict[str, Any]:
        return {key: value for key, value in self.cleaned_data.items() if value not in ("", None)}

    def params(self) -> dict[str, Any]:
        """``to_params`` with the cooldown every kind shares (left out when 0 or empty)."""
        params = {key: value for key, value in self.to_params().items() if key != "cooldown_days"}
        if self.cleaned_data.get("cooldown_days"):
            params["cooldown_days"] = self.cleaned_data["cooldown_days"]
        return params


def _timeline_kind_choices() -> list[tuple[str, str]]:
    return [(str(value), f"{label} ({value})") for value, label in TimelineKind.choices]


class TimelineTriggerForm(TriggerParamsForm):
    kind = forms.ChoiceField(label=gettext_lazy("When this happens"), choices=())
    signal_kind = forms.ChoiceField(
        label=gettext_lazy("Risk signal"),
        required=False,
        help_text=gettext_lazy("For risk signals raised or closed: only this kind (empty: any)."),
    )
    payload = forms.CharField(
        label=gettext_lazy("Payload must match"),
        required=False,
        max_length=300,
        help_text=gettext_lazy("Optional key=value pairs, comma separated, e.g. to=at_risk."),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        kind = self.fields["kind"]
        assert isinstance(kind, forms.ChoiceField)
        kind.choices = _timeline_kind_choices()
        signal = self.fields["signal_kind"]
        assert isinstance(signal, forms.ChoiceField)
        signal.choices = [("", gettext_lazy("Any")), *SignalKind.choices]

    @classmethod
    def initial_from(cls, params: Mapping[str, Any]) -> dict[str, Any]:
        payload = dict(params.get("payload") or {})
        kinds = list(params.get("kinds") or [""])
        signal = str(payload.pop("kind", "")) if kinds[0] in ("risk.raised", "risk.closed") else ""
        return {
            "kind": kinds[0],
            "signal_kind": signal,
            "payload": ", ".join(f"{key}={value}" for key, value in payload.items()),
        }

    def clean_payload(self) -> dict[str, str]:
        text = str(self.cleaned_data.get("payload") or "")
        pairs: dict[str, str] = {}
        for part in (piece.strip() for piece in text.split(",")):
            if not part:
                continue
            key, sep, value = part.partition("=")
            if not sep or not key.strip():
                raise forms.ValidationError(_("Write pairs as key=value, separated by commas."))
            pairs[key.strip()] = value.strip()
        return pairs

    def to_params(self) -> dict[str, Any]:
        data = self.cleaned_data
        payload = dict(data.get("payload") or {})
        if data.get("signal_kind"):
            payload["kind"] = data["signal_kind"]
        params: dict[str, Any] = {"kinds": [data["kind"]]}
        if payload:
            params["payload"] = payload
        return params


class CustomerDateTriggerForm(TriggerParamsForm):
    date = forms.ChoiceField(
        label=gettext_lazy("Date"),
        choices=[
            ("first_start_date", gettext_lazy("Contract start (first start date)")),
            ("renewal_date", gettext_lazy("Renewal date")),
        ],
    )
    offset_days = forms.CharField(
        label=gettext_lazy("Days after (negative: before)"),
        max_length=100,
        help_text=gettext_lazy(
            "7: a week after; -90: 90 days before; several separated by commas: 7, 30, 60."
        ),
    )

    @classmethod
    def initial_from(cls, params: Mapping[str, Any]) -> dict[str, Any]:
        offsets = params.get("offset_days", "")
        if isinstance(offsets, list | tuple):
            offsets = ", ".join(str(item) for item in offsets)
        return {"date": params.get("date", ""), "offset_days": offsets}


WEEKDAYS = [
    (0, gettext_lazy("Monday")),
    (1, gettext_lazy("Tuesday")),
    (2, gettext_lazy("Wednesday")),
    (3, gettext_lazy("Thursday")),
    (4, gettext_lazy("Friday")),
    (5, gettext_lazy("Saturday")),
    (6, gettext_lazy("Sunday")),
]


class ScheduleTriggerForm(TriggerParamsForm):
    every = forms.ChoiceField(
        label=gettext_lazy("Every"),
        choices=[
            ("week", gettext_lazy("week")),
            ("month", gettext_lazy("month")),
            ("quarter", gettext_lazy("quarter")),
        ],
    )
    weekday = forms.TypedChoiceField(
        label=gettext_lazy("Weekday"), choices=WEEKDAYS, coerce=int, initial=0
    )
    nth = forms.TypedChoiceField(
        label=gettext_lazy("Which one in the month or quarter"),
        choices=[
            ("", "—"),
            (1, gettext_lazy("first")),
            (2, gettext_lazy("second")),
            (3, gettext_lazy("third")),
            (4, gettext_lazy("fourth")),
        ],
        coerce=int,
        empty_value=None,
        required=False,
        help_text=gettext_lazy("Monthly and quarterly schedules: e.g. the first Monday."),
    )


class MetricTriggerForm(TriggerParamsForm):
    metric = forms.ChoiceField(label=gettext_lazy("Metric"), choices=())
    op = forms.ChoiceField(
        label=gettext_lazy("Crosses"),
        choices=[(">=", "≥"), (">", ">"), ("<=", "≤"), ("<", "<")],
    )
    value = forms.FloatField(
        label=gettext_lazy("Threshold"),
        help_text=gettext_lazy("Fires on the day the value crosses, not while it stays over."),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        metric = self.fields["metric"]
        assert isinstance(metric, forms.ChoiceField)
        metric.choices = metric_choices()


TRIGGER_FORMS: dict[str, type[TriggerParamsForm]] = {
    TriggerKind.TIMELINE: TimelineTriggerForm,
    TriggerKind.CUSTOMER_DATE: CustomerDateTriggerForm,
    TriggerKind.SCHEDULE: ScheduleTriggerForm,
    TriggerKind.METRIC: MetricTriggerForm,
}


def trigger_form(
    kind: str, *, data: QueryDict | None = None, params: Mapping[str, Any] | None = None
) -> TriggerParamsForm:
    """The parameter form of trigger ``kind`` bound to ``data``, or showing ``params``."""
    form_class = TRIGGER_FORMS.get(kind, TimelineTriggerForm)
    if data is not None:
        return form_class(data)
    initial = form_class.initial_from(params or {})
    initial["cooldown_days"] = (params or {}).get("cooldown_days", "")
    return form_class(initial=initial)


# --- Actions --------------------------------------------------------------------------------


@dataclass
class ActionSlot:
    """One action of the editor: its kind, delay, the raw values of its fields and errors."""

    index: int
    kind: str
    delay_days: str = "0"
    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def action_type(self) -> Any:
        try:
            return action_registry.action_type(self.kind)
        except (KeyError, LookupError):
            return None

    def inputs(self) -> list[dict[str, Any]]:
        """What the template renders per field of the action type."""
        action_type = self.action_type
        if action_type is None:
            return []
        rendered = []
        for spec in action_type.fields:
            value = self.values.get(spec.name, "")
            if spec.kind == "checklist" and isinstance(value, list | tuple):
                value = "\n".join(
                    str(item.get("text", item)) if isinstance(item, Mapping) else str(item)
                    for item in value
                )
            elif spec.kind == "tasks" and isinstance(value, list | tuple):
                value = "\n".join(
                    f"{item.get('title', '')} | {item.get('due_in_days')}"
                    if item.get("due_in_days") is not None
                    else str(item.get("title", ""))
                    for item in value
                    if isinstance(item, Mapping)
                )
            elif spec.kind == "bool":
                value = value is True or str(value).lower() in ("on", "1", "true", "yes")
            rendered.append(
                {
                    "spec": spec,
                    "name": f"a{self.index}-{spec.name}",
                    "id": f"id_a{self.index}-{spec.name}",
                    "value": "" if value is None else value,
                    "choices": _field_choices(spec),
                    "error": self.errors.get(spec.name, ""),
                }
            )
        return rendered


def _field_choices(spec: Any) -> list[tuple[str, str]]:
    if spec.kind == "choice":
        choices = [(str(value), str(label)) for value, label in (spec.choices or ())]
        return choices if spec.required else [("", "—"), *choices]
    if spec.kind == "user":
        from kizuna.core.models import User

        users = User.objects.filter(is_active=True).order_by("username")
        return [(str(user.pk), user.display_name or user.username) for user in users]
    if spec.kind == "program":
        from kizuna.onboarding.models import Program

        return [(str(p.pk), p.name) for p in Program.objects.order_by("name")]
    if spec.kind == "endpoint":
        return [(str(e.pk), e.name) for e in WebhookEndpoint.objects.order_by("name")]
    return []


def action_kind_choices() -> list[tuple[str, str]]:
    return [(t.key, str(t.label)) for t in action_registry.action_types()]


def slots_from_playbook(playbook: Playbook) -> list[ActionSlot]:
    return [
        ActionSlot(
            index=index,
            kind=action.kind,
            delay_days=str(action.delay_days),
            values=dict(action.params),
        )
        for index, action in enumerate(playbook.actions.order_by("position", "id"))
    ]


def slots_from_post(post: QueryDict) -> list[ActionSlot]:
    """The action slots of a posted editor, in the order given by ``a<i>-kind`` indexes."""
    indexes = sorted(
        int(key[1:-5])
        for key in post
        if key.startswith("a") and key.endswith("-kind") and key[1:-5].isdigit()
    )[:MAX_SLOTS]
    slots = []
    for position, index in enumerate(indexes):
        kind = post.get(f"a{index}-kind", "")
        slot = ActionSlot(
            index=position, kind=kind, delay_days=post.get(f"a{index}-delay_days", "0").strip()
        )
        action_type = slot.action_type
        if action_type is not None:
            for spec in action_type.fields:
                slot.values[spec.name] = post.get(f"a{index}-{spec.name}", "")
        slots.append(slot)
    return slots


def _parse_tasks(text: str) -> tuple[list[dict[str, Any]], str]:
    """``title | days`` lines (days optional) as the ``tasks`` parameter."""
    tasks: list[dict[str, Any]] = []
    for line in (part.strip() for part in text.splitlines()):
        if not line:
            continue
        title, _sep, days = line.rpartition("|") if "|" in line else (line, "", "")
        days = days.strip()
        if days and not days.lstrip("-").isdigit():
            return [], _("Write one task a line as: title | days until due.")
        tasks.append({"title": title.strip(), "due_in_days": int(days) if days else None})
    return tasks, ""


def _parse_value(spec: Any, raw: Any) -> tuple[Any, str]:
    """A posted field's value typed by its kind, or an error; ``None`` when left empty."""
    text = str(raw if raw is not None else "").strip()
    if spec.kind == "bool":
        return text.lower() in ("on", "1", "true", "yes"), ""
    if not text:
        return None, ""
    if spec.kind in ("int", "user", "program", "endpoint"):
        try:
            return int(text), ""
        except ValueError:
            return None, _("Enter a whole number.")
    if spec.kind == "checklist":
        return [line.strip() for line in text.splitlines() if line.strip()], ""
    if spec.kind == "tasks":
        return _parse_tasks(text)
    return text, ""


def slot_inputs(slots: Sequence[ActionSlot]) -> list[ActionInput]:
    """The slots as service input; typing errors (a word where a number goes) are put on the
    slots and the slot is passed on with what could be read, so the service names the rest."""
    inputs = []
    for slot in slots:
        params: dict[str, Any] = {}
        action_type = slot.action_type
        if action_type is not None:
            for spec in action_type.fields:
                value, error = _parse_value(spec, slot.values.get(spec.name))
                if error:
                    slot.errors[spec.name] = error
                elif value is not None:
                    params[spec.name] = value
        try:
            delay = int(slot.delay_days or 0)
        except ValueError:
            slot.errors["delay_days"] = _("Enter a whole number.")
            delay = 0
        inputs.append(ActionInput(kind=slot.kind, params=params, delay_days=delay))
    return inputs


def place_errors(slots: Sequence[ActionSlot], errors: Mapping[str, str]) -> dict[str, str]:
    """Put ``actions[i].field`` errors on their slots; return the errors not about an action."""
    rest: dict[str, str] = {}
    for key, message in errors.items():
        if key.startswith("actions[") and "]" in key:
            index_text, _sep, tail = key[len("actions[") :].partition("]")
            if index_text.isdigit() and int(index_text) < len(slots):
                slot = slots[int(index_text)]
                name = tail.lstrip(".") or "kind"
                slot.errors.setdefault(name, message)
                continue
        rest[key] = message
    return rest


# --- Webhook endpoints ---------------------------------------------------------------------


class EndpointForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("Name"), max_length=200)
    url = forms.URLField(
        label=gettext_lazy("URL"),
        max_length=500,
        assume_scheme="https",
        help_text=gettext_lazy("The incoming webhook address your chat tool or system gives."),
    )
    style = forms.ChoiceField(label=gettext_lazy("Style"), choices=WebhookEndpoint.Style.choices)
    secret = forms.CharField(
        label=gettext_lazy("Signing secret"),
        required=False,
        max_length=200,
        help_text=gettext_lazy(
            "Signs each request (X-Kizuna-Signature: sha256=HMAC of the body). Empty: keep the "
            "current one; a new signed-JSON endpoint gets a random one."
        ),
    )
    is_active = forms.BooleanField(label=gettext_lazy("Active"), required=False, initial=True)

    def __init__(self, *args: Any, endpoint: WebhookEndpoint | None = None, **kwargs: Any) -> None:
        if endpoint is not None and "initial" not in kwargs:
            kwargs["initial"] = {
                "name": endpoint.name,
                "url": endpoint.url,
                "style": endpoint.style,
                "is_active": endpoint.is_active,
            }
        super().__init__(*args, **kwargs)

    def endpoint_input(self) -> EndpointInput:
        data = self.cleaned_data
        return EndpointInput(
            name=data["name"],
            url=data["url"],
            style=data["style"],
            secret=data.get("secret") or "",
            is_active=bool(data.get("is_active")),
        )
