"""The onboarding REST API: programs, plans, and the writes a CSM makes, with permissions and
clear errors (400 naming the field for rules, 422 for wrong types, 403, 404).
"""

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from kizuna.analytics.metric_defaults import ensure_default_metrics
from kizuna.core.models import User
from kizuna.core.roles import Role
from kizuna.customers.models import Customer, SalesHandoff
from kizuna.onboarding.models import (
    MilestoneStatus,
    OnboardingPlan,
    PlanStatus,
    SuccessGoal,
)
from kizuna.onboarding.plans import complete_milestone
from kizuna.onboarding.tests.test_views import STAGED, plan_with_phases

API = "/api/v1"


@pytest.fixture(autouse=True)
def _english(settings: Any) -> None:
    settings.LANGUAGE_CODE = "en"


@pytest.fixture
def as_role(api_client: Callable[..., Client]) -> Callable[[str], Client]:
    return api_client


def _key_status(body: dict[str, Any]) -> dict[str, str]:
    return {m["key"]: m["status"] for m in body["milestones"]}


# --- Programs ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_programs_are_listed_with_versions_and_one_shows_its_content(
    as_role: Callable[[str], Client],
) -> None:
    plan_with_phases()
    client = as_role(Role.VIEWER)
    listed = client.get(f"{API}/onboarding/programs").json()
    assert [(p["key"], p["published_version"]) for p in listed] == [("staged", 1)]
    assert listed[0]["versions"][0]["plans"] == 1
    program = client.get(f"{API}/onboarding/programs/staged").json()
    milestones = {m["key"]: m for m in program["version"]["milestones"]}
    assert program["version"]["phases"] == ["Start", "Train", "Live"]
    assert milestones["training"]["depends_on"] == ["setup"]
    assert milestones["training"]["resources"][0]["title"] == "Admin manual"
    assert program["version"]["follow_ups"] == [
        {"name": "Day 7 check-in", "day_offset": 7, "owner_side": "csm", "description": ""}
    ]
    assert client.get(f"{API}/onboarding/programs/nope").status_code == 404
    unknown_version = client.get(f"{API}/onboarding/programs/staged?version=9")
    assert unknown_version.status_code == 400
    assert "version" in unknown_version.json()["detail"]


@pytest.mark.django_db
def test_the_api_refuses_strangers(client: Client) -> None:
    assert client.get(f"{API}/onboarding/plans").status_code == 401


# --- Plans ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_plans_are_listed_most_at_risk_first_and_filtered(
    as_role: Callable[[str], Client], make_user: Callable[..., User]
) -> None:
    today = timezone.localdate()
    sato = make_user(Role.ONBOARDING_CSM, username="sato")
    late = plan_with_phases("Late", start=today - timedelta(days=20), onboarding_owner=sato)
    fresh = plan_with_phases("Fresh", start=today + timedelta(days=10), touch_model="low")
    client = as_role(Role.VIEWER)
    body = client.get(f"{API}/onboarding/plans").json()
    assert [item["customer_name"] for item in body["items"]] == ["Late", "Fresh"]
    assert (body["count"], body["page"], body["pages"]) == (2, 1, 1)
    first = body["items"][0]
    assert first["status"] == PlanStatus.OVERDUE
    assert first["days_overdue"] == 20
    assert (first["required_done"], first["required_total"], first["percent"]) == (0, 4, 0)
    by_owner = client.get(f"{API}/onboarding/plans?owner={sato.pk}").json()["items"]
    by_touch = client.get(f"{API}/onboarding/plans?touch_model=low").json()["items"]
    by_status = client.get(f"{API}/onboarding/plans?status=on_track").json()["items"]
    assert [i["id"] for i in by_owner] == [late.pk]
    assert [i["id"] for i in by_touch] == [fresh.pk]
    assert [i["id"] for i in by_status] == [fresh.pk]
    assert client.get(f"{API}/onboarding/plans?program=staged").json()["count"] == 2
    assert client.get(f"{API}/onboarding/plans?page=2").json()["items"] == []


@pytest.mark.django_db
def test_bad_plan_filters_are_named(as_role: Callable[[str], Client]) -> None:
    client = as_role(Role.VIEWER)
    unknown_program = client.get(f"{API}/onboarding/plans?program=nope")
    bad_status = client.get(f"{API}/onboarding/plans?status=exploded")
    bad_page = client.get(f"{API}/onboarding/plans?page=0")
    assert unknown_program.status_code == 400
    assert unknown_program.json()["detail"] == {"program": ["There is no program with this key."]}
    assert bad_status.status_code == 422
    assert bad_status.json()["detail"][0]["loc"][-1] == "status"
    assert bad_page.status_code == 422
    assert bad_page.json()["detail"][0]["loc"][-1] == "page"


