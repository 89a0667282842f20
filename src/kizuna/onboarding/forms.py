"""Forms of the staff onboarding pages: they parse and validate, the engine's services write.

Every error is attached to the field it is about, so the page shows it beside that field.
"""

import re
from datetime import date, timedelta
from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _

from kizuna.analytics.models import MetricDefinition
from kizuna.core.models import User
from kizuna.customers.models import TouchModel
from kizuna.onboarding.completion import COMPARISONS
from kizuna.onboarding.models import (
    CompletionKind,
    FollowUp,
    GoalKind,
    Milestone,
    MilestoneStatus,
    OnboardingPlan,
    Phase,
    PlanStatus,
    Program,
    ProgramVersion,
    Resource,
    SuccessGoal,
    VersionStatus,
)
from kizuna.onboarding.selectors import UNASSIGNED, BoardFilters

# What SDKs send as an event type ("attendance.registered", "Report Exported").
EVENT_TYPE = re.compile(r"^[^\x00-\x1f,]{1,200}$")
MAX_OFFSET_DAYS = 730
MAX_SHIFT_DAYS = 365
MAX_CHECKLIST_ITEMS = 50


def _label(model: type[models.Model], name: str) -> str:
    """The model field's verbose name as a form label (capitalised, still translatable)."""
    model_field = model._meta.get_field(name)
    assert isinstance(model_field, models.Field)
    return capfirst(model_field.verbose_name)  # type: ignore[return-value] # lazy text is a str


class DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(format="%Y-%m-%d", **kwargs)


def _metric_choices() -> list[tuple[str, str]]:
    keys = MetricDefinition.objects.order_by("position", "key").values_list("key", "name")
    return [("", "—"), *((key, f"{name} ({key})") for key, name in keys)]


# --- Programs ------------------------------------------------------------------------------------


class ProgramForm(forms.ModelForm):  # type: ignore[type-arg] # django-stubs generic
    """A new program; its first (draft) version gets ``target_days``."""

    target_days = forms.IntegerField(
        label=_label(ProgramVersion, "target_days"),
        min_value=1,
        max_value=MAX_OFFSET_DAYS,
        initial=60,
        help_text=ProgramVersion._meta.get_field("target_days").help_text,
    )

    class Meta:
        model = Program
        fields = ("key", "name", "description", "touch_model", "segment_key", "priority")
        widgets = {"description": forms.Textarea(attrs={"rows": 3})}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["key"].help_text = _("Lower-case letters, digits, - and _, e.g. high-touch.")
        self.fields["touch_model"].choices = [("", _("Any touch model")), *TouchModel.choices]  # type: ignore[attr-defined] # ChoiceField

    def clean_key(self) -> str:
        key: str = self.cleaned_data["key"]
        if key != key.lower():
            raise ValidationError(_("Use lower-case letters in the key."))
        return key

    def clean_name(self) -> str:
        name: str = self.cleaned_data["name"].strip()
        if not name:
            raise ValidationError(_("Give the program a name."))
        return name


class ProgramSettingsForm(forms.ModelForm):  # type: ignore[type-arg] # django-stubs generic
    """Who a program is for; its content lives in versions."""

    class Meta:
        model = Program
        fields = ("name", "description", "touch_model", "segment_key", "priority", "is_active")
        widgets = {"description": forms.Textarea(attrs={"rows": 3})}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["touch_model"].choices = [("", _("Any touch model")), *TouchModel.choices]  # type: ignore[attr-defined] # ChoiceField


class VersionSettingsForm(forms.ModelForm):  # type: ignore[type-arg] # django-stubs generic
    class Meta:
        model = ProgramVersion
        fields = ("target_days", "change_note")
        widgets = {"change_note": forms.Textarea(attrs={"rows": 2})}

    def clean_target_days(self) -> int:
        days: int = self.cleaned_data["target_days"]
        if not 1 <= days <= MAX_OFFSET_DAYS:
            raise ValidationError(
                _("Give the target in days, from 1 to %(most)d.") % {"most": MAX_OFFSET_DAYS}
            )
        return days


class NewVersionForm(forms.Form):
    change_note = forms.CharField(
        label=_("What changes in this version"),
        max_length=2000,
        error_messages={"required": _("Say what changes in this version.")},
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("Kept with the version so reports comparing versions explain themselves."),
    )

    def clean_change_note(self) -> str:
        note: str = self.cleaned_data["change_note"].strip()
        if not note:
            raise ValidationError(_("Say what changes in this version."))
        return note


