"""CSM load and capacity, and the assignment rules that give unowned customers an owner.

A CSM's *load* is the sum of the touch-model weights (LifecycleSettings) of the customers
they own in the customer's current role (``STAGE_ROLES``); churned customers weigh nothing.
Assignment walks the customers without an owner for their current role, oldest first, and
gives each to a member of the team of the first active rule (by position) of that role whose
condition matches: round robin or least loaded, never above a member's capacity. A customer
that fits nowhere stays unowned and shows on the team page.
"""

import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Case, Count, DecimalField, F, Q, QuerySet, Sum, Value, When

from kizuna.core.models import User
from kizuna.customers.models import Contact, Customer, TouchModel
from kizuna.lifecycle import conditions
from kizuna.lifecycle.history import record_changes
from kizuna.lifecycle.models import (
    OWNER_DIMENSIONS,
    OWNER_FIELDS,
    STAGE_ROLES,
    AssignmentMethod,
    AssignmentRule,
    ChangeSource,
    CsmProfile,
    HandoffStatus,
    LifecycleSettings,
    OwnerRole,
    RoleHandoff,
)

logger = logging.getLogger(__name__)
LOAD = DecimalField(max_digits=14, decimal_places=2)
_CHUNK = 500


def stages_of(role: str) -> list[str]:
    """The lifecycle stages in which ``role`` owns the customer."""
    return [stage for stage, owner_role in STAGE_ROLES.items() if owner_role == role]


def owned_in_current_role(user_id: int) -> Q:
    """A Customer filter: ``user_id`` owns the customer in its current stage's role."""
    query = Q(pk__in=[])
    for role, owner_field in OWNER_FIELDS.items():
        query |= Q(lifecycle_stage__in=stages_of(role), **{f"{owner_field}_id": user_id})
    return query


def without_current_owner() -> Q:
    """A Customer filter: not churned and nobody owns the customer's current stage's role."""
    query = Q(pk__in=[])
    for role, owner_field in OWNER_FIELDS.items():
        query |= Q(lifecycle_stage__in=stages_of(role), **{f"{owner_field}__isnull": True})
    return query


def weight_expression(settings: LifecycleSettings | None = None) -> Case:
    """An annotation: the customer's load weight for its touch model."""
    settings = settings or LifecycleSettings.load()
    return Case(
        When(touch_model=TouchModel.HIGH, then=Value(Decimal(str(settings.high_touch_weight)))),
        When(touch_model=TouchModel.LOW, then=Value(Decimal(str(settings.low_touch_weight)))),
        When(touch_model=TouchModel.TECH, then=Value(Decimal(str(settings.tech_touch_weight)))),
        default=Value(Decimal(str(settings.high_touch_weight))),
        output_field=LOAD,
    )


def points(value: Decimal | float | int) -> str:
    """Load points without trailing zeros: ``Decimal("12.50")`` → ``"12.5"``."""
    return format(Decimal(str(value)).normalize(), "f")


@dataclass(frozen=True)
class CsmLoad:
    """One CSM's book: customers per role, load in points and capacity (None: no profile)."""

    user_id: int
    load: Decimal
    capacity: Decimal | None
    customers: Mapping[str, int]
    team_id: int | None = None
    accepting: bool = False

    @property
    def load_text(self) -> str:
        """The load as people read it: 12.5, not 12.50."""
        return points(self.load)

    @property
    def capacity_text(self) -> str:
        return points(self.capacity) if self.capacity is not None else ""

    @property
    def customer_count(self) -> int:
        return sum(self.customers.values())

    @property
    def utilisation(self) -> float | None:
        """Load / capacity (1.0 is full); None without a profile, infinite at capacity 0."""
        if self.capacity is None:
            return None
        if self.capacity == 0:
            return 0.0 if self.load == 0 else float("inf")
        return float(self.load / self.capacity)

    @property
    def over_capacity(self) -> bool:
        return self.capacity is not None and self.load > self.capacity


