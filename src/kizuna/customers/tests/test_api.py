"""The customer record's REST API: every endpoint, pages, filters, errors that name the field."""

import json
import re
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings as django_settings
from django.test import Client
from django.urls import resolve
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from kizuna.core.models import MANUAL_TIMELINE_KINDS, ApiToken, TimelineEntry, User
from kizuna.core.roles import Role
from kizuna.customers import api as customers_api
from kizuna.customers.models import (
    Contact,
    Customer,
    Plan,
    Product,
    SalesHandoff,
    Subscription,
    SubscriptionChange,
)

pytestmark = pytest.mark.django_db

API = "/api/v1"
ROOT = Path(__file__).resolve().parents[4]
AS_OF = "2025-06-01"


@pytest.fixture(autouse=True)
def _english(settings: Any) -> None:
    """Messages are asserted in English (the default language is Japanese)."""
    settings.LANGUAGE_CODE = "en"


def _token_client(user: User) -> Client:
    _token, raw = ApiToken.issue(user=user, name="tests")
    return Client(headers={"Authorization": f"Bearer {raw}"})


@pytest.fixture
def admin(admin_user: User) -> Client:
    return _token_client(admin_user)


@pytest.fixture
def as_role(make_user: Callable[..., User]) -> Callable[[str], Client]:
    def make(role: str) -> Client:
        return _token_client(make_user(role))

    return make


def _get(client: Client, path: str, **params: Any) -> Any:
    response = client.get(API + path, params)
    assert response.status_code == 200, response.content
    return response.json()


def _send(client: Client, method: str, path: str, body: Any) -> Any:
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return getattr(client, method)(API + path, data, content_type="application/json")


def _post(client: Client, path: str, body: Any) -> Any:
    return _send(client, "post", path, body)


def _patch(client: Client, path: str, body: Any) -> Any:
    return _send(client, "patch", path, body)


def _created(response: Any) -> Any:
    assert response.status_code == 201, response.content
    return response.json()


def _bad_fields(response: Any) -> set[str]:
    """The fields a 400 (service rules) or 422 (input types) names."""
    detail = response.json()["detail"]
    if response.status_code == 400:
        return set(detail)
    assert response.status_code == 422, response.content
    return {str(error["loc"][-1]) for error in detail}


def _names(page: dict[str, Any]) -> list[str]:
    return [item["name"] for item in page["items"]]


@pytest.fixture
def product(db: None) -> Product:
    return Product.objects.create(code="crm", name="CRM")


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
    start: str,
    end: str | None = None,
    plan: Plan | None = None,
) -> Subscription:
    return Subscription.objects.create(
        customer=customer,
        product=product,
        plan=plan,
        mrr=Decimal(mrr),
        start_date=date.fromisoformat(start),
        end_date=date.fromisoformat(end) if end else None,
        currency="JPY",
    )


@pytest.fixture
def book(product: Product, make_user: Callable[..., User]) -> dict[str, Customer]:
    """Three customers whose MRR on 2025-06-01 is known: Acme 1500.50, Beta 2000.00, Chiyo 0."""
    sato = make_user(Role.ONBOARDING_CSM, username="sato", first_name="Aoi", last_name="Sato")
    kato = make_user(Role.ADOPTION_CSM, username="kato")
    other = Product.objects.create(code="bi", name="BI")
    acme = Customer.objects.create(
        name="Acme",
        external_id="A-1",
        domain="acme.example",
        segment="enterprise",
        lifecycle_stage="adoption",
        touch_model="high",
        onboarding_owner=sato,
        adoption_owner=kato,
    )
    beta = Customer.objects.create(
        name="Beta",
        external_id="B-2",
        segment="smb",
        lifecycle_stage="onboarding",
        touch_model="low",
        onboarding_owner=sato,
    )
    chiyo = Customer.objects.create(
        name="Chiyo", segment="smb", lifecycle_stage="churned", touch_model="tech"
    )
    _subscribe(acme, product, "1000", "2024-01-01", "2025-12-01")
    _subscribe(acme, other, "500.50", "2025-01-01", "2025-09-01")
    _subscribe(acme, other, "999", "2025-09-01")  # starts after the day asked for
    _subscribe(beta, product, "2000", "2025-05-01")  # open-ended: no renewal date
    _subscribe(chiyo, product, "300", "2023-01-01", "2025-06-01")  # ended the day before
    return {"acme": acme, "beta": beta, "chiyo": chiyo}


# --- Customers -----------------------------------------------------------------------------------


def test_customer_list_shows_mrr_arr_and_renewal_as_of_a_day_with_money_as_strings(
    admin: Client, book: dict[str, Customer]
) -> None:
    page = _get(admin, "/customers", as_of=AS_OF)
    assert page["count"] == 3
    rows = {item["name"]: item for item in page["items"]}
    assert (rows["Acme"]["mrr"], rows["Acme"]["arr"]) == ("1500.50", "18006.00")
    assert rows["Acme"]["renewal_date"] == "2025-09-01"
    assert (rows["Beta"]["mrr"], rows["Beta"]["arr"]) == ("2000.00", "24000.00")
    assert rows["Beta"]["renewal_date"] is None
    assert (rows["Chiyo"]["mrr"], rows["Chiyo"]["arr"]) == ("0.00", "0.00")
    assert rows["Acme"]["owners"]["onboarding"] == {
        "id": book["acme"].onboarding_owner_id,
        "username": "sato",
        "name": "Aoi Sato",
    }
    assert rows["Acme"]["owners"]["current"]["username"] == "kato"
    assert rows["Acme"]["first_start_date"] is None or isinstance(
        rows["Acme"]["first_start_date"], str
    )


