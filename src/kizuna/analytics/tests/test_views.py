"""Settings → Sources and Metrics, and the Customer 360 usage panel, through HTTP."""

import datetime as dt
import hashlib
import json
import re
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from kizuna.analytics import external, lake
from kizuna.analytics.metric_defaults import ensure_default_metrics
from kizuna.analytics.models import (
    CustomerMetric,
    IngestRejection,
    MetricDefinition,
    MetricKind,
    Source,
    UsageSettings,
)
from kizuna.core.models import User
from kizuna.core.roles import Role
from kizuna.customers.models import Customer

SOURCES = reverse("analytics:sources")
METRICS = reverse("analytics:metrics")
METRIC_ADD = reverse("analytics:metric-add")
USAGE_SETTINGS = reverse("analytics:usage-settings")


@pytest.fixture(autouse=True)
def _default_metrics(db: None) -> None:
    """The defaults of migration 0002, also after a browser test's flush emptied the tables."""
    ensure_default_metrics()


@pytest.fixture(autouse=True)
def _english(settings: Any) -> None:
    """Assert on English text whatever the Japanese catalog holds."""
    settings.LANGUAGE_CODE = "en"
    settings.KIZUNA_INGEST_HOST = ""


def _client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _html(response: Any) -> str:
    return str(response.content.decode())


def _noon(day: dt.date) -> dt.datetime:
    """Noon in Tokyo of ``day`` (03:00 UTC): its event_date is ``day`` itself."""
    return dt.datetime(day.year, day.month, day.day, 3, tzinfo=dt.UTC)


def _write_events(rows: list[dict[str, Any]], stem: str = "import-000001") -> None:
    """Lake events from short rows (user, day, event type, feature, account)."""
    fields = [field for field in lake.EVENT_SCHEMA if field.name != "event_date"]
    columns: dict[str, list[Any]] = {field.name: [] for field in fields}
    for number, row in enumerate(rows):
        full = {
            "message_id": f"m{number}",
            "origin": "import:1",
            "kind": "track",
            "event_type": "login",
            "event_time": _noon(row["day"]),
            "received_at": _noon(row["day"]),
            "user_id": "",
            "anonymous_id": "",
            "account_key": "",
            "event_value": None,
            "feature": "",
            "properties": "{}",
            **{key: value for key, value in row.items() if key != "day"},
        }
        for field in fields:
            columns[field.name].append(full[field.name])
    table = pa.table(columns, schema=pa.schema(fields))
    lake.write_events(
        table.append_column("event_date", lake.event_dates(table["event_time"])), stem
    )


# --- Settings → Sources ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "status"),
    [(Role.ADMIN, 200), (Role.CS_MANAGER, 403), (Role.ADOPTION_CSM, 403), (Role.VIEWER, 403)],
)
def test_sources_page_is_for_administrators_only(
    make_user: Callable[..., User], role: str, status: int
) -> None:
    assert _client(make_user(role)).get(SOURCES).status_code == status


def test_sources_page_without_sources_invites_to_create_one(admin_client: Client) -> None:
    html = _html(admin_client.get(SOURCES))
    assert 'id="no-sources"' in html
    assert 'id="create-source"' in html
    assert "http://testserver" in html  # the host to put in an SDK: this site's own


