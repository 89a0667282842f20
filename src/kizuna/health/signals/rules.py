"""The risk-signal rules: their defaults, and the validation of the parameters a manager edits."""

from typing import Any

from django.utils.translation import gettext as _

from kizuna.health.models import Band, Severity, SignalKind, SignalRule


class SignalError(ValueError):
    """A bad input to a signal service, naming the field it is about."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class SignalRuleError(SignalError):
    """A rule parameter that cannot be used (``field`` is the parameter's name)."""


# The baseline shared by the three drop rules (see conditions.py for the method).
_DROP_BASELINE: dict[str, Any] = {
    "window_days": 28,
    "baseline_weeks": 26,
    "min_baseline_points": 8,
    "fluctuation_k": 1.5,
    "min_spread_pct": 5,
    "seasonal": True,
    "keep_ratio": 0.5,
}

DROP_KINDS = (SignalKind.USAGE_DROP, SignalKind.ACTIVE_USERS_DOWN, SignalKind.LOGINS_DOWN)

DEFAULT_RULES: dict[SignalKind, tuple[Severity, dict[str, Any]]] = {
    SignalKind.USAGE_DROP: (
        Severity.HIGH,
        {"metric": "events_28d", "drop_pct": 20, "min_previous": 20, **_DROP_BASELINE},
    ),
    SignalKind.ACTIVE_USERS_DOWN: (
        Severity.MEDIUM,
        {"metric": "active_users_28d", "drop_pct": 20, "min_previous": 3, **_DROP_BASELINE},
    ),
    SignalKind.LOGINS_DOWN: (
        Severity.MEDIUM,
        {"metric": "logins_28d", "drop_pct": 30, "min_previous": 10, **_DROP_BASELINE},
    ),
    SignalKind.NO_LOGIN: (Severity.HIGH, {"days": 14}),
    SignalKind.CHAMPION_LEFT: (
        Severity.HIGH,
        {"within_days": 30, "roles": ["admin", "champion"]},
    ),
    SignalKind.NEW_ADMIN: (Severity.MEDIUM, {"within_days": 30, "ignore_first_days": 60}),
    SignalKind.MILESTONE_OVERDUE: (Severity.MEDIUM, {"grace_days": 0}),
    SignalKind.NPS_DETRACTOR: (Severity.MEDIUM, {"max_score": 6, "within_days": 90}),
    SignalKind.RENEWAL_AT_RISK: (
        Severity.HIGH,
        {"within_days": 90, "bands": [Band.WATCH.value, Band.AT_RISK.value]},
    ),
    SignalKind.LOW_SEAT_UTILISATION: (
        Severity.LOW,
        {"below": 0.3, "min_days_since_start": 90},
    ),
}

# Parameter name → (type, lowest, highest). Lists hold choices; "metric" names a metric key.
_INT, _FLOAT, _BOOL, _METRIC, _ROLES, _BANDS = "int", "float", "bool", "metric", "roles", "bands"
_SPECS: dict[str, tuple[str, float | None, float | None]] = {
    "metric": (_METRIC, None, None),
    "drop_pct": (_FLOAT, 1, 100),
    "min_previous": (_FLOAT, 0, None),
    "window_days": (_INT, 7, 182),
    "baseline_weeks": (_INT, 4, 52),
    "min_baseline_points": (_INT, 2, 52),
    "fluctuation_k": (_FLOAT, 0, 10),
    "min_spread_pct": (_FLOAT, 0, 100),
    "seasonal": (_BOOL, None, None),
    "keep_ratio": (_FLOAT, 0, 1),
    "days": (_INT, 1, 365),
    "within_days": (_INT, 1, 365),
    "roles": (_ROLES, None, None),
    "ignore_first_days": (_INT, 0, 365),
    "grace_days": (_INT, 0, 365),
    "max_score": (_INT, 0, 10),
    "bands": (_BANDS, None, None),
    "below": (_FLOAT, 0, 1),
    "min_days_since_start": (_INT, 0, 3650),
}
_ROLE_CHOICES = ("admin", "champion")


def default_params(kind: str) -> dict[str, Any]:
    """A copy of the default parameters of ``kind``."""
    _severity, params = DEFAULT_RULES[SignalKind(kind)]
    return {key: list(value) if isinstance(value, list) else value for key, value in params.items()}


def validate_params(kind: str, params: dict[str, Any]) -> dict[str, Any]:
    """The parameters of a ``kind`` rule, completed with its defaults and checked.

    Raises ``SignalRuleError(field, message)`` for an unknown kind or parameter, a value of the
    wrong type or out of range, an unknown metric (or a change metric, which is already a
    comparison), or a drop window that does not hold whole weeks.
    """
    try:
        signal_kind = SignalKind(kind)
    except ValueError:
        raise SignalRuleError("kind", _("Unknown kind of risk signal.")) from None
    if not isinstance(params, dict):
        raise SignalRuleError("params", _("The parameters must be an object."))
    cleaned = default_params(signal_kind)
    for name, value in params.items():
        if name not in cleaned:
            raise SignalRuleError(
                name, _("Unknown parameter for this kind of signal: {name}.").format(name=name)
            )
        cleaned[name] = _clean(name, value)
    if signal_kind in DROP_KINDS:
        if cleaned["window_days"] % 7:
            raise SignalRuleError(
                "window_days",
                _("The window must hold whole weeks (a multiple of 7 days), so that the weekly "
                  "rhythm cancels out."),
            )  # fmt: skip
        if cleaned["min_baseline_points"] > cleaned["baseline_weeks"]:
            raise SignalRuleError(
                "min_baseline_points",
                _("At most the number of baseline weeks ({weeks}).").format(
                    weeks=cleaned["baseline_weeks"]
                ),
            )
    return cleaned


def _clean(name: str, value: Any) -> Any:
    kind, low, high = _SPECS[name]
    if kind == _BOOL:
        if not isinstance(value, bool):
            raise SignalRuleError(name, _("Must be true or false."))
        return value
    if kind == _METRIC:
        return _clean_metric(name, value)
    if kind in (_ROLES, _BANDS):
        choices = _ROLE_CHOICES if kind == _ROLES else tuple(b.value for b in Band)
        if not isinstance(value, list | tuple) or not value:
            raise SignalRuleError(name, _("Choose at least one."))
        chosen = []
        for item in value:
            if item not in choices:
                raise SignalRuleError(
                    name,
                    _("{value} is not one of: {choices}.").format(
                        value=item, choices=", ".join(choices)
                    ),
                )
            if item not in chosen:
                chosen.append(str(item))
        return chosen
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise SignalRuleError(name, _("Must be a number."))
    try:
        number = float(value)
    except ValueError:
        raise SignalRuleError(name, _("Must be a number.")) from None
    if number != number or number in (float("inf"), float("-inf")):
        raise SignalRuleError(name, _("Must be a number."))
    if kind == _INT and number != int(number):
        raise SignalRuleError(name, _("Must be a whole number."))
    if low is not None and number < low:
        raise SignalRuleError(name, _("Must be at least {low}.").format(low=_show(low)))
    if high is not None and number > high:
        raise SignalRuleError(name, _("Must be at most {high}.").format(high=_show(high)))
    return int(number) if kind == _INT else number


def _clean_metric(name: str, value: Any) -> str:
    from kizuna.analytics.models import MetricDefinition, MetricKind

    if not isinstance(value, str) or not value:
        raise SignalRuleError(name, _("Choose a metric."))
    definition = MetricDefinition.objects.filter(key=value).first()
    if definition is None:
        raise SignalRuleError(name, _("There is no metric {key}.").format(key=value))
    if definition.kind == MetricKind.WINDOW_CHANGE:
        raise SignalRuleError(
            name, _("Choose a count, not a change metric: the rule computes the change itself.")
        )
    return value


def _show(number: float) -> str:
    return str(int(number)) if number == int(number) else str(number)


def ensure_default_rules() -> int:
    """Create the rule of every kind that has none yet (with its defaults); return how many."""
    existing = set(SignalRule.objects.values_list("kind", flat=True))
    missing = [
        SignalRule(kind=kind.value, severity=severity.value, params=default_params(kind))
        for kind, (severity, _params) in DEFAULT_RULES.items()
        if kind.value not in existing
    ]
    SignalRule.objects.bulk_create(missing, ignore_conflicts=True)
    return len(missing)


def enabled_rules(kinds: list[str] | None = None) -> dict[str, tuple[str, dict[str, Any]]]:
    """``kind → (severity, parameters)`` of the enabled rules (stored parameters completed with
    the defaults; a stored parameter that no longer validates falls back to its default)."""
    rules: dict[str, tuple[str, dict[str, Any]]] = {}
    for rule in SignalRule.objects.filter(enabled=True).order_by("kind"):
        if kinds is not None and rule.kind not in kinds:
            continue
        try:
            params = validate_params(rule.kind, dict(rule.params or {}))
        except SignalRuleError as error:
            if error.field == "kind":
                continue
            stored = dict(rule.params or {})
            stored.pop(error.field, None)
            try:
                params = validate_params(rule.kind, stored)
            except SignalRuleError:
                params = default_params(rule.kind)
        rules[rule.kind] = (rule.severity, params)
    return rules
