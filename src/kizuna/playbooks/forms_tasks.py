"""Forms of the task pages: a new or edited task, completing, snoozing, reassigning, cancelling,
and the team view's filters. Rules live in ``tasks.py``; these only parse the input."""

from typing import Any

from django import forms
from django.db.models import Q, QuerySet
from django.utils.translation import gettext_lazy as _

from kizuna.core.models import User
from kizuna.core.roles import ROLE_CAPABILITIES, Capability
from kizuna.customers.models import Customer
from kizuna.playbooks.models import OwnerRole, TaskPriority, TaskStatus, TaskType
from kizuna.playbooks.task_selectors import TEAM_STATUS_OVERDUE
from kizuna.playbooks.tasks import CHECKLIST_MAX_ITEMS, TITLE_MAX


class DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__(attrs=attrs, format="%Y-%m-%d")


class OwnerChoiceField(forms.ModelChoiceField):  # type: ignore[type-arg]  # django-stubs generic
    def label_from_instance(self, obj: Any) -> str:
        return f"{obj.display_name} · {obj.get_role_display()}"


def active_people() -> QuerySet[User]:
    """People who can own a task: active, and allowed to work on customers (not viewers)."""
    workers = [
        role for role, caps in ROLE_CAPABILITIES.items() if Capability.WRITE_TIMELINE in caps
    ]
    return User.objects.filter(Q(role__in=workers) | Q(is_superuser=True), is_active=True).order_by(
        "username"
    )


def checklist_lines(text: str) -> list[str]:
    """The non-blank lines of the checklist box, one item each."""
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


class TaskForm(forms.Form):
    """The fields a person edits on any task."""

    title = forms.CharField(label=_("Title"), max_length=TITLE_MAX)
    description = forms.CharField(
        label=_("Description"), required=False, widget=forms.Textarea(attrs={"rows": 3})
    )
    task_type = forms.ChoiceField(label=_("Type"), choices=TaskType.choices, initial=TaskType.OTHER)
    priority = forms.TypedChoiceField(
        label=_("Priority"), choices=TaskPriority.choices, coerce=int, initial=TaskPriority.NORMAL
    )
    due_on = forms.DateField(label=_("Due on"), required=False, widget=DateInput())
    checklist = forms.CharField(
        label=_("Checklist"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text=_("One item per line (at most {n}).").format(n=CHECKLIST_MAX_ITEMS),
    )

    def clean_checklist(self) -> list[str]:
        return checklist_lines(self.cleaned_data.get("checklist") or "")


class NewTaskForm(TaskForm):
    """A task made by hand: for which customer, and who does it (a person or a role)."""

    customer = forms.ModelChoiceField(
        label=_("Customer"), queryset=Customer.objects.order_by("name", "id")
    )
    owner = OwnerChoiceField(
        label=_("Owner"),
        queryset=active_people(),
        required=False,
        empty_label=_("— by role below, or unowned —"),
    )
    owner_role = forms.ChoiceField(
        label=_("Or the customer's owner"),
        choices=[("", _("—")), *OwnerRole.choices],
        required=False,
        help_text=_("Used when no owner is chosen: resolved to the customer's CSM now."),
    )

    field_order = (
        "customer",
        "title",
        "description",
        "task_type",
        "priority",
        "owner",
        "owner_role",
        "due_on",
        "checklist",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["owner"].queryset = active_people()  # type: ignore[attr-defined]  # fresh per form


class CompleteForm(forms.Form):
    outcome = forms.CharField(
        label=_("Outcome"),
        required=False,
        max_length=4000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("What happened: it goes on the customer's timeline."),
    )


class CancelForm(forms.Form):
    reason = forms.CharField(label=_("Reason"), required=False, max_length=4000)


class SnoozeForm(forms.Form):
    until = forms.DateField(label=_("Snooze until"), widget=DateInput())


class ReassignForm(forms.Form):
    owner = OwnerChoiceField(
        label=_("Owner"),
        queryset=active_people(),
        required=False,
        empty_label=_("Nobody (unowned)"),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["owner"].queryset = active_people()  # type: ignore[attr-defined]  # fresh per form


class TeamFilterForm(forms.Form):
    """Filters of the team view; an unknown value is a field error, never a 500."""

    owner = forms.ChoiceField(label=_("Owner"), required=False)
    status = forms.ChoiceField(
        label=_("Status"),
        required=False,
        choices=[
            ("", _("Still to do")),
            (TEAM_STATUS_OVERDUE, _("Overdue")),
            *TaskStatus.choices,
        ],
    )
    task_type = forms.ChoiceField(
        label=_("Type"), required=False, choices=[("", _("All types")), *TaskType.choices]
    )
    page = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        people = [(str(user.pk), user.display_name) for user in active_people()]
        self.fields["owner"].choices = [  # type: ignore[attr-defined]  # a ChoiceField
            ("", _("Everyone")),
            ("none", _("Unowned")),
            *people,
        ]
