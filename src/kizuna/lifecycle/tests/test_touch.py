"""Touch models: the policy grid, overrides that win and expire, the Touch models tab, the
Customer 360 lifecycle panel and the REST API, with permissions."""

import datetime as dt
import json
from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse
from django.utils import timezone, translation

from kizuna.core.models import ApiToken, TimelineEntry, TimelineKind, User
from kizuna.core.roles import Role
from kizuna.customers.models import Customer, LifecycleStage, Product, Subscription, TouchModel
from kizuna.lifecycle import touch
from kizuna.lifecycle.models import (
    ChangeSource,
    Dimension,
    LifecycleSettings,
    Segment,
    StateHistory,
    TouchOverride,
    TouchPolicy,
)
from kizuna.lifecycle.stages import evaluate_stages
from kizuna.lifecycle.touch import apply_touch_models, resolve_touch_models, save_policy

pytestmark = pytest.mark.django_db

TOKYO = dt.timezone(dt.timedelta(hours=9))
D1 = date(2025, 4, 1)
D2 = date(2025, 6, 2)

# The seeds' policy: enterprise high in onboarding and adoption; mid-market high in
# onboarding, low after; small tech throughout.
SEEDS_POLICY = {
    ("enterprise", "onboarding"): "high",
    ("enterprise", "adoption"): "high",
    ("enterprise", "expansion"): "high",
    ("mid-market", "onboarding"): "high",
    ("mid-market", "adoption"): "low",
    ("mid-market", "expansion"): "low",
    ("small", "onboarding"): "tech",
    ("small", "adoption"): "tech",
    ("small", "expansion"): "tech",
    ("", "reactivated"): "high",
}


# --- Hand-made data ----------------------------------------------------------------------------


@pytest.fixture
def segments(db: None) -> None:
    for position, (key, name, expression) in enumerate(
        [
            ("enterprise", "Enterprise", "arr >= 10000000"),
            ("mid-market", "Mid-market", "arr >= 1000000"),
            ("small", "Small", "true"),
        ]
    ):
        Segment.objects.create(key=key, name=name, expression=expression, position=position)


@pytest.fixture
def policy(segments: None) -> None:
    save_policy(SEEDS_POLICY)


def make_customer(
    name: str,
    *,
    segment: str = "",
    stage: str = LifecycleStage.ONBOARDING,
    touch_model: str = TouchModel.TECH,
) -> Customer:
    return Customer.objects.create(
        name=name, segment=segment, lifecycle_stage=stage, touch_model=touch_model
    )


def configure(**fields: Any) -> None:
    LifecycleSettings.load()
    LifecycleSettings.objects.update(**fields)


def touch_of(customer: Customer) -> str:
    customer.refresh_from_db()
    return customer.touch_model


def touch_rows(customer: Customer) -> list[tuple[str, date | None, date | None, str]]:
    return [
        (row.value, row.valid_from, row.valid_to, row.source)
        for row in StateHistory.objects.filter(
            customer=customer, dimension=Dimension.TOUCH_MODEL
        ).order_by("id")
    ]


# --- The policy ----------------------------------------------------------------------------------


def test_mid_market_is_high_touch_in_onboarding_and_low_touch_after_adoption(
    policy: None,
) -> None:
    configure(adoption_entry="onboarding_completed", expansion_entry="")
    product = Product.objects.create(code="p", name="P")
    beta = make_customer("Beta", segment="mid-market", touch_model=TouchModel.TECH)
    Subscription.objects.create(
        customer=beta, product=product, start_date=date(2025, 3, 1), mrr=Decimal(200000)
    )
    assert apply_touch_models(D1) == 1
    assert touch_of(beta) == TouchModel.HIGH

    TimelineEntry.objects.create(
        customer=beta,
        kind=TimelineKind.ONBOARDING_COMPLETED,
        title="done",
        occurred_at=dt.datetime(2025, 6, 2, 10, tzinfo=TOKYO),
    )
    assert evaluate_stages(D2) == [(beta.pk, "onboarding", "adoption")]
    assert apply_touch_models(D2) == 1
    assert touch_of(beta) == TouchModel.LOW
    assert touch_rows(beta) == [
        ("tech", None, D1, ChangeSource.EDIT),
        ("high", D1, D2, ChangeSource.RULE),
        ("low", D2, None, ChangeSource.RULE),
    ]
    assert apply_touch_models(D2) == 0  # nothing changes, nothing is recorded twice
    assert len(touch_rows(beta)) == 3
    changes = TimelineEntry.objects.filter(customer=beta, kind=TimelineKind.TOUCH_MODEL_CHANGED)
    assert changes.count() == 2


