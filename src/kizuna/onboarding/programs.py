"""Onboarding programs and their versions: create, copy into a draft, validate and publish.

Only a draft is edited; publishing freezes it for new plans and retires the previously
published version of the program. Plans keep the version they were made from, so reports
compare versions (PDCA). Services raise ``ValidationError`` with translated messages.
"""

from collections.abc import Sequence
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from kizuna.core.models import User
from kizuna.customers.models import Customer
from kizuna.onboarding.models import (
    CompletionKind,
    FollowUp,
    Milestone,
    Phase,
    Program,
    ProgramVersion,
    Resource,
    VersionStatus,
)

METRIC_OPS = (">=", ">", "<=", "<", "=")


@transaction.atomic
def create_program(
    *,
    key: str,
    name: str,
    description: str = "",
    touch_model: str = "",
    segment_key: str = "",
    priority: int = 100,
    target_days: int = 60,
    actor: User | None = None,
) -> Program:
    """Create a program with an empty draft version 1; ValidationError names the bad field."""
    program = Program(
        key=key,
        name=name,
        description=description,
        touch_model=touch_model,
        segment_key=segment_key,
        priority=priority,
    )
    program.full_clean()
    program.save()
    version = ProgramVersion(program=program, number=1, target_days=target_days, created_by=actor)
    version.full_clean()
    version.save()
    return program


def ensure_draft(version: ProgramVersion) -> None:
    """Raise unless the version can still be edited (only drafts can)."""
    if version.status != VersionStatus.DRAFT:
        raise ValidationError(
            _("Version %(number)s is %(status)s: only a draft can be changed.")
            % {"number": version.number, "status": version.get_status_display()}
        )


@transaction.atomic
def new_draft(program: Program, *, actor: User | None = None) -> ProgramVersion:
    """A draft copy (phases, milestones, dependencies, resources, follow-ups) of the latest version.

    The copy gets the next number. When the program already has a draft, that draft is
    returned unchanged (there is at most one version being edited).
    """
    latest = (
        ProgramVersion.objects.select_for_update()
        .filter(program=program)
        .order_by("-number")
        .first()
    )
    if latest is not None and latest.status == VersionStatus.DRAFT:
        return latest
    number = (latest.number if latest else 0) + 1
    draft = ProgramVersion.objects.create(
        program=program,
        number=number,
        target_days=latest.target_days if latest else 60,
        created_by=actor,
    )
    if latest is not None:
        _copy_contents(latest, draft)
    return draft


