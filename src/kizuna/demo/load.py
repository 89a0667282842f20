"""``kizuna demo load``: the simulated company into the configured database, through the front door.

The load is a list of stages (``STAGES``), each a plain function of the shared ``LoadContext``,
run in order with a progress callback. Each writes the way a real company's data arrives:

1. ``simulate``: the customers, their story and their hidden state (simulation.py);
2. ``staff`` and ``catalog``: the demo logins, products and plans (Settings);
3. ``customers``, ``contacts``, ``subscriptions``: CSV files through the import service, as an
   operator's ``kizuna import`` or the import page would (one ImportJob each);
4. ``owners``, ``handoffs``, ``timeline``: what CSMs enter in the UI (customer services);
5. ``usage settings``: key features, as in Settings → Usage;
6. ``event history``: the months of product events as a Parquet file through the bulk event
   import (``kizuna ingest``), an EventImport;
7. ``latest day``: the last day's events (and identify/group calls) through the Segment-compatible
   ingestion service with a source's write key, then the lake flush;
8. ``metrics``: the daily metric history (``kizuna metrics run``) so Customer 360 has charts;
9. ``lifecycle``: segments, touch-model policy, CSM teams and assignment rules as a manager sets
   them in Settings, each customer's stage, touch-model and owner history replayed with its
   dates, recent handoffs between CSMs, then the lifecycle run of today (lifecycle.py);
10. ``ground truth``: the hidden truth under ``KIZUNA_DATA_DIR/demo/`` (Kizuna never reads it).

Later features add their stage (onboarding programs, playbooks, surveys…) to ``STAGES``.
"""

import base64
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from kizuna.analytics import ingest
from kizuna.analytics.configuration import save_usage_settings
from kizuna.analytics.flush import flush_inbox
from kizuna.analytics.importing import ImportStatus, import_event_file
from kizuna.analytics.metrics import run_metrics
from kizuna.analytics.models import Source, UsageSettings
from kizuna.analytics.sources import create_source
from kizuna.core import timeline
from kizuna.core.models import MANUAL_TIMELINE_KINDS, TimelineEntry, TimelineKind, User
from kizuna.customers.importing import import_and_record
from kizuna.customers.models import Customer, Plan, Product
from kizuna.customers.services import (
    add_timeline_entry,
    create_plan,
    create_product,
    record_handoff,
    update_customer,
)
from kizuna.demo.config import DEFAULT_CONFIG, DEMO_PASSWORD, DemoConfig
from kizuna.demo.events import Calendar, EventGenerator, event_writer, plain
from kizuna.demo.files import TRUTH_DIR, TruthWriter, csv_bytes
from kizuna.demo.health import load_health
from kizuna.demo.lifecycle import load_lifecycle
from kizuna.demo.onboarding import load_onboarding
from kizuna.demo.playbooks import load_playbooks
from kizuna.demo.simulation import SimulatedCustomer, Simulator, add_months

# (done, total) of the running stage; total 0 when unknown.
StageProgress = Callable[[int, int], None]
DEFAULT_CUSTOMERS = 250
DEFAULT_MONTHS = 18
SOURCE_NAME = "Mirai Analytics (web app)"
KEY_FEATURES = ["dashboards", "reports", "alerts", "connectors"]
# Segment's limit is 500 KB per request; a few hundred events stay well below it.
INGEST_BATCH = 400


class DemoDataExistsError(Exception):
    """The database already holds customers; the demo company is only loaded into an empty one."""


class DemoLoadError(Exception):
    """A stage was refused by the service it went through (the message says which and why)."""


@dataclass
class LoadContext:
    """What the stages share: the parameters, the simulated company and what was created."""

    seed: int
    customers: int
    months: int
    today: date
    config: DemoConfig
    metric_months: int
    out: Path
    simulated: list[SimulatedCustomer] = field(default_factory=list)
    simulator: Simulator | None = None
    staff: dict[str, User] = field(default_factory=dict)
    customer_ids: dict[str, int] = field(default_factory=dict)
    latest_events: pa.Table | None = None  # the latest day's events, for the ingestion API
    counts: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def admin(self) -> User:
        return self.staff["admin"]

    @property
    def history_start(self) -> date:
        return add_months(self.today, -self.months)

    @property
    def latest_day(self) -> date:
        """The last full day: its events arrive through the ingestion API, earlier ones by file."""
        return self.today - timedelta(days=1)


