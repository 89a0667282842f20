"""Saving playbooks (every rule checked, errors naming the field or action position), switching
them on, pausing, resuming, off and deleting; webhook endpoints and their "send test"."""

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from django.utils import timezone
from django.utils.translation import override

from kizuna.core.models import User
from kizuna.core.roles import Role
from kizuna.playbooks import notify, services
from kizuna.playbooks.models import (
    ActionExecution,
    ExecutionStatus,
    Playbook,
    PlaybookRun,
    RunStatus,
    Task,
    WebhookDelivery,
    WebhookEndpoint,
)
from kizuna.playbooks.services import ActionInput, EndpointInput, PlaybookInput
from kizuna.playbooks.tests.engine_helpers import make_customer

pytestmark = pytest.mark.django_db

USAGE_DROP = {"kinds": ["risk.raised"], "payload": {"kind": "usage_drop"}}
CHECK_IN = ActionInput(
    kind="create_task",
    params={"title": "Check in with {customer}", "owner_role": "adoption", "due_in_days": 2},
)


def usage_drop_input(**changes: Any) -> PlaybookInput:
    fields: dict[str, Any] = {
        "name": "Usage drop check-in",
        "trigger_kind": "timeline",
        "trigger_params": USAGE_DROP,
    }
    fields.update(changes)
    return PlaybookInput(**fields)


def errors_of(data: PlaybookInput, actions: list[ActionInput]) -> dict[str, str]:
    with pytest.raises(services.PlaybookError) as caught, override("en"):
        services.save_playbook(data=data, actions=actions, user=None)
    return caught.value.errors


def test_save_playbook_writes_the_rule_and_its_actions_in_order(make_user: Any) -> None:
    admin = make_user(Role.ADMIN)
    note = ActionInput(kind="add_note", params={"title": "Usage fell"}, delay_days=3)
    playbook = services.save_playbook(
        data=usage_drop_input(condition_text='touch_model = "high"', touch_models=["high"]),
        actions=[CHECK_IN, note],
        user=admin,
    )
    assert playbook.key == "usage-drop-check-in"
    assert playbook.trigger_params == {"kinds": ["risk.raised"], "payload": {"kind": "usage_drop"}}
    assert playbook.condition == {"field": "touch_model", "op": "=", "value": "high"}
    assert playbook.touch_models == ["high"]
    assert playbook.created_by == admin
    assert not playbook.enabled
    steps = list(
        playbook.actions.order_by("position").values_list("position", "kind", "delay_days")
    )
    assert steps == [(0, "create_task", 0), (1, "add_note", 3)]
    assert playbook.actions.get(position=0).params["owner_role"] == "adoption"


def test_a_second_playbook_with_the_same_name_gets_a_numbered_key() -> None:
    first = services.save_playbook(data=usage_drop_input(), actions=[CHECK_IN], user=None)
    second = services.save_playbook(data=usage_drop_input(), actions=[CHECK_IN], user=None)
    assert (first.key, second.key) == ("usage-drop-check-in", "usage-drop-check-in-2")


def test_editing_replaces_the_actions_and_keeps_the_key() -> None:
    playbook = services.save_playbook(data=usage_drop_input(), actions=[CHECK_IN], user=None)
    note = ActionInput(kind="add_note", params={"title": "Look at {customer}"})
    edited = services.save_playbook(
        playbook=playbook,
        data=usage_drop_input(name="Renamed", key="ignored-on-edit"),
        actions=[note],
        user=None,
    )
    assert edited.pk == playbook.pk
    assert edited.key == "usage-drop-check-in"
    assert edited.name == "Renamed"
    assert list(edited.actions.values_list("kind", flat=True)) == ["add_note"]


def test_errors_name_every_field_at_fault_at_once() -> None:
    errors = errors_of(
        PlaybookInput(
            name=" ",
            trigger_kind="timeline",
            trigger_params={"kinds": []},
            condition_text="arr >= ",
            touch_models=["medium"],
            holdout_share=0.9,
        ),
        [ActionInput(kind="create_task", params={"priority": 2})],
    )
    assert set(errors) == {
        "name",
        "trigger.kinds",
        "condition",
        "touch_models",
        "holdout_share",
        "actions[0].title",
    }
    assert errors["name"] == "Give the playbook a name."
    assert errors["trigger.kinds"] == "Choose at least one kind of timeline entry."
    assert errors["condition"].startswith("position 7: expected a value")
    assert "medium" in errors["touch_models"]
    assert errors["actions[0].title"] == "This is required."


