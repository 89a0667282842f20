"""The tasks REST API: list with filters and pages, one task, create with an owner role,
change (fields, owner, status), complete writing the timeline; permissions and errors naming the
field (400 for rules, 422 for wrong types)."""

from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from kizuna.core.models import ApiToken, TimelineEntry, User
from kizuna.core.roles import Role
from kizuna.customers.models import Customer, LifecycleStage
from kizuna.playbooks import api_tasks, tasks
from kizuna.playbooks.models import Playbook, PlaybookRun, Task, TaskStatus, TriggerKind

pytestmark = pytest.mark.django_db

API = "/api/v1"


@pytest.fixture(autouse=True)
def _english(settings: Any) -> None:
    settings.LANGUAGE_CODE = "en"


def client_for(user: User) -> Client:
    _token, raw = ApiToken.issue(user=user, name="tests")
    return Client(headers={"Authorization": f"Bearer {raw}"})


@pytest.fixture
def people(make_user: Callable[..., User]) -> dict[str, User]:
    return {
        "aoki": make_user(Role.ONBOARDING_CSM, username="aoki"),
        "baba": make_user(Role.ADOPTION_CSM, username="baba"),
        "manager": make_user(Role.CS_MANAGER, username="manager"),
        "viewer": make_user(Role.VIEWER, username="viewer"),
    }


@pytest.fixture
def acme(people: dict[str, User]) -> Customer:
    return Customer.objects.create(
        name="Acme",
        lifecycle_stage=LifecycleStage.ADOPTION,
        onboarding_owner=people["aoki"],
        adoption_owner=people["baba"],
    )


def test_tasks_are_listed_earliest_due_first_and_filtered(
    people: dict[str, User], acme: Customer
) -> None:
    today = timezone.localdate()
    beta = Customer.objects.create(name="Beta")
    late = tasks.create_task(
        customer=acme, title="Late", owner=people["baba"], due_on=today - timedelta(days=3)
    )
    soon = tasks.create_task(
        customer=beta, title="Soon", owner=people["baba"], due_on=today + timedelta(days=2)
    )
    undated = tasks.create_task(customer=acme, title="Undated", owner=people["aoki"])
    nobody = tasks.create_task(customer=acme, title="Nobody", due_on=today)
    done = tasks.create_task(
        customer=acme, title="Done", owner=people["baba"], due_on=today - timedelta(days=9)
    )
    tasks.complete_task(task=done, user=people["baba"])
    client = client_for(people["baba"])

    def ids(query: str = "") -> list[int]:
        body = client.get(f"{API}/tasks{query}").json()
        return [item["id"] for item in body["items"]]

    assert ids() == [done.pk, late.pk, nobody.pk, soon.pk, undated.pk]
    assert ids("?owner=me&status=todo") == [late.pk, soon.pk]
    assert ids(f"?owner={people['aoki'].pk}") == [undated.pk]
    assert ids("?owner=none") == [nobody.pk]
    assert ids(f"?customer={beta.pk}") == [soon.pk]
    assert ids(f"?due_before={today.isoformat()}&status=todo") == [late.pk]
    assert ids("?status=done") == [done.pk]
    body = client.get(f"{API}/tasks?owner=me&status=todo").json()
    assert body["count"] == 2
    assert (body["page"], body["pages"]) == (1, 1)
    first = body["items"][0]
    assert first["overdue"] is True
    assert first["customer_name"] == "Acme"
    assert first["owner"] == people["baba"].pk


def test_the_list_is_paginated(
    people: dict[str, User], acme: Customer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api_tasks, "PAGE_SIZE", 2)
    made = [
        tasks.create_task(customer=acme, title=f"T{n}", due_on=date(2026, 12, n))
        for n in range(1, 6)
    ]
    body = client_for(people["viewer"]).get(f"{API}/tasks?page=3").json()
    assert [item["id"] for item in body["items"]] == [made[4].pk]
    assert (body["count"], body["page"], body["pages"]) == (5, 3, 3)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?owner=someone", "owner"),
        ("?status=sleeping", "status"),
        ("?due_before=tomorrow", "due_before"),
        ("?page=0", "page"),
        ("?customer=abc", "customer"),
    ],
)
def test_bad_filters_are_a_422_naming_the_field(
    people: dict[str, User], query: str, field: str
) -> None:
    response = client_for(people["viewer"]).get(f"{API}/tasks{query}")
    assert response.status_code == 422
    assert field in str(response.json()["detail"])


