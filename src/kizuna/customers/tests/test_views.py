"""The customer pages: list filters, sort and pages; Customer 360; its forms; the product catalog."""

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from kizuna.core.models import TimelineEntry, TimelineKind, User
from kizuna.core.roles import Role
from kizuna.customers.models import (
    Contact,
    Customer,
    LifecycleStage,
    Plan,
    Product,
    SalesHandoff,
    Subscription,
    SubscriptionChange,
    TouchModel,
)

TODAY = timezone.localdate()
LIST = reverse("customers:list")


@pytest.fixture(autouse=True)
def _english(settings: object) -> None:
    """Assert on English text whatever the Japanese catalog holds."""
    settings.LANGUAGE_CODE = "en"  # type: ignore[attr-defined]


def _client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _html(response: object) -> str:
    return response.content.decode()  # type: ignore[attr-defined]


@pytest.fixture
def product(db: None) -> Product:
    return Product.objects.create(code="crm", name="Kizuna CRM")


@pytest.fixture
def plans(product: Product) -> dict[str, Plan]:
    return {
        "basic": Plan.objects.create(product=product, code="basic", name="Basic", tier_rank=1),
        "pro": Plan.objects.create(product=product, code="pro", name="Pro", tier_rank=2),
    }


def _subscribe(
    customer: Customer,
    product: Product,
    mrr: str,
    *,
    start_days_ago: int = 100,
    ends_in_days: int | None = None,
    plan: Plan | None = None,
) -> Subscription:
    return Subscription.objects.create(
        customer=customer,
        product=product,
        plan=plan,
        mrr=Decimal(mrr),
        currency="JPY",
        start_date=TODAY - timedelta(days=start_days_ago),
        end_date=TODAY + timedelta(days=ends_in_days) if ends_in_days is not None else None,
    )


@pytest.fixture
def book(product: Product, make_user: Callable[..., User]) -> dict[str, Customer]:
    """Three customers with hand-picked revenue:

    Acme: 100,000/month (ARR 1,200,000), renews in 30 days, adoption, high touch, Enterprise.
    Beta: 10,000 + 5,000/month (ARR 180,000), renews in 200 days, onboarding, low touch, SMB.
    Chiba: its only subscription ended 10 days ago (ARR 0, no renewal), churned, tech touch, SMB.
    """
    csm = make_user(Role.ADOPTION_CSM, username="sato", first_name="Hanako", last_name="Sato")
    acme = Customer.objects.create(
        name="Acme",
        external_id="A-1",
        segment="Enterprise",
        lifecycle_stage=LifecycleStage.ADOPTION,
        touch_model=TouchModel.HIGH,
        adoption_owner=csm,
    )
    beta = Customer.objects.create(
        name="Beta",
        domain="beta.example",
        segment="SMB",
        lifecycle_stage=LifecycleStage.ONBOARDING,
        touch_model=TouchModel.LOW,
    )
    chiba = Customer.objects.create(
        name="Chiba",
        segment="SMB",
        lifecycle_stage=LifecycleStage.CHURNED,
        touch_model=TouchModel.TECH,
    )
    _subscribe(acme, product, "100000", ends_in_days=30)
    _subscribe(beta, product, "10000", ends_in_days=200)
    other = Product.objects.create(code="bi", name="Kizuna BI")
    _subscribe(beta, other, "5000")
    _subscribe(chiba, product, "3000", start_days_ago=400, ends_in_days=-10)
    return {"acme": acme, "beta": beta, "chiba": chiba}


def _names_in_table(html: str) -> list[str]:
    names = []
    for name in ("Acme", "Beta", "Chiba"):
        position = html.find(f">{name}</a>")
        if position >= 0:
            names.append((position, name))
    return [name for _position, name in sorted(names)]  # type: ignore[misc]


# The home page's overview


