"""Hand-made contract sets for the KPI tests, with the answers worked out in comments."""

from datetime import date
from decimal import Decimal

from kizuna.core.models import User
from kizuna.customers.models import Customer, Product, Subscription
from kizuna.lifecycle.history import record_changes
from kizuna.lifecycle.models import ChangeSource, Dimension

MARCH = (date(2026, 3, 1), date(2026, 4, 1))


def product(code: str) -> Product:
    return Product.objects.get_or_create(code=code, defaults={"name": code.upper()})[0]


def customer(name: str, **fields: object) -> Customer:
    return Customer.objects.create(name=name, **fields)


def subscribe(
    who: Customer,
    start: str,
    end: str | None,
    mrr: str | int,
    *,
    product_code: str = "p1",
    currency: str = "JPY",
) -> Subscription:
    return Subscription.objects.create(
        customer=who,
        product=product(product_code),
        start_date=date.fromisoformat(start),
        end_date=date.fromisoformat(end) if end else None,
        mrr=Decimal(str(mrr)),
        currency=currency,
    )


def march_book() -> dict[str, Customer]:
    """The March 2026 book: period [2026-03-01, 2026-04-01].

    customer  subscriptions                                      on 03-01  on 04-01  movement
    A         p1 2025-01-01 → open, 100                          100       100       —
    B         p1 2025-06-01 → 2026-03-15, 200                    200       —         churn 200
    C         p1 2025-02-01 → 2026-04-01, 300 (ends on end day)  300       —         churn 300
    D         p1 2025-01-01 → open, 400                          450       400       contraction 50
              p2 2025-05-01 → 2026-03-20, 50  (two products)
    E         p1 2025-01-01 → 2026-03-10, 100                    100       250       expansion 150
              p1 2026-03-10 → open, 250 (renewed higher)
    F         p1 2026-03-05 → open, 500                          —         500       new 500
    G         p1 2024-01-01 → 2025-12-01, 80                     —         90        reactivation 90
              p1 2026-03-20 → open, 90
    H         p1 2026-03-01 → open, 60 (starts on start day)     60        60        —
    I         p1 2026-04-01 → open, 70 (starts on end day)       —         70        new 70
    J         p1 2026-03-05 → 2026-03-25, 999 (inside period)    —         —         —
    K         p1 2026-05-01 → open, 40 (after the period)        —         —         —
    L         p1 2026-03-01 → 2026-03-01, 10 (zero days)         —         —         —

    Active on start: A B C D E H = 6; churned B C = 2; retained A D E H = 4.
    MRR start 100+200+300+450+100+60 = 1210; churned 500; contraction 50; expansion 150.
    End MRR of start customers 100+400+250+60 = 810; new 500+70 = 570; reactivation 90.
    End MRR 100+400+250+500+90+60+70 = 1470 = 1210 + 570 + 90 + 150 − 50 − 500.
    """
    book = {name: customer(name) for name in "ABCDEFGHIJKL"}
    subscribe(book["A"], "2025-01-01", None, 100)
    subscribe(book["B"], "2025-06-01", "2026-03-15", 200)
    subscribe(book["C"], "2025-02-01", "2026-04-01", 300)
    subscribe(book["D"], "2025-01-01", None, 400)
    subscribe(book["D"], "2025-05-01", "2026-03-20", 50, product_code="p2")
    subscribe(book["E"], "2025-01-01", "2026-03-10", 100)
    subscribe(book["E"], "2026-03-10", None, 250)
    subscribe(book["F"], "2026-03-05", None, 500)
    subscribe(book["G"], "2024-01-01", "2025-12-01", 80)
    subscribe(book["G"], "2026-03-20", None, 90)
    subscribe(book["H"], "2026-03-01", None, 60)
    subscribe(book["I"], "2026-04-01", None, 70)
    subscribe(book["J"], "2026-03-05", "2026-03-25", 999)
    subscribe(book["K"], "2026-05-01", None, 40)
    subscribe(book["L"], "2026-03-01", "2026-03-01", 10)
    return book


# Customer fields behind the lifecycle dimensions, for ``set_state``.
_DIMENSION_OF_FIELD = {
    "segment": Dimension.SEGMENT,
    "touch_model": Dimension.TOUCH_MODEL,
    "lifecycle_stage": Dimension.STAGE,
    "onboarding_owner": Dimension.ONBOARDING_OWNER,
    "adoption_owner": Dimension.ADOPTION_OWNER,
    "expansion_owner": Dimension.EXPANSION_OWNER,
}
BEFORE_EVERYTHING = date(2024, 1, 1)


def set_state(who: Customer, *, on: date = BEFORE_EVERYTHING, **fields: object) -> None:
    """Change a customer's segment, touch model, stage or owners (users) from day ``on``.

    Through ``record_changes``, the real path: the Customer field and the history both
    change, so the KPIs see the new value as of ``on`` and later, the old one before.
    """
    for field, value in fields.items():
        text = str(value.pk) if isinstance(value, User) else "" if value is None else str(value)
        record_changes(
            dimension=_DIMENSION_OF_FIELD[field],
            values={who.pk: text},
            on=on,
            source=ChangeSource.MANUAL,
            reason="test",
        )
    who.refresh_from_db()
