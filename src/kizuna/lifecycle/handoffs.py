"""Handoffs between owners: the structured note a customer's context travels in.

A handoff opens when a customer moves to the next role (onboarding → adoption → expansion),
when its owner changes, or by hand. Kizuna pre-fills what it knows (key contacts, the goals
sales handed over); the sender completes it while it waits; the receiving owner acknowledges
it with a reply. Creation and acknowledgement go on the customer's timeline.
"""

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from kizuna.core import timeline
from kizuna.core.access import require
from kizuna.core.models import TimelineEntry, TimelineKind, User
from kizuna.core.roles import Capability
from kizuna.customers.models import Contact, ContactRole, Customer, SalesHandoff
from kizuna.lifecycle import assignment
from kizuna.lifecycle.history import record_changes
from kizuna.lifecycle.models import (
    OWNER_DIMENSIONS,
    OWNER_FIELDS,
    STAGE_ROLES,
    ChangeSource,
    HandoffReason,
    HandoffStatus,
    LifecycleSettings,
    OwnerRole,
    RoleHandoff,
)

NOTE_FIELDS = ("goals_achieved", "open_issues", "stakeholders", "risks", "notes")
KEY_CONTACT_ROLES = (ContactRole.DECISION_MAKER, ContactRole.CHAMPION, ContactRole.ADMIN)
# Role changes that carry a handoff: the next role in the customer's journey.
FORWARD = {(OwnerRole.ONBOARDING, OwnerRole.ADOPTION), (OwnerRole.ADOPTION, OwnerRole.EXPANSION)}
_CHUNK = 500


def _moment(on: date) -> datetime:
    if on == timezone.localdate():
        return timezone.now()
    return timezone.make_aware(datetime.combine(on, time(0, 0)))


def _role_label(role: str) -> str:
    return str(OwnerRole(role).label)


def _name(user: User | None) -> str:
    return user.display_name if user else _("nobody yet")


# --- Pre-filling -------------------------------------------------------------------------------


def _key_contacts(customer_ids: list[int], on: date) -> dict[int, str]:
    """Decision makers, champions and admins of each customer, one per line."""
    order: dict[str, int] = {role: position for position, role in enumerate(KEY_CONTACT_ROLES)}
    labels = dict(ContactRole.choices)
    lines: dict[int, list[tuple[int, str, str]]] = defaultdict(list)
    for start in range(0, len(customer_ids), _CHUNK):
        contacts = Contact.objects.filter(
            Q(ended_on__isnull=True) | Q(ended_on__gt=on),
            customer_id__in=customer_ids[start : start + _CHUNK],
            role__in=KEY_CONTACT_ROLES,
        ).order_by()
        for contact in contacts:
            text = f"{contact.name} — {labels[contact.role]}"
            if contact.job_title:
                text += f", {contact.job_title}"
            if contact.email:
                text += f" <{contact.email}>"
            lines[contact.customer_id].append((order[contact.role], contact.name, text))
    return {pk: "\n".join(text for *_key, text in sorted(rows)) for pk, rows in lines.items()}


def _sales_goals(customer_ids: list[int]) -> dict[int, str]:
    """The desired outcomes of each customer's latest sales handoff."""
    goals: dict[int, str] = {}
    for start in range(0, len(customer_ids), _CHUNK):
        rows = (
            SalesHandoff.objects.filter(customer_id__in=customer_ids[start : start + _CHUNK])
            .order_by("customer_id", "-handed_off_on", "-id")
            .values_list("customer_id", "desired_outcomes")
        )
        for customer_id, outcomes in rows:
            goals.setdefault(customer_id, outcomes)
    return goals


def prefill(customer_ids: list[int], *, on: date | None = None) -> dict[int, dict[str, str]]:
    """What Kizuna already knows for a handoff note of each customer (two queries per chunk)."""
    day = on or timezone.localdate()
    contacts = _key_contacts(customer_ids, day)
    goals = _sales_goals(customer_ids)
    return {
        pk: {"stakeholders": contacts.get(pk, ""), "goals_achieved": goals.get(pk, "")}
        for pk in customer_ids
    }


