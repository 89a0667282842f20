"""A hand-made book whose segments and owners change over time, answers in the docstring."""

from datetime import date

from kizuna.core.models import User
from kizuna.customers.models import Customer
from kizuna.lifecycle.models import Segment
from kizuna.reports.tests.contracts_data import customer, set_state, subscribe

JANUARY = (date(2026, 1, 1), date(2026, 2, 1))
FEBRUARY = (date(2026, 2, 1), date(2026, 3, 1))
MARCH = (date(2026, 3, 1), date(2026, 4, 1))
CHANGE_DAY = date(2026, 2, 10)


def segment_book(csm1: User, csm2: User) -> dict[str, Customer]:
    """Five customers over January–March 2026; each month is [first day, first of the next].

    customer  segment                                  stage       owners                     subscription (p1)
    X         enterprise, mid-market from 02-10        adoption    adoption: csm1, csm2 from  2025-01-01 → open, 100
                                                                   02-10
    Y         enterprise                               onboarding  —                          2025-01-01 → 2026-02-15, 200
    Z         mid-market                               adoption    —                          2025-01-01 → 2026-03-20, 300
    W         mid-market                               expansion   onboarding csm2,           2025-06-01 → open, 400
                                                                   adoption csm1
    V         (none)                                   adoption    —                          2025-01-01 → open, 50

    Logo churn, the segments read on each month's first day:
      January  (01-01): enterprise X Y 0/2; mid-market Z W 0/2; none V 0/1; total 0/5.
      February (02-01): enterprise X Y, Y churns: 1/2; mid-market Z W 0/2; none 0/1; total 1/5.
      March    (03-01): enterprise — (Y is gone, X is mid-market) 0/0 undefined;
                        mid-market X Z W, Z churns: 1/3; none 0/1; total 1/4.
    February read as of 02-15 instead: enterprise Y 1/1; mid-market X Z W 0/3.
    NRR February, enterprise: X 100 → 100, Y 200 → 0: 100 / 300.
    Owners (any role) on 02-01: csm1 X W; csm2 W; no owner Y Z V. On 03-01: csm1 W; csm2 X W.
    Stages (all since the beginning): adoption X Z V, onboarding Y, expansion W.
    """
    Segment.objects.create(key="enterprise", name="Enterprise", position=1, expression="true")
    Segment.objects.create(key="mid-market", name="Mid-market", position=2, expression="true")
    book = {
        "X": customer("X", segment="enterprise", lifecycle_stage="adoption"),
        "Y": customer("Y", segment="enterprise", lifecycle_stage="onboarding"),
        "Z": customer("Z", segment="mid-market", lifecycle_stage="adoption"),
        "W": customer("W", segment="mid-market", lifecycle_stage="expansion"),
        "V": customer("V", segment="", lifecycle_stage="adoption"),
    }
    set_state(book["X"], adoption_owner=csm1)
    set_state(book["W"], onboarding_owner=csm2, adoption_owner=csm1)
    set_state(book["X"], on=CHANGE_DAY, segment="mid-market", adoption_owner=csm2)
    subscribe(book["X"], "2025-01-01", None, 100)
    subscribe(book["Y"], "2025-01-01", "2026-02-15", 200)
    subscribe(book["Z"], "2025-01-01", "2026-03-20", 300)
    subscribe(book["W"], "2025-06-01", None, 400)
    subscribe(book["V"], "2025-01-01", None, 50)
    return book
