"""The external source: a read-only warehouse table read through Ibis (DuckDB file, PostgreSQL)."""

import datetime as dt
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from django.db import connection
from django.utils import translation

from kizuna.analytics import engine, external
from kizuna.analytics.external import ExternalConfig, ExternalSourceError
from kizuna.analytics.importing import import_event_file
from kizuna.analytics.models import UsageSettings
from kizuna.customers.models import Customer

pytestmark = pytest.mark.django_db

UTC = dt.UTC
MAPPING = {
    "event_time": "occurred_at",
    "event_type": "action",
    "account_key": "tenant",
    "user_id": "member",
    "event_value": "amount",
    "feature": "screen",
}
# (occurred_at, action, tenant, member, amount, screen); days are in Asia/Tokyo.
ROWS = [
    ("2026-10-31 23:59:59+09", "login", "ACME", "u0", None, None),  # Oct 31: before the range
    ("2026-11-01 00:30:00+09", "login", "ACME", "u1", 1.5, "home"),  # Nov 1
    ("2026-11-01 15:00:00+00", "export", "ACME", "u2", None, None),  # Nov 2, 00:00 in Tokyo
    ("2026-11-02 23:59:59+09", "export", "OTHER", "u3", 2.0, None),  # Nov 2
    ("2026-11-03 00:00:00+09", "login", "ACME", "u4", None, None),  # Nov 3: after the range
    (None, "login", "ACME", "u5", None, None),  # no time: never read
]


@pytest.fixture(autouse=True)
def english() -> Iterator[None]:
    with translation.override("en"):
        yield


def make_duckdb_warehouse(path: Path, *, naive: bool = False) -> None:
    time_type = "TIMESTAMP" if naive else "TIMESTAMPTZ"
    con = duckdb.connect(str(path))
    con.execute("SET TimeZone = 'UTC'")
    con.execute("CREATE SCHEMA product")
    con.execute(
        f"CREATE TABLE product.events (occurred_at {time_type}, action VARCHAR, tenant VARCHAR, "
        "member VARCHAR, amount DOUBLE, screen VARCHAR, note INTEGER)"
    )
    for occurred_at, *rest in ROWS:
        value = occurred_at
        if naive and occurred_at is not None:
            # The same instants written as wall-clock times in Tokyo.
            value = (
                dt.datetime.fromisoformat(occurred_at)
                .astimezone(dt.timezone(dt.timedelta(hours=9)))
                .replace(tzinfo=None)
                .isoformat(sep=" ")
            )
        con.execute("INSERT INTO product.events VALUES (?, ?, ?, ?, ?, ?, 1)", [value, *rest])
    con.close()


def configure(connection_string: str, table: str, columns: dict[str, str] | None = None) -> None:
    usage = UsageSettings.load()
    usage.external_connection = connection_string
    usage.external_table = table
    usage.external_columns = MAPPING if columns is None else columns
    usage.save()


def usage_rows(start: dt.date, end: dt.date) -> list[dict[str, Any]]:
    with engine.session("duckdb") as con:
        rows = engine.usage_events(con, start, end).to_pyarrow().to_pylist()
    return sorted(rows, key=lambda row: row["user_key"])


@pytest.mark.parametrize("naive", [False, True], ids=["timestamptz", "naive-local-time"])
def test_a_duckdb_warehouse_table_joins_the_usage_events(tmp_path: Path, naive: bool) -> None:
    acme = Customer.objects.create(name="Acme", external_id="ACME")
    warehouse = tmp_path / "warehouse.duckdb"
    make_duckdb_warehouse(warehouse, naive=naive)
    configure(f"duckdb://{warehouse}", "product.events")

    rows = usage_rows(dt.date(2026, 11, 1), dt.date(2026, 11, 2))

    assert [
        (r["user_key"], r["customer_id"], r["event_type"], r["event_date"], r["event_value"])
        for r in rows
    ] == [
        ("u1", acme.pk, "login", dt.date(2026, 11, 1), 1.5),
        ("u2", acme.pk, "export", dt.date(2026, 11, 2), None),
        ("u3", None, "export", dt.date(2026, 11, 2), 2.0),
    ]
    assert [r["feature"] for r in rows] == ["home", "export", "export"]  # feature or type
    assert rows[1]["event_time"] == dt.datetime(2026, 11, 1, 15, 0, tzinfo=UTC)


