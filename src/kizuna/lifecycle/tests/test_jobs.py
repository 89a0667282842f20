"""The lifecycle run (every step, its counts, errors, no overlap), the daily job and the CLI."""

import datetime as dt
import json
from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone, translation

from kizuna.core.jobs import daily_jobs
from kizuna.core.models import TimelineEntry, TimelineKind, User
from kizuna.core.roles import Role
from kizuna.customers.models import Customer, LifecycleStage, Product, Subscription, TouchModel
from kizuna.lifecycle import conditions
from kizuna.lifecycle.jobs import LifecycleRunInProgressError, run_lifecycle
from kizuna.lifecycle.models import (
    AssignmentRule,
    CsmProfile,
    LifecycleRun,
    LifecycleSettings,
    OwnerRole,
    RoleHandoff,
    Segment,
    Team,
)
from kizuna.lifecycle.stages import StageCriterionError
from kizuna.lifecycle.touch import save_policy

pytestmark = pytest.mark.django_db

DAY = date(2025, 6, 2)
TOKYO = dt.timezone(dt.timedelta(hours=9))


def configure(**fields: object) -> None:
    LifecycleSettings.load()
    LifecycleSettings.objects.update(**fields)


@pytest.fixture
def company(make_user: Callable[..., User]) -> dict[str, object]:
    """Two segments, the seeds' policy, an adoption team of one, and three customers."""
    for position, (key, name, expression) in enumerate(
        [("enterprise", "Enterprise", "arr >= 10000000"), ("small", "Small", "true")]
    ):
        Segment.objects.create(
            key=key,
            name=name,
            expression=expression,
            rule=conditions.parse(expression),
            position=position,
        )
    save_policy(
        {
            ("enterprise", "onboarding"): "high",
            ("enterprise", "adoption"): "high",
            ("small", "onboarding"): "tech",
            ("small", "adoption"): "tech",
        }
    )
    configure(adoption_entry="onboarding_completed", expansion_entry="")
    team = Team.objects.create(name="Adoption")
    csm = make_user(Role.ADOPTION_CSM, username="aiko")
    CsmProfile.objects.create(user=csm, team=team, capacity=Decimal(100))
    AssignmentRule.objects.create(name="Everyone", role=OwnerRole.ADOPTION, team=team)
    product = Product.objects.create(code="p", name="P")

    def customer(name: str, stage: str, touch: str, mrr: int, end: date | None) -> Customer:
        made = Customer.objects.create(
            name=name,
            external_id=f"crm-{name.lower()}",
            lifecycle_stage=stage,
            touch_model=touch,
            first_start_date=date(2025, 1, 6),
        )
        Subscription.objects.create(
            customer=made,
            product=product,
            start_date=date(2025, 1, 6),
            end_date=end,
            mrr=Decimal(mrr),
        )
        return made

    big = customer("Big", LifecycleStage.ONBOARDING, TouchModel.LOW, 1_000_000, None)
    mid = customer("Mid", LifecycleStage.ONBOARDING, TouchModel.HIGH, 50_000, None)
    tiny = customer("Tiny", LifecycleStage.ADOPTION, TouchModel.HIGH, 10_000, date(2025, 6, 1))
    TimelineEntry.objects.create(
        customer=big,
        kind=TimelineKind.ONBOARDING_COMPLETED,
        title="Onboarding completed",
        occurred_at=dt.datetime(2025, 5, 20, 11, tzinfo=TOKYO),
    )
    # An edit that bypassed the customer form (no post_save): the run records it.
    Customer.objects.filter(pk=tiny.pk).update(touch_model=TouchModel.LOW)
    return {"big": big, "mid": mid, "tiny": tiny, "csm": csm}


def test_run_applies_every_step_in_order_and_counts_them(company: dict[str, object]) -> None:
    run = run_lifecycle(as_of=DAY)
    assert run.counts == {
        "segments": 3,  # Big → enterprise; Mid and Tiny (no ARR on the day) → small
        "stages": 2,  # Big → adoption (onboarding completed); Tiny → churned
        "touch_models": 2,  # Big → high (enterprise in adoption); Mid → tech; Tiny churned
        "owners": 1,  # Big gets the adoption CSM
        "handoffs": 1,  # Big passes from onboarding to adoption
        "synced": 1,  # Tiny's touch model edited outside Kizuna
    }
    assert run.as_of == DAY
    assert run.finished_at is not None
    assert run.error == ""
    big, mid, tiny = (Customer.objects.get(name=name) for name in ("Big", "Mid", "Tiny"))
    assert (big.segment, big.lifecycle_stage, big.touch_model) == ("enterprise", "adoption", "high")
    assert big.adoption_owner == company["csm"]
    assert (mid.segment, mid.lifecycle_stage, mid.touch_model) == ("small", "onboarding", "tech")
    assert (tiny.segment, tiny.lifecycle_stage, tiny.touch_model) == ("small", "churned", "low")
    handoff = RoleHandoff.objects.get()
    assert (handoff.customer, handoff.to_role, handoff.to_user) == (big, "adoption", company["csm"])
    # Nothing left to do the same day.
    again = run_lifecycle(as_of=DAY)
    assert again.counts == dict.fromkeys(run.counts, 0)


