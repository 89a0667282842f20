"""Plans: made from a version with computed dates, changed under the rules, never completed early."""

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone, translation

from kizuna.core.models import TimelineEntry, User
from kizuna.core.roles import Role
from kizuna.customers.models import Customer, Product, SalesHandoff, Subscription
from kizuna.onboarding.models import (
    CompletedVia,
    Holiday,
    MilestoneStatus,
    OnboardingPlan,
    OnboardingSettings,
    OwnerSide,
    PlanMilestone,
    PlanStatus,
)
from kizuna.onboarding.plans import (
    cancel_plan,
    complete_milestone,
    create_missing_plans,
    create_plan,
    kickoff_initial,
    prefill_kickoff,
    reopen_milestone,
    save_kickoff,
    set_milestone_status,
)
from kizuna.onboarding.programs import new_draft
from kizuna.onboarding.status import refresh_statuses
from kizuna.onboarding.tests.test_programs import make_version

FRIDAY = date(2026, 11, 6)

STANDARD = [
    {"key": "kickoff", "phase": "Start", "offset": 1},
    {"key": "setup", "phase": "Start", "offset": 7, "after": ["kickoff"]},
    {"key": "tour", "phase": "Start", "offset": 9, "required": False},
    {"key": "training", "phase": "Train", "offset": 14, "after": ["setup"]},
    {"key": "go_live", "phase": "Live", "offset": 30, "after": ["training"]},
]


def customer(name: str = "Acme", *, started: date | None = FRIDAY, **fields: Any) -> Customer:
    """A customer whose first subscription started on ``started``."""
    made = Customer.objects.create(name=name, first_start_date=started, **fields)
    if started is not None:
        product, _ = Product.objects.get_or_create(code="kintai", defaults={"name": "Kintai"})
        Subscription.objects.create(
            customer=made, product=product, start_date=started, mrr=Decimal(50000)
        )
    return made


def milestones(plan: OnboardingPlan) -> dict[str, PlanMilestone]:
    return {pm.milestone.key: pm for pm in plan.milestones.select_related("milestone")}


def entries(kind: str) -> list[TimelineEntry]:
    return list(TimelineEntry.objects.filter(kind=kind).order_by("id"))


@pytest.fixture
def csm(make_user: Callable[..., User]) -> User:
    return make_user(Role.ONBOARDING_CSM, username="sato")


@pytest.mark.django_db
def test_a_plan_copies_the_milestones_with_dates_from_the_start(
    csm: User, django_capture_on_commit_callbacks: Any
) -> None:
    version = make_version(
        STANDARD,
        target_days=44,
        follow_ups=[("Day 7 check-in", 7, OwnerSide.CSM), ("Self check", 15, OwnerSide.CUSTOMER)],
    )
    Holiday.objects.create(day=date(2026, 11, 23), name="勤労感謝の日")
    acme = customer(onboarding_owner=csm)

    with django_capture_on_commit_callbacks(execute=True):
        plan = create_plan(customer=acme, version=version, actor=csm)

    assert (plan.start_date, plan.version_id, plan.created_by) == (FRIDAY, version.pk, csm)
    # Friday + 44 days = Saturday 19 Dec → Monday 21 Dec.
    assert plan.target_date == date(2026, 12, 21)
    due = {key: pm.due_date for key, pm in milestones(plan).items()}
    assert due == {
        "kickoff": date(2026, 11, 9),  # Saturday → Monday
        "setup": date(2026, 11, 13),  # Friday stays
        "tour": date(2026, 11, 16),  # Sunday → Monday
        "training": date(2026, 11, 20),
        "go_live": date(2026, 12, 7),  # Sunday 6 Dec → Monday
    }
    tasks = [(t.title, t.due_date, t.owner_side, t.owner) for t in plan.tasks.all()]
    assert tasks == [
        ("Day 7 check-in", date(2026, 11, 13), "csm", csm),
        ("Self check", date(2026, 11, 24), "customer", None),  # Saturday 21 → Tuesday 24
    ]
    [entry] = entries("onboarding.plan_created")
    assert entry.customer_id == acme.pk
    assert entry.payload["plan"] == plan.pk
    assert entry.payload["version"] == version.pk


@pytest.mark.django_db
def test_milestones_without_open_dependencies_start_in_progress() -> None:
    plan = create_plan(customer=customer(), version=make_version(STANDARD))
    statuses = {key: pm.status for key, pm in milestones(plan).items()}
    assert statuses == {
        "kickoff": MilestoneStatus.IN_PROGRESS,
        "setup": MilestoneStatus.NOT_STARTED,
        "tour": MilestoneStatus.IN_PROGRESS,
        "training": MilestoneStatus.NOT_STARTED,
        "go_live": MilestoneStatus.NOT_STARTED,
    }


