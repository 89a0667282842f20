"""The customers a KPI is computed over: filters by segment, touch model, stage, owner, cohort.

Segment, touch model, stage and owners change over time; the lifecycle context keeps their
history (``kizuna.lifecycle.history``), so a population is always read **as of a day**: by
default the start day of the period the KPI is computed for, the day its denominator is fixed.
"""

import functools
import operator
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import date
from enum import StrEnum
from typing import Any

from django.db.models import Exists, OuterRef, Q, QuerySet

from kizuna.customers.models import Customer
from kizuna.lifecycle.history import as_of_filter
from kizuna.lifecycle.models import DIMENSION_FIELDS, OWNER_DIMENSIONS, Dimension, StateHistory


class KpiInputError(ValueError):
    """A bad KPI argument; ``field`` names it (``start``, ``segment``, ``currency`` …)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class GroupBy(StrEnum):
    """The dimensions a KPI can be broken down by (and filtered by)."""

    SEGMENT = "segment"
    TOUCH_MODEL = "touch_model"
    STAGE = "stage"
    OWNER = "owner"  # any of the three phase owners (onboarding, adoption, expansion CSM)


# The history dimension(s) behind each GroupBy; an owner is any of the three owner roles.
GROUP_DIMENSIONS: dict[GroupBy, tuple[str, ...]] = {
    GroupBy.SEGMENT: (Dimension.SEGMENT,),
    GroupBy.TOUCH_MODEL: (Dimension.TOUCH_MODEL,),
    GroupBy.STAGE: (Dimension.STAGE,),
    GroupBy.OWNER: tuple(OWNER_DIMENSIONS.values()),
}


def parse_cohort(value: str) -> date:
    """The first day of a ``YYYY-MM`` month; KpiInputError naming ``cohort`` otherwise."""
    try:
        year, month = (int(part) for part in value.split("-"))
        return date(year, month, 1)
    except ValueError:
        raise KpiInputError("cohort", f"'{value}' is not a month in the form YYYY-MM") from None


def next_month(day: date) -> date:
    """The first day of the month after ``day``'s month."""
    return date(day.year + 1, 1, 1) if day.month == 12 else date(day.year, day.month + 1, 1)


def _owned_as_of(dimension: str, day: date) -> Q:
    """The customer had an owner in the role of ``dimension`` (an owner dimension) on ``day``;
    without history for the role, its current owner field says."""
    field = DIMENSION_FIELDS[dimension]
    history = StateHistory.objects.filter(customer=OuterRef("pk"), dimension=dimension)
    covering = history.filter(
        Q(valid_from__isnull=True) | Q(valid_from__lte=day),
        Q(valid_to__isnull=True) | Q(valid_to__gt=day),
    ).exclude(value="")
    return Q(Exists(covering)) | (~Q(Exists(history)) & Q(**{f"{field}__isnull": False}))


def _any(conditions: Iterable[Q]) -> Q:
    """The OR of the conditions; a condition nothing satisfies when there are none."""
    items = list(conditions)
    return functools.reduce(operator.or_, items) if items else Q(pk__in=[])


def dimension_filter(group_by: GroupBy, values: Iterable[str], day: date) -> Q:
    """Customers whose ``group_by`` value on ``day`` is one of ``values``.

    An owner value is a user id (as text) and matches any of the three owner roles. The
    empty value ``""`` means "none": no segment, or no owner in any of the three roles.
    """
    wanted = [str(value) for value in values]
    if group_by is GroupBy.OWNER:
        dimensions = GROUP_DIMENSIONS[group_by]
        ids = [value for value in wanted if value]
        conditions = [as_of_filter(dimension, ids, day) for dimension in dimensions if ids]
        if "" in wanted:
            conditions.append(~_any(_owned_as_of(dimension, day) for dimension in dimensions))
        return _any(conditions)
    (dimension,) = GROUP_DIMENSIONS[group_by]
    return as_of_filter(dimension, wanted, day)


@dataclass(frozen=True, kw_only=True)
class Population:
    """Which customers (and which of their subscriptions) a KPI counts.

    Empty fields do not filter. ``owner_id`` matches any of the three phase owners;
    ``cohort`` (``YYYY-MM``) is the month of the customer's first start date; ``product_id``
    keeps only that product's subscriptions, so a customer who drops that product churns
    from it even while it keeps others. ``group`` is one more condition, ``(dimension,
    value)``, that picks one group of a breakdown; its empty value means "none" (no segment,
    no owner).

    **As of.** Segment, touch model, stage, owners and ``group`` are judged by the lifecycle
    history on one day: ``as_of`` when it is set, otherwise the start day of each period the
    KPI is computed for (``day_for``) — the day the denominator is fixed. A customer who was
    "enterprise" on 1 March and became "mid-market" on 10 March counts as enterprise for the
    whole of March, also in the numerator (its churn in March is enterprise churn). A monthly
    trend reads each month as of that month's first day. A customer without any history row
    for a dimension (never seen by the lifecycle context) is judged by its current field.
    Cohort and product do not change over time.
    """

    segment: str = ""
    touch_model: str = ""
    lifecycle_stage: str = ""
    owner_id: int | None = None
    product_id: int | None = None
    cohort: str = ""
    as_of: date | None = None
    group: tuple[GroupBy, str] | None = None

    @property
    def filters_customers(self) -> bool:
        return bool(
            self.segment
            or self.touch_model
            or self.lifecycle_stage
            or self.owner_id is not None
            or self.cohort
            or self.group is not None
        )

    @property
    def reads_history(self) -> bool:
        """Whether a filter reads segment, touch model, stage or owner (as of a day)."""
        return bool(
            self.segment
            or self.touch_model
            or self.lifecycle_stage
            or self.owner_id is not None
            or self.group is not None
        )

    def day_for(self, start: date) -> date:
        """The day the dimensions are read on for a period starting on ``start``."""
        return self.as_of or start

    def customer_filter(self, day: date) -> Q:
        """The Customer condition, the dimensions read on ``day`` (``as_of`` is applied by
        ``day_for``, not here)."""
        condition = Q()
        if self.segment:
            condition &= dimension_filter(GroupBy.SEGMENT, [self.segment], day)
        if self.touch_model:
            condition &= dimension_filter(GroupBy.TOUCH_MODEL, [self.touch_model], day)
        if self.lifecycle_stage:
            condition &= dimension_filter(GroupBy.STAGE, [self.lifecycle_stage], day)
        if self.owner_id is not None:
            condition &= dimension_filter(GroupBy.OWNER, [str(self.owner_id)], day)
        if self.group is not None:
            condition &= dimension_filter(self.group[0], [self.group[1]], day)
        if self.cohort:
            first = parse_cohort(self.cohort)
            condition &= Q(first_start_date__gte=first, first_start_date__lt=next_month(first))
        return condition

    def customers(self, day: date) -> QuerySet[Customer, Any]:
        """The ids of the customers in the population on ``day``, unordered (for ``IN``)."""
        return Customer.objects.filter(self.customer_filter(day)).order_by().values("id")

    def customer_ids_sql(self, day: date) -> tuple[str, tuple[Any, ...]]:
        """``SELECT id FROM customers …`` on ``day`` with its parameters, for ``IN (…)``."""
        sql, params = self.customers(day).query.sql_with_params()
        return sql, tuple(params)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["group"] = None if self.group is None else [str(self.group[0]), self.group[1]]
        return data
