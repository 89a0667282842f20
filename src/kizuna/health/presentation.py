"""What the health pages show, shaped from the services' answers (numbers → display rows).

Rates are fractions in the services and percentages here; an undefined value is "—", never 0.
"""

from collections.abc import Iterable
from typing import Any

from django.utils.formats import number_format
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy as _lazy

from kizuna.health.models import (
    Band,
    ChurnModel,
    ChurnPrediction,
    HealthScore,
    RiskSignal,
    Severity,
    SignalKind,
)
from kizuna.health.selectors import Explanation, Overview

DASH = "—"
BASELINE_NAMES = {"usage_drop": _lazy("usage-drop rule")}


def percent(value: float | None, digits: int = 0) -> str:
    if value is None:
        return DASH
    return f"{number_format(100 * value, digits)}%"


def signed_points(value: float | None) -> str:
    if value is None:
        return DASH
    return f"{value:+.1f}"


def breakdown(score: HealthScore) -> dict[str, Any]:
    """The score's measures: value, points, weight share and contribution; missing shown as such."""
    from kizuna.analytics.models import MetricDefinition
    from kizuna.health.selectors import format_value

    measures = list(score.measures or [])
    metric_keys = {str(m.get("metric") or "") for m in measures} - {""}
    kinds = dict(MetricDefinition.objects.filter(key__in=metric_keys).values_list("key", "kind"))
    total_weight = sum(float(m.get("weight") or 0) for m in measures) or None
    rows = [
        {
            "key": m.get("key", ""),
            "label": m.get("label", m.get("key", "")),
            "missing": bool(m.get("missing")) or m.get("value") is None,
            "value": format_value(m, m.get("value"), kinds),
            "points": DASH if m.get("points") is None else f"{float(m['points']):.0f}",
            "weight": percent(float(m.get("weight") or 0) / total_weight if total_weight else None),
            "contribution": DASH
            if m.get("contribution") is None
            else f"{float(m['contribution']):.1f}",
        }
        for m in measures
    ]
    return {
        "rows": rows,
        "missing_weight": percent(score.missing_weight) if score.missing_weight else "",
        "any_missing": any(row["missing"] for row in rows),
        "score": DASH if score.score is None else f"{score.score:.0f}",
        "band": score.band,
        "band_label": Band(score.band).label if score.band else _("Not scored"),
        "day": score.day,
        "version": score.version,
    }


def explanation(explained: Explanation) -> dict[str, Any] | None:
    """The score vs ``compare_days`` earlier and the lines that moved it most."""
    if explained.day is None:
        return None
    return {
        "score": DASH if explained.score is None else f"{explained.score:.0f}",
        "previous": DASH if explained.previous_score is None else f"{explained.previous_score:.0f}",
        "delta": signed_points(explained.change),
        "falling": explained.change is not None and explained.change < 0,
        "day": explained.day,
        "previous_day": explained.previous_day,
        "lines": [
            {
                "key": line.get("key"),
                "text": line.get("text"),
                "delta": line.get("delta"),
                "missing": bool(line.get("missing")),
            }
            for line in explained.lines
        ],
    }


def signal_reason(signal: RiskSignal) -> str:
    """The signal's reason in the reader's language, rebuilt from its details."""
    from kizuna.health.signals import signal_reason as reason

    return reason(signal)


def signal_rows(signals: Iterable[RiskSignal]) -> list[dict[str, Any]]:
    return [
        {
            "signal": signal,
            "kind": SignalKind(signal.kind).label if signal.kind in SignalKind else signal.kind,
            "severity": signal.severity,
            "severity_label": Severity(signal.severity).label
            if signal.severity in Severity
            else signal.severity,
            "reason": signal_reason(signal),
        }
        for signal in signals
    ]


def prediction(value: ChurnPrediction) -> dict[str, Any]:
    from kizuna.health.churn import describe_driver, feature_label

    return {
        "prediction": value,
        "customer": value.customer,
        "probability": percent(value.probability, 0 if value.probability >= 0.1 else 1),
        "probability_value": value.probability,
        "drivers": [
            {
                # Re-labelled in the reader's language (the stored label is the trainer's).
                "label": feature_label(str(d.get("feature", ""))) or d.get("label"),
                "text": describe_driver(d),
                "value": d.get("value"),
                "effect": d.get("effect"),
                "up": (d.get("effect") or 0) > 0,
            }
            for d in (value.drivers or [])
        ],
    }


