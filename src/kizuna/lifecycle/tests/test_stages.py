"""Lifecycle stages over time: the rules, manual moves, settings, and the Stages tab."""

import datetime as dt
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse
from django.utils import timezone, translation

from kizuna.core.models import TimelineEntry, TimelineKind, User
from kizuna.core.roles import Role
from kizuna.customers.models import Customer, LifecycleStage, Product, Subscription, TouchModel
from kizuna.lifecycle import stages
from kizuna.lifecycle.history import as_of_filter
from kizuna.lifecycle.models import (
    ChangeSource,
    Dimension,
    LifecycleRun,
    LifecycleSettings,
    RoleHandoff,
    StateHistory,
    TouchPolicy,
)
from kizuna.lifecycle.stages import evaluate_stages, move_stage

pytestmark = pytest.mark.django_db

TOKYO = dt.timezone(dt.timedelta(hours=9))


# --- Hand-made data ----------------------------------------------------------------------------


@pytest.fixture
def product(db: None) -> Product:
    return Product.objects.create(code="kizuna", name="Kizuna")


def make_customer(name: str, *, stage: str = LifecycleStage.ONBOARDING, **fields: Any) -> Customer:
    return Customer.objects.create(name=name, lifecycle_stage=stage, **fields)


def subscribe(
    customer: Customer,
    product: Product,
    start: date,
    end: date | None = None,
    *,
    seats: int = 10,
) -> Subscription:
    return Subscription.objects.create(
        customer=customer,
        product=product,
        start_date=start,
        end_date=end,
        mrr=Decimal(100000),
        quantity=Decimal(seats),
    )


def complete_onboarding(customer: Customer, day: date) -> None:
    TimelineEntry.objects.create(
        customer=customer,
        kind=TimelineKind.ONBOARDING_COMPLETED,
        title="Onboarding completed",
        occurred_at=dt.datetime(day.year, day.month, day.day, 15, tzinfo=TOKYO),
    )


def configure(**fields: Any) -> LifecycleSettings:
    settings = LifecycleSettings.load()
    for name, value in fields.items():
        setattr(settings, name, value)
    settings.save()
    return settings


def stage_rows(customer: Customer) -> list[tuple[str, date | None, date | None, str]]:
    return [
        (row.value, row.valid_from, row.valid_to, row.source)
        for row in StateHistory.objects.filter(
            customer=customer, dimension=Dimension.STAGE
        ).order_by("id")
    ]


def stage_of(customer: Customer) -> str:
    customer.refresh_from_db()
    return customer.lifecycle_stage


# --- The rules over time -----------------------------------------------------------------------


def test_customer_moves_onboarding_adoption_churned_reactivated_adoption_with_history(
    product: Product,
) -> None:
    configure(adoption_entry="onboarding_completed", expansion_entry="", reactivated_days=30)
    acme = make_customer("Acme", first_start_date=date(2025, 1, 6))
    subscribe(acme, product, date(2025, 1, 6), date(2025, 7, 1))

    assert evaluate_stages(date(2025, 2, 1)) == []
    complete_onboarding(acme, date(2025, 3, 10))
    assert evaluate_stages(date(2025, 3, 9)) == []  # completed the next day
    assert evaluate_stages(date(2025, 3, 10)) == [(acme.pk, "onboarding", "adoption")]
    assert evaluate_stages(date(2025, 3, 11)) == []

    # end_date is the first day without service: still active on 30 June, churned on 1 July.
    assert evaluate_stages(date(2025, 6, 30)) == []
    assert evaluate_stages(date(2025, 7, 1)) == [(acme.pk, "adoption", "churned")]
    acme.refresh_from_db()
    assert acme.lifecycle_stage == LifecycleStage.CHURNED
    assert acme.churn_date == date(2025, 7, 1)

    subscribe(acme, product, date(2025, 9, 1))
    assert evaluate_stages(date(2025, 8, 31)) == []
    assert evaluate_stages(date(2025, 9, 1)) == [(acme.pk, "churned", "reactivated")]
    assert evaluate_stages(date(2025, 9, 30)) == []  # 29 days
    assert evaluate_stages(date(2025, 10, 1)) == [(acme.pk, "reactivated", "adoption")]
    assert stage_of(acme) == LifecycleStage.ADOPTION

    assert stage_rows(acme) == [
        ("onboarding", None, date(2025, 3, 10), ChangeSource.EDIT),
        ("adoption", date(2025, 3, 10), date(2025, 7, 1), ChangeSource.RULE),
        ("churned", date(2025, 7, 1), date(2025, 9, 1), ChangeSource.RULE),
        ("reactivated", date(2025, 9, 1), date(2025, 10, 1), ChangeSource.RULE),
        ("adoption", date(2025, 10, 1), None, ChangeSource.RULE),
    ]
    # The history answers "which stage on that day".
    churned_in_august = Customer.objects.filter(
        as_of_filter(Dimension.STAGE, ["churned"], date(2025, 8, 15))
    )
    assert list(churned_in_august) == [acme]
    assert not Customer.objects.filter(
        as_of_filter(Dimension.STAGE, ["churned"], date(2025, 10, 1))
    ).exists()
    stage_entries = TimelineEntry.objects.filter(customer=acme, kind=TimelineKind.STAGE_CHANGED)
    assert stage_entries.count() == 4


