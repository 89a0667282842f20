"""REST endpoints of health (mounted under /api/v1 by kizuna.config.api).

A customer's health (score, measures, explanation, open signals, churn probability), score
history, the scores of a day, risk signals, scorecards and the churn model (read); the writes a
CSM makes: close a signal, record sentiment. Doors only: check the capability, parse typed input
(a wrong type is a 422 naming its field), call one service or selector, shape the answer. Rates
are fractions in [0, 1]; scores and points 0–100; undefined values are null.
"""

from datetime import date, datetime, timedelta
from math import ceil
from typing import Any, Literal

from django.core.exceptions import ValidationError
from django.db.models import Max, Q
from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.translation import gettext as _
from ninja import Field, Query, Router, Schema
from ninja.errors import HttpError
from ninja.responses import Status

from kizuna.core.access import require
from kizuna.core.models import User
from kizuna.core.roles import Capability
from kizuna.customers.api import ErrorOut, InSchema, Line300
from kizuna.customers.models import Customer
from kizuna.health import presentation
from kizuna.health.models import (
    Band,
    HealthScore,
    RiskSignal,
    Scorecard,
    ScorecardVersion,
    Severity,
    SignalKind,
)
from kizuna.health.selectors import Explanation

router = Router(tags=["health"])

PAGE_SIZE = 50
MAX_HISTORY_DAYS = 3 * 366
ERRORS: dict[int, Any] = {400: ErrorOut, 403: ErrorOut, 404: ErrorOut}


def _user(request: HttpRequest) -> User | None:
    return request.user if isinstance(request.user, User) else None


def _invalid(field: str, message: str) -> ValidationError:
    return ValidationError({field: [message]})


def _sane(field: str, day: date | None) -> None:
    if day is not None and not 2000 <= day.year <= 2999:
        raise _invalid(field, _("Give a date between the years 2000 and 2999."))


# --- Schemas -------------------------------------------------------------------------------------


class MeasureOut(Schema):
    key: str
    label: str
    source: str
    value: float | None = Field(description="The raw value (null: missing).")
    points: float | None = Field(description="0–100 (null: missing).")
    weight: float
    contribution: float | None = Field(description="Points × weight share; they sum to the score.")
    missing: bool


class ExplanationLineOut(Schema):
    key: str
    label: str
    value: float | None
    previous_value: float | None
    points: float | None
    contribution: float | None
    delta: float | None = Field(description="Change of the contribution in points.")
    missing: bool
    text: str = Field(description="The change as a sentence in the request's language.")


class ExplanationOut(Schema):
    day: date | None
    score: float | None
    previous_day: date | None
    previous_score: float | None
    lines: list[ExplanationLineOut] = Field(description="Sorted by the size of the change.")


class SignalOut(Schema):
    id: int
    customer: int
    customer_name: str
    kind: str
    severity: str
    reason: str = Field(description="In the request's language, from the stored details.")
    details: dict[str, Any]
    opened_on: date
    last_seen_on: date
    closed_on: date | None
    resolution: str
    resolution_note: str


class DriverOut(Schema):
    feature: str
    label: str
    value: float | None
    effect: float | None = Field(description="How much the feature raises the probability.")


class ChurnOut(Schema):
    probability: float = Field(description="Fraction in [0, 1].")
    day: date
    horizon_days: int
    model: int
    drivers: list[DriverOut]


class SentimentOut(Schema):
    sentiment: int = Field(description="1 (very negative) to 5 (very positive).")
    note: str
    recorded_on: date
    recorded_by: int | None


class CustomerHealthOut(Schema):
    customer: int
    day: date | None = Field(description="Day of the latest score (null: never scored).")
    score: float | None
    band: str = Field(description="good, watch, at_risk; empty when not scored.")
    scorecard: str | None
    version: int | None
    missing_weight: float | None = Field(description="Share of the weight that was missing.")
    measures: list[MeasureOut]
    explanation: ExplanationOut | None = Field(description="vs the score 28 days earlier.")
    open_signals: list[SignalOut]
    churn: ChurnOut | None
    sentiment: SentimentOut | None


class HistoryPointOut(Schema):
    day: date
    score: float | None
    band: str
    version: int


class ScoreOut(Schema):
    customer: int
    customer_name: str
    day: date
    score: float | None
    band: str
    missing_weight: float


