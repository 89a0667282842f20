"""Bulk import of event files (CSV, NDJSON, Parquet) into the event lake: ``kizuna ingest``.

DuckDB does the work, set-based and spilling to disk, so a file of any size imports with
bounded memory and no Python object per row:

1. **read**: one pass parses the file into a scratch DuckDB table of typed values plus one flag
   per check (CSV and NDJSON values are read as text, so that each can be checked and reported as
   written). The table keeps the file's order, so a row's position is its line number.
2. **validate**: one aggregate counts the rows per day and the bad rows; when there is any, the
   first ``MAX_REPORTED_ERRORS`` problems are listed with line, column, value and reason, and
   nothing is written.
3. **write**: the rows, sorted by time, stream in record batches into one Parquet file per day
   (exactly ``lake.EVENT_SCHEMA``) in a staging folder inside the lake; then every file is
   renamed to ``lake/events/<day>/import-000007.parquet``. If anything fails, the files already
   moved are removed again and the import is recorded as failed: readers never see half an
   import.

A file whose content (SHA-256) was already imported is skipped unless ``force`` is given, so a
cron job that runs twice counts nothing twice. Rows without a ``message_id`` get one made of the
file's hash and the line number: re-importing the same file gives the same ids.
"""

import codecs
import contextlib
import csv
import gzip
import hashlib
import io
import os
import queue
import re
import shutil
import tempfile
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext as _

from kizuna.analytics import lake
from kizuna.analytics.models import EventImport
from kizuna.core.models import User

# (phase, done, total): phases "reading" and "validating" count percent (total 100), "writing"
# counts days. total 0 means not known yet.
Progress = Callable[[str, int, int], None]

MAX_REPORTED_ERRORS = 100
# Rows per record batch (and Parquet row group) when writing the lake.
BATCH_ROWS = 131_072
# DuckDB's memory for one import; beyond it, DuckDB spills to the scratch folder on disk.
MEMORY_LIMIT = "512MB"
# Interrupted imports (a killed process) older than this are cleaned up by the next import.
STALE_AFTER = timedelta(days=1)

# The columns a file may give, by the name Kizuna knows them under (the mapping's targets).
TARGETS = (
    "account_id",
    "event_time",
    "event_type",
    "user_id",
    "event_value",
    "message_id",
    "feature",
    "anonymous_id",
    "properties",
)
TARGET_ALIASES = {"account_key": "account_id"}
STANDARD_COLUMNS = ("account_id", "event_time", "event_type", "user_id", "event_value")

FORMATS = ("csv", "ndjson", "parquet")
_SUFFIX_FORMATS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
    ".json": "ndjson",
    ".parquet": "parquet",
    ".pq": "parquet",
}
# The first line of a file holds a row: where its data starts (CSV: the header is line 1).
_FIRST_LINE = {"csv": 2, "ndjson": 1, "parquet": 1}


class ImportStatus(StrEnum):
    DONE = "done"  # written to the lake
    FAILED = "failed"  # rejected or failed: nothing written
    SKIPPED = "skipped"  # the same content was imported before: nothing written
    CHECKED = "checked"  # dry run: the file is valid, nothing written


@dataclass(frozen=True)
class EventRowError:
    """One problem: the line (CSV: the header is line 1; NDJSON: line; Parquet: row number),
    the file's column, the value as written, and why. ``line`` is None for the whole file."""

    line: int | None
    column: str | None
    value: str
    reason: str


@dataclass(frozen=True)
class EventImportResult:
    """What an import did, or why it did nothing."""

    file_name: str
    file_format: str
    status: ImportStatus
    content_hash: str = ""
    import_id: int | None = None
    rows: int = 0
    days: tuple[tuple[date, int], ...] = ()
    files: tuple[str, ...] = ()
    errors: tuple[EventRowError, ...] = ()
    bad_rows: int = 0
    error_count: int = 0
    duplicate_of: int | None = None
    message: str = ""
    ignored_columns: tuple[str, ...] = ()
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status != ImportStatus.FAILED

    def to_dict(self) -> dict[str, Any]:
        """The result as plain JSON types."""
        data = asdict(self)
        data["status"] = str(self.status)
        data["ok"] = self.ok
        data["days"] = [{"day": day.isoformat(), "rows": rows} for day, rows in self.days]
        data["files"] = list(self.files)
        data["errors"] = [asdict(error) for error in self.errors]
        data["ignored_columns"] = list(self.ignored_columns)
        return data


class EventImportError(ValueError):
    """A problem the caller must fix before anything is read (bad arguments)."""


class _RejectedError(Exception):
    def __init__(
        self, errors: list[EventRowError], *, bad_rows: int = 0, error_count: int = 0
    ) -> None:
        super().__init__(errors[0].reason if errors else "rejected")
        self.errors = errors
        self.bad_rows = bad_rows
        self.error_count = error_count or len(errors)


def _file_error(reason: str, line: int | None = None, value: str = "") -> _RejectedError:
    return _RejectedError([EventRowError(line, None, value, reason)])


# ---------------------------------------------------------------------------------------------
# Arguments


