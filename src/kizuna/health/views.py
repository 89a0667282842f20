"""Health pages (thin: parse, check access, call one selector or service, render).

The portfolio's Health page, the churn model's page, the Customer 360 "Health" panel with the
CSM's writes (close a signal, record sentiment) and the cells of the customer list's health
column. Settings → Health scorecards and Risk signals are in ``views_settings``.
"""

import logging
from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from kizuna.core.access import requires, user_can
from kizuna.core.models import User
from kizuna.core.roles import Capability
from kizuna.customers.models import Customer
from kizuna.customers.selectors import segments
from kizuna.health import charts, presentation
from kizuna.health.forms import CloseSignalForm, OverviewFilterForm, SentimentForm, TrainForm
from kizuna.health.models import (
    Band,
    ChurnModel,
    ChurnPrediction,
    CsmSentiment,
    HealthScore,
    RiskSignal,
)
from kizuna.health.sentiment import record_sentiment

logger = logging.getLogger(__name__)

SIGNALS_PER_PAGE = 25
PREDICTIONS_PER_PAGE = 25
HISTORY_DAYS = 365
PAST_SIGNALS = 10


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


def _htmx(request: HttpRequest) -> bool:
    return bool(getattr(request, "htmx", False))


# --- The Health page -----------------------------------------------------------------------------


def _filtered_signals(filters: dict[str, Any]) -> QuerySet[RiskSignal]:
    """Open signals of the filtered customers, most severe first, then newest."""
    from kizuna.health.signals import open_signals

    signals = open_signals()
    if filters["segment"]:
        signals = signals.filter(customer__segment=filters["segment"])
    if filters["touch_model"]:
        signals = signals.filter(customer__touch_model=filters["touch_model"])
    if filters["owner_id"]:
        owner = filters["owner_id"]
        signals = signals.filter(
            Q(customer__onboarding_owner_id=owner)
            | Q(customer__adoption_owner_id=owner)
            | Q(customer__expansion_owner_id=owner)
        )
    return signals


@require_GET
@requires(Capability.VIEW)
def overview(request: HttpRequest) -> HttpResponse:
    """The portfolio's health: bands, at-risk ARR, movers and open signals, filterable."""
    from kizuna.health.selectors import health_overview

    owners = list(User.objects.filter(is_active=True).order_by("username"))
    form = OverviewFilterForm(request.GET, segments=segments(), owners=owners)
    filters = form.filters()
    data = health_overview(**filters)
    page = Paginator(_filtered_signals(filters), SIGNALS_PER_PAGE).get_page(request.GET.get("page"))
    context = {
        "area": "health",
        "form": form,
        "filtered": any(value for value in filters.values()),
        "overview": presentation.overview(data),
        "page": page,
        "signal_rows": presentation.signal_rows(page.object_list),
        "nothing_scored": not HealthScore.objects.exists(),
    }
    template = "health/overview.html"
    if _htmx(request) and request.htmx.target == "health-signals":  # type: ignore[attr-defined] # django-htmx
        template += "#signals"
    return render(request, template, context)


# --- The churn model -----------------------------------------------------------------------------


@require_GET
@requires(Capability.VIEW)
def model_page(request: HttpRequest) -> HttpResponse:
    """The current churn model's measured accuracy and the customers most at risk."""
    from kizuna.health.churn import current_model

    model = current_model()
    latest_failed = ChurnModel.objects.exclude(error="").order_by("-trained_at", "-id").first()
    if latest_failed and model and latest_failed.trained_at < model.trained_at:
        latest_failed = None
    predictions = ChurnPrediction.objects.none()
    if model is not None:
        latest_day = (
            ChurnPrediction.objects.filter(model=model).order_by("-day").values("day").first()
        )
        if latest_day:
            predictions = (
                ChurnPrediction.objects.filter(model=model, day=latest_day["day"])
                .select_related("customer")
                .order_by("-probability", "customer_id")
            )
    page = Paginator(predictions, PREDICTIONS_PER_PAGE).get_page(request.GET.get("page"))
    context = {
        "area": "health",
        "model": model,
        "accuracy": presentation.model_accuracy(model) if model else None,
        "failed": latest_failed,
        "page": page,
        "prediction_rows": [presentation.prediction(p) for p in page.object_list],
        "can_train": user_can(request.user, Capability.MANAGE_HEALTH),
        "train_form": TrainForm(initial={"kind": model.kind if model else "logistic"}),
    }
    return render(request, "health/model.html", context)


@require_POST
@requires(Capability.MANAGE_HEALTH)
def train(request: HttpRequest) -> HttpResponse:
    """Train a model now (synchronously: the demo's history trains in seconds)."""
    from kizuna.health.churn import train_model

    form = TrainForm(request.POST)
    if not form.is_valid():
        for field, errors in form.errors.items():
            label = form.fields[field].label if field in form.fields else ""
            text = " ".join(str(error) for error in errors)
            messages.error(request, f"{label}: {text}" if label else text)
        return redirect("health:model")
    data = form.cleaned_data
    try:
        model = train_model(
            as_of=data["as_of"] or timezone.localdate(),
            kind=data["kind"],
            horizon_days=data["horizon_days"],
        )
    except Exception as exc:  # a failed training is reported, never a 500 (logged in full)
        logger.exception("training the churn model failed")
        messages.error(request, _("The model could not be trained: {error}").format(error=exc))
        return redirect("health:model")
    if model.error:
        messages.error(
            request, _("The model could not be trained: {error}").format(error=model.error)
        )
    else:
        messages.success(
            request,
            _("Model trained on {rows} rows ({positives} churned).").format(
                rows=model.rows, positives=model.positives
            ),
        )
    return redirect("health:model")


