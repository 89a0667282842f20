"""Staff pages of onboarding through HTTP: programs and their versions, a plan's page with its
staged guidance and htmx actions, the Gantt chart and the Customer 360 panel.

``staff``, ``plan_with_phases`` and ``html`` are shared with the board and API tests.
"""

import re
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from kizuna.analytics.metric_defaults import ensure_default_metrics
from kizuna.core.models import TimelineEntry, User
from kizuna.core.roles import Role
from kizuna.customers.models import Customer, SalesHandoff
from kizuna.onboarding.models import (
    CompletionKind,
    FollowUp,
    GoalKind,
    Milestone,
    MilestoneStatus,
    OnboardingPlan,
    OwnerSide,
    Phase,
    PlanStatus,
    Program,
    ProgramVersion,
    Resource,
    ResourceKind,
    SuccessGoal,
    VersionStatus,
)
from kizuna.onboarding.plans import complete_milestone, create_plan
from kizuna.onboarding.programs import create_program
from kizuna.onboarding.tests.test_programs import make_version

# Three phases; "setup" waits on "kickoff"; "training" (phase Train) has the admin manual.
STAGED = [
    {"key": "kickoff", "phase": "Start", "offset": 0},
    {"key": "setup", "phase": "Start", "offset": 7, "after": ["kickoff"]},
    {"key": "tour", "phase": "Start", "offset": 9, "required": False},
    {"key": "training", "phase": "Train", "offset": 14, "after": ["setup"]},
    {"key": "go_live", "phase": "Live", "offset": 30, "after": ["training"]},
]


@pytest.fixture(autouse=True)
def _english(settings: Any) -> None:
    """Assert on English text whatever the Japanese catalog holds."""
    settings.LANGUAGE_CODE = "en"


def html(response: Any) -> str:
    return str(response.content.decode())


def staff(make_user: Callable[..., User], role: str, username: str | None = None) -> Client:
    client = Client()
    client.force_login(make_user(role, username=username or role))
    return client


def plan_with_phases(
    customer_name: str = "Acme", *, start: date | None = None, **customer_fields: Any
) -> OnboardingPlan:
    """A plan of the STAGED program started ``start`` (default: today), with resources."""
    version = ProgramVersion.objects.filter(program__key="staged", status="published").first()
    if version is None:
        version = make_version(STAGED, key="staged", follow_ups=[("Day 7 check-in", 7, "csm")])
        training = version.milestones.get(key="training")
        Resource.objects.create(
            milestone=training, kind=ResourceKind.MANUAL, title="Admin manual",
            url="https://help.example.com/admin",
        )  # fmt: skip
        setup = version.milestones.get(key="setup")
        Resource.objects.create(
            milestone=setup, kind=ResourceKind.VIDEO, title="Setup video",
            url="https://help.example.com/setup",
        )  # fmt: skip
    customer = Customer.objects.create(name=customer_name, **customer_fields)
    return create_plan(customer=customer, version=version, start_date=start or timezone.localdate())


def _pm(plan: OnboardingPlan, key: str) -> Any:
    return plan.milestones.select_related("milestone").get(milestone__key=key)


def _section(page: str, element_id: str) -> str:
    """The HTML of the element with this id, up to the next element of the same tag closing."""
    match = re.search(rf'<(\w+)[^>]*id="{element_id}"', page)
    assert match, f"no element #{element_id}"
    tag = match.group(1)
    start = match.start()
    depth, index = 0, start
    pattern = re.compile(rf"<{tag}\b|</{tag}>")
    for found in pattern.finditer(page, start):
        depth += 1 if found.group(0).startswith(f"<{tag}") else -1
        if depth == 0:
            index = found.end()
            break
    return page[start:index]


# --- Settings → Onboarding programs: who may edit ------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("role", "status"),
    [
        (Role.VIEWER, 403),
        (Role.ADOPTION_CSM, 403),
        (Role.EXPANSION_CSM, 403),
        (Role.ONBOARDING_CSM, 200),
        (Role.CS_MANAGER, 200),
        (Role.ADMIN, 200),
    ],
)
def test_only_roles_that_manage_programs_open_the_programs_tab(
    make_user: Callable[..., User], role: str, status: int
) -> None:
    response = staff(make_user, role).get(reverse("onboarding:programs"))
    assert response.status_code == status


@pytest.mark.django_db
def test_an_adoption_csm_cannot_create_or_edit_a_program(make_user: Callable[..., User]) -> None:
    program = create_program(key="standard", name="Standard")
    draft = program.versions.get()
    client = staff(make_user, Role.ADOPTION_CSM)
    created = client.post(reverse("onboarding:program-create"), {"key": "x", "name": "X"})
    phase = client.post(reverse("onboarding:phase-add", args=[draft.pk]), {"name": "Start"})
    assert (created.status_code, phase.status_code) == (403, 403)
    assert Program.objects.count() == 1
    assert not Phase.objects.exists()


