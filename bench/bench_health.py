"""Health at scale: scoring 100,000 customers for a day, a one-year backfill of 10,000, training.

Makes synthetic portfolios in fresh SQLite file databases (customers on yearly contract terms,
12% leaving at each renewal, one subscription row per term) and their metric history (the 11
default metrics, smooth per-customer usage with a few real drops, one Parquet file per day as
the metrics run writes it),
then times, each part in its own process so that its peak memory can be read:

- scoring: ``score_customers`` of 100,000 customers for one day with the default scorecards
  (inputs gathered, arithmetic, 100,000 HealthScore rows written), against a floor measured in
  the same run: one DuckDB pivot of that day's metric file (the least any scorer reads);
- backfill: ``backfill_signals`` then ``backfill_scores`` of 10,000 customers over 365 days
  (each from scratch, in a process of its own), against a DuckDB pivot of the same 365 files;
- training: ``train_model`` (the logistic default and gradient boosting) on 10,000 customers ×
  24 monthly snapshots, each with its 12-period backtest, against two floors: the DuckDB pivot
  of the 24 files and one bare ``LogisticRegression().fit`` on the same matrix (imputed
  and scaled beforehand); then
  ``predict_current`` of the 10,000 customers with their drivers.

Fails when a target of the issue is missed: scoring over 30 s, the backfill over 10 minutes,
training (logistic) over 60 s.

    .venv/bin/python bench/bench_health.py [--score-customers 100000] [--customers 10000]
        [--parts scoring,backfill,training] [--workdir DIR]
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
END = date(2026, 11, 30)
METRICS = (
    "active_users_28d", "active_users_28d_change", "active_users_7d", "active_users_month",
    "seat_utilisation_28d", "active_days_28d", "logins_28d", "events_28d", "events_28d_change",
    "feature_breadth_28d", "value_sum_28d",
)  # fmt: skip
TARGETS = {"scoring": 30.0, "backfill": 600.0, "training": 60.0}


def _django(workdir: Path) -> None:
    sys.path.insert(0, str(HERE.parent / "src"))
    os.environ.setdefault("KIZUNA_ENV", "test")
    os.environ["KIZUNA_DATA_DIR"] = str(workdir)
    os.environ["DATABASE_URL"] = f"sqlite:///{workdir / 'bench.sqlite3'}"
    os.environ["DJANGO_SETTINGS_MODULE"] = "kizuna.config.settings"
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import django

    django.setup()


def _month_starts(first: date, last: date) -> list[date]:
    days, day = [], date(first.year, first.month, 1)
    while day <= last:
        if day >= first:
            days.append(day)
        day = date(day.year + day.month // 12, day.month % 12 + 1, 1)
    return days


# --- the data ----------------------------------------------------------------------------------


def _populate(workdir: Path, customers: int, metric_days: list[date], seed: int) -> dict[str, Any]:
    """Customers, their yearly terms and the metric files of ``metric_days``."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    _django(workdir)
    from django.core.management import call_command
    from django.db import connection, transaction

    began = time.perf_counter()
    call_command("migrate", verbosity=0)
    rng = np.random.default_rng(seed)
    first = END - timedelta(days=3 * 365)
    starts = [first + timedelta(days=int(k)) for k in rng.integers(0, 365, customers)]
    seats = rng.integers(5, 200, customers)
    touch = rng.choice(["high", "low", "tech"], customers, p=[0.1, 0.3, 0.6])
    terms: list[tuple[Any, ...]] = []
    ends: list[date | None] = []
    now = "2026-11-01 00:00:00"
    for k, start in enumerate(starts):
        begin, end = start, None
        while begin <= END:
            stop = begin + timedelta(days=365)
            leaves = rng.uniform() < 0.12
            terms.append(
                (
                    k + 1,
                    str(int(seats[k])),
                    f"{3000 * int(seats[k])}.00",
                    begin.isoformat(),
                    stop.isoformat(),
                    now,
                    now,
                )
            )
            if leaves:
                end = stop
                break
            begin = stop
        if end is None:
            # The term running today is open-ended in this data set.
            last = list(terms[-1])
            last[4] = None
            terms[-1] = tuple(last)
        ends.append(end)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO customers_product (id, code, name, description, is_active) "
            "VALUES (1, 'app', 'App', '', 1)"
        )
        cursor.executemany(
            "INSERT INTO customers_customer (id, name, external_id, domain, industry, region, "
            "segment, lifecycle_stage, touch_model, first_start_date, churn_reason, created_at, "
            "updated_at) VALUES (%s, %s, %s, '', '', '', '', 'adoption', %s, %s, '', %s, %s)",
            [
                (k + 1, f"Customer {k:06d}", f"C{k:06d}", str(touch[k]), s.isoformat(), now, now)
                for k, s in enumerate(starts)
            ],
        )
        cursor.executemany(
            "INSERT INTO customers_subscription (customer_id, product_id, quantity, unit, mrr, "
            "currency, bill_period_months, discount, start_date, end_date, status, created_at, "
            "updated_at) VALUES (%s, 1, %s, 'seats', %s, 'JPY', 12, '0', %s, %s, 'active', "
            "%s, %s)",
            terms,
        )
    populated = time.perf_counter() - began
    start_days = np.array(starts, dtype="datetime64[D]")
    end_days = np.array([e or date(9999, 1, 1) for e in ends], dtype="datetime64[D]")
    ids = np.arange(1, customers + 1, dtype=np.int64)
    began = time.perf_counter()
    rows = 0
    # Smooth usage: each customer's log-level follows a slow random walk (its 28-day metrics
    # move a few percent a week, as real ones do), and 3% of customers lose 40% of it on a
    # random day (the drops the signals are there to catch).
    origin = min(metric_days) - timedelta(days=28)
    span = (max(metric_days) - origin).days + 1
    walk = np.cumsum(rng.normal(0, 0.01, (span, customers)), axis=0)
    fallers = rng.uniform(size=customers) < 0.03
    fall_day = rng.integers(0, span, customers)
    walk += np.where(fallers & (np.arange(span)[:, None] >= fall_day), np.log(0.6), 0.0)
    scale = np.column_stack(
        [rng.gamma(4, 5, customers), np.zeros(customers), rng.gamma(4, 2, customers),
         rng.gamma(4, 5.5, customers), rng.uniform(0.2, 0.9, customers),
         rng.uniform(5, 20, customers), rng.gamma(4, 15, customers),
         rng.gamma(4, 225, customers), np.zeros(customers), rng.uniform(1, 6, customers),
         rng.gamma(2, 100, customers)]
    )  # fmt: skip
    for day in metric_days:
        stamp = np.datetime64(day, "D")
        mask = (start_days <= stamp) & (end_days > stamp)
        active = ids[mask]
        n = len(active)
        k = (day - origin).days
        level = np.exp(walk[k, mask])
        change = np.exp(walk[k, mask] - walk[k - 28, mask]) - 1
        values = scale[mask] * level[:, None]
        values[:, 1] = change
        values[:, 4] = np.minimum(1.0, values[:, 4])
        values[:, 5] = np.minimum(28.0, values[:, 5])
        values[:, 8] = change + rng.normal(0, 0.03, n)
        table = pa.table(
            {
                "customer_id": pa.array(np.repeat(active, len(METRICS))),
                "metric": pa.array(np.tile(np.array(METRICS, dtype=object), n), pa.string()),
                "day": pa.array([day] * (n * len(METRICS)), pa.date32()),
                "value": pa.array(values.reshape(-1)),
            }
        )
        folder = workdir / "lake" / "metrics" / day.isoformat()
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, folder / "metrics.parquet")
        rows += table.num_rows
    return {
        "customers": customers,
        "subscriptions": len(terms),
        "metric_days": len(metric_days),
        "metric_rows": rows,
        "populate_seconds": populated,
        "metric_seconds": time.perf_counter() - began,
    }


