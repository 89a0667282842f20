"""REST endpoints of the customer record (mounted under /api/v1 by kizuna.config.api).

Doors only: each endpoint checks the caller's capability, parses typed input (Pydantic, so a
bad value is a 422 naming its field), calls one service or selector and shapes the answer.
Services raise django ValidationError for rules the database knows (unique external ids…),
which the API turns into a 400 naming the field.
"""

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal

from django.core.exceptions import ValidationError
from django.db import IntegrityError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.translation import gettext as _
from ninja import Field, Query, Router, Schema
from ninja.pagination import LimitOffsetPagination, paginate
from ninja.responses import Status
from pydantic import (
    AfterValidator,
    ConfigDict,
    PlainSerializer,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from kizuna.core.access import require
from kizuna.core.models import TimelineEntry, User
from kizuna.core.roles import Capability
from kizuna.core.timeline import entries_for
from kizuna.customers import selectors, services
from kizuna.customers.models import (
    Contact,
    ContactRole,
    Customer,
    LifecycleStage,
    Plan,
    Product,
    SalesHandoff,
    Subscription,
    SubscriptionChange,
    SubscriptionStatus,
    TouchModel,
)

router = Router()

CENT = Decimal("0.01")
PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
OWNER_RELATIONS = ("onboarding_owner", "adoption_owner", "expansion_owner")


class Pagination(LimitOffsetPagination):
    """``limit`` (default 50, at most 500) and ``offset``; answers ``{"items": [...], "count": n}``."""

    class Input(Schema):
        limit: int = Field(PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE, description="Items per page.")
        offset: int = Field(0, ge=0, le=2_000_000_000, description="Items to skip.")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_limit=MAX_PAGE_SIZE, **kwargs)


# --- Types at the edge -------------------------------------------------------------------------


def _plain_text(value: str) -> str:
    """Refuse what no database column can store (NUL, lone surrogates) with a clear message."""
    if "\x00" in value:
        raise ValueError(_("Text cannot contain NUL characters."))
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(_("Text must be valid Unicode.")) from None
    return value


def _sane_datetime(value: datetime) -> datetime:
    """Naive times are in the installation's time zone; keep years the databases can store."""
    if not 1900 <= value.year <= 2999:
        raise ValueError(_("Give a time between the years 1900 and 2999."))
    if timezone.is_naive(value):
        value = timezone.make_aware(value)
    return value


def _two_places(value: Decimal) -> str:
    return str(Decimal(value).quantize(CENT))


def _four_places(value: Decimal) -> str:
    return str(Decimal(value).quantize(Decimal("0.0001")))


# Single-line text is trimmed; multi-line text is kept as written.
Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(_plain_text),
]
Code = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
    AfterValidator(_plain_text),
]
Line50 = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=50), AfterValidator(_plain_text)
]
Line100 = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=100), AfterValidator(_plain_text)
]
Line200 = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=200), AfterValidator(_plain_text)
]
Line300 = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=300), AfterValidator(_plain_text)
]
Email = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=254), AfterValidator(_plain_text)
]
Text = Annotated[str, StringConstraints(max_length=100_000), AfterValidator(_plain_text)]
ObjectId = Annotated[int, Field(ge=1, le=2_147_483_647)]
Count = Annotated[int, Field(ge=0, le=2_147_483_647)]
When = Annotated[datetime, AfterValidator(_sane_datetime)]
MoneyIn = Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=2, allow_inf_nan=False)]
QuantityIn = Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=2, allow_inf_nan=False)]
DiscountIn = Annotated[
    Decimal, Field(ge=0, le=1, max_digits=5, decimal_places=4, allow_inf_nan=False)
]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
Language = Literal["ja", "en"]
ManualKind = Literal["note", "meeting", "call", "training", "review_meeting"]
CustomerSort = Literal["name", "-name", "arr", "-arr", "renewal", "-renewal", "start", "-start"]

# Money and other decimals leave as strings with a fixed number of places ("1200.00").
Money = Annotated[Decimal, PlainSerializer(_two_places, return_type=str)]
Fraction = Annotated[Decimal, PlainSerializer(_four_places, return_type=str)]


class InSchema(Schema):
    """Input: unknown fields are refused (a typo must not be silently ignored)."""

    model_config = ConfigDict(extra="forbid")


