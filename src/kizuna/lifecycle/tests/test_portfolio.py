"""The portfolio (one CSM's book), the team page, Settings → Teams and assignment, and their API,
with permissions: a CSM sees their own book only and cannot open the team page or change
teams and rules."""

import json
import re
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from kizuna.core.models import ApiToken, User
from kizuna.core.roles import Role
from kizuna.customers.models import Customer, LifecycleStage, Product, Subscription, TouchModel
from kizuna.lifecycle import conditions
from kizuna.lifecycle.models import (
    AssignmentRule,
    CsmProfile,
    HandoffStatus,
    OwnerRole,
    RoleHandoff,
    Team,
)
from kizuna.lifecycle.portfolio import portfolio, team_overview
from kizuna.lifecycle.tests.test_assignment import csm, customer, owners, rule

# The owners API is mounted by the URL map of the handoff tests.
pytestmark = [pytest.mark.django_db]
API = "/api/v1"
TODAY = timezone.localdate()


@pytest.fixture(autouse=True)
def _english(settings: Any) -> None:
    settings.LANGUAGE_CODE = "en"
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def token_client(user: User) -> Client:
    _token, raw = ApiToken.issue(user=user, name="tests")
    return Client(headers={"Authorization": f"Bearer {raw}"})


def subscribe(company: Customer, mrr: int, start: int, end: int | None) -> None:
    """A subscription from ``start`` to ``end`` days relative to today (None: open-ended)."""
    product, _created = Product.objects.get_or_create(code="kz", defaults={"name": "Kizuna"})
    Subscription.objects.create(
        customer=company,
        product=product,
        mrr=Decimal(mrr),
        start_date=TODAY + timedelta(days=start),
        end_date=TODAY + timedelta(days=end) if end is not None else None,
    )


@pytest.fixture
def book(make_user: Callable[..., User]) -> dict[str, Any]:
    east = Team.objects.create(name="East")
    aiko = csm(make_user, "aiko", team=east, capacity="20")
    ben = csm(make_user, "ben", team=east, capacity="4")
    alpha = customer("Alpha", touch=TouchModel.HIGH, onboarding_owner=aiko, segment="enterprise")
    subscribe(alpha, 100_000, -100, 60)
    subscribe(alpha, 50_000, -20, None)
    subscribe(alpha, 999, -400, -30)  # over
    Product.objects.create(code="addon", name="Add-on")
    Subscription.objects.create(
        customer=alpha,
        product=Product.objects.get(code="addon"),
        mrr=Decimal(7),
        start_date=TODAY + timedelta(days=10),  # not yet
    )
    beta = customer(
        "Beta", stage=LifecycleStage.ADOPTION, touch=TouchModel.LOW, adoption_owner=aiko
    )
    subscribe(beta, 20_000, -10, 200)
    customer("Gamma", touch=TouchModel.TECH, onboarding_owner=aiko)
    delta = customer("Delta", stage=LifecycleStage.EXPANSION, expansion_owner=aiko)
    subscribe(delta, 300_000, -500, None)
    # Not in aiko's book: a role she no longer holds, a churned customer, ben's customer.
    customer("Moved", stage=LifecycleStage.ADOPTION, onboarding_owner=aiko)
    customer("Gone", stage=LifecycleStage.CHURNED, onboarding_owner=aiko, adoption_owner=aiko)
    customer("Bens", onboarding_owner=ben)
    customer("Nobody")
    waiting = RoleHandoff.objects.create(
        customer=beta,
        from_role=OwnerRole.ONBOARDING,
        to_role=OwnerRole.ADOPTION,
        to_user=aiko,
        created_at=timezone.now() - timedelta(days=3),
    )
    RoleHandoff.objects.create(
        customer=alpha,
        from_role=OwnerRole.ONBOARDING,
        to_role=OwnerRole.ONBOARDING,
        to_user=aiko,
        status=HandoffStatus.ACKNOWLEDGED,
    )
    return {
        "aiko": aiko,
        "ben": ben,
        "manager": make_user(Role.CS_MANAGER, username="mana"),
        "viewer": make_user(Role.VIEWER, username="vic"),
        "waiting": waiting,
    }


# --- Selectors ---------------------------------------------------------------------------------


