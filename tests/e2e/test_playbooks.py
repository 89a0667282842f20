"""Playbooks in a real browser: an admin writes a usage-drop playbook (risk.raised usage_drop →
a check-in task for the adoption CSM), simulates the last 90 days, saves and enables it; a
usage-drop signal is raised, the runner runs once, and the adoption CSM completes the task on
My day."""

import re
from datetime import timedelta
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from kizuna.core import timeline
from kizuna.core.models import TimelineEntry, User
from kizuna.core.roles import Role
from kizuna.customers.models import Customer
from kizuna.playbooks.models import Playbook, PlaybookRun, Task, TaskStatus
from kizuna.playbooks.runner import run_cycle

pytestmark = pytest.mark.e2e

PASSWORD = "playbooks-browser-password-2026"


def _log_in(page: Any, username: str) -> None:
    page.goto(reverse("core:login"))
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.locator("form:has(input[name=password]) [type=submit]").click()
    page.wait_for_url(re.compile(r"/$"))


def _raise_usage_drop(customer: Customer, *, when: Any, title: str) -> None:
    timeline.record(
        customer_id=customer.pk,
        kind="risk.raised",
        title=title,
        occurred_at=when,
        payload={"signal_id": 1, "kind": "usage_drop", "severity": "high"},
    )


def test_create_simulate_enable_fire_and_complete_the_task(page: Any) -> None:
    User.objects.create_user(username="admin", password=PASSWORD, role=Role.ADMIN)
    kenji = User.objects.create_user(
        username="kenji", password=PASSWORD, role=Role.ADOPTION_CSM, first_name="Kenji"
    )
    acme = Customer.objects.create(
        name="Acme", lifecycle_stage="adoption", touch_model="high", adoption_owner=kenji
    )
    Customer.objects.create(name="Quiet", lifecycle_stage="adoption", adoption_owner=kenji)
    # History for the simulation: Acme's usage fell 20 days ago.
    _raise_usage_drop(acme, when=timezone.now() - timedelta(days=20), title="Usage fell 35%")
    failed: list[str] = []
    page.on(
        "response",
        lambda response: (
            failed.append(f"{response.status} {response.url}")
            if response.status >= 400 and not response.url.endswith("/favicon.ico")
            else None
        ),
    )
    page.on("pageerror", lambda error: failed.append(f"script error: {error}"))

    _log_in(page, "admin")
    page.goto(reverse("playbooks:my-day"))
    page.locator("#tasks-subnav a[href='/tasks/playbooks/']").click()
    page.wait_for_url(re.compile(r"/tasks/playbooks/$"))
    page.locator("#new-playbook").click()
    page.wait_for_url(re.compile(r"/tasks/playbooks/new/$"))

    page.fill("#id_name", "Usage drop check-in")
    page.select_option("select[name='trigger-kind']", "risk.raised")
    page.select_option("select[name='trigger-signal_kind']", "usage_drop")
    page.fill("input[name='a0-title']", "Check in with {customer}")
    page.select_option("select[name='a0-task_type']", "risk")
    page.select_option("select[name='a0-priority']", "3")
    page.select_option("select[name='a0-owner_role']", "adoption")
    page.fill("input[name='a0-due_in_days']", "2")

    # Simulate: the editor comes back (htmx) with what it would have done, nothing saved.
    page.locator("#simulate-playbook").click()
    runs = page.locator("#simulation-runs")
    expect(runs).to_contain_text("Acme")
    expect(runs).to_contain_text("Check in with Acme")
    expect(runs).not_to_contain_text("Quiet")
    assert not Playbook.objects.exists()
    assert not PlaybookRun.objects.exists()
    expect(page.locator("input[name='a0-title']")).to_have_value("Check in with {customer}")

    page.locator("#save-playbook").click()
    page.wait_for_url(re.compile(r"/tasks/playbooks/\d+/$"))
    playbook = Playbook.objects.get()
    assert not playbook.enabled
    page.locator("#enable-playbook").click()
    expect(page.locator("#playbook-head .state-on")).to_be_visible()
    playbook.refresh_from_db()
    assert playbook.is_live

    # A usage-drop signal is raised now; one runner cycle makes one task for Kenji.
    _raise_usage_drop(acme, when=timezone.now(), title="Usage fell 22%")
    result = run_cycle()
    assert (result.runs, result.actions_done) == (1, 1)
    task = Task.objects.get()
    assert (task.owner, task.title, task.due_on is not None) == (kenji, "Check in with Acme", True)
    assert run_cycle().runs == 0  # the same occurrence never fires twice

    page.context.clear_cookies()
    _log_in(page, "kenji")
    page.goto(reverse("playbooks:my-day"))
    row = page.locator(f"#task-row-{task.pk}")
    expect(row).to_contain_text("Check in with Acme")
    expect(row).to_contain_text("Usage drop check-in")
    row.locator("input[name=outcome]").fill("Called: a new admin; training booked.")
    row.locator(f"[data-complete='{task.pk}']").click()
    expect(page.locator(f"#task-row-{task.pk} .task-done")).to_be_visible()

    task.refresh_from_db()
    assert task.status == TaskStatus.DONE
    assert task.outcome == "Called: a new admin; training booked."
    assert TimelineEntry.objects.filter(customer=acme, kind="task.completed").count() == 1
    assert failed == []
