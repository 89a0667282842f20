"""Thin views: Settings → Touch models and Stages, the lifecycle run button, and the Customer
360 "Lifecycle" panel (an htmx fragment, or a page of its own when opened directly)."""

import logging
from datetime import date
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.forms import BaseForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from kizuna.core.access import requires, user_can
from kizuna.core.models import User
from kizuna.core.roles import Capability
from kizuna.customers.models import Customer, LifecycleStage, TouchModel
from kizuna.lifecycle import jobs, stages, touch
from kizuna.lifecycle.forms_policy import (
    StageMoveForm,
    StageSettingsForm,
    TouchOverrideForm,
    TouchPolicyForm,
)
from kizuna.lifecycle.models import LifecycleSettings, Segment

logger = logging.getLogger(__name__)


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


def _add_errors(form: BaseForm, error: ValidationError) -> None:
    if hasattr(error, "error_dict"):
        for field, errors in error.error_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, error)


# --- Settings → Touch models -------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@requires(Capability.MANAGE_LIFECYCLE)
def touch_policy(request: HttpRequest) -> HttpResponse:
    """The policy grid; saving re-applies the touch models at once and says how many changed."""
    form = TouchPolicyForm(request.POST or None, grid=touch.policy_grid())
    if request.method == "POST" and form.is_valid():
        try:
            with transaction.atomic():
                touch.save_policy(form.policy_cells())
                touch.save_touch_settings(**form.settings_fields())
        except ValidationError as error:
            form.add_service_errors(error)
        else:
            changed = touch.apply_touch_models(timezone.localdate(), actor=_user(request))
            messages.success(
                request,
                ngettext(
                    "Touch-model policy saved; %(count)d customer changed touch model.",
                    "Touch-model policy saved; %(count)d customers changed touch model.",
                    changed,
                )
                % {"count": changed},
            )
            return redirect("lifecycle:touch-policy")
    context = {"area": "settings", "tab": "touch-policy", "form": form}
    status = 400 if request.method == "POST" else 200
    return render(request, "lifecycle/touch_policy.html", context, status=status)


# --- Settings → Stages -------------------------------------------------------------------------


def _stage_page(
    request: HttpRequest, form: StageSettingsForm, *, status: int = 200
) -> HttpResponse:
    run = jobs.last_run()
    context = {
        "area": "settings",
        "tab": "stages",
        "form": form,
        "last_run": run,
        "last_run_counts": jobs.run_counts(run) if run else [],
    }
    return render(request, "lifecycle/stage_settings.html", context, status=status)


@require_http_methods(["GET", "POST"])
@requires(Capability.MANAGE_LIFECYCLE)
def stage_settings(request: HttpRequest) -> HttpResponse:
    """Entry criteria, reactivation days, automation on/off, and the last run."""
    form = StageSettingsForm(request.POST or None, instance=LifecycleSettings.load())
    if request.method == "GET":
        return _stage_page(request, form)
    if form.is_valid():
        try:
            stages.save_stage_settings(**form.cleaned_data)
        except ValidationError as error:
            _add_errors(form, error)
        else:
            messages.success(
                request, _("Stage settings saved. They apply from the next lifecycle run.")
            )
            return redirect("lifecycle:stage-settings")
    return _stage_page(request, form, status=400)


@require_POST
@requires(Capability.MANAGE_LIFECYCLE)
def run_now(request: HttpRequest) -> HttpResponse:
    """Run segments, stages, touch models and assignment now, for today."""
    try:
        run = jobs.run_lifecycle()
    except jobs.LifecycleRunInProgressError as error:
        messages.error(request, str(error))
    except stages.StageCriterionError as error:
        messages.error(request, _("The run stopped: %(error)s") % {"error": error})
    except Exception as error:
        logger.exception("lifecycle run failed")
        messages.error(request, _("The run failed: %(error)s") % {"error": error})
    else:
        summary = ", ".join(f"{label} {count}" for _key, label, count in jobs.run_counts(run))
        messages.success(request, _("Lifecycle run finished: %(summary)s.") % {"summary": summary})
    return redirect("lifecycle:stage-settings")


# --- Customer 360 → Lifecycle ------------------------------------------------------------------


