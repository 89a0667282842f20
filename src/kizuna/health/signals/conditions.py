"""Which customers meet each risk condition on a day, for all customers at once.

**As of a day.** Signals on day ``d`` judge what was complete when ``d`` began: usage from the
metric history of the last computed day before ``d`` (at most ``MAX_METRIC_LAG_DAYS`` old;
with none, the usage kinds are not judged that day and their signals stay as they are), logins
and first product use up to ``d − 1``, contacts, onboarding milestones and NPS answers as dated,
and the health band of the latest score before ``d``. So the run just after midnight and a
later backfill of the same day read the same numbers.

**Drops are judged against the customer's own baseline.** For a metric M (a rolling count such
as ``events_28d``), window W (28 days) and measurement day m, with ``change(x) = M(x) / M(x − W)
− 1``, the drop rules (usage drop, active users down, logins down) fire when all of these hold:

1. *Size*: ``change(m) ≤ −drop_pct`` (default −20%), with ``M(m − W) ≥ min_previous`` so that
   a handful of events cannot make a percentage.
2. *Beyond its usual fluctuation*: the customer's window-over-window changes measured every
   week over the ``baseline_weeks`` (26, about six months) before the current comparison,
   ``change(m − W − 7k)`` for k = 0…25 (none of them overlaps the windows compared now), give
   its *usual change* (median) and *spread* (interquartile range / 1.349: a standard deviation
   that one past accident does not inflate, and that a customer swinging between two levels
   does not shrink to nothing; at least ``min_spread_pct``). The change
   must be at most ``usual − fluctuation_k × spread`` (k = 1.5). With fewer than
   ``min_baseline_points`` weekly changes (a new customer), this test is skipped and said so.
3. *Beyond its season*: when a year of history exists, the same comparison 52 weeks earlier
   (``M(m − 364) / M(m − 364 − W)``) is what the season alone does; the change net of it,
   ``(1 + change) / (1 + change a year earlier) − 1``, must also be at most ``−drop_pct``. A
   customer that is quiet every August does not alarm in August; a drop deeper than last
   August's still does.

Windows of whole weeks (28 days = four of each weekday) make the weekly rhythm cancel out, and
52 weeks keep the weekdays aligned a year earlier; the details say so (``weekly_rhythm``).

**Hysteresis: opened on the full rule, kept on a relaxed one.** A customer hovering around the
threshold would otherwise open and close a signal almost daily (−21%, −19%, −22% …), each time
writing ``risk.raised``/``risk.closed`` and starting playbooks. So a drop signal *opens* only
when all three tests above hold, but an *open* one stays open while the change is still at most
``−keep_ratio × drop_pct`` (default 0.5: −10% for a 20% rule) with ``M(m − W) ≥ min_previous``,
without the fluctuation and season tests; it closes once usage has recovered beyond that bound.
The drop conditions therefore also return these *held* customers, with ``details["held"] =
True`` (``keep_change`` is the bound, also in the details of a full match); the evaluation
(``evaluate._apply`` and the backfill's ``episodes.Episodes.apply``, the same decisions) keeps
or continues an episode on a held entry but never opens one. ``conditions_on`` leaves held
entries out unless asked (``include_held=True``). No login and low seat utilisation have no
hysteresis: a login is a clear recovery, and on the demo's 18 months neither flickers (their
short-lived signals are the first days of the history, before the 28-day windows fill).
"""

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

import duckdb
import pyarrow as pa
from django.conf import settings
from django.db.models import Min, OuterRef, Q, Subquery
from django.utils import timezone

from kizuna.analytics import lake
from kizuna.core.models import TimelineEntry
from kizuna.customers.models import Contact, Customer, Subscription
from kizuna.customers.selectors import active_on
from kizuna.health.models import HealthScore, SignalKind
from kizuna.health.signals.rules import DROP_KINDS

MAX_METRIC_LAG_DAYS = 3
YEAR_DAYS = 364  # 52 weeks: the same weekdays a year earlier
EPSILON = 1e-9  # −20% computed as 8 / 10 − 1 must count as −20%
SEAT_METRIC = "seat_utilisation_28d"
NPS_KIND = "nps.answered"
ADMIN_TRAITS = ("admin", "administrator")

Rules = Mapping[str, Mapping[str, Any]]


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time(0)))


@dataclass(frozen=True)
class _Drop:
    customer_id: int
    now: float
    previous: float
    usual: float | None
    spread: float | None
    points: int
    year_now: float | None
    year_previous: float | None