@dataclass(frozen=True)
class Stage:
    key: str
    label: Any  # a lazily translated string
    run: Callable[[LoadContext, StageProgress], None]


# -- the stages ---------------------------------------------------------------------------------


def simulate(ctx: LoadContext, progress: StageProgress) -> None:
    ctx.simulator = Simulator(
        config=ctx.config, seed=ctx.seed, today=ctx.today, customers=ctx.customers
    )
    for n, customer in enumerate(ctx.simulator.customers(), start=1):
        ctx.simulated.append(customer)
        if n % 25 == 0:
            progress(n, ctx.customers)
    progress(ctx.customers, ctx.customers)


def create_staff(ctx: LoadContext, progress: StageProgress) -> None:
    """The demo logins, created unless a user of that name exists (which is left untouched)."""
    staff = ctx.config.staff
    existing = {
        u.username: u for u in User.objects.filter(username__in=[s.username for s in staff])
    }
    password = make_password(DEMO_PASSWORD)
    missing = [
        User(
            username=member.username,
            password=password,
            first_name=member.given_name,
            last_name=member.family_name,
            email=f"{member.username}@demo.kizuna.example",
            role=member.role,
        )
        for member in staff
        if member.username not in existing
    ]
    for user in User.objects.bulk_create(missing):
        existing[user.username] = user
    ctx.staff = existing
    ctx.counts["staff"] = len(missing)
    progress(1, 1)


def create_catalog(ctx: LoadContext, progress: StageProgress) -> None:
    """Products and plans with their tier ranks, as an administrator sets them up."""
    for spec in ctx.config.products:
        product = Product.objects.filter(code=spec.code).first() or create_product(
            code=spec.code, name=spec.name, description=spec.description
        )
        for plan in spec.plans:
            if not Plan.objects.filter(product=product, code=plan.code).exists():
                create_plan(
                    product=product, code=plan.code, name=plan.name, tier_rank=plan.tier_rank
                )
    progress(1, 1)


def _import(kind: str) -> Callable[[LoadContext, StageProgress], None]:
    def run(ctx: LoadContext, progress: StageProgress) -> None:
        content = csv_bytes(kind, ctx.simulated)
        job, report = import_and_record(
            kind=kind,
            content=content,
            filename=f"demo-{kind}.csv",
            actor=ctx.admin,
            progress=progress,
        )
        if not report.ok:
            first = report.errors[0]
            raise DemoLoadError(
                _("The %(kind)s import was refused (row %(row)s, %(column)s: %(message)s).")
                % {"kind": kind, "row": first.row, "column": first.column, "message": first.message}
            )
        ctx.counts[kind] = report.created + report.updated
        if kind == "customers":
            wanted = [c.external_id for c in ctx.simulated]
            ctx.customer_ids = {
                str(external_id): pk
                for external_id, pk in Customer.objects.filter(external_id__in=wanted).values_list(
                    "external_id", "pk"
                )
            }
        ctx.counts[f"import_job_{kind}"] = job.pk

    return run


def assign_owners(ctx: LoadContext, progress: StageProgress) -> None:
    """The onboarding, adoption and expansion CSMs of each customer."""
    customers = Customer.objects.in_bulk(list(ctx.customer_ids.values()))
    with transaction.atomic():
        for n, c in enumerate(ctx.simulated, start=1):
            onboarding, adoption, expansion = c.owners
            update_customer(
                customer=customers[ctx.customer_ids[c.external_id]],
                actor=ctx.admin,
                onboarding_owner=ctx.staff[onboarding],
                adoption_owner=ctx.staff[adoption],
                expansion_owner=ctx.staff[expansion] if expansion else None,
            )
            if n % 50 == 0:
                progress(n, len(ctx.simulated))
    progress(len(ctx.simulated), len(ctx.simulated))