def _prepare(workdir: Path, customers: int, metric_days: list[date], seed: int) -> dict[str, Any]:
    marker = workdir / "dataset.json"
    wanted = {"customers": customers, "days": [d.isoformat() for d in metric_days], "seed": seed}
    if marker.exists() and json.loads(marker.read_text()).get("wanted") == wanted:
        return dict(json.loads(marker.read_text())["made"])
    command = [sys.executable, str(Path(__file__).resolve()), "--child", "populate",
               "--workdir", str(workdir), "--customers", str(customers),
               "--days", ",".join(wanted["days"]), "--seed", str(seed)]  # fmt: skip
    made = _run(command)
    marker.write_text(json.dumps({"wanted": wanted, "made": made}))
    return made


# --- children: each measures one thing and prints {"seconds", …} as JSON ------------------------


def _pivot_floor(workdir: Path, days: list[date]) -> dict[str, Any]:
    import duckdb

    files = [str(workdir / "lake" / "metrics" / d.isoformat() / "metrics.parquet") for d in days]
    con = duckdb.connect(config={"threads": int(os.environ.get("KIZUNA_DUCKDB_THREADS", "2"))})
    con.execute("SET enable_progress_bar=false")
    pivots = ", ".join(f"max(value) FILTER (WHERE metric = '{m}') AS {m}" for m in METRICS)
    began = time.perf_counter()
    table = con.sql(
        f"SELECT day, customer_id, {pivots} FROM read_parquet({files!r}) GROUP BY ALL"
    ).to_arrow_table()
    return {"seconds": time.perf_counter() - began, "rows": table.num_rows}