def test_reasons_name_the_criterion(product: Product) -> None:
    configure(adoption_entry="onboarding_completed", expansion_entry="", reactivated_days=30)
    acme = make_customer("Acme")
    subscribe(acme, product, date(2025, 1, 6), date(2025, 4, 1))
    complete_onboarding(acme, date(2025, 2, 1))
    with translation.override("en"):
        evaluate_stages(date(2025, 2, 1))
        evaluate_stages(date(2025, 4, 1))
    reasons = list(
        StateHistory.objects.filter(
            customer=acme, dimension=Dimension.STAGE, valid_from__isnull=False
        )
        .order_by("valid_from")
        .values_list("reason", flat=True)
    )
    assert reasons == [
        "Onboarding → adoption when: onboarding_completed",
        "No subscription in service",
    ]


def test_a_customer_moves_one_step_per_evaluation(product: Product) -> None:
    configure(adoption_entry="onboarding_completed", expansion_entry="seats >= 50")
    big = make_customer("Big")
    subscribe(big, product, date(2025, 1, 6), seats=60)
    complete_onboarding(big, date(2025, 2, 1))
    assert evaluate_stages(date(2025, 2, 1)) == [(big.pk, "onboarding", "adoption")]
    assert evaluate_stages(date(2025, 2, 2)) == [(big.pk, "adoption", "expansion")]
    assert [row[:3] for row in stage_rows(big)] == [
        ("onboarding", None, date(2025, 2, 1)),
        ("adoption", date(2025, 2, 1), date(2025, 2, 2)),
        ("expansion", date(2025, 2, 2), None),
    ]


def test_expansion_needs_the_criterion_on_that_day(product: Product) -> None:
    configure(adoption_entry="", expansion_entry="seats >= 50")
    small = make_customer("Small", stage=LifecycleStage.ADOPTION)
    large = make_customer("Large", stage=LifecycleStage.ADOPTION)
    subscribe(small, product, date(2025, 1, 1), seats=20)
    subscribe(large, product, date(2025, 1, 1), date(2025, 6, 1), seats=20)
    subscribe(large, product, date(2025, 6, 1), seats=80)  # upsell from June
    onboarding = make_customer("Fresh")
    subscribe(onboarding, product, date(2025, 1, 1), seats=90)
    assert evaluate_stages(date(2025, 5, 31)) == []
    assert evaluate_stages(date(2025, 6, 1)) == [(large.pk, "adoption", "expansion")]
    # An empty adoption criterion moves nobody (it does not mean "everyone").
    assert stage_of(onboarding) == LifecycleStage.ONBOARDING


def test_customers_without_any_subscription_are_not_churned(product: Product) -> None:
    prospect = make_customer("Prospect")
    future = make_customer("Signed, starts later")
    subscribe(future, product, date(2025, 5, 1))
    assert evaluate_stages(date(2025, 3, 1)) == []
    assert stage_of(prospect) == stage_of(future) == LifecycleStage.ONBOARDING


