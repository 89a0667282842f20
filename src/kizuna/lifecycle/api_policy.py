"""REST endpoints of touch models and stages (mounted under /api/v1 by kizuna.config.api).

The touch-model policy grid and the stage settings (read: any user; write: the
``manage_lifecycle`` permission), a lifecycle run, and per customer: the current segment,
stage and touch model with their history, a manual stage move and the touch-model override
(``edit_customers``). Doors only: services validate and raise ``ValidationError`` naming
the field, which the API answers with a 400.
"""

from datetime import date, datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from django.utils import timezone
from ninja import Field, Router, Schema
from ninja.responses import Status
from pydantic import ConfigDict

from kizuna.core.access import require
from kizuna.core.models import User
from kizuna.core.roles import Capability
from kizuna.customers.models import Customer, LifecycleStage, TouchModel
from kizuna.lifecycle import jobs, stages, touch
from kizuna.lifecycle.models import LifecycleRun, LifecycleSettings, Segment

router = Router(tags=["lifecycle"])

STAGES_TEXT = ", ".join(LifecycleStage.values)
POLICY_STAGES_TEXT = ", ".join(touch.POLICY_STAGES)
TOUCH_TEXT = ", ".join(TouchModel.values)
# Settings fields as the API names them.
WEIGHT_FIELDS = {
    "high_touch_weight": "weights.high",
    "low_touch_weight": "weights.low",
    "tech_touch_weight": "weights.tech",
}


class InSchema(Schema):
    """Input: unknown fields are refused (a typo must not be silently ignored)."""

    model_config = ConfigDict(extra="forbid")


class ErrorOut(Schema):
    detail: Any = Field(
        description=(
            "A message (403, 404, 409); {field: [messages]} for rules checked by the service "
            "(400); a list of {loc, msg, type} naming each malformed field (422)."
        )
    )


ERRORS: dict[int, Any] = {400: ErrorOut, 403: ErrorOut, 404: ErrorOut}


def _user(request: HttpRequest) -> User | None:
    return request.user if isinstance(request.user, User) else None


# --- Touch-model policy -------------------------------------------------------------------------


class PolicyRow(Schema):
    segment: str = Field("", description='A segment key; "" = any segment.')
    stage: str = Field(description=f"One of {POLICY_STAGES_TEXT}.")
    touch_model: str = Field(description=f"One of {TOUCH_TEXT}.")


class PolicyRowIn(InSchema, PolicyRow):
    pass


class Weights(Schema):
    high: float = Field(description="Load points of a high-touch customer.")
    low: float
    tech: float


class WeightsIn(InSchema, Weights):
    pass


class SegmentOut(Schema):
    key: str
    name: str
    is_active: bool


class TouchPolicyOut(Schema):
    default_touch_model: str = Field(description="For customers no policy row applies to.")
    weights: Weights
    segments: list[SegmentOut] = Field(description="The grid's rows, besides any segment.")
    stages: list[str] = Field(description="The grid's columns.")
    rows: list[PolicyRow] = Field(description="The cells that have a touch model.")


class TouchPolicySavedOut(TouchPolicyOut):
    changed: int = Field(description="Customers whose touch model changed when re-applied.")


class TouchPolicyIn(InSchema):
    default_touch_model: str = Field(description=f"One of {TOUCH_TEXT}.")
    weights: WeightsIn
    rows: list[PolicyRowIn] = Field(
        description="The whole grid: cells left out have no row (the next rule applies)."
    )


def _policy_out() -> dict[str, Any]:
    grid = touch.policy_grid()
    return {
        "default_touch_model": grid.default_touch_model,
        "weights": {model: float(weight) for model, weight in grid.weights.items()},
        "segments": [
            {"key": key, "name": name, "is_active": active}
            for key, name, active in grid.segments
            if key
        ],
        "stages": list(grid.stages),
        "rows": [
            {"segment": segment, "stage": stage, "touch_model": model}
            for (segment, stage), model in sorted(grid.cells.items())
        ],
    }


@router.get(
    "/lifecycle/touch-policy",
    response={200: TouchPolicyOut, 403: ErrorOut},
    summary="The touch-model policy grid, the default touch model and the load weights",
)
def get_touch_policy(request: HttpRequest) -> dict[str, Any]:
    require(request.user, Capability.VIEW)
    return _policy_out()