# --- Customer 360 panel --------------------------------------------------------------------------


def _panel_context(request: HttpRequest, customer: Customer, **extra: Any) -> dict[str, Any]:
    from kizuna.health.churn import latest_predictions
    from kizuna.health.selectors import explain, latest_scores, score_history
    from kizuna.health.signals import open_signals

    today = timezone.localdate()
    latest = latest_scores([customer.pk]).get(customer.pk)
    context: dict[str, Any] = {
        "customer": customer,
        "score": latest,
        "can_write": user_can(request.user, Capability.WRITE_TIMELINE),
        "close_form": CloseSignalForm(),
        "sentiment_form": SentimentForm(),
    }
    if latest is not None:
        context["breakdown"] = presentation.breakdown(latest)
        context["explanation"] = presentation.explanation(explain(customer_id=customer.pk))
        history = score_history(
            customer_id=customer.pk, start=latest.day - timedelta(days=HISTORY_DAYS), end=latest.day
        )
        context["history_chart"] = charts.history_chart(
            [row.day for row in history],
            [row.score for row in history],
            good_from=latest.version.good_from,
            watch_from=latest.version.watch_from,
        )
    context["open_signals"] = presentation.signal_rows(open_signals(customer_ids=[customer.pk]))
    context["past_signals"] = presentation.signal_rows(
        RiskSignal.objects.filter(customer=customer, closed_on__isnull=False).order_by(
            "-closed_on", "-id"
        )[:PAST_SIGNALS]
    )
    prediction = latest_predictions([customer.pk]).get(customer.pk)
    context["prediction"] = presentation.prediction(prediction) if prediction else None
    context["sentiment"] = (
        CsmSentiment.objects.filter(customer=customer, recorded_on__lte=today)
        .select_related("recorded_by")
        .first()
    )
    context.update(extra)
    return context


def _panel(
    request: HttpRequest, customer: Customer, *, status: int = 200, **extra: Any
) -> HttpResponse:
    template = "health/customer_panel.html"
    if _htmx(request):
        template += "#panel"
    return render(request, template, _panel_context(request, customer, **extra), status=status)


@require_GET
@requires(Capability.VIEW)
def customer_health(request: HttpRequest, pk: int) -> HttpResponse:
    """The customer's score and why, its history, signals, churn probability and sentiment."""
    return _panel(request, get_object_or_404(Customer, pk=pk))


@require_POST
@requires(Capability.WRITE_TIMELINE)
def signal_close(request: HttpRequest, pk: int) -> HttpResponse:
    """Close an open signal as resolved or dismissed, with a note (lands on the timeline)."""
    from kizuna.health.signals import SignalError, close_signal

    signal = get_object_or_404(RiskSignal.objects.select_related("customer"), pk=pk)
    form = CloseSignalForm(request.POST)
    if signal.closed_on is not None:
        form.is_valid()
        form.add_error(None, _("This signal is already closed."))
    if form.errors or not form.is_valid():
        return _panel(
            request,
            signal.customer,
            status=400,
            close_form=form,
            close_signal=pk,
            close_signal_open=signal.closed_on is None,
        )
    try:
        close_signal(
            signal_id=signal.pk,
            resolution=form.cleaned_data["resolution"],
            note=form.cleaned_data["note"],
            user=_user(request),
        )
    except SignalError as exc:  # closed meanwhile by someone else
        form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        return _panel(request, signal.customer, status=400, close_form=form, close_signal=pk)

    if _htmx(request):
        return _panel(request, signal.customer)
    messages.success(request, _("Signal closed."))
    return redirect("customers:detail", signal.customer_id)


@require_POST
@requires(Capability.WRITE_TIMELINE)
def sentiment(request: HttpRequest, pk: int) -> HttpResponse:
    """Record the CSM's sentiment (1–5 and a note)."""
    customer = get_object_or_404(Customer, pk=pk)
    form = SentimentForm(request.POST)
    if not form.is_valid():
        return _panel(request, customer, status=400, sentiment_form=form)
    record_sentiment(
        customer_id=customer.pk,
        sentiment=form.cleaned_data["sentiment"],
        note=form.cleaned_data["note"],
        user=_user(request),
    )
    if _htmx(request):
        return _panel(request, customer)
    messages.success(request, _("Sentiment recorded."))
    return redirect("customers:detail", customer.pk)


# --- The customer list's column ------------------------------------------------------------------


def list_cells(customer_ids: list[int]) -> dict[int, str]:
    """A band badge, the score and a 90-day sparkline per customer (two queries per page)."""
    from kizuna.health.selectors import latest_scores, sparklines

    scores = latest_scores(customer_ids)
    lines = sparklines(list(scores), days=90)
    cells: dict[int, str] = {}
    for customer_id, score in scores.items():
        if score.score is None:
            cells[customer_id] = format_html(
                '<span class="muted" title="{}">—</span>', _("Not scored: every measure missing")
            )
            continue
        cells[customer_id] = format_html(
            '<span class="health-cell" data-band="{}" style="white-space:nowrap">'
            '<span class="badge band-{}" style="background:{};color:{}">{}</span> '
            '<span class="num">{}</span> {}</span>',
            score.band,
            score.band,
            charts.BAND_FILLS.get(score.band, "#eef1f4"),
            charts.BAND_COLOURS.get(score.band, "#5d6778"),
            Band(score.band).label if score.band else "—",
            round(score.score),
            charts.sparkline(lines.get(customer_id, []), band=score.band),
        )
    return cells
