"""Hand-made data for the score tests: customers with subscriptions, metric day files, and a
published scorecard built with the services themselves."""

from collections.abc import Sequence
from datetime import date, datetime, time
from decimal import Decimal

import pyarrow as pa
from django.utils import timezone

from kizuna.analytics import lake
from kizuna.customers.models import Customer, Product, Subscription
from kizuna.health.models import HealthScore, MeasureSource, Scorecard, ScorecardVersion
from kizuna.health.scorecards import (
    MeasureInput,
    create_scorecard,
    publish_version,
    save_draft,
)


def d(text: str) -> date:
    return date.fromisoformat(text)


def local(text: str) -> datetime:
    """An aware moment from ``YYYY-MM-DD HH:MM`` in the company's time zone."""
    return timezone.make_aware(datetime.fromisoformat(text))


def product() -> Product:
    found, _created = Product.objects.get_or_create(code="core", defaults={"name": "Core"})
    return found


def customer(
    name: str,
    *,
    start: str = "2025-01-01",
    end: str | None = None,
    mrr: int = 1000,
    touch_model: str = "",
    segment: str = "",
) -> Customer:
    """A customer with one subscription ``[start, end)``."""
    who = Customer.objects.create(
        name=name,
        external_id=name,
        touch_model=touch_model,
        segment=segment,
        first_start_date=d(start),
    )
    Subscription.objects.create(
        customer=who,
        product=product(),
        start_date=d(start),
        end_date=d(end) if end else None,
        mrr=Decimal(mrr),
    )
    return who


def write_metrics(day: date, rows: Sequence[tuple[int, str, float | None]]) -> None:
    """The metric history file of ``day``: (customer id, metric key, value)."""
    lake.write_metric_day(
        pa.table(
            {
                "customer_id": pa.array([r[0] for r in rows], pa.int64()),
                "metric": pa.array([r[1] for r in rows], pa.string()),
                "day": pa.array([day] * len(rows), pa.date32()),
                "value": pa.array([r[2] for r in rows], pa.float64()),
            }
        ),
        day,
    )


def published_scorecard(
    measures: Sequence[MeasureInput],
    *,
    name: str = "Test",
    good_from: float = 70,
    watch_from: float = 40,
    touch_model: str = "",
    segment: str = "",
    priority: int = 100,
) -> Scorecard:
    card = create_scorecard(name=name, touch_model=touch_model, segment=segment, priority=priority)
    draft = ScorecardVersion.objects.get(scorecard=card, number=1)
    save_draft(version_id=draft.pk, good_from=good_from, watch_from=watch_from, measures=measures)
    publish_version(version_id=draft.pk)
    return card


def at(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time(12, 0)))


IMPROVEMENT_START, IMPROVEMENT_END = date(2026, 5, 1), date(2026, 6, 1)


def improvement_scores() -> dict[str, Customer]:
    """The scores of the health_improvement_rate tests (see ``health/tests/test_kpis.py``)."""
    card = published_scorecard(
        [
            MeasureInput(
                key="renewal",
                label="Days to renewal",
                source=MeasureSource.DAYS_TO_RENEWAL,
                thresholds=[(0, 0), (90, 100)],
            )
        ]
    )
    version = ScorecardVersion.objects.get(scorecard=card)
    people: dict[str, Customer] = {}
    rows: list[tuple[str, str, float | str | None, float]] = [
        ("A", "high", 60.0, 66.0),
        ("B", "high", 50.0, 55.0),
        ("C", "tech", 70.0, 60.0),
        ("D", "tech", 40.0, 44.0),
        ("E", "high", "absent", 70.0),
        ("F", "tech", None, 50.0),
    ]
    for name, touch, before, after in rows:
        who = customer(name, touch_model=touch)
        people[name] = who
        if not isinstance(before, str):
            HealthScore.objects.create(
                customer=who, day=IMPROVEMENT_START, version=version, score=before
            )
        HealthScore.objects.create(customer=who, day=IMPROVEMENT_END, version=version, score=after)
    return people