def test_the_reason_names_the_policy_row_or_the_default(policy: None) -> None:
    beta = make_customer("Beta", segment="mid-market", stage=LifecycleStage.ADOPTION)
    lone = make_customer("Lone", segment="", stage=LifecycleStage.ADOPTION, touch_model="high")
    configure(default_touch_model=TouchModel.LOW)
    with translation.override("en"):
        apply_touch_models(D1)
    reasons = dict(
        StateHistory.objects.filter(dimension=Dimension.TOUCH_MODEL, valid_from=D1).values_list(
            "customer_id", "reason"
        )
    )
    assert reasons == {
        beta.pk: "Touch-model policy: Mid-market in Adoption → Low touch",
        lone.pk: "Default touch model (no policy row applies)",
    }


def test_segment_row_beats_any_segment_row_which_beats_the_default(segments: None) -> None:
    configure(default_touch_model=TouchModel.LOW)
    save_policy(
        {
            ("", "adoption"): "tech",
            ("enterprise", "adoption"): "high",
        }
    )
    # Everyone starts high touch.
    enterprise = make_customer("E", segment="enterprise", stage="adoption", touch_model="high")
    small = make_customer("S", segment="small", stage="adoption", touch_model="high")
    nobody = make_customer("N", segment="", stage="adoption", touch_model="high")
    expanding = make_customer("X", segment="enterprise", stage="expansion", touch_model="high")
    churned = make_customer("C", segment="enterprise", stage="churned", touch_model="high")
    assert resolve_touch_models(D1) == {
        enterprise.pk: "high",
        small.pk: "tech",
        nobody.pk: "tech",
        expanding.pk: "low",  # no row for expansion: the default
    }
    assert churned.pk not in resolve_touch_models(D1)  # churned keep their last touch model
    assert apply_touch_models(D1) == 3  # all but the enterprise customer in adoption
    assert touch_of(churned) == TouchModel.HIGH


def test_save_policy_replaces_the_grid_and_names_bad_cells(segments: None) -> None:
    save_policy({("small", "adoption"): "tech", ("", "onboarding"): "high"})
    save_policy({("small", "adoption"): "low", ("", "onboarding"): ""})
    assert list(TouchPolicy.objects.values_list("segment_key", "stage", "touch_model")) == [
        ("small", "adoption", "low")
    ]
    with translation.override("en"), pytest.raises(ValidationError) as caught:
        save_policy(
            {
                ("nosuch", "adoption"): "low",
                ("small", "churned"): "low",
                ("", "expansion"): "medium",
            }
        )
    assert caught.value.message_dict == {
        "nosuch.adoption": ["There is no segment with the key “nosuch”."],
        "small.churned": [
            "“churned” is not a stage of the policy (onboarding, adoption, expansion, reactivated)."
        ],
        "*.expansion": ["“medium” is not a touch model (high, low or tech)."],
    }
    assert TouchPolicy.objects.count() == 1  # unchanged


# --- Overrides ---------------------------------------------------------------------------------


def test_override_wins_over_the_policy_until_it_expires(
    policy: None, make_user: Callable[..., User]
) -> None:
    today = timezone.localdate()
    csm = make_user(Role.ADOPTION_CSM)
    gamma = make_customer("Gamma", segment="enterprise", stage=LifecycleStage.ADOPTION)
    apply_touch_models(today)
    assert touch_of(gamma) == TouchModel.HIGH

    override = touch.set_override(
        customer=gamma,
        touch_model=TouchModel.LOW,
        reason="Customer asked for seminars only",
        expires_on=today + timedelta(days=10),
        actor=csm,
    )
    assert touch_of(gamma) == TouchModel.LOW  # applied at once
    row = StateHistory.objects.get(customer=gamma, dimension=Dimension.TOUCH_MODEL, valid_to=None)
    assert (row.value, row.source, row.reason, row.actor) == (
        "low",
        ChangeSource.OVERRIDE,
        "Customer asked for seminars only",
        csm,
    )
    assert resolve_touch_models(today + timedelta(days=10))[gamma.pk] == "low"  # through expiry day
    assert apply_touch_models(today + timedelta(days=10)) == 0

    assert apply_touch_models(today + timedelta(days=11)) == 1
    override.refresh_from_db()
    assert override.ended_at is not None
    assert touch_of(gamma) == TouchModel.HIGH
    assert [value for value, *_rest in touch_rows(gamma)][-1] == "high"


