"""Deterministic product events at scale, with a realistic shape, in bounded memory.

Customers differ in size (users: a long tail of small accounts, a few large ones) and in
engagement; some churn during the period (usage fades out), some start during it. A user is
active on a day with a probability from the customer's engagement, a weekday rhythm (less at
weekends and over the New Year holidays) and the customer's trend; an active day has one or two
sessions, each a ``login`` followed by several actions a few tens of seconds apart in working
hours (Asia/Tokyo). Actions come from a vocabulary of features, popular ones more often, and
engaged customers use more of them; exports and uploads carry an ``event_value``.

Everything is vectorised per day with numpy and pyarrow and written in chunks, so memory stays
bounded whatever ``--events`` is; the same seed gives the same events.

    python bench/eventgen.py --customers 10000 --events 10000000 --days 365 --seed 1 \\
        --out DIR [--format parquet|csv|lake] [--end 2026-11-30]

Formats: ``parquet`` writes ``DIR/events.parquet`` and ``csv`` ``DIR/events.csv`` with the
columns ``kizuna ingest`` accepts without a mapping (account_id, event_time, event_type,
user_id, event_value, feature); ``lake`` writes straight into the event lake under the data
directory ``DIR`` (``DIR/lake/events/<day>/import-000001.parquet``, the lake's EVENT_SCHEMA),
so that the metrics benchmark can run on it. Account ids are ``C000000``, ``C000001``, …;
``customer_table()`` gives each customer's licensed seats for a benchmark's subscriptions.
"""

import argparse
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

ZONE = ZoneInfo("Asia/Tokyo")
DEFAULT_END = date(2026, 11, 30)
EVENTS_PER_SESSION = 6.0  # mean actions + login in one session
CHUNK_ROWS = 1_000_000

FILE_SCHEMA = pa.schema(
    [
        pa.field("account_id", pa.string()),
        pa.field("event_time", pa.timestamp("us", tz="UTC")),
        pa.field("event_type", pa.string()),
        pa.field("user_id", pa.string()),
        pa.field("event_value", pa.float64()),
        pa.field("feature", pa.string()),
    ]
)
# kizuna.analytics.lake.EVENT_SCHEMA (repeated here so that generating needs no Django)
LAKE_SCHEMA = pa.schema(
    [
        pa.field("message_id", pa.string()),
        pa.field("origin", pa.string()),
        pa.field("kind", pa.string()),
        pa.field("event_type", pa.string()),
        pa.field("event_time", pa.timestamp("us", tz="UTC")),
        pa.field("event_date", pa.date32()),
        pa.field("received_at", pa.timestamp("us", tz="UTC")),
        pa.field("user_id", pa.string()),
        pa.field("anonymous_id", pa.string()),
        pa.field("account_key", pa.string()),
        pa.field("event_value", pa.float64()),
        pa.field("feature", pa.string()),
        pa.field("properties", pa.string()),
    ]
)

# (event_type, feature, carries a value), the most popular first.
ACTIONS = [
    ("view_dashboard", "dashboards", False),
    ("open_report", "reports", False),
    ("search", "search", False),
    ("create_report", "reports", False),
    ("export_report", "reports", True),
    ("edit_dashboard", "dashboards", False),
    ("share_dashboard", "sharing", False),
    ("comment", "collaboration", False),
    ("upload_data", "data_sources", True),
    ("connect_source", "data_sources", False),
    ("schedule_report", "scheduling", False),
    ("create_alert", "alerts", False),
    ("invite_user", "admin", False),
    ("edit_permissions", "admin", False),
    ("run_query", "sql", False),
    ("save_query", "sql", False),
    ("create_model", "modeling", False),
    ("api_call", "api", True),
    ("embed_chart", "embedding", False),
    ("configure_sso", "admin", False),
]
LOGIN = "login"


@dataclass(frozen=True)
class Population:
    """Customers and their users, drawn once from the seed."""

    account_ids: pa.Array  # per customer
    engagement: np.ndarray  # per customer, daily activity probability of a user on a weekday
    breadth: np.ndarray  # per customer, how many of ACTIONS it uses (popular ones first)
    start_day: np.ndarray  # per customer, first day index with usage
    stop_day: np.ndarray  # per customer, day index after which usage fades (churn), or days
    slope: np.ndarray  # per customer, usage trend over the period (−0.5 … +0.5)
    seats: np.ndarray  # per customer, licensed seats
    user_customer: np.ndarray  # per user, its customer index
    user_ids: pa.Array  # per user
    user_habit: np.ndarray  # per user, multiplier of the customer's engagement