def test_customer_list_sorts_by_arr_renewal_and_name(
    admin: Client, book: dict[str, Customer]
) -> None:
    def order(sort: str) -> list[str]:
        return _names(_get(admin, "/customers", sort=sort, as_of=AS_OF))

    assert order("name") == ["Acme", "Beta", "Chiyo"]
    assert order("-name") == ["Chiyo", "Beta", "Acme"]
    assert order("arr") == ["Chiyo", "Acme", "Beta"]
    assert order("-arr") == ["Beta", "Acme", "Chiyo"]
    # Customers without a renewal date go last either way.
    assert order("renewal") == ["Acme", "Beta", "Chiyo"]
    assert order("-renewal") == ["Acme", "Beta", "Chiyo"]


def test_customer_list_filters_by_search_stage_touch_model_segment_and_owner(
    admin: Client, book: dict[str, Customer]
) -> None:
    def names(**params: Any) -> list[str]:
        return _names(_get(admin, "/customers", **params))

    assert names(q="ACME.ex") == ["Acme"]
    assert names(q="b-2") == ["Beta"]
    assert names(stage="churned") == ["Chiyo"]
    assert names(touch_model="low") == ["Beta"]
    assert names(segment="smb") == ["Beta", "Chiyo"]
    assert names(owner=book["acme"].onboarding_owner_id) == ["Acme", "Beta"]
    assert names(owner=book["acme"].adoption_owner_id) == ["Acme"]
    assert names(segment="smb", touch_model="tech") == ["Chiyo"]
    assert _get(admin, "/customers", q="nobody") == {"items": [], "count": 0}


def test_customer_list_refuses_an_unknown_stage_sort_or_owner_naming_the_parameter(
    admin: Client, book: dict[str, Customer]
) -> None:
    for params, field in (
        ({"stage": "asleep"}, "stage"),
        ({"touch_model": "medium"}, "touch_model"),
        ({"sort": "revenue"}, "sort"),
        ({"owner": "sato"}, "owner"),
        ({"as_of": "2025-13-01"}, "as_of"),
        ({"limit": "0"}, "limit"),
        ({"offset": "-1"}, "offset"),
    ):
        response = admin.get(API + "/customers", params)
        assert response.status_code == 422, params
        assert _bad_fields(response) == {field}


def test_customer_list_pages_fifty_by_default_and_at_most_five_hundred(admin: Client) -> None:
    Customer.objects.bulk_create(Customer(name=f"Customer {i:03d}") for i in range(53))
    first = _get(admin, "/customers")
    assert first["count"] == 53
    assert _names(first) == [f"Customer {i:03d}" for i in range(50)]
    second = _get(admin, "/customers", offset=50)
    assert _names(second) == ["Customer 050", "Customer 051", "Customer 052"]
    small = _get(admin, "/customers", limit=2, offset=10)
    assert (_names(small), small["count"]) == (["Customer 010", "Customer 011"], 53)
    assert len(_get(admin, "/customers", limit=500)["items"]) == 53
    too_many = admin.get(API + "/customers", {"limit": 501})
    assert too_many.status_code == 422
    assert _bad_fields(too_many) == {"limit"}


def test_customer_detail_has_mrr_arr_renewal_and_owners(
    admin: Client, book: dict[str, Customer]
) -> None:
    acme = book["acme"]
    body = _get(admin, f"/customers/{acme.pk}", as_of=AS_OF)
    assert body["id"] == acme.pk
    assert (body["name"], body["external_id"], body["lifecycle_stage"]) == (
        "Acme",
        "A-1",
        "adoption",
    )
    assert (body["mrr"], body["arr"], body["renewal_date"]) == ("1500.50", "18006.00", "2025-09-01")
    assert body["onboarding_owner"] == acme.onboarding_owner_id
    assert body["owners"]["adoption"]["username"] == "kato"
    assert body["owners"]["expansion"] is None
    assert body["owners"]["current"]["username"] == "kato"


def test_customer_can_be_found_by_its_external_id(admin: Client, book: dict[str, Customer]) -> None:
    assert _get(admin, "/customers/by-external-id/B-2")["id"] == book["beta"].pk
    Customer.objects.create(name="Slashed", external_id="crm/42")
    assert _get(admin, "/customers/by-external-id/crm/42")["name"] == "Slashed"
    response = admin.get(API + "/customers/by-external-id/NOPE")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}


def test_creating_a_customer_answers_201_with_the_stored_customer(
    admin: Client, make_user: Callable[..., User]
) -> None:
    csm = make_user(Role.ONBOARDING_CSM, username="ito")
    body = _created(
        _post(
            admin,
            "/customers",
            {
                "name": "  Daiwa  ",
                "external_id": "D-4",
                "segment": "mid",
                "touch_model": "low",
                "employee_count": 120,
                "onboarding_owner": csm.pk,
            },
        )
    )
    customer = Customer.objects.get(pk=body["id"])
    assert (customer.name, customer.external_id, customer.segment) == ("Daiwa", "D-4", "mid")
    assert (customer.touch_model, customer.lifecycle_stage) == ("low", "onboarding")
    assert (customer.employee_count, customer.onboarding_owner_id) == (120, csm.pk)
    assert (body["mrr"], body["arr"], body["renewal_date"]) == ("0.00", "0.00", None)
    assert body["owners"]["current"]["username"] == "ito"


