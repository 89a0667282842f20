"""Import pages: upload, preview with column mapping, confirm, report; only for importers."""

from collections.abc import Callable
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from kizuna.core.models import User
from kizuna.core.roles import Role
from kizuna.customers.models import Customer, ImportJob, ImportStatus, Subscription

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _english(settings: Any) -> None:
    """Messages are asserted in English (the default language is Japanese)."""
    settings.LANGUAGE_CODE = "en"


CSV = b"Company,Item,Since,Monthly,Notes\nAcme,CRM,2024-04-01,1200,x\nBeta,CRM,2024-05-01,800,y\n"


def _client(make_user: Callable[..., User], role: str) -> Client:
    client = Client()
    client.force_login(make_user(role))
    return client


def _upload(client: Client, content: bytes = CSV, kind: str = "subscriptions") -> ImportJob:
    response = client.post(
        reverse("customers:import-upload"),
        {"kind": kind, "file": SimpleUploadedFile("subs.csv", content, content_type="text/csv")},
    )
    assert response.status_code == 302, response.content.decode()
    job = ImportJob.objects.get()
    assert response["Location"] == reverse("customers:import-preview", args=[job.pk])
    return job


def test_uploading_keeps_the_file_and_the_preview_shows_columns_rows_and_suggested_fields(
    admin_client: Client,
) -> None:
    job = _upload(admin_client)

    assert job.status == ImportStatus.UPLOADED
    assert Subscription.objects.count() == 0
    html = admin_client.get(reverse("customers:import-preview", args=[job.pk])).content.decode()
    assert 'id="confirm-import"' in html
    assert "Acme" in html
    assert "Beta" in html
    # "Company" is a known alias of customer_name: preselected; "Since" is not: ignored.
    assert '<option value="customer_name" selected>' in html
    assert html.count('<select name="map-') == 5


def test_confirming_with_a_mapping_imports_the_file_and_shows_the_counts(
    admin_client: Client,
) -> None:
    job = _upload(admin_client)
    mapping = {
        "map-0": "customer_name",
        "map-1": "product",
        "map-2": "start_date",
        "map-3": "mrr",
        "map-4": "",
    }

    response = admin_client.post(reverse("customers:import-preview", args=[job.pk]), mapping)

    assert response["Location"] == reverse("customers:import-report", args=[job.pk])
    job.refresh_from_db()
    assert job.status == ImportStatus.SUCCEEDED
    assert job.mapping["Notes"] == ""
    assert sorted(Customer.objects.values_list("name", flat=True)) == ["Acme", "Beta"]
    html = admin_client.get(response["Location"]).content.decode()
    assert 'id="import-created">2<' in html
    assert "Notes" in html  # listed as ignored


def test_a_rejected_file_imports_nothing_and_the_report_names_row_column_and_reason(
    admin_client: Client,
) -> None:
    job = _upload(admin_client, CSV.replace(b"800", b"eight hundred"))
    mapping = {"map-0": "customer_name", "map-1": "product", "map-2": "start_date", "map-3": "mrr"}

    response = admin_client.post(reverse("customers:import-preview", args=[job.pk]), mapping)

    job.refresh_from_db()
    assert job.status == ImportStatus.FAILED
    assert Subscription.objects.count() == 0
    assert Customer.objects.count() == 0
    html = admin_client.get(response["Location"]).content.decode()
    assert "eight hundred" in html
    assert '<td class="num">3</td><td>Monthly</td>' in html
    assert "is not a number" in html
    # The preview stays open to try another mapping, with the last mapping chosen.
    again = admin_client.get(reverse("customers:import-preview", args=[job.pk])).content.decode()
    assert '<option value="mrr" selected>' in again


def test_a_missing_file_is_shown_as_a_form_error(admin_client: Client) -> None:
    response = admin_client.post(reverse("customers:import-upload"), {"kind": "subscriptions"})

    assert response.status_code == 400
    assert ImportJob.objects.count() == 0


def test_the_upload_page_lists_recent_imports(admin_client: Client) -> None:
    _upload(admin_client)

    html = admin_client.get(reverse("customers:import-upload")).content.decode()

    assert 'name="file"' in html
    assert 'name="kind"' in html
    assert "subs.csv" in html


@pytest.mark.parametrize("role", [Role.VIEWER, Role.ADOPTION_CSM])
def test_users_without_the_import_permission_get_403_on_every_import_page(
    make_user: Callable[..., User], admin_client: Client, role: str
) -> None:
    job = _upload(admin_client)
    client = _client(make_user, role)

    assert client.get(reverse("customers:import-upload")).status_code == 403
    assert client.post(reverse("customers:import-upload"), {"kind": "customers"}).status_code == 403
    assert client.get(reverse("customers:import-preview", args=[job.pk])).status_code == 403
    assert client.post(reverse("customers:import-preview", args=[job.pk]), {}).status_code == 403
    assert client.get(reverse("customers:import-report", args=[job.pk])).status_code == 403
    assert Subscription.objects.count() == 0


def test_a_cs_manager_may_import(make_user: Callable[..., User]) -> None:
    client = _client(make_user, Role.CS_MANAGER)

    assert client.get(reverse("customers:import-upload")).status_code == 200
