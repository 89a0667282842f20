"""The churn model on hand-made and synthetic histories whose answer is known.

The hand-made customer checks that a snapshot's features are read as of its day and nothing
later; the synthetic portfolios check that the model finds a known signal (AUC clearly above
0.5), that pure noise gives an AUC near 0.5 (no future leaks into the features), and that too
few churned customers give a model with an explained error instead of an exception.
"""

import math
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from django.utils import timezone, translation

from kizuna.analytics import lake
from kizuna.core.models import TimelineEntry
from kizuna.customers.models import Customer, Product, Subscription
from kizuna.health import churn
from kizuna.health.models import (
    ChurnModel,
    ChurnPrediction,
    HealthScore,
    ModelKind,
    RiskSignal,
    Scorecard,
    ScorecardVersion,
    Severity,
    SignalKind,
)

pytestmark = pytest.mark.django_db

HISTORY_START = date(2024, 1, 1)
AS_OF = date(2026, 1, 1)


def d(text: str) -> date:
    return date.fromisoformat(text)


def write_metrics(day: date, values: dict[int, dict[str, float | None]]) -> None:
    rows = [(cid, key, value) for cid, metrics in values.items() for key, value in metrics.items()]
    lake.write_metric_day(
        pa.table(
            {
                "customer_id": pa.array([r[0] for r in rows], pa.int64()),
                "metric": pa.array([r[1] for r in rows], pa.string()),
                "day": pa.array([day] * len(rows), pa.date32()),
                "value": pa.array([r[2] for r in rows], pa.float64()),
            },
            schema=lake.METRIC_SCHEMA,
        ),
        day,
    )


def product() -> Product:
    return Product.objects.get_or_create(code="app", defaults={"name": "App"})[0]


# -- features as of a day -------------------------------------------------------------------------


def test_snapshot_features_are_read_as_of_their_day_and_nothing_later() -> None:
    """t = 2025-03-01, horizon 90 days (t + 90 = 2025-05-30).

    A: contract 01-01..07-01 (100/month, 10 seats) + a second one from 03-15 (after t: ignored);
       tenure 59 days (Jan 31 + Feb 28), renewal in 122 days (Mar 31 + Apr 30 + May 31 + Jun
       30); NPS 8 on 02-10 (a 2 on 03-05 is after t); signals: one closed 02-20, one open since
       02-25, one opened 03-02 (after t) → 1 open; score 55 on t (10 on 03-02 is ignored);
       events_28d 120 in t's file (0 in 03-02's file is ignored). Active on 05-30: label 0.
    B: contract 02-01..04-15, unit "licences"… no: unit "" → seats missing; no NPS; no signal
       open (coverage starts 02-01) → 0; no score → missing. Not active on 05-30: label 1.
    C starts 03-02 and D ended on 03-01 (end date = first day without service): no rows.
    """
    app = product()
    a, b, c, dd = (Customer.objects.create(name=n, external_id=n) for n in "ABCD")
    for customer, start, end, mrr, quantity, unit in [
        (a, "2025-01-01", "2025-07-01", 100, 10, "seats"),
        (a, "2025-03-15", None, 50, 5, "seats"),
        (b, "2025-02-01", "2025-04-15", 70, 1, ""),
        (c, "2025-03-02", None, 10, 1, ""),
        (dd, "2024-03-01", "2025-03-01", 10, 1, ""),
    ]:
        Subscription.objects.create(
            customer=customer,
            product=app,
            start_date=d(start),
            end_date=d(end) if end else None,
            mrr=Decimal(mrr),
            quantity=Decimal(quantity),
            unit=unit,
        )
    zone = timezone.get_current_timezone()
    for day, score in [("2025-02-10", 8), ("2025-03-05", 2)]:
        TimelineEntry.objects.create(
            customer=a,
            kind="nps.answered",
            title="NPS",
            occurred_at=timezone.datetime.fromisoformat(f"{day} 12:00").replace(tzinfo=zone),
            payload={"score": score},
        )
    for opened, closed in [
        ("2025-02-01", "2025-02-20"),
        ("2025-02-25", None),
    ]:
        RiskSignal.objects.create(
            customer=a,
            kind=SignalKind.NO_LOGIN if closed else SignalKind.USAGE_DROP,
            severity=Severity.MEDIUM,
            reason="r",
            opened_on=d(opened),
            last_seen_on=d(opened),
            closed_on=d(closed) if closed else None,
        )
    RiskSignal.objects.create(
        customer=a,
        kind=SignalKind.NPS_DETRACTOR,
        severity=Severity.LOW,
        reason="r",
        opened_on=d("2025-03-02"),
        last_seen_on=d("2025-03-02"),
    )
    scorecard = Scorecard.objects.create(name="S")
    version = ScorecardVersion.objects.create(scorecard=scorecard, number=1, status="published")
    HealthScore.objects.create(customer=a, day=d("2025-03-01"), version=version, score=55)
    HealthScore.objects.create(customer=a, day=d("2025-03-02"), version=version, score=10)
    write_metrics(d("2025-03-01"), {a.pk: {"events_28d": 120.0}, b.pk: {"events_28d": None}})
    write_metrics(d("2025-03-02"), {a.pk: {"events_28d": 0.0}, b.pk: {"events_28d": 0.0}})

    features = ["events_28d", *churn.CONTRACT_FEATURES]
    frame = churn.build_frame([d("2025-03-01")], features=features, horizon_days=90)

    assert frame.customer_ids.tolist() == [a.pk, b.pk]
    row = dict(zip(features, frame.x[0].tolist(), strict=True))
    assert row == {
        "events_28d": 120.0,
        "mrr": 100.0,
        "tenure_days": 59.0,
        "days_to_renewal": 122.0,
        "seats": 10.0,
        "nps": 8.0,
        "open_signals": 1.0,
        "health_score": 55.0,
    }
    other = dict(zip(features, frame.x[1].tolist(), strict=True))
    assert other["mrr"] == 70.0
    assert other["tenure_days"] == 28.0
    assert other["days_to_renewal"] == 45.0  # Mar 31 + Apr 14
    assert other["open_signals"] == 0.0
    assert all(math.isnan(other[k]) for k in ("events_28d", "seats", "nps", "health_score"))
    assert frame.y.tolist() == [0, 1]