class ScorePageOut(Schema):
    day: date | None
    items: list[ScoreOut]
    count: int
    page: int
    pages: int


class SignalPageOut(Schema):
    items: list[SignalOut]
    count: int
    page: int
    pages: int


class ScorecardMeasureOut(Schema):
    key: str
    label: str
    source: str
    metric_key: str
    weight: float
    mapping: str
    thresholds: list[list[float]]
    higher_is_better: bool


class ScorecardVersionOut(Schema):
    number: int
    status: str
    good_from: float
    watch_from: float
    change_note: str
    published_at: datetime | None
    measures: list[ScorecardMeasureOut]


class ScorecardOut(Schema):
    id: int
    name: str
    description: str
    touch_model: str = Field(description="Empty: any touch model.")
    segment: str = Field(description="Empty: any segment.")
    priority: int
    is_active: bool
    versions: list[ScorecardVersionOut]


class CalibrationPointOut(Schema):
    predicted: float | None
    observed: float | None
    count: int


class ModelOut(Schema):
    id: int
    kind: str
    horizon_days: int
    trained_at: datetime
    trained_through: date
    features: list[str]
    rows: int
    positives: int
    auc: float | None
    lift_top_decile: float | None
    baseline_auc: float | None = Field(description="AUC of the usage-drop rule on the same rows.")
    beats_baseline: bool | None
    calibration: list[CalibrationPointOut]
    periods: int | None


# --- Shaping -------------------------------------------------------------------------------------


def _signal_out(signal: RiskSignal) -> dict[str, Any]:
    return {
        "id": signal.pk,
        "customer": signal.customer_id,
        "customer_name": signal.customer.name,
        "kind": signal.kind,
        "severity": signal.severity,
        "reason": presentation.signal_reason(signal),
        "details": signal.details or {},
        "opened_on": signal.opened_on,
        "last_seen_on": signal.last_seen_on,
        "closed_on": signal.closed_on,
        "resolution": signal.resolution,
        "resolution_note": signal.resolution_note,
    }


def _explanation_out(explained: Explanation) -> dict[str, Any]:
    return {
        "day": explained.day,
        "score": explained.score,
        "previous_day": explained.previous_day,
        "previous_score": explained.previous_score,
        "lines": [
            {name: line.get(name) for name in ExplanationLineOut.model_fields}
            | {"missing": bool(line.get("missing"))}
            for line in explained.lines
        ],
    }


def _customer_health(customer: Customer) -> dict[str, Any]:
    from kizuna.health.churn import latest_predictions
    from kizuna.health.selectors import explain, latest_scores
    from kizuna.health.signals import open_signals

    score = latest_scores([customer.pk]).get(customer.pk)
    prediction = latest_predictions([customer.pk]).get(customer.pk)
    sentiment = customer.csm_sentiments.order_by("-recorded_on", "-id").first()
    return {
        "customer": customer.pk,
        "day": score.day if score else None,
        "score": score.score if score else None,
        "band": score.band if score else "",
        "scorecard": score.version.scorecard.name if score else None,
        "version": score.version.number if score else None,
        "missing_weight": score.missing_weight if score else None,
        "measures": [
            {**m, "missing": bool(m.get("missing")) or m.get("value") is None}
            for m in (score.measures if score else [])
        ],
        "explanation": _explanation_out(explain(customer_id=customer.pk)) if score else None,
        "open_signals": [
            _signal_out(s)
            for s in open_signals(customer_ids=[customer.pk]).select_related("customer")
        ],
        "churn": {
            "probability": prediction.probability,
            "day": prediction.day,
            "horizon_days": prediction.model.horizon_days,
            "model": prediction.model_id,
            "drivers": [
                {
                    "feature": str(d.get("feature", "")),
                    "label": str(d.get("label") or d.get("feature", "")),
                    "value": d.get("value"),
                    "effect": d.get("effect"),
                }
                for d in prediction.drivers or []
            ],
        }
        if prediction
        else None,
        "sentiment": {
            "sentiment": sentiment.sentiment,
            "note": sentiment.note,
            "recorded_on": sentiment.recorded_on,
            "recorded_by": sentiment.recorded_by_id,
        }
        if sentiment
        else None,
    }


def _page(count: int, page: int) -> tuple[int, int]:
    return (page - 1) * PAGE_SIZE, max(ceil(count / PAGE_SIZE), 1)


