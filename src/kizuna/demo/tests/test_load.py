"""``kizuna demo load`` goes through the front door: imports, event ingestion, metrics."""

import json
from datetime import date
from io import StringIO
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from django.utils import translation

from kizuna.analytics import lake
from kizuna.analytics.models import (
    CustomerMetric,
    DeliveredMessage,
    EventImport,
    GroupLink,
    InboxEvent,
    LakeBatch,
    MetricRun,
    ProductUser,
    Source,
    UsageSettings,
)
from kizuna.core.models import TimelineEntry, User
from kizuna.core.roles import Role
from kizuna.customers.models import (
    Contact,
    Customer,
    ImportJob,
    ImportStatus,
    SalesHandoff,
    Subscription,
)
from kizuna.demo.config import DEMO_PASSWORD
from kizuna.demo.health import TIMELINE_KINDS as HEALTH_KINDS
from kizuna.demo.lifecycle import TIMELINE_KINDS as LIFECYCLE_KINDS
from kizuna.demo.load import (
    KEY_FEATURES,
    SOURCE_NAME,
    STAGES,
    DemoDataExistsError,
    LoadSummary,
    load_demo,
)
from kizuna.demo.onboarding import TIMELINE_KINDS as ONBOARDING_KINDS
from kizuna.demo.playbooks import TIMELINE_KINDS as PLAYBOOK_KINDS
from kizuna.demo.simulation import NPS_ANSWERED

TODAY = date(2026, 11, 20)
pytestmark = pytest.mark.django_db


@pytest.fixture
def loaded(django_capture_on_commit_callbacks: Any) -> LoadSummary:
    # Run what services announce after commit (the handoffs' timeline entries), as in real use.
    with django_capture_on_commit_callbacks(execute=True):
        return load_demo(seed=5, customers=25, months=3, metric_months=1, today=TODAY)


def test_the_demo_goes_through_the_import_and_ingestion_services(loaded: LoadSummary) -> None:
    admin = User.objects.get(username="admin")
    jobs = ImportJob.objects.order_by("id")
    assert [(j.kind, j.status, j.created_by_id) for j in jobs] == [
        ("customers", ImportStatus.SUCCEEDED, admin.pk),
        ("contacts", ImportStatus.SUCCEEDED, admin.pk),
        ("subscriptions", ImportStatus.SUCCEEDED, admin.pk),
    ]
    history = EventImport.objects.get()
    assert history.status == EventImport.Status.DONE
    assert history.created_by == admin
    source = Source.objects.get()
    assert source.name == SOURCE_NAME
    assert not InboxEvent.objects.exists()  # flushed to the lake
    batch = LakeBatch.objects.get()
    assert batch.status == LakeBatch.Status.DONE
    assert history.rows + batch.rows_written == loaded.events
    # The latest day came through the API: its lake files carry the source as their origin.
    latest = lake.events_dir() / TODAY.replace(day=19).isoformat()
    origins = {
        origin
        for path in latest.glob("*.parquet")
        for origin in pq.read_table(path, columns=["origin"])["origin"].to_pylist()
    }
    assert f"source:{source.pk}" in origins
    assert not any(o.startswith("import:") for o in origins)
    # identify calls linked the product users to their contacts.
    assert ProductUser.objects.filter(contact__isnull=False).count() > 25
    assert MetricRun.objects.filter(end=TODAY.replace(day=19)).exists()
    assert CustomerMetric.objects.filter(metric__key="active_users_28d", value__gt=0).exists()
    assert UsageSettings.load().key_features == KEY_FEATURES


def test_the_database_holds_the_simulated_company(loaded: LoadSummary) -> None:
    assert Customer.objects.count() == loaded.customers == 25
    assert Subscription.objects.count() == loaded.subscriptions
    assert Contact.objects.count() == loaded.contacts
    # Everything but the handoff entries (written by the handoff service itself) and what the
    # lifecycle services wrote (test_lifecycle_demo.py).
    entries = TimelineEntry.objects.exclude(
        kind__in=[
            "handoff.recorded",
            "onboarding.milestone_overdue",
            *LIFECYCLE_KINDS,
            *ONBOARDING_KINDS,
            *HEALTH_KINDS,
            *PLAYBOOK_KINDS,
        ]
    )
    assert entries.count() == loaded.timeline_entries
    assert {"meeting", "training", "review_meeting", "note", NPS_ANSWERED} <= set(
        entries.values_list("kind", flat=True)
    )
    for customer in Customer.objects.all():
        assert customer.onboarding_owner_id
        if customer.lifecycle_stage in ("adoption", "expansion"):
            assert customer.adoption_owner_id
        assert customer.first_start_date is not None
        if customer.lifecycle_stage == "churned":
            assert customer.churn_date is not None
            assert customer.churn_reason
    nps = TimelineEntry.objects.filter(kind=NPS_ANSWERED)
    assert nps.exists()
    assert all(0 <= entry.payload["score"] <= 10 for entry in nps)
    assert (
        SalesHandoff.objects.count()
        == TimelineEntry.objects.filter(kind="handoff.recorded").count()
    )
    # (The onboarding services judge "overdue" by the real clock, later than this test's day.)
    assert (
        not TimelineEntry.objects.filter(occurred_at__date__gt=TODAY)
        .exclude(kind="onboarding.milestone_overdue")
        .exists()
    )


