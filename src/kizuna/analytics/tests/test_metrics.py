"""The metrics engine on hand-made events whose answers are worked out in the comments.

Three customers and a stranger, 2026-10-29 … 2026-11-06 (days in Asia/Tokyo):

- A: in service all along, 4 seats. Users u1–u4.
- B: in service until 2026-11-03 (its end date: the first day without service), a flat-fee
  subscription (no seats). User b1.
- C: no subscription at all. User c1.
- Z: events of an account no customer has: ignored everywhere.

Most tests use 3-day windows, so that every value can be checked by hand: a rolling window
ending on d holds d−2, d−1 and d.
"""

import datetime as dt
import json
from collections import Counter
from decimal import Decimal
from io import StringIO
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from kizuna.analytics import engine, lake
from kizuna.analytics.history import latest_metrics, metric_history
from kizuna.analytics.metric_defaults import DEFAULT_METRICS, ensure_default_metrics
from kizuna.analytics.metrics import (
    compute_history,
    incremental_range,
    measured_days,
    run_metrics,
)
from kizuna.analytics.models import (
    CustomerMetric,
    MetricDefinition,
    MetricKind,
    MetricRun,
    UsageSettings,
    WindowKind,
)
from kizuna.customers.models import Customer, Product, Subscription

D = dt.date
START, END = D(2026, 10, 29), D(2026, 11, 6)
DAYS = [START + dt.timedelta(days=k) for k in range(9)]  # 10-29 … 11-06
ABSENT = "—"  # no row: the customer is not measured that day (null is a row with no value)

# (account, user, event_type, feature, value, UTC time). Noon in Tokyo is 03:00 UTC.
EVENTS = [
    ("A", "u4", "login", "", None, dt.datetime(2026, 10, 5, 3, tzinfo=dt.UTC)),
    ("A", "u1", "login", "", None, dt.datetime(2026, 10, 29, 3, tzinfo=dt.UTC)),
    ("A", "u1", "report", "reports", 2.5, dt.datetime(2026, 10, 29, 4, tzinfo=dt.UTC)),
    ("A", "u2", "login", "", None, dt.datetime(2026, 10, 29, 5, tzinfo=dt.UTC)),
    ("A", "u1", "export", "reports", 1.0, dt.datetime(2026, 10, 30, 3, tzinfo=dt.UTC)),
    # 16:00 UTC on 10-31 is 01:00 on 11-01 in Tokyo: a November event.
    ("A", "u3", "login", "", None, dt.datetime(2026, 10, 31, 16, tzinfo=dt.UTC)),
    ("A", "u1", "login", "", None, dt.datetime(2026, 11, 2, 3, tzinfo=dt.UTC)),
    ("A", "u2", "view", "dashboards", None, dt.datetime(2026, 11, 2, 4, tzinfo=dt.UTC)),
    ("A", "u2", "login", "", None, dt.datetime(2026, 11, 5, 3, tzinfo=dt.UTC)),
    ("B", "b1", "login", "", None, dt.datetime(2026, 10, 29, 3, tzinfo=dt.UTC)),
    ("B", "b1", "login", "", None, dt.datetime(2026, 11, 4, 3, tzinfo=dt.UTC)),
    # 4.0625 (exact in binary) is summed in thousandths, rounded half away from zero: 4.063
    ("C", "c1", "report", "reports", 4.0625, dt.datetime(2026, 10, 31, 3, tzinfo=dt.UTC)),
    ("Z", "z1", "login", "", None, dt.datetime(2026, 10, 30, 3, tzinfo=dt.UTC)),
]