def parse_mapping(pairs: Iterable[str]) -> dict[str, str]:
    """``["event_type=action"]`` -> ``{"event_type": "action"}`` (target = the file's column)."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        target, sep, column = pair.partition("=")
        if not sep or not target.strip() or not column.strip():
            raise EventImportError(
                _("A mapping is written target=column, e.g. event_type=action (got %(pair)s).")
                % {"pair": pair}
            )
        mapping[target.strip()] = column.strip()
    return mapping


def detect_format(path: Path, fmt: str | None = None) -> str:
    """The file's format: ``fmt`` when given, else from the name (``.csv``, ``.ndjson.gz``…)."""
    if fmt:
        if fmt not in FORMATS:
            raise EventImportError(
                _("Unknown format %(format)s: use one of %(formats)s.")
                % {"format": fmt, "formats": ", ".join(FORMATS)}
            )
        return fmt
    suffixes = [suffix.lower() for suffix in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes.pop()
    detected = _SUFFIX_FORMATS.get(suffixes[-1]) if suffixes else None
    if detected is None:
        raise EventImportError(
            _("Cannot tell the format of %(name)s from its name: give --format (%(formats)s).")
            % {"name": path.name, "formats": ", ".join(FORMATS)}
        )
    return detected


def file_sha256(path: Path) -> str:
    """The SHA-256 of the file's bytes (hex)."""
    return _fingerprint(path, check_utf8=False)[0]


def _fingerprint(path: Path, *, check_utf8: bool) -> tuple[str, bool]:
    """The file's SHA-256 and, when asked, whether its text is UTF-8 (one pass over it)."""
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")() if check_utf8 else None
    utf8 = check_utf8
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
            if decoder is not None:
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError:
                    decoder, utf8 = None, False
    if decoder is not None:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            utf8 = False
    return digest.hexdigest(), utf8


def _normalised(name: str) -> str:
    text = unicodedata.normalize("NFKC", name).strip().lower()
    return re.sub(r"[\s\-]+", "_", text)


# ---------------------------------------------------------------------------------------------
# The import


def import_event_file(
    path: Path | str,
    mapping: Mapping[str, str] | None = None,
    fmt: str | None = None,
    force: bool = False,
    progress: Progress | None = None,
    user: User | None = None,
    dry_run: bool = False,
) -> EventImportResult:
    """Import one event file into the lake, all rows or none; record it as an ``EventImport``.

    ``mapping`` maps a target column (``TARGETS``) to the file's column. Raises
    ``EventImportError`` for bad arguments and ``OSError`` when the file cannot be read; every
    problem with the file's content comes back in the result (status failed, with errors).
    A file already imported (same SHA-256) is skipped unless ``force``. ``dry_run`` validates
    and reports the rows per day without writing or recording anything.
    """
    started = time.monotonic()
    path = Path(path)
    file_format = detect_format(path, fmt)
    report = progress or _ignore_progress
    # A .gz file's text is checked while it is read (the hash is of the compressed bytes).
    check_utf8 = file_format == "csv" and path.suffix.lower() != ".gz"
    content_hash, utf8 = _fingerprint(path, check_utf8=check_utf8)
    if file_format == "csv" and not check_utf8:
        utf8 = _is_utf8(path)
    base = EventImportResult(
        file_name=path.name,
        file_format=file_format,
        status=ImportStatus.FAILED,
        content_hash=content_hash,
    )

    if not force and not dry_run:
        previous = (
            EventImport.objects.filter(content_hash=content_hash, status=EventImport.Status.DONE)
            .order_by("-id")
            .first()
        )
        if previous is not None:
            message = _(
                "Already imported as import #%(id)d on %(date)s (%(rows)s rows): nothing written. "
                "Use --force to import it again (its events would then count twice)."
            ) % {
                "id": previous.pk,
                "date": timezone.localtime(previous.created_at).strftime("%Y-%m-%d %H:%M"),
                "rows": f"{previous.rows:,}",
            }
            return replace(
                base,
                status=ImportStatus.SKIPPED,
                duplicate_of=previous.pk,
                rows=previous.rows,
                message=message,
                seconds=time.monotonic() - started,
            )

    _remove_interrupted_imports()
    with _scratch_database() as (con, work):
        try:
            source = _open_source(con, path, file_format, work, utf8, report)
            columns = _resolve_columns(source, mapping or {})
            _check(con, columns, source, report)
            rows, days = _validate(con, columns, source, report)
        except _RejectedError as rejected:
            return _rejected(base, rejected, user, dry_run, time.monotonic() - started)
        ignored = tuple(
            name for name in source.names if name not in {c.source for c in columns.values()}
        )
        if dry_run:
            return replace(
                base,
                status=ImportStatus.CHECKED,
                rows=rows,
                days=days,
                ignored_columns=ignored,
                seconds=time.monotonic() - started,
            )
        event_import = EventImport.objects.create(
            file_name=path.name,
            content_hash=content_hash,
            status=EventImport.Status.FAILED,
            rows=rows,
            errors=[
                _error_dict(EventRowError(None, None, "", _("interrupted before it finished")))
            ],
            created_by=user,
        )
        try:
            files = _write(con, event_import, content_hash, file_format, len(days), report)
        except (OSError, duckdb.Error) as exc:
            reason = _("Writing to the lake failed: %(error)s") % {"error": _first_line(exc)}
            EventImport.objects.filter(pk=event_import.pk).update(
                errors=[_error_dict(EventRowError(None, None, "", reason))], files=[]
            )
            return replace(
                base,
                status=ImportStatus.FAILED,
                import_id=event_import.pk,
                rows=rows,
                errors=(EventRowError(None, None, "", reason),),
                error_count=1,
                seconds=time.monotonic() - started,
            )
    return replace(
        base,
        status=ImportStatus.DONE,
        import_id=event_import.pk,
        rows=rows,
        days=days,
        files=tuple(files),
        ignored_columns=ignored,
        seconds=time.monotonic() - started,
    )


def _ignore_progress(phase: str, done: int, total: int) -> None:
    return None


def _error_dict(error: EventRowError) -> dict[str, Any]:
    return asdict(error)


def _rejected(
    base: EventImportResult,
    rejected: _RejectedError,
    user: User | None,
    dry_run: bool,
    seconds: float,
) -> EventImportResult:
    import_id = None
    if not dry_run:
        import_id = EventImport.objects.create(
            file_name=base.file_name,
            content_hash=base.content_hash,
            status=EventImport.Status.FAILED,
            errors=[_error_dict(error) for error in rejected.errors],
            created_by=user,
        ).pk
    return replace(
        base,
        status=ImportStatus.FAILED,
        import_id=import_id,
        errors=tuple(rejected.errors),
        bad_rows=rejected.bad_rows,
        error_count=rejected.error_count,
        seconds=seconds,
    )


@contextlib.contextmanager
def _scratch_database() -> Iterator[tuple[duckdb.DuckDBPyConnection, Path]]:
    """An in-memory DuckDB that spills to a scratch folder under DATA_DIR (not /tmp: RAM)."""
    scratch_root = Path(settings.DATA_DIR) / "tmp"
    scratch_root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="event-import-", dir=scratch_root))
    con = duckdb.connect(
        ":memory:",
        config={
            "threads": settings.KIZUNA_DUCKDB_THREADS,
            "memory_limit": MEMORY_LIMIT,
            "temp_directory": str(work / "spill"),
            "preserve_insertion_order": True,  # row order = file order = line numbers
        },
    )
    try:
        con.execute(f"SET TimeZone = {_literal(settings.TIME_ZONE)}")
        con.execute("SET enable_progress_bar = true; SET enable_progress_bar_print = false")
        yield con, work
    finally:
        con.close()
        shutil.rmtree(work, ignore_errors=True)