@pytest.mark.django_db
def test_the_start_defaults_to_the_first_start_date_and_the_version_to_the_fitting_program() -> (
    None
):
    make_version(STANDARD, key="tech", touch_model="tech")
    high = make_version(STANDARD, key="high", touch_model="high")
    plan = create_plan(customer=customer(touch_model="high"))
    assert (plan.version_id, plan.start_date) == (high.pk, FRIDAY)


@pytest.mark.django_db
def test_a_plan_needs_a_published_version_and_one_open_plan_per_customer() -> None:
    version = make_version(STANDARD)
    draft = new_draft(version.program)
    acme = customer()
    with translation.override("en"):
        with pytest.raises(ValidationError) as error:
            create_plan(customer=acme, version=draft)
        assert "version" in error.value.message_dict
        create_plan(customer=acme, version=version)
        with pytest.raises(ValidationError) as error:
            create_plan(customer=acme, version=version)
        assert error.value.messages == ["Acme already has an open onboarding plan."]
    assert OnboardingPlan.objects.count() == 1


@pytest.mark.django_db
def test_no_plan_when_no_program_fits() -> None:
    make_version(STANDARD, touch_model="tech")
    with translation.override("en"), pytest.raises(ValidationError) as error:
        create_plan(customer=customer(touch_model="high"))
    assert "No published onboarding program fits" in error.value.message_dict["version"][0]


@pytest.mark.django_db
def test_plans_are_created_for_new_customers_without_one() -> None:
    make_version(STANDARD)
    as_of = date(2026, 11, 20)
    new = customer("New", started=date(2026, 11, 2))
    on_the_day = customer("Edge", started=date(2026, 10, 21))  # exactly 30 days before
    customer("Old", started=date(2026, 10, 20))  # 31 days before
    customer("Future", started=date(2026, 11, 21))
    had_one = customer("Had one", started=date(2026, 11, 10))
    finished = create_plan(customer=had_one)
    OnboardingPlan.objects.filter(pk=finished.pk).update(cancelled_at=timezone.now())
    # A first start date without a subscription starting that day is not a new subscription.
    Customer.objects.create(name="No subscription", first_start_date=date(2026, 11, 3))
    churned = customer("Churned", started=date(2026, 11, 4))
    Customer.objects.filter(pk=churned.pk).update(churn_date=date(2026, 11, 15))

    assert create_missing_plans(as_of) == 2

    made = OnboardingPlan.objects.exclude(customer=had_one)
    assert sorted((p.customer.name, p.start_date) for p in made) == [
        ("Edge", date(2026, 10, 21)),
        ("New", date(2026, 11, 2)),
    ]
    assert {new.pk, on_the_day.pk} == {p.customer_id for p in made}
    assert create_missing_plans(as_of) == 0


@pytest.mark.django_db
def test_no_plans_are_created_automatically_when_the_setting_is_off() -> None:
    make_version(STANDARD)
    customer(started=date(2026, 11, 2))
    settings = OnboardingSettings.load()
    settings.create_plans_automatically = False
    settings.save()
    assert create_missing_plans(date(2026, 11, 20)) == 0
    assert not OnboardingPlan.objects.exists()


@pytest.mark.django_db
def test_a_milestone_waits_for_its_dependencies_and_the_error_names_them() -> None:
    plan = create_plan(customer=customer(), version=make_version(STANDARD))
    ms = milestones(plan)
    with translation.override("en"), pytest.raises(ValidationError) as error:
        complete_milestone(ms["setup"], via=CompletedVia.STAFF, on=date(2026, 11, 9))
    assert error.value.messages == ["Setup can be done only after Kickoff."]
    ms["setup"].refresh_from_db()
    assert ms["setup"].status == MilestoneStatus.NOT_STARTED

    complete_milestone(ms["kickoff"], via=CompletedVia.STAFF, on=date(2026, 11, 9))
    done = complete_milestone(ms["setup"], via=CompletedVia.STAFF, on=date(2026, 11, 12))
    assert (done.status, done.completed_on) == (MilestoneStatus.DONE, date(2026, 11, 12))


@pytest.mark.django_db
def test_a_skipped_optional_dependency_counts_as_settled() -> None:
    version = make_version(
        [{"key": "tour", "required": False}, {"key": "setup", "after": ["tour"]}]
    )
    plan = create_plan(customer=customer(), version=version)
    ms = milestones(plan)
    set_milestone_status(ms["tour"], MilestoneStatus.SKIPPED, reason="Already knows the product")
    assert milestones(plan)["setup"].status == MilestoneStatus.IN_PROGRESS
    complete_milestone(ms["setup"], via=CompletedVia.STAFF, on=date(2026, 11, 10))
    plan.refresh_from_db()
    assert plan.completed_on == date(2026, 11, 10)


