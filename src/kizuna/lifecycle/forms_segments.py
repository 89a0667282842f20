"""The segment form of Settings → Segments: it parses and checks; ``segments`` writes."""

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from kizuna.lifecycle import conditions
from kizuna.lifecycle.models import Segment
from kizuna.lifecycle.segments import KEY_PATTERN


class SegmentForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=100)
    key = forms.CharField(
        label=_("Key"),
        max_length=50,
        required=False,
        help_text=_(
            "Lower-case letters, digits, '-' and '_'; used by touch-model policies, filters and "
            "the API. Empty: made from the name. It cannot be changed later."
        ),
    )
    description = forms.CharField(
        label=_("Description"), required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
    expression = forms.CharField(
        label=_("Rule"),
        max_length=conditions.MAX_EXPRESSION_LENGTH,
        help_text=_(
            "For example: arr >= 10000000 or employees >= 1000. Combine with and, or, not and "
            'parentheses; put text in quotes: industry in ("製造業", "小売").'
        ),
        widget=forms.Textarea(
            attrs={"rows": 3, "spellcheck": "false", "autocomplete": "off", "class": "rule"}
        ),
    )
    is_active = forms.BooleanField(label=_("Active"), required=False, initial=True)

    def __init__(self, *args: Any, segment: Segment | None = None, **kwargs: Any) -> None:
        self.segment = segment
        if segment is not None:
            kwargs.setdefault(
                "initial",
                {
                    "name": segment.name,
                    "key": segment.key,
                    "description": segment.description,
                    "expression": segment.expression,
                    "is_active": segment.is_active,
                },
            )
        super().__init__(*args, **kwargs)
        if segment is not None:
            self.fields["key"].disabled = True
            self.fields["key"].help_text = _("The key cannot be changed.")

    def clean_key(self) -> str:
        key = str(self.cleaned_data.get("key") or "").strip()
        if self.segment is not None:
            return self.segment.key
        if key and not KEY_PATTERN.match(key):
            raise forms.ValidationError(
                _(
                    "Use lower-case letters, digits, '-' and '_' (at most 50, starting with a "
                    "letter or digit)."
                )
            )
        if key and Segment.objects.filter(key=key).exists():
            raise forms.ValidationError(_("A segment with this key exists."))
        return key

    def clean_expression(self) -> str:
        expression = str(self.cleaned_data.get("expression") or "").strip()
        try:
            self.cleaned_data["rule"] = conditions.parse(expression)
        except conditions.ConditionError as error:
            raise forms.ValidationError(str(error)) from None
        return expression
