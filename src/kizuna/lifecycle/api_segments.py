"""REST endpoints of segments (mounted under /api/v1 by kizuna.config.api).

A segment's rule is given either as text (``expression``) or as a JSON condition tree
(``rule``); both are checked, and a bad one is a 400 naming the field with what is wrong
where: ``{"detail": {"expression": ["position 20: unknown field 'emploees' …"]}}``.
Reading needs the view permission; writing and previewing need ``manage_lifecycle``.
"""

from datetime import date, datetime
from typing import Any

from django.db import IntegrityError
from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext as _
from ninja import Field, Router, Schema
from ninja.responses import Status
from pydantic import ConfigDict

from kizuna.core.access import require
from kizuna.core.models import User
from kizuna.core.roles import Capability
from kizuna.lifecycle import conditions, segments
from kizuna.lifecycle.models import Segment

router = Router(tags=["segments"])


class ErrorOut(Schema):
    detail: Any = Field(
        description="A message (403, 404) or {field: [messages]} naming the bad field (400)."
    )


ERRORS: dict[int, Any] = {400: ErrorOut, 403: ErrorOut, 404: ErrorOut}


class SegmentOut(Schema):
    key: str
    name: str
    description: str
    position: int = Field(description="Evaluation order: the first matching segment wins.")
    expression: str = Field(description="The rule as text.")
    rule: dict[str, Any] = Field(description="The rule as a condition tree.")
    is_active: bool
    members: int = Field(description="Customers whose current segment is this one.")
    updated_at: datetime


class SegmentSavedOut(SegmentOut):
    moved: int = Field(description="Customers whose segment changed when it was saved.")


class RuleIn(Schema):
    model_config = ConfigDict(extra="forbid")

    expression: str | None = Field(
        None, description='The rule as text, e.g. "arr >= 10000000 or employees >= 1000".'
    )
    rule: dict[str, Any] | None = Field(
        None,
        description=(
            'The rule as a condition tree, e.g. {"any": [{"field": "arr", "op": ">=", '
            '"value": 10000000}]}. Give either expression or rule.'
        ),
    )


class SegmentIn(RuleIn):
    name: str = Field(max_length=100)
    key: str = Field("", description="A slug; empty: made from the name. Fixed once created.")
    description: str = ""
    is_active: bool = True
    position: int | None = Field(None, ge=0, description="Empty: last.")


class SegmentUpdateIn(RuleIn):
    name: str = Field(max_length=100)
    description: str = ""
    is_active: bool = True
    position: int | None = Field(None, ge=0, description="Empty: unchanged.")


class PreviewIn(RuleIn):
    segment: str | None = Field(
        None, description="The key of the segment being edited (its place in the order)."
    )
    as_of: date | None = Field(None, description="Default: today.")


class PreviewCustomerOut(Schema):
    id: int
    name: str
    segment: str = Field(description="The customer's current segment key.")


class PreviewOut(Schema):
    count: int = Field(description="Customers matching the rule.")
    total: int = Field(description="All customers.")
    members: int = Field(description="Customers who would be in the segment (earlier win).")
    moving_in: int
    moving_out: int
    expression: str
    rule: dict[str, Any]
    sample: list[PreviewCustomerOut] = Field(description="Up to 20 matches by name.")
    moving_in_sample: list[PreviewCustomerOut]
    moving_out_sample: list[PreviewCustomerOut]


def _user(request: HttpRequest) -> User | None:
    return request.user if isinstance(request.user, User) else None


def _bad(field: str, message: str) -> Status[dict[str, Any]]:
    return Status(400, {"detail": {field: [message]}})


