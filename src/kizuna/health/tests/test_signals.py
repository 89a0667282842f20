"""Risk signals on hand-made histories: each kind fires, is not raised twice, and closes."""

from datetime import date, datetime, timedelta
from typing import Any

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone, translation

from kizuna.analytics.models import ProductUser
from kizuna.core.models import TimelineEntry, User
from kizuna.customers.models import Contact
from kizuna.health.models import (
    HealthScore,
    Resolution,
    RiskSignal,
    Scorecard,
    ScorecardVersion,
    SignalKind,
    SignalRule,
)
from kizuna.health.signals import (
    SignalError,
    SignalRuleError,
    close_signal,
    conditions_on,
    customer_signals,
    default_params,
    ensure_default_rules,
    evaluate_signals,
    open_signals,
    signal_counts_by_severity,
    signal_reason,
    validate_params,
)
from kizuna.health.signals.evaluate import _create
from kizuna.health.tests.signals_helpers import (
    customer,
    d,
    risk_entries,
    rolling,
    signals,
    write_events,
    write_metrics,
)

pytestmark = pytest.mark.django_db

T = d("2026-06-10")  # the day usage steps down


def step(before: float, after: float, at: date = T) -> Any:
    return lambda day: before if day < at else after


def usage_history(series: dict[int, Any], *, end: date, metric: str = "events_28d") -> None:
    """Metric files from 400 days before ``end`` (a year and a baseline) up to ``end``."""
    write_metrics(series, start=end - timedelta(days=400), end=end, metric=metric)


def evaluate(day: date, *kinds: str) -> Any:
    return evaluate_signals(day=day, kinds=list(kinds) or None)


# -- usage drop: fires, stays open once, closes -----------------------------------------------


def test_usage_drop_opens_once_stays_open_and_closes_when_the_comparison_no_longer_drops() -> None:
    acme = customer("Acme")
    # events_28d is 1,000 until T and 700 from T: the change vs 28 days earlier is −30% on the
    # days T … T+27 and 0% from T+28. A signal on day d reads the metric day d − 1.
    usage_history({acme.pk: step(1000, 700)}, end=T + timedelta(days=30))

    assert evaluate(T, "usage_drop").opened == 0
    first = evaluate(T + timedelta(days=1), "usage_drop")
    assert (first.opened, first.kept, first.closed) == (1, 0, 0)
    again = evaluate(T + timedelta(days=2), "usage_drop")
    assert (again.opened, again.kept, again.closed) == (0, 1, 0)
    still = evaluate(T + timedelta(days=28), "usage_drop")  # metric day T + 27: still −30%
    assert (still.opened, still.kept, still.closed) == (0, 1, 0)
    gone = evaluate(T + timedelta(days=29), "usage_drop")  # metric day T + 28: 700 vs 700
    assert (gone.opened, gone.kept, gone.closed) == (0, 0, 1)

    [signal] = signals()
    assert signal.customer_id == acme.pk
    assert signal.kind == SignalKind.USAGE_DROP
    assert signal.severity == "high"
    assert signal.opened_on == T + timedelta(days=1)
    assert signal.last_seen_on == T + timedelta(days=28)
    assert signal.closed_on == T + timedelta(days=29)
    assert signal.resolution == Resolution.CLEARED
    details = signal.details
    assert details["now"] == 700
    assert details["previous"] == 1000
    assert details["change"] == pytest.approx(-0.3)
    assert details["measured_on"] == (T + timedelta(days=27)).isoformat()
    # A flat history: usual change 0, spread at its floor (5%), limit 0 − 1.5 × 5% = −7.5%.
    assert details["baseline"] == {
        "usual": 0.0, "spread": 0.05, "k": 1.5, "limit": -0.075, "weeks": 26,
    }  # fmt: skip
    assert details["season"]["year_change"] == 0.0
    assert details["season"]["adjusted"] == pytest.approx(-0.3)
    assert details["weekly_rhythm"] == "cancels"
    assert signal.reason == (
        "Events (28 days) fell 30% (from 1,000 to 700) vs the previous 28 days; its usual "
        "change is +0% ± 5%; the same weeks a year earlier changed +0% (whole weeks compared, "
        "so the weekly rhythm cancels out)."
    )

    [raised] = risk_entries("risk.raised")
    assert raised.customer_id == acme.pk
    assert raised.payload == {"signal_id": signal.pk, "kind": "usage_drop", "severity": "high"}
    assert timezone.localtime(raised.occurred_at).date() == T + timedelta(days=1)
    [closed] = risk_entries("risk.closed")
    assert closed.payload == {"signal_id": signal.pk, "kind": "usage_drop", "resolution": "cleared"}
    assert timezone.localtime(closed.occurred_at).date() == T + timedelta(days=29)


