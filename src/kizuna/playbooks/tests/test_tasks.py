"""Task services: owner roles resolved on creation, edits, the life of a task (start, complete
with its timeline entry, cancel, reopen, snooze and wake), reassignment, checklists, and who may
change a task."""

import json
from collections.abc import Callable
from datetime import date, timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management import CommandError, call_command
from django.http import Http404
from django.utils import timezone, translation

from kizuna.core.models import TimelineEntry, User
from kizuna.core.roles import Role
from kizuna.customers.models import Customer, LifecycleStage
from kizuna.playbooks import tasks
from kizuna.playbooks.models import (
    OwnerRole,
    Playbook,
    PlaybookRun,
    Task,
    TaskPriority,
    TaskStatus,
    TaskType,
    TriggerKind,
)

pytestmark = pytest.mark.django_db

MONDAY = date(2026, 11, 30)


@pytest.fixture
def people(make_user: Callable[..., User]) -> dict[str, User]:
    return {
        "aoki": make_user(Role.ONBOARDING_CSM, username="aoki"),
        "baba": make_user(Role.ADOPTION_CSM, username="baba"),
        "chiba": make_user(Role.EXPANSION_CSM, username="chiba"),
        "manager": make_user(Role.CS_MANAGER, username="manager"),
        "viewer": make_user(Role.VIEWER, username="viewer"),
    }


def customer_of(
    people: dict[str, User], stage: str = LifecycleStage.ADOPTION, **fields: Any
) -> Customer:
    defaults: dict[str, Any] = {
        "name": "Acme",
        "lifecycle_stage": stage,
        "onboarding_owner": people["aoki"],
        "adoption_owner": people["baba"],
        "expansion_owner": people["chiba"],
    }
    defaults.update(fields)
    return Customer.objects.create(**defaults)


def make_run(customer: Customer) -> PlaybookRun:
    playbook = Playbook.objects.create(
        key="usage-drop", name="Usage drop", trigger_kind=TriggerKind.TIMELINE
    )
    return PlaybookRun.objects.create(
        playbook=playbook, customer=customer, occurrence_key="timeline:1", triggered_on=MONDAY
    )


# --- Creation and owner roles --------------------------------------------------------------------


def test_a_task_for_a_named_owner_keeps_that_owner_and_its_fields(people: dict[str, User]) -> None:
    customer = customer_of(people)
    task = tasks.create_task(
        customer=customer,
        title="  Call the admin  ",
        task_type=TaskType.RISK,
        priority=TaskPriority.HIGH,
        owner=people["chiba"],
        owner_role=OwnerRole.ADOPTION,
        due_on=MONDAY,
        description="About the drop",
        checklist=["Check usage", " ", {"text": "Book a call", "done": True}],
        created_by=people["manager"],
    )
    task.refresh_from_db()
    assert (task.title, task.owner, task.owner_role) == (
        "Call the admin",
        people["chiba"],
        "adoption",
    )
    assert (task.task_type, task.priority, task.status) == ("risk", 3, "open")
    assert task.checklist == [
        {"text": "Check usage", "done": False},
        {"text": "Book a call", "done": True},
    ]
    assert task.created_by == people["manager"]


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        (OwnerRole.ONBOARDING, "aoki"),
        (OwnerRole.ADOPTION, "baba"),
        (OwnerRole.EXPANSION, "chiba"),
    ],
)
def test_a_named_role_is_resolved_to_that_owner_of_the_customer(
    people: dict[str, User], role: str, expected: str
) -> None:
    task = tasks.create_task(customer=customer_of(people), title="Check in", owner_role=role)
    assert task.owner == people[expected]


@pytest.mark.parametrize(
    ("stage", "expected"),
    [
        (LifecycleStage.ONBOARDING, "aoki"),
        (LifecycleStage.ADOPTION, "baba"),
        (LifecycleStage.REACTIVATED, "baba"),
        (LifecycleStage.EXPANSION, "chiba"),
    ],
)
def test_the_current_role_is_the_owner_for_the_customers_stage(
    people: dict[str, User], stage: str, expected: str
) -> None:
    task = tasks.create_task(
        customer=customer_of(people, stage=stage), title="Check in", owner_role=OwnerRole.CURRENT
    )
    assert task.owner == people[expected]


def test_the_current_role_falls_back_to_any_owner_when_the_stage_has_none(
    people: dict[str, User],
) -> None:
    customer = customer_of(
        people, stage=LifecycleStage.EXPANSION, expansion_owner=None, adoption_owner=None
    )
    task = tasks.create_task(customer=customer, title="Review", owner_role=OwnerRole.CURRENT)
    assert task.owner == people["aoki"]


