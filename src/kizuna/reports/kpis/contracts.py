"""Contract totals for a period: one portable SQL statement over the subscriptions.

Every contract KPI of KPI.md (logo churn, MRR churn, GRR, NRR, MRR movements) is a ratio or
a sum of a few per-period totals. ``contract_totals`` computes them all at once, set-based:
a CTE works out each customer's MRR and activity on ``start`` and on ``end`` (or on every
boundary day of a monthly series), and the outer query aggregates. The same SQL runs on SQLite and PostgreSQL.

Amounts are converted to ``settings.KIZUNA_BASE_CURRENCY`` per subscription row, rounded to
the cent and summed as integers of cents, so that sums are exact on both databases and the
MRR movements add up to the end MRR to the cent.
"""

import itertools
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Q

from kizuna.customers.models import Subscription
from kizuna.reports.kpis.population import KpiInputError, Population

CENT = Decimal("0.01")


@dataclass(frozen=True, kw_only=True)
class ContractTotals:
    """What the contract KPIs need for one period; money in the base currency."""

    start: date
    end: date
    currency: str
    customers_start: int  # active on start
    customers_end: int  # active on end
    churned_customers: int  # active on start, not on end
    retained_customers: int  # active on both days
    new_customers: int  # not active on start, active on end, first start after start
    reactivated_customers: int  # not active on start, active on end, started before
    mrr_start: Decimal  # MRR on start (all of it belongs to customers active on start)
    mrr_end: Decimal  # MRR on end, all customers
    mrr_end_of_start_customers: Decimal  # MRR on end of customers active on start
    churned_mrr: Decimal  # MRR on start of churned customers
    contraction_mrr: Decimal  # active both days: sum of max(0, start - end) ("downsell")
    expansion_mrr: Decimal  # active both days: sum of max(0, end - start)
    new_mrr: Decimal
    reactivation_mrr: Decimal

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _cents(value: Any) -> Decimal:
    """An integer of cents from the database (int on SQLite, Decimal on PostgreSQL) as money."""
    return (Decimal(value or 0) / 100).quantize(CENT)


def _rate_case() -> tuple[str, list[Any]]:
    """``CASE s.currency …`` giving units of base currency per unit, NULL when unknown."""
    base = str(settings.KIZUNA_BASE_CURRENCY).upper()
    rates: dict[str, float] = dict(getattr(settings, "KIZUNA_CURRENCY_RATES", {}) or {})
    whens = ["WHEN %s THEN 1"]
    params: list[Any] = [base]
    for code, rate in sorted(rates.items()):
        if code.upper() == base:
            continue
        whens.append("WHEN %s THEN CAST(%s AS NUMERIC)")
        params.extend([code.upper(), Decimal(str(rate))])
    return f"CASE UPPER(s.currency) {' '.join(whens)} ELSE NULL END", params


def _missing_rates(*, end: date, population: Population, member_days: Sequence[date]) -> list[str]:
    """The currencies without a configured rate among the rows the totals would read."""
    base = str(settings.KIZUNA_BASE_CURRENCY).upper()
    known = {base} | {code.upper() for code in getattr(settings, "KIZUNA_CURRENCY_RATES", {})}
    rows = Subscription.objects.filter(start_date__lte=end)
    if population.product_id is not None:
        rows = rows.filter(product_id=population.product_id)
    if population.filters_customers:
        members = Q(pk__in=[])
        for day in sorted(set(member_days)):
            members |= Q(customer_id__in=population.customers(day))
        rows = rows.filter(members)
    currencies = {code.upper() for code in rows.values_list("currency", flat=True).distinct()}
    return sorted(currencies - known)


def contract_totals(*, start: date, end: date, population: Population) -> ContractTotals:
    """Customers and MRR on ``start`` and ``end`` and the movements between, for the population.

    Raises KpiInputError naming ``end`` when it is before ``start``, and naming ``currency``
    when a subscription is in a currency with no rate in ``KIZUNA_CURRENCY_RATES``.
    """
    if end < start:
        raise KpiInputError("end", f"{end.isoformat()} is before start {start.isoformat()}")
    return contract_totals_series(days=[start, end], population=population)[0]


def _period_columns(k: int, *, member: str = "") -> str:
    """The 14 aggregates of the period [day k, day k + 1] over ``per_customer``.

    Its four placeholders all stand for day k (new vs. reactivated customers). ``member``,
    when given, is the SQL condition that a customer belongs to the period's population.
    """
    a0, a1, m0, m1 = f"active_{k}", f"active_{k + 1}", f"mrr_{k}", f"mrr_{k + 1}"
    gone = f"{a0} = 1 AND {a1} = 0"
    both = f"{a0} = 1 AND {a1} = 1"
    came = f"{a0} = 0 AND {a1} = 1"
    # (condition, summed value): SUM(CASE WHEN condition THEN value ELSE 0 END)
    parts = [
        (f"{a0} = 1", "1"),
        (f"{a1} = 1", "1"),
        (gone, "1"),
        (both, "1"),
        (f"{came} AND first_start > %s", "1"),
        (f"{came} AND first_start <= %s", "1"),
        ("", m0),
        ("", m1),
        (f"{a0} = 1", m1),
        (gone, m0),
        (f"{both} AND {m0} > {m1}", f"{m0} - {m1}"),
        (f"{both} AND {m1} > {m0}", f"{m1} - {m0}"),
        (f"{came} AND first_start > %s", m1),
        (f"{came} AND first_start <= %s", m1),
    ]
    columns = []
    for condition, value in parts:
        where = " AND ".join(part for part in (member, condition) if part)
        columns.append(
            f"SUM(CASE WHEN {where} THEN {value} ELSE 0 END)" if where else f"SUM({value})"
        )
    return ",\n    ".join(f"COALESCE({column}, 0)" for column in columns)


