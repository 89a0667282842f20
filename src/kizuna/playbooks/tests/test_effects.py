"""A playbook's effect on hand-made runs, tasks and metric history, with the intervals worked
out by hand (and checked against published examples)."""

from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone
from django.utils.translation import override

from kizuna.customers.models import Customer, Product, Subscription
from kizuna.playbooks import effects
from kizuna.playbooks.effects import Verdict, newcombe, playbook_effect, required_sample, wilson
from kizuna.playbooks.models import Playbook, PlaybookRun, Task, TaskStatus
from kizuna.playbooks.tests.engine_helpers import write_metrics

AS_OF = date(2026, 6, 30)
TRIGGERED = date(2026, 4, 1)
BEFORE = TRIGGERED - timedelta(days=28)  # 2026-03-04: the level usage should come back to
AFTER = TRIGGERED + timedelta(days=60)  # 2026-05-31: when recovery is judged


def at(day: date, hour: int = 10) -> datetime:
    return timezone.make_aware(datetime.combine(day, time(hour)))


def playbook(outcome: dict[str, Any], holdout: float = 0.1, key: str = "drop") -> Playbook:
    return Playbook.objects.create(
        key=key,
        name=key,
        trigger_kind="timeline",
        trigger_params={"kinds": ["risk.raised"]},
        holdout_share=holdout,
        outcome=outcome,
    )


def run(pb: Playbook, customer: Customer, on: date, *, held: bool = False) -> PlaybookRun:
    return PlaybookRun.objects.create(
        playbook=pb,
        customer=customer,
        occurrence_key=f"timeline:{customer.pk}:{on}",
        triggered_on=on,
        holdout=held,
        status="holdout" if held else "done",
    )


# --- The statistics on their own ------------------------------------------------------------


def test_wilson_interval_matches_the_textbook_example() -> None:
    # 8 of 10: p = .8, z = 1.96; centre = (.8 + z²/20) / (1 + z²/10) = .7167,
    # half = z·√(.016 + z²/400) / (1 + z²/10) = .2266 → .4902 to .9433.
    rate = wilson(8, 10)
    assert rate.value == pytest.approx(0.8)
    assert rate.low == pytest.approx(0.4902, abs=1e-4)
    assert rate.high == pytest.approx(0.9433, abs=1e-4)


def test_wilson_of_an_empty_group_is_undefined_and_of_all_or_none_touches_the_bound() -> None:
    assert wilson(0, 0) == effects.Rate(0, 0, None, None, None)
    assert wilson(0, 10).low == 0.0
    assert wilson(0, 10).high == pytest.approx(0.2775, abs=1e-4)
    assert wilson(10, 10).high == 1.0


def test_newcombe_difference_matches_newcombes_published_example() -> None:
    # Newcombe (1998), example (a): 56/70 − 48/80 = .2000, hybrid score interval .0524 to .3339.
    difference = newcombe(wilson(56, 70), wilson(48, 80))
    assert difference is not None
    assert difference.value == pytest.approx(0.2)
    assert difference.low == pytest.approx(0.0524, abs=1e-4)
    assert difference.high == pytest.approx(0.3339, abs=1e-4)
    assert newcombe(wilson(1, 2), wilson(0, 0)) is None


def test_required_sample_for_ten_points_from_fifty_percent_is_388_per_group() -> None:
    # p₁ = .5, p₂ = .6, p̄ = .55: [1.96·√(2·.55·.45) + .8416·√(.25 + .24)]² / .01 = 387.3 → 388.
    assert required_sample(baseline=0.5, ratio=1) == (388, 388)
    # A 10% holdout (9 acted per held out) needs fewer held out but many more acted on.
    held, acted = required_sample(baseline=0.5, ratio=9)
    assert (held, acted) == (213, 1917)


# --- A playbook's effect ----------------------------------------------------------------------