def test_an_unheld_role_leaves_the_task_unowned(people: dict[str, User]) -> None:
    customer = customer_of(people, adoption_owner=None)
    task = tasks.create_task(customer=customer, title="Check in", owner_role=OwnerRole.ADOPTION)
    assert task.owner is None
    assert task.owner_role == "adoption"


def test_a_task_remembers_the_playbook_run_that_made_it(people: dict[str, User]) -> None:
    customer = customer_of(people)
    run = make_run(customer)
    task = tasks.create_task(customer=customer, title="Check in", run=run)
    assert list(run.tasks.all()) == [task]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"title": "   "}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"task_type": "party"}, "task_type"),
        ({"priority": 9}, "priority"),
        ({"owner_role": "boss"}, "owner_role"),
        ({"checklist": ["x" * 301]}, "checklist"),
    ],
)
def test_bad_task_input_is_refused_naming_the_field(
    people: dict[str, User], fields: dict[str, Any], field: str
) -> None:
    arguments: dict[str, Any] = {"customer": customer_of(people), "title": "Call"} | fields
    with pytest.raises(ValidationError) as caught:
        tasks.create_task(**arguments)
    assert field in caught.value.message_dict
    assert Task.objects.count() == 0


def test_a_task_cannot_go_to_an_inactive_user(people: dict[str, User]) -> None:
    people["baba"].is_active = False
    people["baba"].save()
    with pytest.raises(ValidationError) as caught:
        tasks.create_task(customer=customer_of(people), title="Call", owner=people["baba"])
    assert "owner" in caught.value.message_dict


def test_a_viewer_cannot_own_a_task(people: dict[str, User]) -> None:
    with pytest.raises(ValidationError) as caught:
        tasks.create_task(customer=customer_of(people), title="Call", owner=people["viewer"])
    assert "owner" in caught.value.message_dict
    task = tasks.create_task(customer=customer_of(people), title="Call")
    with pytest.raises(ValidationError):
        tasks.reassign_task(task=task, owner=people["viewer"], user=people["manager"])


# --- Edits ---------------------------------------------------------------------------------------


def test_update_changes_only_the_given_fields_and_none_clears_the_due_date(
    people: dict[str, User],
) -> None:
    task = tasks.create_task(
        customer=customer_of(people), title="Call", due_on=MONDAY, description="old"
    )
    tasks.update_task(task=task, user=people["baba"], title="Call the admin", due_on=None)
    task.refresh_from_db()
    assert (task.title, task.due_on, task.description) == ("Call the admin", None, "old")
    with pytest.raises(ValidationError) as caught:
        tasks.update_task(task=task, user=people["baba"], priority=0)
    assert "priority" in caught.value.message_dict


# --- Life of a task ------------------------------------------------------------------------------


def test_completing_a_task_writes_the_timeline_with_its_run_and_playbook(
    people: dict[str, User],
) -> None:
    customer = customer_of(people)
    run = make_run(customer)
    task = tasks.create_task(
        customer=customer, title="Check in", task_type=TaskType.ADOPTION, run=run
    )
    with translation.override("en"):
        tasks.complete_task(task=task, user=people["baba"], outcome=" Called; usage is back ")
    task.refresh_from_db()
    assert task.status == TaskStatus.DONE
    assert task.outcome == "Called; usage is back"
    assert task.completed_by == people["baba"]
    assert task.completed_at is not None
    entry = TimelineEntry.objects.get(customer=customer, kind="task.completed")
    assert entry.title == "Task completed: Check in"
    assert entry.body == "Called; usage is back"
    assert entry.actor == people["baba"]
    assert entry.payload == {
        "task_id": task.pk,
        "task_type": "adoption",
        "run_id": run.pk,
        "playbook_id": run.playbook_id,
    }


def test_a_hand_made_task_completes_with_no_run_in_the_payload(people: dict[str, User]) -> None:
    task = tasks.create_task(customer=customer_of(people), title="Call")
    tasks.complete_task(task=task, user=None)
    entry = TimelineEntry.objects.get(kind="task.completed")
    assert entry.payload["run_id"] is None
    assert entry.payload["playbook_id"] is None
    assert entry.actor is None


