"""A backfill gives exactly the signals and timeline of running the daily evaluation each day."""

from datetime import timedelta

import pytest

from kizuna.core.models import TimelineEntry
from kizuna.customers.models import Contact
from kizuna.health.models import RiskSignal
from kizuna.health.signals import SignalError, backfill_signals, evaluate_signals
from kizuna.health.signals.evaluate import SignalRunResult
from kizuna.health.tests.signals_helpers import (
    customer,
    d,
    days,
    snapshot,
    write_events,
    write_metrics,
)
from kizuna.health.tests.test_signals import nps, score, step

pytestmark = pytest.mark.django_db

START, END = d("2026-06-01"), d("2026-07-20")


def history() -> None:
    """Several kinds opening, staying and closing inside ``[START, END]``."""
    dropping = customer("Dropping")
    leaving = customer("Leaving", end="2026-07-05")  # drops, then leaves: closed by the end
    renewing = customer("Renewing", end="2026-09-15")
    people = customer("People")
    write_metrics(
        {dropping.pk: step(1000, 600, d("2026-06-10")), leaving.pk: step(500, 300, d("2026-06-20"))},
        start=START - timedelta(days=400), end=END,
    )  # fmt: skip
    write_metrics(
        {dropping.pk: step(0.5, 0.2, d("2026-07-01")), people.pk: lambda day: 0.25},
        start=START - timedelta(days=5), end=END, metric="seat_utilisation_28d",
    )  # fmt: skip
    write_events(
        [("Dropping", "u-1", "login", day) for day in days(START - timedelta(40), END)]
        + [("People", "p-1", "login", d("2026-06-03"))]
    )
    Contact.objects.create(customer=people, name="Aoki", role="champion", ended_on=d("2026-06-12"))
    Contact.objects.create(customer=people, name="Baba", role="admin", started_on=d("2026-06-12"))
    nps(renewing.pk, 5, "2026-06-05")
    nps(renewing.pk, 10, "2026-07-01")
    for day, value, band in (("2026-06-01", 75.0, "good"), ("2026-06-20", 50.0, "watch"),
                             ("2026-07-10", 30.0, "at_risk"), ("2026-07-15", 80.0, "good")):  # fmt: skip
        score(renewing.pk, day, value, band)


def test_backfill_equals_the_daily_evaluation_run_each_day_in_order() -> None:
    history()
    daily = SignalRunResult()
    for day in days(START, END):
        daily += evaluate_signals(day=day)
    expected = snapshot()
    kinds = {row[1] for row in expected[0]}
    # The history exercises most kinds, opening and closing them.
    assert kinds >= {"usage_drop", "champion_left", "new_admin", "nps_detractor",
                     "renewal_at_risk", "low_seat_utilisation", "no_login"}  # fmt: skip
    assert daily.opened > 0
    assert daily.closed > 0
    assert daily.kept > 0

    RiskSignal.objects.all().delete()
    TimelineEntry.objects.filter(kind__startswith="risk.").delete()
    seen: list[tuple[str, int, int]] = []
    backfilled = backfill_signals(
        start=START, end=END, progress=lambda phase, done, total: seen.append((phase, done, total))
    )
    assert snapshot() == expected
    assert backfilled == daily
    assert backfilled.days == (END - START).days + 1
    assert seen[-1] == ("signals", backfilled.days, backfilled.days)


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
