"""The import service: formats, mapping, validation, idempotent upsert, all-or-nothing."""

import io
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from openpyxl import Workbook

from kizuna.customers.importing import ImportReport, import_file, parse_mapping, preview_file
from kizuna.customers.models import (
    Contact,
    Customer,
    Plan,
    Product,
    Subscription,
    SubscriptionChange,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _english(settings: Any) -> None:
    """Messages are asserted in English (the default language is Japanese)."""
    settings.LANGUAGE_CODE = "en"


STANDARD = (
    "account_id,product,start_date,end_date,mrr,quantity,units,bill_period_months,discount\n"
    'A-1,Analytics,2024-01-01,2025-01-01,"10,000",10,seats,12,10%\n'
    "A-1,Support,2024/02/01,,500,1,,1,0\n"
    "A-2,Analytics,2024-03-15,,2500.5,5,seats,1,0.05\n"
)


def _import(text: str, kind: str = "subscriptions", **kwargs: object) -> ImportReport:
    return import_file(kind=kind, content=text.encode(), filename="file.csv", **kwargs)  # type: ignore[arg-type]


def test_standard_subscription_columns_import_without_a_mapping_and_create_customers_and_products() -> (
    None
):
    report = _import(STANDARD)

    assert report.ok, report.errors
    assert (report.rows, report.created, report.updated, report.unchanged) == (3, 3, 0, 0)
    assert (report.customers_created, report.products_created) == (2, 2)
    a1 = Customer.objects.get(external_id="A-1")
    assert a1.name == "A-1"
    assert a1.first_start_date == date(2024, 1, 1)
    assert Customer.objects.get(external_id="A-2").first_start_date == date(2024, 3, 15)
    assert sorted(Product.objects.values_list("code", flat=True)) == ["Analytics", "Support"]
    first = Subscription.objects.get(customer=a1, product__code="Analytics")
    assert first.mrr == Decimal("10000.00")
    assert first.quantity == Decimal(10)
    assert first.unit == "seats"
    assert first.bill_period_months == 12
    assert first.discount == Decimal("0.1000")
    assert first.end_date == date(2025, 1, 1)
    assert first.currency == "JPY"
    support = Subscription.objects.get(customer=a1, product__code="Support")
    assert support.start_date == date(2024, 2, 1)
    assert support.end_date is None
    assert Subscription.objects.get(customer__external_id="A-2").mrr == Decimal("2500.50")


def test_importing_the_same_file_twice_changes_nothing() -> None:
    assert _import(STANDARD).ok
    before = list(Subscription.objects.values().order_by("id"))

    report = _import(STANDARD)

    assert (report.created, report.updated, report.unchanged) == (0, 0, 3)
    assert (report.customers_created, report.products_created) == (0, 0)
    assert list(Subscription.objects.values().order_by("id")) == before
    assert Customer.objects.count() == 2
    assert SubscriptionChange.objects.count() == 0


def test_a_changed_row_is_updated_and_its_change_recorded() -> None:
    assert _import(STANDARD).ok
    changed = STANDARD.replace(
        "A-2,Analytics,2024-03-15,,2500.5,5", "A-2,Analytics,2024-03-15,2024-12-01,3000,5"
    )

    report = _import(changed)

    assert (report.created, report.updated, report.unchanged) == (0, 1, 2)
    subscription = Subscription.objects.get(customer__external_id="A-2")
    assert subscription.mrr == Decimal("3000.00")
    assert subscription.end_date == date(2024, 12, 1)
    change = SubscriptionChange.objects.get()
    assert change.subscription_id == subscription.pk
    assert change.source == "import"
    assert change.changes == {"mrr": ["2500.50", "3000.00"], "end_date": [None, "2024-12-01"]}


def test_a_file_with_one_bad_row_imports_nothing_and_names_row_column_and_reason() -> None:
    bad = (
        STANDARD
        + "A-3,Analytics,2024-13-01,,100,1,,1,0\nA-4,Analytics,2024-05-01,2024-04-01,100,1,,1,0\n"
    )

    report = _import(bad)

    assert not report.ok
    assert [(e.row, e.column, e.value) for e in report.errors] == [
        (5, "start_date", "2024-13-01"),
        (6, "end_date", "2024-04-01"),
    ]
    assert "date" in report.errors[0].message
    assert "before" in report.errors[1].message
    assert Subscription.objects.count() == 0
    assert Customer.objects.count() == 0
    assert Product.objects.count() == 0


def test_bad_numbers_discounts_and_missing_values_are_reported_per_cell() -> None:
    text = (
        "account_id,product,start_date,mrr,discount,bill_period_months\n"
        "A-1,X,2024-01-01,abc,0.1,1\n"
        "A-1,Y,2024-01-01,-5,150%,1\n"
        ",Z,,100,0,0\n"
    )
    report = _import(text)

    assert [(e.row, e.column) for e in report.errors] == [
        (2, "mrr"),
        (3, "mrr"),
        (3, "discount"),
        (4, "start_date"),
        (4, "bill_period_months"),
        (4, "account_id"),
    ]


def test_a_missing_required_column_rejects_the_file() -> None:
    report = _import("account_id,product,start_date\nA-1,X,2024-01-01\n")

    assert not report.ok
    assert [(e.row, e.column) for e in report.errors] == [(None, "mrr")]


def test_the_same_subscription_twice_in_a_file_is_an_error_naming_the_first_row() -> None:
    text = "account_id,product,start_date,mrr\nA-1,X,2024-01-01,1\nA-1,x,2024-01-01,2\n"

    report = _import(text)

    assert [(e.row, e.column) for e in report.errors] == [(3, "start_date")]
    assert "Row 2" in report.errors[0].message


def test_the_same_subscription_external_id_twice_in_a_file_names_the_first_row() -> None:
    text = (
        "external_id,account_id,product,start_date,mrr\n"
        "S-1,A-1,X,2024-01-01,1\n"
        "S-1,A-1,X,2024-02-01,2\n"
    )

    report = _import(text)

    assert [(e.row, e.column) for e in report.errors] == [(3, "external_id")]
    assert "Row 2" in report.errors[0].message
    assert not Subscription.objects.exists()


def test_the_same_contact_email_twice_for_a_customer_names_the_first_row() -> None:
    _import(STANDARD)
    text = (
        "account_id,name,email\n"
        "A-1,Sato,sato@example.com\n"
        "A-2,Sato,sato@example.com\n"
        "A-1,Suzuki,SATO@example.com\n"
    )

    report = _import(text, kind="contacts")

    assert [(e.row, e.column) for e in report.errors] == [(4, "email")]
    assert "Row 2" in report.errors[0].message
    assert not Contact.objects.exists()


def test_an_explicit_mapping_names_the_fields_of_other_columns() -> None:
    text = "Company,Item,From,Monthly,Notes\nAcme,CRM,2024-04-01,1200,keep\n"
    mapping = parse_mapping(
        ["Company=customer_name", "Item=product", "From=start_date", "Monthly=mrr", "Notes="]
    )

    report = _import(text, mapping=mapping)

    assert report.ok, report.errors
    assert report.ignored_columns == ("Notes",)
    subscription = Subscription.objects.select_related("customer", "product").get()
    assert subscription.customer.name == "Acme"
    assert subscription.customer.external_id is None
    assert subscription.product.code == "CRM"
    assert subscription.mrr == Decimal(1200)
    # Matched by name the second time: nothing new.
    assert _import(text, mapping=mapping).unchanged == 1


def test_a_mapping_to_an_unknown_field_or_column_is_rejected() -> None:
    report = _import(STANDARD, mapping={"account_id": "acount", "Nope": "mrr"})

    assert [(e.row, e.column) for e in report.errors] == [(1, "account_id"), (1, "Nope")]


def test_japanese_headers_in_a_shift_jis_csv_are_recognised() -> None:
    text = '顧客ID,顧客名,製品,プラン,開始日,終了日,月額,数量\nC-9,株式会社テスト,分析,スタンダード,2024/04/01,,"1,500",3\n'

    report = import_file(kind="subscriptions", content=text.encode("cp932"), filename="sjis.csv")

    assert report.ok, report.errors
    subscription = Subscription.objects.select_related("customer", "plan").get()
    assert subscription.customer.name == "株式会社テスト"
    assert subscription.customer.external_id == "C-9"
    assert subscription.plan is not None
    assert subscription.plan.name == "スタンダード"
    assert subscription.mrr == Decimal(1500)


def test_a_utf8_csv_with_a_byte_order_mark_is_read() -> None:
    content = "\ufeff" + STANDARD
    report = import_file(kind="subscriptions", content=content.encode("utf-8"), filename="bom.csv")

    assert report.ok, report.errors
    assert report.created == 3


def test_an_xlsx_workbook_is_imported_with_native_dates_and_numbers() -> None:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["Account ID", "Product", "Start Date", "End Date", "MRR", "Quantity"])
    sheet.append([1001, "Analytics", date(2024, 1, 1), None, 1200.5, 3])
    sheet.append([1002, "Analytics", "2024/02/01", date(2025, 2, 1), 800, 1])
    buffer = io.BytesIO()
    workbook.save(buffer)

    report = import_file(kind="subscriptions", content=buffer.getvalue(), filename="subs.xlsx")

    assert report.ok, report.errors
    assert report.created == 2
    first = Subscription.objects.get(customer__external_id="1001")
    assert (first.start_date, first.end_date, first.mrr, first.quantity) == (
        date(2024, 1, 1), None, Decimal("1200.50"), Decimal(3),
    )  # fmt: skip
    assert Subscription.objects.get(customer__external_id="1002").end_date == date(2025, 2, 1)


