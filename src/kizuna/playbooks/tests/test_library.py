"""The library of ready playbooks: every entry validates, installing is idempotent, enabling and
the webhook step; and the ``kizuna playbooks`` command."""

import json
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from django.utils.translation import override

from kizuna.core.roles import Role
from kizuna.playbooks import library, services
from kizuna.playbooks.models import Playbook, WebhookEndpoint
from kizuna.playbooks.tests.engine_helpers import at, entry, make_customer
from kizuna.playbooks.tests.engine_helpers import make_user as make_staff

pytestmark = pytest.mark.django_db


def test_the_library_has_the_eight_ready_playbooks_of_the_issue() -> None:
    assert library.LIBRARY_KEYS == (
        "onboarding-follow-up",
        "new-admin-training",
        "usage-drop-check-in",
        "detractor-call",
        "renewal-preparation",
        "seats-expansion-review",
        "onboarding-completed-handoff",
        "qbr-high-touch",
    )


def test_installing_everything_creates_valid_switched_off_playbooks() -> None:
    with override("en"):
        installed = library.install_library()
    assert [p.library_key for p in installed] == list(library.LIBRARY_KEYS)
    assert all(not p.enabled for p in installed)
    by_key = {p.library_key: p for p in installed}
    drop = by_key["usage-drop-check-in"]
    assert drop.name == "Usage drop: adoption CSM check-in"
    assert drop.trigger_params == {
        "kinds": ["risk.raised"], "payload": {"kind": "usage_drop"}, "cooldown_days": 30,
    }  # fmt: skip
    assert drop.holdout_share == pytest.approx(0.1)
    assert drop.outcome == {"kind": "recovered", "metric": "events_28d", "days": 60}
    task = drop.actions.get(position=0)
    assert task.kind == "create_task"
    assert (task.params["owner_role"], task.params["due_in_days"]) == ("adoption", 2)
    renewal = by_key["renewal-preparation"]
    assert renewal.trigger_params == {"date": "renewal_date", "offset_days": [-120, -90, -60]}
    assert by_key["qbr-high-touch"].condition == {
        "field": "touch_model",
        "op": "=",
        "value": "high",
    }
    assert by_key["detractor-call"].actions.get().params["business_days"] is True
    # Entries whose actions a customer must not miss hold out nobody.
    assert by_key["renewal-preparation"].holdout_share == 0
    assert by_key["onboarding-follow-up"].holdout_share == 0


def test_every_entry_passes_the_same_checks_as_a_hand_made_playbook() -> None:
    for entry_ in library.LIBRARY:
        checked = services.check_playbook(
            data=library.entry_input(entry_), actions=library.entry_actions(entry_)
        )
        assert checked.actions, entry_.key


def test_installing_twice_changes_nothing_and_keeps_edits() -> None:
    first = library.install_library(keys=["detractor-call"])
    playbook = first[0]
    playbook.name = "Our detractor call"
    playbook.save()
    again = library.install_library(keys=["detractor-call", "detractor-call"])
    assert [p.pk for p in again] == [playbook.pk]
    assert Playbook.objects.count() == 1
    assert Playbook.objects.get().name == "Our detractor call"


def test_install_with_enable_switches_on_those_that_are_off() -> None:
    library.install_library(keys=["usage-drop-check-in"])
    installed = library.install_library(keys=["usage-drop-check-in", "qbr-high-touch"], enable=True)
    assert all(p.is_live and p.enabled_at is not None for p in installed)


def test_an_unknown_key_installs_nothing() -> None:
    with pytest.raises(KeyError):
        library.install_library(keys=["usage-drop-check-in", "no-such-thing"])
    assert not Playbook.objects.exists()


def test_usage_drop_posts_to_the_first_active_webhook_when_one_exists() -> None:
    WebhookEndpoint.objects.create(name="b-off", url="https://x.example/1", is_active=False)
    endpoint = WebhookEndpoint.objects.create(name="c-team", url="https://x.example/2")
    with override("en"):
        (drop,) = library.install_library(keys=["usage-drop-check-in"])
    steps = list(drop.actions.order_by("position"))
    assert [s.kind for s in steps] == ["create_task", "notify_webhook"]
    assert steps[1].params == {
        "endpoint_id": endpoint.pk,
        "text": "Usage dropped at {customer}: a check-in task went to {owner}.",
    }


def test_a_hand_made_playbook_holding_the_key_does_not_block_the_install() -> None:
    services.save_playbook(
        data=services.PlaybookInput(
            name="Mine", key="qbr-high-touch", trigger_kind="schedule",
            trigger_params={"every": "week", "weekday": 0},
        ),
        actions=[services.ActionInput(kind="add_note", params={"title": "x"})],
        user=None,
    )  # fmt: skip
    (qbr,) = library.install_library(keys=["qbr-high-touch"])
    assert (qbr.key, qbr.library_key) == ("qbr-high-touch-2", "qbr-high-touch")


# --- kizuna playbooks -------------------------------------------------------------------------


def run(*args: str) -> str:
    out = StringIO()
    call_command("playbooks", *args, stdout=out)
    return out.getvalue()


def test_cli_install_list_and_effect() -> None:
    installed = json.loads(run("install", "--enable", "usage-drop-check-in", "--json"))
    assert installed == [
        {"id": installed[0]["id"], "key": "usage-drop-check-in", "state": "on"},
    ]
    listed = json.loads(run("list", "--json"))
    assert [(row["key"], row["state"], row["fired_last_30_days"]) for row in listed] == [
        ("usage-drop-check-in", "on", 0)
    ]
    effect = json.loads(run("effect", "usage-drop-check-in", "--json"))
    assert (effect["fired"], effect["verdict"], effect["acted_outcome"]["value"]) == (
        0,
        "not_enough",
        None,
    )
    assert "fired 0" in run("effect", str(installed[0]["id"]))


def test_cli_simulate_and_run_one_cycle() -> None:
    adoption = make_staff("kenji")
    customer = make_customer("Acme", adoption_owner=adoption)
    (drop,) = library.install_library(keys=["usage-drop-check-in"])
    entry(customer, "risk.raised", at(timezone.localdate()), {"kind": "usage_drop"}, "Usage fell")
    simulated = json.loads(run("simulate", str(drop.pk), "--days", "7", "--json"))
    assert (simulated["fired"], simulated["runs"][0]["customer_name"]) == (1, "Acme")
    assert not drop.runs.exists()
    services.enable_playbook(playbook=drop)
    # Enabled after the entry was written: the runner fires only for what happens from now.
    entry(customer, "risk.raised", timezone.now(), {"kind": "usage_drop"}, "Usage fell again")
    cycle = json.loads(run("run", "--json"))
    assert (cycle["runs"], cycle["actions_done"] + cycle["held_out"]) == (1, 1)
    assert "Runner cycle:" in run("run")


def test_cli_errors_name_the_option() -> None:
    with pytest.raises(CommandError, match="KEY: no ready playbook 'nope'"):
        run("install", "nope")
    with pytest.raises(CommandError, match="ID: no playbook"):
        run("simulate", "999")
    library.install_library(keys=["qbr-high-touch"])
    with pytest.raises(CommandError, match="--days"):
        run("simulate", "qbr-high-touch", "--days", "0")
    with pytest.raises(CommandError, match="--now"):
        run("run", "--now", "yesterday")


def test_cli_user_must_be_allowed(make_user: Any) -> None:
    make_user(Role.ADOPTION_CSM, username="csm")
    with pytest.raises(CommandError, match="may not manage_playbooks"):
        run("install", "--user", "csm")
