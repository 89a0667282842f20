"""Handoffs between owners: opened on stage changes, edited by the sender, acknowledged by the
receiver, book reassignment, the Customer 360 owners panel, and the handoff API.

This module also holds a test URL map that mounts the owners API router under /api/v1 (the
portfolio tests use it too), so the API is tested whether or not the site's API mounts it.
"""

import json
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from kizuna.core.models import ApiToken, TimelineEntry, TimelineKind, User
from kizuna.core.roles import Role
from kizuna.customers.models import Contact, ContactRole, Customer, LifecycleStage, SalesHandoff
from kizuna.lifecycle import handoffs
from kizuna.lifecycle.models import (
    AssignmentMethod,
    ChangeSource,
    Dimension,
    HandoffReason,
    HandoffStatus,
    OwnerRole,
    RoleHandoff,
    StateHistory,
    Team,
)
from kizuna.lifecycle.tests.test_assignment import csm, customer, owners, rule

API = "/api/v1"
pytestmark = [pytest.mark.django_db]
TODAY = timezone.localdate()


@pytest.fixture(autouse=True)
def _fast_passwords(settings: Any) -> None:
    """Users are made by the dozen here; Argon2 would dominate the run on a busy machine."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _english(settings: Any) -> None:
    settings.LANGUAGE_CODE = "en"


def token_client(user: User) -> Client:
    _token, raw = ApiToken.issue(user=user, name="tests")
    return Client(headers={"Authorization": f"Bearer {raw}"})


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def people(make_user: Callable[..., User]) -> dict[str, User]:
    team = Team.objects.create(name="Success")
    return {
        "onboarder": csm(make_user, "onboarder", team=team),
        "adopter": csm(make_user, "adopter", team=team, role=Role.ADOPTION_CSM),
        "expander": csm(make_user, "expander", team=team, role=Role.EXPANSION_CSM),
        "other": csm(make_user, "other", team=team, role=Role.ADOPTION_CSM),
        "manager": make_user(Role.CS_MANAGER, username="manager"),
        "viewer": make_user(Role.VIEWER, username="viewer"),
    }


@pytest.fixture
def kaisha(people: dict[str, User]) -> Customer:
    company = customer(
        "Kaisha",
        stage=LifecycleStage.ADOPTION,
        onboarding_owner=people["onboarder"],
        adoption_owner=people["adopter"],
        expansion_owner=people["expander"],
    )
    Contact.objects.create(
        customer=company,
        name="Sato",
        role=ContactRole.CHAMPION,
        job_title="IT lead",
        email="sato@kaisha.example",
    )
    Contact.objects.create(customer=company, name="Tanaka", role=ContactRole.DECISION_MAKER)
    Contact.objects.create(customer=company, name="Suzuki", role=ContactRole.END_USER)
    Contact.objects.create(
        customer=company, name="Gone", role=ContactRole.ADMIN, ended_on=date(2020, 1, 1)
    )
    SalesHandoff.objects.create(
        customer=company, desired_outcomes="Old goals", handed_off_on=date(2024, 1, 1)
    )
    SalesHandoff.objects.create(
        customer=company,
        desired_outcomes="Cut reporting time by half",
        handed_off_on=date(2025, 1, 1),
    )
    return company


def stage_handoff(kaisha: Customer) -> RoleHandoff:
    assert handoffs.open_stage_handoffs([(kaisha.pk, "onboarding", "adoption")], on=TODAY) == 1
    return RoleHandoff.objects.get(customer=kaisha)


# --- Stage changes -----------------------------------------------------------------------------


def test_a_stage_change_opens_a_prefilled_handoff_from_the_previous_to_the_new_owner(
    people: dict[str, User], kaisha: Customer
) -> None:
    handoff = stage_handoff(kaisha)

    assert (handoff.from_role, handoff.to_role) == (OwnerRole.ONBOARDING, OwnerRole.ADOPTION)
    assert (handoff.from_user, handoff.to_user) == (people["onboarder"], people["adopter"])
    assert handoff.reason == HandoffReason.STAGE_CHANGE
    assert handoff.status == HandoffStatus.PENDING
    # Decision makers first, then champions; end users and former contacts left out.
    assert handoff.stakeholders == (
        "Tanaka — Decision maker\nSato — Champion, IT lead <sato@kaisha.example>"
    )
    assert handoff.goals_achieved == "Cut reporting time by half"
    entry = TimelineEntry.objects.get(customer=kaisha, kind=TimelineKind.ROLE_HANDOFF_CREATED)
    assert entry.payload["handoff"] == handoff.pk
    assert entry.title == "Handoff Onboarding → Adoption: onboarder → adopter"


def test_only_forward_role_changes_open_a_handoff_and_never_twice(
    people: dict[str, User], kaisha: Customer
) -> None:
    other = customer("Other", stage=LifecycleStage.EXPANSION, adoption_owner=people["adopter"])
    back = customer("Back", stage=LifecycleStage.ADOPTION)
    again = customer("Again", stage=LifecycleStage.ADOPTION)
    changes = [
        (kaisha.pk, "onboarding", "adoption"),
        (other.pk, "adoption", "expansion"),
        (back.pk, "expansion", "adoption"),  # backwards: no handoff
        (again.pk, "reactivated", "adoption"),  # reactivated customers are onboarding's
        (kaisha.pk + 1000, "onboarding", "adoption"),  # no such customer
    ]
    assert handoffs.open_stage_handoffs(changes, on=TODAY) == 3
    assert handoffs.open_stage_handoffs(changes, on=TODAY) == 0
    second = RoleHandoff.objects.get(customer=other)
    assert (second.from_user, second.to_user) == (people["adopter"], None)
    assert not RoleHandoff.objects.filter(customer=back).exists()
    assert TimelineEntry.objects.filter(kind=TimelineKind.ROLE_HANDOFF_CREATED).count() == 3


def test_a_handoff_opened_for_a_past_day_is_dated_that_day(kaisha: Customer) -> None:
    day = TODAY - timedelta(days=9)
    handoffs.open_stage_handoffs([(kaisha.pk, "onboarding", "adoption")], on=day)
    handoff = RoleHandoff.objects.get(customer=kaisha)
    assert handoffs.age_in_days(handoff) == 9


# --- Editing and acknowledging -----------------------------------------------------------------


def test_the_sender_edits_others_get_403_and_nobody_edits_after_acknowledgement(
    people: dict[str, User], kaisha: Customer
) -> None:
    handoff = stage_handoff(kaisha)
    url = reverse("lifecycle:handoff", args=[handoff.pk])
    note = {
        "goals_achieved": "Reports automated",
        "open_issues": "SSO pending",
        "stakeholders": "Tanaka",
        "risks": "Budget review in April",
        "notes": "Likes weekly calls",
    }
    for intruder in ("other", "adopter", "viewer"):
        assert logged_in(people[intruder]).post(url, note).status_code == 403

    response = logged_in(people["onboarder"]).post(url, note)
    assert response.status_code == 302
    handoff.refresh_from_db()
    assert (handoff.open_issues, handoff.risks) == ("SSO pending", "Budget review in April")

    assert (
        logged_in(people["manager"]).post(url, {**note, "notes": "Manager adds"}).status_code == 302
    )

    handoffs.acknowledge_handoff(handoff, people["adopter"], "Thanks")
    response = logged_in(people["onboarder"]).post(url, {**note, "notes": "Too late"})
    assert response.status_code == 400
    assert "already acknowledged" in response.content.decode()
    handoff.refresh_from_db()
    assert handoff.notes == "Manager adds"


def test_the_receiver_acknowledges_with_a_reply_on_the_timeline_and_others_get_403(
    people: dict[str, User], kaisha: Customer
) -> None:
    handoff = stage_handoff(kaisha)
    url = reverse("lifecycle:handoff-acknowledge", args=[handoff.pk])
    for intruder in ("onboarder", "other", "viewer"):
        assert logged_in(people[intruder]).post(url, {"reply": "x"}).status_code == 403
    page = logged_in(people["adopter"]).get(reverse("lifecycle:handoff", args=[handoff.pk]))
    assert 'id="acknowledge-handoff"' in page.content.decode()

    response = logged_in(people["adopter"]).post(url, {"reply": "Got it, meeting Tanaka Monday"})

    assert response.status_code == 302
    handoff.refresh_from_db()
    assert handoff.status == HandoffStatus.ACKNOWLEDGED
    assert handoff.acknowledged_by == people["adopter"]
    assert handoff.acknowledgement == "Got it, meeting Tanaka Monday"
    entry = TimelineEntry.objects.get(customer=kaisha, kind=TimelineKind.ROLE_HANDOFF_ACKNOWLEDGED)
    assert (entry.actor, entry.body) == (people["adopter"], "Got it, meeting Tanaka Monday")
    assert logged_in(people["adopter"]).post(url, {"reply": "again"}).status_code == 400


def test_without_a_named_receiver_the_current_owner_of_the_role_acknowledges(
    people: dict[str, User],
) -> None:
    company = customer("Nobody yet", stage=LifecycleStage.ADOPTION)
    handoffs.open_stage_handoffs([(company.pk, "onboarding", "adoption")], on=TODAY)
    handoff = RoleHandoff.objects.get(customer=company)
    with pytest.raises(PermissionDenied):
        handoffs.acknowledge_handoff(handoff, people["adopter"], "")
    Customer.objects.filter(pk=company.pk).update(adoption_owner=people["adopter"])
    acknowledged = handoffs.acknowledge_handoff(handoff, people["adopter"], "")
    assert acknowledged.to_user == people["adopter"]


def test_a_manual_handoff_needs_edit_rights_and_names_the_bad_role(
    people: dict[str, User], kaisha: Customer
) -> None:
    url = reverse("lifecycle:handoff-add", args=[kaisha.pk])
    data = {"from_role": "adoption", "to_role": "expansion", "notes": "Ready for upsell"}
    assert logged_in(people["viewer"]).post(url, data).status_code == 403
    with pytest.raises(ValidationError) as error:
        handoffs.create_handoff(
            customer=kaisha, from_role="sales", to_role="adoption", actor=people["adopter"]
        )
    assert "from_role" in error.value.message_dict

    response = logged_in(people["adopter"]).post(url, data)
    assert response.status_code == 302
    handoff = RoleHandoff.objects.get(customer=kaisha)
    assert (handoff.from_user, handoff.to_user) == (people["adopter"], people["expander"])
    assert handoff.goals_achieved == "Cut reporting time by half"
    assert handoff.created_by == people["adopter"]


# --- Owners panel ------------------------------------------------------------------------------


def test_the_owners_panel_shows_owners_and_changing_one_opens_a_reassignment_handoff(
    people: dict[str, User], kaisha: Customer
) -> None:
    panel = reverse("lifecycle:customer-owners", args=[kaisha.pk])
    html = logged_in(people["viewer"]).get(panel, headers={"HX-Request": "true"}).content.decode()
    assert "<html" not in html
    assert 'data-owner="adoption">adopter' in html.replace("\n", "")
    assert 'id="change-owner"' not in html  # viewers only read

    change = reverse("lifecycle:customer-owner-change", args=[kaisha.pk])
    data = {"role": "adoption", "user": people["other"].pk, "note": "Adopter is on leave"}
    assert logged_in(people["viewer"]).post(change, data).status_code == 403

    wrong = logged_in(people["adopter"]).post(
        change, {**data, "role": "sales"}, headers={"HX-Request": "true"}
    )
    assert wrong.status_code == 200  # htmx swaps only 2xx: the errors come back inline
    assert "Select a valid choice" in wrong.content.decode()
    assert not RoleHandoff.objects.exists()

    response = logged_in(people["adopter"]).post(change, data, headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert "Owner changed." in response.content.decode()
    kaisha.refresh_from_db()
    assert kaisha.adoption_owner == people["other"]
    handoff = RoleHandoff.objects.get(customer=kaisha)
    assert handoff.reason == HandoffReason.REASSIGNMENT
    assert (handoff.from_user, handoff.to_user) == (people["adopter"], people["other"])
    assert handoff.notes == "Adopter is on leave"
    row = StateHistory.objects.get(
        customer=kaisha, dimension=Dimension.ADOPTION_OWNER, valid_to__isnull=True
    )
    assert (row.value, row.source, row.actor) == (
        str(people["other"].pk),
        ChangeSource.MANUAL,
        people["adopter"],
    )


# --- Bulk reassignment -------------------------------------------------------------------------


def test_reassigning_a_book_moves_every_current_customer_with_a_handoff_and_history(
    people: dict[str, User],
) -> None:
    leaver, heir = people["adopter"], people["other"]
    books = [
        customer(f"Adopting {n}", stage=LifecycleStage.ADOPTION, adoption_owner=leaver)
        for n in range(3)
    ]
    moved_on = customer(
        "Expanding", stage=LifecycleStage.EXPANSION, adoption_owner=leaver
    )  # not in the current book
    churned = customer("Churned", stage=LifecycleStage.CHURNED, adoption_owner=leaver)
    pending = RoleHandoff.objects.create(
        customer=books[0], from_role="onboarding", to_role="adoption", to_user=leaver
    )

    result = handoffs.reassign_book(
        from_user=leaver, to_user=heir, role=None, actor=people["manager"], note="Parental leave"
    )

    assert (result.moved, result.unassigned, result.handoffs) == (3, 0, 3)
    assert owners("adoption_owner") == {
        "Adopting 0": "other",
        "Adopting 1": "other",
        "Adopting 2": "other",
        "Churned": "adopter",
        "Expanding": "adopter",
    }
    created = RoleHandoff.objects.filter(reason=HandoffReason.REASSIGNMENT)
    assert sorted(created.values_list("customer__name", flat=True)) == [
        "Adopting 0",
        "Adopting 1",
        "Adopting 2",
    ]
    assert {(h.from_user, h.to_user, h.notes) for h in created} == {
        (leaver, heir, "Parental leave")
    }
    history = StateHistory.objects.filter(
        dimension=Dimension.ADOPTION_OWNER, valid_to__isnull=True, value=str(heir.pk)
    )
    assert history.count() == 3
    assert set(history.values_list("reason", "actor")) == {("Parental leave", people["manager"].pk)}
    pending.refresh_from_db()
    assert pending.to_user == heir  # the old owner's waiting handoff follows the customer
    assert not RoleHandoff.objects.filter(customer__in=[moved_on, churned]).exists()


def test_reassigning_one_role_of_a_book_by_the_rules_respects_capacity(
    make_user: Callable[..., User],
) -> None:
    team = Team.objects.create(name="Adoption")
    leaver = csm(make_user, "leaver", team=team, role=Role.ADOPTION_CSM)
    csm(make_user, "small", team=team, capacity="5", role=Role.ADOPTION_CSM)
    csm(make_user, "big", team=team, capacity="10", role=Role.ADOPTION_CSM)
    rule("Adoption", team, role=OwnerRole.ADOPTION, method=AssignmentMethod.LEAST_LOADED)
    for n in range(4):  # 4 high-touch customers of 5 points: 15 points of room for 20
        customer(
            f"A{n}",
            stage=LifecycleStage.ADOPTION,
            adoption_owner=leaver,
            start=date(2025, 1, n + 1),
        )
    onboarding = customer("O", onboarding_owner=leaver)

    result = handoffs.reassign_book(
        from_user=leaver, to_user=None, role="adoption", actor=None, note=""
    )

    assert (result.moved, result.unassigned, result.handoffs) == (3, 1, 4)
    # Least loaded, the leaver excluded: small and big tie at 0 % (small has the lower id),
    # then big (0 % < 100 %), then big again (small is full), then nobody has room.
    assert owners("adoption_owner") == {
        "A0": "small",
        "A1": "big",
        "A2": "big",
        "A3": None,
        "O": None,
    }
    onboarding.refresh_from_db()
    assert onboarding.onboarding_owner == leaver  # another role: untouched
    assert RoleHandoff.objects.filter(customer__name="A3", to_user__isnull=True).count() == 1


def test_a_book_cannot_move_to_its_own_owner(people: dict[str, User]) -> None:
    with pytest.raises(ValidationError) as error:
        handoffs.reassign_book(
            from_user=people["adopter"],
            to_user=people["adopter"],
            role=None,
            actor=people["manager"],
        )
    assert "to_user" in error.value.message_dict


# --- API ---------------------------------------------------------------------------------------


def test_handoff_api_lists_reads_creates_edits_and_acknowledges(
    people: dict[str, User], kaisha: Customer
) -> None:
    handoff = stage_handoff(kaisha)
    adopter, onboarder = token_client(people["adopter"]), token_client(people["onboarder"])

    listed = adopter.get(f"{API}/handoffs", {"status": "pending", "to": "me"}).json()
    assert listed["count"] == 1
    assert listed["items"][0]["from_user"] == "onboarder"
    assert onboarder.get(f"{API}/handoffs", {"to": "me"}).json()["count"] == 0
    assert onboarder.get(f"{API}/handoffs", {"from": "me"}).json()["count"] == 1
    bad = adopter.get(f"{API}/handoffs", {"status": "open"})
    assert bad.status_code == 400
    assert "status" in bad.json()["detail"]
    assert adopter.get(f"{API}/handoffs", {"to": "ghost"}).json()["detail"].keys() == {"to"}

    one = adopter.get(f"{API}/handoffs/{handoff.pk}").json()
    assert one["goals_achieved"] == "Cut reporting time by half"

    patch = {"open_issues": "SSO pending"}
    response = adopter.patch(
        f"{API}/handoffs/{handoff.pk}", json.dumps(patch), content_type="application/json"
    )
    assert response.status_code == 403
    response = onboarder.patch(
        f"{API}/handoffs/{handoff.pk}", json.dumps(patch), content_type="application/json"
    )
    assert response.status_code == 200
    assert response.json()["open_issues"] == "SSO pending"
    assert response.json()["notes"] == ""  # fields not sent are kept

    ack = f"{API}/handoffs/{handoff.pk}/acknowledge"
    body = json.dumps({"reply": "Thanks"})
    assert onboarder.post(ack, body, content_type="application/json").status_code == 403
    response = adopter.post(ack, body, content_type="application/json")
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["acknowledged_by"]) == (
        "acknowledged",
        "adopter",
    )
    again = adopter.post(ack, body, content_type="application/json")
    assert again.status_code == 400
    assert "status" in again.json()["detail"]


def test_handoff_api_creates_with_prefill_and_names_bad_fields(
    people: dict[str, User], kaisha: Customer
) -> None:
    url = f"{API}/handoffs"
    good = {
        "customer": kaisha.pk,
        "from_role": "adoption",
        "to_role": "expansion",
        "risks": "Champion leaving",
    }
    viewer = token_client(people["viewer"])
    assert viewer.post(url, json.dumps(good), content_type="application/json").status_code == 403

    adopter = token_client(people["adopter"])
    response = adopter.post(url, json.dumps(good), content_type="application/json")
    assert response.status_code == 201
    created = response.json()
    assert (created["from_user"], created["to_user"], created["risks"]) == (
        "adopter",
        "expander",
        "Champion leaving",
    )
    assert created["stakeholders"].startswith("Tanaka — Decision maker")

    for payload, field in (
        ({**good, "to_role": "sales"}, "to_role"),
        ({**good, "to_user": "ghost"}, "to_user"),
        ({**good, "customer": kaisha.pk + 1000}, "customer"),
    ):
        response = adopter.post(url, json.dumps(payload), content_type="application/json")
        assert response.status_code == 400
        assert field in response.json()["detail"]
    assert RoleHandoff.objects.count() == 1
