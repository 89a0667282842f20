"""Segments: named, ordered rules; a customer belongs to the first active segment it matches.

Membership is evaluated set-based in one SQL query (a ``CASE`` over every active segment's
compiled condition) and written through ``history.record_changes`` so that it is kept as
history and shown on the timeline. Saving, deleting or reordering a segment re-evaluates
membership at once; the daily lifecycle job calls ``evaluate_segments`` too.

With no active segment at all, imported segment values are left alone (an installation
that has not written rules yet keeps what its CRM says).
"""

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from django.db import transaction
from django.db.models import (
    BooleanField,
    Case,
    CharField,
    Count,
    F,
    Max,
    Q,
    QuerySet,
    Value,
    When,
)
from django.utils import timezone
from django.utils.text import slugify
from django.utils.translation import gettext as _

from kizuna.core.models import User
from kizuna.customers.models import Customer
from kizuna.lifecycle import conditions, history
from kizuna.lifecycle.models import ChangeSource, Dimension, Segment

SAMPLE_SIZE = 20
MOVES_SAMPLE_SIZE = 10
KEY_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,49}$")

# The key a segment being created has while it is previewed (not a valid slug: no clash).
_NEW = "<new>"


class SegmentError(ValueError):
    """Invalid input for a segment, naming the field (``name``, ``key``, ``expression``…)."""

    def __init__(self, field: str, message: str, *, position: int | None = None) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.position = position


@dataclass(frozen=True)
class SegmentSaved:
    segment: Segment
    moved: int


@dataclass(frozen=True)
class Preview:
    """What a rule would do if saved now.

    ``count`` customers match the rule out of ``total``; ``members`` of them would belong
    to the segment once earlier segments have taken theirs; ``moving_in`` customers would
    join it and ``moving_out`` leave it compared with their current segment. ``sample`` is
    up to 20 matching customers by name; ``error`` (with ``position``, 0-based) when the
    rule does not parse.
    """

    count: int = 0
    total: int = 0
    members: int = 0
    moving_in: int = 0
    moving_out: int = 0
    sample: list[Customer] = field(default_factory=list)
    moving_in_sample: list[Customer] = field(default_factory=list)
    moving_out_sample: list[Customer] = field(default_factory=list)
    error: str = ""
    position: int | None = None
    tree: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.error


@dataclass(frozen=True)
class _Rule:
    key: str
    tree: Mapping[str, Any]


def active_segments() -> list[Segment]:
    """The active segments in evaluation order."""
    return list(Segment.objects.filter(is_active=True).order_by("position", "id"))


def _assignment(
    rules: Sequence[_Rule], as_of: date, *, extra: Sequence[Mapping[str, Any]] = ()
) -> tuple[QuerySet[Customer], Any, list[Q]]:
    """Customers aliased with what the rules need, the ``CASE`` giving each one's segment key
    (first matching rule wins, "" for none) and the conditions of the ``extra`` trees."""
    compiled = conditions.compile_conditions([*(rule.tree for rule in rules), *extra], as_of=as_of)
    customers = compiled.alias(Customer.objects.order_by())
    new_key = Case(
        *[
            When(condition, then=Value(rule.key))
            for rule, condition in zip(rules, compiled.conditions, strict=False)
        ],
        default=Value(""),
        output_field=CharField(),
    )
    return customers, new_key, compiled.conditions[len(rules) :]


def _reason(key: str, names: Mapping[str, str]) -> str:
    if not key:
        return _("Matches no segment rule")
    return _("Matches the rule of segment “%(name)s”") % {"name": names.get(key, key)}


@transaction.atomic
def evaluate_segments(
    as_of: date | None = None,
    *,
    actor: User | None = None,
    retired_keys: Iterable[str] = (),
) -> int:
    """Put every customer in the first active segment it matches on ``as_of``; the number moved.

    Customers matching no segment get an empty segment. With no active segment, only the
    customers in an inactive segment or in one of ``retired_keys`` (just deleted) are
    emptied; other segment values (e.g. imported ones) are left alone. Changes are recorded
    in history (source "rule") on ``as_of``.
    """
    day = as_of or timezone.localdate()
    segments = active_segments()
    names = dict(Segment.objects.values_list("key", "name"))
    if segments:
        rules = [_Rule(segment.key, segment.rule) for segment in segments]
        customers, new_key, _extra = _assignment(rules, day)
        rows = (
            customers.annotate(kz_segment=new_key)
            .exclude(segment=F("kz_segment"))
            .values_list("pk", "kz_segment")
        )
        changes: dict[int, str] = dict(rows)
    else:
        stale = set(Segment.objects.values_list("key", flat=True)) | set(retired_keys)
        stale.discard("")
        ids = Customer.objects.filter(segment__in=stale).values_list("pk", flat=True)
        changes = dict.fromkeys(ids, "")
    by_key: dict[str, dict[int, str]] = defaultdict(dict)
    for pk, key in changes.items():
        by_key[key][pk] = key
    moved = 0
    for key, values in sorted(by_key.items()):
        moved += len(
            history.record_changes(
                dimension=Dimension.SEGMENT,
                values=values,
                on=day,
                source=ChangeSource.RULE,
                reason=_reason(key, names),
                actor=actor,
            )
        )
    return moved