# Per customer and day (JST):
#   A  10-05 {u4 login}
#      10-29 u1 login, u1 report (reports, 2.5), u2 login   → 3 events, 2 logins, users {u1,u2}
#      10-30 u1 export (reports, 1.0)                         → 1 event,  users {u1}
#      11-01 u3 login                                         → 1 event,  1 login, users {u3}
#      11-02 u1 login, u2 view (dashboards)                   → 2 events, 1 login, users {u1,u2}
#      11-05 u2 login                                         → 1 event,  1 login, users {u2}
#   B  10-29 b1 login; 11-04 b1 login (after its service ended on 11-03)
#   C  10-31 c1 report (reports, 4.0625)
EXPECTED: dict[tuple[str, str], list[Any]] = {
    # events in (d−3, d]: A per day 3,1,0,1,2,0,0,1,0 → 3, 3+1, 3+1+0, 1+0+1, 0+1+2, 1+2+0, 2+0+0, 0+0+1, 0+1+0
    ("A", "ev3"): [3, 4, 4, 2, 3, 3, 2, 1, 1],
    # B in service (a row, 0 without events) until 11-02; on 11-03 neither service nor events;
    # from 11-04 its login puts it back.
    ("B", "ev3"): [1, 1, 1, 0, 0, ABSENT, 1, 1, 1],
    # C has no subscription: rows only while its 10-31 event is in the window.
    ("C", "ev3"): [ABSENT, ABSENT, 1, 1, 1, ABSENT, ABSENT, ABSENT, ABSENT],
    # logins: A per day 2,0,0,1,1,0,0,1,0
    ("A", "login3"): [2, 2, 2, 1, 2, 2, 1, 1, 1],
    ("B", "login3"): [1, 1, 1, 0, 0, ABSENT, 1, 1, 1],
    ("C", "login3"): [ABSENT, ABSENT, 0, 0, 0, ABSENT, ABSENT, ABSENT, ABSENT],
    # event_value: A 2.5 on 10-29, 1.0 on 10-30, nothing else (logins carry no value)
    ("A", "val3"): [2.5, 3.5, 3.5, 1.0, 0, 0, 0, 0, 0],
    ("C", "val3"): [ABSENT, ABSENT, 4.063, 4.063, 4.063, ABSENT, ABSENT, ABSENT, ABSENT],
    # distinct users: 10-29 {u1,u2}; 10-30 {u1,u2}; 10-31 {u1,u2}; 11-01 {u1 (10-30), u3};
    # 11-02 {u3,u1,u2}; 11-03 {u3,u1,u2}; 11-04 {u1,u2}; 11-05 {u2}; 11-06 {u2}
    ("A", "users3"): [2, 2, 2, 2, 3, 3, 2, 1, 1],
    ("B", "users3"): [1, 1, 1, 0, 0, ABSENT, 1, 1, 1],
    # active days: A active on 10-29, 10-30, 11-01, 11-02, 11-05
    ("A", "days3"): [1, 2, 2, 2, 2, 2, 1, 1, 1],
    # features: 10-29 {login, reports}; 10-30 {reports}; 11-01 {login}; 11-02 {login, dashboards};
    # 11-05 {login}. 11-01: {reports, login}; 11-04: {login, dashboards}; 11-05: {login}
    ("A", "feat3"): [2, 2, 2, 2, 2, 2, 2, 1, 1],
    # users3 / 4 seats
    ("A", "seats3"): [0.5, 0.5, 0.5, 0.5, 0.75, 0.75, 0.5, 0.25, 0.25],
    # B's subscription is a flat fee, C has none: rows without a value.
    ("B", "seats3"): [None, None, None, None, None, ABSENT, None, None, None],
    ("C", "seats3"): [ABSENT, ABSENT, None, None, None, ABSENT, ABSENT, ABSENT, ABSENT],
    # calendar month: October to date {u4 (10-05), u1, u2}; November {u3}, then {u3, u1, u2}
    ("A", "users_month"): [3, 3, 3, 1, 3, 3, 3, 3, 3],
    # B: November has no event until 11-04, and B is out of service from 11-03
    ("B", "users_month"): [1, 1, 1, 0, 0, ABSENT, 1, 1, 1],
    ("C", "users_month"): [ABSENT, ABSENT, 1, ABSENT, ABSENT, ABSENT, ABSENT, ABSENT, ABSENT],
    # ev3(d) / ev3(d − 3) − 1. A's ev3 on 10-26 … 10-28 is 0: undefined. Then
    # 11-01: 2/3 − 1; 11-02: 3/4 − 1; 11-03: 3/4 − 1; 11-04: 2/2 − 1; 11-05: 1/3 − 1; 11-06: 1/3 − 1
    ("A", "ev3_change"): [None, None, None, 2 / 3 - 1, -0.25, -0.25, 0.0, 1 / 3 - 1, 1 / 3 - 1],
    # B: 11-01: 0/1 − 1; 11-02: 0/1 − 1; 11-04 and 11-05 compare with 0; 11-06 with no row
    ("B", "ev3_change"): [None, None, None, -1.0, -1.0, ABSENT, None, None, None],
    ("C", "ev3_change"): [ABSENT, ABSENT, None, None, None, ABSENT, ABSENT, ABSENT, ABSENT],
}