def test_back_to_back_renewals_do_not_churn(product: Product) -> None:
    acme = make_customer("Acme", stage=LifecycleStage.ADOPTION)
    subscribe(acme, product, date(2025, 1, 1), date(2025, 4, 1))
    subscribe(acme, product, date(2025, 4, 1), date(2025, 7, 1))
    assert evaluate_stages(date(2025, 4, 1)) == []
    assert evaluate_stages(date(2025, 7, 1)) == [(acme.pk, "adoption", "churned")]


def test_churn_date_is_the_last_end_date_and_is_kept_when_already_set(product: Product) -> None:
    late = make_customer("Evaluated late", stage=LifecycleStage.ADOPTION)
    subscribe(late, product, date(2025, 1, 1), date(2025, 3, 1))
    known = make_customer("Known date", stage=LifecycleStage.ADOPTION, churn_date=date(2025, 2, 20))
    subscribe(known, product, date(2025, 1, 1), date(2025, 3, 1))
    evaluate_stages(date(2025, 3, 5))
    late.refresh_from_db()
    known.refresh_from_db()
    assert late.churn_date == date(2025, 3, 1)
    assert known.churn_date == date(2025, 2, 20)
    assert late.lifecycle_stage == known.lifecycle_stage == LifecycleStage.CHURNED


def test_customer_churned_by_hand_is_not_reactivated_by_its_running_contract(
    product: Product, make_user: Callable[..., User]
) -> None:
    manager = make_user(Role.CS_MANAGER)
    leaving = make_customer("Leaving", stage=LifecycleStage.ADOPTION)
    subscribe(leaving, product, date(2025, 1, 1), date(2025, 12, 1))
    move_stage(
        customer=leaving,
        stage=LifecycleStage.CHURNED,
        reason="Gave notice",
        actor=manager,
        on=date(2025, 6, 1),
    )
    assert evaluate_stages(date(2025, 6, 2)) == []
    assert stage_of(leaving) == LifecycleStage.CHURNED
    # A new contract after the churn does reactivate.
    subscribe(leaving, product, date(2026, 1, 1))
    assert evaluate_stages(date(2026, 1, 1)) == [(leaving.pk, "churned", "reactivated")]


def test_imported_reactivated_customer_counts_days_from_its_latest_contract(
    product: Product,
) -> None:
    configure(reactivated_days=90)
    back = make_customer("Back", stage=LifecycleStage.REACTIVATED)
    subscribe(back, product, date(2025, 1, 1), date(2025, 3, 1))
    subscribe(back, product, date(2025, 5, 1))
    assert evaluate_stages(date(2025, 7, 29)) == []  # 89 days after 1 May
    assert evaluate_stages(date(2025, 7, 30)) == [(back.pk, "reactivated", "adoption")]


def test_without_automatic_stages_only_churn_and_reactivation_happen(product: Product) -> None:
    configure(
        adoption_entry="onboarding_completed",
        expansion_entry="seats >= 1",
        reactivated_days=0,
        automatic_stages=False,
    )
    done = make_customer("Onboarded")
    subscribe(done, product, date(2025, 1, 1))
    complete_onboarding(done, date(2025, 2, 1))
    grown = make_customer("Grown", stage=LifecycleStage.ADOPTION)
    subscribe(grown, product, date(2025, 1, 1))
    gone = make_customer("Gone", stage=LifecycleStage.ADOPTION)
    subscribe(gone, product, date(2025, 1, 1), date(2025, 3, 1))
    back = make_customer("Back", stage=LifecycleStage.CHURNED, churn_date=date(2024, 12, 1))
    subscribe(back, product, date(2025, 3, 1))
    assert sorted(evaluate_stages(date(2025, 3, 1))) == sorted(
        [(gone.pk, "adoption", "churned"), (back.pk, "churned", "reactivated")]
    )
    assert evaluate_stages(date(2025, 3, 2)) == []  # reactivated stays: automatic moves are off