def _scoring(workdir: Path) -> dict[str, Any]:
    _django(workdir)
    from kizuna.health.models import HealthScore
    from kizuna.health.scorecards import ensure_default_scorecards
    from kizuna.health.scoring import score_customers

    ensure_default_scorecards()
    HealthScore.objects.filter(day=END).delete()
    began = time.perf_counter()
    result = score_customers(day=END)
    seconds = time.perf_counter() - began
    return {"seconds": seconds, "scored": HealthScore.objects.filter(day=END).count(),
            "result": repr(result)[:300]}  # fmt: skip


def _backfill(workdir: Path, what: str) -> dict[str, Any]:
    """``backfill_signals`` (what="signals") or ``backfill_scores`` over the year, from scratch.

    Run the signals first: the scores read the open risk signals. The signals start with no
    scores stored (as in a first backfill), so ``renewal_at_risk`` (which reads the latest
    score before each day) raises nothing; with the scores of an earlier run it would.
    """
    _django(workdir)
    from django.db.models import Count

    from kizuna.core.models import TimelineEntry, TimelineKind
    from kizuna.health.models import HealthScore, RiskSignal
    from kizuna.health.scorecards import ensure_default_scorecards
    from kizuna.health.scoring import backfill_scores
    from kizuna.health.signals import backfill_signals, ensure_default_rules

    start = END - timedelta(days=364)
    if what == "signals":
        ensure_default_rules()
        HealthScore.objects.all().delete()
        RiskSignal.objects.all().delete()
        TimelineEntry.objects.filter(
            kind__in=[TimelineKind.RISK_RAISED, TimelineKind.RISK_CLOSED]
        ).delete()
        began = time.perf_counter()
        signals = backfill_signals(start=start, end=END)
        seconds = time.perf_counter() - began
        by_kind = dict(
            RiskSignal.objects.values_list("kind").annotate(n=Count("id")).order_by("kind")
        )
        return {"seconds": seconds, "result": repr(signals)[:300], "signals": by_kind}
    ensure_default_scorecards()
    HealthScore.objects.all().delete()
    began = time.perf_counter()
    backfill_scores(start=start, end=END)
    return {"seconds": time.perf_counter() - began, "scores": HealthScore.objects.count()}


def _training(workdir: Path, kind: str) -> dict[str, Any]:
    _django(workdir)
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from kizuna.health import churn

    as_of = date(2026, 11, 1)
    began = time.perf_counter()
    frame = churn.training_frame(as_of=as_of)
    frame_seconds = time.perf_counter() - began
    x = frame.x[:, ~np.isnan(frame.x).all(axis=0)]
    x = StandardScaler().fit_transform(np.where(np.isnan(x), np.nanmedian(x, axis=0), x))
    began = time.perf_counter()
    LogisticRegression(max_iter=2000).fit(x, frame.y)
    bare_fit = time.perf_counter() - began
    began = time.perf_counter()
    model = churn.train_model(as_of=as_of, kind=kind)
    seconds = time.perf_counter() - began
    assert not model.error, model.error
    began = time.perf_counter()
    predicted = churn.predict_current(day=END, model=model)
    predict_seconds = time.perf_counter() - began
    return {
        "seconds": seconds,
        "frame_seconds": frame_seconds,
        "bare_fit_seconds": bare_fit,
        "rows": model.rows,
        "positives": model.positives,
        "snapshots": len(set(frame.days.tolist())),
        "periods": model.backtest.get("periods"),
        "predicted": predicted,
        "predict_seconds": predict_seconds,
    }