def test_a_failing_step_is_recorded_on_the_run_and_raised(company: dict[str, object]) -> None:
    configure(adoption_entry="onboarding_completed and")
    with translation.override("en"), pytest.raises(StageCriterionError):
        run_lifecycle(as_of=DAY)
    run = LifecycleRun.objects.get()
    assert run.error.startswith("StageCriterionError: ")
    assert "position" in run.error
    assert run.finished_at is not None
    assert run.counts == {"segments": 3}  # the step before the failure was done
    configure(adoption_entry="onboarding_completed")
    assert run_lifecycle(as_of=DAY).counts["stages"] == 2  # a failed run does not block


def test_two_runs_do_not_overlap_unless_the_first_is_stale() -> None:
    LifecycleRun.objects.create(as_of=DAY, started_at=timezone.now() - timedelta(hours=1))
    with pytest.raises(LifecycleRunInProgressError):
        run_lifecycle(as_of=DAY)
    assert LifecycleRun.objects.count() == 1
    LifecycleRun.objects.update(started_at=timezone.now() - timedelta(hours=7))
    assert run_lifecycle(as_of=DAY).finished_at is not None


def test_the_daily_job_runs_the_lifecycle() -> None:
    job = next(job for job in daily_jobs() if job.key == "lifecycle")
    result = job.run(DAY)
    assert isinstance(result, LifecycleRun)
    assert result.as_of == DAY


# --- CLI ---------------------------------------------------------------------------------------


def _call(*args: str) -> str:
    out = StringIO()
    with translation.override("en"):
        call_command("lifecycle", *args, stdout=out)
    return out.getvalue()


def test_cli_run_prints_the_counts(company: dict[str, object]) -> None:
    output = _call("run", "--as-of", "2025-06-02")
    assert output.splitlines() == [
        f"Lifecycle run {LifecycleRun.objects.get().pk} as of 2025-06-02:",
        "  Segment changes: 3",
        "  Stage changes: 2",
        "  Touch-model changes: 2",
        "  Owners assigned: 1",
        "  Handoffs opened: 1",
        "  Edits recorded in history: 1",
    ]
    payload = json.loads(_call("run", "--as-of", "2025-06-02", "--json"))
    assert payload["as_of"] == "2025-06-02"
    assert payload["counts"]["stages"] == 0


def test_cli_history_finds_the_customer_by_id_or_external_id(company: dict[str, object]) -> None:
    run_lifecycle(as_of=DAY)
    big = Customer.objects.get(name="Big")
    by_external = _call("history", "crm-big")
    assert by_external == _call("history", str(big.pk))
    lines = by_external.splitlines()
    assert lines[0] == f"Big (id {big.pk}):"
    assert "  2025-06-02 – now         Lifecycle stage: Adoption [rule]" in "\n".join(lines)
    assert any(
        line.startswith("           … – 2025-06-02  Lifecycle stage: Onboarding [edit]")
        for line in lines
    )
    rows = json.loads(_call("history", "crm-big", "--json"))["history"]
    stage = [row for row in rows if row["dimension"] == "stage"]
    assert [(row["value"], row["from"], row["until"]) for row in stage] == [
        ("adoption", "2025-06-02", None),
        ("onboarding", None, "2025-06-02"),
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("run", "--as-of", "2025-13-01"), "--as-of: '2025-13-01' is not a date (YYYY-MM-DD)"),
        (("run", "crm-big"), "CUSTOMER: `lifecycle run` takes no customer"),
        (("history",), "CUSTOMER: give the customer's id or external id"),
        (("history", "nobody"), "CUSTOMER: no customer with the id or external id 'nobody'"),
        (("history", "1", "--as-of", "2025-01-01"), "--as-of: only `lifecycle run` takes a day"),
        (("run", "--user", "ghost"), "--user: no user named 'ghost'"),
    ],
)
def test_cli_bad_input_names_the_option(args: tuple[str, ...], message: str) -> None:
    with pytest.raises(CommandError) as caught:
        _call(*args)
    assert str(caught.value) == message


def test_cli_run_refuses_a_csm_and_an_overlapping_run(make_user: Callable[..., User]) -> None:
    make_user(Role.ADOPTION_CSM, username="kenji")
    with pytest.raises(CommandError, match="may not manage_lifecycle"):
        _call("run", "--user", "kenji")
    LifecycleRun.objects.create(as_of=DAY)
    with pytest.raises(CommandError, match="has been running since"):
        _call("run")