@contextlib.contextmanager
def _watch(con: duckdb.DuckDBPyConnection, phase: str, report: Progress) -> Iterator[None]:
    """Report DuckDB's progress on the running statement (percent) until the block ends."""
    if report is _ignore_progress:
        yield
        return
    finished = threading.Event()

    def poll() -> None:
        while not finished.wait(0.25):
            percent = con.query_progress()
            if percent >= 0:
                report(phase, int(percent), 100)

    watcher = threading.Thread(target=poll, daemon=True)
    report(phase, 0, 100)
    watcher.start()
    try:
        yield
    finally:
        finished.set()
        watcher.join()
        report(phase, 100, 100)


def _sql_error(exc: duckdb.Error, file_format: str) -> _RejectedError:
    """A DuckDB error reading the file, as a file-level error with its line when known."""
    text = str(exc)
    line_match = re.search(r"CSV Error on Line: (\d+)", text) or re.search(r"\bin line (\d+)", text)
    line = int(line_match.group(1)) if line_match else None
    columns = re.search(r"Expected Number of Columns: (\d+) Found: (\d+)", text)
    original = re.search(r"Original Line: (.*)", text)
    value = original.group(1)[:200] if original else ""
    if columns:
        reason = _("expected %(expected)s columns, found %(found)s") % {
            "expected": columns.group(1),
            "found": columns.group(2),
        }
    elif file_format == "parquet":
        reason = _("not a readable Parquet file: %(error)s") % {"error": _first_line(exc)}
    elif file_format == "ndjson":
        reason = _("not valid NDJSON (one JSON object per line): %(error)s") % {
            "error": _first_line(exc)
        }
    else:
        reason = _("not a readable CSV file: %(error)s") % {"error": _first_line(exc)}
    return _RejectedError([EventRowError(line, None, value, reason)])


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = re.sub(r"^[\w ]+ Error: ", "", text)
    # Do not show the scratch folder's paths.
    return re.sub(r'"?/[^"\s]*event-import-[^"\s]*"?', "", text)[:300]


# ---------------------------------------------------------------------------------------------
# Reading: a view ``raw`` with ``_not_object`` and the file's columns (f0, f1…) as they are:
# text for CSV and NDJSON, native types for Parquet.


