"""Touch models: the policy (segment × stage → touch model), per-customer overrides, applying.

The policy is a grid: a row per segment plus "any segment" (``segment_key = ""``), a
column per stage a customer is served in (churned customers keep their last touch model).
For a customer, the row of its own segment wins over "any segment", which wins over the
default touch model of ``LifecycleSettings``; an active override beats all of them.
"""

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Case, IntegerField, OuterRef, Subquery, Value, When
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from kizuna.core.models import User
from kizuna.customers.models import Customer, LifecycleStage, TouchModel
from kizuna.lifecycle.history import record_changes
from kizuna.lifecycle.models import (
    ChangeSource,
    Dimension,
    LifecycleSettings,
    Segment,
    TouchOverride,
    TouchPolicy,
)

# The stages a policy row can name (the grid's columns), in lifecycle order.
POLICY_STAGES: tuple[str, ...] = (
    LifecycleStage.ONBOARDING,
    LifecycleStage.ADOPTION,
    LifecycleStage.EXPANSION,
    LifecycleStage.REACTIVATED,
)

ANY_SEGMENT_LABEL = gettext_lazy("Any segment")

# A grid cell: (segment key or "" for any segment, stage).
Cell = tuple[str, str]


@dataclass(frozen=True)
class Resolution:
    """The touch model a customer should have, and why."""

    touch_model: str
    source: str  # ChangeSource.RULE or ChangeSource.OVERRIDE
    current: str  # the customer's touch model now
    policy_id: int | None = None  # the TouchPolicy row (None: the default touch model)
    override_id: int | None = None


def end_expired_overrides(as_of: date) -> int:
    """End the active overrides whose ``expires_on`` is before ``as_of``; returns how many.

    An override is in force through its expiry day.
    """
    return TouchOverride.objects.filter(ended_at__isnull=True, expires_on__lt=as_of).update(
        ended_at=timezone.now()
    )


def _resolutions(as_of: date, customer_ids: Iterable[int] | None) -> dict[int, Resolution]:
    end_expired_overrides(as_of)
    settings = LifecycleSettings.load()
    policies = list(TouchPolicy.objects.all())
    by_id = {policy.pk: policy for policy in policies}
    # Most specific first: Case takes the first matching When.
    specific = [
        When(segment=policy.segment_key, lifecycle_stage=policy.stage, then=Value(policy.pk))
        for policy in policies
        if policy.segment_key
    ]
    general = [
        When(lifecycle_stage=policy.stage, then=Value(policy.pk))
        for policy in policies
        if not policy.segment_key
    ]
    active = TouchOverride.objects.filter(customer=OuterRef("pk"), ended_at__isnull=True).order_by(
        "-created_at", "-id"
    )
    customers = Customer.objects.order_by().annotate(
        policy_id=Case(*specific, *general, default=Value(0), output_field=IntegerField()),
        override_id=Subquery(active.values("pk")[:1]),
        override_model=Subquery(active.values("touch_model")[:1]),
    )
    if customer_ids is not None:
        customers = customers.filter(pk__in=list(customer_ids))
    found: dict[int, Resolution] = {}
    rows = customers.values_list(
        "pk", "lifecycle_stage", "touch_model", "policy_id", "override_id", "override_model"
    )
    for pk, stage, current, policy_id, override_id, override_model in rows:
        if override_id is not None:
            found[pk] = Resolution(
                override_model, ChangeSource.OVERRIDE, current, override_id=override_id
            )
        elif stage not in POLICY_STAGES:
            continue  # churned: the last touch model stays
        elif policy_id:
            found[pk] = Resolution(
                by_id[policy_id].touch_model, ChangeSource.RULE, current, policy_id=policy_id
            )
        else:
            found[pk] = Resolution(settings.default_touch_model, ChangeSource.RULE, current)
    return found


def resolve_touch_models(
    as_of: date, *, customer_ids: Iterable[int] | None = None
) -> dict[int, str]:
    """The touch model each customer should have on ``as_of`` (ends expired overrides first).

    Churned customers without an override are left out: they keep their last touch model.
    """
    return {pk: r.touch_model for pk, r in _resolutions(as_of, customer_ids).items()}


def _segment_names() -> dict[str, str]:
    return dict(Segment.objects.values_list("key", "name"))