def record_handoffs(ctx: LoadContext, progress: StageProgress) -> None:
    """Sales handoffs of the customers that started in the last four months.

    The handoff service notes each on the timeline after commit, dated now; the demo then dates
    those entries on the day of the handoff (a callback registered after the service's runs
    after it).
    """
    pending = [c for c in ctx.simulated if c.handoff is not None]
    customers = Customer.objects.in_bulk([ctx.customer_ids[c.external_id] for c in pending])
    zone = ZoneInfo(settings.TIME_ZONE)
    handed: dict[int, datetime] = {}
    with transaction.atomic():
        for c in pending:
            assert c.handoff is not None
            handoff = record_handoff(
                customer=customers[ctx.customer_ids[c.external_id]],
                actor=ctx.staff["manager"],
                **c.handoff,
            )
            day = c.handoff["handed_off_on"]
            handed[handoff.pk] = datetime.combine(day, datetime.min.time(), zone).replace(hour=17)

        def backdate() -> None:
            for handoff_id, when in handed.items():
                TimelineEntry.objects.filter(
                    kind=TimelineKind.HANDOFF_RECORDED, payload__handoff_id=handoff_id
                ).update(occurred_at=when)

        transaction.on_commit(backdate)
    ctx.counts["handoffs"] = len(pending)
    progress(1, 1)


def write_timeline(ctx: LoadContext, progress: StageProgress) -> None:
    """Meetings, trainings, notes and NPS answers, as the CS team recorded them.

    NPS answers (no surveys app yet) are ``nps.answered`` entries with payload {"score": n}.
    """
    zone = ZoneInfo(settings.TIME_ZONE)
    customers = Customer.objects.in_bulk(list(ctx.customer_ids.values()))
    written = 0
    with transaction.atomic():
        for n, c in enumerate(ctx.simulated, start=1):
            customer = customers[ctx.customer_ids[c.external_id]]
            rng = np.random.default_rng([ctx.seed, c.number, 3])
            for h in c.happenings:
                if h.timeline_kind is None:
                    continue
                hour, quarter = int(rng.integers(9, 18)), int(rng.integers(0, 4))
                when = datetime.combine(h.day, datetime.min.time(), zone).replace(
                    hour=hour, minute=15 * quarter
                )
                actor = ctx.staff.get(h.actor) if h.actor else None
                if h.timeline_kind in MANUAL_TIMELINE_KINDS:
                    add_timeline_entry(
                        customer=customer, kind=h.timeline_kind, title=h.title, body=h.body,
                        occurred_at=when, actor=actor,
                    )  # fmt: skip
                else:
                    timeline.record(
                        customer_id=customer.pk, kind=h.timeline_kind, title=h.title, body=h.body,
                        occurred_at=when, actor=actor, payload=h.payload,
                    )  # fmt: skip
                written += 1
            if n % 25 == 0:
                progress(n, len(ctx.simulated))
    ctx.counts["timeline_entries"] = written
    progress(len(ctx.simulated), len(ctx.simulated))


def configure_usage(ctx: LoadContext, progress: StageProgress) -> None:
    """Key features for the feature usage rate; every event makes a user active."""
    usage = UsageSettings.load()
    save_usage_settings(
        qualifying_event_types=list(usage.qualifying_event_types),
        key_features=KEY_FEATURES,
        external_connection=usage.external_connection,
        external_table=usage.external_table,
        external_columns=dict(usage.external_columns),
    )
    progress(1, 1)


def _generator(ctx: LoadContext) -> tuple[Calendar, EventGenerator]:
    calendar = Calendar.of(
        start=ctx.history_start,
        end=ctx.today,
        zone=settings.TIME_ZONE,
        weekend_factor=ctx.config.activity.weekend_factor,
    )
    return calendar, EventGenerator(config=ctx.config, seed=ctx.seed, calendar=calendar)