@dataclass(frozen=True)
class _Source:
    file_format: str
    names: tuple[str, ...]  # the file's column names, in order
    types: dict[str, str]  # name -> DuckDB type in view ``raw``
    raw_names: dict[str, str]  # name -> column name in view ``raw``
    numbered: bool  # whether ``raw`` has ``_row`` (0-based position in the file)


def _open_source(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    file_format: str,
    work: Path,
    utf8: bool,
    report: Progress,
) -> _Source:
    if path.stat().st_size == 0:
        raise _file_error(_("The file is empty."))
    # DuckDB reads a path with * ? [ as a glob: give it a plain name of its own.
    suffix = "".join(path.suffixes[-2:]) if path.suffix.lower() == ".gz" else path.suffix
    link = work / f"source{suffix.lower()}"
    link.symlink_to(path.resolve())
    if file_format == "csv":
        return _open_csv(con, link, work, utf8)
    if file_format == "ndjson":
        return _open_ndjson(con, link, report)
    return _open_parquet(con, link)


def _open_binary(path: Path) -> io.BufferedIOBase:
    if path.suffix.lower() == ".gz":
        return gzip.open(path, "rb")
    return path.open("rb")


def _is_utf8(path: Path) -> bool:
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        with _open_binary(path) as handle:
            while chunk := handle.read(1 << 20):
                decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _to_utf8(path: Path, target: Path) -> Path:
    """Copy a Shift_JIS (cp932) file to ``target`` as UTF-8, streaming."""
    decoder = codecs.getincrementaldecoder("cp932")()
    offset = 0
    try:
        with _open_binary(path) as source, target.open("w", encoding="utf-8") as out:
            while chunk := source.read(1 << 20):
                out.write(decoder.decode(chunk))
                offset += len(chunk)
            out.write(decoder.decode(b"", final=True))
    except UnicodeDecodeError as exc:
        raise _file_error(
            _("The file is neither UTF-8 nor Shift_JIS text (bad byte at offset %(offset)d).")
            % {"offset": offset + exc.start}
        ) from None
    return target


def _open_csv(con: duckdb.DuckDBPyConnection, path: Path, work: Path, utf8: bool) -> _Source:
    if not utf8:
        path = _to_utf8(path, work / "source-utf8.csv")
    with _open_binary(path) as handle:
        head = handle.read(1 << 16).removeprefix(codecs.BOM_UTF8)
    text = codecs.getincrementaldecoder("utf-8")(errors="replace").decode(head, final=False)
    header = text.splitlines()[0] if text.strip() else ""
    if not header.strip():
        raise _file_error(_("The file is empty."))
    delimiter = max(",\t;", key=lambda candidate: (header.count(candidate), candidate == ","))
    names = next(csv.reader([header], delimiter=delimiter))
    names = [name.strip() or f"column {index + 1}" for index, name in enumerate(names)]
    # The header is read here, not sniffed: DuckDB then parses strictly, so a row with a
    # missing or extra cell is an error naming its line, not a silent shift.
    columns = ", ".join(f"{_literal(f'f{index}')}: 'VARCHAR'" for index in range(len(names)))
    con.execute(
        "CREATE VIEW raw AS SELECT false AS _not_object, * FROM read_csv("  # noqa: S608 - names generated here, values quoted by _literal
        f"{_literal(str(path))}, columns = {{{columns}}}, header = true, auto_detect = false, "
        f"delim = {_literal(delimiter)}, quote = '\"', escape = '\"', strict_mode = true, "
        "null_padding = false)"
    )
    return _Source(
        file_format="csv",
        names=tuple(names),
        types=dict.fromkeys(names, "VARCHAR"),
        raw_names={name: f"f{index}" for index, name in enumerate(names)},
        numbered=False,
    )


def _open_ndjson(con: duckdb.DuckDBPyConnection, path: Path, report: Progress) -> _Source:
    try:
        with _watch(con, "reading", report):
            con.execute(
                f"CREATE TABLE src AS SELECT json FROM read_ndjson_objects({_literal(str(path))})"  # noqa: S608 - names generated here, values quoted by _literal
            )
        keys = con.execute(
            "SELECT key FROM (SELECT unnest(json_keys(json)) AS key, rowid AS r FROM src "
            "WHERE json_type(json) = 'OBJECT') GROUP BY key ORDER BY min(r), key"
        ).fetchall()
    except duckdb.Error as exc:
        raise _sql_error(exc, "ndjson") from None
    names = [str(key) for (key,) in keys]
    selected = []
    for index, name in enumerate(names):
        # A JSON pointer: "/" then the key with ~ and / escaped (RFC 6901).
        json_path = _literal("/" + name.replace("~", "~0").replace("/", "~1"))
        # Values as written: strings unquoted, numbers and objects as their JSON text.
        selected.append(
            f"CASE json_type(json, {json_path}) WHEN 'VARCHAR' THEN json_extract_string(json, "
            f"{json_path}) WHEN 'NULL' THEN NULL ELSE CAST(json_extract(json, {json_path}) "
            f"AS VARCHAR) END AS {_ident(f'f{index}')}"
        )
    columns = "".join(f", {expression}" for expression in selected)
    con.execute(
        "CREATE VIEW raw AS SELECT rowid AS _row, "  # noqa: S608 - names generated here, values quoted by _literal
        f"coalesce(json_type(json) <> 'OBJECT', true) AS _not_object{columns} FROM src"
    )
    return _Source(
        file_format="ndjson",
        names=tuple(names),
        types=dict.fromkeys(names, "VARCHAR"),
        raw_names={name: f"f{index}" for index, name in enumerate(names)},
        numbered=True,
    )