def test_the_portfolio_holds_the_current_book_with_arr_renewals_and_pending_handoffs(
    book: dict[str, Any],
) -> None:
    mine = portfolio(book["aiko"], sort="-arr")

    rows = {
        c.name: (c.arr, c.renewal_date, c.pending_handoffs)  # type: ignore[attr-defined]
        for c in mine.customers
    }
    assert list(rows) == ["Delta", "Alpha", "Beta", "Gamma"]
    assert rows == {
        "Delta": (Decimal(3_600_000), None, 0),
        "Alpha": (Decimal(1_800_000), TODAY + timedelta(days=60), 0),
        "Beta": (Decimal(240_000), TODAY + timedelta(days=200), 1),
        "Gamma": (Decimal(0), None, 0),
    }
    assert mine.total_arr == Decimal(5_640_000)
    assert mine.total_customers == 4
    assert [(row.stage, row.counts, row.total) for row in mine.matrix] == [
        ("onboarding", (1, 0, 1), 2),  # high, low, tech
        ("adoption", (0, 1, 0), 1),
        ("expansion", (1, 0, 0), 1),
    ]
    assert mine.column_totals == (2, 1, 1)
    assert mine.load is not None
    assert (mine.load.load, mine.load.capacity) == (Decimal("12.5"), Decimal(20))
    assert mine.waiting == [book["waiting"]]
    by_renewal = [c.name for c in portfolio(book["aiko"], sort="renewal").customers]
    assert by_renewal == ["Alpha", "Beta", "Delta", "Gamma"]  # no renewal date: last


def test_the_team_overview_shows_load_against_capacity_unowned_and_waiting_handoffs(
    book: dict[str, Any],
) -> None:
    overview = team_overview()

    rows = {row.user.username: row for row in overview.csms}
    assert set(rows) == {"aiko", "ben"}
    assert (rows["aiko"].counts, rows["aiko"].percent, rows["aiko"].load.over_capacity) == (
        [2, 1, 1],
        63,  # 12.5 / 20
        False,
    )
    assert (rows["ben"].percent, rows["ben"].load.over_capacity) == (125, True)  # 5 / 4
    # Without an owner for the current stage: "Moved" (adoption, only an onboarding owner).
    assert sorted(c.name for c in overview.unowned) == ["Moved", "Nobody"]
    assert [(item.handoff, item.age_days) for item in overview.waiting] == [(book["waiting"], 3)]


# --- Pages -------------------------------------------------------------------------------------


def test_the_portfolio_page_sorts_paginates_and_opens_to_its_owner_and_managers(
    book: dict[str, Any], make_user: Callable[..., User]
) -> None:
    aiko = logged_in(book["aiko"])
    html = aiko.get(reverse("lifecycle:portfolio"), {"sort": "-arr"}).content.decode()
    names = re.findall(r'data-customer="\d+">\s*<td><a [^>]+>([^<]+)</a>', html)
    assert names == ["Delta", "Alpha", "Beta", "Gamma"]
    assert "Moved" not in html
    assert 'data-fact="load">12.5 / 20<' in html
    assert 'id="team-link"' not in html  # CSMs do not manage the team
    assert aiko.get(reverse("lifecycle:portfolio-user", args=[book["ben"].pk])).status_code == 403
    assert aiko.get(reverse("lifecycle:portfolio-user", args=[book["aiko"].pk])).status_code == 200

    manager = logged_in(book["manager"])
    html = manager.get(reverse("lifecycle:portfolio-user", args=[book["aiko"].pk])).content.decode()
    assert "Portfolio of aiko" in html
    assert 'id="team-link"' in html

    for number in range(52):
        customer(f"Ben {number:02d}", touch=TouchModel.TECH, onboarding_owner=book["ben"])
    ben = logged_in(book["ben"])
    second = ben.get(reverse("lifecycle:portfolio"), {"sort": "name", "page": "2"}).content.decode()
    assert re.findall(r'data-customer="\d+">\s*<td><a [^>]+>([^<]+)</a>', second) == [
        "Ben 50",
        "Ben 51",
        "Bens",
    ]
    assert "51–53 of 53" in second


