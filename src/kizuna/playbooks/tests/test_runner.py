"""The runner: each trigger kind fires once per customer and occurrence, only after the playbook
was enabled; delays wait; failures are retried with backoff then failed, visibly, without
holding back the run's other actions; holdouts get no actions; the overdue milestone entry."""

from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest
from django.utils import timezone

from kizuna.core.models import TimelineEntry, TimelineKind
from kizuna.onboarding.models import PlanMilestone
from kizuna.onboarding.plans import create_plan
from kizuna.onboarding.status import refresh_statuses
from kizuna.onboarding.tests.test_programs import make_version
from kizuna.playbooks import actions, runner
from kizuna.playbooks.actions import ActionContext, ActionType
from kizuna.playbooks.models import (
    ActionExecution,
    ExecutionStatus,
    PlaybookRun,
    RunStatus,
    Task,
    TriggerKind,
)
from kizuna.playbooks.tests.engine_helpers import (
    at,
    entry,
    make_customer,
    make_playbook,
    make_user,
    write_metrics,
)

DAY = date(2026, 12, 7)  # a Monday
TASK = ("create_task", {"title": "Check in with {customer}", "owner_role": "adoption"}, 0)
USAGE_DROP = {"kinds": ["risk.raised"], "payload": {"kind": "usage_drop"}}


@pytest.fixture
def registry() -> Iterator[dict[str, ActionType]]:
    """The action registry, restored after the test (tests add their own action types)."""
    saved = dict(actions._registry)
    yield actions._registry
    actions._registry.clear()
    actions._registry.update(saved)


def _boom(ctx: ActionContext) -> dict[str, Any]:
    raise RuntimeError("the other system is down")


def _register_failing(registry: dict[str, ActionType]) -> None:
    actions.register_action(
        ActionType(
            key="boom",
            label="Boom",
            description="Always fails.",
            fields=(),
            validate=dict,
            execute=_boom,
            describe=lambda params, customer: "Boom",
        )
    )


@pytest.mark.django_db
def test_a_timeline_trigger_fires_once_per_entry_and_only_after_it_was_enabled() -> None:
    csm = make_user("aiko")
    acme = make_customer("Acme", adoption_owner=csm)
    beta = make_customer("Beta")
    entry(acme, "risk.raised", at(DAY, 9), {"kind": "usage_drop"})  # before enabling
    playbook = make_playbook(
        "drop", TriggerKind.TIMELINE, USAGE_DROP, [TASK], enabled_at=at(DAY, 10)
    )
    drop = entry(acme, "risk.raised", at(DAY, 11), {"kind": "usage_drop"})
    entry(beta, "risk.raised", at(DAY, 11), {"kind": "no_login"})

    result = runner.run_cycle(now=at(DAY, 12))
    again = runner.run_cycle(now=at(DAY, 12, 1))

    assert (result.runs, result.actions_done) == (1, 1)
    assert (again.runs, again.actions_done) == (0, 0)
    run = PlaybookRun.objects.get()
    assert (run.playbook_id, run.customer_id, run.occurrence_key) == (
        playbook.pk,
        acme.pk,
        f"timeline:{drop.pk}",
    )
    assert (run.status, run.triggered_on, run.finished_at) == (RunStatus.DONE, DAY, at(DAY, 12))
    task = Task.objects.get()
    assert (task.title, task.owner, task.run, task.customer) == (
        "Check in with Acme",
        csm,
        run,
        acme,
    )


@pytest.mark.django_db
def test_a_paused_playbook_does_not_fire_nor_run_its_waiting_actions() -> None:
    acme = make_customer("Acme")
    playbook = make_playbook(
        "drop", TriggerKind.TIMELINE, USAGE_DROP, [TASK, (*TASK[:2], 2)], enabled_at=at(DAY, 8)
    )
    entry(acme, "risk.raised", at(DAY, 9), {"kind": "usage_drop"})
    runner.run_cycle(now=at(DAY, 10))
    playbook.paused = True
    playbook.save()
    entry(acme, "risk.raised", at(DAY, 11), {"kind": "usage_drop"})

    runner.run_cycle(now=at(DAY + timedelta(days=3), 10))

    assert PlaybookRun.objects.count() == 1
    assert Task.objects.count() == 1
    assert ActionExecution.objects.get(position=1).status == ExecutionStatus.WAITING