def _announce_created(handoffs: list[RoleHandoff], names: Mapping[int, User]) -> None:
    """One ``handoff.created`` timeline entry per handoff (bulk)."""

    def who(user_id: int | None) -> str:
        return _name(names.get(user_id)) if user_id else _("nobody yet")

    TimelineEntry.objects.bulk_create(
        [
            TimelineEntry(
                customer_id=handoff.customer_id,
                kind=TimelineKind.ROLE_HANDOFF_CREATED,
                occurred_at=handoff.created_at,
                actor_id=handoff.created_by_id,
                title=_("Handoff %(from_role)s → %(to_role)s: %(sender)s → %(receiver)s")
                % {
                    "from_role": _role_label(handoff.from_role),
                    "to_role": _role_label(handoff.to_role),
                    "sender": who(handoff.from_user_id),
                    "receiver": who(handoff.to_user_id),
                },
                body=handoff.notes,
                payload=_payload(handoff),
            )
            for handoff in handoffs
        ],
        batch_size=_CHUNK,
    )


def _payload(handoff: RoleHandoff) -> dict[str, Any]:
    return {
        "handoff": handoff.pk,
        "from_role": handoff.from_role,
        "to_role": handoff.to_role,
        "from_user": handoff.from_user_id,
        "to_user": handoff.to_user_id,
        "reason": handoff.reason,
    }


def _users(ids: Iterable[int | None]) -> dict[int, User]:
    wanted = {pk for pk in ids if pk}
    return {user.pk: user for user in User.objects.filter(pk__in=wanted)} if wanted else {}


def _owner_id(customer: Customer, role: str) -> int | None:
    value: int | None = getattr(customer, f"{OWNER_FIELDS[role]}_id")
    return value


# --- Stage changes -----------------------------------------------------------------------------


@transaction.atomic
def open_stage_handoffs(changes: list[tuple[int, str, str]], *, on: date) -> int:
    """Open a handoff for each ``(customer_id, from_stage, to_stage)`` that passes a customer
    to the next role (onboarding → adoption, adoption → expansion); returns how many opened.

    From the previous role's owner to the new role's owner (filled in later by assignment
    when the new role has no owner yet); pre-filled with the key contacts and the sales
    handoff's goals. A customer with a pending stage handoff to the same role gets no second.
    """
    wanted: dict[int, tuple[str, str]] = {}
    for customer_id, from_stage, to_stage in changes:
        from_role, to_role = STAGE_ROLES.get(from_stage), STAGE_ROLES.get(to_stage)
        if from_role and to_role and (from_role, to_role) in FORWARD:
            wanted[customer_id] = (from_role, to_role)
    if not wanted:
        return 0
    ids = sorted(wanted)
    existing: set[tuple[int, str]] = set()
    customers: dict[int, Customer] = {}
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        existing.update(
            RoleHandoff.objects.filter(
                customer_id__in=chunk,
                reason=HandoffReason.STAGE_CHANGE,
                status=HandoffStatus.PENDING,
            ).values_list("customer_id", "to_role")
        )
        customers.update(
            (customer.pk, customer)
            for customer in Customer.objects.filter(pk__in=chunk).only(
                "pk", *(f"{owner_field}_id" for owner_field in OWNER_FIELDS.values())
            )
        )
    ids = [pk for pk in ids if pk in customers and (pk, wanted[pk][1]) not in existing]
    known = prefill(ids, on=on)
    moment = _moment(on)
    handoffs = [
        RoleHandoff(
            customer_id=pk,
            from_role=wanted[pk][0],
            to_role=wanted[pk][1],
            from_user_id=_owner_id(customers[pk], wanted[pk][0]),
            to_user_id=_owner_id(customers[pk], wanted[pk][1]),
            reason=HandoffReason.STAGE_CHANGE,
            created_at=moment,
            **known[pk],
        )
        for pk in ids
    ]
    created = RoleHandoff.objects.bulk_create(handoffs, batch_size=_CHUNK)
    names = _users([h.from_user_id for h in created] + [h.to_user_id for h in created])
    _announce_created(created, names)
    return len(created)


# --- One handoff -------------------------------------------------------------------------------


def _check_role(field: str, role: str) -> str:
    if role not in OwnerRole.values:
        raise ValidationError(
            {field: _("Choose one of: %(roles)s.") % {"roles": ", ".join(OwnerRole.values)}}
        )
    return role


def _clean_note(fields: Mapping[str, Any]) -> dict[str, str]:
    unknown = sorted(set(fields) - set(NOTE_FIELDS))
    if unknown:
        raise ValidationError({unknown[0]: _("This field cannot be set on a handoff.")})
    cleaned: dict[str, str] = {}
    for name, value in fields.items():
        if not isinstance(value, str):
            raise ValidationError({name: _("Give text.")})
        if "\x00" in value:
            raise ValidationError({name: _("Text cannot contain NUL characters.")})
        cleaned[name] = value.strip()
    return cleaned


