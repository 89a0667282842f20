"""Forms of the health pages: scorecard editor, signal rules, the CSM's writes and filters.

Forms parse and check what a person typed (a threshold list that is not "value:points, …", a
band limit out of 0–100); the rules that need the database or the whole scorecard (weights,
thresholds ascending, known metric) are the services' (``ScorecardError`` / ``SignalRuleError``),
whose messages the views put back on the field they name.
"""

import re
from datetime import date
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from kizuna.core.models import User
from kizuna.customers.models import TouchModel
from kizuna.health.models import (
    Band,
    Mapping,
    MeasureSource,
    ModelKind,
    Resolution,
    Scorecard,
    Sentiment,
    Severity,
)

MAX_RECOMPUTE_DAYS = 366


def _any(label: Any) -> list[tuple[str, Any]]:
    return [("", label)]


# --- Scorecards --------------------------------------------------------------------------------


class ScorecardForm(forms.ModelForm):  # type: ignore[type-arg] # django-stubs generic
    """A new scorecard (its empty draft v1 is made by the service) or who an existing one is for."""

    class Meta:
        model = Scorecard
        fields = ("name", "description", "touch_model", "segment", "priority", "is_active")
        widgets = {"description": forms.Textarea(attrs={"rows": 2})}
        error_messages = {"name": {"required": _("Give the scorecard a name.")}}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["touch_model"] = forms.ChoiceField(
            label=_("Touch model"),
            required=False,
            choices=_any(_("Any touch model")) + list(TouchModel.choices),
        )
        self.fields["priority"].help_text = _(
            "The first scorecard that fits a customer (lowest priority first) scores it."
        )

    def clean_name(self) -> str:
        name: str = self.cleaned_data["name"].strip()
        if not name:
            raise ValidationError(_("Give the scorecard a name."))
        return name


