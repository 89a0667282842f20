"""The library of ready playbooks (point 5 of the playbooks issue) and their installation.

Names, descriptions and task wording are English msgids translated at install time, so a
playbook installed by a Japanese-speaking admin is written in Japanese (the catalog holds the
wording). Installing is idempotent by ``library_key``: a second install returns the playbook
already there (and only switches it on when asked to enable). Every entry goes through
``services.save_playbook``, so an entry that no longer validates fails loudly in the tests.

Entries with an outcome hold out 10% of the customers they would act on, so their effect page
can compare; entries whose action a customer must not miss (renewal preparation, onboarding
cadence, handoffs) hold out nobody.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from django.db import transaction
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from kizuna.core.models import User
from kizuna.playbooks import services
from kizuna.playbooks.models import (
    OwnerRole,
    Playbook,
    TaskPriority,
    TaskType,
    TriggerKind,
    WebhookEndpoint,
)


@dataclass(frozen=True)
class LibraryAction:
    kind: str
    params: Mapping[str, Any]
    delay_days: int = 0


@dataclass(frozen=True)
class LibraryEntry:
    """A ready playbook. ``webhook_text``: when an active webhook endpoint exists at install
    time, a ``notify_webhook`` action posting this text to it is added last."""

    key: str
    name: str | Promise
    description: str | Promise
    trigger_kind: str
    trigger_params: Mapping[str, Any]
    actions: tuple[LibraryAction, ...]
    condition_text: str = ""
    holdout_share: float = 0.0
    outcome: Mapping[str, Any] = field(default_factory=dict)
    webhook_text: str | Promise = ""


def _task(
    title: str | Promise,
    *,
    task_type: str,
    owner_role: str,
    due_in_days: int,
    priority: int = TaskPriority.NORMAL,
    description: str | Promise = "",
    checklist: tuple[str | Promise, ...] = (),
    business_days: bool = False,
) -> dict[str, Any]:
    params: dict[str, Any] = {
        "title": title,
        "task_type": task_type,
        "priority": int(priority),
        "owner_role": owner_role,
        "due_in_days": due_in_days,
    }
    if description:
        params["description"] = description
    if checklist:
        params["checklist"] = list(checklist)
    if business_days:
        params["business_days"] = True
    return params


LIBRARY: tuple[LibraryEntry, ...] = (
    LibraryEntry(
        key="onboarding-follow-up",
        name=_("Onboarding follow-up cadence (day 7, 30, 60)"),
        description=_(
            "Follow-ups that do not stop after the kickoff: a check-in task for the onboarding "
            "CSM 7, 30 and 60 days after the contract starts."
        ),
        trigger_kind=TriggerKind.CUSTOMER_DATE,
        trigger_params={"date": "first_start_date", "offset_days": [7, 30, 60]},
        actions=(
            LibraryAction(
                "create_task",
                _task(
                    _("Onboarding follow-up with {customer}"),
                    task_type=TaskType.ONBOARDING,
                    owner_role=OwnerRole.ONBOARDING,
                    due_in_days=3,
                    description=_(
                        "{trigger}. Ask how setup and training are going, check usage against "
                        "the goals agreed at kickoff, and unblock the admin."
                    ),
                ),
            ),
        ),
    ),
    LibraryEntry(
        key="new-admin-training",
        name=_("New admin: offer personal training"),
        description=_(
            "When a new admin appears at a customer, offer them a personal training session "
            "and tell the owner by email."
        ),
        trigger_kind=TriggerKind.TIMELINE,
        trigger_params={
            "kinds": ["risk.raised"],
            "payload": {"kind": "new_admin"},
            "cooldown_days": 60,
        },
        actions=(
            LibraryAction(
                "create_task",
                _task(
                    _("Offer personal training to the new admin of {customer}"),
                    task_type=TaskType.ADOPTION,
                    owner_role=OwnerRole.CURRENT,
                    due_in_days=5,
                ),
            ),
            LibraryAction(
                "notify_email",
                {
                    "to": "owner",
                    "subject": _("New admin at {customer}: offer a training session"),
                    "body": _(
                        "{trigger}\n\nA new admin often means the product's champion changed. "
                        "A personal training session in the first weeks keeps usage from falling."
                    ),
                },
            ),
        ),
        holdout_share=0.1,
        outcome={"kind": "recovered", "metric": "active_users_28d", "days": 60},
    ),
    LibraryEntry(
        key="usage-drop-check-in",
        name=_("Usage drop: adoption CSM check-in"),
        description=_(
            "When usage falls by 20 percent or more, the adoption CSM checks in within two days; "
            "a message goes to the team's chat when a webhook is set up."
        ),
        trigger_kind=TriggerKind.TIMELINE,
        trigger_params={
            "kinds": ["risk.raised"],
            "payload": {"kind": "usage_drop"},
            "cooldown_days": 30,
        },
        actions=(
            LibraryAction(
                "create_task",
                _task(
                    _("Check in with {customer}: usage dropped"),
                    task_type=TaskType.RISK,
                    owner_role=OwnerRole.ADOPTION,
                    due_in_days=2,
                    priority=TaskPriority.HIGH,
                    description=_(
                        "{trigger}. Find out why (a new admin, a project paused, a competitor) "
                        "and agree the next step."
                    ),
                ),
            ),
        ),
        holdout_share=0.1,
        outcome={"kind": "recovered", "metric": "events_28d", "days": 60},
        webhook_text=_("Usage dropped at {customer}: a check-in task went to {owner}."),
    ),
    LibraryEntry(
        key="detractor-call",
        name=_("Detractor: call within 2 business days"),
        description=_(
            "When a contact answers NPS 0–6, the owner calls them within two business days."
        ),
        trigger_kind=TriggerKind.TIMELINE,
        trigger_params={
            "kinds": ["risk.raised"],
            "payload": {"kind": "nps_detractor"},
            "cooldown_days": 90,
        },
        actions=(
            LibraryAction(
                "create_task",
                _task(
                    _("Call {customer} about their NPS answer"),
                    task_type=TaskType.RISK,
                    owner_role=OwnerRole.CURRENT,
                    due_in_days=2,
                    business_days=True,
                    priority=TaskPriority.HIGH,
                    description=_("Listen first; write what you learned in the outcome note."),
                ),
            ),
        ),
        holdout_share=0.1,
        outcome={"kind": "retained", "days": 180},
    ),
    LibraryEntry(
        key="renewal-preparation",
        name=_("Renewal preparation (120, 90 and 60 days before)"),
        description=_(
            "A preparation task 120, 90 and 60 days before a contract's renewal date: review "
            "value and risks, prepare the proposal, confirm the renewal."
        ),
        trigger_kind=TriggerKind.CUSTOMER_DATE,
        trigger_params={"date": "renewal_date", "offset_days": [-120, -90, -60]},
        actions=(
            LibraryAction(
                "create_task",
                _task(
                    _("Renewal preparation for {customer}"),
                    task_type=TaskType.RENEWAL,
                    owner_role=OwnerRole.CURRENT,
                    due_in_days=14,
                    description=_(
                        "{trigger}. At 120 days review value and risks, at 90 prepare the "
                        "proposal, at 60 confirm the renewal."
                    ),
                    checklist=(
                        _("Review usage, health and open risks"),
                        _("Prepare the renewal proposal"),
                        _("Confirm the renewal with the decision maker"),
                    ),
                ),
            ),
        ),
    ),
    LibraryEntry(
        key="seats-expansion-review",
        name=_("Seats at 90%: expansion review"),
        description=_(
            "When a customer uses 90 percent or more of its seats, the expansion CSM reviews an "
            "upsell."
        ),
        trigger_kind=TriggerKind.METRIC,
        trigger_params={"metric": "seat_utilisation_28d", "op": ">=", "value": 0.9},
        actions=(
            LibraryAction(
                "create_task",
                _task(
                    _("Expansion review: {customer} is close to its seat limit"),
                    task_type=TaskType.EXPANSION,
                    owner_role=OwnerRole.EXPANSION,
                    due_in_days=7,
                ),
            ),
        ),
    ),
    LibraryEntry(
        key="onboarding-completed-handoff",
        name=_("Onboarding completed: handoff to adoption"),
        description=_(
            "When onboarding is completed, note it on the timeline, hand the customer to the "
            "adoption CSM and review its touch model."
        ),
        trigger_kind=TriggerKind.TIMELINE,
        trigger_params={"kinds": ["onboarding.completed"]},
        actions=(
            LibraryAction(
                "add_note",
                {
                    "title": _("Onboarding completed: handed over to adoption"),
                    "body": _("Playbook: the adoption CSM takes over from here."),
                },
            ),
            LibraryAction(
                "create_task",
                _task(
                    _("Handoff to adoption: welcome {customer}"),
                    task_type=TaskType.ADOPTION,
                    owner_role=OwnerRole.ADOPTION,
                    due_in_days=5,
                    checklist=(
                        _("Read the onboarding plan and its goals"),
                        _("Meet the customer's admin"),
                        _("Agree the next review date"),
                    ),
                ),
            ),
            LibraryAction(
                "create_task",
                _task(
                    _("Review {customer}'s touch model after onboarding"),
                    task_type=TaskType.ADOPTION,
                    owner_role=OwnerRole.ADOPTION,
                    due_in_days=10,
                ),
            ),
        ),
    ),
    LibraryEntry(
        key="qbr-high-touch",
        name=_("Quarterly business review (high touch)"),
        description=_(
            "On the first Monday of each quarter, a business review meeting task for every "
            "high-touch customer."
        ),
        trigger_kind=TriggerKind.SCHEDULE,
        trigger_params={"every": "quarter", "weekday": 0, "nth": 1},
        condition_text='touch_model = "high"',
        actions=(
            LibraryAction(
                "create_task",
                _task(
                    _("Quarterly business review with {customer}"),
                    task_type=TaskType.ADOPTION,
                    owner_role=OwnerRole.CURRENT,
                    due_in_days=14,
                    checklist=(
                        _("Prepare the usage and value summary"),
                        _("Agree the agenda with the customer"),
                        _("Send the notes and next steps"),
                    ),
                ),
            ),
        ),
    ),
)

LIBRARY_KEYS = tuple(entry.key for entry in LIBRARY)


def library_entry(key: str) -> LibraryEntry:
    """The entry with this key; ``KeyError`` naming the known keys otherwise."""
    for entry in LIBRARY:
        if entry.key == key:
            return entry
    raise KeyError(key)


def _resolve(value: Any) -> Any:
    """Lazy strings made text in the active language, through lists and dicts."""
    if isinstance(value, Promise):
        return str(value)
    if isinstance(value, Mapping):
        return {key: _resolve(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_resolve(item) for item in value]
    return value


def entry_actions(entry: LibraryEntry) -> list[services.ActionInput]:
    """The entry's actions as they would be saved now (with the webhook step when an active
    endpoint exists: the first by name)."""
    steps = [
        services.ActionInput(
            kind=action.kind, params=_resolve(action.params), delay_days=action.delay_days
        )
        for action in entry.actions
    ]
    if entry.webhook_text:
        endpoint = WebhookEndpoint.objects.filter(is_active=True).order_by("name", "id").first()
        if endpoint is not None:
            steps.append(
                services.ActionInput(
                    kind="notify_webhook",
                    params={"endpoint_id": endpoint.pk, "text": str(entry.webhook_text)},
                )
            )
    return steps


def entry_input(entry: LibraryEntry) -> services.PlaybookInput:
    return services.PlaybookInput(
        name=str(entry.name),
        description=str(entry.description),
        trigger_kind=entry.trigger_kind,
        trigger_params=dict(entry.trigger_params),
        condition_text=entry.condition_text,
        holdout_share=entry.holdout_share,
        outcome=dict(entry.outcome),
        key=entry.key,
        library_key=entry.key,
    )


@transaction.atomic
def install_library(
    *, keys: Iterable[str] | None = None, enable: bool = False, user: User | None = None
) -> list[Playbook]:
    """Install the library entries ``keys`` (all when None), in library order.

    Idempotent: an entry installed before (same ``library_key``) is returned as it is, not
    duplicated and not overwritten (people may have edited it). ``enable`` switches on the
    ones that are off. Raises ``KeyError`` for an unknown key and ``PlaybookError`` if an entry
    does not validate.
    """
    wanted = list(LIBRARY_KEYS if keys is None else dict.fromkeys(keys))
    unknown = [key for key in wanted if key not in LIBRARY_KEYS]
    if unknown:
        raise KeyError(unknown[0])
    existing = {
        playbook.library_key: playbook
        for playbook in Playbook.objects.select_for_update().filter(library_key__in=wanted)
    }
    installed: list[Playbook] = []
    for entry in LIBRARY:
        if entry.key not in wanted:
            continue
        playbook = existing.get(entry.key)
        if playbook is None:
            data = entry_input(entry)
            if Playbook.objects.filter(key=entry.key).exists():
                # A hand-made playbook took the key: the library one gets a numbered key
                # (made from the entry's key, not its name, which may be in Japanese).
                data = replace(data, key=services.unique_key(entry.key))
            playbook = services.save_playbook(data=data, actions=entry_actions(entry), user=user)
        if enable and not playbook.enabled:
            playbook = services.enable_playbook(playbook=playbook, user=user)
        installed.append(playbook)
    return installed


def installed_keys() -> dict[str, Playbook]:
    """Library key → the installed playbook (for the library page)."""
    return {
        playbook.library_key: playbook
        for playbook in Playbook.objects.exclude(library_key="").order_by("id")
    }