@pytest.mark.django_db
def test_effect_counts_runs_tasks_and_the_recovery_of_acted_and_held_out_customers() -> None:
    pb = playbook({"kind": "recovered", "metric": "events_28d", "days": 60})
    names = ["A", "B", "C", "D", "E", "F", "G", "H"]
    c = {name: Customer.objects.create(name=name) for name in names}
    for name in "ABCDG":
        run(pb, c[name], TRIGGERED)
    for name in "EF":
        run(pb, c[name], TRIGGERED, held=True)
    run(pb, c["H"], date(2026, 6, 20))  # 10 days old: pending, not counted
    # Usage 28 days before the drop was 100 for everyone; 60 days after: A 100 and B 120 and
    # C 110 recovered, D 70 did not; held out E 100 did, F 50 did not; G has no values.
    write_metrics(BEFORE, [(c[n].pk, "events_28d", 100.0) for n in "ABCDEF"])
    after = {"A": 100.0, "B": 120.0, "C": 110.0, "D": 70.0, "E": 100.0, "F": 50.0}
    write_metrics(AFTER, [(c[n].pk, "events_28d", value) for n, value in after.items()])
    # Tasks: A's done in 1 day, B's in 3, C's open, D's cancelled.
    runs = {r.customer.name: r for r in PlaybookRun.objects.select_related("customer")}
    for name, status, days in (("A", "done", 1), ("B", "done", 3), ("C", "open", None)):
        Task.objects.create(
            customer=c[name],
            title="Check in",
            run=runs[name],
            status=status,
            created_at=at(TRIGGERED),
            completed_at=at(TRIGGERED + timedelta(days=days)) if days else None,
        )
    Task.objects.create(customer=c["D"], title="x", run=runs["D"], status=TaskStatus.CANCELLED)

    with override("en"):
        effect = playbook_effect(playbook=pb, as_of=AS_OF)

    assert (effect.fired, effect.acted, effect.held_out) == (8, 6, 2)
    assert effect.fired_last_30_days == 1
    assert [(m.month, m.acted, m.held_out) for m in effect.by_month] == [
        (date(2026, 4, 1), 5, 2),
        (date(2026, 6, 1), 1, 0),
    ]
    assert (effect.tasks_created, effect.tasks_completed, effect.tasks_open) == (4, 2, 1)
    assert effect.median_days_to_completion == 2.0
    assert (effect.pending, effect.unmeasured) == (1, 1)
    acted, held = effect.acted_outcome, effect.held_out_outcome
    assert acted is not None
    assert held is not None
    assert (acted.numerator, acted.denominator) == (3, 4)
    assert (held.numerator, held.denominator) == (1, 2)
    # 3/4: centre (.75 + z²/8)/(1 + z²/4) = .6275, half .3269 → .3006 to .9544.
    assert acted.low == pytest.approx(0.3006, abs=1e-4)
    assert acted.high == pytest.approx(0.9544, abs=1e-4)
    # 1/2: centre .5, half z·√(.125 + z²/16)/(1 + z²/2) = .4055 → .0945 to .9055.
    assert held.low == pytest.approx(0.0945, abs=1e-4)
    assert held.high == pytest.approx(0.9055, abs=1e-4)
    # .25 − √((.75 − .3006)² + (.9055 − .5)²) = −.3553; .25 + √((.9544 − .75)² + (.5 − .0945)²)
    # = .7041.
    assert effect.difference is not None
    assert effect.difference.value == pytest.approx(0.25)
    assert effect.difference.low == pytest.approx(-0.3553, abs=1e-4)
    assert effect.difference.high == pytest.approx(0.7041, abs=1e-4)
    # Held-out rate .5 and 9 acted per held out: 213 held out and 1917 acted are needed; the
    # acted group is 1913 short, which at 10 runs per 9 acted is 2126 more runs.
    assert effect.verdict == Verdict.NOT_ENOUGH
    assert effect.needed == (213, 1917)
    assert effect.needed_more == 2126
    assert effect.verdict_text == (
        "Not enough customers yet: about 2126 more measured runs are needed to detect a "
        "10-point difference."
    )


@pytest.mark.django_db
def test_retained_means_a_subscription_still_in_service_days_later() -> None:
    pb = playbook({"kind": "retained", "days": 30}, holdout=0.5)
    product = Product.objects.create(code="p", name="P")
    stays = Customer.objects.create(name="Stays")
    leaves = Customer.objects.create(name="Leaves")
    kept = Customer.objects.create(name="Kept")
    for customer, end in ((stays, None), (leaves, TRIGGERED + timedelta(days=30)), (kept, None)):
        Subscription.objects.create(
            customer=customer, product=product, start_date=date(2025, 1, 1), end_date=end,
            mrr=Decimal(100),
        )  # fmt: skip
    run(pb, stays, TRIGGERED)
    run(pb, leaves, TRIGGERED)  # its end date is the first day without service: not retained
    run(pb, kept, TRIGGERED, held=True)
    effect = playbook_effect(playbook=pb, as_of=AS_OF)
    assert effect.acted_outcome is not None
    assert effect.held_out_outcome is not None
    assert (effect.acted_outcome.numerator, effect.acted_outcome.denominator) == (1, 2)
    assert (effect.held_out_outcome.numerator, effect.held_out_outcome.denominator) == (1, 1)