def test_an_empty_external_id_is_stored_as_none_so_many_customers_can_go_without(
    admin: Client,
) -> None:
    for name in ("One", "Two"):
        _created(_post(admin, "/customers", {"name": name, "external_id": ""}))
    assert list(Customer.objects.values_list("external_id", flat=True)) == [None, None]


def test_creating_a_customer_with_a_taken_external_id_is_a_400_naming_external_id(
    admin: Client, book: dict[str, Customer]
) -> None:
    response = _post(admin, "/customers", {"name": "Acme again", "external_id": "A-1"})
    assert response.status_code == 400
    assert _bad_fields(response) == {"external_id"}
    assert Customer.objects.filter(name="Acme again").count() == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "X", "touch_model": "medium"}, "touch_model"),
        ({"name": "X", "lifecycle_stage": "asleep"}, "lifecycle_stage"),
        ({"name": "X", "employee_count": -1}, "employee_count"),
        ({"name": "X", "employee_count": 10**20}, "employee_count"),
        ({"name": "X", "churn_date": "yesterday"}, "churn_date"),
        ({"name": "X", "segment": "s" * 101}, "segment"),
        ({"name": "X", "domain": "a\x00b"}, "domain"),
        ({"name": "X", "onboarding_owner": "sato"}, "onboarding_owner"),
        ({"name": "X", "stage": "adoption"}, "stage"),  # unknown field: a typo is not ignored
        ({"name": "   "}, "name"),
        ({"segment": "smb"}, "name"),
    ],
)
def test_creating_a_customer_with_a_bad_value_is_a_422_naming_the_field(
    admin: Client, body: dict[str, Any], field: str
) -> None:
    response = _post(admin, "/customers", body)
    assert response.status_code == 422
    assert _bad_fields(response) == {field}
    assert not Customer.objects.exists()


def test_creating_a_customer_with_an_unknown_owner_is_a_400_naming_the_owner(
    admin: Client,
) -> None:
    response = _post(admin, "/customers", {"name": "X", "adoption_owner": 987654})
    assert response.status_code == 400
    assert _bad_fields(response) == {"adoption_owner"}


@pytest.mark.parametrize("body", ["{not json", "[1, 2]", "", "null"])
def test_a_body_that_is_not_a_json_object_is_refused_without_a_500(
    admin: Client, body: str
) -> None:
    response = _post(admin, "/customers", body)
    assert response.status_code in (400, 422)
    assert not Customer.objects.exists()


def test_patching_a_customer_changes_only_the_fields_sent(
    admin: Client, book: dict[str, Customer]
) -> None:
    beta = book["beta"]
    body = _patch(
        admin, f"/customers/{beta.pk}", {"lifecycle_stage": "adoption", "onboarding_owner": None}
    )
    assert body.status_code == 200, body.content
    beta.refresh_from_db()
    assert (beta.lifecycle_stage, beta.onboarding_owner_id) == ("adoption", None)
    assert (beta.name, beta.external_id, beta.touch_model, beta.segment) == (
        "Beta",
        "B-2",
        "low",
        "smb",
    )
    assert body.json()["lifecycle_stage"] == "adoption"


def test_patching_a_customer_refuses_null_for_a_required_field_and_a_taken_external_id(
    admin: Client, book: dict[str, Customer]
) -> None:
    beta = book["beta"]
    response = _patch(admin, f"/customers/{beta.pk}", {"name": None})
    assert (response.status_code, _bad_fields(response)) == (422, {"name"})
    response = _patch(admin, f"/customers/{beta.pk}", {"external_id": "A-1", "segment": "x"})
    assert (response.status_code, _bad_fields(response)) == (400, {"external_id"})
    beta.refresh_from_db()
    assert (beta.external_id, beta.segment) == ("B-2", "smb")


# --- Contacts ------------------------------------------------------------------------------------


def test_contacts_can_be_added_listed_read_and_changed(
    admin: Client, book: dict[str, Customer]
) -> None:
    acme = book["acme"]
    body = _created(
        _post(
            admin,
            f"/customers/{acme.pk}/contacts",
            {
                "name": "Hanako Yamada",
                "email": "hanako@acme.example",
                "role": "champion",
                "language": "en",
                "started_on": "2025-01-10",
            },
        )
    )
    assert (body["customer"], body["role"], body["language"]) == (acme.pk, "champion", "en")
    _created(_post(admin, f"/customers/{acme.pk}/contacts", {"name": "Aiko"}))
    _created(_post(admin, f"/customers/{book['beta'].pk}/contacts", {"name": "Other"}))
    page = _get(admin, f"/customers/{acme.pk}/contacts")
    assert (page["count"], _names(page)) == (2, ["Aiko", "Hanako Yamada"])
    assert _get(admin, f"/contacts/{body['id']}")["email"] == "hanako@acme.example"
    changed = _patch(admin, f"/contacts/{body['id']}", {"job_title": "CIO", "ended_on": None})
    assert changed.status_code == 200
    contact = Contact.objects.get(pk=body["id"])
    assert (contact.job_title, contact.name, contact.role) == ("CIO", "Hanako Yamada", "champion")