def test_home_counts_customers_arr_in_service_and_stages(admin_client: Client) -> None:
    product = Product.objects.create(code="crm", name="CRM")
    live = Customer.objects.create(name="Live", lifecycle_stage=LifecycleStage.ADOPTION)
    gone = Customer.objects.create(name="Gone", lifecycle_stage=LifecycleStage.CHURNED)
    Customer.objects.create(name="New", lifecycle_stage=LifecycleStage.ADOPTION)
    Subscription.objects.create(
        customer=live, product=product, mrr=Decimal(50000), currency="JPY",
        start_date=TODAY - timedelta(days=30),
    )  # fmt: skip
    Subscription.objects.create(
        customer=gone, product=product, mrr=Decimal(9000), currency="JPY",
        start_date=TODAY - timedelta(days=90), end_date=TODAY - timedelta(days=1),
    )  # fmt: skip
    html = _html(admin_client.get(reverse("core:home")))
    assert 'data-kpi="customers">3<' in html
    assert "1 in service today" in html
    assert "¥600,000" in html  # 12 × 50,000; the ended subscription does not count
    assert f'{reverse("customers:list")}?stage=adoption">2<' in html


# The list


def test_list_without_any_customer_offers_the_import(admin_client: Client) -> None:
    html = _html(admin_client.get(LIST))
    assert "There are no customers yet." in html
    assert reverse("customers:import-upload") in html


def test_list_says_no_match_when_filters_exclude_every_customer(
    admin_client: Client, book: dict[str, Customer]
) -> None:
    html = _html(admin_client.get(LIST, {"q": "no such company"}))
    assert "No customer matches these filters." in html
    assert "There are no customers yet." not in html


def test_list_shows_arr_with_separators_and_currency_and_the_renewal_date(
    admin_client: Client, book: dict[str, Customer]
) -> None:
    html = _html(admin_client.get(LIST))
    assert "¥1,200,000" in html
    assert "¥180,000" in html
    assert (TODAY + timedelta(days=30)).isoformat() in html
    assert "1–3 of 3" in html


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"stage": "adoption"}, ["Acme"]),
        ({"touch_model": "low"}, ["Beta"]),
        ({"segment": "SMB"}, ["Beta", "Chiba"]),
        ({"q": "beta.exam"}, ["Beta"]),
        ({"q": "a-1"}, ["Acme"]),
        ({"segment": "SMB", "stage": "churned"}, ["Chiba"]),
    ],
)
def test_list_filters_by_search_stage_touch_model_and_segment(
    admin_client: Client, book: dict[str, Customer], params: dict[str, str], expected: list[str]
) -> None:
    assert _names_in_table(_html(admin_client.get(LIST, params))) == expected


def test_list_filters_by_owner_of_any_phase(
    admin_client: Client, book: dict[str, Customer]
) -> None:
    owner = User.objects.get(username="sato")
    html = _html(admin_client.get(LIST, {"owner": owner.pk}))
    assert _names_in_table(html) == ["Acme"]
    assert "Hanako Sato" in html


def test_list_ignores_unknown_filter_values_instead_of_failing(
    admin_client: Client, book: dict[str, Customer]
) -> None:
    response = admin_client.get(LIST, {"stage": "nonsense", "owner": "x", "sort": "evil"})
    assert response.status_code == 200
    assert _names_in_table(_html(response)) == ["Acme", "Beta", "Chiba"]


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("-arr", ["Acme", "Beta", "Chiba"]),
        ("arr", ["Chiba", "Beta", "Acme"]),
        ("renewal", ["Acme", "Beta", "Chiba"]),  # Chiba has no renewal date: last either way
        ("-renewal", ["Beta", "Acme", "Chiba"]),
        ("-name", ["Chiba", "Beta", "Acme"]),
    ],
)
def test_list_sorts_by_arr_renewal_and_name(
    admin_client: Client, book: dict[str, Customer], sort: str, expected: list[str]
) -> None:
    assert _names_in_table(_html(admin_client.get(LIST, {"sort": sort}))) == expected


def test_arr_header_sorts_descending_first_and_then_toggles(
    admin_client: Client, book: dict[str, Customer]
) -> None:
    html = _html(admin_client.get(LIST, {"segment": "SMB"}))
    assert "?segment=SMB&amp;sort=-arr" in html
    html = _html(admin_client.get(LIST, {"segment": "SMB", "sort": "-arr"}))
    assert "?segment=SMB&amp;sort=arr" in html


def test_list_pages_fifty_customers_at_a_time(admin_client: Client) -> None:
    Customer.objects.bulk_create(Customer(name=f"Customer {i:03d}") for i in range(120))
    first = _html(admin_client.get(LIST))
    assert "1–50 of 120" in first
    assert "Customer 049" in first
    assert "Customer 050" not in first
    last = _html(admin_client.get(LIST, {"page": 3}))
    assert "101–120 of 120" in last
    assert "Customer 119" in last
    assert _html(admin_client.get(LIST, {"page": 99})).count("101–120 of 120") == 1