class SignalData:
    """What the conditions read for the days ``[start, end]``, loaded once.

    The daily run makes one for its day, a backfill one for its whole range, so that both
    compute each day the same way and the backfill does not read the lake once per day.
    """

    def __init__(self, *, start: date, end: date, rules: Rules) -> None:
        self.start, self.end = start, end
        self.rules = rules
        self.con = duckdb.connect(config={"threads": settings.KIZUNA_DUCKDB_THREADS})
        self.con.execute("SET enable_progress_bar=false")
        root = lake.metrics_dir()
        self.metric_days: list[date] = []
        if root.exists():
            for path in root.iterdir():
                try:
                    day = date.fromisoformat(path.name)
                except ValueError:
                    continue
                if (path / "metrics.parquet").exists():
                    self.metric_days.append(day)
        self.metric_days.sort()
        self._metrics_loaded = False
        self._events_loaded = False
        self._first_start: dict[int, date] | None = None
        self._admin_users: dict[str, tuple[int | None, str]] | None = None
        self._first_uses: list[tuple[int, str, date]] | None = None
        self._first_use_days: list[date] = []
        # A backfill (``range_conditions``) reads people and NPS answers once for the range.
        self.ranged = False
        self._contacts: dict[tuple[str, tuple[str, ...]], tuple[list[date], list[Any]]] = {}
        self._nps: tuple[list[datetime], list[tuple[int, int, datetime, Any]]] | None = None

    def close(self) -> None:
        self.con.close()

    # -- shared facts ------------------------------------------------------------------------

    def measure_day(self, day: date) -> date | None:
        """The last computed metric day before ``day`` (None when older than the allowed lag)."""
        index = bisect.bisect_left(self.metric_days, day)
        if index == 0 or (day - self.metric_days[index - 1]).days > MAX_METRIC_LAG_DAYS + 1:
            return None
        return self.metric_days[index - 1]

    def first_start(self) -> dict[int, date]:
        """Each customer's first subscription start."""
        if self._first_start is None:
            self._first_start = {
                row["customer_id"]: row["first"]
                for row in Subscription.objects.order_by()
                .values("customer_id")
                .annotate(first=Min("start_date"))
            }
        return self._first_start

    def active_customers(self, day: date) -> set[int]:
        """The customers in service on ``day`` (also the DuckDB table ``active`` with their
        first start, for the conditions computed there)."""
        active = set(
            Subscription.objects.filter(active_on(day))
            .order_by()
            .values_list("customer_id", flat=True)
            .distinct()
        )
        starts = self.first_start()
        ids = sorted(active)
        self._active = pa.table(
            {
                "customer_id": pa.array(ids, pa.int64()),
                "first_start": pa.array([starts.get(pk) for pk in ids], pa.date32()),
            }
        )
        self.con.register("active", self._active)
        return active

    # -- metrics ---------------------------------------------------------------------------

    def _metric_needs(self) -> tuple[set[str], set[date]]:
        metrics: set[str] = set()
        days: set[date] = set()
        measured = {self.measure_day(self.start + timedelta(n)) for n in self._range()}
        measured.discard(None)
        for kind, params in self.rules.items():
            if kind in DROP_KINDS:
                metrics.add(str(params["metric"]))
                w = int(params["window_days"])
                for m in measured:
                    assert m is not None
                    days.update({m, m - timedelta(w)})
                    for k in range(int(params["baseline_weeks"])):
                        x = m - timedelta(w + 7 * k)
                        days.update({x, x - timedelta(w)})
                    if params["seasonal"]:
                        y = m - timedelta(YEAR_DAYS)
                        days.update({y, y - timedelta(w)})
            elif kind == SignalKind.LOW_SEAT_UTILISATION:
                metrics.add(SEAT_METRIC)
                days.update(m for m in measured if m is not None)
        return metrics, days

    def _range(self) -> range:
        return range((self.end - self.start).days + 1)

    def _load_metrics(self) -> None:
        if self._metrics_loaded:
            return
        self._metrics_loaded = True
        metrics, days = self._metric_needs()
        available = set(self.metric_days)
        files = [
            str(lake.metrics_dir() / d.isoformat() / "metrics.parquet")
            for d in sorted(days & available)
        ]
        self.con.execute(
            "CREATE TABLE mv (customer_id BIGINT, day DATE, metric VARCHAR, value DOUBLE)"
        )
        if files and metrics:
            self.con.execute(
                "INSERT INTO mv SELECT customer_id, day, metric, value FROM read_parquet(?) "
                "WHERE list_contains(?, metric)",
                [files, sorted(metrics)],
            )
        self.con.execute("CREATE INDEX mv_day ON mv (metric, day)")

    def drops(self, day: date, params: Mapping[str, Any]) -> tuple[date, list[_Drop]] | None:
        """The customers whose metric fell by at least ``drop_pct`` (before the baseline tests),
        with the numbers the tests need; None when no metric day is recent enough."""
        m = self.measure_day(day)
        if m is None:
            return None
        self._load_metrics()
        w = int(params["window_days"])
        history = [m - timedelta(w + 7 * k) for k in range(int(params["baseline_weeks"]))]
        year = m - timedelta(YEAR_DAYS)
        rows = self.con.execute(
            """
            WITH v AS (SELECT customer_id, day, value FROM mv WHERE metric = $metric),
            cur AS (
                SELECT c.customer_id, c.value AS now, p.value AS previous
                FROM v c JOIN v p ON p.customer_id = c.customer_id AND p.day = $m - $w
                WHERE c.day = $m AND c.value IS NOT NULL AND p.value >= $min_previous
                  AND c.customer_id IN (SELECT customer_id FROM active)
                  AND p.value > 0 AND c.value / p.value - 1 <= -$drop + $eps
            ),
            hist AS (
                SELECT a.customer_id, a.value / b.value - 1 AS change
                FROM v a JOIN v b ON b.customer_id = a.customer_id AND b.day = a.day - $w
                WHERE list_contains($history, a.day) AND a.value IS NOT NULL
                  AND b.value >= $min_previous AND b.value > 0
                  AND a.customer_id IN (SELECT customer_id FROM cur)
            ),
            base AS (
                SELECT customer_id, median(change) AS usual,
                       (quantile_cont(change, 0.75) - quantile_cont(change, 0.25)) / 1.349
                           AS spread,
                       count(*) AS points
                FROM hist GROUP BY customer_id
            ),
            ly AS (
                SELECT a.customer_id, a.value AS year_now, b.value AS year_previous
                FROM v a JOIN v b ON b.customer_id = a.customer_id AND b.day = $year - $w
                WHERE a.day = $year AND a.customer_id IN (SELECT customer_id FROM cur)
            )
            SELECT cur.customer_id, now, previous, usual, spread, coalesce(points, 0),
                   year_now, year_previous
            FROM cur LEFT JOIN base USING (customer_id) LEFT JOIN ly USING (customer_id)
            ORDER BY cur.customer_id
            """,
            {
                "metric": str(params["metric"]),
                "m": m,
                "w": w,
                "drop": _keep_fraction(params),
                "min_previous": float(params["min_previous"]),
                "history": history,
                "year": year,
                "eps": EPSILON,
            },
        ).fetchall()
        return m, [
            _Drop(
                customer_id=int(r[0]), now=float(r[1]), previous=float(r[2]), usual=r[3],
                spread=r[4], points=int(r[5]), year_now=r[6], year_previous=r[7],
            )
            for r in rows
        ]  # fmt: skip

    def drops_by_measure_day(
        self, measured: Iterable[date], params: Mapping[str, Any]
    ) -> dict[date, list[_Drop]]:
        """``drops`` for several measurement days at once (a backfill), for every customer (the
        caller keeps those active on the judged day): ``{measurement day: drops}``."""
        days = sorted(set(measured))
        if not days:
            return {}
        self._load_metrics()
        w = int(params["window_days"])
        self.con.register("measured", pa.table({"m": pa.array(days, pa.date32())}))
        rows = self.con.execute(
            """
            WITH v AS (SELECT customer_id, day, value FROM mv WHERE metric = $metric),
            cur AS (
                SELECT c.day AS m, c.customer_id, c.value AS now, p.value AS previous
                FROM v c JOIN v p ON p.customer_id = c.customer_id AND p.day = c.day - $w
                WHERE c.day IN (SELECT m FROM measured)
                  AND c.value IS NOT NULL AND p.value >= $min_previous
                  AND p.value > 0 AND c.value / p.value - 1 <= -$drop + $eps
            ),
            changes AS (
                SELECT a.customer_id, a.day, a.value / b.value - 1 AS change
                FROM v a JOIN v b ON b.customer_id = a.customer_id AND b.day = a.day - $w
                WHERE a.value IS NOT NULL AND b.value >= $min_previous AND b.value > 0
                  AND a.customer_id IN (SELECT customer_id FROM cur)
            ),
            hist AS (
                SELECT cur.m, cur.customer_id, ch.change
                FROM cur JOIN changes ch ON ch.customer_id = cur.customer_id
                WHERE ch.day <= cur.m - $w AND ch.day > cur.m - $w - 7 * $weeks
                  AND (cur.m - $w - ch.day) % 7 = 0
            ),
            base AS (
                SELECT m, customer_id, median(change) AS usual,
                       (quantile_cont(change, 0.75) - quantile_cont(change, 0.25)) / 1.349
                           AS spread,
                       count(*) AS points
                FROM hist GROUP BY m, customer_id
            ),
            ly AS (
                SELECT cur.m, cur.customer_id, a.value AS year_now, b.value AS year_previous
                FROM cur
                JOIN v a ON a.customer_id = cur.customer_id AND a.day = cur.m - $year
                JOIN v b ON b.customer_id = cur.customer_id AND b.day = cur.m - $year - $w
            )
            SELECT cur.m, cur.customer_id, now, previous, usual, spread, coalesce(points, 0),
                   year_now, year_previous
            FROM cur LEFT JOIN base USING (m, customer_id) LEFT JOIN ly USING (m, customer_id)
            ORDER BY cur.m, cur.customer_id
            """,
            {
                "metric": str(params["metric"]),
                "w": w,
                "drop": _keep_fraction(params),
                "min_previous": float(params["min_previous"]),
                "weeks": int(params["baseline_weeks"]),
                "year": YEAR_DAYS,
                "eps": EPSILON,
            },
        ).fetchall()
        self.con.unregister("measured")
        found: dict[date, list[_Drop]] = {m: [] for m in days}
        for r in rows:
            found[r[0]].append(_Drop(
                customer_id=int(r[1]), now=float(r[2]), previous=float(r[3]), usual=r[4],
                spread=r[5], points=int(r[6]), year_now=r[7], year_previous=r[8],
            ))  # fmt: skip
        return found

    def below(
        self, day: date, metric: str, below: float, min_days: int
    ) -> tuple[date, list[tuple[int, float, date]]] | None:
        """(customer, value, first start) of the active customers in service for ``min_days``
        whose ``metric`` is below ``below`` on the measurement day (None: no recent one)."""
        m = self.measure_day(day)
        if m is None:
            return None
        self._load_metrics()
        rows = self.con.execute(
            """
            SELECT a.customer_id, v.value, a.first_start FROM mv v
            JOIN active a ON a.customer_id = v.customer_id
            WHERE v.metric = $metric AND v.day = $m AND v.value < $below
              AND a.first_start <= $limit
            ORDER BY a.customer_id
            """,
            {"metric": metric, "m": m, "below": below, "limit": day - timedelta(min_days)},
        ).fetchall()
        return m, [(int(c), float(v), first) for c, v, first in rows]

    # -- events ----------------------------------------------------------------------------

    def _load_events(self) -> None:
        """Login days per customer, and each product user's first day of use, up to ``end``."""
        if self._events_loaded:
            return
        self._events_loaded = True
        from kizuna.analytics import engine

        login_types = _login_event_types()
        with engine.session() as con:
            events = engine.usage_events(con, None, self.end - timedelta(days=1))
            events = events.filter(events.customer_id.notnull())
            logins = (
                events.filter(events.event_type.isin(login_types))
                .group_by(["customer_id", "event_date"])
                .aggregate()
            )
            users = events.filter(events.user_key.notnull())
            first = users.group_by(["customer_id", "user_key"]).aggregate(
                first_day=users.event_date.min()
            )
            login_table = con.to_pyarrow(logins)
            first_table = con.to_pyarrow(first)
        self.con.register("login_days_arrow", login_table)
        self.con.execute(
            "CREATE TABLE login_days AS SELECT customer_id::BIGINT AS customer_id, "
            "event_date::DATE AS event_date FROM login_days_arrow"
        )
        self.con.register("first_use_arrow", first_table)
        self.con.execute(
            "CREATE TABLE first_use AS SELECT customer_id::BIGINT AS customer_id, user_key, "
            "first_day::DATE AS first_day FROM first_use_arrow"
        )

    def without_login(self, day: date, days: int) -> list[tuple[int, date | None, date]] | None:
        """(customer, last login before ``day`` or None, first start) of the active customers in
        service for at least ``days`` days without a login in the ``days`` days before ``day``;
        None when the lake has no login at all by then (usage is not collected: nothing to
        judge)."""
        self._load_events()
        collected = self.con.execute(
            "SELECT count(*) FROM login_days WHERE event_date < ?", [day]
        ).fetchall()
        if not collected[0][0]:
            return None
        limit = day - timedelta(days=days)
        rows = self.con.execute(
            """
            SELECT a.customer_id, l.last_login, a.first_start
            FROM active a
            LEFT JOIN (
                SELECT customer_id, max(event_date) AS last_login FROM login_days
                WHERE event_date < $day GROUP BY customer_id
            ) l ON l.customer_id = a.customer_id
            WHERE a.first_start <= $limit AND (l.last_login IS NULL OR l.last_login < $limit)
            ORDER BY a.customer_id
            """,
            {"day": day, "limit": limit},
        ).fetchall()
        return [(int(c), last, first) for c, last, first in rows]

    def first_uses(self, since: date, before: date) -> list[tuple[int, str, date]]:
        """(customer, user, first day) of the users first seen in ``[since, before)``."""
        self._load_events()
        if self._first_uses is None:
            rows = self.con.execute(
                "SELECT customer_id, user_key, first_day FROM first_use ORDER BY first_day"
            ).fetchall()
            self._first_uses = [(int(c), str(u), d) for c, u, d in rows]
            self._first_use_days = [d for _c, _u, d in self._first_uses]
        low = bisect.bisect_left(self._first_use_days, since)
        high = bisect.bisect_left(self._first_use_days, before)
        return sorted(self._first_uses[low:high], key=lambda r: (r[0], r[2], r[1]))

    def contacts(
        self, field: str, roles: Iterable[str], since: date, before: date, customers: set[int]
    ) -> list[dict[str, Any]]:
        """As ``_contact_rows`` from the contacts read once (a backfill)."""
        key = (field, tuple(sorted(roles)))
        if key not in self._contacts:
            rows = list(
                Contact.objects.filter(role__in=list(key[1]), **{f"{field}__isnull": False})
                .order_by(field, "customer_id", "id")
                .values("id", "customer_id", "name", "role", "product_user_id", field)
            )
            self._contacts[key] = ([row[field] for row in rows], rows)
        dates, rows = self._contacts[key]
        low, high = bisect.bisect_left(dates, since), bisect.bisect_left(dates, before)
        found = sorted(rows[low:high], key=lambda row: (row["customer_id"], row[field], row["id"]))
        return [row for row in found if row["customer_id"] in customers]

    def nps_answers(self, since: datetime, until: datetime) -> list[tuple[int, int, datetime, Any]]:
        """NPS answers in ``[since, until)`` from those read once for the range (a backfill),
        ordered as the daily query orders them."""
        if self._nps is None:
            rows = list(
                TimelineEntry.objects.filter(kind=NPS_KIND, occurred_at__lt=_day_start(
                    self.end + timedelta(1)))
                .order_by("occurred_at", "id")
                .values_list("customer_id", "id", "occurred_at", "payload")
            )  # fmt: skip
            self._nps = ([row[2] for row in rows], rows)
        moments, answers = self._nps
        low, high = bisect.bisect_left(moments, since), bisect.bisect_left(moments, until)
        return sorted(answers[low:high], key=lambda row: (row[0], row[2], row[1]))

    def admin_users(self) -> dict[str, tuple[int | None, str]]:
        """Product users who are administrators: ``user_id → (contact id, name)``.

        From the identify traits (``role`` admin/administrator), the linked contact's role, or
        a contact with the user id and the admin role.
        """
        if self._admin_users is None:
            from kizuna.analytics.models import ProductUser

            found: dict[str, tuple[int | None, str]] = {}
            for pk, user_id, name in (
                Contact.objects.filter(role="admin")
                .exclude(product_user_id="")
                .values_list("pk", "product_user_id", "name")
            ):
                found[user_id] = (pk, name)
            for (
                user_id,
                name,
                traits,
                contact_id,
                contact_role,
                contact_name,
            ) in ProductUser.objects.filter(
                Q(contact__role="admin")
                | Q(traits__role__in=[*ADMIN_TRAITS, *(t.title() for t in ADMIN_TRAITS)])
            ).values_list(
                "user_id", "name", "traits", "contact_id", "contact__role", "contact__name"
            ):
                role = str((traits or {}).get("role", "")).lower()
                if contact_role == "admin" or role in ADMIN_TRAITS:
                    found.setdefault(user_id, (contact_id, contact_name or name or user_id))
            self._admin_users = found
        return self._admin_users


