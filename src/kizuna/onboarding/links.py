"""Shareable links to a plan's customer page: signed, expiring, revocable.

A token is ``django.core.signing.dumps({"link": id, "plan": id})`` with its own salt, so a token
made for anything else in Kizuna (or edited by hand) never verifies here. The signature only
proves Kizuna issued the token; whether it still opens anything is decided by the ``PlanLink``
row: its plan must be the plan named in the token (a token never opens another customer's
plan), it must not be revoked, and it must not have expired. Revoking or expiring a link is
therefore immediate and needs no key rotation.
"""

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from kizuna.core import timeline
from kizuna.core.models import User
from kizuna.onboarding.models import (
    CompletedVia,
    MilestoneStatus,
    OnboardingPlan,
    OnboardingSettings,
    OwnerSide,
    PlanLink,
    PlanMilestone,
    Resource,
    SuccessGoal,
)
from kizuna.onboarding.plans import complete_milestone
from kizuna.onboarding.selectors import group_by_phase
from kizuna.onboarding.status import plan_progress

SALT = "kizuna.onboarding.plan-link"
MAX_LINK_DAYS = 366
CONTACT_NAME_MAX = 200  # PlanLink.contact_name's max_length
# Timeline kinds of this module (open-ended dotted kinds, see core.models.TimelineEntry).
LINK_SHARED = "onboarding.link_shared"
LINK_REVOKED = "onboarding.link_revoked"


class LinkErrorReason(StrEnum):
    BAD_SIGNATURE = "bad_signature"
    UNKNOWN = "unknown"
    REVOKED = "revoked"
    EXPIRED = "expired"


# Not found for what Kizuna never issued (or no longer knows); gone for what it withdrew.
_STATUS = {
    LinkErrorReason.BAD_SIGNATURE: 404,
    LinkErrorReason.UNKNOWN: 404,
    LinkErrorReason.REVOKED: 410,
    LinkErrorReason.EXPIRED: 410,
}


class LinkError(Exception):
    """A token that opens no plan page; ``reason`` says why and ``status`` is the HTTP answer."""

    def __init__(self, reason: LinkErrorReason) -> None:
        super().__init__(str(reason))
        self.reason = reason

    @property
    def status(self) -> int:
        return _STATUS[self.reason]


