"""Success goals: validated when agreed, achieved or missed by their due date, first goal."""

from datetime import date
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.utils import translation

from kizuna.analytics.models import CustomerMetric, MetricDefinition
from kizuna.core.models import TimelineEntry
from kizuna.customers.models import Customer
from kizuna.onboarding.goals import add_goal, evaluate_goals, first_goal, tick_checklist_item
from kizuna.onboarding.models import GoalKind, GoalStatus, SuccessGoal
from kizuna.onboarding.plans import create_plan
from kizuna.onboarding.tests.test_plans import customer
from kizuna.onboarding.tests.test_programs import make_version

DUE = date(2026, 11, 30)
AGREED = date(2026, 11, 2)


@pytest.fixture
def metric(db: None) -> MetricDefinition:
    definition, _ = MetricDefinition.objects.get_or_create(
        key="active_users_28d", defaults={"name": "Active users", "kind": "active_users"}
    )
    return definition


def metric_goal(who: Customer, *, target: float = 20, op: str = ">=") -> SuccessGoal:
    return add_goal(
        customer=who,
        title="20 people record attendance",
        kind=GoalKind.METRIC,
        metric_key="active_users_28d",
        op=op,
        target=target,
        due_date=DUE,
        agreed_on=AGREED,
    )


def measure(who: Customer, metric: MetricDefinition, value: float, on: date) -> None:
    CustomerMetric.objects.update_or_create(
        customer=who, metric=metric, defaults={"value": value, "as_of": on}
    )


@pytest.mark.django_db
def test_a_goal_is_validated_naming_each_bad_field() -> None:
    who = customer()
    with translation.override("en"), pytest.raises(ValidationError) as error:
        add_goal(
            customer=who,
            title=" ",
            kind=GoalKind.METRIC,
            metric_key="no_such_metric",
            op="=>",
            target=None,
            due_date=None,
        )
    assert error.value.message_dict == {
        "title": ["Describe the goal."],
        "due_date": ["A due date is required."],
        "metric_key": ["There is no metric 'no_such_metric'."],
        "op": ["The comparison must be one of >= > <= < =."],
        "target": ["A target number is required."],
    }
    with translation.override("en"), pytest.raises(ValidationError) as error:
        add_goal(customer=who, title="Go live", kind="checklist", checklist=["", " "], due_date=DUE)
    assert error.value.message_dict == {"checklist": ["A checklist needs at least one item."]}
    with pytest.raises(ValidationError) as error:
        add_goal(customer=who, title="Go live", kind="vibes", due_date=DUE)
    assert list(error.value.message_dict) == ["kind"]
    assert not SuccessGoal.objects.exists()


@pytest.mark.django_db
def test_goals_are_ordered_as_agreed_attached_to_the_open_plan_and_on_the_timeline(
    metric: MetricDefinition, django_capture_on_commit_callbacks: Any
) -> None:
    who = customer()
    plan = create_plan(customer=who, version=make_version([{"key": "kickoff"}]))
    with django_capture_on_commit_callbacks(execute=True):
        first = metric_goal(who)
        second = add_goal(
            customer=who,
            title="Payroll export set up",
            kind=GoalKind.CHECKLIST,
            checklist=["Map pay codes", {"text": "Export once", "done": True}],
            due_date=DUE,
        )
    assert (first.position, second.position) == (0, 1)
    assert first.plan == plan
    assert second.checklist == [
        {"text": "Map pay codes", "done": False},
        {"text": "Export once", "done": True},
    ]
    assert first_goal(who) == first
    assert first_goal(customer("Nobody")) is None
    agreed = TimelineEntry.objects.filter(kind="goal.agreed", customer=who)
    assert sorted(e.payload["goal"] for e in agreed) == [first.pk, second.pk]


