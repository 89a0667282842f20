"""Opening, keeping and closing risk signals for a day, for a range of days, and by a CSM.

A signal is open over ``[opened_on, closed_on)``. Each evaluated day: a customer meeting a
condition without an open signal of that kind gets one (``risk.raised`` on the timeline); an
open signal whose condition still holds is kept (``last_seen_on`` and details refreshed); one
whose condition no longer holds closes that day with the resolution ``cleared``
(``risk.closed``). A drop condition's *held* entries (the relaxed bound, see ``conditions``)
keep a signal open or an episode going, but never open a signal (hysteresis). The partial unique constraint (one open signal per customer and kind) makes
duplicates impossible, even when two runs race.

``last_seen_on`` is the last day the condition was seen, also after a CSM resolved or dismissed
the signal: while the same episode goes on without a break, it is not raised again; once the
condition has cleared for a day, a new episode raises a new signal.
"""

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Case, Count, IntegerField, Q, QuerySet, Value, When
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from kizuna.core.models import TimelineEntry, TimelineKind, User
from kizuna.health.models import Resolution, RiskSignal, Severity, SignalKind
from kizuna.health.signals.conditions import SignalData, conditions_on, range_conditions
from kizuna.health.signals.episodes import Episodes, replay
from kizuna.health.signals.reasons import forget_metric_labels, signal_reason
from kizuna.health.signals.rules import SignalError, enabled_rules, ensure_default_rules

logger = logging.getLogger("kizuna.health.signals")

Progress = Callable[[str, int, int], object]
_CHUNK = 500
_IDS = 5000  # ids per IN (…) list, well under SQLite's limit of bound parameters


@dataclass(frozen=True)
class SignalRunResult:
    """What one or more evaluated days did: signals opened, kept open and closed."""

    opened: int = 0
    kept: int = 0
    closed: int = 0
    days: int = 0

    def __add__(self, other: "SignalRunResult") -> "SignalRunResult":
        return SignalRunResult(
            self.opened + other.opened,
            self.kept + other.kept,
            self.closed + other.closed,
            self.days + other.days,
        )


def _moment(day: date) -> datetime:
    """When something that happened on ``day`` goes on the timeline (now, for today)."""
    if day >= timezone.localdate():
        return timezone.now()
    return timezone.make_aware(datetime.combine(day, time(12)))


def _english_reason(kind: str, details: dict[str, Any]) -> str:
    with translation.override("en"):
        return signal_reason(kind, details)[:500]


def evaluate_signals(*, day: date, kinds: Sequence[str] | None = None) -> SignalRunResult:
    """Open, keep and close the signals of every enabled rule (or only ``kinds``) on ``day``.

    Set-based: each kind's condition is computed for all customers at once; the writes are
    bulk. Evaluating days out of order is safe but only meaningful in order (``backfill``).
    """
    ensure_default_rules()
    rules = _rules(kinds)
    data = SignalData(start=day, end=day, rules={k: p for k, (_s, p) in rules.items()})
    try:
        return _evaluate_day(day, rules, data, kinds)
    finally:
        data.close()


def backfill_signals(
    *, start: date, end: date, progress: Progress | None = None, kinds: Sequence[str] | None = None
) -> SignalRunResult:
    """Evaluate every day of ``[start, end]`` in order, exactly as the daily runs would have.

    Set-based over the days too: each kind's condition is computed for the whole range
    (``range_conditions``: one query per kind for the lake-based kinds and the renewals, the
    people and NPS answers read once), the day-by-day decisions are replayed in memory
    (``episodes``), and the database is written once per episode (its final ``opened_on``,
    ``last_seen_on``, ``closed_on`` and the details of its last day) with the timeline entries
    in one bulk insert. ``progress("signals", done, total)`` is called after each day. Raises
    ``SignalError("start", …)`` when ``start`` is after ``end``.
    """
    if start > end:
        raise SignalError("start", _("The start must not be after the end."))
    ensure_default_rules()
    rules = _rules(kinds)
    params = {k: p for k, (_s, p) in rules.items()}
    judged = set(kinds) if kinds is not None else set(SignalKind.values)
    total = (end - start).days + 1
    data = SignalData(start=start, end=end, rules=params)
    try:
        found = range_conditions(start=start, end=end, rules=params, data=data)
        episodes = Episodes(kinds=judged, start=start)
        replay(
            days=[start + timedelta(days=n) for n in range(total)],
            rules=rules,
            judged=judged,
            episodes=episodes,
            found_on=found.__getitem__,
            progress=None if progress is None else lambda done: progress("signals", done, total),
        )
    finally:
        data.close()
    episodes.write(english_reason=_english_reason, create=_create, moment=_moment)
    return SignalRunResult(
        opened=episodes.opened, kept=episodes.kept, closed=episodes.closed_count, days=total
    )