def test_a_done_task_cannot_be_completed_twice_nor_cancelled(people: dict[str, User]) -> None:
    task = tasks.create_task(customer=customer_of(people), title="Call")
    tasks.complete_task(task=task, user=people["baba"])
    with pytest.raises(ValidationError) as caught:
        tasks.complete_task(task=task, user=people["baba"])
    assert "status" in caught.value.message_dict
    with pytest.raises(ValidationError):
        tasks.cancel_task(task=task, user=people["baba"])
    assert TimelineEntry.objects.filter(kind="task.completed").count() == 1


def test_start_cancel_and_reopen_move_the_status(people: dict[str, User]) -> None:
    task = tasks.create_task(customer=customer_of(people), title="Call")
    assert tasks.start_task(task=task, user=people["baba"]).status == TaskStatus.IN_PROGRESS
    tasks.cancel_task(task=task, user=people["baba"], reason="Customer churned")
    task.refresh_from_db()
    assert (task.status, task.outcome) == (TaskStatus.CANCELLED, "Customer churned")
    tasks.reopen_task(task=task, user=people["baba"])
    task.refresh_from_db()
    assert task.status == TaskStatus.OPEN
    assert not TimelineEntry.objects.filter(kind="task.completed").exists()


def test_a_snoozed_task_wakes_as_open_on_its_day_and_not_before(people: dict[str, User]) -> None:
    customer = customer_of(people)
    early = tasks.create_task(customer=customer, title="Early", due_on=MONDAY)
    late = tasks.create_task(customer=customer, title="Late")
    tasks.snooze_task(task=early, until=MONDAY + timedelta(days=2), user=None, today=MONDAY)
    tasks.snooze_task(task=late, until=MONDAY + timedelta(days=3), user=None, today=MONDAY)
    assert tasks.wake_snoozed(MONDAY + timedelta(days=1)) == 0
    assert tasks.wake_snoozed(MONDAY + timedelta(days=2)) == 1
    early.refresh_from_db()
    late.refresh_from_db()
    assert (early.status, early.snoozed_until, early.due_on) == (TaskStatus.OPEN, None, MONDAY)
    assert (late.status, late.snoozed_until) == (TaskStatus.SNOOZED, MONDAY + timedelta(days=3))


def test_a_task_is_snoozed_only_to_a_later_day(people: dict[str, User]) -> None:
    task = tasks.create_task(customer=customer_of(people), title="Call")
    with pytest.raises(ValidationError) as caught:
        tasks.snooze_task(task=task, until=MONDAY, user=None, today=MONDAY)
    assert "until" in caught.value.message_dict


def test_reassigning_gives_the_task_to_another_person_or_to_nobody(
    people: dict[str, User],
) -> None:
    task = tasks.create_task(customer=customer_of(people), title="Call", owner=people["baba"])
    tasks.reassign_task(task=task, owner=people["chiba"], user=people["manager"])
    task.refresh_from_db()
    assert task.owner == people["chiba"]
    tasks.reassign_task(task=task, owner=None, user=people["manager"])
    task.refresh_from_db()
    assert task.owner is None


def test_checklist_items_are_ticked_flipped_and_checked_by_index(people: dict[str, User]) -> None:
    task = tasks.create_task(customer=customer_of(people), title="Call", checklist=["A", "B"])
    tasks.toggle_checklist_item(task=task, index=1, user=None)
    task.refresh_from_db()
    assert [item["done"] for item in task.checklist] == [False, True]
    tasks.toggle_checklist_item(task=task, index=1, user=None)
    tasks.toggle_checklist_item(task=task, index=0, user=None, done=True)
    task.refresh_from_db()
    assert [item["done"] for item in task.checklist] == [True, False]
    with pytest.raises(ValidationError) as caught:
        tasks.toggle_checklist_item(task=task, index=2, user=None)
    assert "index" in caught.value.message_dict


# --- Access --------------------------------------------------------------------------------------


def test_owners_and_managers_change_a_task_and_others_only_read_it(
    people: dict[str, User],
) -> None:
    task = tasks.create_task(customer=customer_of(people), title="Call", owner=people["baba"])
    for name in ("baba", "manager"):
        assert tasks.access_task(user=people[name], task_id=task.pk, write=True) == task
    for name in ("aoki", "viewer"):
        assert tasks.access_task(user=people[name], task_id=task.pk) == task
        with pytest.raises(PermissionDenied):
            tasks.access_task(user=people[name], task_id=task.pk, write=True)