def _open_parquet(con: duckdb.DuckDBPyConnection, path: Path) -> _Source:
    read = f"read_parquet({_literal(str(path))}, file_row_number = true)"
    try:
        described = con.execute(f"DESCRIBE SELECT * FROM {read}").fetchall()  # noqa: S608 - names generated here, values quoted by _literal
    except duckdb.Error as exc:
        raise _sql_error(exc, "parquet") from None
    described = [row for row in described if row[0] != "file_row_number"]
    names = [str(row[0]) for row in described]
    selected = "".join(
        f", {_ident(name)} AS {_ident(f'f{index}')}" for index, name in enumerate(names)
    )
    con.execute(
        f"CREATE VIEW raw AS SELECT file_row_number AS _row, false AS _not_object{selected} "  # noqa: S608 - names generated here, values quoted by _literal
        f"FROM {read}"
    )
    return _Source(
        file_format="parquet",
        names=tuple(names),
        types={str(row[0]): str(row[1]) for row in described},
        raw_names={name: f"f{index}" for index, name in enumerate(names)},
        numbered=True,
    )


# ---------------------------------------------------------------------------------------------
# Columns


@dataclass(frozen=True)
class _Column:
    target: str
    source: str  # the file's column name (shown in errors)
    raw: str  # its name in view ``raw``
    type: str  # its DuckDB type


def _resolve_columns(source: _Source, mapping: Mapping[str, str]) -> dict[str, _Column]:
    """Target -> the file column it comes from: the mapping first, then same-named columns."""
    errors: list[EventRowError] = []
    explicit: dict[str, str] = {}
    for given_target, column in mapping.items():
        target = TARGET_ALIASES.get(given_target.strip(), given_target.strip())
        if target not in TARGETS:
            errors.append(
                EventRowError(
                    None,
                    given_target,
                    column,
                    _("%(target)s is not a column Kizuna imports; use one of: %(targets)s")
                    % {"target": given_target, "targets": ", ".join(TARGETS)},
                )
            )
            continue
        found = _find_column(source.names, column)
        if found is None:
            errors.append(
                EventRowError(
                    None,
                    column,
                    "",
                    _(
                        "column %(column)s (mapped to %(target)s) is not in the file; "
                        "its columns are: %(columns)s"
                    )
                    % {
                        "column": column,
                        "target": target,
                        "columns": ", ".join(source.names) or "-",
                    },
                )
            )
            continue
        explicit[target] = found
    if errors:
        raise _RejectedError(errors)

    by_name = {TARGET_ALIASES.get(_normalised(n), _normalised(n)): n for n in source.names}
    chosen: dict[str, _Column] = {}
    for target in TARGETS:
        name = explicit.get(target) or by_name.get(target)
        if name is not None:
            chosen[target] = _Column(target, name, source.raw_names[name], source.types[name])

    missing = [target for target in ("event_time", "event_type") if target not in chosen]
    if "account_id" not in chosen and "user_id" not in chosen:
        missing.append("account_id / user_id")
    if missing:
        raise _file_error(
            _(
                "The file has no %(missing)s column (its columns are: %(columns)s). "
                "Name the columns with a mapping, e.g. --map event_type=action."
            )
            % {"missing": ", ".join(missing), "columns": ", ".join(source.names) or "-"}
        )
    return chosen


def _find_column(names: Iterable[str], wanted: str) -> str | None:
    names = list(names)
    if wanted in names:
        return wanted
    normalised = _normalised(wanted)
    return next((name for name in names if _normalised(name) == normalised), None)


# ---------------------------------------------------------------------------------------------
# Validation: table ``checked`` holds the parsed values (p_<target>) and one flag per check
# (e_<check>); the file's own values are read again only to report problems.

_CHECKS = (
    # (check, column target shown, reason code)
    ("not_object", None, "not_object"),
    ("time_missing", "event_time", "required"),
    ("time_invalid", "event_time", "bad_time"),
    ("type_missing", "event_type", "required"),
    ("who_missing", "account_id", "who"),
    ("value_invalid", "event_value", "bad_number"),
    ("properties_invalid", "properties", "bad_json"),
)


def _reason(code: str) -> str:
    reasons = {
        "not_object": _("the line is not a JSON object"),
        "required": _("is required"),
        "bad_time": _(
            "is not a date and time (use ISO 8601 such as 2026-11-01T08:30:00+09:00, "
            "2026-11-01 08:30 in the company's time zone, or epoch seconds or milliseconds)"
        ),
        "who": _("account_id or user_id is required"),
        "bad_number": _("is not a number"),
        "bad_json": _("is not a JSON object"),
    }
    return reasons[code]


