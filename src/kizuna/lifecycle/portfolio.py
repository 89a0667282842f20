"""Reads for the portfolio page (one CSM's book) and the team page (load, coverage, handoffs)."""

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from kizuna.core.models import User
from kizuna.customers.models import Customer, LifecycleStage, Subscription, TouchModel
from kizuna.customers.selectors import CUSTOMER_SORTS, active_on, with_revenue
from kizuna.lifecycle.assignment import (
    CsmLoad,
    csm_loads,
    owned_in_current_role,
    without_current_owner,
)
from kizuna.lifecycle.handoffs import age_in_days, handoffs_for
from kizuna.lifecycle.models import STAGE_ROLES, CsmProfile, HandoffStatus, OwnerRole, RoleHandoff

# The stages a book holds, in journey order (churned customers leave the book).
BOOK_STAGES = (
    LifecycleStage.ONBOARDING,
    LifecycleStage.REACTIVATED,
    LifecycleStage.ADOPTION,
    LifecycleStage.EXPANSION,
)
PORTFOLIO_SORTS = ("name", "-name", "arr", "-arr", "renewal", "-renewal")


def with_pending_handoffs(customers: QuerySet[Customer]) -> QuerySet[Customer]:
    """Annotate ``pending_handoffs``: how many of the customer's handoffs wait for acknowledgement."""
    pending = (
        RoleHandoff.objects.filter(customer=OuterRef("pk"), status=HandoffStatus.PENDING)
        .order_by()
        .values("customer")
        .annotate(n=Count("id"))
        .values("n")[:1]
    )
    return customers.annotate(
        pending_handoffs=Coalesce(
            Subquery(pending, output_field=IntegerField()), Value(0), output_field=IntegerField()
        )
    )


@dataclass(frozen=True)
class MatrixRow:
    stage: str
    label: str
    counts: tuple[int, ...]  # in TouchModel order
    total: int


@dataclass(frozen=True)
class Portfolio:
    """A CSM's book: customers (annotated ``arr``, ``renewal_date``, ``pending_handoffs``),
    counts per stage × touch model, totals, their load and the handoffs waiting for them."""

    user: User
    customers: QuerySet[Customer]
    matrix: list[MatrixRow]
    touch_models: list[tuple[str, str]]
    column_totals: tuple[int, ...]
    total_customers: int
    total_arr: Decimal
    load: CsmLoad | None
    waiting: list[RoleHandoff]


def book_of(user: User) -> QuerySet[Customer]:
    """The customers ``user`` owns in the role of their current stage (churned ones excluded)."""
    return Customer.objects.filter(owned_in_current_role(user.pk))


def _matrix(
    customers: QuerySet[Customer],
) -> tuple[list[MatrixRow], tuple[int, ...], int]:
    rows = customers.order_by().values("lifecycle_stage", "touch_model").annotate(n=Count("id"))
    counts = {(row["lifecycle_stage"], row["touch_model"]): row["n"] for row in rows}
    labels = dict(LifecycleStage.choices)
    matrix = []
    for stage in BOOK_STAGES:
        cells = tuple(counts.get((stage, touch), 0) for touch in TouchModel.values)
        if stage == LifecycleStage.REACTIVATED and not any(cells):
            continue  # rare; shown only when the book has one
        matrix.append(MatrixRow(stage, str(labels[stage]), cells, sum(cells)))
    columns = tuple(
        sum(counts.get((stage, touch), 0) for stage in BOOK_STAGES) for touch in TouchModel.values
    )
    return matrix, columns, sum(columns)


def portfolio(user: User, *, sort: str = "renewal", as_of: date | None = None) -> Portfolio:
    """The book of ``user`` with ARR (12 × MRR in service on ``as_of``, today by default),
    renewal date (earliest end of a subscription in service) and pending handoffs."""
    day = as_of or timezone.localdate()
    owned = book_of(user)
    customers = with_pending_handoffs(with_revenue(owned, as_of=day)).select_related(
        "onboarding_owner", "adoption_owner", "expansion_owner"
    )
    order = sort if sort in PORTFOLIO_SORTS else "renewal"
    customers = customers.order_by(*CUSTOMER_SORTS[order])
    matrix, columns, total = _matrix(owned)
    mrr = Subscription.objects.filter(active_on(day), customer__in=owned).aggregate(
        total=Sum("mrr")
    )["total"]
    waiting = list(
        handoffs_for(user, box="to", status=HandoffStatus.PENDING).order_by("created_at", "id")
    )
    return Portfolio(
        user=user,
        customers=customers,
        matrix=matrix,
        touch_models=[(value, str(label)) for value, label in TouchModel.choices],
        column_totals=columns,
        total_customers=total,
        total_arr=Decimal(mrr or 0) * 12,
        load=csm_loads().get(user.pk),
        waiting=waiting,
    )


@dataclass(frozen=True)
class CsmRow:
    user: User
    team_name: str
    load: CsmLoad

    @property
    def counts(self) -> list[int]:
        """Customers per role, in role order."""
        return [self.load.customers.get(role, 0) for role in OwnerRole]

    @property
    def percent(self) -> int | None:
        """Load as a whole percentage of capacity (None without a profile or at capacity 0)."""
        if self.load.capacity is None or self.load.capacity == 0:
            return None
        share = self.load.load * 100 / self.load.capacity
        return int(share.quantize(Decimal(1), rounding=ROUND_HALF_UP))


@dataclass(frozen=True)
class WaitingHandoff:
    handoff: RoleHandoff
    age_days: int


@dataclass(frozen=True)
class TeamOverview:
    """Per CSM: customers by role, load against capacity; the customers nobody owns in their
    current role; the handoffs waiting for acknowledgement (oldest first)."""

    csms: list[CsmRow]
    unowned: QuerySet[Customer]
    unowned_count: int
    waiting: list[WaitingHandoff]
    roles: list[tuple[str, str]]


def unowned_customers() -> QuerySet[Customer]:
    """Customers (not churned) without an owner for their current stage's role, oldest first."""
    return Customer.objects.filter(without_current_owner()).order_by("first_start_date", "id")


def team_overview(*, today: date | None = None, waiting_limit: int = 200) -> TeamOverview:
    """What the team page shows, in a handful of queries."""
    day = today or timezone.localdate()
    loads = csm_loads()
    users = {
        user.pk: user
        for user in User.objects.filter(pk__in=list(loads)).select_related("csm_profile__team")
    }
    teams = {
        profile.user_id: profile.team.name if profile.team else ""
        for profile in CsmProfile.objects.filter(user_id__in=list(loads)).select_related("team")
    }
    rows = [
        CsmRow(user=users[pk], team_name=teams.get(pk, ""), load=load)
        for pk, load in loads.items()
        if pk in users
    ]
    rows.sort(key=lambda row: (row.team_name == "", row.team_name, row.user.display_name))
    unowned = unowned_customers()
    waiting = list(
        handoffs_for(None, status=HandoffStatus.PENDING).order_by("created_at", "id")[
            :waiting_limit
        ]
    )
    return TeamOverview(
        csms=rows,
        unowned=unowned,
        unowned_count=unowned.count(),
        waiting=[WaitingHandoff(handoff, age_in_days(handoff, day)) for handoff in waiting],
        roles=[(value, str(label)) for value, label in OwnerRole.choices],
    )


def current_role(customer: Customer) -> str | None:
    """The role that owns ``customer`` in its current stage (None when churned)."""
    return STAGE_ROLES.get(customer.lifecycle_stage)