class ErrorOut(Schema):
    detail: Any = Field(
        description=(
            "A message (403, 404); {field: [messages]} for rules checked on save (400); "
            "a list of {loc, msg, type} naming each bad field (422)."
        )
    )


class PatchSchema(InSchema):
    """Only the fields sent are changed; ``null`` clears a field only where it may be empty."""

    NULLABLE: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*", mode="before")
    @classmethod
    def _null_only_where_allowed(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None and info.field_name not in cls.NULLABLE:
            raise ValueError(_("This field cannot be empty (null)."))
        return value


ERRORS: dict[int, Any] = {400: ErrorOut, 403: ErrorOut, 404: ErrorOut}


def _user(request: HttpRequest) -> User | None:
    return request.user if isinstance(request.user, User) else None


def _invalid(field: str, message: str) -> ValidationError:
    return ValidationError({field: [message]})


def _external_id(value: str | None) -> str | None:
    """An empty external id means "none": NULL lets many rows go without one."""
    return value or None


def _guarded(write: Any, /, **kwargs: Any) -> Any:
    """Run a service; a unique or check constraint lost in a race is a 400, not a 500."""
    try:
        return write(**kwargs)
    except IntegrityError:
        raise ValidationError(
            _("This conflicts with a record saved at the same time; try again.")
        ) from None


# --- People --------------------------------------------------------------------------------------


class UserRefOut(Schema):
    id: int
    username: str
    name: str

    @staticmethod
    def resolve_name(user: User) -> str:
        return user.display_name


class OwnersOut(Schema):
    onboarding: UserRefOut | None
    adoption: UserRefOut | None
    expansion: UserRefOut | None
    current: UserRefOut | None = Field(description="The owner of the customer's current phase.")


# --- Customers -----------------------------------------------------------------------------------


class CustomerIn(InSchema):
    name: Name
    external_id: Line100 | None = Field(None, description="The id in the CRM or billing system.")
    domain: Line200 = ""
    industry: Line100 = ""
    employee_count: Count | None = None
    region: Line100 = ""
    segment: Line100 = ""
    lifecycle_stage: LifecycleStage = LifecycleStage.ONBOARDING
    touch_model: TouchModel = TouchModel.HIGH
    onboarding_owner: ObjectId | None = Field(None, description="User id.")
    adoption_owner: ObjectId | None = Field(None, description="User id.")
    expansion_owner: ObjectId | None = Field(None, description="User id.")
    churn_date: date | None = None
    churn_reason: Line300 = ""


class CustomerPatch(PatchSchema):
    NULLABLE: ClassVar[frozenset[str]] = frozenset(
        {
            "external_id",
            "employee_count",
            "onboarding_owner",
            "adoption_owner",
            "expansion_owner",
            "churn_date",
        }
    )

    name: Name | None = Field(None)
    external_id: Line100 | None = Field(None)
    domain: Line200 | None = Field(None)
    industry: Line100 | None = Field(None)
    employee_count: Count | None = Field(None)
    region: Line100 | None = Field(None)
    segment: Line100 | None = Field(None)
    lifecycle_stage: LifecycleStage | None = Field(None)
    touch_model: TouchModel | None = Field(None)
    onboarding_owner: ObjectId | None = Field(None)
    adoption_owner: ObjectId | None = Field(None)
    expansion_owner: ObjectId | None = Field(None)
    churn_date: date | None = Field(None)
    churn_reason: Line300 | None = Field(None)


class CustomerOut(Schema):
    id: int
    name: str
    external_id: str | None
    domain: str
    industry: str
    employee_count: int | None
    region: str
    segment: str
    lifecycle_stage: str
    touch_model: str
    onboarding_owner: int | None = Field(alias="onboarding_owner_id")
    adoption_owner: int | None = Field(alias="adoption_owner_id")
    expansion_owner: int | None = Field(alias="expansion_owner_id")
    owners: OwnersOut
    first_start_date: date | None
    churn_date: date | None
    churn_reason: str
    mrr: Money = Field(description="MRR in service on the day asked for (contract currency).")
    arr: Money = Field(description="12 × MRR.")
    renewal_date: date | None = Field(
        description="The earliest end date of the subscriptions in service: the next renewal."
    )
    created_at: datetime
    updated_at: datetime

    @staticmethod
    def resolve_owners(customer: Customer) -> dict[str, User | None]:
        owners: dict[str, User | None] = {
            "onboarding": customer.onboarding_owner,
            "adoption": customer.adoption_owner,
            "expansion": customer.expansion_owner,
        }
        owners["current"] = owners.get(customer.lifecycle_stage)
        return owners


class CustomerFilters(Schema):
    q: str = Field("", max_length=200, description="Part of the name, external id or domain.")
    stage: LifecycleStage | None = None
    touch_model: TouchModel | None = None
    segment: str = Field("", max_length=100)
    owner: ObjectId | None = Field(None, description="User id owning any phase.")
    sort: CustomerSort = "name"
    as_of: date | None = Field(None, description="Day for MRR, ARR and renewal (default today).")


def _customer_fields(data: dict[str, Any]) -> dict[str, Any]:
    """API names to model fields: owners are user ids, an empty external id is none."""
    fields = dict(data)
    for relation in OWNER_RELATIONS:
        if relation in fields:
            fields[f"{relation}_id"] = fields.pop(relation)
    if "external_id" in fields:
        fields["external_id"] = _external_id(fields["external_id"])
    return fields


def _customer_out(customer_id: int, as_of: date | None = None) -> Customer:
    customers = Customer.objects.filter(pk=customer_id).select_related(*OWNER_RELATIONS)
    return get_object_or_404(selectors.with_revenue(customers, as_of=as_of or timezone.localdate()))


@router.get(
    "/customers",
    response={200: list[CustomerOut], **ERRORS},
    tags=["customers"],
    summary="List customers (filter, sort, paginate)",
)
@paginate(Pagination)
def list_customers(request: HttpRequest, filters: Query[CustomerFilters]) -> QuerySet[Customer]:
    require(request.user, Capability.VIEW)
    return selectors.customer_list(
        search=filters.q.strip(),
        stage=filters.stage or "",
        touch_model=filters.touch_model or "",
        segment=filters.segment,
        owner_id=filters.owner,
        sort=filters.sort,
        as_of=filters.as_of,
    ).select_related(*OWNER_RELATIONS)


@router.post(
    "/customers",
    response={201: CustomerOut, **ERRORS},
    tags=["customers"],
    summary="Create a customer",
)
def create_customer(request: HttpRequest, payload: CustomerIn) -> Status[Customer]:
    """A customer whose ``external_id`` is already taken is refused with a 400 naming it."""
    require(request.user, Capability.EDIT_CUSTOMERS)
    customer = _guarded(
        services.create_customer,
        actor=_user(request),
        **_customer_fields(payload.model_dump()),
    )
    return Status(201, _customer_out(customer.pk))


@router.get(
    "/customers/by-external-id/{path:external_id}",
    response={200: CustomerOut, **ERRORS},
    tags=["customers"],
    summary="One customer by its id in the CRM or billing system",
)
def get_customer_by_external_id(request: HttpRequest, external_id: str) -> Customer:
    require(request.user, Capability.VIEW)
    customer = get_object_or_404(Customer, external_id=external_id)
    return _customer_out(customer.pk)


@router.get(
    "/customers/{customer_id}",
    response={200: CustomerOut, **ERRORS},
    tags=["customers"],
    summary="One customer with MRR, ARR, renewal date and owners",
)
def get_customer(
    request: HttpRequest, customer_id: int, as_of: Query[date | None] = None
) -> Customer:
    require(request.user, Capability.VIEW)
    return _customer_out(customer_id, as_of)


@router.patch(
    "/customers/{customer_id}",
    response={200: CustomerOut, **ERRORS},
    tags=["customers"],
    summary="Change a customer",
)
def update_customer(request: HttpRequest, customer_id: int, payload: CustomerPatch) -> Customer:
    require(request.user, Capability.EDIT_CUSTOMERS)
    customer = get_object_or_404(Customer, pk=customer_id)
    _guarded(
        services.update_customer,
        customer=customer,
        actor=_user(request),
        **_customer_fields(payload.model_dump(exclude_unset=True)),
    )
    return _customer_out(customer.pk)


# --- Contacts ------------------------------------------------------------------------------------


class ContactIn(InSchema):
    name: Name
    external_id: Line100 | None = None
    email: Email = ""
    phone: Line50 = ""
    job_title: Line200 = ""
    role: ContactRole = ContactRole.END_USER
    language: Language = "ja"
    product_user_id: Line200 = Field("", description="The person's user id in product events.")
    started_on: date | None = None
    ended_on: date | None = None


class ContactPatch(PatchSchema):
    NULLABLE: ClassVar[frozenset[str]] = frozenset({"external_id", "started_on", "ended_on"})

    name: Name | None = Field(None)
    external_id: Line100 | None = Field(None)
    email: Email | None = Field(None)
    phone: Line50 | None = Field(None)
    job_title: Line200 | None = Field(None)
    role: ContactRole | None = Field(None)
    language: Language | None = Field(None)
    product_user_id: Line200 | None = Field(None)
    started_on: date | None = Field(None)
    ended_on: date | None = Field(None)


class ContactOut(Schema):
    id: int
    customer: int = Field(alias="customer_id")
    external_id: str | None
    name: str
    email: str
    phone: str
    job_title: str
    role: str
    language: str
    product_user_id: str
    started_on: date | None
    ended_on: date | None
    created_at: datetime
    updated_at: datetime


def _check_contact(contact: Contact, fields: dict[str, Any]) -> dict[str, Any]:
    """The rules the contact form checks, with the same messages, on the merged values."""
    fields = dict(fields)
    if "external_id" in fields:
        fields["external_id"] = _external_id(fields["external_id"])
    started = fields.get("started_on", contact.started_on)
    ended = fields.get("ended_on", contact.ended_on)
    if started and ended and ended < started:
        raise _invalid("ended_on", _("The end of involvement cannot be before its start."))
    email = fields.get("email", contact.email)
    if (
        email
        and Contact.objects.filter(customer_id=contact.customer_id, email__iexact=email)
        .exclude(pk=contact.pk)
        .exists()
    ):
        raise _invalid("email", _("Another contact of this customer has this email address."))
    return fields


@router.get(
    "/customers/{customer_id}/contacts",
    response={200: list[ContactOut], **ERRORS},
    tags=["contacts"],
    summary="A customer's contacts",
)
@paginate(Pagination)
def list_contacts(request: HttpRequest, customer_id: int) -> QuerySet[Contact]:
    require(request.user, Capability.VIEW)
    customer = get_object_or_404(Customer, pk=customer_id)
    return customer.contacts.order_by("name", "id")


@router.post(
    "/customers/{customer_id}/contacts",
    response={201: ContactOut, **ERRORS},
    tags=["contacts"],
    summary="Add a contact to a customer",
)
def create_contact(request: HttpRequest, customer_id: int, payload: ContactIn) -> Status[Contact]:
    require(request.user, Capability.EDIT_CUSTOMERS)
    customer = get_object_or_404(Customer, pk=customer_id)
    fields = _check_contact(Contact(customer=customer), payload.model_dump())
    return Status(201, _guarded(services.create_contact, customer=customer, **fields))


@router.get(
    "/contacts/{contact_id}",
    response={200: ContactOut, **ERRORS},
    tags=["contacts"],
    summary="One contact",
)
def get_contact(request: HttpRequest, contact_id: int) -> Contact:
    require(request.user, Capability.VIEW)
    return get_object_or_404(Contact, pk=contact_id)


@router.patch(
    "/contacts/{contact_id}",
    response={200: ContactOut, **ERRORS},
    tags=["contacts"],
    summary="Change a contact",
)
def update_contact(request: HttpRequest, contact_id: int, payload: ContactPatch) -> Contact:
    require(request.user, Capability.EDIT_CUSTOMERS)
    contact = get_object_or_404(Contact, pk=contact_id)
    fields = _check_contact(contact, payload.model_dump(exclude_unset=True))
    result: Contact = _guarded(services.update_contact, contact=contact, **fields)
    return result


# --- Products and plans --------------------------------------------------------------------------


class PlanIn(InSchema):
    code: Code
    name: Name
    tier_rank: int = Field(1, ge=0, le=32767, description="A higher rank is a higher plan.")


class PlanPatch(PatchSchema):
    NULLABLE: ClassVar[frozenset[str]] = frozenset()

    product: ObjectId | None = Field(None, description="Move the plan to another product.")
    code: Code | None = Field(None)
    name: Name | None = Field(None)
    tier_rank: int | None = Field(None, ge=0, le=32767)


class PlanOut(Schema):
    id: int
    product: int = Field(alias="product_id")
    code: str
    name: str
    tier_rank: int


class ProductIn(InSchema):
    code: Code
    name: Name
    description: Text = ""
    is_active: bool = True


class ProductPatch(PatchSchema):
    NULLABLE: ClassVar[frozenset[str]] = frozenset()

    code: Code | None = Field(None)
    name: Name | None = Field(None)
    description: Text | None = Field(None)
    is_active: bool | None = Field(None)


class ProductOut(Schema):
    id: int
    code: str
    name: str
    description: str
    is_active: bool
    plans: list[PlanOut]

    @staticmethod
    def resolve_plans(product: Product) -> list[Plan]:
        return sorted(product.plans.all(), key=lambda plan: (plan.tier_rank, plan.name, plan.pk))


def _products() -> QuerySet[Product]:
    return Product.objects.prefetch_related("plans").order_by("name", "id")


def _check_plan_code(*, product_id: int, code: str, plan_id: int | None = None) -> None:
    plans = Plan.objects.filter(product_id=product_id, code=code)
    if plan_id is not None:
        plans = plans.exclude(pk=plan_id)
    if plans.exists():
        raise _invalid("code", _("This product already has a plan with this code."))


@router.get(
    "/products",
    response={200: list[ProductOut], **ERRORS},
    tags=["products"],
    summary="The product catalog with each product's plans",
)
@paginate(Pagination)
def list_products(request: HttpRequest, active: bool | None = None) -> QuerySet[Product]:
    require(request.user, Capability.VIEW)
    products = _products()
    return products if active is None else products.filter(is_active=active)


@router.post(
    "/products",
    response={201: ProductOut, **ERRORS},
    tags=["products"],
    summary="Add a product",
)
def create_product(request: HttpRequest, payload: ProductIn) -> Status[Product]:
    require(request.user, Capability.MANAGE_CATALOG)
    product = _guarded(services.create_product, **payload.model_dump())
    return Status(201, get_object_or_404(_products(), pk=product.pk))


@router.get(
    "/products/{product_id}",
    response={200: ProductOut, **ERRORS},
    tags=["products"],
    summary="One product with its plans",
)
def get_product(request: HttpRequest, product_id: int) -> Product:
    require(request.user, Capability.VIEW)
    return get_object_or_404(_products(), pk=product_id)


@router.patch(
    "/products/{product_id}",
    response={200: ProductOut, **ERRORS},
    tags=["products"],
    summary="Change a product",
)
def update_product(request: HttpRequest, product_id: int, payload: ProductPatch) -> Product:
    require(request.user, Capability.MANAGE_CATALOG)
    product = get_object_or_404(Product, pk=product_id)
    _guarded(services.update_product, product=product, **payload.model_dump(exclude_unset=True))
    return get_object_or_404(_products(), pk=product.pk)


@router.get(
    "/products/{product_id}/plans",
    response={200: list[PlanOut], **ERRORS},
    tags=["products"],
    summary="A product's plans, lowest tier first",
)
@paginate(Pagination)
def list_plans(request: HttpRequest, product_id: int) -> QuerySet[Plan]:
    require(request.user, Capability.VIEW)
    product = get_object_or_404(Product, pk=product_id)
    return product.plans.order_by("tier_rank", "name", "id")


@router.post(
    "/products/{product_id}/plans",
    response={201: PlanOut, **ERRORS},
    tags=["products"],
    summary="Add a plan to a product",
)
def create_plan(request: HttpRequest, product_id: int, payload: PlanIn) -> Status[Plan]:
    require(request.user, Capability.MANAGE_CATALOG)
    product = get_object_or_404(Product, pk=product_id)
    _check_plan_code(product_id=product.pk, code=payload.code)
    return Status(201, _guarded(services.create_plan, product=product, **payload.model_dump()))


@router.patch(
    "/plans/{plan_id}",
    response={200: PlanOut, **ERRORS},
    tags=["products"],
    summary="Change a plan",
)
def update_plan(request: HttpRequest, plan_id: int, payload: PlanPatch) -> Plan:
    require(request.user, Capability.MANAGE_CATALOG)
    plan = get_object_or_404(Plan, pk=plan_id)
    fields = payload.model_dump(exclude_unset=True)
    if "product" in fields:
        product = Product.objects.filter(pk=fields["product"]).first()
        if product is None:
            raise _invalid("product", _("There is no product with this id."))
        fields["product"] = product
    _check_plan_code(
        product_id=fields["product"].pk if "product" in fields else plan.product_id,
        code=fields.get("code", plan.code),
        plan_id=plan.pk,
    )
    result: Plan = _guarded(services.update_plan, plan=plan, **fields)
    return result


# --- Subscriptions -------------------------------------------------------------------------------


class SubscriptionIn(InSchema):
    customer: ObjectId = Field(description="Customer id.")
    product: ObjectId = Field(description="Product id.")
    plan: ObjectId | None = Field(None, description="Plan id (a plan of the product).")
    external_id: Line100 | None = None
    quantity: QuantityIn = Decimal(1)
    unit: Line50 = ""
    mrr: MoneyIn = Field(description='Monthly recurring revenue, e.g. "1200.00".')
    currency: Currency | None = Field(None, description="ISO 4217 code; default: base currency.")
    bill_period_months: int = Field(1, ge=1, le=120)
    discount: DiscountIn = Field(Decimal(0), description="A fraction between 0 and 1.")
    start_date: date
    end_date: date | None = Field(None, description="The first day without service.")
    status: SubscriptionStatus = SubscriptionStatus.ACTIVE


class SubscriptionPatch(PatchSchema):
    NULLABLE: ClassVar[frozenset[str]] = frozenset({"plan", "external_id", "end_date"})

    product: ObjectId | None = Field(None)
    plan: ObjectId | None = Field(None)
    external_id: Line100 | None = Field(None)
    quantity: QuantityIn | None = Field(None)
    unit: Line50 | None = Field(None)
    mrr: MoneyIn | None = Field(None)
    currency: Currency | None = Field(None)
    bill_period_months: int | None = Field(None, ge=1, le=120)
    discount: DiscountIn | None = Field(None)
    start_date: date | None = Field(None)
    end_date: date | None = Field(None)
    status: SubscriptionStatus | None = Field(None)


class SubscriptionOut(Schema):
    id: int
    customer: int = Field(alias="customer_id")
    external_id: str | None
    product: int = Field(alias="product_id")
    product_code: str = Field(alias="product.code")
    plan: int | None = Field(alias="plan_id")
    plan_code: str | None
    quantity: Money
    unit: str
    mrr: Money
    currency: str
    bill_period_months: int
    discount: Fraction
    start_date: date
    end_date: date | None
    status: str
    created_at: datetime
    updated_at: datetime

    @staticmethod
    def resolve_plan_code(subscription: Subscription) -> str | None:
        return subscription.plan.code if subscription.plan else None


class SubscriptionFilters(Schema):
    customer: ObjectId | None = Field(None, description="Customer id.")
    product: ObjectId | None = Field(None, description="Product id.")
    status: SubscriptionStatus | None = None
    active_on: date | None = Field(None, description="In service on this day.")


class SubscriptionChangeOut(Schema):
    id: int
    changed_at: datetime
    actor: str | None
    source: str
    changes: dict[str, Any] = Field(description="{field: [old, new]}")

    @staticmethod
    def resolve_actor(change: SubscriptionChange) -> str | None:
        return change.actor.username if change.actor else None


def _subscription_fields(subscription: Subscription, data: dict[str, Any]) -> dict[str, Any]:
    """Resolve ids and check the rules the subscription form checks, on the merged values."""
    fields = dict(data)
    if "product" in fields:
        if not Product.objects.filter(pk=fields["product"]).exists():
            raise _invalid("product", _("There is no product with this id."))
        fields["product_id"] = fields.pop("product")
    if "plan" in fields:
        fields["plan_id"] = fields.pop("plan")
    plan_id = fields.get("plan_id", subscription.plan_id)
    product_id = fields.get("product_id", subscription.product_id)
    if plan_id is not None:
        plan = Plan.objects.filter(pk=plan_id).first()
        if plan is None:
            raise _invalid("plan", _("There is no plan with this id."))
        if plan.product_id != product_id:
            raise _invalid("plan", _("This plan belongs to another product."))
    if "external_id" in fields:
        fields["external_id"] = _external_id(fields["external_id"])
    if fields.get("currency") is None:
        fields.pop("currency", None)
    # Store what the columns keep, so the history shows "1200.00" and not "1200".
    for name, places in (("mrr", CENT), ("quantity", CENT), ("discount", Decimal("0.0001"))):
        if fields.get(name) is not None:
            fields[name] = Decimal(fields[name]).quantize(places)
    start = fields.get("start_date", subscription.start_date)
    end = fields.get("end_date", subscription.end_date)
    if start and end and end < start:
        raise _invalid("end_date", _("The end date cannot be before the start date."))
    if (
        start
        and Subscription.objects.filter(
            customer_id=subscription.customer_id, product_id=product_id, start_date=start
        )
        .exclude(pk=subscription.pk)
        .exists()
    ):
        raise _invalid(
            "start_date",
            _("This customer already has a subscription to this product starting on this day."),
        )
    return fields


def _subscriptions() -> QuerySet[Subscription]:
    return Subscription.objects.select_related("product", "plan")


@router.get(
    "/subscriptions",
    response={200: list[SubscriptionOut], **ERRORS},
    tags=["subscriptions"],
    summary="List subscriptions (filter by customer, product, status, day in service)",
)
@paginate(Pagination)
def list_subscriptions(
    request: HttpRequest, filters: Query[SubscriptionFilters]
) -> QuerySet[Subscription]:
    require(request.user, Capability.VIEW)
    subscriptions = _subscriptions().order_by("customer_id", "start_date", "id")
    if filters.customer is not None:
        subscriptions = subscriptions.filter(customer_id=filters.customer)
    if filters.product is not None:
        subscriptions = subscriptions.filter(product_id=filters.product)
    if filters.status is not None:
        subscriptions = subscriptions.filter(status=filters.status)
    if filters.active_on is not None:
        subscriptions = subscriptions.filter(selectors.active_on(filters.active_on))
    return subscriptions


@router.post(
    "/subscriptions",
    response={201: SubscriptionOut, **ERRORS},
    tags=["subscriptions"],
    summary="Add a subscription (one contract period)",
)
def create_subscription(request: HttpRequest, payload: SubscriptionIn) -> Status[Subscription]:
    """An ``external_id`` already taken is refused with a 400 naming it."""
    require(request.user, Capability.EDIT_CUSTOMERS)
    data = payload.model_dump()
    customer = Customer.objects.filter(pk=data.pop("customer")).first()
    if customer is None:
        raise _invalid("customer", _("There is no customer with this id."))
    fields = _subscription_fields(Subscription(customer=customer), data)
    subscription = _guarded(
        services.create_subscription,
        customer=customer,
        actor=_user(request),
        source="api",
        **fields,
    )
    return Status(201, get_object_or_404(_subscriptions(), pk=subscription.pk))


@router.get(
    "/subscriptions/{subscription_id}",
    response={200: SubscriptionOut, **ERRORS},
    tags=["subscriptions"],
    summary="One subscription",
)
def get_subscription(request: HttpRequest, subscription_id: int) -> Subscription:
    require(request.user, Capability.VIEW)
    return get_object_or_404(_subscriptions(), pk=subscription_id)


@router.patch(
    "/subscriptions/{subscription_id}",
    response={200: SubscriptionOut, **ERRORS},
    tags=["subscriptions"],
    summary="Change a subscription (the change is kept in its history)",
)
def update_subscription(
    request: HttpRequest, subscription_id: int, payload: SubscriptionPatch
) -> Subscription:
    require(request.user, Capability.EDIT_CUSTOMERS)
    subscription = get_object_or_404(_subscriptions(), pk=subscription_id)
    fields = _subscription_fields(subscription, payload.model_dump(exclude_unset=True))
    _guarded(
        services.update_subscription,
        subscription=subscription,
        actor=_user(request),
        source="api",
        **fields,
    )
    return get_object_or_404(_subscriptions(), pk=subscription.pk)


@router.get(
    "/subscriptions/{subscription_id}/history",
    response={200: list[SubscriptionChangeOut], **ERRORS},
    tags=["subscriptions"],
    summary="What changed in a subscription, newest first",
)
@paginate(Pagination)
def subscription_history(
    request: HttpRequest, subscription_id: int
) -> QuerySet[SubscriptionChange]:
    require(request.user, Capability.VIEW)
    subscription = get_object_or_404(Subscription, pk=subscription_id)
    return subscription.changes.select_related("actor").order_by("-changed_at", "-id")


# --- Sales handoffs ------------------------------------------------------------------------------


class HandoffIn(InSchema):
    desired_outcomes: Text = ""
    pains: Text = ""
    stakeholders: Text = ""
    contract_notes: Text = ""
    risks: Text = ""
    handed_off_on: date | None = Field(None, description="Default: today.")


class HandoffOut(Schema):
    id: int
    customer: int = Field(alias="customer_id")
    desired_outcomes: str
    pains: str
    stakeholders: str
    contract_notes: str
    risks: str
    handed_off_by: str | None
    handed_off_on: date
    created_at: datetime

    @staticmethod
    def resolve_handed_off_by(handoff: SalesHandoff) -> str | None:
        return handoff.handed_off_by.username if handoff.handed_off_by else None


@router.get(
    "/customers/{customer_id}/handoffs",
    response={200: list[HandoffOut], **ERRORS},
    tags=["customers"],
    summary="What sales handed over for a customer, newest first",
)
@paginate(Pagination)
def list_handoffs(request: HttpRequest, customer_id: int) -> QuerySet[SalesHandoff]:
    require(request.user, Capability.VIEW)
    customer = get_object_or_404(Customer, pk=customer_id)
    return customer.handoffs.select_related("handed_off_by").order_by("-handed_off_on", "-id")


@router.post(
    "/customers/{customer_id}/handoffs",
    response={201: HandoffOut, **ERRORS},
    tags=["customers"],
    summary="Record a sales handoff (also noted on the timeline)",
)
def create_handoff(
    request: HttpRequest, customer_id: int, payload: HandoffIn
) -> Status[SalesHandoff]:
    require(request.user, Capability.EDIT_CUSTOMERS)
    customer = get_object_or_404(Customer, pk=customer_id)
    fields = payload.model_dump()
    texts = ("desired_outcomes", "pains", "stakeholders", "contract_notes", "risks")
    if not any(fields[name].strip() for name in texts):
        raise ValidationError(_("Write at least one of the handoff's fields."))
    if fields["handed_off_on"] is None:
        fields.pop("handed_off_on")
    handoff = _guarded(services.record_handoff, customer=customer, actor=_user(request), **fields)
    return Status(201, handoff)


# --- Timeline ------------------------------------------------------------------------------------


class TimelineEntryIn(InSchema):
    kind: ManualKind
    title: Name
    body: Text = ""
    occurred_at: When | None = Field(None, description="Default: now. Without an offset: local.")


class TimelineEntryOut(Schema):
    id: int
    customer: int = Field(alias="customer_id")
    kind: str
    kind_label: str
    occurred_at: datetime
    actor: str | None
    title: str
    body: str
    payload: dict[str, Any]
    created_at: datetime

    @staticmethod
    def resolve_actor(entry: TimelineEntry) -> str | None:
        return entry.actor.username if entry.actor else None


class TimelineFilters(Schema):
    kind: list[Annotated[str, StringConstraints(max_length=64)]] = Field(
        default_factory=list, description="Only these kinds (repeat the parameter for several)."
    )


@router.get(
    "/customers/{customer_id}/timeline",
    response={200: list[TimelineEntryOut], **ERRORS},
    tags=["timeline"],
    summary="A customer's timeline, newest first",
)
@paginate(Pagination)
def list_timeline(
    request: HttpRequest, customer_id: int, filters: Query[TimelineFilters]
) -> QuerySet[TimelineEntry]:
    require(request.user, Capability.VIEW)
    customer = get_object_or_404(Customer, pk=customer_id)
    return entries_for(customer_id=customer.pk, kinds=filters.kind or None).order_by(
        "-occurred_at", "-id"
    )


@router.post(
    "/customers/{customer_id}/timeline",
    response={201: TimelineEntryOut, **ERRORS},
    tags=["timeline"],
    summary="Add a note, meeting, call, training or review meeting",
)
def create_timeline_entry(
    request: HttpRequest, customer_id: int, payload: TimelineEntryIn
) -> Status[TimelineEntry]:
    require(request.user, Capability.WRITE_TIMELINE)
    customer = get_object_or_404(Customer, pk=customer_id)
    entry = services.add_timeline_entry(
        customer=customer, actor=_user(request), **payload.model_dump()
    )
    return Status(201, entry)
