"""Bulk import of event files (``kizuna ingest``): rows/s for a Parquet and a CSV file.

A file of ROWS events in the standard columns (account_id, event_time, event_type, user_id,
event_value) spread over one year is generated with DuckDB, then imported into a fresh lake.
Two floors are measured in the same run: DuckDB counting the file's rows (``count(*)`` over
read_parquet / read_csv; for Parquet that reads only the footer) and DuckDB copying the file to
one zstd Parquet file (no checks, no sort, no per-day files). The figures that matter are the
ratios (the machines are shared). Each import runs in a child process so that its peak memory
(max RSS) is its own: it stays flat as ROWS grows (DuckDB spills to disk beyond its limit).

Run: .venv/bin/python bench/bench_ingest_files.py [--rows 10000000] [--formats parquet,csv]
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EVENT_TYPES = [
    "login", "page_view", "report.view", "report.create", "export", "search", "invite.sent",
    "dashboard.view", "comment", "upload", "download", "settings.update", "api.call",
    "workflow.run", "share", "filter.apply", "alert.create", "integration.sync", "logout", "help",
]  # fmt: skip


def _setup_django(work: Path) -> None:
    os.environ["KIZUNA_ENV"] = "test"
    os.environ["KIZUNA_DATA_DIR"] = str(work / "data")
    os.environ["DATABASE_URL"] = f"sqlite:///{work / 'bench.sqlite3'}"
    os.environ["DJANGO_SETTINGS_MODULE"] = "kizuna.config.settings"
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import django

    django.setup()


def generate(path: Path, rows: int, file_format: str) -> None:
    """ROWS events of 5,000 accounts and 50,000 users over the year from 2025-11-01 (UTC)."""
    import duckdb

    types = "[" + ", ".join(f"'{name}'" for name in EVENT_TYPES) + "]"
    event_time = "TIMESTAMPTZ '2025-11-01 00:00:00+00' + to_microseconds(i * (31536000000000 // n))"
    select = f"""
        SELECT
            'ACME-' || lpad(CAST(hash(i // 7) % 5000 AS VARCHAR), 4, '0') AS account_id,
            {"strftime(" + event_time + ", '%Y-%m-%dT%H:%M:%S.%fZ')" if file_format == "csv" else event_time} AS event_time,
            {types}[1 + CAST(hash(i) % 20 AS INTEGER)] AS event_type,
            'u' || CAST(hash(i // 7) % 50000 AS VARCHAR) AS user_id,
            CASE WHEN i % 10 = 0 THEN round((hash(i) % 10000) / 100.0, 2) END AS event_value
        FROM (SELECT i, {rows} AS n FROM range({rows}) t(i))
    """  # fmt: skip
    options = "FORMAT csv, HEADER true" if file_format == "csv" else "FORMAT parquet"
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"COPY ({select}) TO '{path}' ({options})")
    con.close()


def floors(path: Path, file_format: str, work: Path) -> tuple[float, float, int]:
    """DuckDB alone: counting the file's rows, and copying it to one zstd Parquet file."""
    import duckdb

    reader = "read_csv" if file_format == "csv" else "read_parquet"
    con = duckdb.connect(config={"threads": int(os.environ.get("KIZUNA_DUCKDB_THREADS", "2"))})
    con.execute("SET enable_progress_bar = false")
    started = time.perf_counter()
    row = con.execute(f"SELECT count(*) FROM {reader}('{path}')").fetchone()
    count_seconds = time.perf_counter() - started
    copy = work / "floor-copy.parquet"
    started = time.perf_counter()
    con.execute(
        f"COPY (SELECT * FROM {reader}('{path}')) TO '{copy}' (FORMAT parquet, COMPRESSION zstd)"
    )
    copy_seconds = time.perf_counter() - started
    copy.unlink()
    con.close()
    assert row is not None
    return count_seconds, copy_seconds, int(row[0])


def child_import(work: Path, path: Path) -> None:
    """In a child process: import ``path`` and print seconds, rows and peak memory as JSON."""
    _setup_django(work)
    from kizuna.analytics.importing import import_event_file

    started = time.perf_counter()
    result = import_event_file(path)
    seconds = time.perf_counter() - started
    assert result.ok, result.errors[:5]
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "rows": result.rows, "days": len(result.days),
                      "files": len(result.files), "peak_mb": peak_mb}))  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--formats", default="parquet,csv")
    parser.add_argument("--child-import", nargs=2, metavar=("WORK", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_import:
        child_import(Path(args.child_import[0]), Path(args.child_import[1]))
        return 0

    work = Path(tempfile.mkdtemp(prefix="kizuna-bench-ingest-files-"))
    _setup_django(work)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    print(f"{args.rows:,} events, 5,000 accounts, 50,000 users, one year (2 cores, DuckDB threads "
          f"= KIZUNA_DUCKDB_THREADS)")  # fmt: skip
    for file_format in args.formats.split(","):
        path = work / f"events.{file_format}"
        started = time.perf_counter()
        generate(path, args.rows, file_format)
        size_mb = path.stat().st_size / 1e6
        print(
            f"-- {file_format}: {size_mb:,.0f} MB, generated in {time.perf_counter() - started:.1f} s"
        )
        floor, copy_floor, counted = floors(path, file_format, work)
        assert counted == args.rows
        child = subprocess.run(  # noqa: S603 - our own script
            [sys.executable, __file__, "--child-import", str(work), str(path)],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        figures = json.loads(child.stdout.strip().splitlines()[-1])
        seconds = figures["seconds"]
        assert figures["rows"] == args.rows
        print(
            f"   floor: DuckDB count(*)         : {floor:7.2f} s  {args.rows / floor:13,.0f} rows/s"
        )
        print(
            f"   floor: DuckDB copy to Parquet  : {copy_floor:7.2f} s  {args.rows / copy_floor:13,.0f} rows/s"
        )
        print(f"   import_event_file              : {seconds:7.2f} s  {args.rows / seconds:13,.0f} rows/s"
              f"  ({seconds / floor:.1f}x count, {seconds / copy_floor:.1f}x copy; "
              f"{figures['files']} day files; peak RSS {figures['peak_mb']:,.0f} MB)")  # fmt: skip
        path.unlink()
    shutil.rmtree(work)  # the lake of 2 x ROWS events
    return 0


if __name__ == "__main__":
    sys.exit(main())
