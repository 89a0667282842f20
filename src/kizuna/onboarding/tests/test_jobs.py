"""The daily onboarding run and the ``kizuna onboarding`` command."""

import json
from datetime import date
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import translation

from kizuna.analytics.models import CustomerMetric, MetricDefinition
from kizuna.core.jobs import daily_jobs
from kizuna.onboarding.goals import add_goal
from kizuna.onboarding.jobs import run_onboarding
from kizuna.onboarding.models import (
    GoalKind,
    GoalStatus,
    MilestoneStatus,
    OnboardingPlan,
    PlanStatus,
    SuccessGoal,
)
from kizuna.onboarding.tests.test_completion import RECORD, at, write_events
from kizuna.onboarding.tests.test_plans import customer, milestones
from kizuna.onboarding.tests.test_programs import make_version


def _command(*args: str) -> str:
    out = StringIO()
    call_command("onboarding", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_the_daily_run_creates_plans_completes_milestones_evaluates_goals_and_statuses() -> None:
    make_version([{"key": "kickoff", "offset": 2}, {**RECORD, "offset": 10}], target_days=30)
    acme = customer("Acme", external_id="ACME", started=date(2026, 11, 2))
    metric, _ = MetricDefinition.objects.get_or_create(
        key="active_users_28d", defaults={"name": "Active users", "kind": "active_users"}
    )
    CustomerMetric.objects.create(customer=acme, metric=metric, as_of=date(2026, 11, 6), value=25)
    add_goal(
        customer=acme,
        title="20 active users",
        kind=GoalKind.METRIC,
        metric_key="active_users_28d",
        target=20,
        due_date=date(2026, 11, 30),
        agreed_on=date(2026, 11, 2),
    )
    write_events(("ACME", "attendance.registered", at(5)))

    counts = run_onboarding(date(2026, 11, 6))

    assert counts["plans_created"] == 1
    assert counts["milestones_completed"] == 1
    assert counts["goals_changed"] == 1
    plan = OnboardingPlan.objects.get(customer=acme)
    ms = milestones(plan)
    assert ms["first_record"].completed_on == date(2026, 11, 5)
    # Kickoff was due on 4 Nov and is open: the plan is overdue as of the 6th.
    assert ms["kickoff"].status == MilestoneStatus.IN_PROGRESS
    assert plan.status == PlanStatus.OVERDUE
    assert SuccessGoal.objects.get().status == GoalStatus.ACHIEVED
    assert run_onboarding(date(2026, 11, 6)) == {
        "plans_created": 0,
        "milestones_completed": 0,
        "goals_changed": 0,
        "statuses_changed": 0,
    }


@pytest.mark.django_db
def test_onboarding_runs_before_lifecycle_among_the_daily_jobs() -> None:
    keys = [job.key for job in daily_jobs()]
    assert "onboarding" in keys
    if "lifecycle" in keys:
        assert keys.index("onboarding") < keys.index("lifecycle")


@pytest.mark.django_db
def test_the_run_command_prints_what_changed() -> None:
    make_version([{"key": "kickoff"}])
    customer("Acme", started=date(2026, 11, 2))
    out = _command("run", "--as-of", "2026-11-06", "--json")
    assert json.loads(out)["plans_created"] == 1
    assert "0 plans created" in _command("run", "--as-of", "2026-11-06")


@pytest.mark.django_db
def test_the_plan_command_creates_a_plan_for_a_customer_by_external_id_or_id() -> None:
    make_version([{"key": "kickoff"}], key="standard")
    make_version([{"key": "kickoff"}, {"key": "training"}], key="full", priority=200)
    acme = customer("Acme", external_id="C-001", started=date(2026, 11, 2))
    beta = customer("Beta", started=date(2026, 11, 9))

    result = json.loads(
        _command("plan", "C-001", "--program", "full", "--start", "2026-11-04", "--json")
    )
    plan = OnboardingPlan.objects.get(customer=acme)
    assert result["plan"] == plan.pk
    assert (result["program"], result["milestones"], plan.start_date) == (
        "full",
        2,
        date(2026, 11, 4),
    )
    out = _command("plan", str(beta.pk))
    assert out.startswith("Plan ")
    beta_plan = OnboardingPlan.objects.get(customer=beta)
    assert (beta_plan.version.program.key, beta_plan.start_date) == ("standard", date(2026, 11, 9))


@pytest.mark.django_db
def test_command_errors_name_the_option() -> None:
    make_version([{"key": "kickoff"}])
    make_version([{"key": "kickoff"}], key="unpublished", published=False)
    customer("Acme", external_id="C-001")
    cases = [
        (["run", "--as-of", "6/11/2026"], "--as-of: '6/11/2026' is not a date (YYYY-MM-DD)"),
        (["plan"], "CUSTOMER: give the customer's id or external id"),
        (["plan", "C-404"], "CUSTOMER: no customer with id or external id 'C-404'"),
        (["plan", "C-001", "--program", "nope"], "--program: no program 'nope'"),
        (
            ["plan", "C-001", "--program", "unpublished"],
            "--program: 'unpublished' has no published version",
        ),
        (["plan", "C-001", "--start", "tomorrow"], "--start: 'tomorrow' is not a date"),
        (["plan", "C-001", "--user", "ghost"], "--user: no user named 'ghost'"),
        (["run", "--program", "standard"], "--program: only for plan"),
    ]
    for args, message in cases:
        with pytest.raises(CommandError) as error:
            _command(*args)
        assert message in str(error.value), args
    _command("plan", "C-001")
    with translation.override("en"), pytest.raises(CommandError) as error:
        _command("plan", "C-001")
    assert str(error.value) == "Acme already has an open onboarding plan."


@pytest.mark.django_db
def test_the_plan_command_says_when_no_program_fits() -> None:
    make_version([{"key": "kickoff"}], touch_model="high")
    customer("Tech", external_id="C-009", touch_model="tech")
    with translation.override("en"), pytest.raises(CommandError) as error:
        _command("plan", "C-009")
    assert str(error.value).startswith("--program: No published onboarding program fits")
