"""The demo's health and playbooks stages: scores, signals and a model from the company's own
history; the library switched on 90 days ago and replayed through the runner."""

import itertools
from collections import defaultdict
from datetime import date, timedelta
from typing import Any

import pytest
from django.db.models import Q

from kizuna.core.models import TimelineEntry, TimelineKind
from kizuna.customers.models import Customer
from kizuna.demo.load import LoadSummary, load_demo
from kizuna.demo.playbooks import PLACEHOLDER_URL, REPLAY_DAYS
from kizuna.health.models import ChurnModel, HealthScore, RiskSignal
from kizuna.health.scoring import active_customers
from kizuna.playbooks.models import (
    ActionExecution,
    ExecutionStatus,
    Playbook,
    PlaybookRun,
    Task,
    WebhookDelivery,
    WebhookEndpoint,
)
from kizuna.playbooks.simulation import simulate

TODAY = date(2026, 11, 20)
SEED, CUSTOMERS = 7, 60


@pytest.fixture
def demo(django_capture_on_commit_callbacks: Any, db: Any) -> LoadSummary:
    with django_capture_on_commit_callbacks(execute=True):
        return load_demo(seed=SEED, customers=CUSTOMERS, months=6, today=TODAY)


def test_the_demo_scores_signals_and_acts_on_its_own_history(demo: LoadSummary) -> None:
    latest = TODAY - timedelta(days=1)
    # Every customer in service on the latest day has a score, and the history reaches back.
    in_service = set(active_customers(latest).values_list("pk", flat=True))
    assert in_service
    assert set(HealthScore.objects.filter(day=latest).values_list("customer_id", flat=True)) == (
        in_service
    )
    assert HealthScore.objects.filter(day__lte=latest - timedelta(days=90)).exists()
    assert demo.health_scores == HealthScore.objects.count()

    # Signals were opened on their own days, each with its risk.raised entry.
    assert RiskSignal.objects.exists()
    raised = TimelineEntry.objects.filter(kind=TimelineKind.RISK_RAISED)
    assert raised.count() == RiskSignal.objects.count()
    assert demo.signals_open == RiskSignal.objects.filter(closed_on__isnull=True).count()

    # The customer whose administrator changed three weeks ago shows it, with the reason.
    name = demo.stories.get("admin_changed_recently")
    assert name, "the demo is big enough for its stories"
    story = Customer.objects.get(name=name)
    kinds = set(
        RiskSignal.objects.filter(customer=story, closed_on__isnull=True).values_list(
            "kind", flat=True
        )
    )
    assert {"champion_left", "new_admin"} <= kinds

    # A churn model was trained, or the attempt says why not; never a silent nothing.
    model = ChurnModel.objects.get()
    assert model.is_current != bool(model.error)

    # The eight ready playbooks are on, switched on 90 days before today.
    playbooks = list(Playbook.objects.all())
    assert len(playbooks) == demo.playbooks == 8
    assert all(p.enabled and not p.paused for p in playbooks)
    # Every run that acted has its actions settled; held-out runs have none.
    assert not ActionExecution.objects.filter(run__holdout=True).exists()
    assert not ActionExecution.objects.filter(
        status__in=[ExecutionStatus.WAITING, ExecutionStatus.RETRYING],
        due_at__date__lt=TODAY - timedelta(days=1),
    ).exists()
    first = TODAY - timedelta(days=REPLAY_DAYS)
    days = list(PlaybookRun.objects.values_list("triggered_on", flat=True))
    assert days
    assert min(days) >= first
    # Tasks carry the dates of their runs: created on the run's day, not at load time.
    for task in Task.objects.filter(run__isnull=False).select_related("run")[:50]:
        assert task.run is not None
        assert task.created_at.date() <= task.run.triggered_on + timedelta(days=1)
    # The CSMs worked most past tasks back then, not at load time.
    done = Task.objects.filter(status="done")
    assert done.exists()
    assert not done.filter(completed_at__date__gte=TODAY).exists()
    assert (
        demo.tasks_open
        == Task.objects.filter(
            Q(status="open") | Q(status="in_progress") | Q(status="snoozed")
        ).count()
    )

    # The library's risk playbooks wait 30–90 days before acting again for a customer.
    for playbook in playbooks:
        cooldown = int(playbook.trigger_params.get("cooldown_days") or 0)
        if not cooldown:
            continue
        by_customer: dict[int, list[date]] = defaultdict(list)
        for customer_id, day in PlaybookRun.objects.filter(playbook=playbook).values_list(
            "customer_id", "triggered_on"
        ):
            by_customer[customer_id].append(day)
        for fired in by_customer.values():
            fired.sort()
            assert all((b - a).days >= cooldown for a, b in itertools.pairwise(fired))

    # The team-chat webhook was called during the replay (dated), then switched off.
    endpoint = WebhookEndpoint.objects.get()
    assert (endpoint.url, endpoint.is_active) == (PLACEHOLDER_URL, False)
    for delivery in WebhookDelivery.objects.all():
        assert delivery.status_code == 200
        assert first <= delivery.sent_at.date() <= TODAY

    # What the runner did for a playbook is what its simulation says it would have done.
    drop = Playbook.objects.get(library_key="usage-drop-check-in")
    simulated_runs = simulate(playbook=drop, start=first, end=TODAY - timedelta(days=1))
    fired_runs = PlaybookRun.objects.filter(playbook=drop, triggered_on__lt=TODAY)
    assert {(r.customer_id, r.occurrence_key) for r in simulated_runs.runs} == set(
        fired_runs.values_list("customer_id", "occurrence_key")
    )