def import_event_history(ctx: LoadContext, progress: StageProgress) -> None:
    """The events before the latest day, as one Parquet file through the bulk event import."""
    calendar, generator = _generator(ctx)
    cutoff = pa.scalar(calendar.day_start(ctx.latest_day), pa.int64()).cast(
        pa.timestamp("us", tz="UTC")
    )
    path = ctx.out / f"events-{ctx.history_start}-{ctx.latest_day - timedelta(days=1)}.parquet"
    writer = event_writer(path)
    latest: list[pa.Table] = []
    total = len(ctx.simulated)
    try:
        for start in range(0, total, 25):
            chunk = ctx.simulated[start : start + 25]
            table = generator.table(chunk, [generator.customer(c) for c in chunk])
            before = pc.less(table["event_time"], cutoff)
            writer.write_table(table.filter(before))
            latest.append(plain(table.filter(pc.invert(before))))
            progress(min(start + 25, total), total * 2)
    finally:
        writer.close()
    ctx.latest_events = pa.concat_tables(latest) if latest else None

    def report(phase: str, done: int, whole: int) -> None:
        share = done / whole if whole else 0.0
        progress(total + round(share * total), total * 2)

    result = import_event_file(path, user=ctx.admin, progress=report)
    if result.status not in (ImportStatus.DONE, ImportStatus.SKIPPED):
        first = result.errors[0].reason if result.errors else result.message
        raise DemoLoadError(_("The event import was refused: %(reason)s") % {"reason": first})
    ctx.counts["history_events"] = result.rows
    ctx.counts["event_import"] = result.import_id or 0
    path.unlink(missing_ok=True)  # the lake has them now


def ingest_latest_day(ctx: LoadContext, progress: StageProgress) -> None:
    """The latest day through the Segment-compatible API service, then the lake flush.

    Each customer's product users are placed in their account (``group``) and named
    (``identify``) first, as an SDK would do; then the day's ``track`` calls follow.
    """
    source, key = create_source(name=_unused_source_name(), created_by=ctx.admin)
    authorization = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    sent_at = datetime.combine(ctx.today, datetime.min.time(), ZoneInfo(settings.TIME_ZONE))
    messages = _identity_messages(ctx, sent_at) + _track_messages(ctx)
    stored = 0
    batches = range(0, len(messages), INGEST_BATCH)
    for n, start in enumerate(batches, start=1):
        body = orjson.dumps({"batch": messages[start : start + INGEST_BATCH]})
        accepted = ingest.accept(endpoint="batch", body=body, authorization=authorization)
        stored += accepted.stored
        progress(n, len(batches) + 1)
    result = flush_inbox()
    ctx.counts["latest_day_messages"] = stored
    ctx.counts["flushed_rows"] = result.rows_written
    ctx.counts["source"] = source.pk
    progress(len(batches) + 1, len(batches) + 1)


def _unused_source_name() -> str:
    name, n = SOURCE_NAME, 1
    while Source.objects.filter(name=name).exists():
        n += 1
        name = f"{SOURCE_NAME} {n}"
    return name


def _identity_messages(ctx: LoadContext, when: datetime) -> list[dict[str, Any]]:
    timestamp = (when - timedelta(hours=12)).isoformat()
    messages: list[dict[str, Any]] = []
    for c in ctx.simulated:
        if c.churn_date is not None:
            continue
        current = [p for p in c.people if p.product_user_id and p.ended_on is None]
        messages.extend(
            {
                "type": "identify", "userId": person.product_user_id, "timestamp": timestamp,
                "messageId": f"demo-identify-{person.product_user_id}",
                "traits": {"email": person.email, "name": person.name, "role": person.role},
            }
            for person in current
        )  # fmt: skip
        if current:
            messages.append({
                "type": "group", "userId": current[0].product_user_id, "groupId": c.external_id,
                "timestamp": timestamp, "messageId": f"demo-group-{c.external_id}",
                "traits": {"name": c.name, "segment": c.segment},
            })  # fmt: skip
    return messages