def _panel_context(
    request: HttpRequest,
    customer: Customer,
    *,
    stage_form: StageMoveForm | None = None,
    override_form: TouchOverrideForm | None = None,
    saved: str = "",
) -> dict[str, Any]:
    can_edit = user_can(request.user, Capability.EDIT_CUSTOMERS)
    today: date = timezone.localdate()
    since = stages.stage_since(customer.pk)
    segment_name = (
        Segment.objects.filter(key=customer.segment).values_list("name", flat=True).first()
        if customer.segment
        else None
    )
    return {
        "customer": customer,
        "segment_name": segment_name or customer.segment,
        "stage_since": since,
        "days_in_stage": (today - since).days if since else None,
        "override": touch.active_override(customer.pk),
        "history": stages.lifecycle_history(customer.pk),
        "can_edit": can_edit,
        "stage_form": stage_form
        or (StageMoveForm(current=customer.lifecycle_stage) if can_edit else None),
        "override_form": override_form or (TouchOverrideForm() if can_edit else None),
        "saved": saved,
    }


def _panel(
    request: HttpRequest, customer: Customer, *, status: int = 200, **context: Any
) -> HttpResponse:
    template = "lifecycle/customer_lifecycle.html"
    if request.htmx:  # type: ignore[attr-defined] # django-htmx
        template += "#panel"
    return render(request, template, _panel_context(request, customer, **context), status=status)


def _after_post(
    request: HttpRequest, customer: Customer, *, ok: bool, saved: str, **forms: Any
) -> HttpResponse:
    """htmx: the panel again (errors inline, or the message); otherwise back to Customer 360,
    or the panel page with the errors (400)."""
    if request.htmx:  # type: ignore[attr-defined] # django-htmx
        return _panel(request, customer, saved=saved if ok else "", **({} if ok else forms))
    if ok:
        messages.success(request, saved)
        return redirect(reverse("customers:detail", args=[customer.pk]) + "#panel-lifecycle")
    return _panel(request, customer, status=400, **forms)


@require_GET
@requires(Capability.VIEW)
def customer_lifecycle(request: HttpRequest, pk: int) -> HttpResponse:
    """Segment, stage, touch model (and override), the forms to change them, the history."""
    return _panel(request, get_object_or_404(Customer, pk=pk))


@require_POST
@requires(Capability.EDIT_CUSTOMERS)
def customer_stage(request: HttpRequest, pk: int) -> HttpResponse:
    """Move the customer's stage by hand, with a reason."""
    customer = get_object_or_404(Customer, pk=pk)
    form = StageMoveForm(request.POST, current=customer.lifecycle_stage)
    if form.is_valid():
        try:
            stages.move_stage(
                customer=customer,
                stage=form.cleaned_data["stage"],
                reason=form.cleaned_data["reason"],
                actor=_user(request),
            )
        except ValidationError as error:
            _add_errors(form, error)
    ok = not form.errors
    saved = _("Stage changed to %(stage)s.") % {
        "stage": LifecycleStage(customer.lifecycle_stage).label
    }
    return _after_post(request, customer, ok=ok, saved=saved, stage_form=form)


@require_POST
@requires(Capability.EDIT_CUSTOMERS)
def customer_touch_override(request: HttpRequest, pk: int) -> HttpResponse:
    """Set (or replace) the customer's touch-model override, with a reason and an expiry."""
    customer = get_object_or_404(Customer, pk=pk)
    form = TouchOverrideForm(request.POST)
    if form.is_valid():
        try:
            touch.set_override(customer=customer, actor=_user(request), **form.cleaned_data)
        except ValidationError as error:
            _add_errors(form, error)
    ok = not form.errors
    saved = _("Touch model set to %(touch_model)s by override.") % {
        "touch_model": TouchModel(customer.touch_model).label
    }
    return _after_post(request, customer, ok=ok, saved=saved, override_form=form)


@require_POST
@requires(Capability.EDIT_CUSTOMERS)
def customer_touch_override_end(request: HttpRequest, pk: int) -> HttpResponse:
    """End the override; the policy's touch model applies again at once."""
    customer = get_object_or_404(Customer, pk=pk)
    if touch.end_override(customer=customer, actor=_user(request)):
        saved = _("Override ended; the touch model is %(touch_model)s by policy.") % {
            "touch_model": TouchModel(customer.touch_model).label
        }
    else:
        saved = _("The customer has no override in force.")
    return _after_post(request, customer, ok=True, saved=saved)