def _login_event_types() -> list[str]:
    from kizuna.analytics.metric_defaults import LOGIN_EVENT_TYPES
    from kizuna.analytics.models import MetricDefinition

    stored = (
        MetricDefinition.objects.filter(key="logins_28d").values_list("event_types", flat=True)
    ).first()
    types = [str(t) for t in (stored or []) if str(t).strip()]
    return types or list(LOGIN_EVENT_TYPES)


# -- the conditions, one function per kind ---------------------------------------------------


def _drop_condition(
    data: SignalData, day: date, params: Mapping[str, Any], active: set[int]
) -> dict[int, dict[str, Any]] | None:
    found = data.drops(day, params)
    if found is None:
        return None
    measured, drops = found
    return _drop_details(drops, measured, params, active)


def _drop_details(
    drops: Iterable[_Drop], measured: date, params: Mapping[str, Any], active: set[int]
) -> dict[int, dict[str, Any]]:
    """The baseline and season tests on the drops measured on ``measured``, with details.

    ``drops`` holds the changes down to the relaxed bound (``_keep_fraction``): those that pass
    every test are full matches (``held`` False), the others within the bound are held entries
    (they keep an open signal open, see the module's docstring)."""
    drop = float(params["drop_pct"]) / 100
    keep = _keep_fraction(params)
    k = float(params["fluctuation_k"])
    floor = float(params["min_spread_pct"]) / 100
    window = int(params["window_days"])
    result: dict[int, dict[str, Any]] = {}
    for row in drops:
        if row.customer_id not in active:
            continue
        change = row.now / row.previous - 1
        details: dict[str, Any] = {
            "metric": str(params["metric"]),
            "now": row.now,
            "previous": row.previous,
            "change": round(change, 4),
            "window_days": window,
            "measured_on": measured.isoformat(),
            "drop_pct": float(params["drop_pct"]),
            "weekly_rhythm": "cancels" if window % 7 == 0 else "present",
            "keep_change": -round(keep, 4),
            "held": False,
        }
        if change > -keep + EPSILON:
            continue
        held = dict(details, held=True, baseline=None, season=None)
        if change > -drop + EPSILON:
            result[row.customer_id] = held
            continue
        if row.points >= int(params["min_baseline_points"]) and row.usual is not None:
            spread = max(float(row.spread or 0.0), floor)
            limit = float(row.usual) - k * spread
            if change > limit + EPSILON:
                result[row.customer_id] = held
                continue
            details["baseline"] = {
                "usual": round(float(row.usual), 4),
                "spread": round(spread, 4),
                "k": k,
                "limit": round(limit, 4),
                "weeks": row.points,
            }
        else:
            details["baseline"] = None
            details["baseline_weeks"] = row.points
        if (
            params["seasonal"]
            and row.year_previous is not None
            and row.year_now is not None
            and row.year_previous >= float(params["min_previous"])
            and row.year_previous > 0
        ):
            year_change = row.year_now / row.year_previous - 1
            if year_change <= -1:  # usage vanished a year earlier too: no drop beyond the season
                result[row.customer_id] = held
                continue
            adjusted = (1 + change) / (1 + year_change) - 1
            if adjusted > -drop + EPSILON:
                result[row.customer_id] = held
                continue
            details["season"] = {
                "year_change": round(year_change, 4),
                "adjusted": round(adjusted, 4),
                "year_now": row.year_now,
                "year_previous": row.year_previous,
            }
        else:
            details["season"] = None
        result[row.customer_id] = details
    return result


