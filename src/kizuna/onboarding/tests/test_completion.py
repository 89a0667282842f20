"""Automatic completion from real events in the lake (written as imports and flushes do) and
from metric values."""

from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa
import pytest
from django.utils import timezone

from kizuna.analytics import ingest, lake, sources
from kizuna.analytics.flush import flush_inbox
from kizuna.analytics.models import CustomerMetric, MetricDefinition
from kizuna.core.jobs import flush_listeners
from kizuna.core.models import TimelineEntry
from kizuna.customers.models import Customer
from kizuna.onboarding.completion import check_completions
from kizuna.onboarding.models import (
    CompletedVia,
    CompletionKind,
    MilestoneStatus,
    OnboardingPlan,
    PlanStatus,
)
from kizuna.onboarding.plans import complete_milestone, create_plan
from kizuna.onboarding.tests.test_plans import customer, milestones
from kizuna.onboarding.tests.test_programs import make_version

START = date(2026, 11, 2)
RECORD = {
    "key": "first_record",
    "kind": CompletionKind.FIRST_EVENT,
    "rule": {"event_type": "attendance.registered"},
}


def write_events(*events: tuple[str, str, datetime], stem: str = "import-000001") -> None:
    """Write (account key, event type, time) track events into the lake as an import does."""
    count = len(events)
    table = pa.table(
        {
            "message_id": [f"m{stem}{n}" for n in range(count)],
            "origin": ["import:1"] * count,
            "kind": ["track"] * count,
            "event_type": [event_type for _, event_type, _ in events],
            "event_time": pa.array([at for _, _, at in events], pa.timestamp("us", tz="UTC")),
            "received_at": pa.array([at for _, _, at in events], pa.timestamp("us", tz="UTC")),
            "user_id": [f"user-{account}" for account, _, _ in events],
            "anonymous_id": [""] * count,
            "account_key": [account for account, _, _ in events],
            "event_value": pa.array([None] * count, pa.float64()),
            "feature": [""] * count,
            "properties": ["{}"] * count,
        }
    )
    table = table.append_column("event_date", lake.event_dates(table["event_time"]))
    lake.write_events(lake.conform(table, lake.EVENT_SCHEMA), stem)


def at(day: int, hour: int = 1, month: int = 11) -> datetime:
    """A time in UTC; 01:00 UTC is 10:00 the same day in Tokyo."""
    return datetime(2026, month, day, hour, tzinfo=UTC)


def _plan(external_id: str, version: Any, start: date = START) -> OnboardingPlan:
    return create_plan(
        customer=customer(external_id, external_id=external_id, started=start),
        version=version,
        start_date=start,
    )


@pytest.mark.django_db
def test_the_first_event_at_or_after_the_start_completes_the_milestone() -> None:
    version = make_version([RECORD, {"key": "go_live", "offset": 30}])
    acme = _plan("ACME", version)
    quiet = _plan("QUIET", version)
    write_events(
        ("ACME", "attendance.registered", at(30, month=10)),  # before the plan started
        ("ACME", "login", at(4)),  # another event type
        # 16:00 UTC on the 4th is 01:00 on the 5th in Tokyo: the first day is the 5th.
        ("ACME", "attendance.registered", at(4, hour=16)),
        ("ACME", "attendance.registered", at(9)),
        ("QUIET", "login", at(5)),
    )

    assert check_completions(date(2026, 11, 20)) == 1

    pm = milestones(acme)["first_record"]
    assert (pm.status, pm.completed_on, pm.completed_via, pm.completed_by) == (
        MilestoneStatus.DONE,
        date(2026, 11, 5),
        CompletedVia.AUTOMATIC,
        None,
    )
    assert milestones(quiet)["first_record"].status != MilestoneStatus.DONE
    assert milestones(acme)["go_live"].status != MilestoneStatus.DONE  # manual stays manual
    assert check_completions(date(2026, 11, 20)) == 0  # already done


@pytest.mark.django_db
def test_events_after_the_as_of_day_do_not_count() -> None:
    acme = _plan("ACME", make_version([RECORD]))
    write_events(("ACME", "attendance.registered", at(12)))
    assert check_completions(date(2026, 11, 11)) == 0
    assert milestones(acme)["first_record"].status != MilestoneStatus.DONE
    assert check_completions(date(2026, 11, 12)) == 1


@pytest.mark.django_db
def test_an_empty_lake_completes_nothing() -> None:
    _plan("ACME", make_version([RECORD]))
    assert check_completions(date(2026, 11, 20)) == 0


