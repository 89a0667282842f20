"""How ingestion is doing: counts for ``kizuna events stats`` and Settings → Sources.

- ``received`` = events waiting in the inbox + events the lake flush wrote + duplicates: every
  message an SDK delivered over HTTP, each retry counted once as a duplicate.
- ``lake`` = events the flush wrote (``LakeBatch.rows_written``) + rows of bulk imports
  (``EventImport.rows``, shown apart as ``imported``).
- ``duplicates`` = retries absorbed by the inbox (``IngestRejection`` rows with reason
  ``duplicate``) + retries the flush dropped as already delivered (``LakeBatch.duplicates``).
- ``rejected`` = messages of refused requests; ``rejected_by_reason`` splits them. A refused
  request that could not be parsed counts as one; refused keys are recorded at most once a
  minute per process and key, so ``auth`` undercounts a client that keeps retrying.
- ``last_hour`` is exact: inbox rows received in the last hour plus, read from the Parquet
  files of batches finished in the last hour, lake rows received in the last hour.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import duckdb
from django.db.models import Count, Max, Sum
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from kizuna.analytics import lake
from kizuna.analytics.ingest import Reason
from kizuna.analytics.models import (
    EventImport,
    InboxEvent,
    IngestRejection,
    LakeBatch,
    Source,
)

REASON_LABELS: dict[str, Promise] = {
    Reason.AUTH: _("Unknown or revoked write key"),
    Reason.INVALID_JSON: _("Malformed JSON"),
    Reason.INVALID_MESSAGE: _("Invalid message"),
    Reason.MESSAGE_TOO_LARGE: _("Message over 32 KB"),
    Reason.REQUEST_TOO_LARGE: _("Request over 500 KB"),
    Reason.BAD_ENCODING: _("Unreadable body encoding"),
    Reason.UNAVAILABLE: _("Inbox busy (the client retries)"),
    Reason.DUPLICATE: _("Duplicate (retry)"),
}
# Batches whose files are read to find each source's last event when its inbox is empty.
RECENT_BATCHES = 100


@dataclass(frozen=True)
class Rejection:
    """One refused request as Settings → Sources lists it."""

    created_at: datetime
    source_id: int | None
    source_name: str
    reason: str
    reason_label: str
    detail: str
    events: int


@dataclass(frozen=True)
class SourceOverview:
    """A source with its recent traffic, for Settings → Sources."""

    id: int
    name: str
    key_prefix: str
    active: bool
    created_at: datetime
    revoked_at: datetime | None
    group_id_trait: str
    events_last_hour: int
    last_event_at: datetime | None
    inbox: int
    last_errors: tuple[Rejection, ...]


def event_stats() -> dict[str, Any]:
    """Totals of ingestion (see the module docstring), with a per-source breakdown.

    Keys: received, inbox, lake, imported, duplicates, rejected, rejected_by_reason,
    last_hour, sources ({name: {inbox, last_hour, duplicates, rejected}}).
    """
    inbox = InboxEvent.objects.count()
    batches = LakeBatch.objects.filter(status=LakeBatch.Status.DONE).aggregate(
        rows=Sum("rows_written"), duplicates=Sum("duplicates")
    )
    flushed = batches["rows"] or 0
    imported = (
        EventImport.objects.filter(status=EventImport.Status.DONE).aggregate(rows=Sum("rows"))[
            "rows"
        ]
        or 0
    )
    by_reason: dict[str, int] = {}
    by_source_reason: dict[tuple[int | None, str], int] = {}
    for source_id, reason, events in IngestRejection.objects.values_list(
        "source_id", "reason"
    ).annotate(events=Sum("events")):
        by_reason[reason] = by_reason.get(reason, 0) + (events or 0)
        by_source_reason[(source_id, reason)] = events or 0
    duplicates = (batches["duplicates"] or 0) + by_reason.pop(Reason.DUPLICATE, 0)
    names = dict(Source.objects.values_list("id", "name"))
    inbox_by_source = dict(
        InboxEvent.objects.values_list("source_id").annotate(n=Count("id")).order_by()
    )
    last_hour_by_source, _last = _recent_traffic(since=timezone.now() - timedelta(hours=1))
    sources: dict[str, dict[str, int]] = {}
    for source_id, name in sorted(names.items(), key=lambda item: item[1]):
        sources[name] = {
            "inbox": inbox_by_source.get(source_id, 0),
            "last_hour": last_hour_by_source.get(source_id, 0),
            "duplicates": by_source_reason.get((source_id, Reason.DUPLICATE), 0),
            "rejected": sum(
                events
                for (owner, reason), events in by_source_reason.items()
                if owner == source_id and reason != Reason.DUPLICATE
            ),
        }
    return {
        "received": inbox + flushed + duplicates,
        "inbox": inbox,
        "lake": flushed + imported,
        "imported": imported,
        "duplicates": duplicates,
        "rejected": sum(by_reason.values()),
        "rejected_by_reason": dict(sorted(by_reason.items())),
        "last_hour": sum(last_hour_by_source.values()),
        "sources": sources,
    }


def recent_rejections(source: Source | int | None = None, limit: int = 20) -> list[Rejection]:
    """The latest refused requests, newest first (duplicates are not refusals: left out)."""
    rows = IngestRejection.objects.exclude(reason=Reason.DUPLICATE).select_related("source")
    if source is not None:
        rows = rows.filter(source_id=source.pk if isinstance(source, Source) else source)
    return [_rejection(row) for row in rows.order_by("-created_at", "-id")[:limit]]


def _rejection(row: IngestRejection) -> Rejection:
    return Rejection(
        created_at=row.created_at,
        source_id=row.source_id,
        source_name=row.source.name if row.source else "",
        reason=row.reason,
        reason_label=str(REASON_LABELS.get(row.reason, row.reason)),
        detail=row.detail,
        events=row.events,
    )


def sources_overview(errors_per_source: int = 3) -> list[SourceOverview]:
    """Every source with its events in the last hour, last event time and latest errors."""
    since = timezone.now() - timedelta(hours=1)
    last_hour, lake_last_event = _recent_traffic(since=since, last_event_batches=RECENT_BATCHES)
    inbox_rows = InboxEvent.objects.values_list("source_id").annotate(
        n=Count("id"), last=Max("received_at")
    )
    inbox = {source_id: (n, last) for source_id, n, last in inbox_rows.order_by()}
    errors: dict[int, list[Rejection]] = {}
    recent = (
        IngestRejection.objects.exclude(reason=Reason.DUPLICATE)
        .filter(source__isnull=False)
        .select_related("source")
        .order_by("-created_at", "-id")[:500]
    )
    for row in recent:
        listed = errors.setdefault(row.source_id or 0, [])
        if len(listed) < errors_per_source:
            listed.append(_rejection(row))
    overview = []
    for source in Source.objects.order_by("name"):
        waiting, inbox_last = inbox.get(source.id, (0, None))
        overview.append(
            SourceOverview(
                id=source.id,
                name=source.name,
                key_prefix=source.key_prefix,
                active=source.is_active,
                created_at=source.created_at,
                revoked_at=source.revoked_at,
                group_id_trait=source.group_id_trait,
                events_last_hour=last_hour.get(source.id, 0),
                last_event_at=inbox_last or lake_last_event.get(source.id),
                inbox=waiting,
                last_errors=tuple(errors.get(source.id, [])),
            )
        )
    return overview


def _recent_traffic(
    *, since: datetime, last_event_batches: int = 0
) -> tuple[dict[int, int], dict[int, datetime]]:
    """Per source: events received since ``since`` (inbox + lake) and the last receipt in the lake.

    Only the files of batches that could hold such events are read: those finished since
    ``since`` (and, for the last receipt, the latest ``last_event_batches`` batches).
    """
    counts: dict[int, int] = dict(
        InboxEvent.objects.filter(received_at__gte=since)
        .values_list("source_id")
        .annotate(n=Count("id"))
        .order_by()
    )
    recent_files = _batch_files(LakeBatch.objects.filter(finished_at__gte=since))
    last_files = (
        _batch_files(LakeBatch.objects.order_by("-id")[:last_event_batches])
        if last_event_batches
        else []
    )
    paths = sorted({*recent_files, *last_files})
    last_event: dict[int, datetime] = {}
    if not paths:
        return counts, last_event
    since_us = int(since.timestamp() * 1_000_000)
    con = duckdb.connect()
    try:
        con.execute("SET enable_progress_bar=false")
        con.execute("SET TimeZone='UTC'")
        rows = con.execute(
            "SELECT origin, count(*) FILTER (WHERE epoch_us(received_at) >= ?), max(received_at) "
            "FROM read_parquet(?) GROUP BY origin",
            [since_us, paths],
        ).fetchall()
    finally:
        con.close()
    for origin, recent, last in rows:
        kind, _colon, number = str(origin).partition(":")
        if kind != "source" or not number.isdigit():
            continue
        source_id = int(number)
        counts[source_id] = counts.get(source_id, 0) + int(recent)
        if last is not None:
            last_event[source_id] = last
    return counts, last_event


def _batch_files(batches: Any) -> list[str]:
    root = lake.lake_root()
    paths = []
    for files in batches.values_list("files", flat=True):
        for relative in files or []:
            path = root / relative
            if path.exists():
                paths.append(str(path))
    return paths