def test_any_csm_may_pick_up_an_unowned_task_but_a_viewer_may_not(
    people: dict[str, User],
) -> None:
    task = tasks.create_task(customer=customer_of(people), title="Call")
    assert tasks.can_edit_task(people["aoki"], task)
    assert tasks.can_reassign_task(people["aoki"], task)
    assert not tasks.can_edit_task(people["viewer"], task)
    assert not tasks.can_create_tasks(people["viewer"])
    assert tasks.can_create_tasks(people["aoki"])


def test_an_unknown_task_is_not_found(people: dict[str, User]) -> None:
    with pytest.raises(Http404):
        tasks.access_task(user=people["manager"], task_id=999)


def test_completion_time_is_now(people: dict[str, User]) -> None:
    task = tasks.create_task(customer=customer_of(people), title="Call")
    before = timezone.now()
    tasks.complete_task(task=task, user=people["baba"])
    task.refresh_from_db()
    assert task.completed_at is not None
    assert before <= task.completed_at <= timezone.now()


# --- The CLI -------------------------------------------------------------------------------------


def run_cli(*args: str) -> str:
    out = StringIO()
    call_command("tasks", *args, stdout=out)
    return out.getvalue()


def test_the_cli_lists_tasks_still_to_do_by_owner_and_overdue(people: dict[str, User]) -> None:
    customer = customer_of(people)
    today = timezone.localdate()
    late = tasks.create_task(
        customer=customer, title="Late", owner=people["baba"], due_on=today - timedelta(days=1)
    )
    later = tasks.create_task(
        customer=customer, title="Later", owner=people["baba"], due_on=today + timedelta(days=5)
    )
    tasks.create_task(customer=customer, title="Nobody's")
    done = tasks.create_task(customer=customer, title="Done", owner=people["baba"])
    tasks.complete_task(task=done, user=None)
    listed = json.loads(run_cli("list", "--owner", "baba", "--json"))
    assert listed["count"] == 2
    assert [row["id"] for row in listed["tasks"]] == [late.pk, later.pk]
    assert listed["tasks"][0]["overdue"] is True
    overdue = json.loads(run_cli("list", "--overdue", "--json"))
    assert [row["id"] for row in overdue["tasks"]] == [late.pk]
    assert [
        row["title"] for row in json.loads(run_cli("list", "--owner", "none", "--json"))["tasks"]
    ] == ["Nobody's"]
    text = run_cli("list", "--owner", "baba")
    assert "Late" in text
    assert "OVERDUE" in text


def test_the_cli_completes_a_task_as_its_owner(people: dict[str, User]) -> None:
    task = tasks.create_task(customer=customer_of(people), title="Call", owner=people["baba"])
    out = run_cli("complete", str(task.pk), "--outcome", "Spoke to the admin", "--user", "baba")
    assert f"Task {task.pk} completed" in out
    task.refresh_from_db()
    assert (task.status, task.outcome, task.completed_by) == (
        TaskStatus.DONE,
        "Spoke to the admin",
        people["baba"],
    )
    assert TimelineEntry.objects.get(kind="task.completed").actor == people["baba"]


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (("complete",), "ID"),
        (("complete", "abc"), "ID"),
        (("complete", "999999"), "ID"),
        (("complete", "{task}", "--user", "aoki"), "--user"),
        (("complete", "{task}", "--user", "viewer"), "--user"),
        (("complete", "{task}", "--user", "ghost"), "--user"),
        (("complete", "{task}", "--overdue"), "--overdue"),
        (("list", "--owner", "ghost"), "--owner"),
        (("list", "{task}"), "ID"),
        (("list", "--limit", "0"), "--limit"),
    ],
)
def test_bad_cli_input_names_the_option(
    people: dict[str, User], args: tuple[str, ...], option: str
) -> None:
    task = tasks.create_task(customer=customer_of(people), title="Call", owner=people["baba"])
    with pytest.raises(CommandError, match=option):
        run_cli(*(arg.format(task=task.pk) for arg in args))
    task.refresh_from_db()
    assert task.status == TaskStatus.OPEN


def test_the_cli_refuses_to_complete_a_finished_task(people: dict[str, User]) -> None:
    task = tasks.create_task(customer=customer_of(people), title="Call")
    tasks.cancel_task(task=task, user=None)
    with pytest.raises(CommandError, match="already cancelled"):
        run_cli("complete", str(task.pk))


def test_the_daily_jobs_wake_snoozed_tasks_before_the_playbooks_run() -> None:
    from kizuna.core.jobs import daily_jobs

    jobs = {job.key: job for job in daily_jobs()}
    assert jobs["tasks-wake"].run is tasks.wake_snoozed
    assert jobs["tasks-wake"].order == 59  # the playbook runner's daily pass is 60