@pytest.mark.django_db
def test_a_metric_goal_is_achieved_on_the_day_its_value_was_measured(
    metric: MetricDefinition, django_capture_on_commit_callbacks: Any
) -> None:
    reached, short, unmeasured = customer("Reached"), customer("Short"), customer("Unmeasured")
    goals = {c.name: metric_goal(c) for c in (reached, short, unmeasured)}
    measure(reached, metric, 21, date(2026, 11, 18))
    measure(short, metric, 19, date(2026, 11, 18))

    with django_capture_on_commit_callbacks(execute=True):
        assert evaluate_goals(date(2026, 11, 18)) == 1

    for goal in goals.values():
        goal.refresh_from_db()
    assert (goals["Reached"].status, goals["Reached"].achieved_on) == (
        GoalStatus.ACHIEVED,
        date(2026, 11, 18),
    )
    assert goals["Short"].status == GoalStatus.OPEN
    assert goals["Unmeasured"].status == GoalStatus.OPEN
    [entry] = TimelineEntry.objects.filter(kind="goal.achieved")
    assert entry.customer_id == reached.pk


@pytest.mark.django_db
def test_a_goal_not_reached_by_its_due_date_is_missed_and_stays_missed(
    metric: MetricDefinition,
) -> None:
    who = customer()
    goal = metric_goal(who)
    measure(who, metric, 5, DUE)
    assert evaluate_goals(DUE) == 0  # the due day itself still counts
    assert evaluate_goals(date(2026, 12, 1)) == 1
    goal.refresh_from_db()
    assert (goal.status, goal.achieved_on) == (GoalStatus.MISSED, None)
    # Reached later: the goal was missed (the KPI counts goals reached by their due date).
    measure(who, metric, 25, date(2026, 12, 3))
    assert evaluate_goals(date(2026, 12, 3)) == 0
    goal.refresh_from_db()
    assert goal.status == GoalStatus.MISSED


@pytest.mark.django_db
def test_a_value_measured_after_the_due_date_does_not_achieve_the_goal(
    metric: MetricDefinition,
) -> None:
    who = customer()
    goal = metric_goal(who)
    measure(who, metric, 30, date(2026, 12, 2))
    assert evaluate_goals(date(2026, 12, 2)) == 1
    goal.refresh_from_db()
    assert goal.status == GoalStatus.MISSED


@pytest.mark.django_db
def test_a_value_already_reached_when_the_goal_was_agreed_counts_from_the_agreement(
    metric: MetricDefinition,
) -> None:
    who = customer()
    goal = metric_goal(who, target=10, op="<")  # e.g. fewer than 10 open support tickets
    measure(who, metric, 3, date(2026, 10, 25))
    evaluate_goals(date(2026, 11, 5))
    goal.refresh_from_db()
    assert (goal.status, goal.achieved_on) == (GoalStatus.ACHIEVED, AGREED)


@pytest.mark.django_db
def test_a_checklist_goal_is_achieved_by_its_last_tick_before_the_due_date() -> None:
    who = customer()
    goal = add_goal(
        customer=who,
        title="Payroll ready",
        kind=GoalKind.CHECKLIST,
        checklist=["Map pay codes", "Export once"],
        due_date=DUE,
    )
    goal = tick_checklist_item(goal, 0, on=date(2026, 11, 10))
    assert goal.status == GoalStatus.OPEN
    goal = tick_checklist_item(goal, 1, on=date(2026, 11, 12))
    assert (goal.status, goal.achieved_on) == (GoalStatus.ACHIEVED, date(2026, 11, 12))
    # Unticking opens it again.
    goal = tick_checklist_item(goal, 1, done=False, on=date(2026, 11, 13))
    assert (goal.status, goal.achieved_on) == (GoalStatus.OPEN, None)
    with translation.override("en"), pytest.raises(ValidationError) as error:
        tick_checklist_item(goal, 2)
    assert error.value.message_dict == {"checklist": ["There is no item 3."]}
    # Ticked after the due date: kept, not achieved.
    goal = tick_checklist_item(goal, 1, on=date(2026, 12, 1))
    assert goal.status == GoalStatus.OPEN
    assert goal.checklist[1]["done"] is True
    assert evaluate_goals(date(2026, 12, 1)) == 1
    goal.refresh_from_db()
    assert goal.status == GoalStatus.MISSED


@pytest.mark.django_db
def test_evaluating_takes_the_same_queries_for_any_number_of_goals(
    metric: MetricDefinition, django_assert_max_num_queries: Any
) -> None:
    for number in range(15):
        who = customer(f"c{number}")
        metric_goal(who)
        measure(who, metric, number * 2, date(2026, 11, 18))
    with django_assert_max_num_queries(8):
        assert evaluate_goals(date(2026, 11, 18)) == 5  # 20, 22, 24, 26, 28
