"""The demo's lifecycle: segments by rules, touch policy, teams, dated history, handoffs."""

import itertools
from datetime import date, timedelta
from typing import Any

import numpy as np
import pytest
from django.db.models import F
from django.utils import timezone

from kizuna.core.models import TimelineEntry
from kizuna.customers.models import Customer
from kizuna.demo.config import DEFAULT_CONFIG
from kizuna.demo.lifecycle import (
    ASSIGNMENT,
    MANUAL,
    RULE,
    SEGMENT_RULES,
    Change,
    customer_story,
)
from kizuna.demo.load import STAGES, LoadSummary, load_demo
from kizuna.demo.simulation import Happening, SimulatedCustomer, Simulator
from kizuna.lifecycle import conditions
from kizuna.lifecycle.jobs import run_lifecycle
from kizuna.lifecycle.models import (
    OWNER_FIELDS,
    STAGE_ROLES,
    CsmProfile,
    Dimension,
    HandoffStatus,
    LifecycleRun,
    RoleHandoff,
    StateHistory,
    Team,
    TouchOverride,
)

TODAY = date(2026, 11, 20)
SEED, CUSTOMERS = 5, 40
# Events and metrics add nothing to the lifecycle story but time.
QUICK = [s for s in STAGES if s.key not in ("event_history", "latest_day", "metrics")]
# Rows "since the beginning" (no valid_from) first, on PostgreSQL as on SQLite.
SINCE_THE_BEGINNING_FIRST = F("valid_from").asc(nulls_first=True)


@pytest.fixture
def demo(django_capture_on_commit_callbacks: Any, db: Any) -> LoadSummary:
    with django_capture_on_commit_callbacks(execute=True):
        return load_demo(seed=SEED, customers=CUSTOMERS, months=3, today=TODAY, stages=QUICK)


def _simulated() -> dict[str, SimulatedCustomer]:
    simulator = Simulator(config=DEFAULT_CONFIG, seed=SEED, today=TODAY, customers=CUSTOMERS)
    return {c.external_id: c for c in simulator.customers()}


def test_every_customer_has_a_segment_stage_touch_model_and_an_owner_of_its_role(
    demo: LoadSummary,
) -> None:
    customers = list(Customer.objects.all())
    assert len(customers) == CUSTOMERS
    stages = set()
    for customer in customers:
        assert customer.segment in {rule.key for rule in SEGMENT_RULES}
        assert customer.touch_model in ("high", "low", "tech")
        stages.add(customer.lifecycle_stage)
        role = STAGE_ROLES.get(customer.lifecycle_stage)
        if role is not None:  # churned customers keep their last owners
            assert getattr(customer, f"{OWNER_FIELDS[role]}_id"), customer.external_id
    assert {"onboarding", "adoption", "expansion", "churned"} <= stages
    assert Team.objects.count() == 3
    assert CsmProfile.objects.filter(capacity__gt=0).count() == 5
    assert all(team.manager is not None for team in Team.objects.all())


def test_the_segment_rules_reproduce_the_simulated_segments(demo: LoadSummary) -> None:
    simulated = {external_id: c.segment for external_id, c in _simulated().items()}
    by_rule: dict[str, str] = {}
    for rule in SEGMENT_RULES:  # the first matching rule wins
        matched = conditions.matching(conditions.parse(rule.expression), as_of=TODAY)
        for external_id in matched.values_list("external_id", flat=True):
            by_rule.setdefault(str(external_id), rule.key)
    assert by_rule == simulated
    assert dict(Customer.objects.values_list("external_id", "segment")) == simulated
    # The lifecycle run of the day moved nobody: the rules agree with the story.
    run = LifecycleRun.objects.get()
    assert run.as_of == TODAY
    assert run.counts["segments"] == 0
    assert run.counts["synced"] == 0


