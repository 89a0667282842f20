"""The demo company is reproducible, consistent with the data model, and tells a realistic story."""

import itertools
import time
from collections import defaultdict
from datetime import date
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db.models import Q
from django.test import Client
from django.urls import reverse
from django.utils import translation

from kizuna.core.models import TimelineEntry, User
from kizuna.core.roles import Role
from kizuna.customers.models import (
    Contact,
    ContactRole,
    Customer,
    LifecycleStage,
    SalesHandoff,
    Subscription,
    TouchModel,
)
from kizuna.demo.sample import (
    DEMO_PASSWORD,
    STAFF,
    DemoDataExistsError,
    SampleSummary,
    add_months,
    build_sample_company,
)

TODAY = date(2026, 11, 20)
pytestmark = pytest.mark.django_db


def _snapshot() -> dict[str, list[Any]]:
    """Everything the demo writes, without database ids or creation times."""
    return {
        "customers": list(
            Customer.objects.order_by("external_id").values_list(
                "external_id", "name", "domain", "industry", "employee_count", "region",
                "segment", "lifecycle_stage", "touch_model", "onboarding_owner__username",
                "adoption_owner__username", "expansion_owner__username", "first_start_date",
                "churn_date", "churn_reason",
            )
        ),
        "subscriptions": list(
            Subscription.objects.order_by("customer__external_id", "product__code", "start_date")
            .values_list(
                "customer__external_id", "product__code", "plan__code", "quantity", "mrr",
                "bill_period_months", "discount", "start_date", "end_date", "status",
            )
        ),
        "contacts": list(
            Contact.objects.order_by("customer__external_id", "email").values_list(
                "customer__external_id", "name", "email", "role", "language",
                "product_user_id", "started_on", "ended_on",
            )
        ),
        "timeline": list(
            TimelineEntry.objects.order_by("customer__external_id", "occurred_at", "title")
            .values_list("customer__external_id", "kind", "title", "body", "occurred_at",
                         "actor__username")
        ),
        "handoffs": list(
            SalesHandoff.objects.order_by("customer__external_id").values_list(
                "customer__external_id", "desired_outcomes", "stakeholders", "handed_off_on"
            )
        ),
    }  # fmt: skip


def _rows_by_customer() -> dict[int, list[Subscription]]:
    rows: dict[int, list[Subscription]] = defaultdict(list)
    for row in Subscription.objects.select_related("plan").order_by("start_date", "id"):
        rows[row.customer_id].append(row)
    return rows


def _in_service(rows: list[Subscription], day: date) -> bool:
    return any(r.start_date <= day and (r.end_date is None or r.end_date > day) for r in rows)


@pytest.fixture
def company() -> SampleSummary:
    return build_sample_company(seed=7, customers=120, today=TODAY)


def test_the_same_seed_and_day_build_the_same_company_and_another_seed_a_different_one() -> None:
    build_sample_company(seed=11, customers=40, today=TODAY)
    first = _snapshot()
    Customer.objects.all().delete()  # staff and catalog stay and are reused
    build_sample_company(seed=11, customers=40, today=TODAY)
    assert _snapshot() == first
    Customer.objects.all().delete()
    build_sample_company(seed=12, customers=40, today=TODAY)
    assert _snapshot()["customers"] != first["customers"]


def test_every_role_has_a_demo_user_who_can_sign_in(company: SampleSummary) -> None:
    demo_users = User.objects.filter(username__in=company.users)
    assert {user.role for user in demo_users} == set(Role.values)
    for username in ("admin", "manager", "onboarding", "adoption", "expansion", "viewer"):
        assert Client().login(username=username, password=DEMO_PASSWORD), username
    admin = User.objects.get(username="admin")
    assert admin.role == Role.ADMIN
    assert not admin.is_superuser
    assert admin.display_name != "admin"  # a person's name, not the login


def test_the_admin_signs_in_through_the_login_form_and_sees_the_customers(
    company: SampleSummary,
) -> None:
    client = Client()
    response = client.post(reverse("core:login"), {"username": "admin", "password": DEMO_PASSWORD})
    assert response.status_code == 302
    assert client.get(reverse("customers:list")).status_code == 200


def test_subscriptions_satisfy_the_model_and_run_back_to_back(company: SampleSummary) -> None:
    rows = list(Subscription.objects.all())
    assert len(rows) == company.subscriptions
    for row in rows:
        row.full_clean(validate_unique=False, validate_constraints=False)  # field validators
        assert row.end_date is not None
        assert row.end_date > row.start_date
    by_stream: dict[tuple[int, int], list[Subscription]] = defaultdict(list)
    for row in sorted(rows, key=lambda r: r.start_date):
        by_stream[(row.customer_id, row.product_id)].append(row)
    for stream in by_stream.values():
        for before, after in itertools.pairwise(stream):
            # Renewals follow on the next day without service; a gap is a reactivation.
            assert after.start_date >= before.end_date  # type: ignore[operator]
    for customer in Customer.objects.all():
        starts = [r.start_date for r in rows if r.customer_id == customer.pk]
        assert customer.first_start_date == min(starts)