class _InvalidRuleError(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _expression(payload: RuleIn) -> str:
    """The rule as text, from either form; raises ``_InvalidRuleError`` naming the field."""
    if payload.expression is not None and payload.rule is not None:
        raise _InvalidRuleError("rule", _("give either expression or rule, not both"))
    if payload.rule is not None:
        try:
            return conditions.to_expression(conditions.validate(payload.rule))
        except conditions.ConditionError as error:
            raise _InvalidRuleError("rule", str(error)) from None
    if payload.expression is None:
        raise _InvalidRuleError(
            "expression", _("a rule is needed: as text (expression) or as a tree (rule)")
        )
    try:
        conditions.parse(payload.expression)
    except conditions.ConditionError as error:
        raise _InvalidRuleError("expression", str(error)) from None
    return payload.expression


def _out(segment: Segment, members: int, **extra: Any) -> dict[str, Any]:
    return {
        "key": segment.key,
        "name": segment.name,
        "description": segment.description,
        "position": segment.position,
        "expression": segment.expression,
        "rule": segment.rule,
        "is_active": segment.is_active,
        "members": members,
        "updated_at": segment.updated_at,
        **extra,
    }


@router.get(
    "/segments",
    response={200: list[SegmentOut], 403: ErrorOut},
    summary="The segments in evaluation order, with their member counts",
)
def list_segments(request: HttpRequest) -> list[dict[str, Any]]:
    require(request.user, Capability.VIEW)
    counts = segments.segment_counts()
    return [
        _out(segment, counts.get(segment.key, 0))
        for segment in Segment.objects.order_by("position", "id")
    ]


def _customer(customer: Any) -> dict[str, Any]:
    return {"id": customer.pk, "name": customer.name, "segment": customer.segment}


# Declared before "/segments/{key}": the first route whose path matches wins.
@router.post(
    "/segments/preview",
    response={200: PreviewOut, **ERRORS},
    summary="What a rule would do: how many and which customers match, who moves in and out",
)
def preview_segment(request: HttpRequest, payload: PreviewIn) -> Status[dict[str, Any]]:
    require(request.user, Capability.MANAGE_LIFECYCLE)
    segment = None
    if payload.segment:
        segment = Segment.objects.filter(key=payload.segment).first()
        if segment is None:
            return _bad(
                "segment", _("no segment with the key “%(key)s”") % {"key": payload.segment}
            )
    try:
        expression = _expression(payload)
    except _InvalidRuleError as error:
        return _bad(error.field, error.message)
    result = segments.preview(expression, segment=segment, as_of=payload.as_of)
    if result.error:  # pragma: no cover - _expression parsed it already
        return _bad("expression", result.error)
    return Status(
        200,
        {
            "count": result.count,
            "total": result.total,
            "members": result.members,
            "moving_in": result.moving_in,
            "moving_out": result.moving_out,
            "expression": conditions.to_expression(result.tree),
            "rule": result.tree,
            "sample": [_customer(c) for c in result.sample],
            "moving_in_sample": [_customer(c) for c in result.moving_in_sample],
            "moving_out_sample": [_customer(c) for c in result.moving_out_sample],
        },
    )


@router.get("/segments/{key}", response={200: SegmentOut, **ERRORS}, summary="One segment")
def get_segment(request: HttpRequest, key: str) -> dict[str, Any]:
    require(request.user, Capability.VIEW)
    segment = get_object_or_404(Segment, key=key)
    return _out(segment, segments.segment_counts().get(segment.key, 0))


def _save(request: HttpRequest, payload: SegmentIn | SegmentUpdateIn, segment: Segment | None,
          status: int) -> Status[dict[str, Any]]:  # fmt: skip
    try:
        expression = _expression(payload)
        saved = segments.save_segment(
            name=payload.name,
            key=payload.key if isinstance(payload, SegmentIn) else "",
            description=payload.description,
            expression=expression,
            is_active=payload.is_active,
            position=payload.position,
            segment=segment,
            actor=_user(request),
        )
    except _InvalidRuleError as error:
        return _bad(error.field, error.message)
    except segments.SegmentError as error:
        return _bad(error.field, error.message)
    except IntegrityError:
        return _bad("key", _("a segment with this key was saved at the same time; try again"))
    members = segments.segment_counts().get(saved.segment.key, 0)
    return Status(status, _out(saved.segment, members, moved=saved.moved))


@router.post(
    "/segments",
    response={201: SegmentSavedOut, **ERRORS},
    summary="Create a segment (membership is re-evaluated at once)",
)
def create_segment(request: HttpRequest, payload: SegmentIn) -> Status[dict[str, Any]]:
    require(request.user, Capability.MANAGE_LIFECYCLE)
    return _save(request, payload, None, 201)


@router.put(
    "/segments/{key}",
    response={200: SegmentSavedOut, **ERRORS},
    summary="Replace a segment's name, rule, description and state (its key stays)",
)
def update_segment(
    request: HttpRequest, key: str, payload: SegmentUpdateIn
) -> Status[dict[str, Any]]:
    require(request.user, Capability.MANAGE_LIFECYCLE)
    segment = get_object_or_404(Segment, key=key)
    return _save(request, payload, segment, 200)


class DeletedOut(Schema):
    key: str
    moved: int = Field(description="Customers whose segment changed.")


@router.delete(
    "/segments/{key}",
    response={200: DeletedOut, **ERRORS},
    summary="Delete a segment; its members move to their next matching segment or none",
)
def delete_segment(request: HttpRequest, key: str) -> dict[str, Any]:
    require(request.user, Capability.MANAGE_LIFECYCLE)
    segment = get_object_or_404(Segment, key=key)
    moved = segments.delete_segment(key=segment.key, actor=_user(request))
    return {"key": key, "moved": moved}
