"""Statuses computed from hand-made dates, set-based; a plan's progress for the pages."""

from datetime import date, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from kizuna.onboarding.models import (
    MilestoneStatus,
    OnboardingPlan,
    OnboardingSettings,
    OwnerSide,
    PlanMilestone,
    PlanStatus,
    PlanTask,
    ProgramVersion,
    VersionStatus,
)
from kizuna.onboarding.plans import create_plan
from kizuna.onboarding.status import plan_progress, refresh_statuses
from kizuna.onboarding.tests.test_plans import customer, milestones
from kizuna.onboarding.tests.test_programs import make_version

AS_OF = date(2026, 11, 16)


def _plan(name: str, *, target: date = date(2026, 12, 31), **due: date) -> OnboardingPlan:
    """A plan with a required milestone "req" and an optional "opt", due on the given days."""
    version = ProgramVersion.objects.filter(
        program__key="two", status=VersionStatus.PUBLISHED
    ).first() or make_version([{"key": "req"}, {"key": "opt", "required": False}], key="two")
    plan = create_plan(customer=customer(name), version=version, start_date=date(2026, 11, 2))
    OnboardingPlan.objects.filter(pk=plan.pk).update(target_date=target)
    for key, day in due.items():
        PlanMilestone.objects.filter(plan=plan, milestone__key=key).update(due_date=day)
    return plan


def _set(plan: OnboardingPlan, key: str, status: str) -> None:
    PlanMilestone.objects.filter(plan=plan, milestone__key=key).update(status=status)


@pytest.mark.django_db
def test_plan_statuses_follow_due_dates_blocks_and_completion() -> None:
    later = date(2026, 11, 25)
    plans = {
        "on_track": _plan("on track", req=later, opt=later),
        "due_in_3_days": _plan("due soon", req=date(2026, 11, 19), opt=later),
        "due_in_4_days": _plan("due later", req=date(2026, 11, 20), opt=later),
        "required_late": _plan("late", req=date(2026, 11, 15), opt=later),
        "target_passed": _plan("target", target=date(2026, 11, 15), req=later, opt=later),
        "optional_blocked": _plan("blocked", req=later, opt=later),
        "optional_late": _plan("optional late", req=later, opt=date(2026, 11, 1)),
        "late_but_done": _plan("done late", req=date(2026, 11, 10), opt=later),
        "completed": _plan("completed", req=date(2026, 11, 10), opt=later),
        "cancelled": _plan("cancelled", req=date(2026, 11, 10), opt=later),
    }
    _set(plans["optional_blocked"], "opt", MilestoneStatus.BLOCKED)
    _set(plans["late_but_done"], "req", MilestoneStatus.DONE)
    OnboardingPlan.objects.filter(pk=plans["completed"].pk).update(completed_on=AS_OF)
    OnboardingPlan.objects.filter(pk=plans["cancelled"].pk).update(cancelled_at=timezone.now())
    refresh_statuses(AS_OF)

    statuses = {name: OnboardingPlan.objects.get(pk=p.pk).status for name, p in plans.items()}
    assert statuses == {
        "on_track": PlanStatus.ON_TRACK,
        "due_in_3_days": PlanStatus.AT_RISK,
        "due_in_4_days": PlanStatus.ON_TRACK,
        "required_late": PlanStatus.OVERDUE,
        "target_passed": PlanStatus.OVERDUE,
        "optional_blocked": PlanStatus.AT_RISK,
        "optional_late": PlanStatus.ON_TRACK,
        "late_but_done": PlanStatus.ON_TRACK,
        "completed": PlanStatus.COMPLETED,
        "cancelled": PlanStatus.CANCELLED,
    }


@pytest.mark.django_db
def test_the_at_risk_window_comes_from_the_settings() -> None:
    plan = _plan("soon", req=date(2026, 11, 20), opt=date(2026, 11, 30))
    refresh_statuses(AS_OF)
    assert OnboardingPlan.objects.get(pk=plan.pk).status == PlanStatus.ON_TRACK
    settings = OnboardingSettings.load()
    settings.at_risk_days = 4
    settings.save()
    assert refresh_statuses(AS_OF) == 1  # one row changed
    assert OnboardingPlan.objects.get(pk=plan.pk).status == PlanStatus.AT_RISK
    assert refresh_statuses(AS_OF) == 0


