"""Writes to the customer record. Each validates, writes in a transaction and leaves a trace."""

from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Model
from django.utils.translation import gettext as _

from kizuna.core import timeline
from kizuna.core.models import MANUAL_TIMELINE_KINDS, TimelineEntry, TimelineKind, User
from kizuna.customers.models import (
    Contact,
    Customer,
    Plan,
    Product,
    SalesHandoff,
    Subscription,
    SubscriptionChange,
)

# Fields whose change is worth a line in the subscription's history.
SUBSCRIPTION_TRACKED_FIELDS = (
    "product", "plan", "product_id", "plan_id", "quantity", "unit", "mrr", "currency", "bill_period_months",
    "discount", "start_date", "end_date", "status", "external_id",
)  # fmt: skip


def _apply(instance: Model, fields: dict[str, Any]) -> dict[str, list[Any]]:
    """Set fields on the instance and return {field: [old, new]} for the ones that changed."""
    changes: dict[str, list[Any]] = {}
    for name, value in fields.items():
        old = getattr(instance, name)
        if old != value:
            changes[name] = [old, value]
            setattr(instance, name, value)
    return changes


def _save_validated(instance: Model) -> None:
    instance.full_clean()
    instance.save()


def _json_value(value: Any) -> Any:
    return value if value is None or isinstance(value, bool | int | str) else str(value)


@transaction.atomic
def create_customer(*, actor: User | None = None, **fields: Any) -> Customer:
    """Create a customer; raises ValidationError naming the bad field."""
    customer = Customer(**fields)
    _save_validated(customer)
    return customer


@transaction.atomic
def update_customer(*, customer: Customer, actor: User | None = None, **fields: Any) -> Customer:
    """Update the given fields of a customer; raises ValidationError naming the bad field."""
    if _apply(customer, fields):
        _save_validated(customer)
    return customer


@transaction.atomic
def create_contact(*, customer: Customer, **fields: Any) -> Contact:
    contact = Contact(customer=customer, **fields)
    _save_validated(contact)
    return contact


@transaction.atomic
def update_contact(*, contact: Contact, **fields: Any) -> Contact:
    if _apply(contact, fields):
        _save_validated(contact)
    return contact


@transaction.atomic
def create_product(**fields: Any) -> Product:
    product = Product(**fields)
    _save_validated(product)
    return product


@transaction.atomic
def create_plan(*, product: Product, **fields: Any) -> Plan:
    plan = Plan(product=product, **fields)
    _save_validated(plan)
    return plan


def _first_start_lowered(customer_id: int) -> None:
    """Keep Customer.first_start_date at the earliest subscription start."""
    first = (
        Subscription.objects.filter(customer_id=customer_id)
        .order_by("start_date")
        .values_list("start_date", flat=True)
        .first()
    )
    Customer.objects.filter(pk=customer_id).update(first_start_date=first)


@transaction.atomic
def create_subscription(
    *, customer: Customer, actor: User | None = None, source: str = "ui", **fields: Any
) -> Subscription:
    """Create a subscription (one contract period) and keep the customer's first start date."""
    subscription = Subscription(customer=customer, **fields)
    _save_validated(subscription)
    SubscriptionChange.objects.create(
        subscription=subscription,
        actor=actor,
        source=source,
        changes={"created": [None, str(subscription.start_date)]},
    )
    _first_start_lowered(customer.pk)
    return subscription


@transaction.atomic
def update_subscription(
    *, subscription: Subscription, actor: User | None = None, source: str = "ui", **fields: Any
) -> Subscription:
    """Change a subscription, keeping the history of what changed and telling the timeline."""
    changes = _apply(subscription, fields)
    if not changes:
        return subscription
    _save_validated(subscription)
    serialisable = {
        name: [_json_value(old), _json_value(new)]
        for name, (old, new) in changes.items()
        if name in SUBSCRIPTION_TRACKED_FIELDS
    }
    SubscriptionChange.objects.create(
        subscription=subscription, actor=actor, source=source, changes=serialisable
    )
    if "start_date" in changes:
        _first_start_lowered(subscription.customer_id)
    timeline.record_after_commit(
        customer_id=subscription.customer_id,
        kind=TimelineKind.SUBSCRIPTION_CHANGED,
        title=_("Subscription changed: %(product)s") % {"product": subscription.product.name},
        actor=actor,
        payload={"subscription_id": subscription.pk, "changes": serialisable},
    )
    return subscription


@transaction.atomic
def record_handoff(*, customer: Customer, actor: User | None = None, **fields: Any) -> SalesHandoff:
    """Record what sales handed to onboarding, and note it on the customer's timeline."""
    handoff = SalesHandoff(customer=customer, handed_off_by=actor, **fields)
    _save_validated(handoff)
    timeline.record_after_commit(
        customer_id=customer.pk,
        kind=TimelineKind.HANDOFF_RECORDED,
        title=_("Sales handoff recorded"),
        body=handoff.desired_outcomes,
        actor=actor,
        payload={"handoff_id": handoff.pk},
    )
    return handoff


def add_timeline_entry(
    *,
    customer: Customer,
    kind: str,
    title: str,
    body: str = "",
    occurred_at: datetime | None = None,
    actor: User | None = None,
) -> TimelineEntry:
    """Add a note, meeting, call, training or review meeting written by a person."""
    if kind not in MANUAL_TIMELINE_KINDS:
        raise ValidationError(
            {"kind": _("Choose note, meeting, call, training or review meeting.")}
        )
    if not title.strip():
        raise ValidationError({"title": _("A title is required.")})
    if len(title) > 200:
        raise ValidationError({"title": _("Keep the title under 200 characters.")})
    return timeline.record(
        customer_id=customer.pk,
        kind=kind,
        title=title.strip(),
        body=body,
        occurred_at=occurred_at,
        actor=actor,
    )


@transaction.atomic
def update_product(*, product: Product, **fields: Any) -> Product:
    """Change a product of the catalog; raises ValidationError naming the bad field."""
    if _apply(product, fields):
        _save_validated(product)
    return product


@transaction.atomic
def update_plan(*, plan: Plan, **fields: Any) -> Plan:
    """Change a plan (its product, code, name or tier rank); raises ValidationError naming the bad field."""
    if _apply(plan, fields):
        _save_validated(plan)
    return plan
