"""The simulated company is reproducible and its documented causes measurably have their effects.

The statistical tests share one medium-sized company (400 customers, four years of contracts),
simulated once: large enough for the effects to be clear, small enough to take about a second.
"""

import itertools
import time
from collections import defaultdict
from datetime import date, timedelta

import numpy as np
import pytest

from kizuna.demo.config import DEFAULT_CONFIG
from kizuna.demo.events import Calendar, EventGenerator
from kizuna.demo.load import DEFAULT_CUSTOMERS, DEFAULT_MONTHS
from kizuna.demo.simulation import (
    ADMIN,
    CHAMPION,
    DECISION_MAKER,
    END_USER,
    SimulatedCustomer,
    Simulator,
    add_months,
)

TODAY = date(2026, 11, 20)
UPSELLS = ("upsell", "tier_up")


def _simulate(customers: int, seed: int = 3) -> list[SimulatedCustomer]:
    return list(
        Simulator(config=DEFAULT_CONFIG, seed=seed, today=TODAY, customers=customers).customers()
    )


@pytest.fixture(scope="module")
def company() -> list[SimulatedCustomer]:
    return _simulate(400)


def _fingerprint(customers: list[SimulatedCustomer]) -> list[object]:
    prints: list[object] = []
    for c in customers:
        rows = [(r.product.code, r.rank, r.quantity, r.start, r.end, r.status) for r in c.rows]
        people = [(p.name, p.email, p.role, p.product_user_id, p.started_on, p.ended_on)
                  for p in c.people]  # fmt: skip
        story = [(h.day, h.kind, h.title, h.payload) for h in c.happenings]
        state = (c.engagement.tobytes(), c.users.tobytes(), c.seats.tobytes())
        prints.append((c.external_id, c.name, c.segment, c.stage, c.churn_date, rows, people,
                       story, state))  # fmt: skip
    return prints


def test_the_same_seed_and_day_give_the_same_company_and_another_seed_another() -> None:
    first = _fingerprint(_simulate(30, seed=11))
    assert _fingerprint(_simulate(30, seed=11)) == first
    assert _fingerprint(_simulate(30, seed=12)) != first


def _decisions(company: list[SimulatedCustomer]) -> list[dict[str, object]]:
    return [h.payload for c in company for h in c.happenings if h.kind == "renewal_decision"]


def test_low_engagement_customers_leave_far_more_often_than_engaged_ones(
    company: list[SimulatedCustomer],
) -> None:
    decisions = _decisions(company)
    low = [d["outcome"] == "churn" for d in decisions if float(d["engagement"]) < 0.4]  # type: ignore[arg-type]
    high = [d["outcome"] == "churn" for d in decisions if float(d["engagement"]) > 0.65]  # type: ignore[arg-type]
    assert len(low) > 200
    assert len(high) > 200
    low_rate, high_rate = np.mean(low), np.mean(high)
    assert low_rate > 0.05
    assert low_rate > 10 * high_rate
    # Per customer too: those who left were far less engaged in their last quarter.
    churned = [c for c in company if c.churn_cause]
    assert {c.churn_cause for c in churned} == {"low_engagement", "champion_left", "external"}
    causes = defaultdict(int)
    for c in churned:
        causes[c.churn_cause] += 1
    assert causes["low_engagement"] + causes["champion_left"] > causes["external"]


def test_full_seats_and_high_engagement_lead_to_upsell(company: list[SimulatedCustomer]) -> None:
    outcomes: dict[bool, list[bool]] = {True: [], False: []}
    for c in company:
        upsold_on = {h.day for h in c.happenings if h.kind in UPSELLS}
        for h in c.happenings:
            if h.kind == "renewal_decision" and h.payload["outcome"] == "renew":
                full = h.payload["utilisation"] >= DEFAULT_CONFIG.expansion.full_utilisation
                period_end = date.fromisoformat(h.payload["period_end"])
                outcomes[full].append(period_end in upsold_on)
    assert len(outcomes[True]) > 100
    assert np.mean(outcomes[True]) > 0.15
    assert np.mean(outcomes[True]) > 5 * np.mean(outcomes[False])


def test_healthy_customers_buy_the_add_on_far_more_often(company: list[SimulatedCustomer]) -> None:
    healthy, unhealthy = [], []
    for c in company:
        served = c.engagement[c.engagement > 0]
        if len(served) < 52:
            continue
        bought = "cross_sell" in c.kinds()
        (healthy if served.mean() > 0.7 else unhealthy if served.mean() < 0.5 else []).append(
            bought
        )
    assert len(healthy) > 30
    assert len(unhealthy) > 30
    assert np.mean(healthy) > 0.3
    assert np.mean(healthy) > 3 * np.mean(unhealthy)


