"""The dashboard's GET form: the month and the population filters."""

from datetime import date
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from kizuna.core.models import User
from kizuna.customers.models import TouchModel
from kizuna.reports.kpis import Population
from kizuna.reports.kpis.population import KpiInputError, parse_cohort


class DashboardFilterForm(forms.Form):
    """Unknown filter values are dropped; a bad month falls back to the default with an error."""

    month = forms.CharField(label=_("Month"), required=False, max_length=7)
    segment = forms.ChoiceField(label=_("Segment"), required=False)
    touch_model = forms.ChoiceField(label=_("Touch model"), required=False)
    owner = forms.TypedChoiceField(label=_("Owner"), required=False, coerce=int, empty_value=None)

    def __init__(self, data: Any, *, segments: list[str], owners: list[User]) -> None:
        super().__init__(data)
        any_choice = [("", _("All"))]
        self.fields["segment"].choices = any_choice + [(s, s) for s in segments]  # type: ignore[attr-defined] # ChoiceField
        self.fields["touch_model"].choices = any_choice + list(TouchModel.choices)  # type: ignore[attr-defined] # ChoiceField
        self.fields["owner"].choices = any_choice + [(u.pk, u.display_name) for u in owners]  # type: ignore[attr-defined] # ChoiceField

    def clean_month(self) -> date | None:
        value = (self.cleaned_data.get("month") or "").strip()
        if not value:
            return None
        try:
            return parse_cohort(value)
        except KpiInputError:
            raise forms.ValidationError(
                _("Choose a month in the form YYYY-MM."), code="invalid"
            ) from None

    def month_or(self, default: date) -> date:
        self.is_valid()
        month = getattr(self, "cleaned_data", {}).get("month")
        return month if isinstance(month, date) else default

    def population(self) -> Population:
        self.is_valid()
        data = getattr(self, "cleaned_data", {})
        return Population(
            segment=data.get("segment") or "",
            touch_model=data.get("touch_model") or "",
            owner_id=data.get("owner"),
        )
