"""A hand-made March 2026 of product events for the adoption KPI tests, answers in comments.

Times are written in the company's time zone (Asia/Tokyo, UTC+9), as people read them.
"""

from datetime import date, datetime
from decimal import Decimal

import pyarrow as pa
from django.conf import settings

from kizuna.analytics import lake
from kizuna.analytics.models import UsageSettings
from kizuna.customers.models import Customer, Subscription
from kizuna.reports.tests.contracts_data import product

MARCH = (date(2026, 3, 1), date(2026, 4, 1))
FEBRUARY = (date(2026, 2, 1), date(2026, 3, 1))
KEY_FEATURES = ["reports", "export", "share"]


def configure(
    *, qualifying: list[str] | None = None, key_features: list[str] | None = None
) -> None:
    usage = UsageSettings.load()
    usage.qualifying_event_types = ["login"] if qualifying is None else qualifying
    usage.key_features = KEY_FEATURES if key_features is None else key_features
    usage.save()


def local(text: str) -> datetime:
    """``YYYY-MM-DD HH:MM[:SS]`` in the company's time zone."""
    return datetime.fromisoformat(text).replace(tzinfo=lake.company_zone())


def write_events(
    rows: list[tuple[str, str, str, str, str, str]], stem: str = "import-000001"
) -> None:
    """rows: (account key, user id, kind, event type, feature, local time)."""
    times = pa.array([local(row[5]) for row in rows], pa.timestamp("us", tz="UTC"))
    table = pa.table(
        {
            "message_id": [f"m{n}" for n in range(len(rows))],
            "origin": ["import:1"] * len(rows),
            "kind": [row[2] for row in rows],
            "event_type": [row[3] for row in rows],
            "event_time": times,
            "event_date": lake.event_dates(times),
            "received_at": times,
            "user_id": [row[1] for row in rows],
            "anonymous_id": [""] * len(rows),
            "account_key": [row[0] for row in rows],
            "event_value": pa.array([None] * len(rows), pa.float64()),
            "feature": [row[4] for row in rows],
            "properties": ["{}"] * len(rows),
        }
    )
    lake.write_events(table, stem)


def seat_subscription(
    who: Customer,
    start: str,
    end: str | None,
    *,
    quantity: str,
    unit: str,
    product_code: str = "p1",
) -> Subscription:
    return Subscription.objects.create(
        customer=who,
        product=product(product_code),
        start_date=date.fromisoformat(start),
        end_date=date.fromisoformat(end) if end else None,
        quantity=Decimal(quantity),
        unit=unit,
        mrr=Decimal(100),
        currency=str(settings.KIZUNA_BASE_CURRENCY),
    )


