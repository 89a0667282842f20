"""The metrics REST API: latest values, daily history, definitions, ingestion totals."""

import datetime as dt
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pytest
from django.test import Client

from kizuna.analytics import lake
from kizuna.analytics.metric_defaults import ensure_default_metrics
from kizuna.analytics.models import CustomerMetric, IngestRejection, MetricDefinition, MetricKind
from kizuna.core.roles import Role
from kizuna.customers.models import Customer

AS_OF = dt.date(2026, 3, 31)


@pytest.fixture(autouse=True)
def _default_metrics(db: None) -> None:
    """The defaults of migration 0002, also after a browser test's flush emptied the tables."""
    ensure_default_metrics()


@pytest.fixture(autouse=True)
def _english(settings: Any) -> None:
    """Names in English whatever the installation's default language."""
    settings.LANGUAGE_CODE = "en"


@pytest.fixture
def customer(db: None) -> Customer:
    return Customer.objects.create(name="Acme", external_id="ACME")


@pytest.fixture
def logins(db: None) -> MetricDefinition:
    """A definition besides the defaults every installation starts with (migration 0002)."""
    return MetricDefinition.objects.create(
        key="exports_28d",
        name="Exports (28 days)",
        name_ja="エクスポート数(28日)",
        kind=MetricKind.EVENT_COUNT,
        event_types=["export"],
        window_days=28,
        position=1,
    )


def _json(response: Any) -> Any:
    return response.json()


def test_latest_metric_values_with_their_change(
    api_client: Callable[..., Client], customer: Customer, logins: MetricDefinition
) -> None:
    seats = MetricDefinition.objects.get(key="seat_utilisation_28d")
    CustomerMetric.objects.create(
        customer=customer, metric=logins, as_of=AS_OF, value=80, previous_value=100
    )
    CustomerMetric.objects.create(
        customer=customer, metric=seats, as_of=AS_OF, value=0.5, previous_value=0
    )
    response = api_client(Role.VIEWER).get(f"/api/v1/customers/{customer.pk}/metrics")
    assert response.status_code == 200
    body = _json(response)
    assert body["customer"] == customer.pk
    by_key = {metric["key"]: metric for metric in body["metrics"]}
    assert by_key["exports_28d"] == {
        "key": "exports_28d",
        "name": "Exports (28 days)",
        "kind": "event_count",
        "value": 80.0,
        "previous_value": 100.0,
        "change": pytest.approx(-0.2),
        "as_of": "2026-03-31",
    }
    assert by_key["seat_utilisation_28d"]["change"] is None  # previous value 0: undefined, never 0


def test_latest_metrics_of_an_unknown_customer_is_404(api_client: Callable[..., Client]) -> None:
    assert api_client().get("/api/v1/customers/999999/metrics").status_code == 404


def test_metrics_api_needs_a_token_or_a_session(customer: Customer) -> None:
    assert Client().get(f"/api/v1/customers/{customer.pk}/metrics").status_code == 401
    assert Client().get("/api/v1/metrics").status_code == 401


def _history(rows: list[tuple[int, str, dt.date, float]]) -> None:
    """Metric history in the lake, one file per day as the metrics run writes it."""
    for day in sorted({row[2] for row in rows}):
        day_rows = [row for row in rows if row[2] == day]
        table = pa.table(
            {
                "customer_id": [row[0] for row in day_rows],
                "metric": [row[1] for row in day_rows],
                "day": [row[2] for row in day_rows],
                "value": [row[3] for row in day_rows],
            },
            schema=lake.METRIC_SCHEMA,
        )
        lake.write_metric_day(table, day)


def test_metric_history_for_a_period(
    api_client: Callable[..., Client], customer: Customer, logins: MetricDefinition
) -> None:
    other = Customer.objects.create(name="Other", external_id="OTHER")
    _history(
        [
            (customer.pk, "exports_28d", dt.date(2026, 3, 1), 10.0),
            (customer.pk, "exports_28d", dt.date(2026, 3, 2), 12.0),
            (customer.pk, "exports_28d", dt.date(2026, 3, 3), 9.0),
            (customer.pk, "active_users_28d", dt.date(2026, 3, 2), 4.0),
            (customer.pk, "active_users_28d", dt.date(2026, 3, 4), 5.0),
            (other.pk, "exports_28d", dt.date(2026, 3, 2), 99.0),
        ]
    )
    response = api_client(Role.VIEWER).get(
        f"/api/v1/customers/{customer.pk}/metrics/exports_28d/history",
        {"start": "2026-03-02", "end": "2026-03-31"},
    )
    assert response.status_code == 200
    assert _json(response) == {
        "customer": customer.pk,
        "metric": "exports_28d",
        "start": "2026-03-02",
        "end": "2026-03-31",
        "points": [{"day": "2026-03-02", "value": 12.0}, {"day": "2026-03-03", "value": 9.0}],
    }


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        ("/api/v1/customers/{customer}/metrics/nope/history", {}, 404),
        ("/api/v1/customers/999999/metrics/exports_28d/history", {}, 404),
        (
            "/api/v1/customers/{customer}/metrics/exports_28d/history",
            {"start": "2026-03-10", "end": "2026-03-01"},
            422,
        ),
        (
            "/api/v1/customers/{customer}/metrics/exports_28d/history",
            {"start": "2026-13-01"},
            422,
        ),
    ],
)
def test_metric_history_refuses_unknown_customers_metrics_and_bad_periods(
    api_client: Callable[..., Client],
    customer: Customer,
    logins: MetricDefinition,
    path: str,
    params: dict[str, str],
    status: int,
) -> None:
    response = api_client().get(path.format(customer=customer.pk), params)
    assert response.status_code == status
    assert "detail" in _json(response)


def test_metric_definitions(api_client: Callable[..., Client], logins: MetricDefinition) -> None:
    MetricDefinition.objects.create(
        key="exports_change",
        name="Exports vs previous 28 days",
        kind=MetricKind.WINDOW_CHANGE,
        base_metric=logins,
        position=2,
        is_active=False,
    )
    response = api_client(Role.VIEWER).get("/api/v1/metrics")
    assert response.status_code == 200
    definitions = _json(response)
    by_key = {definition["key"]: definition for definition in definitions}
    assert "active_users_28d" in by_key  # the defaults are listed too
    assert by_key["exports_28d"] == {
        "key": "exports_28d",
        "name": "Exports (28 days)",
        "name_ja": "エクスポート数(28日)",
        "kind": "event_count",
        "event_types": ["export"],
        "window_kind": "rolling",
        "window_days": 28,
        "base_metric": None,
        "is_active": True,
        "position": 1,
    }
    assert by_key["exports_change"]["base_metric"] == "exports_28d"
    assert by_key["exports_change"]["is_active"] is False


def test_event_stats_are_for_administrators(api_client: Callable[..., Client], db: None) -> None:
    IngestRejection.objects.create(reason="auth", detail="unknown write key", events=3)
    assert api_client(Role.CS_MANAGER).get("/api/v1/events/stats").status_code == 403
    response = api_client(Role.ADMIN).get("/api/v1/events/stats")
    assert response.status_code == 200
    body = _json(response)
    assert body["rejected"] == 3
    assert body["rejected_by_reason"] == {"auth": 3}
