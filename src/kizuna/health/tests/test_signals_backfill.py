"""A backfill gives exactly the signals and timeline of running the daily evaluation each day."""

from datetime import date, timedelta
from typing import Any

import pytest

from kizuna.core.models import TimelineEntry
from kizuna.customers.models import Contact
from kizuna.health.models import Resolution, RiskSignal, SignalRule
from kizuna.health.signals import (
    SignalError,
    backfill_signals,
    ensure_default_rules,
    evaluate_signals,
)
from kizuna.health.signals.evaluate import SignalRunResult
from kizuna.health.tests.signals_helpers import (
    customer,
    d,
    days,
    snapshot,
    write_events,
    write_metrics,
)
from kizuna.health.tests.test_signals import nps, score, step, usage_history

pytestmark = pytest.mark.django_db

START, END = d("2026-06-01"), d("2026-06-24")


def dip(before: float, low: float, down: date, up: date) -> Any:
    return lambda day: low if down <= day < up else before


def history() -> None:
    """Every kind but the users/logins drops (the usage drop's code on other metrics) opening,
    staying open and (all but one) closing inside ``[START, END]``; the people rules look back
    7 days instead of 30 to fit in the range."""
    from kizuna.onboarding.models import PlanMilestone
    from kizuna.onboarding.plans import create_plan
    from kizuna.onboarding.tests.test_programs import make_version

    dropping = customer("Dropping")
    leaving = customer("Leaving", end="2026-06-18")  # drops, then leaves: closed on 06-18
    renewing = customer("Renewing", end="2026-09-05")  # renewal within 90 days from 06-07
    people = customer("People")
    # events_28d dips to 600 over 06-05 … 06-11: −40% vs 28 days earlier, read from 06-06 to
    # 06-12, cleared on 06-13; Leaving's 300 vs 500 from 06-08 (read from 06-09).
    write_metrics(
        {dropping.pk: dip(1000, 600, d("2026-06-05"), d("2026-06-12")),
         leaving.pk: step(500, 300, d("2026-06-08"))},
        start=START - timedelta(days=400), end=END,
    )  # fmt: skip
    write_metrics(
        {dropping.pk: step(0.5, 0.2, d("2026-06-10")), people.pk: lambda day: 0.25},
        start=START - timedelta(days=5), end=END, metric="seat_utilisation_28d",
    )  # fmt: skip
    # People logs in once (06-03): no login until 06-03, again from 06-18; the others never.
    write_events(
        [("Dropping", "u-1", "login", day) for day in days(START - timedelta(20), END)]
        + [("People", "p-1", "login", d("2026-06-03"))]
    )
    Contact.objects.create(customer=people, name="Aoki", role="champion", ended_on=d("2026-06-05"))
    Contact.objects.create(customer=people, name="Baba", role="admin", started_on=d("2026-06-05"))
    ensure_default_rules()
    for kind in ("champion_left", "new_admin"):
        rule = SignalRule.objects.get(kind=kind)
        rule.params = {**rule.params, "within_days": 7}
        rule.save()
    # People's kickoff was due 06-08 and done 06-15: overdue from 06-09, closed on 06-15.
    plan = create_plan(customer=people, version=make_version([{"key": "kickoff"}]),
                       start_date=d("2026-06-01"))  # fmt: skip
    PlanMilestone.objects.filter(plan=plan).update(due_date=d("2026-06-08"))
    PlanMilestone.objects.filter(plan=plan).update(completed_on=d("2026-06-15"), status="done")
    nps(renewing.pk, 5, "2026-06-03")
    nps(renewing.pk, 10, "2026-06-15")
    for day, value, band in (("2026-06-01", 75.0, "good"), ("2026-06-08", 50.0, "watch"),
                             ("2026-06-14", 30.0, "at_risk"), ("2026-06-18", 80.0, "good")):  # fmt: skip
        score(renewing.pk, day, value, band)


def forget_signals() -> None:
    RiskSignal.objects.all().delete()
    TimelineEntry.objects.filter(kind__startswith="risk.").delete()


def test_backfill_equals_the_daily_evaluation_run_each_day_in_order() -> None:
    history()
    daily = SignalRunResult()
    for day in days(START, END):
        daily += evaluate_signals(day=day)
    expected = snapshot()
    opened = {row[1] for row in expected[0]}
    closed = {row[1] for row in expected[0] if row[5] is not None}
    # The history opens these kinds and closes all but the seat utilisation.
    assert opened == {"usage_drop", "no_login", "champion_left", "new_admin", "milestone_overdue",
                      "nps_detractor", "renewal_at_risk", "low_seat_utilisation"}  # fmt: skip
    assert closed == opened - {"low_seat_utilisation"}
    assert daily.kept > 0

    forget_signals()
    seen: list[tuple[str, int, int]] = []
    backfilled = backfill_signals(
        start=START, end=END, progress=lambda phase, done, total: seen.append((phase, done, total))
    )
    assert snapshot() == expected
    assert backfilled == daily
    assert backfilled.days == (END - START).days + 1
    assert seen[-1] == ("signals", backfilled.days, backfilled.days)


