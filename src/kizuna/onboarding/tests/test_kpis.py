"""Onboarding KPIs on a hand-made March 2026 cohort; every answer is worked out in comments.

Cohort March 2026 (first start in [03-01, 04-01)): A 03-02, B 03-10, C 03-20, D 03-25.
E starts 04-05 (another cohort). Judged as of 2026-06-01. Program version: 60 target days,
milestone m1 due day 10, m2 due day 59.
"""

from datetime import date, timedelta
from typing import Any

import pyarrow as pa
import pytest
from django.utils import timezone

from kizuna.analytics import lake
from kizuna.analytics.models import UsageSettings
from kizuna.customers.models import Customer
from kizuna.onboarding import kpis
from kizuna.onboarding.models import (
    GoalKind,
    GoalStatus,
    Milestone,
    MilestoneStatus,
    OnboardingPlan,
    Phase,
    PlanMilestone,
    Program,
    ProgramVersion,
    SuccessGoal,
)

pytestmark = pytest.mark.django_db

MARCH = {"start": date(2026, 3, 1), "end": date(2026, 4, 1)}
AS_OF = date(2026, 6, 1)


def d(text: str) -> date:
    return date.fromisoformat(text)


@pytest.fixture
def story() -> dict[str, Any]:
    program = Program.objects.create(key="std", name="Standard")
    version = ProgramVersion.objects.create(program=program, number=1, target_days=60)
    phase = Phase.objects.create(version=version, name="Setup", position=1)
    m1 = Milestone.objects.create(
        version=version,
        phase=phase,
        key="m1",
        name="Account setup",
        due_offset_days=10,
        position=1,
    )
    m2 = Milestone.objects.create(
        version=version,
        phase=phase,
        key="m2",
        name="Go-live",
        due_offset_days=59,
        position=2,
        required=False,
    )
    customers = {
        name: Customer.objects.create(name=name, external_id=name, first_start_date=d(start))
        for name, start in [
            ("A", "2026-03-02"),
            ("B", "2026-03-10"),
            ("C", "2026-03-20"),
            ("D", "2026-03-25"),
            ("E", "2026-04-05"),
        ]
    }

    def plan(
        name: str, completed: str | None, m1_done: str | None, second: tuple[str, str | None]
    ) -> None:
        who = customers[name]
        start = who.first_start_date
        assert start is not None
        p = OnboardingPlan.objects.create(
            customer=who,
            version=version,
            start_date=start,
            target_date=start + timedelta(days=60),
            completed_on=d(completed) if completed else None,
        )
        PlanMilestone.objects.create(
            plan=p,
            milestone=m1,
            due_date=start + timedelta(days=10),
            status=MilestoneStatus.DONE if m1_done else MilestoneStatus.IN_PROGRESS,
            completed_on=d(m1_done) if m1_done else None,
        )
        status, done = second
        PlanMilestone.objects.create(
            plan=p,
            milestone=m2,
            due_date=start + timedelta(days=59),
            status=status,
            completed_on=d(done) if done else None,
        )

    # A: target 05-01, completed 04-15 (on time, 44 days); m1 done 03-10 (due 03-12; 8 days).
    plan("A", "2026-04-15", "2026-03-10", (MilestoneStatus.DONE, "2026-04-15"))
    # B: target 05-09, completed 05-20 (late, 71 days); m1 done 03-25 (due 03-20: late, 15 days).
    plan("B", "2026-05-20", "2026-03-25", (MilestoneStatus.DONE, "2026-05-20"))
    # C: target 05-19, open; m1 open and due 03-30 (overdue); m2 skipped.
    plan("C", None, None, (MilestoneStatus.SKIPPED, None))
    # D: only a cancelled plan, so D has no plan for the KPIs.
    OnboardingPlan.objects.create(
        customer=customers["D"],
        version=version,
        start_date=d("2026-03-25"),
        target_date=d("2026-05-24"),
        cancelled_at=timezone.now(),
    )
    # E (April cohort) completed on time: must not count in March.
    plan("E", "2026-04-20", "2026-04-10", (MilestoneStatus.DONE, "2026-04-20"))

    def goal(name: str, position: int, status: str, due: str, achieved: str | None) -> None:
        SuccessGoal.objects.create(
            customer=customers[name],
            title=f"goal {name}{position}",
            kind=GoalKind.CHECKLIST,
            checklist=[{"text": "x", "done": status == GoalStatus.ACHIEVED}],
            due_date=d(due),
            status=status,
            achieved_on=d(achieved) if achieved else None,
            position=position,
        )

    # A's first goal achieved 03-31 by its due date 04-30 (29 days); its second one is ignored.
    goal("A", 0, GoalStatus.ACHIEVED, "2026-04-30", "2026-03-31")
    goal("A", 1, GoalStatus.MISSED, "2026-04-10", None)
    # B's first goal achieved 05-10, after its due date 04-30 (61 days from the start).
    goal("B", 0, GoalStatus.ACHIEVED, "2026-04-30", "2026-05-10")
    # C's first goal is open, due 07-01 (not yet due on 06-01). D set no goal.
    goal("C", 0, GoalStatus.OPEN, "2026-07-01", None)
    return {"version": version, "customers": customers}


