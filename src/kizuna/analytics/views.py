"""Thin views over analytics services and selectors: Settings → Sources and Metrics, and the
Customer 360 usage panel (an htmx fragment, or a page of its own when opened directly)."""

from datetime import date, timedelta
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.forms import BaseForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from kizuna.analytics import configuration, external, history, selectors, stats
from kizuna.analytics import sources as source_services
from kizuna.analytics.forms import MetricDefinitionForm, SourceForm, UsageSettingsForm
from kizuna.analytics.models import MetricDefinition, Source, UsageSettings
from kizuna.analytics.presentation import metric_name, metric_values
from kizuna.core.access import requires, user_can
from kizuna.core.models import User
from kizuna.core.roles import Capability
from kizuna.customers.models import Customer

# Periods the usage chart offers (days ending today); feature use is always the last 28 days.
CHART_PERIODS = (90, 180, 365)
FEATURE_DAYS = 28


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


def _add_errors(form: BaseForm, error: ValidationError) -> None:
    if hasattr(error, "error_dict"):
        for field, errors in error.error_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, error)


# --- Settings → Sources ------------------------------------------------------------------------


def ingest_host(request: HttpRequest) -> str:
    """The address an SDK sends events to: ``KIZUNA_INGEST_HOST`` or this site's own."""
    configured = str(settings.KIZUNA_INGEST_HOST or "").strip().rstrip("/")
    if configured:
        return configured if "://" in configured else f"https://{configured}"
    return f"{request.scheme}://{request.get_host()}"


def _sources_page(
    request: HttpRequest, form: SourceForm, *, status: int = 200, **extra: Any
) -> HttpResponse:
    host = ingest_host(request)
    totals = stats.event_stats()
    context = {
        "area": "settings",
        "tab": "sources",
        "form": form,
        "sources": stats.sources_overview(),
        "rejections": stats.recent_rejections(limit=20),
        "totals": totals,
        "rejected_by_reason": [
            (reason, str(stats.REASON_LABELS.get(reason, reason)), count)
            for reason, count in totals["rejected_by_reason"].items()
        ],
        "ingest_host": host,
        "ingest_host_bare": host.split("://", 1)[-1],
        "ingest_protocol": host.split("://", 1)[0],
        **extra,
    }
    return render(request, "analytics/sources.html", context, status=status)


@require_http_methods(["GET", "POST"])
@requires(Capability.MANAGE_SOURCES)
def sources(request: HttpRequest) -> HttpResponse:
    """Sources and their write keys; POST creates one and shows its write key this once."""
    if request.method == "GET":
        return _sources_page(request, SourceForm())
    form = SourceForm(request.POST)
    if form.is_valid():
        try:
            source, write_key = source_services.create_source(
                name=form.cleaned_data["name"],
                group_id_trait=form.cleaned_data["group_id_trait"],
                created_by=_user(request),
            )
        except ValidationError as error:
            _add_errors(form, error)
        else:
            # Rendered, not redirected: the key exists only in this response.
            response = _sources_page(request, SourceForm(), new_source=source, write_key=write_key)
            response["Cache-Control"] = "no-store"
            return response
    return _sources_page(request, form, status=400)


@require_http_methods(["GET", "POST"])
@requires(Capability.MANAGE_SOURCES)
def source_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    """GET asks for confirmation; POST revokes the write key (apps using it get 401)."""
    source = get_object_or_404(Source, pk=pk)
    if request.method == "GET":
        context = {"area": "settings", "tab": "sources", "source": source}
        return render(request, "analytics/source_revoke.html", context)
    source_services.revoke_source(name=source.name)
    messages.success(request, _("The write key of “%(name)s” was revoked.") % {"name": source.name})
    return redirect("analytics:sources")


# --- Settings → Metrics ------------------------------------------------------------------------


def _metrics_page(
    request: HttpRequest,
    usage_form: UsageSettingsForm | None = None,
    *,
    status: int = 200,
    **extra: Any,
) -> HttpResponse:
    definitions = list(MetricDefinition.objects.select_related("base_metric"))
    context = {
        "area": "settings",
        "tab": "metrics",
        "definitions": [
            {"definition": definition, "name": metric_name(definition)}
            for definition in definitions
        ],
        "usage_form": usage_form or UsageSettingsForm(instance=UsageSettings.load()),
        "today": timezone.localdate(),
        **extra,
    }
    return render(request, "analytics/metrics.html", context, status=status)


@require_GET
@requires(Capability.MANAGE_METRICS)
def metrics(request: HttpRequest) -> HttpResponse:
    return _metrics_page(request)


