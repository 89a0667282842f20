"""The same metric definitions give identical histories on DuckDB and on PySpark (local mode)."""

import shutil
from collections.abc import Iterator
from typing import Any

import ibis
import pytest

from kizuna.analytics import engine, lake
from kizuna.analytics.metrics import compute_history, run_metrics
from kizuna.analytics.models import CustomerMetric, MetricDefinition
from kizuna.analytics.tests.test_metrics import (
    END,
    EVENTS,
    EXPECTED,
    START,
    as_grid,
    customers,
    event_table,
    events,
    test_metrics,
)
from kizuna.customers.models import Customer

__all__ = ["customers", "events", "test_metrics"]  # fixtures shared with test_metrics.py


def spark_engine_available() -> bool:
    """Java and pyspark are both present (the pattern for any Spark test)."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return False
    return shutil.which("java") is not None


pytestmark = [
    pytest.mark.spark,
    pytest.mark.skipif(not spark_engine_available(), reason="needs Java and pyspark"),
]


@pytest.fixture(scope="session")
def spark() -> Iterator[ibis.BaseBackend]:
    """One local Spark session for every Spark test of the run (it takes ~17 s to start)."""
    yield engine.connect("spark")


def rows(table: Any) -> list[tuple[Any, ...]]:
    return sorted(
        (row["day"], row["metric"], row["customer_id"], row["value"]) for row in table.to_pylist()
    )


def test_duckdb_and_spark_compute_identical_histories(
    spark: ibis.BaseBackend,
    customers: dict[str, Customer],
    test_metrics: list[MetricDefinition],
    events: None,
) -> None:
    with engine.session("duckdb") as con:
        on_duckdb = compute_history(con, test_metrics, START, END)
    on_spark = compute_history(spark, test_metrics, START, END)
    assert on_spark.schema == lake.METRIC_SCHEMA
    assert rows(on_spark) == rows(on_duckdb)
    grid = as_grid(on_spark, customers)
    for key, expected in EXPECTED.items():
        assert grid.get(key) == pytest.approx(expected), key


def test_a_run_on_spark_stores_what_a_run_on_duckdb_stores(
    spark: ibis.BaseBackend,
    customers: dict[str, Customer],
    db: None,
) -> None:
    """The default metrics, through ``run_metrics``: same files, same latest values."""
    lake.write_events(event_table(EVENTS), "import-000001")

    def stored() -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        history = [row for path in lake.metric_files() for row in rows(_read(path))]
        latest = sorted(
            CustomerMetric.objects.values_list(
                "customer_id", "metric__key", "as_of", "value", "previous_value"
            )
        )
        return history, latest

    run_metrics(START, END, engine="duckdb")
    on_duckdb = stored()
    assert on_duckdb[0] and on_duckdb[1]
    run_metrics(START, END, engine="spark")
    assert stored() == on_duckdb


def _read(path: Any) -> Any:
    import pyarrow.parquet as pq

    return pq.read_table(path)