def contract_totals_series(*, days: Sequence[date], population: Population) -> list[ContractTotals]:
    """Contract totals of each period [days[k], days[k + 1]], in one SQL statement.

    ``days`` must be in order (at least two). One pass over the subscriptions computes each
    customer's MRR and activity on every day, then the totals of every consecutive pair, so
    a 12-month trend costs about as much as a single month.

    The population of period k is read as of ``population.day_for(days[k])``. When every
    period reads it on the same day the subscriptions are filtered up front; otherwise each
    customer carries a membership flag per period and each period sums its members only.
    """
    if len(days) < 2 or any(b < a for a, b in itertools.pairwise(days)):
        raise KpiInputError("end", "the days of a series must be at least two and in order")
    table = connection.ops.quote_name(Subscription._meta.db_table)
    rate_sql, rate_params = _rate_case()
    where = ["s.start_date <= %s"]
    where_params: list[Any] = [days[-1]]
    if population.product_id is not None:
        where.append("s.product_id = %s")
        where_params.append(population.product_id)
    member_days = [population.day_for(day) for day in days[:-1]]
    flags: list[str] = []
    flag_params: list[Any] = []
    if population.filters_customers and len(set(member_days)) == 1:
        ids_sql, ids_params = population.customer_ids_sql(member_days[0])
        where.append(f"s.customer_id IN ({ids_sql})")
        where_params.extend(ids_params)
    elif population.filters_customers:
        for k, day in enumerate(member_days):
            ids_sql, ids_params = population.customer_ids_sql(day)
            flags.append(f"CASE WHEN customer_id IN ({ids_sql}) THEN 1 ELSE 0 END AS member_{k}")
            flag_params.extend(ids_params)
    active_on = "(start_date <= %s AND (end_date IS NULL OR end_date > %s))"
    customer_columns = []
    customer_params: list[Any] = []
    for k, day in enumerate(days):
        customer_columns.append(f"SUM(CASE WHEN {active_on} THEN cents ELSE 0 END) AS mrr_{k}")
        customer_columns.append(f"MAX(CASE WHEN {active_on} THEN 1 ELSE 0 END) AS active_{k}")
        customer_params.extend([day, day, day, day])
    period_sql = []
    period_params: list[Any] = []
    for k in range(len(days) - 1):
        period_sql.append(_period_columns(k, member=f"member_{k} = 1" if flags else ""))
        period_params.extend([days[k]] * 4)
    # Rows without an exchange rate matter only for customers some period counts.
    unpriced = "unpriced"
    if flags:
        unpriced = f"CASE WHEN {' OR '.join(f'member_{k} = 1' for k in range(len(flags)))} "
        unpriced += "THEN unpriced ELSE 0 END"
    # Placeholders only: every value below travels as a parameter.
    sql = f"""
WITH subs AS (
    SELECT s.customer_id AS customer_id, s.start_date AS start_date, s.end_date AS end_date,
           CAST(ROUND(s.mrr * {rate_sql} * 100) AS BIGINT) AS cents
    FROM {table} s
    WHERE {" AND ".join(where)}
),
per_customer AS (
    SELECT customer_id,
           {", ".join([*customer_columns, *flags])},
           MIN(start_date) AS first_start,
           SUM(CASE WHEN cents IS NULL THEN 1 ELSE 0 END) AS unpriced
    FROM subs
    GROUP BY customer_id
)
SELECT COALESCE(SUM({unpriced}), 0),
    {",".join(period_sql)}
FROM per_customer
"""  # noqa: S608 - table and column names are ours, values are parameters
    params: list[Any] = [
        *rate_params,
        *where_params,
        *customer_params,
        *flag_params,
        *period_params,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    assert row is not None
    if row[0]:
        missing = _missing_rates(end=days[-1], population=population, member_days=member_days)
        raise KpiInputError(
            "currency",
            f"no exchange rate for {', '.join(missing)}: add it to KIZUNA_CURRENCY_RATES "
            f"(units of {settings.KIZUNA_BASE_CURRENCY} per unit, e.g. "
            f"KIZUNA_CURRENCY_RATES={missing[0] if missing else 'USD'}=150)",
        )
    return [
        _totals(days[k], days[k + 1], row[1 + 14 * k : 1 + 14 * (k + 1)])
        for k in range(len(days) - 1)
    ]


def _totals(start: date, end: date, values: Sequence[Any]) -> ContractTotals:
    return ContractTotals(
        start=start,
        end=end,
        currency=str(settings.KIZUNA_BASE_CURRENCY),
        customers_start=int(values[0]),
        customers_end=int(values[1]),
        churned_customers=int(values[2]),
        retained_customers=int(values[3]),
        new_customers=int(values[4]),
        reactivated_customers=int(values[5]),
        mrr_start=_cents(values[6]),
        mrr_end=_cents(values[7]),
        mrr_end_of_start_customers=_cents(values[8]),
        churned_mrr=_cents(values[9]),
        contraction_mrr=_cents(values[10]),
        expansion_mrr=_cents(values[11]),
        new_mrr=_cents(values[12]),
        reactivation_mrr=_cents(values[13]),
    )
