"""The adoption KPIs give the same totals on PySpark (local mode) as on DuckDB."""

import shutil
from datetime import date
from typing import Any

import pytest

from kizuna.reports.kpis import Population
from kizuna.reports.kpis.usage import usage_totals_series
from kizuna.reports.tests.usage_data import march_usage


def spark_engine_available() -> bool:
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return False
    return shutil.which("java") is not None


pytestmark = [
    pytest.mark.django_db,
    pytest.mark.spark,
    pytest.mark.skipif(not spark_engine_available(), reason="needs Java and pyspark"),
]


def test_every_usage_total_is_identical_on_duckdb_and_spark(settings: Any) -> None:
    march_usage()
    days = [date(2026, 1, 1), date(2026, 2, 1), date(2026, 3, 1), date(2026, 4, 1)]
    settings.KIZUNA_ANALYTICS_ENGINE = "duckdb"
    on_duckdb = usage_totals_series(days=days, population=Population())
    settings.KIZUNA_ANALYTICS_ENGINE = "spark"
    on_spark = usage_totals_series(days=days, population=Population())
    assert on_spark == on_duckdb
    # March as worked out in usage_data: 3 active customers, 10 user-days, 2 of 6 quiet.
    march = on_spark[-1]
    assert (march.active_customers, march.user_days) == (3, 10)
    assert (march.inactive_before_end, march.active_before_start) == (2, 6)