def csm_loads(settings: LifecycleSettings | None = None) -> dict[int, CsmLoad]:
    """Every CSM with a profile or a customer: load and customer counts per role, by user id.

    Computed in SQL, one grouped query per role; churned customers are not counted.
    """
    weight = weight_expression(settings)
    loads: dict[int, Decimal] = defaultdict(Decimal)
    counts: dict[int, dict[str, int]] = defaultdict(dict)
    for role, owner_field in OWNER_FIELDS.items():
        rows = (
            Customer.objects.filter(
                lifecycle_stage__in=stages_of(role), **{f"{owner_field}__isnull": False}
            )
            .order_by()
            .values(owner=F(f"{owner_field}_id"))
            .annotate(customers=Count("id"), load=Sum(weight))
        )
        for row in rows:
            loads[row["owner"]] += Decimal(row["load"] or 0)
            counts[row["owner"]][role] = row["customers"]
    profiles = {
        profile.user_id: profile
        for profile in CsmProfile.objects.filter(user__is_active=True).order_by()
    }
    result: dict[int, CsmLoad] = {}
    for user_id in sorted(set(loads) | set(profiles)):
        profile = profiles.get(user_id)
        result[user_id] = CsmLoad(
            user_id=user_id,
            load=loads.get(user_id, Decimal(0)),
            capacity=Decimal(profile.capacity) if profile else None,
            customers={role: counts[user_id].get(role, 0) for role in OwnerRole},
            team_id=profile.team_id if profile else None,
            accepting=profile.accepting if profile else False,
        )
    return result


# --- Planning ----------------------------------------------------------------------------------


def _split(text: str) -> frozenset[str]:
    return frozenset(item.strip().casefold() for item in text.split(",") if item.strip())


@dataclass(frozen=True)
class _Member:
    user_id: int
    capacity: Decimal
    languages: frozenset[str]
    regions: frozenset[str]


@dataclass(frozen=True)
class _Candidate:
    customer_id: int
    role: str
    weight: Decimal
    region: str
    language: str


@dataclass
class Plan:
    """Who gets which customer: ``choices[role][customer_id] = (user_id, rule)``."""

    choices: dict[str, dict[int, tuple[int, AssignmentRule]]] = field(default_factory=dict)
    unplaced: list[int] = field(default_factory=list)
    rules: list[AssignmentRule] = field(default_factory=list)

    @property
    def placed(self) -> int:
        return sum(len(by_customer) for by_customer in self.choices.values())


def _contact_languages(customer_ids: list[int]) -> dict[int, str]:
    """The most common language among each customer's current contacts (ties: by code)."""
    counts: dict[int, Counter[str]] = defaultdict(Counter)
    for start in range(0, len(customer_ids), _CHUNK):
        rows = (
            Contact.objects.filter(
                customer_id__in=customer_ids[start : start + _CHUNK], ended_on__isnull=True
            )
            .order_by()
            .values("customer_id", "language")
            .annotate(n=Count("id"))
        )
        for row in rows:
            counts[row["customer_id"]][row["language"]] += row["n"]
    return {
        customer_id: min(counter.items(), key=lambda item: (-item[1], item[0]))[0]
        for customer_id, counter in counts.items()
    }


def _team_members(team_ids: Iterable[int], exclude: set[int]) -> dict[int, list[_Member]]:
    members: dict[int, list[_Member]] = defaultdict(list)
    profiles = CsmProfile.objects.filter(
        team_id__in=list(team_ids), accepting=True, user__is_active=True
    ).order_by("user_id")
    for profile in profiles:
        if profile.user_id in exclude or profile.team_id is None:
            continue
        members[profile.team_id].append(
            _Member(
                user_id=profile.user_id,
                capacity=Decimal(profile.capacity),
                languages=_split(profile.languages),
                regions=_split(profile.regions),
            )
        )
    return members


def _fits(member: _Member, candidate: _Candidate, rule: AssignmentRule) -> bool:
    # An empty list on the profile means "any"; a customer without a region or contacts
    # cannot be matched on it and is not held back by it.
    region_ok = not (rule.match_region and member.regions and candidate.region) or (
        candidate.region.casefold() in member.regions
    )
    language_ok = not (rule.match_language and member.languages and candidate.language) or (
        candidate.language.casefold() in member.languages
    )
    return region_ok and language_ok


def _ratio(load: Decimal, capacity: Decimal) -> Decimal:
    if capacity == 0:
        return Decimal(0) if load == 0 else Decimal("Infinity")
    return load / capacity