@pytest.mark.django_db
def test_delayed_actions_wait_in_the_database_until_their_day() -> None:
    acme = make_customer("Acme")
    make_playbook(
        "follow-up",
        TriggerKind.TIMELINE,
        {"kinds": ["customer.created"]},
        [
            ("add_note", {"title": "Welcome {customer}"}, 0),
            ("create_task", {"title": "Day-3 call", "due_in_days": 0}, 3),
        ],
        enabled_at=at(DAY, 8),
    )
    entry(acme, TimelineKind.CUSTOMER_CREATED, at(DAY, 9))

    runner.run_cycle(now=at(DAY, 10))
    waiting = ActionExecution.objects.get(position=1)
    assert (waiting.status, waiting.due_at) == (ExecutionStatus.WAITING, at(DAY + timedelta(3), 10))
    assert PlaybookRun.objects.get().status == RunStatus.PENDING
    assert TimelineEntry.objects.filter(kind=TimelineKind.PLAYBOOK_NOTE).count() == 1

    assert runner.run_due(now=at(DAY + timedelta(days=3), 9, 59)) == 0
    assert runner.run_due(now=at(DAY + timedelta(days=3), 10)) == 1

    task = Task.objects.get()
    assert (task.title, task.due_on) == ("Day-3 call", DAY + timedelta(days=3))
    run = PlaybookRun.objects.get()
    assert (run.status, run.finished_at) == (RunStatus.DONE, at(DAY + timedelta(days=3), 10))


@pytest.mark.django_db
def test_a_failing_action_is_retried_with_backoff_then_failed_without_blocking_the_others(
    registry: dict[str, ActionType],
) -> None:
    _register_failing(registry)
    acme = make_customer("Acme")
    make_playbook(
        "fragile",
        TriggerKind.TIMELINE,
        {"kinds": ["customer.created"]},
        [("boom", {}, 0), ("add_note", {"title": "Noted"}, 0)],
        enabled_at=at(DAY, 8),
    )
    entry(acme, TimelineKind.CUSTOMER_CREATED, at(DAY, 9))

    now = at(DAY, 10)
    runner.run_cycle(now=now)
    boom = ActionExecution.objects.get(position=0)
    assert ActionExecution.objects.get(position=1).status == ExecutionStatus.DONE
    assert (boom.status, boom.attempts, boom.next_attempt_at, boom.last_error) == (
        ExecutionStatus.RETRYING,
        1,
        now + timedelta(minutes=1),
        "the other system is down",
    )
    assert PlaybookRun.objects.get().status == RunStatus.PENDING

    waits = []
    for _attempt in range(4):
        assert runner.run_due(now=boom.next_attempt_at - timedelta(seconds=1)) == 0
        now = boom.next_attempt_at
        runner.run_due(now=now)
        previous = boom.next_attempt_at
        boom.refresh_from_db()
        waits.append(None if boom.next_attempt_at is None else boom.next_attempt_at - previous)

    assert waits == [timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2), None]
    assert (boom.status, boom.attempts) == (ExecutionStatus.FAILED, 5)
    run = PlaybookRun.objects.get()
    assert (run.status, run.error) == (RunStatus.FAILED, "#1: the other system is down")
    assert runner.run_due(now=now + timedelta(days=1)) == 0

    retried = runner.retry_execution(boom.pk, now=now + timedelta(days=1))
    assert (retried.status, retried.attempts) == (ExecutionStatus.FAILED, 5)


