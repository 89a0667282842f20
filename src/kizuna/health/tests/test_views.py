"""The health pages through HTTP: the Customer 360 panel, the Health page, the churn model's page,
the customer list's health column, Settings → Health scorecards and Risk signals, and who may
do what. Data: ``ui_helpers.portfolio`` (scores computed by hand there)."""

from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from kizuna.core.models import TimelineEntry, TimelineKind, User
from kizuna.core.roles import Role
from kizuna.customers.models import Customer
from kizuna.health.models import (
    ChurnModel,
    ChurnPrediction,
    CsmSentiment,
    HealthScore,
    Resolution,
    RiskSignal,
    Scorecard,
    ScorecardVersion,
    SignalKind,
    SignalRule,
    VersionStatus,
)
from kizuna.health.tests.ui_helpers import Portfolio, portfolio

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _english(settings: Any) -> None:
    settings.LANGUAGE_CODE = "en"


@pytest.fixture
def client_for(make_user: Callable[..., User]) -> Callable[..., Client]:
    def make(role: str) -> Client:
        client = Client()
        client.force_login(make_user(role))
        return client

    return make


@pytest.fixture
def data() -> Portfolio:
    return portfolio()


def html(response: Any) -> str:
    return str(response.content.decode())


# --- Customer 360 ------------------------------------------------------------------------------


def test_the_panel_shows_the_score_its_breakdown_with_the_missing_measure_and_why_it_fell(
    client_for: Callable[..., Client], data: Portfolio
) -> None:
    response = client_for(Role.ADOPTION_CSM).get(
        reverse("health:customer-health", args=[data.acme.pk]), headers={"HX-Request": "true"}
    )

    assert response.status_code == 200
    page = html(response)
    assert "<html" not in page  # the htmx partial only
    assert "data-score>24<" in page
    assert 'data-band="at_risk"' in page
    # Breakdown: 21 points × 2/4 of the weight → 14; 30 points × 1/4 → 10 (hand-computed).
    context = response.context
    rows = {row["key"]: row for row in context["breakdown"]["rows"]}
    assert (rows["usage_trend"]["points"], rows["usage_trend"]["contribution"]) == ("21", "14.0")
    assert (rows["seats"]["value"], rows["seats"]["contribution"]) == ("30%", "10.0")
    assert rows["sentiment"]["missing"]
    assert rows["sentiment"]["value"] == "—"
    assert context["breakdown"]["missing_weight"] == "25%"
    assert 'id="missing-note"' in page
    # vs 28 days ago: 68.33 → 24.
    assert context["explanation"]["delta"] == "-44.3"
    assert context["explanation"]["lines"][0]["key"] == "usage_trend"
    assert 'class="health-history"' in page
    assert "Events (28 days) fell 35% (from 1,200 to 780) vs the previous 28 days" in page
    assert 'id="sentiment-form"' in page


def test_a_customer_never_scored_shows_empty_states_not_zeros(
    client_for: Callable[..., Client], data: Portfolio
) -> None:
    newcomer = Customer.objects.create(name="Newcomer")
    page = html(client_for(Role.VIEWER).get(reverse("health:customer-health", args=[newcomer.pk])))

    assert 'id="no-score"' in page
    assert 'id="no-open-signals"' in page
    assert 'id="no-prediction"' in page
    assert 'id="sentiment-form"' not in page  # a viewer writes nothing


def test_a_csm_closes_a_signal_with_a_note_and_it_lands_on_the_timeline(
    client_for: Callable[..., Client], data: Portfolio
) -> None:
    client = client_for(Role.ADOPTION_CSM)
    url = reverse("health:signal-close", args=[data.signal.pk])

    response = client.post(
        url,
        {"resolution": "resolved", "note": "Called the new admin"},
        headers={"HX-Request": "true"},
    )

    assert response.status_code == 200
    signal = RiskSignal.objects.get(pk=data.signal.pk)
    assert (signal.closed_on, signal.resolution, signal.resolution_note) == (
        timezone.localdate(),
        Resolution.RESOLVED,
        "Called the new admin",
    )
    assert 'id="no-open-signals"' in html(response)
    entry = TimelineEntry.objects.get(customer=data.acme, kind=TimelineKind.RISK_CLOSED)
    assert entry.payload["signal_id"] == signal.pk
    assert entry.payload["resolution"] == "resolved"
    again = client.post(url, {"resolution": "dismissed"})
    assert again.status_code == 400
    assert "already closed" in html(again)