def _keep_fraction(params: Mapping[str, Any]) -> float:
    """The relaxed bound, as a fraction: an open drop signal stays open while the change is at
    most minus this (``keep_ratio × drop_pct``)."""
    return float(params["keep_ratio"]) * float(params["drop_pct"]) / 100


def _no_login(
    data: SignalData, day: date, params: Mapping[str, Any], active: set[int]
) -> dict[int, dict[str, Any]] | None:
    days = int(params["days"])
    rows = data.without_login(day, days)
    if rows is None:
        return None
    result: dict[int, dict[str, Any]] = {}
    for customer_id, seen, first in rows:
        result[customer_id] = {
            "days": days,
            "last_login": seen.isoformat() if seen else None,
            "days_since": (day - seen).days if seen else None,
            "since_start": (day - first).days,
        }
    return result


def _contact_rows(
    data: SignalData,
    field: str,
    roles: Iterable[str],
    since: date,
    before: date,
    customers: set[int],
) -> list[dict[str, Any]]:
    if data.ranged:
        return data.contacts(field, roles, since, before, customers)
    rows = (
        Contact.objects.filter(
            role__in=list(roles), **{f"{field}__gte": since, f"{field}__lt": before}
        )
        .order_by("customer_id", field, "id")
        .values("id", "customer_id", "name", "role", "product_user_id", field)
    )
    return [row for row in rows if row["customer_id"] in customers]