@transaction.atomic
def create_handoff(
    *,
    customer: Customer,
    from_role: str,
    to_role: str,
    actor: User,
    to_user: User | None = None,
    reason: str = HandoffReason.MANUAL,
    fill_in: bool = True,
    **note: str,
) -> RoleHandoff:
    """Write a handoff of ``customer`` from the owner of ``from_role`` to ``to_user`` (default:
    the owner of ``to_role``). Empty stakeholders and goals are pre-filled unless ``fill_in``
    is false. The actor needs EDIT_CUSTOMERS."""
    require(actor, Capability.EDIT_CUSTOMERS)
    _check_role("from_role", from_role)
    _check_role("to_role", to_role)
    if reason not in HandoffReason.values:
        raise ValidationError({"reason": _("Unknown reason.")})
    cleaned = _clean_note(note)
    if fill_in:
        known = prefill([customer.pk])[customer.pk]
        for name, value in known.items():
            if not cleaned.get(name):
                cleaned[name] = value
    handoff = RoleHandoff.objects.create(
        customer=customer,
        from_role=from_role,
        to_role=to_role,
        from_user_id=_owner_id(customer, from_role),
        to_user_id=to_user.pk if to_user else _owner_id(customer, to_role),
        reason=reason,
        created_by=actor,
        **cleaned,
    )
    users = _users([handoff.from_user_id, handoff.to_user_id])
    timeline.record(
        customer_id=customer.pk,
        kind=TimelineKind.ROLE_HANDOFF_CREATED,
        title=_("Handoff %(from_role)s → %(to_role)s: %(sender)s → %(receiver)s")
        % {
            "from_role": _role_label(from_role),
            "to_role": _role_label(to_role),
            "sender": _name(users.get(handoff.from_user_id or 0)),
            "receiver": _name(users.get(handoff.to_user_id or 0)),
        },
        body=handoff.notes,
        actor=actor,
        payload=_payload(handoff),
    )
    return handoff


def sender_id(handoff: RoleHandoff) -> int | None:
    """Who writes the note: the previous owner, or whoever opened it when there was none."""
    return handoff.from_user_id or handoff.created_by_id


def receiver_id(handoff: RoleHandoff) -> int | None:
    """Who acknowledges: the named receiver, else the customer's current owner of the role."""
    if handoff.to_user_id:
        return handoff.to_user_id
    return _owner_id(handoff.customer, handoff.to_role)


def _is_manager(user: User) -> bool:
    return user.can(Capability.ASSIGN_OWNERS)


def can_edit(handoff: RoleHandoff, user: User | Any) -> bool:
    """The sender or a manager, while the handoff waits for acknowledgement."""
    if not isinstance(user, User) or not user.is_active:
        return False
    if handoff.status != HandoffStatus.PENDING:
        return False
    return user.pk == sender_id(handoff) or _is_manager(user)


def can_acknowledge(handoff: RoleHandoff, user: User | Any) -> bool:
    """The receiving owner or a manager, while the handoff waits for acknowledgement."""
    if not isinstance(user, User) or not user.is_active:
        return False
    if handoff.status != HandoffStatus.PENDING:
        return False
    return user.pk == receiver_id(handoff) or _is_manager(user)


def _still_pending(handoff: RoleHandoff) -> None:
    if handoff.status != HandoffStatus.PENDING:
        raise ValidationError(
            {"status": _("This handoff was already acknowledged; it can no longer change.")}
        )


@transaction.atomic
def update_handoff(*, handoff: RoleHandoff, user: User, **note: str) -> RoleHandoff:
    """Change the note's fields; only the sender or a manager, and only while pending."""
    if not (isinstance(user, User) and user.is_active) or (
        user.pk != sender_id(handoff) and not _is_manager(user)
    ):
        raise PermissionDenied(_("Only the sender of the handoff or a manager can edit it."))
    handoff = RoleHandoff.objects.select_for_update().get(pk=handoff.pk)
    _still_pending(handoff)
    cleaned = _clean_note(note)
    for name, value in cleaned.items():
        setattr(handoff, name, value)
    if cleaned:
        handoff.save(update_fields=list(cleaned))
    return handoff