def test_closing_needs_a_valid_resolution_named_on_the_form(
    client_for: Callable[..., Client], data: Portfolio
) -> None:
    response = client_for(Role.ADOPTION_CSM).post(
        reverse("health:signal-close", args=[data.signal.pk]), {"resolution": "cleared"}
    )

    assert response.status_code == 400
    assert response.context["close_form"].errors["resolution"]
    assert RiskSignal.objects.get(pk=data.signal.pk).closed_on is None


def test_a_csm_records_sentiment_and_a_bad_value_is_a_field_error(
    client_for: Callable[..., Client], data: Portfolio
) -> None:
    client = client_for(Role.ADOPTION_CSM)
    url = reverse("health:sentiment", args=[data.acme.pk])

    bad = client.post(url, {"sentiment": "9"})
    good = client.post(url, {"sentiment": "2", "note": "Frustrated by the migration"})

    assert bad.status_code == 400
    assert bad.context["sentiment_form"].errors["sentiment"]
    assert good.status_code == 302
    saved = CsmSentiment.objects.get(customer=data.acme)
    assert (saved.sentiment, saved.note, saved.recorded_on) == (
        2,
        "Frustrated by the migration",
        timezone.localdate(),
    )
    entry = TimelineEntry.objects.get(customer=data.acme, kind=TimelineKind.SENTIMENT_RECORDED)
    assert entry.payload["sentiment"] == 2


def test_a_viewer_may_look_but_not_close_signals_or_record_sentiment(
    client_for: Callable[..., Client], data: Portfolio
) -> None:
    viewer = client_for(Role.VIEWER)

    assert viewer.get(reverse("health:customer-health", args=[data.acme.pk])).status_code == 200
    assert viewer.get(reverse("health:overview")).status_code == 200
    assert viewer.get(reverse("health:model")).status_code == 200
    closing = viewer.post(
        reverse("health:signal-close", args=[data.signal.pk]), {"resolution": "resolved"}
    )
    feeling = viewer.post(reverse("health:sentiment", args=[data.acme.pk]), {"sentiment": "3"})
    assert (closing.status_code, feeling.status_code) == (403, 403)
    assert RiskSignal.objects.get(pk=data.signal.pk).closed_on is None


# --- The Health page ---------------------------------------------------------------------------


def test_the_health_page_shows_bands_at_risk_arr_movers_and_open_signals(
    client_for: Callable[..., Client], data: Portfolio
) -> None:
    response = client_for(Role.VIEWER).get(reverse("health:overview"))

    page = html(response)
    overview = response.context["overview"]
    counts = {band["band"]: band["count"] for band in overview["bands"]}
    assert counts["at_risk"] == 1
    assert counts["good"] == 1
    # Acme's MRR 2,000 → ARR 24,000 at risk.
    assert overview["at_risk_arr"] == 24000
    assert [m["name"] for m in overview["movers"]][:1] == ["Acme"]
    assert "Events (28 days) fell 35%" in page
    assert [row["signal"].pk for row in response.context["signal_rows"]] == [data.signal.pk]


def test_the_health_page_filters_by_segment(
    client_for: Callable[..., Client], data: Portfolio
) -> None:
    response = client_for(Role.VIEWER).get(reverse("health:overview"), {"segment": "smb"})

    counts = {band["band"]: band["count"] for band in response.context["overview"]["bands"]}
    assert counts.get("at_risk", 0) == 0
    assert counts["good"] == 1
    assert response.context["signal_rows"] == []


