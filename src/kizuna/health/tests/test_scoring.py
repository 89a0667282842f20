"""The scoring engine on hand-made customers; every expected number is worked out in comments.

Day scored: 2026-06-15. Scorecard "Test" (good from 70, watch from 40):
  seats    metric seat_utilisation_28d, weight 2, thresholds 0:0, 0.8:100
  breadth  metric feature_breadth_28d, weight 1, percentile
  renewal  days_to_renewal, weight 1, thresholds 0:0, 90:100
"""

from datetime import date, timedelta
from typing import Any

import numpy as np
import pytest
from django.utils import translation

from kizuna.core.models import TimelineEntry, TimelineKind
from kizuna.customers.models import Contact, ContactRole, Customer
from kizuna.health.models import (
    CsmSentiment,
    HealthScore,
    Mapping,
    MeasureSource,
    RiskSignal,
    Severity,
    SignalKind,
)
from kizuna.health.scorecards import MeasureInput
from kizuna.health.scoring import (
    backfill_scores,
    percentile_points,
    recompute_history,
    record_band_changes,
    score_customers,
    threshold_points,
)
from kizuna.health.selectors import explain
from kizuna.health.tests.scores_helpers import (
    customer,
    d,
    local,
    published_scorecard,
    write_metrics,
)

pytestmark = pytest.mark.django_db

DAY = date(2026, 6, 15)

SEATS = MeasureInput(
    key="seats",
    label="Seat utilisation",
    source=MeasureSource.METRIC,
    metric_key="seat_utilisation_28d",
    weight=2,
    thresholds=[(0, 0), (0.8, 100)],
)
BREADTH = MeasureInput(
    key="breadth",
    label="Features used",
    source=MeasureSource.METRIC,
    metric_key="feature_breadth_28d",
    weight=1,
    mapping=Mapping.PERCENTILE,
)
RENEWAL = MeasureInput(
    key="renewal",
    label="Days to renewal",
    source=MeasureSource.DAYS_TO_RENEWAL,
    weight=1,
    thresholds=[(0, 0), (90, 100)],
)


def rows_of(day: date) -> dict[str, HealthScore]:
    return {
        row.customer.name: row
        for row in HealthScore.objects.filter(day=day).select_related("customer")
    }


def by_key(row: HealthScore) -> dict[str, dict[str, object]]:
    return {line["key"]: line for line in row.measures}


def test_thresholds_interpolate_linearly_and_clamp_outside() -> None:
    xs, ps = np.array([-0.5, -0.2, 0.0]), np.array([0.0, 40.0, 70.0])
    values = np.array([-1.0, -0.35, -0.1, 0.0, 0.3, np.nan])
    # −0.35 is halfway from −0.5 to −0.2: 20; −0.1 halfway from −0.2 to 0: 55.
    points = threshold_points(values, xs, ps)
    assert points[:5].tolist() == pytest.approx([0.0, 20.0, 55.0, 70.0, 70.0])
    assert np.isnan(points[5])


def test_percentile_is_the_mid_rank_with_ties_sharing_and_missing_left_out() -> None:
    values = np.array([10.0, 5.0, 10.0, np.nan, 20.0])
    # Present: 5, 10, 10, 20 → ranks 1, 2.5, 2.5, 4 → (rank − 1) / 3 × 100.
    points = percentile_points(values)
    assert points[[0, 1, 2, 4]].tolist() == pytest.approx([50.0, 0.0, 50.0, 100.0])
    assert np.isnan(points[3])
    lower_better = percentile_points(values, higher_is_better=False)
    assert lower_better[[1, 4]].tolist() == pytest.approx([100.0, 0.0])
    assert percentile_points(np.array([3.0, np.nan]))[0] == 50.0  # a lone value