@pytest.mark.django_db
def test_the_programs_list_shows_published_version_and_plans_count(
    make_user: Callable[..., User],
) -> None:
    plan_with_phases("Acme")
    plan_with_phases("Beta")
    create_program(key="tech", name="Tech touch", touch_model="tech")
    page = html(staff(make_user, Role.ONBOARDING_CSM).get(reverse("onboarding:programs")))
    staged = _section(page, "program-staged")
    tech = _section(page, "program-tech")
    assert "data-published>v1<" in staged.replace(" ", "") or "v1" in staged
    assert re.search(r"data-plans>2<", staged)
    assert "Tech touch" in tech
    assert "none" in tech
    assert re.search(r"data-plans>0<", tech)
    assert "draft v1" in tech


# --- Creating a program and editing its draft ----------------------------------------------------


@pytest.mark.django_db
def test_an_onboarding_csm_creates_a_program_and_lands_on_its_draft(
    make_user: Callable[..., User],
) -> None:
    client = staff(make_user, Role.ONBOARDING_CSM)
    response = client.post(
        reverse("onboarding:program-create"),
        {"key": "high-touch", "name": "High touch", "touch_model": "high", "segment_key": "",
         "priority": 10, "target_days": 45, "description": ""},
    )  # fmt: skip
    program = Program.objects.get(key="high-touch")
    draft = program.versions.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("onboarding:program-version", args=[draft.pk])
    assert (program.touch_model, program.priority, draft.target_days) == ("high", 10, 45)
    assert draft.status == VersionStatus.DRAFT


@pytest.mark.django_db
def test_a_program_with_bad_fields_is_refused_with_the_fields_named(
    make_user: Callable[..., User],
) -> None:
    create_program(key="standard", name="Standard")
    client = staff(make_user, Role.ONBOARDING_CSM)
    response = client.post(
        reverse("onboarding:program-create"),
        {"key": "standard", "name": " ", "priority": 1, "target_days": 0},
    )
    page = html(response)
    assert response.status_code == 400
    assert Program.objects.count() == 1
    assert re.search(r'has-error">\s*<label for="id_key"', page)
    assert re.search(r'has-error">\s*<label for="id_name"', page)
    assert re.search(r'has-error">\s*<label for="id_target_days"', page)


@pytest.mark.django_db
def test_phases_are_added_renamed_and_reordered_in_a_draft(
    make_user: Callable[..., User],
) -> None:
    draft = create_program(key="standard", name="Standard").versions.get()
    client = staff(make_user, Role.ONBOARDING_CSM)
    for name in ("Kickoff", "Setup", "Go-live"):
        assert (
            client.post(
                reverse("onboarding:phase-add", args=[draft.pk]), {"name": name}
            ).status_code
            == 302
        )
    setup = draft.phases.get(name="Setup")
    client.post(
        reverse("onboarding:phase-edit", args=[draft.pk, setup.pk]), {"name": "Configuration"}
    )
    client.post(reverse("onboarding:phase-edit", args=[draft.pk, setup.pk]), {"move": "up"})
    empty = client.post(reverse("onboarding:phase-edit", args=[draft.pk, setup.pk]), {"name": "  "})
    assert list(draft.phases.order_by("position").values_list("name", flat=True)) == [
        "Configuration", "Kickoff", "Go-live",
    ]  # fmt: skip
    assert empty.status_code == 400
    assert "Give the phase a name." in html(empty)


def _milestone_data(phase: Phase, **fields: Any) -> dict[str, Any]:
    data = {
        "key": "first-record", "name": "First attendance record", "description": "",
        "phase": phase.pk, "owner_side": OwnerSide.CUSTOMER, "due_offset_days": 14,
        "required": "on", "position": 0, "completion_kind": CompletionKind.MANUAL,
        "event_type": "", "metric": "", "op": ">=", "threshold": "",
    }  # fmt: skip
    data.update(fields)
    return {key: value for key, value in data.items() if value is not None}


