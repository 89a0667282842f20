"""The import API: multipart upload, 200 with counts, 400 with bad rows, 403 without permission."""

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from kizuna.core.models import User
from kizuna.core.roles import Role
from kizuna.customers.models import Customer, ImportJob, ImportStatus, Subscription

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _english(settings: Any) -> None:
    """Messages are asserted in English (the default language is Japanese)."""
    settings.LANGUAGE_CODE = "en"


@pytest.fixture
def api_client(make_user: Callable[..., User]) -> Callable[..., Client]:
    """A signed-in client of a fresh user with the given role (session authentication)."""

    def make(role: str = Role.ADMIN) -> Client:
        client = Client()
        client.force_login(make_user(role))
        return client

    return make


URL = "/api/v1/imports"
GOOD = b"account_id,product,start_date,end_date,mrr\nA-1,CRM,2024-01-01,,1000\nA-2,CRM,2024-02-01,,2000\n"
BAD = b"account_id,product,start_date,end_date,mrr\nA-1,CRM,2024-01-01,,1000\nA-2,CRM,2024-02-01,,lots\n"


def _upload(client: Client, kind: str, content: bytes, **data: str) -> object:
    file = SimpleUploadedFile("subs.csv", content, content_type="text/csv")
    return client.post(f"{URL}/{kind}", {"file": file, **data})


def test_posting_a_good_file_imports_it_and_returns_the_counts(
    api_client: Callable[..., Client],
) -> None:
    client = api_client(Role.CS_MANAGER)

    response = _upload(client, "subscriptions", GOOD)

    assert response.status_code == 200, response.content  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert (body["ok"], body["rows"], body["created"], body["customers_created"]) == (True, 2, 2, 2)
    assert Subscription.objects.count() == 2
    job = ImportJob.objects.get(pk=body["id"])
    assert job.status == ImportStatus.SUCCEEDED
    assert job.report["created"] == 2

    again = _upload(client, "subscriptions", GOOD).json()  # type: ignore[attr-defined]
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 2)


def test_a_file_with_a_bad_row_gets_400_naming_the_row_and_column_and_imports_nothing(
    api_client: Callable[..., Client],
) -> None:
    response = _upload(api_client(Role.ADMIN), "subscriptions", BAD)

    assert response.status_code == 400  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert body["ok"] is False
    assert [(e["row"], e["column"], e["value"]) for e in body["errors"]] == [(3, "mrr", "lots")]
    assert Subscription.objects.count() == 0
    assert Customer.objects.count() == 0
    assert ImportJob.objects.get().status == ImportStatus.FAILED


def test_a_mapping_is_sent_as_a_json_form_field(api_client: Callable[..., Client]) -> None:
    content = b"Company,Since,Fee,Item\nAcme,2024-01-01,100,CRM\n"
    mapping = json.dumps(
        {"Company": "customer_name", "Since": "start_date", "Fee": "mrr", "Item": "product"}
    )

    response = _upload(api_client(Role.ADMIN), "subscriptions", content, mapping=mapping)

    assert response.status_code == 200, response.content  # type: ignore[attr-defined]
    assert Subscription.objects.get().customer.name == "Acme"


def test_a_mapping_that_is_not_a_json_object_is_refused(api_client: Callable[..., Client]) -> None:
    response = _upload(api_client(Role.ADMIN), "subscriptions", GOOD, mapping="[1, 2]")

    assert response.status_code == 422  # type: ignore[attr-defined]
    assert "mapping" in response.json()["detail"]  # type: ignore[attr-defined]


def test_an_unknown_kind_is_404_with_the_kinds_listed(api_client: Callable[..., Client]) -> None:
    response = _upload(api_client(Role.ADMIN), "invoices", GOOD)

    assert response.status_code == 404  # type: ignore[attr-defined]
    assert "subscriptions" in response.json()["detail"]  # type: ignore[attr-defined]


def test_a_viewer_may_not_import_or_list_imports(api_client: Callable[..., Client]) -> None:
    client = api_client(Role.VIEWER)

    assert _upload(client, "subscriptions", GOOD).status_code == 403  # type: ignore[attr-defined]
    assert client.get(URL).status_code == 403
    assert Subscription.objects.count() == 0
    assert ImportJob.objects.count() == 0


def test_an_anonymous_request_imports_nothing(client: Client) -> None:
    response = _upload(client, "subscriptions", GOOD)

    assert response.status_code in (302, 401)  # type: ignore[attr-defined]
    assert ImportJob.objects.count() == 0


def test_recent_imports_are_listed_newest_first_and_each_can_be_read(
    api_client: Callable[..., Client],
) -> None:
    client = api_client(Role.ADMIN)
    first = _upload(client, "subscriptions", GOOD).json()["id"]  # type: ignore[attr-defined]
    second = _upload(client, "subscriptions", BAD).json()["id"]  # type: ignore[attr-defined]

    listing = client.get(URL, {"limit": 1})

    assert listing.status_code == 200
    assert listing.json()["count"] == 2
    assert [item["id"] for item in listing.json()["items"]] == [second]
    detail = client.get(f"{URL}/{first}").json()
    assert (detail["status"], detail["report"]["created"], detail["created_by"]) == (
        "succeeded", 2, ImportJob.objects.get(pk=first).created_by.username,  # type: ignore[union-attr]
    )  # fmt: skip
    assert client.get(f"{URL}/999999").status_code == 404
