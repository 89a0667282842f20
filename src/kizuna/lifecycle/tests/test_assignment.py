"""CSM load, capacity and the assignment rules: fairness, limits, segment/region/language."""

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from kizuna.core.models import TimelineEntry, TimelineKind, User
from kizuna.core.roles import Role
from kizuna.customers.models import Contact, Customer, LifecycleStage, TouchModel
from kizuna.lifecycle import conditions
from kizuna.lifecycle.assignment import assign_customers, assign_unowned, csm_loads
from kizuna.lifecycle.models import (
    AssignmentMethod,
    AssignmentRule,
    ChangeSource,
    CsmProfile,
    Dimension,
    HandoffReason,
    LifecycleSettings,
    OwnerRole,
    RoleHandoff,
    StateHistory,
    Team,
)

pytestmark = pytest.mark.django_db

DAY = date(2026, 3, 2)


@pytest.fixture(autouse=True)
def _fast_passwords(settings: Any) -> None:
    """Users are made by the dozen here; Argon2 would dominate the run on a busy machine."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


# --- Hand-made data (also used by the handoff and portfolio tests) -----------------------------


def csm(
    make_user: Callable[..., User],
    username: str,
    *,
    team: Team | None,
    capacity: str = "100",
    role: str = Role.ONBOARDING_CSM,
    languages: str = "",
    regions: str = "",
    accepting: bool = True,
) -> User:
    user = make_user(role, username=username)
    CsmProfile.objects.create(
        user=user,
        team=team,
        capacity=Decimal(capacity),
        languages=languages,
        regions=regions,
        accepting=accepting,
    )
    return user


def customer(
    name: str,
    *,
    start: date | None = None,
    stage: str = LifecycleStage.ONBOARDING,
    touch: str = TouchModel.HIGH,
    **fields: Any,
) -> Customer:
    return Customer.objects.create(
        name=name,
        first_start_date=start,
        lifecycle_stage=stage,
        touch_model=touch,
        **fields,
    )


def rule(
    name: str,
    team: Team,
    *,
    role: str = OwnerRole.ONBOARDING,
    expression: str = "",
    method: str = AssignmentMethod.ROUND_ROBIN,
    position: int = 0,
    **fields: Any,
) -> AssignmentRule:
    return AssignmentRule.objects.create(
        name=name,
        team=team,
        role=role,
        expression=expression,
        rule=conditions.parse(expression) if expression else {},
        method=method,
        position=position,
        **fields,
    )


def owners(field: str = "onboarding_owner") -> dict[str, str | None]:
    return dict(Customer.objects.order_by("name").values_list("name", f"{field}__username"))


@pytest.fixture
def team() -> Team:
    return Team.objects.create(name="Onboarding East")


# --- Load --------------------------------------------------------------------------------------


def test_load_weighs_customers_by_touch_model_in_their_current_role_only(
    make_user: Callable[..., User], team: Team
) -> None:
    aiko = csm(make_user, "aiko", team=team, capacity="20")
    customer("High onboarding", onboarding_owner=aiko)  # 5
    customer(
        "Low adoption", stage=LifecycleStage.ADOPTION, touch=TouchModel.LOW, adoption_owner=aiko
    )  # 2
    customer(
        "Tech reactivated",
        stage=LifecycleStage.REACTIVATED,
        touch=TouchModel.TECH,
        onboarding_owner=aiko,
    )  # 0.5
    # Owned in a role the customer has left, and churned: neither weighs.
    customer("Moved on", stage=LifecycleStage.ADOPTION, onboarding_owner=aiko)
    customer("Gone", stage=LifecycleStage.CHURNED, onboarding_owner=aiko, adoption_owner=aiko)

    load = csm_loads()[aiko.pk]
    assert load.load == Decimal("7.5")
    assert load.capacity == Decimal(20)
    assert dict(load.customers) == {"onboarding": 2, "adoption": 1, "expansion": 0}
    assert load.utilisation == pytest.approx(0.375)
    assert not load.over_capacity

    settings = LifecycleSettings.load()
    settings.high_touch_weight = Decimal(3)
    settings.tech_touch_weight = Decimal(0)
    settings.save()
    assert csm_loads()[aiko.pk].load == Decimal(5)  # 3 + 2 + 0


def test_a_csm_without_profile_is_listed_with_load_but_no_capacity(
    make_user: Callable[..., User],
) -> None:
    ken = make_user(Role.ADOPTION_CSM, username="ken")
    customer("Low", stage=LifecycleStage.ADOPTION, touch=TouchModel.LOW, adoption_owner=ken)
    load = csm_loads()[ken.pk]
    assert (load.load, load.capacity, load.utilisation, load.over_capacity) == (
        Decimal(2),
        None,
        None,
        False,
    )


# --- Fairness ----------------------------------------------------------------------------------


def test_round_robin_cycles_evenly_and_continues_after_the_last_one_served(
    make_user: Callable[..., User], team: Team
) -> None:
    aiko = csm(make_user, "aiko", team=team)
    ben = csm(make_user, "ben", team=team)
    chie = csm(make_user, "chie", team=team)
    first = rule("Everyone", team)
    # Created out of order: the oldest customer (earliest start) is served first.
    for number, day in enumerate([5, 1, 4, 2, 6, 3], start=1):
        customer(f"C{number}", start=date(2026, 1, day))

    assert assign_unowned(DAY) == 6
    # Oldest first: C2 (1st), C4, C6, C3, C1, C5.
    assert owners() == {
        "C2": "aiko",
        "C4": "ben",
        "C6": "chie",
        "C3": "aiko",
        "C1": "ben",
        "C5": "chie",
    }
    first.refresh_from_db()
    assert first.last_assigned == chie

    customer("C7", start=date(2026, 2, 1))
    customer("C8", start=date(2026, 2, 2))
    assert assign_unowned(DAY) == 2
    assert owners()["C7"] == "aiko"
    assert owners()["C8"] == "ben"
    assert {csm_loads()[user.pk].load for user in (aiko, ben)} == {Decimal(15)}
    assert csm_loads()[chie.pk].load == Decimal(10)


def test_round_robin_skips_members_who_are_full_or_not_accepting(
    make_user: Callable[..., User], team: Team
) -> None:
    csm(make_user, "aiko", team=team, capacity="5")
    csm(make_user, "ben", team=team, accepting=False)
    csm(make_user, "chie", team=team)
    rule("Everyone", team)
    for number in range(1, 5):
        customer(f"C{number}", start=date(2026, 1, number))

    assert assign_unowned(DAY) == 4
    # aiko is full after one high-touch customer; ben takes no new customers.
    assert owners() == {"C1": "aiko", "C2": "chie", "C3": "chie", "C4": "chie"}


def test_least_loaded_picks_the_lowest_load_over_capacity_and_never_goes_above_it(
    make_user: Callable[..., User], team: Team
) -> None:
    aiko = csm(make_user, "aiko", team=team, capacity="10")
    ben = csm(make_user, "ben", team=team, capacity="20")
    for number in range(2):  # aiko: 2 low = 4 → 40 %
        customer(f"A{number}", touch=TouchModel.LOW, onboarding_owner=aiko)
    for number in range(3):  # ben: 3 low = 6 → 30 %
        customer(f"B{number}", touch=TouchModel.LOW, onboarding_owner=ben)
    rule("Everyone", team, method=AssignmentMethod.LEAST_LOADED)
    customer("N1", start=date(2026, 1, 1), touch=TouchModel.HIGH)  # ben 30 % → 11/20
    customer("N2", start=date(2026, 1, 2), touch=TouchModel.LOW)  # aiko 40 % → 6/10
    customer("N3", start=date(2026, 1, 3), touch=TouchModel.TECH)  # ben 55 % → 11.5/20
    customer("N4", start=date(2026, 1, 4), touch=TouchModel.HIGH)  # ben 57.5 % → 16.5/20
    customer("N5", start=date(2026, 1, 5), touch=TouchModel.HIGH)  # fits nobody

    result = assign_customers(as_of=DAY)

    assert (result.assigned, result.unassigned) == (4, 1)
    got = owners()
    assert [got[f"N{n}"] for n in range(1, 6)] == ["ben", "aiko", "ben", "ben", None]
    loads = csm_loads()
    assert loads[aiko.pk].load == Decimal(6)
    assert loads[ben.pk].load == Decimal("16.5")
    assert all(not row.over_capacity for row in loads.values())


def test_the_customer_that_fits_nowhere_stays_unowned_and_shows_on_the_team_page(
    make_user: Callable[..., User], team: Team
) -> None:
    csm(make_user, "aiko", team=team, capacity="10")
    rule("Everyone", team, method=AssignmentMethod.LEAST_LOADED)
    for number in range(1, 4):
        customer(f"Kaisha {number}", start=date(2026, 1, number))

    assert assign_unowned(DAY) == 2
    assert owners()["Kaisha 3"] is None

    manager = make_user(Role.CS_MANAGER, username="mana")
    client = Client()
    client.force_login(manager)
    page = client.get(reverse("lifecycle:team")).content.decode()
    unowned = page[page.index('id="unowned"') :]
    assert "Kaisha 3" in unowned
    assert "Kaisha 1" not in unowned
    assert "10 / 10" in page  # aiko's load against capacity


# --- Rules -------------------------------------------------------------------------------------


def test_the_first_matching_rule_by_position_decides_the_team(
    make_user: Callable[..., User],
) -> None:
    enterprise = Team.objects.create(name="Enterprise")
    general = Team.objects.create(name="General")
    csm(make_user, "eri", team=enterprise)
    csm(make_user, "gen", team=general)
    rule("Everyone else", general, position=2)
    rule("Enterprise", enterprise, position=1, expression='segment = "enterprise"')
    rule("Inactive", general, position=0, is_active=False)
    rule("Adoption only", enterprise, role=OwnerRole.ADOPTION, position=0)
    customer("Big", segment="enterprise")
    customer("Small", segment="smb")
    customer("Big adoption", segment="smb", stage=LifecycleStage.ADOPTION)

    assert assign_unowned(DAY) == 3
    assert owners()["Big"] == "eri"
    assert owners()["Small"] == "gen"
    assert owners("adoption_owner")["Big adoption"] == "eri"
    assert owners()["Big adoption"] is None  # only the current role is assigned


def test_a_full_team_does_not_spill_into_the_next_rule(make_user: Callable[..., User]) -> None:
    enterprise = Team.objects.create(name="Enterprise")
    general = Team.objects.create(name="General")
    csm(make_user, "eri", team=enterprise, capacity="5")
    csm(make_user, "gen", team=general)
    rule("Enterprise", enterprise, position=1, expression='segment = "enterprise"')
    rule("Everyone", general, position=2)
    customer("Big 1", segment="enterprise", start=date(2026, 1, 1))
    customer("Big 2", segment="enterprise", start=date(2026, 1, 2))

    assert assign_unowned(DAY) == 1
    assert owners() == {"Big 1": "eri", "Big 2": None}


def test_region_and_language_rules_pick_a_member_who_covers_them(
    make_user: Callable[..., User], team: Team
) -> None:
    csm(make_user, "kanto", team=team, regions="関東", languages="ja")
    csm(make_user, "kansai", team=team, regions="関西, 九州", languages="ja,en")
    csm(make_user, "anywhere", team=team, languages="en")
    rule(
        "By region and language",
        team,
        method=AssignmentMethod.LEAST_LOADED,
        match_region=True,
        match_language=True,
    )
    osaka = customer("Osaka", region="関西", start=date(2026, 1, 1))
    tokyo = customer("Tokyo", region="関東", start=date(2026, 1, 2))
    fukuoka = customer("Fukuoka", region="九州", start=date(2026, 1, 3))
    london = customer("London", region="", start=date(2026, 1, 4))
    sapporo = customer("Sapporo", region="北海道", start=date(2026, 1, 5))
    for company, languages in (
        (osaka, ["ja"]),
        (tokyo, ["en", "en", "ja"]),  # mostly English: kanto speaks only Japanese
        (fukuoka, ["en"]),
        (london, ["en", "ja", "en"]),
        (sapporo, ["ja", "ja"]),
    ):
        for number, language in enumerate(languages):
            Contact.objects.create(
                customer=company, name=f"{company.name} {number}", language=language
            )
    # A former contact does not count.
    Contact.objects.create(customer=osaka, name="Left", language="en", ended_on=date(2025, 1, 1))

    assert assign_unowned(DAY) == 4
    assert owners() == {
        "Osaka": "kansai",
        "Tokyo": "anywhere",  # no region list: covers 関東; speaks English
        "Fukuoka": "kansai",
        "London": "anywhere",  # no region: any member who speaks English; least loaded
        "Sapporo": None,  # 北海道: only "anywhere" covers it, and it speaks no Japanese
    }


def test_assignments_are_recorded_in_history_and_on_the_timeline_with_the_rule_name(
    make_user: Callable[..., User], team: Team
) -> None:
    aiko = csm(make_user, "aiko", team=team)
    rule("East coast", team)
    company = customer("Kaisha")

    assign_unowned(DAY)

    row = StateHistory.objects.get(
        customer=company, dimension=Dimension.ONBOARDING_OWNER, valid_to__isnull=True
    )
    assert (row.value, row.valid_from, row.source, row.reason) == (
        str(aiko.pk),
        DAY,
        ChangeSource.ASSIGNMENT,
        "East coast",
    )
    entry = TimelineEntry.objects.get(customer=company, kind=TimelineKind.OWNER_CHANGED)
    assert entry.payload["to"] == str(aiko.pk)
    assert entry.body == "East coast"
    assert assign_unowned(DAY) == 0  # nothing left to do


def test_a_pending_handoff_without_receiver_goes_to_the_newly_assigned_owner(
    make_user: Callable[..., User], team: Team
) -> None:
    ben = csm(make_user, "ben", team=team)
    rule("Adoption", team, role=OwnerRole.ADOPTION)
    company = customer("Kaisha", stage=LifecycleStage.ADOPTION)
    handoff = RoleHandoff.objects.create(
        customer=company,
        from_role=OwnerRole.ONBOARDING,
        to_role=OwnerRole.ADOPTION,
        reason=HandoffReason.STAGE_CHANGE,
    )
    assign_unowned(DAY)
    handoff.refresh_from_db()
    assert handoff.to_user == ben


def test_churned_customers_are_never_assigned(make_user: Callable[..., User], team: Team) -> None:
    csm(make_user, "aiko", team=team)
    rule("Everyone", team)
    customer("Gone", stage=LifecycleStage.CHURNED)
    assert assign_unowned(DAY) == 0
    assert owners() == {"Gone": None}
