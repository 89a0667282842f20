"""REST endpoints of ownership (mounted under /api/v1): portfolio, team load, handoffs, book
reassignment and assignment runs.

Doors only: check the caller's capability, resolve usernames and ids, call one service or
selector, shape the answer. Bad values (an unknown username or role, a handoff that was
already acknowledged) are a 400 naming the field; a missing capability is a 403.
"""

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.translation import gettext as _
from ninja import Field, Query, Router, Schema
from ninja.responses import Status

from kizuna.core.access import require
from kizuna.core.models import User
from kizuna.core.roles import Capability
from kizuna.customers.models import Customer
from kizuna.lifecycle import assignment, handoffs
from kizuna.lifecycle.models import HandoffStatus, RoleHandoff
from kizuna.lifecycle.portfolio import PORTFOLIO_SORTS, current_role, portfolio, team_overview

router = Router(tags=["owners"])

MAX_LIMIT = 500


class DetailOut(Schema):
    detail: Any


# --- Shapes ------------------------------------------------------------------------------------


class MatrixRowOut(Schema):
    stage: str
    counts: dict[str, int] = Field(description="Customers per touch model.")
    total: int


class PortfolioCustomerOut(Schema):
    id: int
    name: str
    stage: str
    touch_model: str
    segment: str
    arr: Decimal = Field(description="12 × MRR of the subscriptions in service today.")
    renewal_date: date | None = Field(description="Earliest end of a subscription in service.")
    pending_handoffs: int


class PortfolioOut(Schema):
    user: str
    customers_count: int
    arr: Decimal
    load: Decimal
    capacity: Decimal | None
    matrix: list[MatrixRowOut]
    customers: list[PortfolioCustomerOut]
    handoffs_waiting: int


class PortfolioQuery(Schema):
    user: str | None = Field(None, description="Username; default: the caller.")
    sort: str = Field("renewal", description="name, arr or renewal; '-' reverses.")
    limit: int = Field(100, ge=1, le=MAX_LIMIT)
    offset: int = Field(0, ge=0, le=2_000_000_000)


class CsmLoadOut(Schema):
    username: str
    name: str
    team: str
    customers: dict[str, int] = Field(description="Customers owned in their current role.")
    load: Decimal
    capacity: Decimal | None
    percent: int | None = Field(description="Load as a percentage of capacity.")
    over_capacity: bool
    accepting: bool


class UnownedOut(Schema):
    id: int
    name: str
    stage: str
    role: str | None


class HandoffOut(Schema):
    id: int
    customer: int
    customer_name: str
    from_role: str
    to_role: str
    from_user: str | None
    to_user: str | None
    reason: str
    status: str
    goals_achieved: str
    open_issues: str
    stakeholders: str
    risks: str
    notes: str
    created_at: datetime
    created_by: str | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    acknowledgement: str
    age_days: int


class TeamOut(Schema):
    csms: list[CsmLoadOut]
    unowned_count: int
    unowned: list[UnownedOut] = Field(description="The oldest 100.")
    waiting: list[HandoffOut] = Field(description="Pending handoffs, oldest first.")


class HandoffQuery(Schema):
    status: str | None = Field(None, description="pending or acknowledged.")
    to: str | None = Field(None, description="Receiver's username, or 'me'.")
    sender: str | None = Field(None, alias="from", description="Sender's username, or 'me'.")
    customer: int | None = None
    limit: int = Field(100, ge=1, le=MAX_LIMIT)
    offset: int = Field(0, ge=0, le=2_000_000_000)


class HandoffListOut(Schema):
    count: int
    items: list[HandoffOut]


class HandoffIn(Schema):
    customer: int = Field(ge=1, le=2**63 - 1, description="The customer's id.")
    from_role: str
    to_role: str
    to_user: str | None = Field(None, description="Username; default: the owner of to_role.")
    goals_achieved: str = ""
    open_issues: str = ""
    stakeholders: str = ""
    risks: str = ""
    notes: str = ""


class HandoffPatch(Schema):
    goals_achieved: str | None = None
    open_issues: str | None = None
    stakeholders: str | None = None
    risks: str | None = None
    notes: str | None = None


class AcknowledgeIn(Schema):
    reply: str = ""


class ReassignIn(Schema):
    from_user: str
    to_user: str | None = Field(None, description="Username; null: by the assignment rules.")
    role: str | None = Field(None, description="onboarding, adoption or expansion; null: all.")
    note: str = ""


class ReassignOut(Schema):
    moved: int
    unassigned: int
    handoffs: int
    over_capacity: bool


class AssignIn(Schema):
    as_of: date | None = Field(None, description="Default: today.")


class AssignOut(Schema):
    assigned: int
    unassigned: int


# --- Helpers -----------------------------------------------------------------------------------


def _caller(request: HttpRequest) -> User:
    user = request.user
    if not isinstance(user, User):
        raise PermissionDenied("authentication required")
    return user