@pytest.mark.django_db
def test_retrying_a_failed_action_by_hand_runs_it_again(registry: dict[str, ActionType]) -> None:
    _register_failing(registry)
    acme = make_customer("Acme")
    playbook = make_playbook(
        "fixable",
        TriggerKind.TIMELINE,
        {"kinds": ["customer.created"]},
        [("boom", {}, 0)],
        enabled_at=at(DAY, 8),
    )
    entry(acme, TimelineKind.CUSTOMER_CREATED, at(DAY, 9))
    runner.run_cycle(now=at(DAY, 10))
    ActionExecution.objects.update(status=ExecutionStatus.FAILED, attempts=5)
    PlaybookRun.objects.update(status=RunStatus.FAILED)
    playbook.actions.update(kind="add_note", params={"title": "Fixed"})
    ActionExecution.objects.update(kind="add_note", params={"title": "Fixed"})

    execution = runner.retry_execution(ActionExecution.objects.get().pk, now=at(DAY, 11))

    assert execution.status == ExecutionStatus.DONE
    assert PlaybookRun.objects.get().status == RunStatus.DONE


@pytest.mark.django_db
def test_an_unknown_action_fails_visibly() -> None:
    acme = make_customer("Acme")
    make_playbook(
        "gone",
        TriggerKind.TIMELINE,
        {"kinds": ["customer.created"]},
        [("survey_that_was_uninstalled", {}, 0)],
        enabled_at=at(DAY, 8),
    )
    entry(acme, TimelineKind.CUSTOMER_CREATED, at(DAY, 9))
    runner.run_cycle(now=at(DAY, 10))
    execution = ActionExecution.objects.get()
    assert execution.status == ExecutionStatus.RETRYING
    assert "survey_that_was_uninstalled" in execution.last_error


@pytest.mark.django_db
def test_a_customer_date_trigger_fires_on_its_day_and_catches_up_missed_days() -> None:
    make_playbook(
        "renewal",
        TriggerKind.CUSTOMER_DATE,
        {"date": "renewal_date", "offset_days": -90},
        [("create_task", {"title": "Prepare the renewal", "due_in_days": 14}, 0)],
        enabled_at=at(DAY, 0, 30),
    )
    soon = make_customer("Soon", started=date(2026, 1, 1), ends=DAY + timedelta(days=90))
    later = make_customer("Later", started=date(2026, 1, 1), ends=DAY + timedelta(days=92))
    make_customer("Too early", started=date(2026, 1, 1), ends=DAY + timedelta(days=89))

    runner.run_cycle(now=at(DAY - timedelta(days=1), 1))  # not enabled yet
    runner.run_cycle(now=at(DAY, 1))
    assert [(run.customer_id, run.occurrence_key) for run in PlaybookRun.objects.all()] == [
        (soon.pk, f"date:{DAY}")
    ]
    # The worker was stopped for two days: both are caught up, once.
    runner.run_cycle(now=at(DAY + timedelta(days=2), 1))
    runner.run_cycle(now=at(DAY + timedelta(days=2), 2))
    keys = sorted(PlaybookRun.objects.values_list("customer_id", "occurrence_key"))
    assert keys == sorted([(soon.pk, f"date:{DAY}"), (later.pk, f"date:{DAY + timedelta(days=2)}")])
    assert sorted(Task.objects.values_list("due_on", flat=True)) == [
        DAY + timedelta(days=14),
        DAY + timedelta(days=16),
    ]
    # "Too early" reached T-90 the day before the playbook was enabled: not caught up.
    assert PlaybookRun.objects.count() == 2


@pytest.mark.django_db
def test_a_schedule_trigger_fires_for_the_customers_its_condition_keeps() -> None:
    from kizuna.lifecycle.conditions import parse

    high = make_customer("High", touch_model="high")
    make_customer("Tech", touch_model="tech")
    make_playbook(
        "qbr",
        TriggerKind.SCHEDULE,
        {"every": "month", "weekday": 0, "nth": 1},
        [("create_task", {"title": "QBR with {customer}"}, 0)],
        enabled_at=at(DAY - timedelta(days=3)),
        condition=parse('touch_model = "high"'),
    )
    runner.run_cycle(now=at(DAY - timedelta(days=1)))
    assert not PlaybookRun.objects.exists()
    runner.run_cycle(now=at(DAY))
    runner.run_cycle(now=at(DAY + timedelta(days=1)))
    assert list(PlaybookRun.objects.values_list("customer_id", "occurrence_key")) == [
        (high.pk, f"schedule:{DAY}")
    ]
    assert list(Task.objects.values_list("title", flat=True)) == ["QBR with High"]