# --- A customer ----------------------------------------------------------------------------------


@router.get(
    "/health/customers/{customer_id}",
    response={200: CustomerHealthOut, **ERRORS},
    summary="A customer's health: latest score and measures, why it moved, signals, churn",
)
def customer_health(request: HttpRequest, customer_id: int) -> dict[str, Any]:
    require(request.user, Capability.VIEW)
    return _customer_health(get_object_or_404(Customer, pk=customer_id))


class HistoryQuery(Schema):
    start: date | None = Field(None, description="Default: a year before end.")
    end: date | None = Field(None, description="Default: today.")


@router.get(
    "/health/customers/{customer_id}/history",
    response={200: list[HistoryPointOut], **ERRORS},
    summary="A customer's daily scores over a range (at most three years)",
)
def customer_history(
    request: HttpRequest, customer_id: int, query: Query[HistoryQuery]
) -> list[dict[str, Any]]:
    from kizuna.health.selectors import score_history

    require(request.user, Capability.VIEW)
    customer = get_object_or_404(Customer, pk=customer_id)
    _sane("start", query.start)
    _sane("end", query.end)
    end = query.end or timezone.localdate()
    start = query.start or end - timedelta(days=365)
    if start > end:
        raise _invalid("start", _("The start comes after the end."))
    if (end - start).days > MAX_HISTORY_DAYS:
        raise _invalid("start", _("Ask for at most three years at a time."))
    rows = score_history(customer_id=customer.pk, start=start, end=end)
    numbers = dict(
        ScorecardVersion.objects.filter(pk__in={row.version_id for row in rows}).values_list(
            "pk", "number"
        )
    )
    return [
        {"day": row.day, "score": row.score, "band": row.band, "version": numbers[row.version_id]}
        for row in rows
    ]


class SentimentIn(InSchema):
    sentiment: int = Field(ge=1, le=5, description="1 (very negative) to 5 (very positive).")
    note: Line300 = ""
    day: date | None = Field(None, description="Default: today.")


@router.post(
    "/health/customers/{customer_id}/sentiment",
    response={201: SentimentOut, **ERRORS},
    summary="Record the CSM's sentiment about the relationship",
)
def record_sentiment(
    request: HttpRequest, customer_id: int, payload: SentimentIn
) -> Status[dict[str, Any]]:
    from kizuna.health.sentiment import record_sentiment as record

    require(request.user, Capability.WRITE_TIMELINE)
    customer = get_object_or_404(Customer, pk=customer_id)
    _sane("day", payload.day)
    if payload.day is not None and payload.day > timezone.localdate():
        raise _invalid("day", _("A sentiment cannot be recorded for a future day."))
    saved = record(
        customer_id=customer.pk,
        sentiment=payload.sentiment,
        note=payload.note,
        day=payload.day,
        user=_user(request),
    )
    return Status(
        201,
        {
            "sentiment": saved.sentiment,
            "note": saved.note,
            "recorded_on": saved.recorded_on,
            "recorded_by": saved.recorded_by_id,
        },
    )


# --- The portfolio -------------------------------------------------------------------------------


class ScoreFilters(Schema):
    day: date | None = Field(None, description="Default: the latest day with scores.")
    band: Band | None = None
    page: int = Field(1, ge=1, le=1_000_000)


@router.get(
    "/health/scores",
    response={200: ScorePageOut, **ERRORS},
    summary="The scores of a day, lowest first (50 a page)",
)
def list_scores(request: HttpRequest, filters: Query[ScoreFilters]) -> dict[str, Any]:
    require(request.user, Capability.VIEW)
    _sane("day", filters.day)
    day = filters.day or HealthScore.objects.aggregate(day=Max("day"))["day"]
    scores = HealthScore.objects.filter(day=day).select_related("customer")
    if filters.band:
        scores = scores.filter(band=filters.band)
    scores = scores.order_by("score", "customer_id")
    count = scores.count()
    start, pages = _page(count, filters.page)
    return {
        "day": day,
        "items": [
            {
                "customer": s.customer_id,
                "customer_name": s.customer.name,
                "day": s.day,
                "score": s.score,
                "band": s.band,
                "missing_weight": s.missing_weight,
            }
            for s in scores[start : start + PAGE_SIZE]
        ],
        "count": count,
        "page": filters.page,
        "pages": pages,
    }


