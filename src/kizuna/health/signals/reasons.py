"""A signal's reason as a sentence in the reader's language, built from its details."""

import time
from datetime import date
from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import pgettext

from kizuna.health.models import Band, RiskSignal, SignalKind


def _pct(value: float) -> str:
    return f"{abs(value) * 100:.0f}%"


def _signed_pct(value: float) -> str:
    return f"{value * 100:+.0f}%".replace("-", "−")


def _count(value: Any) -> str:
    number = float(value)
    return f"{number:,.0f}" if number == round(number) else f"{number:,.1f}"


# Metric names by key, read at most once a minute (a list of reasons reads them once).
_LABEL_SECONDS = 60.0
_labels: dict[str, Any] = {"at": -_LABEL_SECONDS, "definitions": {}}


def forget_metric_labels() -> None:
    """Read the metric names again on next use (a run starts with fresh names)."""
    _labels["at"] = -_LABEL_SECONDS


def _metric_label(key: str) -> str:
    from kizuna.analytics.models import MetricDefinition
    from kizuna.analytics.presentation import metric_name

    now = time.monotonic()
    if now - _labels["at"] >= _LABEL_SECONDS:
        _labels["definitions"] = MetricDefinition.objects.in_bulk(field_name="key")
        _labels["at"] = now
    definition = _labels["definitions"].get(key)
    return metric_name(definition) if definition is not None else key


def _role(role: str) -> str:
    from kizuna.customers.models import ContactRole

    try:
        return str(ContactRole(role).label)
    except ValueError:
        return role


def _band(value: str) -> str:
    try:
        return str(Band(value).label)
    except ValueError:
        return value


def _day(value: Any) -> str:
    return value if isinstance(value, str) else date.isoformat(value)


def signal_reason(signal_or_kind: RiskSignal | str, details: dict[str, Any] | None = None) -> str:
    """Why the signal was raised, as a translated sentence (from ``details``, in the active
    language). ``signal_reason(signal)`` reads the signal's own kind and details."""
    if isinstance(signal_or_kind, RiskSignal):
        kind = signal_or_kind.kind
        details = signal_or_kind.details if details is None else details
    else:
        kind = signal_or_kind
    details = details or {}
    try:
        return _REASONS[SignalKind(kind)](details)
    except (KeyError, TypeError, ValueError):  # details of an older shape: say what we can
        try:
            return str(SignalKind(kind).label)
        except ValueError:
            return kind


def _drop(details: dict[str, Any]) -> str:
    if details.get("held"):
        return _(
            "{metric} is still {pct} down (from {previous} to {now}) vs the previous {window} "
            "days: the signal stays open until the fall is smaller than {keep} (it opens on a "
            "fall of {drop} beyond the usual change and the season)."
        ).format(
            metric=_metric_label(details["metric"]),
            pct=_pct(details["change"]),
            previous=_count(details["previous"]),
            now=_count(details["now"]),
            window=details["window_days"],
            keep=_pct(details["keep_change"]),
            drop=_pct(float(details["drop_pct"]) / 100),
        )
    text = _("{metric} fell {pct} (from {previous} to {now}) vs the previous {window} days").format(
        metric=_metric_label(details["metric"]),
        pct=_pct(details["change"]),
        previous=_count(details["previous"]),
        now=_count(details["now"]),
        window=details["window_days"],
    )
    baseline = details.get("baseline")
    if baseline:
        text += _("; its usual change is {usual} ± {spread}").format(
            usual=_signed_pct(baseline["usual"]), spread=_pct(baseline["spread"])
        )
    else:
        text += _("; too little history to know its usual change")
    season = details.get("season")
    if season:
        text += _("; the same weeks a year earlier changed {change}").format(
            change=_signed_pct(season["year_change"])
        )
    if details.get("weekly_rhythm") == "cancels":
        text += _(" (whole weeks compared, so the weekly rhythm cancels out)")
    return text + _full_stop()


def _full_stop() -> str:
    # Sentences assembled from parts end with the language's own full stop (。 in Japanese).
    return pgettext("end of a sentence", ".")


def _separator() -> str:
    return pgettext("between parts of a sentence", "; ")


def _no_login(details: dict[str, Any]) -> str:
    if details.get("last_login"):
        return _("No login for {days} days (last login on {day}).").format(
            days=details["days_since"], day=details["last_login"]
        )
    return _("No login since the contract started {days} days ago.").format(
        days=details["since_start"]
    )


def _people(details: dict[str, Any]) -> list[dict[str, Any]]:
    people = details.get("people") or []
    return people if isinstance(people, list) else []


def _champion_left(details: dict[str, Any]) -> str:
    parts = [
        _("{role} {name} left on {day}").format(
            role=_role(person["role"]), name=person["name"], day=_day(person["left_on"])
        )
        for person in _people(details)
    ]
    return _separator().join(parts) + _full_stop()


def _new_admin(details: dict[str, Any]) -> str:
    parts = []
    for person in _people(details):
        if person.get("source") == "events":
            parts.append(
                _("A new administrator, {name}, first used the product on {day}").format(
                    name=person["name"], day=_day(person["since"])
                )
            )
        else:
            parts.append(
                _("{name} became administrator on {day}").format(
                    name=person["name"], day=_day(person["since"])
                )
            )
    return _separator().join(parts) + _full_stop()


def _milestone_overdue(details: dict[str, Any]) -> str:
    text = _("Onboarding milestone “{name}” is {days} days overdue (due {day})").format(
        name=details["milestone"], days=details["days_overdue"], day=details["due_date"]
    )
    others = int(details.get("count", 1)) - 1
    if others > 0:
        text += _(", and {count} more").format(count=others)
    return text + _full_stop()


def _nps_detractor(details: dict[str, Any]) -> str:
    return _("NPS answer of {score} on {day} (a detractor: {max} or less).").format(
        score=details["score"], day=details["answered_on"], max=details["max_score"]
    )


def _renewal_at_risk(details: dict[str, Any]) -> str:
    score = details.get("score")
    return _("Renewal on {day} (in {days} days) with a health score of {score} ({band}).").format(
        day=details["renewal_date"],
        days=details["days_to_renewal"],
        score="—" if score is None else f"{float(score):.0f}",
        band=_band(details["band"]),
    )


def _low_seat_utilisation(details: dict[str, Any]) -> str:
    return _("Seat utilisation is {value}, below {below}.").format(
        value=_pct(details["value"]), below=_pct(details["below"])
    )


_REASONS = {
    SignalKind.USAGE_DROP: _drop,
    SignalKind.ACTIVE_USERS_DOWN: _drop,
    SignalKind.LOGINS_DOWN: _drop,
    SignalKind.NO_LOGIN: _no_login,
    SignalKind.CHAMPION_LEFT: _champion_left,
    SignalKind.NEW_ADMIN: _new_admin,
    SignalKind.MILESTONE_OVERDUE: _milestone_overdue,
    SignalKind.NPS_DETRACTOR: _nps_detractor,
    SignalKind.RENEWAL_AT_RISK: _renewal_at_risk,
    SignalKind.LOW_SEAT_UTILISATION: _low_seat_utilisation,
}