_TIMESTAMP_TYPES = ("TIMESTAMP", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS", "DATE")
_NUMERIC = re.compile(
    r"^(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|UHUGEINT"
    r"|FLOAT|DOUBLE|DECIMAL.*)$"
)


def _text_sql(column: _Column) -> str:
    """The value as trimmed text, NULL when empty."""
    value = column.raw if column.type == "VARCHAR" else f"CAST({column.raw} AS VARCHAR)"
    return f"nullif(trim({value}), '')"


def _time_sql(column: _Column) -> str:
    """The value as TIMESTAMPTZ (naive values are in the company's zone: the session's)."""
    if column.type == "TIMESTAMP WITH TIME ZONE":
        return column.raw
    if column.type in _TIMESTAMP_TYPES:
        return f"CAST(CAST({column.raw} AS TIMESTAMP) AS TIMESTAMPTZ)"
    if _NUMERIC.match(column.type):
        number = f"CAST({column.raw} AS DOUBLE)"
        return (
            f"CASE WHEN {number} >= 1e8 AND {number} < 1e11 THEN to_timestamp({number}) "
            f"WHEN {number} >= 1e11 AND {number} < 1e14 "
            f"THEN timezone('UTC', epoch_ms(CAST({column.raw} AS BIGINT))) END"
        )
    text = _text_sql(column)
    # ISO 8601 with or without zone first (the common case), then epoch seconds / millis.
    return (
        f"coalesce(TRY_CAST({text} AS TIMESTAMPTZ), CASE "
        f"WHEN regexp_full_match({text}, '[0-9]{{9,10}}(\\.[0-9]{{1,6}})?') "
        f"THEN to_timestamp(CAST({text} AS DOUBLE)) "
        f"WHEN regexp_full_match({text}, '[0-9]{{12,13}}') "
        f"THEN timezone('UTC', epoch_ms(CAST({text} AS BIGINT))) END)"
    )


def _number_sql(column: _Column) -> str:
    if _NUMERIC.match(column.type):
        return f"CAST({column.raw} AS DOUBLE)"
    return f"TRY_CAST({_text_sql(column)} AS DOUBLE)"


def _properties_sql(column: _Column) -> str:
    if column.type.startswith(("STRUCT", "MAP")):
        return f"CAST(to_json({column.raw}) AS VARCHAR)"
    return _text_sql(column)


def _present_sql(column: _Column | None) -> str:
    """True when the file gives a value (text: not blank)."""
    if column is None:
        return "false"
    if column.type == "VARCHAR":
        return f"(nullif(trim({column.raw}), '') IS NOT NULL)"
    return f"({column.raw} IS NOT NULL)"


def _check(
    con: duckdb.DuckDBPyConnection,
    columns: Mapping[str, _Column],
    source: _Source,
    report: Progress,
) -> None:
    """Read the file once into table ``checked``: parsed values (p_…) and check flags (e_…).

    Rows keep the file's order (``preserve_insertion_order``), so ``rowid`` is the position.
    """

    def text(target: str) -> str:
        return _text_sql(columns[target]) if target in columns else "CAST(NULL AS VARCHAR)"

    parsed = {
        "event_time": _time_sql(columns["event_time"]),
        "event_type": text("event_type"),
        "account_key": text("account_id"),
        "user_id": text("user_id"),
        "anonymous_id": text("anonymous_id"),
        "feature": text("feature"),
        "message_id": text("message_id"),
        "event_value": (
            _number_sql(columns["event_value"])
            if "event_value" in columns
            else "CAST(NULL AS DOUBLE)"
        ),
        "properties": (
            _properties_sql(columns["properties"])
            if "properties" in columns
            else "CAST(NULL AS VARCHAR)"
        ),
    }
    checks = {
        "not_object": "_not_object",
        "time_missing": "NOT _not_object AND NOT g_time",
        "time_invalid": "NOT _not_object AND g_time AND p_event_time IS NULL",
        "type_missing": "NOT _not_object AND p_event_type IS NULL",
        "who_missing": "NOT _not_object AND p_account_key IS NULL AND p_user_id IS NULL",
        "value_invalid": (
            "NOT _not_object AND g_value AND (p_event_value IS NULL OR NOT isfinite(p_event_value))"
        ),
        "properties_invalid": (
            "NOT _not_object AND p_properties IS NOT NULL AND NOT coalesce("
            "json_valid(p_properties) AND json_type(p_properties) = 'OBJECT', false)"
        ),
    }
    parsed_sql = ", ".join(f"{expression} AS p_{name}" for name, expression in parsed.items())
    given = (
        f"{_present_sql(columns['event_time'])} AS g_time, "
        f"{_present_sql(columns.get('event_value'))} AS g_value"
    )
    kept = ", ".join(f"p_{name}" for name in parsed)
    flags = ", ".join(f"({condition}) AS e_{name}" for name, condition in checks.items())
    statement = (
        f"CREATE TABLE checked AS SELECT {kept}, CAST(p_event_time AS DATE) AS p_event_date, "  # noqa: S608 - names generated here, values quoted by _literal
        f"{flags} FROM (SELECT _not_object, {parsed_sql}, {given} FROM raw)"
    )
    try:
        with _watch(con, "reading", report):
            con.execute(statement)
    except duckdb.Error as exc:
        raise _sql_error(exc, source.file_format) from None


def _validate(
    con: duckdb.DuckDBPyConnection,
    columns: Mapping[str, _Column],
    source: _Source,
    report: Progress,
) -> tuple[int, tuple[tuple[date, int], ...]]:
    """Rows and rows per day of a valid file; raise ``_RejectedError`` listing the problems."""
    flags = [f"e_{check}" for check, _target, _code in _CHECKS]
    any_bad = " OR ".join(flags)
    counts = ", ".join(f"count(*) FILTER (WHERE {flag})" for flag in flags)
    with _watch(con, "validating", report):
        # One pass: rows per day and problems per check.
        per_day = con.execute(
            f"SELECT p_event_date, count(*), count(*) FILTER (WHERE {any_bad}), {counts} "  # noqa: S608 - names generated here, values quoted by _literal
            "FROM checked GROUP BY p_event_date"
        ).fetchall()
    rows = sum(int(values[1]) for values in per_day)
    bad_rows = sum(int(values[2]) for values in per_day)
    error_count = sum(int(value) for values in per_day for value in values[3:])
    if rows == 0:
        raise _file_error(_("The file has no rows."))
    if bad_rows:
        raise _RejectedError(
            _list_errors(con, columns, source, flags),
            bad_rows=bad_rows,
            error_count=error_count,
        )
    days = sorted((day, int(count)) for day, count, *_rest in per_day)
    return rows, tuple(days)


def _list_errors(
    con: duckdb.DuckDBPyConnection,
    columns: Mapping[str, _Column],
    source: _Source,
    flags: list[str],
) -> list[EventRowError]:
    """The first MAX_REPORTED_ERRORS problems, with the values as the file has them."""
    listed = con.execute(
        f"SELECT rowid, {', '.join(flags)} FROM checked WHERE {' OR '.join(flags)} "  # noqa: S608 - names generated here, values quoted by _literal
        f"ORDER BY rowid LIMIT {MAX_REPORTED_ERRORS}"
    ).fetchall()
    shown_targets = [target for target in TARGETS if target in columns]
    numbered = "raw"
    if not source.numbered:
        # Only a rejected CSV file is read a second time, to show its values by line.
        con.execute("CREATE TABLE numbered AS SELECT * FROM raw")
        numbered = "(SELECT rowid AS _row, * FROM numbered)"
    wanted = ", ".join(str(int(values[0])) for values in listed)
    shown = "".join(f", CAST({columns[t].raw} AS VARCHAR)" for t in shown_targets)
    raw_values = {
        int(values[0]): dict(zip(shown_targets, values[1:], strict=True))
        for values in con.execute(
            f"SELECT _row{shown} FROM {numbered} WHERE _row IN ({wanted})"  # noqa: S608 - ints
        ).fetchall()
    }
    first_line = _FIRST_LINE[source.file_format]
    errors: list[EventRowError] = []
    for row, *failed in listed:
        raw = raw_values.get(int(row), {})
        for (_check, target, code), bad in zip(_CHECKS, failed, strict=True):
            if bad:
                value = raw.get(target or "")
                shown_value = "" if value is None else str(value).strip()[:200]
                errors.append(
                    EventRowError(
                        int(row) + first_line,
                        _shown_column(columns, target),
                        shown_value,
                        _reason(code),
                    )
                )
    return errors[:MAX_REPORTED_ERRORS]


def _shown_column(columns: Mapping[str, _Column], target: str | None) -> str | None:
    if target is None:
        return None
    if target == "account_id" and "account_id" not in columns:
        target = "user_id"
    column = columns.get(target)
    return column.source if column else target


# ---------------------------------------------------------------------------------------------
# Writing


def _write(
    con: duckdb.DuckDBPyConnection,
    event_import: EventImport,
    content_hash: str,
    file_format: str,
    days: int,
    report: Progress,
) -> list[str]:
    """Write the file's events to the lake, one file per day; all or nothing."""
    stem = f"import-{event_import.pk:06d}"
    staging = lake.lake_root() / ".staging" / stem
    staging.mkdir(parents=True, exist_ok=True)
    moved: list[str] = []
    try:
        query = _events_sql(event_import, content_hash, file_format)
        staged = _write_days(con, query, staging, lambda done: report("writing", done, days))
        report("writing", days, days)
        targets = [lake.events_dir() / path.stem / f"{stem}.parquet" for path in staged]
        planned = [str(target.relative_to(lake.lake_root())) for target in targets]
        # Recorded before the move, so that a killed process leaves a record of what to remove.
        EventImport.objects.filter(pk=event_import.pk).update(files=planned)
        for staged_file, target, relative in zip(staged, targets, planned, strict=True):
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged_file, target)
            moved.append(relative)
        EventImport.objects.filter(pk=event_import.pk).update(
            status=EventImport.Status.DONE, files=moved, errors=[]
        )
    except BaseException:
        lake.remove_files(moved)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return moved