class BandLimitsForm(forms.Form):
    """The band limits of a draft: good from, watch from (below: at risk)."""

    good_from = forms.FloatField(
        label=_("Good from"), min_value=0, max_value=100, help_text=_("Score at or above: good.")
    )
    watch_from = forms.FloatField(
        label=_("Watch from"),
        min_value=0,
        max_value=100,
        help_text=_("Score at or above (and below good): watch. Below: at risk."),
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        good, watch = data.get("good_from"), data.get("watch_from")
        if good is not None and watch is not None and good <= watch:
            self.add_error("good_from", _("Good must start above watch."))
        return data


_PAIR = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*:\s*(-?\d+(?:\.\d+)?)\s*$")


def parse_thresholds(text: str) -> list[list[float]]:
    """``"0:0, 0.8:100"`` → ``[[0.0, 0.0], [0.8, 100.0]]``; a ValidationError names the bad pair."""
    pairs: list[list[float]] = []
    for chunk in (part for part in re.split(r"[,、\n;]", text) if part.strip()):
        match = _PAIR.match(chunk)
        if match is None:
            raise ValidationError(
                _("“{pair}” is not value:points (for example 0.8:100).").format(pair=chunk.strip())
            )
        pairs.append([float(match.group(1)), float(match.group(2))])
    return pairs


def format_thresholds(pairs: Any) -> str:
    """The inverse of ``parse_thresholds`` for showing a stored list."""
    if not pairs:
        return ""
    return ", ".join(f"{_number(value)}:{_number(points)}" for value, points in pairs)


def _number(value: Any) -> str:
    number = float(value)
    return str(int(number)) if number.is_integer() else repr(number)


class MeasureForm(forms.Form):
    """One measure of a draft (a row of the formset)."""

    key = forms.SlugField(label=_("Key"), max_length=64)
    label = forms.CharField(label=_("Label"), max_length=200)
    source = forms.ChoiceField(label=_("Source"), choices=MeasureSource.choices)
    metric_key = forms.ChoiceField(label=_("Metric"), required=False)
    weight = forms.FloatField(label=_("Weight"), min_value=0, initial=1)
    mapping = forms.ChoiceField(label=_("Mapping"), choices=Mapping.choices)
    thresholds = forms.CharField(
        label=_("Thresholds"),
        required=False,
        max_length=1000,
        help_text=_(
            "value:points pairs, e.g. 0:0, 0.4:60, 0.8:100 (points between are interpolated)."
        ),
    )
    higher_is_better = forms.BooleanField(label=_("Higher is better"), required=False)

    def __init__(self, *args: Any, metrics: list[tuple[str, str]] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.fields["metric_key"].choices = _any("—") + list(metrics or [])  # type: ignore[attr-defined] # ChoiceField

    def clean_thresholds(self) -> list[list[float]]:
        return parse_thresholds(self.cleaned_data.get("thresholds") or "")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("source") == MeasureSource.METRIC and not data.get("metric_key"):
            self.add_error("metric_key", _("Choose the metric this measure reads."))
        thresholds = data.get("thresholds")
        if (
            data.get("mapping") == Mapping.THRESHOLDS
            and thresholds is not None
            and len(thresholds) < 2
        ):
            self.add_error("thresholds", _("Give at least two value:points pairs."))
        if data.get("weight") is not None and data["weight"] <= 0:
            self.add_error("weight", _("A weight must be above 0."))
        return data


class BaseMeasureFormSet(forms.BaseFormSet):  # type: ignore[type-arg] # django-stubs generic
    def __init__(self, *args: Any, metrics: list[tuple[str, str]] | None = None, **kwargs: Any):
        self.metrics = metrics or []
        super().__init__(*args, **kwargs)

    def get_form_kwargs(self, index: int | None) -> dict[str, Any]:
        return {**super().get_form_kwargs(index), "metrics": self.metrics}

    def clean(self) -> None:
        if any(self.errors):
            return
        deleted = self.deleted_forms
        keys = [
            form.cleaned_data["key"]
            for form in self.forms
            if form.cleaned_data and form not in deleted
        ]
        duplicates = sorted({key for key in keys if keys.count(key) > 1})
        if duplicates:
            raise ValidationError(
                _("Each measure needs its own key: {keys}.").format(keys=", ".join(duplicates))
            )
        if not keys:
            raise ValidationError(_("A scorecard needs at least one measure."))


MeasureFormSet = forms.formset_factory(
    MeasureForm, formset=BaseMeasureFormSet, extra=1, can_delete=True, max_num=40
)


class NewVersionForm(forms.Form):
    change_note = forms.CharField(
        label=_("What changes in this version"),
        max_length=500,
        error_messages={"required": _("Say what changes in this version.")},
        widget=forms.Textarea(attrs={"rows": 2}),
    )

    def clean_change_note(self) -> str:
        note: str = self.cleaned_data["change_note"].strip()
        if not note:
            raise ValidationError(_("Say what changes in this version."))
        return note


class RecomputeForm(forms.Form):
    """Re-score a date range of history under the scorecard's published version."""

    start = forms.DateField(label=_("From"), widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label=_("To"), widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = data.get("start"), data.get("end")
        if start and end:
            if end < start:
                self.add_error("end", _("The end comes before the start."))
            elif (end - start).days + 1 > MAX_RECOMPUTE_DAYS:
                self.add_error(
                    "end",
                    _(
                        "At most a year at a time here; for more run "
                        "`kizuna health backfill --start … --end … --scorecard …`."
                    ),
                )
        return data


# --- Risk signal rules -------------------------------------------------------------------------

PARAM_LABELS: dict[str, Any] = {
    "metric": _("Metric"),
    "drop_pct": _("Drop of at least (%)"),
    "window_days": _("Window (days)"),
    "days": _("Days without a login"),
    "within_days": _("Within (days)"),
    "grace_days": _("Grace (days)"),
    "max_score": _("Score at most"),
    "bands": _("Bands"),
    "below": _("Below (fraction, 0.3 = 30%)"),
    "min_days_since_start": _("Customers older than (days)"),
    "min_previous": _("Only when the previous window had at least"),
    "baseline_weeks": _("Baseline: weeks of history"),
    "min_baseline_points": _("Baseline: weeks needed"),
    "fluctuation_k": _("Beyond the usual change by (× its spread)"),
    "min_spread_pct": _("Smallest spread assumed (%)"),
    "seasonal": _("Compare with the same weeks a year earlier"),
    "keep_ratio": _("Stays open while the fall is at least (× the drop, 0.5 = half)"),
    "roles": _("Roles"),
    "ignore_first_days": _("Ignore a customer's first (days)"),
}

ROLE_CHOICES = [("admin", _("Administrator")), ("champion", _("Champion"))]


def param_label(key: str) -> Any:
    return PARAM_LABELS.get(key, key.replace("_", " ").capitalize())


class SignalRuleForm(forms.Form):
    """One kind's rule: enabled, severity, and one field per parameter of its defaults."""

    enabled = forms.BooleanField(label=_("Enabled"), required=False)
    severity = forms.ChoiceField(label=_("Severity"), choices=Severity.choices)

    def __init__(
        self,
        *args: Any,
        kind: str,
        defaults: dict[str, Any],
        metrics: list[tuple[str, str]] | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("prefix", kind)
        super().__init__(*args, **kwargs)
        self.kind = kind
        self.param_names: list[str] = []
        for name, default in defaults.items():
            field = self._field_for(name, default, metrics or [])
            if field is None:
                continue
            self.fields[name] = field
            self.param_names.append(name)

    @staticmethod
    def _field_for(name: str, default: Any, metrics: list[tuple[str, str]]) -> forms.Field | None:
        label = param_label(name)
        if name == "metric":
            choices = list(metrics)
            if default and default not in dict(choices):
                choices.append((default, default))
            return forms.ChoiceField(label=label, choices=choices)
        if name == "bands":
            return forms.MultipleChoiceField(
                label=label,
                choices=Band.choices,
                widget=forms.CheckboxSelectMultiple,
                required=False,
            )
        if name == "roles":
            return forms.MultipleChoiceField(
                label=label,
                choices=ROLE_CHOICES,
                widget=forms.CheckboxSelectMultiple,
                required=False,
            )
        if isinstance(default, bool):
            return forms.BooleanField(label=label, required=False)
        if isinstance(default, int):
            return forms.IntegerField(label=label, min_value=0)
        if isinstance(default, float):
            return forms.FloatField(label=label)
        if isinstance(default, str):
            return forms.CharField(label=label, max_length=200, required=False)
        return None  # a nested structure is not editable here (kept as it is)

    def params(self) -> dict[str, Any]:
        return {name: self.cleaned_data.get(name) for name in self.param_names}

    def param_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in self.param_names]


# --- The CSM's writes --------------------------------------------------------------------------


class CloseSignalForm(forms.Form):
    resolution = forms.ChoiceField(
        label=_("Resolution"),
        choices=[
            (Resolution.RESOLVED.value, Resolution.RESOLVED.label),
            (Resolution.DISMISSED.value, Resolution.DISMISSED.label),
        ],
    )
    note = forms.CharField(label=_("Note"), max_length=500, required=False)


class SentimentForm(forms.Form):
    sentiment = forms.TypedChoiceField(
        label=_("Sentiment"),
        coerce=int,
        choices=[("", "—"), *Sentiment.choices],
        error_messages={"required": _("Choose how the relationship feels (1–5).")},
    )
    note = forms.CharField(label=_("Note"), max_length=500, required=False)


# --- Filters and model training ----------------------------------------------------------------


class OverviewFilterForm(forms.Form):
    """The Health page's GET filters; unknown values are dropped rather than refused."""

    segment = forms.ChoiceField(label=_("Segment"), required=False)
    touch_model = forms.ChoiceField(label=_("Touch model"), required=False)
    owner = forms.TypedChoiceField(label=_("Owner"), required=False, coerce=int, empty_value=None)

    def __init__(self, data: Any, *, segments: list[str], owners: list[User]) -> None:
        super().__init__(data)
        every = _any(_("All"))
        self.fields["segment"].choices = every + [(s, s) for s in segments]  # type: ignore[attr-defined] # ChoiceField
        self.fields["touch_model"].choices = every + list(TouchModel.choices)  # type: ignore[attr-defined] # ChoiceField
        self.fields["owner"].choices = every + [(u.pk, u.display_name) for u in owners]  # type: ignore[attr-defined] # ChoiceField

    def filters(self) -> dict[str, Any]:
        self.is_valid()
        data = getattr(self, "cleaned_data", {})
        return {
            "segment": data.get("segment") or "",
            "touch_model": data.get("touch_model") or "",
            "owner_id": data.get("owner"),
        }


class TrainForm(forms.Form):
    kind = forms.ChoiceField(label=_("Model"), choices=ModelKind.choices)
    horizon_days = forms.IntegerField(
        label=_("Horizon (days)"), min_value=7, max_value=730, initial=90
    )
    as_of = forms.DateField(
        label=_("As of"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )

    def clean_as_of(self) -> date | None:
        value: date | None = self.cleaned_data.get("as_of")
        if value is not None and not 2000 <= value.year <= 2999:
            raise ValidationError(_("Give a date between the years 2000 and 2999."))
        return value
