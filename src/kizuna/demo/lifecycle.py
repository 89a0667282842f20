"""``demo load``'s lifecycle stage: segments, touch policy, teams, the history, handoffs.

The demo company's CS organisation is set up through the lifecycle services, as a manager
would in Settings: three segments whose rules reproduce the simulated ones, a touch-model
policy that follows the seeds (enterprise high touch throughout; mid-market high touch while
onboarding, low touch after; small businesses tech touch), stage criteria, three teams with
capacities and assignment rules.

Then the customers' past is replayed with its real dates (``customer_story``): onboarding →
adoption the day after the simulated onboarding finished (or when the ``days_since_start``
criterion fired first), → expansion when an upsell or cross-sell closed (by hand) or when the
simulator first saw the customer ready (by the criterion), churned when the contract ended,
reactivated when the simulator brought the customer back and adoption again
``reactivated_days`` later; the touch model follows the policy at each move (so mid-market
customers pass from high to low touch when their onboarding ends); the adoption and
expansion CSMs are assigned on the day their role begins. Everything goes through
``history.record_changes``, one call per day and kind of change for all customers at once,
in date order. Handoffs are opened for the moves of the last months (those of the last month
wait for acknowledgement), two customers get a touch-model override, and finally the
lifecycle runs once for today, so the current values are exactly what the rules say.

Setting up the rules re-evaluates membership on the spot (``save_segment``); those first
evaluations belong to no day of the story, so the replay starts by wiping the lifecycle
history and timeline entries of the demo customers and putting them back to how they began.
"""

import random
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils.translation import gettext as _

from kizuna.core.models import TimelineEntry, TimelineKind
from kizuna.customers.models import Customer, LifecycleStage, TouchModel
from kizuna.demo import names
from kizuna.demo.simulation import SimulatedCustomer

if TYPE_CHECKING:
    from kizuna.demo.load import LoadContext, StageProgress

# -- the set-up ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SegmentRule:
    key: str  # the simulation's segment key (config.SEGMENTS)
    name: str
    expression: str
    description: str


# Employee counts separate the simulated segments (1000+, 100–999, 10–99); the ARR thresholds
# lie above what a smaller segment's customer reaches in the simulation, so the rules
# reproduce the simulated segments while reading like a CS team's own.
SEGMENT_RULES: tuple[SegmentRule, ...] = (
    SegmentRule(
        "enterprise",
        "エンタープライズ",
        "arr >= 10_000_000 or employees >= 1000",
        "大口顧客。専任のCSMが個別に伴走する。",
    ),
    SegmentRule(
        "mid-market",
        "中堅企業",
        "arr >= 3_000_000 or employees >= 100",
        "中堅層。導入期は個別支援、定着後はセミナーと勉強会で支援する。",
    ),
    SegmentRule(
        "smb",
        "小規模企業",
        "true",
        "小規模顧客。チュートリアル・ナレッジベース・メルマガで自動化支援。",
    ),
)

HIGH, LOW, TECH = TouchModel.HIGH.value, TouchModel.LOW.value, TouchModel.TECH.value
ONBOARDING, ADOPTION = LifecycleStage.ONBOARDING.value, LifecycleStage.ADOPTION.value
EXPANSION, CHURNED = LifecycleStage.EXPANSION.value, LifecycleStage.CHURNED.value
REACTIVATED = LifecycleStage.REACTIVATED.value

# segment → stage → touch model (churned customers keep their last touch model).
TOUCH_POLICY: dict[str, dict[str, str]] = {
    "enterprise": {ONBOARDING: HIGH, ADOPTION: HIGH, EXPANSION: HIGH, REACTIVATED: HIGH},
    "mid-market": {ONBOARDING: HIGH, ADOPTION: LOW, EXPANSION: LOW, REACTIVATED: HIGH},
    "smb": {ONBOARDING: TECH, ADOPTION: TECH, EXPANSION: TECH, REACTIVATED: TECH},
}

