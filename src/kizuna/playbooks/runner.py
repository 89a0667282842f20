"""The playbook runner: from trigger occurrences to runs, and from runs to executed actions.

One cycle (``run_cycle``, every worker cycle and once more after the daily jobs):

1. timeline triggers — entries written since the cursor (re-reading the last few thousand ids,
   since an entry can commit after a later one was read) become runs;
2. dated triggers — each live playbook's days since its last pass up to today (a metric trigger
   waits for that day's metric history) become runs;
3. due actions are executed.

Idempotency is the database's: a run is inserted with ``ON CONFLICT DO NOTHING`` against the
unique (playbook, customer, occurrence) constraint and only the rows actually inserted get
executions, so two workers, a retry or a re-read fire a playbook once per customer and
occurrence. Executions are claimed with ``SELECT … FOR UPDATE SKIP LOCKED`` (PostgreSQL) and a
lease; a transactional action's writes commit together with its "done" mark, so it happens
once. A failing action is retried with backoff (1 min, 5 min, 30 min, 2 h) and failed after
five attempts, visibly, without holding back the run's other actions.

A playbook fires only for occurrences at or after its ``enabled_at`` (no flood of history).
Held-out customers (``is_held_out``, a hash, so the simulation agrees) get a run with status
*held out* and no actions.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import F, Max, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from kizuna.core.models import TimelineEntry
from kizuna.playbooks import triggers
from kizuna.playbooks.actions import ActionContext, SkipAction, action_type
from kizuna.playbooks.models import (
    ActionExecution,
    ExecutionStatus,
    Playbook,
    PlaybookAction,
    PlaybookRun,
    RunnerCursor,
    RunStatus,
    TriggerKind,
)
from kizuna.playbooks.triggers import Occurrence

__all__ = [
    "BACKOFF",
    "MAX_ATTEMPTS",
    "CycleResult",
    "Decision",
    "Occurrence",
    "decide",
    "fire",
    "is_held_out",
    "retry_execution",
    "run_cycle",
    "run_due",
]

logger = logging.getLogger(__name__)

BACKOFF = (
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=12),
)
MAX_ATTEMPTS = 5
# A claimed execution is another worker's again if not settled by then (a crashed worker).
LEASE = timedelta(minutes=10)
TIMELINE_CURSOR = "timeline"
# Timeline ids re-read every cycle: an entry may commit after a higher id was read.
TIMELINE_RESCAN_IDS = 5000
# The most days a dated trigger catches up after the worker was stopped.
CATCH_UP_DAYS = 31
UNSETTLED = (ExecutionStatus.WAITING, ExecutionStatus.RETRYING)
_INSERT_BATCH = 100


@dataclass(frozen=True)
class CycleResult:
    """What one cycle did: runs fired (of which held out) and actions by outcome."""

    runs: int = 0
    held_out: int = 0
    actions_done: int = 0
    actions_failed: int = 0
    actions_retrying: int = 0
    actions_skipped: int = 0


@dataclass(frozen=True)
class Decision:
    """An occurrence the playbook applies to, and whether the customer is held out."""

    occurrence: Occurrence
    held_out: bool


# --- Deciding ------------------------------------------------------------------------------


def is_held_out(
    playbook_id: int | None, customer_id: int, occurrence_key: str, share: float
) -> bool:
    """Whether this occurrence is in the playbook's holdout: a stable hash below ``share``."""
    if share <= 0:
        return False
    if share >= 1:
        return True
    seed = f"{playbook_id or 0}:{customer_id}:{occurrence_key}".encode()
    value = int.from_bytes(hashlib.sha256(seed).digest()[:8], "big") / 2**64
    return value < share


def decide(playbook: Playbook, occurrences: Iterable[Occurrence]) -> list[Decision]:
    """The occurrences the playbook applies to (segments, touch models and condition as of each
    occurrence's day), each marked held out or not. Shared by the runner and the simulation."""
    by_day: dict[date, list[Occurrence]] = defaultdict(list)
    seen: set[tuple[int, str]] = set()
    for occurrence in occurrences:
        if (occurrence.customer_id, occurrence.key) in seen:
            continue
        seen.add((occurrence.customer_id, occurrence.key))
        by_day[occurrence.day].append(occurrence)
    decisions: list[Decision] = []
    cooldown = triggers.cooldown_days(playbook)
    last_fired = (
        _last_fired(playbook, min(by_day), cooldown, {key for _customer, key in seen})
        if cooldown and by_day
        else {}
    )
    for day in sorted(by_day):
        found = by_day[day]
        allowed = triggers.eligible(playbook, [item.customer_id for item in found], day)
        for item in found:
            if item.customer_id not in allowed:
                continue
            if cooldown:
                before = last_fired.get(item.customer_id)
                if before is not None and (day - before).days < cooldown:
                    continue
                last_fired[item.customer_id] = day
            decisions.append(
                Decision(
                    occurrence=item,
                    held_out=is_held_out(
                        playbook.pk, item.customer_id, item.key, playbook.holdout_share
                    ),
                )
            )
    return decisions