def test_completion_rate_counts_plans_completed_within_target_days(story: dict[str, Any]) -> None:
    result = kpis.onboarding_completion_rate(**MARCH, as_of=AS_OF)

    # A on time; B late; C past its target; D has no plan: 1 / 3.
    assert (result.numerator, result.denominator) == (1, 3)
    assert result.value == pytest.approx(1 / 3)
    assert result.details["completed_late"] == 1
    assert result.details["not_completed_past_target"] == 1
    assert result.details["in_progress_within_target"] == 0
    # Day 30: all three are 30 days old, none completed by day 30 (44, 71 days): 0/3.
    # Day 60: all three old enough, A within 60 days: 1/3. Day 90: only A is 90 days old: 1/1.
    assert result.details["by_day"]["30"] == {"plans": 3, "completed": 0, "rate": 0.0}
    assert result.details["by_day"]["60"]["completed"] == 1
    assert result.details["by_day"]["90"] == {"plans": 1, "completed": 1, "rate": 1.0}


def test_completion_rate_before_the_target_counts_the_plan_as_in_progress(
    story: dict[str, Any],
) -> None:
    # On 05-15 C's target (05-19) has not passed yet; B is not completed either (target 05-09).
    result = kpis.onboarding_completion_rate(**MARCH, as_of=d("2026-05-15"))

    assert (result.numerator, result.denominator) == (1, 3)
    assert result.details["in_progress_within_target"] == 1


def test_completion_rate_filters_by_population_and_version(story: dict[str, Any]) -> None:
    customers = story["customers"]
    only_a_and_b = Customer.objects.filter(pk__in=[customers["A"].pk, customers["B"].pk])

    result = kpis.onboarding_completion_rate(
        **MARCH, customers=only_a_and_b.values("pk"), version_id=story["version"].pk, as_of=AS_OF
    )
    assert (result.numerator, result.denominator) == (1, 2)

    other = ProgramVersion.objects.create(program=story["version"].program, number=2)
    empty = kpis.onboarding_completion_rate(**MARCH, version_id=other.pk, as_of=AS_OF)
    assert (empty.value, empty.denominator) == (None, 0)


def test_initial_outcome_achievement_uses_the_first_goal_and_its_due_date(
    story: dict[str, Any],
) -> None:
    result = kpis.initial_outcome_achievement_rate(**MARCH, as_of=AS_OF)

    # A achieved by due date; B late; C open: 1 / 3 customers that set a goal (D set none).
    assert (result.numerator, result.denominator) == (1, 3)
    assert result.details["open_before_due_date"] == 1


def test_time_to_first_value_is_the_median_over_customers_that_reached_it(
    story: dict[str, Any],
) -> None:
    result = kpis.time_to_first_value(**MARCH)

    # First goals achieved: A after 29 days, B after 61: median 45; 2 of 4 have not.
    assert result.value == 45.0
    assert result.details["reached_first_value"] == 2
    assert result.details["not_reached_share"] == 0.5
    # Onboarding completed: A 44 days, B 71: median 57.5.
    assert result.details["median_days_to_onboarding_completed"] == 57.5