def _events_sql(event_import: EventImport, content_hash: str, file_format: str) -> str:
    """The rows of table ``checked`` as lake rows (EVENT_SCHEMA order), in time order (so by day).

    The sort carries only the file's values; the message ids, constants and defaults are made
    after it (DuckDB keeps the outer projection above the sort).
    """
    message_prefix = _literal(f"file-{content_hash[:16]}-")
    first_line = _FIRST_LINE[file_format]
    origin = _literal(f"import:{event_import.pk}")
    received_at = _literal(timezone.now().isoformat())
    return f"""
        SELECT
            coalesce(p_message_id, {message_prefix} || CAST(_row + {first_line} AS VARCHAR))
                AS message_id,
            {origin} AS origin,
            'track' AS kind,
            p_event_type AS event_type,
            p_event_time AS event_time,
            p_event_date AS event_date,
            CAST({received_at} AS TIMESTAMPTZ) AS received_at,
            coalesce(p_user_id, '') AS user_id,
            coalesce(p_anonymous_id, '') AS anonymous_id,
            coalesce(p_account_key, '') AS account_key,
            p_event_value AS event_value,
            coalesce(p_feature, '') AS feature,
            coalesce(p_properties, '{{}}') AS properties
        FROM (
            SELECT rowid AS _row, p_message_id, p_event_type, p_event_time, p_event_date,
                   p_user_id, p_anonymous_id, p_account_key, p_event_value, p_feature,
                   p_properties
            FROM checked ORDER BY p_event_time
        )
    """  # noqa: S608 - every interpolated value is quoted by _literal or generated here