def _clean_fields(
    *, name: str, key: str, expression: str, description: str, segment: Segment | None
) -> tuple[str, str, str, dict[str, Any]]:
    name = (name or "").strip()
    for field_name, text in (("name", name), ("description", description or "")):
        if "\x00" in text:
            raise SegmentError(field_name, _("text cannot contain NUL characters"))
    if not name:
        raise SegmentError("name", _("a segment needs a name"))
    if len(name) > 100:
        raise SegmentError("name", _("at most 100 characters"))
    if segment is not None:
        key = segment.key  # keys are fixed: customers' history and touch policies use them
    else:
        key = (key or "").strip()
        if not key:
            key = _free_key(slugify(name) or "segment")
        elif not KEY_PATTERN.match(key):
            raise SegmentError(
                "key",
                _(
                    "use lower-case letters, digits, '-' and '_' (at most 50, starting with a "
                    "letter or digit)"
                ),
            )
        elif Segment.objects.filter(key=key).exists():
            raise SegmentError("key", _("a segment with the key “%(key)s” exists") % {"key": key})
    try:
        tree = conditions.parse(expression or "")
    except conditions.ConditionError as error:
        raise SegmentError("expression", str(error), position=error.position) from None
    return name, key, (description or "").strip(), tree


def _free_key(base: str) -> str:
    base = base[:40].strip("-_") or "segment"
    if not KEY_PATTERN.match(base):
        base = "segment"
    taken = set(Segment.objects.filter(key__startswith=base).values_list("key", flat=True))
    if base not in taken:
        return base
    number = 2
    while f"{base}-{number}" in taken:
        number += 1
    return f"{base}-{number}"


@transaction.atomic
def save_segment(
    *,
    name: str,
    expression: str,
    key: str = "",
    description: str = "",
    is_active: bool = True,
    segment: Segment | None = None,
    position: int | None = None,
    actor: User | None = None,
    as_of: date | None = None,
) -> SegmentSaved:
    """Create (no ``segment``) or update a segment and re-evaluate membership at once.

    The rule is parsed and validated (``SegmentError`` names the field; for the rule its
    message carries the position). A new segment's key defaults to a slug of its name and
    must be unique; an existing segment keeps its key. A new segment goes last unless
    ``position`` is given.
    """
    name, key, description, tree = _clean_fields(
        name=name, key=key, expression=expression, description=description, segment=segment
    )
    was_active = segment.is_active if segment is not None else False
    if segment is None:
        segment = Segment(key=key)
        if position is None:
            position = (Segment.objects.aggregate(last=Max("position"))["last"] or 0) + 1
    segment.name = name
    segment.description = description
    segment.expression = expression.strip()
    segment.rule = tree
    segment.is_active = is_active
    segment.updated_by = actor
    if position is not None:
        segment.position = position
    segment.save()
    retired = [segment.key] if was_active and not is_active else []
    moved = evaluate_segments(as_of, actor=actor, retired_keys=retired)
    _reapply_touch_models(as_of, actor=actor, moved=moved)
    return SegmentSaved(segment=segment, moved=moved)


@transaction.atomic
def delete_segment(*, key: str, actor: User | None = None, as_of: date | None = None) -> int:
    """Delete the segment and re-evaluate; its members move to their next matching segment
    (or none). Returns the number of customers moved."""
    deleted, _counts = Segment.objects.filter(key=key).delete()
    if not deleted:
        raise SegmentError("key", _("no segment with the key “%(key)s”") % {"key": key})
    moved = evaluate_segments(as_of, actor=actor, retired_keys=[key])
    _reapply_touch_models(as_of, actor=actor, moved=moved)
    return moved