def test_the_health_page_says_how_to_score_when_nothing_is_scored(
    client_for: Callable[..., Client],
) -> None:
    page = html(client_for(Role.VIEWER).get(reverse("health:overview")))

    assert 'id="health-empty"' in page
    assert "kizuna health run" in page


# --- The churn model's page --------------------------------------------------------------------


def _model(*, auc: float, baseline: float, beats: bool) -> ChurnModel:
    return ChurnModel.objects.create(
        trained_through=timezone.localdate(),
        features=["events_28d_change"],
        rows=400,
        positives=40,
        is_current=True,
        backtest={
            "auc": auc,
            "lift_top_decile": 2.5,
            "baseline_auc": baseline,
            "baseline_name": "usage_drop",
            "beats_baseline": beats,
            "periods": 6,
            "rows": 400,
            "positives": 40,
            "calibration": [
                {"predicted": 0.05, "observed": 0.04, "count": 200},
                {"predicted": 0.3, "observed": 0.35, "count": 200},
            ],
        },
    )


def test_the_model_page_shows_accuracy_calibration_and_the_customers_most_at_risk(
    client_for: Callable[..., Client], data: Portfolio
) -> None:
    model = _model(auc=0.81, baseline=0.66, beats=True)
    ChurnPrediction.objects.create(
        model=model,
        customer=data.acme,
        day=data.today,
        probability=0.42,
        drivers=[
            {"feature": "events_28d_change", "label": "Events vs previous 28 days",
             "value": -0.35, "effect": 0.12},
        ],
    )  # fmt: skip

    response = client_for(Role.VIEWER).get(reverse("health:model"))

    page = html(response)
    assert "data-auc>0.81<" in page
    assert "data-lift>2.5×<" in page
    assert "does better than the simple usage-drop rule (AUC 0.81 vs 0.66)" in page
    assert 'id="calibration-chart"' in page
    assert "calibration-data" in page
    assert "kizuna/health.js" in page
    assert response.context["prediction_rows"][0]["probability"] == "42%"
    assert "↑ Events vs previous 28 days" in page
    assert 'id="train"' not in page  # training needs manage_health


def test_a_model_no_better_than_the_usage_drop_rule_says_so(
    client_for: Callable[..., Client], data: Portfolio
) -> None:
    _model(auc=0.55, baseline=0.6, beats=False)

    page = html(client_for(Role.VIEWER).get(reverse("health:model")))

    assert "does no better than the simple usage-drop rule (AUC 0.55 vs 0.60)" in page


def test_the_model_page_without_a_model_says_how_to_train_one(
    client_for: Callable[..., Client],
) -> None:
    page = html(client_for(Role.CS_MANAGER).get(reverse("health:model")))

    assert 'id="no-model"' in page
    assert 'id="train"' in page


def test_training_needs_manage_health_and_too_little_history_is_reported(
    client_for: Callable[..., Client], data: Portfolio
) -> None:
    csm = client_for(Role.ADOPTION_CSM).post(reverse("health:train"), {"kind": "logistic"})
    bad = client_for(Role.CS_MANAGER).post(
        reverse("health:train"), {"kind": "logistic", "horizon_days": "3"}
    )
    manager = client_for(Role.CS_MANAGER)
    response = manager.post(
        reverse("health:train"), {"kind": "logistic", "horizon_days": "90"}, follow=True
    )

    assert csm.status_code == 403
    assert bad.status_code == 302
    # Only the valid request trained: a model row recording the error, never made current.
    assert list(ChurnModel.objects.values_list("horizon_days", "is_current")) == [(90, False)]
    # Two customers and no churn: an error message, never a 500.
    assert "could not be trained" in html(response)


# --- The customer list -------------------------------------------------------------------------