def test_milestone_funnel_shows_where_plans_stall(story: dict[str, Any]) -> None:
    steps = kpis.milestone_funnel(version_id=story["version"].pk, **MARCH, as_of=AS_OF)

    m1, m2 = steps
    # m1: A 8 days on time, B 15 days late, C open past due: 2/3 done, median 11.5, 2/3 overdue.
    assert (m1.key, m1.plans, m1.completed, m1.median_days, m1.overdue) == ("m1", 3, 2, 11.5, 2)
    # m2: A 44 days, B 71 days (late: due 05-08), C skipped (not overdue).
    assert (m2.key, m2.completed, m2.median_days, m2.overdue) == ("m2", 2, 57.5, 1)
    assert m2.overdue_share == pytest.approx(1 / 3)


def write_logins(rows: list[tuple[str, str]]) -> None:
    """rows: (customer external id, local date) of one login by user u1."""
    times = pa.array(
        [
            timezone.datetime.fromisoformat(f"{day} 10:00").replace(tzinfo=lake.company_zone())
            for _account, day in rows
        ],
        pa.timestamp("us", tz="UTC"),
    )
    n = len(rows)
    lake.write_events(
        pa.table(
            {
                "message_id": [f"m{i}" for i in range(n)],
                "origin": ["import:1"] * n,
                "kind": ["track"] * n,
                "event_type": ["login"] * n,
                "event_time": times,
                "event_date": lake.event_dates(times),
                "received_at": times,
                "user_id": ["u1"] * n,
                "anonymous_id": [""] * n,
                "account_key": [account for account, _day in rows],
                "event_value": pa.array([None] * n, pa.float64()),
                "feature": ["login"] * n,
                "properties": ["{}"] * n,
            }
        ),
        "import-000001",
    )


def test_initial_usage_rate_counts_activity_in_the_first_30_days(story: dict[str, Any]) -> None:
    usage = UsageSettings.load()
    usage.qualifying_event_types = ["login"]
    usage.save()
    # A on its day 0 (counts); B on day 29 (03-10 + 29 = 04-08, counts); C on day 30
    # (03-20 + 30 = 04-19, too late); E (April cohort) is outside. D never: 2 / 4.
    write_logins(
        [("A", "2026-03-02"), ("B", "2026-04-08"), ("C", "2026-04-19"), ("E", "2026-04-06")]
    )

    result = kpis.initial_usage_rate(**MARCH, as_of=AS_OF)

    assert (result.numerator, result.denominator) == (2, 4)
    assert result.value == 0.5


def test_initial_usage_rate_without_events_is_zero_over_the_cohort(story: dict[str, Any]) -> None:
    result = kpis.initial_usage_rate(**MARCH, as_of=d("2026-04-10"))

    assert (result.numerator, result.denominator) == (0, 4)
    # On 04-10 the 30-day windows of A (to 03-31) and B (to 04-08) have closed; C and D not.
    assert result.details["customers_whose_window_is_still_open"] == 2


# Judging on an earlier day, the program filter and the funnel's stall (added with the
# reports): the same story.


def test_a_plan_completed_after_as_of_is_still_open_on_that_day(story: dict[str, Any]) -> None:
    # On 05-15 B's completion (05-20) has not happened: B is open past its target (05-09).
    result = kpis.onboarding_completion_rate(**MARCH, as_of=d("2026-05-15"))

    assert result.details["completed_late"] == 0
    assert result.details["not_completed_past_target"] == 1


def test_goals_count_when_achieved_by_as_of(story: dict[str, Any]) -> None:
    # On 04-15: A's first goal achieved 03-31 (by its due date); B's (05-10) and C's open.
    outcome = kpis.initial_outcome_achievement_rate(**MARCH, as_of=d("2026-04-15"))
    assert (outcome.numerator, outcome.denominator) == (1, 3)
    assert outcome.details["open_before_due_date"] == 2  # B due 04-30, C due 07-01
    # Time to first value on 04-15: only A (29 days) of the 4 cohort customers.
    value = kpis.time_to_first_value(**MARCH, as_of=d("2026-04-15"))
    assert (value.value, value.numerator, value.denominator) == (29.0, 1, 4)
    assert value.details["completed_onboarding"] == 1  # A on 04-15; B comes on 05-20
    assert value.details["median_days_to_onboarding_completed"] == 44.0