def test_contact_rules_are_errors_naming_the_field(
    admin: Client, book: dict[str, Customer]
) -> None:
    url = f"/customers/{book['acme'].pk}/contacts"
    first = _created(_post(admin, url, {"name": "A", "email": "a@acme.example"}))
    for body, status, field in (
        ({"name": "B", "email": "A@ACME.example"}, 400, "email"),
        ({"name": "B", "email": "not an address"}, 400, "email"),
        ({"name": "B", "started_on": "2025-02-01", "ended_on": "2025-01-31"}, 400, "ended_on"),
        ({"name": "B", "role": "boss"}, 422, "role"),
        ({"name": "B", "language": "fr"}, 422, "language"),
    ):
        response = _post(admin, url, body)
        assert (response.status_code, _bad_fields(response)) == (status, {field}), body
    assert Contact.objects.count() == 1
    response = _patch(
        admin, f"/contacts/{first['id']}", {"ended_on": "2000-01-01", "started_on": "2001-01-01"}
    )
    assert (response.status_code, _bad_fields(response)) == (400, {"ended_on"})


def test_contact_languages_are_the_installation_languages() -> None:
    codes = {code for code, _name in django_settings.LANGUAGES}
    assert set(customers_api.Language.__args__) == codes  # type: ignore[attr-defined] # Literal


# --- Products and plans --------------------------------------------------------------------------


def test_products_and_plans_can_be_added_listed_and_changed(admin: Client) -> None:
    body = _created(_post(admin, "/products", {"code": "crm", "name": "CRM"}))
    assert (body["is_active"], body["plans"]) == (True, [])
    product_id = body["id"]
    pro = _created(
        _post(
            admin, f"/products/{product_id}/plans", {"code": "pro", "name": "Pro", "tier_rank": 2}
        )
    )
    _created(_post(admin, f"/products/{product_id}/plans", {"code": "basic", "name": "Basic"}))
    plans = _get(admin, f"/products/{product_id}/plans")
    assert [plan["code"] for plan in plans["items"]] == ["basic", "pro"]
    product = _get(admin, f"/products/{product_id}")
    assert [plan["code"] for plan in product["plans"]] == ["basic", "pro"]
    assert _patch(admin, f"/products/{product_id}", {"is_active": False}).status_code == 200
    assert _get(admin, "/products", active="false")["count"] == 1
    assert _get(admin, "/products", active="true")["count"] == 0
    response = _patch(admin, f"/plans/{pro['id']}", {"name": "Professional", "tier_rank": 3})
    assert response.status_code == 200
    plan = Plan.objects.get(pk=pro["id"])
    assert (plan.name, plan.tier_rank, plan.code) == ("Professional", 3, "pro")


def test_catalog_rules_are_errors_naming_the_field(admin: Client, plans: dict[str, Plan]) -> None:
    product = plans["pro"].product
    response = _post(admin, "/products", {"code": "crm", "name": "Another CRM"})
    assert (response.status_code, _bad_fields(response)) == (400, {"code"})
    response = _post(admin, f"/products/{product.pk}/plans", {"code": "pro", "name": "Pro 2"})
    assert (response.status_code, _bad_fields(response)) == (400, {"code"})
    response = _patch(admin, f"/plans/{plans['basic'].pk}", {"code": "pro"})
    assert (response.status_code, _bad_fields(response)) == (400, {"code"})
    response = _patch(admin, f"/plans/{plans['basic'].pk}", {"product": 424242})
    assert (response.status_code, _bad_fields(response)) == (400, {"product"})
    response = _post(
        admin, f"/products/{product.pk}/plans", {"code": "x", "name": "X", "tier_rank": -1}
    )
    assert (response.status_code, _bad_fields(response)) == (422, {"tier_rank"})
    assert Plan.objects.count() == 2


def test_a_plan_can_move_to_another_product(admin: Client, plans: dict[str, Plan]) -> None:
    other = Product.objects.create(code="bi", name="BI")
    response = _patch(admin, f"/plans/{plans['pro'].pk}", {"product": other.pk})
    assert (response.status_code, response.json()["product"]) == (200, other.pk)


# --- Subscriptions -------------------------------------------------------------------------------


def test_creating_a_subscription_answers_201_and_starts_its_history(
    admin: Client, book: dict[str, Customer], plans: dict[str, Plan]
) -> None:
    acme, basic = book["acme"], plans["basic"]
    body = _created(
        _post(
            admin,
            "/subscriptions",
            {
                "customer": acme.pk,
                "product": basic.product_id,
                "plan": basic.pk,
                "mrr": "1200.5",
                "quantity": 10,
                "currency": "USD",
                "start_date": "2026-01-01",
                "end_date": "2027-01-01",
                "external_id": "S-9",
            },
        )
    )
    assert (body["mrr"], body["quantity"], body["discount"]) == ("1200.50", "10.00", "0.0000")
    assert (body["plan_code"], body["product_code"], body["currency"]) == ("basic", "crm", "USD")
    subscription = Subscription.objects.get(pk=body["id"])
    assert subscription.mrr == Decimal("1200.50")
    change = SubscriptionChange.objects.get(subscription=subscription)
    assert (change.source, change.actor.username if change.actor else None) == ("api", "admin")


def test_subscription_currency_defaults_to_the_base_currency(
    admin: Client, book: dict[str, Customer], product: Product
) -> None:
    body = _created(
        _post(
            admin,
            "/subscriptions",
            {
                "customer": book["chiyo"].pk,
                "product": product.pk,
                "mrr": 10,
                "start_date": "2026-01-01",
            },
        )
    )
    assert body["currency"] == django_settings.KIZUNA_BASE_CURRENCY