def test_a_new_override_replaces_the_active_one_and_ending_restores_the_policy(
    policy: None, make_user: Callable[..., User]
) -> None:
    csm = make_user(Role.ADOPTION_CSM)
    delta = make_customer("Delta", segment="small", stage=LifecycleStage.ADOPTION)
    first = touch.set_override(
        customer=delta, touch_model="high", reason="Renewal at risk", actor=csm
    )
    second = touch.set_override(customer=delta, touch_model="low", reason="Calmer now", actor=csm)
    first.refresh_from_db()
    assert first.ended_at is not None
    assert second.ended_at is None
    assert touch_of(delta) == "low"
    assert touch.end_override(customer=delta, actor=csm) is True
    assert touch_of(delta) == "tech"  # small: tech throughout
    assert not TouchOverride.objects.filter(customer=delta, ended_at__isnull=True).exists()
    assert touch.end_override(customer=delta, actor=csm) is False


def test_override_needs_a_reason_a_touch_model_and_no_past_expiry() -> None:
    epsilon = make_customer("Epsilon")
    yesterday = timezone.localdate() - timedelta(days=1)
    with translation.override("en"), pytest.raises(ValidationError) as caught:
        touch.set_override(customer=epsilon, touch_model="medium", reason=" ", expires_on=yesterday)
    assert caught.value.message_dict == {
        "touch_model": ["“medium” is not a touch model (high, low or tech)."],
        "reason": ["Give a reason for the override."],
        "expires_on": ["The expiry date must not be in the past."],
    }
    assert not TouchOverride.objects.exists()


# --- Settings → Touch models -------------------------------------------------------------------


def _client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def _english(settings: Any) -> None:
    settings.LANGUAGE_CODE = "en"


def _grid_post(**cells: str) -> dict[str, str]:
    data = {
        "default_touch_model": "low",
        "high_touch_weight": "5",
        "low_touch_weight": "2",
        "tech_touch_weight": "0.5",
    }
    data.update({name.replace("__", ":"): value for name, value in cells.items()})
    return data


@pytest.mark.usefixtures("_english")
def test_csm_cannot_open_or_change_the_policy(
    make_user: Callable[..., User], segments: None
) -> None:
    csm = _client(make_user(Role.ADOPTION_CSM))
    url = reverse("lifecycle:touch-policy")
    assert csm.get(url).status_code == 403
    assert csm.post(url, _grid_post()).status_code == 403
    assert not TouchPolicy.objects.exists()


@pytest.mark.usefixtures("_english")
def test_manager_saves_the_grid_and_sees_how_many_customers_changed(
    make_user: Callable[..., User], segments: None
) -> None:
    manager = _client(make_user(Role.CS_MANAGER))
    url = reverse("lifecycle:touch-policy")
    page = manager.get(url).content.decode()
    assert 'name="cell:enterprise:onboarding"' in page
    assert 'name="cell::reactivated"' in page  # any segment
    assert "Any segment" in page

    make_customer("A", segment="small", stage=LifecycleStage.ADOPTION, touch_model="high")
    make_customer("B", segment="small", stage=LifecycleStage.ONBOARDING, touch_model="high")
    make_customer("C", segment="enterprise", stage=LifecycleStage.ADOPTION, touch_model="high")
    response = manager.post(
        url,
        _grid_post(cell__small__adoption="tech", cell__enterprise__adoption="high"),
        follow=True,
    )
    assert response.status_code == 200
    # A: tech by the row; B: the default (low); C: already high.
    assert "Touch-model policy saved; 2 customers changed touch model." in response.content.decode()
    assert set(TouchPolicy.objects.values_list("segment_key", "stage", "touch_model")) == {
        ("small", "adoption", "tech"),
        ("enterprise", "adoption", "high"),
    }
    settings = LifecycleSettings.load()
    assert (settings.default_touch_model, settings.tech_touch_weight) == ("low", Decimal("0.50"))