@pytest.mark.django_db
def test_a_metric_trigger_waits_for_the_days_metric_history() -> None:
    full = make_customer("Full")
    metric = "seat_utilisation_28d"
    make_playbook(
        "seats",
        TriggerKind.METRIC,
        {"metric": metric, "op": ">=", "value": 0.9},
        [("create_task", {"title": "Expansion review", "owner_role": "expansion"}, 0)],
        enabled_at=at(DAY - timedelta(days=1)),
    )
    write_metrics(DAY - timedelta(days=1), [(full.pk, metric, 0.8)])

    runner.run_cycle(now=at(DAY, 0, 5))  # the day's metrics are not computed yet
    assert not PlaybookRun.objects.exists()
    write_metrics(DAY, [(full.pk, metric, 0.93)])
    runner.run_cycle(now=at(DAY, 6))
    runner.run_cycle(now=at(DAY, 7))

    run = PlaybookRun.objects.get()
    assert (run.customer_id, run.occurrence_key, run.triggered_on) == (
        full.pk,
        f"metric:{DAY}",
        DAY,
    )
    assert Task.objects.get().title == "Expansion review"


@pytest.mark.django_db
def test_held_out_customers_get_a_run_and_no_actions() -> None:
    acme = make_customer("Acme")
    make_playbook(
        "all-held",
        TriggerKind.TIMELINE,
        {"kinds": ["customer.created"]},
        [TASK],
        enabled_at=at(DAY, 8),
        holdout_share=1.0,
    )
    entry(acme, TimelineKind.CUSTOMER_CREATED, at(DAY, 9))
    result = runner.run_cycle(now=at(DAY, 10))
    run = PlaybookRun.objects.get()
    assert (result.runs, result.held_out) == (1, 1)
    assert (run.holdout, run.status) == (True, RunStatus.HOLDOUT)
    assert not ActionExecution.objects.exists()
    assert not Task.objects.exists()


def test_the_holdout_is_a_stable_hash_that_holds_out_about_its_share() -> None:
    held = [runner.is_held_out(7, customer, "timeline:1", 0.1) for customer in range(20000)]
    assert 0.09 < sum(held) / len(held) < 0.11
    assert held == [runner.is_held_out(7, customer, "timeline:1", 0.1) for customer in range(20000)]
    assert not runner.is_held_out(7, 1, "x", 0.0)
    assert runner.is_held_out(7, 1, "x", 1.0)


@pytest.mark.django_db
def test_firing_the_same_occurrences_twice_creates_each_run_once() -> None:
    acme, beta = make_customer("Acme"), make_customer("Beta")
    playbook = make_playbook(
        "by-hand", TriggerKind.TIMELINE, {"kinds": ["customer.created"]}, [TASK]
    )
    occurrences = [
        runner.Occurrence(acme.pk, "timeline:1", DAY, "created"),
        runner.Occurrence(beta.pk, "timeline:2", DAY, "created"),
        runner.Occurrence(acme.pk, "timeline:1", DAY, "created"),
    ]
    first = runner.fire(playbook=playbook, occurrences=occurrences, now=at(DAY))
    second = runner.fire(playbook=playbook, occurrences=occurrences, now=at(DAY))
    assert len(first) == 2
    assert second == []
    assert ActionExecution.objects.count() == 2


