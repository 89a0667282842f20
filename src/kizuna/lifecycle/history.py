"""The history of each customer's segment, stage, touch model and owners, and as-of filters.

Every change goes through ``record_changes`` (set-based: one call for many customers), which
updates the Customer field, closes the open history row, opens a new one and writes the
timeline. ``sync_current_state`` catches changes made elsewhere (imports, the customer
form, the API) by comparing the Customer fields with the open rows.
"""

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import date, datetime, time
from typing import Any

from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext as _

from kizuna.core.models import TimelineEntry, TimelineKind, User
from kizuna.customers.models import Customer, LifecycleStage, TouchModel
from kizuna.lifecycle.models import (
    DIMENSION_FIELDS,
    ChangeSource,
    Dimension,
    StateHistory,
)

TIMELINE_KINDS: dict[str, str] = {
    Dimension.SEGMENT: TimelineKind.SEGMENT_CHANGED,
    Dimension.STAGE: TimelineKind.STAGE_CHANGED,
    Dimension.TOUCH_MODEL: TimelineKind.TOUCH_MODEL_CHANGED,
    Dimension.ONBOARDING_OWNER: TimelineKind.OWNER_CHANGED,
    Dimension.ADOPTION_OWNER: TimelineKind.OWNER_CHANGED,
    Dimension.EXPANSION_OWNER: TimelineKind.OWNER_CHANGED,
}

_CHUNK = 500


def _chunks(ids: list[int]) -> Iterable[list[int]]:
    for start in range(0, len(ids), _CHUNK):
        yield ids[start : start + _CHUNK]


def _as_text(value: Any) -> str:
    return "" if value is None else str(value)


def _current_values(dimension: str, customer_ids: list[int] | None) -> dict[int, str]:
    field = DIMENSION_FIELDS[dimension]
    customers = Customer.objects.order_by()
    if customer_ids is None:
        rows = customers.values_list("pk", field)
        return {pk: _as_text(value) for pk, value in rows}
    found: dict[int, str] = {}
    for chunk in _chunks(customer_ids):
        found.update(
            (pk, _as_text(value))
            for pk, value in customers.filter(pk__in=chunk).values_list("pk", field)
        )
    return found


def _open_rows(dimension: str, customer_ids: list[int] | None) -> dict[int, StateHistory]:
    rows = StateHistory.objects.filter(dimension=dimension, valid_to__isnull=True)
    if customer_ids is None:
        return {row.customer_id: row for row in rows}
    found: dict[int, StateHistory] = {}
    for chunk in _chunks(customer_ids):
        found.update((row.customer_id, row) for row in rows.filter(customer_id__in=chunk))
    return found


def _customers_with_history(dimension: str, customer_ids: list[int]) -> set[int]:
    found: set[int] = set()
    for chunk in _chunks(customer_ids):
        found.update(
            StateHistory.objects.filter(dimension=dimension, customer_id__in=chunk)
            .values_list("customer_id", flat=True)
            .distinct()
        )
    return found


def display_value(dimension: str, value: str) -> str:
    """A history value as people read it: the choice label, the user's name, the segment name."""
    if not value:
        return _("none")
    if dimension == Dimension.STAGE:
        return str(dict(LifecycleStage.choices).get(value, value))
    if dimension == Dimension.TOUCH_MODEL:
        return str(dict(TouchModel.choices).get(value, value))
    if dimension == Dimension.SEGMENT:
        from kizuna.lifecycle.models import Segment

        name = Segment.objects.filter(key=value).values_list("name", flat=True).first()
        return name or value
    user = User.objects.filter(pk=value).first() if value.isdigit() else None
    return user.display_name if user else value


def _moment(on: date) -> datetime:
    if on == timezone.localdate():
        return timezone.now()
    return timezone.make_aware(datetime.combine(on, time(0, 0)))


def _seed(dimension: str, customer_ids: list[int], current: Mapping[int, str]) -> None:
    """Open rows "since the beginning" for customers that have no history for the dimension."""
    known = _customers_with_history(dimension, customer_ids)
    StateHistory.objects.bulk_create(
        [
            StateHistory(
                customer_id=pk,
                dimension=dimension,
                value=current.get(pk, ""),
                valid_from=None,
                source=ChangeSource.EDIT,
            )
            for pk in customer_ids
            if pk not in known and pk in current
        ],
        batch_size=_CHUNK,
    )


def _replaces(valid_from: date | None, on: date) -> bool:
    """A change dated on (or before) the day the open row began replaces that row's value:
    one value per customer and day, and never an interval that ends before it starts."""
    return valid_from is not None and valid_from >= on


