"""Lifecycle stages: the rules that move customers between stages, manual moves, settings.

The rules run over all customers at once (one query per criterion) and every move goes
through ``history.record_changes``, so it lands in the state history and on the timeline.
A customer moves at most one step per evaluation: onboarding → adoption and adoption →
expansion never happen on the same day, so each stage keeps at least one day of history.
"""

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from kizuna.core.models import User
from kizuna.customers.models import Customer, LifecycleStage, Subscription, TouchModel
from kizuna.customers.selectors import active_on
from kizuna.lifecycle.history import record_changes
from kizuna.lifecycle.models import ChangeSource, Dimension, LifecycleSettings, StateHistory

# (customer id, stage before, stage after)
StageChange = tuple[int, str, str]

# The settings fields that hold entry criteria, with the label that names them in errors.
CRITERIA_FIELDS: dict[str, Any] = {
    "adoption_entry": gettext_lazy("Onboarding → adoption when"),
    "expansion_entry": gettext_lazy("Adoption → expansion when"),
}


class StageCriterionError(ValueError):
    """A stored entry criterion no longer parses (e.g. it names a metric that was removed)."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{CRITERIA_FIELDS[field]}: {message}")


def _open_stage_since() -> Subquery:
    """The day the customer's current stage began, from its open history row (may be NULL)."""
    return Subquery(
        StateHistory.objects.filter(
            customer=OuterRef("pk"), dimension=Dimension.STAGE, valid_to__isnull=True
        )
        .order_by()
        .values("valid_from")[:1]
    )


def _in_service(as_of: date) -> QuerySet[Subscription]:
    return Subscription.objects.filter(active_on(as_of), customer=OuterRef("pk")).order_by()


def _parse_criterion(field: str, expression: str) -> dict[str, Any]:
    from kizuna.lifecycle import conditions

    try:
        return conditions.parse(expression)
    except conditions.ConditionError as error:
        raise StageCriterionError(field, str(error)) from None


def _matching(field: str, expression: str, customers: QuerySet[Customer], as_of: date) -> Any:
    from kizuna.lifecycle import conditions

    tree = _parse_criterion(field, expression)
    return conditions.matching(tree, customers=customers, as_of=as_of)


# --- Queries, one per criterion -----------------------------------------------------------------


def customers_to_churn(as_of: date) -> QuerySet[Customer]:
    """(a) Not churned, no subscription in service on ``as_of``, but one that started before."""
    started = Subscription.objects.filter(customer=OuterRef("pk"), start_date__lte=as_of)
    return Customer.objects.exclude(lifecycle_stage=LifecycleStage.CHURNED).filter(
        Exists(started), ~Exists(_in_service(as_of))
    )


def customers_to_reactivate(as_of: date) -> QuerySet[Customer]:
    """(b) Churned customers with a subscription in service that started since they churned.

    "Since" is the day the churned stage began (its history row, else ``churn_date``): a
    customer marked churned by hand while its last contract still runs is not reactivated
    by that same contract. Without either date, any subscription in service counts.
    """
    in_service = _in_service(as_of)
    return (
        Customer.objects.filter(lifecycle_stage=LifecycleStage.CHURNED)
        .annotate(churned_since=Coalesce(_open_stage_since(), F("churn_date")))
        .filter(
            Exists(in_service.filter(start_date__gte=OuterRef("churned_since")))
            | (Q(churned_since__isnull=True) & Exists(in_service))
        )
    )


def customers_done_reactivating(as_of: date, days: int) -> QuerySet[Customer]:
    """(c) Reactivated customers for at least ``days`` days.

    The reactivation day is the open history row's start, else the start of the latest
    subscription in service (for customers imported as reactivated, without history).
    """
    latest_start = _in_service(as_of).order_by("-start_date").values("start_date")[:1]
    return (
        Customer.objects.filter(lifecycle_stage=LifecycleStage.REACTIVATED)
        .annotate(reactivated_since=Coalesce(_open_stage_since(), Subquery(latest_start)))
        .filter(reactivated_since__lte=as_of - timedelta(days=days))
    )


# --- The evaluation ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Criterion:
    target: str
    reason: str
    customers: QuerySet[Customer]


