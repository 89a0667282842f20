"""What a playbook would have done over a past period, from history, writing nothing.

The simulation finds occurrences with the runner's own finders (every timeline entry of the
period, every day's dated occurrences), applies the runner's own ``decide`` (segments, touch
models, condition as of each day; the holdout hash), and describes the actions each customer
would have got. It works for a playbook not saved yet (with its unsaved actions). For a saved
playbook the held-out customers are those the runner would hold out; for a new one the hash
uses no id yet, so they are an example of the share.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from kizuna.customers.models import Customer
from kizuna.playbooks import triggers
from kizuna.playbooks.actions import action_type
from kizuna.playbooks.models import Playbook, PlaybookAction, TriggerKind
from kizuna.playbooks.runner import decide

__all__ = ["SimulatedAction", "SimulatedRun", "Simulation", "simulate"]

MAX_DAYS = 366


@dataclass(frozen=True)
class SimulatedAction:
    position: int
    kind: str
    label: str
    description: str
    due_on: date


@dataclass(frozen=True)
class SimulatedRun:
    customer_id: int
    customer_name: str
    day: date
    occurrence_key: str
    trigger_summary: str
    held_out: bool
    actions: tuple[SimulatedAction, ...]


@dataclass(frozen=True)
class Simulation:
    """The runs the playbook would have made from ``start`` to ``end`` (inclusive), by day."""

    start: date
    end: date
    runs: tuple[SimulatedRun, ...]

    @property
    def fired(self) -> int:
        return len(self.runs)

    @property
    def held_out(self) -> int:
        return sum(1 for run in self.runs if run.held_out)

    @property
    def acted(self) -> int:
        return self.fired - self.held_out

    @property
    def customers(self) -> int:
        return len({run.customer_id for run in self.runs})

    @property
    def actions_by_kind(self) -> dict[str, int]:
        counts = Counter(action.kind for run in self.runs for action in run.actions)
        return dict(sorted(counts.items()))


def _steps(playbook: Playbook, actions: Sequence[PlaybookAction] | None) -> list[PlaybookAction]:
    if actions is not None:
        return sorted(actions, key=lambda step: step.position)
    if playbook.pk is None:
        return []
    return list(playbook.actions.order_by("position", "id"))


def simulate(
    *,
    playbook: Playbook,
    start: date,
    end: date,
    actions: Sequence[PlaybookAction] | None = None,
) -> Simulation:
    """What ``playbook`` (saved or not; ``actions`` default to its saved ones) would have done
    on the days ``start``–``end``: customers, occurrences, held-out marks, described actions.

    Raises ``ValueError`` for an empty or over-long range.
    """
    if end < start:
        raise ValueError("end must not be before start")
    if (end - start).days >= MAX_DAYS:
        raise ValueError(f"at most {MAX_DAYS} days")
    if playbook.trigger_kind == TriggerKind.TIMELINE:
        occurrences = triggers.timeline_occurrences([playbook], start=start, end=end)[0]
    else:
        occurrences = []
        for offset in range((end - start).days + 1):
            occurrences += triggers.occurrences_on(playbook, start + timedelta(days=offset))
    decisions = decide(playbook, occurrences)
    steps = _steps(playbook, actions)
    ids = sorted({decision.occurrence.customer_id for decision in decisions})
    customers: dict[int, Customer] = {}
    for index in range(0, len(ids), 500):
        customers.update(
            (customer.pk, customer)
            for customer in Customer.objects.filter(pk__in=ids[index : index + 500]).select_related(
                "onboarding_owner", "adoption_owner", "expansion_owner"
            )
        )
    runs = []
    for decision in decisions:
        item = decision.occurrence
        customer = customers.get(item.customer_id)
        described: list[SimulatedAction] = []
        if not decision.held_out:
            for step in steps:
                try:
                    kind = action_type(step.kind)
                    label, text = str(kind.label), kind.describe(dict(step.params or {}), customer)
                except KeyError:
                    label, text = step.kind, step.kind
                described.append(
                    SimulatedAction(
                        position=step.position,
                        kind=step.kind,
                        label=label,
                        description=text,
                        due_on=item.day + timedelta(days=step.delay_days),
                    )
                )
        runs.append(
            SimulatedRun(
                customer_id=item.customer_id,
                customer_name=customer.name if customer else str(item.customer_id),
                day=item.day,
                occurrence_key=item.key,
                trigger_summary=item.summary,
                held_out=decision.held_out,
                actions=tuple(described),
            )
        )
    runs.sort(key=lambda run: (run.day, run.customer_name, run.occurrence_key))
    return Simulation(start=start, end=end, runs=tuple(runs))