def policy_reason(policy: TouchPolicy | None, segment_names: Mapping[str, str]) -> str:
    """Why a customer got its touch model from the policy, as a history reason."""
    if policy is None:
        return _("Default touch model (no policy row applies)")
    segment = (
        segment_names.get(policy.segment_key, policy.segment_key)
        if policy.segment_key
        else str(ANY_SEGMENT_LABEL)
    )
    return _("Touch-model policy: %(segment)s in %(stage)s → %(touch_model)s") % {
        "segment": segment,
        "stage": LifecycleStage(policy.stage).label,
        "touch_model": TouchModel(policy.touch_model).label,
    }


@transaction.atomic
def apply_touch_models(
    as_of: date, *, customer_ids: Iterable[int] | None = None, actor: User | None = None
) -> int:
    """Give every customer (or those of ``customer_ids``) the touch model the policy and the
    overrides say, from ``as_of``; returns how many customers changed.

    Each change is recorded with its source (rule or override) and a reason naming the
    policy row or the override's reason.
    """
    resolutions = _resolutions(as_of, customer_ids)
    groups: dict[tuple[str, int | None, int | None], dict[int, str]] = defaultdict(dict)
    for pk, resolution in resolutions.items():
        if resolution.current != resolution.touch_model:
            key = (resolution.source, resolution.policy_id, resolution.override_id)
            groups[key][pk] = resolution.touch_model
    if not groups:
        return 0
    policies = {policy.pk: policy for policy in TouchPolicy.objects.all()}
    overrides = dict(
        TouchOverride.objects.filter(
            pk__in=[key[2] for key in groups if key[2] is not None]
        ).values_list("pk", "reason")
    )
    names = _segment_names()
    changed = 0
    for (source, policy_id, override_id), values in groups.items():
        if override_id is not None:
            reason = overrides.get(override_id, "")
        else:
            reason = policy_reason(policies.get(policy_id or 0), names)
        changed += len(
            record_changes(
                dimension=Dimension.TOUCH_MODEL,
                values=values,
                on=as_of,
                source=source,
                reason=reason,
                actor=actor,
            )
        )
    return changed


# --- Overrides ---------------------------------------------------------------------------------


def active_override(customer_id: int) -> TouchOverride | None:
    """The customer's override in force, if any."""
    return (
        TouchOverride.objects.filter(customer_id=customer_id, ended_at__isnull=True)
        .select_related("created_by")
        .first()
    )


@transaction.atomic
def set_override(
    *,
    customer: Customer,
    touch_model: str,
    reason: str,
    expires_on: date | None = None,
    actor: User | None = None,
) -> TouchOverride:
    """Give one customer a touch model by hand, beating the policy until ``expires_on``
    (inclusive) or until ended. Replaces an active override and applies at once.

    Raises ``ValidationError`` naming ``touch_model``, ``reason`` or ``expires_on``.
    """
    reason = (reason or "").strip()
    today = timezone.localdate()
    errors: dict[str, list[str]] = {}
    if touch_model not in TouchModel.values:
        errors["touch_model"] = [
            _("“%(value)s” is not a touch model (high, low or tech).") % {"value": touch_model}
        ]
    if not reason:
        errors["reason"] = [_("Give a reason for the override.")]
    elif len(reason) > 500:
        errors["reason"] = [_("Keep the reason under 500 characters.")]
    if expires_on is not None and expires_on < today:
        errors["expires_on"] = [_("The expiry date must not be in the past.")]
    if errors:
        raise ValidationError(errors)
    TouchOverride.objects.filter(customer=customer, ended_at__isnull=True).update(
        ended_at=timezone.now()
    )
    override = TouchOverride.objects.create(
        customer=customer,
        touch_model=touch_model,
        reason=reason,
        expires_on=expires_on,
        created_by=actor,
    )
    record_changes(
        dimension=Dimension.TOUCH_MODEL,
        values={customer.pk: touch_model},
        on=today,
        source=ChangeSource.OVERRIDE,
        reason=reason,
        actor=actor,
    )
    customer.touch_model = touch_model
    return override


@transaction.atomic
def end_override(*, customer: Customer, actor: User | None = None) -> bool:
    """End the customer's override now and give it the policy's touch model again.

    Returns ``False`` when the customer had no override in force.
    """
    ended = TouchOverride.objects.filter(customer=customer, ended_at__isnull=True).update(
        ended_at=timezone.now()
    )
    if not ended:
        return False
    apply_touch_models(timezone.localdate(), customer_ids=[customer.pk], actor=actor)
    customer.refresh_from_db(fields=["touch_model"])
    return True