def test_mid_market_customers_go_from_high_to_low_touch_when_onboarding_ends(
    demo: LoadSummary,
) -> None:
    zone = timezone.get_current_timezone()
    switched = 0
    for customer in Customer.objects.filter(segment="mid-market").exclude(
        lifecycle_stage="onboarding"
    ):
        if TouchOverride.objects.filter(customer=customer).exists():
            continue
        touch = list(
            StateHistory.objects.filter(customer=customer, dimension=Dimension.TOUCH_MODEL)
            .order_by(SINCE_THE_BEGINNING_FIRST)
            .values_list("value", "valid_from", "source")
        )
        stages = {
            day: stage
            for day, stage in StateHistory.objects.filter(
                customer=customer, dimension=Dimension.STAGE
            ).values_list("valid_from", "value")
            if day is not None
        }
        adopted = min(day for day, stage in stages.items() if stage == "adoption")
        completed = [
            entry.occurred_at.astimezone(zone).date()
            for entry in TimelineEntry.objects.filter(
                customer=customer, kind="onboarding.completed"
            )
        ]
        # The nightly run moves the customer the day after the onboarding was noted complete,
        # or after 120 days (the demo's criterion), whichever comes first.
        assert customer.first_start_date is not None
        candidates = [customer.first_start_date + timedelta(days=120)]
        if completed:
            candidates.append(min(completed) + timedelta(days=1))
        expected = min(candidates)
        assert adopted == expected
        assert touch[0][:2] == ("high", None)
        assert touch[1] == ("low", adopted, "rule")
        entry = (
            TimelineEntry.objects.filter(customer=customer, kind="touch_model.changed")
            .order_by("occurred_at")
            .first()
        )
        assert entry is not None
        assert entry.occurred_at.astimezone(zone).date() == adopted
        assert entry.payload["from"] == "high"
        assert entry.payload["to"] == "low"
        switched += 1
    assert switched >= 3


def test_the_history_is_continuous_dated_and_ends_at_the_current_values(
    demo: LoadSummary,
) -> None:
    current = {c.pk: c for c in Customer.objects.all()}
    rows: dict[tuple[int, str], list[StateHistory]] = {}
    for row in StateHistory.objects.order_by(
        "customer_id", "dimension", SINCE_THE_BEGINNING_FIRST, "id"
    ):
        rows.setdefault((row.customer_id, row.dimension), []).append(row)
    assert len(rows) == CUSTOMERS * len(Dimension)
    field_of: dict[str, str] = {
        Dimension.SEGMENT: "segment",
        Dimension.STAGE: "lifecycle_stage",
        Dimension.TOUCH_MODEL: "touch_model",
        Dimension.ONBOARDING_OWNER: "onboarding_owner_id",
        Dimension.ADOPTION_OWNER: "adoption_owner_id",
        Dimension.EXPANSION_OWNER: "expansion_owner_id",
    }
    for (customer_id, dimension), chain in rows.items():
        assert chain[0].valid_from is None
        for before, after in itertools.pairwise(chain):
            assert before.valid_to == after.valid_from
            assert after.valid_from is not None
            assert after.valid_from <= TODAY
        assert chain[-1].valid_to is None
        value = getattr(current[customer_id], field_of[dimension])
        assert chain[-1].value == ("" if value is None else str(value))
    # Owners came with their role: adoption CSMs from the day the customer entered adoption.
    dated = StateHistory.objects.filter(dimension=Dimension.ADOPTION_OWNER).exclude(valid_from=None)
    assert dated.exists()
    for row in dated:
        assert StateHistory.objects.filter(
            customer_id=row.customer_id,
            dimension=Dimension.STAGE,
            value="adoption",
            valid_from=row.valid_from,
        ).exists()
    # (The onboarding services judge "overdue" by the real clock, later than this test's day.)
    assert (
        not TimelineEntry.objects.filter(occurred_at__date__gt=TODAY)
        .exclude(kind="onboarding.milestone_overdue")
        .exists()
    )
    # Running the lifecycle again changes nothing.
    again = run_lifecycle(as_of=TODAY)
    assert set(again.counts.values()) == {0}


def test_recent_handoffs_wait_with_a_filled_in_note_older_ones_were_acknowledged(
    demo: LoadSummary,
) -> None:
    pending = RoleHandoff.objects.filter(status=HandoffStatus.PENDING).select_related("customer")
    assert pending.filter(from_role="onboarding", to_role="adoption").exists()
    for handoff in pending:
        for field in ("goals_achieved", "open_issues", "risks", "notes", "stakeholders"):
            assert getattr(handoff, field), field
        owner = getattr(handoff.customer, f"{OWNER_FIELDS[handoff.to_role]}_id")
        assert handoff.to_user_id == owner
        assert handoff.from_user_id is not None
    acknowledged = RoleHandoff.objects.filter(status=HandoffStatus.ACKNOWLEDGED)
    assert acknowledged.exists()
    for handoff in acknowledged:
        assert handoff.acknowledgement
        assert handoff.acknowledged_by_id == handoff.to_user_id
        assert handoff.acknowledged_at is not None
        assert handoff.created_at < handoff.acknowledged_at
        assert handoff.acknowledged_at.date() < TODAY
        entry = TimelineEntry.objects.get(kind="handoff.acknowledged", payload__handoff=handoff.pk)
        assert entry.occurred_at == handoff.acknowledged_at
    assert TimelineEntry.objects.filter(kind="handoff.created").count() == (
        RoleHandoff.objects.count()
    )


