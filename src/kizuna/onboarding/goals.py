"""Success goals agreed with the customer: a metric target or a checklist, with a due date.

A goal is *achieved* when its definition is met on or before its due date: a metric goal
when the customer's latest metric value (``CustomerMetric``) meets the target, on the day
that value was measured (not before the goal was agreed); a checklist goal when every item
is ticked, on the day of the last tick. It is *missed* once the due date has passed
unachieved; a missed goal stays missed (the initial outcome achievement rate counts goals
reached by their due date).
"""

from datetime import date
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.translation import gettext as _

from kizuna.core import timeline
from kizuna.core.models import TimelineKind, User
from kizuna.customers.models import Customer
from kizuna.onboarding.completion import COMPARISONS, compare
from kizuna.onboarding.models import (
    GoalKind,
    GoalStatus,
    OnboardingPlan,
    SuccessGoal,
)


def _checklist(items: list[Any] | None) -> list[dict[str, Any]]:
    cleaned: list[dict[str, Any]] = []
    for item in items or []:
        if isinstance(item, dict):
            text, done = str(item.get("text", "")).strip(), bool(item.get("done", False))
        else:
            text, done = str(item).strip(), False
        if text:
            cleaned.append({"text": text[:300], "done": done})
    return cleaned


@transaction.atomic
def add_goal(
    *,
    customer: Customer,
    title: str,
    kind: str,
    due_date: date | None,
    metric_key: str = "",
    op: str = ">=",
    target: float | None = None,
    checklist: list[Any] | None = None,
    plan: OnboardingPlan | None = None,
    agreed_on: date | None = None,
    actor: User | None = None,
) -> SuccessGoal:
    """Record a goal agreed with the customer and return it.

    metric: ``metric_key`` (an existing metric), ``op`` (>=, >, <=, <, =) and ``target``;
    checklist: ``checklist`` items (strings, or {"text", "done"}), at least one. ``due_date``
    is required. ``plan`` defaults to the customer's open onboarding plan. Goals are ordered
    as added: the first one feeds the initial outcome KPIs. ValidationError names the field.
    """
    from kizuna.analytics.models import MetricDefinition

    errors: dict[str, str] = {}
    title = title.strip()
    if not title:
        errors["title"] = _("Describe the goal.")
    if due_date is None:
        errors["due_date"] = _("A due date is required.")
    items: list[dict[str, Any]] = []
    if kind == GoalKind.METRIC:
        if not metric_key:
            errors["metric_key"] = _("Choose the metric that measures the goal.")
        elif not MetricDefinition.objects.filter(key=metric_key).exists():
            errors["metric_key"] = _("There is no metric %(key)r.") % {"key": metric_key}
        if op not in COMPARISONS:
            errors["op"] = _("The comparison must be one of %(ops)s.") % {
                "ops": " ".join(COMPARISONS)
            }
        if target is None or isinstance(target, bool):
            errors["target"] = _("A target number is required.")
    elif kind == GoalKind.CHECKLIST:
        items = _checklist(checklist)
        if not items:
            errors["checklist"] = _("A checklist needs at least one item.")
    else:
        errors["kind"] = _("Choose a metric target or a checklist.")
    if plan is not None and plan.customer_id != customer.pk:
        errors["plan"] = _("The plan belongs to another customer.")
    if errors or due_date is None:
        raise ValidationError(errors)
    if plan is None:
        plan = OnboardingPlan.objects.filter(
            customer=customer, completed_on__isnull=True, cancelled_at__isnull=True
        ).first()
    top = SuccessGoal.objects.filter(customer=customer).aggregate(top=Max("position"))["top"]
    goal = SuccessGoal(
        customer=customer,
        plan=plan,
        title=title,
        kind=kind,
        metric_key=metric_key if kind == GoalKind.METRIC else "",
        op=op if kind == GoalKind.METRIC else ">=",
        target=float(target) if kind == GoalKind.METRIC and target is not None else None,
        checklist=items,
        due_date=due_date,
        position=0 if top is None else top + 1,
        agreed_on=agreed_on or timezone.localdate(),
    )
    goal.full_clean()
    goal.save()
    timeline.record_after_commit(
        customer_id=customer.pk,
        kind=TimelineKind.GOAL_AGREED,
        title=_("Success goal agreed: %(title)s") % {"title": goal.title},
        actor=actor,
        payload={"goal": goal.pk, "plan": goal.plan_id, "kind": goal.kind},
    )
    return goal