def test_csms_and_viewers_cannot_open_the_team_page_or_change_teams_and_rules(
    book: dict[str, Any],
) -> None:
    team = Team.objects.get(name="East")
    for who in ("aiko", "viewer"):
        client = logged_in(book[who])
        assert client.get(reverse("lifecycle:team")).status_code == 403
        assert client.post(reverse("lifecycle:team-assign")).status_code == 403
        assert client.get(reverse("lifecycle:teams")).status_code == 403
        response = client.post(
            reverse("lifecycle:teams-add", args=["rule"]),
            {
                "name": "Mine",
                "position": 0,
                "role": "onboarding",
                "team": team.pk,
                "method": "round_robin",
            },
        )
        assert response.status_code == 403
        response = client.post(
            reverse("lifecycle:teams-edit", args=["csm", book["aiko"].csm_profile.pk]),
            {"team": team.pk, "capacity": "999"},
        )
        assert response.status_code == 403
    assert not AssignmentRule.objects.exists()
    assert CsmProfile.objects.get(user=book["aiko"]).capacity == Decimal(20)
    assert logged_in(book["manager"]).get(reverse("lifecycle:team")).status_code == 200


def test_a_rule_with_a_bad_condition_is_refused_inline_and_a_good_one_stores_its_tree(
    book: dict[str, Any],
) -> None:
    team = Team.objects.get(name="East")
    manager = logged_in(book["manager"])
    url = reverse("lifecycle:teams-add", args=["rule"])
    data = {
        "name": "Enterprise",
        "position": 1,
        "role": "onboarding",
        "expression": "segment = ",
        "team": team.pk,
        "method": "least_loaded",
        "is_active": "on",
    }
    response = manager.post(url, data)
    assert response.status_code == 400
    html = response.content.decode()
    error = re.search(
        r'id="id_expression".*?<ul class="errorlist[^"]*"[^>]*>(.*?)</ul>', html, re.S
    )
    assert error is not None
    assert "position" in error.group(1)
    assert not AssignmentRule.objects.exists()

    response = manager.post(url, {**data, "expression": 'segment = "enterprise"'})
    assert response.status_code == 302
    saved = AssignmentRule.objects.get()
    assert saved.rule == conditions.parse('segment = "enterprise"')
    page = manager.get(reverse("lifecycle:teams")).content.decode()
    assert "segment = &quot;enterprise&quot;" in page


def test_a_csm_profile_names_an_unknown_language(
    book: dict[str, Any], make_user: Callable[..., User]
) -> None:
    newcomer = make_user(Role.ADOPTION_CSM, username="newcomer")
    manager = logged_in(book["manager"])
    url = reverse("lifecycle:teams-add", args=["csm"])
    data = {"user": newcomer.pk, "capacity": "30", "languages": "ja, fr", "regions": "関東、 関西"}
    response = manager.post(url, data)
    assert response.status_code == 400
    assert "“fr” is not a language code" in response.content.decode()
    assert manager.post(url, {**data, "languages": "JA, en", "accepting": "on"}).status_code == 302
    profile = CsmProfile.objects.get(user=newcomer)
    assert (profile.languages, profile.regions, profile.capacity) == (
        "ja,en",
        "関東, 関西",
        Decimal(30),
    )


def test_assign_now_and_the_reassign_form_report_what_they_did(book: dict[str, Any]) -> None:
    team = Team.objects.get(name="East")
    rule("Everyone", team, role=OwnerRole.ONBOARDING)
    manager = logged_in(book["manager"])

    response = manager.post(reverse("lifecycle:team-assign"), follow=True)
    html = response.content.decode()
    # "Nobody" fits aiko (12.5 + 5 ≤ 20); ben is full. "Moved" needs an adoption rule.
    assert "1 customer got an owner." in html
    assert owners()["Nobody"] == "aiko"

    response = manager.post(
        reverse("lifecycle:team-reassign"),
        {"from_user": book["aiko"].pk, "to_user": book["ben"].pk, "role": "", "note": "Moving"},
        follow=True,
    )
    html = response.content.decode()
    assert "5 customers moved." in html
    assert "ben is now above capacity." in html
    assert RoleHandoff.objects.filter(reason="reassignment", to_user=book["ben"]).count() == 5

    response = manager.post(
        reverse("lifecycle:team-reassign"),
        {"from_user": book["ben"].pk, "to_user": book["ben"].pk, "role": ""},
    )
    assert response.status_code == 400
    assert "Choose a different CSM" in response.content.decode()


# --- API ---------------------------------------------------------------------------------------