@pytest.fixture
def portfolio() -> dict[str, int]:
    published_scorecard([SEATS, BREADTH, RENEWAL])
    a = customer("A", end="2026-07-30")  # 45 days to renewal
    b = customer("B")  # open-ended: renewal missing
    c = customer("C", end="2026-09-13")  # 90 days
    dd = customer("D", end="2026-06-15")  # ended on the day: not active, not scored
    e = customer("E")  # no metrics, no end: every measure missing
    write_metrics(
        DAY,
        [
            (a.pk, "seat_utilisation_28d", 0.4),
            (a.pk, "feature_breadth_28d", 10),
            (b.pk, "seat_utilisation_28d", 1.0),
            (b.pk, "feature_breadth_28d", 5),
            (c.pk, "seat_utilisation_28d", None),  # undefined is missing, not 0
            (c.pk, "feature_breadth_28d", 10),
            (dd.pk, "seat_utilisation_28d", 0.9),
        ],
    )
    return {"A": a.pk, "B": b.pk, "C": c.pk, "D": dd.pk, "E": e.pk}


def test_score_is_the_weighted_mean_of_points_over_present_measures(
    portfolio: dict[str, int],
) -> None:
    result = score_customers(day=DAY)
    rows = rows_of(DAY)
    assert set(rows) == {"A", "B", "C", "E"}
    assert result.rows == 4
    assert result.not_scored == 1
    # Breadth percentile among A 10, B 5, C 10: B 0, A and C 75 (ranks 2.5 of 3).
    # A: seats 0.4 → 50 (w2), breadth 75 (w1), renewal 45 days → 50 (w1):
    #    (100 + 75 + 50) / 4 = 56.25 → watch; contributions 25, 18.75, 12.5.
    a = rows["A"]
    assert a.score == pytest.approx(56.25)
    assert a.band == "watch"
    assert a.missing_weight == 0
    lines = by_key(a)
    assert lines["seats"]["points"] == pytest.approx(50)
    assert lines["breadth"]["points"] == pytest.approx(75)
    assert lines["renewal"]["value"] == 45
    assert [lines[k]["contribution"] for k in ("seats", "breadth", "renewal")] == pytest.approx(
        [25, 18.75, 12.5]
    )
    assert sum(line["contribution"] for line in a.measures) == pytest.approx(a.score)


def test_missing_data_is_re_weighted_and_shown_as_missing(portfolio: dict[str, int]) -> None:
    score_customers(day=DAY)
    rows = rows_of(DAY)
    # B: seats 1.0 → 100 (clamped, w2), breadth 0 (w1), renewal missing:
    #    (200 + 0) / 3 = 66.6667 → watch; a quarter of the weight is missing.
    b = rows["B"]
    assert b.score == pytest.approx(66.6667)
    assert b.band == "watch"
    assert b.missing_weight == pytest.approx(0.25)
    renewal = by_key(b)["renewal"]
    assert renewal == {**renewal, "missing": True, "value": None, "points": None}
    assert renewal["contribution"] is None
    # C: seats missing (null in the file), breadth 75, renewal 90 days → 100:
    #    (75 + 100) / 2 = 87.5 → good; half the weight missing.
    c = rows["C"]
    assert c.score == pytest.approx(87.5)
    assert c.band == "good"
    assert c.missing_weight == pytest.approx(0.5)
    # E: nothing at all → not scored (null, no band), never 0.
    e = rows["E"]
    assert e.score is None
    assert e.band == ""
    assert e.missing_weight == 1
    assert all(line["missing"] for line in e.measures)


def test_scoring_some_customers_ranks_percentiles_over_everyone(
    portfolio: dict[str, int],
) -> None:
    score_customers(day=DAY, customer_ids=[portfolio["A"]])
    rows = rows_of(DAY)
    assert set(rows) == {"A"}
    # Still 75 for breadth: ranked among A, B and C, not among A alone (which would be 50).
    assert by_key(rows["A"])["breadth"]["points"] == pytest.approx(75)


def test_scoring_a_day_again_replaces_its_rows(portfolio: dict[str, int]) -> None:
    score_customers(day=DAY)
    score_customers(day=DAY)
    assert HealthScore.objects.filter(day=DAY).count() == 4


