"""Playbook pages through HTTP: the list and its toggles, the editor (rendered from the action
registry, htmx re-renders, errors in place, simulate before saving), the run log with retry, the
effect page, the library and Settings → Webhooks; who may do what."""

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from kizuna.core.models import TimelineEntry, User
from kizuna.core.roles import Role
from kizuna.playbooks import library, services
from kizuna.playbooks.models import (
    ActionExecution,
    ExecutionStatus,
    Playbook,
    PlaybookRun,
    RunStatus,
    WebhookEndpoint,
)
from kizuna.playbooks.tests.engine_helpers import entry, make_customer
from kizuna.playbooks.tests.test_services import (
    CHECK_IN,
    _Receiver,
    serve_receiver,
    usage_drop_input,
)

pytestmark = pytest.mark.django_db
LIST = reverse("playbooks:playbook-list")
NEW = reverse("playbooks:playbook-create")


@pytest.fixture
def chat() -> Iterator[tuple[str, type[_Receiver]]]:
    yield from serve_receiver()


@pytest.fixture(autouse=True)
def _english(settings: Any) -> None:
    settings.LANGUAGE_CODE = "en"


def html(response: Any) -> str:
    return str(response.content.decode())


def client_for(make_user: Callable[..., User], role: str) -> Client:
    client = Client()
    client.force_login(make_user(role, username=role))
    return client


def saved_playbook() -> Playbook:
    return services.save_playbook(data=usage_drop_input(), actions=[CHECK_IN], user=None)


EDITOR_POST = {
    "name": "Usage drop check-in",
    "description": "",
    "trigger_kind": "timeline",
    "trigger-kind": "risk.raised",
    "trigger-signal_kind": "usage_drop",
    "trigger-payload": "",
    "condition_text": "",
    "holdout_percent": "0",
    "outcome_kind": "",
    "outcome_metric": "",
    "outcome_days": "60",
    "a0-kind": "create_task",
    "a0-delay_days": "0",
    "a0-title": "Check in with {customer}",
    "a0-task_type": "risk",
    "a0-priority": "3",
    "a0-owner_role": "adoption",
    "a0-due_in_days": "2",
}


# --- List and state -------------------------------------------------------------------------


def test_the_list_shows_state_trigger_and_the_link_bar(admin_client: Client) -> None:
    playbook = saved_playbook()
    page = html(admin_client.get(LIST))
    assert 'id="tasks-subnav"' in page
    assert reverse("playbooks:my-day") in page
    assert f'id="playbook-{playbook.pk}"' in page
    assert "When the timeline records: Risk signal raised (kind = usage_drop)" in page
    assert 'value="enable"' in page
    assert 'id="new-playbook"' in page


def test_a_viewer_reads_the_list_but_cannot_edit(make_user: Callable[..., User]) -> None:
    saved_playbook()
    viewer = client_for(make_user, Role.VIEWER)
    page = html(viewer.get(LIST))
    assert "Usage drop check-in" in page
    assert 'id="new-playbook"' not in page
    assert viewer.get(NEW).status_code == 403
    csm = client_for(make_user, Role.ADOPTION_CSM)
    assert csm.post(NEW, EDITOR_POST).status_code == 403
    assert Playbook.objects.count() == 1


def test_state_buttons_enable_pause_and_disable(admin_client: Client) -> None:
    playbook = saved_playbook()
    url = reverse("playbooks:playbook-state", args=[playbook.pk])
    response = admin_client.post(url, {"action": "enable"})
    assert response.status_code == 302
    playbook.refresh_from_db()
    assert playbook.is_live
    row = admin_client.post(url, {"action": "pause"}, headers={"HX-Request": "true"})
    assert 'class="badge state-paused"' in html(row)
    assert html(row).lstrip().startswith("<tr")
    admin_client.post(url, {"action": "disable"})
    playbook.refresh_from_db()
    assert not playbook.enabled


# --- Editor ---------------------------------------------------------------------------------


def test_the_editor_renders_the_action_fields_from_the_registry(admin_client: Client) -> None:
    page = html(admin_client.get(NEW))
    for name in ("a0-title", "a0-task_type", "a0-owner_role", "a0-due_in_days", "a0-checklist"):
        assert f'name="{name}"' in page
    assert 'name="trigger-kind"' in page
    assert 'name="trigger-signal_kind"' in page
    assert 'id="simulate-playbook"' in page


