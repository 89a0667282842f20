"""The playbooks REST API: create, read, replace, delete; errors naming the field (400 for the
rules, 422 for types); simulate; enable and pause; runs; effect; library; permissions."""

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from kizuna.core.roles import Role
from kizuna.playbooks.models import ActionExecution, Playbook, PlaybookRun, RunStatus
from kizuna.playbooks.tests.engine_helpers import entry, make_customer

pytestmark = pytest.mark.django_db
BASE = "/api/v1/playbooks"

BODY: dict[str, Any] = {
    "name": "Usage drop check-in",
    "trigger_kind": "timeline",
    "trigger_params": {"kinds": ["risk.raised"], "payload": {"kind": "usage_drop"}},
    "condition": 'touch_model = "high"',
    "holdout_share": 0.1,
    "outcome": {"kind": "recovered", "metric": "events_28d", "days": 60},
    "actions": [
        {
            "kind": "create_task",
            "params": {"title": "Check in with {customer}", "owner_role": "adoption"},
        },
        {"kind": "add_note", "params": {"title": "Usage fell"}, "delay_days": 2},
    ],
}


@pytest.fixture(autouse=True)
def _english(settings: Any) -> None:
    settings.LANGUAGE_CODE = "en"


def post(client: Client, path: str, body: Any = None) -> Any:
    return client.post(path, json.dumps(body or {}), content_type="application/json")


def put(client: Client, path: str, body: Any) -> Any:
    return client.put(path, json.dumps(body), content_type="application/json")


def test_create_read_replace_and_delete(api_client: Callable[..., Client]) -> None:
    client = api_client(Role.CS_MANAGER)
    created = post(client, BASE, BODY)
    assert created.status_code == 201
    data = created.json()
    assert data["key"] == "usage-drop-check-in"
    assert data["condition"] == 'touch_model = "high"'
    assert (data["enabled"], data["live"], data["holdout_share"]) == (False, False, 0.1)
    assert [(a["position"], a["kind"], a["delay_days"]) for a in data["actions"]] == [
        (0, "create_task", 0),
        (1, "add_note", 2),
    ]
    assert data["trigger_summary"] == (
        "When the timeline records: Risk signal raised (kind = usage_drop)"
    )
    one = client.get(f"{BASE}/{data['id']}").json()
    assert one["name"] == "Usage drop check-in"
    listed = client.get(BASE).json()
    assert (listed["count"], listed["pages"], listed["items"][0]["id"]) == (1, 1, data["id"])
    replaced = put(client, f"{BASE}/{data['id']}", {**BODY, "name": "Renamed", "actions": [
        {"kind": "add_note", "params": {"title": "x"}}]})  # fmt: skip
    assert replaced.status_code == 200
    assert [a["kind"] for a in replaced.json()["actions"]] == ["add_note"]
    assert client.delete(f"{BASE}/{data['id']}").status_code == 204
    assert client.get(f"{BASE}/{data['id']}").status_code == 404


def test_rule_errors_are_400_naming_the_field(api_client: Callable[..., Client]) -> None:
    client = api_client(Role.ADMIN)
    body = {
        **BODY,
        "trigger_params": {"kinds": []},
        "condition": "arr >=",
        "actions": [{"kind": "create_task", "params": {}}, {"kind": "nope"}],
    }
    response = post(client, BASE, body)
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert set(detail) == {"trigger.kinds", "condition", "actions[0].title", "actions[1].kind"}
    assert detail["actions[1].kind"] == ["Unknown action “nope”."]
    assert not Playbook.objects.exists()


def test_wrong_types_are_422_naming_the_field(api_client: Callable[..., Client]) -> None:
    client = api_client(Role.ADMIN)
    response = post(client, BASE, {**BODY, "holdout_share": "lots", "colour": "red"})
    assert response.status_code == 422
    locations = {tuple(item["loc"][-1:]) for item in response.json()["detail"]}
    assert {("holdout_share",), ("colour",)} <= locations


def test_simulate_a_saved_playbook_and_a_draft(api_client: Callable[..., Client]) -> None:
    client = api_client(Role.ADMIN)
    acme = make_customer("Acme", touch_model="high")
    make_customer("Beta", touch_model="tech")
    entry(acme, "risk.raised", timezone.now() - timedelta(days=3), {"kind": "usage_drop"}, "Drop")
    body = {**BODY, "holdout_share": 0, "outcome": {}}
    draft = post(client, f"{BASE}/simulate?days=30", body)
    assert draft.status_code == 200
    result = draft.json()
    assert (result["fired"], result["customers"], result["held_out"]) == (1, 1, 0)
    assert result["runs"][0]["customer_name"] == "Acme"
    assert [a["kind"] for a in result["runs"][0]["actions"]] == ["create_task", "add_note"]
    assert result["actions_by_kind"] == {"add_note": 1, "create_task": 1}
    saved = post(client, BASE, body).json()
    again = post(client, f"{BASE}/{saved['id']}/simulate?days=90").json()
    assert again["fired"] == 1
    assert not PlaybookRun.objects.exists()
    assert post(client, f"{BASE}/{saved['id']}/simulate?days=0").status_code == 422