def test_the_first_matching_scorecard_by_priority_scores_a_customer(
    portfolio: dict[str, int],
) -> None:
    published_scorecard([RENEWAL], name="Tech", touch_model="tech", priority=10)
    tech = customer("T", end="2026-08-14", touch_model="tech")  # 60 days → 66.6667
    score_customers(day=DAY)
    row = HealthScore.objects.select_related("version__scorecard").get(customer=tech, day=DAY)
    assert row.version.scorecard.name == "Tech"
    assert row.score == pytest.approx(66.6667)
    assert HealthScore.objects.get(customer_id=portfolio["A"], day=DAY).version.scorecard.name == (
        "Test"
    )


def _sources_world() -> None:
    """Customers A, B, C with every non-metric source (see the test below)."""
    from kizuna.onboarding.models import (
        Milestone,
        OnboardingPlan,
        Phase,
        PlanMilestone,
        Program,
        ProgramVersion,
    )

    measures = [
        MeasureInput(
            key=str(source),
            label=str(source),
            source=source,
            weight=1,
            thresholds=[(0, 0), (100, 100)],
        )
        for source in (
            MeasureSource.ONBOARDING_PROGRESS,
            MeasureSource.NPS,
            MeasureSource.DAYS_SINCE_TOUCH,
            MeasureSource.OPEN_SIGNALS,
            MeasureSource.SENTIMENT,
        )
    ]
    published_scorecard(measures)
    a, b, c = customer("A"), customer("B"), customer("C")

    # Onboarding. A: latest plan started 05-01 with 4 required milestones, done by the day:
    # 05-10 and 06-15 (the day itself counts), not 06-20 nor the open one → 2 / 4 = 0.5.
    # A's older completed plan and a newer plan cancelled on 06-05 do not count.
    program = Program.objects.create(key="p", name="P")
    version = ProgramVersion.objects.create(program=program, number=1)
    phase = Phase.objects.create(version=version, name="Setup")
    required = [
        Milestone.objects.create(version=version, phase=phase, key=f"m{n}", name=f"m{n}")
        for n in range(4)
    ]
    optional = Milestone.objects.create(
        version=version, phase=phase, key="extra", name="extra", required=False
    )

    def plan(
        who: Customer, start: str, completed: str | None = None, **extra: Any
    ) -> OnboardingPlan:
        return OnboardingPlan.objects.create(
            customer=who,
            version=version,
            start_date=d(start),
            target_date=d(start) + timedelta(days=60),
            completed_on=d(completed) if completed else None,
            **extra,
        )

    plan(a, "2026-01-01", "2026-02-01")
    current = plan(a, "2026-05-01")
    plan(a, "2026-06-01", cancelled_at=local("2026-06-05 09:00"))
    for milestone, done in zip(
        [*required, optional],
        ["2026-05-10", "2026-06-15", "2026-06-20", None, "2026-05-02"],
        strict=True,
    ):
        PlanMilestone.objects.create(
            plan=current,
            milestone=milestone,
            due_date=d("2026-06-30"),
            completed_on=d(done) if done else None,
        )
    # B's plan is completed by the day → 1.0. C has no plan → missing.
    plan(b, "2026-03-01", "2026-06-01")

    # NPS. A: contact 1 answered 3 then 9 (latest 9); contact 2 answered 6, and 10 after the
    # day (ignored) → (9 + 6) / 2 = 7.5. B: one answer on 2025-06-16, the first day of the
    # 365-day window → 4. C: an answer on 2025-06-15, just outside → missing.
    k1 = Contact.objects.create(customer=a, name="k1", role=ContactRole.ADMIN)
    k2 = Contact.objects.create(customer=a, name="k2")

    def nps(who: Customer, when: str, score: int, contact: Contact | None = None) -> None:
        payload: dict[str, object] = {"score": score}
        if contact is not None:
            payload["contact_id"] = contact.pk
        TimelineEntry.objects.create(
            customer=who,
            kind=TimelineKind.NPS_ANSWERED,
            title="NPS",
            occurred_at=local(when),
            payload=payload,
        )

    nps(a, "2025-12-01 10:00", 3, k1)
    nps(a, "2026-05-01 10:00", 9, k1)
    nps(a, "2026-06-10 10:00", 6, k2)
    nps(a, "2026-06-16 10:00", 10, k2)
    nps(b, "2025-06-16 00:30", 4)
    nps(c, "2025-06-15 23:30", 8)

    # Touches. A: an email at 23:30 on 06-14 (local day 06-14) → 1 day; a note on the day is
    # no touch, a call on 06-16 is after. B: a call on 05-16 → 30 days. C: never → missing.
    def touch(who: Customer, kind: str, when: str) -> None:
        TimelineEntry.objects.create(customer=who, kind=kind, title="t", occurred_at=local(when))

    touch(a, TimelineKind.MEETING, "2026-06-01 10:00")
    touch(a, TimelineKind.EMAIL, "2026-06-14 23:30")
    touch(a, TimelineKind.NOTE, "2026-06-15 09:00")
    touch(a, TimelineKind.CALL, "2026-06-16 09:00")
    touch(b, TimelineKind.CALL, "2026-05-16 18:00")

    # Open signals. A: one open since 06-01; one closed on the day (no longer open); one
    # opened after → 1. B: open 06-10 to 06-20 → 1. C: none → 0 (a value, not missing).
    def signal(who: Customer, kind: str, opened: str, closed: str | None = None) -> None:
        RiskSignal.objects.create(
            customer=who,
            kind=kind,
            severity=Severity.MEDIUM,
            reason="r",
            opened_on=d(opened),
            last_seen_on=d(opened),
            closed_on=d(closed) if closed else None,
        )

    signal(a, SignalKind.USAGE_DROP, "2026-06-01")
    signal(a, SignalKind.NO_LOGIN, "2026-05-01", "2026-06-15")
    signal(a, SignalKind.NPS_DETRACTOR, "2026-06-16")
    signal(b, SignalKind.USAGE_DROP, "2026-06-10", "2026-06-20")

    # Sentiment. A: 2 on 01-01 then 4 on 06-01 → 4. B: 5 on 2025-12-17, exactly 180 days
    # before → outside → missing. C: 3 recorded after the day → missing.
    CsmSentiment.objects.create(customer=a, sentiment=2, recorded_on=d("2026-01-01"))
    CsmSentiment.objects.create(customer=a, sentiment=4, recorded_on=d("2026-06-01"))
    CsmSentiment.objects.create(customer=b, sentiment=5, recorded_on=d("2025-12-17"))
    CsmSentiment.objects.create(customer=c, sentiment=3, recorded_on=d("2026-06-16"))