@pytest.mark.django_db
def test_one_plan_has_milestones_tasks_goals_progress_and_kickoff(
    as_role: Callable[[str], Client],
) -> None:
    plan = plan_with_phases()
    complete_milestone(plan.milestones.get(milestone__key="kickoff"), via="staff")
    client = as_role(Role.VIEWER)
    body = client.get(f"{API}/onboarding/plans/{plan.pk}").json()
    assert [m["key"] for m in body["milestones"]] == [s["key"] for s in STAGED]
    assert _key_status(body)["kickoff"] == "done"
    assert body["progress"] == {
        "required_done": 1, "required_total": 4, "percent": 25,
        "current_phase": "Start", "next_actions": ["setup", "tour"],
    }  # fmt: skip
    assert [t["title"] for t in body["tasks"]] == ["Day 7 check-in"]
    assert body["goals"] == []
    assert body["kickoff"]["it_literacy"] == ""
    assert client.get(f"{API}/onboarding/plans/99999").status_code == 404


@pytest.mark.django_db
def test_a_plan_is_created_for_a_customer_from_a_program_key(
    as_role: Callable[[str], Client], django_capture_on_commit_callbacks: Any
) -> None:
    plan_with_phases("Existing")
    customer = Customer.objects.create(name="New")
    client = as_role(Role.ONBOARDING_CSM)
    url = f"{API}/customers/{customer.pk}/onboarding-plans"
    with django_capture_on_commit_callbacks(execute=True):
        made = client.post(
            url, {"program": "staged", "start_date": "2026-11-02"}, content_type="application/json"
        )
    assert made.status_code == 201
    body = made.json()
    assert (body["customer"], body["program"], body["version"], body["start_date"]) == (
        customer.pk, "staged", 1, "2026-11-02",
    )  # fmt: skip
    assert len(body["milestones"]) == 5
    again = client.post(url, {"program": "staged"}, content_type="application/json")
    assert again.status_code == 400
    assert "already has an open onboarding plan" in str(again.json()["detail"])


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("payload", "status", "field"),
    [
        ({"program": "nope"}, 400, "program"),
        ({"program": "staged", "version": 7}, 400, "version"),
        ({"version": 1}, 400, "program"),
        ({"program": "staged", "start_date": "someday"}, 422, "start_date"),
        ({"program": "staged", "colour": "red"}, 422, "colour"),
    ],
)
def test_a_bad_plan_request_names_the_field(
    as_role: Callable[[str], Client], payload: dict[str, Any], status: int, field: str
) -> None:
    plan_with_phases("Existing")
    customer = Customer.objects.create(name="New")
    response = as_role(Role.ONBOARDING_CSM).post(
        f"{API}/customers/{customer.pk}/onboarding-plans", payload, content_type="application/json"
    )
    assert response.status_code == status
    detail = response.json()["detail"]
    named = list(detail) if status == 400 else [error["loc"][-1] for error in detail]
    assert field in named
    assert not OnboardingPlan.objects.filter(customer=customer).exists()


@pytest.mark.django_db
def test_plan_writes_need_edit_rights_and_known_ids(as_role: Callable[[str], Client]) -> None:
    plan = plan_with_phases()
    viewer = as_role(Role.VIEWER)
    csm = as_role(Role.ONBOARDING_CSM)
    json = "application/json"
    assert (
        viewer.post(
            f"{API}/customers/{plan.customer_id}/onboarding-plans", {}, content_type=json
        ).status_code
        == 403
    )
    assert (
        viewer.post(
            f"{API}/onboarding/plans/{plan.pk}/milestones/kickoff/status",
            {"status": "done"},
            content_type=json,
        ).status_code
        == 403
    )
    assert (
        viewer.patch(
            f"{API}/onboarding/plans/{plan.pk}/kickoff", {"kickoff_notes": "x"}, content_type=json
        ).status_code
        == 403
    )
    assert viewer.post(
        f"{API}/onboarding/plans/{plan.pk}/goals", {}, content_type=json
    ).status_code in (403, 422)
    assert (
        csm.post(f"{API}/customers/99999/onboarding-plans", {}, content_type=json).status_code
        == 404
    )
    assert (
        csm.post(
            f"{API}/onboarding/plans/99999/milestones/kickoff/status",
            {"status": "done"},
            content_type=json,
        ).status_code
        == 404
    )
    assert (
        csm.post(
            f"{API}/onboarding/plans/{plan.pk}/milestones/nope/status",
            {"status": "done"},
            content_type=json,
        ).status_code
        == 404
    )
    assert (
        _key_status(as_role(Role.VIEWER).get(f"{API}/onboarding/plans/{plan.pk}").json())["kickoff"]
        != "done"
    )