def test_open_signals_are_missing_before_signals_were_first_evaluated() -> None:
    app = product()
    a = Customer.objects.create(name="A", external_id="A")
    Subscription.objects.create(customer=a, product=app, start_date=d("2025-01-01"), mrr=1)
    RiskSignal.objects.create(
        customer=a,
        kind=SignalKind.NO_LOGIN,
        severity=Severity.LOW,
        reason="r",
        opened_on=d("2025-03-10"),
        last_seen_on=d("2025-03-10"),
    )
    frame = churn.build_frame(
        [d("2025-02-01"), d("2025-04-01")], features=["open_signals"], horizon_days=30
    )
    assert math.isnan(frame.x[0, 0])
    assert frame.x[1, 0] == 1.0


def test_only_firsts_of_months_labelled_by_the_as_of_day_are_snapshots() -> None:
    for day in ["2025-01-01", "2025-01-15", "2025-02-01", "2025-03-01", "2025-04-01"]:
        write_metrics(d(day), {})
    assert churn.snapshot_days(as_of=d("2025-05-31"), horizon_days=90) == [
        d("2025-01-01"),
        d("2025-02-01"),
        d("2025-03-01"),
    ]


# -- synthetic portfolios -------------------------------------------------------------------------


@dataclass(frozen=True)
class World:
    customer_ids: list[int]
    risk: dict[int, float]