def test_each_source_is_read_as_of_the_day() -> None:
    _sources_world()
    score_customers(day=DAY)
    values = {
        name: {key: line["value"] for key, line in by_key(row).items()}
        for name, row in rows_of(DAY).items()
    }
    assert values["A"] == {
        "onboarding_progress": 0.5,
        "nps": 7.5,
        "days_since_touch": 1,
        "open_signals": 1,
        "sentiment": 4,
    }
    assert values["B"] == {
        "onboarding_progress": 1.0,
        "nps": 4,
        "days_since_touch": 30,
        "open_signals": 1,
        "sentiment": None,
    }
    assert values["C"] == {
        "onboarding_progress": None,
        "nps": None,
        "days_since_touch": None,
        "open_signals": 0,
        "sentiment": None,
    }


def _snapshot(days: list[date]) -> list[tuple[object, ...]]:
    return list(
        HealthScore.objects.filter(day__in=days)
        .order_by("day", "customer_id")
        .values_list(
            "customer_id", "day", "version_id", "score", "band", "missing_weight", "measures"
        )
    )


def test_backfill_gives_the_same_rows_as_the_daily_run(portfolio: dict[str, int]) -> None:
    days = [DAY - timedelta(days=2), DAY - timedelta(days=1), DAY]
    write_metrics(days[0], [(portfolio["A"], "seat_utilisation_28d", 0.8)])
    write_metrics(
        days[1],
        [
            (portfolio["A"], "seat_utilisation_28d", 0.2),
            (portfolio["B"], "feature_breadth_28d", 3),
            (portfolio["C"], "feature_breadth_28d", 4),
        ],
    )
    for day in days:
        score_customers(day=day)
    daily = _snapshot(days)
    HealthScore.objects.all().delete()
    seen: list[tuple[str, int, int]] = []
    result = backfill_scores(
        start=days[0],
        end=days[-1],
        progress=lambda step, done, total: seen.append((step, done, total)),
    )
    assert _snapshot(days) == daily
    assert result.days == 3
    assert result.rows == len(daily)
    assert seen[-1] == ("scoring", 3, 3)