@pytest.mark.usefixtures("_english")
def test_bad_weight_and_cell_are_shown_inline(
    make_user: Callable[..., User], segments: None
) -> None:
    manager = _client(make_user(Role.CS_MANAGER))
    data = _grid_post(cell__small__adoption="medium")
    data["low_touch_weight"] = "-1"
    response = manager.post(reverse("lifecycle:touch-policy"), data)
    assert response.status_code == 400
    html = response.content.decode()
    assert "Ensure this value is greater than or equal to 0" in html
    cell = html[html.index('name="cell:small:adoption"') :]
    assert "Select a valid choice" in cell[: cell.index("</td>")]
    assert not TouchPolicy.objects.exists()


# --- Customer 360 → Lifecycle ------------------------------------------------------------------


@pytest.mark.usefixtures("_english")
def test_panel_shows_values_override_and_history_and_forms_only_to_editors(
    make_user: Callable[..., User], policy: None
) -> None:
    csm = make_user(Role.ADOPTION_CSM, first_name="Aiko", last_name="Sato")
    zeta = make_customer("Zeta", segment="enterprise", stage=LifecycleStage.ADOPTION)
    apply_touch_models(timezone.localdate())
    touch.set_override(
        customer=zeta,
        touch_model="low",
        reason="Budget cut",
        expires_on=date(2099, 1, 31),
        actor=csm,
    )
    url = reverse("lifecycle:customer-lifecycle", args=[zeta.pk])
    viewer_html = (
        _client(make_user(Role.VIEWER)).get(url, headers={"HX-Request": "true"}).content.decode()
    )
    assert "<html" not in viewer_html  # the fragment
    assert 'data-fact="segment">Enterprise<' in viewer_html
    assert 'id="override-badge"' in viewer_html
    assert "Budget cut · until 2099-01-31 · Aiko Sato" in viewer_html
    assert 'data-dimension="touch_model" data-value="low"' in viewer_html
    assert "customer-stage" not in viewer_html
    assert 'id="move-stage"' not in viewer_html
    csm_html = _client(csm).get(url).content.decode()
    assert 'id="move-stage"' in csm_html
    assert 'id="end-override"' in csm_html