@pytest.mark.django_db
def test_a_milestone_with_an_automatic_rule_is_saved_with_its_rule(
    make_user: Callable[..., User],
) -> None:
    draft = create_program(key="standard", name="Standard").versions.get()
    phase = Phase.objects.create(version=draft, name="Use", position=0)
    client = staff(make_user, Role.ONBOARDING_CSM)
    response = client.post(
        reverse("onboarding:milestone-add", args=[draft.pk]),
        _milestone_data(
            phase, completion_kind=CompletionKind.FIRST_EVENT, event_type="attendance.registered"
        ),
    )
    milestone = draft.milestones.get()
    assert response.status_code == 302
    assert (milestone.completion_kind, milestone.completion) == (
        CompletionKind.FIRST_EVENT,
        {"event_type": "attendance.registered"},
    )
    assert (milestone.owner_side, milestone.due_offset_days, milestone.required) == (
        OwnerSide.CUSTOMER, 14, True,
    )  # fmt: skip


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        (
            {"completion_kind": "first_event"},
            "event_type",
            "Give the event type that completes it.",
        ),
        (
            {"completion_kind": "metric", "metric": "active_users_28d"},
            "threshold",
            "Give the threshold",
        ),
        (
            {"completion_kind": "metric", "metric": "nope", "threshold": "0.8"},
            "metric",
            "Select a valid choice",
        ),
        ({"key": "Bad Key"}, "key", "slug"),
        ({"due_offset_days": "-3"}, "due_offset_days", "greater than or equal to 0"),
    ],
)
def test_a_bad_milestone_is_refused_naming_the_field(
    make_user: Callable[..., User], fields: dict[str, Any], field: str, message: str
) -> None:
    ensure_default_metrics()
    draft = create_program(key="standard", name="Standard").versions.get()
    phase = Phase.objects.create(version=draft, name="Use", position=0)
    client = staff(make_user, Role.ONBOARDING_CSM)
    response = client.post(
        reverse("onboarding:milestone-add", args=[draft.pk]), _milestone_data(phase, **fields)
    )
    page = html(response)
    assert response.status_code == 400
    assert not draft.milestones.exists()
    row = page[page.index(f'for="id_{field}"') :]
    row = row[: row.index('<div class="form-row')] if '<div class="form-row' in row else row
    assert message in row


@pytest.mark.django_db
def test_dependencies_that_would_loop_are_refused(make_user: Callable[..., User]) -> None:
    draft = create_program(key="standard", name="Standard").versions.get()
    phase = Phase.objects.create(version=draft, name="Start", position=0)
    first = Milestone.objects.create(
        version=draft, phase=phase, key="a", name="A", due_offset_days=1
    )
    second = Milestone.objects.create(
        version=draft, phase=phase, key="b", name="B", due_offset_days=2
    )
    second.depends_on.set([first])
    client = staff(make_user, Role.ONBOARDING_CSM)
    response = client.post(
        reverse("onboarding:milestone-edit", args=[draft.pk, first.pk]),
        _milestone_data(phase, key="a", name="A", due_offset_days=5, depends_on=[second.pk]),
    )
    assert response.status_code == 400
    assert "make a loop" in html(response)
    assert list(first.depends_on.all()) == []


@pytest.mark.django_db
def test_resources_and_follow_ups_are_added_to_a_draft_and_bad_links_refused(
    make_user: Callable[..., User],
) -> None:
    draft = create_program(key="standard", name="Standard").versions.get()
    phase = Phase.objects.create(version=draft, name="Start", position=0)
    milestone = Milestone.objects.create(version=draft, phase=phase, key="a", name="A")
    client = staff(make_user, Role.ONBOARDING_CSM)
    url = reverse("onboarding:resource-add", args=[draft.pk, milestone.pk])
    good = client.post(
        url,
        {"kind": "video", "title": "Setup video", "url": "https://example.com/v", "language": "ja"},
    )
    bad = client.post(
        url, {"kind": "video", "title": "Evil", "url": "javascript:alert(1)", "language": ""}
    )
    follow_up = client.post(
        reverse("onboarding:follow-up-add", args=[draft.pk]),
        {"name": "Day 30 review", "day_offset": 30, "owner_side": "csm", "description": ""},
    )
    assert (good.status_code, bad.status_code, follow_up.status_code) == (302, 400, 302)
    assert list(milestone.resources.values_list("title", "language")) == [("Setup video", "ja")]
    assert list(FollowUp.objects.values_list("name", "day_offset")) == [("Day 30 review", 30)]


@pytest.mark.django_db
def test_publishing_shows_what_is_wrong_then_publishes(make_user: Callable[..., User]) -> None:
    draft = create_program(key="standard", name="Standard").versions.get()
    client = staff(make_user, Role.ONBOARDING_CSM)
    refused = client.post(reverse("onboarding:version-publish", args=[draft.pk]))
    assert refused.status_code == 400
    assert "The version has no milestone." in _section(html(refused), "publish-errors")
    phase = Phase.objects.create(version=draft, name="Start", position=0)
    Milestone.objects.create(version=draft, phase=phase, key="kickoff", name="Kickoff")
    published = client.post(reverse("onboarding:version-publish", args=[draft.pk]))
    draft.refresh_from_db()
    assert published.status_code == 302
    assert draft.status == VersionStatus.PUBLISHED


