"""Forms of Settings → Touch models and Stages, and of the Customer 360 lifecycle panel.

They parse and validate; the services in ``touch`` and ``stages`` write.
"""

from datetime import date
from decimal import Decimal
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from kizuna.customers.models import LifecycleStage, TouchModel
from kizuna.lifecycle import stages, touch
from kizuna.lifecycle.models import LifecycleSettings
from kizuna.lifecycle.touch import Cell, PolicyGrid

CRITERION_HELP = _(
    "A condition in the segment rule language, e.g. onboarding_completed or "
    "days_since_start >= 120. Empty: customers move only by hand."
)


def _weight_field(label: Any) -> forms.DecimalField:
    return forms.DecimalField(
        label=label,
        min_value=Decimal(0),
        max_value=Decimal("999.99"),
        max_digits=5,
        decimal_places=2,
        help_text=_("Load points one customer adds to its CSM's capacity."),
    )


SETTINGS_FIELDS = (
    "default_touch_model",
    "high_touch_weight",
    "low_touch_weight",
    "tech_touch_weight",
)


def cell_field_name(cell: Cell) -> str:
    segment, stage = cell
    return f"cell:{segment}:{stage}"


class TouchPolicyForm(forms.Form):
    """The policy grid (a select per segment × stage), the default and the load weights."""

    default_touch_model = forms.ChoiceField(
        label=_("Default touch model"),
        choices=TouchModel.choices,
        help_text=_("For customers no policy row applies to."),
    )
    high_touch_weight = _weight_field(_("Load of a high-touch customer"))
    low_touch_weight = _weight_field(_("Load of a low-touch customer"))
    tech_touch_weight = _weight_field(_("Load of a tech-touch customer"))

    def __init__(self, *args: Any, grid: PolicyGrid, **kwargs: Any) -> None:
        kwargs.setdefault(
            "initial",
            {
                "default_touch_model": grid.default_touch_model,
                "high_touch_weight": grid.weights[TouchModel.HIGH],
                "low_touch_weight": grid.weights[TouchModel.LOW],
                "tech_touch_weight": grid.weights[TouchModel.TECH],
            },
        )
        super().__init__(*args, **kwargs)
        self.grid = grid
        self.cells: dict[str, Cell] = {}
        stage_labels = dict(LifecycleStage.choices)
        for key, name, _active in grid.segments:
            fallback = _("— any segment's") if key else _("— default")
            for stage in grid.stages:
                field_name = cell_field_name((key, stage))
                self.cells[field_name] = (key, stage)
                label = f"{name} · {stage_labels[stage]}"
                self.fields[field_name] = forms.ChoiceField(
                    label=label,
                    choices=[("", fallback), *TouchModel.choices],
                    required=False,
                    initial=grid.cells.get((key, stage), ""),
                    widget=forms.Select(attrs={"aria-label": label}),
                )

    def grid_rows(self) -> list[dict[str, Any]]:
        """One row per segment (then "any segment") with its bound cells, for the template."""
        return [
            {
                "key": key,
                "name": name,
                "active": active,
                "cells": [self[cell_field_name((key, stage))] for stage in self.grid.stages],
            }
            for key, name, active in self.grid.segments
        ]

    def settings_bound_fields(self) -> list[forms.BoundField]:
        """The default touch model and the weights (the fields below the grid)."""
        return [self[name] for name in SETTINGS_FIELDS]

    def stage_labels(self) -> list[str]:
        labels = dict(LifecycleStage.choices)
        return [str(labels[stage]) for stage in self.grid.stages]

    def policy_cells(self) -> dict[Cell, str]:
        return {cell: self.cleaned_data.get(name) or "" for name, cell in self.cells.items()}

    def settings_fields(self) -> dict[str, Any]:
        return {name: self.cleaned_data[name] for name in SETTINGS_FIELDS}

    def add_service_errors(self, error: ValidationError) -> None:
        """Put a service's errors (keyed by field or by ``segment.stage``) on the fields."""
        by_cell = {touch.cell_name(cell): name for name, cell in self.cells.items()}
        for key, messages in error.message_dict.items():
            field = key if key in self.fields else by_cell.get(key)
            self.add_error(field, messages)


class StageSettingsForm(forms.ModelForm):  # type: ignore[type-arg] # django-stubs generic
    """The entry criteria (checked by the condition parser), reactivation days, automation."""

    class Meta:
        model = LifecycleSettings
        fields = ("adoption_entry", "expansion_entry", "reactivated_days", "automatic_stages")
        widgets = {
            "adoption_entry": forms.Textarea(attrs={"rows": 2, "spellcheck": "false"}),
            "expansion_entry": forms.Textarea(attrs={"rows": 2, "spellcheck": "false"}),
        }
        help_texts = {
            "adoption_entry": CRITERION_HELP,
            "expansion_entry": CRITERION_HELP,
            "reactivated_days": _("A reactivated customer moves to adoption after this many days."),
            "automatic_stages": _(
                "Off: only churn and reactivation follow the contracts; other moves are "
                "made by hand."
            ),
        }

    def _criterion(self, field: str) -> str:
        try:
            return stages.check_criterion(field, self.cleaned_data.get(field) or "")
        except ValidationError as error:
            raise ValidationError(error.message_dict[field]) from None

    def clean_adoption_entry(self) -> str:
        return self._criterion("adoption_entry")

    def clean_expansion_entry(self) -> str:
        return self._criterion("expansion_entry")


class StageMoveForm(forms.Form):
    stage = forms.ChoiceField(label=_("Move to"), choices=LifecycleStage.choices)
    reason = forms.CharField(
        label=_("Reason"),
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 2}),
        error_messages={"required": _("Give a reason for moving the stage by hand.")},
    )

    def __init__(self, *args: Any, current: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if current:
            stage_field = self.fields["stage"]
            assert isinstance(stage_field, forms.ChoiceField)
            stage_field.choices = [
                (value, label) for value, label in LifecycleStage.choices if value != current
            ]


class TouchOverrideForm(forms.Form):
    touch_model = forms.ChoiceField(label=_("Touch model"), choices=TouchModel.choices)
    reason = forms.CharField(
        label=_("Reason"),
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 2}),
        error_messages={"required": _("Give a reason for the override.")},
    )
    expires_on = forms.DateField(
        label=_("Expires on"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text=_("Optional. The policy applies again the day after."),
    )

    def clean_expires_on(self) -> date | None:
        day: date | None = self.cleaned_data.get("expires_on")
        if day is not None and day < timezone.localdate():
            raise ValidationError(_("The expiry date must not be in the past."))
        return day
