"""The backfill's bookkeeping: the daily opening, keeping and closing replayed in memory.

``evaluate.py`` writes each evaluated day to the database (the reference: the daily run). A
backfill over hundreds of days would then write every open signal every day. Here the same
decisions are taken day by day on the signals held in memory (those that a day of the range can
touch: open ones, and closed ones seen from the day before the range on), and the database is
written once at the end: each episode inserted or updated once with its final ``opened_on``,
``last_seen_on``, ``closed_on`` and the details of its last day, and the timeline entries of
every day in one bulk insert, in the order the daily runs would have written them. The result
is the same as running ``evaluate_signals`` on each day in order (tested).
"""

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils.translation import gettext as _

from kizuna.core.models import TimelineEntry, TimelineKind
from kizuna.health.models import Resolution, RiskSignal, SignalKind
from kizuna.health.signals.reasons import forget_metric_labels, signal_reason

Found = Mapping[str, Mapping[int, dict[str, Any]]]
_CHUNK = 500
_UPDATED = ["closed_on", "resolution", "resolution_note", "last_seen_on", "details", "reason",
            "severity"]  # fmt: skip


@dataclass
class _Event:
    """A timeline entry to write: raised or closed, for a signal, on a day, in run order."""

    kind: str
    signal: RiskSignal
    day: date
    body: str = ""
    resolution: str = ""
    severity: str = ""


class Episodes:
    """The signals of the judged kinds a range of days can touch, and what the days did."""

    def __init__(self, *, kinds: Iterable[str], start: date) -> None:
        self.signals: list[RiskSignal] = list(
            RiskSignal.objects.filter(
                Q(closed_on__isnull=True) | Q(last_seen_on__gte=start - timedelta(days=1)),
                kind__in=list(kinds),
            ).order_by("id")
        )
        self.open: dict[tuple[str, int], RiskSignal] = {}
        self.closed: dict[tuple[str, int], list[RiskSignal]] = {}
        for signal in self.signals:
            key = (signal.kind, signal.customer_id)
            if signal.closed_on is None:
                self.open[key] = signal
            else:
                self.closed.setdefault(key, []).append(signal)
        self.changed: set[int] = set()  # ``id()`` of the stored signals changed
        self.details_of: set[int] = set()  # ``id()`` of the signals whose details were refreshed
        self.stored = len(self.signals)
        self.seq = {id(s): int(s.pk) for s in self.signals}  # new ones: after all, in order
        self.events: list[_Event] = []
        self.opened = self.kept = self.closed_count = 0

    def _touch(self, signal: RiskSignal) -> None:
        self.changed.add(id(signal))

    def close_disabled(self, day: date, off: set[str]) -> None:
        """As ``evaluate._close_disabled``: the open signals of switched-off kinds close."""
        if not off:
            return
        stale = [
            s for s in self.signals
            if s.kind in off and s.closed_on is None and s.opened_on <= day
        ]  # fmt: skip
        stale.sort(key=self._newest_first)
        for signal in stale:
            signal.closed_on = day
            signal.resolution = Resolution.DISMISSED
            signal.resolution_note = "rule disabled"
            self._close(signal)
            self.events.append(_Event("closed", signal, day, resolution=signal.resolution))
        self.closed_count += len(stale)

    def _close(self, signal: RiskSignal) -> None:
        key = (signal.kind, signal.customer_id)
        if self.open.get(key) is signal:
            del self.open[key]
        self.closed.setdefault(key, []).append(signal)
        self._touch(signal)

    def apply(self, day: date, kind: str, severity: str, met: Mapping[int, dict[str, Any]]) -> None:
        """As ``evaluate._apply`` with a backfill's deferred details."""
        open_now = sorted(
            ((cid, s) for (k, cid), s in self.open.items() if k == kind),
            key=lambda item: self._newest_first(item[1]),
        )
        closing: list[RiskSignal] = []
        for customer_id, signal in open_now:
            if signal.opened_on > day:
                continue
            details = met.get(customer_id)
            if details is None:
                closing.append(signal)
                continue
            self.kept += 1
            if day < signal.last_seen_on:
                continue
            signal.details = details
            signal.severity = severity
            self.details_of.add(id(signal))
            if signal.last_seen_on < day:
                signal.last_seen_on = day
            self._touch(signal)
        for signal in closing:
            signal.closed_on = day
            signal.resolution = Resolution.CLEARED
            self._close(signal)
            self.events.append(_Event("closed", signal, day, resolution=signal.resolution))
        self.closed_count += len(closing)

        opened_for = {cid for cid, _s in open_now}
        for customer_id in sorted(set(met) - opened_for):
            covered = self._covered(day, kind, customer_id)
            if covered is not None:
                if covered.last_seen_on < day:
                    covered.last_seen_on = day
                    self._touch(covered)
                continue
            details = met[customer_id]
            if details.get("held"):
                continue  # the relaxed bound keeps a signal open but opens none
            signal = RiskSignal(
                customer_id=customer_id, kind=kind, severity=severity, reason="",
                details=details, opened_on=day, last_seen_on=day,
            )  # fmt: skip
            self.seq[id(signal)] = (1 << 62) + len(self.signals)
            self.signals.append(signal)
            self.open[(kind, customer_id)] = signal
            self.details_of.add(id(signal))
            self.events.append(
                _Event("raised", signal, day, body=signal_reason(signal), severity=severity)
            )
            self.opened += 1

    def _covered(self, day: date, kind: str, customer_id: int) -> RiskSignal | None:
        """As ``evaluate._covered``: the closed signal (last seen last, then highest id) that
        already accounts for ``day``."""
        best: RiskSignal | None = None
        for signal in self.closed.get((kind, customer_id), ()):
            if signal.opened_on > day:
                continue
            csm = signal.resolution in (Resolution.RESOLVED, Resolution.DISMISSED)
            if not (
                (csm and signal.last_seen_on >= day - timedelta(days=1))
                or signal.last_seen_on >= day
            ):
                continue
            if best is None or self._last_seen(signal) > self._last_seen(best):
                best = signal
        return best

    def _newest_first(self, signal: RiskSignal) -> tuple[int, int]:
        """The model's ordering (``-opened_on, -id``), which the daily run's queries follow."""
        return (-signal.opened_on.toordinal(), -self.seq[id(signal)])

    def _last_seen(self, signal: RiskSignal) -> tuple[date, int]:
        return (signal.last_seen_on, self.seq[id(signal)])

    def write(
        self,
        *,
        english_reason: Callable[[str, dict[str, Any]], str],
        create: Callable[[list[RiskSignal]], list[RiskSignal]],
        moment: Callable[[date], Any],
    ) -> None:
        """Write every changed or new signal once, then the timeline entries in run order."""
        for signal in self.signals:
            if id(signal) in self.details_of:
                signal.reason = english_reason(signal.kind, signal.details)
        with transaction.atomic():
            changed = [s for s in self.signals[: self.stored] if id(s) in self.changed]
            RiskSignal.objects.bulk_update(changed, _UPDATED, batch_size=_CHUNK)
            # In opening order (ids as the daily runs give them); an open one that a racing
            # run opened meanwhile is skipped by ``create`` (its pk stays None).
            new = self.signals[self.stored :]
            self.opened -= len(new) - len(create(new))
            entries = [_entry(event, moment(event.day)) for event in self.events if event.signal.pk]
            TimelineEntry.objects.bulk_create(entries, batch_size=_CHUNK)