def test_external_rows_have_exactly_the_lake_columns(tmp_path: Path) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    make_duckdb_warehouse(warehouse)
    config = ExternalConfig(f"duckdb://{warehouse}", "product.events", MAPPING)

    table = external.fetch_external_events(config, dt.date(2026, 11, 1), dt.date(2026, 11, 1))

    from kizuna.analytics import lake

    assert table.schema == lake.EVENT_SCHEMA
    [row] = table.to_pylist()
    assert row == {
        "message_id": "",
        "origin": "external",
        "kind": "track",
        "event_type": "login",
        "event_time": dt.datetime(2026, 10, 31, 15, 30, tzinfo=UTC),
        "event_date": dt.date(2026, 11, 1),
        "received_at": None,
        "user_id": "u1",
        "anonymous_id": "",
        "account_key": "ACME",
        "event_value": 1.5,
        "feature": "home",
        "properties": "{}",
    }


def test_without_a_range_every_timed_row_is_read(tmp_path: Path) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    make_duckdb_warehouse(warehouse)
    config = ExternalConfig(f"duckdb://{warehouse}", "product.events", MAPPING)

    table = external.fetch_external_events(config)

    assert sorted(table["user_id"].to_pylist()) == ["u0", "u1", "u2", "u3", "u4"]


def test_lake_and_warehouse_events_are_read_together(tmp_path: Path) -> None:
    acme = Customer.objects.create(name="Acme", external_id="ACME")
    csv = tmp_path / "events.csv"
    csv.write_text("account_id,event_time,event_type,user_id\nACME,2026-11-01 12:00,login,f1\n")
    assert import_event_file(csv).ok
    warehouse = tmp_path / "warehouse.duckdb"
    make_duckdb_warehouse(warehouse)
    configure(f"duckdb://{warehouse}", "product.events")

    rows = usage_rows(dt.date(2026, 11, 1), dt.date(2026, 11, 1))

    assert [(r["user_key"], r["customer_id"]) for r in rows] == [("f1", acme.pk), ("u1", acme.pk)]


def test_no_configured_source_means_no_external_events() -> None:
    with engine.session("duckdb") as con:
        assert external.external_events(con) is None
    assert external.check_external_source() == []


def test_the_warehouse_is_opened_read_only(tmp_path: Path) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    make_duckdb_warehouse(warehouse)
    backend = external._connect(ExternalConfig(f"duckdb://{warehouse}", "product.events"))
    try:
        with pytest.raises(Exception, match="read-only"):
            backend.raw_sql("CREATE TABLE product.written (x INTEGER)")
    finally:
        backend.disconnect()


def test_a_working_source_has_no_problems(tmp_path: Path) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    make_duckdb_warehouse(warehouse)
    configure(f"duckdb://{warehouse}", "product.events")

    assert external.check_external_source() == []


@pytest.mark.parametrize(
    ("table", "columns", "expected"),
    [
        (
            "product.events",
            {"event_type": "action", "user_id": "member"},
            "Map the column(s) event_time",
        ),
        (
            "product.events",
            {"event_time": "occurred_at", "event_type": "action"},
            "account_key / user_id",
        ),
        ("product.events", {**MAPPING, "colour": "hue"}, "Unknown target column(s) colour"),
        ("product.nothing", MAPPING, "Cannot read the table product.nothing"),
        (
            "product.events",
            {**MAPPING, "user_id": "person"},
            "Column person (for user_id) is not in product.events; its columns are: occurred_at, ",
        ),
        (
            "product.events",
            {**MAPPING, "event_time": "action"},
            "Column action (event_time) must be a timestamp or date, not string",
        ),
        ("product.events", {**MAPPING, "event_value": "screen"}, "(event_value) must be numeric"),
    ],
)
def test_configuration_problems_are_named(
    tmp_path: Path, table: str, columns: dict[str, str], expected: str
) -> None:
    warehouse = tmp_path / "warehouse.duckdb"
    make_duckdb_warehouse(warehouse)
    configure(f"duckdb://{warehouse}", table, columns)

    problems = external.check_external_source()

    assert len(problems) == 1
    assert expected in problems[0]
    with engine.session("duckdb") as con, pytest.raises(ExternalSourceError):
        engine.usage_events(con)