@pytest.mark.django_db
def test_a_published_version_is_read_only_and_changes_go_to_a_new_version_with_a_note(
    make_user: Callable[..., User],
) -> None:
    version = make_version(STAGED, key="staged")
    client = staff(make_user, Role.ONBOARDING_CSM)
    page = html(client.get(reverse("onboarding:program-version", args=[version.pk])))
    refused = client.post(reverse("onboarding:phase-add", args=[version.pk]), {"name": "Extra"})
    assert 'id="read-only"' in page
    assert 'id="phase-add"' not in page
    assert refused.status_code == 409
    assert not version.phases.filter(name="Extra").exists()

    missing_note = client.post(
        reverse("onboarding:version-new", args=[version.program_id]), {"change_note": " "}
    )
    assert missing_note.status_code == 400
    assert "Say what changes in this version." in html(missing_note)
    made = client.post(
        reverse("onboarding:version-new", args=[version.program_id]),
        {"change_note": "Training before setup"},
    )
    draft = ProgramVersion.objects.get(program=version.program, number=2)
    assert made["Location"] == reverse("onboarding:program-version", args=[draft.pk])
    assert (draft.status, draft.change_note) == (VersionStatus.DRAFT, "Training before setup")
    assert sorted(draft.milestones.values_list("key", flat=True)) == sorted(
        s["key"] for s in STAGED
    )


# --- A plan's page -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_viewer_reads_a_plan_but_sees_no_actions_and_cannot_post(
    make_user: Callable[..., User],
) -> None:
    plan = plan_with_phases()
    client = staff(make_user, Role.VIEWER)
    page = html(client.get(reverse("onboarding:plan", args=[plan.pk])))
    pm = _pm(plan, "kickoff")
    posted = client.post(
        reverse("onboarding:milestone-status", args=[plan.pk, pm.pk]), {"status": "done"}
    )
    assert "Onboarding of Acme" in page
    assert 'data-action="done"' not in page
    assert posted.status_code == 403
    assert _pm(plan, "kickoff").status != MilestoneStatus.DONE


@pytest.mark.django_db
def test_the_plan_page_shows_only_the_current_phases_next_actions_prominently(
    make_user: Callable[..., User],
) -> None:
    plan = plan_with_phases()
    complete_milestone(_pm(plan, "kickoff"), via="staff")
    page = html(
        staff(make_user, Role.ONBOARDING_CSM).get(reverse("onboarding:plan", args=[plan.pk]))
    )
    next_steps = _section(page, "next-actions")
    # Current phase "Start": setup (kickoff is done) and the optional tour are the next steps,
    # with setup's video; training (phase Train) and its manual are not shown here.
    assert re.findall(r'data-next-action="([\w-]+)"', next_steps) == ["setup", "tour"]
    assert "Start" in next_steps
    assert "Setup video" in next_steps
    assert "Admin manual" not in next_steps
    assert "training" not in next_steps
    phases = re.findall(
        r'<details class="phase-block (\w+)" id="phase-\d+" data-phase-state="\w+"( open)?', page
    )
    assert phases == [("current", " open"), ("later", ""), ("later", "")]


@pytest.mark.django_db
def test_a_finished_phase_is_collapsed_and_the_next_phase_becomes_current(
    make_user: Callable[..., User],
) -> None:
    plan = plan_with_phases()
    complete_milestone(_pm(plan, "kickoff"), via="staff")
    complete_milestone(_pm(plan, "setup"), via="staff")
    page = html(
        staff(make_user, Role.ONBOARDING_CSM).get(reverse("onboarding:plan", args=[plan.pk]))
    )
    next_steps = _section(page, "next-actions")
    # Phase Start has no open required milestone left: Train is current.
    assert re.findall(r'data-next-action="([\w-]+)"', next_steps) == ["training"]
    assert "Admin manual" in next_steps
    phases = re.findall(r'data-phase-state="(\w+)"( open)?', page)
    assert phases == [("done", ""), ("current", " open"), ("later", "")]


@pytest.mark.django_db
def test_completing_a_milestone_by_htmx_answers_the_main_section_with_new_progress(
    make_user: Callable[..., User], django_capture_on_commit_callbacks: Any
) -> None:
    plan = plan_with_phases()
    pm = _pm(plan, "kickoff")
    with django_capture_on_commit_callbacks(execute=True):
        response = staff(make_user, Role.ONBOARDING_CSM).post(
            reverse("onboarding:milestone-status", args=[plan.pk, pm.pk]),
            {"status": "done"},
            headers={"HX-Request": "true"},
        )
    page = html(response)
    assert response.status_code == 200
    assert page.lstrip().startswith('<div id="plan-main">')
    assert "<html" not in page
    assert "1 of 4 required milestones (25%)" in page
    pm.refresh_from_db()
    assert (pm.status, pm.completed_via) == (MilestoneStatus.DONE, "staff")
    assert TimelineEntry.objects.filter(
        kind="onboarding.milestone", customer=plan.customer
    ).exists()


