"""Reads of the customer record: lists with ARR and renewal dates, Customer 360 summaries."""

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from django.db.models import (
    Count,
    DecimalField,
    ExpressionWrapper,
    F,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.expressions import OrderBy
from django.db.models.functions import Coalesce
from django.utils import timezone

from kizuna.customers.models import Customer, Subscription

MONEY = DecimalField(max_digits=16, decimal_places=2)

# Sort keys the list accepts, mapped to ORM orderings (a stable tie-breaker last). Customers
# without a renewal date (open-ended or no contract) go last either way, on every database
# (SQLite and PostgreSQL disagree on where NULLs sort).
CUSTOMER_SORTS: dict[str, tuple[str | OrderBy, ...]] = {
    "name": ("name", "id"),
    "-name": ("-name", "-id"),
    "arr": ("arr", "name", "id"),
    "-arr": ("-arr", "name", "id"),
    "renewal": (F("renewal_date").asc(nulls_last=True), "name", "id"),
    "-renewal": (F("renewal_date").desc(nulls_last=True), "name", "id"),
    "start": (F("first_start_date").asc(nulls_last=True), "name", "id"),
    "-start": (F("first_start_date").desc(nulls_last=True), "name", "id"),
}


def active_on(day: date, prefix: str = "") -> Q:
    """Subscriptions in service on ``day`` (KPI.md: start <= d < end, or open-ended)."""
    return Q(**{f"{prefix}start_date__lte": day}) & (
        Q(**{f"{prefix}end_date__gt": day}) | Q(**{f"{prefix}end_date__isnull": True})
    )


def with_revenue(customers: QuerySet[Customer], *, as_of: date) -> QuerySet[Customer]:
    """Annotate ``mrr``, ``arr`` (12 × MRR, in contract currency) and ``renewal_date``.

    ``renewal_date`` is the earliest end date, on or after ``as_of``, of the customer's
    subscriptions in service on ``as_of``: the next contract the team must renew.
    """
    in_service = Subscription.objects.filter(active_on(as_of), customer=OuterRef("pk"))
    mrr = in_service.order_by().values("customer").annotate(total=Sum("mrr")).values("total")[:1]
    renewal = in_service.filter(end_date__isnull=False).order_by("end_date").values("end_date")[:1]
    return customers.annotate(
        mrr=Coalesce(Subquery(mrr, output_field=MONEY), Value(Decimal(0)), output_field=MONEY),
        renewal_date=Subquery(renewal),
    ).annotate(arr=ExpressionWrapper(F("mrr") * 12, output_field=MONEY))


def customer_list(
    *,
    search: str = "",
    stage: str = "",
    touch_model: str = "",
    segment: str = "",
    owner_id: int | None = None,
    sort: str = "name",
    as_of: date | None = None,
) -> QuerySet[Customer]:
    """Customers matching the filters, with revenue annotations, in the requested order.

    ``search`` matches name, external id or domain (case-insensitive substring);
    ``owner_id`` matches any of the three phase owners. Unknown sort keys fall back to name.
    """
    customers = Customer.objects.all()
    if search:
        customers = customers.filter(
            Q(name__icontains=search)
            | Q(external_id__icontains=search)
            | Q(domain__icontains=search)
        )
    if stage:
        customers = customers.filter(lifecycle_stage=stage)
    if touch_model:
        customers = customers.filter(touch_model=touch_model)
    if segment:
        customers = customers.filter(segment=segment)
    if owner_id is not None:
        customers = customers.filter(
            Q(onboarding_owner_id=owner_id)
            | Q(adoption_owner_id=owner_id)
            | Q(expansion_owner_id=owner_id)
        )
    customers = with_revenue(customers, as_of=as_of or timezone.localdate())
    return customers.order_by(*CUSTOMER_SORTS.get(sort, CUSTOMER_SORTS["name"]))


def segments() -> list[str]:
    """The segments in use, alphabetically."""
    return list(
        Customer.objects.exclude(segment="")
        .order_by("segment")
        .values_list("segment", flat=True)
        .distinct()
    )


@dataclass(frozen=True)
class CustomerSummary:
    mrr: Decimal
    arr: Decimal
    renewal_date: date | None
    subscriptions_in_service: int
    currencies: tuple[str, ...]


def customer_summary(*, customer_id: int, as_of: date | None = None) -> CustomerSummary:
    """MRR, ARR, next renewal and the subscriptions in service for one customer."""
    day = as_of or timezone.localdate()
    in_service = Subscription.objects.filter(active_on(day), customer_id=customer_id)
    totals = in_service.aggregate(mrr=Sum("mrr"))
    mrr = Decimal(totals["mrr"] or 0).quantize(Decimal("0.01"))
    renewal = (
        in_service.filter(end_date__isnull=False)
        .order_by("end_date")
        .values_list("end_date", flat=True)
        .first()
    )
    currencies = tuple(sorted(set(in_service.values_list("currency", flat=True))))
    return CustomerSummary(
        mrr=mrr,
        arr=mrr * 12,
        renewal_date=renewal,
        subscriptions_in_service=in_service.count(),
        currencies=currencies,
    )


def subscriptions_of(*, customer_id: int) -> QuerySet[Subscription]:
    """A customer's subscriptions, newest first, with product and plan."""
    return (
        Subscription.objects.filter(customer_id=customer_id)
        .select_related("product", "plan")
        .order_by("-start_date", "-id")
    )


def customer_counts_by_stage() -> dict[str, int]:
    """How many customers are in each lifecycle stage (stages without customers are left out)."""
    rows = Customer.objects.order_by().values("lifecycle_stage").annotate(n=Count("id"))
    return {row["lifecycle_stage"]: row["n"] for row in rows}


@dataclass(frozen=True)
class CustomerBookTotals:
    customers: int
    customers_in_service: int
    mrr_by_currency: dict[str, Decimal]


def customer_book_totals(*, as_of: date | None = None) -> CustomerBookTotals:
    """Customer count, customers in service and MRR in service per currency on ``as_of``."""
    day = as_of or timezone.localdate()
    in_service = Subscription.objects.filter(active_on(day))
    mrr_rows = in_service.order_by().values("currency").annotate(total=Sum("mrr"))
    return CustomerBookTotals(
        customers=Customer.objects.count(),
        customers_in_service=in_service.order_by().values("customer_id").distinct().count(),
        mrr_by_currency={row["currency"]: Decimal(row["total"] or 0) for row in mrr_rows},
    )