def _copy_contents(source: ProgramVersion, target: ProgramVersion) -> None:
    phases = list(source.phases.order_by("position", "id"))
    new_phases = Phase.objects.bulk_create(
        [Phase(version=target, name=p.name, position=p.position) for p in phases]
    )
    phase_map = {old.pk: new.pk for old, new in zip(phases, new_phases, strict=True)}

    milestones = list(source.milestones.order_by("id"))
    new_milestones = Milestone.objects.bulk_create(
        [
            Milestone(
                version=target,
                phase_id=phase_map[m.phase_id],
                key=m.key,
                name=m.name,
                description=m.description,
                owner_side=m.owner_side,
                due_offset_days=m.due_offset_days,
                required=m.required,
                position=m.position,
                completion_kind=m.completion_kind,
                completion=dict(m.completion),
            )
            for m in milestones
        ]
    )
    milestone_map = {old.pk: new.pk for old, new in zip(milestones, new_milestones, strict=True)}

    through = Milestone.depends_on.through
    links = through.objects.filter(from_milestone__version=source).values_list(
        "from_milestone_id", "to_milestone_id"
    )
    through.objects.bulk_create(
        [
            through(from_milestone_id=milestone_map[src], to_milestone_id=milestone_map[dst])
            for src, dst in links
            if dst in milestone_map  # a dependency outside the version is not carried over
        ]
    )
    Resource.objects.bulk_create(
        [
            Resource(
                milestone_id=milestone_map[r.milestone_id],
                kind=r.kind,
                title=r.title,
                url=r.url,
                language=r.language,
            )
            for r in Resource.objects.filter(milestone__version=source).order_by("id")
        ]
    )
    FollowUp.objects.bulk_create(
        [
            FollowUp(
                version=target,
                name=f.name,
                day_offset=f.day_offset,
                owner_side=f.owner_side,
                description=f.description,
            )
            for f in source.follow_ups.order_by("day_offset", "id")
        ]
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def completion_rule_problems(kind: str, rule: Any) -> dict[str, str]:
    """What is wrong with a completion rule, by field of the rule; {} when it is valid.

    ``first_event`` needs ``event_type``; ``metric`` needs ``metric`` (an existing metric
    key), ``op`` (one of >=, >, <=, <, =) and ``value`` (a number).
    """
    from kizuna.analytics.models import MetricDefinition

    if kind not in CompletionKind.values:
        return {"completion_kind": _("Unknown completion kind %(kind)r.") % {"kind": kind}}
    if kind == CompletionKind.MANUAL:
        return {}
    if not isinstance(rule, dict):
        return {"completion": _("The completion rule must be an object.")}
    problems: dict[str, str] = {}
    if kind == CompletionKind.FIRST_EVENT:
        event_type = rule.get("event_type")
        if not isinstance(event_type, str) or not event_type.strip():
            problems["event_type"] = _("An event type is required.")
        return problems
    metric = rule.get("metric")
    if not isinstance(metric, str) or not metric.strip():
        problems["metric"] = _("A metric is required.")
    elif not MetricDefinition.objects.filter(key=metric).exists():
        problems["metric"] = _("There is no metric %(key)r.") % {"key": metric}
    if rule.get("op") not in METRIC_OPS:
        problems["op"] = _("The comparison must be one of %(ops)s.") % {"ops": " ".join(METRIC_OPS)}
    if not _is_number(rule.get("value")):
        problems["value"] = _("The threshold must be a number.")
    return problems


def _cycle(edges: dict[int, list[int]]) -> list[int]:
    """A dependency cycle as a list of milestone ids (first repeated at the end), or []."""
    state: dict[int, int] = {}  # 1 visiting, 2 done
    stack: list[int] = []

    def visit(node: int) -> list[int]:
        state[node] = 1
        stack.append(node)
        for nxt in edges.get(node, []):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return []

    for node in sorted(edges):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return []


def validation_problems(version: ProgramVersion) -> list[str]:
    """What prevents publishing the version, each naming the milestone and field; [] when fine."""
    problems: list[str] = []
    milestones = {m.pk: m for m in version.milestones.select_related("phase").order_by("id")}
    if not milestones:
        return [_("The version has no milestone.")]
    if not any(m.required for m in milestones.values()):
        problems.append(
            _("At least one milestone must be required (a plan completes when they are done).")
        )
    through = Milestone.depends_on.through
    edges: dict[int, list[int]] = {pk: [] for pk in milestones}
    for src, dst in through.objects.filter(from_milestone__version=version).values_list(
        "from_milestone_id", "to_milestone_id"
    ):
        if dst not in milestones:
            problems.append(
                _("Milestone %(name)s (%(key)s): depends on a milestone of another version.")
                % {"name": milestones[src].name, "key": milestones[src].key}
            )
            continue
        edges[src].append(dst)
    for milestone in milestones.values():
        if milestone.phase.version_id != version.pk:
            problems.append(
                _("Milestone %(name)s (%(key)s): its phase belongs to another version.")
                % {"name": milestone.name, "key": milestone.key}
            )
        for field, message in completion_rule_problems(
            milestone.completion_kind, milestone.completion
        ).items():
            problems.append(
                _("Milestone %(name)s (%(key)s), completion rule %(field)s: %(message)s")
                % {"name": milestone.name, "key": milestone.key, "field": field, "message": message}
            )
    cycle = _cycle(edges)
    if cycle:
        problems.append(
            _("Dependencies form a cycle: %(path)s.")
            % {"path": " → ".join(milestones[pk].key for pk in cycle)}
        )
    return problems


@transaction.atomic
def publish(version: ProgramVersion, *, actor: User | None = None) -> ProgramVersion:
    """Publish a draft, retiring the program's published version.

    Raises ValidationError listing every problem (no milestone, none required, dependency
    cycles or dependencies outside the version, invalid completion rules).
    """
    version = ProgramVersion.objects.select_for_update().get(pk=version.pk)
    ensure_draft(version)
    problems = validation_problems(version)
    if problems:
        raise ValidationError(problems)
    ProgramVersion.objects.filter(
        program_id=version.program_id, status=VersionStatus.PUBLISHED
    ).update(status=VersionStatus.RETIRED)
    version.status = VersionStatus.PUBLISHED
    version.published_at = timezone.now()
    version.save(update_fields=["status", "published_at"])
    return version


def published_versions() -> list[ProgramVersion]:
    """Published versions of active programs, in the order ``pick_version`` prefers them."""
    versions = ProgramVersion.objects.filter(
        status=VersionStatus.PUBLISHED, program__is_active=True
    ).select_related("program")
    return sorted(versions, key=_preference)


def _preference(version: ProgramVersion) -> tuple[int, int, str]:
    program = version.program
    specificity = int(bool(program.touch_model)) + int(bool(program.segment_key))
    return (program.priority, -specificity, program.key)


def choose_version(
    versions: Sequence[ProgramVersion], *, touch_model: str, segment: str
) -> ProgramVersion | None:
    """The first of ``published_versions()`` whose program fits the touch model and segment."""
    for version in versions:
        program = version.program
        if program.touch_model not in ("", touch_model):
            continue
        if program.segment_key not in ("", segment):
            continue
        return version
    return None


def pick_version(customer: Customer) -> ProgramVersion | None:
    """The published version of the active program that fits the customer.

    A program fits when its touch model and segment are empty (any) or equal the customer's.
    Among those that fit: the lowest ``priority`` first, then the most specific (touch model
    and segment both set before one of them before neither), then by key.
    """
    return choose_version(
        published_versions(), touch_model=customer.touch_model, segment=customer.segment
    )
