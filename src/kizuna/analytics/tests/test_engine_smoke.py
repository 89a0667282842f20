import datetime as dt

import pyarrow as pa
import pytest

from kizuna.analytics import engine, lake
from kizuna.customers.models import Customer


@pytest.mark.django_db
@pytest.mark.parametrize("eng", ["duckdb", "spark"])
def test_usage_events_resolve_customers(eng: str) -> None:
    customer = Customer.objects.create(name="A", external_id="A1")
    ts = pa.timestamp("us", tz="UTC")
    t = pa.table(
        {
            "message_id": ["a", "b"],
            "origin": ["import:1"] * 2,
            "kind": ["track", "track"],
            "event_type": ["login", "export"],
            "event_time": pa.array(
                [
                    dt.datetime(2026, 11, 1, 1, tzinfo=dt.UTC),
                    dt.datetime(2026, 11, 2, 16, tzinfo=dt.UTC),
                ],
                ts,
            ),
            "received_at": pa.array([dt.datetime(2026, 11, 1, 1, tzinfo=dt.UTC)] * 2, ts),
            "user_id": ["u1", "u2"],
            "anonymous_id": ["", ""],
            "account_key": ["A1", ""],
            "event_value": [None, 2.0],
            "feature": ["", ""],
            "properties": ["{}", "{}"],
        }
    )
    t = t.append_column("event_date", lake.event_dates(t["event_time"]))
    lake.write_events(t, "import-000001")
    with engine.session(eng) as con:  # type: ignore[arg-type]
        rows = sorted(
            engine.usage_events(con).to_pyarrow().to_pylist(), key=lambda r: r["event_type"]
        )
    print(rows)
    assert rows[1]["customer_id"] == customer.id
    assert rows[0]["customer_id"] is None
    assert rows[0]["event_date"] == dt.date(2026, 11, 3)