def test_enable_pause_resume_and_disable(api_client: Callable[..., Client]) -> None:
    client = api_client(Role.ADMIN)
    playbook_id = post(client, BASE, BODY).json()["id"]
    enabled = post(client, f"{BASE}/{playbook_id}/enable").json()
    assert (enabled["live"], enabled["enabled_at"] is not None) == (True, True)
    assert post(client, f"{BASE}/{playbook_id}/pause").json()["paused"] is True
    assert post(client, f"{BASE}/{playbook_id}/resume").json()["live"] is True
    assert post(client, f"{BASE}/{playbook_id}/disable").json()["enabled"] is False
    assert client.get(f"{BASE}?state=off").json()["count"] == 1
    assert client.get(f"{BASE}?state=on").json()["count"] == 0


def test_runs_and_effect(api_client: Callable[..., Client]) -> None:
    client = api_client(Role.ADMIN)
    playbook_id = post(client, BASE, BODY).json()["id"]
    acme = make_customer("Acme")
    run = PlaybookRun.objects.create(
        playbook_id=playbook_id, customer=acme, occurrence_key="timeline:5",
        triggered_on=timezone.localdate(), status=RunStatus.FAILED, trigger_summary="Drop",
    )  # fmt: skip
    ActionExecution.objects.create(
        run=run, position=0, kind="create_task", due_at=timezone.now(), status="failed",
        last_error="boom", attempts=5,
    )  # fmt: skip
    runs = client.get(f"{BASE}/{playbook_id}/runs?status=failed").json()
    assert runs["count"] == 1
    item = runs["items"][0]
    assert (item["customer_name"], item["status"], item["trigger_summary"]) == (
        "Acme",
        "failed",
        "Drop",
    )
    assert (item["executions"][0]["last_error"], item["executions"][0]["attempts"]) == ("boom", 5)
    assert client.get(f"{BASE}/{playbook_id}/runs?status=done").json()["count"] == 0
    effect = client.get(f"{BASE}/{playbook_id}/effect").json()
    assert (effect["fired"], effect["failed_runs"], effect["pending"]) == (1, 1, 1)
    assert effect["acted_outcome"] == {
        "numerator": 0,
        "denominator": 0,
        "value": None,
        "low": None,
        "high": None,
    }
    assert effect["verdict"] == "not_enough"
    assert effect["by_month"] == [
        {"month": timezone.localdate().strftime("%Y-%m"), "acted": 1, "held_out": 0}
    ]


def test_library_list_and_install(api_client: Callable[..., Client]) -> None:
    client = api_client(Role.ADMIN)
    entries = client.get(f"{BASE}/library").json()
    assert len(entries) == 8
    assert entries[2]["key"] == "usage-drop-check-in"
    assert entries[2]["installed"] is None
    installed = post(client, f"{BASE}/library/install", {"keys": ["usage-drop-check-in"]})
    assert installed.status_code == 200
    assert installed.json()[0]["library_key"] == "usage-drop-check-in"
    again = post(client, f"{BASE}/library/install", {"keys": ["usage-drop-check-in"]}).json()
    assert again[0]["id"] == installed.json()[0]["id"]
    assert client.get(f"{BASE}/library").json()[2]["installed"] == again[0]["id"]
    unknown = post(client, f"{BASE}/library/install", {"keys": ["nope"]})
    assert unknown.status_code == 400
    assert set(unknown.json()["detail"]) == {"keys"}


def test_action_types_describe_their_fields(api_client: Callable[..., Client]) -> None:
    types = api_client(Role.VIEWER).get(f"{BASE}/actions").json()
    create_task = next(t for t in types if t["key"] == "create_task")
    assert {"name": "title", "kind": "text", "required": True}.items() <= {
        k: v for k, v in create_task["fields"][0].items() if k in ("name", "kind", "required")
    }.items()


def test_csms_and_viewers_read_but_cannot_change(api_client: Callable[..., Client]) -> None:
    admin = api_client(Role.ADMIN)
    playbook_id = post(admin, BASE, BODY).json()["id"]
    for role in (Role.ADOPTION_CSM, Role.VIEWER):
        client = api_client(role)
        assert client.get(BASE).status_code == 200
        assert client.get(f"{BASE}/{playbook_id}/effect").status_code == 200
        assert post(client, BASE, BODY).status_code == 403
        assert post(client, f"{BASE}/{playbook_id}/enable").status_code == 403
        assert post(client, f"{BASE}/{playbook_id}/simulate").status_code == 403
        assert client.delete(f"{BASE}/{playbook_id}").status_code == 403
        assert post(client, f"{BASE}/library/install", {}).status_code == 403
    assert Client().get(BASE).status_code == 401