def model_accuracy(model: ChurnModel) -> dict[str, Any]:
    """AUC, lift, baseline sentence and calibration (in percent) from the model's backtest."""
    backtest = model.backtest or {}
    auc, baseline = backtest.get("auc"), backtest.get("baseline_auc")
    beats = backtest.get("beats_baseline")
    if beats is None and auc is not None and baseline is not None:
        beats = auc > baseline
    if auc is None:
        sentence = _("No backtest yet: too little history to test the model on.")
    elif baseline is None:
        sentence = _("The usage-drop rule could not be measured on the same customers.")
    elif beats:
        sentence = _(
            "The model does better than the simple usage-drop rule (AUC {auc} vs {baseline})."
        ).format(auc=f"{auc:.2f}", baseline=f"{baseline:.2f}")
    else:
        sentence = _(
            "The model does no better than the simple usage-drop rule (AUC {auc} vs {baseline}): "
            "treat its probabilities with care."
        ).format(auc=f"{auc:.2f}", baseline=f"{baseline:.2f}")
    calibration = [
        {
            "predicted": _maybe_percent(point.get("predicted")),
            "observed": _maybe_percent(point.get("observed")),
            "count": point.get("count", 0),
        }
        for point in backtest.get("calibration", []) or []
    ]
    lift = backtest.get("lift_top_decile")
    return {
        "auc": DASH if auc is None else f"{auc:.2f}",
        "baseline_auc": DASH if baseline is None else f"{baseline:.2f}",
        "baseline_name": BASELINE_NAMES.get(str(backtest.get("baseline_name")))
        or _("usage-drop rule"),
        "lift": DASH if lift is None else f"{lift:.1f}×",
        "beats_baseline": beats,
        "sentence": sentence,
        "periods": backtest.get("periods"),
        "rows": backtest.get("rows", model.rows),
        "positives": backtest.get("positives", model.positives),
        "calibration": calibration,
        "chart": {
            "points": [
                {"x": p["predicted"], "y": p["observed"], "count": p["count"]}
                for p in calibration
                if p["predicted"] is not None and p["observed"] is not None
            ],
            "labels": {
                "points": _("Backtest (each point: a tenth of the customers)"),
                "perfect": _("Perfect calibration"),
                "x": _("Predicted churn (%)"),
                "y": _("Observed churn (%)"),
            },
        },
    }


def _maybe_percent(value: float | None) -> float | None:
    return None if value is None else round(100 * float(value), 1)


def overview(data: Overview) -> dict[str, Any]:
    """The Health page's figures from ``selectors.health_overview`` (shares in percent)."""
    total = sum(band.customers for band in data.bands) or None
    bands = [
        {
            "band": band.band,
            "label": band.label,
            "count": band.customers,
            "share": percent(band.customers / total if total else None),
            "width": round(100 * band.customers / total, 1) if total else 0,
            "arr": band.arr,
        }
        for band in data.bands
    ]
    movers = [
        {
            "customer_id": mover.customer_id,
            "name": mover.name,
            "score": mover.score,
            "previous": mover.previous_score,
            "change": signed_points(mover.change),
            "band": mover.band,
            "band_label": Band(mover.band).label if mover.band in Band else "",
            "reason": mover.reason,
        }
        for mover in data.movers
    ]
    severity = data.signals_by_severity
    return {
        "day": data.day,
        "bands": bands,
        "scored": data.customers,
        "not_scored": data.not_scored,
        "at_risk_arr": data.at_risk_arr,
        "currency": data.currency or None,
        "movers": movers,
        "compare_days": data.compare_days,
        "severities": [
            {"severity": key.value, "label": key.label, "count": severity.get(key.value, 0)}
            for key in (Severity.HIGH, Severity.MEDIUM, Severity.LOW)
        ],
    }


def model_json(model: ChurnModel) -> dict[str, Any]:
    """The model and its backtest as plain values (the API's and the CLI's answer)."""
    backtest = model.backtest or {}
    return {
        "id": model.pk,
        "kind": model.kind,
        "horizon_days": model.horizon_days,
        "trained_at": model.trained_at,
        "trained_through": model.trained_through,
        "features": list(model.features or []),
        "rows": model.rows,
        "positives": model.positives,
        "auc": backtest.get("auc"),
        "lift_top_decile": backtest.get("lift_top_decile"),
        "baseline_auc": backtest.get("baseline_auc"),
        "beats_baseline": backtest.get("beats_baseline"),
        "calibration": [
            {
                "predicted": point.get("predicted"),
                "observed": point.get("observed"),
                "count": int(point.get("count") or 0),
            }
            for point in backtest.get("calibration") or []
        ],
        "periods": backtest.get("periods"),
    }