# --- The policy grid ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyGrid:
    """The policy as the Settings tab and the API show it."""

    segments: list[tuple[str, str, bool]]  # (key, name, active); "" = any segment, last
    stages: tuple[str, ...]
    cells: dict[Cell, str]  # only the cells with a row
    default_touch_model: str
    weights: dict[str, Decimal]


def policy_grid() -> PolicyGrid:
    """The segments (each, then "any segment") × stages, with the cells that have a row."""
    settings = LifecycleSettings.load()
    segments = [
        (segment.key, segment.name, segment.is_active)
        for segment in Segment.objects.order_by("position", "id")
    ]
    segments.append(("", str(ANY_SEGMENT_LABEL), True))
    cells = {
        (policy.segment_key, policy.stage): policy.touch_model
        for policy in TouchPolicy.objects.all()
    }
    return PolicyGrid(
        segments=segments,
        stages=POLICY_STAGES,
        cells=cells,
        default_touch_model=settings.default_touch_model,
        weights={
            TouchModel.HIGH: settings.high_touch_weight,
            TouchModel.LOW: settings.low_touch_weight,
            TouchModel.TECH: settings.tech_touch_weight,
        },
    )


def cell_name(cell: Cell) -> str:
    """How errors name a cell: ``enterprise.onboarding``, ``*.adoption`` for any segment."""
    segment, stage = cell
    return f"{segment or '*'}.{stage}"


@transaction.atomic
def save_policy(rows: Mapping[Cell, str]) -> int:
    """Replace the whole policy grid; returns the number of rows stored.

    ``rows`` maps (segment key or "" for any segment, stage) to a touch model; an empty
    touch model leaves the cell without a row (the next rule applies). Raises
    ``ValidationError`` naming each bad cell (``enterprise.onboarding``). Does not re-apply
    the touch models: call ``apply_touch_models`` after.
    """
    known = set(Segment.objects.values_list("key", flat=True))
    errors: dict[str, list[str]] = {}
    stored: list[TouchPolicy] = []
    for (segment, stage), touch_model in rows.items():
        name = cell_name((segment, stage))
        if segment and segment not in known:
            errors[name] = [_("There is no segment with the key “%(key)s”.") % {"key": segment}]
        elif stage not in POLICY_STAGES:
            errors[name] = [
                _(
                    "“%(stage)s” is not a stage of the policy (onboarding, adoption, expansion, "
                    "reactivated)."
                )
                % {"stage": stage}
            ]
        elif touch_model and touch_model not in TouchModel.values:
            errors[name] = [
                _("“%(value)s” is not a touch model (high, low or tech).") % {"value": touch_model}
            ]
        elif touch_model:
            stored.append(TouchPolicy(segment_key=segment, stage=stage, touch_model=touch_model))
    if errors:
        raise ValidationError(errors)
    TouchPolicy.objects.all().delete()
    TouchPolicy.objects.bulk_create(stored)
    return len(stored)


def _weight(field: str, value: Any) -> Decimal:
    try:
        weight = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise ValidationError({field: [_("Enter a number.")]}) from None
    if not weight.is_finite() or weight < 0 or weight >= 1000:
        raise ValidationError({field: [_("Use a number from 0 up to 999.99.")]})
    return weight.quantize(Decimal("0.01"))


@transaction.atomic
def save_touch_settings(
    *,
    default_touch_model: str,
    high_touch_weight: Any,
    low_touch_weight: Any,
    tech_touch_weight: Any,
) -> LifecycleSettings:
    """Store the default touch model and the load weights (used by CSM capacities).

    Raises ``ValidationError`` naming each bad field.
    """
    errors: dict[str, list[str]] = {}
    if default_touch_model not in TouchModel.values:
        errors["default_touch_model"] = [
            _("“%(value)s” is not a touch model (high, low or tech).")
            % {"value": default_touch_model}
        ]
    weights: dict[str, Decimal] = {}
    for field, value in (
        ("high_touch_weight", high_touch_weight),
        ("low_touch_weight", low_touch_weight),
        ("tech_touch_weight", tech_touch_weight),
    ):
        try:
            weights[field] = _weight(field, value)
        except ValidationError as error:
            errors.update(error.message_dict)
    if errors:
        raise ValidationError(errors)
    settings = LifecycleSettings.load()
    settings.default_touch_model = default_touch_model
    for field, weight in weights.items():
        setattr(settings, field, weight)
    settings.save()
    return settings