def test_saving_the_editor_creates_the_playbook(admin_client: Client) -> None:
    response = admin_client.post(NEW, EDITOR_POST)
    playbook = Playbook.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("playbooks:playbook-detail", args=[playbook.pk])
    assert playbook.trigger_params == {"kinds": ["risk.raised"], "payload": {"kind": "usage_drop"}}
    action = playbook.actions.get()
    assert action.params["title"] == "Check in with {customer}"
    assert (action.params["priority"], action.params["owner_role"]) == (3, "adoption")
    assert not playbook.enabled
    detail = html(admin_client.get(response["Location"]))
    assert 'id="enable-playbook"' in detail


def test_saving_with_htmx_redirects_through_the_header(admin_client: Client) -> None:
    response = admin_client.post(NEW, {**EDITOR_POST, "op": "save"}, headers={"HX-Request": "true"})
    assert response.status_code == 204
    assert response["HX-Redirect"].startswith("/tasks/playbooks/")


def test_errors_show_beside_their_fields_and_actions(admin_client: Client) -> None:
    post = {
        **EDITOR_POST,
        "condition_text": "arr >=",
        "a0-title": "",
        "a0-due_in_days": "soon",
        "trigger-kind": "",
    }
    response = admin_client.post(NEW, post)
    page = html(response)
    assert response.status_code == 400
    assert "position 7: expected a value" in page
    assert "Enter a whole number." in page
    assert "This field is required." in page
    assert not Playbook.objects.exists()
    # The rule checks of the service land on the right action too.
    response = admin_client.post(NEW, {**EDITOR_POST, "a0-title": ""})
    assert response.status_code == 400
    assert "This is required." in html(response)


def test_editor_buttons_add_remove_and_refresh_without_saving(admin_client: Client) -> None:
    added = html(admin_client.post(NEW, {**EDITOR_POST, "op": "add", "new_kind": "add_note"}))
    assert 'name="a1-kind"' in added
    assert 'name="a1-body"' in added
    removed = html(admin_client.post(NEW, {**EDITOR_POST, "op": "remove-0"}))
    assert 'name="a0-kind"' not in removed
    refreshed = admin_client.post(
        NEW,
        {**EDITOR_POST, "op": "refresh", "trigger_kind": "customer_date"},
        headers={"HX-Request": "true"},
    )
    fragment = html(refreshed)
    assert refreshed.status_code == 200
    assert fragment.lstrip().startswith('<section class="card" id="playbook-editor">')
    assert 'name="trigger-offset_days"' in fragment
    assert "errorlist" not in fragment
    assert not Playbook.objects.exists()


def test_simulate_before_saving_shows_what_it_would_have_done(admin_client: Client) -> None:
    acme = make_customer("Acme")
    make_customer("Quiet")
    entry(acme, "risk.raised", timezone.now() - timedelta(days=5), {"kind": "usage_drop"}, "Drop")
    entry(acme, "risk.raised", timezone.now() - timedelta(days=200), {"kind": "usage_drop"})
    response = admin_client.post(NEW, {**EDITOR_POST, "op": "simulate"})
    page = html(response)
    assert response.status_code == 200
    assert 'id="simulation-runs"' in page
    assert "Acme" in page
    assert "Quiet" not in page
    assert "1 run" in page
    assert "Create task “Check in with Acme”" in page
    assert not Playbook.objects.exists()
    assert not PlaybookRun.objects.exists()


def test_editing_shows_the_saved_values_and_saves_changes(admin_client: Client) -> None:
    playbook = saved_playbook()
    url = reverse("playbooks:playbook-edit", args=[playbook.pk])
    page = html(admin_client.get(url))
    assert 'value="Check in with {customer}"' in page
    assert 'value="usage_drop" selected' in page
    admin_client.post(url, {**EDITOR_POST, "name": "Renamed", "holdout_percent": "10",
                            "outcome_kind": "retained", "outcome_days": "90"})  # fmt: skip
    playbook.refresh_from_db()
    assert (playbook.name, playbook.holdout_share) == ("Renamed", 0.1)
    assert playbook.outcome == {"kind": "retained", "days": 90}


def test_condition_check_marks_the_error_or_counts_matches(admin_client: Client) -> None:
    make_customer("Acme", touch_model="high")
    make_customer("Beta", touch_model="tech")
    url = reverse("playbooks:playbook-condition")
    ok = html(admin_client.post(url, {"condition_text": 'touch_model = "high"'}))
    assert "1 of 2 customers match this condition today." in ok
    bad = html(admin_client.post(url, {"condition_text": "touch_model = "}))
    assert 'id="condition-error"' in bad
    assert "<mark>" in bad


