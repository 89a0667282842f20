"""The analytics engines behind one Ibis vocabulary: DuckDB in-process (default) or PySpark.

Everything that reads the lake starts here: ``connect()`` opens an engine, ``usage_events()``
gives the product events of the lake (plus the optional external warehouse table) with the
customer each belongs to. Metric and KPI definitions are Ibis expressions over that table, so
the same definition runs on every engine.
"""

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any, Literal

import ibis
import ibis.expr.types as ir
import pyarrow as pa
from django.conf import settings

from kizuna.analytics import lake
from kizuna.analytics.identity import account_customer_map, user_customer_map

Engine = Literal["duckdb", "spark"]
ENGINES: tuple[Engine, ...] = ("duckdb", "spark")


def default_engine() -> Engine:
    configured = settings.KIZUNA_ANALYTICS_ENGINE
    if configured not in ENGINES:
        raise ValueError(f"KIZUNA_ANALYTICS_ENGINE must be one of {', '.join(ENGINES)}")
    return configured


def spark_session() -> Any:
    """A local-mode Spark session (``KIZUNA_SPARK_MASTER`` names a cluster instead)."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    # py4j logs its shutdown at INFO, after the test runner or CLI has closed the streams.
    logging.getLogger("py4j").setLevel(logging.WARNING)
    from pyspark.sql import SparkSession

    builder = (
        SparkSession.builder.master(settings.KIZUNA_SPARK_MASTER)
        .appName("kizuna")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.driver.memory", settings.KIZUNA_SPARK_DRIVER_MEMORY)
    )
    return builder.getOrCreate()


def connect(engine: Engine | None = None) -> ibis.BaseBackend:
    """Open the analytics engine (the caller closes DuckDB connections with ``disconnect``)."""
    engine = engine or default_engine()
    if engine == "duckdb":
        con = ibis.duckdb.connect(threads=settings.KIZUNA_DUCKDB_THREADS)
        con.raw_sql("SET enable_progress_bar=false")
        return con
    if engine == "spark":
        return ibis.pyspark.connect(spark_session())
    raise ValueError(f"unknown engine {engine!r}")


@contextmanager
def session(engine: Engine | None = None) -> Iterator[ibis.BaseBackend]:
    con = connect(engine)
    try:
        yield con
    finally:
        if (engine or default_engine()) == "duckdb":
            con.disconnect()


def lake_events(con: ibis.BaseBackend) -> ir.Table:
    """Every event file of the lake as one table (EVENT_SCHEMA), empty when there is none."""
    files = [str(path) for path in lake.event_files()]
    if not files:
        return ibis.memtable(lake.EVENT_SCHEMA.empty_table())
    pattern = str(lake.events_dir() / "*" / "*.parquet")
    if con.name == "pyspark":
        return con.read_parquet(pattern)
    return con.read_parquet(pattern, union_by_name=True)


def all_events(
    con: ibis.BaseBackend, start: date | None = None, end: date | None = None
) -> ir.Table:
    """Lake events plus the external warehouse table when one is configured."""
    from kizuna.analytics.external import external_events

    events = _schema_ordered(lake_events(con))
    external = external_events(con, start, end)
    if external is not None:
        events = events.union(_schema_ordered(external))
    return events


def _schema_ordered(table: ir.Table) -> ir.Table:
    return table.select(
        *[
            table[field.name].cast(_ibis_type(field.type)).name(field.name)
            for field in lake.EVENT_SCHEMA
        ]
    )


def _ibis_type(arrow_type: pa.DataType) -> Any:
    return ibis.dtype(arrow_type)


def usage_events(
    con: ibis.BaseBackend, start: date | None = None, end: date | None = None
) -> ir.Table:
    """Usage events (track, page, screen) in ``[start, end]`` by ``event_date``, with customer.

    Columns: customer_id (int64, null when unknown), user_key (user id, else anonymous id),
    event_type, feature, event_value, event_date, event_time.
    """
    events = all_events(con, start, end)
    events = events.filter(events.kind.isin(lake.USAGE_KINDS))
    if start is not None:
        events = events.filter(events.event_date >= start)
    if end is not None:
        events = events.filter(events.event_date <= end)
    accounts = ibis.memtable(account_customer_map())
    users = ibis.memtable(user_customer_map())
    joined = events.left_join(accounts, events.account_key == accounts.account_key).left_join(
        users, events.user_id == users.map_user_id
    )
    user_key = ibis.coalesce(joined.user_id.nullif(""), joined.anonymous_id.nullif(""))
    return joined.select(
        customer_id=ibis.coalesce(joined.customer_id, joined.map_customer_id),
        user_key=user_key,
        event_type=joined.event_type,
        feature=ibis.coalesce(joined.feature.nullif(""), joined.event_type),
        event_value=joined.event_value,
        event_date=joined.event_date,
        event_time=joined.event_time,
    )