def test_action_errors_name_the_action_position() -> None:
    errors = errors_of(
        usage_drop_input(),
        [
            CHECK_IN,
            ActionInput(kind="send_fax", params={}),
            ActionInput(kind="notify_email", params={"to": "owner", "subject": "Hi"}),
            ActionInput(kind="add_note", params={"title": "x"}, delay_days=400),
        ],
    )
    assert errors == {
        "actions[1].kind": "Unknown action “send_fax”.",
        "actions[2].body": "This is required.",
        "actions[3].delay_days": "Give the delay as a whole number of days from 0 to 365.",
    }


def test_a_playbook_needs_an_action() -> None:
    assert errors_of(usage_drop_input(), []) == {"actions": "Add at least one action."}


def test_holding_customers_out_needs_an_outcome_and_the_outcome_a_known_metric() -> None:
    no_outcome = errors_of(usage_drop_input(holdout_share=0.1), [CHECK_IN])
    assert set(no_outcome) == {"holdout_share"}
    unknown_metric = errors_of(
        usage_drop_input(
            holdout_share=0.1, outcome={"kind": "recovered", "metric": "nope", "days": 60}
        ),
        [CHECK_IN],
    )
    assert unknown_metric == {"outcome.metric": "No metric has the key “nope”."}
    bad_days = errors_of(usage_drop_input(outcome={"kind": "retained", "days": 0}), [CHECK_IN])
    assert set(bad_days) == {"outcome.days"}
    saved = services.save_playbook(
        data=usage_drop_input(
            holdout_share=0.1, outcome={"kind": "recovered", "metric": "events_28d", "days": 60}
        ),
        actions=[CHECK_IN],
        user=None,
    )
    assert saved.outcome == {"kind": "recovered", "metric": "events_28d", "days": 60}
    assert saved.holdout_share == pytest.approx(0.1)


def test_an_explicit_key_already_taken_is_refused() -> None:
    services.save_playbook(data=usage_drop_input(key="drop"), actions=[CHECK_IN], user=None)
    assert errors_of(usage_drop_input(key="drop"), [CHECK_IN]) == {
        "key": "A playbook with this key exists."
    }


def test_enable_pause_resume_and_disable_set_the_state() -> None:
    playbook = services.save_playbook(data=usage_drop_input(), actions=[CHECK_IN], user=None)
    before = timezone.now()
    services.enable_playbook(playbook=playbook)
    playbook.refresh_from_db()
    assert playbook.is_live
    assert playbook.enabled_at is not None
    assert playbook.enabled_at >= before
    services.pause_playbook(playbook=playbook)
    playbook.refresh_from_db()
    assert (playbook.enabled, playbook.paused, playbook.is_live) == (True, True, False)
    services.resume_playbook(playbook=playbook)
    playbook.refresh_from_db()
    assert playbook.is_live
    services.disable_playbook(playbook=playbook)
    playbook.refresh_from_db()
    assert (playbook.enabled, playbook.paused) == (False, False)


def test_disabling_skips_waiting_actions_and_settles_their_runs() -> None:
    customer = make_customer("Acme")
    playbook = services.save_playbook(data=usage_drop_input(), actions=[CHECK_IN], user=None)
    services.enable_playbook(playbook=playbook)
    now = timezone.now()
    run = PlaybookRun.objects.create(
        playbook=playbook, customer=customer, occurrence_key="timeline:1",
        triggered_on=now.date(),
    )  # fmt: skip
    waiting = ActionExecution.objects.create(
        run=run, position=0, kind="create_task", params={}, due_at=now + timedelta(days=3)
    )
    services.disable_playbook(playbook=playbook)
    waiting.refresh_from_db()
    run.refresh_from_db()
    assert waiting.status == ExecutionStatus.SKIPPED
    assert run.status == RunStatus.DONE
    assert run.finished_at is not None


