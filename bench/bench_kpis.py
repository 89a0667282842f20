"""Contract KPIs stay set-based: 1,000,000 subscription rows (200,000 customers) in seconds.

Bulk-inserts the rows into a fresh SQLite file, then times each contract KPI for one month
(one SQL statement each) and a few filtered variants, and compares every timing with a
baseline measured in the same run: a bare ``SELECT COUNT(*), SUM(mrr)`` scan of the
subscription table. Fails when a KPI takes longer than the budget.

    .venv/bin/python bench/bench_kpis.py [--customers 200000] [--rows-per-customer 5] [--runs 3]
"""

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path

BUDGET_SECONDS = 10.0


def _setup_django(workdir: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
    os.environ.setdefault("KIZUNA_ENV", "test")
    os.environ["DATABASE_URL"] = f"sqlite:///{workdir / 'bench.sqlite3'}"
    os.environ["DJANGO_SETTINGS_MODULE"] = "kizuna.config.settings"
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import django

    django.setup()


def _customer_rows(customers: int, rng: random.Random) -> Iterator[tuple[object, ...]]:
    segments = ["Enterprise", "Mid-market", "SMB", "Startup"]
    touches = ["high", "low", "tech"]
    stages = ["onboarding", "adoption", "expansion", "churned"]
    now = "2026-11-01 00:00:00"
    for index in range(customers):
        first = date(2023, 1, 1) + timedelta(days=rng.randrange(1300))
        yield (
            index + 1,
            f"Customer {index:06d}",
            rng.choice(segments),
            rng.choice(stages),
            rng.choice(touches),
            first.isoformat(),
            now,
            now,
        )


def _subscription_rows(
    customers: int, per_customer: int, rng: random.Random
) -> Iterator[tuple[object, ...]]:
    """Per customer: back-to-back terms over three products; a fifth of customers stop."""
    now = "2026-11-01 00:00:00"
    for customer_id in range(1, customers + 1):
        start = date(2023, 1, 1) + timedelta(days=rng.randrange(1300))
        stops = rng.random() < 0.2
        mrr = rng.randrange(10, 2000) * 100
        for term in range(per_customer):
            product_id = term % 3 + 1
            begin = start + timedelta(days=term * 120)
            last = term == per_customer - 1
            end = None if last and not stops else begin + timedelta(days=365)
            mrr = max(0, mrr + rng.choice([-500, 0, 0, 1000]))
            yield (
                customer_id,
                product_id,
                "1",
                "",
                f"{mrr}.00",
                "JPY",
                1,
                "0",
                begin.isoformat(),
                end.isoformat() if end else None,
                "active",
                now,
                now,
            )


def _populate(customers: int, per_customer: int) -> int:
    from django.core.management import call_command
    from django.db import connection, transaction

    call_command("migrate", verbosity=0)
    rng = random.Random(20261122)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO customers_product (id, code, name, description, is_active) "
            "VALUES (%s, %s, %s, '', 1)",
            [(k, f"p{k}", f"Product {k}") for k in (1, 2, 3)],
        )
        cursor.executemany(
            "INSERT INTO customers_customer (id, name, domain, industry, region, segment, "
            "lifecycle_stage, touch_model, first_start_date, churn_reason, created_at, "
            "updated_at) VALUES (%s, %s, '', '', '', %s, %s, %s, %s, '', %s, %s)",
            _customer_rows(customers, rng),
        )
        cursor.executemany(
            "INSERT INTO customers_subscription (customer_id, product_id, quantity, unit, mrr, "
            "currency, bill_period_months, discount, start_date, end_date, status, created_at, "
            "updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            _subscription_rows(customers, per_customer, rng),
        )
        cursor.execute("SELECT COUNT(*) FROM customers_subscription")
        (count,) = cursor.fetchone()
    return int(count)


def _median(runs: int, work: Callable[[], object]) -> float:
    timings = []
    for _ in range(runs):
        began = time.perf_counter()
        work()
        timings.append(time.perf_counter() - began)
    return statistics.median(timings)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--rows-per-customer", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="kizuna-bench-kpis-") as tmp:
        _setup_django(Path(tmp))
        from django.db import connection

        from kizuna.reports.kpis import KPIS, Population, compute_kpi, trend

        began = time.perf_counter()
        rows = _populate(args.customers, args.rows_per_customer)
        print(
            f"inserted {rows:,} subscriptions of {args.customers:,} customers "
            f"in {time.perf_counter() - began:.1f} s"
        )

        def scan() -> object:
            with connection.cursor() as cursor:
                cursor.execute("SELECT COUNT(*), SUM(mrr) FROM customers_subscription")
                return cursor.fetchone()

        baseline = _median(args.runs, scan)
        print(f"baseline  SELECT COUNT(*), SUM(mrr): {baseline * 1000:8.0f} ms")
        start, end = date(2026, 9, 1), date(2026, 10, 1)
        cases: list[tuple[str, Callable[[], object]]] = [
            (
                kpi_id,
                lambda kpi_id=kpi_id: compute_kpi(  # type: ignore[misc]
                    kpi_id=kpi_id, start=start, end=end, population=Population()
                ),
            )
            for kpi_id in KPIS
        ]
        cases += [
            (
                "nrr, segment=SMB",
                lambda: compute_kpi(
                    kpi_id="nrr", start=start, end=end, population=Population(segment="SMB")
                ),
            ),
            (
                "nrr, touch_model=tech, cohort",
                lambda: compute_kpi(
                    kpi_id="nrr",
                    start=start,
                    end=end,
                    population=Population(touch_model="tech", cohort="2024-04"),
                ),
            ),
            (
                "nrr, product p2",
                lambda: compute_kpi(
                    kpi_id="nrr", start=start, end=end, population=Population(product_id=2)
                ),
            ),
            (
                "nrr over a year",
                lambda: compute_kpi(
                    kpi_id="nrr", start=date(2025, 10, 1), end=end, population=Population()
                ),
            ),
        ]
        slowest = 0.0
        for label, work in cases:
            seconds = _median(args.runs, work)
            slowest = max(slowest, seconds)
            print(f"{label:<32} {seconds * 1000:8.0f} ms  {seconds / baseline:6.1f}× baseline")
        seconds = _median(
            1, lambda: trend("logo_churn_rate", months=12, end_month=start, population=Population())
        )
        print(
            f"{'12-month trend (one statement)':<32} {seconds * 1000:8.0f} ms  "
            f"{seconds / baseline:6.1f}× baseline"
        )
        result = compute_kpi(kpi_id="mrr_movements", start=start, end=end, population=Population())
        print(
            f"check: {result.details['customers_start']:,} customers active on {start}, "
            f"MRR {result.details['mrr_start']:,} → {result.details['mrr_end']:,}"
        )
        if slowest > BUDGET_SECONDS:
            print(f"FAIL: slowest KPI {slowest:.1f} s > budget {BUDGET_SECONDS:.0f} s")
            return 1
        print(f"ok: slowest KPI {slowest:.2f} s (budget {BUDGET_SECONDS:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