def test_a_backfill_after_a_dismissal_and_a_rule_switched_off_equals_the_daily_runs() -> None:
    """The days before ``middle`` ran daily; then a CSM dismissed the usage drop (its episode
    goes on: not raised again) and the NPS rule was switched off (its signal closes as
    dismissed). The rest of the days, backfilled, give what the daily runs give."""
    history()
    kinds = ["usage_drop", "nps_detractor", "champion_left"]
    middle = d("2026-06-08")

    def first_days() -> None:
        forget_signals()
        SignalRule.objects.filter(kind="nps_detractor").update(enabled=True)
        for day in days(START, middle - timedelta(days=1)):
            evaluate_signals(day=day, kinds=kinds)
        RiskSignal.objects.filter(kind="usage_drop").update(
            closed_on=middle - timedelta(days=1), resolution=Resolution.DISMISSED
        )
        SignalRule.objects.filter(kind="nps_detractor").update(enabled=False)

    first_days()
    daily = SignalRunResult()
    for day in days(middle, END):
        daily += evaluate_signals(day=day, kinds=kinds)
    expected = snapshot()
    resolutions = {(row[1], row[6]) for row in expected[0]}
    assert {("usage_drop", "dismissed"), ("nps_detractor", "dismissed")} <= resolutions
    assert [row[1] for row in expected[0]].count("usage_drop") == 2  # Dropping's, Leaving's

    first_days()
    assert backfill_signals(start=middle, end=END, kinds=kinds) == daily
    assert snapshot() == expected


def test_a_backfill_run_again_over_the_same_days_changes_nothing() -> None:
    history()
    backfill_signals(start=START, end=END)
    before = snapshot()
    again = backfill_signals(start=START, end=END)
    assert snapshot() == before
    assert again.opened == 0


def test_a_backfill_refuses_a_start_after_its_end() -> None:
    with pytest.raises(SignalError) as error:
        backfill_signals(start=END, end=START)
    assert error.value.field == "start"


# -- hysteresis: opened on the full rule, kept open on the relaxed bound ----------------------

T = d("2026-06-10")


def hovering(day: date) -> float:
    """events_28d: 1,000 before T; from T, blocks of two days at 780 (−22% vs 28 days earlier)
    and 820 (−18%) in turn up to T + 19; 950 (−5%) from T + 20 (the usage has recovered)."""
    if day < T:
        return 1000.0
    offset = (day - T).days
    if offset >= 20:
        return 950.0
    return 780.0 if offset // 4 * 4 == offset // 2 * 2 else 820.0


def usage_drops() -> list[tuple[date, date, date | None]]:
    return [
        (s.opened_on, s.last_seen_on, s.closed_on)
        for s in RiskSignal.objects.filter(kind="usage_drop").order_by("opened_on")
    ]


def test_a_customer_hovering_around_the_threshold_keeps_one_signal_until_it_recovers() -> None:
    hover = customer("Hover")
    usage_history({hover.pk: hovering}, end=T + timedelta(days=24))
    ensure_default_rules()
    judged = days(T, T + timedelta(days=24))  # a signal on day d reads the metric day d − 1

    # Without hysteresis (kept only while the drop is the full 20%): an episode per 780 block,
    # opened the day after the block starts and cleared two days later.
    rule = SignalRule.objects.get(kind="usage_drop")
    rule.params = {**rule.params, "keep_ratio": 1.0}
    rule.save()
    for day in judged:
        evaluate_signals(day=day, kinds=["usage_drop"])
    assert usage_drops() == [
        (T + timedelta(days=n + 1), T + timedelta(days=n + 2), T + timedelta(days=n + 3))
        for n in (0, 4, 8, 12, 16)
    ]

    # With it (keep_ratio 0.5: kept while the fall is at least 10%): one episode, from the
    # first −22% (metric T, judged T + 1) to the recovery to −5% (metric T + 20, judged T + 21).
    forget_signals()
    rule.params = {**rule.params, "keep_ratio": 0.5}
    rule.save()
    daily = SignalRunResult()
    for day in judged:
        daily += evaluate_signals(day=day, kinds=["usage_drop"])
    assert usage_drops() == [(T + timedelta(days=1), T + timedelta(days=20), T + timedelta(21))]
    assert (daily.opened, daily.kept, daily.closed) == (1, 19, 1)
    [signal] = RiskSignal.objects.all()
    # Its last day read metric day T + 19 (−18%): kept by the relaxed bound, and it says so.
    assert signal.details["held"] is True
    assert signal.details["change"] == pytest.approx(-0.18)
    assert signal.details["keep_change"] == pytest.approx(-0.1)
    assert signal.reason == (
        "Events (28 days) is still 18% down (from 1,000 to 820) vs the previous 28 days: the "
        "signal stays open until the fall is smaller than 10% (it opens on a fall of 20% beyond "
        "the usual change and the season)."
    )
    assert [e.kind for e in TimelineEntry.objects.order_by("occurred_at", "id")] == [
        "risk.raised",
        "risk.closed",
    ]

    # The backfill takes the same decisions.
    expected = snapshot()
    forget_signals()
    assert backfill_signals(start=judged[0], end=judged[-1], kinds=["usage_drop"]) == daily
    assert snapshot() == expected