def test_a_backfill_in_chunks_gives_the_daily_runs_rows_for_every_source(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Three weeks crossing each source's edges (NPS answers entering and leaving the 365-day
    # window, a call, a signal opening and closing, sentiment, milestones, a cancelled plan,
    # a subscription ending, metric files with gaps of 1 to 4 days), backfilled in chunks of
    # 4 days written 5 rows at a time, must equal scoring each day on its own.
    from kizuna.health import scoring

    _sources_world()
    Customer.objects.filter(name="C").update(touch_model="tech")
    published_scorecard(
        [SEATS, RENEWAL, MeasureInput(key="signals", label="Signals",
         source=MeasureSource.OPEN_SIGNALS, weight=1, thresholds=[(0, 100), (3, 0)])],
        name="Tech", touch_model="tech", priority=10,
    )  # fmt: skip
    c = Customer.objects.get(name="C")
    gone = customer("G", end="2026-06-10", touch_model="tech")
    for month_day, value in [("06-01", 0.1), ("06-02", 0.3), ("06-05", 0.5), ("06-12", 0.7)]:
        write_metrics(
            d(f"2026-{month_day}"),
            [(c.pk, "seat_utilisation_28d", value), (gone.pk, "seat_utilisation_28d", 0.2)],
        )
    days = [d("2026-06-01") + timedelta(days=i) for i in range(21)]
    for day in days:
        score_customers(day=day)
    daily = _snapshot(days)
    assert len(daily) == 3 * 21 + 9  # A, B, C every day; G until 06-09
    HealthScore.objects.all().delete()
    monkeypatch.setattr(scoring, "CHUNK_DAYS", 4)
    monkeypatch.setattr(scoring, "WRITE_ROWS", 5)
    result = backfill_scores(start=days[0], end=days[-1])
    assert _snapshot(days) == daily
    assert result.days == 21
    assert result.rows == len(daily)
    # The gap: 06-08 reads 06-05 (three days old), 06-09 has no file recent enough.
    seats = {
        day: by_key(HealthScore.objects.get(customer=c, day=d(day)))["seats"]
        for day in ("2026-06-05", "2026-06-08", "2026-06-09")
    }
    assert [line["value"] for line in seats.values()] == [0.5, 0.5, None]
    assert [line.get("metric_day") for line in seats.values()] == [None, "2026-06-05", None]


def test_band_changes_land_on_the_timeline_once(portfolio: dict[str, int]) -> None:
    before = DAY - timedelta(days=1)
    # The day before, A had full seats (0.8 → 100): (200 + 75 + 50) / 4 = 81.25 → good.
    write_metrics(
        before,
        [
            (portfolio["A"], "seat_utilisation_28d", 0.8),
            (portfolio["A"], "feature_breadth_28d", 10),
            (portfolio["B"], "seat_utilisation_28d", 1.0),
            (portfolio["B"], "feature_breadth_28d", 5),
            (portfolio["C"], "feature_breadth_28d", 10),
        ],
    )
    score_customers(day=before)
    score_customers(day=DAY)
    with translation.override("en"):
        assert record_band_changes(day=DAY) == 1  # A: good → watch; B, C unchanged; E unscored
    assert record_band_changes(day=DAY) == 0
    entry = TimelineEntry.objects.get(kind=TimelineKind.HEALTH_BAND_CHANGED)
    assert entry.customer_id == portfolio["A"]
    assert entry.payload == {"from": "good", "to": "watch", "score": 56.25, "day": "2026-06-15"}
    assert entry.title == "Health band changed from Good to Watch (score 56)"


def test_recompute_history_rescores_with_the_new_published_version(
    portfolio: dict[str, int],
) -> None:
    from kizuna.health.models import Scorecard
    from kizuna.health.scorecards import new_version, publish_version, save_draft

    score_customers(day=DAY)
    card = Scorecard.objects.get(name="Test")
    draft = new_version(scorecard_id=card.pk, change_note="seats only")
    save_draft(version_id=draft.pk, good_from=70, watch_from=40, measures=[SEATS])
    publish_version(version_id=draft.pk)
    result = recompute_history(scorecard_id=card.pk, start=DAY, end=DAY)
    rows = rows_of(DAY)
    assert result.rows == 4
    assert {row.version_id for row in rows.values()} == {draft.pk}
    assert rows["A"].score == pytest.approx(50)  # seats alone
    assert rows["C"].score is None  # its only measure is missing now


def test_today_reads_yesterdays_metric_file_and_scores_as_yesterday() -> None:
    # Metrics are computed up to the last full day: today (06-15) has no file yet, so the
    # metric measures read 06-14's file and today's score equals yesterday's.
    published_scorecard([SEATS, BREADTH])
    a, b = customer("A"), customer("B")
    yesterday = DAY - timedelta(days=1)
    write_metrics(
        yesterday,
        [
            (a.pk, "seat_utilisation_28d", 0.4),  # 50 points (w2)
            (a.pk, "feature_breadth_28d", 10),  # 100 (highest of two)
            (b.pk, "seat_utilisation_28d", 0.8),  # 100
            (b.pk, "feature_breadth_28d", 5),  # 0
        ],
    )
    score_customers(day=yesterday)
    score_customers(day=DAY)
    before, now = rows_of(yesterday), rows_of(DAY)
    # A: (2 × 50 + 100) / 3 = 66.6667; B: (2 × 100 + 0) / 3 = 66.6667.
    assert {n: r.score for n, r in now.items()} == pytest.approx({"A": 66.6667, "B": 66.6667})
    assert {n: r.score for n, r in now.items()} == {n: r.score for n, r in before.items()}
    assert now["A"].missing_weight == 0
    # Today's metric lines say which day they read; yesterday's read their own day.
    assert {line["metric_day"] for line in now["A"].measures} == {"2026-06-14"}
    assert all("metric_day" not in line for line in before["A"].measures)
    explained = {line["key"]: line["metric_day"] for line in explain(customer_id=a.pk).lines}
    assert explained == {"seats": "2026-06-14", "breadth": "2026-06-14"}
    assert [
        {k: v for k, v in line.items() if k != "metric_day"} for line in now["A"].measures
    ] == before["A"].measures


def test_the_latest_metric_file_within_three_days_is_read_and_an_older_one_is_missing() -> None:
    published_scorecard([SEATS, RENEWAL])
    a = customer("A", end="2026-09-13")  # renewal keeps A scored: 90 days on 06-15
    b = customer("B")
    write_metrics(
        d("2026-06-10"), [(a.pk, "seat_utilisation_28d", 0.8), (b.pk, "seat_utilisation_28d", 0.8)]
    )
    write_metrics(d("2026-06-12"), [(a.pk, "seat_utilisation_28d", 0.4)])  # B absent
    score_customers(day=DAY)
    rows = rows_of(DAY)
    # 06-12 is three days before 06-15: the latest file within the limit, read as it is (B is
    # not in it: missing, not carried over from 06-10). A: seats 0.4 → 50 (w2), renewal
    # 90 days → 100 (w1): (100 + 100) / 3 = 66.6667.
    seats = by_key(rows["A"])["seats"]
    assert seats["value"] == 0.4
    assert seats["metric_day"] == "2026-06-12"
    assert "metric_day" not in by_key(rows["A"])["renewal"]
    assert rows["A"].score == pytest.approx(66.6667)
    assert rows["B"].score is None
    assert by_key(rows["B"])["seats"]["missing"] is True
    # On 06-16 the newest file (06-12) is four days old: older than the limit, so the metric
    # measures are missing. A is scored on renewal alone (89 days → 98.8889).
    later = DAY + timedelta(days=1)
    score_customers(day=later)
    a_later = rows_of(later)["A"]
    assert by_key(a_later)["seats"] == {**by_key(a_later)["seats"], "missing": True, "value": None}
    assert "metric_day" not in by_key(a_later)["seats"]
    assert a_later.score == pytest.approx(98.8889)
    assert a_later.missing_weight == pytest.approx(2 / 3, abs=1e-6)