def test_a_criterion_that_no_longer_parses_names_the_setting(product: Product) -> None:
    LifecycleSettings.objects.filter(pk=LifecycleSettings.load().pk).update(
        adoption_entry="days_since_start >="
    )
    with translation.override("en"), pytest.raises(stages.StageCriterionError) as caught:
        evaluate_stages(date(2025, 3, 1))
    assert caught.value.field == "adoption_entry"
    assert str(caught.value).startswith("Onboarding → adoption when: position ")


# --- Manual moves ------------------------------------------------------------------------------


def test_move_stage_needs_a_reason_and_a_new_stage(make_user: Callable[..., User]) -> None:
    acme = make_customer("Acme")
    csm = make_user(Role.ADOPTION_CSM)
    with translation.override("en"), pytest.raises(ValidationError) as caught:
        move_stage(customer=acme, stage=LifecycleStage.ADOPTION, reason="  ", actor=csm)
    assert caught.value.message_dict == {"reason": ["Give a reason for moving the stage by hand."]}
    with translation.override("en"), pytest.raises(ValidationError) as caught:
        move_stage(customer=acme, stage="dormant", reason="x", actor=csm)
    assert caught.value.message_dict == {"stage": ["“dormant” is not a lifecycle stage."]}
    with pytest.raises(ValidationError) as caught:
        move_stage(customer=acme, stage=LifecycleStage.ONBOARDING, reason="x", actor=csm)
    assert list(caught.value.message_dict) == ["stage"]
    assert not StateHistory.objects.filter(customer=acme, valid_from__isnull=False).exists()


def test_move_stage_records_who_and_why_reapplies_touch_and_opens_the_handoff(
    make_user: Callable[..., User],
) -> None:
    TouchPolicy.objects.create(segment_key="", stage="onboarding", touch_model="high")
    TouchPolicy.objects.create(segment_key="", stage="adoption", touch_model="low")
    csm = make_user(Role.ONBOARDING_CSM)
    acme = make_customer("Acme", touch_model=TouchModel.HIGH, onboarding_owner=csm)
    change = move_stage(
        customer=acme, stage=LifecycleStage.ADOPTION, reason="Kickoff done early", actor=csm
    )
    today = timezone.localdate()
    assert change == (acme.pk, "onboarding", "adoption")
    acme.refresh_from_db()
    assert (acme.lifecycle_stage, acme.touch_model) == ("adoption", "low")
    row = StateHistory.objects.get(customer=acme, dimension=Dimension.STAGE, valid_to=None)
    assert (row.value, row.valid_from, row.source, row.reason, row.actor) == (
        "adoption",
        today,
        ChangeSource.MANUAL,
        "Kickoff done early",
        csm,
    )
    handoff = RoleHandoff.objects.get(customer=acme)
    assert (handoff.from_role, handoff.to_role, handoff.from_user) == (
        "onboarding",
        "adoption",
        csm,
    )


# --- Settings ----------------------------------------------------------------------------------


def test_save_stage_settings_rejects_bad_criteria_naming_the_field() -> None:
    with translation.override("en"), pytest.raises(ValidationError) as caught:
        stages.save_stage_settings(
            adoption_entry="onboarding_completed or",
            expansion_entry="seats >= 50",
            reactivated_days=30,
            automatic_stages=True,
        )
    errors = caught.value.message_dict
    assert list(errors) == ["adoption_entry"]
    assert errors["adoption_entry"][0].startswith("Onboarding → adoption when: position ")
    settings = stages.save_stage_settings(
        adoption_entry="  days_since_start >= 90 ",
        expansion_entry="",
        reactivated_days=45,
        automatic_stages=False,
    )
    settings.refresh_from_db()
    assert (
        settings.adoption_entry,
        settings.expansion_entry,
        settings.reactivated_days,
        settings.automatic_stages,
    ) == ("days_since_start >= 90", "", 45, False)