# --- One playbook's pages ---------------------------------------------------------------------


def test_the_simulate_page_of_a_saved_playbook(admin_client: Client) -> None:
    playbook = saved_playbook()
    acme = make_customer("Acme")
    entry(acme, "risk.raised", timezone.now() - timedelta(days=1), {"kind": "usage_drop"})
    page = html(admin_client.get(reverse("playbooks:playbook-simulate", args=[playbook.pk])))
    assert "Acme" in page
    assert "nothing was done or written" in page


def test_the_run_log_shows_errors_and_retry_runs_the_action_again(admin_client: Client) -> None:
    playbook = saved_playbook()
    acme = make_customer("Acme")
    run = PlaybookRun.objects.create(
        playbook=playbook, customer=acme, occurrence_key="timeline:9",
        triggered_on=timezone.localdate(), trigger_summary="Usage fell", status=RunStatus.FAILED,
    )  # fmt: skip
    failed = ActionExecution.objects.create(
        run=run, position=0, kind="add_note", params={"title": "Look at {customer}"},
        due_at=timezone.now(), status=ExecutionStatus.FAILED, attempts=5,
        last_error="database was locked",
    )  # fmt: skip
    runs_url = reverse("playbooks:playbook-runs", args=[playbook.pk])
    page = html(admin_client.get(runs_url, {"status": "problems"}))
    assert "database was locked" in page
    assert f'id="retry-{failed.pk}"' in page
    response = admin_client.post(reverse("playbooks:execution-retry", args=[failed.pk]))
    assert response.status_code == 302
    failed.refresh_from_db()
    assert failed.status == ExecutionStatus.DONE
    assert TimelineEntry.objects.filter(customer=acme, title="Look at Acme").exists()


def test_a_viewer_sees_the_run_log_without_retry_buttons(
    make_user: Callable[..., User],
) -> None:
    playbook = saved_playbook()
    run = PlaybookRun.objects.create(
        playbook=playbook, customer=make_customer("Acme"), occurrence_key="timeline:9",
        triggered_on=timezone.localdate(),
    )  # fmt: skip
    execution = ActionExecution.objects.create(
        run=run, position=0, kind="add_note", params={"title": "x"}, due_at=timezone.now(),
        status=ExecutionStatus.FAILED,
    )  # fmt: skip
    viewer = client_for(make_user, Role.VIEWER)
    page = html(viewer.get(reverse("playbooks:playbook-runs", args=[playbook.pk])))
    assert "Acme" in page
    assert "retry-" not in page
    retry = viewer.post(reverse("playbooks:execution-retry", args=[execution.pk]))
    assert retry.status_code == 403


def test_the_effect_page_shows_the_verdict_and_chart_data(admin_client: Client) -> None:
    (drop,) = library.install_library(keys=["usage-drop-check-in"])
    page = html(admin_client.get(reverse("playbooks:playbook-effect", args=[drop.pk])))
    assert 'id="verdict"' in page
    assert "Not enough customers yet" in page
    assert 'id="effect-data"' in page
    assert "chart-4.6.1.umd.min.js" in page
    assert "kizuna/playbooks.js" in page


def test_deleting_asks_first(admin_client: Client) -> None:
    playbook = saved_playbook()
    url = reverse("playbooks:playbook-delete", args=[playbook.pk])
    assert "Delete Usage drop check-in?" in html(admin_client.get(url))
    assert admin_client.post(url).status_code == 302
    assert not Playbook.objects.exists()


# --- Library --------------------------------------------------------------------------------


def test_the_library_page_installs_and_enables(admin_client: Client) -> None:
    url = reverse("playbooks:library")
    page = html(admin_client.get(url))
    assert page.count('name="key"') == 8
    assert "Usage drop: adoption CSM check-in" in page
    admin_client.post(url, {"key": ["usage-drop-check-in", "qbr-high-touch"], "enable": "1"})
    assert sorted(Playbook.objects.values_list("library_key", "enabled")) == [
        ("qbr-high-touch", True),
        ("usage-drop-check-in", True),
    ]
    page = html(admin_client.get(url))
    assert page.count('name="key"') == 6
    response = admin_client.post(url, {"key": "nope"}, follow=True)
    assert "No ready playbook has the key “nope”." in html(response)


def test_the_library_needs_manage_playbooks(make_user: Callable[..., User]) -> None:
    csm = client_for(make_user, Role.ADOPTION_CSM)
    assert csm.get(reverse("playbooks:library")).status_code == 403