@transaction.atomic
def reorder(*, keys: Sequence[str], actor: User | None = None, as_of: date | None = None) -> int:
    """Give the segments the order of ``keys`` (others follow in their order), re-evaluate.

    Returns the number of customers moved.
    """
    segments = list(Segment.objects.order_by("position", "id"))
    by_key = {segment.key: segment for segment in segments}
    unknown = [key for key in keys if key not in by_key]
    if unknown:
        raise SegmentError(
            "keys", _("no segment with the key “%(key)s”") % {"key": ", ".join(unknown)}
        )
    ordered = [by_key[key] for key in dict.fromkeys(keys)]
    ordered += [segment for segment in segments if segment.key not in set(keys)]
    for position, segment in enumerate(ordered, start=1):
        segment.position = position
    Segment.objects.bulk_update(ordered, ["position"])
    moved = evaluate_segments(as_of, actor=actor)
    _reapply_touch_models(as_of, actor=actor, moved=moved)
    return moved


def _reapply_touch_models(as_of: date | None, *, actor: User | None, moved: int) -> None:
    """The touch-model policy is per segment: customers that changed segment get theirs now
    rather than at the nightly run."""
    if moved:
        from kizuna.lifecycle.touch import apply_touch_models

        apply_touch_models(as_of or timezone.localdate(), actor=actor)


def move_segment(
    *, key: str, offset: int, actor: User | None = None, as_of: date | None = None
) -> int:
    """Move a segment ``offset`` places (-1 up, +1 down) and re-evaluate; customers moved."""
    keys = list(Segment.objects.order_by("position", "id").values_list("key", flat=True))
    if key not in keys:
        raise SegmentError("key", _("no segment with the key “%(key)s”") % {"key": key})
    index = keys.index(key)
    target = max(0, min(len(keys) - 1, index + offset))
    if target == index:
        return 0
    keys.insert(target, keys.pop(index))
    return reorder(keys=keys, actor=actor, as_of=as_of)


def preview(
    expression: str,
    *,
    segment: Segment | None = None,
    as_of: date | None = None,
) -> Preview:
    """What ``expression`` would do as the rule of ``segment`` (or of a new, last segment).

    Counts come from one aggregate query; the samples are three small queries.
    """
    day = as_of or timezone.localdate()
    try:
        tree = conditions.parse(expression or "")
    except conditions.ConditionError as error:
        return Preview(error=str(error), position=error.position, total=Customer.objects.count())
    key = segment.key if segment is not None else _NEW
    editing = segment.pk if segment is not None else None
    # The segment takes its place among the active ones, as if saved active; a new one goes last.
    rules = [
        _Rule(key, tree) if other.pk == editing else _Rule(other.key, other.rule)
        for other in Segment.objects.order_by("position", "id")
        if other.is_active or other.pk == editing
    ]
    if segment is None:
        rules.append(_Rule(key, tree))
    customers, new_key, (match_q,) = _assignment(rules, day, extra=[tree])
    customers = customers.annotate(
        kz_segment=new_key,
        kz_match=Case(
            When(match_q, then=Value(True)), default=Value(False), output_field=BooleanField()
        ),
    )
    moving_in_q = Q(kz_segment=key) & ~Q(segment=key)
    moving_out_q = Q(segment=key) & ~Q(kz_segment=key)
    totals = customers.aggregate(
        total=Count("pk"),
        count=Count("pk", filter=Q(kz_match=True)),
        members=Count("pk", filter=Q(kz_segment=key)),
        moving_in=Count("pk", filter=moving_in_q),
        moving_out=Count("pk", filter=moving_out_q),
    )
    by_name = customers.order_by("name", "pk")
    return Preview(
        count=totals["count"],
        total=totals["total"],
        members=totals["members"],
        moving_in=totals["moving_in"],
        moving_out=totals["moving_out"],
        sample=list(by_name.filter(kz_match=True)[:SAMPLE_SIZE]),
        moving_in_sample=list(by_name.filter(moving_in_q)[:MOVES_SAMPLE_SIZE]),
        moving_out_sample=list(by_name.filter(moving_out_q)[:MOVES_SAMPLE_SIZE]),
        tree=tree,
    )


def segment_counts() -> dict[str, int]:
    """Customers per current segment key ("" for customers in none)."""
    rows = Customer.objects.order_by().values_list("segment").annotate(count=Count("pk"))
    return dict(rows)
