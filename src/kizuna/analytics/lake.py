"""The event lake: product events as Parquet files, one folder per day.

Layout under ``KIZUNA_DATA_DIR`` (default ``var/``)::

    lake/events/2026-11-30/inbox-000042.parquet      moved from the HTTP inbox (LakeBatch 42)
    lake/events/2026-11-30/import-000007.parquet     from a bulk file (EventImport 7)
    lake/metrics/2026-11-30/metrics.parquet          daily metric history (one file per day)

Folders are plain dates (no ``key=value``) so that no engine adds a partition column of its
own guessing; every file carries ``event_date`` itself. A file is written under a temporary
name and renamed into place, so readers never see half a file, and rewriting the same batch
(after a crash) replaces it rather than adding a copy.
"""

import os
from collections.abc import Iterable
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from django.conf import settings

EVENT_SCHEMA = pa.schema(
    [
        pa.field("message_id", pa.string()),
        pa.field("origin", pa.string()),  # "source:<id>" or "import:<id>"
        pa.field("kind", pa.string()),  # track, page, screen, identify, group
        pa.field("event_type", pa.string()),
        pa.field("event_time", pa.timestamp("us", tz="UTC")),
        pa.field("event_date", pa.date32()),  # in the company's time zone (TIME_ZONE)
        pa.field("received_at", pa.timestamp("us", tz="UTC")),
        pa.field("user_id", pa.string()),
        pa.field("anonymous_id", pa.string()),
        pa.field("account_key", pa.string()),
        pa.field("event_value", pa.float64()),
        pa.field("feature", pa.string()),
        pa.field("properties", pa.string()),  # JSON text
    ]
)

METRIC_SCHEMA = pa.schema(
    [
        pa.field("customer_id", pa.int64()),
        pa.field("metric", pa.string()),
        pa.field("day", pa.date32()),
        pa.field("value", pa.float64()),
    ]
)

USAGE_KINDS = ("track", "page", "screen")


def lake_root() -> Path:
    return Path(settings.DATA_DIR) / "lake"


def events_dir() -> Path:
    return lake_root() / "events"


def metrics_dir() -> Path:
    return lake_root() / "metrics"


def company_zone() -> ZoneInfo:
    return ZoneInfo(settings.TIME_ZONE)


def event_dates(event_time: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """The calendar day of each UTC timestamp in the company's time zone."""
    local = pc.local_timestamp(event_time.cast(pa.timestamp("us", tz=settings.TIME_ZONE)))
    return local.cast(pa.date32())


def event_files() -> list[Path]:
    root = events_dir()
    return sorted(root.glob("*/*.parquet")) if root.exists() else []


def metric_files() -> list[Path]:
    root = metrics_dir()
    return sorted(root.glob("*/*.parquet")) if root.exists() else []


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with exactly ``schema``'s columns, in its order and types."""
    return table.select(schema.names).cast(schema)


def write_atomically(table: pa.Table, path: Path) -> None:
    """Write ``table`` to ``path`` so that readers see either nothing or the whole file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(table, temporary, compression="zstd")
    with open(temporary, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def write_events(table: pa.Table, file_stem: str) -> list[str]:
    """Split ``table`` (EVENT_SCHEMA) by ``event_date`` into one file per day; return the paths.

    Rewriting with the same ``file_stem`` replaces the earlier files, which is what makes a
    repeated lake flush or import exactly-once.
    """
    table = conform(table, EVENT_SCHEMA)
    written: list[str] = []
    if table.num_rows == 0:
        return written
    days = pc.unique(table["event_date"]).to_pylist()
    for day in sorted(days):
        part = table.filter(pc.equal(table["event_date"], pa.scalar(day, pa.date32())))
        part = part.sort_by([("event_time", "ascending")])
        path = events_dir() / day.isoformat() / f"{file_stem}.parquet"
        write_atomically(part, path)
        written.append(str(path.relative_to(lake_root())))
    return written


def remove_files(relative_paths: Iterable[str]) -> None:
    for relative in relative_paths:
        (lake_root() / relative).unlink(missing_ok=True)


def write_metric_day(table: pa.Table, day: date) -> str:
    """Replace the metric history of ``day`` with ``table`` (METRIC_SCHEMA)."""
    path = metrics_dir() / day.isoformat() / "metrics.parquet"
    write_atomically(conform(table, METRIC_SCHEMA), path)
    return str(path.relative_to(lake_root()))