def test_a_program_narrows_every_kpi_to_customers_with_a_plan_of_it(
    story: dict[str, Any],
) -> None:
    program = story["version"].program
    other = Program.objects.create(key="lite", name="Lite")
    lite = ProgramVersion.objects.create(program=other, number=1, target_days=30)
    # D gets a plan of another program (started 03-25, completed 04-10: on time).
    OnboardingPlan.objects.create(
        customer=story["customers"]["D"],
        version=lite,
        start_date=d("2026-03-25"),
        target_date=d("2026-04-24"),
        completed_on=d("2026-04-10"),
    )

    # Every cohort customer has a plan now: 2 on time (A, D) of 4.
    everyone = kpis.onboarding_completion_rate(**MARCH, as_of=AS_OF)
    assert (everyone.numerator, everyone.denominator) == (2, 4)
    standard = kpis.onboarding_completion_rate(**MARCH, program_id=program.pk, as_of=AS_OF)
    assert (standard.numerator, standard.denominator) == (1, 3)
    only_lite = kpis.onboarding_completion_rate(**MARCH, program_id=other.pk, as_of=AS_OF)
    assert (only_lite.numerator, only_lite.denominator) == (1, 1)
    # The customer-based KPIs count only the customers with a plan of the program.
    usage = kpis.initial_usage_rate(**MARCH, program_id=program.pk, as_of=AS_OF)
    assert usage.denominator == 3
    value = kpis.time_to_first_value(**MARCH, program_id=other.pk, as_of=AS_OF)
    assert (value.value, value.numerator, value.denominator) == (None, 0, 1)  # D set no goal
    outcome = kpis.initial_outcome_achievement_rate(
        **MARCH, version_id=story["version"].pk, as_of=AS_OF
    )
    assert (outcome.numerator, outcome.denominator) == (1, 3)
    funnels = kpis.milestone_funnels(**MARCH, as_of=AS_OF)
    assert [(f.program, f.version, f.plans) for f in funnels] == [("lite", 1, 1), ("std", 1, 3)]


def test_the_funnel_names_the_step_where_plans_stall(story: dict[str, Any]) -> None:
    (funnel,) = kpis.milestone_funnels(**MARCH, as_of=AS_OF)
    assert (funnel.plans, funnel.completed_plans, funnel.target_days) == (3, 2, 60)
    # C's first open required milestone is m1, due 03-30: stalled there.
    assert [(s.key, s.stalled) for s in funnel.steps] == [("m1", 1), ("m2", 0)]
    assert funnel.stall_key == "m1"
    assert funnel.steps[0].stalled_share == pytest.approx(1 / 3, abs=1e-6)

    # On 03-24 B's m1 (done 03-25, due 03-20) is still open and past due: B is stalled at m1
    # (and it is overdue); C's m1 is not due until 03-30, so C is not stalled yet.
    (early,) = kpis.milestone_funnels(**MARCH, as_of=d("2026-03-24"))
    m1 = early.steps[0]
    assert (m1.completed, m1.overdue, m1.stalled) == (1, 1, 1)  # A done; B late
    assert early.completed_plans == 0
    # On 03-12 nothing is past due but A's m1 (done 03-10): nobody stalls.
    (first_days,) = kpis.milestone_funnels(**MARCH, as_of=d("2026-03-12"))
    assert first_days.stall_key is None


def test_initial_usage_counts_only_events_by_as_of(story: dict[str, Any]) -> None:
    usage = UsageSettings.load()
    usage.qualifying_event_types = ["login"]
    usage.save()
    write_logins([("A", "2026-03-02"), ("B", "2026-04-08")])

    # On 04-01 B's login (04-08, its day 29) has not happened yet.
    result = kpis.initial_usage_rate(**MARCH, as_of=d("2026-04-01"))

    assert (result.numerator, result.denominator) == (1, 4)
    assert result.details["has_usage_data"] is True