def _track_messages(ctx: LoadContext) -> list[dict[str, Any]]:
    table = ctx.latest_events
    if table is None or table.num_rows == 0:
        return []
    table = table.sort_by([("event_time", "ascending"), ("user_id", "ascending")])
    messages = []
    for n, row in enumerate(table.to_pylist()):
        properties: dict[str, Any] = {}
        if row["feature"]:
            properties["feature"] = row["feature"]
        if row["event_value"] is not None:
            properties["value"] = row["event_value"]
        messages.append({
            "type": "track", "event": row["event_type"], "userId": row["user_id"],
            "timestamp": row["event_time"].isoformat(), "properties": properties,
            "context": {"groupId": row["account_id"]},
            "messageId": f"demo-{ctx.latest_day.isoformat()}-{n:07d}",
        })  # fmt: skip
    return messages


def compute_metrics(ctx: LoadContext, progress: StageProgress) -> None:
    """The daily metric history of the last ``metric_months`` up to the latest day."""
    start = max(ctx.history_start, add_months(ctx.latest_day, -ctx.metric_months))

    def report(phase: str, done: int, total: int) -> None:
        progress(done, total)

    result = run_metrics(start, ctx.latest_day, progress=report)
    ctx.counts["metric_days"] = result.days
    ctx.counts["metric_rows"] = result.rows


def write_ground_truth(ctx: LoadContext, progress: StageProgress) -> None:
    """The hidden truth next to the data (``KIZUNA_DATA_DIR/demo``); Kizuna never reads it."""
    assert ctx.simulator is not None
    writer = TruthWriter(ctx.out, config=ctx.config)
    writer.add(ctx.simulated)
    writer.close(
        seed=ctx.seed, today=ctx.today.isoformat(), months=ctx.months,
        window=[ctx.history_start.isoformat(), ctx.today.isoformat()],
        stories={c.external_id: c.script for c in ctx.simulated if c.script},
    )  # fmt: skip
    progress(1, 1)


STAGES: list[Stage] = [
    Stage("simulate", gettext_lazy("Simulating the company"), simulate),
    Stage("staff", gettext_lazy("Demo logins"), create_staff),
    Stage("catalog", gettext_lazy("Products and plans"), create_catalog),
    Stage("customers", gettext_lazy("Importing customers"), _import("customers")),
    Stage("contacts", gettext_lazy("Importing contacts"), _import("contacts")),
    Stage("subscriptions", gettext_lazy("Importing subscriptions"), _import("subscriptions")),
    Stage("owners", gettext_lazy("Assigning CSMs"), assign_owners),
    Stage("handoffs", gettext_lazy("Sales handoffs"), record_handoffs),
    Stage("timeline", gettext_lazy("Timeline"), write_timeline),
    Stage("usage_settings", gettext_lazy("Usage settings"), configure_usage),
    Stage("event_history", gettext_lazy("Importing the event history"), import_event_history),
    Stage(
        "latest_day", gettext_lazy("Sending the latest day to the ingestion API"), ingest_latest_day
    ),
    Stage("metrics", gettext_lazy("Computing metrics"), compute_metrics),
    Stage("onboarding", gettext_lazy("Onboarding programs and plans"), load_onboarding),
    Stage(
        "lifecycle",
        gettext_lazy("Segments, touch models, CSM teams, lifecycle history and handoffs"),
        load_lifecycle,
    ),
    Stage(
        "health",
        gettext_lazy("Health scores, risk signals and the churn model"),
        load_health,
    ),
    Stage("playbooks", gettext_lazy("Playbooks and their last 90 days"), load_playbooks),
    Stage("ground_truth", gettext_lazy("Writing the ground truth"), write_ground_truth),
]


