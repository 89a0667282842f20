"""The onboarding board: filters, risk order, progress, pagination and bulk actions, on plans
made by hand (statuses set directly, so the expected order is known)."""

import csv
import io
import re
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from kizuna.core.models import TimelineEntry, User
from kizuna.core.roles import Role
from kizuna.customers.models import Customer
from kizuna.onboarding.models import (
    MilestoneStatus,
    OnboardingPlan,
    OnboardingSettings,
    PlanMilestone,
    PlanStatus,
    ProgramVersion,
)
from kizuna.onboarding.selectors import UNASSIGNED, BoardFilters, board_plans, days_overdue
from kizuna.onboarding.tests.test_programs import make_version
from kizuna.onboarding.tests.test_views import html, staff

TODAY = date(2026, 11, 18)  # a Wednesday
BOARD = reverse("onboarding:board")
BULK = reverse("onboarding:board-bulk")
# Three required milestones and one optional one.
SPECS = [
    {"key": "kickoff", "offset": 1},
    {"key": "setup", "offset": 7},
    {"key": "go_live", "offset": 30},
    {"key": "tour", "offset": 10, "required": False},
]


@pytest.fixture(autouse=True)
def _english_and_today(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.LANGUAGE_CODE = "en"
    monkeypatch.setattr(timezone, "localdate", lambda *args, **kwargs: TODAY)


@pytest.fixture
def version(db: None) -> ProgramVersion:
    return make_version(SPECS, key="standard")


def make_plan(
    version: ProgramVersion,
    name: str,
    status: str,
    *,
    due: dict[str, date] | None = None,
    done: tuple[str, ...] = (),
    owner: User | None = None,
    touch_model: str = "high",
) -> OnboardingPlan:
    """A plan with the given status; milestones due on ``due`` (default far ahead), ``done`` done."""
    customer = Customer.objects.create(name=name, onboarding_owner=owner, touch_model=touch_model)
    plan = OnboardingPlan.objects.create(
        customer=customer,
        version=version,
        start_date=TODAY - timedelta(days=20),
        target_date=TODAY + timedelta(days=40),
        status=status,
        completed_on=TODAY if status == PlanStatus.COMPLETED else None,
        cancelled_at=timezone.now() if status == PlanStatus.CANCELLED else None,
    )
    for milestone in version.milestones.all():
        is_done = milestone.key in done
        PlanMilestone.objects.create(
            plan=plan,
            milestone=milestone,
            due_date=(due or {}).get(milestone.key, TODAY + timedelta(days=60)),
            status=MilestoneStatus.DONE if is_done else MilestoneStatus.IN_PROGRESS,
            completed_on=TODAY if is_done else None,
        )
    return plan


def _order(client: Client, query: str = "") -> list[str]:
    page = html(client.get(BOARD + query))
    ids = [int(pk) for pk in re.findall(r'<tr data-plan="(\d+)"', page)]
    names = dict(OnboardingPlan.objects.filter(pk__in=ids).values_list("pk", "customer__name"))
    return [names[pk] for pk in ids]


@pytest.mark.django_db
def test_the_board_lists_plans_by_risk_then_days_overdue(
    version: ProgramVersion, make_user: Callable[..., User]
) -> None:
    make_plan(version, "On track", PlanStatus.ON_TRACK)
    make_plan(version, "Late 3 days", PlanStatus.OVERDUE, due={"setup": TODAY - timedelta(days=3)})
    make_plan(version, "Done", PlanStatus.COMPLETED, done=("kickoff", "setup", "go_live", "tour"))
    make_plan(version, "At risk", PlanStatus.AT_RISK, due={"setup": TODAY + timedelta(days=1)})
    make_plan(
        version, "Late 10 days", PlanStatus.OVERDUE, due={"kickoff": TODAY - timedelta(days=10)}
    )
    make_plan(version, "Cancelled", PlanStatus.CANCELLED)
    client = staff(make_user, Role.VIEWER)
    assert _order(client) == ["Late 10 days", "Late 3 days", "At risk", "On track", "Done"]
    page = html(client.get(BOARD))
    assert re.search(r'data-days-overdue="10">10 days late<', page)
    assert re.search(r'data-days-overdue="3">3 days late<', page)


@pytest.mark.django_db
def test_progress_counts_required_milestones_done_over_required_ones(
    version: ProgramVersion, make_user: Callable[..., User]
) -> None:
    plan = make_plan(version, "Acme", PlanStatus.ON_TRACK, done=("kickoff", "setup", "tour"))
    row = board_plans(BoardFilters()).get(pk=plan.pk)
    assert (row.required_done, row.required_total) == (2, 3)  # type: ignore[attr-defined]
    page = html(staff(make_user, Role.VIEWER).get(BOARD))
    assert '<progress class="plan-progress" max="3" value="2">' in page
    assert "<span data-progress>2/3</span>" in page


@pytest.mark.django_db
def test_next_due_is_the_earliest_open_milestone(
    version: ProgramVersion, make_user: Callable[..., User]
) -> None:
    make_plan(
        version, "Acme", PlanStatus.ON_TRACK, done=("kickoff",),
        due={"kickoff": TODAY - timedelta(days=5), "setup": TODAY + timedelta(days=2)},
    )  # fmt: skip
    row = board_plans(BoardFilters()).get()
    assert row.next_due == TODAY + timedelta(days=2)  # type: ignore[attr-defined] # the done one does not count


@pytest.mark.django_db
def test_the_board_filters_by_owner_program_version_status_and_touch_model(
    version: ProgramVersion, make_user: Callable[..., User]
) -> None:
    sato = make_user(Role.ONBOARDING_CSM, username="sato")
    other_version = make_version([{"key": "kickoff"}], key="tech")
    make_plan(version, "Sato high", PlanStatus.ON_TRACK, owner=sato)
    make_plan(version, "Nobody low", PlanStatus.AT_RISK, touch_model="low")
    make_plan(other_version, "Tech", PlanStatus.OVERDUE, touch_model="tech")
    make_plan(version, "Sato cancelled", PlanStatus.CANCELLED, owner=sato)
    client = staff(make_user, Role.VIEWER)
    assert _order(client, f"?owner={sato.pk}") == ["Sato high"]
    assert _order(client, f"?owner={UNASSIGNED}") == ["Tech", "Nobody low"]
    assert _order(client, f"?program={version.program_id}") == ["Nobody low", "Sato high"]
    assert _order(client, f"?version={other_version.pk}") == ["Tech"]
    assert _order(client, "?status=cancelled") == ["Sato cancelled"]
    assert _order(client, "?status=at_risk") == ["Nobody low"]
    assert _order(client, "?touch_model=tech") == ["Tech"]
    # An unknown filter value is ignored rather than refused.
    assert _order(client, "?status=exploded&owner=abc") == ["Tech", "Nobody low", "Sato high"]


@pytest.mark.django_db
def test_the_board_shows_50_plans_a_page(
    version: ProgramVersion, make_user: Callable[..., User]
) -> None:
    customers = Customer.objects.bulk_create(Customer(name=f"C{n:02}") for n in range(51))
    OnboardingPlan.objects.bulk_create(
        OnboardingPlan(customer=c, version=version, start_date=TODAY, target_date=TODAY)
        for c in customers
    )
    client = staff(make_user, Role.VIEWER)
    first, second = html(client.get(BOARD)), html(client.get(BOARD + "?page=2"))
    assert len(re.findall(r"<tr data-plan=", first)) == 50
    assert len(re.findall(r"<tr data-plan=", second)) == 1
    assert "1–50 of 51" in first
    assert 'rel="next"' in first


@pytest.mark.django_db
def test_the_board_has_an_empty_state_and_a_no_match_state(
    version: ProgramVersion, make_user: Callable[..., User]
) -> None:
    client = staff(make_user, Role.VIEWER)
    assert 'id="board-empty"' in html(client.get(BOARD))
    make_plan(version, "Acme", PlanStatus.ON_TRACK)
    no_match = html(client.get(BOARD + "?status=overdue"))
    assert 'id="board-no-match"' in no_match
    assert 'id="board-empty"' not in no_match


@pytest.mark.django_db
def test_filters_by_htmx_answer_only_the_results(
    version: ProgramVersion, make_user: Callable[..., User]
) -> None:
    make_plan(version, "Acme", PlanStatus.ON_TRACK)
    response = staff(make_user, Role.VIEWER).get(BOARD, headers={"HX-Request": "true"})
    assert html(response).lstrip().startswith('<div id="board-results">')


# --- Bulk actions --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_shifting_moves_only_open_milestones_of_the_selected_plans_to_working_days(
    version: ProgramVersion, make_user: Callable[..., User]
) -> None:
    OnboardingSettings.objects.update_or_create(pk=1, defaults={"skip_weekends": True})
    friday = date(2026, 11, 20)
    chosen = make_plan(version, "Chosen", PlanStatus.ON_TRACK, done=("kickoff",),
                       due={"kickoff": friday, "setup": friday, "go_live": TODAY})  # fmt: skip
    other = make_plan(version, "Other", PlanStatus.ON_TRACK, due={"setup": friday})
    client = staff(make_user, Role.ONBOARDING_CSM)
    response = client.post(
        BULK + "?status=on_track", {"plans": [chosen.pk], "action": "shift", "days": 1}
    )
    assert response.status_code == 302
    assert response["Location"] == BOARD + "?status=on_track"
    due = dict(chosen.milestones.values_list("milestone__key", "due_date"))
    assert due["kickoff"] == friday  # done: unchanged
    assert due["setup"] == date(2026, 11, 23)  # Saturday → the next Monday
    assert due["go_live"] == TODAY + timedelta(days=1)
    assert other.milestones.get(milestone__key="setup").due_date == friday
    entry = TimelineEntry.objects.get(kind="onboarding.milestone", customer=chosen.customer)
    assert entry.payload == {"plan": chosen.pk, "shift_days": 1}