def make_world(*, customers: int, signal: bool, seed: int, churn_scale: float = 1.0) -> World:
    """Customers on monthly terms that start before 2024 and leave month by month until 2025-12.

    With ``signal``, a hidden risk r ~ U(0, 1) drives the monthly churn hazard
    (0.2% + 15% r³) and shows (with noise) in seat utilisation and active users' change, only
    weakly in the events' change (the usage-drop rule's input); without it every value is
    noise and the hazard is 3.5% for everyone.
    """
    rng = np.random.default_rng(seed)
    app = product()
    made = Customer.objects.bulk_create(
        Customer(name=f"C{seed}-{n:04d}", external_id=f"C{seed}-{n:04d}") for n in range(customers)
    )
    ids = [c.pk for c in made]
    risk = dict(zip(ids, rng.uniform(0, 1, customers).tolist(), strict=True))
    mrr = {cid: Decimal(int(rng.integers(10, 100)) * 100) for cid in ids}
    seats = {cid: Decimal(int(rng.integers(5, 50))) for cid in ids}
    # Monthly contract terms, the first from a month of the second half of 2023; a customer
    # that leaves does not renew its current term.
    terms = [
        (cid, month)
        for cid in ids
        for month in churn.month_starts(
            date(2023, int(rng.integers(7, 13)), 1), HISTORY_START - timedelta(days=1)
        )
    ]
    alive = set(ids)
    for month in churn.month_starts(HISTORY_START, d("2025-12-01")):
        present = sorted(alive)
        terms.extend((cid, month) for cid in present)
        values: dict[int, dict[str, float | None]] = {}
        for cid in present:
            r = risk[cid] if signal else rng.uniform()
            noise = rng.normal(size=4)
            values[cid] = {
                "seat_utilisation_28d": float(
                    np.clip((0.9 - 0.6 * r if signal else rng.uniform()) + 0.1 * noise[0], 0, 1)
                ),
                "active_users_28d_change": float((-0.3 * r if signal else 0.0) + 0.1 * noise[1]),
                "events_28d_change": float((-0.05 * r if signal else 0.0) + 0.2 * noise[2]),
                "events_28d": float(max(0.0, 200 + 50 * noise[3])),
            }
        write_metrics(month, values)
        for cid in present:
            hazard = (0.002 + 0.15 * risk[cid] ** 3) if signal else 0.035
            if rng.uniform() < hazard * churn_scale:
                alive.discard(cid)
    Subscription.objects.bulk_create(
        Subscription(
            customer_id=cid,
            product=app,
            start_date=month,
            end_date=churn.month_starts(month + timedelta(days=1), month + timedelta(days=31))[0],
            mrr=mrr[cid],
            quantity=seats[cid],
            unit="seats",
        )
        for cid, month in terms
    )
    return World(ids, risk)


def test_logistic_model_finds_a_known_signal_and_beats_the_usage_drop_rule() -> None:
    make_world(customers=400, signal=True, seed=1)

    model = churn.train_model(as_of=AS_OF)

    assert model.error == ""
    assert model.is_current
    backtest = model.backtest
    assert backtest["periods"] == 12
    assert backtest["auc"] > 0.7
    assert backtest["baseline_auc"] < backtest["auc"] - 0.05
    assert backtest["beats_baseline"] is True
    assert backtest["lift_top_decile"] > 1.8
    bins = backtest["calibration"]
    assert len(bins) == 10
    assert sum(b["count"] for b in bins) == backtest["rows"]
    assert bins[-1]["observed"] > bins[0]["observed"]
    assert model.rows > 0
    assert model.positives >= churn.MIN_POSITIVES
    # Features without any value in the history (no NPS, signals, scores here) are left out.
    assert "nps" not in model.features
    assert "seat_utilisation_28d" in model.features


def test_noise_gives_an_auc_near_one_half() -> None:
    """Every value is noise: a model that found anything would be reading the future."""
    make_world(customers=400, signal=False, seed=2)

    model = churn.train_model(as_of=AS_OF)

    assert model.error == ""
    assert abs(model.backtest["auc"] - 0.5) < 0.07
    assert abs(model.backtest["baseline_auc"] - 0.5) < 0.07


def test_too_few_churned_customers_give_a_model_with_an_explained_error() -> None:
    make_world(customers=40, signal=False, seed=3, churn_scale=0.0)

    with translation.override("en"):
        model = churn.train_model(as_of=AS_OF)

    assert model.pk is not None
    assert not model.is_current
    assert "Not enough history to train" in model.error
    assert "0 churned within 90 days" in model.error
    assert churn.current_model() is None
    assert churn.predict_current(day=d("2025-12-01")) == 0