def _population(customers: int, events: int, days: int, rng: np.random.Generator) -> Population:
    engagement = rng.beta(2.0, 4.0, customers) * 0.8 + 0.05
    breadth = np.clip(np.round(3 + engagement * 20 * rng.random(customers)), 2, len(ACTIONS))
    start_day = np.where(rng.random(customers) < 0.1, rng.integers(0, days, customers), 0)
    churns = rng.random(customers) < 0.08
    stop_day = np.where(churns, rng.integers(0, days, customers), days)
    stop_day = np.maximum(stop_day, start_day + 14)
    slope = rng.uniform(-0.5, 0.5, customers)
    weights = rng.lognormal(0.0, 1.2, customers)
    # Users, so that the expected events come near ``events`` with several per session.
    active_share = float(np.mean(engagement)) * 0.8  # weekday rhythm and trends, roughly
    user_days = events / (EVENTS_PER_SESSION * 1.25)
    users_total = max(customers, int(user_days / (days * active_share)))
    users = np.maximum(1, np.round(weights / weights.sum() * users_total)).astype(np.int64)
    seats = np.ceil(users * rng.uniform(1.0, 1.6, customers)).astype(np.int64)
    account_ids = pa.array([f"C{index:06d}" for index in range(customers)])
    user_customer = np.repeat(np.arange(customers), users)
    first_user = np.concatenate([[0], np.cumsum(users)[:-1]])
    user_number = np.arange(len(user_customer)) - first_user[user_customer]
    user_ids = pc.binary_join_element_wise(
        account_ids.take(pa.array(user_customer)),
        pc.cast(pa.array(user_number), pa.string()),
        "-u",
    )
    user_habit = rng.gamma(2.0, 0.5, len(user_customer))
    return Population(
        account_ids, engagement, breadth, start_day, stop_day, slope, seats,
        user_customer, user_ids, user_habit,
    )  # fmt: skip


def _day_factor(day: date) -> float:
    if (day.month == 12 and day.day >= 29) or (day.month == 1 and day.day <= 3):
        return 0.15
    return 0.2 if day.weekday() >= 5 else 1.0


def _probabilities(population: Population, index: int, days: int, day: date) -> np.ndarray:
    """Each user's chance to be active on day ``index``."""
    c = population.user_customer
    trend = 1.0 + population.slope[c] * (index / max(1, days - 1) - 0.5)
    fading = np.clip(1.0 - (index - population.stop_day[c]) / 14.0, 0.03, 1.0)
    live = index >= population.start_day[c]
    chance = population.engagement[c] * population.user_habit * trend * fading * _day_factor(day)
    return np.where(live, np.clip(chance, 0.0, 0.95), 0.0)


def _day_events(
    population: Population, index: int, days: int, day: date, rng: np.random.Generator
) -> pa.Table:
    """One local day's events in FILE_SCHEMA (all in that day, Asia/Tokyo)."""
    active = np.flatnonzero(rng.random(len(population.user_customer)) < _probabilities(
        population, index, days, day))  # fmt: skip
    sessions = 1 + (rng.random(len(active)) < 0.25)
    session_user = np.repeat(active, sessions)
    size = 1 + rng.poisson(EVENTS_PER_SESSION - 1.0, len(session_user))
    event_session = np.repeat(np.arange(len(session_user)), size)
    first = np.concatenate([[0], np.cumsum(size)[:-1]]).astype(np.int64)
    count = int(size.sum())
    # Sessions start in working hours (mostly 9:00–18:00); actions follow every ~40 s.
    start = np.clip(rng.normal(12.5 * 3600, 2.8 * 3600, len(session_user)), 0, 86_400 - 3_600)
    gaps = rng.exponential(40.0, count)
    gaps[first] = 0.0
    elapsed = np.cumsum(gaps)
    offset = elapsed - np.repeat(elapsed[first], size)
    seconds = np.minimum(np.repeat(start, size) + offset, 86_399.0)
    midnight = datetime(day.year, day.month, day.day, tzinfo=ZONE).astimezone(UTC)
    micros = int(midnight.timestamp()) * 1_000_000 + (seconds * 1_000_000).astype(np.int64)

    user = session_user[event_session]
    customer = population.user_customer[user]
    # Actions: popular ones first, within the customer's breadth; the first event is a login.
    rank = np.floor(population.breadth[customer] * rng.random(count) ** 2.0).astype(np.int64)
    rank[first] = -1
    types = pa.array([LOGIN, *[a[0] for a in ACTIONS]])
    features = pa.array(["", *[a[1] for a in ACTIONS]])
    valued = np.array([False, *[a[2] for a in ACTIONS]])
    pick = pa.array(rank + 1)
    values = np.round(rng.lognormal(3.0, 1.0, count), 1)
    event_value = pa.array(values, pa.float64(), mask=~valued[rank + 1])
    return pa.table(
        {
            "account_id": population.account_ids.take(pa.array(customer)),
            "event_time": pa.array(micros, pa.timestamp("us", tz="UTC")),
            "event_type": types.take(pick),
            "user_id": population.user_ids.take(pa.array(user)),
            "event_value": event_value,
            "feature": features.take(pick),
        },
        schema=FILE_SCHEMA,
    )


