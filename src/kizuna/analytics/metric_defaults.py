"""The metrics every installation starts with (editable afterwards in Settings → Metrics)."""

from dataclasses import dataclass
from typing import Any

from kizuna.analytics.models import MetricDefinition, MetricKind, WindowKind


@dataclass(frozen=True)
class DefaultMetric:
    key: str
    name: str
    name_ja: str
    kind: MetricKind
    window_days: int = 28
    window_kind: WindowKind = WindowKind.ROLLING
    event_types: tuple[str, ...] = ()
    base: str = ""


# Event types that mean "signed in" in the naming styles SDKs commonly use.
LOGIN_EVENT_TYPES = ("login", "Signed In", "signed_in")

DEFAULT_METRICS: tuple[DefaultMetric, ...] = (
    DefaultMetric("active_users_28d", "Active users (28 days)", "アクティブユーザー数(28日)",
                  MetricKind.ACTIVE_USERS),
    DefaultMetric("active_users_28d_change", "Active users vs previous 28 days",
                  "アクティブユーザー数の前期比(28日)", MetricKind.WINDOW_CHANGE,
                  base="active_users_28d"),
    DefaultMetric("active_users_7d", "Active users (7 days)", "アクティブユーザー数(7日)",
                  MetricKind.ACTIVE_USERS, window_days=7),
    DefaultMetric("active_users_month", "Active users (this month)",
                  "アクティブユーザー数(当月)", MetricKind.ACTIVE_USERS, window_days=0,
                  window_kind=WindowKind.CALENDAR_MONTH),
    DefaultMetric("seat_utilisation_28d", "Seat utilisation (28 days)",
                  "ライセンス利用率(28日)", MetricKind.SEAT_UTILISATION),
    DefaultMetric("active_days_28d", "Active days (28 days)", "利用日数(28日)",
                  MetricKind.ACTIVE_DAYS),
    DefaultMetric("logins_28d", "Logins (28 days)", "ログイン数(28日)", MetricKind.EVENT_COUNT,
                  event_types=LOGIN_EVENT_TYPES),
    DefaultMetric("events_28d", "Events (28 days)", "イベント数(28日)", MetricKind.EVENT_COUNT),
    DefaultMetric("events_28d_change", "Events vs previous 28 days", "イベント数の前期比(28日)",
                  MetricKind.WINDOW_CHANGE, base="events_28d"),
    DefaultMetric("feature_breadth_28d", "Features used (28 days)", "利用機能数(28日)",
                  MetricKind.FEATURE_BREADTH),
    DefaultMetric("value_sum_28d", "Event value total (28 days)", "イベント値の合計(28日)",
                  MetricKind.VALUE_SUM),
)  # fmt: skip


def ensure_default_metrics(model: Any = MetricDefinition) -> int:
    """Create the default definitions that do not exist yet (by key); return how many.

    Existing definitions, edited or not, are left as they are. ``model`` lets a migration pass
    its historical model.
    """
    existing = dict(model.objects.values_list("key", "pk"))
    created = 0
    # Bases first, so that a change metric can point at its base.
    ordered = sorted(DEFAULT_METRICS, key=lambda metric: metric.kind == MetricKind.WINDOW_CHANGE)
    positions = {metric.key: 10 * (index + 1) for index, metric in enumerate(DEFAULT_METRICS)}
    for metric in ordered:
        if metric.key in existing:
            continue
        definition = model.objects.create(
            key=metric.key,
            name=metric.name,
            name_ja=metric.name_ja,
            kind=str(metric.kind),
            event_types=list(metric.event_types),
            window_kind=str(metric.window_kind),
            window_days=metric.window_days,
            base_metric_id=existing[metric.base] if metric.base else None,
            position=positions[metric.key],
        )
        existing[metric.key] = definition.pk
        created += 1
    return created