@pytest.mark.parametrize(
    ("change", "status", "field"),
    [
        ({"customer": 999999}, 400, "customer"),
        ({"product": 999999}, 400, "product"),
        ({"plan": 999999}, 400, "plan"),
        ({"end_date": "2025-12-31"}, 400, "end_date"),
        ({"external_id": "TAKEN"}, 400, "external_id"),
        ({"start_date": "2024-01-01"}, 400, "start_date"),  # Acme's CRM already starts then
        ({"mrr": "-1"}, 422, "mrr"),
        ({"mrr": "1.005"}, 422, "mrr"),
        ({"mrr": "lots"}, 422, "mrr"),
        ({"mrr": "1e20"}, 422, "mrr"),
        ({"discount": "1.5"}, 422, "discount"),
        ({"currency": "yen"}, 422, "currency"),
        ({"status": "frozen"}, 422, "status"),
        ({"bill_period_months": 0}, 422, "bill_period_months"),
        ({"start_date": None}, 422, "start_date"),
    ],
)
def test_subscription_rules_are_errors_naming_the_field(
    admin: Client,
    book: dict[str, Customer],
    plans: dict[str, Plan],
    change: dict[str, Any],
    status: int,
    field: str,
) -> None:
    Subscription.objects.filter(customer=book["beta"]).update(external_id="TAKEN")
    before = Subscription.objects.count()
    body = {
        "customer": book["acme"].pk,
        "product": plans["basic"].product_id,
        "mrr": "100",
        "start_date": "2026-01-01",
        **change,
    }
    response = _post(admin, "/subscriptions", body)
    assert (response.status_code, _bad_fields(response)) == (status, {field})
    assert Subscription.objects.count() == before


def test_a_plan_of_another_product_is_refused_naming_plan(
    admin: Client, book: dict[str, Customer], plans: dict[str, Plan]
) -> None:
    other = Product.objects.create(code="erp", name="ERP")
    body = {
        "customer": book["acme"].pk,
        "product": other.pk,
        "plan": plans["pro"].pk,
        "mrr": "100",
        "start_date": "2026-01-01",
    }
    response = _post(admin, "/subscriptions", body)
    assert (response.status_code, _bad_fields(response)) == (400, {"plan"})
    assert response.json()["detail"]["plan"] == ["This plan belongs to another product."]


def test_subscription_list_filters_by_customer_product_status_and_day_in_service(
    admin: Client, book: dict[str, Customer], product: Product
) -> None:
    def ids(**params: Any) -> set[int]:
        return {item["id"] for item in _get(admin, "/subscriptions", **params)["items"]}

    everything = _get(admin, "/subscriptions")
    assert everything["count"] == 5
    acme = set(Subscription.objects.filter(customer=book["acme"]).values_list("id", flat=True))
    assert ids(customer=book["acme"].pk) == acme
    in_service = ids(active_on=AS_OF)
    expected = {
        (s.customer.name, str(s.mrr))
        for s in Subscription.objects.filter(pk__in=in_service).select_related("customer")
    }
    # Chiyo's ended on 2025-06-01 (end is the first day without service); Acme's BI 999 not begun.
    assert expected == {("Acme", "1000.00"), ("Acme", "500.50"), ("Beta", "2000.00")}
    assert len(ids(product=product.pk)) == 3
    assert ids(product=product.pk, active_on="2025-05-31") == set(
        Subscription.objects.filter(product=product).values_list("id", flat=True)
    )
    Subscription.objects.filter(customer=book["chiyo"]).update(status="canceled")
    assert len(ids(status="canceled")) == 1
    response = admin.get(API + "/subscriptions", {"active_on": "soon"})
    assert (response.status_code, _bad_fields(response)) == (422, {"active_on"})


def test_patching_a_subscription_records_what_changed_who_and_through_which_door(
    admin: Client,
    book: dict[str, Customer],
    plans: dict[str, Plan],
    django_capture_on_commit_callbacks: Any,
) -> None:
    subscription = _subscribe(
        book["beta"], plans["basic"].product, "2000", "2025-07-01", plan=plans["basic"]
    )
    url = f"/subscriptions/{subscription.pk}"
    with django_capture_on_commit_callbacks(execute=True):
        response = _patch(
            admin, url, {"mrr": "2500", "plan": plans["pro"].pk, "end_date": "2026-05-01"}
        )
    assert response.status_code == 200, response.content
    assert (response.json()["mrr"], response.json()["plan_code"]) == ("2500.00", "pro")
    history = _get(admin, f"{url}/history")
    assert history["count"] == 1
    change = history["items"][0]
    assert (change["actor"], change["source"]) == ("admin", "api")
    assert change["changes"] == {
        "mrr": ["2000.00", "2500.00"],
        "plan_id": [plans["basic"].pk, plans["pro"].pk],
        "end_date": [None, "2026-05-01"],
    }
    entry = TimelineEntry.objects.get(customer=book["beta"], kind="subscription.changed")
    assert entry.payload["subscription_id"] == subscription.pk
    # A PATCH that changes nothing writes no history.
    assert _patch(admin, url, {"mrr": "2500.00"}).status_code == 200
    assert _get(admin, f"{url}/history")["count"] == 1


def test_patching_a_subscription_checks_dates_against_the_stored_values(
    admin: Client, book: dict[str, Customer], product: Product
) -> None:
    subscription = Subscription.objects.get(customer=book["beta"])
    response = _patch(admin, f"/subscriptions/{subscription.pk}", {"end_date": "2025-04-30"})
    assert (response.status_code, _bad_fields(response)) == (400, {"end_date"})
    response = _patch(admin, f"/subscriptions/{subscription.pk}", {"status": "paused", "mrr": None})
    assert (response.status_code, _bad_fields(response)) == (422, {"mrr"})
    subscription.refresh_from_db()
    assert (subscription.end_date, subscription.status) == (None, "active")
    assert not SubscriptionChange.objects.exists()


