"""Forms of teams, CSM profiles, assignment rules, book reassignment, owners and handoffs.

They parse and validate; the services in ``assignment`` and ``handoffs`` write.
"""

from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.utils.translation import gettext_lazy as _

from kizuna.core.models import User
from kizuna.core.roles import CSM_ROLES, Role
from kizuna.lifecycle.assignment import parse_rule_expression, points
from kizuna.lifecycle.models import (
    AssignmentRule,
    CsmProfile,
    LifecycleSettings,
    OwnerRole,
    RoleHandoff,
    Team,
)


class UserChoiceField(forms.ModelChoiceField):  # type: ignore[type-arg] # django-stubs: untyped
    """Users shown by their display name and role."""

    def label_from_instance(self, obj: Any) -> str:
        assert isinstance(obj, User)
        return f"{obj.display_name} ({obj.get_role_display()})"


def active_users() -> QuerySet[User]:
    return User.objects.filter(is_active=True).order_by("username")


def csm_users() -> QuerySet[User]:
    """Active users who can own customers (CSM roles, managers and administrators)."""
    return active_users().filter(role__in=[*CSM_ROLES, Role.ADMIN])


def _comma_list(value: str) -> list[str]:
    items: list[str] = []
    for item in value.replace("、", ",").replace("\n", ",").split(","):
        item = item.strip()
        if item and item not in items:
            items.append(item)
    return items


class TeamForm(forms.ModelForm):  # type: ignore[type-arg] # django-stubs: untyped
    manager = UserChoiceField(queryset=active_users(), required=False, label=_("manager"))

    class Meta:
        model = Team
        fields = ("name", "manager")


class CsmProfileForm(forms.ModelForm):  # type: ignore[type-arg] # django-stubs: untyped
    user = UserChoiceField(queryset=csm_users(), label=_("CSM"))

    class Meta:
        model = CsmProfile
        fields = ("user", "team", "capacity", "languages", "regions", "accepting")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            del self.fields["user"]  # a profile belongs to one user for good
        else:
            field = self.fields["user"]
            assert isinstance(field, forms.ModelChoiceField)
            field.queryset = csm_users().filter(csm_profile__isnull=True)
        weights = LifecycleSettings.load()
        self.fields["capacity"].help_text = _(
            "In load points: a high-touch customer weighs %(high)s, a low-touch one "
            "%(low)s, a tech-touch one %(tech)s."
        ) % {
            "high": points(weights.high_touch_weight),
            "low": points(weights.low_touch_weight),
            "tech": points(weights.tech_touch_weight),
        }

    def clean_languages(self) -> str:
        known = {code for code, _label in settings.LANGUAGES}
        codes = [code.lower() for code in _comma_list(self.cleaned_data.get("languages") or "")]
        for code in codes:
            if code not in known:
                raise ValidationError(
                    _("“%(code)s” is not a language code; use %(known)s."),
                    params={"code": code[:20], "known": ", ".join(sorted(known))},
                )
        return ",".join(codes)

    def clean_regions(self) -> str:
        return ", ".join(_comma_list(self.cleaned_data.get("regions") or ""))


class AssignmentRuleForm(forms.ModelForm):  # type: ignore[type-arg] # django-stubs: untyped
    class Meta:
        model = AssignmentRule
        fields = (
            "name",
            "position",
            "role",
            "expression",
            "team",
            "method",
            "match_language",
            "match_region",
            "is_active",
        )
        widgets = {"expression": forms.Textarea(attrs={"rows": 3, "spellcheck": "false"})}
        help_texts = {
            "expression": _(
                'Empty: every customer. For example: segment = "enterprise" or '
                'region in ("関東", "関西").'
            )
        }

    def clean_expression(self) -> str:
        expression = str(self.cleaned_data.get("expression") or "").strip()
        try:
            parse_rule_expression(expression)
        except ValidationError as error:
            raise ValidationError(error.message_dict["expression"]) from None
        return expression


class ReassignForm(forms.Form):
    from_user = UserChoiceField(queryset=active_users(), label=_("From"))
    to_user = UserChoiceField(
        queryset=active_users(),
        required=False,
        label=_("To"),
        empty_label=_("By the assignment rules"),
    )
    role = forms.ChoiceField(
        label=_("Role"),
        required=False,
        choices=[("", _("Every role")), *OwnerRole.choices],
    )
    note = forms.CharField(
        label=_("Note for the new owners"),
        required=False,
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 2}),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from_field = self.fields["from_user"]
        to_field = self.fields["to_user"]
        assert isinstance(from_field, forms.ModelChoiceField)
        assert isinstance(to_field, forms.ModelChoiceField)
        # Deactivated users' books are exactly what needs moving.
        from_field.queryset = User.objects.order_by("username")
        to_field.queryset = csm_users()

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("from_user") and cleaned.get("from_user") == cleaned.get("to_user"):
            self.add_error("to_user", _("Choose a different CSM to move the book to."))
        return cleaned


class HandoffNoteForm(forms.ModelForm):  # type: ignore[type-arg] # django-stubs: untyped
    class Meta:
        model = RoleHandoff
        fields: tuple[str, ...] = (
            "goals_achieved",
            "open_issues",
            "stakeholders",
            "risks",
            "notes",
        )
        widgets = {
            name: forms.Textarea(attrs={"rows": 3})
            for name in ("goals_achieved", "open_issues", "stakeholders", "risks", "notes")
        }


class NewHandoffForm(HandoffNoteForm):
    from_role = forms.ChoiceField(label=_("from role"), choices=OwnerRole.choices)
    to_role = forms.ChoiceField(label=_("to role"), choices=OwnerRole.choices)
    to_user = UserChoiceField(
        queryset=csm_users(),
        required=False,
        label=_("to"),
        empty_label=_("The owner of the role"),
    )

    class Meta(HandoffNoteForm.Meta):
        fields = (
            "from_role",
            "to_role",
            "to_user",
            "goals_achieved",
            "open_issues",
            "stakeholders",
            "risks",
            "notes",
        )


class AcknowledgeForm(forms.Form):
    reply = forms.CharField(
        label=_("Reply"),
        required=False,
        max_length=10000,
        widget=forms.Textarea(attrs={"rows": 3}),
    )


class OwnerChangeForm(forms.Form):
    role = forms.ChoiceField(label=_("Role"), choices=OwnerRole.choices)
    user = UserChoiceField(
        queryset=csm_users(), required=False, label=_("New owner"), empty_label=_("Nobody")
    )
    note = forms.CharField(
        label=_("Handoff note"),
        required=False,
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("What the new owner should know; it travels in the handoff."),
    )
