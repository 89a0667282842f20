"""Hand-made customers, playbooks, timeline entries and metric history for the engine's tests."""

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from django.utils import timezone

from kizuna.analytics import lake
from kizuna.core.models import TimelineEntry, User
from kizuna.customers.models import Customer, Product, Subscription
from kizuna.playbooks.models import Playbook, PlaybookAction

Step = tuple[str, Mapping[str, Any], int]


def at(day: date, hour: int = 10, minute: int = 0) -> datetime:
    """A moment of a local day."""
    return timezone.make_aware(datetime.combine(day, time(hour, minute)))


def make_user(username: str, **fields: Any) -> User:
    return User.objects.create_user(
        username=username, email=f"{username}@example.com", password="x-" * 10, **fields
    )


def make_customer(
    name: str,
    *,
    started: date | None = None,
    ends: date | None = None,
    seats: int = 1,
    **fields: Any,
) -> Customer:
    """A customer whose subscription runs from ``started`` (if given) until ``ends``."""
    customer = Customer.objects.create(name=name, first_start_date=started, **fields)
    if started is not None:
        product, _created = Product.objects.get_or_create(
            code="kintai", defaults={"name": "Kintai"}
        )
        Subscription.objects.create(
            customer=customer,
            product=product,
            start_date=started,
            end_date=ends,
            quantity=Decimal(seats),
            mrr=Decimal(50000),
        )
    return customer


def make_playbook(
    key: str,
    kind: str,
    params: Mapping[str, Any],
    steps: Sequence[Step] = (),
    *,
    enabled_at: datetime | None = None,
    holdout_share: float = 0.0,
    condition: Mapping[str, Any] | None = None,
    **fields: Any,
) -> Playbook:
    """A playbook, enabled at ``enabled_at`` when given, with its ordered actions."""
    playbook = Playbook.objects.create(
        key=key,
        name=key.replace("-", " ").title(),
        trigger_kind=kind,
        trigger_params=dict(params),
        condition=dict(condition or {}),
        holdout_share=holdout_share,
        enabled=enabled_at is not None,
        enabled_at=enabled_at,
        **fields,
    )
    for position, (action, action_params, delay) in enumerate(steps):
        PlaybookAction.objects.create(
            playbook=playbook,
            position=position,
            kind=action,
            params=dict(action_params),
            delay_days=delay,
        )
    return playbook


def entry(
    customer: Customer,
    kind: str,
    occurred_at: datetime,
    payload: Mapping[str, Any] | None = None,
    title: str = "",
) -> TimelineEntry:
    return TimelineEntry.objects.create(
        customer=customer,
        kind=kind,
        title=title or kind,
        occurred_at=occurred_at,
        payload=dict(payload or {}),
    )


def write_metrics(day: date, rows: Iterable[tuple[int, str, float | None]]) -> None:
    """The lake's metric history of one day: (customer id, metric, value) rows."""
    items = list(rows)
    folder = lake.metrics_dir() / day.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    table = pa.table(
        {
            "day": pa.array([day] * len(items), pa.date32()),
            "customer_id": pa.array([row[0] for row in items], pa.int64()),
            "metric": pa.array([row[1] for row in items], pa.string()),
            "value": pa.array([row[2] for row in items], pa.float64()),
        }
    )
    pq.write_table(table, folder / "metrics.parquet")
