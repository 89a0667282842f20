"""Time in stage: how many days customers spend in each lifecycle stage, from stage history.

A *stay* is one row of the lifecycle history of dimension ``stage``: the customer was in
that stage over ``[valid_from, valid_to)``. An empty ``valid_from`` ("since the beginning")
means since the customer's first start date. A stay with ``valid_to`` is **completed** and
lasted ``valid_to − start`` days; an open stay is **current** and has lasted ``today − start``
days so far. A stay whose start is unknown (since the beginning, and no first start date) is
left out and counted in ``unknown_start``; a stay that ended before the customer's first start
date (or a current one of a customer that has not started yet) is no time spent as a customer
and is left out.
"""

import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from django.db.models.functions import Coalesce
from django.utils import timezone

from kizuna.customers.models import LifecycleStage
from kizuna.lifecycle.models import Dimension, StateHistory
from kizuna.reports.kpis.inputs import resolve_population

DAY_PLACES = 1


@dataclass(frozen=True, kw_only=True)
class Stays:
    """Durations in days of some stays: how many, the median and the mean (None without)."""

    count: int
    median_days: float | None
    mean_days: float | None

    @classmethod
    def of(cls, durations: list[int]) -> "Stays":
        if not durations:
            return cls(count=0, median_days=None, mean_days=None)
        return cls(
            count=len(durations),
            median_days=round(float(statistics.median(durations)), DAY_PLACES),
            mean_days=round(statistics.fmean(durations), DAY_PLACES),
        )

    def as_json(self) -> dict[str, Any]:
        return {"count": self.count, "median_days": self.median_days, "mean_days": self.mean_days}


@dataclass(frozen=True, kw_only=True)
class StageTime:
    """One stage: the customers that spent time in it, their completed and current stays."""

    stage: str
    label: str
    customers: int  # distinct customers with a stay (completed or current) in the stage
    completed: Stays
    current: Stays

    def as_json(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "label": self.label,
            "customers": self.customers,
            "completed": self.completed.as_json(),
            "current": self.current.as_json(),
        }


@dataclass(frozen=True, kw_only=True)
class TimeInStage:
    today: date
    stages: list[StageTime]
    unknown_start: int
    filters: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "today": self.today.isoformat(),
            "filters": self.filters,
            "stages": [stage.as_json() for stage in self.stages],
            "unknown_start": self.unknown_start,
        }


def time_in_stage(
    *, segment: str = "", touch_model: str = "", cohort: str = "", today: date | None = None
) -> TimeInStage:
    """Per lifecycle stage: customers, and count / median / mean days of completed and current
    stays, over the customers of ``segment`` and ``touch_model`` (as of today) and of the
    ``cohort`` (``YYYY-MM`` of the first start date).

    One query reads the stays (with each customer's first start date); medians and means are
    taken in Python over the durations. Raises KpiInputError naming ``touch_model`` or
    ``cohort`` when they are not valid.
    """
    today = today or timezone.localdate()
    population = resolve_population(segment=segment, touch_model=touch_model, cohort=cohort)
    stays = StateHistory.objects.filter(dimension=Dimension.STAGE)
    if population.filters_customers:
        stays = stays.filter(customer_id__in=population.customers(today))
    rows = (
        stays.order_by()
        .annotate(began=Coalesce("valid_from", "customer__first_start_date"))
        .values_list("customer_id", "value", "began", "valid_to")
    )
    completed: dict[str, list[int]] = defaultdict(list)
    current: dict[str, list[int]] = defaultdict(list)
    customers: dict[str, set[int]] = defaultdict(set)
    unknown = 0
    for customer_id, stage, began, valid_to in rows:
        until = valid_to or today
        if began is None:
            unknown += 1
            continue
        if began > until:
            continue
        (completed if valid_to else current)[stage].append((until - began).days)
        customers[stage].add(customer_id)
    known = list(LifecycleStage.values)
    labels = dict(LifecycleStage.choices)
    order = known + sorted(set(customers) - set(known))
    return TimeInStage(
        today=today,
        stages=[
            StageTime(
                stage=stage,
                label=str(labels.get(stage, stage)),
                customers=len(customers[stage]),
                completed=Stays.of(completed[stage]),
                current=Stays.of(current[stage]),
            )
            for stage in order
        ],
        unknown_start=unknown,
        filters={"segment": segment, "touch_model": touch_model, "cohort": cohort},
    )
