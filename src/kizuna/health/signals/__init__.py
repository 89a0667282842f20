"""Risk signals: rules with defaults, set-based conditions judged against each customer's own
baseline, the daily evaluation and its backfill, closing by a CSM, reasons and selectors.

See ``conditions.py`` for the method behind the drop rules.
"""

from kizuna.health.signals.conditions import SignalData, conditions_on
from kizuna.health.signals.evaluate import (
    SignalRunResult,
    backfill_signals,
    close_signal,
    customer_signals,
    evaluate_signals,
    open_signals,
    signal_counts_by_severity,
)
from kizuna.health.signals.reasons import signal_reason
from kizuna.health.signals.rules import (
    DEFAULT_RULES,
    SignalError,
    SignalRuleError,
    default_params,
    enabled_rules,
    ensure_default_rules,
    validate_params,
)

__all__ = [
    "DEFAULT_RULES",
    "SignalData",
    "SignalError",
    "SignalRuleError",
    "SignalRunResult",
    "backfill_signals",
    "close_signal",
    "conditions_on",
    "customer_signals",
    "default_params",
    "enabled_rules",
    "ensure_default_rules",
    "evaluate_signals",
    "open_signals",
    "signal_counts_by_severity",
    "signal_reason",
    "validate_params",
]