def test_an_unreadable_file_is_rejected_with_a_file_level_error() -> None:
    report = import_file(kind="subscriptions", content=b"PK\x03\x04broken", filename="x.xlsx")

    assert not report.ok
    assert report.errors[0].row is None


def test_subscriptions_with_external_ids_upsert_by_external_id() -> None:
    text = "external_id,account_id,product,plan,start_date,mrr,status,currency\nS-1,A-1,CRM,Pro,2024-01-01,100,active,usd\n"
    assert _import(text).ok
    moved = text.replace("2024-01-01,100,active", "2024-02-01,150,canceled")

    report = _import(moved)

    assert (report.created, report.updated) == (0, 1)
    subscription = Subscription.objects.get(external_id="S-1")
    assert (subscription.start_date, subscription.mrr, subscription.status, subscription.currency) == (
        date(2024, 2, 1), Decimal(150), "canceled", "USD",
    )  # fmt: skip
    assert Plan.objects.get().product.code == "CRM"
    assert SubscriptionChange.objects.get().changes == {
        "start_date": ["2024-01-01", "2024-02-01"],
        "mrr": ["100.00", "150.00"],
        "status": ["active", "canceled"],
    }
    # The first start date is only ever lowered.
    assert Customer.objects.get().first_start_date == date(2024, 1, 1)


