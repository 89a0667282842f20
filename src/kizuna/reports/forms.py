"""The report pages' GET forms: the month, the population filters, the breakdown and the
onboarding report's cohort and program."""

from datetime import date
from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from kizuna.core.models import User
from kizuna.customers.models import LifecycleStage, TouchModel
from kizuna.reports.kpis import KPIS, GroupBy, Population, ProgramFilter, resolve_program
from kizuna.reports.kpis.population import KpiInputError, parse_cohort

# The KPI a breakdown shows unless another is chosen.
DEFAULT_BREAKDOWN_KPI = "logo_churn_rate"

GROUP_BY_CHOICES = [
    (GroupBy.SEGMENT.value, _("Segment")),
    (GroupBy.TOUCH_MODEL.value, _("Touch model")),
    (GroupBy.STAGE.value, _("Lifecycle stage")),
    (GroupBy.OWNER.value, _("Owner")),
]


class DashboardFilterForm(forms.Form):
    """Unknown filter values are dropped; a bad month falls back to the default with an error.

    ``group_by`` breaks ``breakdown`` (a KPI id) down by a dimension for the chosen month.
    """

    month = forms.CharField(label=_("Month"), required=False, max_length=7)
    segment = forms.ChoiceField(label=_("Segment"), required=False)
    touch_model = forms.ChoiceField(label=_("Touch model"), required=False)
    stage = forms.ChoiceField(label=_("Lifecycle stage"), required=False)
    owner = forms.TypedChoiceField(label=_("Owner"), required=False, coerce=int, empty_value=None)
    group_by = forms.ChoiceField(label=_("Group by"), required=False)
    breakdown = forms.ChoiceField(label=_("KPI to break down"), required=False)

    def __init__(
        self,
        data: Any,
        *,
        segments: list[tuple[str, str]],
        owners: list[User],
        kpi_names: list[tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(data)
        any_choice = [("", _("All"))]
        self.fields["segment"].choices = any_choice + list(segments)  # type: ignore[attr-defined] # ChoiceField
        self.fields["touch_model"].choices = any_choice + list(TouchModel.choices)  # type: ignore[attr-defined] # ChoiceField
        self.fields["stage"].choices = any_choice + list(LifecycleStage.choices)  # type: ignore[attr-defined] # ChoiceField
        self.fields["owner"].choices = any_choice + [(u.pk, u.display_name) for u in owners]  # type: ignore[attr-defined] # ChoiceField
        self.fields["group_by"].choices = [("", _("No breakdown")), *GROUP_BY_CHOICES]  # type: ignore[attr-defined] # ChoiceField
        names = kpi_names or [(kpi_id, kpi_id) for kpi_id in KPIS]
        self.fields["breakdown"].choices = names  # type: ignore[attr-defined] # ChoiceField

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
            lifecycle_stage=data.get("stage") or "",
            owner_id=data.get("owner"),
        )

    def chosen_group_by(self) -> GroupBy | None:
        """The chosen breakdown dimension (None: no breakdown, or an invalid choice)."""
        self.is_valid()
        value = getattr(self, "cleaned_data", {}).get("group_by") or ""
        return GroupBy(value) if value else None

    def breakdown_kpi(self) -> str:
        self.is_valid()
        return getattr(self, "cleaned_data", {}).get("breakdown") or DEFAULT_BREAKDOWN_KPI


class TimeInStageForm(forms.Form):
    """The time-in-stage filters: segment and touch model (today's) and the start cohort."""

    segment = forms.ChoiceField(label=_("Segment"), required=False)
    touch_model = forms.ChoiceField(label=_("Touch model"), required=False)
    cohort = forms.CharField(label=_("Cohort (month of first start)"), required=False, max_length=7)

    def __init__(self, data: Any, *, segments: list[tuple[str, str]]) -> None:
        super().__init__(data)
        any_choice = [("", _("All"))]
        self.fields["segment"].choices = any_choice + list(segments)  # type: ignore[attr-defined] # ChoiceField
        self.fields["touch_model"].choices = any_choice + list(TouchModel.choices)  # type: ignore[attr-defined] # ChoiceField

    def clean_cohort(self) -> str:
        value = (self.cleaned_data.get("cohort") or "").strip()
        if value:
            try:
                parse_cohort(value)
            except KpiInputError:
                raise forms.ValidationError(
                    _("Choose a month in the form YYYY-MM."), code="invalid"
                ) from None
        return value


class OnboardingReportForm(forms.Form):
    """Reports → Onboarding: the cohort month, the population filters and a program (version).

    A bad month falls back to the default with an error; a bad program or version is an error
    naming it (and the page shows no figures until it is fixed).
    """

    cohort = forms.CharField(label=_("Cohort (month of first start)"), required=False, max_length=7)
    segment = forms.ChoiceField(label=_("Segment"), required=False)
    touch_model = forms.ChoiceField(label=_("Touch model"), required=False)
    stage = forms.ChoiceField(label=_("Lifecycle stage"), required=False)
    owner = forms.TypedChoiceField(label=_("Owner"), required=False, coerce=int, empty_value=None)
    program = forms.ChoiceField(label=_("Program"), required=False)
    version = forms.CharField(label=_("Version"), required=False, max_length=6)

    def __init__(
        self,
        data: Any,
        *,
        segments: list[tuple[str, str]],
        owners: list[User],
        programs: list[tuple[str, str]],
    ) -> None:
        super().__init__(data)
        any_choice = [("", _("All"))]
        self.fields["segment"].choices = any_choice + list(segments)  # type: ignore[attr-defined] # ChoiceField
        self.fields["touch_model"].choices = any_choice + list(TouchModel.choices)  # type: ignore[attr-defined] # ChoiceField
        self.fields["stage"].choices = any_choice + list(LifecycleStage.choices)  # type: ignore[attr-defined] # ChoiceField
        self.fields["owner"].choices = any_choice + [(u.pk, u.display_name) for u in owners]  # type: ignore[attr-defined] # ChoiceField
        self.fields["program"].choices = [("", _("All programs")), *programs]  # type: ignore[attr-defined] # ChoiceField
        self.program_filter: ProgramFilter | None = None

    def clean_cohort(self) -> date | None:
        value = (self.cleaned_data.get("cohort") or "").strip()
        if not value:
            return None
        try:
            return parse_cohort(value)
        except KpiInputError:
            raise forms.ValidationError(
                _("Choose a month in the form YYYY-MM."), code="invalid"
            ) from None

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if "program" in self.errors:
            return data
        program = data.get("program") or ""
        version = (data.get("version") or "").strip()
        if version and not program:
            self.add_error("program", _("Choose the program whose version you want to see."))
        elif version and (not version.isdigit() or int(version) < 1):
            self.add_error("version", _("Give a version number: 1, 2, …"))
        elif program:
            try:
                self.program_filter = resolve_program(program, version or None)
            except KpiInputError as exc:
                if exc.field == "version":
                    self.add_error("version", _("This program has no such version."))
                else:
                    self.add_error("program", _("There is no program with this key."))
        return data

    def cohort_or(self, default: date) -> date:
        self.is_valid()
        cohort = getattr(self, "cleaned_data", {}).get("cohort")
        return cohort if isinstance(cohort, date) else default

    def has_program_errors(self) -> bool:
        self.is_valid()
        return "program" in self.errors or "version" in self.errors

    def population(self) -> Population:
        self.is_valid()
        data = getattr(self, "cleaned_data", {})
        return Population(
            segment=data.get("segment") or "",
            touch_model=data.get("touch_model") or "",
            lifecycle_stage=data.get("stage") or "",
            owner_id=data.get("owner"),
        )