class SignalFilters(Schema):
    status: Literal["open", "closed"] | None = Field(None, description="Default: both.")
    severity: Severity | None = None
    kind: SignalKind | None = None
    customer: int | None = Field(None, ge=1, le=2_147_483_647)
    page: int = Field(1, ge=1, le=1_000_000)


@router.get(
    "/health/signals",
    response={200: SignalPageOut, **ERRORS},
    summary="Risk signals, newest first (50 a page)",
)
def list_signals(request: HttpRequest, filters: Query[SignalFilters]) -> dict[str, Any]:
    require(request.user, Capability.VIEW)
    signals = RiskSignal.objects.select_related("customer")
    if filters.status == "open":
        signals = signals.filter(closed_on__isnull=True)
    elif filters.status == "closed":
        signals = signals.filter(closed_on__isnull=False)
    conditions = Q()
    if filters.severity:
        conditions &= Q(severity=filters.severity)
    if filters.kind:
        conditions &= Q(kind=filters.kind)
    if filters.customer:
        conditions &= Q(customer_id=filters.customer)
    signals = signals.filter(conditions).order_by("-opened_on", "-id")
    count = signals.count()
    start, pages = _page(count, filters.page)
    return {
        "items": [_signal_out(s) for s in signals[start : start + PAGE_SIZE]],
        "count": count,
        "page": filters.page,
        "pages": pages,
    }


class CloseIn(InSchema):
    resolution: Literal["resolved", "dismissed"]
    note: Line300 = ""


@router.post(
    "/health/signals/{signal_id}/close",
    response={200: SignalOut, **ERRORS},
    summary="Close an open signal as resolved or dismissed (lands on the timeline)",
)
def close_signal(request: HttpRequest, signal_id: int, payload: CloseIn) -> dict[str, Any]:
    from kizuna.health.signals import SignalError
    from kizuna.health.signals import close_signal as close

    require(request.user, Capability.WRITE_TIMELINE)
    signal = get_object_or_404(RiskSignal, pk=signal_id)
    try:
        closed = close(
            signal_id=signal.pk,
            resolution=payload.resolution,
            note=payload.note,
            user=_user(request),
        )
    except SignalError as exc:
        raise _invalid(exc.field, exc.message) from None
    return _signal_out(RiskSignal.objects.select_related("customer").get(pk=closed.pk))


# --- Settings and the model ----------------------------------------------------------------------


@router.get(
    "/health/scorecards",
    response={200: list[ScorecardOut], **ERRORS},
    summary="Scorecards with their versions and measures",
)
def list_scorecards(request: HttpRequest) -> list[dict[str, Any]]:
    require(request.user, Capability.VIEW)
    cards = Scorecard.objects.prefetch_related("versions__measures").order_by("priority", "id")
    return [
        {
            "id": card.pk,
            "name": card.name,
            "description": card.description,
            "touch_model": card.touch_model,
            "segment": card.segment,
            "priority": card.priority,
            "is_active": card.is_active,
            "versions": [
                {
                    "number": v.number,
                    "status": v.status,
                    "good_from": v.good_from,
                    "watch_from": v.watch_from,
                    "change_note": v.change_note,
                    "published_at": v.published_at,
                    "measures": [
                        {
                            "key": m.key,
                            "label": m.label,
                            "source": m.source,
                            "metric_key": m.metric_key,
                            "weight": m.weight,
                            "mapping": m.mapping,
                            "thresholds": [[float(x), float(p)] for x, p in m.thresholds or []],
                            "higher_is_better": m.higher_is_better,
                        }
                        for m in sorted(v.measures.all(), key=lambda m: (m.position, m.pk))
                    ],
                }
                for v in sorted(card.versions.all(), key=lambda v: -v.number)
            ],
        }
        for card in cards
    ]


@router.get(
    "/health/model",
    response={200: ModelOut, **ERRORS},
    summary="The current churn model and its backtest (AUC, lift, calibration, baseline)",
)
def get_model(request: HttpRequest) -> dict[str, Any]:
    from kizuna.health.churn import current_model

    require(request.user, Capability.VIEW)
    model = current_model()
    if model is None:
        raise HttpError(404, _("No churn model has been trained yet."))
    return presentation.model_json(model)