@pytest.mark.django_db
def test_a_milestone_is_in_progress_once_its_dependencies_are_settled() -> None:
    version = make_version(
        [
            {"key": "a"},
            {"key": "b", "after": ["a"]},
            {"key": "c", "after": ["b"]},
            {"key": "opt", "required": False},
            {"key": "d", "after": ["opt"]},
            {"key": "e", "after": ["a"]},
        ]
    )
    plan = create_plan(customer=customer(), version=version)
    _set(plan, "e", MilestoneStatus.BLOCKED)
    _set(plan, "a", MilestoneStatus.DONE)
    _set(plan, "opt", MilestoneStatus.SKIPPED)
    refresh_statuses(AS_OF, plan_ids=[plan.pk])
    ms = milestones(plan)
    assert {key: pm.status for key, pm in ms.items()} == {
        "a": "done",
        "b": "in_progress",
        "c": "not_started",
        "opt": "skipped",
        "d": "in_progress",
        "e": "blocked",  # people's statuses stay
    }
    assert ms["b"].started_on == AS_OF

    # The dependency reopens: the milestone after it is not started any more.
    _set(plan, "a", MilestoneStatus.IN_PROGRESS)
    refresh_statuses(AS_OF + timedelta(days=1), plan_ids=[plan.pk])
    ms = milestones(plan)
    assert (ms["b"].status, ms["e"].status) == ("not_started", "blocked")


@pytest.mark.django_db
def test_refreshing_takes_the_same_queries_for_two_plans_or_twelve() -> None:
    for number in range(2):
        _plan(f"c{number}")
    with CaptureQueriesContext(connection) as few:
        refresh_statuses(AS_OF)
    for number in range(2, 12):
        _plan(f"c{number}")
    with CaptureQueriesContext(connection) as many:
        refresh_statuses(AS_OF)
    assert len(many) == len(few) <= 10  # 8 updates + the overdue-milestone entries (2)


@pytest.mark.django_db
def test_plan_ids_limit_the_refresh_to_those_plans() -> None:
    mine = _plan("mine", req=date(2026, 11, 1))
    other = _plan("other", req=date(2026, 11, 1))
    OnboardingPlan.objects.update(status=PlanStatus.ON_TRACK)
    refresh_statuses(AS_OF, plan_ids=[mine.pk])
    assert OnboardingPlan.objects.get(pk=mine.pk).status == PlanStatus.OVERDUE
    assert OnboardingPlan.objects.get(pk=other.pk).status == PlanStatus.ON_TRACK


@pytest.mark.django_db
def test_progress_shows_the_current_phase_next_actions_and_what_is_due_this_week() -> None:
    version = make_version(
        [
            {"key": "kickoff", "phase": "Start", "offset": 2},
            {"key": "tour", "phase": "Start", "offset": 3, "required": False},
            {"key": "training", "phase": "Train", "offset": 8, "after": ["kickoff"]},
            {"key": "admin_guide", "phase": "Train", "offset": 20, "required": False},
            {"key": "go_live", "phase": "Live", "offset": 30, "after": ["training"]},
        ]
    )
    start = date(2026, 11, 2)  # Monday
    plan = create_plan(customer=customer(), version=version, start_date=start)
    _set(plan, "kickoff", MilestoneStatus.DONE)
    PlanTask.objects.filter(plan=plan).delete()
    for title, due, done in [
        ("Overdue call", date(2026, 11, 5), None),
        ("Done call", date(2026, 11, 10), date(2026, 11, 10)),
        ("Friday check-in", date(2026, 11, 13), None),
        ("Next week", date(2026, 11, 16), None),
    ]:
        PlanTask.objects.create(
            plan=plan, title=title, due_date=due, done_on=done, owner_side=OwnerSide.CSM
        )

    progress = plan_progress(plan, as_of=date(2026, 11, 11))  # a Wednesday

    assert (progress.required_done, progress.required_total, progress.percent) == (1, 3, 33)
    assert (progress.done_total, progress.total) == (1, 5)
    assert progress.current_phase is not None
    assert progress.current_phase.name == "Train"
    assert [pm.milestone.key for pm in progress.next_actions] == ["training", "admin_guide"]
    assert progress.week_end == date(2026, 11, 15)
    # Tour (due 5 Nov, open) and training (due 10 Nov) are due by Sunday; kickoff is done.
    assert [pm.milestone.key for pm in progress.due_milestones] == ["tour", "training"]
    assert [t.title for t in progress.due_tasks] == ["Overdue call", "Friday check-in"]
    assert [pm.milestone.key for pm in progress.milestones] == [
        "kickoff",
        "tour",
        "training",
        "admin_guide",
        "go_live",
    ]


@pytest.mark.django_db
def test_progress_of_a_plan_whose_required_milestones_are_done() -> None:
    version = make_version([{"key": "kickoff"}, {"key": "tour", "required": False}])
    plan = create_plan(customer=customer(), version=version, start_date=date(2026, 11, 2))
    _set(plan, "kickoff", MilestoneStatus.DONE)
    progress = plan_progress(plan, as_of=date(2026, 11, 11))
    assert (progress.percent, progress.current_phase) == (100, None)
    assert [pm.milestone.key for pm in progress.next_actions] == ["tour"]