@router.put(
    "/lifecycle/touch-policy",
    response={200: TouchPolicySavedOut, **ERRORS},
    summary="Replace the touch-model policy and re-apply it to every customer now",
)
def put_touch_policy(request: HttpRequest, payload: TouchPolicyIn) -> dict[str, Any]:
    require(request.user, Capability.MANAGE_LIFECYCLE)
    cells: dict[touch.Cell, str] = {}
    for index, row in enumerate(payload.rows):
        cell = (row.segment, row.stage)
        if cell in cells:
            raise ValidationError(
                {f"rows[{index}]": [f"{touch.cell_name(cell)} is given more than once"]}
            )
        cells[cell] = row.touch_model
        if not row.touch_model:
            raise ValidationError({f"rows[{index}].touch_model": [f"one of {TOUCH_TEXT}"]})
    with transaction.atomic():
        touch.save_policy(cells)
        try:
            touch.save_touch_settings(
                default_touch_model=payload.default_touch_model,
                high_touch_weight=payload.weights.high,
                low_touch_weight=payload.weights.low,
                tech_touch_weight=payload.weights.tech,
            )
        except ValidationError as error:
            renamed = {
                WEIGHT_FIELDS.get(field, field): messages
                for field, messages in error.message_dict.items()
            }
            raise ValidationError(renamed) from None
    changed = touch.apply_touch_models(timezone.localdate(), actor=_user(request))
    return {**_policy_out(), "changed": changed}


# --- Stage settings and the run ------------------------------------------------------------------


class RunOut(Schema):
    id: int
    as_of: date
    started_at: datetime
    finished_at: datetime | None
    counts: dict[str, int] = Field(
        description="Changes per step: segments, stages, touch_models, owners, handoffs, synced."
    )
    error: str


class StageSettingsIn(InSchema):
    adoption_entry: str = Field(
        description="Condition for onboarding → adoption (empty: only by hand)."
    )
    expansion_entry: str = Field(
        description="Condition for adoption → expansion (empty: only by hand)."
    )
    reactivated_days: int = Field(description="Days a reactivated customer stays reactivated.")
    automatic_stages: bool = Field(
        description="False: only churn and reactivation follow the contracts."
    )


class StageSettingsOut(Schema):
    adoption_entry: str
    expansion_entry: str
    reactivated_days: int
    automatic_stages: bool
    last_run: RunOut | None


class RunIn(InSchema):
    as_of: date | None = Field(None, description="Default: today.")


def _run_out(run: LifecycleRun) -> dict[str, Any]:
    return {
        "id": run.pk,
        "as_of": run.as_of,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "counts": run.counts,
        "error": run.error,
    }


def _settings_out(settings: LifecycleSettings) -> dict[str, Any]:
    run = jobs.last_run()
    return {
        "adoption_entry": settings.adoption_entry,
        "expansion_entry": settings.expansion_entry,
        "reactivated_days": settings.reactivated_days,
        "automatic_stages": settings.automatic_stages,
        "last_run": _run_out(run) if run else None,
    }


@router.get(
    "/lifecycle/settings",
    response={200: StageSettingsOut, 403: ErrorOut},
    summary="The stage entry criteria and the last lifecycle run",
)
def get_stage_settings(request: HttpRequest) -> dict[str, Any]:
    require(request.user, Capability.VIEW)
    return _settings_out(LifecycleSettings.load())


@router.put(
    "/lifecycle/settings",
    response={200: StageSettingsOut, **ERRORS},
    summary="Change the stage entry criteria (checked by the condition parser)",
)
def put_stage_settings(request: HttpRequest, payload: StageSettingsIn) -> dict[str, Any]:
    require(request.user, Capability.MANAGE_LIFECYCLE)
    return _settings_out(stages.save_stage_settings(**payload.model_dump()))


@router.post(
    "/lifecycle/run",
    response={200: RunOut, 409: ErrorOut, **ERRORS},
    summary="Run segments, stages, touch models and owner assignment now",
)
def post_run(request: HttpRequest, payload: RunIn | None = None) -> Status[dict[str, Any]]:
    require(request.user, Capability.MANAGE_LIFECYCLE)
    try:
        run = jobs.run_lifecycle(as_of=payload.as_of if payload else None)
    except jobs.LifecycleRunInProgressError as error:
        return Status(409, {"detail": str(error)})
    except stages.StageCriterionError as error:
        raise ValidationError({error.field: [str(error)]}) from None
    return Status(200, _run_out(run))


# --- One customer ----------------------------------------------------------------------------------


class OverrideOut(Schema):
    touch_model: str
    reason: str
    expires_on: date | None = Field(description="In force through this day; null: no expiry.")
    created_by: str | None
    created_at: datetime


