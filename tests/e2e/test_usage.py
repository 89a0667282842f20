"""Usage data in a real browser: the Customer 360 usage panel draws its charts; a source is made."""

import datetime as dt
import re
from typing import Any

import pyarrow as pa
import pytest
from django.urls import reverse
from django.utils import timezone

from kizuna.analytics import lake
from kizuna.analytics.metric_defaults import ensure_default_metrics
from kizuna.analytics.models import CustomerMetric, MetricDefinition, Source
from kizuna.core.models import User
from kizuna.core.roles import Role
from kizuna.customers.models import Customer

pytestmark = pytest.mark.e2e

PASSWORD = "usage-panel-password-2026"


def _lake_events(days_ago: list[int]) -> None:
    """One login per entry, by user u<i>, for the customer ACME, at noon in Tokyo."""
    today = timezone.localdate()
    times = [
        dt.datetime.combine(today - dt.timedelta(days=ago), dt.time(3), tzinfo=dt.UTC)
        for ago in days_ago
    ]
    count = len(times)
    time_type = pa.timestamp("us", tz="UTC")
    table = pa.table(
        {
            "message_id": [f"m{i}" for i in range(count)],
            "origin": ["import:1"] * count,
            "kind": ["track"] * count,
            "event_type": ["login"] * count,
            "event_time": pa.array(times, time_type),
            "received_at": pa.array(times, time_type),
            "user_id": [f"u{i % 3}" for i in range(count)],
            "anonymous_id": [""] * count,
            "account_key": ["ACME"] * count,
            "event_value": pa.array([None] * count, pa.float64()),
            "feature": ["reports"] * count,
            "properties": ["{}"] * count,
        }
    )
    lake.write_events(
        table.append_column("event_date", lake.event_dates(table["event_time"])), "import-000001"
    )


def test_customer_usage_charts_and_a_new_source_key(page: Any) -> None:
    User.objects.create_user(username="usage-admin", password=PASSWORD, role=Role.ADMIN)
    customer = Customer.objects.create(name="Acme", external_id="ACME")
    _lake_events([0, 1, 2, 5, 9, 30])
    ensure_default_metrics()  # as migration 0002 does (an earlier browser test may have flushed)
    logins = MetricDefinition.objects.get(key="logins_28d")
    CustomerMetric.objects.create(
        customer=customer, metric=logins, as_of=timezone.localdate(), value=5, previous_value=4
    )
    failed: list[str] = []
    page.on(
        "response",
        lambda response: (
            failed.append(f"{response.status} {response.url}")
            if response.status >= 400 and not response.url.endswith("/favicon.ico")
            else None
        ),
    )
    page.on("pageerror", lambda error: failed.append(f"script error: {error}"))

    page.goto(reverse("core:login"))
    page.fill("input[name=username]", "usage-admin")
    page.fill("input[name=password]", PASSWORD)
    page.locator("form:has(input[name=password]) [type=submit]").click()
    page.wait_for_url(re.compile(r"/$"))

    # Customer 360: htmx loads the panel, usage.js loads Chart.js and draws on the canvases.
    page.goto(reverse("customers:detail", args=[customer.pk]))
    page.locator("#panel-usage canvas[data-usage-chart=activity][data-drawn=yes]").wait_for()
    page.locator("#panel-usage canvas[data-usage-chart=features][data-drawn=yes]").wait_for()
    box = page.locator("#panel-usage canvas[data-usage-chart=activity]").bounding_box()
    assert box is not None
    assert box["width"] > 100
    assert box["height"] > 100
    assert page.locator('[data-usage="active_users_28d"]').inner_text().strip() == "3"
    row = page.locator('tr[data-metric="logins_28d"]')
    assert logins.name_ja in row.inner_text()
    assert "+25.0%" in row.inner_text()

    # The period selector swaps the panel and the chart is drawn again.
    page.select_option("#panel-usage select[name=days]", "365")
    page.wait_for_function(
        """(dataId) => {
          const data = document.getElementById(dataId);
          const canvas = document.querySelector("#panel-usage canvas[data-usage-chart=activity]");
          return data && JSON.parse(data.textContent).labels.length === 365
            && canvas.dataset.drawn === "yes";
        }""",
        arg=f"usage-data-{customer.pk}",
    )

    # Settings → Sources: create a source and read its write key once.
    page.goto(reverse("analytics:sources"))
    page.fill("#create-source input[name=name]", "Web app")
    page.locator("#create-source [type=submit]").click()
    page.locator("#write-key").wait_for()
    key = page.locator("#write-key").inner_text().strip()
    assert key.startswith(Source.objects.get(name="Web app").key_prefix)
    assert not failed, f"failed requests or script errors: {sorted(set(failed))}"
