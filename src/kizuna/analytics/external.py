"""The optional external source: a read-only events table in the company's own warehouse.

Settings → Metrics names it with an Ibis connection string (``postgres://user@host/db``,
``duckdb:///path/events.duckdb``, or any backend Ibis supports), a table (``schema.table`` for a
table outside the default schema) and a column mapping (lake column → the table's column).
Every metrics or KPI computation reads the table's rows of the days it needs: the date filter
and the column selection run in the warehouse, the rows travel to the engine (DuckDB or Spark)
as an Arrow table and are joined with the lake there. Rows are therefore pulled once per
computation; running the metrics inside the warehouse itself is future work.

Kizuna only reads: the connection is opened read-only where the backend allows it (DuckDB
``read_only``, PostgreSQL ``default_transaction_read_only``) and only SELECTs are sent.
Naive timestamps are wall-clock times in the company's time zone (``TIME_ZONE``), as in
imported files.
"""

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import pyarrow as pa
import pyarrow.compute as pc
from django.conf import settings
from django.utils.translation import gettext as _

from kizuna.analytics import lake
from kizuna.analytics.models import UsageSettings

ORIGIN = "external"
# Lake columns a mapping may fill, and their defaults when it does not.
TARGETS = (
    "event_time",
    "event_type",
    "account_key",
    "user_id",
    "anonymous_id",
    "event_value",
    "feature",
    "message_id",
    "kind",
    "properties",
)
ALIASES = {"account_id": "account_key"}
REQUIRED = ("event_time", "event_type")
_TEXT_DEFAULTS = {
    "account_key": "",
    "user_id": "",
    "anonymous_id": "",
    "feature": "",
    # No id in the warehouse: events from there are never de-duplicated by id.
    "message_id": "",
    "kind": "track",
    "properties": "{}",
}


class ExternalSourceError(Exception):
    """The external source is configured but cannot be read; the message says why."""


@dataclass(frozen=True)
class ExternalConfig:
    """Where the external events are: connection string, table, lake column → table column."""

    connection: str
    table: str
    columns: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, usage: UsageSettings | None = None) -> "ExternalConfig | None":
        """The configured source, or None when no connection is set."""
        usage = usage or UsageSettings.load()
        if not usage.external_connection.strip():
            return None
        columns = {
            ALIASES.get(str(target).strip(), str(target).strip()): str(column).strip()
            for target, column in (usage.external_columns or {}).items()
        }
        return cls(usage.external_connection.strip(), usage.external_table.strip(), columns)


def redacted(connection: str) -> str:
    """The connection string without its password (for messages)."""
    parts = urlsplit(connection)
    if parts.password is None:
        return connection
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    netloc = f"{parts.username or ''}:***@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


# ---------------------------------------------------------------------------------------------
# Checking


def mapping_problems(config: ExternalConfig) -> list[str]:
    """What is wrong with the configuration itself, without connecting."""
    problems: list[str] = []
    if not config.table:
        problems.append(_("Name the table that holds the events."))
    unknown = sorted(set(config.columns) - set(TARGETS))
    if unknown:
        problems.append(
            _("Unknown target column(s) %(unknown)s; use %(targets)s.")
            % {"unknown": ", ".join(unknown), "targets": ", ".join(TARGETS)}
        )
    missing = [target for target in REQUIRED if not config.columns.get(target)]
    if not (config.columns.get("account_key") or config.columns.get("user_id")):
        missing.append("account_key / user_id")
    if missing:
        problems.append(
            _("Map the column(s) %(missing)s to columns of the table.")
            % {"missing": ", ".join(missing)}
        )
    return problems