def test_the_history_has_new_churned_expanded_and_reactivated_customers(
    company: SampleSummary,
) -> None:
    rows = _rows_by_customer()
    customers = {c.pk: c for c in Customer.objects.all()}
    churned = [c for c in customers.values() if c.lifecycle_stage == LifecycleStage.CHURNED]
    assert len(churned) == company.churned_customers >= 5
    for customer in churned:
        assert customer.churn_date is not None
        assert customer.churn_reason
        assert not _in_service(rows[customer.pk], TODAY)
        assert max(r.end_date for r in rows[customer.pk]) == customer.churn_date  # type: ignore[type-var]
    for customer in customers.values():
        if customer.lifecycle_stage != LifecycleStage.CHURNED:
            assert customer.churn_date is None
            assert _in_service(rows[customer.pk], TODAY), customer.name

    expanded, contracted, reactivated = set(), set(), set()
    for customer_id, history in rows.items():
        analytics = [r for r in history if r.product.code == "mirai-analytics"]
        for before, after in itertools.pairwise(analytics):
            assert before.plan is not None
            assert after.plan is not None
            if after.start_date > before.end_date:  # type: ignore[operator]
                reactivated.add(customer_id)
            elif (after.quantity, after.plan.tier_rank) > (before.quantity, before.plan.tier_rank):
                expanded.add(customer_id)
            elif (after.quantity, after.plan.tier_rank) < (before.quantity, before.plan.tier_rank):
                contracted.add(customer_id)
    assert len(expanded) >= 5
    assert contracted
    assert len(reactivated) == company.reactivated_customers >= 1
    for customer_id in reactivated:
        assert customers[customer_id].lifecycle_stage != LifecycleStage.CHURNED

    first_months = {(c.first_start_date.year, c.first_start_date.month)
                    for c in customers.values() if c.first_start_date}  # fmt: skip
    for back in range(24):
        month = add_months(TODAY.replace(day=1), -back)
        assert (month.year, month.month) in first_months, f"no new customer in {month:%Y-%m}"


def test_customers_are_segmented_owned_and_staged_sensibly(company: SampleSummary) -> None:
    touch_by_segment = {"enterprise": TouchModel.HIGH, "mid-market": TouchModel.LOW,
                        "smb": TouchModel.TECH}  # fmt: skip
    customers = list(Customer.objects.all())
    assert {c.segment for c in customers} == set(touch_by_segment)
    assert any(c.name.isascii() for c in customers)  # English names
    assert any("株式会社" in c.name for c in customers)  # Japanese names
    for customer in customers:
        assert customer.touch_model == touch_by_segment[customer.segment]
        assert customer.onboarding_owner_id
        assert customer.adoption_owner_id
        assert customer.first_start_date is not None
        if customer.lifecycle_stage == LifecycleStage.EXPANSION:  # a year at the earliest
            assert (TODAY - customer.first_start_date).days >= 365
    onboarding = [c for c in customers if c.lifecycle_stage == LifecycleStage.ONBOARDING]
    assert onboarding
    returned = set(
        TimelineEntry.objects.filter(title="再契約").values_list("customer_id", flat=True)
    )
    for customer in onboarding:  # new this season, or back after leaving
        assert customer.first_start_date is not None
        assert (TODAY - customer.first_start_date).days < 120 or customer.pk in returned
    assert SalesHandoff.objects.count() == company.handoffs > 0
    assert TimelineEntry.objects.filter(title="キックオフミーティング").exists()
    assert not TimelineEntry.objects.filter(occurred_at__date__gte=TODAY).exists()


def test_contacts_cover_every_role_and_one_customer_changed_its_admin(
    company: SampleSummary,
) -> None:
    assert set(Contact.objects.values_list("role", flat=True)) == set(ContactRole.values)
    assert set(Contact.objects.values_list("language", flat=True)) == {"ja", "en"}
    assert Contact.objects.exclude(product_user_id="").count() > company.customers
    changed = Customer.objects.get(name=company.admin_changed_customer)
    admins = list(changed.contacts.filter(role=ContactRole.ADMIN).order_by("started_on"))
    assert len(admins) == 2
    old, new = admins
    assert old.ended_on is not None
    assert new.ended_on is None
    assert new.started_on == old.ended_on
    assert (TODAY - new.started_on).days <= 30  # type: ignore[operator]
    assert Contact.objects.filter(~Q(id__in=[old.id]), ended_on__isnull=False).count() == 0


def test_the_full_company_is_built_in_under_ten_seconds() -> None:
    started = time.perf_counter()
    summary = build_sample_company()
    assert time.perf_counter() - started < 10
    assert summary.customers == Customer.objects.count() == 120


def test_building_into_a_database_with_customers_is_refused(company: SampleSummary) -> None:
    with pytest.raises(DemoDataExistsError):
        build_sample_company(today=TODAY)


def test_the_demo_command_with_if_empty_does_not_duplicate_anything() -> None:
    out = StringIO()
    with translation.override("en"):
        call_command("demo", "--customers", "30", "--seed", "3", stdout=out)
    assert "30 customers" in out.getvalue()
    assert "admin" in out.getvalue()
    assert DEMO_PASSWORD in out.getvalue()
    counts = (Customer.objects.count(), Subscription.objects.count(), User.objects.count(),
              TimelineEntry.objects.count())  # fmt: skip
    out = StringIO()
    with translation.override("en"):
        call_command("demo", "--if-empty", stdout=out)
    assert "already has customers" in out.getvalue()
    assert counts == (Customer.objects.count(), Subscription.objects.count(),
                      User.objects.count(), TimelineEntry.objects.count())  # fmt: skip
    with pytest.raises(CommandError, match="already has customers"), translation.override("en"):
        call_command("demo")


def test_existing_staff_accounts_are_left_untouched() -> None:
    User.objects.create_user(username="admin", password="my-own-secret-password", role=Role.ADMIN)
    build_sample_company(customers=10, today=TODAY)
    assert Client().login(username="admin", password="my-own-secret-password")
    assert User.objects.filter(username="admin").count() == 1
    assert len(STAFF) == User.objects.count()