def _write_days(
    con: duckdb.DuckDBPyConnection, query: str, staging: Path, progress: Callable[[int], None]
) -> list[Path]:
    """Stream ``query`` (in time order) into one Parquet file per day: ``<day>.parquet``.

    One pass in record batches, so memory stays bounded; DuckDB computes the next batches in a
    thread while this one writes. pyarrow writes rather than DuckDB's COPY because DuckDB marks
    a column without nulls as required, and every file of the lake must have exactly
    EVENT_SCHEMA (nullable columns).
    """
    written: list[Path] = []
    writer: pq.ParquetWriter | None = None
    pending: list[pa.Table] = []

    def flush() -> None:
        if pending:
            assert writer is not None
            writer.write_table(pa.concat_tables(pending))
            pending.clear()

    try:
        for batch in _prefetched(con.sql(query).to_arrow_reader(BATCH_ROWS)):
            table = pa.Table.from_batches([batch]).cast(lake.EVENT_SCHEMA)
            runs = pc.run_end_encode(table["event_date"].combine_chunks())
            start = 0
            for day, end in zip(runs.values.to_pylist(), runs.run_ends.to_pylist(), strict=True):
                path = staging / f"{day.isoformat()}.parquet"
                if not written or written[-1] != path:
                    flush()
                    if writer is not None:
                        writer.close()
                    progress(len(written))
                    writer = pq.ParquetWriter(path, lake.EVENT_SCHEMA, compression="zstd")
                    written.append(path)
                pending.append(table.slice(start, end - start))
                start = end
                if sum(part.num_rows for part in pending) >= BATCH_ROWS:
                    flush()  # one row group per BATCH_ROWS rows of a day
        flush()
    finally:
        if writer is not None:
            writer.close()
    _sync(written)
    return written


def _prefetched(reader: pa.RecordBatchReader, depth: int = 2) -> Iterator[pa.RecordBatch]:
    """The reader's batches, fetched ahead in a thread (DuckDB and pyarrow release the GIL)."""
    batches: queue.Queue[pa.RecordBatch | BaseException | None] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for batch in reader:
                while not stop.is_set():
                    try:
                        batches.put(batch, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            batches.put(None)
        except BaseException as exc:  # handed to the consumer, raised there
            batches.put(exc)

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()
    try:
        while (item := batches.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        producer.join()


def _sync(paths: list[Path]) -> None:
    """Make the written files durable before they are moved into the lake."""

    def sync(path: Path) -> None:
        with path.open("rb") as handle:
            os.fsync(handle.fileno())

    # fsync waits on the disk, not the CPU: several at once let the file system batch them.
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(sync, paths))


def _remove_interrupted_imports() -> None:
    """Remove what a killed import left behind: its lake files and stale staging folders.

    A running import is recorded as failed ("interrupted") until it finishes, with the files it
    is about to move; one older than ``STALE_AFTER`` is certainly dead.
    """
    cutoff = timezone.now() - STALE_AFTER
    for stale in EventImport.objects.filter(
        status=EventImport.Status.FAILED, created_at__lt=cutoff
    ).exclude(files=[]):
        lake.remove_files(stale.files)
        EventImport.objects.filter(pk=stale.pk).update(files=[])
    staging_root = lake.lake_root() / ".staging"
    if staging_root.exists():
        for folder in staging_root.iterdir():
            modified = datetime.fromtimestamp(folder.stat().st_mtime, tz=UTC)
            if modified < cutoff:
                shutil.rmtree(folder, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# SQL text


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