def check_external_source(config: ExternalConfig | None = None) -> list[str]:
    """Problems with the external source (connect, table, columns, types); empty when it works.

    ``config`` defaults to the saved settings; no source configured means no problem.
    """
    config = config or ExternalConfig.from_settings()
    if config is None:
        return []
    problems = mapping_problems(config)
    if problems:
        return problems
    try:
        backend = _connect(config)
    except ExternalSourceError as exc:
        return [str(exc)]
    try:
        table = _table(backend, config)
        problems = _schema_problems(config, table)
        if not problems:
            _select(config, table, None, None).limit(1).to_pyarrow()
    except ExternalSourceError as exc:
        problems = [str(exc)]
    except Exception as exc:
        problems = [_("Reading %(table)s failed: %(error)s") % _error(config, exc)]
    finally:
        _disconnect(backend)
    return problems


# ---------------------------------------------------------------------------------------------
# Reading


def external_events(
    con: ibis.BaseBackend, start: date | None = None, end: date | None = None
) -> ir.Table | None:
    """The configured warehouse table mapped to the lake's columns, or None when none is set.

    Only the rows whose ``event_date`` (in the company's time zone) is in ``[start, end]`` are
    read. The result is an in-memory table for the engine ``con`` with exactly the lake's
    columns (``lake.EVENT_SCHEMA``); raises ``ExternalSourceError`` when the source is
    configured but cannot be read (numbers without it would be wrong, not just smaller).
    """
    config = ExternalConfig.from_settings()
    if config is None:
        return None
    return ibis.memtable(fetch_external_events(config, start, end))


def fetch_external_events(
    config: ExternalConfig, start: date | None = None, end: date | None = None
) -> pa.Table:
    """The source's events of ``[start, end]`` (days in the company's zone) as EVENT_SCHEMA."""
    problems = mapping_problems(config)
    if problems:
        raise ExternalSourceError(" ".join(problems))
    backend = _connect(config)
    try:
        table = _table(backend, config)
        problems = _schema_problems(config, table)
        if problems:
            raise ExternalSourceError(" ".join(problems))
        try:
            rows = _select(config, table, start, end).to_pyarrow()
        except Exception as exc:  # driver errors differ per backend
            raise ExternalSourceError(
                _("Reading %(table)s failed: %(error)s") % _error(config, exc)
            ) from exc
    finally:
        _disconnect(backend)
    return _as_lake_rows(rows)


def _connect(config: ExternalConfig) -> ibis.BaseBackend:
    scheme = urlsplit(config.connection).scheme.lower()
    options: dict[str, Any] = {"read_only": True} if scheme == "duckdb" else {}
    try:
        backend = ibis.connect(config.connection, **options)
        if scheme in {"postgres", "postgresql"}:
            backend.raw_sql("SET default_transaction_read_only = on")
    except Exception as exc:
        raise ExternalSourceError(
            _("Cannot connect to %(connection)s: %(error)s")
            % {"connection": redacted(config.connection), "error": _first_line(exc)}
        ) from exc
    return backend


def _disconnect(backend: ibis.BaseBackend) -> None:
    # Closing a read-only connection cannot lose anything: a failure to close is ignored.
    with contextlib.suppress(Exception):
        backend.disconnect()


def _table(backend: ibis.BaseBackend, config: ExternalConfig) -> ir.Table:
    database, _dot, name = config.table.rpartition(".")
    try:
        return backend.table(name, database=database or None)
    except Exception as exc:
        raise ExternalSourceError(
            _("Cannot read the table %(table)s: %(error)s")
            % {"table": config.table, "error": _first_line(exc)}
        ) from exc


def _schema_problems(config: ExternalConfig, table: ir.Table) -> list[str]:
    schema = table.schema()
    problems = [
        _("Column %(column)s (for %(target)s) is not in %(table)s; its columns are: %(columns)s.")
        % {
            "column": column,
            "target": target,
            "table": config.table,
            "columns": ", ".join(schema.names),
        }
        for target, column in config.columns.items()
        if column not in schema
    ]
    if problems:
        return problems
    time_type = schema[config.columns["event_time"]]
    if not (time_type.is_timestamp() or time_type.is_date()):
        problems.append(
            _("Column %(column)s (event_time) must be a timestamp or date, not %(type)s.")
            % {"column": config.columns["event_time"], "type": time_type}
        )
    value_column = config.columns.get("event_value")
    if value_column and not schema[value_column].is_numeric():
        problems.append(
            _("Column %(column)s (event_value) must be numeric, not %(type)s.")
            % {"column": value_column, "type": schema[value_column]}
        )
    return problems


