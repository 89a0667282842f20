"""The health REST API: a customer's health and history, the scores of a day, signals (list,
close), sentiment, scorecards and the model — with permissions and errors naming the field
(400 for rules, 422 for wrong types, 403, 404). Data: ``ui_helpers.portfolio``."""

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from kizuna.core.models import TimelineEntry, TimelineKind
from kizuna.core.roles import Role
from kizuna.health.models import ChurnModel, ChurnPrediction, CsmSentiment, RiskSignal
from kizuna.health.tests.ui_helpers import Portfolio, portfolio

API = "/api/v1/health"
pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _english(settings: Any) -> None:
    settings.LANGUAGE_CODE = "en"


@pytest.fixture
def data() -> Portfolio:
    return portfolio()


def _fields(body: dict[str, Any]) -> set[str]:
    return {str(error["loc"][-1]) for error in body["detail"]}


def test_a_customers_health_has_its_score_measures_explanation_signals_and_churn(
    api_client: Callable[..., Client], data: Portfolio
) -> None:
    model = ChurnModel.objects.create(
        trained_through=data.today, horizon_days=90, is_current=True, rows=100, positives=10
    )
    ChurnPrediction.objects.create(
        model=model,
        customer=data.acme,
        day=data.today,
        probability=0.42,
        drivers=[{"feature": "events_28d_change", "label": "Events", "value": -0.35,
                  "effect": 0.12}],
    )  # fmt: skip

    body = api_client(Role.VIEWER).get(f"{API}/customers/{data.acme.pk}").json()

    assert (body["day"], body["score"], body["band"]) == (data.today.isoformat(), 24.0, "at_risk")
    assert (body["scorecard"], body["version"], body["missing_weight"]) == ("Test", 1, 0.25)
    measures = {m["key"]: m for m in body["measures"]}
    assert (measures["usage_trend"]["points"], measures["usage_trend"]["contribution"]) == (21, 14)
    assert measures["sentiment"]["missing"] is True
    assert measures["sentiment"]["value"] is None
    explanation = body["explanation"]
    assert explanation["previous_day"] == data.earlier.isoformat()
    assert round(explanation["previous_score"], 2) == 68.33
    assert explanation["lines"][0]["key"] == "usage_trend"
    assert explanation["lines"][0]["delta"] == pytest.approx(14 - 155 / 3, abs=1e-3)
    [signal] = body["open_signals"]
    assert signal["kind"] == "usage_drop"
    assert signal["reason"].startswith("Events (28 days) fell 35% (from 1,200 to 780)")
    assert body["churn"]["probability"] == 0.42
    assert body["churn"]["drivers"][0]["feature"] == "events_28d_change"
    assert body["sentiment"] is None


def test_a_customer_never_scored_has_nulls_not_zeros(
    api_client: Callable[..., Client], data: Portfolio
) -> None:
    from kizuna.customers.models import Customer

    newcomer = Customer.objects.create(name="Newcomer")
    body = api_client(Role.VIEWER).get(f"{API}/customers/{newcomer.pk}").json()

    assert (body["day"], body["score"], body["band"], body["explanation"]) == (None, None, "", None)
    assert body["measures"] == []
    assert body["churn"] is None
    assert api_client(Role.VIEWER).get(f"{API}/customers/999999").status_code == 404


def test_history_lists_the_scores_of_the_range_and_refuses_bad_ranges(
    api_client: Callable[..., Client], data: Portfolio
) -> None:
    client = api_client(Role.VIEWER)
    url = f"{API}/customers/{data.acme.pk}/history"

    points = client.get(url, {"start": data.earlier.isoformat(), "end": data.today.isoformat()})
    backwards = client.get(url, {"start": data.today.isoformat(), "end": data.earlier.isoformat()})
    not_a_date = client.get(url, {"start": "yesterday"})

    assert [(p["day"], round(p["score"], 2), p["band"]) for p in points.json()] == [
        (data.earlier.isoformat(), 68.33, "watch"),
        (data.today.isoformat(), 24.0, "at_risk"),
    ]
    assert backwards.status_code == 400
    assert "start" in backwards.json()["detail"]
    assert not_a_date.status_code == 422
    assert _fields(not_a_date.json()) == {"start"}


def test_scores_of_a_day_lowest_first_filtered_by_band(
    api_client: Callable[..., Client], data: Portfolio
) -> None:
    client = api_client(Role.VIEWER)

    latest = client.get(f"{API}/scores").json()
    at_risk = client.get(f"{API}/scores", {"band": "at_risk"}).json()
    earlier = client.get(f"{API}/scores", {"day": data.earlier.isoformat()}).json()
    bad = client.get(f"{API}/scores", {"band": "red"})

    assert latest["day"] == data.today.isoformat()
    assert [(s["customer_name"], s["band"]) for s in latest["items"]] == [
        ("Acme", "at_risk"),
        ("Bright", "good"),
    ]
    assert [s["customer_name"] for s in at_risk["items"]] == ["Acme"]
    assert [s["band"] for s in earlier["items"]] == ["watch", "good"]
    assert bad.status_code == 422
    assert _fields(bad.json()) == {"band"}


