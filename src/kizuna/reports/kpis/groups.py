"""A KPI broken down by segment, touch model, stage or owner, as of the period's start.

The groups are the values the population's customers held on the as-of day (from the
lifecycle history); the KPI runs once per group, each run the same set-based SQL as the
total with one more condition. Segment, touch model and stage partition the population, so
the groups' numerators and denominators add up to the total's. Owner groups may overlap: an
owner is any of the three phase owners, and a customer whose onboarding and adoption CSMs
differ counts under both (and under "no owner" only when it has none at all).
"""

from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Q
from django.utils.translation import gettext as _

from kizuna.customers.models import Customer, LifecycleStage, TouchModel
from kizuna.lifecycle.history import value_as_of
from kizuna.lifecycle.models import Segment
from kizuna.reports.kpis.catalog import compute_kpi, judging_day, kpi_definition
from kizuna.reports.kpis.onboarding import OnboardingKpiDefinition, ProgramFilter
from kizuna.reports.kpis.population import (
    GROUP_DIMENSIONS,
    GroupBy,
    KpiInputError,
    Population,
)
from kizuna.reports.kpis.results import KpiResult, json_number
from kizuna.reports.kpis.usage import DEFAULT_INACTIVITY_DAYS


def parse_group_by(value: str) -> GroupBy | None:
    """``segment``, ``touch_model``, ``stage`` or ``owner``; empty is None (no breakdown).

    Raises KpiInputError naming ``group_by`` for anything else.
    """
    value = (value or "").strip()
    if not value:
        return None
    try:
        return GroupBy(value)
    except ValueError:
        raise KpiInputError("group_by", f"'{value}' is not one of {', '.join(GroupBy)}") from None


@dataclass(frozen=True, kw_only=True)
class KpiGroup:
    """One group of a breakdown: its stored value (``""`` for none), label and result."""

    key: str
    label: str
    result: KpiResult

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "label": self.label,
            "value": json_number(self.result.value),
            "numerator": json_number(self.result.numerator),
            "denominator": json_number(self.result.denominator),
            "details": json_number(self.result.details),
        }


@dataclass(frozen=True, kw_only=True)
class GroupedKpi:
    """A KPI for a period, in total and per group, with the day the groups were read on."""

    group_by: GroupBy
    as_of: date
    total: KpiResult
    groups: list[KpiGroup]

    @property
    def overlapping(self) -> bool:
        """Whether a customer may count in several groups (owners), so sums may exceed the total."""
        return self.group_by is GroupBy.OWNER

    def as_json(self, *, name_en: str, name_ja: str) -> dict[str, Any]:
        """The total's JSON plus ``group_by``, ``as_of``, ``groups_overlap`` and ``groups``."""
        return {
            **self.total.as_json(name_en=name_en, name_ja=name_ja),
            "group_by": str(self.group_by),
            "as_of": self.as_of.isoformat(),
            "groups_overlap": self.overlapping,
            "groups": [group.as_json() for group in self.groups],
        }


def group_values(
    group_by: GroupBy, *, population: Population, day: date, within: Q | None = None
) -> list[str]:
    """The values of ``group_by`` the population's customers held on ``day``, in display order.

    One query: the customers' values as of ``day`` (``value_as_of``), distinct. ``""`` stands
    for "none" (no segment; for owners, no owner in any role) and comes last. ``within``
    narrows the customers further (an onboarding KPI's cohort).
    """
    dimensions = GROUP_DIMENSIONS[group_by]
    columns = {f"v{n}": value_as_of(dimension, day) for n, dimension in enumerate(dimensions)}
    condition = population.customer_filter(day)
    if within is not None:
        condition &= within
    rows = (
        Customer.objects.filter(condition)
        .order_by()
        .annotate(**columns)
        .values_list(*columns)
        .distinct()
    )
    found: set[str] = set()
    for row in rows:
        held = {str(value) for value in row if value not in (None, "")}
        found |= held or {""}
    return _ordered(group_by, found)


def _ordered(group_by: GroupBy, values: set[str]) -> list[str]:
    labels = group_labels(group_by, values)
    if group_by is GroupBy.STAGE:
        order = {value: n for n, value in enumerate(LifecycleStage.values)}
    elif group_by is GroupBy.TOUCH_MODEL:
        order = {value: n for n, value in enumerate(TouchModel.values)}
    elif group_by is GroupBy.SEGMENT:
        order = {
            key: n
            for n, key in enumerate(
                Segment.objects.order_by("position", "id").values_list("key", flat=True)
            )
        }
    else:
        order = {}
    last = len(order)
    return sorted(
        values,
        key=lambda value: (value == "", order.get(value, last), labels[value].casefold(), value),
    )


def group_labels(group_by: GroupBy, values: set[str] | list[str]) -> dict[str, str]:
    """How people read each value: the segment's name, the stage or touch model label, the
    owner's display name; ``""`` is "No segment" / "No owner"."""
    labels: dict[str, str] = {}
    if group_by is GroupBy.SEGMENT:
        names = dict(Segment.objects.filter(key__in=values).values_list("key", "name"))
        labels = {value: names.get(value, value) for value in values}
    elif group_by is GroupBy.STAGE:
        choices = dict(LifecycleStage.choices)
        labels = {value: str(choices.get(value, value)) for value in values}
    elif group_by is GroupBy.TOUCH_MODEL:
        choices = dict(TouchModel.choices)
        labels = {value: str(choices.get(value, value)) for value in values}
    else:
        ids = [int(value) for value in values if value.isdigit()]
        users = {str(user.pk): user for user in get_user_model().objects.filter(pk__in=ids)}
        labels = {
            value: str(users[value].display_name) if value in users else f"#{value}"
            for value in values
        }
    if "" in values:
        labels[""] = _("No owner") if group_by is GroupBy.OWNER else _("None")
        if group_by is GroupBy.SEGMENT:
            labels[""] = _("No segment")
    return labels


def compute_grouped_kpi(
    *,
    kpi_id: str,
    start: date,
    end: date,
    population: Population,
    group_by: GroupBy,
    inactivity_days: int = DEFAULT_INACTIVITY_DAYS,
    program: ProgramFilter | None = None,
    judged_on: date | None = None,
) -> GroupedKpi:
    """The KPI over [start, end] for the population and for each group of ``group_by``.

    The groups are read as of ``population.day_for(start)`` (the start day unless the
    population has an ``as_of``). For an onboarding KPI the groups are those of the cohort's
    customers, and every group is judged on the same day as the total (``judged_on``, default
    ``judging_day`` of the population as given). Raises KpiInputError like ``compute_kpi``.
    """
    definition = kpi_definition(kpi_id)
    day = population.day_for(start)
    judged = judging_day(population, judged_on)
    # Every group reads its dimensions on the same day as the total.
    pinned = replace(population, as_of=day)
    common: dict[str, Any] = {
        "kpi_id": kpi_id,
        "start": start,
        "end": end,
        "inactivity_days": inactivity_days,
        "program": program,
        "judged_on": judged,
    }
    total = compute_kpi(population=pinned, **common)
    within = None
    if isinstance(definition, OnboardingKpiDefinition):
        within = Q(first_start_date__gte=start, first_start_date__lt=end)
    values = group_values(group_by, population=pinned, day=day, within=within)
    labels = group_labels(group_by, values)
    groups = [
        KpiGroup(
            key=value,
            label=labels[value],
            result=compute_kpi(population=replace(pinned, group=(group_by, value)), **common),
        )
        for value in values
    ]
    return GroupedKpi(group_by=group_by, as_of=day, total=total, groups=groups)