def test_without_metric_history_training_explains_what_is_missing() -> None:
    with translation.override("en"):
        model = churn.train_model(as_of=AS_OF)

    assert "Not enough history to train: 0 customer-months" in model.error
    assert model.features == []
    assert not model.is_current


def test_stored_logistic_parameters_predict_what_the_fitted_pipeline_predicts() -> None:
    make_world(customers=200, signal=True, seed=4)
    frame = churn.training_frame(as_of=AS_OF)
    present = ~np.isnan(frame.x).all(axis=0)
    features = [f for f, keep in zip(frame.features, present, strict=True) if keep]
    x = frame.x[:, present]
    pipeline = churn.make_estimator(ModelKind.LOGISTIC).fit(x, frame.y)

    parameters = churn.lr_parameters(pipeline, features)
    x[::7, 0] = np.nan  # unseen missing values are imputed the same way

    expected = pipeline.predict_proba(x)[:, 1]
    got = 1 / (1 + np.exp(-churn.lr_log_odds(parameters, x)))
    assert np.allclose(got, expected, atol=1e-9)


def test_predictions_cover_every_active_customer_with_drivers_that_raise_the_risk() -> None:
    world = make_world(customers=300, signal=True, seed=5)
    model = churn.train_model(as_of=AS_OF)
    day = d("2025-12-01")
    active = set(
        Subscription.objects.filter(start_date__lte=day)
        .exclude(end_date__lte=day)
        .values_list("customer_id", flat=True)
    )

    assert churn.predict_current(day=day) == len(active)
    assert churn.predict_current(day=day) == len(active)  # again: replaced, not added

    predictions = churn.latest_predictions(sorted(active))
    assert set(predictions) == active
    riskiest = max(predictions.values(), key=lambda p: p.probability)
    safest = min(predictions.values(), key=lambda p: p.probability)
    assert world.risk[riskiest.customer_id] > world.risk[safest.customer_id]
    for prediction in predictions.values():
        assert 0 < prediction.probability < 1
        assert len(prediction.drivers) <= churn.TOP_DRIVERS
        effects = [driver["effect"] for driver in prediction.drivers]
        assert effects == sorted(effects, reverse=True)
        assert all(effect > 0 for effect in effects)
    top = riskiest.drivers[0]
    assert top["feature"] in {"seat_utilisation_28d", "active_users_28d_change"}
    assert "log_odds" in top
    with translation.override("en"):
        assert churn.describe_driver(
            {"feature": "events_28d", "label": "Events (28 days)", "value": 746.0, "effect": 0.08}
        ) == ("Events (28 days): 746 (+8.0 points of churn probability)")
    assert ChurnPrediction.objects.filter(model=model, day=day).count() == len(active)


def test_a_day_without_its_metric_file_uses_the_latest_file_of_the_week_before() -> None:
    """Metric files exist on the 1sts only: 2025-12-05 reads 12-01's; 2025-12-20 reads none."""
    make_world(customers=150, signal=True, seed=9)
    model = churn.train_model(as_of=AS_OF)
    column = model.features.index("seat_utilisation_28d")

    churn.predict_current(day=d("2025-12-05"))
    churn.predict_current(day=d("2025-12-20"))

    early = churn.build_frame(
        [d("2025-12-05")], features=model.features, metric_days={d("2025-12-05"): d("2025-12-01")}
    )
    assert not np.isnan(early.x[:, column]).any()
    late = churn.build_frame([d("2025-12-20")], features=model.features)
    assert np.isnan(late.x[:, column]).all()
    assert ChurnPrediction.objects.filter(day=d("2025-12-05")).count() == len(early)
    assert ChurnPrediction.objects.filter(day=d("2025-12-20")).count() == len(late)
    assert churn._metric_days(d("2025-12-05")) == {d("2025-12-05"): d("2025-12-01")}
    assert churn._metric_days(d("2025-12-20")) == {}


