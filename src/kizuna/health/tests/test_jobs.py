"""The daily health run: its steps in order, churn re-training, failures kept, no overlap.

Signals and the churn model are their own modules (tested there); here they are replaced by
recorders so the run's order and its handling of their failures are what is checked.
"""

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pytest
from django.db import connection, connections

from kizuna.core.models import TimelineEntry, TimelineKind
from kizuna.health import churn, signals
from kizuna.health.jobs import HealthRunInProgressError, run_health, run_lock
from kizuna.health.models import HealthScore, RiskSignal, Severity, SignalKind
from kizuna.health.tests.scores_helpers import customer

pytestmark = pytest.mark.django_db

DAY = date(2026, 6, 15)


@dataclass
class FakeModel:
    pk: int
    trained_through: date
    error: str = ""


@dataclass
class SignalResult:
    opened: int
    kept: int
    closed: int


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the calls to signals and churn; the signals step opens a usage-drop signal."""
    made: list[str] = []
    state: dict[str, Any] = {"model": FakeModel(pk=7, trained_through=DAY - timedelta(days=3))}

    def evaluate_signals(*, day: date) -> SignalResult:
        made.append(f"signals {day}")
        assert not HealthScore.objects.filter(day=day).exists()
        for pk in customer_ids():
            RiskSignal.objects.get_or_create(
                customer_id=pk,
                kind=SignalKind.USAGE_DROP,
                closed_on=None,
                defaults={
                    "severity": Severity.HIGH,
                    "reason": "drop",
                    "opened_on": day,
                    "last_seen_on": day,
                },
            )
        return SignalResult(opened=1, kept=0, closed=0)

    def current_model() -> FakeModel | None:
        made.append("current_model")
        model: FakeModel | None = state["model"]
        return model

    def train_model(*, as_of: date) -> FakeModel:
        made.append(f"train {as_of}")
        state["model"] = FakeModel(pk=8, trained_through=as_of)
        return FakeModel(pk=8, trained_through=as_of)

    def predict_current(*, day: date, model: FakeModel | None = None) -> int:
        made.append(f"predict {day} model {model.pk if model else None}")
        assert HealthScore.objects.filter(day=day).exists()  # scores come first
        return 3

    monkeypatch.setattr(signals, "evaluate_signals", evaluate_signals)
    monkeypatch.setattr(churn, "current_model", current_model)
    monkeypatch.setattr(churn, "train_model", train_model)
    monkeypatch.setattr(churn, "predict_current", predict_current)
    return made


def customer_ids() -> list[int]:
    from kizuna.customers.models import Customer

    return list(Customer.objects.values_list("pk", flat=True))


def test_the_run_raises_signals_then_scores_then_predicts(calls: list[str]) -> None:
    acme = customer("Acme")
    result = run_health(as_of=DAY)
    assert calls == ["signals 2026-06-15", "current_model", "predict 2026-06-15 model 7"]
    assert result.scorecards_created == 2
    assert result.signals == {"opened": 1, "kept": 0, "closed": 0}
    assert (result.scored, result.not_scored, result.predictions) == (1, 0, 3)
    assert (result.model_trained, result.model_id, result.errors) == (False, 7, {})
    score = HealthScore.objects.get(customer=acme, day=DAY)
    # The signal opened by the run's first step is counted by the open_signals measure.
    assert {line["key"]: line["value"] for line in score.measures}["open_signals"] == 1


def test_a_model_older_than_30_days_is_retrained_first(
    calls: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    customer("Acme")
    old = FakeModel(pk=7, trained_through=DAY - timedelta(days=31))
    monkeypatch.setattr(churn, "current_model", lambda: calls.append("current_model") or old)
    result = run_health(as_of=DAY)
    assert calls[1:] == ["current_model", "train 2026-06-15", "predict 2026-06-15 model 8"]
    assert (result.model_trained, result.model_id) == (True, 8)


def test_a_training_failure_is_recorded_and_the_scores_still_land(
    calls: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    customer("Acme")
    monkeypatch.setattr(churn, "current_model", lambda: None)

    def broken(*, as_of: date) -> FakeModel:
        raise RuntimeError("no churned customers yet")

    monkeypatch.setattr(churn, "train_model", broken)
    result = run_health(as_of=DAY)
    assert result.errors == {"training": "RuntimeError: no churned customers yet"}
    assert (result.model_id, result.predictions, result.scored) == (None, 0, 1)


def test_a_signals_failure_is_recorded_and_the_run_goes_on(
    calls: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    customer("Acme")

    def broken(*, day: date) -> None:
        raise ValueError("bad rule")

    monkeypatch.setattr(signals, "evaluate_signals", broken)
    result = run_health(as_of=DAY)
    assert result.errors == {"signals": "ValueError: bad rule"}
    assert result.scored == 1
    assert result.predictions == 3


def test_band_changes_from_the_previous_run_reach_the_timeline(calls: list[str]) -> None:
    acme = customer("Acme")
    HealthScore.objects.all().delete()
    run_health(as_of=DAY - timedelta(days=1))
    HealthScore.objects.filter(customer=acme).update(band="good")  # say it was good yesterday
    result = run_health(as_of=DAY)
    today = HealthScore.objects.get(customer=acme, day=DAY)
    assert today.band != "good"
    assert result.band_changes == 1
    entry = TimelineEntry.objects.get(kind=TimelineKind.HEALTH_BAND_CHANGED)
    assert entry.payload["from"] == "good"
    assert entry.payload["to"] == today.band


def test_a_second_run_is_refused_while_one_holds_the_lock(calls: list[str]) -> None:
    if connection.vendor == "postgresql":
        # An advisory lock is re-entrant within a session: hold it from another connection.
        real = connections["default"]
        other = type(real)(real.settings_dict, alias="other")
        try:
            with other.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_lock(%s)", [0x4B5A_4845])
            with pytest.raises(HealthRunInProgressError):
                run_health(as_of=DAY)
        finally:
            with other.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [0x4B5A_4845])
            other.close()
    else:
        with run_lock() as acquired:
            assert acquired
            with pytest.raises(HealthRunInProgressError):
                run_health(as_of=DAY)
    assert run_health(as_of=DAY).scorecards_created == 2  # free again
