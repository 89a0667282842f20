"""Product events follow the hidden state: who holds a seat, when, and how engaged the customer is."""

from datetime import date, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from kizuna.demo.config import DEFAULT_CONFIG, LOGIN_EVENT
from kizuna.demo.events import EVENT_FILE_SCHEMA, Calendar, EventGenerator, plain
from kizuna.demo.simulation import SimulatedCustomer, Simulator, add_months

TODAY = date(2026, 11, 20)
ZONE = "Asia/Tokyo"


def _company(
    customers: int, months: int, seed: int = 7
) -> tuple[list[SimulatedCustomer], pa.Table]:
    company = list(
        Simulator(config=DEFAULT_CONFIG, seed=seed, today=TODAY, customers=customers).customers()
    )
    calendar = Calendar.of(
        start=add_months(TODAY, -months), end=TODAY, zone=ZONE,
        weekend_factor=DEFAULT_CONFIG.activity.weekend_factor,
    )  # fmt: skip
    generator = EventGenerator(config=DEFAULT_CONFIG, seed=seed, calendar=calendar)
    table = generator.table(company, [generator.customer(c) for c in company])
    return company, plain(table)


@pytest.fixture(scope="module")
def company() -> tuple[list[SimulatedCustomer], pa.Table]:
    return _company(120, 6)


def _local_days(table: pa.Table) -> np.ndarray:
    local = pc.local_timestamp(table["event_time"].cast(pa.timestamp("us", tz=ZONE)))
    return local.cast(pa.date32()).to_numpy(zero_copy_only=False)


def test_events_have_the_standard_columns_and_are_reproducible(
    company: tuple[list[SimulatedCustomer], pa.Table],
) -> None:
    _customers, table = company
    assert table.schema == EVENT_FILE_SCHEMA
    assert table.num_rows > 100_000
    assert pc.count(table["account_id"], mode="only_null").as_py() == 0
    assert pc.count(table["user_id"], mode="only_null").as_py() == 0
    days = _local_days(table)
    assert days.min() >= np.datetime64(add_months(TODAY, -6))
    assert days.max() < np.datetime64(TODAY)
    types = set(table["event_type"].to_pylist())
    assert LOGIN_EVENT in types
    assert {"dashboard_viewed", "report_exported", "sync_run"} <= types
    exports = table.filter(pc.equal(table["event_type"], "report_exported"))
    assert pc.min(exports["event_value"]).as_py() >= 10
    _again, same = _company(120, 6)
    assert same.equals(table)


def _with_days(table: pa.Table) -> pa.Table:
    return table.append_column("day", pa.array(_local_days(table), pa.date32()))


def test_users_are_active_only_while_they_hold_their_seat_and_the_customer_is_served(
    company: tuple[list[SimulatedCustomer], pa.Table],
) -> None:
    customers, table = company
    table = _with_days(table)
    spans = table.group_by("user_id").aggregate([("day", "min"), ("day", "max")])
    first_and_last = {
        user: (first, last)
        for user, first, last in zip(
            spans["user_id"].to_pylist(), spans["day_min"].to_pylist(),
            spans["day_max"].to_pylist(), strict=True,
        )
    }  # fmt: skip
    account_days = table.group_by(["account_id", "day", "feature"]).aggregate([]).to_pylist()
    for c in customers:
        for identity in c.identities:
            if identity.user_id in first_and_last:
                first, last = first_and_last[identity.user_id]
                assert first >= identity.since
                assert identity.until is None or last < identity.until
    rows = {c.external_id: c.rows for c in customers}
    for row in account_days:
        product = "mirai-connect" if row["feature"] == "connectors" else "mirai-analytics"
        assert any(
            r.product.code == product and r.start <= row["day"] < r.end
            for r in rows[row["account_id"]]
        ), row


def test_usage_falls_after_an_administrator_change_until_a_training(
    company: tuple[list[SimulatedCustomer], pa.Table],
) -> None:
    customers, table = company
    days = _local_days(table).astype("datetime64[D]")
    accounts = table["account_id"].to_numpy(zero_copy_only=False)
    weekday = (days.view("int64") + 3) % 7 < 5  # 1970-01-01 was a Thursday

    def per_weekday(mask: np.ndarray, start: date, end: date) -> float:
        inside = mask & (days >= np.datetime64(start)) & (days < np.datetime64(end)) & weekday
        working = np.busday_count(start, end)
        return float(inside.sum()) / working

    recent = next(c for c in customers if c.script == "admin_changed_recently")
    change = next(h.day for h in recent.happenings if h.kind == "admin_changed")
    mine = accounts == recent.external_id
    before = per_weekday(mine, change - timedelta(days=28), change)
    after = per_weekday(mine, change, TODAY)
    assert after < 0.85 * before  # the seed's story: usage fell a quarter under the new admin

    trained = next(c for c in customers if c.script == "admin_changed_and_trained")
    change = next(h.day for h in trained.happenings if h.kind == "admin_changed")
    training = next(h.day for h in trained.happenings if h.kind == "training")
    mine = accounts == trained.external_id
    before = per_weekday(mine, change - timedelta(days=28), change)
    dip = per_weekday(mine, change, training)
    recovered = per_weekday(mine, training + timedelta(days=42), TODAY)
    assert dip < 0.85 * before
    assert recovered > 0.92 * before


def test_engaged_customers_use_more_of_the_product(
    company: tuple[list[SimulatedCustomer], pa.Table],
) -> None:
    customers, table = company
    breadth = (
        table.filter(pc.not_equal(table["event_type"], LOGIN_EVENT))
        .group_by("account_id")
        .aggregate([("event_type", "count_distinct"), ("event_type", "count")])
    )
    by_account = dict(
        zip(breadth["account_id"].to_pylist(), breadth["event_type_count"].to_pylist(), strict=True)
    )
    logins = (
        table.filter(pc.equal(table["event_type"], LOGIN_EVENT))
        .group_by("account_id")
        .aggregate([("event_type", "count")])
    )
    sessions = dict(
        zip(logins["account_id"].to_pylist(), logins["event_type_count"].to_pylist(), strict=True)
    )
    actions_per_session = []
    for c in customers:
        served = c.engagement[-26:]
        if c.external_id in sessions and (served > 0).all():
            actions = by_account[c.external_id] / sessions[c.external_id]
            actions_per_session.append((float(served.mean()), actions))
    levels = np.array(actions_per_session)
    assert np.corrcoef(levels[:, 0], levels[:, 1])[0, 1] > 0.5