class HistoryOut(Schema):
    dimension: str
    value: str
    value_label: str = Field(description="In the caller's language.")
    valid_from: date | None = Field(description="null: since the beginning of the history.")
    valid_to: date | None = Field(description="The first day of the next value; null: current.")
    source: str
    reason: str
    actor: str | None


class CustomerLifecycleOut(Schema):
    customer: int
    segment: str
    segment_name: str
    stage: str
    stage_since: date | None
    days_in_stage: int | None
    touch_model: str
    override: OverrideOut | None
    history: list[HistoryOut] = Field(description="Newest first, every dimension.")


class StageMoveIn(InSchema):
    stage: str = Field(description=f"One of {STAGES_TEXT}.")
    reason: str = Field(description="Required: why the customer moves by hand.")


class OverrideIn(InSchema):
    touch_model: str = Field(description=f"One of {TOUCH_TEXT}.")
    reason: str = Field(description="Required.")
    expires_on: date | None = Field(None, description="Optional last day of the override.")


def _customer_out(customer: Customer) -> dict[str, Any]:
    customer.refresh_from_db()
    today = timezone.localdate()
    since = stages.stage_since(customer.pk)
    override = touch.active_override(customer.pk)
    segment_name = (
        Segment.objects.filter(key=customer.segment).values_list("name", flat=True).first()
        if customer.segment
        else None
    )
    return {
        "customer": customer.pk,
        "segment": customer.segment,
        "segment_name": segment_name or customer.segment,
        "stage": customer.lifecycle_stage,
        "stage_since": since,
        "days_in_stage": (today - since).days if since else None,
        "touch_model": customer.touch_model,
        "override": (
            {
                "touch_model": override.touch_model,
                "reason": override.reason,
                "expires_on": override.expires_on,
                "created_by": override.created_by.username if override.created_by else None,
                "created_at": override.created_at,
            }
            if override
            else None
        ),
        "history": [
            {
                "dimension": item.row.dimension,
                "value": item.row.value,
                "value_label": item.value_label,
                "valid_from": item.row.valid_from,
                "valid_to": item.row.valid_to,
                "source": item.row.source,
                "reason": item.row.reason,
                "actor": item.row.actor.username if item.row.actor else None,
            }
            for item in stages.lifecycle_history(customer.pk)
        ],
    }


@router.get(
    "/customers/{customer_id}/lifecycle",
    response={200: CustomerLifecycleOut, 403: ErrorOut, 404: ErrorOut},
    summary="A customer's segment, stage and touch model (with override) and their history",
)
def customer_lifecycle(request: HttpRequest, customer_id: int) -> dict[str, Any]:
    require(request.user, Capability.VIEW)
    return _customer_out(get_object_or_404(Customer, pk=customer_id))


@router.post(
    "/customers/{customer_id}/stage",
    response={200: CustomerLifecycleOut, **ERRORS},
    summary="Move a customer's lifecycle stage by hand, with a reason",
)
def move_customer_stage(
    request: HttpRequest, customer_id: int, payload: StageMoveIn
) -> dict[str, Any]:
    require(request.user, Capability.EDIT_CUSTOMERS)
    customer = get_object_or_404(Customer, pk=customer_id)
    stages.move_stage(
        customer=customer, stage=payload.stage, reason=payload.reason, actor=_user(request)
    )
    return _customer_out(customer)


@router.post(
    "/customers/{customer_id}/touch-override",
    response={201: CustomerLifecycleOut, **ERRORS},
    summary="Override a customer's touch model (replaces an override in force; applies now)",
)
def set_touch_override(
    request: HttpRequest, customer_id: int, payload: OverrideIn
) -> Status[dict[str, Any]]:
    require(request.user, Capability.EDIT_CUSTOMERS)
    customer = get_object_or_404(Customer, pk=customer_id)
    touch.set_override(customer=customer, actor=_user(request), **payload.model_dump())
    return Status(201, _customer_out(customer))


@router.delete(
    "/customers/{customer_id}/touch-override",
    response={200: CustomerLifecycleOut, **ERRORS},
    summary="End a customer's touch-model override; the policy applies again now",
)
def end_touch_override(request: HttpRequest, customer_id: int) -> Status[dict[str, Any]]:
    require(request.user, Capability.EDIT_CUSTOMERS)
    customer = get_object_or_404(Customer, pk=customer_id)
    if not touch.end_override(customer=customer, actor=_user(request)):
        return Status(404, {"detail": "the customer has no touch-model override in force"})
    return Status(200, _customer_out(customer))