def test_reading_one_subscription(admin: Client, book: dict[str, Customer]) -> None:
    subscription = Subscription.objects.get(customer=book["beta"])
    body = _get(admin, f"/subscriptions/{subscription.pk}")
    assert (body["customer"], body["mrr"], body["start_date"], body["end_date"]) == (
        book["beta"].pk,
        "2000.00",
        "2025-05-01",
        None,
    )


# --- Handoffs and the timeline -------------------------------------------------------------------


def test_a_sales_handoff_is_recorded_listed_and_noted_on_the_timeline(
    admin: Client, book: dict[str, Customer], django_capture_on_commit_callbacks: Any
) -> None:
    acme = book["acme"]
    url = f"/customers/{acme.pk}/handoffs"
    with django_capture_on_commit_callbacks(execute=True):
        body = _created(
            _post(
                admin,
                url,
                {
                    "desired_outcomes": "Halve churn",
                    "risks": "New admin",
                    "handed_off_on": "2025-04-01",
                },
            )
        )
    assert (body["handed_off_by"], body["handed_off_on"]) == ("admin", "2025-04-01")
    page = _get(admin, url)
    assert [item["desired_outcomes"] for item in page["items"]] == ["Halve churn"]
    entry = TimelineEntry.objects.get(customer=acme, kind="handoff.recorded")
    assert entry.payload == {"handoff_id": body["id"]}


def test_an_empty_handoff_is_refused(admin: Client, book: dict[str, Customer]) -> None:
    response = _post(admin, f"/customers/{book['acme'].pk}/handoffs", {"pains": "  "})
    assert response.status_code == 400
    assert response.json()["detail"] == {"__all__": ["Write at least one of the handoff's fields."]}
    assert not SalesHandoff.objects.exists()


def test_timeline_entries_are_added_by_hand_and_listed_newest_first_by_kind(
    admin: Client, book: dict[str, Customer]
) -> None:
    acme = book["acme"]
    url = f"/customers/{acme.pk}/timeline"
    note = _created(
        _post(
            admin,
            url,
            {"kind": "note", "title": "Called back", "occurred_at": "2025-05-02T10:00:00+09:00"},
        )
    )
    assert (note["actor"], note["kind_label"]) == ("admin", "Note")
    # Without an offset, a time is the installation's local time (Asia/Tokyo).
    meeting = _created(
        _post(
            admin,
            url,
            {
                "kind": "meeting",
                "title": "Kickoff",
                "body": "Agenda",
                "occurred_at": "2025-05-03T09:30",
            },
        )
    )
    stored = TimelineEntry.objects.get(pk=meeting["id"]).occurred_at
    assert stored == datetime(2025, 5, 3, 9, 30, tzinfo=ZoneInfo(django_settings.TIME_ZONE))
    _created(
        _post(
            admin, url, {"kind": "call", "title": "Check-in", "occurred_at": "2025-05-01T09:00:00Z"}
        )
    )
    page = _get(admin, url)
    assert [item["title"] for item in page["items"]] == ["Kickoff", "Called back", "Check-in"]
    only = _get(admin, url, kind=["note", "call"])
    assert [item["title"] for item in only["items"]] == ["Called back", "Check-in"]
    assert _get(admin, url, limit=1, offset=1)["items"][0]["title"] == "Called back"


def test_only_manual_kinds_can_be_posted_to_the_timeline(
    admin: Client, book: dict[str, Customer]
) -> None:
    url = f"/customers/{book['acme'].pk}/timeline"
    for body, field in (
        ({"kind": "subscription.changed", "title": "Forged"}, "kind"),
        ({"kind": "note", "title": ""}, "title"),
        ({"kind": "note", "title": "x" * 201}, "title"),
        ({"kind": "note", "title": "Old", "occurred_at": "0001-01-01T00:00:00"}, "occurred_at"),
    ):
        response = _post(admin, url, body)
        assert (response.status_code, _bad_fields(response)) == (422, {field}), body
    assert not TimelineEntry.objects.exists()


def test_the_api_accepts_exactly_the_manual_timeline_kinds() -> None:
    assert set(customers_api.ManualKind.__args__) == set(MANUAL_TIMELINE_KINDS)  # type: ignore[attr-defined] # Literal


# --- Access and errors ---------------------------------------------------------------------------


def _write_calls(ids: dict[str, int]) -> list[tuple[str, str, dict[str, Any]]]:
    c, s, p = ids["customer"], ids["subscription"], ids["product"]
    return [
        ("post", "/customers", {"name": "X"}),
        ("patch", f"/customers/{c}", {"name": "X"}),
        ("post", f"/customers/{c}/contacts", {"name": "X"}),
        ("patch", f"/contacts/{ids['contact']}", {"name": "X"}),
        ("post", "/products", {"code": "x", "name": "X"}),
        ("patch", f"/products/{p}", {"name": "X"}),
        ("post", f"/products/{p}/plans", {"code": "x", "name": "X"}),
        ("patch", f"/plans/{ids['plan']}", {"name": "X"}),
        (
            "post",
            "/subscriptions",
            {"customer": c, "product": p, "mrr": "1", "start_date": "2030-01-01"},
        ),
        ("patch", f"/subscriptions/{s}", {"mrr": "1"}),
        ("post", f"/customers/{c}/handoffs", {"pains": "X"}),
        ("post", f"/customers/{c}/timeline", {"kind": "note", "title": "X"}),
    ]