@transaction.atomic
def record_changes(
    *,
    dimension: str,
    values: Mapping[int, str],
    on: date,
    source: str,
    reason: str = "",
    actor: User | None = None,
    update_customers: bool = True,
    write_timeline: bool = True,
) -> list[int]:
    """Set ``dimension`` to ``values[customer_id]`` from day ``on``; returns the ids that changed.

    Customers whose current value already equals the new one are left alone. A change on
    the day a row opened replaces that row's value (one value per customer and day).
    """
    dimension = Dimension(dimension)
    ids = sorted(values)
    if not ids:
        return []
    current = _current_values(dimension, ids)
    _seed(dimension, ids, current)
    open_rows = _open_rows(dimension, ids)
    # A field edited elsewhere and not synced yet is recorded first, so the change below is
    # judged against the customer's real value (and always reaches the field).
    stale = {
        pk: ((row.pk, row.value, row.valid_from), current[pk])
        for pk, row in open_rows.items()
        if pk in current and row.value != current[pk]
    }
    if stale:
        _record_history_only(dimension, stale, on=on)
        open_rows = _open_rows(dimension, ids)
    changed = [pk for pk in ids if pk in open_rows and open_rows[pk].value != values[pk]]
    if not changed:
        return []
    now = timezone.now()
    to_close = [open_rows[pk].pk for pk in changed if not _replaces(open_rows[pk].valid_from, on)]
    same_day = [open_rows[pk] for pk in changed if _replaces(open_rows[pk].valid_from, on)]
    for chunk in _chunks(to_close):
        StateHistory.objects.filter(pk__in=chunk).update(valid_to=on)
    for row in same_day:
        row.value = values[row.customer_id]
        row.source, row.reason, row.actor, row.recorded_at = source, reason[:500], actor, now
    StateHistory.objects.bulk_update(
        same_day, ["value", "source", "reason", "actor", "recorded_at"], batch_size=_CHUNK
    )
    StateHistory.objects.bulk_create(
        [
            StateHistory(
                customer_id=pk,
                dimension=dimension,
                value=values[pk],
                valid_from=on,
                source=source,
                reason=reason[:500],
                actor=actor,
                recorded_at=now,
            )
            for pk in changed
            if not _replaces(open_rows[pk].valid_from, on)
        ],
        batch_size=_CHUNK,
    )
    if update_customers:
        _update_customer_fields(dimension, {pk: values[pk] for pk in changed})
    if write_timeline:
        _write_timeline(
            dimension,
            [(pk, open_rows[pk].value, values[pk]) for pk in changed],
            on=on,
            source=source,
            reason=reason,
            actor=actor,
        )
    return changed


def _update_customer_fields(dimension: str, values: Mapping[int, str]) -> None:
    field = DIMENSION_FIELDS[dimension]
    by_value: dict[str, list[int]] = defaultdict(list)
    for pk, value in values.items():
        by_value[value].append(pk)
    for value, ids in by_value.items():
        stored: Any = value
        if field.endswith("_id"):
            stored = int(value) if value else None
        for chunk in _chunks(ids):
            Customer.objects.filter(pk__in=chunk).update(
                **{field: stored, "updated_at": timezone.now()}
            )


def _write_timeline(
    dimension: str,
    changes: list[tuple[int, str, str]],
    *,
    on: date,
    source: str,
    reason: str,
    actor: User | None,
) -> None:
    label = str(Dimension(dimension).label)
    moment = _moment(on)
    names: dict[str, str] = {}

    def name(value: str) -> str:
        if value not in names:
            names[value] = display_value(dimension, value)
        return names[value]

    TimelineEntry.objects.bulk_create(
        [
            TimelineEntry(
                customer_id=pk,
                kind=TIMELINE_KINDS[dimension],
                occurred_at=moment,
                actor=actor,
                title=f"{label}: {name(before)} → {name(after)}"[:200],
                body=reason,
                payload={
                    "dimension": dimension,
                    "from": before,
                    "to": after,
                    "source": source,
                },
            )
            for pk, before, after in changes
        ],
        batch_size=_CHUNK,
    )