def _target_population(
    customers: int, events: int, days: int, seed: int, end: date
) -> tuple[Population, list[date]]:
    rng = np.random.default_rng(seed)
    population = _population(customers, events, days, rng)
    calendar = [end - timedelta(days=days - 1 - k) for k in range(days)]
    # Scale the users' habits so that the expected number of events is ``events``.
    expected_sessions = (
        sum(float(_probabilities(population, k, days, day).sum()) for k, day in enumerate(calendar))
        * 1.25
    )
    scale = events / max(1.0, expected_sessions * EVENTS_PER_SESSION)
    population = Population(**{**population.__dict__, "user_habit": population.user_habit * scale})
    return population, calendar


def days_of_events(
    customers: int, events: int, days: int, seed: int, end: date = DEFAULT_END
) -> Iterator[tuple[date, pa.Table]]:
    """Each day of the period with its events (FILE_SCHEMA), in order."""
    population, calendar = _target_population(customers, events, days, seed, end)
    rng = np.random.default_rng([seed, 1])
    for index, day in enumerate(calendar):
        yield day, _day_events(population, index, days, day, rng)


def customer_table(customers: int, events: int, days: int, seed: int) -> pa.Table:
    """``account_id`` and licensed ``seats`` of each generated customer."""
    population = _population(customers, events, days, np.random.default_rng(seed))
    return pa.table({"account_id": population.account_ids, "seats": population.seats})


def _lake_day(table: pa.Table, day: date, first_id: int) -> pa.Table:
    rows = table.num_rows
    ids = pc.binary_join_element_wise(
        "gen-", pc.cast(pa.array(np.arange(first_id, first_id + rows)), pa.string()), ""
    )
    return pa.table(
        {
            "message_id": ids,
            "origin": pa.array(["import:1"] * rows) if rows else pa.array([], pa.string()),
            "kind": pa.array(["track"] * rows) if rows else pa.array([], pa.string()),
            "event_type": table["event_type"],
            "event_time": table["event_time"],
            "event_date": pa.array(np.full(rows, (day - date(1970, 1, 1)).days, np.int32)).cast(
                pa.date32()
            ),
            "received_at": table["event_time"],
            "user_id": table["user_id"],
            "anonymous_id": pa.array([""] * rows, pa.string()),
            "account_key": table["account_id"],
            "event_value": table["event_value"],
            "feature": table["feature"],
            "properties": pa.array(["{}"] * rows, pa.string()),
        },
        schema=LAKE_SCHEMA,
    )


def generate(
    customers: int,
    events: int,
    days: int,
    seed: int,
    out: Path | str,
    fmt: str = "parquet",
    end: date = DEFAULT_END,
) -> dict[str, object]:
    """Write the events to ``out`` in ``fmt`` (parquet, csv or lake); return what was written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = 0
    began = time.perf_counter()
    if fmt == "lake":
        for day, table in days_of_events(customers, events, days, seed, end):
            folder = out / "lake" / "events" / day.isoformat()
            folder.mkdir(parents=True, exist_ok=True)
            pq.write_table(_lake_day(table, day, written), folder / "import-000001.parquet",
                           compression="zstd")  # fmt: skip
            written += table.num_rows
        path = out / "lake" / "events"
    elif fmt in ("parquet", "csv"):
        path = out / f"events.{fmt}"
        writer: pq.ParquetWriter | pacsv.CSVWriter
        if fmt == "parquet":
            writer = pq.ParquetWriter(path, FILE_SCHEMA, compression="zstd")
        else:
            writer = pacsv.CSVWriter(path, FILE_SCHEMA)
        pending: list[pa.Table] = []
        size = 0
        with writer:
            for _day, table in days_of_events(customers, events, days, seed, end):
                pending.append(table)
                size += table.num_rows
                if size >= CHUNK_ROWS:
                    writer.write_table(pa.concat_tables(pending))
                    written += size
                    pending, size = [], 0
            if pending:
                writer.write_table(pa.concat_tables(pending))
                written += size
    else:
        raise ValueError(f"format must be parquet, csv or lake, not {fmt!r}")
    return {
        "path": str(path),
        "format": fmt,
        "events": written,
        "customers": customers,
        "days": days,
        "first_day": (end - timedelta(days=days - 1)).isoformat(),
        "last_day": end.isoformat(),
        "seconds": round(time.perf_counter() - began, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--end", type=date.fromisoformat, default=DEFAULT_END)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--format", choices=["parquet", "csv", "lake"], default="parquet")
    args = parser.parse_args()
    result = generate(args.customers, args.events, args.days, args.seed, args.out, args.format,
                      args.end)  # fmt: skip
    print(
        f"{result['events']:,} events of {args.customers:,} customers over {args.days} days "
        f"({result['first_day']} – {result['last_day']}) → {result['path']} "
        f"in {result['seconds']} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