def _label(kind: str) -> str:
    return str(SignalKind(kind).label)


def _entry(event: _Event, occurred_at: Any) -> TimelineEntry:
    signal = event.signal
    if event.kind == "raised":
        return TimelineEntry(
            customer_id=signal.customer_id,
            kind=TimelineKind.RISK_RAISED,
            occurred_at=occurred_at,
            title=_("Risk signal: {kind}").format(kind=_label(signal.kind))[:200],
            body=event.body,
            payload={"signal_id": signal.pk, "kind": signal.kind, "severity": event.severity},
        )
    return TimelineEntry(
        customer_id=signal.customer_id,
        kind=TimelineKind.RISK_CLOSED,
        occurred_at=occurred_at,
        title=_("Risk signal closed: {kind} ({resolution})").format(
            kind=_label(signal.kind), resolution=Resolution(event.resolution).label
        )[:200],
        body="",
        payload={"signal_id": signal.pk, "kind": signal.kind, "resolution": event.resolution},
    )


def replay(
    *,
    days: Iterable[date],
    rules: Mapping[str, tuple[str, dict[str, Any]]],
    judged: set[str],
    episodes: Episodes,
    found_on: Callable[[date], Found],
    progress: Callable[[int], object] | None = None,
) -> None:
    """Take each day's decisions in order (as ``evaluate._evaluate_day``)."""
    off = judged - set(rules)
    for n, day in enumerate(days, start=1):
        forget_metric_labels()
        found = found_on(day)
        episodes.close_disabled(day, off)
        for kind, met in found.items():
            episodes.apply(day, kind, rules[kind][0], met)
        if progress is not None:
            progress(n)