def test_the_customer_list_shows_each_customers_band_score_and_sparkline(
    client_for: Callable[..., Client], data: Portfolio
) -> None:
    Customer.objects.create(name="Zeta")  # never scored: "—"
    response = client_for(Role.VIEWER).get(reverse("customers:list"))

    page = html(response)
    assert 'data-column="health"' in page
    acme_row = page[page.index(">Acme<") :].split("</tr>")[0]
    assert 'data-band="at_risk"' in acme_row
    assert ">24<" in acme_row
    assert '<svg class="sparkline"' in acme_row
    assert acme_row.count("<circle") == 2  # two scored days 28 days apart: two dots
    zeta_row = page[page.index(">Zeta<") :].split("</tr>")[0]
    assert "sparkline" not in zeta_row
    assert "—" in zeta_row


# --- Settings → Health scorecards --------------------------------------------------------------


def _draft_post(**overrides: str) -> dict[str, str]:
    post = {
        "good_from": "75",
        "watch_from": "45",
        "measures-TOTAL_FORMS": "2",
        "measures-INITIAL_FORMS": "0",
        "measures-MIN_NUM_FORMS": "0",
        "measures-MAX_NUM_FORMS": "40",
        "measures-0-key": "seats",
        "measures-0-label": "Seat utilisation",
        "measures-0-source": "metric",
        "measures-0-metric_key": "seat_utilisation_28d",
        "measures-0-weight": "2",
        "measures-0-mapping": "thresholds",
        "measures-0-thresholds": "0:0, 0.4:60, 0.8:100",
        "measures-0-higher_is_better": "on",
        "measures-1-key": "nps",
        "measures-1-label": "NPS",
        "measures-1-source": "nps",
        "measures-1-weight": "1",
        "measures-1-mapping": "percentile",
        "measures-1-higher_is_better": "on",
    }
    post.update(overrides)
    return post


def test_a_manager_creates_a_scorecard_edits_its_draft_and_publishes_it(
    client_for: Callable[..., Client],
) -> None:
    from kizuna.analytics.metric_defaults import ensure_default_metrics

    ensure_default_metrics()
    client = client_for(Role.CS_MANAGER)
    created = client.post(
        reverse("health:scorecards"),
        {"name": "Enterprise", "touch_model": "high", "segment": "enterprise", "priority": "10",
         "is_active": "on"},
    )  # fmt: skip
    card = Scorecard.objects.get(name="Enterprise")
    draft = ScorecardVersion.objects.get(scorecard=card, number=1)
    assert created.status_code == 302
    assert created["Location"] == reverse("health:version", args=[draft.pk])

    saved = client.post(reverse("health:version", args=[draft.pk]), _draft_post())
    assert saved.status_code == 302
    draft.refresh_from_db()
    assert (draft.good_from, draft.watch_from) == (75, 45)
    measures = list(draft.measures.order_by("position").values_list("key", "weight", "thresholds"))
    assert measures == [("seats", 2.0, [[0, 0], [0.4, 60], [0.8, 100]]), ("nps", 1.0, [])]

    # The editor shows the saved measures back as "value:points" text.
    page = html(client.get(reverse("health:version", args=[draft.pk])))
    assert 'value="0:0, 0.4:60, 0.8:100"' in page

    published = client.post(reverse("health:version-publish", args=[draft.pk]))
    assert published.status_code == 302
    assert ScorecardVersion.objects.get(pk=draft.pk).status == VersionStatus.PUBLISHED
    read_only = client.post(reverse("health:version", args=[draft.pk]), _draft_post())
    assert read_only.status_code == 409


def test_the_draft_editor_names_the_field_of_each_mistake(
    client_for: Callable[..., Client], data: Portfolio
) -> None:
    client = client_for(Role.CS_MANAGER)
    card = Scorecard.objects.create(name="Trial")
    draft = ScorecardVersion.objects.create(scorecard=card, number=1)
    url = reverse("health:version", args=[draft.pk])

    not_pairs = client.post(url, _draft_post(**{"measures-0-thresholds": "0 to 100"}))
    limits = client.post(url, _draft_post(good_from="30", watch_from="60"))
    descending = client.post(url, _draft_post(**{"measures-0-thresholds": "0.8:100, 0:0"}))
    twice = client.post(url, _draft_post(**{"measures-1-key": "seats"}))

    assert not_pairs.status_code == 400
    assert "“0 to 100” is not value:points" in str(
        not_pairs.context["formset"].forms[0].errors["thresholds"]
    )
    assert limits.context["limits_form"].errors["good_from"]
    # The service checks the order; its error lands on the row's field.
    assert descending.status_code == 400
    assert descending.context["formset"].forms[0].errors["thresholds"]
    assert "seats" in str(twice.context["formset"].non_form_errors())
    assert not draft.measures.exists()