# --- Settings → Webhooks ----------------------------------------------------------------------


def test_webhooks_tab_add_edit_test_and_delete(
    admin_client: Client, chat: tuple[str, type[_Receiver]]
) -> None:
    url, handler = chat
    settings_page = html(admin_client.get(reverse("core:settings")))
    assert reverse("playbooks:webhooks") in settings_page
    add = reverse("playbooks:webhook-create")
    bad = admin_client.post(add, {"name": "", "url": "not a url", "style": "slack"})
    assert bad.status_code == 400
    response = admin_client.post(add, {"name": "Team chat", "url": url, "style": "slack",
                                       "is_active": "on"})  # fmt: skip
    assert response.status_code == 302
    endpoint = WebhookEndpoint.objects.get()
    test_url = reverse("playbooks:webhook-test", args=[endpoint.pk])
    fragment = html(admin_client.post(test_url, headers={"HX-Request": "true"}))
    assert "Test sent: answered 200." in fragment
    assert len(handler.received) == 1
    handler.answers.append(503)
    followed = html(admin_client.post(test_url, follow=True))
    assert "failed: The endpoint answered 503." in followed
    listing = html(admin_client.get(reverse("playbooks:webhooks")))
    assert "Team chat" in listing
    assert "The endpoint answered 503." in listing
    edit = reverse("playbooks:webhook-edit", args=[endpoint.pk])
    admin_client.post(edit, {"name": "Team", "url": url, "style": "json"})
    endpoint.refresh_from_db()
    assert (endpoint.name, endpoint.style, endpoint.is_active) == ("Team", "json", False)
    assert endpoint.secret
    admin_client.post(reverse("playbooks:webhook-delete", args=[endpoint.pk]))
    assert not WebhookEndpoint.objects.exists()


def test_webhooks_need_manage_playbooks(make_user: Callable[..., User]) -> None:
    csm = client_for(make_user, Role.ADOPTION_CSM)
    assert csm.get(reverse("playbooks:webhooks")).status_code == 403
    settings_page = html(csm.get(reverse("core:settings")))
    assert reverse("playbooks:webhooks") not in settings_page


def _editor_post(playbook: Playbook) -> dict[str, Any]:
    """What the editor posts back when nothing is changed (built from its own forms)."""
    from kizuna.playbooks.forms_playbooks import PlaybookForm, slots_from_playbook, trigger_form

    form = PlaybookForm(playbook=playbook)
    data: dict[str, Any] = {
        key: value for key, value in form.initial.items() if value not in (None, [])
    }
    tform = trigger_form(playbook.trigger_kind, params=playbook.trigger_params)
    data.update({f"trigger-{key}": value for key, value in tform.initial.items()})
    for slot in slots_from_playbook(playbook):
        data[f"a{slot.index}-kind"] = slot.kind
        data[f"a{slot.index}-delay_days"] = slot.delay_days
        for item in slot.inputs():
            if item["spec"].kind == "bool":
                if item["value"]:
                    data[item["name"]] = "on"
            elif item["value"] not in ("", None):
                data[item["name"]] = item["value"]
    return data


def test_every_ready_playbook_survives_a_round_trip_through_the_editor(
    admin_client: Client,
) -> None:
    WebhookEndpoint.objects.create(name="Team chat", url="https://chat.example/hook")
    for playbook in library.install_library():
        before = (
            playbook.trigger_params,
            playbook.condition,
            playbook.outcome,
            playbook.holdout_share,
            list(playbook.actions.values_list("kind", "params", "delay_days")),
        )
        url = reverse("playbooks:playbook-edit", args=[playbook.pk])
        assert admin_client.get(url).status_code == 200
        response = admin_client.post(url, _editor_post(playbook))
        assert response.status_code == 302, (playbook.key, html(response)[-3000:])
        playbook.refresh_from_db()
        after = (
            playbook.trigger_params,
            playbook.condition,
            playbook.outcome,
            playbook.holdout_share,
            list(playbook.actions.values_list("kind", "params", "delay_days")),
        )
        assert after == before, playbook.key


def test_state_changes_never_redirect_off_the_site(admin_client: Client) -> None:
    playbook = saved_playbook()
    url = reverse("playbooks:playbook-state", args=[playbook.pk])
    detail = reverse("playbooks:playbook-detail", args=[playbook.pk])
    assert admin_client.post(url, {"action": "enable", "next": detail})["Location"] == detail
    response = admin_client.post(url, {"action": "pause", "next": "https://evil.example/"})
    assert response["Location"] == LIST
