"""Notifications over real sockets: signed webhooks to a local HTTP server (and a failing one,
retried then reported without holding back other actions), email through a local SMTP server."""

import hashlib
import hmac
import json
import socket
import threading
from collections.abc import Iterator
from datetime import date
from email import message_from_bytes
from email.header import decode_header, make_header
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from django.utils import translation

from kizuna.core.models import TimelineKind
from kizuna.playbooks import notify, runner
from kizuna.playbooks.models import (
    ActionExecution,
    ExecutionStatus,
    PlaybookRun,
    RunStatus,
    Task,
    TriggerKind,
    WebhookDelivery,
    WebhookEndpoint,
)
from kizuna.playbooks.tests.engine_helpers import at, entry, make_customer, make_playbook, make_user

DAY = date(2026, 12, 7)
SECRET = "s3cret-for-tests"


class Receiver:
    """A local HTTP endpoint that records what it gets and answers ``status``."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.requests: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append({"headers": dict(self.headers), "body": body})
                self.send_response(receiver.status)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def failing_receiver() -> Iterator[Receiver]:
    server = Receiver(status=503)
    yield server
    server.close()


def _closed_port() -> int:
    """A port nothing listens on (free a moment ago)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_signature_is_the_hmac_of_timestamp_dot_body() -> None:
    body = b'{"text":"hello"}'
    expected = hmac.new(SECRET.encode(), b'1765000000.{"text":"hello"}', hashlib.sha256).hexdigest()
    assert notify.sign(SECRET, 1765000000, body) == expected
    header = "sha256=" + expected
    assert notify.verify(SECRET, "1765000000", body, header, now=1765000100)
    assert not notify.verify(SECRET, "1765000000", body + b" ", header, now=1765000100)
    assert not notify.verify("other", "1765000000", body, header, now=1765000100)
    assert not notify.verify(SECRET, "1765000000", body, header, now=1765000000 + 301)
    assert not notify.verify(SECRET, "yesterday", body, header)


@pytest.mark.django_db
def test_a_signed_post_reaches_the_endpoint_and_is_recorded(receiver: Receiver) -> None:
    endpoint = WebhookEndpoint.objects.create(
        name="CRM", url=receiver.url, style=WebhookEndpoint.Style.JSON, secret=SECRET
    )
    delivery = notify.post_webhook(endpoint, {"event": "test", "text": "こんにちは"})

    (request,) = receiver.requests
    headers = request["headers"]
    assert notify.verify(
        SECRET, headers["X-Kizuna-Timestamp"], request["body"], headers["X-Kizuna-Signature"]
    )
    assert json.loads(request["body"]) == {"event": "test", "text": "こんにちは"}
    assert headers["Content-Type"] == "application/json; charset=utf-8"
    assert (delivery.status_code, delivery.error, delivery.endpoint) == (200, "", endpoint)
    assert json.loads(delivery.body) == {"event": "test", "text": "こんにちは"}


@pytest.mark.django_db
def test_a_failing_or_unreachable_endpoint_raises_after_recording_the_attempt(
    failing_receiver: Receiver,
) -> None:
    failing = WebhookEndpoint.objects.create(name="Down", url=failing_receiver.url)
    unreachable = WebhookEndpoint.objects.create(
        name="Gone", url=f"http://127.0.0.1:{_closed_port()}/hook"
    )
    with translation.override("en"), pytest.raises(notify.DeliveryError) as caught:
        notify.post_webhook(failing, {"text": "hi"})
    assert caught.value.delivery.status_code == 503
    assert caught.value.delivery.error == "The endpoint answered 503."
    assert "X-Kizuna-Signature" not in failing_receiver.requests[0]["headers"]  # no secret

    with pytest.raises(notify.DeliveryError) as unreachable_error:
        notify.post_webhook(unreachable, {"text": "hi"})
    assert unreachable_error.value.delivery.status_code is None
    assert unreachable_error.value.delivery.error
    assert WebhookDelivery.objects.count() == 2


@pytest.mark.django_db
def test_a_usage_drop_makes_one_task_and_one_slack_style_post(receiver: Receiver) -> None:
    csm = make_user("aiko")
    acme = make_customer("Acme", adoption_owner=csm)
    slack = WebhookEndpoint.objects.create(name="Slack", url=receiver.url, secret=SECRET)
    make_playbook(
        "usage-drop",
        TriggerKind.TIMELINE,
        {"kinds": ["risk.raised"], "payload": {"kind": "usage_drop"}},
        [
            ("create_task", {"title": "Check in with {customer}", "owner_role": "adoption"}, 0),
            ("notify_webhook", {"endpoint_id": slack.pk, "text": "{customer}: {trigger}"}, 0),
        ],
        enabled_at=at(DAY, 8),
    )
    entry(acme, "risk.raised", at(DAY, 9), {"kind": "usage_drop"}, title="Usage fell 35%")

    runner.run_cycle(now=at(DAY, 10))
    runner.run_cycle(now=at(DAY, 10, 1))

    (request,) = receiver.requests
    assert json.loads(request["body"]) == {"text": "Acme: Risk signal raised: Usage fell 35%"}
    assert Task.objects.get().owner == csm
    assert PlaybookRun.objects.get().status == RunStatus.DONE
    delivery = WebhookDelivery.objects.get()
    assert delivery.execution == ActionExecution.objects.get(kind="notify_webhook")