def test_one_task_shows_its_run_playbook_and_checklist(
    people: dict[str, User], acme: Customer
) -> None:
    playbook = Playbook.objects.create(key="drop", name="Drop", trigger_kind=TriggerKind.TIMELINE)
    run = PlaybookRun.objects.create(
        playbook=playbook,
        customer=acme,
        occurrence_key="timeline:3",
        triggered_on=date(2026, 12, 1),
    )
    task = tasks.create_task(customer=acme, title="Check in", run=run, checklist=["Look"])
    body = client_for(people["viewer"]).get(f"{API}/tasks/{task.pk}").json()
    assert (body["run"], body["playbook"]) == (run.pk, playbook.pk)
    assert body["checklist"] == [{"text": "Look", "done": False}]
    assert body["owner"] is None
    assert client_for(people["viewer"]).get(f"{API}/tasks/999999").status_code == 404


def test_a_task_is_created_with_its_owner_role_resolved(
    people: dict[str, User], acme: Customer
) -> None:
    response = client_for(people["aoki"]).post(
        f"{API}/tasks",
        {
            "customer": acme.pk,
            "title": "  Seats review ",
            "task_type": "expansion",
            "priority": 3,
            "owner_role": "current",
            "due_on": "2026-12-10",
            "checklist": ["Count seats", ""],
        },
        content_type="application/json",
    )
    assert response.status_code == 201
    body = response.json()
    assert body["owner"] == people["baba"].pk  # adoption stage → adoption owner
    assert (body["title"], body["priority"], body["owner_role"]) == ("Seats review", 3, "current")
    assert body["checklist"] == [{"text": "Count seats", "done": False}]
    assert body["created_by"] == people["aoki"].pk


@pytest.mark.parametrize(
    ("payload", "status", "field"),
    [
        ({"title": "x"}, 400, "customer"),
        ({"customer": 1, "title": "x", "owner": 999999}, 400, "owner"),
        ({"customer": 1, "title": ""}, 422, "title"),
        ({"customer": 1, "title": "x", "priority": 7}, 422, "priority"),
        ({"customer": 1, "title": "x", "owner_role": "boss"}, 422, "owner_role"),
        ({"customer": 1, "title": "x", "colour": "red"}, 422, "colour"),
        ({"customer": 1, "title": "x", "due_on": "soon"}, 422, "due_on"),
    ],
)
def test_a_bad_task_names_the_field(
    people: dict[str, User], acme: Customer, payload: dict[str, Any], status: int, field: str
) -> None:
    if payload.get("customer") == 1:
        payload["customer"] = acme.pk
    elif "customer" not in payload:
        payload["customer"] = acme.pk + 1000
    response = client_for(people["baba"]).post(
        f"{API}/tasks", payload, content_type="application/json"
    )
    assert response.status_code == status
    assert field in str(response.json()["detail"])
    assert Task.objects.count() == 0


def test_a_viewer_cannot_create_change_or_complete_tasks(
    people: dict[str, User], acme: Customer
) -> None:
    task = tasks.create_task(customer=acme, title="Call", owner=people["baba"])
    viewer = client_for(people["viewer"])
    assert (
        viewer.post(
            f"{API}/tasks", {"customer": acme.pk, "title": "x"}, content_type="application/json"
        ).status_code
        == 403
    )
    assert (
        viewer.patch(
            f"{API}/tasks/{task.pk}", {"title": "y"}, content_type="application/json"
        ).status_code
        == 403
    )
    assert (
        viewer.post(
            f"{API}/tasks/{task.pk}/complete", {}, content_type="application/json"
        ).status_code
        == 403
    )
    other_csm = client_for(people["aoki"])
    assert (
        other_csm.patch(
            f"{API}/tasks/{task.pk}", {"title": "y"}, content_type="application/json"
        ).status_code
        == 403
    )
    assert Client().get(f"{API}/tasks").status_code == 401