def _user_named(field: str, username: str | None, caller: User) -> User | None:
    if username is None:
        return None
    if username == "me":
        return caller
    user = User.objects.filter(username=username).first()
    if user is None:
        raise ValidationError({field: _("No user named “%(name)s”.") % {"name": username[:150]}})
    return user


def _username(user: User | None) -> str | None:
    return user.username if user else None


def _handoff_out(handoff: RoleHandoff, today: date | None = None) -> dict[str, Any]:
    return {
        "id": handoff.pk,
        "customer": handoff.customer_id,
        "customer_name": handoff.customer.name,
        "from_role": handoff.from_role,
        "to_role": handoff.to_role,
        "from_user": _username(handoff.from_user),
        "to_user": _username(handoff.to_user),
        "reason": handoff.reason,
        "status": handoff.status,
        "goals_achieved": handoff.goals_achieved,
        "open_issues": handoff.open_issues,
        "stakeholders": handoff.stakeholders,
        "risks": handoff.risks,
        "notes": handoff.notes,
        "created_at": handoff.created_at,
        "created_by": _username(handoff.created_by),
        "acknowledged_at": handoff.acknowledged_at,
        "acknowledged_by": _username(handoff.acknowledged_by),
        "acknowledgement": handoff.acknowledgement,
        "age_days": handoffs.age_in_days(handoff, today),
    }


def _handoffs() -> Any:
    return RoleHandoff.objects.select_related(
        "customer", "from_user", "to_user", "created_by", "acknowledged_by"
    )


def _status(value: str | None) -> str | None:
    if value and value not in HandoffStatus.values:
        raise ValidationError(
            {"status": _("Choose one of: %(values)s.") % {"values": ", ".join(HandoffStatus)}}
        )
    return value or None


# --- Endpoints ---------------------------------------------------------------------------------


@router.get(
    "/lifecycle/portfolio",
    response={200: PortfolioOut, 400: DetailOut, 403: DetailOut},
    summary="A CSM's portfolio: customers by stage and touch model, ARR, renewals, handoffs",
)
def get_portfolio(request: HttpRequest, query: Query[PortfolioQuery]) -> dict[str, Any]:
    caller = _caller(request)
    require(caller, Capability.VIEW)
    owner = _user_named("user", query.user, caller) or caller
    if owner.pk != caller.pk:
        require(caller, Capability.ASSIGN_OWNERS)
    if query.sort not in PORTFOLIO_SORTS:
        raise ValidationError(
            {"sort": _("Choose one of: %(values)s.") % {"values": ", ".join(PORTFOLIO_SORTS)}}
        )
    book = portfolio(owner, sort=query.sort)
    touch_values = [value for value, _label in book.touch_models]
    rows = book.customers[query.offset : query.offset + query.limit]
    return {
        "user": owner.username,
        "customers_count": book.total_customers,
        "arr": book.total_arr,
        "load": book.load.load if book.load else Decimal(0),
        "capacity": book.load.capacity if book.load else None,
        "matrix": [
            {
                "stage": row.stage,
                "counts": dict(zip(touch_values, row.counts, strict=True)),
                "total": row.total,
            }
            for row in book.matrix
        ],
        "customers": [
            {
                "id": customer.pk,
                "name": customer.name,
                "stage": customer.lifecycle_stage,
                "touch_model": customer.touch_model,
                "segment": customer.segment,
                "arr": customer.arr,  # type: ignore[attr-defined] # annotation
                "renewal_date": customer.renewal_date,  # type: ignore[attr-defined] # annotation
                "pending_handoffs": customer.pending_handoffs,  # type: ignore[attr-defined]
            }
            for customer in rows
        ],
        "handoffs_waiting": len(book.waiting),
    }


@router.get(
    "/lifecycle/team",
    response={200: TeamOut, 403: DetailOut},
    summary="Load per CSM against capacity, customers without an owner, handoffs waiting",
)
def get_team(request: HttpRequest) -> dict[str, Any]:
    require(_caller(request), Capability.ASSIGN_OWNERS)
    overview = team_overview()
    today = timezone.localdate()
    return {
        "csms": [
            {
                "username": row.user.username,
                "name": row.user.display_name,
                "team": row.team_name,
                "customers": dict(row.load.customers),
                "load": row.load.load,
                "capacity": row.load.capacity,
                "percent": row.percent,
                "over_capacity": row.load.over_capacity,
                "accepting": row.load.accepting,
            }
            for row in overview.csms
        ],
        "unowned_count": overview.unowned_count,
        "unowned": [
            {
                "id": customer.pk,
                "name": customer.name,
                "stage": customer.lifecycle_stage,
                "role": current_role(customer),
            }
            for customer in overview.unowned[:100]
        ],
        "waiting": [_handoff_out(item.handoff, today) for item in overview.waiting],
    }