def _champion_left(
    data: SignalData, day: date, params: Mapping[str, Any], active: set[int]
) -> dict[int, dict[str, Any]]:
    within = int(params["within_days"])
    result: dict[int, dict[str, Any]] = {}
    since, until = day - timedelta(within - 1), day + timedelta(1)
    rows = _contact_rows(data, "ended_on", params["roles"], since, until, active)
    for row in rows:
        entry = result.setdefault(row["customer_id"], {"within_days": within, "people": []})
        entry["people"].append(
            {
                "contact_id": row["id"],
                "name": row["name"],
                "role": row["role"],
                "left_on": row["ended_on"].isoformat(),
            }
        )
    return result


def _new_admin(
    data: SignalData, day: date, params: Mapping[str, Any], active: set[int]
) -> dict[int, dict[str, Any]]:
    within = int(params["within_days"])
    ignore = int(params["ignore_first_days"])
    starts = data.first_start()
    since = day - timedelta(within)
    result: dict[int, dict[str, Any]] = {}
    seen_contacts: set[int] = set()

    def settled(customer_id: int, on: date) -> bool:
        first = starts.get(customer_id)
        return first is not None and on > first + timedelta(ignore)

    def add(customer_id: int, person: dict[str, Any]) -> None:
        entry = result.setdefault(customer_id, {"within_days": within, "people": []})
        entry["people"].append(person)

    for row in _contact_rows(data, "started_on", ["admin"], since + timedelta(1),
                             day + timedelta(1), active):  # fmt: skip
        if settled(row["customer_id"], row["started_on"]):
            seen_contacts.add(row["id"])
            add(row["customer_id"], {
                "contact_id": row["id"], "name": row["name"],
                "since": row["started_on"].isoformat(), "source": "contacts",
            })  # fmt: skip
    admins = data.admin_users()
    for customer_id, user_id, first_day in data.first_uses(since + timedelta(1), day):
        if customer_id not in active or user_id not in admins:
            continue
        if not settled(customer_id, first_day):
            continue
        contact_id, name = admins[user_id]
        if contact_id is not None and contact_id in seen_contacts:
            for person in result[customer_id]["people"]:
                if person.get("contact_id") == contact_id:
                    person["source"] = "contacts+events"
                    person["first_used_on"] = first_day.isoformat()
            continue
        add(customer_id, {
            "contact_id": contact_id, "name": name, "user_id": user_id,
            "since": first_day.isoformat(), "first_used_on": first_day.isoformat(),
            "source": "events",
        })  # fmt: skip
    return result