@pytest.mark.django_db
def test_blocking_needs_a_reason_and_a_required_milestone_cannot_be_skipped(
    make_user: Callable[..., User],
) -> None:
    plan = plan_with_phases()
    client = staff(make_user, Role.ONBOARDING_CSM)
    pm = _pm(plan, "setup")
    url = reverse("onboarding:milestone-status", args=[plan.pk, pm.pk])
    no_reason = client.post(url, {"status": "blocked", "reason": " "})
    by_htmx = client.post(url, {"status": "blocked"}, headers={"HX-Request": "true"})
    skip_required = client.post(url, {"status": "skipped", "reason": "Not needed"})
    unknown = client.post(url, {"status": "exploded"})
    assert no_reason.status_code == 400
    assert "Reason: Say why" in _section(html(no_reason), f"pm-{pm.pk}")
    assert by_htmx.status_code == 200
    assert "Reason: Say why" in html(by_htmx)
    assert skip_required.status_code == 400
    assert "A required milestone cannot be skipped." in html(skip_required)
    assert unknown.status_code == 400
    assert _pm(plan, "setup").status != MilestoneStatus.BLOCKED

    blocked = client.post(url, {"status": "blocked", "reason": "Waiting for SSO"})
    tour = _pm(plan, "tour")
    skipped = client.post(
        reverse("onboarding:milestone-status", args=[plan.pk, tour.pk]),
        {"status": "skipped", "reason": "Customer knows the product"},
    )
    assert (blocked.status_code, skipped.status_code) == (302, 302)
    setup, tour = _pm(plan, "setup"), _pm(plan, "tour")
    assert (setup.status, setup.blocked_reason) == (MilestoneStatus.BLOCKED, "Waiting for SSO")
    assert (tour.status, tour.skipped_reason) == (
        MilestoneStatus.SKIPPED,
        "Customer knows the product",
    )
    reopened = client.post(url, {"status": "not_started"})
    assert reopened.status_code == 302
    assert _pm(plan, "setup").blocked_reason == ""


@pytest.mark.django_db
def test_a_milestone_of_another_plan_is_not_found(make_user: Callable[..., User]) -> None:
    mine, other = plan_with_phases("Acme"), plan_with_phases("Beta")
    response = staff(make_user, Role.ONBOARDING_CSM).post(
        reverse("onboarding:milestone-status", args=[mine.pk, _pm(other, "kickoff").pk]),
        {"status": "done"},
    )
    assert response.status_code == 404


@pytest.mark.django_db
def test_this_week_lists_what_is_due_by_sunday_including_late_items(
    make_user: Callable[..., User],
) -> None:
    today = timezone.localdate()
    plan = plan_with_phases(start=today - timedelta(days=8))  # kickoff late, setup ~ this week
    page = html(
        staff(make_user, Role.ONBOARDING_CSM).get(reverse("onboarding:plan", args=[plan.pk]))
    )
    week = _section(page, "this-week")
    sunday = today + timedelta(days=6 - today.weekday())
    expected = [
        pm.pk
        for pm in plan.milestones.order_by("due_date", "id")
        if pm.due_date <= sunday and pm.status not in ("done", "skipped")
    ]
    assert [int(pk) for pk in re.findall(r'data-week-milestone="(\d+)"', week)] == expected
    assert _pm(plan, "kickoff").pk in expected  # due 8 days ago, still open
    task = plan.tasks.get()
    assert (f'data-week-task="{task.pk}"' in week) == (task.due_date <= sunday)


@pytest.mark.django_db
def test_a_follow_up_is_marked_done_with_its_outcome(make_user: Callable[..., User]) -> None:
    plan = plan_with_phases()
    task = plan.tasks.get()
    client = staff(make_user, Role.ONBOARDING_CSM)
    url = reverse("onboarding:task-done", args=[plan.pk, task.pk])
    empty = client.post(url, {"outcome": "  "})
    done = client.post(url, {"outcome": "Admins trained; SSO next week"})
    again = client.post(url, {"outcome": "twice"})
    task.refresh_from_db()
    assert (empty.status_code, done.status_code, again.status_code) == (400, 302, 400)
    assert "Outcome: Write the outcome" in html(empty)
    assert (task.done_on, task.outcome) == (timezone.localdate(), "Admins trained; SSO next week")