def _achieve(goal: SuccessGoal, day: date, *, actor: User | None = None) -> None:
    goal.status = GoalStatus.ACHIEVED
    goal.achieved_on = day
    timeline.record_after_commit(
        customer_id=goal.customer_id,
        kind=TimelineKind.GOAL_ACHIEVED,
        title=_("Success goal achieved: %(title)s") % {"title": goal.title},
        actor=actor,
        payload={"goal": goal.pk, "plan": goal.plan_id, "achieved_on": day.isoformat()},
    )


@transaction.atomic
def tick_checklist_item(
    goal: SuccessGoal,
    index: int,
    *,
    done: bool = True,
    actor: User | None = None,
    on: date | None = None,
) -> SuccessGoal:
    """Tick (or untick) one checklist item and return the goal.

    The last tick on or before the due date achieves the goal; unticking an item of an
    achieved goal opens it again. Ticks after the due date are kept but do not achieve it.
    """
    goal = SuccessGoal.objects.select_for_update().get(pk=goal.pk)
    if goal.kind != GoalKind.CHECKLIST:
        raise ValidationError({"kind": _("This goal is measured by a metric, not a checklist.")})
    items = _checklist(goal.checklist)
    if not 0 <= index < len(items):
        raise ValidationError(
            {"checklist": _("There is no item %(number)s.") % {"number": index + 1}}
        )
    day = on or timezone.localdate()
    items[index]["done"] = done
    goal.checklist = items
    fields = ["checklist"]
    all_done = all(item["done"] for item in items)
    if goal.status == GoalStatus.OPEN and all_done and day <= goal.due_date:
        _achieve(goal, day, actor=actor)
        fields += ["status", "achieved_on"]
    elif goal.status == GoalStatus.ACHIEVED and not all_done:
        goal.status = GoalStatus.MISSED if day > goal.due_date else GoalStatus.OPEN
        goal.achieved_on = None
        fields += ["status", "achieved_on"]
    goal.save(update_fields=fields)
    return goal


def evaluate_goals(as_of: date | None = None) -> int:
    """Mark open goals achieved or missed as of a day (default today); returns goals changed.

    One query for the open goals, one for the metric values, one bulk update, one UPDATE
    for the missed ones, whatever their number.
    """
    from kizuna.analytics.models import CustomerMetric

    day = as_of or timezone.localdate()
    goals = list(SuccessGoal.objects.filter(status=GoalStatus.OPEN))
    metric_goals = [g for g in goals if g.kind == GoalKind.METRIC and g.metric_key]
    readings = {
        (customer_id, key): (value, measured)
        for customer_id, key, value, measured in CustomerMetric.objects.filter(
            customer_id__in={g.customer_id for g in metric_goals},
            metric__key__in={g.metric_key for g in metric_goals},
            value__isnull=False,
            as_of__lte=day,
        ).values_list("customer_id", "metric__key", "value", "as_of")
    }
    achieved: list[SuccessGoal] = []
    with transaction.atomic():
        for goal in goals:
            if goal.kind == GoalKind.METRIC:
                reading = readings.get((goal.customer_id, goal.metric_key))
                if reading is None or goal.target is None or goal.op not in COMPARISONS:
                    continue
                value, measured = reading
                if value is None:
                    continue
                when = max(measured, goal.agreed_on)
                if when <= goal.due_date and compare(value, goal.op, goal.target):
                    _achieve(goal, when)
                    achieved.append(goal)
            elif goal.kind == GoalKind.CHECKLIST:
                items = _checklist(goal.checklist)
                if items and all(item["done"] for item in items) and day <= goal.due_date:
                    _achieve(goal, day)
                    achieved.append(goal)
        SuccessGoal.objects.bulk_update(achieved, ["status", "achieved_on"])
        missed = (
            SuccessGoal.objects.filter(status=GoalStatus.OPEN, due_date__lt=day)
            .exclude(pk__in=[g.pk for g in achieved])
            .update(status=GoalStatus.MISSED)
        )
    return len(achieved) + missed


def first_goal(customer: Customer) -> SuccessGoal | None:
    """The customer's first goal (lowest position, then oldest), the one the KPIs follow."""
    return (
        SuccessGoal.objects.filter(customer=customer)
        .order_by("position", "created_at", "id")
        .first()
    )