def test_creating_a_source_shows_its_write_key_once_and_stores_only_its_hash(
    admin_client: Client, settings: Any
) -> None:
    settings.KIZUNA_INGEST_HOST = "https://events.example.com"
    response = admin_client.post(SOURCES, {"name": "Web app", "group_id_trait": "company_id"})
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    html = _html(response)
    key = re.search(r'id="write-key">([^<]+)<', html)
    assert key is not None
    write_key = key.group(1).strip()
    source = Source.objects.get(name="Web app")
    assert source.group_id_trait == "company_id"
    assert source.key_hash == hashlib.sha256(write_key.encode()).hexdigest()
    assert write_key not in (source.key_hash, source.key_prefix)
    assert write_key.startswith(source.key_prefix)
    # The snippets carry the key and the configured host for each SDK.
    assert f'analytics.write_key = "{write_key}"' in html
    assert 'analytics.host = "https://events.example.com"' in html
    assert '"Segment.io": { apiHost: "events.example.com/v1", protocol: "https" }' in html
    assert 'rudder_analytics.dataPlaneUrl = "https://events.example.com"' in html
    # Never again: the list shows the prefix only.
    listed = _html(admin_client.get(SOURCES))
    assert write_key not in listed
    assert f"{source.key_prefix}…" in listed


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"name": ""}, "name", "This field is required."),
        ({"name": "Web app"}, "name", "already exists"),
        ({"name": "Mobile", "group_id_trait": "company id"}, "group_id_trait", "trait"),
    ],
)
def test_source_form_errors_name_the_field(
    admin_client: Client, data: dict[str, str], field: str, message: str
) -> None:
    admin_client.post(SOURCES, {"name": "Web app"})
    response = admin_client.post(SOURCES, data)
    assert response.status_code == 400
    form = response.context["form"]
    assert message in " ".join(form.errors[field])
    assert Source.objects.count() == 1


def test_revoking_a_source_asks_for_confirmation_first(admin_client: Client) -> None:
    admin_client.post(SOURCES, {"name": "Web app"})
    source = Source.objects.get()
    revoke = reverse("analytics:source-revoke", args=[source.pk])
    confirm = admin_client.get(revoke)
    assert confirm.status_code == 200
    assert 'id="confirm-revoke"' in _html(confirm)
    source.refresh_from_db()
    assert source.revoked_at is None

    response = admin_client.post(revoke)
    assert response.status_code == 302
    source.refresh_from_db()
    assert source.revoked_at is not None
    assert "Revoked" in _html(admin_client.get(SOURCES))


def test_only_administrators_revoke_write_keys(
    admin_client: Client, make_user: Callable[..., User]
) -> None:
    admin_client.post(SOURCES, {"name": "Web app"})
    source = Source.objects.get()
    manager = _client(make_user(Role.CS_MANAGER))
    assert manager.post(reverse("analytics:source-revoke", args=[source.pk])).status_code == 403
    source.refresh_from_db()
    assert source.revoked_at is None


def test_sources_page_shows_the_last_errors_and_the_totals(admin_client: Client) -> None:
    admin_client.post(SOURCES, {"name": "Web app"})
    source = Source.objects.get()
    IngestRejection.objects.create(
        source=source, reason="message_too_large", detail="event 3 is 40 KB (limit 32 KB)"
    )
    IngestRejection.objects.create(source=None, reason="auth", detail="unknown write key")
    html = _html(admin_client.get(SOURCES))
    errors = html[html.index('id="last-errors"') :]
    assert "message_too_large" in errors
    assert "Message over 32 KB" in errors
    assert "event 3 is 40 KB (limit 32 KB)" in errors
    assert "unknown write key" in errors
    assert re.search(r'data-total="rejected">\s*2\s*<', html)


# --- Settings → Metrics ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "status"),
    [(Role.ADMIN, 200), (Role.CS_MANAGER, 200), (Role.ADOPTION_CSM, 403), (Role.VIEWER, 403)],
)
def test_metrics_page_is_for_those_who_manage_metrics(
    make_user: Callable[..., User], role: str, status: int
) -> None:
    client = _client(make_user(role))
    assert client.get(METRICS).status_code == status
    assert client.get(METRIC_ADD).status_code == status
    assert client.post(USAGE_SETTINGS, {}).status_code == (302 if status == 200 else 403)