@pytest.mark.django_db
def test_goals_are_added_checked_off_and_bad_goals_refused(make_user: Callable[..., User]) -> None:
    ensure_default_metrics()
    plan = plan_with_phases()
    client = staff(make_user, Role.ONBOARDING_CSM)
    due = (timezone.localdate() + timedelta(days=30)).isoformat()
    url = reverse("onboarding:goal-add", args=[plan.pk])
    no_metric = client.post(
        url,
        {
            "title": "80% of staff clock in",
            "kind": "metric",
            "op": ">=",
            "target": "0.8",
            "due_date": due,
        },
    )
    no_items = client.post(
        url, {"title": "Payroll export", "kind": "checklist", "checklist": "\n ", "due_date": due}
    )
    assert (no_metric.status_code, no_items.status_code) == (400, 400)
    assert "Choose the metric that measures the goal." in html(no_metric)
    assert "Write at least one checklist item." in html(no_items)
    assert not SuccessGoal.objects.exists()

    added = client.post(
        url,
        {
            "title": "Payroll export",
            "kind": "checklist",
            "checklist": "Export March\nCheck totals",
            "due_date": due,
        },
    )
    goal = SuccessGoal.objects.get()
    assert added.status_code == 302
    assert (goal.plan_id, goal.kind, [item["text"] for item in goal.checklist]) == (
        plan.pk, GoalKind.CHECKLIST, ["Export March", "Check totals"],
    )  # fmt: skip
    tick = reverse("onboarding:goal-tick", args=[plan.pk, goal.pk])
    client.post(tick, {"item": 0, "done": "1"})
    client.post(tick, {"item": 1, "done": "1"})
    goal.refresh_from_db()
    assert [item["done"] for item in goal.checklist] == [True, True]
    assert goal.status == "achieved"


@pytest.mark.django_db
def test_the_kickoff_form_starts_from_the_sales_handoff_and_is_shown_once_saved(
    make_user: Callable[..., User], django_capture_on_commit_callbacks: Any
) -> None:
    plan = plan_with_phases()
    SalesHandoff.objects.create(
        customer=plan.customer, desired_outcomes="Cut payroll time in half",
        pains="Paper timesheets", stakeholders="HR head 山田",
    )  # fmt: skip
    client = staff(make_user, Role.ONBOARDING_CSM)
    page = html(client.get(reverse("onboarding:plan", args=[plan.pk])))
    assert 'id="kickoff-empty"' in page
    assert "Cut payroll time in half</textarea>" in page
    assert "Paper timesheets</textarea>" in page
    bad = client.post(
        reverse("onboarding:kickoff", args=[plan.pk]),
        {"it_literacy": "expert", "kickoff_on": "soon"},
    )
    assert bad.status_code == 400
    assert re.search(r'has-error">\s*<label for="id_it_literacy"', html(bad))
    assert re.search(r'has-error">\s*<label for="id_kickoff_on"', html(bad))
    with django_capture_on_commit_callbacks(execute=True):
        saved = client.post(
            reverse("onboarding:kickoff", args=[plan.pk]),
            {"kickoff_on": "2026-11-10", "desired_outcomes": "Cut payroll time in half",
             "current_issues": "Paper timesheets", "stakeholders": "HR head 山田",
             "it_literacy": "low", "kickoff_notes": "Needs on-site training"},
        )  # fmt: skip
    assert saved.status_code == 302
    record = _section(
        html(client.get(reverse("onboarding:plan", args=[plan.pk]))), "kickoff-record"
    )
    assert "2026-11-10" in record
    assert "Low" in record
    assert "Needs on-site training" in record
    assert TimelineEntry.objects.filter(kind="onboarding.kickoff").count() == 1


@pytest.mark.django_db
def test_cancelling_a_plan_needs_a_reason(
    make_user: Callable[..., User], django_capture_on_commit_callbacks: Any
) -> None:
    plan = plan_with_phases()
    client = staff(make_user, Role.ONBOARDING_CSM)
    refused = client.post(reverse("onboarding:plan-cancel", args=[plan.pk]), {"reason": ""})
    with django_capture_on_commit_callbacks(execute=True):
        done = client.post(
            reverse("onboarding:plan-cancel", args=[plan.pk]), {"reason": "Contract ended"}
        )
    plan.refresh_from_db()
    assert (refused.status_code, done.status_code) == (400, 302)
    assert plan.status == PlanStatus.CANCELLED
    assert TimelineEntry.objects.get(kind="onboarding.cancelled").body == "Contract ended"


@pytest.mark.django_db
def test_the_plan_page_includes_the_customer_links_panel(make_user: Callable[..., User]) -> None:
    plan = plan_with_phases()
    page = html(staff(make_user, Role.VIEWER).get(reverse("onboarding:plan", args=[plan.pk])))
    assert f'hx-get="{reverse("onboarding:plan-links", args=[plan.pk])}"' in page