def test_deleting_a_playbook_keeps_the_tasks_it_created() -> None:
    customer = make_customer("Acme")
    playbook = services.save_playbook(data=usage_drop_input(), actions=[CHECK_IN], user=None)
    run = PlaybookRun.objects.create(
        playbook=playbook, customer=customer, occurrence_key="timeline:1",
        triggered_on=timezone.localdate(),
    )  # fmt: skip
    task = Task.objects.create(customer=customer, title="Check in", run=run)
    services.delete_playbook(playbook=playbook)
    assert not Playbook.objects.exists()
    task.refresh_from_db()
    assert task.run is None


# --- Webhook endpoints --------------------------------------------------------------------


class _Receiver(BaseHTTPRequestHandler):
    answers: list[int] = []
    received: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.received.append((dict(self.headers), body))
        self.send_response(self.answers.pop(0) if self.answers else 200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return


def serve_receiver() -> Iterator[tuple[str, type[_Receiver]]]:
    """A local HTTP endpoint recording what it receives; ``answers`` are its status codes."""

    class Handler(_Receiver):
        answers = []
        received = []

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hook", Handler
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def receiver() -> Iterator[tuple[str, type[_Receiver]]]:
    yield from serve_receiver()


def test_endpoint_errors_name_the_field() -> None:
    services.save_endpoint(data=EndpointInput(name="Team chat", url="https://chat.example/hook"))
    with pytest.raises(services.PlaybookError) as caught, override("en"):
        services.save_endpoint(
            data=EndpointInput(name="Team chat", url="ftp://files.example", style="fax")
        )
    assert caught.value.errors == {
        "name": "An endpoint with this name exists.",
        "url": "Give a full http:// or https:// address.",
        "style": "Choose one of: slack, json.",
    }


def test_a_signed_json_endpoint_gets_a_secret_and_editing_keeps_it() -> None:
    endpoint = services.save_endpoint(
        data=EndpointInput(name="CRM", url="https://crm.example/in", style="json")
    )
    secret = endpoint.secret
    assert len(secret) == 48
    edited = services.save_endpoint(
        endpoint=endpoint,
        data=EndpointInput(name="CRM", url="https://crm.example/in2", style="json"),
    )
    assert (edited.secret, edited.url) == (secret, "https://crm.example/in2")
    slack = services.save_endpoint(data=EndpointInput(name="Slack", url="https://hooks.example/x"))
    assert slack.secret == ""


def test_send_test_posts_a_signed_message_and_records_the_delivery(
    receiver: tuple[str, type[_Receiver]], make_user: Any
) -> None:
    url, handler = receiver
    endpoint = services.save_endpoint(
        data=EndpointInput(name="CRM", url=url, style="json", secret="s3cret")
    )
    user: User = make_user(Role.ADMIN, username="aiko", first_name="Aiko")
    with override("en"):
        delivery = services.send_test(endpoint=endpoint, user=user)
    assert delivery.status_code == 200
    assert delivery.error == ""
    headers, body = handler.received[0]
    assert json.loads(body)["event"] == "test"
    assert json.loads(body)["text"].startswith("Test message from Kizuna, sent by")
    assert notify.verify(
        "s3cret", headers["X-Kizuna-Timestamp"], body, headers["X-Kizuna-Signature"]
    )


def test_send_test_to_a_failing_endpoint_returns_the_failed_delivery(
    receiver: tuple[str, type[_Receiver]],
) -> None:
    url, handler = receiver
    handler.answers.append(500)
    endpoint = services.save_endpoint(data=EndpointInput(name="Slack", url=url))
    with override("en"):
        delivery = services.send_test(endpoint=endpoint)
    assert delivery.status_code == 500
    assert delivery.error == "The endpoint answered 500."
    assert WebhookDelivery.objects.filter(endpoint=endpoint).count() == 1
    _headers, body = handler.received[0]
    assert set(json.loads(body)) == {"text"}


def test_deleting_an_endpoint_deletes_its_deliveries() -> None:
    endpoint = services.save_endpoint(data=EndpointInput(name="Slack", url="https://x.example"))
    WebhookDelivery.objects.create(endpoint=endpoint, status_code=200)
    services.delete_endpoint(endpoint=endpoint)
    assert not WebhookEndpoint.objects.exists()
    assert not WebhookDelivery.objects.exists()