def _criteria(as_of: date, settings: LifecycleSettings) -> list[_Criterion]:
    """The criteria in the order they apply; the automatic ones only when switched on."""
    criteria = [
        _Criterion(
            LifecycleStage.CHURNED, _("No subscription in service"), customers_to_churn(as_of)
        ),
        _Criterion(
            LifecycleStage.REACTIVATED,
            _("A new subscription is in service after churn"),
            customers_to_reactivate(as_of),
        ),
    ]
    if not settings.automatic_stages:
        return criteria
    days = settings.reactivated_days
    criteria.append(
        _Criterion(
            LifecycleStage.ADOPTION,
            _("Reactivated for %(days)d days or more") % {"days": days},
            customers_done_reactivating(as_of, days),
        )
    )
    onboarding = Customer.objects.filter(lifecycle_stage=LifecycleStage.ONBOARDING)
    adoption = Customer.objects.filter(lifecycle_stage=LifecycleStage.ADOPTION)
    for field, source, target in (
        ("adoption_entry", onboarding, LifecycleStage.ADOPTION),
        ("expansion_entry", adoption, LifecycleStage.EXPANSION),
    ):
        expression = str(getattr(settings, field)).strip()
        if not expression:  # an empty criterion means "only by hand", not "everyone"
            continue
        criteria.append(
            _Criterion(
                target,
                _("%(criterion)s: %(expression)s")
                % {"criterion": CRITERIA_FIELDS[field], "expression": expression},
                _matching(field, expression, source, as_of),
            )
        )
    return criteria


@transaction.atomic
def evaluate_stages(as_of: date) -> list[StageChange]:
    """Move customers between stages by the rules, as of ``as_of``; returns the moves made.

    (a) no subscription in service any more → churned (``churn_date`` set when empty);
    (b) churned with a new subscription in service → reactivated; and, when
    ``LifecycleSettings.automatic_stages`` is on: (c) reactivated for ``reactivated_days`` →
    adoption; (d) onboarding matching ``adoption_entry`` → adoption; (e) adoption matching
    ``expansion_entry`` → expansion. Raises ``StageCriterionError`` for a criterion that no
    longer parses.
    """
    settings = LifecycleSettings.load()
    moved: dict[int, tuple[str, str]] = {}
    for criterion in _criteria(as_of, settings):
        before = {
            pk: stage
            for pk, stage in criterion.customers.order_by().values_list("pk", "lifecycle_stage")
            if pk not in moved
        }
        if not before:
            continue
        if criterion.target == LifecycleStage.CHURNED:
            _set_churn_dates(criterion.customers, as_of)
        changed = record_changes(
            dimension=Dimension.STAGE,
            values=dict.fromkeys(before, criterion.target),
            on=as_of,
            source=ChangeSource.RULE,
            reason=criterion.reason,
        )
        moved.update((pk, (before[pk], criterion.target)) for pk in changed)
    return [(pk, old, new) for pk, (old, new) in moved.items()]


def _set_churn_dates(customers: QuerySet[Customer], as_of: date) -> None:
    """Churn date = the last end date of the customer's contracts (the first day without
    service), where none was recorded yet."""
    last_end = (
        Subscription.objects.filter(customer=OuterRef("pk"), end_date__lte=as_of)
        .order_by("-end_date")
        .values("end_date")[:1]
    )
    Customer.objects.filter(pk__in=customers.filter(churn_date__isnull=True).values("pk")).update(
        churn_date=Coalesce(Subquery(last_end), Value(as_of)), updated_at=timezone.now()
    )


# --- Manual moves ------------------------------------------------------------------------------


@transaction.atomic
def move_stage(
    *,
    customer: Customer,
    stage: str,
    reason: str,
    actor: User | None,
    on: date | None = None,
) -> StageChange:
    """Move one customer to ``stage`` by hand from ``on`` (today), with a reason.

    Re-applies the touch-model policy for the customer and opens the handoff to the next
    role, as the nightly run would. Raises ``ValidationError`` naming ``stage`` or ``reason``.
    """
    # The stage as stored now (the object may be stale), locked until the move is recorded.
    current = Customer.objects.select_for_update().get(pk=customer.pk)
    reason = (reason or "").strip()
    errors: dict[str, list[str]] = {}
    if stage not in LifecycleStage.values:
        errors["stage"] = [_("“%(stage)s” is not a lifecycle stage.") % {"stage": stage}]
    elif stage == current.lifecycle_stage:
        errors["stage"] = [_("The customer already is in this stage.")]
    if not reason:
        errors["reason"] = [_("Give a reason for moving the stage by hand.")]
    elif len(reason) > 500:
        errors["reason"] = [_("Keep the reason under 500 characters.")]
    if errors:
        raise ValidationError(errors)
    day = on or timezone.localdate()
    before = current.lifecycle_stage
    record_changes(
        dimension=Dimension.STAGE,
        values={customer.pk: stage},
        on=day,
        source=ChangeSource.MANUAL,
        reason=reason,
        actor=actor,
    )
    if stage == LifecycleStage.CHURNED and current.churn_date is None:
        Customer.objects.filter(pk=customer.pk).update(churn_date=day)
    from kizuna.lifecycle.handoffs import open_stage_handoffs
    from kizuna.lifecycle.touch import apply_touch_models

    apply_touch_models(day, customer_ids=[customer.pk], actor=actor)
    open_stage_handoffs([(customer.pk, before, stage)], on=day)
    customer.refresh_from_db()
    return (customer.pk, before, stage)


