"""Writing to and reading from the customer timeline."""

from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from kizuna.core.models import TimelineEntry, User


def record(
    *,
    customer_id: int,
    kind: str,
    title: str,
    body: str = "",
    actor: User | None = None,
    occurred_at: datetime | None = None,
    payload: dict[str, Any] | None = None,
) -> TimelineEntry:
    """Add an entry to a customer's timeline and return it."""
    return TimelineEntry.objects.create(
        customer_id=customer_id,
        kind=kind,
        title=title[:200],
        body=body,
        actor=actor,
        occurred_at=occurred_at or timezone.now(),
        payload=payload or {},
    )


def record_after_commit(**kwargs: Any) -> None:
    """Record the entry once the surrounding transaction commits (announce only what happened)."""
    transaction.on_commit(lambda: record(**kwargs))


def entries_for(*, customer_id: int, kinds: list[str] | None = None) -> QuerySet[TimelineEntry]:
    """A customer's timeline, newest first, optionally limited to some kinds."""
    entries = TimelineEntry.objects.filter(customer_id=customer_id).select_related("actor")
    if kinds:
        entries = entries.filter(kind__in=kinds)
    return entries