def _metric(key: str = "reports_28d", **fields: Any) -> MetricDefinition:
    """A definition besides the defaults every installation starts with (migration 0002)."""
    values: dict[str, Any] = {
        "name": "Reports viewed (28 days)",
        "kind": MetricKind.EVENT_COUNT,
        "event_types": ["report_viewed"],
        "window_days": 28,
        **fields,
    }
    return MetricDefinition.objects.create(key=key, **values)


def _metric_form(**overrides: str) -> dict[str, str]:
    return {
        "key": "exports_28d",
        "name": "Exports (28 days)",
        "name_ja": "エクスポート数(28日)",
        "kind": MetricKind.EVENT_COUNT,
        "event_types": "report_exported, csv_exported ,",
        "window_kind": "rolling",
        "window_days": "28",
        "base_metric": "",
        "position": "100",
        **overrides,
    }


def test_a_metric_definition_is_created_with_its_event_types_as_a_list(
    admin_client: Client,
) -> None:
    response = admin_client.post(METRIC_ADD, _metric_form())
    assert response.status_code == 302
    metric = MetricDefinition.objects.get(key="exports_28d")
    assert metric.event_types == ["report_exported", "csv_exported"]
    assert metric.name_ja == "エクスポート数(28日)"
    assert metric.is_active
    listed = _html(admin_client.get(METRICS))
    assert "Exports (28 days)" in listed
    assert "report_exported, csv_exported" in listed


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"window_days": "0"}, "window_days", "from 1 to 366"),
        ({"window_days": "367"}, "window_days", "from 1 to 366"),
        ({"window_days": ""}, "window_days", "from 1 to 366"),
        ({"window_days": "x"}, "window_days", "whole number"),
        ({"kind": MetricKind.WINDOW_CHANGE}, "base_metric", "choose one"),
        (
            {"kind": MetricKind.WINDOW_CHANGE, "window_kind": "calendar_month", "window_days": "0"},
            "window_days",
            "from 1 to 366",
        ),
        ({"key": "logins_28d"}, "key", "already exists"),  # a default metric
        ({"key": "exports 28d"}, "key", "valid"),
        ({"key": "Exports_28d"}, "key", "lower-case"),
        ({"event_types": "login,\x01bad"}, "event_types", "not a valid name"),
    ],
)
def test_metric_definition_form_errors_name_the_field(
    admin_client: Client, overrides: dict[str, str], field: str, message: str
) -> None:
    before = MetricDefinition.objects.count()
    response = admin_client.post(METRIC_ADD, _metric_form(**overrides))
    assert response.status_code == 400
    assert message in " ".join(response.context["form"].errors[field])
    assert MetricDefinition.objects.count() == before


def test_only_a_change_metric_has_a_base_metric(admin_client: Client) -> None:
    base = _metric()
    response = admin_client.post(METRIC_ADD, _metric_form(base_metric=str(base.pk)))
    assert response.status_code == 400
    assert "Only a change metric" in " ".join(response.context["form"].errors["base_metric"])

    response = admin_client.post(
        METRIC_ADD,
        _metric_form(key="reports_change", kind=MetricKind.WINDOW_CHANGE, base_metric=str(base.pk)),
    )
    assert response.status_code == 302
    assert MetricDefinition.objects.get(key="reports_change").base_metric == base


def test_a_calendar_month_metric_needs_no_window_days(admin_client: Client) -> None:
    response = admin_client.post(
        METRIC_ADD, _metric_form(window_kind="calendar_month", window_days="0")
    )
    assert response.status_code == 302
    assert MetricDefinition.objects.get(key="exports_28d").window_days == 0
    # The default "this month" metric can be edited as shown.
    month = MetricDefinition.objects.get(key="active_users_month")
    edit = reverse("analytics:metric-edit", args=[month.pk])
    form = admin_client.get(edit).context["form"]
    data = {name: form[name].value() for name in form.fields if name != "key"}
    data = {name: "" if value is None else value for name, value in data.items()}
    data["event_types"] = ""
    data["name"] = "MAU"
    assert admin_client.post(edit, data).status_code == 302
    month.refresh_from_db()
    assert (month.name, month.window_kind, month.window_days) == ("MAU", "calendar_month", 0)