@dataclass(frozen=True)
class LoadSummary:
    """What ``load_demo`` created."""

    today: date
    customers: int
    in_service: int
    churned: int
    reactivated: int
    expanded: int
    contracted: int
    cross_sold: int
    subscriptions: int
    contacts: int
    timeline_entries: int
    events: int
    mrr: Decimal
    stories: dict[str, str]
    users: tuple[str, ...]
    truth: Path
    seconds: dict[str, float]
    password: str = DEMO_PASSWORD
    # The lifecycle stage: segments, CSM teams, changes replayed into history, handoffs waiting.
    segments: int = 0
    teams: int = 0
    lifecycle_changes: int = 0
    handoffs_pending: int = 0
    # The health and playbooks stages.
    health_scores: int = 0
    signals_open: int = 0
    model_auc: float | None = None
    playbooks: int = 0
    tasks_open: int = 0


def load_demo(
    *,
    seed: int = 7,
    customers: int = DEFAULT_CUSTOMERS,
    months: int = DEFAULT_MONTHS,
    today: date | None = None,
    metric_months: int | None = None,
    config: DemoConfig = DEFAULT_CONFIG,
    stages: list[Stage] | None = None,
    on_stage: Callable[[Stage], StageProgress] | None = None,
) -> LoadSummary:
    """Load the demo company into an empty database and return what was created.

    Raises ``DemoDataExistsError`` when any customer exists, ``DemoLoadError`` when a service
    refuses a stage. ``on_stage(stage)`` returns the progress callback of each stage as it
    starts. The same seed, size and ``today`` (default: the local date) give the same company.
    """
    if customers < 1 or months < 1:
        raise ValueError("customers and months must be at least 1")
    if Customer.objects.exists():
        raise DemoDataExistsError("the database already has customers")
    ctx = LoadContext(
        seed=seed,
        customers=customers,
        months=months,
        today=today or timezone.localdate(),
        config=config,
        metric_months=metric_months if metric_months is not None else months,
        out=Path(settings.DATA_DIR) / "demo",
    )
    ctx.out.mkdir(parents=True, exist_ok=True)
    for stage in stages if stages is not None else STAGES:
        progress = on_stage(stage) if on_stage else _quiet
        began = time.perf_counter()
        stage.run(ctx, progress)
        ctx.seconds[stage.key] = time.perf_counter() - began
    return _summary(ctx)


def _quiet(done: int, total: int) -> None:
    return None


def _summary(ctx: LoadContext) -> LoadSummary:
    today = ctx.today
    simulated = ctx.simulated
    kinds = [c.kinds() for c in simulated]
    in_service = [r for c in simulated for r in c.rows if r.start <= today < r.end]
    return LoadSummary(
        today=today,
        customers=len(simulated),
        in_service=sum(1 for c in simulated if any(r.start <= today < r.end for r in c.rows)),
        churned=sum(1 for c in simulated if c.stage == "churned"),
        reactivated=sum(1 for k in kinds if "reactivation" in k),
        expanded=sum(1 for k in kinds if k & {"upsell", "tier_up", "seats_added"}),
        contracted=sum(1 for k in kinds if k & {"downgrade", "tier_down"}),
        cross_sold=sum(1 for k in kinds if "cross_sell" in k),
        subscriptions=sum(len(c.rows) for c in simulated),
        contacts=sum(len(c.people) for c in simulated),
        timeline_entries=ctx.counts.get("timeline_entries", 0),
        events=ctx.counts.get("history_events", 0) + ctx.counts.get("flushed_rows", 0),
        mrr=sum((r.mrr for r in in_service), Decimal(0)),
        stories={c.script: c.name for c in simulated if c.script},
        users=tuple(member.username for member in ctx.config.staff),
        truth=ctx.out / TRUTH_DIR,
        seconds=dict(ctx.seconds),
        segments=ctx.counts.get("segments", 0),
        teams=ctx.counts.get("teams", 0),
        lifecycle_changes=ctx.counts.get("lifecycle_changes", 0),
        handoffs_pending=ctx.counts.get("handoffs_waiting", 0),
        health_scores=ctx.counts.get("health_scores", 0),
        signals_open=ctx.counts.get("signals_open", 0),
        model_auc=ctx.counts.get("model_auc_permille", 0) / 1000 or None,
        playbooks=ctx.counts.get("playbooks", 0),
        tasks_open=ctx.counts.get("tasks_open", 0),
    )