def _milestone_overdue(
    data: SignalData, day: date, params: Mapping[str, Any], active: set[int]
) -> dict[int, dict[str, Any]]:
    from kizuna.onboarding.models import MilestoneStatus, PlanMilestone

    grace = int(params["grace_days"])
    rows = (
        PlanMilestone.objects.filter(
            milestone__required=True,
            plan__start_date__lte=day,
            due_date__lt=day - timedelta(grace),
        )
        .exclude(status=MilestoneStatus.SKIPPED)
        .filter(Q(completed_on__isnull=True) | Q(completed_on__gt=day))
        .filter(Q(plan__completed_on__isnull=True) | Q(plan__completed_on__gt=day))
        .filter(Q(plan__cancelled_at__isnull=True) | Q(plan__cancelled_at__gte=_day_start(day)))
        .order_by("plan__customer_id", "due_date", "id")
        .values_list("plan__customer_id", "id", "milestone__name", "due_date")
    )
    result: dict[int, dict[str, Any]] = {}
    for customer_id, pk, name, due in rows:
        if customer_id not in active:
            continue
        entry = result.setdefault(customer_id, {
            "grace_days": grace, "plan_milestone_id": pk, "milestone": name,
            "due_date": due.isoformat(), "days_overdue": (day - due).days, "count": 0,
        })  # fmt: skip
        entry["count"] += 1
    return result


def _nps_detractor(
    data: SignalData, day: date, params: Mapping[str, Any], active: set[int]
) -> dict[int, dict[str, Any]]:
    within = int(params["within_days"])
    max_score = int(params["max_score"])
    since, until = _day_start(day - timedelta(within - 1)), _day_start(day + timedelta(1))
    rows: Iterable[tuple[int, int, datetime, Any]]
    if data.ranged:
        rows = data.nps_answers(since, until)
    else:
        rows = (
            TimelineEntry.objects.filter(
                kind=NPS_KIND, occurred_at__gte=since, occurred_at__lt=until
            )
            .order_by("customer_id", "occurred_at", "id")
            .values_list("customer_id", "id", "occurred_at", "payload")
        )
    latest: dict[tuple[int, str], tuple[int, date, dict[str, Any]]] = {}
    for customer_id, pk, occurred_at, payload in rows:
        if customer_id not in active or not isinstance(payload, dict):
            continue
        score = payload.get("score")
        if isinstance(score, bool) or not isinstance(score, int | float):
            continue
        who = payload.get("contact_id") or payload.get("contact") or f"entry-{pk}"
        latest[(customer_id, str(who))] = (pk, timezone.localtime(occurred_at).date(), payload)
    result: dict[int, dict[str, Any]] = {}
    for (customer_id, _who), (pk, answered, payload) in latest.items():
        score = payload["score"]
        if score > max_score:
            continue
        current = result.get(customer_id)
        if current is None or answered.isoformat() > current["answered_on"]:
            result[customer_id] = {
                "score": score,
                "answered_on": answered.isoformat(),
                "max_score": max_score,
                "within_days": within,
                "entry_id": pk,
                "contact_id": payload.get("contact_id"),
                "detractors": (current or {}).get("detractors", 0) + 1,
            }
        else:
            current["detractors"] += 1
    return result


def _renewal_at_risk(
    data: SignalData, day: date, params: Mapping[str, Any], active: set[int]
) -> dict[int, dict[str, Any]]:
    within = int(params["within_days"])
    bands = list(params["bands"])
    renewal = (
        Subscription.objects.filter(active_on(day), customer=OuterRef("pk"), end_date__isnull=False)
        .order_by("end_date")
        .values("end_date")[:1]
    )
    latest = HealthScore.objects.filter(customer=OuterRef("pk"), day__lt=day).order_by("-day")
    rows = (
        Customer.objects.annotate(
            renewal_date=Subquery(renewal),
            band=Subquery(latest.values("band")[:1]),
            score=Subquery(latest.values("score")[:1]),
            score_day=Subquery(latest.values("day")[:1]),
        )
        .filter(
            renewal_date__isnull=False,
            renewal_date__lte=day + timedelta(within),
            band__in=bands,
        )
        .order_by("pk")
        .values_list("pk", "renewal_date", "band", "score", "score_day")
    )
    result: dict[int, dict[str, Any]] = {}
    for customer_id, renewal_date, band, score, score_day in rows:
        if customer_id not in active:
            continue
        result[customer_id] = {
            "renewal_date": renewal_date.isoformat(),
            "days_to_renewal": (renewal_date - day).days,
            "within_days": within,
            "band": band,
            "score": None if score is None else round(float(score), 1),
            "score_day": score_day.isoformat(),
        }
    return result


