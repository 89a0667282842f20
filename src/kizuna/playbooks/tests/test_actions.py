"""The action registry: built-ins check their parameters (naming the field), do their work for
one customer and describe themselves; an app adds an action the runner runs without edits."""

from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

import pytest
from django.utils import translation

from kizuna.core.models import TimelineEntry, TimelineKind
from kizuna.customers.models import Customer
from kizuna.lifecycle.models import TouchOverride
from kizuna.onboarding.models import Holiday, OnboardingPlan
from kizuna.onboarding.tests.test_programs import make_version
from kizuna.playbooks import actions, runner
from kizuna.playbooks.actions import ActionContext, ActionError, ActionField, ActionType
from kizuna.playbooks.models import (
    ActionExecution,
    ExecutionStatus,
    Playbook,
    PlaybookRun,
    Task,
    TaskPriority,
    TriggerKind,
    WebhookEndpoint,
)
from kizuna.playbooks.tests.engine_helpers import at, make_customer, make_playbook, make_user

FRIDAY = date(2026, 12, 4)


@pytest.fixture
def registry() -> Iterator[dict[str, ActionType]]:
    saved = dict(actions._registry)
    yield actions._registry
    actions._registry.clear()
    actions._registry.update(saved)


def _run(
    customer: Customer, kind: str, params: dict[str, Any], *, now: datetime | None = None
) -> tuple[PlaybookRun, ActionExecution]:
    """Fire a one-action playbook for ``customer`` by hand and execute its action."""
    now = now or at(FRIDAY)
    cleaned = actions.action_type(kind).validate(params)
    playbook = make_playbook(
        f"p-{Playbook.objects.count()}",
        TriggerKind.TIMELINE,
        {"kinds": ["customer.created"]},
        [(kind, cleaned, 0)],
        enabled_at=now,
    )
    (run,) = runner.fire(
        playbook=playbook,
        occurrences=[runner.Occurrence(customer.pk, "timeline:1", FRIDAY, "Customer created: x")],
        now=now,
    )
    runner.run_due(now=now)
    return run, ActionExecution.objects.get(run=run)


def test_the_built_ins_are_registered_with_their_fields() -> None:
    keys = [item.key for item in actions.action_types()]
    assert keys[:8] == [
        "create_task",
        "add_note",
        "change_touch_model",
        "change_stage",
        "assign_owner",
        "enrol_onboarding",
        "notify_email",
        "notify_webhook",
    ]
    create = actions.action_type("create_task")
    fields = {item.name: item for item in create.fields}
    assert fields["title"].required
    assert fields["owner_role"].kind == "choice"
    with translation.override("en"):
        assert ("adoption", "Adoption CSM") in [
            (value, str(label)) for value, label in fields["owner_role"].choices
        ]
    assert actions.action_type("notify_webhook").transactional is False
    with pytest.raises(KeyError):
        actions.action_type("nothing")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("kind", "params", "field"),
    [
        ("create_task", {}, "title"),
        ("create_task", {"title": "x", "priority": "very"}, "priority"),
        ("create_task", {"title": "x", "task_type": "chores"}, "task_type"),
        ("create_task", {"title": "x", "owner_role": "boss"}, "owner_role"),
        ("create_task", {"title": "x", "owner_id": 999}, "owner_id"),
        ("create_task", {"title": "x", "due_in_days": -1}, "due_in_days"),
        ("create_task", {"tasks": [{"title": "a", "due_in_days": "soon"}]}, "tasks[0].due_in_days"),
        ("create_task", {"tasks": [{"due_in_days": 1}]}, "title"),
        ("add_note", {"title": ""}, "title"),
        ("change_touch_model", {"touch_model": "medium"}, "touch_model"),
        ("change_stage", {"stage": "happy"}, "stage"),
        ("assign_owner", {"role": "adoption"}, "user_id"),
        ("assign_owner", {"role": "sales", "user_id": 1}, "role"),
        ("enrol_onboarding", {"program_id": 999}, "program_id"),
        ("notify_email", {"to": "ceo", "subject": "s", "body": "b"}, "to"),
        ("notify_email", {"subject": "s"}, "body"),
        ("notify_webhook", {"endpoint_id": 999, "text": "t"}, "endpoint_id"),
        ("notify_webhook", {"text": "t"}, "endpoint_id"),
    ],
)
def test_bad_action_parameters_name_the_field(
    kind: str, params: dict[str, Any], field: str
) -> None:
    with pytest.raises(ActionError) as caught:
        actions.action_type(kind).validate(params)
    assert caught.value.field == field