def sync_current_state(
    *, customer_ids: list[int] | None = None, on: date | None = None
) -> dict[str, int]:
    """Record in history what changed on the customers outside this context; per-dimension counts.

    Customers without history get their first row "since the beginning"; customers whose
    field differs from the open row get a change dated ``on`` (today by default). Four
    queries for any number of customers (plus the writes), so it can run on every save.
    """
    on = on or timezone.localdate()
    dimensions = list(DIMENSION_FIELDS)
    current: dict[str, dict[int, str]] = {dimension: {} for dimension in dimensions}
    known: set[tuple[int, str]] = set()
    open_rows: dict[tuple[int, str], tuple[int, str, date | None]] = {}
    customers = Customer.objects.order_by().values_list("pk", *DIMENSION_FIELDS.values())
    history = StateHistory.objects.order_by()
    chunks: Iterable[list[int] | None] = (
        [None] if customer_ids is None else _chunks(sorted(customer_ids))
    )
    for chunk in chunks:
        scoped_customers = customers if chunk is None else customers.filter(pk__in=chunk)
        scoped_history = history if chunk is None else history.filter(customer_id__in=chunk)
        for pk, *values in scoped_customers:
            for dimension, value in zip(dimensions, values, strict=True):
                current[dimension][pk] = _as_text(value)
        known.update(scoped_history.values_list("customer_id", "dimension").distinct())
        for row_pk, customer_id, dimension, value, valid_from in scoped_history.filter(
            valid_to__isnull=True
        ).values_list("pk", "customer_id", "dimension", "value", "valid_from"):
            open_rows[(customer_id, dimension)] = (row_pk, value, valid_from)
    StateHistory.objects.bulk_create(
        [
            StateHistory(
                customer_id=pk,
                dimension=dimension,
                value=value,
                valid_from=None,
                source=ChangeSource.EDIT,
            )
            for dimension in dimensions
            for pk, value in current[dimension].items()
            if (pk, dimension) not in known
        ],
        batch_size=_CHUNK,
    )
    counts: dict[str, int] = {}
    for dimension in dimensions:
        differing = {
            pk: (open_rows[(pk, dimension)], value)
            for pk, value in current[dimension].items()
            if (pk, dimension) in open_rows and open_rows[(pk, dimension)][1] != value
        }
        if differing:
            with transaction.atomic():
                _record_history_only(dimension, differing, on=on)
            counts[dimension] = len(differing)
    return counts


def _record_history_only(
    dimension: str,
    changes: Mapping[int, tuple[tuple[int, str, date | None], str]],
    *,
    on: date,
) -> None:
    to_close = [row[0] for row, _value in changes.values() if not _replaces(row[2], on)]
    for chunk in _chunks(to_close):
        StateHistory.objects.filter(pk__in=chunk).update(valid_to=on)
    for row, value in changes.values():
        if _replaces(row[2], on):
            StateHistory.objects.filter(pk=row[0]).update(
                value=value,
                source=ChangeSource.EDIT,
                reason="",
                actor=None,
                recorded_at=timezone.now(),
            )
    StateHistory.objects.bulk_create(
        [
            StateHistory(
                customer_id=pk,
                dimension=dimension,
                value=value,
                valid_from=on,
                source=ChangeSource.EDIT,
            )
            for pk, (row, value) in changes.items()
            if not _replaces(row[2], on)
        ],
        batch_size=_CHUNK,
    )
    _write_timeline(
        dimension,
        [(pk, row[1], value) for pk, (row, value) in changes.items()],
        on=on,
        source=ChangeSource.EDIT,
        reason="",
        actor=None,
    )


def _covering(dimension: str, day: date) -> QuerySet[StateHistory]:
    return StateHistory.objects.filter(customer=OuterRef("pk"), dimension=dimension).filter(
        Q(valid_from__isnull=True) | Q(valid_from__lte=day),
        Q(valid_to__isnull=True) | Q(valid_to__gt=day),
    )


def as_of_filter(dimension: str, values: Iterable[str], day: date) -> Q:
    """A Customer filter: the customer's ``dimension`` was one of ``values`` on ``day``.

    Customers that have no history for the dimension (never seen by this context) are
    judged by their current field.
    """
    wanted = [str(value) for value in values]
    field = DIMENSION_FIELDS[dimension]
    has_history = Exists(StateHistory.objects.filter(customer=OuterRef("pk"), dimension=dimension))
    matches = Exists(_covering(dimension, day).filter(value__in=wanted))
    if field.endswith("_id"):
        current = Q(**{f"{field}__in": [int(value) for value in wanted if value.isdigit()]})
        if "" in wanted:
            current |= Q(**{f"{field}__isnull": True})
    else:
        current = Q(**{f"{field}__in": wanted})
    return Q(matches) | (~Q(has_history) & current)


def value_as_of(dimension: str, day: date) -> Coalesce:
    """An annotation: the customer's ``dimension`` value on ``day`` (its current field without
    history)."""
    from django.db.models import CharField
    from django.db.models.functions import Cast

    field = DIMENSION_FIELDS[dimension]
    return Coalesce(
        Subquery(_covering(dimension, day).order_by("-valid_from").values("value")[:1]),
        Cast(field, output_field=CharField()),
        output_field=CharField(),
    )


def history_for(customer_id: int) -> QuerySet[StateHistory]:
    """A customer's history, newest first, all dimensions."""
    return (
        StateHistory.objects.filter(customer_id=customer_id)
        .select_related("actor")
        .order_by(F("valid_from").desc(nulls_last=True), "-id")
    )