def test_an_unreachable_connection_is_a_problem_without_its_password(tmp_path: Path) -> None:
    missing = ExternalConfig(f"duckdb://{tmp_path / 'nowhere.duckdb'}", "events", MAPPING)
    refused = ExternalConfig("postgres://reader:s3cret@127.0.0.1:1/warehouse", "events", MAPPING)

    [missing_problem] = external.check_external_source(missing)
    [refused_problem] = external.check_external_source(refused)

    assert missing_problem.startswith(f"Cannot connect to duckdb://{tmp_path / 'nowhere.duckdb'}")
    assert refused_problem.startswith("Cannot connect to postgres://reader:***@127.0.0.1:1/")
    assert "s3cret" not in refused_problem


def test_account_id_is_accepted_for_account_key() -> None:
    configure("duckdb:///x.duckdb", "events", {"account_id": "tenant"})

    config = ExternalConfig.from_settings()

    assert config is not None
    assert config.columns == {"account_key": "tenant"}


# ---------------------------------------------------------------------------------------------
# PostgreSQL: a table in a schema of its own in the test database, when the tests run on it.


@pytest.fixture
def postgres_warehouse() -> Iterator[str]:
    if connection.vendor != "postgresql":
        pytest.skip("the tests run on SQLite: no PostgreSQL warehouse to read")
    import psycopg

    params = connection.settings_dict
    user = params["USER"] or "postgres"
    password = f":{params['PASSWORD']}" if params["PASSWORD"] else ""
    url = f"postgresql://{user}{password}@{params['HOST'] or '127.0.0.1'}:{params['PORT'] or 5432}/{params['NAME']}"
    schema = f"warehouse_{secrets.token_hex(4)}"
    with psycopg.connect(url, autocommit=True) as pg:
        pg.execute(f"CREATE SCHEMA {schema}")
        pg.execute(
            f"CREATE TABLE {schema}.events (occurred_at timestamptz, action text, tenant text, "
            "member text, amount double precision, screen text, note integer)"
        )
        with pg.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO {schema}.events VALUES (%s, %s, %s, %s, %s, %s, 1)", ROWS
            )
    try:
        yield f"{url}|{schema}"
    finally:
        with psycopg.connect(url, autocommit=True) as pg:
            pg.execute(f"DROP SCHEMA {schema} CASCADE")


def test_a_postgresql_warehouse_table_joins_the_usage_events(postgres_warehouse: str) -> None:
    url, schema = postgres_warehouse.split("|")
    acme = Customer.objects.create(name="Acme", external_id="ACME")
    configure(url, f"{schema}.events")

    assert external.check_external_source() == []
    rows = usage_rows(dt.date(2026, 11, 1), dt.date(2026, 11, 2))

    assert [(r["user_key"], r["customer_id"], r["event_date"], r["event_value"]) for r in rows] == [
        ("u1", acme.pk, dt.date(2026, 11, 1), 1.5),
        ("u2", acme.pk, dt.date(2026, 11, 2), None),
        ("u3", None, dt.date(2026, 11, 2), 2.0),
    ]


def test_the_postgresql_warehouse_is_opened_read_only(postgres_warehouse: str) -> None:
    url, schema = postgres_warehouse.split("|")
    backend = external._connect(ExternalConfig(url, f"{schema}.events"))
    try:
        with pytest.raises(Exception, match="read-only transaction"):
            backend.raw_sql(f"CREATE TABLE {schema}.written (x integer)")
    finally:
        backend.disconnect()