@pytest.mark.django_db
def test_an_automatic_milestone_waits_for_its_manual_dependency() -> None:
    version = make_version([{"key": "setup"}, {**RECORD, "after": ["setup"]}])
    acme = _plan("ACME", version)
    write_events(("ACME", "attendance.registered", at(6)))

    assert check_completions(date(2026, 11, 20)) == 0
    assert milestones(acme)["first_record"].status == MilestoneStatus.NOT_STARTED

    complete_milestone(milestones(acme)["setup"], via=CompletedVia.STAFF, on=date(2026, 11, 4))
    assert check_completions(date(2026, 11, 20)) == 1
    assert milestones(acme)["first_record"].completed_on == date(2026, 11, 6)


@pytest.mark.django_db
def test_a_chain_of_automatic_milestones_completes_in_one_run_and_completes_the_plan(
    django_capture_on_commit_callbacks: Any,
) -> None:
    version = make_version(
        [
            {
                "key": "invite",
                "kind": CompletionKind.FIRST_EVENT,
                "rule": {"event_type": "user.invited"},
            },
            {**RECORD, "after": ["invite"]},
        ]
    )
    acme = _plan("ACME", version)
    write_events(
        ("ACME", "attendance.registered", at(3)),
        ("ACME", "user.invited", at(5)),
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert check_completions(date(2026, 11, 20)) == 2
    acme.refresh_from_db()
    # The plan completes on the latest required completion (the invitation on the 5th).
    assert (acme.status, acme.completed_on) == (PlanStatus.COMPLETED, date(2026, 11, 5))
    [entry] = TimelineEntry.objects.filter(kind="onboarding.completed")
    assert entry.payload == {"plan": acme.pk, "version": version.pk, "days": 3}
    vias = {
        e.payload["milestone"]: e.payload["via"]
        for e in TimelineEntry.objects.filter(kind="onboarding.milestone")
    }
    assert vias == {"invite": "automatic", "first_record": "automatic"}


@pytest.mark.django_db
def test_events_sent_to_the_api_complete_milestones_after_the_flush() -> None:
    acme = _plan("ACME", make_version([RECORD]))
    source, _key = sources.create_source(name="web")
    message = {
        "type": "track",
        "event": "attendance.registered",
        "userId": "u-1",
        "messageId": "first",
        "timestamp": "2026-11-06T02:00:00Z",
        "context": {"groupId": "ACME"},
    }
    received = datetime(2026, 11, 6, 3, tzinfo=UTC)
    rows = ingest.inbox_rows(
        "batch", {"batch": [message]}, source_id=source.id, received_at=received
    )
    ingest.store(source.id, rows)
    assert flush_inbox().rows_written == 1

    for listener in flush_listeners():  # what the worker calls after a flush
        listener(timezone.localdate())

    pm = milestones(acme)["first_record"]
    assert (pm.status, pm.completed_on) == (MilestoneStatus.DONE, date(2026, 11, 6))


@pytest.mark.django_db
def test_a_metric_rule_completes_on_the_day_the_value_was_measured() -> None:
    metric, _ = MetricDefinition.objects.get_or_create(
        key="seat_utilisation_28d", defaults={"name": "Seats", "kind": "seat_utilisation"}
    )
    rule = {
        "key": "seats",
        "kind": CompletionKind.METRIC,
        "rule": {"metric": "seat_utilisation_28d", "op": ">=", "value": 0.8},
    }
    version = make_version([rule])
    reached = _plan("REACHED", version)
    below = _plan("BELOW", version)
    early = _plan("EARLY", version, start=date(2026, 11, 10))
    measured_later = _plan("LATER", version)
    for plan, value, as_of in [
        (reached, 0.8, date(2026, 11, 15)),
        (below, 0.79, date(2026, 11, 15)),
        (early, 0.9, date(2026, 11, 1)),  # measured before that plan started
        (measured_later, 0.95, date(2026, 11, 25)),  # after the as-of day
    ]:
        CustomerMetric.objects.create(
            customer=Customer.objects.get(pk=plan.customer_id),
            metric=metric,
            as_of=as_of,
            value=value,
        )

    assert check_completions(date(2026, 11, 20)) == 2

    assert milestones(reached)["seats"].completed_on == date(2026, 11, 15)
    assert milestones(below)["seats"].status != MilestoneStatus.DONE
    assert milestones(early)["seats"].completed_on == date(2026, 11, 10)  # not before the start
    assert milestones(measured_later)["seats"].status != MilestoneStatus.DONE
