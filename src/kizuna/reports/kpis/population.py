"""The customers a KPI is computed over: filters by segment, touch model, stage, owner, cohort."""

from dataclasses import dataclass
from datetime import date
from typing import Any

from django.db.models import Q, QuerySet

from kizuna.customers.models import Customer


class KpiInputError(ValueError):
    """A bad KPI argument; ``field`` names it (``start``, ``segment``, ``currency`` …)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


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


@dataclass(frozen=True, kw_only=True)
class Population:
    """Which customers (and which of their subscriptions) a KPI counts.

    Empty fields do not filter. ``owner_id`` matches any of the three phase owners;
    ``cohort`` (``YYYY-MM``) is the month of the customer's first start date; ``product_id``
    keeps only that product's subscriptions, so a customer who drops that product churns
    from it even while it keeps others. Segment, touch model, stage and owners are the
    customer's current values.
    """

    segment: str = ""
    touch_model: str = ""
    lifecycle_stage: str = ""
    owner_id: int | None = None
    product_id: int | None = None
    cohort: str = ""

    @property
    def filters_customers(self) -> bool:
        return bool(
            self.segment
            or self.touch_model
            or self.lifecycle_stage
            or self.owner_id is not None
            or self.cohort
        )

    def customer_filter(self) -> Q:
        condition = Q()
        if self.segment:
            condition &= Q(segment=self.segment)
        if self.touch_model:
            condition &= Q(touch_model=self.touch_model)
        if self.lifecycle_stage:
            condition &= Q(lifecycle_stage=self.lifecycle_stage)
        if self.owner_id is not None:
            condition &= (
                Q(onboarding_owner_id=self.owner_id)
                | Q(adoption_owner_id=self.owner_id)
                | Q(expansion_owner_id=self.owner_id)
            )
        if self.cohort:
            first = parse_cohort(self.cohort)
            condition &= Q(first_start_date__gte=first, first_start_date__lt=next_month(first))
        return condition

    def customers(self) -> QuerySet[Customer, Any]:
        """The ids of the customers in the population, unordered (for ``IN`` subqueries)."""
        return Customer.objects.filter(self.customer_filter()).order_by().values("id")

    def customer_ids_sql(self) -> tuple[str, tuple[Any, ...]]:
        """``SELECT id FROM customers …`` with its parameters, for ``customer_id IN (…)``."""
        sql, params = self.customers().query.sql_with_params()
        return sql, tuple(params)

    def as_dict(self) -> dict[str, Any]:
        return {
            "segment": self.segment,
            "touch_model": self.touch_model,
            "lifecycle_stage": self.lifecycle_stage,
            "owner_id": self.owner_id,
            "product_id": self.product_id,
            "cohort": self.cohort,
        }