def _last_fired(
    playbook: Playbook, first_day: date, cooldown: int, deciding: set[str]
) -> dict[int, date]:
    """Each customer's latest run of the playbook within ``cooldown`` days before ``first_day``
    (held-out runs count: the customer was picked then, and left alone on purpose), leaving out
    the runs of the occurrences being decided (a simulation re-decides fired ones)."""
    if playbook.pk is None:
        return {}
    rows = (
        PlaybookRun.objects.filter(
            playbook_id=playbook.pk,
            triggered_on__gt=first_day - timedelta(days=cooldown),
            triggered_on__lte=first_day,
        )
        .exclude(occurrence_key__in=sorted(deciding))
        .values("customer_id")
        .annotate(last=Max("triggered_on"))
    )
    return {row["customer_id"]: row["last"] for row in rows}


# --- Firing --------------------------------------------------------------------------------


def _insert_runs(rows: Sequence[tuple[Any, ...]]) -> list[int]:
    """INSERT the runs, skipping those that exist (the unique constraint); the new ids."""
    meta = PlaybookRun._meta
    names = [
        "playbook",
        "customer",
        "occurrence_key",
        "triggered_on",
        "trigger_summary",
        "holdout",
        "status",
        "error",
        "created_at",
        "finished_at",
    ]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(str(getattr(meta.get_field(name), "column", name))) for name in names)
    ids: list[int] = []
    with connection.cursor() as cursor:
        for start in range(0, len(rows), _INSERT_BATCH):
            batch = rows[start : start + _INSERT_BATCH]
            values = ", ".join(["(" + ", ".join(["%s"] * len(names)) + ")"] * len(batch))
            cursor.execute(
                f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES {values} "  # noqa: S608 - names from the model
                f"ON CONFLICT DO NOTHING RETURNING {quote(str(meta.pk.column))}",
                [value for row in batch for value in row],
            )
            ids.extend(int(row[0]) for row in cursor.fetchall())
    return ids


def _steps(playbook: Playbook, actions: Sequence[PlaybookAction] | None) -> list[PlaybookAction]:
    if actions is not None:
        return sorted(actions, key=lambda step: step.position)
    if playbook.pk is None:
        return []
    return list(playbook.actions.order_by("position", "id"))


def fire(
    *,
    playbook: Playbook,
    occurrences: Iterable[Occurrence],
    now: datetime | None = None,
    actions: Sequence[PlaybookAction] | None = None,
) -> list[PlaybookRun]:
    """Fire ``playbook`` for the occurrences it applies to; returns the runs this call created.

    Occurrences already fired are left alone (by the database, whatever else runs at the
    same time). Each new run gets one execution per action, due ``delay_days`` after ``now``;
    a held-out run gets none.
    """
    now = now or timezone.now()
    pending = list(occurrences)
    if not pending:
        return []
    done = set(
        PlaybookRun.objects.filter(
            playbook=playbook, occurrence_key__in={item.key for item in pending}
        ).values_list("customer_id", "occurrence_key")
    )
    pending = [item for item in pending if (item.customer_id, item.key) not in done]
    decisions = decide(playbook, pending)
    if not decisions:
        return []
    steps = _steps(playbook, actions)
    adapt_date = connection.ops.adapt_datefield_value
    adapt_moment = connection.ops.adapt_datetimefield_value
    rows = []
    for decision in decisions:
        item = decision.occurrence
        settled = decision.held_out or not steps
        status = (
            RunStatus.HOLDOUT
            if decision.held_out
            else (RunStatus.DONE if settled else RunStatus.PENDING)
        )
        rows.append(
            (
                playbook.pk,
                item.customer_id,
                item.key[:100],
                adapt_date(item.day),
                item.summary[:300],
                decision.held_out,
                str(status),
                "",
                adapt_moment(now),
                adapt_moment(now) if settled else None,
            )
        )
    with transaction.atomic():
        ids = _insert_runs(rows)
        runs = list(PlaybookRun.objects.filter(pk__in=ids).order_by("id"))
        ActionExecution.objects.bulk_create(
            [
                ActionExecution(
                    run=run,
                    position=step.position,
                    kind=step.kind,
                    params=dict(step.params or {}),
                    due_at=now + timedelta(days=step.delay_days),
                )
                for run in runs
                if not run.holdout
                for step in steps
            ],
            batch_size=500,
        )
    return runs


# --- The cycle -----------------------------------------------------------------------------