def _child(args: argparse.Namespace) -> int:
    workdir = Path(args.workdir)
    if args.child == "populate":
        days = [date.fromisoformat(d) for d in args.days.split(",")]
        result = _populate(workdir, args.customers, days, args.seed)
    elif args.child == "scoring_floor":
        result = _pivot_floor(workdir, [END])
    elif args.child == "scoring":
        result = _scoring(workdir)
    elif args.child == "backfill_floor":
        result = _pivot_floor(workdir, _year())
    elif args.child in {"backfill_signals", "backfill_scores"}:
        result = _backfill(workdir, args.child.removeprefix("backfill_"))
    elif args.child == "training_floor":
        result = _pivot_floor(workdir, _snapshots())
    else:
        result = _training(workdir, args.child.removeprefix("training_"))
    result["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result, default=str))
    return 0


def _run(command: list[str]) -> dict[str, Any]:
    finished = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    if finished.returncode != 0:
        print(finished.stderr[-4000:], file=sys.stderr)
        raise SystemExit(f"{command[3:5]} failed")
    return dict(json.loads(finished.stdout.strip().splitlines()[-1]))


def _part(name: str, workdir: Path) -> dict[str, Any]:
    return _run([sys.executable, str(Path(__file__).resolve()), "--child", name,
                 "--workdir", str(workdir)])  # fmt: skip


def _year() -> list[date]:
    return [END - timedelta(days=k) for k in range(364, -1, -1)]


def _snapshots() -> list[date]:
    """24 monthly snapshots labelled by 2026-11-01 with a 90-day horizon: 2024-09 … 2026-08."""
    return _month_starts(date(2024, 9, 1), date(2026, 8, 1))


def _line(label: str, result: dict[str, Any], floor: float) -> None:
    print(
        f"  {label:<58} {result['seconds']:8.2f} s  {result['seconds'] / floor:7.1f}× floor  "
        f"peak {result['maxrss_mb']:6.0f} MB"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--score-customers", type=int, default=100_000)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--parts", default="scoring,backfill,training")
    parser.add_argument("--workdir", help="Keep the generated data here (reused when it matches).")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--days", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return _child(args)

    root = Path(args.workdir or tempfile.mkdtemp(prefix="kizuna-bench-health-"))
    parts = set(args.parts.split(","))
    missed = []
    if "scoring" in parts:
        workdir = root / "scoring"
        workdir.mkdir(parents=True, exist_ok=True)
        made = _prepare(workdir, args.score_customers, [END], 1)
        print(
            f"scoring: {made['customers']:,} customers, one day ({made['metric_rows']:,} metric values)"
        )
        floor = _part("scoring_floor", workdir)
        _line("floor: DuckDB pivot of the day's metric file", floor, floor["seconds"])
        try:
            scoring = _part("scoring", workdir)
        except SystemExit as failure:
            print(f"  score_customers: not measured ({failure})")
        else:
            _line(
                f"score_customers ({scoring['scored']:,} scores written)", scoring, floor["seconds"]
            )
            if scoring["seconds"] > TARGETS["scoring"]:
                missed.append("scoring")
    if parts & {"backfill", "training"}:
        workdir = root / "history"
        workdir.mkdir(parents=True, exist_ok=True)
        days = sorted(set(_year()) | set(_snapshots()))
        made = _prepare(workdir, args.customers, days, 2)
        print(
            f"history: {made['customers']:,} customers, {made['metric_days']} metric days "
            f"({made['metric_rows']:,} values), {made['subscriptions']:,} contract terms"
        )
    if "backfill" in parts:
        floor = _part("backfill_floor", workdir)
        print("backfill: 365 days")
        _line("floor: DuckDB pivot of the 365 metric files", floor, floor["seconds"])
        try:
            signals = _part("backfill_signals", workdir)
            scores = _part("backfill_scores", workdir)
        except SystemExit as failure:
            print(f"  backfill: not measured ({failure})")
        else:
            total = sum(signals["signals"].values())
            _line(f"backfill_signals ({total:,} signals)", signals, floor["seconds"])
            print(f"    {signals['signals']}; {signals['result']}")
            _line(f"backfill_scores ({scores['scores']:,} scores)", scores, floor["seconds"])
            both = signals["seconds"] + scores["seconds"]
            print(f"  {'both':<58} {both:8.2f} s  {both / floor['seconds']:7.1f}× floor")
            if both > TARGETS["backfill"]:
                missed.append("backfill")
    if "training" in parts:
        floor = _part("training_floor", workdir)
        print("training: 24 monthly snapshots, 90-day horizon, 12-period backtest")
        _line("floor: DuckDB pivot of the 24 metric files", floor, floor["seconds"])
        for kind in ("logistic", "gradient_boosting"):
            result = _part(f"training_{kind}", workdir)
            bare = result["bare_fit_seconds"]
            _line(
                f"train_model {kind} ({result['rows']:,} rows, {result['positives']:,} churned)",
                result,
                floor["seconds"],
            )
            print(
                f"    features {result['frame_seconds']:.2f} s; one bare LogisticRegression fit (scaled matrix) "
                f"{bare:.2f} s (train_model = {result['seconds'] / bare:.1f}× it, with "
                f"{result['periods']} backtest fits + the final one); predict_current of "
                f"{result['predicted']:,} customers with drivers {result['predict_seconds']:.2f} s"
            )
            if kind == "logistic" and result["seconds"] > TARGETS["training"]:
                missed.append("training")
    if missed:
        print(f"MISS: {', '.join(missed)} over target ({TARGETS})")
        return 1
    print(f"ok: within targets (seconds: {TARGETS})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
