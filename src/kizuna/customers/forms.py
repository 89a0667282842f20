"""Forms of the customer pages and the product catalog: they parse and validate, services write."""

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from kizuna.core.models import MANUAL_TIMELINE_KINDS, User
from kizuna.customers.models import (
    Contact,
    Customer,
    LifecycleStage,
    Plan,
    Product,
    SalesHandoff,
    Subscription,
    TouchModel,
)
from kizuna.customers.selectors import CUSTOMER_SORTS


def _active_users() -> Any:
    return User.objects.filter(is_active=True).order_by("username")


class OwnerChoiceField(forms.ModelChoiceField):  # type: ignore[type-arg] # django-stubs generic
    def label_from_instance(self, obj: Any) -> str:
        return str(obj.display_name)


class DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(format="%Y-%m-%d", **kwargs)


class CustomerFilterForm(forms.Form):
    """The list page's GET form. Unknown values are dropped rather than refused."""

    q = forms.CharField(label=_("Search"), required=False, max_length=200)
    stage = forms.ChoiceField(label=_("Stage"), required=False)
    touch_model = forms.ChoiceField(label=_("Touch model"), required=False)
    segment = forms.ChoiceField(label=_("Segment"), required=False)
    owner = forms.TypedChoiceField(label=_("Owner"), required=False, coerce=int, empty_value=None)
    sort = forms.ChoiceField(required=False, choices=[(key, key) for key in CUSTOMER_SORTS])

    def __init__(self, data: Any, *, segments: list[str], owners: list[User]) -> None:
        super().__init__(data)
        any_choice = [("", _("All"))]
        self.fields["stage"].choices = any_choice + list(LifecycleStage.choices)  # type: ignore[attr-defined] # ChoiceField
        self.fields["touch_model"].choices = any_choice + list(TouchModel.choices)  # type: ignore[attr-defined] # ChoiceField
        self.fields["segment"].choices = any_choice + [(s, s) for s in segments]  # type: ignore[attr-defined] # ChoiceField
        self.fields["owner"].choices = any_choice + [(u.pk, u.display_name) for u in owners]  # type: ignore[attr-defined] # ChoiceField

    def filters(self) -> dict[str, Any]:
        """Valid filters as keyword arguments of ``customer_list``; invalid ones are ignored."""
        self.is_valid()
        data = getattr(self, "cleaned_data", {})
        return {
            "search": (data.get("q") or "").strip(),
            "stage": data.get("stage") or "",
            "touch_model": data.get("touch_model") or "",
            "segment": data.get("segment") or "",
            "owner_id": data.get("owner"),
            "sort": data.get("sort") or "name",
        }


class CustomerForm(forms.ModelForm):  # type: ignore[type-arg] # django-stubs generic
    onboarding_owner = OwnerChoiceField(
        queryset=User.objects.none(), required=False, label=_("onboarding CSM")
    )
    adoption_owner = OwnerChoiceField(
        queryset=User.objects.none(), required=False, label=_("adoption CSM")
    )
    expansion_owner = OwnerChoiceField(
        queryset=User.objects.none(), required=False, label=_("expansion CSM")
    )

    class Meta:
        model = Customer
        fields = (
            "name", "external_id", "domain", "industry", "employee_count", "region", "segment",
            "lifecycle_stage", "touch_model", "onboarding_owner", "adoption_owner",
            "expansion_owner", "churn_date", "churn_reason",
        )  # fmt: skip
        widgets = {"churn_date": DateInput()}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in ("onboarding_owner", "adoption_owner", "expansion_owner"):
            self.fields[name].queryset = _active_users()  # type: ignore[attr-defined] # ModelChoiceField

    def clean_external_id(self) -> str | None:
        # An empty external id means "none": store NULL so the unique constraint allows many.
        value = self.cleaned_data.get("external_id")
        return value or None


class ContactForm(forms.ModelForm):  # type: ignore[type-arg] # django-stubs generic
    class Meta:
        model = Contact
        fields = (
            "name", "email", "phone", "job_title", "role", "language", "product_user_id",
            "external_id", "started_on", "ended_on",
        )  # fmt: skip
        widgets = {"started_on": DateInput(), "ended_on": DateInput()}

    def clean_external_id(self) -> str | None:
        return self.cleaned_data.get("external_id") or None

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        started, ended = data.get("started_on"), data.get("ended_on")
        if started and ended and ended < started:
            self.add_error("ended_on", _("The end of involvement cannot be before its start."))
        return data


class SubscriptionForm(forms.ModelForm):  # type: ignore[type-arg] # django-stubs generic
    class Meta:
        model = Subscription
        fields = (
            "product", "plan", "quantity", "unit", "mrr", "currency", "bill_period_months",
            "discount", "start_date", "end_date", "status", "external_id",
        )  # fmt: skip
        widgets = {"start_date": DateInput(), "end_date": DateInput()}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["plan"].queryset = Plan.objects.select_related("product")  # type: ignore[attr-defined] # ModelChoiceField

    def clean_external_id(self) -> str | None:
        return self.cleaned_data.get("external_id") or None

    def clean_currency(self) -> str:
        return str(self.cleaned_data.get("currency") or "").strip().upper()

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        product, plan = data.get("product"), data.get("plan")
        if product and plan and plan.product_id != product.pk:
            self.add_error("plan", _("This plan belongs to another product."))
        start, end = data.get("start_date"), data.get("end_date")
        if start and end and end < start:
            self.add_error("end_date", _("The end date cannot be before the start date."))
        return data


class HandoffForm(forms.ModelForm):  # type: ignore[type-arg] # django-stubs generic
    class Meta:
        model = SalesHandoff
        fields = (
            "desired_outcomes", "pains", "stakeholders", "contract_notes", "risks",
            "handed_off_on",
        )  # fmt: skip
        widgets = {
            "handed_off_on": DateInput(),
            **{
                name: forms.Textarea(attrs={"rows": 2})
                for name in ("desired_outcomes", "pains", "stakeholders", "contract_notes", "risks")
            },
        }

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        texts = ("desired_outcomes", "pains", "stakeholders", "contract_notes", "risks")
        if not any(str(data.get(name) or "").strip() for name in texts):
            raise forms.ValidationError(_("Write at least one of the handoff's fields."))
        return data


class TimelineEntryForm(forms.Form):
    kind = forms.ChoiceField(
        label=_("Kind"), choices=[(kind.value, kind.label) for kind in MANUAL_TIMELINE_KINDS]
    )
    title = forms.CharField(label=_("Title"), max_length=200)
    body = forms.CharField(
        label=_("Details"), required=False, widget=forms.Textarea(attrs={"rows": 3})
    )
    occurred_at = forms.DateTimeField(
        label=_("When"),
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        help_text=_("Leave empty for now."),
    )


class ProductForm(forms.ModelForm):  # type: ignore[type-arg] # django-stubs generic
    class Meta:
        model = Product
        fields = ("code", "name", "description", "is_active")
        widgets = {"description": forms.Textarea(attrs={"rows": 2})}


class PlanForm(forms.ModelForm):  # type: ignore[type-arg] # django-stubs generic
    class Meta:
        model = Plan
        fields = ("product", "code", "name", "tier_rank")
