"""Product usage of the demo company: who logs in and what they do, with causes behind it.

Each customer has a hidden engagement level; its users are active on a day with a probability
that follows that level and the working week. Customers that churned fade out over the three
months before leaving; the customer whose administrator changed three weeks ago loses about a
quarter of its usage from that day (the new admin does not know the product yet). The events are
written as a file in the widely used column set and loaded through ``kizuna ingest``'s service,
the same path a company's own export takes.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from django.conf import settings
from django.db.models import Q

from kizuna.customers.models import Contact, ContactRole, Customer, Subscription

# Features of the demo products, with how often an active user touches each (relative weight).
ANALYTICS_FEATURES = (
    ("dashboard_viewed", 10.0),
    ("query_run", 5.0),
    ("report_created", 2.0),
    ("report_exported", 1.5),
    ("alert_created", 0.6),
    ("user_invited", 0.2),
)
CONNECT_FEATURES = (("sync_run", 3.0), ("connector_configured", 0.3))
ADMIN_CHANGE_EFFECT = 0.72  # usage after a new admin takes over, relative to before
WEEKEND_FACTOR = 0.12


@dataclass(frozen=True)
class UsageSummary:
    events: int
    users: int
    days: int
    file: Path


def simulate_usage(*, today: date, days: int, seed: int, out_dir: Path) -> UsageSummary:
    """Write the demo's product events of the ``days`` before ``today`` to a Parquet file."""
    rng = np.random.default_rng(seed)
    zone = ZoneInfo(settings.TIME_ZONE)
    first_day = today - timedelta(days=days)
    calendar = np.array([first_day + timedelta(days=i) for i in range(days)], dtype=object)
    weekday = np.array([d.weekday() < 5 for d in calendar])
    day_factor = np.where(weekday, 1.0, WEEKEND_FACTOR)
    ordinal = np.array([d.toordinal() for d in calendar])
    local_midnight = np.array(
        [datetime.combine(d, time(0), zone).astimezone(UTC).timestamp() for d in calendar]
    )

    seats = _seats_in_service(today)
    people, admin_changes = _product_users()
    connect_customers = set(
        Subscription.objects.filter(product__code="mirai-connect").values_list(
            "customer_id", flat=True
        )
    )
    columns: dict[str, list[np.ndarray]] = {
        "account_id": [],
        "user_id": [],
        "event_type": [],
        "event_time": [],
        "event_value": [],
    }
    users_total = 0
    customers = Customer.objects.filter(first_start_date__isnull=False).order_by("id")
    rows = customers.values_list("id", "external_id", "first_start_date", "churn_date")
    for customer_id, external_id, first_start, churn_date in rows:
        account = str(external_id or customer_id)
        start = max(first_start or first_day, first_day)
        end = churn_date or today + timedelta(days=1)
        if start >= end:
            continue
        engagement = float(rng.beta(4, 2.5))
        known = people.get(customer_id, [])
        synthetic = max(2, min(40, int(seats.get(customer_id, 5) * 0.7)))
        user_ids = [p[0] for p in known] + [
            f"{account.lower()}-e{n:03d}" for n in range(synthetic)
        ]
        users_total += len(user_ids)
        # Probability of each user being active on each day (users × days).
        level = np.full(len(ordinal), engagement) * day_factor
        in_service = (ordinal >= start.toordinal()) & (ordinal < end.toordinal())
        if churn_date is not None:
            fade_from = churn_date.toordinal() - 90
            fading = np.clip((churn_date.toordinal() - ordinal) / 90, 0.1, 1.0)
            level = np.where(ordinal >= fade_from, level * fading, level)
        change = admin_changes.get(customer_id)
        if change is not None:
            level = np.where(ordinal >= change.toordinal(), level * ADMIN_CHANGE_EFFECT, level)
        habit = rng.beta(2, 2, size=len(user_ids))[:, None]
        probability = np.clip(level[None, :] * (0.4 + habit), 0, 0.97)
        probability *= in_service[None, :]
        for row, (_user_id, since, until) in enumerate(known):
            since_ord = since.toordinal() if since else 0
            until_ord = until.toordinal() if until else 10**7
            probability[row] *= (ordinal >= since_ord) & (ordinal < until_ord)
        active = rng.random(probability.shape) < probability
        user_index, day_index = np.nonzero(active)
        if len(user_index) == 0:
            continue
        # A session: one login then a few feature events.
        per_session = 1 + rng.poisson(3 + 3 * engagement, size=len(user_index))
        session_user = np.repeat(user_index, per_session)
        session_day = np.repeat(day_index, per_session)
        first_of_session = np.zeros(len(session_user), dtype=bool)
        first_of_session[np.cumsum(per_session) - per_session] = True
        features = ANALYTICS_FEATURES + (
            CONNECT_FEATURES if customer_id in connect_customers else ()
        )
        names = np.array([name for name, _ in features])
        weights = np.array([weight for _, weight in features])
        chosen = rng.choice(len(names), size=len(session_user), p=weights / weights.sum())
        event_type = np.where(first_of_session, "login", names[chosen])
        start_minute = rng.integers(8 * 60 + 30, 18 * 60, size=len(user_index))
        offsets = np.repeat(start_minute, per_session) * 60 + rng.integers(
            0, 40 * 60, size=len(session_user)
        )
        seconds = local_midnight[session_day] + offsets
        value = np.where(event_type == "sync_run", rng.integers(100, 5000, len(event_type)), np.nan)
        columns["account_id"].append(np.full(len(session_user), account))
        columns["user_id"].append(np.array(user_ids, dtype=object)[session_user])
        columns["event_type"].append(event_type)
        columns["event_time"].append((seconds * 1_000_000).astype("int64"))
        columns["event_value"].append(value)

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"demo-events-{today.isoformat()}.parquet"
    if columns["account_id"]:
        table = pa.table(
            {
                "account_id": pa.array(np.concatenate(columns["account_id"]), pa.string()),
                "event_time": pa.array(
                    np.concatenate(columns["event_time"]), pa.timestamp("us", tz="UTC")
                ),
                "event_type": pa.array(np.concatenate(columns["event_type"]), pa.string()),
                "user_id": pa.array(np.concatenate(columns["user_id"]), pa.string()),
                "event_value": pa.array(np.concatenate(columns["event_value"]), pa.float64()),
            }
        ).sort_by([("event_time", "ascending")])
    else:
        table = pa.table(
            {
                "account_id": pa.array([], pa.string()),
                "event_time": pa.array([], pa.timestamp("us", tz="UTC")),
                "event_type": pa.array([], pa.string()),
                "user_id": pa.array([], pa.string()),
                "event_value": pa.array([], pa.float64()),
            }
        )
    pq.write_table(table, path)
    return UsageSummary(events=table.num_rows, users=users_total, days=days, file=path)


def _seats_in_service(today: date) -> dict[int, int]:
    seats: dict[int, int] = {}
    rows = Subscription.objects.filter(
        Q(end_date__isnull=True) | Q(end_date__gt=today), start_date__lte=today, unit="seats"
    ).values_list("customer_id", "quantity")
    for customer_id, quantity in rows:
        seats[customer_id] = seats.get(customer_id, 0) + int(quantity)
    return seats


def _product_users() -> tuple[
    dict[int, list[tuple[str, date | None, date | None]]], dict[int, date]
]:
    """Product users known as contacts (with their dates), and the day an admin left."""
    people: dict[int, list[tuple[str, date | None, date | None]]] = {}
    admin_changes: dict[int, date] = {}
    rows = (
        Contact.objects.exclude(product_user_id="")
        .order_by("customer_id", "id")
        .values_list("customer_id", "product_user_id", "started_on", "ended_on", "role")
    )
    for customer_id, user_id, started, ended, role in rows:
        people.setdefault(customer_id, []).append((user_id, started, ended))
        if role == ContactRole.ADMIN and ended is not None:
            admin_changes[customer_id] = ended
    return people, admin_changes