ADOPTION_AFTER_DAYS = 120  # the second half of ADOPTION_ENTRY
ADOPTION_ENTRY = f"onboarding_completed or days_since_start >= {ADOPTION_AFTER_DAYS}"
# Close to the simulator's "ready for expansion" (config.Expansion.full_utilisation, an
# engaged team, a year in): the nightly run finds the few that grew ready without an upsell.
EXPANSION_ENTRY = (
    "days_since_start >= 365 and metric.seat_utilisation_28d >= 0.9 "
    "and metric.active_days_28d >= 20"
)
REACTIVATED_DAYS = 90
GROWTH_KINDS = frozenset({"upsell", "tier_up", "seats_added", "cross_sell"})


@dataclass(frozen=True)
class TeamSpec:
    name: str
    role: str  # the CS role the team covers (OwnerRole)
    members: tuple[tuple[str, int, str, str], ...]  # (username, capacity, languages, regions)


# Capacities in load points (high touch 5, low touch 2, tech touch 0.5 per customer): the
# adoption CSMs run close to full, as adoption teams do.
TEAMS: tuple[TeamSpec, ...] = (
    TeamSpec(
        "オンボーディングチーム",
        "onboarding",
        (("onboarding", 25, "ja", "関東,関西,中部"), ("kobayashi", 25, "ja,en", "")),
    ),
    TeamSpec(
        "アダプションチーム",
        "adoption",
        (("adoption", 130, "ja", ""), ("kato", 130, "ja,en", "")),
    ),
    TeamSpec("エキスパンションチーム", "expansion", (("expansion", 200, "ja,en", ""),)),
)


@dataclass(frozen=True)
class RuleSpec:
    name: str
    role: str
    expression: str
    team: str
    method: str
    match_language: bool = True
    match_region: bool = False


ASSIGNMENT_RULES: tuple[RuleSpec, ...] = (
    RuleSpec(
        "オンボーディング: 担当地域・言語が合うCSMのうち空きの多い順",
        "onboarding",
        "",
        "オンボーディングチーム",
        "least_loaded",
        match_region=True,
    ),
    RuleSpec(
        "アダプション: ハイタッチ・ロータッチは空きの多い順",
        "adoption",
        'touch_model in ("high", "low")',
        "アダプションチーム",
        "least_loaded",
    ),
    RuleSpec(
        "アダプション: テックタッチは順番に",
        "adoption",
        'touch_model = "tech"',
        "アダプションチーム",
        "round_robin",
    ),
    RuleSpec(
        "エキスパンション: エキスパンションチーム",
        "expansion",
        "",
        "エキスパンションチーム",
        "least_loaded",
    ),
)

# Handoffs are opened for the moves of the last HANDOFF_DAYS days. Those of the last
# PENDING_DAYS, and the PENDING_LATEST latest to each role, wait for acknowledgement; the
# others were acknowledged a few days after.
HANDOFF_DAYS = 120
PENDING_DAYS = 30
PENDING_LATEST = 2

# What the lifecycle stage writes on the timeline (besides the onboarding.completed entries
# the timeline stage writes from the simulation).
TIMELINE_KINDS = (
    TimelineKind.SEGMENT_CHANGED,
    TimelineKind.STAGE_CHANGED,
    TimelineKind.TOUCH_MODEL_CHANGED,
    TimelineKind.OWNER_CHANGED,
    TimelineKind.ROLE_HANDOFF_CREATED,
    TimelineKind.ROLE_HANDOFF_ACKNOWLEDGED,
)