def test_a_drop_within_the_customers_usual_swings_raises_nothing_while_a_steady_one_does() -> None:
    steady, swinging = customer("Steady"), customer("Swinging")
    day = T + timedelta(days=1)
    measured = T

    def wave(on: date) -> float:
        # 1,000 for four weeks, 700 for four weeks, and so on, ending low on the metric day.
        weeks = (measured - on).days // 7
        return 700.0 if (weeks // 4) % 2 == 0 else 1000.0

    usage_history({steady.pk: step(1000, 700), swinging.pk: wave}, end=measured)
    found = conditions_on(day=day, rules={"usage_drop": default_params("usage_drop")})
    assert set(found["usage_drop"]) == {steady.pk}
    # Swinging's 26 weekly changes: 14 × +43% (1,000 vs 700) and 12 × −30%: usual +43%,
    # spread (43% + 30%) / 1.349 = 54%, limit 43% − 1.5 × 54% = −38%: −30% is within.
    assert "usage_drop" in found
    assert wave(measured) / wave(measured - timedelta(28)) - 1 == pytest.approx(-0.3)


def test_a_customer_without_enough_history_is_judged_on_the_size_of_the_drop_alone() -> None:
    young = customer("Young", start="2026-05-01")
    write_metrics({young.pk: step(100, 60)}, start=d("2026-05-01"), end=T)
    found = conditions_on(
        day=T + timedelta(days=1), rules={"usage_drop": default_params("usage_drop")}
    )
    details = found["usage_drop"][young.pk]
    assert details["baseline"] is None
    assert details["season"] is None
    assert details["change"] == pytest.approx(-0.4)
    with translation.override("en"):
        assert "too little history to know its usual change" in signal_reason("usage_drop", details)


def test_a_customer_quiet_every_august_does_not_alarm_in_august_but_a_real_drop_does() -> None:
    def august(rate_2025: float, rate_2026: float) -> Any:
        def daily(day: date) -> float:
            if day.month == 8:
                return rate_2025 if day.year == 2025 else rate_2026
            return 50.0

        return rolling(daily)

    quiet, real, first_time = customer("Quiet"), customer("Real"), customer("FirstTime")
    day = d("2026-08-30")  # metric day 2026-08-29 (a Saturday); a year earlier: 2025-08-30
    usage_history(
        {quiet.pk: august(25, 25), real.pk: august(25, 10), first_time.pk: august(50, 25)},
        end=day - timedelta(days=1),
    )
    found = conditions_on(day=day, rules={"usage_drop": default_params("usage_drop")})["usage_drop"]
    # Quiet: 700 (Aug 2–29 at 25) vs 1,375 (Jul 5–Aug 1) = −49%; a year earlier 700 vs 1,350
    # = −48%: net of the season (700/1375) / (700/1350) − 1 = −1.8%, no alarm.
    assert quiet.pk not in found
    # Real: 280 vs 1,360 = −79%; net of the same season (280/1360) / (700/1350) − 1 = −60%.
    assert found[real.pk]["change"] == pytest.approx(280 / 1360 - 1, abs=1e-4)
    assert found[real.pk]["season"]["year_change"] == pytest.approx(700 / 1350 - 1, abs=1e-4)
    assert found[real.pk]["season"]["adjusted"] == pytest.approx(
        (280 / 1360) / (700 / 1350) - 1, abs=1e-4
    )
    # FirstTime was busy last August: its −49% this August is beyond its season.
    assert found[first_time.pk]["season"]["year_change"] == 0.0
    assert found[first_time.pk]["change"] == pytest.approx(700 / 1375 - 1, abs=1e-4)


@pytest.mark.parametrize(
    ("kind", "metric", "before", "small", "large"),
    [
        ("active_users_down", "active_users_28d", 10, 9, 8),  # −10% no, −20% yes (20%)
        ("logins_down", "logins_28d", 100, 75, 70),  # −25% no, −30% yes (30%)
    ],
)
def test_users_and_logins_down_fire_from_their_own_threshold(
    kind: str, metric: str, before: float, small: float, large: float
) -> None:
    slight, clear = customer("Slight"), customer("Clear")
    usage_history(
        {slight.pk: step(before, small), clear.pk: step(before, large)}, end=T, metric=metric
    )
    result = evaluate(T + timedelta(days=1), kind)
    assert (result.opened, result.kept, result.closed) == (1, 0, 0)
    [signal] = signals(kind)
    assert signal.customer_id == clear.pk
    assert signal.details["metric"] == metric
    assert evaluate(T + timedelta(days=2), kind).opened == 0


def test_usage_signals_wait_when_the_metrics_are_stale_instead_of_closing() -> None:
    acme = customer("Acme")
    usage_history({acme.pk: step(1000, 700)}, end=T + timedelta(days=3))
    assert evaluate(T + timedelta(days=1), "usage_drop").opened == 1
    # The metric history stops at T + 3, which day T + 4 reads; three days more are allowed …
    assert evaluate(T + timedelta(days=7), "usage_drop").kept == 1
    # … later the usage is not judged at all: the signal stays open, untouched.
    late = evaluate(T + timedelta(days=8), "usage_drop")
    assert (late.opened, late.kept, late.closed) == (0, 0, 0)
    [signal] = signals()
    assert signal.closed_on is None
    assert signal.last_seen_on == T + timedelta(days=7)


def test_a_customer_no_longer_in_service_has_its_signals_closed() -> None:
    leaving = customer("Leaving", end="2026-06-15")
    usage_history({leaving.pk: step(1000, 700)}, end=T + timedelta(days=10))
    assert evaluate(T + timedelta(days=1), "usage_drop").opened == 1
    assert evaluate(d("2026-06-14"), "usage_drop").kept == 1
    assert evaluate(d("2026-06-15"), "usage_drop").closed == 1


# -- no login ------------------------------------------------------------------------------------


def test_no_login_fires_after_the_days_without_one_and_closes_on_the_next_login() -> None:
    quiet = customer("Quiet", start="2026-01-01")
    never = customer("Never", start="2026-06-05")
    write_events([
        ("Quiet", "q-1", "login", d("2026-05-01")),
        ("Quiet", "q-1", "login", d("2026-05-31")),
        ("Quiet", "q-1", "report.viewed", d("2026-06-10")),  # not a login
        ("Quiet", "q-1", "login", d("2026-06-20")),
    ])  # fmt: skip
    # On 06-14 the 14 days before are May 31 … Jun 13: a login on May 31.
    assert evaluate(d("2026-06-14"), "no_login").opened == 0
    assert evaluate(d("2026-06-15"), "no_login").opened == 1
    [signal] = signals("no_login")
    assert signal.customer_id == quiet.pk
    assert signal.details == {
        "days": 14, "last_login": "2026-05-31", "days_since": 15, "since_start": 165,
    }  # fmt: skip
    assert signal.reason == "No login for 15 days (last login on 2026-05-31)."
    assert evaluate(d("2026-06-16"), "no_login").kept == 1
    # Never started on 06-05: 14 days in service by 06-19.
    assert evaluate(d("2026-06-18"), "no_login").opened == 0
    assert evaluate(d("2026-06-19"), "no_login").opened == 1
    assert signals("no_login")[1].customer_id == never.pk
    assert signals("no_login")[1].reason == "No login since the contract started 14 days ago."
    closing = evaluate(d("2026-06-21"), "no_login")  # Quiet logged in on 06-20
    assert (closing.opened, closing.kept, closing.closed) == (0, 1, 1)


def test_no_login_judges_nothing_while_the_lake_has_no_login_at_all() -> None:
    customer("Acme")
    found = conditions_on(day=d("2026-06-15"), rules={"no_login": {"days": 14}})
    assert "no_login" not in found


# -- people: champion or admin left, new administrator ------------------------------------------


def test_champion_left_fires_on_the_day_and_closes_after_the_window() -> None:
    acme = customer("Acme")
    Contact.objects.create(customer=acme, name="Aoki", role="admin", ended_on=d("2026-06-10"))
    Contact.objects.create(customer=acme, name="Ueda", role="end_user", ended_on=d("2026-06-10"))
    assert evaluate(d("2026-06-09"), "champion_left").opened == 0
    assert evaluate(d("2026-06-10"), "champion_left").opened == 1
    assert evaluate(d("2026-06-11"), "champion_left").kept == 1
    assert evaluate(d("2026-07-09"), "champion_left").kept == 1  # the 30th day
    assert evaluate(d("2026-07-10"), "champion_left").closed == 1
    [signal] = signals()
    assert signal.reason == "Administrator Aoki left on 2026-06-10."


def test_new_admin_from_contacts_and_events_is_one_signal_but_not_the_first_admin() -> None:
    old, young = customer("Old"), customer("Young", start="2026-05-01")
    new = Contact.objects.create(
        customer=old, name="Baba", role="admin", started_on=d("2026-06-10"),
        product_user_id="old-admin-2",
    )  # fmt: skip
    Contact.objects.create(customer=young, name="Chiba", role="admin", started_on=d("2026-05-01"))
    ProductUser.objects.create(
        user_id="old-admin-2", account_key="Old", traits={"role": "admin"}, contact=new,
        first_seen=timezone.now(), last_seen=timezone.now(),
    )  # fmt: skip
    write_events([("Old", "old-user", "login", d("2026-01-05")),
                  ("Old", "old-admin-2", "login", d("2026-06-10"))])  # fmt: skip
    assert evaluate(d("2026-06-10"), "new_admin").opened == 1
    [signal] = signals()
    assert signal.customer_id == old.pk
    assert signal.details["people"] == [
        {"contact_id": new.pk, "name": "Baba", "since": "2026-06-10", "source": "contacts"}
    ]
    assert signal.reason == "Baba became administrator on 2026-06-10."
    # The next day, the events show the new admin too (first used on 06-10): still one signal.
    assert evaluate(d("2026-06-11"), "new_admin").kept == 1
    signal.refresh_from_db()
    assert signal.details["people"][0]["source"] == "contacts+events"
    assert evaluate(d("2026-07-10"), "new_admin").closed == 1


def test_new_admin_seen_only_in_product_events_through_the_identify_traits() -> None:
    acme = customer("Acme")
    ProductUser.objects.create(
        user_id="u-9", account_key="Acme", name="Doi", traits={"role": "Administrator"},
        first_seen=timezone.now(), last_seen=timezone.now(),
    )  # fmt: skip
    write_events([("Acme", "u-1", "login", d("2026-01-05")),
                  ("Acme", "u-1", "login", d("2026-06-09")),  # not an admin
                  ("Acme", "u-9", "login", d("2026-06-12"))])  # fmt: skip
    assert evaluate(d("2026-06-12"), "new_admin").opened == 0  # seen from the next day
    assert evaluate(d("2026-06-13"), "new_admin").opened == 1
    [signal] = signals()
    assert signal.customer_id == acme.pk
    assert signal.details["people"][0]["source"] == "events"
    assert signal.reason == "A new administrator, Doi, first used the product on 2026-06-12."


# -- onboarding, NPS, renewal, seats ---------------------------------------------------------------


def test_milestone_overdue_fires_after_the_due_date_and_closes_when_done() -> None:
    from kizuna.onboarding.models import PlanMilestone
    from kizuna.onboarding.plans import create_plan
    from kizuna.onboarding.tests.test_programs import make_version

    acme = customer("Acme", start="2026-06-01")
    version = make_version([{"key": "kickoff"}, {"key": "tour", "required": False}])
    plan = create_plan(customer=acme, version=version, start_date=d("2026-06-01"))
    PlanMilestone.objects.filter(plan=plan).update(due_date=d("2026-06-08"))
    assert evaluate(d("2026-06-08"), "milestone_overdue").opened == 0
    assert evaluate(d("2026-06-09"), "milestone_overdue").opened == 1
    [signal] = signals()
    assert signal.details["days_overdue"] == 1
    assert signal.details["count"] == 1
    assert signal.reason == "Onboarding milestone “Kickoff” is 1 days overdue (due 2026-06-08)."
    PlanMilestone.objects.filter(plan=plan, milestone__key="kickoff").update(
        completed_on=d("2026-06-12"), status="done"
    )
    assert evaluate(d("2026-06-11"), "milestone_overdue").kept == 1
    assert evaluate(d("2026-06-12"), "milestone_overdue").closed == 1


def nps(customer_id: int, score: int, on: str, contact_id: int = 1) -> None:
    moment = timezone.make_aware(datetime.fromisoformat(f"{on} 12:00"))
    TimelineEntry.objects.create(
        customer_id=customer_id, kind="nps.answered", title="NPS", occurred_at=moment,
        payload={"score": score, "contact_id": contact_id},
    )  # fmt: skip


def test_nps_detractor_counts_each_contacts_latest_answer_within_the_window() -> None:
    acme, later = customer("Acme"), customer("Later")
    nps(acme.pk, 4, "2026-06-10")
    nps(later.pk, 3, "2026-06-10")
    nps(later.pk, 9, "2026-06-20")  # the same contact changed their mind
    assert evaluate(d("2026-06-09"), "nps_detractor").opened == 0
    assert evaluate(d("2026-06-10"), "nps_detractor").opened == 2
    assert signals()[0].reason == "NPS answer of 4 on 2026-06-10 (a detractor: 6 or less)."
    twentieth = evaluate(d("2026-06-20"), "nps_detractor")
    assert (twentieth.kept, twentieth.closed) == (1, 1)
    assert evaluate(d("2026-09-07"), "nps_detractor").kept == 1  # the 90th day
    assert evaluate(d("2026-09-08"), "nps_detractor").closed == 1


def score(customer_id: int, on: str, value: float, band: str) -> None:
    version = ScorecardVersion.objects.first()
    if version is None:
        card = Scorecard.objects.create(name="Standard")
        version = ScorecardVersion.objects.create(scorecard=card, number=1, status="published")
    HealthScore.objects.create(
        customer_id=customer_id, day=d(on), version=version, score=value, band=band
    )


def test_renewal_at_risk_reads_the_latest_score_before_the_day() -> None:
    acme = customer("Acme", end="2026-09-01")
    healthy = customer("Healthy", end="2026-09-01")
    score(acme.pk, "2026-06-01", 55.0, "watch")
    score(healthy.pk, "2026-06-01", 80.0, "good")
    assert evaluate(d("2026-06-02"), "renewal_at_risk").opened == 0  # renewal in 91 days
    assert evaluate(d("2026-06-03"), "renewal_at_risk").opened == 1
    [signal] = signals()
    assert signal.customer_id == acme.pk
    assert signal.details == {
        "renewal_date": "2026-09-01", "days_to_renewal": 90, "within_days": 90,
        "band": "watch", "score": 55.0, "score_day": "2026-06-01",
    }  # fmt: skip
    assert signal.reason == (
        "Renewal on 2026-09-01 (in 90 days) with a health score of 55 (Watch)."
    )
    score(acme.pk, "2026-06-05", 72.0, "good")
    assert evaluate(d("2026-06-05"), "renewal_at_risk").kept == 1  # that day's score: not yet
    assert evaluate(d("2026-06-06"), "renewal_at_risk").closed == 1


def test_low_seat_utilisation_waits_for_the_settling_in_period() -> None:
    acme = customer("Acme", start="2026-01-01")
    full = customer("Full", start="2026-01-01")
    write_metrics(
        {acme.pk: step(0.2, 0.35, d("2026-04-10")), full.pk: lambda day: 0.9},
        start=d("2026-03-25"), end=d("2026-04-12"), metric="seat_utilisation_28d",
    )  # fmt: skip
    assert evaluate(d("2026-03-31"), "low_seat_utilisation").opened == 0  # 89 days in
    assert evaluate(d("2026-04-01"), "low_seat_utilisation").opened == 1
    [signal] = signals()
    assert signal.customer_id == acme.pk
    assert signal.reason == "Seat utilisation is 20%, below 30%."
    assert evaluate(d("2026-04-10"), "low_seat_utilisation").kept == 1  # reads 04-09
    assert evaluate(d("2026-04-11"), "low_seat_utilisation").closed == 1


# -- closing by a CSM, duplicates, rules, selectors ----------------------------------------------


def test_a_dismissed_signal_is_not_raised_again_while_the_episode_lasts() -> None:
    acme = customer("Acme")
    csm = User.objects.create_user(username="csm", password="x")
    Contact.objects.create(customer=acme, name="Aoki", role="admin", ended_on=d("2026-06-10"))
    evaluate(d("2026-06-10"), "champion_left")
    [signal] = signals()
    closed = close_signal(signal_id=signal.pk, resolution="dismissed", note="Known", user=csm)
    assert closed.closed_on == timezone.localdate()
    assert closed.closed_by == csm
    assert closed.resolution_note == "Known"
    [entry] = risk_entries("risk.closed")
    assert entry.payload == {
        "signal_id": signal.pk,
        "kind": "champion_left",
        "resolution": "dismissed",
    }
    assert entry.actor == csm
    assert entry.body == "Known"
    for offset in range(1, 5):
        assert evaluate(d("2026-06-10") + timedelta(days=offset), "champion_left").opened == 0
    with pytest.raises(SignalError) as error:
        close_signal(signal_id=signal.pk, resolution="resolved")
    assert error.value.field == "signal_id"


def test_a_dismissed_episode_that_ends_lets_the_next_one_raise_a_new_signal() -> None:
    acme = customer("Acme")
    Contact.objects.create(customer=acme, name="Aoki", role="admin", ended_on=d("2026-06-10"))
    evaluate(d("2026-06-10"), "champion_left")
    close_signal(signal_id=signals()[0].pk, resolution="resolved")
    assert evaluate(d("2026-07-10"), "champion_left").opened == 0  # the episode is over
    Contact.objects.create(customer=acme, name="Endo", role="champion", ended_on=d("2026-07-20"))
    assert evaluate(d("2026-07-20"), "champion_left").opened == 1
    assert [s.resolution for s in signals()] == ["resolved", ""]


def test_close_signal_names_the_field_of_bad_input() -> None:
    acme = customer("Acme")
    signal = RiskSignal.objects.create(
        customer=acme, kind="no_login", severity="high", reason="r",
        opened_on=d("2026-06-01"), last_seen_on=d("2026-06-01"),
    )  # fmt: skip
    with pytest.raises(SignalError) as error:
        close_signal(signal_id=signal.pk, resolution="cleared")
    assert error.value.field == "resolution"
    with pytest.raises(SignalError) as error:
        close_signal(signal_id=signal.pk, resolution="resolved", note="x" * 501)
    assert error.value.field == "note"
    with pytest.raises(RiskSignal.DoesNotExist):
        close_signal(signal_id=signal.pk + 100, resolution="resolved")


def test_the_database_refuses_a_second_open_signal_and_a_racing_insert_is_skipped() -> None:
    acme = customer("Acme")

    def open_one() -> RiskSignal:
        return RiskSignal(
            customer=acme, kind="no_login", severity="high", reason="r",
            opened_on=d("2026-06-01"), last_seen_on=d("2026-06-01"),
        )  # fmt: skip

    open_one().save()
    with pytest.raises(IntegrityError), transaction.atomic():
        open_one().save()
    assert _create([open_one()]) == []
    assert RiskSignal.objects.count() == 1


def test_a_disabled_rule_closes_its_open_signals_as_dismissed() -> None:
    acme = customer("Acme")
    Contact.objects.create(customer=acme, name="Aoki", role="admin", ended_on=d("2026-06-10"))
    evaluate(d("2026-06-10"))
    SignalRule.objects.filter(kind="champion_left").update(enabled=False)
    assert evaluate(d("2026-06-11")).closed == 1
    assert signals()[0].resolution == Resolution.DISMISSED


def test_default_rules_are_created_once_with_valid_parameters() -> None:
    assert ensure_default_rules() == 10
    assert ensure_default_rules() == 0
    for rule in SignalRule.objects.all():
        assert validate_params(rule.kind, rule.params) == rule.params
    usage = SignalRule.objects.get(kind="usage_drop")
    assert usage.params["metric"] == "events_28d"
    assert usage.params["drop_pct"] == 20
    assert usage.params["window_days"] == 28


@pytest.mark.parametrize(
    ("kind", "params", "field"),
    [
        ("nope", {}, "kind"),
        ("usage_drop", {"drop": 20}, "drop"),
        ("usage_drop", {"drop_pct": 0}, "drop_pct"),
        ("usage_drop", {"drop_pct": "a lot"}, "drop_pct"),
        ("usage_drop", {"window_days": 30}, "window_days"),
        ("usage_drop", {"metric": "events_28d_change"}, "metric"),
        ("usage_drop", {"metric": "no_such_metric"}, "metric"),
        ("usage_drop", {"seasonal": "yes"}, "seasonal"),
        ("usage_drop", {"keep_ratio": 1.5}, "keep_ratio"),
        ("logins_down", {"keep_ratio": -0.1}, "keep_ratio"),
        ("usage_drop", {"baseline_weeks": 4, "min_baseline_points": 8}, "min_baseline_points"),
        ("no_login", {"days": 1.5}, "days"),
        ("renewal_at_risk", {"bands": ["excellent"]}, "bands"),
        ("renewal_at_risk", {"bands": []}, "bands"),
        ("champion_left", {"roles": ["billing"]}, "roles"),
        ("low_seat_utilisation", {"below": 30}, "below"),
        ("nps_detractor", {"max_score": 11}, "max_score"),
    ],
)
def test_rule_parameters_are_refused_with_the_name_of_the_field(
    kind: str, params: dict[str, Any], field: str
) -> None:
    with pytest.raises(SignalRuleError) as error:
        validate_params(kind, params)
    assert error.value.field == field


def test_rule_parameters_are_completed_with_the_defaults() -> None:
    cleaned = validate_params("logins_down", {"drop_pct": "25", "window_days": 14})
    assert cleaned["drop_pct"] == 25.0
    assert cleaned["window_days"] == 14
    assert cleaned["metric"] == "logins_28d"
    assert cleaned["fluctuation_k"] == 1.5


def test_selectors_list_open_signals_most_severe_first_and_count_them() -> None:
    acme, beta = customer("Acme"), customer("Beta")
    for who, kind, severity in ((acme, "no_login", "high"), (beta, "nps_detractor", "medium"),
                                (beta, "low_seat_utilisation", "low")):  # fmt: skip
        RiskSignal.objects.create(
            customer=who, kind=kind, severity=severity, reason="r",
            opened_on=d("2026-06-01"), last_seen_on=d("2026-06-01"),
        )  # fmt: skip
    RiskSignal.objects.create(
        customer=acme, kind="usage_drop", severity="high", reason="r", opened_on=d("2026-05-01"),
        last_seen_on=d("2026-05-01"), closed_on=d("2026-05-10"), resolution="cleared",
    )  # fmt: skip
    assert [s.kind for s in open_signals()] == ["no_login", "nps_detractor", "low_seat_utilisation"]
    assert [s.kind for s in open_signals(customer_ids=[beta.pk])] == [
        "nps_detractor", "low_seat_utilisation",
    ]  # fmt: skip
    assert signal_counts_by_severity() == {"high": 1, "medium": 1, "low": 1}
    assert signal_counts_by_severity(customer_ids=[acme.pk]) == {"high": 1, "medium": 0, "low": 0}
    assert [s.kind for s in customer_signals(customer_id=acme.pk)] == ["no_login", "usage_drop"]


def test_reasons_are_worded_in_the_readers_language_from_the_details() -> None:
    details = {"score": 3, "answered_on": "2026-06-10", "max_score": 6}
    with translation.override("en"):
        english = signal_reason("nps_detractor", details)
    assert english == "NPS answer of 3 on 2026-06-10 (a detractor: 6 or less)."
    with translation.override("en"):
        assert signal_reason("nps_detractor", {}) == "NPS detractor"  # details of another shape


def test_an_open_signal_takes_the_rules_new_severity_the_next_day() -> None:
    acme = customer("Acme")
    Contact.objects.create(customer=acme, name="Aoki", role="admin", ended_on=d("2026-06-10"))
    evaluate(d("2026-06-10"), "champion_left")
    SignalRule.objects.filter(kind="champion_left").update(severity="medium")
    evaluate(d("2026-06-11"), "champion_left")
    [signal] = signals()
    assert signal.severity == "medium"
    assert signal.last_seen_on == d("2026-06-11")