def _select(
    config: ExternalConfig, table: ir.Table, start: date | None, end: date | None
) -> ir.Table:
    """The warehouse query: rows of the period with an event time and type, mapped columns."""
    event_time = table[config.columns["event_time"]]
    event_type = table[config.columns["event_type"]]
    conditions = [event_time.notnull(), event_type.notnull()]
    # event_date is the day in the company's zone: [start 00:00, end + 1 00:00) there.
    if start is not None:
        conditions.append(event_time >= _bound(start, event_time.type()))
    if end is not None:
        conditions.append(event_time < _bound(end + timedelta(days=1), event_time.type()))
    selected = {target: table[column] for target, column in config.columns.items()}
    return table.filter(*conditions).select(**selected)


def _bound(day: date, column_type: dt.DataType) -> Any:
    local_midnight = datetime.combine(day, time(0), tzinfo=lake.company_zone())
    if column_type.is_date():
        return day
    assert isinstance(column_type, dt.Timestamp)
    if column_type.timezone is None:
        return ibis.literal(local_midnight.replace(tzinfo=None), type=dt.Timestamp())
    return ibis.literal(local_midnight.astimezone(UTC), type=dt.Timestamp(timezone="UTC"))


def _as_lake_rows(rows: pa.Table) -> pa.Table:
    """Warehouse rows (mapped column names) as lake rows: EVENT_SCHEMA, times in UTC."""
    count = rows.num_rows
    event_time = _utc(rows["event_time"].combine_chunks())
    columns: dict[str, pa.Array] = {
        "origin": pa.repeat(ORIGIN, count),
        "event_type": _text(rows["event_type"]),
        "event_time": event_time,
        "event_date": lake.event_dates(event_time),
        "received_at": pa.nulls(count, pa.timestamp("us", "UTC")),
        "event_value": (
            rows["event_value"].cast(pa.float64()).combine_chunks()
            if "event_value" in rows.column_names
            else pa.nulls(count, pa.float64())
        ),
    }
    for name, default in _TEXT_DEFAULTS.items():
        if name in rows.column_names:
            columns[name] = pc.fill_null(_text(rows[name]), default)
        else:
            columns[name] = pa.repeat(default, count)
    return pa.table(columns).select(lake.EVENT_SCHEMA.names).cast(lake.EVENT_SCHEMA)


def _utc(values: pa.Array) -> pa.Array:
    """Timestamps as UTC microseconds; naive ones (and dates) are in the company's zone."""
    if pa.types.is_date(values.type):
        values = values.cast(pa.timestamp("us"))
    if values.type.tz is None:
        values = pc.assume_timezone(
            values.cast(pa.timestamp("us")), settings.TIME_ZONE, ambiguous="earliest",
            nonexistent="earliest",
        )  # fmt: skip
    return values.cast(pa.timestamp("us", "UTC"))


def _text(values: pa.ChunkedArray) -> pa.Array:
    combined = values.combine_chunks()
    if pa.types.is_string(combined.type):
        return combined
    if pa.types.is_large_string(combined.type) or pa.types.is_string_view(combined.type):
        return combined.cast(pa.string())
    if isinstance(combined.type, pa.ExtensionType):  # e.g. JSON: its storage is text
        combined = combined.storage
    return combined.cast(pa.string())


def _error(config: ExternalConfig, exc: BaseException) -> dict[str, str]:
    return {"table": config.table, "error": _first_line(exc)}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]
