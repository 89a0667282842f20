"""On random contract books the SQL agrees with a plain reading of KPI.md, to the cent."""

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kizuna.reports.kpis import Population, contract_totals
from kizuna.reports.tests.contracts_data import customer, subscribe

pytestmark = pytest.mark.django_db

ORIGIN = date(2025, 1, 1)

rows = st.tuples(
    st.integers(0, 4),  # customer
    st.sampled_from(["p1", "p2"]),  # product
    st.integers(0, 400),  # start, days after ORIGIN
    st.one_of(st.none(), st.integers(0, 200)),  # length in days, None = open-ended
    st.integers(0, 500_000),  # MRR in cents
)


def _reference(book: list[tuple[int, str, date, date | None, Decimal]], start: date, end: date):  # type: ignore[no-untyped-def]
    """The movements computed customer by customer, straight from the definitions."""

    def mrr(who: int, day: date) -> tuple[bool, Decimal]:
        active = [m for c, _p, s, e, m in book if c == who and s <= day and (e is None or e > day)]
        return bool(active), sum(active, Decimal(0))

    moves = dict.fromkeys(("start", "end", "new", "react", "exp", "contr", "churn"), Decimal(0))
    for who in {c for c, *_ in book}:
        on_start, mrr_start = mrr(who, start)
        on_end, mrr_end = mrr(who, end)
        first = min(s for c, _p, s, _e, _m in book if c == who)
        moves["start"] += mrr_start
        moves["end"] += mrr_end
        if on_start and on_end:
            moves["exp"] += max(Decimal(0), mrr_end - mrr_start)
            moves["contr"] += max(Decimal(0), mrr_start - mrr_end)
        elif on_start:
            moves["churn"] += mrr_start
        elif on_end:
            moves["new" if first > start else "react"] += mrr_end
    return moves


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    generated=st.lists(rows, max_size=14, unique_by=lambda row: (row[0], row[1], row[2])),
    period_start=st.integers(0, 450),
    period_days=st.integers(0, 120),
)
def test_start_mrr_plus_movements_equals_end_mrr_exactly(
    generated: list[tuple[int, str, int, int | None, int]], period_start: int, period_days: int
) -> None:
    start = ORIGIN + timedelta(days=period_start)
    end = start + timedelta(days=period_days)
    book = [
        (
            who,
            code,
            ORIGIN + timedelta(days=offset),
            None if length is None else ORIGIN + timedelta(days=offset + length),
            Decimal(cents) / 100,
        )
        for who, code, offset, length, cents in generated
    ]
    with transaction.atomic():
        customers = [customer(f"C{index}") for index in range(5)]
        for who, code, first, last, mrr in book:
            subscribe(
                customers[who],
                first.isoformat(),
                last.isoformat() if last else None,
                mrr,
                product_code=code,
            )
        totals = contract_totals(start=start, end=end, population=Population())
        transaction.set_rollback(True)

    assert (
        totals.mrr_start
        + totals.new_mrr
        + totals.reactivation_mrr
        + totals.expansion_mrr
        - totals.contraction_mrr
        - totals.churned_mrr
        == totals.mrr_end
    )
    expected = _reference(book, start, end)
    assert totals.mrr_start == expected["start"]
    assert totals.mrr_end == expected["end"]
    assert totals.new_mrr == expected["new"]
    assert totals.reactivation_mrr == expected["react"]
    assert totals.expansion_mrr == expected["exp"]
    assert totals.contraction_mrr == expected["contr"]
    assert totals.churned_mrr == expected["churn"]