@pytest.mark.django_db
def test_an_unknown_plan_is_not_found(make_user: Callable[..., User]) -> None:
    client = staff(make_user, Role.VIEWER)
    assert client.get(reverse("onboarding:plan", args=[999])).status_code == 404
    assert client.get(reverse("onboarding:plan-gantt", args=[999])).status_code == 404


# --- Gantt ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_gantt_draws_one_bar_per_milestone_coloured_by_status_with_today(
    make_user: Callable[..., User],
) -> None:
    today = timezone.localdate()
    plan = plan_with_phases(start=today - timedelta(days=10))
    complete_milestone(_pm(plan, "kickoff"), via="staff")
    page = html(staff(make_user, Role.VIEWER).get(reverse("onboarding:plan-gantt", args=[plan.pk])))
    svg = _section(page, "gantt")
    bars = re.findall(r'<g data-bar="(\w+)">', svg)
    setup_due = _pm(plan, "setup").due_date
    assert len(bars) == 5
    assert bars[0] == "done"  # kickoff, first of phase Start
    assert bars[1] == ("overdue" if setup_due < today else "in_progress")  # setup
    assert 'id="gantt-today"' in svg
    assert svg.count('class="phase-label"') == 3


@pytest.mark.django_db
def test_gantt_geometry_spans_from_start_to_due_and_places_today() -> None:
    from kizuna.onboarding.selectors import (
        GANTT_CHART_WIDTH,
        GANTT_LABEL_WIDTH,
        gantt,
        plan_milestones,
    )

    today = timezone.localdate()
    plan = plan_with_phases(start=today)
    chart = gantt(plan, plan_milestones(plan), today)
    days = (chart.end - chart.start).days + 1
    kickoff, setup = chart.bars[0], chart.bars[1]
    assert chart.start == plan.start_date
    assert chart.today_x == GANTT_LABEL_WIDTH
    # setup depends on kickoff: its bar starts at kickoff's due date, ends at its own due date.
    assert setup.start == _pm(plan, "kickoff").due_date
    assert setup.end == _pm(plan, "setup").due_date
    scale = GANTT_CHART_WIDTH / days
    assert setup.x == round(GANTT_LABEL_WIDTH + (setup.start - chart.start).days * scale, 1)
    assert kickoff.x == GANTT_LABEL_WIDTH


# --- Customer 360 panel --------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_panel_offers_to_create_a_plan_to_csms_only(make_user: Callable[..., User]) -> None:
    customer = Customer.objects.create(name="Acme")
    url = reverse("onboarding:customer-onboarding", args=[customer.pk])
    csm_panel = html(staff(make_user, Role.ONBOARDING_CSM).get(url, headers={"HX-Request": "true"}))
    viewer_panel = html(staff(make_user, Role.VIEWER).get(url, headers={"HX-Request": "true"}))
    assert 'id="plan-create"' in csm_panel
    assert "<html" not in csm_panel
    assert 'id="plan-create"' not in viewer_panel
    assert 'id="no-plan"' in viewer_panel


@pytest.mark.django_db
def test_a_plan_is_created_from_the_panel_with_a_chosen_program_or_the_automatic_pick(
    make_user: Callable[..., User],
) -> None:
    version = make_version(STAGED, key="staged", touch_model="high")
    acme = Customer.objects.create(name="Acme", touch_model="high")
    tech = Customer.objects.create(name="Tiny", touch_model="tech")
    client = staff(make_user, Role.ONBOARDING_CSM)
    chosen = client.post(
        reverse("onboarding:plan-create", args=[acme.pk]),
        {"program": version.pk, "start_date": "2026-11-02"},
    )
    plan = OnboardingPlan.objects.get(customer=acme)
    assert chosen["Location"] == reverse("onboarding:plan", args=[plan.pk])
    assert (plan.version_id, plan.start_date) == (version.pk, date(2026, 11, 2))
    # Nothing fits a tech-touch customer: the form says so.
    refused = client.post(
        reverse("onboarding:plan-create", args=[tech.pk]),
        {"program": "", "start_date": "2026-11-02"},
    )
    assert refused.status_code == 400
    assert "No published onboarding program fits this customer" in html(refused)
    bad_date = client.post(
        reverse("onboarding:plan-create", args=[tech.pk]), {"start_date": "tomorrow"}
    )
    assert bad_date.status_code == 400
    assert "Enter a valid date." in html(bad_date)
    by_htmx = client.post(
        reverse("onboarding:plan-create", args=[acme.pk]),
        {"program": version.pk, "start_date": "2026-11-03"},
        headers={"HX-Request": "true"},
    )
    assert by_htmx.status_code == 200  # already has an open plan: the panel shows why
    assert "already has an open onboarding plan" in html(by_htmx)