def test_signals_are_listed_by_status_and_kind(
    api_client: Callable[..., Client], data: Portfolio
) -> None:
    client = api_client(Role.VIEWER)

    open_ = client.get(f"{API}/signals", {"status": "open"}).json()
    closed = client.get(f"{API}/signals", {"status": "closed"}).json()
    by_kind = client.get(f"{API}/signals", {"kind": "no_login"}).json()
    bad = client.get(f"{API}/signals", {"status": "maybe"})

    assert [s["kind"] for s in open_["items"]] == ["usage_drop"]
    assert [(s["kind"], s["resolution"]) for s in closed["items"]] == [("no_login", "cleared")]
    assert by_kind["count"] == 1
    assert by_kind["items"][0]["customer_name"] == "Bright"
    assert closed["items"][0]["reason"].startswith("No login for 20 days")
    assert bad.status_code == 422
    assert _fields(bad.json()) == {"status"}


def test_a_csm_closes_a_signal_and_a_viewer_may_not(
    api_client: Callable[..., Client], data: Portfolio
) -> None:
    url = f"{API}/signals/{data.signal.pk}/close"
    viewer = api_client(Role.VIEWER).post(url, {"resolution": "resolved"}, "application/json")
    csm = api_client(Role.ADOPTION_CSM)
    wrong = csm.post(url, {"resolution": "cleared"}, "application/json")
    closed = csm.post(url, {"resolution": "dismissed", "note": "Seasonal"}, "application/json")
    again = csm.post(url, {"resolution": "dismissed"}, "application/json")

    assert viewer.status_code == 403
    assert wrong.status_code == 422
    assert _fields(wrong.json()) == {"resolution"}
    assert closed.status_code == 200
    body = closed.json()
    assert (body["closed_on"], body["resolution"], body["resolution_note"]) == (
        timezone.localdate().isoformat(),
        "dismissed",
        "Seasonal",
    )
    assert again.status_code == 400
    assert "signal_id" in again.json()["detail"]
    assert TimelineEntry.objects.filter(kind=TimelineKind.RISK_CLOSED).count() == 1
    assert RiskSignal.objects.get(pk=data.signal.pk).resolution == "dismissed"


def test_sentiment_is_recorded_by_a_csm_with_its_day_checked(
    api_client: Callable[..., Client], data: Portfolio
) -> None:
    url = f"{API}/customers/{data.acme.pk}/sentiment"
    csm = api_client(Role.ADOPTION_CSM)
    tomorrow = (timezone.localdate() + timedelta(days=1)).isoformat()

    viewer = api_client(Role.VIEWER).post(url, {"sentiment": 4}, "application/json")
    too_high = csm.post(url, {"sentiment": 6}, "application/json")
    future = csm.post(url, {"sentiment": 4, "day": tomorrow}, "application/json")
    unknown = csm.post(url, {"sentiment": 4, "mood": "ok"}, "application/json")
    saved = csm.post(url, {"sentiment": 2, "note": "Budget cuts"}, "application/json")

    assert viewer.status_code == 403
    assert too_high.status_code == 422
    assert _fields(too_high.json()) == {"sentiment"}
    assert future.status_code == 400
    assert "day" in future.json()["detail"]
    assert unknown.status_code == 422
    assert _fields(unknown.json()) == {"mood"}
    assert saved.status_code == 201
    assert saved.json()["sentiment"] == 2
    assert list(CsmSentiment.objects.values_list("sentiment", "note")) == [(2, "Budget cuts")]
    # The customer's health now carries it.
    health = csm.get(f"{API}/customers/{data.acme.pk}").json()
    assert health["sentiment"]["sentiment"] == 2


def test_scorecards_are_listed_with_versions_and_measures(
    api_client: Callable[..., Client], data: Portfolio
) -> None:
    [card] = api_client(Role.VIEWER).get(f"{API}/scorecards").json()

    assert (card["name"], card["versions"][0]["number"], card["versions"][0]["status"]) == (
        "Test",
        1,
        "published",
    )
    measures = {m["key"]: m for m in card["versions"][0]["measures"]}
    assert measures["usage_trend"]["thresholds"] == [[-0.5, 0], [0, 70], [0.2, 100]]
    assert measures["usage_trend"]["metric_key"] == "events_28d_change"


def test_the_model_endpoint_shows_the_backtest_or_404_without_a_model(
    api_client: Callable[..., Client], data: Portfolio
) -> None:
    client = api_client(Role.VIEWER)
    missing = client.get(f"{API}/model")
    ChurnModel.objects.create(
        trained_through=data.today,
        is_current=True,
        rows=400,
        positives=40,
        features=["events_28d_change"],
        backtest={
            "auc": 0.8,
            "lift_top_decile": 2.5,
            "baseline_auc": 0.7,
            "beats_baseline": True,
            "periods": 6,
            "calibration": [{"predicted": 0.1, "observed": 0.12, "count": 40}],
        },
    )

    body = client.get(f"{API}/model").json()

    assert missing.status_code == 404
    assert (body["auc"], body["lift_top_decile"], body["baseline_auc"]) == (0.8, 2.5, 0.7)
    assert body["beats_baseline"] is True
    assert body["calibration"] == [{"predicted": 0.1, "observed": 0.12, "count": 40}]


def test_reading_health_needs_a_signed_in_user(client: Client, data: Portfolio) -> None:
    assert client.get(f"{API}/customers/{data.acme.pk}").status_code == 401