@pytest.mark.django_db
def test_an_overdue_required_milestone_is_written_to_the_timeline_once_and_fires_a_playbook() -> (
    None
):
    csm = make_user("ren")
    today = timezone.localdate()
    acme = make_customer("Acme", started=today, onboarding_owner=csm)
    version = make_version([{"key": "kickoff"}, {"key": "tour", "required": False}], key="p1")
    plan = create_plan(customer=acme, version=version, start_date=today)
    playbook = make_playbook(
        "overdue",
        TriggerKind.TIMELINE,
        {"kinds": ["onboarding.milestone_overdue"]},
        [("create_task", {"title": "Unblock {customer}", "owner_role": "onboarding"}, 0)],
        enabled_at=timezone.now() - timedelta(minutes=1),
    )
    PlanMilestone.objects.filter(plan=plan).update(due_date=today)

    refresh_statuses(today)  # due today: not overdue yet
    assert not TimelineEntry.objects.filter(kind=TimelineKind.MILESTONE_OVERDUE).exists()
    PlanMilestone.objects.filter(plan=plan).update(due_date=today - timedelta(days=1))
    refresh_statuses(today)
    refresh_statuses(today)

    overdue = TimelineEntry.objects.get(kind=TimelineKind.MILESTONE_OVERDUE)
    kickoff = PlanMilestone.objects.get(plan=plan, milestone__key="kickoff")
    assert overdue.customer_id == acme.pk
    assert overdue.payload == {
        "plan_id": plan.pk,
        "milestone_id": kickoff.pk,
        "milestone": kickoff.milestone.name,
    }
    runner.run_cycle()
    assert PlaybookRun.objects.get().playbook_id == playbook.pk
    assert Task.objects.get().owner == csm


@pytest.mark.django_db
def test_a_playbook_that_cannot_be_evaluated_does_not_stop_the_others() -> None:
    acme = make_customer("Acme")
    broken = {"field": "no_such_field", "op": "=", "value": 1}  # stored by hand, never validated
    for kind, params in (
        (TriggerKind.TIMELINE, {"kinds": ["customer.created"]}),
        (TriggerKind.SCHEDULE, {"every": "week", "weekday": 0}),
    ):
        make_playbook(
            f"broken-{kind}", kind, params, [TASK], enabled_at=at(DAY, 8), condition=broken
        )
        make_playbook(f"fine-{kind}", kind, params, [TASK], enabled_at=at(DAY, 8))
    entry(acme, TimelineKind.CUSTOMER_CREATED, at(DAY, 9))

    result = runner.run_cycle(now=at(DAY, 10))

    assert result.runs == 2
    assert set(PlaybookRun.objects.values_list("playbook__key", flat=True)) == {
        "fine-timeline",
        "fine-schedule",
    }


@pytest.mark.django_db
def test_a_cooldown_keeps_a_flickering_signal_from_firing_twice_for_a_customer() -> None:
    """A signal raised on day 1, closed, raised again on day 10 and on day 40: with a 30-day
    cooldown the playbook fires on day 1 and day 40, not day 10 (the simulation agrees)."""
    from kizuna.playbooks import simulation, triggers
    from kizuna.playbooks.models import PlaybookRun, TriggerKind

    customer = make_customer("Flicker")
    params = triggers.validate_trigger(
        TriggerKind.TIMELINE, {"kinds": ["risk.raised"], "cooldown_days": 30}
    )
    assert params["cooldown_days"] == 30
    playbook = make_playbook("cool", TriggerKind.TIMELINE, params, enabled_at=at(DAY, 0))
    days = [DAY, DAY + timedelta(days=9), DAY + timedelta(days=39)]
    for day in days:
        entry(customer, "risk.raised", at(day, 9))
    expected = [DAY, DAY + timedelta(days=39)]
    simulated = simulation.simulate(playbook=playbook, start=DAY, end=days[-1])
    assert [run.day for run in simulated.runs] == expected
    for day in days:
        runner.run_cycle(now=at(day, 12))
    fired = PlaybookRun.objects.filter(playbook=playbook).order_by("triggered_on")
    assert [run.triggered_on for run in fired] == expected