def test_editing_a_metric_keeps_its_key(admin_client: Client) -> None:
    metric = _metric()
    response = admin_client.post(
        reverse("analytics:metric-edit", args=[metric.pk]),
        _metric_form(key="renamed", name="Logins", window_days="7"),
    )
    assert response.status_code == 302
    metric.refresh_from_db()
    assert (metric.key, metric.name, metric.window_days) == ("reports_28d", "Logins", 7)


def test_deactivating_a_metric_and_the_base_of_an_active_change_metric(
    admin_client: Client,
) -> None:
    base = _metric()
    change = _metric("reports_change", kind=MetricKind.WINDOW_CHANGE, base_metric=base)
    active = reverse("analytics:metric-active", args=[base.pk])

    admin_client.post(active, {"active": "0"})
    base.refresh_from_db()
    assert base.is_active  # refused: reports_change still compares it
    assert "reports_change" in _html(admin_client.get(METRICS))

    admin_client.post(reverse("analytics:metric-active", args=[change.pk]), {"active": "0"})
    admin_client.post(active, {"active": "0"})
    base.refresh_from_db()
    assert not base.is_active
    admin_client.post(active, {"active": "1"})
    base.refresh_from_db()
    assert base.is_active


def test_metric_names_follow_the_users_language(admin_client: Client, settings: Any) -> None:
    _metric(name_ja="レポート閲覧数(28日)")
    _metric("exports_28d", name="Exports", name_ja="")
    english = _html(admin_client.get(METRICS))
    assert "Reports viewed (28 days)" in english
    assert "レポート閲覧数(28日)" not in english
    admin_client.cookies[settings.LANGUAGE_COOKIE_NAME] = "ja"
    html = _html(admin_client.get(METRICS))
    assert "レポート閲覧数(28日)" in html
    assert "Exports" in html  # no Japanese name: the name as given


def test_usage_settings_are_saved_as_lists_and_a_column_mapping(admin_client: Client) -> None:
    response = admin_client.post(
        USAGE_SETTINGS,
        {
            "qualifying_event_types": "login, page_view",
            "key_features": "reports,dashboards",
            "external_connection": "postgres://reader:s3cret@db.example.com:5432/product",
            "external_table": "events",
            "external_columns": "event_time=occurred_at\nevent_type = name\naccount_key=company_id\n",
        },
    )
    assert response.status_code == 302
    usage = UsageSettings.load()
    assert usage.qualifying_event_types == ["login", "page_view"]
    assert usage.key_features == ["reports", "dashboards"]
    assert usage.external_columns == {
        "event_time": "occurred_at",
        "event_type": "name",
        "account_key": "company_id",
    }
    # The password never goes back to the browser, and saving the form unchanged keeps it.
    html = _html(admin_client.get(METRICS))
    assert "s3cret" not in html
    assert "postgres://reader:********@db.example.com:5432/product" in html
    response = admin_client.post(
        USAGE_SETTINGS,
        {
            "key_features": "reports",
            "external_connection": "postgres://reader:********@db.example.com:5432/product",
            "external_table": "events",
            "external_columns": "event_time=occurred_at\nevent_type=name\nuser_id=member",
        },
    )
    assert response.status_code == 302
    usage.refresh_from_db()
    assert usage.external_connection == "postgres://reader:s3cret@db.example.com:5432/product"
    assert usage.external_columns["user_id"] == "member"


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ("event_time occurred_at", "Line 1: write target=column"),
        ("event_time=occurred_at\ncolour=hue", "Line 2: unknown target “colour”"),
        ("event_time=a\nevent_time=b", "Line 2: “event_time” is mapped twice"),
        ("event_time=a", "event_type, account_key / user_id"),
    ],
)
def test_a_bad_column_mapping_names_its_line(
    admin_client: Client, columns: str, message: str
) -> None:
    response = admin_client.post(
        USAGE_SETTINGS,
        {
            "external_connection": "duckdb://x.db",
            "external_table": "e",
            "external_columns": columns,
        },
    )
    assert response.status_code == 400
    assert message in " ".join(response.context["usage_form"].errors["external_columns"])
    assert UsageSettings.load().external_connection == ""