@pytest.mark.django_db
def test_cancelling_in_bulk_needs_a_reason_and_edit_rights(
    version: ProgramVersion, make_user: Callable[..., User]
) -> None:
    first = make_plan(version, "First", PlanStatus.ON_TRACK)
    second = make_plan(version, "Second", PlanStatus.OVERDUE)
    viewer = staff(make_user, Role.VIEWER)
    csm = staff(make_user, Role.ONBOARDING_CSM)
    forbidden = viewer.post(BULK, {"plans": [first.pk], "action": "cancel", "reason": "x"})
    no_reason = csm.post(BULK, {"plans": [first.pk, second.pk], "action": "cancel", "reason": " "})
    nothing = csm.post(BULK, {"action": "cancel", "reason": "Contract ended"})
    assert (forbidden.status_code, no_reason.status_code, nothing.status_code) == (403, 400, 400)
    assert "Reason: Say why the plans are cancelled." in html(no_reason)
    assert "Plans: Select at least one plan." in html(nothing)
    assert not OnboardingPlan.objects.filter(status=PlanStatus.CANCELLED).exists()
    done = csm.post(
        BULK, {"plans": [first.pk, second.pk], "action": "cancel", "reason": "Contract ended"}
    )
    assert done.status_code == 302
    assert set(OnboardingPlan.objects.values_list("status", flat=True)) == {PlanStatus.CANCELLED}


