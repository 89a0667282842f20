"""The simulation shows what the live run then does (same finders, same decisions), writes
nothing, and works for a playbook not saved yet."""

from datetime import date, timedelta

import pytest
from django.utils import translation

from kizuna.lifecycle.conditions import parse
from kizuna.playbooks import runner
from kizuna.playbooks.models import (
    ActionExecution,
    Playbook,
    PlaybookAction,
    PlaybookRun,
    Task,
    TriggerKind,
)
from kizuna.playbooks.simulation import simulate
from kizuna.playbooks.tests.engine_helpers import at, entry, make_customer, make_playbook, make_user

START = date(2026, 11, 2)
END = date(2026, 11, 15)
CHECK_IN = ("create_task", {"title": "Check in with {customer}", "owner_role": "adoption"}, 0)
NOTE = ("add_note", {"title": "Usage dropped"}, 3)


def _live_runs() -> list[tuple[int, str, bool]]:
    return sorted(PlaybookRun.objects.values_list("customer_id", "occurrence_key", "holdout"))


@pytest.mark.django_db
def test_simulating_a_timeline_playbook_shows_what_the_live_run_then_does() -> None:
    customers = [
        make_customer(f"C{number:02d}", touch_model="tech" if number % 4 == 0 else "high")
        for number in range(24)
    ]
    for number, customer in enumerate(customers):
        day = START + timedelta(days=number % 14)
        entry(customer, "risk.raised", at(day, 9), {"kind": "usage_drop"})
        entry(customer, "risk.raised", at(day, 10), {"kind": "no_login"})
    entry(customers[1], "risk.raised", at(START - timedelta(days=1)), {"kind": "usage_drop"})
    playbook = make_playbook(
        "usage-drop",
        TriggerKind.TIMELINE,
        {"kinds": ["risk.raised"], "payload": {"kind": "usage_drop"}},
        [CHECK_IN, NOTE],
        holdout_share=0.5,
        condition=parse('touch_model != "tech"'),
    )

    simulation = simulate(playbook=playbook, start=START, end=END)

    assert not PlaybookRun.objects.exists()
    assert not Task.objects.exists()
    assert simulation.fired == 18  # 24 customers less the 6 tech-touch ones
    assert 0 < simulation.held_out < simulation.fired
    assert simulation.actions_by_kind == {
        "add_note": simulation.acted,
        "create_task": simulation.acted,
    }
    acted = next(run for run in simulation.runs if not run.held_out)
    assert [action.due_on for action in acted.actions] == [acted.day, acted.day + timedelta(3)]
    assert all(run.actions == () for run in simulation.runs if run.held_out)

    # Enabled from the start of the period (after C01's earlier drop), the live run does
    # exactly that.
    playbook.enabled, playbook.enabled_at = True, at(START, 0)
    playbook.save()
    runner.run_cycle(now=at(END, 23))
    live = _live_runs()
    assert live == sorted(
        (run.customer_id, run.occurrence_key, run.held_out) for run in simulation.runs
    )
    assert Task.objects.count() == simulation.acted
    assert ActionExecution.objects.count() == 2 * simulation.acted


@pytest.mark.django_db
def test_simulating_a_dated_playbook_shows_what_the_live_run_then_does_day_by_day() -> None:
    csm = make_user("aiko")
    started = [
        make_customer(f"S{number}", started=START - timedelta(days=7) + timedelta(days=number))
        for number in range(16)
    ]
    for customer in started[::3]:
        customer.adoption_owner = csm
        customer.save()
    playbook = make_playbook(
        "week-one",
        TriggerKind.CUSTOMER_DATE,
        {"date": "first_start_date", "offset_days": [7, 10]},
        [CHECK_IN],
        holdout_share=0.2,
    )

    simulation = simulate(playbook=playbook, start=START, end=END)

    # Day 7 of S0…S13 and day 10 of S0…S10 fall in the period; S14 and S15 start too late.
    assert simulation.fired == 14 + 11
    assert not PlaybookRun.objects.exists()

    playbook.enabled, playbook.enabled_at = True, at(START, 0)
    playbook.save()
    for offset in range((END - START).days + 1):
        runner.run_cycle(now=at(START + timedelta(days=offset), 6))
    assert _live_runs() == sorted(
        (run.customer_id, run.occurrence_key, run.held_out) for run in simulation.runs
    )
    assert Task.objects.count() == simulation.acted
    assert Task.objects.filter(owner=csm).count() == sum(
        1
        for run in simulation.runs
        if not run.held_out and run.customer_id in {c.pk for c in started[::3]}
    )


@pytest.mark.django_db
def test_an_unsaved_playbook_can_be_simulated_with_its_unsaved_actions() -> None:
    acme = make_customer("Acme", started=START - timedelta(days=30))
    draft = Playbook(
        key="draft",
        name="Draft",
        trigger_kind=TriggerKind.CUSTOMER_DATE,
        trigger_params={"date": "first_start_date", "offset_days": 30},
    )
    steps = [
        PlaybookAction(playbook=draft, position=1, kind="add_note", params={"title": "Day 30"}),
        PlaybookAction(
            playbook=draft,
            position=0,
            kind="create_task",
            params={"title": "Review {customer}", "due_in_days": 2},
            delay_days=1,
        ),
    ]
    with translation.override("en"):
        simulation = simulate(playbook=draft, start=START, end=START, actions=steps)
    (run,) = simulation.runs
    assert (run.customer_id, run.customer_name, run.day, run.held_out) == (
        acme.pk,
        "Acme",
        START,
        False,
    )
    assert [(action.kind, action.description, action.due_on) for action in run.actions] == [
        (
            "create_task",
            "Create task “Review Acme” for nobody (unowned), due in 2 days",
            START + timedelta(days=1),
        ),
        ("add_note", "Add a timeline note “Day 30”", START),
    ]
    assert not Playbook.objects.exists()
    with pytest.raises(ValueError, match="before"):
        simulate(playbook=draft, start=END, end=START)