@pytest.fixture
def ids(book: dict[str, Customer], plans: dict[str, Plan]) -> dict[str, int]:
    contact = Contact.objects.create(customer=book["acme"], name="C")
    return {
        "customer": book["acme"].pk,
        "contact": contact.pk,
        "product": plans["pro"].product_id,
        "plan": plans["pro"].pk,
        "subscription": Subscription.objects.filter(customer=book["acme"]).first().pk,  # type: ignore[union-attr] # made by the fixture
    }


def _snapshot() -> list[int]:
    return [
        model.objects.count()
        for model in (Customer, Contact, Product, Plan, Subscription, SalesHandoff, TimelineEntry)
    ]


def test_a_viewer_reads_everything_but_every_write_is_403_and_changes_nothing(
    as_role: Callable[[str], Client], ids: dict[str, int]
) -> None:
    viewer = as_role(Role.VIEWER)
    before = _snapshot()
    for method, path, body in _write_calls(ids):
        response = _send(viewer, method, path, body)
        assert response.status_code == 403, (method, path)
        assert "detail" in response.json()
    assert _snapshot() == before
    assert Customer.objects.get(pk=ids["customer"]).name == "Acme"
    for path in _read_paths(ids):
        assert viewer.get(API + path).status_code == 200, path


def test_a_csm_edits_customers_and_the_timeline_but_not_the_catalog(
    as_role: Callable[[str], Client], ids: dict[str, int]
) -> None:
    csm = as_role(Role.ADOPTION_CSM)
    for method, path, body in _write_calls(ids):
        catalog = path.startswith(("/products", "/plans"))
        response = _send(csm, method, path, body)
        assert response.status_code == (403 if catalog else 201 if method == "post" else 200), (
            method,
            path,
            response.content,
        )


def _read_paths(ids: dict[str, int]) -> list[str]:
    c, s, p = ids["customer"], ids["subscription"], ids["product"]
    return [
        "/customers",
        f"/customers/{c}",
        "/customers/by-external-id/A-1",
        f"/customers/{c}/contacts",
        f"/contacts/{ids['contact']}",
        "/products",
        f"/products/{p}",
        f"/products/{p}/plans",
        "/subscriptions",
        f"/subscriptions/{s}",
        f"/subscriptions/{s}/history",
        f"/customers/{c}/handoffs",
        f"/customers/{c}/timeline",
    ]


def test_unknown_ids_answer_404_in_json(admin: Client, ids: dict[str, int]) -> None:
    missing = dict.fromkeys(ids, 987654)
    paths = [path for path in _read_paths(missing) if "987654" in path]
    assert len(paths) == 9
    for path in paths:
        response = admin.get(API + path)
        assert (response.status_code, response.json()) == (404, {"detail": "Not Found"}), path
    for method, path, body in _write_calls(missing):
        if "987654" in path:
            response = _send(admin, method, path, body)
            assert response.status_code == 404, (method, path)
    assert admin.get(API + f"/customers/{2**70}").status_code == 404
    response = admin.get(API + "/customers/acme")
    assert (response.status_code, _bad_fields(response)) == (422, {"customer_id"})


def test_without_credentials_every_endpoint_answers_401(
    client: Client, ids: dict[str, int]
) -> None:
    for path in _read_paths(ids):
        assert client.get(API + path).status_code == 401, path
    for method, path, body in _write_calls(ids):
        assert _send(client, method, path, body).status_code == 401, path


def test_a_signed_in_session_uses_the_api_too(
    admin_client: Client, book: dict[str, Customer]
) -> None:
    assert admin_client.get(API + "/customers")["Content-Type"].startswith("application/json")
    assert _get(admin_client, "/customers")["count"] == 3


# --- OpenAPI and docs ----------------------------------------------------------------------------


def _routes(router: Any) -> set[tuple[str, str]]:
    """(method, path) of every operation a router declares, paths as OpenAPI writes them."""
    routes = set()
    for path, path_view in router.path_operations.items():
        openapi_path = re.sub(r"\{\w+:(\w+)\}", r"{\1}", path)
        for operation in path_view.operations:
            routes.update((method.lower(), openapi_path) for method in operation.methods)
    return routes


def _api_routes() -> set[tuple[str, str]]:
    # The API object that serves the document (config wires every context's router into it).
    api = resolve(API + "/openapi.json").func.keywords["api"]  # type: ignore[attr-defined]
    routes = set()
    for prefix, router in api._routers:  # every router mounted on the API
        base = "/" + prefix.strip("/") if prefix.strip("/") else ""
        for method, path in _routes(router):
            routes.add((method, f"{API}{base}{'/' + path.lstrip('/') if path else ''}"))
    return routes