@pytest.mark.usefixtures("_english")
def test_csm_moves_the_stage_from_the_panel_with_a_reason(
    make_user: Callable[..., User], policy: None
) -> None:
    csm = _client(make_user(Role.ONBOARDING_CSM))
    eta = make_customer("Eta", segment="mid-market", touch_model="high")
    url = reverse("lifecycle:customer-stage", args=[eta.pk])
    response = csm.post(url, {"stage": "adoption", "reason": ""}, headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert "Give a reason for moving the stage by hand." in response.content.decode()
    assert csm.post(url, {"stage": "adoption", "reason": ""}).status_code == 400

    response = csm.post(
        url, {"stage": "adoption", "reason": "Went live"}, headers={"HX-Request": "true"}
    )
    html = response.content.decode()
    assert "Stage changed to Adoption." in html
    eta.refresh_from_db()
    assert (eta.lifecycle_stage, eta.touch_model) == (
        "adoption",
        "low",
    )  # mid-market after onboarding
    assert "Went live" in html
    assert (
        _client(make_user(Role.VIEWER)).post(url, {"stage": "expansion", "reason": "x"}).status_code
        == 403
    )


@pytest.mark.usefixtures("_english")
def test_csm_sets_and_ends_an_override_from_the_panel(
    make_user: Callable[..., User], policy: None
) -> None:
    csm = _client(make_user(Role.ADOPTION_CSM))
    theta = make_customer("Theta", segment="small", stage=LifecycleStage.ADOPTION)
    set_url = reverse("lifecycle:customer-touch-override", args=[theta.pk])
    response = csm.post(set_url, {"touch_model": "high", "reason": "", "expires_on": ""})
    assert response.status_code == 400
    assert "Give a reason for the override." in response.content.decode()
    response = csm.post(set_url, {"touch_model": "high", "reason": "Key logo", "expires_on": ""})
    assert response.status_code == 302
    assert response["Location"] == reverse("customers:detail", args=[theta.pk]) + "#panel-lifecycle"
    assert touch_of(theta) == "high"
    end_url = reverse("lifecycle:customer-touch-override-end", args=[theta.pk])
    html = csm.post(end_url, headers={"HX-Request": "true"}).content.decode()
    assert "Override ended; the touch model is Tech touch by policy." in html
    assert touch_of(theta) == "tech"
    assert _client(make_user(Role.VIEWER)).post(end_url).status_code == 403


# --- REST API -----------------------------------------------------------------------------------


@pytest.fixture
def api(settings: Any, make_user: Callable[..., User]) -> Callable[[str], Client]:
    settings.LANGUAGE_CODE = "en"

    def client_for(role: str) -> Client:
        _token, raw = ApiToken.issue(user=make_user(role), name="tests")
        return Client(headers={"Authorization": f"Bearer {raw}"})

    return client_for


def _json(client: Client, method: str, url: str, body: Any = None) -> tuple[int, Any]:
    call = getattr(client, method)
    if body is None:
        response = call(url)
    else:
        response = call(url, json.dumps(body), content_type="application/json")
    return response.status_code, response.json()


def test_api_policy_is_read_by_all_and_written_only_by_managers(
    api: Callable[[str], Client], segments: None
) -> None:
    body = {
        "default_touch_model": "tech",
        "weights": {"high": 6, "low": 2.5, "tech": 0.25},
        "rows": [
            {"segment": "small", "stage": "adoption", "touch_model": "tech"},
            {"segment": "", "stage": "onboarding", "touch_model": "high"},
        ],
    }
    csm = api(Role.ADOPTION_CSM)
    assert _json(csm, "put", "/api/v1/lifecycle/touch-policy", body)[0] == 403
    assert (
        _json(
            csm,
            "put",
            "/api/v1/lifecycle/settings",
            {
                "adoption_entry": "",
                "expansion_entry": "",
                "reactivated_days": 1,
                "automatic_stages": True,
            },
        )[0]
        == 403
    )
    assert _json(csm, "post", "/api/v1/lifecycle/run", {})[0] == 403
    status, got = _json(csm, "get", "/api/v1/lifecycle/touch-policy")
    assert status == 200
    assert got["rows"] == []

    make_customer("On", segment="small", stage=LifecycleStage.ONBOARDING, touch_model="low")
    make_customer("Ad", segment="small", stage=LifecycleStage.ADOPTION, touch_model="tech")
    make_customer("Ex", segment="small", stage=LifecycleStage.EXPANSION, touch_model="low")
    status, saved = _json(api(Role.CS_MANAGER), "put", "/api/v1/lifecycle/touch-policy", body)
    assert status == 200
    assert saved["changed"] == 2  # On → high (any segment's row), Ex → tech (default)
    assert saved["default_touch_model"] == "tech"
    assert saved["weights"] == {"high": 6.0, "low": 2.5, "tech": 0.25}
    assert saved["rows"] == [
        {"segment": "", "stage": "onboarding", "touch_model": "high"},
        {"segment": "small", "stage": "adoption", "touch_model": "tech"},
    ]
    assert [s["key"] for s in saved["segments"]] == ["enterprise", "mid-market", "small"]


def test_api_policy_errors_name_the_field(api: Callable[[str], Client], segments: None) -> None:
    manager = api(Role.CS_MANAGER)
    body: dict[str, Any] = {
        "default_touch_model": "tech",
        "weights": {"high": 5, "low": -2, "tech": 0.5},
        "rows": [{"segment": "small", "stage": "adoption", "touch_model": "tech"}],
    }
    status, got = _json(manager, "put", "/api/v1/lifecycle/touch-policy", body)
    assert (status, got) == (
        400,
        {"detail": {"weights.low": ["Use a number from 0 up to 999.99."]}},
    )
    body["weights"]["low"] = 2
    body["rows"].append({"segment": "small", "stage": "adoption", "touch_model": "low"})
    status, got = _json(manager, "put", "/api/v1/lifecycle/touch-policy", body)
    assert status == 400
    assert list(got["detail"]) == ["rows[1]"]
    body["rows"] = [{"segment": "huge", "stage": "adoption", "touch_model": "tech"}]
    status, got = _json(manager, "put", "/api/v1/lifecycle/touch-policy", body)
    assert (status, list(got["detail"])) == (400, ["huge.adoption"])
    assert not TouchPolicy.objects.exists()
    assert LifecycleSettings.load().low_touch_weight == Decimal(2)  # the default, untouched


def test_api_stage_settings_are_validated_and_a_run_can_be_started(
    api: Callable[[str], Client],
) -> None:
    manager = api(Role.CS_MANAGER)
    body = {
        "adoption_entry": "days_since_start >= ",
        "expansion_entry": "",
        "reactivated_days": 60,
        "automatic_stages": True,
    }
    status, got = _json(manager, "put", "/api/v1/lifecycle/settings", body)
    assert status == 400
    assert list(got["detail"]) == ["adoption_entry"]
    assert got["detail"]["adoption_entry"][0].startswith("Onboarding → adoption when: position ")
    body["adoption_entry"] = "days_since_start >= 60"
    status, got = _json(manager, "put", "/api/v1/lifecycle/settings", body)
    assert status == 200
    assert got["adoption_entry"] == "days_since_start >= 60"
    assert got["last_run"] is None

    status, run = _json(manager, "post", "/api/v1/lifecycle/run", {"as_of": "2025-05-01"})
    assert status == 200
    assert run["as_of"] == "2025-05-01"
    assert run["error"] == ""
    assert set(run["counts"]) == {
        "segments",
        "stages",
        "touch_models",
        "owners",
        "handoffs",
        "synced",
    }
    status, got = _json(api(Role.VIEWER), "get", "/api/v1/lifecycle/settings")
    assert status == 200
    assert got["last_run"]["id"] == run["id"]


def test_api_customer_lifecycle_move_and_override(
    api: Callable[[str], Client], policy: None
) -> None:
    iota = make_customer("Iota", segment="mid-market", touch_model="high")
    csm = api(Role.ONBOARDING_CSM)
    viewer = api(Role.VIEWER)
    base = f"/api/v1/customers/{iota.pk}"

    status, got = _json(viewer, "get", f"{base}/lifecycle")
    assert status == 200
    assert (got["segment"], got["segment_name"], got["stage"], got["touch_model"]) == (
        "mid-market",
        "Mid-market",
        "onboarding",
        "high",
    )
    assert got["override"] is None
    assert got["days_in_stage"] is None

    assert _json(viewer, "post", f"{base}/stage", {"stage": "adoption", "reason": "x"})[0] == 403
    status, got = _json(csm, "post", f"{base}/stage", {"stage": "adoption", "reason": ""})
    assert (status, got) == (
        400,
        {"detail": {"reason": ["Give a reason for moving the stage by hand."]}},
    )
    status, got = _json(csm, "post", f"{base}/stage", {"stage": "adoption", "reason": "Live"})
    assert status == 200
    assert (got["stage"], got["touch_model"], got["days_in_stage"]) == ("adoption", "low", 0)
    stage_rows = [row for row in got["history"] if row["dimension"] == "stage"]
    assert [(r["value"], r["source"], r["reason"]) for r in stage_rows] == [
        ("adoption", "manual", "Live"),
        ("onboarding", "edit", ""),
    ]

    status, got = _json(
        csm,
        "post",
        f"{base}/touch-override",
        {"touch_model": "tech", "reason": "", "expires_on": "2000-01-01"},
    )
    assert status == 400
    assert set(got["detail"]) == {"reason", "expires_on"}
    status, got = _json(
        csm, "post", f"{base}/touch-override", {"touch_model": "tech", "reason": "Self-serve"}
    )
    assert status == 201
    assert got["touch_model"] == "tech"
    assert got["override"]["reason"] == "Self-serve"
    assert got["override"]["expires_on"] is None
    assert _json(viewer, "delete", f"{base}/touch-override")[0] == 403
    status, got = _json(csm, "delete", f"{base}/touch-override")
    assert status == 200
    assert got["touch_model"] == "low"
    assert got["override"] is None
    assert _json(csm, "delete", f"{base}/touch-override")[0] == 404
    assert _json(csm, "get", "/api/v1/customers/999999/lifecycle")[0] == 404