@pytest.mark.django_db
def test_a_required_milestone_cannot_be_skipped() -> None:
    plan = create_plan(customer=customer(), version=make_version(STANDARD))
    with translation.override("en"), pytest.raises(ValidationError) as error:
        set_milestone_status(milestones(plan)["kickoff"], "skipped", reason="No time")
    assert error.value.message_dict["status"] == [
        "Kickoff is required and cannot be skipped: "
        "the plan completes only when every required milestone is done."
    ]
    assert milestones(plan)["kickoff"].status == MilestoneStatus.IN_PROGRESS


@pytest.mark.django_db
def test_blocking_and_skipping_need_a_reason() -> None:
    plan = create_plan(customer=customer(), version=make_version(STANDARD))
    ms = milestones(plan)
    with translation.override("en"):
        with pytest.raises(ValidationError) as error:
            set_milestone_status(ms["kickoff"], MilestoneStatus.BLOCKED, reason="  ")
        assert error.value.message_dict == {"reason": ["Say why the milestone is blocked."]}
        with pytest.raises(ValidationError) as error:
            set_milestone_status(ms["tour"], MilestoneStatus.SKIPPED)
        assert error.value.message_dict == {"reason": ["Say why the milestone is skipped."]}
    blocked = set_milestone_status(ms["kickoff"], "blocked", reason="Waiting for the admin account")
    assert (blocked.status, blocked.blocked_reason) == ("blocked", "Waiting for the admin account")
    # Any blocked milestone puts the plan at risk, even with nothing due soon.
    refresh_statuses(date(2026, 11, 1), plan_ids=[plan.pk])
    plan.refresh_from_db()
    assert plan.status == PlanStatus.AT_RISK


@pytest.mark.django_db
def test_every_change_goes_on_the_timeline_with_from_to_and_via(
    csm: User, django_capture_on_commit_callbacks: Any
) -> None:
    plan = create_plan(customer=customer(), version=make_version(STANDARD))
    ms = milestones(plan)
    with django_capture_on_commit_callbacks(execute=True):
        set_milestone_status(ms["kickoff"], "blocked", reason="Holiday season", actor=csm)
        complete_milestone(ms["kickoff"], via=CompletedVia.CUSTOMER, on=date(2026, 11, 10))
        reopen_milestone(ms["kickoff"], actor=csm)
    changes = [(e.payload, e.actor) for e in entries("onboarding.milestone")]
    base = {"plan": plan.pk, "milestone": "kickoff"}
    assert changes == [
        ({**base, "from": "in_progress", "to": "blocked", "via": "staff"}, csm),
        ({**base, "from": "blocked", "to": "done", "via": "customer"}, None),
        ({**base, "from": "done", "to": "in_progress", "via": "staff"}, csm),
    ]


@pytest.mark.django_db
def test_the_plan_completes_only_when_every_required_milestone_is_done(
    csm: User, django_capture_on_commit_callbacks: Any
) -> None:
    plan = create_plan(customer=customer(), version=make_version(STANDARD))
    ms = milestones(plan)
    done_on = {
        "kickoff": date(2026, 11, 9),
        "setup": date(2026, 11, 16),
        "tour": date(2026, 11, 30),  # optional, done last
        "training": date(2026, 11, 20),
    }
    with django_capture_on_commit_callbacks(execute=True):
        for key, day in done_on.items():
            complete_milestone(ms[key], via=CompletedVia.STAFF, on=day, actor=csm)
    plan.refresh_from_db()
    # Everything but go-live (required) is done: not complete.
    assert plan.completed_on is None
    assert plan.status != PlanStatus.COMPLETED
    assert entries("onboarding.completed") == []

    with django_capture_on_commit_callbacks(execute=True):
        complete_milestone(ms["go_live"], via=CompletedVia.STAFF, on=date(2026, 11, 27))
    plan.refresh_from_db()
    # The last *required* completion, not the optional tour three days later.
    assert (plan.completed_on, plan.status) == (date(2026, 11, 27), PlanStatus.COMPLETED)
    [entry] = entries("onboarding.completed")
    assert entry.payload == {"plan": plan.pk, "version": plan.version_id, "days": 21}