@pytest.mark.django_db
def test_a_milestone_status_is_changed_with_reasons_where_needed(
    as_role: Callable[[str], Client],
) -> None:
    plan = plan_with_phases()
    client = as_role(Role.ONBOARDING_CSM)
    base = f"{API}/onboarding/plans/{plan.pk}/milestones"
    json = "application/json"
    done = client.post(f"{base}/kickoff/status", {"status": "done"}, content_type=json)
    assert done.status_code == 200
    assert _key_status(done.json())["kickoff"] == "done"
    assert done.json()["progress"]["required_done"] == 1
    no_reason = client.post(f"{base}/setup/status", {"status": "blocked"}, content_type=json)
    skip_required = client.post(
        f"{base}/setup/status", {"status": "skipped", "reason": "x"}, content_type=json
    )
    unknown = client.post(f"{base}/setup/status", {"status": "exploded"}, content_type=json)
    early = client.post(f"{base}/go_live/status", {"status": "done"}, content_type=json)
    assert no_reason.status_code == 400
    assert list(no_reason.json()["detail"]) == ["reason"]
    assert skip_required.status_code == 400
    assert list(skip_required.json()["detail"]) == ["status"]
    assert unknown.status_code == 422
    assert early.status_code == 400
    assert "can be done only after" in str(early.json()["detail"])
    blocked = client.post(
        f"{base}/setup/status",
        {"status": "blocked", "reason": "Waiting for SSO"},
        content_type=json,
    )
    setup = next(m for m in blocked.json()["milestones"] if m["key"] == "setup")
    assert (setup["status"], setup["blocked_reason"]) == (
        MilestoneStatus.BLOCKED,
        "Waiting for SSO",
    )
    assert blocked.json()["status"] == PlanStatus.AT_RISK


@pytest.mark.django_db
def test_goals_are_added_with_their_rules_checked(as_role: Callable[[str], Client]) -> None:
    ensure_default_metrics()
    plan = plan_with_phases()
    client = as_role(Role.ONBOARDING_CSM)
    url = f"{API}/onboarding/plans/{plan.pk}/goals"
    due = (timezone.localdate() + timedelta(days=30)).isoformat()
    json = "application/json"
    no_target = client.post(
        url,
        {"title": "Adoption", "kind": "metric", "metric_key": "active_users_28d", "due_date": due},
        content_type=json,
    )
    unknown_metric = client.post(
        url,
        {"title": "Adoption", "kind": "metric", "metric_key": "nope", "target": 5, "due_date": due},
        content_type=json,
    )
    no_items = client.post(
        url,
        {"title": "Payroll", "kind": "checklist", "checklist": [], "due_date": due},
        content_type=json,
    )
    assert no_target.status_code == 400
    assert list(no_target.json()["detail"]) == ["target"]
    assert unknown_metric.status_code == 400
    assert list(unknown_metric.json()["detail"]) == ["metric_key"]
    assert no_items.status_code == 400
    assert list(no_items.json()["detail"]) == ["checklist"]
    made = client.post(
        url,
        {
            "title": "20 active users",
            "kind": "metric",
            "metric_key": "active_users_28d",
            "op": ">=",
            "target": 20,
            "due_date": due,
        },
        content_type=json,
    )
    assert made.status_code == 201
    body = made.json()
    assert (body["kind"], body["metric_key"], body["target"], body["status"]) == (
        "metric",
        "active_users_28d",
        20.0,
        "open",
    )
    assert SuccessGoal.objects.get().plan_id == plan.pk


@pytest.mark.django_db
def test_the_kickoff_is_patched_field_by_field(as_role: Callable[[str], Client]) -> None:
    plan = plan_with_phases()
    SalesHandoff.objects.create(customer=plan.customer, desired_outcomes="From sales")
    client = as_role(Role.ONBOARDING_CSM)
    url = f"{API}/onboarding/plans/{plan.pk}/kickoff"
    json = "application/json"
    first = client.patch(
        url, {"desired_outcomes": "Halve payroll time", "it_literacy": "low"}, content_type=json
    )
    second = client.patch(url, {"kickoff_on": "2026-11-10"}, content_type=json)
    assert (first.status_code, second.status_code) == (200, 200)
    assert second.json() == {
        "kickoff_on": "2026-11-10", "desired_outcomes": "Halve payroll time", "current_issues": "",
        "stakeholders": "", "it_literacy": "low", "kickoff_notes": "",
    }  # fmt: skip
    bad_level = client.patch(url, {"it_literacy": "expert"}, content_type=json)
    null_text = client.patch(url, {"stakeholders": None}, content_type=json)
    cleared = client.patch(url, {"kickoff_on": None}, content_type=json)
    assert (bad_level.status_code, null_text.status_code, cleared.status_code) == (422, 422, 200)
    assert cleared.json()["kickoff_on"] is None
    assert (
        client.patch(f"{API}/onboarding/plans/99999/kickoff", {}, content_type=json).status_code
        == 404
    )