def test_check_connection_shows_the_problems_found(
    admin_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        external,
        "check_external_source",
        lambda: ["column occurred_at is missing from events"],
        raising=False,
    )
    response = admin_client.post(
        USAGE_SETTINGS,
        {
            "external_connection": "duckdb:///tmp/warehouse.db",
            "external_table": "events",
            "external_columns": "event_time=occurred_at\nevent_type=name\naccount_id=company_id",
            "check": "1",
        },
    )
    assert response.status_code == 200
    html = _html(response)
    assert 'id="external-check"' in html
    assert "column occurred_at is missing from events" in html
    usage = UsageSettings.load()
    assert usage.external_table == "events"
    assert usage.external_columns == {  # account_id is another name of account_key
        "event_time": "occurred_at",
        "event_type": "name",
        "account_key": "company_id",
    }


# --- Customer 360 usage panel ------------------------------------------------------------------


@pytest.fixture
def customer(db: None) -> Customer:
    return Customer.objects.create(name="Acme", external_id="ACME")


def _usage(client: Client, customer: Customer, **params: str) -> Any:
    return client.get(
        reverse("analytics:customer-usage", args=[customer.pk]),
        params,
        headers={"HX-Request": "true"},
    )


def test_usage_panel_counts_active_users_events_and_features_from_the_lake(
    admin_client: Client, customer: Customer
) -> None:
    today = timezone.localdate()
    day = dt.timedelta(days=1)
    _write_events(
        [
            # Three users active in the last 28 days, two of them in the last 7.
            {"day": today, "user_id": "u1", "account_key": "ACME", "feature": "reports"},
            {"day": today, "user_id": "u1", "account_key": "ACME", "feature": "reports"},
            {"day": today - 3 * day, "user_id": "u2", "account_key": "ACME", "feature": "export"},
            {"day": today - 20 * day, "user_id": "u3", "account_key": "ACME"},
            # Older than 28 days: in the 90-day chart, not in the 28-day figures.
            {"day": today - 40 * day, "user_id": "u4", "account_key": "ACME"},
            # Another customer's event.
            {"day": today, "user_id": "x1", "account_key": "OTHER", "feature": "reports"},
        ]
    )
    response = _usage(admin_client, customer)
    assert response.status_code == 200
    html = _html(response)
    assert "<html" not in html  # an htmx fragment
    assert re.search(r'data-usage="active_users_28d">3<', html)
    assert re.search(r'data-usage="active_users_7d">2<', html)
    assert re.search(r'data-usage="events_28d">4<', html)
    assert re.search(r'data-usage="features_28d">3<', html)
    assert 'id="usage-chart-' in html
    assert "kizuna/usage.js" in html

    data = response.context["chart_data"]
    assert len(data["labels"]) == 90
    assert data["labels"][-1] == today.isoformat()
    series = {item["key"]: item["data"] for item in data["series"]}
    assert sum(series["events"]) == 5
    assert series["active_users_28d"][-1] == 3
    assert series["active_users_7d"][-1] == 2
    # Per feature over 28 days: an event without a feature counts under its type.
    assert dict(zip(data["features"]["labels"], data["features"]["data"], strict=True)) == {
        "reports": 2,
        "export": 1,
        "login": 1,
    }
    embedded = re.search(r'id="usage-data-\d+" type="application/json">(.*?)</script>', html)
    assert embedded is not None
    assert json.loads(embedded.group(1))["labels"][-1] == today.isoformat()