def test_a_fast_onboarding_raises_engagement_in_the_months_after(
    company: list[SimulatedCustomer],
) -> None:
    fast, slow = [], []
    onboarding = DEFAULT_CONFIG.onboarding
    for c in company:
        later = c.engagement[26:52]  # half a year to a year after the start
        if len(later) < 26 or (later == 0).any():
            continue
        if c.onboarding_days <= onboarding.fast_days:
            fast.append(later.mean())
        elif c.onboarding_days >= onboarding.slow_days:
            slow.append(later.mean())
    assert len(fast) > 20
    assert len(slow) > 10
    assert np.mean(fast) - np.mean(slow) > 0.1
    stalled = [c for c in company if "onboarding_stalled" in c.kinds()]
    assert stalled
    assert all(c.onboarding_days >= onboarding.slow_days for c in stalled)
    milestones = {
        h.payload["milestone"]
        for c in stalled
        for h in c.happenings
        if h.kind == "onboarding_stalled"
    }
    assert milestones == {onboarding.stall_milestone}


def test_a_departure_dips_engagement_until_the_newcomer_is_trained(
    company: list[SimulatedCustomer],
) -> None:
    ratios: dict[bool, list[float]] = {True: [], False: []}
    for c in company:
        trainings = [h.day for h in c.happenings if h.kind == "training"]
        for h in c.happenings:
            if h.kind not in ("admin_changed", "champion_changed"):
                continue
            week = (h.day - c.first_start).days // 7
            if week < 4 or week + 14 >= len(c.engagement):
                continue
            before, after = (
                c.engagement[week - 4 : week].mean(),
                c.engagement[week + 10 : week + 14].mean(),
            )
            if before == 0 or after == 0:
                continue  # the customer left in between
            trained = any(0 <= (day - h.day).days <= 70 for day in trainings)
            ratios[trained].append(float(after / before))
    assert len(ratios[True]) > 10
    assert len(ratios[False]) > 10
    assert np.mean(ratios[False]) < 0.85  # about −25% while nobody trains the newcomer
    assert np.mean(ratios[True]) > 0.92  # back to where it was after a training
    # The engagement drops in the very week of the change.
    drops = []
    for c in company:
        for h in c.happenings:
            week = (h.day - c.first_start).days // 7
            if h.kind == "admin_changed" and 1 <= week < len(c.engagement):
                drops.append(c.engagement[week] / c.engagement[week - 1])
    assert np.median(drops) < 0.85


def test_nps_answers_follow_engagement(company: list[SimulatedCustomer]) -> None:
    answers = np.array(
        [
            (h.payload["score"], h.payload["engagement"])
            for c in company
            for h in c.happenings
            if h.kind == "nps"
        ]
    )
    assert len(answers) > 500
    assert set(np.unique(answers[:, 0])) <= set(range(11))
    assert np.corrcoef(answers[:, 0], answers[:, 1])[0, 1] > 0.6
    promoters, detractors = answers[answers[:, 0] >= 9, 1], answers[answers[:, 0] <= 6, 1]
    assert promoters.mean() > detractors.mean() + 0.2


def test_reactivations_downgrades_and_mid_term_seat_changes_happen(
    company: list[SimulatedCustomer],
) -> None:
    kinds = defaultdict(int)
    for c in company:
        for h in c.happenings:
            kinds[h.kind] += 1
    for kind in ("reactivation", "downgrade", "seats_added", "upsell", "tier_up", "cross_sell"):
        assert kinds[kind] >= 3, kind
    for c in company:
        if "reactivation" in c.kinds():
            back = next(h.day for h in c.happenings if h.kind == "reactivation")
            left = max(h.day for h in c.happenings if h.kind == "churn" and h.day < back)
            assert 55 <= (back - left).days <= 190
        if "seats_added" in c.kinds():
            added = next(h for h in c.happenings if h.kind == "seats_added")
            # Mid-term: the running contract row was split on that day, not renewed.
            ending = [
                r for r in c.rows if r.product.code == "mirai-analytics" and r.end == added.day
            ]
            starting = [
                r for r in c.rows if r.product.code == "mirai-analytics" and r.start == added.day
            ]
            assert ending
            assert starting
            assert starting[0].quantity > ending[0].quantity
            assert 0 < (starting[0].end - added.day).days <= 366  # to the period's end


