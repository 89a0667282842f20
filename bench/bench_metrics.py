"""A one-year daily backfill of the default metrics over 10M events, against its floor and pandas.

Generates a realistic event lake with ``bench/eventgen.py`` (10,000 customers, 365 days), makes
the customers (external ids = the events' account ids, one subscription each with its seats) in
a fresh SQLite file database, then times, each in its own process so that its peak memory
(``ru_maxrss``) can be read:

- floor: one DuckDB grouped scan of the same Parquet files,
  ``SELECT account_key, event_date, count(*) … GROUP BY ALL``;
- backfill: ``run_metrics`` of every default metric for every day of the year on DuckDB
  (reading the lake, computing, writing 365 history files, updating the latest values);
- compute: ``iter_history`` of the same metrics, day by day, nothing written;
- two metrics: ``iter_history`` of ``events_28d`` and ``active_users_28d`` only;
- pandas: a straightforward pandas implementation of those two metrics (read the events into a
  DataFrame, then per day filter the 28-day window and group by customer). Above 2M events it
  runs on a sample of days and is extrapolated to the year: the output says so.

Fails when the backfill takes more than 3× the floor (the issue's target).

    .venv/bin/python bench/bench_metrics.py [--events 10000000] [--customers 10000]
        [--workdir DIR (kept and reused)] [--pandas-days N] [--skip-pandas]
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TARGET_RATIO = 3.0
TWO_METRICS = ("events_28d", "active_users_28d")


def _django(workdir: Path) -> None:
    sys.path.insert(0, str(HERE.parent / "src"))
    os.environ.setdefault("KIZUNA_ENV", "test")
    os.environ["KIZUNA_DATA_DIR"] = str(workdir)
    os.environ["DATABASE_URL"] = f"sqlite:///{workdir / 'bench.sqlite3'}"
    os.environ["DJANGO_SETTINGS_MODULE"] = "kizuna.config.settings"
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import django

    django.setup()


def _period(args: argparse.Namespace) -> tuple[date, date]:
    from eventgen import DEFAULT_END

    return DEFAULT_END - timedelta(days=args.days - 1), DEFAULT_END


def _prepare(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """The lake and the customers, unless the work directory already holds this data set."""
    import eventgen

    marker = workdir / "dataset.json"
    wanted = {"events": args.events, "customers": args.customers, "days": args.days, "seed": 1}
    if marker.exists() and json.loads(marker.read_text()).get("wanted") == wanted:
        return dict(json.loads(marker.read_text()))
    for leftover in (workdir / "lake", workdir / "bench.sqlite3"):
        if leftover.exists():
            subprocess.run(["rm", "-rf", str(leftover)], check=True)  # noqa: S603, S607
    began = time.perf_counter()
    generated = eventgen.generate(args.customers, args.events, args.days, 1, workdir, "lake")
    print(f"generated {generated['events']:,} events in {time.perf_counter() - began:.1f} s")
    _django(workdir)
    from django.core.management import call_command
    from django.db import connection, transaction

    call_command("migrate", verbosity=0)
    seats = eventgen.customer_table(args.customers, args.events, args.days, 1)
    start = date.fromisoformat(str(generated["first_day"])) - timedelta(days=60)
    now = "2026-11-01 00:00:00"
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO customers_product (id, code, name, description, is_active) "
            "VALUES (1, 'analytics', 'Analytics', '', 1)"
        )
        cursor.executemany(
            "INSERT INTO customers_customer (id, name, external_id, domain, industry, region, "
            "segment, lifecycle_stage, touch_model, first_start_date, churn_reason, created_at, "
            "updated_at) VALUES (%s, %s, %s, '', '', '', '', 'adoption', 'tech', %s, '', %s, %s)",
            [
                (k + 1, f"Customer {account}", account, start.isoformat(), now, now)
                for k, account in enumerate(seats["account_id"].to_pylist())
            ],
        )
        cursor.executemany(
            "INSERT INTO customers_subscription (customer_id, product_id, quantity, unit, mrr, "
            "currency, bill_period_months, discount, start_date, end_date, status, created_at, "
            "updated_at) VALUES (%s, 1, %s, 'seats', %s, 'JPY', 1, '0', %s, NULL, 'active', "
            "%s, %s)",
            [
                (k + 1, str(n), str(3000 * n), start.isoformat(), now, now)
                for k, n in enumerate(seats["seats"].to_pylist())
            ],
        )
    record = {"wanted": wanted, "events": generated["events"]}
    marker.write_text(json.dumps(record))
    return record


# --- children: each measures one thing and prints {"seconds", "maxrss_mb", …} as JSON ---------


def _floor(workdir: Path) -> dict[str, Any]:
    import duckdb

    pattern = str(workdir / "lake" / "events" / "*" / "*.parquet")
    con = duckdb.connect(config={"threads": int(os.environ.get("KIZUNA_DUCKDB_THREADS", "2"))})
    con.execute("SET enable_progress_bar=false")
    began = time.perf_counter()
    table = con.sql(
        f"SELECT account_key, event_date, count(*) AS n FROM read_parquet('{pattern}') GROUP BY ALL"
    ).to_arrow_table()
    return {"seconds": time.perf_counter() - began, "rows": table.num_rows}


def _backfill(workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    _django(workdir)
    import shutil

    from kizuna.analytics import lake
    from kizuna.analytics.metrics import run_metrics

    shutil.rmtree(lake.metrics_dir(), ignore_errors=True)
    start, end = _period(args)
    began = time.perf_counter()
    result = run_metrics(start, end, engine="duckdb")
    return {
        "seconds": time.perf_counter() - began,
        "rows": result.rows,
        "metrics": len(result.metrics),
        "customers_updated": result.customers_updated,
    }


def _compute(
    workdir: Path, args: argparse.Namespace, keys: tuple[str, ...] | None
) -> dict[str, Any]:
    """The history of the metrics, day by day as a run makes it, but nothing written."""
    _django(workdir)
    from kizuna.analytics import engine
    from kizuna.analytics.metrics import iter_history
    from kizuna.analytics.models import MetricDefinition

    start, end = _period(args)
    definitions = MetricDefinition.objects.filter(is_active=True).order_by("position")
    if keys is not None:
        definitions = definitions.filter(key__in=keys)
    began = time.perf_counter()
    rows = 0
    with engine.session("duckdb") as con:
        for _day, table in iter_history(con, list(definitions), start, end):
            rows += table.num_rows
    return {"seconds": time.perf_counter() - began, "rows": rows}


def _pandas(workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """events_28d and active_users_28d, the way one writes it first in pandas."""
    import pandas as pd

    _django(workdir)
    from kizuna.customers.models import Customer

    start, end = _period(args)
    began = time.perf_counter()
    events = pd.read_parquet(
        workdir / "lake" / "events", columns=["account_key", "user_id", "event_date", "kind"]
    )
    customers = pd.DataFrame(
        list(Customer.objects.values_list("external_id", "id")), columns=["account_key", "id"]
    )
    events = events[events["kind"].isin(["track", "page", "screen"])].merge(customers)
    events["event_date"] = pd.to_datetime(events["event_date"])
    loaded = time.perf_counter() - began
    days = [start + timedelta(days=k) for k in range((end - start).days + 1)]
    sample = days if args.pandas_days is None else days[:: max(1, len(days) // args.pandas_days)]
    rows = 0
    began = time.perf_counter()
    for day in sample:
        window = events[
            (events["event_date"] > pd.Timestamp(day - timedelta(days=28)))
            & (events["event_date"] <= pd.Timestamp(day))
        ]
        per_customer = window.groupby("id").agg(
            events_28d=("user_id", "size"), active_users_28d=("user_id", "nunique")
        )
        rows += 2 * len(per_customer)
    looped = time.perf_counter() - began
    return {
        "seconds": loaded + looped * len(days) / len(sample),
        "load_seconds": loaded,
        "days_run": len(sample),
        "days": len(days),
        "rows": rows,
    }


def _child(args: argparse.Namespace) -> int:
    workdir = Path(args.workdir)
    sys.path.insert(0, str(HERE))
    work = {
        "floor": lambda: _floor(workdir),
        "backfill": lambda: _backfill(workdir, args),
        "compute": lambda: _compute(workdir, args, None),
        "two_metrics": lambda: _compute(workdir, args, TWO_METRICS),
        "pandas": lambda: _pandas(workdir, args),
    }[args.child]
    result = work()
    result["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))
    return 0


def _run_child(name: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", name,
               "--workdir", str(workdir), "--days", str(args.days)]  # fmt: skip
    if args.pandas_days is not None:
        command += ["--pandas-days", str(args.pandas_days)]
    finished = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    if finished.returncode != 0:
        print(finished.stderr[-4000:], file=sys.stderr)
        raise SystemExit(f"{name} failed")
    return dict(json.loads(finished.stdout.strip().splitlines()[-1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--workdir", help="Keep the generated data here (reused when it matches).")
    parser.add_argument("--pandas-days", type=int, default=None,
                        help="Run pandas on this many days and extrapolate to the year "
                             "(default: every day up to 2M events, 30 days above).")  # fmt: skip
    parser.add_argument("--skip-pandas", action="store_true")
    parser.add_argument("--runs", type=int, default=1, help="Median of this many runs.")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return _child(args)

    sys.path.insert(0, str(HERE))
    if args.pandas_days is None and args.events > 2_000_000:
        args.pandas_days = 30
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="kizuna-bench-metrics-"))
    workdir.mkdir(parents=True, exist_ok=True)
    dataset = _prepare(args, workdir)
    print(
        f"data: {dataset['events']:,} events, {args.customers:,} customers, {args.days} days; "
        f"a {args.days}-day daily backfill of the default metrics on DuckDB"
    )

    def best(name: str) -> dict[str, Any]:
        runs = [_run_child(name, args, workdir) for _ in range(args.runs)]
        return sorted(runs, key=lambda run: run["seconds"])[len(runs) // 2]

    floor = best("floor")
    results = [
        ("floor: DuckDB grouped scan", floor),
        ("backfill: run_metrics, 11 metrics", best("backfill")),
        ("11 metrics: iter_history (nothing written)", best("compute")),
        ("2 metrics: iter_history", best("two_metrics")),
    ]
    if not args.skip_pandas:
        pandas = best("pandas")
        label = "2 metrics: pandas"
        if pandas["days_run"] < pandas["days"]:
            label += f" (extrapolated from {pandas['days_run']} days)"
        results.append((label, pandas))
    for label, result in results:
        print(
            f"{label:<50} {result['seconds']:8.2f} s  {result['seconds'] / floor['seconds']:7.1f}× "
            f"floor  peak {result['maxrss_mb']:7.0f} MB"
        )
    backfill = results[1][1]
    print(f"backfill wrote {backfill['rows']:,} metric values")
    ratio = backfill["seconds"] / floor["seconds"]
    if ratio > TARGET_RATIO:
        print(f"MISS: backfill {ratio:.1f}× the floor (target ≤ {TARGET_RATIO:.0f}×)")
        return 1
    print(f"ok: backfill {ratio:.1f}× the floor (target ≤ {TARGET_RATIO:.0f}×)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
