"""The health KPI of KPI.md: ``health_improvement_rate``.

Share of customers whose health score on ``end`` is higher than on ``start`` by at least
``step`` points (default 5, ``KIZUNA_HEALTH_IMPROVEMENT_STEP``), among the customers with a
score on both days (a stored row whose score is not null: "not scored" rows, where every
measure was missing, do not count); plus the mean change in points over those customers.
"""

from datetime import date
from typing import Any

import numpy as np
from django.conf import settings
from django.db.models import OuterRef, QuerySet, Subquery

from kizuna.health.models import HealthScore

DEFAULT_STEP = 5.0
RATE_PLACES = 6


def improvement_step() -> float:
    """The configured step in points (``KIZUNA_HEALTH_IMPROVEMENT_STEP``, default 5)."""
    return float(getattr(settings, "KIZUNA_HEALTH_IMPROVEMENT_STEP", DEFAULT_STEP))


def health_improvement_rate(
    *,
    start: date,
    end: date,
    step: float | None = None,
    customer_ids: QuerySet[Any] | list[int] | None = None,
) -> dict[str, Any]:
    """``{"value", "numerator", "denominator", "mean_change", "step", "improved",
    "declined", "unchanged"}`` over the customers scored on both days (within
    ``customer_ids``, a list or an id subquery, when given).

    ``numerator``: those whose score rose by at least ``step``; ``value`` is None (and
    ``mean_change`` None) when no customer was scored on both days. ``declined`` counts
    drops of at least ``step``, ``unchanged`` the rest. One query.
    """
    step = improvement_step() if step is None else float(step)
    if step <= 0:
        raise ValueError("step: must be greater than 0")
    earlier = HealthScore.objects.filter(
        customer=OuterRef("customer"), day=start, score__isnull=False
    ).values("score")[:1]
    rows = HealthScore.objects.filter(day=end, score__isnull=False)
    if customer_ids is not None:
        rows = rows.filter(customer_id__in=customer_ids)
    pairs = list(
        rows.annotate(before=Subquery(earlier))
        .filter(before__isnull=False)
        .values_list("score", "before")
        .order_by()
    )
    if not pairs:
        return {
            "value": None,
            "numerator": 0,
            "denominator": 0,
            "mean_change": None,
            "step": step,
            "improved": 0,
            "declined": 0,
            "unchanged": 0,
        }
    after, before = np.array(pairs, dtype=float).T
    # Scores are stored to 4 places; compare at that precision so 75 − 70 counts as 5.
    change = np.round(after - before, 4)
    improved = int((change >= step).sum())
    declined = int((change <= -step).sum())
    return {
        "value": round(improved / len(pairs), RATE_PLACES),
        "numerator": improved,
        "denominator": len(pairs),
        "mean_change": round(float(change.mean()), 4),
        "step": step,
        "improved": improved,
        "declined": declined,
        "unchanged": len(pairs) - improved - declined,
    }