def _rules(kinds: Sequence[str] | None) -> dict[str, tuple[str, dict[str, Any]]]:
    if kinds is not None:
        for kind in kinds:
            if kind not in SignalKind.values:
                raise SignalError(
                    "kinds", _("Unknown kind of risk signal: {kind}.").format(kind=kind)
                )
    return enabled_rules(list(kinds) if kinds is not None else None)


def _evaluate_day(
    day: date,
    rules: dict[str, tuple[str, dict[str, Any]]],
    data: SignalData,
    kinds: Sequence[str] | None,
) -> SignalRunResult:
    forget_metric_labels()
    found = conditions_on(
        day=day, rules={k: p for k, (_s, p) in rules.items()}, data=data, include_held=True
    )
    result = SignalRunResult(days=1)
    with transaction.atomic():
        result += _close_disabled(day, rules, kinds)
        for kind, met in found.items():
            severity = rules[kind][0]
            result += _apply(day, kind, severity, met)
    return result


def _close_disabled(
    day: date, rules: dict[str, tuple[str, dict[str, Any]]], kinds: Sequence[str] | None
) -> SignalRunResult:
    """Signals of a rule switched off close (dismissed: nobody watches that kind any more)."""
    judged = set(kinds) if kinds is not None else set(SignalKind.values)
    off = judged - set(rules)
    if not off:
        return SignalRunResult()
    stale = list(
        RiskSignal.objects.filter(kind__in=off, closed_on__isnull=True, opened_on__lte=day)
    )
    for signal in stale:
        signal.closed_on = day
        signal.resolution = Resolution.DISMISSED
        signal.resolution_note = "rule disabled"
    RiskSignal.objects.bulk_update(
        stale, ["closed_on", "resolution", "resolution_note"], batch_size=_CHUNK
    )
    _record_closed(stale, day)
    return SignalRunResult(closed=len(stale))


def _apply(
    day: date,
    kind: str,
    severity: str,
    met: dict[int, dict[str, Any]],
) -> SignalRunResult:
    open_now = {
        signal.customer_id: signal
        for signal in RiskSignal.objects.filter(kind=kind, closed_on__isnull=True)
    }
    kept: list[RiskSignal] = []
    refreshed: list[RiskSignal] = []
    closing: list[RiskSignal] = []
    for customer_id, signal in open_now.items():
        if signal.opened_on > day:
            continue  # opened by a later day's run: this (earlier) day does not touch it
        details = met.get(customer_id)
        if details is None:
            signal.closed_on = day
            signal.resolution = Resolution.CLEARED
            closing.append(signal)
        else:
            kept.append(signal)
            if day < signal.last_seen_on:
                continue  # a re-run of an earlier day keeps the later details
            signal.details = details
            signal.reason = _english_reason(kind, details)
            signal.severity = severity  # the rule's current severity
            refreshed.append(signal)
    _seen(day, [signal.pk for signal in kept if signal.last_seen_on < day])
    RiskSignal.objects.bulk_update(refreshed, ["details", "reason", "severity"], batch_size=_CHUNK)
    RiskSignal.objects.bulk_update(closing, ["closed_on", "resolution"], batch_size=_CHUNK)
    _record_closed(closing, day)

    candidates = sorted(set(met) - set(open_now))
    covered = _covered(day, kind, candidates)
    _seen(day, [signal.pk for signal in covered.values() if signal.last_seen_on < day])
    new = [
        RiskSignal(
            customer_id=customer_id,
            kind=kind,
            severity=severity,
            reason=_english_reason(kind, met[customer_id]),
            details=met[customer_id],
            opened_on=day,
            last_seen_on=day,
        )
        for customer_id in candidates
        if customer_id not in covered and not met[customer_id].get("held")
    ]
    created = _create(new)
    _record_raised(created, day)
    return SignalRunResult(opened=len(created), kept=len(kept), closed=len(closing))


def _seen(day: date, ids: list[int]) -> None:
    for start in range(0, len(ids), _IDS):
        RiskSignal.objects.filter(pk__in=ids[start : start + _IDS]).update(last_seen_on=day)


def _covered(day: date, kind: str, customer_ids: list[int]) -> dict[int, RiskSignal]:
    """Closed signals of ``kind`` that already account for ``day``: an episode a CSM resolved
    or dismissed that goes on (seen yesterday or today), or a signal that was open on ``day``
    (a backfill run again over days already evaluated)."""
    found: dict[int, RiskSignal] = {}
    for start in range(0, len(customer_ids), _IDS):
        for signal in RiskSignal.objects.filter(
            Q(resolution__in=[Resolution.RESOLVED, Resolution.DISMISSED],
              last_seen_on__gte=day - timedelta(days=1))
            | Q(last_seen_on__gte=day),
            kind=kind,
            customer_id__in=customer_ids[start : start + _IDS],
            closed_on__isnull=False,
            opened_on__lte=day,
        ).order_by("customer_id", "last_seen_on", "id"):  # fmt: skip
            found[signal.customer_id] = signal
    return found