def test_htmx_search_returns_only_the_results(
    admin_client: Client, book: dict[str, Customer]
) -> None:
    response = admin_client.get(
        LIST, {"q": "acme"}, headers={"HX-Request": "true", "HX-Target": "customer-results"}
    )
    html = _html(response)
    assert "<html" not in html
    assert html.strip().startswith('<div id="customer-results">')
    assert _names_in_table(html) == ["Acme"]


# Customer 360


@pytest.fixture
def acme_360(book: dict[str, Customer], plans: dict[str, Plan]) -> Customer:
    acme = book["acme"]
    Contact.objects.create(
        customer=acme, name="Yamada Taro", email="yamada@acme.example", role="champion"
    )
    SalesHandoff.objects.create(
        customer=acme, desired_outcomes="Cut onboarding to two weeks", risks="New IT head"
    )
    for day in range(25):
        TimelineEntry.objects.create(
            customer=acme,
            kind=TimelineKind.NOTE,
            title=f"Note {day:02d}",
            occurred_at=timezone.now() - timedelta(days=day),
        )
    return acme


def test_customer_360_shows_summary_contacts_subscriptions_handoff_and_timeline(
    admin_client: Client, acme_360: Customer
) -> None:
    html = _html(admin_client.get(reverse("customers:detail", args=[acme_360.pk])))
    assert "¥1,200,000" in html  # ARR
    assert "¥100,000" in html  # MRR
    assert (TODAY + timedelta(days=30)).isoformat() in html  # renewal
    assert "Hanako Sato" in html  # adoption owner
    assert "yamada@acme.example" in html
    assert "Kizuna CRM" in html
    subscription = Subscription.objects.get(customer=acme_360)
    assert reverse("customers:subscription-history", args=[acme_360.pk, subscription.pk]) in html
    assert "Cut onboarding to two weeks" in html
    assert "Note 00" in html
    assert "Note 19" in html
    assert "Note 20" not in html  # 20 per page, newest first
    assert 'id="add-timeline-entry"' in html


def test_timeline_more_link_loads_the_next_page(admin_client: Client, acme_360: Customer) -> None:
    html = _html(admin_client.get(reverse("customers:detail", args=[acme_360.pk])))
    more = reverse("customers:timeline", args=[acme_360.pk]) + "?page=2"
    assert more in html
    fragment = _html(admin_client.get(more, headers={"HX-Request": "true"}))
    assert "<html" not in fragment
    assert "Note 20" in fragment
    assert "Note 24" in fragment
    assert "Note 19" not in fragment


def test_unknown_customer_is_404(admin_client: Client, db: None) -> None:
    assert admin_client.get(reverse("customers:detail", args=[999])).status_code == 404


def test_adding_a_meeting_puts_it_on_top_of_the_timeline(
    admin_client: Client, acme_360: Customer
) -> None:
    url = reverse("customers:add-note", args=[acme_360.pk])
    response = admin_client.post(
        url, {"kind": "meeting", "title": "Kickoff with IT", "body": "Agreed on SSO first"}
    )
    assert response.status_code == 302
    entry = TimelineEntry.objects.filter(customer=acme_360).first()
    assert entry is not None
    assert (entry.kind, entry.title, entry.body) == (
        "meeting",
        "Kickoff with IT",
        "Agreed on SSO first",
    )
    assert entry.actor is not None
    assert entry.actor.username == "admin"
    html = _html(admin_client.get(response["Location"]))
    assert "Added to the timeline." in html
    assert html.index("Kickoff with IT") < html.index("Note 00")


def test_adding_a_note_with_htmx_returns_the_updated_timeline_only(
    admin_client: Client, acme_360: Customer
) -> None:
    response = admin_client.post(
        reverse("customers:add-note", args=[acme_360.pk]),
        {"kind": "call", "title": "Renewal call"},
        headers={"HX-Request": "true"},
    )
    html = _html(response)
    assert response.status_code == 200
    assert "<html" not in html
    assert html.strip().startswith('<section class="card" id="timeline">')
    assert "Renewal call" in html
    assert 'id="add-timeline-entry"' in html