def _choose(
    rule: AssignmentRule,
    members: list[_Member],
    candidate: _Candidate,
    loads: dict[int, Decimal],
    pointers: dict[int, int | None],
) -> int | None:
    eligible = [
        member
        for member in members
        if _fits(member, candidate, rule)
        and loads.get(member.user_id, Decimal(0)) + candidate.weight <= member.capacity
    ]
    if not eligible:
        return None
    if rule.method == AssignmentMethod.ROUND_ROBIN:
        # The ring is the team's accepting members by user id; start after the last one
        # served, even when that member has since left the team.
        last = pointers.get(rule.pk)
        after = [member for member in eligible if last is not None and member.user_id > last]
        chosen = (after or eligible)[0]
        pointers[rule.pk] = chosen.user_id
        return chosen.user_id
    chosen = min(
        eligible,
        key=lambda member: (
            _ratio(loads.get(member.user_id, Decimal(0)), member.capacity),
            loads.get(member.user_id, Decimal(0)),
            member.user_id,
        ),
    )
    return chosen.user_id


def plan_assignments(
    customers_by_role: Mapping[str, QuerySet[Customer]],
    *,
    loads: dict[int, Decimal],
    exclude: Iterable[int] = (),
    settings: LifecycleSettings | None = None,
    as_of: date | None = None,
) -> Plan:
    """Decide an owner for each customer of ``customers_by_role`` without writing anything.

    ``loads`` (user id → load points) is updated in place as customers are placed, so a
    sequence of choices never takes a CSM above capacity. Users in ``exclude`` get nothing.
    """
    settings = settings or LifecycleSettings.load()
    excluded = set(exclude)
    rules = list(
        AssignmentRule.objects.filter(is_active=True, role__in=list(customers_by_role)).order_by(
            "position", "id"
        )
    )
    plan = Plan(rules=rules)
    rows: list[tuple[object, int, str, str, str]] = []
    for role, customers in customers_by_role.items():
        rows.extend(
            (first_start, pk, role, touch_model, region)
            for pk, first_start, touch_model, region in customers.order_by().values_list(
                "pk", "first_start_date", "touch_model", "region"
            )
        )
    if not rows:
        return plan
    # Oldest customer first: earliest start, customers without a start date last, then by id.
    rows.sort(key=lambda row: (row[0] is None, row[0] or date.min, row[1]))
    ids = [row[1] for row in rows]
    needs_language = any(rule.match_language for rule in rules)
    languages = _contact_languages(ids) if needs_language else {}
    matched: dict[int, set[int]] = {}
    for rule in rules:
        try:
            matched[rule.pk] = set(
                conditions.matching(
                    rule.rule or {}, customers_by_role[rule.role], as_of=as_of
                ).values_list("pk", flat=True)
            )
        except conditions.ConditionError:
            # A stored tree that no longer reads (a field was retired) must not stop the
            # daily run: the rule matches nobody until someone saves it again.
            logger.warning("Assignment rule %s (%s) cannot be evaluated", rule.pk, rule.name)
            matched[rule.pk] = set()
    members = _team_members({rule.team_id for rule in rules}, excluded)
    pointers: dict[int, int | None] = {rule.pk: rule.last_assigned_id for rule in rules}
    # As in weight_expression: an unknown touch model weighs as high touch.
    weights: dict[str, Decimal] = {
        TouchModel.HIGH: Decimal(str(settings.high_touch_weight)),
        TouchModel.LOW: Decimal(str(settings.low_touch_weight)),
        TouchModel.TECH: Decimal(str(settings.tech_touch_weight)),
    }
    for _start, pk, role, touch_model, region in rows:
        candidate = _Candidate(
            customer_id=pk,
            role=role,
            weight=weights.get(touch_model, weights[TouchModel.HIGH]),
            region=region.strip(),
            language=languages.get(pk, ""),
        )
        first = next((r for r in rules if r.role == role and pk in matched[r.pk]), None)
        user_id = (
            _choose(first, members.get(first.team_id, []), candidate, loads, pointers)
            if first
            else None
        )
        if first is None or user_id is None:
            plan.unplaced.append(pk)
            continue
        loads[user_id] = loads.get(user_id, Decimal(0)) + candidate.weight
        plan.choices.setdefault(role, {})[pk] = (user_id, first)
    for rule in rules:
        if pointers[rule.pk] != rule.last_assigned_id:
            rule.last_assigned_id = pointers[rule.pk]
    return plan