@transaction.atomic
def acknowledge_handoff(handoff: RoleHandoff, user: User, reply: str = "") -> RoleHandoff:
    """Mark the handoff read and accepted, with the receiver's reply; only the receiving owner
    or a manager. Writes ``handoff.acknowledged`` on the customer's timeline."""
    handoff = RoleHandoff.objects.select_for_update().select_related("customer").get(pk=handoff.pk)
    if not (isinstance(user, User) and user.is_active) or (
        user.pk != receiver_id(handoff) and not _is_manager(user)
    ):
        raise PermissionDenied(_("Only the receiving owner or a manager can acknowledge it."))
    _still_pending(handoff)
    reply = _clean_note({"notes": reply})["notes"]
    handoff.status = HandoffStatus.ACKNOWLEDGED
    handoff.acknowledged_at = timezone.now()
    handoff.acknowledged_by = user
    handoff.acknowledgement = reply
    if handoff.to_user_id is None:
        handoff.to_user = user
    handoff.save(
        update_fields=["status", "acknowledged_at", "acknowledged_by", "acknowledgement", "to_user"]
    )
    timeline.record(
        customer_id=handoff.customer_id,
        kind=TimelineKind.ROLE_HANDOFF_ACKNOWLEDGED,
        title=_("%(receiver)s acknowledged the handoff %(from_role)s → %(to_role)s")
        % {
            "receiver": user.display_name,
            "from_role": _role_label(handoff.from_role),
            "to_role": _role_label(handoff.to_role),
        },
        body=reply,
        actor=user,
        payload=_payload(handoff),
    )
    return handoff


# --- Owner changes -----------------------------------------------------------------------------


@transaction.atomic
def change_owner(
    *, customer: Customer, role: str, user: User | None, actor: User, note: str = ""
) -> RoleHandoff | None:
    """Set the owner of one role of one customer; when someone takes over, a reassignment
    handoff from the previous owner carries ``note``. Needs EDIT_CUSTOMERS."""
    require(actor, Capability.EDIT_CUSTOMERS)
    _check_role("role", role)
    if user is not None and not user.is_active:
        raise ValidationError({"user": _("This user is deactivated.")})
    note = _clean_note({"notes": note})["notes"]
    previous = _owner_id(customer, role)
    new = user.pk if user else None
    if previous == new:
        return None
    record_changes(
        dimension=OWNER_DIMENSIONS[role],
        values={customer.pk: str(new or "")},
        on=timezone.localdate(),
        source=ChangeSource.MANUAL,
        reason=note,
        actor=actor,
    )
    customer.refresh_from_db()
    if user is None:
        if previous:
            _retarget_pending({customer.pk: None}, role=role, from_user_id=previous)
        return None
    return _open_reassignments(
        [customer.pk], role=role, from_user_id=previous, actor=actor, note=note
    )[0]


def _current_owners(customer_ids: list[int], role: str) -> dict[int, int | None]:
    owner_field = OWNER_FIELDS[role]
    owners: dict[int, int | None] = {}
    for start in range(0, len(customer_ids), _CHUNK):
        owners.update(
            Customer.objects.filter(pk__in=customer_ids[start : start + _CHUNK]).values_list(
                "pk", f"{owner_field}_id"
            )
        )
    return owners


def _retarget_pending(owners: Mapping[int, int | None], *, role: str, from_user_id: int) -> None:
    """Pending handoffs to ``role`` still addressed to the previous owner go to the new one
    (or to nobody yet, for assignment to fill in)."""
    by_owner: dict[int | None, list[int]] = defaultdict(list)
    for customer_id, owner_id in owners.items():
        by_owner[owner_id].append(customer_id)
    for owner_id, customer_ids in by_owner.items():
        for start in range(0, len(customer_ids), _CHUNK):
            RoleHandoff.objects.filter(
                customer_id__in=customer_ids[start : start + _CHUNK],
                to_role=role,
                to_user_id=from_user_id,
                status=HandoffStatus.PENDING,
            ).update(to_user_id=owner_id)


def _open_reassignments(
    customer_ids: list[int], *, role: str, from_user_id: int | None, actor: User | None, note: str
) -> list[RoleHandoff]:
    """One reassignment handoff per customer, from ``from_user_id`` to the role's current owner
    (read after the change), pre-filled and carrying ``note``."""
    owners = _current_owners(customer_ids, role)
    if from_user_id:
        _retarget_pending(owners, role=role, from_user_id=from_user_id)
    known = prefill(customer_ids)
    now = timezone.now()
    handoffs = [
        RoleHandoff(
            customer_id=pk,
            from_role=role,
            to_role=role,
            from_user_id=from_user_id,
            to_user_id=owners.get(pk),
            reason=HandoffReason.REASSIGNMENT,
            notes=note,
            created_at=now,
            created_by=actor,
            **known[pk],
        )
        for pk in customer_ids
    ]
    created = RoleHandoff.objects.bulk_create(handoffs, batch_size=_CHUNK)
    names = _users([from_user_id, *(h.to_user_id for h in created)])
    _announce_created(created, names)
    return created