def test_a_timeline_entry_without_title_or_with_a_system_kind_is_refused(
    admin_client: Client, acme_360: Customer
) -> None:
    url = reverse("customers:add-note", args=[acme_360.pk])
    response = admin_client.post(url, {"kind": "note", "title": "  "})
    assert response.status_code == 400
    assert "This field is required." in _html(response)
    response = admin_client.post(url, {"kind": "risk.raised", "title": "Fake"})
    assert response.status_code == 400
    assert not TimelineEntry.objects.filter(title="Fake").exists()


def test_recording_a_handoff_shows_it_and_notes_it_on_the_timeline(
    admin_client: Client,
    book: dict[str, Customer],
    django_capture_on_commit_callbacks: Callable[..., object],
) -> None:
    beta = book["beta"]
    with django_capture_on_commit_callbacks(execute=True):  # type: ignore[attr-defined]
        response = admin_client.post(
            reverse("customers:handoff-add", args=[beta.pk]),
            {
                "desired_outcomes": "Monthly report in one click",
                "pains": "Excel",
                "stakeholders": "CFO",
                "contract_notes": "12 months",
                "risks": "",
                "handed_off_on": TODAY.isoformat(),
            },
        )
    assert response.status_code == 302
    handoff = SalesHandoff.objects.get(customer=beta)
    assert handoff.stakeholders == "CFO"
    assert handoff.handed_off_by is not None
    html = _html(admin_client.get(reverse("customers:detail", args=[beta.pk])))
    assert "Monthly report in one click" in html
    assert "The sales handoff was recorded." in html
    assert TimelineEntry.objects.filter(customer=beta, kind=TimelineKind.HANDOFF_RECORDED).exists()


def test_an_empty_handoff_is_refused_with_a_message(
    admin_client: Client, book: dict[str, Customer]
) -> None:
    beta = book["beta"]
    response = admin_client.post(
        reverse("customers:handoff-add", args=[beta.pk]), {"handed_off_on": TODAY.isoformat()}
    )
    assert response.status_code == 400
    assert "Write at least one of the handoff" in _html(response)
    assert not SalesHandoff.objects.exists()


def test_editing_the_customer_changes_stage_and_owner(
    admin_client: Client, book: dict[str, Customer]
) -> None:
    beta = book["beta"]
    owner = User.objects.get(username="sato")
    response = admin_client.post(
        reverse("customers:edit", args=[beta.pk]),
        {
            "name": "Beta Inc.",
            "external_id": "",
            "segment": "SMB",
            "lifecycle_stage": "adoption",
            "touch_model": "tech",
            "adoption_owner": owner.pk,
        },
    )
    assert response.status_code == 302
    beta.refresh_from_db()
    assert (beta.name, beta.lifecycle_stage, beta.touch_model) == ("Beta Inc.", "adoption", "tech")
    assert beta.adoption_owner_id == owner.pk
    assert beta.external_id is None


def test_editing_the_customer_with_a_taken_external_id_shows_the_field_error(
    admin_client: Client, book: dict[str, Customer]
) -> None:
    beta = book["beta"]
    response = admin_client.post(
        reverse("customers:edit", args=[beta.pk]),
        {
            "name": "Beta",
            "external_id": "A-1",
            "lifecycle_stage": "onboarding",
            "touch_model": "low",
        },
    )
    assert response.status_code == 400
    assert "Please correct the errors below." in _html(response)
    beta.refresh_from_db()
    assert beta.external_id is None


def test_contacts_are_added_and_edited_and_a_duplicate_email_is_refused(
    admin_client: Client, acme_360: Customer
) -> None:
    add = reverse("customers:contact-add", args=[acme_360.pk])
    data = {"name": "Suzuki Ken", "email": "suzuki@acme.example", "role": "admin", "language": "en"}
    assert admin_client.post(add, data).status_code == 302
    contact = Contact.objects.get(email="suzuki@acme.example")
    assert (contact.customer_id, contact.language) == (acme_360.pk, "en")

    duplicate = admin_client.post(add, {**data, "name": "Someone else"})
    assert duplicate.status_code == 400
    assert Contact.objects.filter(email="suzuki@acme.example").count() == 1

    edit = reverse("customers:contact-edit", args=[acme_360.pk, contact.pk])
    response = admin_client.post(edit, {**data, "job_title": "IT lead", "ended_on": ""})
    assert response.status_code == 302
    contact.refresh_from_db()
    assert contact.job_title == "IT lead"