def test_days_in_stage_counts_from_the_open_row(product: Product) -> None:
    acme = make_customer("Acme", stage=LifecycleStage.ADOPTION)
    subscribe(acme, product, date(2025, 1, 1), date(2025, 3, 1))
    assert stages.days_in_stage(acme.pk) is None  # since before the history
    evaluate_stages(date(2025, 3, 1))
    assert stages.days_in_stage(acme.pk, as_of=date(2025, 3, 31)) == 30


# --- Settings → Stages tab ---------------------------------------------------------------------


def _client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def _english(settings: Any) -> None:
    settings.LANGUAGE_CODE = "en"


@pytest.mark.usefixtures("_english")
def test_stage_settings_tab_is_for_managers(make_user: Callable[..., User]) -> None:
    url = reverse("lifecycle:stage-settings")
    assert _client(make_user(Role.ADOPTION_CSM)).get(url).status_code == 403
    assert _client(make_user(Role.VIEWER)).get(url).status_code == 403
    assert _client(make_user(Role.ADOPTION_CSM)).post(reverse("lifecycle:run")).status_code == 403
    response = _client(make_user(Role.CS_MANAGER)).get(url)
    assert response.status_code == 200
    assert "No lifecycle run yet" in response.content.decode()


@pytest.mark.usefixtures("_english")
def test_stage_settings_form_shows_a_bad_criterion_inline(make_user: Callable[..., User]) -> None:
    client = _client(make_user(Role.CS_MANAGER))
    response = client.post(
        reverse("lifecycle:stage-settings"),
        {
            "adoption_entry": "onboarding_completed",
            "expansion_entry": "seats >= ",
            "reactivated_days": "30",
            "automatic_stages": "on",
        },
    )
    assert response.status_code == 400
    html = response.content.decode()
    row = html[html.index('name="expansion_entry"') :]
    row = row[: row.index("</div>")]
    assert "Adoption → expansion when: position " in row
    assert LifecycleSettings.load().expansion_entry != "seats >= "

    response = client.post(
        reverse("lifecycle:stage-settings"),
        {
            "adoption_entry": "onboarding_completed",
            "expansion_entry": "seats >= 40",
            "reactivated_days": "60",
        },
    )
    assert response.status_code == 302
    settings = LifecycleSettings.load()
    assert (settings.expansion_entry, settings.reactivated_days, settings.automatic_stages) == (
        "seats >= 40",
        60,
        False,
    )


@pytest.mark.usefixtures("_english")
def test_run_now_runs_and_the_tab_shows_the_counts(
    make_user: Callable[..., User], product: Product
) -> None:
    configure(adoption_entry="", expansion_entry="")
    gone = make_customer("Gone", stage=LifecycleStage.ADOPTION)
    subscribe(gone, product, date(2025, 1, 1), date(2025, 3, 1))
    client = _client(make_user(Role.CS_MANAGER))
    response = client.post(reverse("lifecycle:run"), follow=True)
    assert response.status_code == 200
    run = LifecycleRun.objects.get()
    assert run.finished_at is not None
    assert run.error == ""
    assert run.counts["stages"] == 1
    html = response.content.decode()
    assert "Lifecycle run finished" in html
    assert 'data-count="stages"><td>Stage changes</td><td class="num">1</td>' in html
    assert stage_of(gone) == LifecycleStage.CHURNED


def test_move_stage_reads_the_stored_stage_not_a_stale_object(
    product: Product, make_user: Callable[..., User]
) -> None:
    acme = make_customer("Acme", stage=LifecycleStage.ADOPTION)
    stale = Customer.objects.get(pk=acme.pk)
    subscribe(acme, product, date(2025, 1, 1), date(2025, 3, 1))
    evaluate_stages(date(2025, 3, 1))  # churned meanwhile
    csm = make_user(Role.ADOPTION_CSM)
    with pytest.raises(ValidationError) as caught:
        move_stage(customer=stale, stage=LifecycleStage.CHURNED, reason="Left", actor=csm)
    assert list(caught.value.message_dict) == ["stage"]
    assert move_stage(
        customer=stale, stage=LifecycleStage.ADOPTION, reason="Billing error", actor=csm
    ) == (acme.pk, "churned", "adoption")