def event_table(events: list[tuple[Any, ...]], stem: str = "import-000001") -> pa.Table:
    """The events in EVENT_SCHEMA, as a bulk import would write them."""
    ts = pa.timestamp("us", tz="UTC")
    table = pa.table(
        {
            "message_id": [f"{stem}-{k}" for k in range(len(events))],
            "origin": ["import:1"] * len(events),
            "kind": ["track"] * len(events),
            "event_type": [e[2] for e in events],
            "event_time": pa.array([e[5] for e in events], ts),
            "received_at": pa.array([e[5] for e in events], ts),
            "user_id": [e[1] for e in events],
            "anonymous_id": [""] * len(events),
            "account_key": [e[0] for e in events],
            "event_value": pa.array([e[4] for e in events], pa.float64()),
            "feature": [e[3] for e in events],
            "properties": ["{}"] * len(events),
        }
    )
    return table.append_column("event_date", lake.event_dates(table["event_time"]))


def definition(key: str, kind: str, **fields: Any) -> MetricDefinition:
    position = MetricDefinition.objects.count() + 1000  # after the defaults, in creation order
    return MetricDefinition.objects.create(
        key=key, name=key, kind=kind, position=position, **fields
    )


@pytest.fixture
def customers(db: None) -> dict[str, Customer]:
    product = Product.objects.create(code="p", name="Product")
    made = {name: Customer.objects.create(name=name, external_id=name) for name in "ABC"}
    Subscription.objects.create(
        customer=made["A"], product=product, quantity=Decimal(4), unit="seats",
        mrr=Decimal(100), start_date=D(2026, 1, 1),
    )  # fmt: skip
    Subscription.objects.create(
        customer=made["B"], product=product, quantity=Decimal(1), unit="",
        mrr=Decimal(50), start_date=D(2026, 10, 1), end_date=D(2026, 11, 3),
    )  # fmt: skip
    return made


@pytest.fixture
def test_metrics(customers: dict[str, Customer]) -> list[MetricDefinition]:
    """The defaults switched off; one 3-day metric of each kind, plus a calendar month."""
    MetricDefinition.objects.update(is_active=False)
    ev3 = definition("ev3", MetricKind.EVENT_COUNT, window_days=3)
    return [
        ev3,
        definition("login3", MetricKind.EVENT_COUNT, window_days=3, event_types=["login"]),
        definition("val3", MetricKind.VALUE_SUM, window_days=3),
        definition("users3", MetricKind.ACTIVE_USERS, window_days=3),
        definition("days3", MetricKind.ACTIVE_DAYS, window_days=3),
        definition("feat3", MetricKind.FEATURE_BREADTH, window_days=3),
        definition("seats3", MetricKind.SEAT_UTILISATION, window_days=3),
        definition("users_month", MetricKind.ACTIVE_USERS, window_kind=WindowKind.CALENDAR_MONTH),
        definition("ev3_change", MetricKind.WINDOW_CHANGE, window_days=3, base_metric=ev3),
    ]


@pytest.fixture
def events(customers: dict[str, Customer]) -> None:
    lake.write_events(event_table(EVENTS), "import-000001")


def as_grid(table: pa.Table, customers: dict[str, Customer]) -> dict[tuple[str, str], list[Any]]:
    names = {customer.pk: name for name, customer in customers.items()}
    grid: dict[tuple[str, str], list[Any]] = {}
    for row in table.to_pylist():
        values = grid.setdefault((names[row["customer_id"]], row["metric"]), [ABSENT] * 9)
        values[(row["day"] - START).days] = row["value"]
    return grid


def test_every_kind_of_metric_matches_the_hand_computed_history(
    customers: dict[str, Customer], test_metrics: list[MetricDefinition], events: None
) -> None:
    with engine.session("duckdb") as con:
        table = compute_history(con, test_metrics, START, END)
    assert table.schema == lake.METRIC_SCHEMA
    grid = as_grid(table, customers)
    for key, expected in EXPECTED.items():
        assert grid.get(key) == pytest.approx(expected), key
    # No row for the unknown account Z, and the stranger's login counted nowhere.
    assert {customer for customer, _metric in grid} == {"A", "B", "C"}
    # Every (customer, metric) not listed above is absent on every day except where listed:
    # C has no row for users3 outside its event's window, as for ev3.
    assert grid[("C", "users3")] == grid[("C", "ev3")]