def test_contract_rows_run_back_to_back_and_match_each_customers_fate(
    company: list[SimulatedCustomer],
) -> None:
    for c in company:
        assert c.rows
        assert min(r.start for r in c.rows) == c.first_start
        streams: dict[str, list] = defaultdict(list)
        for row in sorted(c.rows, key=lambda r: r.start):
            assert row.end > row.start
            assert row.mrr > 0 or row.quantity == 0
            streams[row.product.code].append(row)
        for rows in streams.values():
            for before, after in itertools.pairwise(rows):
                assert after.start >= before.end  # a gap is a reactivation
        in_service = any(r.start <= TODAY < r.end for r in c.rows)
        if c.stage == "churned":
            assert not in_service
            assert c.churn_date == max(r.end for r in c.rows)
            assert c.churn_reason
        else:
            assert in_service, c.external_id
            assert c.churn_date is None
        assert all(h.day < TODAY for h in c.happenings)


def test_customers_start_over_two_years_in_segments_with_every_contact_role() -> None:
    company = _simulate(120, seed=7)
    months = {(c.first_start.year, c.first_start.month) for c in company}
    for back in range(24):
        month = add_months(TODAY.replace(day=1), -back)
        assert (month.year, month.month) in months, f"no new customer in {month:%Y-%m}"
    assert {c.segment for c in company} == {"enterprise", "mid-market", "smb"}
    assert {c.touch_model for c in company} == {"high", "low", "tech"}
    assert any(c.name.isascii() for c in company)
    assert any("株式会社" in c.name for c in company)
    assert len({c.name for c in company}) == len(company)
    roles = {p.role for c in company for p in c.people}
    assert {CHAMPION, ADMIN, DECISION_MAKER, END_USER} <= roles
    assert {p.language for c in company for p in c.people} == {"ja", "en"}


def test_the_stories_of_the_demo_are_there_for_sure() -> None:
    company = {c.script: c for c in _simulate(120, seed=7) if c.script}
    assert set(company) == {
        "admin_changed_recently", "admin_changed_and_trained", "ripe_for_upsell",
        "onboarding_stalled",
    }  # fmt: skip
    recent = company["admin_changed_recently"]
    change = next(h for h in recent.happenings if h.kind == "admin_changed")
    assert 23 <= (TODAY - change.day).days <= 29
    assert "training" not in recent.kinds()
    assert recent.stage != "churned"
    admins = [p for p in recent.people if p.role == ADMIN]
    assert [a.ended_on for a in admins] == [change.day, None]
    assert admins[1].started_on == change.day

    trained = company["admin_changed_and_trained"]
    change = next(h for h in trained.happenings if h.kind == "admin_changed")
    training = next(h for h in trained.happenings if h.kind == "training")
    assert training.day - change.day == timedelta(weeks=5)

    ripe = company["ripe_for_upsell"]
    assert ripe.segment == "enterprise"
    assert (ripe.users[-8:] == ripe.seats[-8:]).all()
    assert ripe.engagement[-8:].mean() > 0.8

    stalled = company["onboarding_stalled"]
    assert stalled.stage == "onboarding"
    assert "onboarding_stalled" in stalled.kinds()


def test_the_default_demo_is_a_few_hundred_customers_and_a_year_and_a_half_of_usage() -> None:
    """The size ``make demo`` loads; its full load and metrics are timed by bench/bench_demo.py
    (under a minute on an idle two-core machine, target three minutes)."""
    assert 200 <= DEFAULT_CUSTOMERS <= 500
    assert DEFAULT_MONTHS == 18
    started = time.perf_counter()
    company = _simulate(DEFAULT_CUSTOMERS, seed=7)
    assert time.perf_counter() - started < 15
    calendar = Calendar.of(
        start=add_months(TODAY, -DEFAULT_MONTHS), end=TODAY, zone="Asia/Tokyo",
        weekend_factor=DEFAULT_CONFIG.activity.weekend_factor,
    )  # fmt: skip
    generator = EventGenerator(config=DEFAULT_CONFIG, seed=7, calendar=calendar)
    events = sum(generator.expected_events(c) for c in company)
    # Enough for every chart and metric, few enough to load and compute in the time budget.
    assert 3_000_000 < events < 10_000_000