@pytest.mark.django_db
def test_create_task_resolves_the_owner_counts_business_days_and_fills_placeholders() -> None:
    csm = make_user("aiko", first_name="Aiko", last_name="Sato")
    acme = make_customer("Acme", adoption_owner=csm, lifecycle_stage="adoption")
    Holiday.objects.create(day=date(2026, 12, 8), name="Company day")
    run, execution = _run(
        acme,
        "create_task",
        {
            "title": "Call {customer} about {trigger}",
            "description": "Owner: {owner}. Not a field: {customer.__class__}",
            "task_type": "risk",
            "priority": "high",
            "owner_role": "adoption",
            "due_in_days": "2",
            "business_days": True,
            "checklist": "Prepare\n\nCall",
        },
    )
    task = Task.objects.get()
    assert execution.status == ExecutionStatus.DONE
    assert execution.result == {"task_ids": [task.pk]}
    assert (task.title, task.owner, task.task_type, task.priority) == (
        "Call Acme about Customer created: x",
        csm,
        "risk",
        TaskPriority.HIGH,
    )
    assert task.description == "Owner: Aiko Sato. Not a field: {customer.__class__}"
    # Friday + 2 business days: Monday, then Tuesday is a holiday, so Wednesday.
    assert task.due_on == date(2026, 12, 9)
    assert task.checklist == [{"text": "Prepare", "done": False}, {"text": "Call", "done": False}]
    assert task.run == run


@pytest.mark.django_db
def test_create_task_makes_a_checklist_of_tasks_each_with_its_due_day() -> None:
    acme = make_customer("Acme")
    _run(
        acme,
        "create_task",
        {
            "tasks": [
                {"title": "Day 7: check setup", "due_in_days": 7},
                {"title": "Day 30: first review", "due_in_days": 30},
            ],
            "task_type": "onboarding",
        },
    )
    assert list(Task.objects.order_by("due_on").values_list("title", "due_on", "owner")) == [
        ("Day 7: check setup", date(2026, 12, 11), None),
        ("Day 30: first review", date(2027, 1, 3), None),
    ]


@pytest.mark.django_db
def test_add_note_writes_a_playbook_note() -> None:
    acme = make_customer("Acme")
    run, _execution = _run(acme, "add_note", {"title": "Handoff to {customer}", "body": "Done"})
    note = TimelineEntry.objects.get(kind=TimelineKind.PLAYBOOK_NOTE)
    assert (note.customer_id, note.title, note.body) == (acme.pk, "Handoff to Acme", "Done")
    assert note.payload == {"playbook_id": run.playbook_id, "run_id": run.pk}


@pytest.mark.django_db
def test_changing_touch_model_and_stage_go_through_the_lifecycle_services() -> None:
    acme = make_customer("Acme", lifecycle_stage="onboarding", touch_model="high")
    with translation.override("en"):
        run, _execution = _run(acme, "change_touch_model", {"touch_model": "low", "days": 30})
    acme.refresh_from_db()
    override = TouchOverride.objects.get()
    assert (acme.touch_model, override.touch_model) == ("low", "low")
    assert override.reason == f"Playbook “{run.playbook.name}”"

    _run(acme, "change_stage", {"stage": "adoption", "reason": "Onboarding completed"})
    acme.refresh_from_db()
    assert acme.lifecycle_stage == "adoption"
    _run_again, again = _run(acme, "change_stage", {"stage": "adoption"})
    assert again.status == ExecutionStatus.SKIPPED