@pytest.mark.django_db
def test_refresh_recomputes_the_statuses_of_the_selected_plans(
    version: ProgramVersion, make_user: Callable[..., User]
) -> None:
    # Typed "on track" by hand, but a required milestone is 4 days late: really overdue.
    late = make_plan(version, "Late", PlanStatus.ON_TRACK, due={"setup": TODAY - timedelta(days=4)})
    untouched = make_plan(
        version, "Untouched", PlanStatus.ON_TRACK, due={"setup": TODAY - timedelta(days=4)}
    )
    client = staff(make_user, Role.ONBOARDING_CSM)
    client.post(BULK, {"plans": [late.pk], "action": "refresh"})
    late.refresh_from_db()
    untouched.refresh_from_db()
    assert (late.status, untouched.status) == (PlanStatus.OVERDUE, PlanStatus.ON_TRACK)


@pytest.mark.django_db
def test_export_writes_the_selected_plans_or_the_filtered_board_as_csv(
    version: ProgramVersion, make_user: Callable[..., User]
) -> None:
    sato = make_user(Role.ONBOARDING_CSM, username="sato")
    acme = make_plan(version, "Acme 株式会社", PlanStatus.OVERDUE, owner=sato,
                     due={"kickoff": TODAY - timedelta(days=2)}, done=("setup",))  # fmt: skip
    make_plan(version, "Beta", PlanStatus.ON_TRACK)
    viewer = staff(make_user, Role.VIEWER)
    selected = viewer.post(BULK, {"plans": [acme.pk], "action": "export"})
    filtered = viewer.get(BOARD + "?status=on_track&format=csv")
    assert selected["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(selected.content.decode("utf-8-sig"))))
    assert len(rows) == 1
    row = rows[0]
    assert (row["customer"], row["status"], row["onboarding_csm"]) == (
        "Acme 株式会社",
        "overdue",
        "sato",
    )
    assert (row["required_done"], row["required_total"], row["percent"]) == ("1", "3", "33")
    assert (row["next_due"], row["days_overdue"]) == (str(TODAY - timedelta(days=2)), "2")
    names = [
        r["customer"] for r in csv.DictReader(io.StringIO(filtered.content.decode("utf-8-sig")))
    ]
    assert names == ["Beta"]


@pytest.mark.django_db
def test_a_shift_without_days_or_with_too_many_is_refused(
    version: ProgramVersion, make_user: Callable[..., User]
) -> None:
    plan = make_plan(version, "Acme", PlanStatus.ON_TRACK)
    client = staff(make_user, Role.ONBOARDING_CSM)
    no_days = client.post(BULK, {"plans": [plan.pk], "action": "shift"})
    too_many = client.post(BULK, {"plans": [plan.pk], "action": "shift", "days": 9999})
    bad_action = client.post(BULK, {"plans": [plan.pk], "action": "explode"})
    assert (no_days.status_code, too_many.status_code, bad_action.status_code) == (400, 400, 400)
    assert "Days: Give the number of days" in html(no_days)
    assert "Days: Ensure this value is less than or equal to 365." in html(too_many)
    assert "Action: Select a valid choice." in html(bad_action)


@pytest.mark.django_db
def test_a_completed_plan_is_never_shown_late(
    version: ProgramVersion, make_user: Callable[..., User]
) -> None:
    # The optional tour is still open and past due, but the plan is complete.
    plan = make_plan(
        version, "Done", PlanStatus.COMPLETED, done=("kickoff", "setup", "go_live"),
        due={"tour": TODAY - timedelta(days=6)},
    )  # fmt: skip
    page = html(staff(make_user, Role.VIEWER).get(BOARD))
    assert "data-days-overdue" not in page
    assert days_overdue(board_plans(BoardFilters()).get(pk=plan.pk), TODAY) == 0