def test_chunks_of_a_few_days_give_the_same_history_as_one_pass(
    customers: dict[str, Customer], test_metrics: list[MetricDefinition], events: None
) -> None:
    """Running sums, month-to-date bases and change lags carry over from chunk to chunk."""
    with engine.session("duckdb") as con:
        whole = compute_history(con, test_metrics, D(2026, 10, 1), END)
        # 3 customers × 2 days per chunk: 21 chunks, across the month boundary.
        pieces = compute_history(con, test_metrics, D(2026, 10, 1), END, cells=6)
    assert pieces.to_pylist() == whole.to_pylist()
    assert (
        as_grid(pieces.filter(pc.greater_equal(pieces["day"], START)), customers)[
            ("A", "users_month")
        ]
        == EXPECTED[("A", "users_month")]
    )


def test_active_users_and_days_follow_the_qualifying_event_types(
    customers: dict[str, Customer], test_metrics: list[MetricDefinition], events: None
) -> None:
    settings_row = UsageSettings.load()
    settings_row.qualifying_event_types = ["login"]
    settings_row.save()
    with engine.session("duckdb") as con:
        table = compute_history(con, test_metrics, D(2026, 10, 30), D(2026, 10, 30))
    values = {
        row["metric"]: row["value"]
        for row in table.to_pylist()
        if row["customer_id"] == customers["A"].pk
    }
    # On 10-30 the window (10-27, 10-30] has A's logins of u1 and u2 on 10-29 (active users 2,
    # 1 active day: u1's export on 10-30 is not a login) and 4 events of any kind.
    assert (values["users3"], values["days3"], values["seats3"]) == (2.0, 1.0, 0.5)
    assert values["ev3"] == 4.0
    # A metric with its own event types keeps them.
    assert values["login3"] == 2.0


def test_weekly_step_measures_every_seventh_day_back_from_the_end(
    customers: dict[str, Customer], test_metrics: list[MetricDefinition], events: None
) -> None:
    assert measured_days(START, END, "week") == [D(2026, 10, 30), D(2026, 11, 6)]
    with engine.session("duckdb") as con:
        table = compute_history(con, test_metrics[:1], START, END, step="week")
    rows = sorted((r["day"], r["customer_id"], r["value"]) for r in table.to_pylist())
    a, b = customers["A"].pk, customers["B"].pk
    # ev3 on 10-30 (A 4, B 1) and on 11-06 (A 1, B 1); C has no row on either day.
    assert rows == [(D(2026, 10, 30), a, 4), (D(2026, 10, 30), b, 1), (END, a, 1), (END, b, 1)]


def test_a_run_writes_one_file_per_day_and_a_rerun_replaces_them(
    customers: dict[str, Customer], test_metrics: list[MetricDefinition], events: None
) -> None:
    first = run_metrics(START, END, engine="duckdb")
    files = sorted(lake.metric_files())
    assert [path.parent.name for path in files] == [day.isoformat() for day in DAYS]
    contents = [pq.read_table(path) for path in files]
    # 11-06: A in every metric (9), B in every metric (9), C in none.
    assert contents[-1].num_rows == 18
    assert first.rows == sum(table.num_rows for table in contents)
    assert first.metrics == tuple(d.key for d in test_metrics)
    assert first.days == 9

    second = run_metrics(START, END, engine="duckdb")
    assert sorted(lake.metric_files()) == files
    assert [pq.read_table(path) for path in files] == contents
    assert second.rows == first.rows
    assert MetricRun.objects.count() == 2
    assert CustomerMetric.objects.count() == 18


def test_a_rerun_keeps_the_history_of_a_deactivated_metric_and_drops_a_deleted_ones(
    customers: dict[str, Customer], test_metrics: list[MetricDefinition], events: None
) -> None:
    run_metrics(END, END, engine="duckdb")
    MetricDefinition.objects.filter(key="ev3_change").delete()
    MetricDefinition.objects.filter(key="login3").update(is_active=False)
    run_metrics(END, END, engine="duckdb")
    history = pq.read_table(lake.metric_files()[0])
    counts = Counter(history["metric"].to_pylist())
    # A and B have a row of every metric on 11-06: login3 kept, ev3_change gone.
    assert counts == {d.key: 2 for d in test_metrics if d.key != "ev3_change"}


