"""The demo's onboarding: two versions of the standard program, plans that follow the simulated
story, the stall at the administrator training, goals, kickoffs and a dated timeline."""

from dataclasses import replace
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings

from kizuna.analytics.history import metric_history
from kizuna.core.models import TimelineEntry, TimelineKind
from kizuna.customers.models import SalesHandoff
from kizuna.demo.config import DEFAULT_CONFIG
from kizuna.demo.load import LoadSummary, load_demo
from kizuna.demo.onboarding import SEAT_METRIC, SEAT_TARGET, STANDARD, TIMELINE_KINDS
from kizuna.demo.simulation import Simulator
from kizuna.onboarding import kpis, links
from kizuna.onboarding.jobs import run_onboarding
from kizuna.onboarding.models import (
    CompletedVia,
    GoalKind,
    GoalStatus,
    MilestoneStatus,
    OnboardingPlan,
    PlanLink,
    PlanMilestone,
    PlanStatus,
    PlanTask,
    ProgramVersion,
    SuccessGoal,
    VersionStatus,
)

TODAY = date(2026, 11, 20)
SEED, CUSTOMERS, MONTHS = 5, 45, 10
# Every customer starts within the usage history (so nearly every one has a plan), none
# earlier: a small company with a full onboarding story.
CONFIG = replace(DEFAULT_CONFIG, start_spread_months=MONTHS, established_share=0.0)
ZONE = ZoneInfo(settings.TIME_ZONE)
pytestmark = pytest.mark.django_db


@pytest.fixture
def demo(django_capture_on_commit_callbacks: Any) -> LoadSummary:
    with django_capture_on_commit_callbacks(execute=True):
        return load_demo(
            seed=SEED, customers=CUSTOMERS, months=MONTHS, metric_months=3, today=TODAY,
            config=CONFIG,
        )  # fmt: skip


def _simulated() -> dict[str, Any]:
    simulator = Simulator(config=CONFIG, seed=SEED, today=TODAY, customers=CUSTOMERS)
    return {c.external_id: c for c in simulator.customers()}


def _left(customer: Any) -> date | None:
    """The day the simulated customer left for the first time (None: it stayed)."""
    return next((h.day for h in customer.happenings if h.kind == "churn"), None)


def _local_day(entry: TimelineEntry) -> date:
    return entry.occurred_at.astimezone(ZONE).date()


def test_the_standard_program_has_two_versions_with_plans_on_each_and_a_stall_in_v1(
    demo: LoadSummary,
) -> None:
    v1, v2 = ProgramVersion.objects.filter(program__key=STANDARD).order_by("number")
    assert (v1.status, v2.status) == (VersionStatus.RETIRED, VersionStatus.PUBLISHED)
    assert v2.change_note
    assert v1.published_at is not None
    assert v2.published_at is not None
    published = v2.published_at.astimezone(ZONE).date()
    assert v1.published_at < v2.published_at
    assert published <= TODAY
    # v2 splits the administrator training in two and adds a day-14 check-in.
    assert "admin_training" in set(v1.milestones.values_list("key", flat=True))
    assert {"admin_training_data", "admin_training_dashboards"} <= set(
        v2.milestones.values_list("key", flat=True)
    ) - set(v1.milestones.values_list("key", flat=True))
    assert 14 in set(v2.follow_ups.values_list("day_offset", flat=True))
    assert 14 not in set(v1.follow_ups.values_list("day_offset", flat=True))

    # A plan is made from the version published on its start date.
    v1_starts = list(v1.plans.values_list("start_date", flat=True))
    v2_starts = list(v2.plans.values_list("start_date", flat=True))
    assert v1_starts
    assert v2_starts
    assert max(v1_starts) < published <= min(v2_starts)
    # Tech-touch customers (as they started) follow the self-serve program.
    simulated = _simulated()
    for external_id, program in OnboardingPlan.objects.values_list(
        "customer__external_id", "version__program__key"
    ):
        assert (program == STANDARD) == (simulated[str(external_id)].touch_model != "tech")

    statuses = set(OnboardingPlan.objects.values_list("status", flat=True))
    assert {PlanStatus.COMPLETED, PlanStatus.ON_TRACK} <= statuses
    assert statuses & {PlanStatus.AT_RISK, PlanStatus.OVERDUE}

    # Where customers stumble in v1: the administrator training is overdue the most often.
    funnel = kpis.milestone_funnel(version_id=v1.pk, start=date(2020, 1, 1), end=TODAY, as_of=TODAY)
    by_key = {step.key: step for step in funnel}
    stall = by_key["admin_training"]
    assert stall.plans == v1.plans.exclude(status=PlanStatus.CANCELLED).count()
    assert stall.overdue_share is not None
    assert stall.overdue_share > 0
    assert all(
        (step.overdue_share or 0) < stall.overdue_share for step in funnel if step is not stall
    )