def test_usage_panel_period_selector_widens_the_chart(
    admin_client: Client, customer: Customer
) -> None:
    today = timezone.localdate()
    _write_events([{"day": today, "user_id": "u1", "account_key": "ACME"}])
    assert len(_usage(admin_client, customer, days="365").context["chart_data"]["labels"]) == 365
    assert len(_usage(admin_client, customer, days="7").context["chart_data"]["labels"]) == 90


def test_usage_panel_opened_directly_is_a_whole_page(
    admin_client: Client, customer: Customer
) -> None:
    response = admin_client.get(reverse("analytics:customer-usage", args=[customer.pk]))
    assert response.status_code == 200
    assert "<html" in _html(response)
    assert 'id="usage-panel"' in _html(response)


def test_usage_panel_without_events_points_admins_to_sources(
    admin_client: Client, make_user: Callable[..., User], customer: Customer
) -> None:
    html = _html(_usage(admin_client, customer))
    assert 'id="usage-empty"' in html
    assert "No product events yet" in html
    assert SOURCES in html
    viewer_html = _html(_usage(_client(make_user(Role.VIEWER)), customer))
    assert 'id="usage-empty"' in viewer_html
    assert SOURCES not in viewer_html  # no link to a page the viewer may not open


def test_usage_panel_shows_latest_metrics_with_their_change(
    admin_client: Client, customer: Customer
) -> None:
    as_of = timezone.localdate()
    defaults = MetricDefinition.objects.in_bulk(
        ["logins_28d", "active_users_28d", "active_users_28d_change"], field_name="key"
    )
    for key, value, previous in (
        ("logins_28d", 80, 100),
        ("active_users_28d", 3, None),
        ("active_users_28d_change", -0.25, 0.1),
    ):
        CustomerMetric.objects.create(
            customer=customer,
            metric=defaults[key],
            as_of=as_of,
            value=value,
            previous_value=previous,
        )
    html = _html(_usage(admin_client, customer))
    logins_row = re.search(r'data-metric="logins_28d">(.*?)</tr>', html, re.S)
    assert logins_row is not None
    assert "80" in logins_row.group(1)
    assert "▼" in logins_row.group(1)
    assert "-20.0%" in logins_row.group(1)
    users_row = re.search(r'data-metric="active_users_28d">(.*?)</tr>', html, re.S)
    assert users_row is not None
    assert "—" in users_row.group(1)
    assert "▲" not in users_row.group(1)
    assert "▼" not in users_row.group(1)
    # A change metric's value is itself the change: shown signed, with no change of a change.
    change_row = re.search(r'data-metric="active_users_28d_change">(.*?)</tr>', html, re.S)
    assert change_row is not None
    assert "-25.0%" in change_row.group(1)
    assert "▼" not in change_row.group(1)


def test_usage_panel_of_an_unknown_customer_is_404(admin_client: Client) -> None:
    assert admin_client.get(reverse("analytics:customer-usage", args=[999_999])).status_code == 404


def test_usage_panel_requires_signing_in(customer: Customer) -> None:
    response = Client().get(reverse("analytics:customer-usage", args=[customer.pk]))
    assert response.status_code == 302


def test_only_qualifying_events_make_a_user_active(
    admin_client: Client, customer: Customer
) -> None:
    usage = UsageSettings.load()
    usage.qualifying_event_types = ["login"]
    usage.save()
    today = timezone.localdate()
    _write_events(
        [
            {"day": today, "user_id": "u1", "account_key": "ACME", "event_type": "login"},
            {"day": today, "user_id": "u2", "account_key": "ACME", "event_type": "page_view"},
        ]
    )
    html = _html(_usage(admin_client, customer))
    assert re.search(r'data-usage="active_users_28d">1<', html)  # u2 only viewed a page
    assert re.search(r'data-usage="events_28d">2<', html)  # but both events count as use