@pytest.mark.django_db
def test_the_panel_shows_the_open_plans_progress_next_steps_and_goals(
    make_user: Callable[..., User],
) -> None:
    plan = plan_with_phases()
    complete_milestone(_pm(plan, "kickoff"), via="staff")
    SuccessGoal.objects.create(
        customer=plan.customer, plan=plan, title="Payroll in one day", kind=GoalKind.CHECKLIST,
        checklist=[{"text": "Export", "done": False}], due_date=timezone.localdate(),
    )  # fmt: skip
    panel = html(
        staff(make_user, Role.VIEWER).get(
            reverse("onboarding:customer-onboarding", args=[plan.customer_id]),
            headers={"HX-Request": "true"},
        )
    )
    assert "1 of 4 required milestones (25%)" in panel
    assert re.findall(r'data-next-action="([\w-]+)"', panel) == ["setup", "tour"]
    assert "Payroll in one day" in panel
    assert 'id="plan-create"' not in panel


@pytest.mark.django_db
def test_the_board_is_the_onboarding_area_in_the_navigation(make_user: Callable[..., User]) -> None:
    page = html(staff(make_user, Role.VIEWER).get(reverse("onboarding:board")))
    assert re.search(
        r'<a href="/onboarding/" class="current" aria-current="page">Onboarding</a>', page
    )


@pytest.mark.django_db
def test_pages_need_a_login(client: Client) -> None:
    plan = plan_with_phases()
    for url in (
        reverse("onboarding:board"),
        reverse("onboarding:plan", args=[plan.pk]),
        reverse("onboarding:programs"),
        reverse("onboarding:customer-onboarding", args=[plan.customer_id]),
    ):
        response = client.get(url)
        assert response.status_code == 302
        assert "/login" in response["Location"]


@pytest.mark.django_db
def test_every_staff_page_renders_in_japanese(make_user: Callable[..., User]) -> None:
    plan = plan_with_phases("株式会社アクメ")
    complete_milestone(_pm(plan, "kickoff"), via="staff")
    client = staff(make_user, Role.ONBOARDING_CSM)
    urls = [
        reverse("onboarding:board"),
        reverse("onboarding:plan", args=[plan.pk]),
        reverse("onboarding:plan-gantt", args=[plan.pk]),
        reverse("onboarding:customer-onboarding", args=[plan.customer_id]),
        reverse("onboarding:programs"),
        reverse("onboarding:program", args=[plan.version.program_id]),
        reverse("onboarding:program-version", args=[plan.version_id]),
        reverse(
            "onboarding:milestone-edit", args=[plan.version_id, _pm(plan, "setup").milestone_id]
        ),
    ]
    for url in urls:
        response = client.get(url, headers={"Accept-Language": "ja"})
        assert response.status_code == 200, url
        assert '<html lang="ja">' in html(response) or "<html" not in html(response)


@pytest.mark.django_db
def test_a_program_is_retargeted_and_draft_content_deleted(make_user: Callable[..., User]) -> None:
    program = create_program(key="standard", name="Standard")
    draft = program.versions.get()
    phase = Phase.objects.create(version=draft, name="Start", position=0)
    milestone = Milestone.objects.create(version=draft, phase=phase, key="a", name="A")
    resource = Resource.objects.create(
        milestone=milestone, kind=ResourceKind.LINK, title="Doc", url="https://example.com"
    )
    follow_up = FollowUp.objects.create(version=draft, name="Check-in", day_offset=7)
    client = staff(make_user, Role.ONBOARDING_CSM)
    saved = client.post(
        reverse("onboarding:program", args=[program.pk]),
        {"name": "Standard", "description": "", "touch_model": "low", "segment_key": "smb",
         "priority": 5, "is_active": "on"},
    )  # fmt: skip
    program.refresh_from_db()
    assert saved.status_code == 302
    assert (program.touch_model, program.segment_key, program.priority) == ("low", "smb", 5)
    not_empty = client.post(
        reverse("onboarding:phase-edit", args=[draft.pk, phase.pk]), {"delete": "1"}
    )
    assert not_empty.status_code == 302
    assert Phase.objects.filter(pk=phase.pk).exists()  # it still holds a milestone
    client.post(reverse("onboarding:resource-delete", args=[draft.pk, resource.pk]))
    client.post(reverse("onboarding:milestone-delete", args=[draft.pk, milestone.pk]))
    client.post(reverse("onboarding:follow-up-delete", args=[draft.pk, follow_up.pk]))
    client.post(reverse("onboarding:phase-edit", args=[draft.pk, phase.pk]), {"delete": "1"})
    assert not Resource.objects.exists()
    assert not Milestone.objects.exists()
    assert not FollowUp.objects.exists()
    assert not Phase.objects.exists()
