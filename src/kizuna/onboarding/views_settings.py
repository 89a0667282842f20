"""Settings → Onboarding calendar: company-wide onboarding settings and the holidays that
move due dates."""

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods, require_POST

from kizuna.core.access import requires
from kizuna.core.roles import Capability
from kizuna.onboarding.models import Holiday, OnboardingSettings


class OnboardingSettingsForm(forms.ModelForm):  # type: ignore[type-arg] # django-stubs generic
    class Meta:
        model = OnboardingSettings
        fields = ("skip_weekends", "create_plans_automatically", "at_risk_days", "link_days")

    def clean_link_days(self) -> int:
        days = int(self.cleaned_data["link_days"])
        if not 1 <= days <= 366:
            raise forms.ValidationError(gettext_lazy("Between 1 and 366 days."))
        return days


class HolidayForm(forms.ModelForm):  # type: ignore[type-arg] # django-stubs generic
    class Meta:
        model = Holiday
        fields = ("day", "name")
        widgets = {"day": forms.DateInput(attrs={"type": "date"})}


@require_http_methods(["GET", "POST"])
@requires(Capability.MANAGE_PROGRAMS)
def onboarding_settings(request: HttpRequest) -> HttpResponse:
    """The settings form and the holiday list; each form posts here with its own button."""
    current = OnboardingSettings.load()
    settings_form = OnboardingSettingsForm(instance=current)
    holiday_form = HolidayForm()
    status = 200
    if request.method == "POST" and "save_settings" in request.POST:
        settings_form = OnboardingSettingsForm(request.POST, instance=current)
        if settings_form.is_valid():
            settings_form.save()
            messages.success(request, _("Onboarding settings saved."))
            return redirect("onboarding:settings")
        status = 400
    elif request.method == "POST":
        holiday_form = HolidayForm(request.POST)
        if holiday_form.is_valid():
            holiday = holiday_form.save()
            messages.success(
                request, _("Holiday %(day)s added.") % {"day": holiday.day.isoformat()}
            )
            return redirect("onboarding:settings")
        status = 400
    context = {
        "settings_form": settings_form,
        "holiday_form": holiday_form,
        "holidays": Holiday.objects.order_by("day"),
        "area": "settings",
        "tab": "onboarding-settings",
    }
    return render(request, "onboarding/settings.html", context, status=status)


@require_POST
@requires(Capability.MANAGE_PROGRAMS)
def holiday_delete(request: HttpRequest, pk: int) -> HttpResponse:
    holiday = get_object_or_404(Holiday, pk=pk)
    holiday.delete()
    messages.success(request, _("Holiday %(day)s removed.") % {"day": holiday.day.isoformat()})
    return redirect("onboarding:settings")