def test_a_contact_of_another_customer_cannot_be_edited_through_this_one(
    admin_client: Client, book: dict[str, Customer], acme_360: Customer
) -> None:
    contact = Contact.objects.get(customer=acme_360)
    url = reverse("customers:contact-edit", args=[book["beta"].pk, contact.pk])
    assert admin_client.get(url).status_code == 404


def test_subscriptions_are_added_and_changes_kept_in_history(
    admin_client: Client, book: dict[str, Customer], plans: dict[str, Plan]
) -> None:
    beta = book["beta"]
    data = {
        "product": plans["pro"].product_id,
        "plan": plans["pro"].pk,
        "quantity": "20",
        "unit": "seats",
        "mrr": "40000",
        "currency": "jpy",
        "bill_period_months": "12",
        "discount": "0",
        "start_date": (TODAY - timedelta(days=5)).isoformat(),
        "end_date": "",
        "status": "active",
    }
    response = admin_client.post(reverse("customers:subscription-add", args=[beta.pk]), data)
    assert response.status_code == 302
    subscription = Subscription.objects.get(customer=beta, plan=plans["pro"])
    assert (subscription.mrr, subscription.currency) == (Decimal(40000), "JPY")

    edit = reverse("customers:subscription-edit", args=[beta.pk, subscription.pk])
    response = admin_client.post(edit, {**data, "mrr": "45000"})
    assert response.status_code == 302
    change = SubscriptionChange.objects.filter(subscription=subscription).first()
    assert change is not None
    assert change.changes["mrr"] == ["40000.00", "45000"]
    assert change.source == "ui"

    history = _html(
        admin_client.get(reverse("customers:subscription-history", args=[beta.pk, subscription.pk]))
    )
    assert "45000" in history
    detail = _html(admin_client.get(reverse("customers:detail", args=[beta.pk])))
    assert "¥45,000" in detail
    assert "¥60,000" in detail  # MRR: 10,000 + 5,000 + 45,000

    admin_client.post(edit, {**data, "mrr": "45000", "plan": plans["basic"].pk})
    downgrade = SubscriptionChange.objects.filter(subscription=subscription).first()
    assert downgrade is not None
    assert downgrade.changes["plan"] == [str(plans["pro"]), str(plans["basic"])]


def test_a_plan_of_another_product_and_an_end_before_start_are_refused(
    admin_client: Client, book: dict[str, Customer], plans: dict[str, Plan]
) -> None:
    other = Product.objects.get(code="bi")
    response = admin_client.post(
        reverse("customers:subscription-add", args=[book["beta"].pk]),
        {
            "product": other.pk,
            "plan": plans["pro"].pk,
            "quantity": "1",
            "mrr": "1000",
            "currency": "JPY",
            "bill_period_months": "1",
            "discount": "0",
            "start_date": TODAY.isoformat(),
            "end_date": (TODAY - timedelta(days=1)).isoformat(),
            "status": "active",
        },
    )
    html = _html(response)
    assert response.status_code == 400
    assert "This plan belongs to another product." in html
    assert "The end date cannot be before the start date." in html
    assert Subscription.objects.filter(customer=book["beta"]).count() == 2


# Roles


def test_viewer_reads_customer_360_without_any_edit_form(
    make_user: Callable[..., User], acme_360: Customer
) -> None:
    viewer = _client(make_user(Role.VIEWER))
    response = viewer.get(reverse("customers:detail", args=[acme_360.pk]))
    html = _html(response)
    assert response.status_code == 200
    assert "Cut onboarding to two weeks" in html
    assert 'id="add-timeline-entry"' not in html
    assert reverse("customers:handoff-add", args=[acme_360.pk]) not in html
    assert reverse("customers:edit", args=[acme_360.pk]) not in html
    assert reverse("customers:contact-add", args=[acme_360.pk]) not in html


@pytest.mark.parametrize(
    "name",
    ["customers:add-note", "customers:handoff-add", "customers:edit", "customers:contact-add",
     "customers:subscription-add"],
)  # fmt: skip
def test_viewer_posting_to_a_customer_gets_403_and_nothing_changes(
    make_user: Callable[..., User], acme_360: Customer, name: str
) -> None:
    viewer = _client(make_user(Role.VIEWER))
    before = TimelineEntry.objects.count(), SalesHandoff.objects.count(), Contact.objects.count()
    response = viewer.post(
        reverse(name, args=[acme_360.pk]),
        {"kind": "note", "title": "x", "name": "x", "desired_outcomes": "x"},
    )
    assert response.status_code == 403
    after = TimelineEntry.objects.count(), SalesHandoff.objects.count(), Contact.objects.count()
    assert after == before