@router.get(
    "/handoffs",
    response={200: HandoffListOut, 400: DetailOut, 403: DetailOut},
    summary="Handoffs, newest first, filtered by status, receiver, sender or customer",
)
def list_handoffs(request: HttpRequest, query: Query[HandoffQuery]) -> dict[str, Any]:
    caller = _caller(request)
    require(caller, Capability.VIEW)
    listed = _handoffs().order_by("-created_at", "-id")
    status = _status(query.status)
    if status:
        listed = listed.filter(status=status)
    receiver = _user_named("to", query.to, caller)
    if receiver:
        listed = listed.filter(to_user=receiver)
    sender = _user_named("from", query.sender, caller)
    if sender:
        listed = listed.filter(pk__in=handoffs.handoffs_for(sender, box="from").values("pk"))
    if query.customer is not None:
        listed = listed.filter(customer_id=query.customer)
    today = timezone.localdate()
    return {
        "count": listed.count(),
        "items": [
            _handoff_out(handoff, today)
            for handoff in listed[query.offset : query.offset + query.limit]
        ],
    }


@router.get(
    "/handoffs/{handoff_id}",
    response={200: HandoffOut, 403: DetailOut, 404: DetailOut},
    summary="One handoff with its note",
)
def get_handoff(request: HttpRequest, handoff_id: int) -> dict[str, Any]:
    require(_caller(request), Capability.VIEW)
    return _handoff_out(get_object_or_404(_handoffs(), pk=handoff_id))


@router.post(
    "/handoffs",
    response={201: HandoffOut, 400: DetailOut, 403: DetailOut},
    summary="Write a handoff for a customer (key contacts and sales goals pre-filled)",
    description=(
        "Role handoffs are created here; `POST /customers/{id}/handoffs` records what sales "
        "handed over."
    ),
)
def create_handoff(request: HttpRequest, payload: HandoffIn) -> Status[dict[str, Any]]:
    caller = _caller(request)
    require(caller, Capability.EDIT_CUSTOMERS)
    fields = payload.model_dump()
    customer = Customer.objects.filter(pk=fields.pop("customer")).first()
    if customer is None:
        raise ValidationError({"customer": _("No customer with this id.")})
    to_user = _user_named("to_user", fields.pop("to_user"), caller)
    handoff = handoffs.create_handoff(
        customer=customer,
        from_role=fields.pop("from_role"),
        to_role=fields.pop("to_role"),
        to_user=to_user,
        actor=caller,
        **fields,
    )
    return Status(201, _handoff_out(get_object_or_404(_handoffs(), pk=handoff.pk)))


@router.patch(
    "/handoffs/{handoff_id}",
    response={200: HandoffOut, 400: DetailOut, 403: DetailOut, 404: DetailOut},
    summary="Complete or correct the note (the sender or a manager, while pending)",
)
def patch_handoff(request: HttpRequest, handoff_id: int, payload: HandoffPatch) -> dict[str, Any]:
    caller = _caller(request)
    require(caller, Capability.VIEW)
    handoff = get_object_or_404(RoleHandoff, pk=handoff_id)
    fields = payload.model_dump(exclude_unset=True, exclude_none=True)
    handoffs.update_handoff(handoff=handoff, user=caller, **fields)
    return _handoff_out(get_object_or_404(_handoffs(), pk=handoff.pk))


@router.post(
    "/handoffs/{handoff_id}/acknowledge",
    response={200: HandoffOut, 400: DetailOut, 403: DetailOut, 404: DetailOut},
    summary="Acknowledge a handoff with a reply (the receiving owner or a manager)",
)
def acknowledge(request: HttpRequest, handoff_id: int, payload: AcknowledgeIn) -> dict[str, Any]:
    caller = _caller(request)
    require(caller, Capability.VIEW)
    handoff = get_object_or_404(RoleHandoff, pk=handoff_id)
    handoffs.acknowledge_handoff(handoff, caller, payload.reply)
    return _handoff_out(get_object_or_404(_handoffs(), pk=handoff.pk))


@router.post(
    "/lifecycle/reassign",
    response={200: ReassignOut, 400: DetailOut, 403: DetailOut},
    summary="Move a CSM's book to another CSM, or redistribute it by the assignment rules",
)
def reassign(request: HttpRequest, payload: ReassignIn) -> dict[str, Any]:
    caller = _caller(request)
    require(caller, Capability.ASSIGN_OWNERS)
    from_user = _user_named("from_user", payload.from_user, caller)
    assert from_user is not None
    to_user = _user_named("to_user", payload.to_user, caller)
    result = handoffs.reassign_book(
        from_user=from_user,
        to_user=to_user,
        role=payload.role or None,
        actor=caller,
        note=payload.note,
    )
    return {
        "moved": result.moved,
        "unassigned": result.unassigned,
        "handoffs": result.handoffs,
        "over_capacity": result.over_capacity,
    }


@router.post(
    "/lifecycle/assign",
    response={200: AssignOut, 403: DetailOut},
    summary="Give every customer without an owner for its current stage one, by the rules",
)
def assign(request: HttpRequest, payload: AssignIn) -> dict[str, int]:
    caller = _caller(request)
    require(caller, Capability.ASSIGN_OWNERS)
    result = assignment.assign_customers(as_of=payload.as_of or timezone.localdate(), actor=caller)
    return {"assigned": result.assigned, "unassigned": result.unassigned}