class PhaseForm(forms.ModelForm):  # type: ignore[type-arg] # django-stubs generic
    class Meta:
        model = Phase
        fields = ("name",)
        error_messages = {"name": {"required": _("Give the phase a name.")}}

    def clean_name(self) -> str:
        name: str = self.cleaned_data["name"].strip()
        if not name:
            raise ValidationError(_("Give the phase a name."))
        return name


class MilestoneForm(forms.ModelForm):  # type: ignore[type-arg] # django-stubs generic
    """A milestone of a draft version, with its completion rule as separate fields."""

    event_type = forms.CharField(
        label=_("Event type"),
        required=False,
        max_length=200,
        help_text=_("For “first product event”: the event type, e.g. attendance.registered."),
    )
    metric = forms.ChoiceField(
        label=_("Metric"), required=False, help_text=_("For “metric reaches a threshold”.")
    )
    op = forms.ChoiceField(
        label=_("Comparison"), required=False, choices=[(op, op) for op in COMPARISONS]
    )
    threshold = forms.FloatField(
        label=_("Threshold"), required=False, help_text=_("e.g. 0.8 for 80 percent of seats.")
    )

    class Meta:
        model = Milestone
        fields = (
            "key", "name", "description", "phase", "owner_side", "due_offset_days",
            "required", "position", "depends_on", "completion_kind",
        )  # fmt: skip
        widgets = {
            "description": forms.Textarea(attrs={"rows": 2}),
            "depends_on": forms.CheckboxSelectMultiple(),
        }

    def __init__(self, *args: Any, version: ProgramVersion, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.version = version
        self.fields["phase"].queryset = version.phases.all()  # type: ignore[attr-defined] # ModelChoiceField
        self.fields["phase"].empty_label = None  # type: ignore[attr-defined] # ModelChoiceField
        others = version.milestones.all()
        if self.instance.pk:
            others = others.exclude(pk=self.instance.pk)
        self.fields["depends_on"].queryset = others  # type: ignore[attr-defined] # ModelMultipleChoiceField
        self.fields["depends_on"].required = False
        self.fields["metric"].choices = _metric_choices()  # type: ignore[attr-defined] # ChoiceField
        self.fields["key"].help_text = _("Lower-case letters, digits, - and _, e.g. go-live.")
        rule = self.instance.completion or {}
        if self.instance.pk and not self.is_bound:
            self.initial.update(
                {
                    "event_type": rule.get("event_type", ""),
                    "metric": rule.get("metric", ""),
                    "op": rule.get("op", ">="),
                    "threshold": rule.get("value"),
                }
            )

    def clean_key(self) -> str:
        key: str = self.cleaned_data["key"]
        if key != key.lower():
            raise ValidationError(_("Use lower-case letters in the key."))
        taken = self.version.milestones.filter(key=key)
        if self.instance.pk:
            taken = taken.exclude(pk=self.instance.pk)
        if taken.exists():
            raise ValidationError(_("Another milestone of this version has this key."))
        return key

    def clean_name(self) -> str:
        name: str = self.cleaned_data["name"].strip()
        if not name:
            raise ValidationError(_("Give the milestone a name."))
        return name

    def clean_due_offset_days(self) -> int:
        days: int = self.cleaned_data["due_offset_days"]
        if days > MAX_OFFSET_DAYS:
            raise ValidationError(
                _("Give at most %(most)d days after the start.") % {"most": MAX_OFFSET_DAYS}
            )
        return days

    def clean_depends_on(self) -> list[Milestone]:
        chosen: list[Milestone] = list(self.cleaned_data.get("depends_on") or [])
        if not self.instance.pk:
            return chosen
        # Refuse a loop: a milestone cannot (even indirectly) come after itself.
        edges: dict[int, set[int]] = {}
        for source, target in Milestone.depends_on.through.objects.filter(
            from_milestone__version=self.version
        ).values_list("from_milestone_id", "to_milestone_id"):
            edges.setdefault(source, set()).add(target)
        edges[self.instance.pk] = {milestone.pk for milestone in chosen}
        stack, seen = list(edges[self.instance.pk]), set()
        while stack:
            current = stack.pop()
            if current == self.instance.pk:
                raise ValidationError(
                    _("These dependencies make a loop: a milestone would come after itself.")
                )
            if current not in seen:
                seen.add(current)
                stack.extend(edges.get(current, ()))
        return chosen

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        kind = cleaned.get("completion_kind")
        if kind == CompletionKind.FIRST_EVENT:
            event_type = (cleaned.get("event_type") or "").strip()
            if not event_type:
                self.add_error("event_type", _("Give the event type that completes it."))
            elif not EVENT_TYPE.match(event_type):
                self.add_error(
                    "event_type",
                    _(
                        "An event type has at most 200 characters, without commas or control characters."
                    ),
                )
            else:
                cleaned["completion"] = {"event_type": event_type}
        elif kind == CompletionKind.METRIC:
            if not cleaned.get("metric"):
                self.add_error("metric", _("Choose the metric that completes it."))
            if cleaned.get("threshold") is None and "threshold" not in self.errors:
                self.add_error("threshold", _("Give the threshold the metric must reach."))
            if not cleaned.get("op"):
                self.add_error("op", _("Choose a comparison."))
            if not self.errors:
                cleaned["completion"] = {
                    "metric": cleaned["metric"],
                    "op": cleaned["op"],
                    "value": cleaned["threshold"],
                }
        else:
            cleaned["completion"] = {}
        due = cleaned.get("due_offset_days")
        late = [
            m.name
            for m in cleaned.get("depends_on") or []
            if due is not None and m.due_offset_days > due
        ]
        if late:
            self.add_error(
                "due_offset_days",
                _("It is due before what it depends on: %(names)s.") % {"names": ", ".join(late)},
            )
        return cleaned

    def save(self, commit: bool = True) -> Milestone:
        milestone: Milestone = super().save(commit=False)
        milestone.version = self.version
        milestone.completion = self.cleaned_data.get("completion", {})
        if commit:
            milestone.save()
            self.save_m2m()
        return milestone


class ResourceForm(forms.ModelForm):  # type: ignore[type-arg] # django-stubs generic
    class Meta:
        model = Resource
        fields = ("kind", "title", "url", "language")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["language"].choices = [("", _("Any language")), *settings.LANGUAGES]  # type: ignore[attr-defined] # ChoiceField

    def clean_title(self) -> str:
        title: str = self.cleaned_data["title"].strip()
        if not title:
            raise ValidationError(_("Give the resource a title."))
        return title

    def clean_url(self) -> str:
        url: str = self.cleaned_data["url"]
        if not url.lower().startswith(("https://", "http://")):
            raise ValidationError(_("Give a web address starting with https:// or http://."))
        return url


class FollowUpForm(forms.ModelForm):  # type: ignore[type-arg] # django-stubs generic
    class Meta:
        model = FollowUp
        fields = ("name", "day_offset", "owner_side", "description")
        widgets = {"description": forms.Textarea(attrs={"rows": 2})}

    def clean_name(self) -> str:
        name: str = self.cleaned_data["name"].strip()
        if not name:
            raise ValidationError(_("Give the follow-up a name."))
        return name

    def clean_day_offset(self) -> int:
        days: int = self.cleaned_data["day_offset"]
        if days > MAX_OFFSET_DAYS:
            raise ValidationError(
                _("Give at most %(most)d days after the start.") % {"most": MAX_OFFSET_DAYS}
            )
        return days


# --- The board -----------------------------------------------------------------------------------


class BoardFilterForm(forms.Form):
    """The board's GET form. Unknown values are dropped rather than refused."""

    owner = forms.TypedChoiceField(
        label=_("Onboarding CSM"), required=False, coerce=int, empty_value=None
    )
    program = forms.TypedChoiceField(
        label=_("Program"), required=False, coerce=int, empty_value=None
    )
    version = forms.TypedChoiceField(
        label=_("Version"), required=False, coerce=int, empty_value=None
    )
    status = forms.ChoiceField(label=_("Status"), required=False)
    touch_model = forms.ChoiceField(label=_("Touch model"), required=False)

    def __init__(
        self,
        data: Any,
        *,
        owners: list[User],
        programs: list[Program],
        versions: list[ProgramVersion],
    ) -> None:
        super().__init__(data)
        any_choice = [("", _("All"))]
        self.fields["owner"].choices = [  # type: ignore[attr-defined] # ChoiceField
            *any_choice,
            (UNASSIGNED, _("No onboarding CSM")),
            *((user.pk, user.display_name) for user in owners),
        ]
        self.fields["program"].choices = [*any_choice, *((p.pk, p.name) for p in programs)]  # type: ignore[attr-defined] # ChoiceField
        self.fields["version"].choices = [*any_choice, *((v.pk, str(v)) for v in versions)]  # type: ignore[attr-defined] # ChoiceField
        self.fields["status"].choices = [("", _("All but cancelled")), *PlanStatus.choices]  # type: ignore[attr-defined] # ChoiceField
        self.fields["touch_model"].choices = [*any_choice, *TouchModel.choices]  # type: ignore[attr-defined] # ChoiceField

    def filters(self) -> BoardFilters:
        """The valid filters; an invalid value is ignored (the board shows unfiltered)."""
        self.is_valid()
        data = getattr(self, "cleaned_data", {})
        return BoardFilters(
            owner_id=data.get("owner"),
            program_id=data.get("program"),
            version_id=data.get("version"),
            status=data.get("status") or "",
            touch_model=data.get("touch_model") or "",
        )


class BulkAction(models.TextChoices):
    REFRESH = "refresh", _("Refresh statuses")
    SHIFT = "shift", _("Move open milestones' due dates")
    CANCEL = "cancel", _("Cancel plans")
    EXPORT = "export", _("Export CSV")


class BulkActionForm(forms.Form):
    plans = forms.TypedMultipleChoiceField(
        label=_("Plans"), coerce=int, error_messages={"required": _("Select at least one plan.")}
    )
    action = forms.ChoiceField(label=_("Action"), choices=BulkAction.choices)
    days = forms.IntegerField(
        label=_("Days"),
        required=False,
        min_value=-MAX_SHIFT_DAYS,
        max_value=MAX_SHIFT_DAYS,
        help_text=_("Positive moves later, negative earlier."),
    )
    reason = forms.CharField(label=_("Reason"), required=False, max_length=300)

    def __init__(self, data: Any) -> None:
        super().__init__(data)
        # Any id is accepted here; the view keeps those that exist.
        ids = data.getlist("plans") if hasattr(data, "getlist") else data.get("plans", [])
        self.fields["plans"].choices = [(value, value) for value in ids]  # type: ignore[attr-defined] # ChoiceField

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        action = cleaned.get("action")
        if action == BulkAction.SHIFT and not cleaned.get("days") and "days" not in self.errors:
            self.add_error("days", _("Give the number of days to move the due dates by."))
        if action == BulkAction.CANCEL:
            cleaned["reason"] = (cleaned.get("reason") or "").strip()
            if not cleaned["reason"]:
                self.add_error("reason", _("Say why the plans are cancelled."))
        return cleaned


# --- A plan --------------------------------------------------------------------------------------

MILESTONE_ACTIONS = (
    (MilestoneStatus.DONE, _("Complete")),
    (MilestoneStatus.IN_PROGRESS, _("Start")),
    (MilestoneStatus.BLOCKED, _("Block")),
    (MilestoneStatus.SKIPPED, _("Skip")),
    (MilestoneStatus.NOT_STARTED, _("Reopen")),
)


class MilestoneStatusForm(forms.Form):
    status = forms.ChoiceField(label=_("Status"), choices=MILESTONE_ACTIONS)
    reason = forms.CharField(label=_("Reason"), required=False, max_length=300)

    def __init__(self, *args: Any, required: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.milestone_required = required

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        status = cleaned.get("status")
        cleaned["reason"] = (cleaned.get("reason") or "").strip()
        if status in (MilestoneStatus.BLOCKED, MilestoneStatus.SKIPPED) and not cleaned["reason"]:
            self.add_error("reason", _("Say why (the reason is shown on the plan)."))
        if status == MilestoneStatus.SKIPPED and self.milestone_required:
            self.add_error("status", _("A required milestone cannot be skipped."))
        return cleaned


class TaskDoneForm(forms.Form):
    outcome = forms.CharField(
        label=_("Outcome"),
        max_length=5000,
        error_messages={"required": _("Write the outcome of the follow-up.")},
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("What was discussed or decided."),
    )

    def clean_outcome(self) -> str:
        outcome: str = self.cleaned_data["outcome"].strip()
        if not outcome:
            raise ValidationError(_("Write the outcome of the follow-up."))
        return outcome


class GoalForm(forms.Form):
    """A success goal agreed with the customer: a metric target or a checklist, and a due date."""

    title = forms.CharField(label=_label(SuccessGoal, "title"), max_length=300)
    kind = forms.ChoiceField(label=_label(SuccessGoal, "kind"), choices=GoalKind.choices)
    metric_key = forms.ChoiceField(label=_label(SuccessGoal, "metric_key"), required=False)
    op = forms.ChoiceField(
        label=_label(SuccessGoal, "op"), required=False, choices=[(op, op) for op in COMPARISONS]
    )
    target = forms.FloatField(label=_label(SuccessGoal, "target"), required=False)
    checklist = forms.CharField(
        label=_label(SuccessGoal, "checklist"),
        required=False,
        max_length=10_000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("One item per line."),
    )
    due_date = forms.DateField(label=_label(SuccessGoal, "due_date"), widget=DateInput())

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["metric_key"].choices = _metric_choices()  # type: ignore[attr-defined] # ChoiceField

    def clean_title(self) -> str:
        title: str = self.cleaned_data["title"].strip()
        if not title:
            raise ValidationError(_("Write the goal as agreed with the customer."))
        return title

    def clean(self) -> dict[str, Any]:
        cleaned: dict[str, Any] = super().clean() or {}
        kind = cleaned.get("kind")
        items = [line.strip() for line in (cleaned.get("checklist") or "").splitlines()]
        cleaned["checklist"] = [{"text": item[:300], "done": False} for item in items if item]
        if kind == GoalKind.METRIC:
            if not cleaned.get("metric_key"):
                self.add_error("metric_key", _("Choose the metric that measures the goal."))
            if cleaned.get("target") is None and "target" not in self.errors:
                self.add_error("target", _("Give the target value of the metric."))
            cleaned["checklist"] = []
        elif kind == GoalKind.CHECKLIST:
            if not cleaned["checklist"]:
                self.add_error("checklist", _("Write at least one checklist item."))
            elif len(cleaned["checklist"]) > MAX_CHECKLIST_ITEMS:
                self.add_error(
                    "checklist",
                    _("Write at most %(most)d items.") % {"most": MAX_CHECKLIST_ITEMS},
                )
            cleaned["metric_key"], cleaned["target"] = "", None
        return cleaned


class ChecklistTickForm(forms.Form):
    item = forms.IntegerField(min_value=0, max_value=MAX_CHECKLIST_ITEMS)
    done = forms.BooleanField(required=False)


class KickoffForm(forms.ModelForm):  # type: ignore[type-arg] # django-stubs generic
    """Step 2, understanding the customer: pre-filled from the sales handoff until saved."""

    class Meta:
        model = OnboardingPlan
        fields = (
            "kickoff_on", "desired_outcomes", "current_issues", "stakeholders", "it_literacy",
            "kickoff_notes",
        )  # fmt: skip
        widgets = {
            "kickoff_on": DateInput(),
            "desired_outcomes": forms.Textarea(attrs={"rows": 3}),
            "current_issues": forms.Textarea(attrs={"rows": 3}),
            "stakeholders": forms.Textarea(attrs={"rows": 2}),
            "kickoff_notes": forms.Textarea(attrs={"rows": 3}),
        }

    def clean_kickoff_on(self) -> date | None:
        day: date | None = self.cleaned_data.get("kickoff_on")
        if day and day > timezone.localdate() + timedelta(days=366):
            raise ValidationError(_("Give a date within the next year."))
        return day


class PlanCreateForm(forms.Form):
    """A plan made by hand: a program (or the automatic choice) and a start date."""

    program = forms.TypedChoiceField(
        label=_("Program"),
        required=False,
        coerce=int,
        empty_value=None,
        help_text=_("Automatic: the program that fits the customer's touch model and segment."),
    )
    start_date = forms.DateField(label=_("Start date"), widget=DateInput())

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        published = (
            ProgramVersion.objects.filter(status=VersionStatus.PUBLISHED, program__is_active=True)
            .select_related("program")
            .order_by("program__priority", "program__name")
        )
        self.fields["program"].choices = [  # type: ignore[attr-defined] # ChoiceField
            ("", _("Automatic")),
            *((version.pk, str(version)) for version in published),
        ]
        self.fields["start_date"].initial = timezone.localdate()

    def clean_start_date(self) -> date:
        day: date = self.cleaned_data["start_date"]
        if not 2000 <= day.year <= 2999:
            raise ValidationError(_("Give a date between the years 2000 and 2999."))
        return day


class CancelPlanForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason"),
        max_length=300,
        error_messages={"required": _("Say why the plan is cancelled.")},
    )

    def clean_reason(self) -> str:
        reason: str = self.cleaned_data["reason"].strip()
        if not reason:
            raise ValidationError(_("Say why the plan is cancelled."))
        return reason