def test_latest_values_are_kept_on_the_customer_with_the_previous_window(
    customers: dict[str, Customer], test_metrics: list[MetricDefinition], events: None
) -> None:
    # First up to 11-01: C has rows that day (its 10-31 event is in the 3-day window), but
    # not for users_month (November to date has no event of C).
    run_metrics(D(2026, 10, 1), D(2026, 11, 1), engine="duckdb")
    assert CustomerMetric.objects.filter(customer=customers["C"]).count() == 8

    result = run_metrics(D(2026, 10, 1), END, engine="duckdb")
    assert result.customers_updated == 2  # A and B; C lost its rows (no row on 11-06)
    assert not CustomerMetric.objects.filter(customer=customers["C"]).exists()

    def latest(customer: str, key: str) -> tuple[Any, Any, Any]:
        row = CustomerMetric.objects.get(customer=customers[customer], metric__key=key)
        return row.as_of, row.value, row.previous_value

    # previous = the value 3 days earlier (11-03), as the window is 3 days.
    assert latest("A", "ev3") == (END, 1.0, 3.0)
    assert latest("A", "users3") == (END, 1.0, 3.0)
    # The calendar month compares with the same day of last month: on 10-06, u4 (10-05).
    assert latest("A", "users_month") == (END, 3.0, 1.0)
    # B had no row on 11-03.
    assert latest("B", "ev3") == (END, 1.0, None)
    assert latest("B", "seats3") == (END, None, None)
    # The change's own previous value is its value on 11-03: 3/4 − 1.
    assert latest("A", "ev3_change") == (END, pytest.approx(1 / 3 - 1), -0.25)

    # A backfill of older days writes their history but leaves the latest values alone.
    run_metrics(D(2026, 10, 1), D(2026, 10, 31), engine="duckdb")
    assert latest("A", "ev3") == (END, 1.0, 3.0)
    assert not CustomerMetric.objects.filter(customer=customers["C"]).exists()

    rows = latest_metrics(customers["A"].pk)
    assert [row.definition.key for row in rows] == [d.key for d in test_metrics]
    ev3 = rows[0]
    assert (ev3.value, ev3.previous_value, ev3.as_of) == (1.0, 3.0, END)
    assert ev3.change == pytest.approx(-2 / 3)
    assert rows[-1].change is None  # a change metric's value already is a change


def test_history_selector_reads_a_customers_days_from_the_lake(
    customers: dict[str, Customer], test_metrics: list[MetricDefinition], events: None
) -> None:
    run_metrics(START, END, engine="duckdb")
    rows = metric_history(customers["B"].pk, ["ev3", "seats3", "nope"], D(2026, 11, 1), END)
    assert rows == [
        {"day": D(2026, 11, 1), "ev3": 0.0, "seats3": None, "nope": None},
        {"day": D(2026, 11, 2), "ev3": 0.0, "seats3": None, "nope": None},
        # no row on 11-03
        {"day": D(2026, 11, 4), "ev3": 1.0, "seats3": None, "nope": None},
        {"day": D(2026, 11, 5), "ev3": 1.0, "seats3": None, "nope": None},
        {"day": D(2026, 11, 6), "ev3": 1.0, "seats3": None, "nope": None},
    ]
    assert metric_history(customers["A"].pk, ["ev3"], D(2025, 1, 1), D(2025, 2, 1)) == []
    assert metric_history(customers["A"].pk, [], START, END) == []


def test_events_of_a_customer_created_later_are_counted_by_the_next_run(
    customers: dict[str, Customer], test_metrics: list[MetricDefinition], events: None
) -> None:
    with engine.session("duckdb") as con:
        before = compute_history(con, test_metrics[:1], END, END)
    assert {row["customer_id"] for row in before.to_pylist()} == {
        customers["A"].pk,
        customers["B"].pk,
    }
    z = Customer.objects.create(name="Z", external_id="Z")
    with engine.session("duckdb") as con:
        after = compute_history(con, test_metrics[:1], D(2026, 10, 30), D(2026, 10, 30))
    # Z's login on 10-30 now counts: ev3 = 1 for Z that day.
    assert {row["customer_id"]: row["value"] for row in after.to_pylist()}[z.pk] == 1.0


def test_default_metrics_exist_after_migrate_and_are_recreated_only_when_missing(
    db: None,
) -> None:
    keys = set(MetricDefinition.objects.values_list("key", flat=True))
    assert keys == {metric.key for metric in DEFAULT_METRICS}
    change = MetricDefinition.objects.get(key="active_users_28d_change")
    assert change.base_metric is not None
    assert change.base_metric.key == "active_users_28d"
    logins = MetricDefinition.objects.get(key="logins_28d")
    logins.name = "Sign-ins"
    logins.save()
    MetricDefinition.objects.filter(key="events_28d_change").delete()
    assert ensure_default_metrics() == 1
    assert MetricDefinition.objects.get(key="logins_28d").name == "Sign-ins"
    assert ensure_default_metrics() == 0