def test_latest_predictions_take_each_customers_latest_day() -> None:
    make_world(customers=200, signal=True, seed=6)
    churn.train_model(as_of=AS_OF)
    churn.predict_current(day=d("2025-11-01"))
    churn.predict_current(day=d("2025-12-01"))
    ids = list(
        ChurnPrediction.objects.filter(day=d("2025-11-01")).values_list("customer_id", flat=True)
    )

    latest = churn.latest_predictions(ids)

    stayed = set(
        ChurnPrediction.objects.filter(day=d("2025-12-01")).values_list("customer_id", flat=True)
    )
    assert {cid for cid, p in latest.items() if p.day == d("2025-12-01")} == stayed & set(ids)
    assert {cid for cid, p in latest.items() if p.day == d("2025-11-01")} == set(ids) - stayed


def test_gradient_boosting_is_stored_under_the_data_directory_and_predicts(
    isolated_data_dir: Path,
) -> None:
    world = make_world(customers=300, signal=True, seed=7)
    # Scores stored only for the last months: the feature is empty in the early backtests.
    version = ScorecardVersion.objects.create(
        scorecard=Scorecard.objects.create(name="S"), number=1, status="published"
    )
    HealthScore.objects.bulk_create(
        HealthScore(customer_id=cid, day=day, version=version, score=100 * (1 - world.risk[cid]))
        for day in churn.month_starts(d("2025-08-01"), d("2025-12-01"))
        for cid in world.customer_ids
    )

    model = churn.train_model(as_of=AS_OF, kind=ModelKind.GRADIENT_BOOSTING)

    assert model.error == ""
    assert "health_score" in model.features
    assert model.backtest["auc"] > 0.65
    path = isolated_data_dir / model.parameters["estimator"]
    assert path.is_file()
    assert path.parent == isolated_data_dir / "models"
    assert churn.predict_current(day=d("2025-12-01")) > 0
    assert ChurnModel.objects.get(is_current=True) == model
    path.unlink()
    with pytest.raises(churn.ModelUnavailableError, match="estimator file missing"):
        churn.predict_current(day=d("2025-12-01"))


def test_a_new_model_replaces_the_current_one() -> None:
    make_world(customers=200, signal=True, seed=8)
    first = churn.train_model(as_of=AS_OF)
    second = churn.train_model(as_of=AS_OF)
    first.refresh_from_db()
    assert not first.is_current
    assert churn.current_model() == second


def test_bad_arguments_name_the_field() -> None:
    with pytest.raises(ValueError, match="kind"):
        churn.train_model(as_of=AS_OF, kind="forest")
    with pytest.raises(ValueError, match="horizon_days"):
        churn.train_model(as_of=AS_OF, horizon_days=0)


def test_decorrelation_keeps_the_column_closer_to_the_label_and_drops_constants() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    closer = y + rng.normal(0, 0.5, 500)
    copy = closer + rng.normal(0, 0.1, 500)  # r ≈ 0.98 with `closer`, further from y
    other = rng.normal(size=500)
    constant = np.full(500, 3.0)
    x = np.column_stack([copy, closer, other, constant])

    kept = churn.DropCorrelated().fit(x, y).keep_

    assert kept.tolist() == [1, 2]


def test_calibration_lift_and_auc_on_a_hand_made_ranking() -> None:
    """20 rows, scores 0.05..1.00; the 2 highest and one low one churned.

    Top decile = the 2 highest scores, both churned: rate 1 vs 3/20 overall → lift 6.67.
    AUC: of 3 × 17 positive-negative pairs, the low positive (score 0.15) ranks above 2
    negatives (0.05, 0.10) → (2 × 17 + 2) / 51 = 36/51.
    """
    score = np.arange(1, 21) / 20
    y = np.zeros(20, np.int8)
    y[[2, 18, 19]] = 1
    assert churn.top_decile_lift(y, score) == pytest.approx(20 / 3)
    assert churn.roc_auc(y, score) == pytest.approx(36 / 51)
    bins = churn.calibration(y, score)
    assert [b["count"] for b in bins] == [2] * 10
    assert [b["observed"] for b in bins] == [0, 0.5, 0, 0, 0, 0, 0, 0, 0, 1]
    assert bins[0]["predicted"] == pytest.approx(0.075)
    assert churn.roc_auc(np.zeros(3, np.int8), score[:3]) is None
    assert churn.top_decile_lift(np.zeros(3, np.int8), score[:3]) is None