def test_two_customers_have_a_touch_model_override_with_a_reason(demo: LoadSummary) -> None:
    overrides = list(TouchOverride.objects.select_related("customer"))
    assert len(overrides) == 2
    assert sum(1 for o in overrides if o.expires_on is not None) == 1
    for override in overrides:
        assert override.reason
        assert override.ended_at is None
        assert override.customer.touch_model == override.touch_model
        row = StateHistory.objects.get(
            customer=override.customer, dimension=Dimension.TOUCH_MODEL, valid_to=None
        )
        assert (row.value, row.source, row.reason) == (
            override.touch_model,
            "override",
            override.reason,
        )
        assert row.valid_from is not None
        assert row.valid_from < TODAY


# -- the story of one customer, by hand --------------------------------------------------------


def _customer(
    segment: str, owners: tuple[str, str, str | None], **fields: Any
) -> SimulatedCustomer:
    return SimulatedCustomer(
        number=3, external_id="C-0003", name="テスト株式会社", domain="test.co.jp",
        industry="製造業", employees=300, region="関東", segment=segment, language="ja",
        touch_model="low", owners=owners, first_start=date(2025, 1, 6), **fields,
    )  # fmt: skip


def test_the_story_follows_onboarding_upsell_churn_and_reactivation() -> None:
    c = _customer("mid-market", ("onboarding", "adoption", "expansion"))
    c.happenings = [
        Happening(date(2025, 2, 20), "onboarding_completed", "onboarding.completed"),
        Happening(date(2026, 3, 1), "upsell", "note", "アップセル: 15席 → 20席"),
        Happening(date(2026, 6, 1), "churn", "note", "解約"),
        Happening(date(2026, 9, 1), "reactivation", "note", "再契約"),
        Happening(date(2026, 9, 20), "onboarding_completed", "onboarding.completed",
                  payload={"reactivated": True}),
    ]  # fmt: skip
    story = customer_story(c, today=date(2026, 12, 15), expansion_csms=("expansion",))
    assert story.initial == {
        "segment": "mid-market",
        "stage": "onboarding",
        "touch_model": "high",
        "owner.onboarding": "onboarding",
        "owner.adoption": "",
        "owner.expansion": "",
    }
    assert story.changes == [
        Change(date(2025, 2, 21), "stage", "adoption", RULE, "adoption_entry"),
        Change(date(2025, 2, 21), "touch_model", "low", RULE, "policy:adoption"),
        Change(date(2025, 2, 21), "owner.adoption", "adoption", ASSIGNMENT,
               "assignment:adoption:low"),
        Change(date(2026, 3, 1), "stage", "expansion", MANUAL, "growth:アップセル: 15席 → 20席",
               "adoption"),
        Change(date(2026, 3, 1), "owner.expansion", "expansion", ASSIGNMENT,
               "assignment:expansion:low"),
        Change(date(2026, 6, 1), "stage", "churned", RULE, "churn"),
        Change(date(2026, 9, 1), "stage", "reactivated", RULE, "reactivation"),
        Change(date(2026, 9, 1), "touch_model", "high", RULE, "policy:reactivated"),
        Change(date(2026, 11, 30), "stage", "adoption", RULE, "reactivated_done"),
        Change(date(2026, 11, 30), "touch_model", "low", RULE, "policy:adoption"),
    ]  # fmt: skip


def test_a_slow_onboarding_moves_after_120_days_and_readiness_moves_to_expansion() -> None:
    weeks = 60
    engagement = np.full(weeks, 0.5, np.float32)
    engagement[55:] = 0.7  # week 55 is the first one a year in with engaged users
    c = _customer(
        "smb", ("kobayashi", "kato", None), engagement=engagement,
        users=np.full(weeks, 10, np.int32), seats=np.full(weeks, 10, np.int32),
    )  # fmt: skip
    c.happenings = [
        # Both on day 120: one stage move per day, so the cross-sell does not move it further.
        Happening(date(2025, 5, 6), "cross_sell", "note", "クロスセル"),
        Happening(date(2025, 7, 1), "onboarding_completed", "onboarding.completed"),
    ]
    story = customer_story(c, today=date(2026, 12, 15), expansion_csms=("expansion", "other"))
    assert story.changes == [
        Change(date(2025, 5, 6), "stage", "adoption", RULE, "adoption_entry"),
        Change(date(2025, 5, 6), "owner.adoption", "kato", ASSIGNMENT,
               "assignment:adoption:tech"),
        Change(date(2026, 1, 26), "stage", "expansion", RULE, "expansion_entry"),
        # No expansion CSM was simulated for a tech-touch customer: one is picked (number 3).
        Change(date(2026, 1, 26), "owner.expansion", "other", ASSIGNMENT,
               "assignment:expansion:tech"),
    ]  # fmt: skip
    assert story.final("stage") == "expansion"
    assert story.final("touch_model") == "tech"