def _create(signals: list[RiskSignal]) -> list[RiskSignal]:
    """Insert the new signals; when another run opened some meanwhile, skip those."""
    if not signals:
        return []
    try:
        with transaction.atomic():
            return RiskSignal.objects.bulk_create(signals, batch_size=_CHUNK)
    except IntegrityError:
        logger.info("another run opened some of the same signals; inserting one by one")
    created = []
    for signal in signals:
        try:
            with transaction.atomic():
                signal.save(force_insert=True)
        except IntegrityError:
            signal.pk = None
            continue
        created.append(signal)
    return created


def _label(kind: str) -> str:
    return str(SignalKind(kind).label)


def _record_raised(signals: list[RiskSignal], day: date) -> None:
    moment = _moment(day)
    TimelineEntry.objects.bulk_create(
        [
            TimelineEntry(
                customer_id=signal.customer_id,
                kind=TimelineKind.RISK_RAISED,
                occurred_at=moment,
                title=_("Risk signal: {kind}").format(kind=_label(signal.kind))[:200],
                body=signal_reason(signal),
                payload={"signal_id": signal.pk, "kind": signal.kind, "severity": signal.severity},
            )
            for signal in signals
        ],
        batch_size=_CHUNK,
    )


def _record_closed(
    signals: list[RiskSignal], day: date, *, actor: User | None = None, note: str = ""
) -> None:
    moment = _moment(day)
    TimelineEntry.objects.bulk_create(
        [
            TimelineEntry(
                customer_id=signal.customer_id,
                kind=TimelineKind.RISK_CLOSED,
                occurred_at=moment,
                actor=actor,
                title=_("Risk signal closed: {kind} ({resolution})").format(
                    kind=_label(signal.kind), resolution=Resolution(signal.resolution).label
                )[:200],
                body=note,
                payload={
                    "signal_id": signal.pk,
                    "kind": signal.kind,
                    "resolution": signal.resolution,
                },
            )
            for signal in signals
        ],
        batch_size=_CHUNK,
    )


@transaction.atomic
def close_signal(
    *, signal_id: int, resolution: str, note: str = "", user: User | None = None
) -> RiskSignal:
    """A CSM closes an open signal as resolved or dismissed (``risk.closed`` on the timeline).

    Raises ``RiskSignal.DoesNotExist`` for an unknown id, ``SignalError`` naming the field for
    another resolution, a note over 500 characters, or a signal already closed. While the same
    episode lasts, the daily run does not raise it again.
    """
    if resolution not in (Resolution.RESOLVED, Resolution.DISMISSED):
        raise SignalError("resolution", _("Choose resolved or dismissed."))
    if len(note) > 500:
        raise SignalError("note", _("At most 500 characters."))
    signal = RiskSignal.objects.select_for_update().get(pk=signal_id)
    if signal.closed_on is not None:
        raise SignalError("signal_id", _("This signal is already closed."))
    today = timezone.localdate()
    signal.closed_on = max(today, signal.opened_on)
    signal.resolution = resolution
    signal.resolution_note = note
    signal.closed_by = user
    signal.save(update_fields=["closed_on", "resolution", "resolution_note", "closed_by"])
    _record_closed([signal], today, actor=user, note=note)
    return signal


# -- selectors ---------------------------------------------------------------------------------

_SEVERITY_ORDER = Case(
    When(severity=Severity.HIGH, then=Value(0)),
    When(severity=Severity.MEDIUM, then=Value(1)),
    default=Value(2),
    output_field=IntegerField(),
)


def open_signals(*, customer_ids: Sequence[int] | None = None) -> QuerySet[RiskSignal]:
    """Open signals, most severe first, then newest (with their customer)."""
    signals = RiskSignal.objects.filter(closed_on__isnull=True).select_related("customer")
    if customer_ids is not None:
        signals = signals.filter(customer_id__in=list(customer_ids))
    return signals.annotate(severity_rank=_SEVERITY_ORDER).order_by(
        "severity_rank", "-opened_on", "-id"
    )


def customer_signals(*, customer_id: int) -> QuerySet[RiskSignal]:
    """A customer's signals, open ones first (most severe first), then closed ones, newest first."""
    return (
        RiskSignal.objects.filter(customer_id=customer_id)
        .select_related("closed_by")
        .annotate(
            severity_rank=_SEVERITY_ORDER,
            is_closed=Case(
                When(closed_on__isnull=True, then=Value(0)),
                default=Value(1),
                output_field=IntegerField(),
            ),
        )
        .order_by("is_closed", "severity_rank", "-opened_on", "-id")
    )


def signal_counts_by_severity(*, customer_ids: Sequence[int] | None = None) -> dict[str, int]:
    """Open signals per severity (every severity present, high first)."""
    counts = dict.fromkeys(Severity.values[::-1], 0)
    signals = RiskSignal.objects.filter(closed_on__isnull=True)
    if customer_ids is not None:
        signals = signals.filter(customer_id__in=list(customer_ids))
    for row in signals.order_by().values("severity").annotate(n=Count("id")):
        counts[row["severity"]] = row["n"]
    return counts