def test_patch_changes_only_the_fields_sent_and_moves_the_status(
    people: dict[str, User], acme: Customer
) -> None:
    task = tasks.create_task(
        customer=acme, title="Call", owner=people["baba"], due_on=date(2026, 12, 9)
    )
    client = client_for(people["baba"])
    url = f"{API}/tasks/{task.pk}"
    body = client.patch(
        url, {"priority": 4, "due_on": None}, content_type="application/json"
    ).json()
    assert (body["title"], body["priority"], body["due_on"]) == ("Call", 4, None)
    body = client.patch(url, {"status": "in_progress"}, content_type="application/json").json()
    assert body["status"] == "in_progress"
    later = (timezone.localdate() + timedelta(days=5)).isoformat()
    body = client.patch(
        url, {"status": "snoozed", "snoozed_until": later}, content_type="application/json"
    ).json()
    assert (body["status"], body["snoozed_until"]) == ("snoozed", later)
    body = client.patch(url, {"status": "open"}, content_type="application/json").json()
    assert (body["status"], body["snoozed_until"]) == ("open", None)
    body = client.patch(
        url, {"status": "cancelled", "outcome": "Duplicate"}, content_type="application/json"
    ).json()
    assert (body["status"], body["outcome"]) == ("cancelled", "Duplicate")


@pytest.mark.parametrize(
    ("payload", "status", "field"),
    [
        ({"title": None}, 422, "title"),
        ({"status": "done"}, 422, "status"),
        ({"status": "snoozed"}, 400, "snoozed_until"),
        ({"status": "snoozed", "snoozed_until": "2000-01-01"}, 400, "until"),
        ({"snoozed_until": "2030-01-01"}, 400, "snoozed_until"),
        ({"outcome": "x"}, 400, "outcome"),
        ({"owner": 999999}, 400, "owner"),
    ],
)
def test_a_bad_patch_names_the_field_and_changes_nothing(
    people: dict[str, User], acme: Customer, payload: dict[str, Any], status: int, field: str
) -> None:
    task = tasks.create_task(customer=acme, title="Call", owner=people["baba"])
    response = client_for(people["baba"]).patch(
        f"{API}/tasks/{task.pk}", {"priority": 4, **payload}, content_type="application/json"
    )
    assert response.status_code == status
    assert field in str(response.json()["detail"])
    task.refresh_from_db()
    assert (task.priority, task.status) == (2, TaskStatus.OPEN)


def test_a_manager_reassigns_through_the_api(people: dict[str, User], acme: Customer) -> None:
    task = tasks.create_task(customer=acme, title="Call", owner=people["baba"])
    client = client_for(people["manager"])
    body = client.patch(
        f"{API}/tasks/{task.pk}", {"owner": people["aoki"].pk}, content_type="application/json"
    ).json()
    assert body["owner"] == people["aoki"].pk
    body = client.patch(
        f"{API}/tasks/{task.pk}", {"owner": None}, content_type="application/json"
    ).json()
    assert body["owner"] is None


def test_completing_writes_the_timeline_and_twice_is_a_400(
    people: dict[str, User], acme: Customer
) -> None:
    task = tasks.create_task(customer=acme, title="Call", owner=people["baba"])
    client = client_for(people["baba"])
    url = f"{API}/tasks/{task.pk}/complete"
    body = client.post(
        url, {"outcome": "Renewal confirmed"}, content_type="application/json"
    ).json()
    assert (body["status"], body["outcome"], body["completed_by"]) == (
        "done",
        "Renewal confirmed",
        people["baba"].pk,
    )
    assert body["completed_at"] is not None
    entry = TimelineEntry.objects.get(customer=acme, kind="task.completed")
    assert entry.payload["task_id"] == task.pk
    again = client.post(url, {}, content_type="application/json")
    assert again.status_code == 400
    assert "status" in again.json()["detail"]
