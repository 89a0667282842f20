"""Programs: versions copied into drafts, publishing validated, the program picked per customer.

``make_version`` builds a program version from a short spec; the other engine tests use it.
"""

from collections.abc import Iterable
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.utils import translation

from kizuna.analytics.models import MetricDefinition, MetricKind
from kizuna.customers.models import Customer
from kizuna.onboarding.models import (
    CompletionKind,
    FollowUp,
    Milestone,
    OwnerSide,
    Phase,
    Program,
    ProgramVersion,
    Resource,
    ResourceKind,
    VersionStatus,
)
from kizuna.onboarding.programs import (
    create_program,
    new_draft,
    pick_version,
    publish,
    validation_problems,
)


def make_version(
    milestones: Iterable[dict[str, Any]],
    *,
    key: str = "standard",
    target_days: int = 60,
    follow_ups: Iterable[tuple[str, int, str]] = (),
    touch_model: str = "",
    segment_key: str = "",
    priority: int = 100,
    published: bool = True,
) -> ProgramVersion:
    """A version of program ``key`` from milestone specs, published unless told otherwise.

    A spec: ``key`` and optional ``phase`` (name; phases in order of first use), ``offset``
    (days, 7), ``required`` (True), ``after`` (keys), ``owner`` (csm), ``kind`` (manual) and
    ``rule`` ({}). Follow-ups: (name, day, owner side).
    """
    program = Program.objects.filter(key=key).first()
    if program is None:
        program = create_program(
            key=key,
            name=key.title(),
            touch_model=touch_model,
            segment_key=segment_key,
            priority=priority,
            target_days=target_days,
        )
    version = new_draft(program)
    version.target_days = target_days
    version.save()
    phases: dict[str, Phase] = {}
    made: dict[str, Milestone] = {}
    specs = list(milestones)
    for position, spec in enumerate(specs):
        phase_name = spec.get("phase", "Start")
        if phase_name not in phases:
            phases[phase_name] = Phase.objects.create(
                version=version, name=phase_name, position=len(phases)
            )
        made[spec["key"]] = Milestone.objects.create(
            version=version,
            phase=phases[phase_name],
            key=spec["key"],
            name=spec.get("name", spec["key"].replace("_", " ").title()),
            due_offset_days=spec.get("offset", 7),
            required=spec.get("required", True),
            position=position,
            owner_side=spec.get("owner", OwnerSide.CSM),
            completion_kind=spec.get("kind", CompletionKind.MANUAL),
            completion=spec.get("rule", {}),
        )
    for spec in specs:
        made[spec["key"]].depends_on.set([made[k] for k in spec.get("after", [])])
    for name, day, side in follow_ups:
        FollowUp.objects.create(version=version, name=name, day_offset=day, owner_side=side)
    if published:
        publish(version)
        version.refresh_from_db()
    return version


def _en_problems(version: ProgramVersion) -> list[str]:
    with translation.override("en"):
        return validation_problems(version)


@pytest.mark.django_db
def test_a_new_program_starts_with_an_empty_draft_version_one() -> None:
    program = create_program(key="high-touch", name="High touch", touch_model="high")
    versions = list(program.versions.all())
    assert [(v.number, v.status) for v in versions] == [(1, VersionStatus.DRAFT)]


@pytest.mark.django_db
def test_a_program_with_a_bad_key_is_refused_naming_the_field() -> None:
    with pytest.raises(ValidationError) as error:
        create_program(key="not a slug!", name="Bad")
    assert "key" in error.value.message_dict
    assert not Program.objects.exists()


@pytest.mark.django_db
def test_a_new_draft_copies_the_latest_version_with_dependencies_remapped() -> None:
    v1 = make_version(
        [
            {"key": "kickoff", "phase": "Start", "offset": 3},
            {"key": "setup", "phase": "Start", "after": ["kickoff"], "required": False},
            {
                "key": "first_record",
                "phase": "Use",
                "after": ["kickoff", "setup"],
                "kind": CompletionKind.FIRST_EVENT,
                "rule": {"event_type": "attendance.registered"},
            },
        ],
        target_days=45,
        follow_ups=[("Day 7 check-in", 7, OwnerSide.CSM), ("Survey", 30, OwnerSide.CUSTOMER)],
    )
    Resource.objects.create(
        milestone=v1.milestones.get(key="setup"),
        kind=ResourceKind.VIDEO,
        title="Setup video",
        url="https://example.com/setup",
        language="ja",
    )

    v2 = new_draft(v1.program)

    assert (v2.number, v2.status, v2.target_days) == (2, VersionStatus.DRAFT, 45)
    assert [(p.name, p.position) for p in v2.phases.order_by("position")] == [
        ("Start", 0),
        ("Use", 1),
    ]
    copied = {m.key: m for m in v2.milestones.all()}
    assert set(copied) == {"kickoff", "setup", "first_record"}
    assert all(m.phase.version_id == v2.pk for m in copied.values())
    assert copied["setup"].required is False
    assert copied["kickoff"].due_offset_days == 3
    assert copied["first_record"].completion == {"event_type": "attendance.registered"}
    # Dependencies point at the copies, never at the milestones of version 1.
    assert set(copied["first_record"].depends_on.all()) == {copied["kickoff"], copied["setup"]}
    assert list(copied["setup"].depends_on.all()) == [copied["kickoff"]]
    resource = Resource.objects.get(milestone__version=v2)
    assert (resource.title, resource.kind, resource.language) == ("Setup video", "video", "ja")
    assert [(f.name, f.day_offset, f.owner_side) for f in v2.follow_ups.all()] == [
        ("Day 7 check-in", 7, "csm"),
        ("Survey", 30, "customer"),
    ]
    # Version 1 is untouched.
    assert v1.milestones.count() == 3
    assert Resource.objects.filter(milestone__version=v1).count() == 1