def test_default_metrics_on_a_small_month_of_usage(customers: dict[str, Customer]) -> None:
    # A: u1 logs in every day from 10-01 to 11-06 (37 days), u2 only on 11-06 with a report.
    days = [D(2026, 10, 1) + dt.timedelta(days=k) for k in range(37)]
    rows = [
        ("A", "u1", "login", "", None, dt.datetime.combine(day, dt.time(3), dt.UTC)) for day in days
    ]
    rows.append(("A", "u2", "report", "reports", 3.0, dt.datetime(2026, 11, 6, 4, tzinfo=dt.UTC)))
    lake.write_events(event_table(rows), "import-000002")
    run_metrics(END, END, engine="duckdb")
    values = {
        row.metric.key: row.value
        for row in CustomerMetric.objects.filter(customer=customers["A"]).select_related("metric")
    }
    assert values == {
        "active_users_28d": 2.0,
        # (10-09, 11-06] has u1 and u2; (09-11, 10-09] only u1: 2 / 1 − 1
        "active_users_28d_change": 1.0,
        "active_users_7d": 2.0,
        "active_users_month": 2.0,
        "seat_utilisation_28d": 0.5,  # 2 users / 4 seats
        "active_days_28d": 28.0,
        "logins_28d": 28.0,
        "events_28d": 29.0,
        # 29 events vs the 9 logins of 10-01 … 10-09 (the 28 days to 10-09, from 09-12)
        "events_28d_change": pytest.approx(29 / 9 - 1),
        "feature_breadth_28d": 2.0,  # login, reports
        "value_sum_28d": 3.0,
    }


def test_the_cli_runs_a_backfill_and_prints_json(
    customers: dict[str, Customer], test_metrics: list[MetricDefinition], events: None
) -> None:
    out = StringIO()
    call_command(
        "metrics", "run", "--start", "2026-10-29", "--end", "2026-11-06", "--json", stdout=out
    )
    payload = json.loads(out.getvalue())
    assert payload["start"] == "2026-10-29"
    assert payload["end"] == "2026-11-06"
    assert payload["days"] == 9
    assert payload["engine"] == "duckdb"
    assert payload["metrics"][0] == "ev3"
    assert payload["rows"] == sum(pq.read_metadata(p).num_rows for p in lake.metric_files())

    out = StringIO()
    call_command("metrics", "list", "--json", stdout=out)
    listed = json.loads(out.getvalue())
    assert [item["key"] for item in listed if item["active"]][:2] == ["ev3", "login3"]

    with pytest.raises(CommandError, match="--start"):
        call_command("metrics", "run", "--end", "2026-11-06")
    with pytest.raises(CommandError, match="--end: "):
        call_command("metrics", "run", "--start", "2026-11-06", "--end", "2026-11-31")
    with pytest.raises(CommandError, match="before"):
        call_command("metrics", "run", "--start", "2026-11-06", "--end", "2026-11-01")


def test_a_bad_definition_is_named_and_nothing_is_written(
    customers: dict[str, Customer], test_metrics: list[MetricDefinition], events: None
) -> None:
    definition("broken", MetricKind.WINDOW_CHANGE, window_days=3)  # no base metric
    with pytest.raises(CommandError, match="broken: base_metric"):
        call_command("metrics", "run", "--start", "2026-11-01", "--end", "2026-11-06")
    assert lake.metric_files() == []
    assert not MetricRun.objects.exists()


def test_the_incremental_range_starts_at_the_last_run_or_at_late_files(
    customers: dict[str, Customer], test_metrics: list[MetricDefinition], events: None
) -> None:
    today = D(2026, 11, 10)
    # No run yet: from the first day of the lake (10-05).
    assert incremental_range(today) == (D(2026, 10, 5), today)
    run_metrics(START, D(2026, 11, 8), engine="duckdb")
    # The last day reached is recomputed: it may have been computed before it was over.
    assert incremental_range(today) == (D(2026, 11, 8), today)
    # Events of an earlier day arrive (a bulk import of past events): from that day.
    late = [("A", "u9", "login", "", None, dt.datetime(2026, 11, 2, 5, tzinfo=dt.UTC))]
    lake.write_events(event_table(late, "import-000009"), "import-000009")
    assert incremental_range(today) == (D(2026, 11, 2), today)
    # Never further back than 400 days.
    assert incremental_range(D(2028, 1, 1)) == (D(2026, 11, 27), D(2028, 1, 1))