def march_usage() -> dict[str, Customer]:
    """Customers, subscriptions and events; qualifying event: ``login``; key features:
    reports, export, share. Period March 2026 = [03-01, 04-01]: the events of 03-01 … 03-31.

    customer  segment     subscription (unit)                       on 04-01  seats
    A         enterprise  p1 2025-01-01 → open, 10 "seats"          active    10
    B         smb         p1 2025-06-01 → open, 5 "席"              active    5
    C         smb         connect 2025-01-01 → open, 3 "connectors" active    — (known users)
    D         enterprise  p1 2025-01-01 → 2026-03-20, 8 "seats"     ended     —
    E         enterprise  p1 2025-01-01 → open, 4 " Seats "         active    4
    F, G      smb         none                                      —         —

    Events (login unless said otherwise; JST):
    A  u1 03-02 10:00, 03-03 10:00 and 15:00, 03-10, 03-25; u1 track export 03-03;
       u2 03-02; u3 page feature "reports" 03-05 (not a login);
       u4 04-01 00:30 (after March); u5 02-28 (before March)
    B  v1 03-01 00:00:00 exactly, 03-31 23:59; v1 track share_link feature "share" 03-15
    C  w1 02-20, 03-05, 03-06; w1 page feature "reports" 03-06; w2 03-06 and 04-01 00:00:00
       exactly; w3 page 01-10 (known, not a login); w4 04-02 (after end)
    D  x1 02-20, 03-05; x1 track export 03-05 (D is not active on 04-01: never counted)
    E  y1 02-20; y2 track export 03-12 (not a login: E has no active user in March)
    F  f1 02-15 00:00:00 exactly
    G  g1 02-16, 03-20
    ?  z1 on an unknown account ZZZ, 02-20 and 03-05 (ignored)

    March, customers active on 04-01: A B C E = 4.
      active users: A {u1 u2} B {v1} C {w1 w2} = 5; active customers A B C = 3.
      user-days: A u1 {02 03 10 25} + u2 {02} = 5; B v1 {01 31} = 2; C w1 {05 06} + w2 {06}
      = 3; total 10 over 31 days.
      seats: A 10 + B 5 + E 4 = 19 (C's "connectors" are no seats); C's known users before
      04-01: w1 w2 w3 = 3 (w4 comes later).
      key features of active customers: A {reports export}, B {share}, C {reports} = 4 of 9.
    Activity churn, 14 days: window before 03-01 = (02-15 00:00, 03-01 00:00]:
      A (02-28), B (03-01 00:00 exactly), C (02-20), D (02-20), E (02-20), G (02-16) = 6;
      F's only event is at 02-15 00:00 exactly: outside (the window opens after it).
      Window before 04-01 = (03-18 00:00, 04-01 00:00]: A (03-25), B (03-31), C (04-01
      00:00 exactly), G (03-20) — D and E have none: 2 of 6.
    """
    customers = {
        "A": Customer.objects.create(name="A", external_id="A", segment="enterprise"),
        "B": Customer.objects.create(name="B", external_id="B", segment="smb"),
        "C": Customer.objects.create(name="C", external_id="C", segment="smb"),
        "D": Customer.objects.create(name="D", external_id="D", segment="enterprise"),
        "E": Customer.objects.create(name="E", external_id="E", segment="enterprise"),
        "F": Customer.objects.create(name="F", external_id="F", segment="smb"),
        "G": Customer.objects.create(name="G", external_id="G", segment="smb"),
    }
    seat_subscription(customers["A"], "2025-01-01", None, quantity="10", unit="seats")
    seat_subscription(customers["B"], "2025-06-01", None, quantity="5", unit="席")
    seat_subscription(
        customers["C"], "2025-01-01", None, quantity="3", unit="connectors", product_code="connect"
    )
    seat_subscription(customers["D"], "2025-01-01", "2026-03-20", quantity="8", unit="seats")
    seat_subscription(customers["E"], "2025-01-01", None, quantity="4", unit=" Seats ")
    configure()
    write_events(
        [
            ("A", "u1", "track", "login", "", "2026-03-02 10:00"),
            ("A", "u1", "track", "login", "", "2026-03-03 10:00"),
            ("A", "u1", "track", "login", "", "2026-03-03 15:00"),
            ("A", "u1", "track", "login", "", "2026-03-10 09:00"),
            ("A", "u1", "track", "login", "", "2026-03-25 09:00"),
            ("A", "u1", "track", "export", "", "2026-03-03 10:05"),
            ("A", "u2", "track", "login", "", "2026-03-02 11:00"),
            ("A", "u3", "page", "view", "reports", "2026-03-05 12:00"),
            ("A", "u4", "track", "login", "", "2026-04-01 00:30"),
            ("A", "u5", "track", "login", "", "2026-02-28 18:00"),
            ("B", "v1", "track", "login", "", "2026-03-01 00:00:00"),
            ("B", "v1", "track", "login", "", "2026-03-31 23:59"),
            ("B", "v1", "track", "share_link", "share", "2026-03-15 10:00"),
            ("C", "w1", "track", "login", "", "2026-02-20 10:00"),
            ("C", "w1", "track", "login", "", "2026-03-05 10:00"),
            ("C", "w1", "track", "login", "", "2026-03-06 10:00"),
            ("C", "w1", "page", "view", "reports", "2026-03-06 10:10"),
            ("C", "w2", "track", "login", "", "2026-03-06 11:00"),
            ("C", "w2", "track", "login", "", "2026-04-01 00:00:00"),
            ("C", "w3", "page", "view", "", "2026-01-10 10:00"),
            ("C", "w4", "track", "login", "", "2026-04-02 10:00"),
            ("D", "x1", "track", "login", "", "2026-02-20 10:00"),
            ("D", "x1", "track", "login", "", "2026-03-05 10:00"),
            ("D", "x1", "track", "export", "", "2026-03-05 10:05"),
            ("E", "y1", "track", "login", "", "2026-02-20 10:00"),
            ("E", "y2", "track", "export", "", "2026-03-12 10:00"),
            ("F", "f1", "track", "login", "", "2026-02-15 00:00:00"),
            ("G", "g1", "track", "login", "", "2026-02-16 10:00"),
            ("G", "g1", "track", "login", "", "2026-03-20 10:00"),
            ("ZZZ", "z1", "track", "login", "", "2026-02-20 10:00"),
            ("ZZZ", "z1", "track", "login", "", "2026-03-05 10:00"),
        ]
    )
    return customers