def test_customers_import_upserts_by_external_id_and_counts_unchanged_rows() -> None:
    text = "external_id,name,segment,touch_model,employees\nA-1,Acme,Enterprise,High touch,1200\nA-2,Beta,SMB,tech,\n"
    assert _import(text, kind="customers").created == 2

    again = _import(text.replace("Beta,SMB", "Beta KK,SMB"), kind="customers")

    assert (again.created, again.updated, again.unchanged) == (0, 1, 1)
    acme = Customer.objects.get(external_id="A-1")
    assert (acme.segment, acme.touch_model, acme.employee_count) == ("Enterprise", "high", 1200)
    assert Customer.objects.get(external_id="A-2").name == "Beta KK"


def test_customers_without_an_external_id_column_are_matched_by_name() -> None:
    Customer.objects.create(name="Acme", segment="SMB")

    report = _import("顧客名,セグメント\nAcme,Enterprise\nNew Co,SMB\n", kind="customers")

    assert (report.created, report.updated) == (1, 1)
    assert Customer.objects.get(name="Acme").segment == "Enterprise"


def test_contacts_upsert_by_customer_and_email() -> None:
    Customer.objects.create(name="Acme", external_id="A-1")
    text = "account_id,name,email,role,language\nA-1,Sato Hanako,hanako@acme.example,champion,ja\n"
    assert _import(text, kind="contacts").created == 1

    report = _import(
        text.replace("Sato Hanako,hanako@acme.example", "Sato Hanako,HANAKO@acme.example"),
        kind="contacts",
    )

    assert (report.created, report.updated) == (0, 1)
    contact = Contact.objects.get()
    assert contact.email == "HANAKO@acme.example"
    assert contact.role == "champion"


def test_a_contact_with_a_bad_email_is_rejected() -> None:
    report = _import("account_id,name,email\nA-1,X,not-an-email\n", kind="contacts")

    assert [(e.row, e.column) for e in report.errors] == [(2, "email")]
    assert Customer.objects.count() == 0


def test_progress_is_reported_up_to_the_total() -> None:
    calls: list[tuple[int, int]] = []

    _import(STANDARD, progress=lambda done, total: calls.append((done, total)))

    assert calls[-1] == (6, 6)


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="Unknown import kind"):
        _import(STANDARD, kind="invoices")


def test_preview_suggests_fields_for_known_headers() -> None:
    preview = preview_file(kind="subscriptions", content=STANDARD.encode(), filename="x.csv")

    assert preview.suggested["account_id"] == "account_id"
    assert preview.suggested["units"] == "units"
    assert preview.row_count == 3
    assert preview.rows[0][:3] == ("A-1", "Analytics", "2024-01-01")


def test_a_subscription_moved_to_a_new_customer_and_plan_records_both_ids() -> None:
    text = "external_id,account_id,product,plan,start_date,mrr\nS-1,A-1,CRM,Pro,2024-01-01,100\n"
    assert _import(text).ok
    old_customer = Customer.objects.get(external_id="A-1")
    old_plan = Plan.objects.get()

    report = _import(text.replace("A-1,CRM,Pro", "A-9,CRM,Enterprise"))

    assert (report.updated, report.customers_created, report.plans_created) == (1, 1, 1)
    subscription = Subscription.objects.select_related("customer", "plan").get()
    assert subscription.customer.external_id == "A-9"
    assert subscription.plan is not None
    assert subscription.plan.name == "Enterprise"
    assert SubscriptionChange.objects.get().changes == {
        "customer": [old_customer.pk, subscription.customer.pk],
        "plan": [old_plan.pk, subscription.plan.pk],
    }


def test_contacts_without_email_or_external_id_cannot_be_matched_and_are_rejected() -> None:
    report = _import("account_id,name\nA-1,Sato\n", kind="contacts")

    assert [(e.row, e.column) for e in report.errors] == [(2, "email")]