@pytest.mark.django_db
def test_completing_is_recorded_with_who_and_how(csm: User) -> None:
    plan = create_plan(customer=customer(), version=make_version(STANDARD))
    done = complete_milestone(
        milestones(plan)["kickoff"], via=CompletedVia.STAFF, actor=csm, on=date(2026, 11, 9)
    )
    assert (done.completed_on, done.completed_via, done.completed_by) == (
        date(2026, 11, 9),
        "staff",
        csm,
    )
    with translation.override("en"), pytest.raises(ValidationError) as error:
        complete_milestone(milestones(plan)["tour"], via=CompletedVia.STAFF, on=date(2099, 1, 1))
    assert "on" in error.value.message_dict


@pytest.mark.django_db
def test_reopening_a_required_milestone_reopens_a_completed_plan() -> None:
    version = make_version([{"key": "kickoff"}])
    plan = create_plan(customer=customer(), version=version)
    pm = milestones(plan)["kickoff"]
    complete_milestone(pm, via=CompletedVia.STAFF, on=date(2026, 11, 9))
    plan.refresh_from_db()
    assert plan.status == PlanStatus.COMPLETED
    reopened = reopen_milestone(pm)
    plan.refresh_from_db()
    assert (reopened.status, reopened.completed_on, reopened.completed_via) == (
        MilestoneStatus.IN_PROGRESS,
        None,
        "",
    )
    assert plan.completed_on is None
    assert plan.status != PlanStatus.COMPLETED


@pytest.mark.django_db
def test_a_cancelled_plan_no_longer_changes_and_frees_the_customer_for_a_new_one() -> None:
    version = make_version(STANDARD)
    acme = customer()
    plan = create_plan(customer=acme, version=version)
    cancel_plan(plan, reason="Wrong program")
    plan.refresh_from_db()
    assert plan.status == PlanStatus.CANCELLED
    with pytest.raises(ValidationError):
        complete_milestone(milestones(plan)["kickoff"], via=CompletedVia.STAFF)
    assert create_plan(customer=acme, version=version).pk != plan.pk


@pytest.mark.django_db
def test_the_kickoff_is_prefilled_from_the_latest_sales_handoff() -> None:
    acme = customer()
    assert prefill_kickoff(acme) == {
        "desired_outcomes": "",
        "current_issues": "",
        "stakeholders": "",
    }
    SalesHandoff.objects.create(
        customer=acme, desired_outcomes="old", pains="old", handed_off_on=date(2026, 10, 1)
    )
    SalesHandoff.objects.create(
        customer=acme,
        desired_outcomes="月末の集計を1日で終える",
        pains="紙のタイムカード",
        stakeholders="人事部長 田中",
        handed_off_on=date(2026, 10, 20),
    )
    assert prefill_kickoff(acme) == {
        "desired_outcomes": "月末の集計を1日で終える",
        "current_issues": "紙のタイムカード",
        "stakeholders": "人事部長 田中",
    }
    plan = create_plan(customer=acme, version=make_version(STANDARD))
    save_kickoff(plan, {"stakeholders": "人事部長 田中, 情報システム 鈴木"}, actor=None)
    initial = kickoff_initial(plan)
    assert initial["stakeholders"] == "人事部長 田中, 情報システム 鈴木"  # saved value wins
    assert initial["current_issues"] == "紙のタイムカード"  # pre-filled


@pytest.mark.django_db
def test_saving_the_kickoff_validates_fields_and_goes_on_the_timeline(
    csm: User, django_capture_on_commit_callbacks: Any
) -> None:
    plan = create_plan(customer=customer(), version=make_version(STANDARD))
    with pytest.raises(ValidationError) as error:
        save_kickoff(plan, {"budget": "1M"}, actor=csm)
    assert list(error.value.message_dict) == ["budget"]
    with pytest.raises(ValidationError) as error:
        save_kickoff(plan, {"it_literacy": "expert"}, actor=csm)
    assert list(error.value.message_dict) == ["it_literacy"]
    with pytest.raises(ValidationError) as error:
        save_kickoff(plan, {"kickoff_on": "11/09/2026"}, actor=csm)
    assert list(error.value.message_dict) == ["kickoff_on"]

    with django_capture_on_commit_callbacks(execute=True):
        save_kickoff(
            plan,
            {"desired_outcomes": "集計の自動化", "it_literacy": "low", "kickoff_on": "2026-11-09"},
            actor=csm,
        )
    plan.refresh_from_db()
    assert (plan.desired_outcomes, plan.it_literacy, plan.kickoff_on) == (
        "集計の自動化",
        "low",
        date(2026, 11, 9),
    )
    [entry] = entries("onboarding.kickoff")
    assert entry.actor == csm
    assert entry.payload == {
        "plan": plan.pk,
        "fields": ["desired_outcomes", "it_literacy", "kickoff_on"],
    }