def _live(kinds: Iterable[str]) -> list[Playbook]:
    return list(
        Playbook.objects.filter(enabled=True, paused=False, trigger_kind__in=list(kinds)).order_by(
            "pk"
        )
    )


def _timeline_pass(now: datetime) -> list[PlaybookRun]:
    playbooks = _live([TriggerKind.TIMELINE])
    upto = TimelineEntry.objects.aggregate(top=Max("id"))["top"] or 0
    cursor, _created = RunnerCursor.objects.get_or_create(name=TIMELINE_CURSOR)
    after = max(0, cursor.position - TIMELINE_RESCAN_IDS)
    runs: list[PlaybookRun] = []
    if upto > after:
        for playbook in playbooks:
            # Only what happened since the playbook was switched on (or resumed).
            since = playbook.enabled_at or now
            try:
                found = triggers.timeline_occurrences([playbook], after, upto, since=since)[0]
                runs += fire(playbook=playbook, occurrences=found, now=now)
            except Exception:  # one broken playbook must not stop the others
                logger.exception(
                    "playbook %s (%s) could not be evaluated", playbook.pk, playbook.key
                )
    RunnerCursor.objects.filter(name=TIMELINE_CURSOR, position__lt=upto).update(position=upto)
    return runs


def _dated_days(playbook: Playbook, today: date) -> list[date]:
    """The days a dated playbook has still to be evaluated for, oldest first."""
    first = timezone.localdate(playbook.enabled_at) if playbook.enabled_at else today
    first = max(first, today - timedelta(days=CATCH_UP_DAYS))
    cursor = RunnerCursor.objects.filter(name=f"dated:{playbook.pk}").first()
    if cursor is not None and cursor.day is not None:
        first = max(first, cursor.day + timedelta(days=1))
    last = today
    if playbook.trigger_kind == TriggerKind.METRIC:
        available = [
            day
            for day in (
                today - timedelta(days=offset) for offset in range((today - first).days + 1)
            )
            if triggers.metric_day_available(day)
        ]
        if not available:
            return []
        last = max(available)
    return [first + timedelta(days=offset) for offset in range((last - first).days + 1)]


def _dated_pass(now: datetime) -> list[PlaybookRun]:
    today = timezone.localdate(now)
    runs: list[PlaybookRun] = []
    for playbook in _live([TriggerKind.CUSTOMER_DATE, TriggerKind.SCHEDULE, TriggerKind.METRIC]):
        try:
            days = _dated_days(playbook, today)
            for day in days:
                runs += fire(
                    playbook=playbook, occurrences=triggers.occurrences_on(playbook, day), now=now
                )
        except Exception:  # one broken playbook must not stop the others; tried again later
            logger.exception("playbook %s (%s) could not be evaluated", playbook.pk, playbook.key)
            continue
        if days:
            name = f"dated:{playbook.pk}"
            RunnerCursor.objects.get_or_create(name=name, defaults={"day": days[-1]})
            RunnerCursor.objects.filter(name=name).filter(
                Q(day__isnull=True) | Q(day__lt=days[-1])
            ).update(day=days[-1])
    return runs


def run_cycle(*, now: datetime | None = None) -> CycleResult:
    """One pass of the runner: timeline triggers, dated triggers, then due actions."""
    now = now or timezone.now()
    runs = _timeline_pass(now) + _dated_pass(now)
    outcomes = _run_due(now)
    result = CycleResult(
        runs=len(runs),
        held_out=sum(1 for run in runs if run.holdout),
        actions_done=outcomes[ExecutionStatus.DONE],
        actions_failed=outcomes[ExecutionStatus.FAILED],
        actions_retrying=outcomes[ExecutionStatus.RETRYING],
        actions_skipped=outcomes[ExecutionStatus.SKIPPED],
    )
    if result.runs or sum(outcomes.values()):
        logger.info("playbooks: %s", result)
    return result


# --- Executing -----------------------------------------------------------------------------


def _claim(now: datetime, limit: int) -> list[int]:
    """Take up to ``limit`` due executions for this worker (a lease; others skip them)."""
    with transaction.atomic():
        due = (
            ActionExecution.objects.filter(
                status__in=UNSETTLED,
                due_at__lte=now,
                run__playbook__enabled=True,
                run__playbook__paused=False,
            )
            .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
            .order_by("due_at", "run_id", "position")
        )
        if connection.features.has_select_for_update_skip_locked:
            due = due.select_for_update(skip_locked=True, of=("self",))
        ids = list(due.values_list("pk", flat=True)[:limit])
        if ids:
            ActionExecution.objects.filter(pk__in=ids).update(next_attempt_at=now + LEASE)
    return ids


def _settle(execution_id: int, **fields: Any) -> int:
    return ActionExecution.objects.filter(pk=execution_id, status__in=UNSETTLED).update(**fields)