def test_portfolio_and_team_api_with_permissions_and_field_errors(book: dict[str, Any]) -> None:
    aiko = token_client(book["aiko"])
    mine = aiko.get(f"{API}/lifecycle/portfolio", {"sort": "-arr"}).json()
    assert mine["user"] == "aiko"
    assert (mine["customers_count"], Decimal(mine["arr"]), Decimal(mine["load"])) == (
        4,
        Decimal(5_640_000),
        Decimal("12.5"),
    )
    assert [c["name"] for c in mine["customers"]] == ["Delta", "Alpha", "Beta", "Gamma"]
    assert mine["matrix"][0] == {
        "stage": "onboarding",
        "counts": {"high": 1, "low": 0, "tech": 1},
        "total": 2,
    }
    assert mine["handoffs_waiting"] == 1

    assert aiko.get(f"{API}/lifecycle/portfolio", {"user": "ben"}).status_code == 403
    ghost = aiko.get(f"{API}/lifecycle/portfolio", {"user": "ghost"})
    assert (ghost.status_code, list(ghost.json()["detail"])) == (400, ["user"])
    bad_sort = aiko.get(f"{API}/lifecycle/portfolio", {"sort": "health"})
    assert (bad_sort.status_code, list(bad_sort.json()["detail"])) == (400, ["sort"])
    assert aiko.get(f"{API}/lifecycle/team").status_code == 403

    manager = token_client(book["manager"])
    assert (
        manager.get(f"{API}/lifecycle/portfolio", {"user": "aiko"}).json()["customers_count"] == 4
    )
    team = manager.get(f"{API}/lifecycle/team").json()
    ben = next(row for row in team["csms"] if row["username"] == "ben")
    assert (ben["percent"], ben["over_capacity"], ben["customers"]["onboarding"]) == (125, True, 1)
    assert team["unowned_count"] == 2
    assert team["waiting"][0]["age_days"] == 3


def test_reassign_and_assign_api(book: dict[str, Any]) -> None:
    body = {"from_user": "aiko", "to_user": None, "role": "expansion", "note": "Leaving"}
    aiko = token_client(book["aiko"])
    post = aiko.post(f"{API}/lifecycle/reassign", json.dumps(body), content_type="application/json")
    assert post.status_code == 403

    manager = token_client(book["manager"])
    for payload, field in (
        ({**body, "from_user": "ghost"}, "from_user"),
        ({**body, "role": "sales"}, "role"),
    ):
        response = manager.post(
            f"{API}/lifecycle/reassign", json.dumps(payload), content_type="application/json"
        )
        assert (response.status_code, list(response.json()["detail"])) == (400, [field])

    team = Team.objects.get(name="East")
    rule("Expansion", team, role=OwnerRole.EXPANSION)
    response = manager.post(
        f"{API}/lifecycle/reassign", json.dumps(body), content_type="application/json"
    )
    # Delta (5 points) goes by the rules, aiko excluded: ben is already full.
    assert response.json() == {"moved": 0, "unassigned": 1, "handoffs": 1, "over_capacity": False}
    assert owners("expansion_owner")["Delta"] is None

    CsmProfile.objects.filter(user=book["ben"]).update(capacity=Decimal(10))
    CsmProfile.objects.filter(user=book["aiko"]).update(accepting=False)  # she is leaving
    assert (
        aiko.post(f"{API}/lifecycle/assign", "{}", content_type="application/json").status_code
        == 403
    )
    response = manager.post(f"{API}/lifecycle/assign", "{}", content_type="application/json")
    assert response.json() == {"assigned": 1, "unassigned": 2}  # Delta to ben; no other rules
    assert owners("expansion_owner")["Delta"] == "ben"


def test_the_portfolio_shows_each_customers_health_beside_its_book(
    book: dict[str, Any],
) -> None:
    from kizuna.health.models import HealthScore, ScorecardVersion
    from kizuna.health.scorecards import ensure_default_scorecards

    ensure_default_scorecards()
    version = ScorecardVersion.objects.filter(status="published").first()
    delta = Customer.objects.get(name="Delta")
    HealthScore.objects.create(
        customer=delta, day=timezone.localdate(), version=version, score=31.0, band="at_risk"
    )
    html = logged_in(book["aiko"]).get(reverse("lifecycle:portfolio")).content.decode()
    assert '<th data-column="health">' in html
    row = re.search(rf'data-customer="{delta.pk}">(.*?)</tr>', html, re.S)
    assert row is not None
    assert "band-at_risk" in row.group(1)
    assert ">31<" in row.group(1) or " 31" in row.group(1)