@pytest.mark.django_db
def test_improved_means_higher_than_on_the_trigger_day() -> None:
    pb = playbook({"kind": "improved", "metric": "seat_utilisation_28d", "days": 30}, 0.5)
    up, flat = Customer.objects.create(name="Up"), Customer.objects.create(name="Flat")
    run(pb, up, TRIGGERED)
    run(pb, flat, TRIGGERED)
    write_metrics(
        TRIGGERED, [(up.pk, "seat_utilisation_28d", 0.5), (flat.pk, "seat_utilisation_28d", 0.6)]
    )
    write_metrics(
        TRIGGERED + timedelta(days=30),
        [(up.pk, "seat_utilisation_28d", 0.7), (flat.pk, "seat_utilisation_28d", 0.6)],
    )
    rate = playbook_effect(playbook=pb, as_of=AS_OF).acted_outcome
    assert rate is not None
    assert (rate.numerator, rate.denominator) == (1, 2)


def _population(pb: Playbook, acted: tuple[int, int], held: tuple[int, int]) -> None:
    """``acted`` = (recovered, total) of acted-on runs, ``held`` likewise, with metric files."""
    customers = Customer.objects.bulk_create(
        Customer(name=f"C{index:04d}") for index in range(acted[1] + held[1])
    )
    groups = [(False, acted, customers[: acted[1]]), (True, held, customers[acted[1] :])]
    before, after = [], []
    for is_held, (recovered, _total), members in groups:
        PlaybookRun.objects.bulk_create(
            PlaybookRun(
                playbook=pb,
                customer=customer,
                occurrence_key="timeline:1",
                triggered_on=TRIGGERED,
                holdout=is_held,
            )
            for customer in members
        )
        for index, customer in enumerate(members):
            before.append((customer.pk, "events_28d", 100.0))
            after.append((customer.pk, "events_28d", 100.0 if index < recovered else 50.0))
    write_metrics(BEFORE, before)
    write_metrics(AFTER, after)


@pytest.mark.django_db
def test_a_clear_difference_says_the_playbook_helps() -> None:
    pb = playbook({"kind": "recovered", "metric": "events_28d", "days": 60}, holdout=0.5)
    _population(pb, acted=(90, 100), held=(50, 100))
    with override("en"):
        effect = playbook_effect(playbook=pb, as_of=AS_OF)
    assert effect.difference is not None
    assert effect.difference.low > 0
    assert effect.verdict == Verdict.HELPS
    assert effect.verdict_text == "The playbook helps: the difference is above zero."


@pytest.mark.django_db
def test_equal_rates_on_a_large_enough_sample_say_no_difference() -> None:
    # 400 a group at 50% each is more than the 388 needed to see 10 points.
    pb = playbook({"kind": "recovered", "metric": "events_28d", "days": 60}, holdout=0.5)
    _population(pb, acted=(200, 400), held=(200, 400))
    effect = playbook_effect(playbook=pb, as_of=AS_OF)
    assert effect.difference is not None
    assert effect.difference.low < 0 < effect.difference.high
    assert effect.verdict == Verdict.NO_DIFFERENCE
    assert effect.needed_more == 0


@pytest.mark.django_db
def test_a_worse_acted_group_says_so() -> None:
    pb = playbook({"kind": "recovered", "metric": "events_28d", "days": 60}, holdout=0.5)
    _population(pb, acted=(20, 100), held=(60, 100))
    assert playbook_effect(playbook=pb, as_of=AS_OF).verdict == Verdict.HURTS


@pytest.mark.django_db
def test_without_an_outcome_or_a_holdout_there_is_nothing_to_compare() -> None:
    none = playbook({}, holdout=0.0, key="none")
    assert playbook_effect(playbook=none, as_of=AS_OF).verdict == Verdict.NO_OUTCOME
    assert playbook_effect(playbook=none, as_of=AS_OF).acted_outcome is None
    no_holdout = playbook({"kind": "retained", "days": 30}, holdout=0.0, key="nohold")
    customer = Customer.objects.create(name="A")
    run(no_holdout, customer, TRIGGERED)
    effect = playbook_effect(playbook=no_holdout, as_of=AS_OF)
    assert effect.verdict == Verdict.NO_HOLDOUT
    assert effect.held_out_outcome is not None
    assert effect.held_out_outcome.value is None


@pytest.mark.django_db
def test_an_effect_with_no_runs_has_empty_rates_not_zeros() -> None:
    pb = playbook({"kind": "recovered", "metric": "events_28d", "days": 60})
    effect = playbook_effect(playbook=pb, as_of=AS_OF)
    assert effect.fired == 0
    assert effect.median_days_to_completion is None
    assert effect.completion.value is None
    assert effect.acted_outcome is not None
    assert effect.acted_outcome.value is None
    assert effect.difference is None
    assert effect.verdict == Verdict.NOT_ENOUGH