class LinkState(StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"


def link_state(link: PlanLink, *, now: datetime | None = None) -> LinkState:
    """Whether the link opens its page now, and if not, why."""
    if link.revoked_at is not None or link.plan.cancelled_at is not None:
        return LinkState.REVOKED
    if link.expires_at <= (now or timezone.now()):
        return LinkState.EXPIRED
    return LinkState.ACTIVE


def link_token(link: PlanLink) -> str:
    """A token that opens ``link``'s page (any number may be issued; the row decides validity)."""
    return signing.dumps({"link": link.pk, "plan": link.plan_id}, salt=SALT)


def _days(days: int | None) -> int:
    if days is None:
        return OnboardingSettings.load().link_days
    if not 1 <= days <= MAX_LINK_DAYS:
        raise ValidationError(
            {"days": _("A link must be valid for 1 to %(max)d days.") % {"max": MAX_LINK_DAYS}}
        )
    return days


@transaction.atomic
def create_link(
    plan: OnboardingPlan,
    *,
    language: str,
    contact_name: str,
    actor: User | None,
    days: int | None = None,
) -> tuple[PlanLink, str]:
    """Create a link to ``plan``'s customer page and return it with the token for its URL.

    The page is shown in ``language``; the link expires after ``days`` (default: the onboarding
    settings' ``link_days``). Raises ValidationError naming the field for a language Kizuna does
    not speak, a period outside 1–366 days, or a cancelled plan.
    """
    if language not in dict(settings.LANGUAGES):
        raise ValidationError({"language": _("Choose Japanese or English.")})
    if plan.cancelled_at is not None:
        raise ValidationError(_("The plan was cancelled: it cannot be shared any more."))
    contact_name = contact_name.strip()
    if len(contact_name) > CONTACT_NAME_MAX:
        raise ValidationError({"contact_name": _("The name is too long (200 characters at most).")})
    now = timezone.now()
    link = PlanLink.objects.create(
        plan=plan,
        language=language,
        contact_name=contact_name,
        expires_at=now + timedelta(days=_days(days)),
        created_at=now,
        created_by=actor,
    )
    timeline.record_after_commit(
        customer_id=plan.customer_id,
        kind=LINK_SHARED,
        title=_("Plan page shared with %(name)s") % {"name": contact_name or _("the customer")},
        actor=actor,
        payload={"plan_id": plan.pk, "link_id": link.pk, "language": language},
    )
    return link, link_token(link)


def _payload_ids(payload: Any) -> tuple[int, int]:
    if not isinstance(payload, dict):
        raise LinkError(LinkErrorReason.BAD_SIGNATURE)
    link_id, plan_id = payload.get("link"), payload.get("plan")
    if type(link_id) is not int or type(plan_id) is not int:
        raise LinkError(LinkErrorReason.BAD_SIGNATURE)
    return link_id, plan_id


def resolve_token(token: str, *, now: datetime | None = None) -> PlanLink:
    """The link a token opens, with its plan and customer loaded.

    Raises LinkError: ``bad_signature`` (not issued by Kizuna for a plan link, or altered),
    ``unknown`` (no such link for the plan named in the token), ``revoked`` (revoked, or the plan
    was cancelled) or ``expired``.
    """
    try:
        payload = signing.loads(token, salt=SALT)
    except (signing.BadSignature, ValueError, UnicodeError):
        raise LinkError(LinkErrorReason.BAD_SIGNATURE) from None
    link_id, plan_id = _payload_ids(payload)
    link = (
        PlanLink.objects.select_related("plan__customer", "plan__version__program")
        .filter(pk=link_id, plan_id=plan_id)
        .first()
    )
    if link is None:
        raise LinkError(LinkErrorReason.UNKNOWN)
    state = link_state(link, now=now)
    if state is LinkState.REVOKED:
        raise LinkError(LinkErrorReason.REVOKED)
    if state is LinkState.EXPIRED:
        raise LinkError(LinkErrorReason.EXPIRED)
    return link


def mark_opened(link: PlanLink, *, now: datetime | None = None) -> None:
    """Remember when the customer last opened the page (one UPDATE, no other field touched)."""
    link.last_opened_at = now or timezone.now()
    PlanLink.objects.filter(pk=link.pk).update(last_opened_at=link.last_opened_at)


@transaction.atomic
def revoke_link(link: PlanLink, *, actor: User | None) -> PlanLink:
    """Revoke the link at once (its tokens answer 410 Gone); revoking twice changes nothing."""
    now = timezone.now()
    if PlanLink.objects.filter(pk=link.pk, revoked_at__isnull=True).update(revoked_at=now):
        link.revoked_at = now
        timeline.record_after_commit(
            customer_id=link.plan.customer_id,
            kind=LINK_REVOKED,
            title=_("Plan page link revoked (%(name)s)")
            % {"name": link.contact_name or _("the customer")},
            actor=actor,
            payload={"plan_id": link.plan_id, "link_id": link.pk},
        )
    else:
        link.refresh_from_db(fields=["revoked_at"])
    return link


@dataclass(frozen=True)
class LinkRow:
    """A link as the staff panel lists it."""

    link: PlanLink
    state: LinkState


def links_for_plan(plan: OnboardingPlan) -> list[LinkRow]:
    """The plan's links, newest first, each with its state (one query)."""
    now = timezone.now()
    links = PlanLink.objects.filter(plan=plan).select_related("plan", "created_by")
    return [LinkRow(link=link, state=link_state(link, now=now)) for link in links]


# --- The customer's page -------------------------------------------------------------------------

DONE_STATUSES = (MilestoneStatus.DONE, MilestoneStatus.SKIPPED)
TICKABLE_STATUSES = (MilestoneStatus.NOT_STARTED, MilestoneStatus.IN_PROGRESS)


@dataclass(frozen=True)
class CustomerStep:
    """A milestone as the customer sees it: no notes, no reasons, no staff names."""

    id: int
    name: str
    description: str
    owner_side: str
    required: bool
    due_date: date
    status: str
    completed_on: date | None
    overdue: bool
    can_tick: bool
    resources: tuple[Resource, ...]


@dataclass(frozen=True)
class CustomerPhase:
    """A phase: ``state`` done, current or later; later phases show their name only."""

    name: str
    state: str
    steps: tuple[CustomerStep, ...]
    done: int
    total: int


@dataclass(frozen=True)
class CustomerGoal:
    title: str
    due_date: date
    status: str
    status_label: str
    achieved_on: date | None
    checklist: tuple[tuple[str, bool], ...]


@dataclass(frozen=True)
class CustomerPage:
    """Everything the customer's plan page shows, and nothing staff-only."""

    customer_name: str
    csm_name: str
    start_date: date
    target_date: date
    completed_on: date | None
    required_done: int
    required_total: int
    percent: int
    current_phase: str
    phases: tuple[CustomerPhase, ...]
    next_steps: tuple[CustomerStep, ...]
    completed: tuple[CustomerStep, ...]
    goals: tuple[CustomerGoal, ...]


def _dependencies_met(pm: PlanMilestone, status_by_template: dict[int, str]) -> bool:
    """Every milestone it depends on is done or skipped (one missing from the plan counts as met)."""
    return all(
        status_by_template.get(dependency.pk, MilestoneStatus.DONE) in DONE_STATUSES
        for dependency in pm.milestone.depends_on.all()
    )


def _resources(pm: PlanMilestone, language: str) -> tuple[Resource, ...]:
    """The milestone's resources in the page's language (or for every language); all of them
    when none is in that language, since help in another language beats none."""
    resources = list(pm.milestone.resources.all())
    fitting = [resource for resource in resources if resource.language in ("", language)]
    return tuple(fitting or resources)


def customer_page(
    plan: OnboardingPlan, *, language: str, today: date | None = None
) -> CustomerPage:
    """The customer's view of ``plan`` in a handful of queries.

    Progress, the current phase and the next actions come from ``status.plan_progress``, as
    the staff page shows them. Only next actions are shown prominently, with their resources in
    ``language`` (staged guidance); the current phase lists its other milestones by name, later
    phases show their names only. A step can be ticked off when the customer owns it, it is not
    started or in progress, and every milestone it depends on is done or skipped.
    """
    today = today or timezone.localdate()
    progress = plan_progress(plan, as_of=today)
    current_id = progress.current_phase.pk if progress.current_phase is not None else None
    milestones = list(progress.milestones)  # dependencies and resources are prefetched
    status_by_template = {pm.milestone_id: pm.status for pm in milestones}
    next_ids = {pm.pk for pm in progress.next_actions}

    def step(pm: PlanMilestone) -> CustomerStep:
        template = pm.milestone
        return CustomerStep(
            id=pm.pk,
            name=template.name,
            description=template.description,
            owner_side=template.owner_side,
            required=template.required,
            due_date=pm.due_date,
            status=pm.status,
            completed_on=pm.completed_on,
            overdue=pm.status not in DONE_STATUSES and pm.due_date < today,
            can_tick=(
                template.owner_side == OwnerSide.CUSTOMER
                and pm.status in TICKABLE_STATUSES
                and _dependencies_met(pm, status_by_template)
            ),
            resources=_resources(pm, language) if pm.pk in next_ids else (),
        )

    steps = {pm.pk: step(pm) for pm in milestones}
    next_steps = [steps[pm.pk] for pm in progress.next_actions if pm.pk in steps]
    phases = [
        CustomerPhase(
            name=group.phase.name,
            state=group.state,
            steps=tuple(steps[pm.pk] for pm in group.milestones) if group.state != "later" else (),
            done=group.done,
            total=len(group.milestones),
        )
        for group in group_by_phase(milestones, current_id)
    ]
    completed = sorted(
        (steps[pm.pk] for pm in milestones if pm.status == MilestoneStatus.DONE),
        key=lambda s: (s.completed_on or today, s.id),
    )
    owner = plan.customer.onboarding_owner
    goals = (
        SuccessGoal.objects.filter(customer_id=plan.customer_id)
        .filter(Q(plan=plan) | Q(plan__isnull=True))
        .order_by("position", "created_at", "id")
    )
    return CustomerPage(
        customer_name=plan.customer.name,
        csm_name=owner.display_name if owner is not None else "",
        start_date=plan.start_date,
        target_date=plan.target_date,
        completed_on=plan.completed_on,
        required_done=progress.required_done,
        required_total=progress.required_total,
        percent=progress.percent,
        current_phase=progress.current_phase.name if progress.current_phase is not None else "",
        phases=tuple(phases),
        next_steps=tuple(next_steps),
        completed=tuple(completed),
        goals=tuple(
            CustomerGoal(
                title=goal.title,
                due_date=goal.due_date,
                status=goal.status,
                status_label=goal.get_status_display(),
                achieved_on=goal.achieved_on,
                checklist=tuple(_checklist(goal.checklist)),
            )
            for goal in goals
        ),
    )


def _checklist(items: Any) -> list[tuple[str, bool]]:
    if not isinstance(items, list):
        return []
    return [
        (str(item.get("text", "")), bool(item.get("done")))
        for item in items
        if isinstance(item, dict) and item.get("text")
    ]


class TickErrorReason(StrEnum):
    NOT_IN_PLAN = "not_in_plan"
    NOT_CUSTOMER_OWNED = "not_customer_owned"
    NOT_READY = "not_ready"


_TICK_STATUS = {
    TickErrorReason.NOT_IN_PLAN: 404,
    TickErrorReason.NOT_CUSTOMER_OWNED: 403,
    TickErrorReason.NOT_READY: 409,
}


class TickError(Exception):
    """A milestone the customer may not tick off through this link; ``status`` is the answer."""

    def __init__(self, reason: TickErrorReason) -> None:
        super().__init__(str(reason))
        self.reason = reason

    @property
    def status(self) -> int:
        return _TICK_STATUS[self.reason]


@transaction.atomic
def tick_milestone(link: PlanLink, milestone_id: int) -> PlanMilestone:
    """Complete a customer-owned milestone of the link's plan from the customer's page.

    Raises TickError: ``not_in_plan`` (no such milestone in *this* plan: another plan's
    milestone is never reachable), ``not_customer_owned`` (the CSM's to complete) or
    ``not_ready`` (blocked, skipped or waiting for a milestone it depends on). Ticking a
    milestone that is already done changes nothing.
    """
    pm = (
        PlanMilestone.objects.select_for_update()
        .select_related("milestone", "plan")
        .filter(pk=milestone_id, plan_id=link.plan_id)
        .first()
    )
    if pm is None:
        raise TickError(TickErrorReason.NOT_IN_PLAN)
    if pm.milestone.owner_side != OwnerSide.CUSTOMER:
        raise TickError(TickErrorReason.NOT_CUSTOMER_OWNED)
    if pm.status == MilestoneStatus.DONE:
        return pm
    statuses = dict(
        PlanMilestone.objects.filter(plan_id=link.plan_id).values_list("milestone_id", "status")
    )
    if pm.status not in TICKABLE_STATUSES or not _dependencies_met(pm, statuses):
        raise TickError(TickErrorReason.NOT_READY)
    try:
        return complete_milestone(pm, via=CompletedVia.CUSTOMER)
    except ValidationError:
        raise TickError(TickErrorReason.NOT_READY) from None