@require_http_methods(["GET", "POST"])
@requires(Capability.MANAGE_METRICS)
def metric_form(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    """Create (no ``pk``) or edit a metric definition."""
    definition = get_object_or_404(MetricDefinition, pk=pk) if pk is not None else None
    form = MetricDefinitionForm(request.POST or None, instance=definition)
    if request.method == "POST" and form.is_valid():
        try:
            saved = configuration.save_metric_definition(
                definition=definition, fields=form.cleaned_data
            )
        except ValidationError as error:
            _add_errors(form, error)
        else:
            messages.success(
                request,
                _("Metric “%(key)s” saved. It is computed from the next metrics run.")
                % {"key": saved.key},
            )
            return redirect("analytics:metrics")
    context = {"area": "settings", "tab": "metrics", "form": form, "definition": definition}
    status = 400 if request.method == "POST" else 200
    return render(request, "analytics/metric_form.html", context, status=status)


@require_POST
@requires(Capability.MANAGE_METRICS)
def metric_active(request: HttpRequest, pk: int) -> HttpResponse:
    """Switch a metric definition off (``active=0``) or back on (``active=1``)."""
    definition = get_object_or_404(MetricDefinition, pk=pk)
    active = request.POST.get("active") == "1"
    try:
        configuration.set_metric_active(metric_id=definition.pk, active=active)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        message = _("Metric “%(key)s” activated.") if active else _("Metric “%(key)s” deactivated.")
        messages.success(request, message % {"key": definition.key})
    return redirect("analytics:metrics")


@require_POST
@requires(Capability.MANAGE_METRICS)
def usage_settings(request: HttpRequest) -> HttpResponse:
    """Save the usage settings, or (button ``check``) save and check the external source."""
    form = UsageSettingsForm(request.POST, instance=UsageSettings.load())
    if not form.is_valid():
        return _metrics_page(request, form, status=400)
    configuration.save_usage_settings(
        qualifying_event_types=form.cleaned_data["qualifying_event_types"],
        key_features=form.cleaned_data["key_features"],
        external_connection=form.cleaned_data["external_connection"],
        external_table=form.cleaned_data["external_table"],
        external_columns=form.cleaned_data["external_columns"],
    )
    if "check" not in request.POST:
        messages.success(request, _("Usage settings saved. They apply from the next metrics run."))
        return redirect("analytics:metrics")
    problems = external.check_external_source()
    return _metrics_page(
        request,
        UsageSettingsForm(instance=UsageSettings.load()),
        external_checked=True,
        external_problems=problems,
    )


# --- Customer 360 usage panel ------------------------------------------------------------------


def _period(request: HttpRequest) -> int:
    try:
        days = int(request.GET.get("days", CHART_PERIODS[0]))
    except ValueError:
        return CHART_PERIODS[0]
    return days if days in CHART_PERIODS else CHART_PERIODS[0]


def _chart_data(daily: list[selectors.DailyUsage], features: list[selectors.FeatureUse]) -> Any:
    return {
        "labels": [row.day.isoformat() for row in daily],
        "series": [
            {
                "key": "active_users_7d",
                "label": _("Active users (7 days)"),
                "axis": "users",
                "data": [row.active_users_7d for row in daily],
            },
            {
                "key": "active_users_28d",
                "label": _("Active users (28 days)"),
                "axis": "users",
                "data": [row.active_users_28d for row in daily],
            },
            {
                "key": "events",
                "label": _("Events per day"),
                "axis": "events",
                "data": [row.events for row in daily],
            },
        ],
        "axes": {"users": _("Users"), "events": _("Events")},
        "features": {
            "labels": [feature.feature for feature in features],
            "label": _("Events in the last 28 days"),
            "data": [feature.events for feature in features],
            "key": [feature.is_key for feature in features],
        },
    }


@require_GET
@requires(Capability.VIEW)
def customer_usage(request: HttpRequest, pk: int) -> HttpResponse:
    """Latest metric values, usage over time and per-feature use of one customer."""
    customer = get_object_or_404(Customer, pk=pk)
    days = _period(request)
    today: date = timezone.localdate()
    usage = selectors.usage_overview(
        customer_id=customer.pk,
        start=today - timedelta(days=days - 1),
        end=today,
        feature_days=FEATURE_DAYS,
    )
    daily, features = usage.daily, usage.features
    metrics_rows = metric_values(history.latest_metrics(customer.pk))
    in_period = any(row.events for row in daily)
    last = daily[-1] if daily else None
    context = {
        "customer": customer,
        "days": days,
        "periods": CHART_PERIODS,
        "metrics": metrics_rows,
        "has_events": usage.has_events,
        "in_period": in_period,
        "summary": {
            "active_users_7d": last.active_users_7d if last else 0,
            "active_users_28d": last.active_users_28d if last else 0,
            "events_28d": sum(row.events for row in daily[-FEATURE_DAYS:]),
            "features_28d": len(features),
        },
        "features": features,
        "chart_data": _chart_data(daily, features) if in_period else None,
        "chart_data_id": f"usage-data-{customer.pk}",
        "can_manage_sources": user_can(request.user, Capability.MANAGE_SOURCES),
    }
    template = "analytics/customer_usage.html"
    if request.htmx:  # type: ignore[attr-defined] # django-htmx
        template += "#panel"
    return render(request, template, context)
