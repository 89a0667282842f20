"""The same metric definitions give identical histories on DuckDB and on PySpark (local mode)."""

import json
import shutil
from io import StringIO
from typing import Any

import ibis
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.core.management import call_command

from kizuna.analytics import engine, lake
from kizuna.analytics.models import CustomerMetric, MetricDefinition
from kizuna.analytics.tests.test_metrics import (
    EXPECTED,
    as_grid,
    customers,
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
def spark() -> ibis.BaseBackend:
    """One local Spark session for every Spark test of the run (it takes ~17 s to start)."""
    return engine.connect("spark")


def rows(table: Any) -> list[tuple[Any, ...]]:
    return sorted(
        (row["day"], row["metric"], row["customer_id"], row["value"]) for row in table.to_pylist()
    )


def test_duckdb_and_spark_compute_and_store_identical_histories(
    spark: ibis.BaseBackend,
    customers: dict[str, Customer],
    test_metrics: list[MetricDefinition],
    events: None,
) -> None:
    """``kizuna metrics run`` on each engine: same files, same latest values, right answers."""

    def stored() -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        history = [row for path in lake.metric_files() for row in rows(pq.read_table(path))]
        latest = sorted(
            CustomerMetric.objects.values_list(
                "customer_id", "metric__key", "as_of", "value", "previous_value"
            )
        )
        return history, latest

    call_command("metrics", "run", "--start", "2026-10-29", "--end", "2026-11-06",
                 "--engine", "duckdb", "--json", stdout=StringIO())  # fmt: skip
    on_duckdb = stored()
    assert on_duckdb[0]
    assert on_duckdb[1]
    for path in lake.metric_files():
        path.unlink()
    CustomerMetric.objects.all().delete()
    out = StringIO()
    call_command("metrics", "run", "--start", "2026-10-29", "--end", "2026-11-06",
                 "--engine", "spark", "--json", stdout=out)  # fmt: skip
    assert json.loads(out.getvalue())["engine"] == "spark"
    on_spark = stored()
    assert on_spark == on_duckdb
    history = pa.concat_tables(pq.read_table(path) for path in lake.metric_files())
    grid = as_grid(history, customers)
    for key, expected in EXPECTED.items():
        assert grid.get(key) == pytest.approx(expected), key