def _low_seat_utilisation(
    data: SignalData, day: date, params: Mapping[str, Any], active: set[int]
) -> dict[int, dict[str, Any]] | None:
    below = float(params["below"])
    found = data.below(day, SEAT_METRIC, below, int(params["min_days_since_start"]))
    if found is None:
        return None
    measured, rows = found
    result: dict[int, dict[str, Any]] = {}
    for customer_id, value, first in rows:
        result[customer_id] = {
            "metric": SEAT_METRIC,
            "value": round(value, 4),
            "below": below,
            "measured_on": measured.isoformat(),
            "days_since_start": (day - first).days,
        }
    return result


_CONDITIONS = {
    SignalKind.USAGE_DROP: _drop_condition,
    SignalKind.ACTIVE_USERS_DOWN: _drop_condition,
    SignalKind.LOGINS_DOWN: _drop_condition,
    SignalKind.NO_LOGIN: _no_login,
    SignalKind.CHAMPION_LEFT: _champion_left,
    SignalKind.NEW_ADMIN: _new_admin,
    SignalKind.MILESTONE_OVERDUE: _milestone_overdue,
    SignalKind.NPS_DETRACTOR: _nps_detractor,
    SignalKind.RENEWAL_AT_RISK: _renewal_at_risk,
    SignalKind.LOW_SEAT_UTILISATION: _low_seat_utilisation,
}


def conditions_on(
    *, day: date, rules: Rules, data: SignalData | None = None, include_held: bool = False
) -> dict[str, dict[int, dict[str, Any]]]:
    """For each kind in ``rules`` (kind → validated parameters): ``{customer_id: details}`` of
    the customers active on ``day`` that meet its condition. With ``include_held``, also the
    customers that only meet a drop rule's relaxed bound (``details["held"]``: they keep an
    open signal open, but open none).

    A kind that cannot be judged that day (no recent metric day, no login ever collected) is
    left out of the result, so its open signals are neither kept nor closed. ``data`` shares
    the loaded lake between days (backfill); without it, one is made for the day.
    """
    own = data is None
    source = data or SignalData(start=day, end=day, rules=rules)
    try:
        active = source.active_customers(day)
        found: dict[str, dict[int, dict[str, Any]]] = {}
        for kind, params in rules.items():
            condition = _CONDITIONS[SignalKind(kind)]
            result = condition(source, day, params, active)
            if result is not None:
                if not include_held:
                    result = {c: v for c, v in result.items() if not v.get("held")}
                found[kind] = result
        return found
    finally:
        if own:
            source.close()


def _active_by_day(days: list[date]) -> dict[date, set[int]]:
    """The customers in service on each day (as ``SignalData.active_customers``)."""
    subscriptions = list(
        Subscription.objects.order_by().values_list("customer_id", "start_date", "end_date")
    )
    return {
        day: {c for c, begin, end in subscriptions if begin <= day and (end is None or end > day)}
        for day in days
    }


def _grid(data: SignalData, active: Mapping[date, set[int]]) -> None:
    """The DuckDB table ``grid`` (day, customer_id, first_start) of the active customers."""
    starts = data.first_start()
    pairs = [(day, c) for day, ids in active.items() for c in sorted(ids)]
    data.con.register("grid_arrow", pa.table({
        "day": pa.array([day for day, _c in pairs], pa.date32()),
        "customer_id": pa.array([c for _d, c in pairs], pa.int64()),
        "first_start": pa.array([starts.get(c) for _d, c in pairs], pa.date32()),
    }))  # fmt: skip
    data.con.execute("CREATE OR REPLACE TABLE grid AS SELECT * FROM grid_arrow")
    data.con.unregister("grid_arrow")


def _no_login_range(
    data: SignalData, days: list[date], params: Mapping[str, Any]
) -> dict[date, dict[int, dict[str, Any]] | None]:
    """``_no_login`` for every day (``grid`` holds the active customers)."""
    data._load_events()
    length = int(params["days"])
    [(first_login,)] = data.con.execute("SELECT min(event_date) FROM login_days").fetchall()
    rows = data.con.execute(
        """
        SELECT g.day, g.customer_id, l.event_date, g.first_start
        FROM grid g ASOF LEFT JOIN login_days l
          ON l.customer_id = g.customer_id AND g.day > l.event_date
        WHERE g.first_start <= g.day - $days
          AND (l.event_date IS NULL OR l.event_date < g.day - $days)
        ORDER BY g.day, g.customer_id
        """,
        {"days": length},
    ).fetchall()
    result: dict[date, dict[int, dict[str, Any]] | None] = {
        day: {} if first_login is not None and first_login < day else None for day in days
    }
    for day, customer_id, seen, first in rows:
        met = result[day]
        if met is None:
            continue
        met[int(customer_id)] = {
            "days": length,
            "last_login": seen.isoformat() if seen else None,
            "days_since": (day - seen).days if seen else None,
            "since_start": (day - first).days,
        }
    return result