# -- the story of one customer (no database) ------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One change of one dimension of a customer on a day of its story.

    ``value`` is the stage, touch model or segment key, or a CSM's username for the owner
    dimensions. ``why`` names the reason (see ``Reasons``); ``actor`` a username for manual
    moves.
    """

    day: date
    dimension: str
    value: str
    source: str
    why: str
    actor: str | None = None


@dataclass
class Story:
    """How a customer began (per dimension) and what changed after, in date order."""

    initial: dict[str, str]
    changes: list[Change]

    def final(self, dimension: str) -> str:
        value = self.initial[dimension]
        for change in self.changes:
            if change.dimension == dimension:
                value = change.value
        return value


# Dimension values (lifecycle.models.Dimension) — kept literal so the story needs no database.
SEGMENT, STAGE, TOUCH = "segment", "stage", "touch_model"
OWNER = {"onboarding": "owner.onboarding", "adoption": "owner.adoption",
         "expansion": "owner.expansion"}  # fmt: skip
RULE, MANUAL, ASSIGNMENT = "rule", "manual", "assignment"

# Same-day order of the triggers: a churn beats everything, growth and readiness come last.
_PRIORITY = {"churn": 0, "reactivation": 1, "completed": 2, "days": 3, "reactivated_done": 4,
             "growth": 5, "ready": 6}  # fmt: skip
READY_AFTER_DAYS = 365  # the first part of EXPANSION_ENTRY


def ready_weeks(c: SimulatedCustomer, *, utilisation: float, engagement: float) -> list[date]:
    """The first days of the weeks in which the simulator saw the customer ready to expand: a
    year in, its seats (nearly) all given out and its engagement high (``_Life._stage``)."""
    seats = np.maximum(c.seats, 1)
    weeks = np.arange(len(c.engagement))
    ready = (
        (c.users / seats >= utilisation)
        & (c.engagement >= engagement)
        & (weeks * 7 >= READY_AFTER_DAYS)
    )
    return [c.first_start + timedelta(days=7 * int(week)) for week in np.flatnonzero(ready)]


def expansion_owner(c: SimulatedCustomer, expansion_csms: tuple[str, ...]) -> str:
    """The simulated expansion CSM; tech-touch customers have none, so one is picked for them."""
    return c.owners[2] or expansion_csms[c.number % len(expansion_csms)]


def customer_story(
    c: SimulatedCustomer,
    *,
    today: date,
    expansion_csms: tuple[str, ...],
    ready_utilisation: float = 0.9,
    ready_engagement: float = 0.6,
    policy: Mapping[str, Mapping[str, str]] = TOUCH_POLICY,
    adoption_after_days: int | None = ADOPTION_AFTER_DAYS,
    reactivated_days: int = REACTIVATED_DAYS,
) -> Story:
    """The customer's segment, stage, touch model and owners over time, up to the day before
    ``today`` (the lifecycle run of ``today`` decides that day).

    Adoption customers move to expansion by hand when an upsell or cross-sell closes, or by
    the expansion criterion in the first week the simulator saw them ready (``ready_weeks``).
    At most one stage move per day (as the nightly rules do); the touch model follows
    ``policy`` at each move (churned customers keep theirs); an owner is assigned when the
    customer first enters the role's stage.
    """
    segment = c.segment
    initial = {
        SEGMENT: segment,
        STAGE: ONBOARDING,
        TOUCH: policy[segment][ONBOARDING],
        OWNER["onboarding"]: c.owners[0],
        OWNER["adoption"]: "",
        OWNER["expansion"]: "",
    }
    triggers: list[tuple[date, int, str, Any]] = []

    def add(day: date, kind: str, detail: Any = None) -> None:
        if day < today:
            triggers.append((day, _PRIORITY[kind], kind, detail))

    if adoption_after_days is not None:
        add(c.first_start + timedelta(days=adoption_after_days), "days")
    stint = 0
    for h in c.happenings:
        if h.kind == "onboarding_completed" and not h.payload.get("reactivated"):
            # Noted during the day; the nightly run that sees it moves the customer next day.
            add(h.day + timedelta(days=1), "completed")
        elif h.kind == "churn":
            add(h.day, "churn")
        elif h.kind == "reactivation":
            stint += 1
            add(h.day, "reactivation")
            add(h.day + timedelta(days=reactivated_days), "reactivated_done", stint)
        elif h.kind in GROWTH_KINDS:
            add(h.day, "growth", h.title)
    for day in ready_weeks(c, utilisation=ready_utilisation, engagement=ready_engagement):
        add(day, "ready")
    triggers.sort(key=lambda t: (t[0], t[1]))

    changes: list[Change] = []
    state = dict(initial)
    moved_on: date | None = None
    current_stint = 0

    def move(day: date, stage: str, source: str, why: str, actor: str | None = None) -> None:
        nonlocal moved_on
        moved_on = day
        changes.append(Change(day, STAGE, stage, source, why, actor))
        state[STAGE] = stage
        touch = policy[segment].get(stage)
        if touch is not None and touch != state[TOUCH]:
            changes.append(Change(day, TOUCH, touch, RULE, f"policy:{stage}"))
            state[TOUCH] = touch
        role = {ADOPTION: "adoption", EXPANSION: "expansion"}.get(stage)
        if role and not state[OWNER[role]]:
            owner = c.owners[1] if role == "adoption" else expansion_owner(c, expansion_csms)
            why = f"assignment:{role}:{state[TOUCH]}"
            changes.append(Change(day, OWNER[role], owner, ASSIGNMENT, why))
            state[OWNER[role]] = owner

    for day, _priority, kind, detail in triggers:
        stage = state[STAGE]
        if moved_on == day and kind != "churn":
            continue  # one step per day
        if kind == "churn" and stage != CHURNED:
            move(day, CHURNED, RULE, "churn")
        elif kind == "reactivation" and stage == CHURNED:
            current_stint += 1
            move(day, REACTIVATED, RULE, "reactivation")
        elif kind in ("completed", "days") and stage == ONBOARDING:
            move(day, ADOPTION, RULE, "adoption_entry")
        elif kind == "reactivated_done" and stage == REACTIVATED and detail == current_stint:
            move(day, ADOPTION, RULE, "reactivated_done")
        elif kind == "growth" and stage == ADOPTION:
            move(day, EXPANSION, MANUAL, f"growth:{detail}", actor=state[OWNER["adoption"]])
        elif kind == "ready" and stage == ADOPTION:
            move(day, EXPANSION, RULE, "expansion_entry")
    return Story(initial=initial, changes=changes)


# -- writing it -----------------------------------------------------------------------------------


class Reasons:
    """The history reasons, worded as the lifecycle rules word theirs."""

    def __init__(
        self, *, rule_names: Mapping[tuple[str, str], str], policy_reasons: Mapping[str, str]
    ):
        from kizuna.lifecycle.stages import CRITERIA_FIELDS

        self.fixed = {
            "churn": _("No subscription in service"),
            "reactivation": _("A new subscription is in service after churn"),
            "reactivated_done": _("Reactivated for %(days)d days or more")
            % {"days": REACTIVATED_DAYS},
            "adoption_entry": _("%(criterion)s: %(expression)s")
            % {"criterion": CRITERIA_FIELDS["adoption_entry"], "expression": ADOPTION_ENTRY},
            "expansion_entry": _("%(criterion)s: %(expression)s")
            % {"criterion": CRITERIA_FIELDS["expansion_entry"], "expression": EXPANSION_ENTRY},
        }
        self.rule_names = rule_names
        self.policy_reasons = policy_reasons

    def text(self, why: str, segment: str) -> str:
        kind, _sep, detail = why.partition(":")
        if kind == "policy":
            return self.policy_reasons.get(f"{segment}:{detail}", "")
        if kind == "assignment":
            role, _sep, touch = detail.partition(":")
            return self.rule_names.get((role, touch), "")
        if kind == "growth":
            return detail
        return self.fixed[kind]


def load_lifecycle(ctx: "LoadContext", progress: "StageProgress") -> None:
    """The lifecycle stage of ``demo load`` (see the module docstring)."""
    from kizuna.lifecycle.jobs import run_lifecycle
    from kizuna.lifecycle.models import HandoffStatus, RoleHandoff

    reasons = set_up(ctx)
    progress(1, 5)
    stories = {
        ctx.customer_ids[c.external_id]: customer_story(
            c,
            today=ctx.today,
            expansion_csms=ctx.config.expansion_csms,
            ready_utilisation=ctx.config.expansion.full_utilisation,
            ready_engagement=ctx.config.expansion.upsell_engagement,
        )
        for c in ctx.simulated
    }
    segments = {pk: story.initial[SEGMENT] for pk, story in stories.items()}
    with transaction.atomic():
        reset(ctx, stories)
        ctx.counts["lifecycle_changes"] = replay(ctx, stories, segments, reasons)
    progress(2, 5)
    write_overrides(ctx, stories)
    progress(3, 5)
    write_handoffs(ctx, stories)
    progress(4, 5)
    run = run_lifecycle(as_of=ctx.today)
    ctx.counts.update({f"lifecycle_run_{key}": int(value) for key, value in run.counts.items()})
    ctx.counts["handoffs_waiting"] = RoleHandoff.objects.filter(
        status=HandoffStatus.PENDING
    ).count()
    progress(5, 5)


def set_up(ctx: "LoadContext") -> Reasons:
    """Segments, touch policy, stage criteria, teams, CSM profiles and assignment rules.

    The segments, the policy and the stage criteria are what the story follows, so they are
    (re)written; teams, profiles and assignment rules that exist already (by name, by user)
    are left as they are.
    """
    from kizuna.lifecycle.assignment import save_assignment_rule
    from kizuna.lifecycle.models import AssignmentRule, CsmProfile, Segment, Team, TouchPolicy
    from kizuna.lifecycle.segments import save_segment
    from kizuna.lifecycle.stages import save_stage_settings
    from kizuna.lifecycle.touch import policy_reason, save_policy

    manager = ctx.staff["manager"]
    with transaction.atomic():
        for position, rule in enumerate(SEGMENT_RULES, start=1):
            save_segment(
                name=rule.name, key=rule.key, expression=rule.expression,
                description=rule.description, position=position, actor=manager, as_of=ctx.today,
                segment=Segment.objects.filter(key=rule.key).first(),
            )  # fmt: skip
        save_policy(
            {
                (segment, stage): touch
                for segment, stages in TOUCH_POLICY.items()
                for stage, touch in stages.items()
            }
        )
        save_stage_settings(
            adoption_entry=ADOPTION_ENTRY,
            expansion_entry=EXPANSION_ENTRY,
            reactivated_days=REACTIVATED_DAYS,
            automatic_stages=True,
        )
        teams: dict[str, Team] = {}
        for spec in TEAMS:
            team = Team.objects.filter(name=spec.name).first()
            if team is None:
                team = Team(name=spec.name, manager=manager)
                team.full_clean()
                team.save()
            teams[spec.name] = team
            for username, capacity, languages, regions in spec.members:
                if CsmProfile.objects.filter(user=ctx.staff[username]).exists():
                    continue
                profile = CsmProfile(
                    user=ctx.staff[username], team=team, capacity=capacity,
                    languages=languages, regions=regions,
                )  # fmt: skip
                profile.full_clean()
                profile.save()
        rule_names: dict[tuple[str, str], str] = {}
        for position, rule_spec in enumerate(ASSIGNMENT_RULES, start=1):
            if not AssignmentRule.objects.filter(name=rule_spec.name).exists():
                save_assignment_rule(
                    rule=None,
                    fields={
                        "name": rule_spec.name, "position": position * 10,
                        "role": rule_spec.role, "expression": rule_spec.expression,
                        "team": teams[rule_spec.team], "method": rule_spec.method,
                        "match_language": rule_spec.match_language,
                        "match_region": rule_spec.match_region,
                    },
                )  # fmt: skip
            for touch in (HIGH, LOW, TECH):  # the demo's rules test the touch model or nothing
                if not rule_spec.expression or f'"{touch}"' in rule_spec.expression:
                    rule_names.setdefault((rule_spec.role, touch), rule_spec.name)
    policies = {(p.segment_key, p.stage): p for p in TouchPolicy.objects.all()}
    names_by_key = {rule.key: rule.name for rule in SEGMENT_RULES}
    ctx.counts.update(
        segments=len(SEGMENT_RULES),
        touch_policies=len(policies),
        teams=len(TEAMS),
        csm_profiles=sum(len(spec.members) for spec in TEAMS),
        assignment_rules=len(ASSIGNMENT_RULES),
    )
    return Reasons(
        rule_names=rule_names,
        policy_reasons={
            f"{segment}:{stage}": policy_reason(policy, names_by_key)
            for (segment, stage), policy in policies.items()
        },
    )


def reset(ctx: "LoadContext", stories: Mapping[int, Story]) -> None:
    """Back to how each customer began: no lifecycle history, no lifecycle timeline entries,
    the first stage, touch model and owners on the customer (the story's ``initial``)."""
    from kizuna.lifecycle.history import sync_current_state
    from kizuna.lifecycle.models import StateHistory

    ids = sorted(stories)
    groups: dict[tuple[str, str, str, str], list[int]] = defaultdict(list)
    for pk, story in stories.items():
        start = story.initial
        groups[(start[SEGMENT], start[STAGE], start[TOUCH], start[OWNER["onboarding"]])].append(pk)
    for offset in range(0, len(ids), 500):
        chunk = ids[offset : offset + 500]
        StateHistory.objects.filter(customer_id__in=chunk).delete()
        TimelineEntry.objects.filter(customer_id__in=chunk, kind__in=TIMELINE_KINDS).delete()
    for (segment, stage, touch, owner), members in groups.items():
        for offset in range(0, len(members), 500):
            Customer.objects.filter(pk__in=members[offset : offset + 500]).update(
                segment=segment,
                lifecycle_stage=stage,
                touch_model=touch,
                onboarding_owner=ctx.staff[owner],
                adoption_owner=None,
                expansion_owner=None,
            )
    # The first rows, "since the beginning".
    sync_current_state(customer_ids=ids, on=ctx.today)


_DIMENSION_ORDER = {
    STAGE: 0, TOUCH: 1, OWNER["onboarding"]: 2, OWNER["adoption"]: 3, OWNER["expansion"]: 4,
    SEGMENT: 5,
}  # fmt: skip


def replay(
    ctx: "LoadContext",
    stories: Mapping[int, Story],
    segments: Mapping[int, str],
    reasons: Reasons,
) -> int:
    """Write every story's changes in date order, one ``record_changes`` per day, dimension,
    source, reason and actor for all the customers concerned; returns the changes written."""
    from kizuna.lifecycle.history import record_changes

    groups: dict[tuple[date, int, str, str, str, str], dict[int, str]] = defaultdict(dict)
    for pk, story in stories.items():
        for change in story.changes:
            value = change.value
            if change.dimension.startswith("owner."):
                value = str(ctx.staff[value].pk) if value else ""
            reason = reasons.text(change.why, segments[pk])
            key = (
                change.day, _DIMENSION_ORDER[change.dimension], change.dimension,
                change.source, reason, change.actor or "",
            )  # fmt: skip
            groups[key][pk] = value
    written = 0
    for key in sorted(groups):
        day, _order, dimension, source, reason, actor = key
        written += len(
            record_changes(
                dimension=dimension,
                values=groups[key],
                on=day,
                source=source,
                reason=reason,
                actor=ctx.staff[actor] if actor else None,
            )
        )
    return written


# -- overrides and handoffs -----------------------------------------------------------------------


def _last_change(story: Story) -> date | None:
    return max((change.day for change in story.changes), default=None)


def write_overrides(ctx: "LoadContext", stories: Mapping[int, Story]) -> None:
    """Two touch-model overrides a CSM set by hand: a mid-market customer whose administrator
    just changed gets high touch until the newcomer is trained (with an expiry), and the
    largest small business in adoption gets low touch for its company-wide roll-out.

    They are dated in the past, so they are written as ``set_override`` writes them (the
    override row and its history) rather than through it, which acts on the real today.
    """
    from kizuna.lifecycle.history import record_changes
    from kizuna.lifecycle.models import ChangeSource, Dimension, TouchOverride

    by_id = {ctx.customer_ids[c.external_id]: c for c in ctx.simulated}
    zone = ZoneInfo(settings.TIME_ZONE)
    chosen: list[tuple[int, str, str, date, date | None, str]] = []
    recent = next(
        (pk for pk, c in by_id.items() if c.script == "admin_changed_recently"), None
    ) or _pick(ctx, stories, by_id, segment="mid-market", stage=ADOPTION, touch=LOW)
    if recent is not None:
        chosen.append((
            recent, HIGH,
            "3週間前の管理者交代以降、利用が減少している。新任の管理者へのトレーニングが終わるまで、"
            "ハイタッチで個別に支援する。",
            ctx.today - timedelta(days=3), ctx.today + timedelta(days=45),
            by_id[recent].owners[1],
        ))  # fmt: skip
    small = _pick(ctx, stories, by_id, segment="smb", stage=ADOPTION, touch=TECH, largest=True)
    if small is not None:
        chosen.append((
            small, LOW,
            "小規模ながら全社展開を計画中。月1回の活用勉強会に招待し、ロータッチで定着を支援する。",
            ctx.today - timedelta(days=60), None, by_id[small].owners[1],
        ))  # fmt: skip
    for pk, touch, reason, day, expires, actor in chosen:
        last = _last_change(stories[pk])
        day = max(day, (last or day) + timedelta(days=1))
        if day >= ctx.today:
            continue
        user = ctx.staff[actor]
        TouchOverride.objects.create(
            customer_id=pk, touch_model=touch, reason=reason, expires_on=expires,
            created_by=user, created_at=datetime.combine(day, time(10, 30), zone),
        )  # fmt: skip
        record_changes(
            dimension=Dimension.TOUCH_MODEL, values={pk: touch}, on=day,
            source=ChangeSource.OVERRIDE, reason=reason, actor=user,
        )  # fmt: skip
    ctx.counts["touch_overrides"] = len(chosen)


def _pick(
    ctx: "LoadContext",
    stories: Mapping[int, Story],
    by_id: Mapping[int, SimulatedCustomer],
    *,
    segment: str,
    stage: str,
    touch: str,
    largest: bool = False,
) -> int | None:
    """A customer of ``segment`` that ends its story in ``stage`` with ``touch`` and has not
    moved in the last 90 days (the most seats with ``largest``, else the first)."""
    fits = [
        pk
        for pk, story in stories.items()
        if story.initial[SEGMENT] == segment
        and story.final(STAGE) == stage
        and story.final(TOUCH) == touch
        and (_last_change(story) or date.min) < ctx.today - timedelta(days=90)
    ]
    if not fits:
        return None
    if largest:
        return max(fits, key=lambda pk: (int(by_id[pk].seats[-1]), -pk))
    return min(fits)


def write_handoffs(ctx: "LoadContext", stories: Mapping[int, Story]) -> None:
    """Handoffs for the stage moves of the last ``HANDOFF_DAYS`` days, opened as the nightly
    run opens them, their notes completed by the sender; the older ones acknowledged with a
    reply a few days later, those of the last ``PENDING_DAYS`` still waiting."""
    from kizuna.lifecycle.handoffs import acknowledge_handoff, open_stage_handoffs, update_handoff
    from kizuna.lifecycle.models import HandoffReason, RoleHandoff

    since = ctx.today - timedelta(days=HANDOFF_DAYS)
    by_day: dict[date, list[tuple[int, str, str]]] = defaultdict(list)
    for pk, story in stories.items():
        stage = story.initial[STAGE]
        for change in story.changes:
            if change.dimension != STAGE:
                continue
            if change.day >= since:
                by_day[change.day].append((pk, stage, change.value))
            stage = change.value
    numbers = {ctx.customer_ids[c.external_id]: c.number for c in ctx.simulated}
    zone = ZoneInfo(settings.TIME_ZONE)
    manager = ctx.staff["manager"]
    users = {user.pk: user for user in ctx.staff.values()}
    latest: dict[str, list[tuple[int, date]]] = defaultdict(list)  # stage → moves, latest first
    for day in sorted(by_day, reverse=True):
        for pk, _before, after in sorted(by_day[day]):
            latest[after].append((pk, day))
    waiting = {move for stage in (ADOPTION, EXPANSION) for move in latest[stage][:PENDING_LATEST]}
    pending = acknowledged = 0
    with transaction.atomic():
        for day in sorted(by_day):
            open_stage_handoffs(by_day[day], on=day)
            opened = RoleHandoff.objects.filter(
                customer_id__in=[pk for pk, _before, _after in by_day[day]],
                reason=HandoffReason.STAGE_CHANGE,
                created_at__date=day,
            ).order_by("customer_id")
            for handoff in opened:
                rng = random.Random(f"{ctx.seed}:{numbers[handoff.customer_id]}:handoff")  # noqa: S311 - reproducible demo text
                texts = _handoff_texts(handoff.to_role)
                sender = users.get(handoff.from_user_id or 0, manager)
                update_handoff(
                    handoff=handoff, user=sender,
                    goals_achieved=rng.choice(texts["goals"]),
                    open_issues=rng.choice(texts["issues"]),
                    risks=rng.choice(texts["risks"]), notes=rng.choice(texts["notes"]),
                )  # fmt: skip
                answered = day + timedelta(days=rng.randint(1, 4))
                recent = (ctx.today - day).days < PENDING_DAYS or answered >= ctx.today
                if recent or (handoff.customer_id, day) in waiting:
                    pending += 1
                    continue
                receiver = users.get(handoff.to_user_id or 0, manager)
                acknowledge_handoff(handoff, receiver, rng.choice(texts["replies"]))
                when = datetime.combine(answered, time(rng.randint(9, 17), 15 * rng.randint(0, 3)),
                                        zone)  # fmt: skip
                RoleHandoff.objects.filter(pk=handoff.pk).update(acknowledged_at=when)
                TimelineEntry.objects.filter(
                    customer_id=handoff.customer_id,
                    kind=TimelineKind.ROLE_HANDOFF_ACKNOWLEDGED,
                    payload__handoff=handoff.pk,
                ).update(occurred_at=when)
                acknowledged += 1
    ctx.counts["handoffs_pending"] = pending
    ctx.counts["handoffs_acknowledged"] = acknowledged


def _handoff_texts(to_role: str) -> dict[str, tuple[str, ...]]:
    if to_role == "expansion":
        return {
            "goals": names.EXPANSION_HANDOFF_GOALS, "issues": names.EXPANSION_HANDOFF_ISSUES,
            "risks": names.EXPANSION_HANDOFF_RISKS, "notes": names.EXPANSION_HANDOFF_NOTES,
            "replies": names.EXPANSION_HANDOFF_REPLIES,
        }  # fmt: skip
    return {
        "goals": names.ADOPTION_HANDOFF_GOALS, "issues": names.ADOPTION_HANDOFF_ISSUES,
        "risks": names.ADOPTION_HANDOFF_RISKS, "notes": names.ADOPTION_HANDOFF_NOTES,
        "replies": names.ADOPTION_HANDOFF_REPLIES,
    }  # fmt: skip
