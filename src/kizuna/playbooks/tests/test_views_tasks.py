"""Task pages through HTTP: My day and its htmx quick complete, a task's page and its actions,
the new-task form (also from Customer 360), the team view and the Customer 360 panel, with
permissions and field errors."""

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from kizuna.core.models import TimelineEntry, User
from kizuna.core.roles import Role
from kizuna.customers.models import Customer, LifecycleStage
from kizuna.playbooks import tasks
from kizuna.playbooks.models import (
    Playbook,
    PlaybookRun,
    Task,
    TaskPriority,
    TaskStatus,
    TriggerKind,
)

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


@pytest.fixture(autouse=True)
def _english(settings: Any) -> None:
    settings.LANGUAGE_CODE = "en"


def html(response: Any) -> str:
    return str(response.content.decode())


@pytest.fixture
def people(make_user: Callable[..., User]) -> dict[str, User]:
    return {
        "aoki": make_user(Role.ONBOARDING_CSM, username="aoki"),
        "baba": make_user(Role.ADOPTION_CSM, username="baba", first_name="Ken", last_name="Baba"),
        "manager": make_user(Role.CS_MANAGER, username="manager"),
        "viewer": make_user(Role.VIEWER, username="viewer"),
    }


def as_user(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def acme(people: dict[str, User]) -> Customer:
    return Customer.objects.create(
        name="Acme",
        lifecycle_stage=LifecycleStage.ADOPTION,
        onboarding_owner=people["aoki"],
        adoption_owner=people["baba"],
    )


def test_my_day_shows_the_persons_tasks_in_groups(people: dict[str, User], acme: Customer) -> None:
    today = timezone.localdate()
    tasks.create_task(
        customer=acme, title="Late call", owner=people["baba"], due_on=today - timedelta(days=2)
    )
    tasks.create_task(customer=acme, title="Today's demo", owner=people["baba"], due_on=today)
    tasks.create_task(customer=acme, title="Not mine", owner=people["aoki"], due_on=today)
    page = html(as_user(people["baba"]).get(reverse("playbooks:my-day")))
    assert 'id="group-overdue"' in page
    assert "Late call" in page
    assert "Today's demo" in page or "Today&#x27;s demo" in page
    assert "Not mine" not in page
    assert 'id="tasks-subnav"' in page
    assert 'id="my-day-empty"' not in page


def test_my_day_without_tasks_says_so(people: dict[str, User]) -> None:
    response = as_user(people["viewer"]).get(reverse("playbooks:my-day"))
    assert response.status_code == 200
    assert 'id="my-day-empty"' in html(response)
    assert 'id="new-task"' not in html(response)  # a viewer creates nothing


def test_my_day_is_in_japanese_for_a_japanese_user(people: dict[str, User]) -> None:
    client = as_user(people["baba"])
    response = client.get(reverse("playbooks:my-day"), HTTP_ACCEPT_LANGUAGE="ja")
    assert response.status_code == 200
    assert 'lang="ja"' in html(response)


def test_quick_complete_on_my_day_swaps_the_row_and_writes_the_timeline(
    people: dict[str, User], acme: Customer
) -> None:
    task = tasks.create_task(customer=acme, title="Check in", owner=people["baba"])
    response = as_user(people["baba"]).post(
        reverse("playbooks:task-complete", args=[task.pk]),
        {"from": "row", "outcome": "Usage back to normal"},
        headers=HTMX,
    )
    assert response.status_code == 200
    fragment = html(response)
    assert fragment.lstrip().startswith("<li")
    assert 'data-status="done"' in fragment
    assert "Usage back to normal" in fragment
    task.refresh_from_db()
    assert task.status == TaskStatus.DONE
    entry = TimelineEntry.objects.get(customer=acme, kind="task.completed")
    assert entry.body == "Usage back to normal"


def test_completing_without_htmx_returns_to_the_next_page(
    people: dict[str, User], acme: Customer
) -> None:
    task = tasks.create_task(customer=acme, title="Check in", owner=people["baba"])
    response = as_user(people["baba"]).post(
        reverse("playbooks:task-complete", args=[task.pk]),
        {"from": "row", "next": reverse("playbooks:my-day")},
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("playbooks:my-day")
    outside = as_user(people["baba"]).post(
        reverse("playbooks:task-reopen", args=[task.pk]), {"next": "https://evil.example.com/"}
    )
    assert outside["Location"] == reverse("playbooks:task", args=[task.pk])


def test_someone_elses_task_cannot_be_completed_by_a_csm_or_a_viewer(
    people: dict[str, User], acme: Customer
) -> None:
    task = tasks.create_task(customer=acme, title="Check in", owner=people["baba"])
    url = reverse("playbooks:task-complete", args=[task.pk])
    assert as_user(people["aoki"]).post(url, {}).status_code == 403
    assert as_user(people["viewer"]).post(url, {}).status_code == 403
    assert as_user(people["manager"]).post(url, {}).status_code == 302
    task.refresh_from_db()
    assert task.completed_by == people["manager"]


def test_a_task_page_shows_its_customer_checklist_and_playbook(
    people: dict[str, User], acme: Customer
) -> None:
    playbook = Playbook.objects.create(
        key="usage-drop", name="Usage drop check-in", trigger_kind=TriggerKind.TIMELINE
    )
    run = PlaybookRun.objects.create(
        playbook=playbook,
        customer=acme,
        occurrence_key="timeline:7",
        triggered_on=timezone.localdate(),
        trigger_summary="Usage dropped 30%",
    )
    task = tasks.create_task(
        customer=acme, title="Check in", owner=people["baba"], checklist=["Look at usage"], run=run
    )
    page = html(as_user(people["viewer"]).get(reverse("playbooks:task", args=[task.pk])))
    assert "Acme" in page
    assert "Look at usage" in page
    assert "Usage drop check-in" in page
    assert "Usage dropped 30%" in page
    assert 'id="task-actions"' not in page  # a viewer only reads
    owner_page = html(as_user(people["baba"]).get(reverse("playbooks:task", args=[task.pk])))
    assert 'id="complete-task"' in owner_page


def test_an_unknown_task_is_a_404(people: dict[str, User]) -> None:
    assert as_user(people["manager"]).get(reverse("playbooks:task", args=[404])).status_code == 404


def test_ticking_a_checklist_item_with_htmx_returns_the_main_section(
    people: dict[str, User], acme: Customer
) -> None:
    task = tasks.create_task(
        customer=acme, title="Prepare", owner=people["baba"], checklist=["A", "B"]
    )
    response = as_user(people["baba"]).post(
        reverse("playbooks:task-checklist", args=[task.pk, 1]), headers=HTMX
    )
    assert response.status_code == 200
    assert 'id="task-main"' in html(response)
    assert "<html" not in html(response)
    task.refresh_from_db()
    assert [item["done"] for item in task.checklist] == [False, True]
    bad = as_user(people["baba"]).post(reverse("playbooks:task-checklist", args=[task.pk, 5]))
    assert bad.status_code == 302


def test_snoozing_to_a_past_day_is_a_field_error(people: dict[str, User], acme: Customer) -> None:
    task = tasks.create_task(customer=acme, title="Call", owner=people["baba"])
    client = as_user(people["baba"])
    url = reverse("playbooks:task-snooze", args=[task.pk])
    response = client.post(url, {"until": timezone.localdate().isoformat()})
    assert response.status_code == 400
    assert "Snooze until a day after today." in html(response)
    response = client.post(url, {"until": "not a date"})
    assert response.status_code == 400
    later = timezone.localdate() + timedelta(days=3)
    assert client.post(url, {"until": later.isoformat()}).status_code == 302
    task.refresh_from_db()
    assert (task.status, task.snoozed_until) == (TaskStatus.SNOOZED, later)


def test_start_cancel_and_reopen_from_the_task_page(
    people: dict[str, User], acme: Customer
) -> None:
    task = tasks.create_task(customer=acme, title="Call", owner=people["baba"])
    client = as_user(people["baba"])
    client.post(reverse("playbooks:task-start", args=[task.pk]))
    task.refresh_from_db()
    assert task.status == TaskStatus.IN_PROGRESS
    client.post(reverse("playbooks:task-cancel", args=[task.pk]), {"reason": "Duplicate"})
    task.refresh_from_db()
    assert (task.status, task.outcome) == (TaskStatus.CANCELLED, "Duplicate")
    response = client.post(reverse("playbooks:task-reopen", args=[task.pk]), headers=HTMX)
    assert 'id="reopen-task"' not in html(response)
    task.refresh_from_db()
    assert task.status == TaskStatus.OPEN


def test_an_owner_hands_a_task_on_but_another_csm_cannot_take_it(
    people: dict[str, User], acme: Customer
) -> None:
    task = tasks.create_task(customer=acme, title="Call", owner=people["baba"])
    url = reverse("playbooks:task-reassign", args=[task.pk])
    assert as_user(people["aoki"]).post(url, {"owner": people["aoki"].pk}).status_code == 403
    assert as_user(people["baba"]).post(url, {"owner": people["aoki"].pk}).status_code == 302
    task.refresh_from_db()
    assert task.owner == people["aoki"]
    assert as_user(people["manager"]).post(url, {"owner": ""}).status_code == 302
    task.refresh_from_db()
    assert task.owner is None
    assert as_user(people["manager"]).post(url, {"owner": "99999"}).status_code == 400


def test_a_new_task_from_customer_360_resolves_the_owner_role(
    people: dict[str, User], acme: Customer
) -> None:
    client = as_user(people["aoki"])
    url = reverse("playbooks:task-new") + f"?customer={acme.pk}"
    form = client.get(url)
    assert form.status_code == 200
    assert "New task for Acme" in html(form)
    response = client.post(
        url,
        {
            "customer": acme.pk,
            "title": "Review seats",
            "task_type": "expansion",
            "priority": TaskPriority.HIGH,
            "owner": "",
            "owner_role": "adoption",
            "due_on": "2026-12-10",
            "checklist": "Count seats\n\nAsk about growth\n",
            "next": reverse("customers:detail", args=[acme.pk]),
        },
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("customers:detail", args=[acme.pk])
    task = Task.objects.get(title="Review seats")
    assert task.owner == people["baba"]
    assert task.created_by == people["aoki"]
    assert [item["text"] for item in task.checklist] == ["Count seats", "Ask about growth"]


def test_a_bad_new_task_names_the_field_and_a_viewer_is_refused(
    people: dict[str, User], acme: Customer
) -> None:
    response = as_user(people["baba"]).post(
        reverse("playbooks:task-new"),
        {"customer": acme.pk, "title": "", "task_type": "party", "priority": "2"},
    )
    assert response.status_code == 400
    page = html(response)
    assert "This field is required." in page
    assert "Select a valid choice." in page
    assert Task.objects.count() == 0
    assert as_user(people["viewer"]).get(reverse("playbooks:task-new")).status_code == 403


def test_editing_a_task_keeps_ticks_of_unchanged_items(
    people: dict[str, User], acme: Customer
) -> None:
    task = tasks.create_task(
        customer=acme,
        title="Prepare",
        owner=people["baba"],
        checklist=[{"text": "A", "done": True}, "B"],
    )
    client = as_user(people["baba"])
    assert client.get(reverse("playbooks:task-edit", args=[task.pk])).status_code == 200
    response = client.post(
        reverse("playbooks:task-edit", args=[task.pk]),
        {
            "title": "Prepare QBR",
            "task_type": "other",
            "priority": "3",
            "due_on": "",
            "checklist": "A\nC",
        },
    )
    assert response.status_code == 302
    task.refresh_from_db()
    assert task.title == "Prepare QBR"
    assert task.checklist == [{"text": "A", "done": True}, {"text": "C", "done": False}]
    assert (
        as_user(people["aoki"]).get(reverse("playbooks:task-edit", args=[task.pk])).status_code
        == 403
    )


def test_the_team_view_is_for_managers_and_filters_by_owner(
    people: dict[str, User], acme: Customer
) -> None:
    today = timezone.localdate()
    tasks.create_task(
        customer=acme,
        title="Baba's late task",
        owner=people["baba"],
        due_on=today - timedelta(days=1),
    )
    tasks.create_task(customer=acme, title="Nobody's task")
    assert as_user(people["baba"]).get(reverse("playbooks:team")).status_code == 403
    client = as_user(people["manager"])
    page = html(client.get(reverse("playbooks:team")))
    assert 'id="unowned-row"' in page
    assert "Nobody&#x27;s task" in page
    filtered = html(client.get(reverse("playbooks:team"), {"owner": "none"}))
    assert "Nobody&#x27;s task" in filtered
    assert "Baba&#x27;s late task" not in filtered
    bad = client.get(reverse("playbooks:team"), {"status": "sleeping"})
    assert bad.status_code == 400
    assert "Select a valid choice." in html(bad)
    empty = html(client.get(reverse("playbooks:team"), {"status": "cancelled"}))
    assert 'id="team-empty"' in empty


def test_the_customer_panel_lists_open_and_finished_tasks(
    people: dict[str, User], acme: Customer
) -> None:
    open_task = tasks.create_task(customer=acme, title="Open one", owner=people["baba"])
    done = tasks.create_task(customer=acme, title="Finished one", owner=people["baba"])
    tasks.complete_task(task=done, user=people["baba"], outcome="Went well")
    client = as_user(people["viewer"])
    fragment = html(client.get(reverse("playbooks:customer-tasks", args=[acme.pk]), headers=HTMX))
    assert "<html" not in fragment
    assert f'data-task="{open_task.pk}"' in fragment
    assert "Finished one" in fragment
    assert "Went well" in fragment
    assert 'id="new-customer-task"' not in fragment
    csm = html(as_user(people["aoki"]).get(reverse("playbooks:customer-tasks", args=[acme.pk])))
    assert 'id="new-customer-task"' in csm


def test_customer_360_loads_the_tasks_panel(people: dict[str, User], acme: Customer) -> None:
    page = html(as_user(people["viewer"]).get(reverse("customers:detail", args=[acme.pk])))
    assert reverse("playbooks:customer-tasks", args=[acme.pk]) in page


def test_the_empty_customer_panel_says_so(people: dict[str, User], acme: Customer) -> None:
    fragment = html(
        as_user(people["viewer"]).get(
            reverse("playbooks:customer-tasks", args=[acme.pk]), headers=HTMX
        )
    )
    assert 'id="no-open-tasks"' in fragment


def test_strangers_are_sent_to_sign_in(acme: Customer) -> None:
    response = Client().get(reverse("playbooks:my-day"))
    assert response.status_code == 302
    assert "login" in response["Location"]


def test_htmx_errors_come_back_as_a_swappable_fragment(
    people: dict[str, User], acme: Customer
) -> None:
    """htmx swaps only 2xx answers, so a refused action answers 200 with the message inside."""
    task = tasks.create_task(customer=acme, title="Call", owner=people["baba"])
    client = as_user(people["baba"])
    snooze = client.post(
        reverse("playbooks:task-snooze", args=[task.pk]),
        {"until": timezone.localdate().isoformat()},
        headers=HTMX,
    )
    assert snooze.status_code == 200
    assert "Snooze until a day after today." in html(snooze)
    assert "<html" not in html(snooze)
    tasks.cancel_task(task=task, user=people["baba"])
    row = client.post(
        reverse("playbooks:task-complete", args=[task.pk]), {"from": "row"}, headers=HTMX
    )
    assert row.status_code == 200
    assert "This task is cancelled; reopen it first." in html(row)


def test_the_customer_panel_new_task_link_returns_to_the_customer(
    people: dict[str, User], acme: Customer
) -> None:
    fragment = html(
        as_user(people["aoki"]).get(
            reverse("playbooks:customer-tasks", args=[acme.pk]), headers=HTMX
        )
    )
    customer_url = reverse("customers:detail", args=[acme.pk])
    assert f"customer={acme.pk}&amp;next={customer_url}" in fragment