def test_a_new_version_copies_the_latest_and_history_is_recomputed_under_it(
    client_for: Callable[..., Client], data: Portfolio
) -> None:
    client = client_for(Role.CS_MANAGER)
    card = data.scorecard
    refused = client.post(reverse("health:version-new", args=[card.pk]), {"change_note": " "})
    made = client.post(
        reverse("health:version-new", args=[card.pk]), {"change_note": "Seats weigh more"}
    )
    draft = ScorecardVersion.objects.get(scorecard=card, number=2)
    assert refused.status_code == 400
    assert refused.context["version_form"].errors["change_note"]
    assert made.status_code == 302
    assert draft.change_note == "Seats weigh more"
    assert sorted(draft.measures.values_list("key", flat=True)) == [
        "seats", "sentiment", "usage_trend"
    ]  # fmt: skip
    client.post(reverse("health:version-publish", args=[draft.pk]))

    too_long = client.post(
        reverse("health:recompute", args=[card.pk]),
        {"start": "2024-01-01", "end": "2025-06-30"},
    )
    done = client.post(
        reverse("health:recompute", args=[card.pk]),
        {"start": data.earlier.isoformat(), "end": data.today.isoformat()},
    )

    assert too_long.status_code == 400
    assert "kizuna health backfill" in str(too_long.context["recompute_form"].errors["end"])
    assert done.status_code == 302
    assert set(
        HealthScore.objects.filter(day=data.today).values_list("version__number", flat=True)
    ) == {2}


def test_the_scorecard_page_shows_the_churn_that_followed_each_band(
    client_for: Callable[..., Client], data: Portfolio
) -> None:
    from kizuna.customers.models import Subscription
    from kizuna.health.scoring import score_customers
    from kizuna.health.tests.scores_helpers import write_metrics

    # A snapshot on the 1st of a month long enough ago: Acme at risk, Bright good; Acme's
    # subscription ends 30 days later (churned within 90 days), Bright stays.
    first = (data.today - timedelta(days=200)).replace(day=1)
    write_metrics(
        first,
        [
            (data.acme.pk, "events_28d_change", -0.5),
            (data.acme.pk, "seat_utilisation_28d", 0.1),
            (data.bright.pk, "events_28d_change", 0.2),
            (data.bright.pk, "seat_utilisation_28d", 0.9),
        ],
    )
    score_customers(day=first)
    Subscription.objects.filter(customer=data.acme).update(end_date=first + timedelta(days=30))

    response = client_for(Role.CS_MANAGER).get(
        reverse("health:scorecard", args=[data.scorecard.pk])
    )

    rows = {row["band"]: row for row in response.context["outcomes"]}
    assert (rows["at_risk"]["numerator"], rows["at_risk"]["denominator"]) == (1, 1)
    assert rows["at_risk"]["rate"] == "100.0%"
    assert (rows["good"]["numerator"], rows["good"]["denominator"], rows["good"]["rate"]) == (
        0,
        1,
        "0.0%",
    )
    assert 'id="outcomes-table"' in html(response)


def test_scorecard_settings_need_manage_health(
    client_for: Callable[..., Client], data: Portfolio
) -> None:
    csm = client_for(Role.ADOPTION_CSM)

    assert csm.get(reverse("health:scorecards")).status_code == 403
    assert csm.get(reverse("health:scorecard", args=[data.scorecard.pk])).status_code == 403
    assert csm.get(reverse("health:signal-rules")).status_code == 403
    assert csm.post(reverse("health:scorecards"), {"name": "Mine"}).status_code == 403
    tabs = html(client_for(Role.CS_MANAGER).get(reverse("health:scorecards")))
    assert reverse("health:signal-rules") in tabs