# --- Bulk reassignment -------------------------------------------------------------------------


@dataclass(frozen=True)
class ReassignResult:
    """What a book reassignment did: customers moved, left without an owner, handoffs opened."""

    moved: int
    unassigned: int
    handoffs: int
    over_capacity: bool = False


@transaction.atomic
def reassign_book(
    *,
    from_user: User,
    to_user: User | None,
    role: str | None,
    actor: User | None,
    note: str = "",
    on: date | None = None,
) -> ReassignResult:
    """Move ``from_user``'s book — the customers they own in their current role, or only those
    whose current role is ``role`` — to ``to_user``, or with ``to_user`` None redistribute
    them by the assignment rules (capacity respected; who fits nowhere is left unowned and
    shows on the team page). One reassignment handoff per customer carries ``note``."""
    if role is not None:
        _check_role("role", role)
    if to_user is not None:
        if to_user.pk == from_user.pk:
            raise ValidationError({"to_user": _("Choose a different CSM to move the book to.")})
        if not to_user.is_active:
            raise ValidationError({"to_user": _("This user is deactivated.")})
    note = _clean_note({"notes": note})["notes"]
    day = on or timezone.localdate()
    roles = [role] if role else list(OwnerRole)
    books = {
        r: Customer.objects.filter(
            lifecycle_stage__in=assignment.stages_of(r),
            **{f"{OWNER_FIELDS[r]}_id": from_user.pk},
        )
        for r in roles
    }
    reason = note or _("Book of %(name)s reassigned") % {"name": from_user.display_name}
    moved = unassigned = handoffs = 0
    over = False
    if to_user is not None:
        for r, customers in books.items():
            ids = sorted(customers.values_list("pk", flat=True))
            changed = record_changes(
                dimension=OWNER_DIMENSIONS[r],
                values={pk: str(to_user.pk) for pk in ids},
                on=day,
                source=ChangeSource.MANUAL,
                reason=reason,
                actor=actor,
            )
            moved += len(changed)
            handoffs += len(
                _open_reassignments(
                    changed, role=r, from_user_id=from_user.pk, actor=actor, note=note
                )
            )
        load = assignment.csm_loads().get(to_user.pk)
        over = bool(load and load.over_capacity)
        return ReassignResult(moved=moved, unassigned=0, handoffs=handoffs, over_capacity=over)
    settings = LifecycleSettings.load()
    loads = {pk: row.load for pk, row in assignment.csm_loads(settings).items()}
    loads.pop(from_user.pk, None)
    plan = assignment.plan_assignments(
        books, loads=loads, exclude={from_user.pk}, settings=settings, as_of=day
    )
    assignment.write_plan(plan, on=day, actor=actor, reason=reason)
    for r in roles:
        placed = sorted(plan.choices.get(r, {}))
        left = sorted(set(books[r].values_list("pk", flat=True)) - set(placed))
        if left:
            unassigned += len(
                record_changes(
                    dimension=OWNER_DIMENSIONS[r],
                    values=dict.fromkeys(left, ""),
                    on=day,
                    source=ChangeSource.MANUAL,
                    reason=reason,
                    actor=actor,
                )
            )
        moved += len(placed)
        handoffs += len(
            _open_reassignments(
                placed + left, role=r, from_user_id=from_user.pk, actor=actor, note=note
            )
        )
    return ReassignResult(moved=moved, unassigned=unassigned, handoffs=handoffs)


# --- Reads -------------------------------------------------------------------------------------


def handoffs_for(
    user: User | None = None, *, box: str = "to", status: str | None = None
) -> QuerySet[RoleHandoff]:
    """Handoffs addressed to ``user`` (``box="to"``) or sent by them (``"from"``), newest first."""
    handoffs = RoleHandoff.objects.select_related("customer", "from_user", "to_user")
    if user is not None:
        if box == "from":
            handoffs = handoffs.filter(
                Q(from_user=user) | Q(from_user__isnull=True, created_by=user)
            )
        else:
            handoffs = handoffs.filter(to_user=user)
    if status:
        handoffs = handoffs.filter(status=status)
    return handoffs.order_by("-created_at", "-id")


def age_in_days(handoff: RoleHandoff, today: date | None = None) -> int:
    """Whole days since the handoff was opened."""
    day = today or timezone.localdate()
    return max(0, (day - timezone.localdate(handoff.created_at)).days)