def _low_seat_range(
    data: SignalData,
    days: list[date],
    measured: Mapping[date, date | None],
    params: Mapping[str, Any],
    active: Mapping[date, set[int]],
) -> dict[date, dict[int, dict[str, Any]] | None]:
    """``_low_seat_utilisation`` for every day, from one read of the measurement days."""
    below = float(params["below"])
    min_days = int(params["min_days_since_start"])
    wanted = sorted({m for m in measured.values() if m is not None})
    values: dict[date, list[tuple[int, float]]] = {m: [] for m in wanted}
    if wanted:
        data._load_metrics()
        for m, customer_id, value in data.con.execute(
            "SELECT day, customer_id, value FROM mv WHERE metric = ? AND list_contains(?, day) "
            "AND value < ? ORDER BY day, customer_id",
            [SEAT_METRIC, wanted, below],
        ).fetchall():
            values[m].append((int(customer_id), float(value)))
    starts = data.first_start()
    result: dict[date, dict[int, dict[str, Any]] | None] = {}
    for day in days:
        m = measured[day]
        if m is None:
            result[day] = None
            continue
        limit = day - timedelta(min_days)
        met: dict[int, dict[str, Any]] = {}
        for customer_id, value in values[m]:
            first = starts.get(customer_id)
            if customer_id not in active[day] or first is None or first > limit:
                continue
            met[customer_id] = {
                "metric": SEAT_METRIC,
                "value": round(value, 4),
                "below": below,
                "measured_on": m.isoformat(),
                "days_since_start": (day - first).days,
            }
        result[day] = met
    return result


def _renewal_range(
    data: SignalData, days: list[date], params: Mapping[str, Any], active: Mapping[date, set[int]]
) -> dict[date, dict[int, dict[str, Any]]]:
    """``_renewal_at_risk`` for every day: the renewals within the window, with the latest
    score before each day (DuckDB ASOF join)."""
    within = int(params["within_days"])
    ends = list(
        Subscription.objects.filter(end_date__isnull=False, start_date__lte=days[-1],
                                    end_date__gt=days[0])
        .order_by().values_list("customer_id", "start_date", "end_date")
    )  # fmt: skip
    customers = sorted({c for c, _s, _e in ends})
    scores = list(
        HealthScore.objects.filter(customer_id__in=customers, day__lt=days[-1])
        .order_by().values_list("customer_id", "day", "band", "score")
    ) if customers else []  # fmt: skip
    con = data.con
    con.register("ends", pa.table({
        "customer_id": pa.array([c for c, _s, _e in ends], pa.int64()),
        "start_date": pa.array([s for _c, s, _e in ends], pa.date32()),
        "end_date": pa.array([e for _c, _s, e in ends], pa.date32()),
    }))  # fmt: skip
    con.register("scores", pa.table({
        "customer_id": pa.array([c for c, *_r in scores], pa.int64()),
        "day": pa.array([d for _c, d, *_r in scores], pa.date32()),
        "band": pa.array([b for _c, _d, b, _s in scores], pa.string()),
        "score": pa.array([None if s is None else float(s) for *_r, s in scores], pa.float64()),
    }))  # fmt: skip
    con.register("days", pa.table({"day": pa.array(days, pa.date32())}))
    rows = con.execute(
        """
        WITH ren AS (
            SELECT g.day, s.customer_id, min(s.end_date) AS renewal_date
            FROM days g JOIN ends s
              ON s.start_date <= g.day AND s.end_date > g.day AND s.end_date <= g.day + $within
            GROUP BY g.day, s.customer_id
        )
        SELECT r.day, r.customer_id, r.renewal_date, h.band, h.score, h.day
        FROM ren r ASOF JOIN scores h ON h.customer_id = r.customer_id AND r.day > h.day
        WHERE list_contains($bands, h.band)
        ORDER BY r.day, r.customer_id
        """,
        {"within": within, "bands": list(params["bands"])},
    ).fetchall()
    for name in ("ends", "scores", "days"):
        con.unregister(name)
    result: dict[date, dict[int, dict[str, Any]]] = {day: {} for day in days}
    for day, customer_id, renewal_date, band, score, score_day in rows:
        if customer_id not in active[day]:
            continue
        result[day][int(customer_id)] = {
            "renewal_date": renewal_date.isoformat(),
            "days_to_renewal": (renewal_date - day).days,
            "within_days": within,
            "band": band,
            "score": None if score is None else round(float(score), 1),
            "score_day": score_day.isoformat(),
        }
    return result


def range_conditions(
    *, start: date, end: date, rules: Rules, data: SignalData
) -> dict[date, dict[str, dict[int, dict[str, Any]]]]:
    """``conditions_on`` for every day of ``[start, end]`` (a backfill): ``{day: {kind:
    {customer_id: details}}}``, equal day by day to what ``conditions_on(include_held=True)``
    gives.

    The kinds read from the lake (drops, no login, seat utilisation) and the renewals are
    computed for the whole range in one query each; the others day by day on the people and
    NPS answers read once.
    """
    days = [start + timedelta(days=n) for n in range((end - start).days + 1)]
    measured = {day: data.measure_day(day) for day in days}
    active = _active_by_day(days)
    data.ranged = True
    ranged: dict[str, Mapping[date, dict[int, dict[str, Any]] | None]] = {}
    for kind, params in rules.items():
        if kind in DROP_KINDS:
            drops = data.drops_by_measure_day({m for m in measured.values() if m}, params)
            ranged[kind] = {
                day: None if m is None else _drop_details(drops[m], m, params, active[day])
                for day, m in measured.items()
            }
        elif kind == SignalKind.NO_LOGIN:
            _grid(data, active)
            ranged[kind] = _no_login_range(data, days, params)
        elif kind == SignalKind.LOW_SEAT_UTILISATION:
            ranged[kind] = _low_seat_range(data, days, measured, params, active)
        elif kind == SignalKind.RENEWAL_AT_RISK:
            ranged[kind] = _renewal_range(data, days, params, active)
    result: dict[date, dict[str, dict[int, dict[str, Any]]]] = {}
    for day in days:
        found: dict[str, dict[int, dict[str, Any]]] = {}
        for kind, params in rules.items():
            if kind in ranged:
                met = ranged[kind][day]
            else:
                met = _CONDITIONS[SignalKind(kind)](data, day, params, active[day])
            if met is not None:
                found[kind] = met
        result[day] = found
    return result