# --- Settings ----------------------------------------------------------------------------------


def check_criterion(field: str, expression: str) -> str:
    """The expression, stripped, if it parses; ``ValidationError`` naming the field if not.

    An empty expression is allowed: the move then only happens by hand.
    """
    expression = (expression or "").strip()
    if expression:
        try:
            _parse_criterion(field, expression)
        except StageCriterionError as error:
            raise ValidationError({field: [str(error)]}) from None
    return expression


@transaction.atomic
def save_stage_settings(
    *,
    adoption_entry: str,
    expansion_entry: str,
    reactivated_days: int,
    automatic_stages: bool,
) -> LifecycleSettings:
    """Validate and store the stage criteria; they apply from the next lifecycle run.

    Raises ``ValidationError`` naming each bad field (criteria checked by the condition parser).
    """
    errors: dict[str, list[str]] = {}
    cleaned: dict[str, str] = {}
    for field, expression in (
        ("adoption_entry", adoption_entry),
        ("expansion_entry", expansion_entry),
    ):
        try:
            cleaned[field] = check_criterion(field, expression)
        except ValidationError as error:
            errors.update(error.message_dict)
    if reactivated_days < 0 or reactivated_days > 3660:
        errors["reactivated_days"] = [_("Use a number of days between 0 and 3660.")]
    if errors:
        raise ValidationError(errors)
    settings = LifecycleSettings.load()
    settings.adoption_entry = cleaned["adoption_entry"]
    settings.expansion_entry = cleaned["expansion_entry"]
    settings.reactivated_days = reactivated_days
    settings.automatic_stages = automatic_stages
    settings.save()
    return settings


# --- Reads -------------------------------------------------------------------------------------


def stage_since(customer_id: int) -> date | None:
    """The day the customer's current stage began (``None``: before Kizuna's history)."""
    return (
        StateHistory.objects.filter(
            customer_id=customer_id, dimension=Dimension.STAGE, valid_to__isnull=True
        )
        .values_list("valid_from", flat=True)
        .first()
    )


def days_in_stage(customer_id: int, *, as_of: date | None = None) -> int | None:
    """Days since the current stage began, ``None`` when unknown."""
    since = stage_since(customer_id)
    if since is None:
        return None
    return ((as_of or timezone.localdate()) - since).days


@dataclass(frozen=True)
class HistoryItem:
    """A history row with its dimension, value and author as people read them."""

    row: StateHistory
    dimension_label: str
    value_label: str
    actor_name: str


def lifecycle_history(customer_id: int) -> list[HistoryItem]:
    """The customer's history of every dimension, newest first (rows "since the beginning"
    last, the same on every database); names looked up once for all rows."""
    from kizuna.lifecycle.history import history_for
    from kizuna.lifecycle.models import Segment

    rows = list(history_for(customer_id))
    rows.sort(key=lambda row: (row.valid_from or date.min, row.pk), reverse=True)
    segment_names = dict(Segment.objects.values_list("key", "name"))
    user_ids = {
        int(row.value) for row in rows if row.dimension.startswith("owner.") and row.value.isdigit()
    }
    users = {user.pk: user.display_name for user in User.objects.filter(pk__in=user_ids)}
    stage_labels = dict(LifecycleStage.choices)
    touch_labels = dict(TouchModel.choices)

    def label(row: StateHistory) -> str:
        if not row.value:
            return "—"
        if row.dimension == Dimension.STAGE:
            return str(stage_labels.get(row.value, row.value))
        if row.dimension == Dimension.TOUCH_MODEL:
            return str(touch_labels.get(row.value, row.value))
        if row.dimension == Dimension.SEGMENT:
            return segment_names.get(row.value, row.value)
        return users.get(int(row.value), row.value) if row.value.isdigit() else row.value

    return [
        HistoryItem(
            row=row,
            dimension_label=str(Dimension(row.dimension).label),
            value_label=label(row),
            actor_name=row.actor.display_name if row.actor else "",
        )
        for row in rows
    ]