@pytest.mark.parametrize("role", [Role.ONBOARDING_CSM, Role.ADOPTION_CSM, Role.EXPANSION_CSM])
def test_csms_write_the_timeline(
    make_user: Callable[..., User], acme_360: Customer, role: str
) -> None:
    client = _client(make_user(role))
    response = client.post(
        reverse("customers:add-note", args=[acme_360.pk]),
        {"kind": "training", "title": "Admin 101"},
    )
    assert response.status_code == 302
    assert TimelineEntry.objects.filter(title="Admin 101", kind="training").exists()


def test_signed_out_visitors_are_sent_to_sign_in(client: Client, acme_360: Customer) -> None:
    response = client.get(reverse("customers:detail", args=[acme_360.pk]))
    assert response.status_code == 302
    assert reverse("core:login") in response["Location"]


# Products and plans


def test_catalog_lists_products_with_their_plans_in_tier_order(
    admin_client: Client, plans: dict[str, Plan]
) -> None:
    html = _html(admin_client.get(reverse("customers:catalog")))
    assert "Kizuna CRM" in html
    assert html.index("<td>Basic</td>") < html.index("<td>Pro</td>")


def test_catalog_without_products_offers_to_add_one(admin_client: Client) -> None:
    html = _html(admin_client.get(reverse("customers:catalog")))
    assert "No products yet." in html
    assert reverse("customers:product-add") in html


def test_products_and_plans_are_created_and_edited(admin_client: Client) -> None:
    response = admin_client.post(
        reverse("customers:product-add"), {"code": "hr", "name": "Kizuna HR", "is_active": "on"}
    )
    assert response.status_code == 302
    product = Product.objects.get(code="hr")
    response = admin_client.post(
        reverse("customers:plan-add"),
        {"product": product.pk, "code": "ent", "name": "Enterprise", "tier_rank": "3"},
    )
    assert response.status_code == 302
    plan = Plan.objects.get(product=product, code="ent")
    assert plan.tier_rank == 3

    response = admin_client.post(
        reverse("customers:plan-edit", args=[plan.pk]),
        {"product": product.pk, "code": "ent", "name": "Enterprise+", "tier_rank": "4"},
    )
    assert response.status_code == 302
    plan.refresh_from_db()
    assert (plan.name, plan.tier_rank) == ("Enterprise+", 4)

    response = admin_client.post(
        reverse("customers:product-edit", args=[product.pk]),
        {"code": "hr", "name": "Kizuna People"},
    )
    assert response.status_code == 302
    product.refresh_from_db()
    assert (product.name, product.is_active) == ("Kizuna People", False)
    assert "The product was saved." in _html(admin_client.get(reverse("customers:catalog")))


def test_a_duplicate_plan_code_in_the_same_product_is_refused(
    admin_client: Client, plans: dict[str, Plan]
) -> None:
    response = admin_client.post(
        reverse("customers:plan-add"),
        {"product": plans["basic"].product_id, "code": "basic", "name": "Again", "tier_rank": "1"},
    )
    assert response.status_code == 400
    assert Plan.objects.filter(code="basic").count() == 1


@pytest.mark.parametrize("role", [Role.VIEWER, Role.ADOPTION_CSM])
def test_only_catalog_managers_change_products(
    make_user: Callable[..., User], product: Product, role: str
) -> None:
    client = _client(make_user(role))
    catalog = _html(client.get(reverse("customers:catalog")))
    assert "Kizuna CRM" in catalog
    assert reverse("customers:product-add") not in catalog
    response = client.post(reverse("customers:product-add"), {"code": "x", "name": "X"})
    assert response.status_code == 403
    assert not Product.objects.filter(code="x").exists()


def test_cs_managers_manage_the_catalog(make_user: Callable[..., User], db: None) -> None:
    client = _client(make_user(Role.CS_MANAGER))
    response = client.post(reverse("customers:product-add"), {"code": "x", "name": "X"})
    assert response.status_code == 302
    assert Product.objects.filter(code="x").exists()