def fill_handoff_receivers(role: str, owners: Mapping[int, int]) -> None:
    """Pending handoffs to ``role`` that have no receiver yet go to the customer's new owner."""
    by_user: dict[int, list[int]] = defaultdict(list)
    for customer_id, user_id in owners.items():
        by_user[user_id].append(customer_id)
    for user_id, customer_ids in by_user.items():
        for start in range(0, len(customer_ids), _CHUNK):
            RoleHandoff.objects.filter(
                customer_id__in=customer_ids[start : start + _CHUNK],
                to_role=role,
                to_user__isnull=True,
                status=HandoffStatus.PENDING,
            ).update(to_user_id=user_id)


def write_plan(
    plan: Plan, *, on: date, actor: User | None = None, reason: str | None = None
) -> int:
    """Record the plan's owners (one ``record_changes`` per role and rule); returns how many."""
    written = 0
    for role, by_customer in plan.choices.items():
        by_rule: dict[int, dict[int, str]] = defaultdict(dict)
        names: dict[int, str] = {}
        for customer_id, (user_id, rule) in by_customer.items():
            by_rule[rule.pk][customer_id] = str(user_id)
            names[rule.pk] = rule.name
        for rule_id, values in by_rule.items():
            written += len(
                record_changes(
                    dimension=OWNER_DIMENSIONS[role],
                    values=values,
                    on=on,
                    source=ChangeSource.ASSIGNMENT,
                    reason=reason or names[rule_id],
                    actor=actor,
                )
            )
        fill_handoff_receivers(role, {pk: user_id for pk, (user_id, _rule) in by_customer.items()})
    AssignmentRule.objects.bulk_update(plan.rules, ["last_assigned"])
    return written


@dataclass(frozen=True)
class AssignmentResult:
    assigned: int
    unassigned: int


@transaction.atomic
def assign_customers(*, as_of: date, actor: User | None = None) -> AssignmentResult:
    """Give every customer without an owner for its current role one, by the assignment rules.

    Returns how many got an owner and how many stay unowned (no rule matched, or every
    matching member is full, or none speaks the language / covers the region).
    """
    settings = LifecycleSettings.load()
    unowned = {
        role: Customer.objects.filter(
            lifecycle_stage__in=stages_of(role), **{f"{owner_field}__isnull": True}
        )
        for role, owner_field in OWNER_FIELDS.items()
    }
    loads = {user_id: row.load for user_id, row in csm_loads(settings).items()}
    plan = plan_assignments(unowned, loads=loads, settings=settings, as_of=as_of)
    write_plan(plan, on=as_of, actor=actor)
    return AssignmentResult(assigned=plan.placed, unassigned=len(plan.unplaced))


def assign_unowned(as_of: date) -> int:
    """The daily job's door: assign owners by the rules; returns how many customers got one."""
    return assign_customers(as_of=as_of).assigned


# --- Settings ----------------------------------------------------------------------------------


def parse_rule_expression(expression: str) -> dict[str, object]:
    """The condition tree of a rule's "applies when" text (empty: every customer).

    Raises ValidationError on ``expression`` with the parser's message (position first).
    """
    text = expression.strip()
    if not text:
        return {}
    try:
        return conditions.parse(text)
    except conditions.ConditionError as error:
        raise ValidationError({"expression": str(error)}) from None


def save_assignment_rule(
    *, rule: AssignmentRule | None, fields: Mapping[str, object]
) -> AssignmentRule:
    """Create (``rule`` None) or change an assignment rule; the expression is parsed and its
    tree stored, so a rule that cannot be read is never saved."""
    target = rule or AssignmentRule()
    for name, value in fields.items():
        setattr(target, name, value)
    target.expression = str(target.expression or "").strip()
    target.rule = parse_rule_expression(target.expression)
    target.full_clean(exclude=["rule", "last_assigned"])
    target.save()
    return target