@pytest.mark.django_db
def test_asking_for_a_draft_twice_returns_the_same_draft() -> None:
    v1 = make_version([{"key": "kickoff"}])
    first = new_draft(v1.program)
    assert new_draft(v1.program) == first
    assert v1.program.versions.count() == 2


@pytest.mark.django_db
def test_publishing_retires_the_previously_published_version() -> None:
    v1 = make_version([{"key": "kickoff"}])
    v2 = new_draft(v1.program)
    publish(v2)
    v1.refresh_from_db()
    v2.refresh_from_db()
    assert (v1.status, v2.status) == (VersionStatus.RETIRED, VersionStatus.PUBLISHED)
    assert v2.published_at is not None


@pytest.mark.django_db
def test_only_a_draft_can_be_published() -> None:
    v1 = make_version([{"key": "kickoff"}])
    with pytest.raises(ValidationError), translation.override("en"):
        publish(v1)


@pytest.mark.django_db
def test_a_version_without_milestones_cannot_be_published() -> None:
    program = create_program(key="empty", name="Empty")
    draft = program.versions.get()
    with translation.override("en"), pytest.raises(ValidationError) as error:
        publish(draft)
    assert error.value.messages == ["The version has no milestone."]
    draft.refresh_from_db()
    assert draft.status == VersionStatus.DRAFT


@pytest.mark.django_db
def test_a_version_with_only_optional_milestones_cannot_be_published() -> None:
    draft = make_version([{"key": "tour", "required": False}], published=False)
    assert _en_problems(draft) == [
        "At least one milestone must be required (a plan completes when they are done)."
    ]


@pytest.mark.django_db
def test_a_dependency_cycle_is_refused_naming_the_milestones() -> None:
    draft = make_version(
        [
            {"key": "kickoff"},
            {"key": "setup", "after": ["kickoff", "training"]},
            {"key": "training", "after": ["setup"]},
        ],
        published=False,
    )
    problems = _en_problems(draft)
    assert len(problems) == 1
    assert problems[0] in {
        "Dependencies form a cycle: setup → training → setup.",
        "Dependencies form a cycle: training → setup → training.",
    }


@pytest.mark.django_db
def test_a_dependency_on_another_versions_milestone_is_refused() -> None:
    v1 = make_version([{"key": "kickoff"}])
    draft = new_draft(v1.program)
    draft.milestones.get(key="kickoff").depends_on.add(v1.milestones.get(key="kickoff"))
    assert _en_problems(draft) == [
        "Milestone Kickoff (kickoff): depends on a milestone of another version."
    ]


@pytest.mark.django_db
def test_completion_rules_are_checked_for_their_kind_naming_milestone_and_field() -> None:
    MetricDefinition.objects.get_or_create(
        key="seat_utilisation_28d",
        defaults={"name": "Seats", "kind": MetricKind.SEAT_UTILISATION},
    )
    draft = make_version(
        [
            {"key": "first_record", "kind": CompletionKind.FIRST_EVENT, "rule": {}},
            {
                "key": "seats",
                "kind": CompletionKind.METRIC,
                "rule": {"metric": "no_such_metric", "op": "=>", "value": "80%"},
            },
            {
                "key": "seats_ok",
                "kind": CompletionKind.METRIC,
                "rule": {"metric": "seat_utilisation_28d", "op": ">=", "value": 0.8},
            },
            {
                "key": "event_ok",
                "kind": CompletionKind.FIRST_EVENT,
                "rule": {"event_type": "attendance.registered"},
            },
        ],
        published=False,
    )
    assert _en_problems(draft) == [
        "Milestone First Record (first_record), completion rule event_type: "
        "An event type is required.",
        "Milestone Seats (seats), completion rule metric: There is no metric 'no_such_metric'.",
        "Milestone Seats (seats), completion rule op: The comparison must be one of >= > <= < =.",
        "Milestone Seats (seats), completion rule value: The threshold must be a number.",
    ]
    with pytest.raises(ValidationError):
        publish(draft)


@pytest.mark.django_db
def test_a_valid_draft_has_no_problems() -> None:
    draft = make_version(
        [{"key": "kickoff"}, {"key": "setup", "after": ["kickoff"]}], published=False
    )
    assert validation_problems(draft) == []


@pytest.mark.django_db
def test_the_program_is_picked_by_priority_then_the_most_specific_fit() -> None:
    anyone = make_version([{"key": "a"}], key="anyone")
    high = make_version([{"key": "a"}], key="high", touch_model="high")
    high_enterprise = make_version(
        [{"key": "a"}], key="high-enterprise", touch_model="high", segment_key="enterprise"
    )
    tech_first = make_version([{"key": "a"}], key="tech", touch_model="tech", priority=10)
    make_version([{"key": "a"}], key="draft-only", touch_model="low", published=False)
    inactive = make_version([{"key": "a"}], key="inactive", touch_model="low", priority=1)
    Program.objects.filter(pk=inactive.program_id).update(is_active=False)

    def pick(touch: str, segment: str) -> str | None:
        version = pick_version(Customer(name="x", touch_model=touch, segment=segment))
        return version.program.key if version else None

    assert pick("high", "enterprise") == high_enterprise.program.key
    assert pick("high", "smb") == high.program.key
    assert pick("low", "enterprise") == anyone.program.key  # draft and inactive ignored
    assert pick("tech", "smb") == tech_first.program.key
    Program.objects.filter(pk=anyone.program_id).update(touch_model="high")
    assert pick("low", "smb") is None