@pytest.mark.django_db
def test_assign_owner_records_the_change() -> None:
    ren = make_user("ren")
    acme = make_customer("Acme")
    _run(acme, "assign_owner", {"role": "expansion", "user_id": ren.pk})
    acme.refresh_from_db()
    assert acme.expansion_owner == ren
    assert TimelineEntry.objects.filter(customer=acme, kind=TimelineKind.OWNER_CHANGED).exists()
    _again, execution = _run(acme, "assign_owner", {"role": "expansion", "user_id": ren.pk})
    assert execution.status == ExecutionStatus.SKIPPED


@pytest.mark.django_db
def test_enrol_onboarding_starts_a_plan_once() -> None:
    acme = make_customer("Acme", started=FRIDAY)
    version = make_version([{"key": "kickoff"}], key="restart")
    _run(acme, "enrol_onboarding", {"program_id": version.program_id})
    plan = OnboardingPlan.objects.get(customer=acme)
    assert (plan.version, plan.start_date) == (version, FRIDAY)
    _again, execution = _run(acme, "enrol_onboarding", {"program_id": version.program_id})
    assert execution.status == ExecutionStatus.SKIPPED
    assert OnboardingPlan.objects.count() == 1


@pytest.mark.django_db
def test_actions_describe_what_they_would_do() -> None:
    csm = make_user("aiko")
    acme = make_customer("Acme", adoption_owner=csm, lifecycle_stage="adoption")
    slack = WebhookEndpoint.objects.create(name="#cs-alerts", url="https://hooks.example.com/x")
    with translation.override("en"):
        describe = {item.key: item.describe for item in actions.action_types()}
        assert (
            describe["create_task"](
                {"title": "Check in with {customer}", "owner_role": "adoption", "due_in_days": 2},
                acme,
            )
            == "Create task “Check in with Acme” for Adoption CSM, due in 2 days"
        )
        assert (
            describe["create_task"](
                {"title": "Call", "due_in_days": 2, "business_days": True}, None
            )
            == "Create task “Call” for nobody (unowned), due in 2 business days"
        )
        assert (
            describe["notify_webhook"](
                {"endpoint_id": slack.pk, "text": "{customer} dropped"}, acme
            )
            == "Post to #cs-alerts: “Acme dropped”"
        )
        assert (
            describe["notify_email"]({"to": "owner", "subject": "About {customer}"}, acme)
            == "Email the owner: “About Acme”"
        )
        assert describe["change_stage"]({"stage": "adoption"}, acme) == "Move to the stage Adoption"
        assert (
            describe["change_touch_model"]({"touch_model": "tech", "days": 30}, acme)
            == "Set the touch model to Tech touch for 30 days"
        )


@pytest.mark.django_db
def test_an_app_adds_an_action_that_the_runner_runs_without_changes(
    registry: dict[str, ActionType],
) -> None:
    seen: list[tuple[str, str]] = []

    def execute(ctx: ActionContext) -> dict[str, Any]:
        seen.append((ctx.customer.name, ctx.params["guide"]))
        return {"shown": ctx.params["guide"]}

    def validate(params: Any) -> dict[str, Any]:
        if not params.get("guide"):
            raise ActionError("guide", "Choose a guide.")
        return {"guide": str(params["guide"])}

    actions.register_action(
        ActionType(
            key="show_guide",
            label="Show an in-app guide",
            description="A guide in the product.",
            fields=(ActionField("guide", "Guide", "text", required=True),),
            validate=validate,
            execute=execute,
            describe=lambda params, customer: f"Show the guide {params['guide']}",
        )
    )
    acme = make_customer("Acme")
    _unused, execution = _run(acme, "show_guide", {"guide": "reports-tour"})

    assert seen == [("Acme", "reports-tour")]
    assert (execution.status, execution.result) == (ExecutionStatus.DONE, {"shown": "reports-tour"})
