"""Two workers at once (threads with their own PostgreSQL connections): every occurrence fires
once and every action runs once — the database's constraints and row locks decide, not luck.

In-memory SQLite is one connection shared by the test, so these run on PostgreSQL only (CI
runs the suite there with KIZUNA_EXPECT_POSTGRES set).
"""

import threading
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import pytest
from django.db import connection

from kizuna.core.models import TimelineEntry, TimelineKind
from kizuna.playbooks import runner
from kizuna.playbooks.models import (
    ActionExecution,
    ExecutionStatus,
    PlaybookRun,
    RunStatus,
    Task,
    TriggerKind,
)
from kizuna.playbooks.tests.engine_helpers import at, entry, make_customer, make_playbook, make_user

DAY = date(2026, 12, 7)  # the first Monday of December
WORKERS = 2


def _at_once(work: Callable[[], Any]) -> list[Any]:
    """Run ``work`` in WORKERS threads released together; each thread has its own connection."""
    results: list[Any] = []
    errors: list[BaseException] = []
    start = threading.Barrier(WORKERS)

    def run() -> None:
        try:
            start.wait()
            results.append(work())
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(WORKERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    return results


def _needs_postgres() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("needs two real connections (in-memory SQLite is one)")


@pytest.mark.django_db(transaction=True)
def test_two_workers_fire_each_occurrence_once_and_run_each_action_once() -> None:
    _needs_postgres()
    csm = make_user("aiko")
    customers = [make_customer(f"C{number:02d}", adoption_owner=csm) for number in range(40)]
    make_playbook(
        "usage-drop",
        TriggerKind.TIMELINE,
        {"kinds": ["risk.raised"], "payload": {"kind": "usage_drop"}},
        [
            ("create_task", {"title": "Check in with {customer}", "owner_role": "adoption"}, 0),
            ("add_note", {"title": "Usage dropped"}, 0),
        ],
        enabled_at=at(DAY, 8),
    )
    make_playbook(
        "monthly",
        TriggerKind.SCHEDULE,
        {"every": "month", "weekday": 0, "nth": 1},
        [("create_task", {"title": "Monthly look at {customer}"}, 0)],
        enabled_at=at(DAY, 0, 1),
    )
    for customer in customers:
        entry(customer, "risk.raised", at(DAY, 9), {"kind": "usage_drop"})

    for round_number in range(3):  # the first round races on everything; later ones on re-reads
        now = at(DAY, 10 + round_number)
        results = _at_once(lambda now=now: runner.run_cycle(now=now))
        if round_number == 0:
            assert sum(result.runs for result in results) == 80

    assert PlaybookRun.objects.count() == 80
    assert PlaybookRun.objects.filter(status=RunStatus.DONE).count() == 80
    assert Task.objects.count() == 80
    assert Task.objects.filter(title__startswith="Check in", owner=csm).count() == 40
    assert TimelineEntry.objects.filter(kind=TimelineKind.PLAYBOOK_NOTE).count() == 40
    assert set(ActionExecution.objects.values_list("status", "attempts")) == {
        (ExecutionStatus.DONE, 1)
    }


@pytest.mark.django_db(transaction=True)
def test_two_workers_claim_due_actions_without_running_any_twice() -> None:
    _needs_postgres()
    customers = [make_customer(f"C{number:03d}") for number in range(120)]
    playbook = make_playbook(
        "by-hand",
        TriggerKind.TIMELINE,
        {"kinds": ["customer.created"]},
        [("create_task", {"title": "Welcome {customer}"}, 1)],
    )
    runner.fire(
        playbook=playbook,
        occurrences=[
            runner.Occurrence(customer.pk, f"timeline:{customer.pk}", DAY, "created")
            for customer in customers
        ],
        now=at(DAY),
    )
    playbook.enabled = True
    playbook.save()

    attempted = _at_once(lambda: runner.run_due(now=at(DAY + timedelta(days=1)), limit=30))
    while sum(attempted) < 120:
        more = _at_once(lambda: runner.run_due(now=at(DAY + timedelta(days=1)), limit=30))
        assert sum(more) > 0
        attempted += more

    assert sum(attempted) == 120
    assert Task.objects.count() == 120
    assert Task.objects.values("customer").distinct().count() == 120
    assert not ActionExecution.objects.exclude(status=ExecutionStatus.DONE).exists()