def _error_text(error: BaseException) -> str:
    text = str(error).strip() or error.__class__.__name__
    return text[:2000]


def _execute(execution_id: int, now: datetime) -> str | None:
    """Run one execution; returns its new status (``None`` when someone else settled it)."""
    execution = (
        ActionExecution.objects.select_related("run__playbook", "run__customer")
        .filter(pk=execution_id, status__in=UNSETTLED)
        .first()
    )
    if execution is None:
        return None
    run = execution.run
    status: str | None
    try:
        action = action_type(execution.kind)
    except KeyError:
        action = None
    try:
        if action is None:
            raise LookupError(_("Unknown action “{kind}”.").format(kind=execution.kind))
        ctx = ActionContext(
            run=run, execution=execution, customer=run.customer, playbook=run.playbook, now=now
        )
        if action.transactional:
            with transaction.atomic():
                locked = (
                    ActionExecution.objects.select_for_update()
                    .filter(pk=execution_id, status__in=UNSETTLED)
                    .first()
                )
                if locked is None:
                    return None
                result = action.execute(ctx)
                _settle(
                    execution_id,
                    status=ExecutionStatus.DONE,
                    result=result,
                    done_at=now,
                    next_attempt_at=None,
                    last_error="",
                    attempts=F("attempts") + 1,
                )
        else:
            result = action.execute(ctx)
            _settle(
                execution_id,
                status=ExecutionStatus.DONE,
                result=result,
                done_at=now,
                next_attempt_at=None,
                last_error="",
                attempts=F("attempts") + 1,
            )
        status = ExecutionStatus.DONE
    except SkipAction as skip:
        _settle(
            execution_id,
            status=ExecutionStatus.SKIPPED,
            result={"skipped": str(skip)},
            done_at=now,
            next_attempt_at=None,
            last_error=str(skip)[:2000],
            attempts=F("attempts") + 1,
        )
        status = ExecutionStatus.SKIPPED
    except Exception as error:  # any failure of an action is recorded and retried
        attempts = execution.attempts + 1
        failed = attempts >= MAX_ATTEMPTS
        status = ExecutionStatus.FAILED if failed else ExecutionStatus.RETRYING
        logger.warning(
            "playbook action %s (execution %s, attempt %s) failed: %s",
            execution.kind,
            execution_id,
            attempts,
            error,
        )
        _settle(
            execution_id,
            status=status,
            attempts=attempts,
            last_error=_error_text(error),
            next_attempt_at=None if failed else now + BACKOFF[min(attempts, len(BACKOFF)) - 1],
        )
    _settle_run(run.pk, now)
    return status


def _settle_run(run_id: int, now: datetime) -> None:
    """Done (or failed, when an action failed) once no action is waiting; pending otherwise."""
    rows = list(
        ActionExecution.objects.filter(run_id=run_id)
        .order_by("position")
        .values_list("status", "position", "last_error")
    )
    if any(status in UNSETTLED for status, _position, _error in rows):
        PlaybookRun.objects.filter(pk=run_id).exclude(status=RunStatus.PENDING).exclude(
            status=RunStatus.HOLDOUT
        ).update(status=RunStatus.PENDING, finished_at=None, error="")
        return
    failed = [
        f"#{position + 1}: {error}"
        for status, position, error in rows
        if status == ExecutionStatus.FAILED
    ]
    PlaybookRun.objects.filter(pk=run_id).exclude(status=RunStatus.HOLDOUT).update(
        status=RunStatus.FAILED if failed else RunStatus.DONE,
        finished_at=now,
        error="\n".join(failed)[:5000],
    )


def _run_due(now: datetime, limit: int = 500) -> dict[str, int]:
    outcomes: dict[str, int] = defaultdict(int)
    for execution_id in _claim(now, limit):
        status = _execute(execution_id, now)
        if status is not None:
            outcomes[status] += 1
    return outcomes


def run_due(*, now: datetime | None = None, limit: int = 500) -> int:
    """Execute the actions that are due (and retries whose time has come); returns how many
    were attempted. Each in its own transaction; one failing never holds back the others."""
    return sum(_run_due(now or timezone.now(), limit).values())


def retry_execution(execution_id: int, *, now: datetime | None = None) -> ActionExecution:
    """Try a failed (or retrying) action again now, with one attempt left if it had none."""
    now = now or timezone.now()
    execution = ActionExecution.objects.get(pk=execution_id)
    if execution.status in (ExecutionStatus.FAILED, ExecutionStatus.RETRYING):
        ActionExecution.objects.filter(pk=execution_id).update(
            status=ExecutionStatus.RETRYING,
            next_attempt_at=now,
            attempts=min(execution.attempts, MAX_ATTEMPTS - 1),
        )
        _execute(execution_id, now)
    execution.refresh_from_db()
    return execution