def test_the_ground_truth_lies_next_to_the_data(loaded: LoadSummary) -> None:
    folder = Path(settings.DATA_DIR) / "demo"
    manifest = json.loads((folder / "ground_truth.json").read_text(encoding="utf-8"))
    assert manifest["customers"] == 25
    assert manifest["today"] == TODAY.isoformat()
    truth = pq.read_table(folder / "ground_truth" / "customers.parquet").to_pylist()
    by_id = {row["external_id"]: row for row in truth}
    for customer in Customer.objects.all():
        assert by_id[customer.external_id]["churned"] == (customer.lifecycle_stage == "churned")
    assert loaded.truth == folder / "ground_truth"
    assert not list(folder.glob("events-*.parquet"))  # the import file is gone


def _snapshot() -> dict[str, list[Any]]:
    return {
        "customers": list(
            Customer.objects.order_by("external_id").values_list(
                "external_id", "name", "segment", "lifecycle_stage", "touch_model",
                "onboarding_owner__username", "first_start_date", "churn_date", "churn_reason",
            )
        ),
        "subscriptions": list(
            Subscription.objects.order_by("external_id").values_list(
                "external_id", "plan__code", "quantity", "mrr", "start_date", "end_date", "status"
            )
        ),
        "contacts": list(
            Contact.objects.order_by("external_id").values_list(
                "external_id", "email", "role", "product_user_id", "started_on", "ended_on"
            )
        ),
        "timeline": sorted(
            (
                (customer, kind, title, occurred_at, _without_ids(payload))
                # (overdue milestones are judged by the real clock, later than this test's day)
                for customer, kind, title, occurred_at, payload in TimelineEntry.objects.exclude(
                    kind="onboarding.milestone_overdue"
                ).values_list("customer__external_id", "kind", "title", "occurred_at", "payload")
            ),
            key=repr,
        ),
    }  # fmt: skip


_ID_KEYS = (
    "handoff", "handoff_id", "plan", "version", "goal", "task", "link_id", "plan_id",
    "task_id", "run_id", "playbook_id", "signal_id", "milestone_id",
)  # fmt: skip


def _without_ids(payload: dict[str, Any]) -> dict[str, Any]:
    """A timeline payload without the database ids of the records it names (handoffs get new
    ids when the company is loaded again)."""
    return {key: value for key, value in payload.items() if key not in _ID_KEYS}


def test_the_same_seed_loads_the_same_company(settings: Any, tmp_path: Path) -> None:
    # Health and playbooks are checked on their own (test_health_playbooks_demo.py): in a
    # database reused after deleting the customers, the event-based new-admin signal differs.
    quick = [s for s in STAGES if s.key not in ("metrics", "health", "playbooks")]
    settings.DATA_DIR = tmp_path / "first"  # a lake of its own, like the second load's
    load_demo(seed=9, customers=12, months=2, today=TODAY, stages=quick)
    first = _snapshot()
    Customer.objects.all().delete()
    # Product users outlive their customers (they are the product's accounts): a fresh
    # database has none, and the signals read when each was first seen.
    ProductUser.objects.all().delete()
    GroupLink.objects.all().delete()
    # …and the ingestion remembers message ids: the latest day would be dropped as duplicates.
    DeliveredMessage.objects.all().delete()
    settings.DATA_DIR = tmp_path / "again"
    load_demo(seed=9, customers=12, months=2, today=TODAY, stages=quick)
    assert _snapshot() == first


def test_every_role_has_a_demo_login_and_customer_360_shows_the_usage(
    loaded: LoadSummary,
) -> None:
    users = User.objects.filter(username__in=loaded.users)
    assert {user.role for user in users} == set(Role.values)
    client = Client()
    assert client.login(username="adoption", password=DEMO_PASSWORD)
    customer = Customer.objects.exclude(lifecycle_stage="churned").order_by("external_id").first()
    assert customer is not None
    response = client.get(reverse("customers:detail", args=[customer.pk]))
    assert response.status_code == 200


def test_loading_into_a_database_with_customers_is_refused(loaded: LoadSummary) -> None:
    with pytest.raises(DemoDataExistsError):
        load_demo(customers=5, months=1, today=TODAY)


def test_the_command_and_its_alias_load_once_and_if_empty_adds_nothing() -> None:
    out = StringIO()
    with translation.override("en"):
        call_command(
            "demo", "load", "--customers", "8", "--months", "1", "--metric-months", "1",
            "--seed", "3", "--today", "2026-11-20", stdout=out,
        )  # fmt: skip
    assert "8 customers" in out.getvalue()
    assert DEMO_PASSWORD in out.getvalue()
    counts = (Customer.objects.count(), Subscription.objects.count(), User.objects.count(),
              TimelineEntry.objects.count(), EventImport.objects.count())  # fmt: skip
    out = StringIO()
    with translation.override("en"):
        call_command("demo", "--if-empty", stdout=out)  # the alias of `demo load`
    assert "already has customers" in out.getvalue()
    assert counts == (Customer.objects.count(), Subscription.objects.count(),
                      User.objects.count(), TimelineEntry.objects.count(),
                      EventImport.objects.count())  # fmt: skip
    with pytest.raises(CommandError, match="already has customers"), translation.override("en"):
        call_command("demo", "load", "--customers", "3")
    with pytest.raises(CommandError, match="at least 1"), translation.override("en"):
        call_command("demo", "--customers", "0")


def test_existing_staff_accounts_are_left_untouched() -> None:
    User.objects.create_user(username="admin", password="my-own-secret-password", role=Role.ADMIN)
    quick = [s for s in STAGES if s.key not in ("metrics", "event_history", "latest_day")]
    load_demo(customers=5, months=1, today=TODAY, stages=quick)
    assert Client().login(username="admin", password="my-own-secret-password")
    assert User.objects.filter(username="admin").count() == 1