@pytest.mark.django_db
def test_a_json_endpoint_gets_the_signed_event(receiver: Receiver) -> None:
    acme = make_customer("Acme", external_id="crm-42")
    endpoint = WebhookEndpoint.objects.create(
        name="CRM", url=receiver.url, style=WebhookEndpoint.Style.JSON, secret=SECRET
    )
    playbook = make_playbook(
        "created",
        TriggerKind.TIMELINE,
        {"kinds": ["customer.created"]},
        [("notify_webhook", {"endpoint_id": endpoint.pk, "text": "New: {customer}"}, 0)],
        enabled_at=at(DAY, 8),
    )
    created = entry(acme, TimelineKind.CUSTOMER_CREATED, at(DAY, 9), title="Created")
    runner.run_cycle(now=at(DAY, 10))

    (request,) = receiver.requests
    headers = request["headers"]
    assert notify.verify(
        SECRET, headers["X-Kizuna-Timestamp"], request["body"], headers["X-Kizuna-Signature"]
    )
    event = json.loads(request["body"])
    run = PlaybookRun.objects.get()
    assert event == {
        "event": "playbook.action",
        "text": "New: Acme",
        "playbook": {"id": playbook.pk, "key": "created", "name": "Created"},
        "customer": {"id": acme.pk, "name": "Acme", "external_id": "crm-42"},
        "trigger": {
            "occurrence": f"timeline:{created.pk}",
            "summary": "Customer created: Created",
            "day": "2026-12-07",
        },
        "run_id": run.pk,
        "sent_at": at(DAY, 10).isoformat(),
    }


@pytest.mark.django_db
def test_a_failing_webhook_is_retried_then_reported_and_never_blocks_the_other_actions(
    failing_receiver: Receiver,
) -> None:
    csm = make_user("aiko")
    acme = make_customer("Acme", adoption_owner=csm)
    down = WebhookEndpoint.objects.create(name="Down", url=failing_receiver.url)
    make_playbook(
        "usage-drop",
        TriggerKind.TIMELINE,
        {"kinds": ["risk.raised"]},
        [
            ("notify_webhook", {"endpoint_id": down.pk, "text": "{customer}"}, 0),
            ("create_task", {"title": "Check in", "owner_role": "adoption"}, 0),
        ],
        enabled_at=at(DAY, 8),
    )
    entry(acme, "risk.raised", at(DAY, 9))

    now = at(DAY, 10)
    runner.run_cycle(now=now)
    assert Task.objects.get().owner == csm  # the task did not wait for the webhook
    post = ActionExecution.objects.get(kind="notify_webhook")
    for _attempt in range(4):
        post.refresh_from_db()
        assert post.status == ExecutionStatus.RETRYING
        now = post.next_attempt_at
        runner.run_cycle(now=now)
    post.refresh_from_db()

    assert len(failing_receiver.requests) == 5
    assert WebhookDelivery.objects.filter(execution=post, status_code=503).count() == 5
    assert (post.status, post.attempts) == (ExecutionStatus.FAILED, 5)
    with translation.override("en"):
        assert post.last_error == "Down: The endpoint answered 503."
    run = PlaybookRun.objects.get()
    assert run.status == RunStatus.FAILED
    assert run.error == "#1: Down: The endpoint answered 503."
    assert ActionExecution.objects.get(kind="create_task").status == ExecutionStatus.DONE


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append(envelope)
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp(settings: Any) -> Iterator[_Inbox]:
    """A real SMTP server on 127.0.0.1 that Django's SMTP backend sends to."""
    inbox = _Inbox()
    port = _closed_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    settings.MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {"host": "127.0.0.1", "port": port, "timeout": 10},
        }
    }
    settings.DEFAULT_FROM_EMAIL = "kizuna@example.com"
    yield inbox
    controller.stop()


@pytest.mark.django_db
def test_an_email_to_the_owner_goes_through_a_real_smtp_server(smtp: _Inbox) -> None:
    csm = make_user("aiko")
    acme = make_customer("Acme", adoption_owner=csm, lifecycle_stage="adoption")
    unowned = make_customer("Nobody's")
    make_playbook(
        "new-admin",
        TriggerKind.TIMELINE,
        {"kinds": ["risk.raised"], "payload": {"kind": "new_admin"}},
        [
            (
                "notify_email",
                {
                    "to": "owner",
                    "subject": "{customer}: offer a training",
                    "body": "{owner}, {customer} has a new admin ({trigger}).",
                },
                0,
            )
        ],
        enabled_at=at(DAY, 8),
    )
    entry(acme, "risk.raised", at(DAY, 9), {"kind": "new_admin"}, title="New admin")
    entry(unowned, "risk.raised", at(DAY, 9), {"kind": "new_admin"}, title="New admin")

    result = runner.run_cycle(now=at(DAY, 10))

    assert (result.actions_done, result.actions_skipped) == (1, 1)
    (envelope,) = smtp.messages
    assert envelope.rcpt_tos == ["aiko@example.com"]
    assert envelope.mail_from == "kizuna@example.com"
    message = message_from_bytes(envelope.content)
    assert str(make_header(decode_header(message["Subject"]))) == "Acme: offer a training"
    body = message.get_payload(decode=True).decode()
    assert body.strip() == "aiko, Acme has a new admin (Risk signal raised: New admin)."
    skipped = ActionExecution.objects.get(status=ExecutionStatus.SKIPPED)
    assert skipped.run.customer == unowned
    assert PlaybookRun.objects.filter(status=RunStatus.DONE).count() == 2


@pytest.fixture(autouse=True)
def _english() -> Iterator[None]:
    """Texts the engine builds (trigger summaries, messages) are compared in English."""
    with translation.override("en"):
        yield