# --- Settings → Risk signals -------------------------------------------------------------------


def test_risk_signal_rules_show_a_row_per_kind_and_save_one(
    client_for: Callable[..., Client],
) -> None:
    client = client_for(Role.CS_MANAGER)
    page = html(client.get(reverse("health:signal-rules")))
    for kind in SignalKind.values:
        assert f'id="rule-{kind}"' in page

    saved = client.post(
        reverse("health:signal-rules"),
        {"kind": "no_login", "no_login-enabled": "on", "no_login-severity": "medium",
         "no_login-days": "21"},
    )  # fmt: skip

    assert saved.status_code == 302
    rule = SignalRule.objects.get(kind="no_login")
    assert (rule.enabled, rule.severity, rule.params["days"]) == (True, "medium", 21)


def test_a_bad_rule_parameter_is_an_error_on_its_field(
    client_for: Callable[..., Client],
) -> None:
    client = client_for(Role.CS_MANAGER)
    client.get(reverse("health:signal-rules"))
    post = {
        "kind": "usage_drop",
        "usage_drop-enabled": "on",
        "usage_drop-severity": "high",
        "usage_drop-metric": "events_28d",
        "usage_drop-drop_pct": "20",
        "usage_drop-min_previous": "20",
        "usage_drop-window_days": "30",
        "usage_drop-baseline_weeks": "26",
        "usage_drop-min_baseline_points": "8",
        "usage_drop-fluctuation_k": "1.5",
        "usage_drop-min_spread_pct": "5",
        "usage_drop-seasonal": "on",
        "usage_drop-keep_ratio": "0.5",
    }

    response = client.post(reverse("health:signal-rules"), post)

    assert response.status_code == 400
    bound = next(row["form"] for row in response.context["rows"] if row["kind"] == "usage_drop")
    assert "whole weeks" in str(bound.errors["window_days"])
    assert SignalRule.objects.get(kind="usage_drop").params["window_days"] == 28


def test_the_sparkline_leaves_a_gap_for_a_day_without_a_score() -> None:
    from kizuna.health.charts import sparkline

    line = str(sparkline([50.0, 60.0, None, 70.0, 80.0], band="good", width=40))

    # Two runs of two points: x = 0, 10 and 30, 40; y = 19 − 18 × score / 100.
    assert line.count("<polyline") == 2
    assert 'points="0.0,10.0 10.0,8.2"' in line
    assert 'points="30.0,6.4 40.0,4.6"' in line
    assert str(sparkline([None, None])) == ""


def test_the_history_chart_draws_the_bands_behind_the_line() -> None:
    from kizuna.health.charts import history_chart

    svg = str(
        history_chart(
            [date(2026, 1, 1), date(2026, 1, 2)], [80.0, None], good_from=70, watch_from=40
        )
    )

    assert svg.count("<rect") == 3
    assert 'data-band="at_risk"' in svg
    assert "<circle" in svg  # a lone scored day is a dot


def test_health_plugs_its_tabs_panel_column_and_daily_job_into_the_lower_contexts() -> None:
    from kizuna.core.extensions import customer_list_columns, customer_panels, settings_tabs
    from kizuna.core.jobs import daily_jobs

    tabs = {tab.key: (tab.url_name, tab.capability) for tab in settings_tabs()}
    assert tabs["health-scorecards"] == ("health:scorecards", "manage_health")
    assert tabs["health-signals"] == ("health:signal-rules", "manage_health")
    assert ("health", "health:customer-health") in {
        (panel.key, panel.url_name) for panel in customer_panels()
    }
    assert "health" in {column.key for column in customer_list_columns()}
    jobs = {job.key: job.order for job in daily_jobs()}
    assert jobs["health"] == 40
    assert jobs["onboarding"] < jobs["health"] < jobs.get("lifecycle", 50)
