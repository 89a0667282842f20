"""Task selectors on hand-made dates: My day's groups and order, the team view's counts and
filters, a customer's tasks.

Today is Wednesday 2 December 2026; its week ends on Sunday 6 December.
"""

from collections.abc import Callable
from datetime import date, datetime
from typing import Any

import pytest
from django.utils import timezone

from kizuna.core.models import User
from kizuna.core.roles import Role
from kizuna.customers.models import Customer
from kizuna.playbooks import task_selectors
from kizuna.playbooks.models import Task, TaskPriority, TaskStatus, TaskType

pytestmark = pytest.mark.django_db

TODAY = date(2026, 12, 2)
HIGH, NORMAL, LOW, URGENT = (
    TaskPriority.HIGH,
    TaskPriority.NORMAL,
    TaskPriority.LOW,
    TaskPriority.URGENT,
)


def at(day: date, hour: int = 12) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=timezone.get_current_timezone())


def task(title: str, customer: Customer, owner: User | None, **fields: Any) -> Task:
    return Task.objects.create(title=title, customer=customer, owner=owner, **fields)


@pytest.fixture
def world(make_user: Callable[..., User]) -> dict[str, Any]:
    """Baba's tasks in every group, one of someone else's, two unowned, finished ones."""
    aoki = make_user(Role.ONBOARDING_CSM, username="aoki")
    baba = make_user(Role.ADOPTION_CSM, username="baba")
    viewer = make_user(Role.VIEWER, username="viewer")
    acme = Customer.objects.create(name="Acme")
    beta = Customer.objects.create(name="Beta")
    made = {
        "A": task("A", acme, baba, due_on=date(2026, 12, 1)),
        "B": task("B", acme, baba, due_on=date(2026, 11, 20), priority=HIGH),
        "C": task("C", beta, baba, due_on=TODAY, priority=LOW, task_type=TaskType.RENEWAL),
        "D": task("D", acme, baba, due_on=date(2026, 12, 6), priority=URGENT),
        "E": task("E", acme, baba, due_on=date(2026, 12, 7)),
        "F": task("F", beta, baba, priority=HIGH),
        # Snoozed until today: awake, and overdue since 30 November.
        "G": task(
            "G",
            acme,
            baba,
            due_on=date(2026, 11, 30),
            status=TaskStatus.SNOOZED,
            snoozed_until=TODAY,
        ),
        # Snoozed until Saturday: hidden today, counted as snoozed.
        "H": task(
            "H",
            acme,
            baba,
            due_on=date(2026, 12, 1),
            status=TaskStatus.SNOOZED,
            snoozed_until=date(2026, 12, 5),
        ),
        "I": task("I", acme, baba, status=TaskStatus.DONE, completed_at=at(TODAY, 9)),
        "J": task("J", beta, baba, status=TaskStatus.DONE, completed_at=at(date(2026, 11, 25))),
        "K": task("K", acme, baba, due_on=date(2026, 12, 1), status=TaskStatus.CANCELLED),
        "L": task("L", acme, aoki, due_on=TODAY, status=TaskStatus.IN_PROGRESS),
        "U1": task("U1", beta, None, due_on=date(2026, 11, 1), task_type=TaskType.RISK),
        "U2": task("U2", beta, None),
    }
    return {"aoki": aoki, "baba": baba, "viewer": viewer, "acme": acme, "beta": beta, **made}


def titles(items: Any) -> list[str]:
    return [item.title for item in items]


def test_the_week_ends_on_sunday() -> None:
    assert task_selectors.week_end(TODAY) == date(2026, 12, 6)
    assert task_selectors.week_end(date(2026, 12, 6)) == date(2026, 12, 6)
    assert task_selectors.week_end(date(2026, 11, 30)) == date(2026, 12, 6)


def test_my_day_groups_open_tasks_by_due_date_each_by_priority_then_due_date(
    world: dict[str, Any],
) -> None:
    day = task_selectors.my_day(user=world["baba"], today=TODAY)
    # Overdue: B (high, 20 Nov), then normal ones by due date: G (30 Nov, awake), A (1 Dec).
    assert titles(day.overdue) == ["B", "G", "A"]
    assert titles(day.due_today) == ["C"]
    assert titles(day.this_week) == ["D"]
    # Later: F (high, undated) before E (normal, 7 Dec).
    assert titles(day.later) == ["F", "E"]
    assert (day.overdue_count, day.due_today_count, day.this_week_count, day.later_count) == (
        3,
        1,
        1,
        2,
    )
    assert day.open_count == 7
    assert day.snoozed_count == 1  # H
    assert day.done_today_count == 1  # I, not J (a week ago)