EXPECTED_CUSTOMER_ROUTES = {
    ("get", "/customers"),
    ("post", "/customers"),
    ("get", "/customers/by-external-id/{external_id}"),
    ("get", "/customers/{customer_id}"),
    ("patch", "/customers/{customer_id}"),
    ("get", "/customers/{customer_id}/contacts"),
    ("post", "/customers/{customer_id}/contacts"),
    ("get", "/contacts/{contact_id}"),
    ("patch", "/contacts/{contact_id}"),
    ("get", "/products"),
    ("post", "/products"),
    ("get", "/products/{product_id}"),
    ("patch", "/products/{product_id}"),
    ("get", "/products/{product_id}/plans"),
    ("post", "/products/{product_id}/plans"),
    ("patch", "/plans/{plan_id}"),
    ("get", "/subscriptions"),
    ("post", "/subscriptions"),
    ("get", "/subscriptions/{subscription_id}"),
    ("patch", "/subscriptions/{subscription_id}"),
    ("get", "/subscriptions/{subscription_id}/history"),
    ("get", "/customers/{customer_id}/handoffs"),
    ("post", "/customers/{customer_id}/handoffs"),
    ("get", "/customers/{customer_id}/timeline"),
    ("post", "/customers/{customer_id}/timeline"),
}


def test_the_customer_router_offers_every_endpoint_of_the_record() -> None:
    assert {(m, "/" + p.lstrip("/")) for m, p in _routes(customers_api.router)} == (
        EXPECTED_CUSTOMER_ROUTES
    )


def test_the_openapi_document_lists_every_endpoint_of_every_router(client: Client) -> None:
    response = client.get(API + "/openapi.json")
    assert response.status_code == 200
    document = response.json()
    documented = {
        (method, path) for path, operations in document["paths"].items() for method in operations
    }
    routes = _api_routes()
    assert {(m, f"{API}{p}") for m, p in EXPECTED_CUSTOMER_ROUTES} <= routes
    assert routes - documented == set(), "endpoints missing from the OpenAPI document"
    assert documented - routes == set()
    assert document["components"]["securitySchemes"].keys() >= {"ApiTokenAuth"}


def test_the_docs_page_renders_for_a_signed_in_user(admin_client: Client) -> None:
    response = admin_client.get(API + "/docs")
    assert response.status_code == 200
    assert "/api/v1/openapi.json" in response.content.decode()


def test_the_docs_page_loads_swagger_from_our_own_static_files_so_the_csp_allows_it(
    admin_client: Client,
) -> None:
    # Needs "ninja" in INSTALLED_APPS: otherwise django-ninja links a CDN and an inline script,
    # which the Content-Security-Policy blocks and the page stays blank.
    html = admin_client.get(API + "/docs").content.decode()
    assert "/static/ninja/swagger-ui-bundle.js" in html
    assert "cdn." not in html


def test_every_customer_endpoint_is_in_the_api_guide() -> None:
    guide = (ROOT / "docs" / "api.md").read_text()
    for method, path in sorted(EXPECTED_CUSTOMER_ROUTES):
        assert f"{method.upper()} /api/v1{path}" in guide, f"{method.upper()} {path} undocumented"


# --- Fuzz ----------------------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=8,
)
CUSTOMER_FIELDS = sorted(customers_api.CustomerIn.model_fields)
CUSTOMER_BODIES = st.dictionaries(
    st.sampled_from([*CUSTOMER_FIELDS, "unexpected"]), JSON_VALUES, max_size=6
) | st.fixed_dictionaries(
    {"name": st.text(max_size=250)},
    optional={
        "external_id": st.text(max_size=120) | st.none(),
        "employee_count": st.integers() | st.none(),
        "lifecycle_stage": st.sampled_from(["onboarding", "adoption", "x", ""]),
        "touch_model": st.text(max_size=6),
        "churn_date": st.dates().map(str) | st.text(max_size=12),
        "onboarding_owner": st.integers(),
    },
)


@pytest.fixture
def fuzz_client(admin_user: User) -> Client:
    return _token_client(admin_user)


@hypothesis_settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=CUSTOMER_BODIES)
def test_random_json_posted_as_a_customer_never_gets_a_500(
    fuzz_client: Client, body: dict[str, Any]
) -> None:
    response = _post(fuzz_client, "/customers", body)
    assert response.status_code in (201, 400, 422), (body, response.content)
    if response.status_code == 400:
        assert isinstance(response.json()["detail"], dict)
    if response.status_code == 201:
        Customer.objects.filter(pk=response.json()["id"]).delete()


def _random_bodies(schema: Any) -> st.SearchStrategy[dict[str, Any]]:
    fields = sorted(schema.model_fields)
    return st.dictionaries(st.sampled_from([*fields, "unexpected"]), JSON_VALUES, max_size=8)


@hypothesis_settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    subscription=_random_bodies(customers_api.SubscriptionIn),
    patch=_random_bodies(customers_api.SubscriptionPatch),
    customer=_random_bodies(customers_api.CustomerPatch),
)
def test_random_json_sent_to_subscriptions_and_customer_changes_never_gets_a_500(
    fuzz_client: Client,
    subscription: dict[str, Any],
    patch: dict[str, Any],
    customer: dict[str, Any],
) -> None:
    acme = Customer.objects.get_or_create(name="Fuzz", defaults={"external_id": "F-1"})[0]
    product = Product.objects.get_or_create(code="fuzz", defaults={"name": "Fuzz"})[0]
    stored = Subscription.objects.get_or_create(
        customer=acme, product=product, start_date=date(2025, 1, 1), defaults={"mrr": 1}
    )[0]
    subscription = {"customer": acme.pk, "product": product.pk, **subscription}
    for method, path, body in (
        ("post", "/subscriptions", subscription),
        ("patch", f"/subscriptions/{stored.pk}", patch),
        ("patch", f"/customers/{acme.pk}", customer),
    ):
        response = _send(fuzz_client, method, path, body)
        assert response.status_code in (200, 201, 400, 422), (path, body, response.content)