def test_plans_follow_the_simulated_story_and_the_timeline_is_dated_as_it_went(
    demo: LoadSummary,
) -> None:
    simulated = _simulated()
    completed = list(
        OnboardingPlan.objects.filter(status=PlanStatus.COMPLETED).select_related("customer")
    )
    assert len(completed) >= 10
    for plan in completed:
        customer = simulated[str(plan.customer.external_id)]
        required = plan.milestones.filter(milestone__required=True)
        assert not required.exclude(status=MilestoneStatus.DONE).exists()
        assert plan.completed_on is not None
        assert plan.completed_on == max(
            d for d in required.values_list("completed_on", flat=True) if d
        )
        if plan.version.program.key == STANDARD:
            # Done when the simulated onboarding reached value: faster customers sooner.
            assert (plan.completed_on - plan.start_date).days == customer.onboarding_days
        entry = TimelineEntry.objects.get(
            kind=TimelineKind.ONBOARDING_COMPLETED, payload__plan=plan.pk
        )
        assert _local_day(entry) == plan.completed_on

    # The plans announce completions now: the simulation's own entries are theirs or gone.
    for plan in OnboardingPlan.objects.all():
        announced = [
            e
            for e in TimelineEntry.objects.filter(
                kind=TimelineKind.ONBOARDING_COMPLETED, customer_id=plan.customer_id
            )
            if not e.payload.get("reactivated")
        ]
        assert len(announced) == (plan.status == PlanStatus.COMPLETED)

    # Every completion is on the timeline on its day, saying how it was done.
    done = PlanMilestone.objects.filter(status=MilestoneStatus.DONE).select_related("milestone")
    entries = {
        (e.payload["plan"], e.payload["milestone"]): e
        for e in TimelineEntry.objects.filter(
            kind=TimelineKind.MILESTONE_CHANGED, payload__to=MilestoneStatus.DONE
        )
    }
    assert len(entries) == done.count()
    for pm in done:
        entry = entries[(pm.plan_id, pm.milestone.key)]
        assert _local_day(entry) == pm.completed_on
        assert entry.payload["via"] == pm.completed_via
        assert pm.started_on is not None
        assert pm.plan.start_date <= pm.started_on <= pm.completed_on
    # Automatic milestones are done by the rule, on the day of the customer's first event.
    automatic = done.filter(milestone__key="account_setup")
    assert automatic
    assert all(pm.completed_via == CompletedVia.AUTOMATIC for pm in automatic)

    # Customers that left before finishing have their plan cancelled on the day they left.
    for plan in OnboardingPlan.objects.filter(status=PlanStatus.CANCELLED):
        left = _left(simulated[str(plan.customer.external_id)])
        assert plan.cancelled_at is not None
        assert plan.cancelled_at.astimezone(ZONE).date() == left

    # Stalled open plans are blocked, with the reason.
    blocked = PlanMilestone.objects.filter(status=MilestoneStatus.BLOCKED)
    assert blocked.exists()
    assert all(pm.blocked_reason for pm in blocked)
    # Follow-ups are done as they fell due while the customer stayed (those of the last days
    # may wait to be written up).
    past = PlanTask.objects.filter(due_date__lt=TODAY - timedelta(days=5)).select_related(
        "plan__customer"
    )
    assert past.exists()
    for task in past:
        left = _left(simulated[str(task.plan.customer.external_id)])
        assert (task.done_on is not None) == (left is None or task.due_date <= left)

    onboarding_entries = TimelineEntry.objects.filter(kind__in=TIMELINE_KINDS)
    assert not onboarding_entries.filter(occurred_at__date__gt=TODAY).exists()


def test_goals_are_agreed_at_the_kickoff_and_the_first_ones_achieved_on_their_day(
    demo: LoadSummary,
) -> None:
    plans_with_kickoff = OnboardingPlan.objects.filter(kickoff_on__isnull=False)
    assert plans_with_kickoff.exists()
    # Kickoff records are pre-filled from the sales handoff where there is one.
    handed = 0
    for plan in plans_with_kickoff.select_related("customer"):
        handoff = SalesHandoff.objects.filter(customer=plan.customer).first()
        if handoff is not None:
            handed += 1
            assert plan.desired_outcomes == handoff.desired_outcomes
            assert plan.current_issues == handoff.pains
            assert plan.stakeholders == handoff.stakeholders
        assert plan.desired_outcomes
        assert plan.it_literacy
        kickoff = plan.milestones.filter(milestone__key="kickoff").first()
        assert kickoff is not None
        assert kickoff.completed_on == plan.kickoff_on
    assert handed

    goals = SuccessGoal.objects.all()
    assert goals.count() >= plans_with_kickoff.count()
    achieved = goals.filter(status=GoalStatus.ACHIEVED)
    assert achieved.exists()
    assert goals.exclude(status=GoalStatus.ACHIEVED).exists()
    for goal in achieved:
        assert goal.achieved_on is not None
        assert goal.agreed_on <= goal.achieved_on <= goal.due_date
        entry = TimelineEntry.objects.get(kind=TimelineKind.GOAL_ACHIEVED, payload__goal=goal.pk)
        assert _local_day(entry) == goal.achieved_on
        if goal.kind == GoalKind.METRIC:  # met in the metric history on that day, not before
            history = metric_history(goal.customer_id, [SEAT_METRIC], goal.agreed_on, TODAY)
            met = [row["day"] for row in history if (row[SEAT_METRIC] or 0) >= SEAT_TARGET]
            assert met
            assert met[0] == goal.achieved_on
    value = kpis.initial_outcome_achievement_rate(start=date(2020, 1, 1), end=TODAY, as_of=TODAY)
    assert value.numerator
    assert value.denominator


def test_one_plan_page_is_shared_and_the_daily_job_finds_nothing_left_to_do(
    demo: LoadSummary,
) -> None:
    link = PlanLink.objects.select_related("plan__customer").get()
    assert link.plan.status != PlanStatus.COMPLETED
    assert link.plan.cancelled_at is None
    assert link.plan.version.program.key == STANDARD
    assert links.resolve_token(links.link_token(link)) == link
    # The load left every plan, milestone and goal where the engine would have put it.
    assert run_onboarding(TODAY) == {
        "plans_created": 0,
        "milestones_completed": 0,
        "goals_changed": 0,
        "statuses_changed": 0,
    }