def test_within_a_priority_undated_tasks_come_last(world: dict[str, Any]) -> None:
    Task.objects.filter(title="F").update(priority=NORMAL)
    day = task_selectors.my_day(user=world["baba"], today=TODAY)
    assert titles(day.later) == ["E", "F"]


def test_my_day_of_someone_without_tasks_is_empty(world: dict[str, Any]) -> None:
    day = task_selectors.my_day(user=world["viewer"], today=TODAY)
    assert day.open_count == 0
    assert (day.overdue, day.due_today, day.this_week, day.later) == ([], [], [], [])


def test_my_day_caps_each_group_but_counts_all(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(task_selectors, "MY_DAY_GROUP_LIMIT", 2)
    day = task_selectors.my_day(user=world["baba"], today=TODAY)
    assert titles(day.overdue) == ["B", "G"]
    assert day.overdue_count == 3


def test_the_team_view_counts_each_owners_open_overdue_due_today_and_done_this_week(
    world: dict[str, Any],
) -> None:
    team = task_selectors.team_tasks(today=TODAY)
    rows = {row.name: row for row in team.owners}
    # Baba: open A B C D E F G (H sleeps), overdue B G A, none due today but C, done I (J is
    # 7 days old: the window is 26 Nov–2 Dec).
    assert (rows["baba"].open, rows["baba"].overdue, rows["baba"].due_today) == (7, 3, 1)
    assert rows["baba"].done_7d == 1
    assert (rows["aoki"].open, rows["aoki"].overdue, rows["aoki"].due_today) == (1, 0, 1)
    assert "viewer" not in rows  # not a CSM and no task
    assert (team.unowned.open, team.unowned.overdue) == (2, 1)
    assert team.total_open == 10
    assert team.total_overdue == 4
    assert [row.name for row in team.owners][:2] == ["baba", "aoki"]  # most overdue first


def test_the_team_list_shows_everything_still_to_do_by_due_date_undated_last(
    world: dict[str, Any],
) -> None:
    team = task_selectors.team_tasks(today=TODAY)
    assert titles(team.page) == ["U1", "B", "G", "A", "H", "L", "C", "D", "E", "F", "U2"]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"owner_id": "baba", "status": "overdue"}, ["B", "G", "A"]),
        ({"unowned": True}, ["U1", "U2"]),
        ({"task_type": TaskType.RENEWAL}, ["C"]),
        ({"status": TaskStatus.DONE}, ["I", "J"]),
        ({"status": TaskStatus.SNOOZED}, ["G", "H"]),
        ({"owner_id": "aoki"}, ["L"]),
    ],
)
def test_the_team_list_is_filtered(
    world: dict[str, Any], filters: dict[str, Any], expected: list[str]
) -> None:
    if "owner_id" in filters:
        filters["owner_id"] = world[filters["owner_id"]].pk
    team = task_selectors.team_tasks(today=TODAY, **filters)
    assert sorted(titles(team.page)) == sorted(expected)
    if "status" in filters and filters["status"] == "overdue":
        assert titles(team.page) == expected


def test_the_team_list_is_paginated(world: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(task_selectors, "TEAM_PAGE_SIZE", 4)
    second = task_selectors.team_tasks(today=TODAY, page=2)
    assert titles(second.page) == ["H", "L", "C", "D"]  # on one day, higher priority first
    assert second.page.paginator.num_pages == 3
    beyond = task_selectors.team_tasks(today=TODAY, page=99)
    assert titles(beyond.page) == ["E", "F", "U2"]


def test_a_customers_tasks_are_those_still_to_do_and_the_latest_finished(
    world: dict[str, Any],
) -> None:
    view = task_selectors.customer_tasks(world["beta"].pk, today=TODAY)
    assert titles(view.open) == ["U1", "C", "F", "U2"]
    assert titles(view.recently_done) == ["J"]
    assert view.done_count == 1
    acme = task_selectors.customer_tasks(world["acme"].pk, today=TODAY)
    assert titles(acme.recently_done) == ["I", "K"]  # the cancelled one has no time: last
    assert acme.done_count == 1
