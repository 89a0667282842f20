"""The engine resolves each event's customer and day the same way on DuckDB and Spark."""

import datetime as dt

import pyarrow as pa
import pytest
from django.utils import timezone

from kizuna.analytics import engine, lake
from kizuna.analytics.models import GroupLink, ProductUser
from kizuna.customers.models import Contact, Customer

UTC = dt.UTC


def _events(rows: list[dict[str, object]]) -> pa.Table:
    """A lake table from short rows: defaults for every column a test does not care about."""
    columns: dict[str, list[object]] = {name: [] for name in lake.EVENT_SCHEMA.names}
    for number, row in enumerate(rows):
        full = {
            "message_id": f"m{number}",
            "origin": "import:1",
            "kind": "track",
            "event_type": "login",
            "received_at": row["event_time"],
            "user_id": "",
            "anonymous_id": "",
            "account_key": "",
            "event_value": None,
            "feature": "",
            "properties": "{}",
            **row,
        }
        for name in lake.EVENT_SCHEMA.names:
            if name != "event_date":
                columns[name].append(full[name])
    table = pa.table(
        {name: columns[name] for name in lake.EVENT_SCHEMA.names if name != "event_date"},
        schema=pa.schema([f for f in lake.EVENT_SCHEMA if f.name != "event_date"]),
    )
    return table.append_column("event_date", lake.event_dates(table["event_time"]))


def _resolved(engine_name: str) -> list[dict[str, object]]:
    with engine.session(engine_name) as con:  # type: ignore[arg-type]
        rows = engine.usage_events(con).to_pyarrow().to_pylist()
    return sorted(rows, key=lambda row: str(row["event_type"]))


def _scenario() -> dict[str, int]:
    direct = Customer.objects.create(name="Direct", external_id="ACME")
    via_group = Customer.objects.create(name="Grouped", external_id="C-2")
    via_contact = Customer.objects.create(name="Contact", external_id="C-3")
    via_user = Customer.objects.create(name="User", external_id="C-4")
    GroupLink.objects.create(group_id="workspace-9", customer_key="C-2")
    Contact.objects.create(customer=via_contact, name="Aoi", product_user_id="u-aoi")
    now = timezone.now()
    ProductUser.objects.create(user_id="u-ren", account_key="C-4", first_seen=now, last_seen=now)
    lake.write_events(
        _events(
            [
                # 01:00 UTC is 10:00 in Tokyo: the same day.
                {"event_type": "a_direct", "account_key": "ACME", "user_id": "u1",
                 "event_time": dt.datetime(2026, 11, 1, 1, tzinfo=UTC)},
                # 16:00 UTC is 01:00 the next day in Tokyo.
                {"event_type": "b_group", "account_key": "workspace-9", "user_id": "u2",
                 "event_time": dt.datetime(2026, 11, 2, 16, tzinfo=UTC)},
                {"event_type": "c_contact", "user_id": "u-aoi",
                 "event_time": dt.datetime(2026, 11, 3, 1, tzinfo=UTC)},
                {"event_type": "d_user", "user_id": "u-ren", "event_value": 2.5,
                 "event_time": dt.datetime(2026, 11, 3, 2, tzinfo=UTC)},
                {"event_type": "e_unknown", "account_key": "NOBODY", "anonymous_id": "anon-1",
                 "event_time": dt.datetime(2026, 11, 3, 3, tzinfo=UTC)},
                {"event_type": "f_identify", "kind": "identify", "user_id": "u1",
                 "event_time": dt.datetime(2026, 11, 3, 3, tzinfo=UTC)},
            ]
        ),
        "import-000001",
    )  # fmt: skip
    return {
        "direct": direct.pk,
        "group": via_group.pk,
        "contact": via_contact.pk,
        "user": via_user.pk,
    }


@pytest.mark.django_db
def test_events_are_resolved_to_customers_through_every_kind_of_link() -> None:
    ids = _scenario()
    rows = _resolved("duckdb")
    assert [row["event_type"] for row in rows] == [
        "a_direct",
        "b_group",
        "c_contact",
        "d_user",
        "e_unknown",
    ]  # fmt: skip  (identify calls are not usage)
    assert [row["customer_id"] for row in rows] == [
        ids["direct"], ids["group"], ids["contact"], ids["user"], None,
    ]  # fmt: skip
    assert rows[0]["event_date"] == dt.date(2026, 11, 1)
    assert rows[1]["event_date"] == dt.date(2026, 11, 3)
    assert rows[4]["user_key"] == "anon-1"
    assert rows[3]["event_value"] == 2.5
    assert rows[0]["feature"] == "a_direct"


@pytest.mark.django_db
def test_an_unknown_customer_is_linked_once_it_exists() -> None:
    _scenario()
    assert _resolved("duckdb")[4]["customer_id"] is None
    late = Customer.objects.create(name="Late", external_id="NOBODY")
    assert _resolved("duckdb")[4]["customer_id"] == late.pk


@pytest.mark.django_db
def test_an_empty_lake_reads_as_no_events() -> None:
    assert _resolved("duckdb") == []


@pytest.mark.spark
@pytest.mark.django_db
def test_spark_resolves_the_same_rows_as_duckdb() -> None:
    _scenario()
    assert _resolved("spark") == _resolved("duckdb")
