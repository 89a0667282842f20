"""Bulk import of event files into the lake (``kizuna ingest``)."""

import datetime as dt
import json
from collections.abc import Callable, Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import translation

from kizuna.analytics import engine, importing, lake
from kizuna.analytics.importing import EventRowError, ImportStatus, import_event_file
from kizuna.analytics.models import EventImport
from kizuna.core.models import User
from kizuna.core.roles import Role
from kizuna.customers.models import Customer

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def english() -> Iterator[None]:
    with translation.override("en"):
        yield


UTC = dt.UTC
STANDARD_CSV = (
    "account_id,event_time,event_type,user_id,event_value\n"
    "ACME,2026-11-01 08:30,login,u1,\n"  # naive: Asia/Tokyo
    "ACME,2026-11-01T23:30:00Z,export,u2,2.5\n"  # 08:30 on the 2nd in Tokyo
    ",2026-11-02T10:00:00+09:00,login,u3,\n"  # no account: the user is enough
)


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def lake_rows() -> list[dict[str, Any]]:
    files = lake.event_files()
    if not files:
        return []
    rows = pa.concat_tables([pq.read_table(path) for path in files]).to_pylist()
    return sorted(rows, key=lambda row: (row["event_time"], row["message_id"]))


def test_standard_columns_import_without_a_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "events.csv", STANDARD_CSV)

    result = import_event_file(path)

    assert result.status == ImportStatus.DONE, result.errors
    event_import = EventImport.objects.get()
    assert result.import_id == event_import.pk
    stem = f"import-{event_import.pk:06d}"
    assert result.files == (
        f"events/2026-11-01/{stem}.parquet",
        f"events/2026-11-02/{stem}.parquet",
    )
    assert result.days == ((dt.date(2026, 11, 1), 1), (dt.date(2026, 11, 2), 2))
    assert (event_import.status, event_import.rows, event_import.files) == (
        EventImport.Status.DONE,
        3,
        list(result.files),
    )
    assert event_import.errors == []
    assert event_import.content_hash == importing.file_sha256(path)
    for relative in result.files:
        schema = pq.read_schema(lake.lake_root() / relative)
        assert schema.remove_metadata() == lake.EVENT_SCHEMA

    rows = lake_rows()
    assert [(r["account_key"], r["user_id"], r["event_type"], r["event_value"]) for r in rows] == [
        ("ACME", "u1", "login", None),
        ("ACME", "u2", "export", 2.5),
        ("", "u3", "login", None),
    ]
    assert [r["event_time"] for r in rows] == [
        dt.datetime(2026, 10, 31, 23, 30, tzinfo=UTC),
        dt.datetime(2026, 11, 1, 23, 30, tzinfo=UTC),
        dt.datetime(2026, 11, 2, 1, 0, tzinfo=UTC),
    ]
    assert [r["event_date"] for r in rows] == [
        dt.date(2026, 11, 1),
        dt.date(2026, 11, 2),
        dt.date(2026, 11, 2),
    ]
    assert {r["origin"] for r in rows} == {f"import:{event_import.pk}"}
    assert {r["kind"] for r in rows} == {"track"}
    assert {(r["anonymous_id"], r["feature"], r["properties"]) for r in rows} == {("", "", "{}")}
    prefix = f"file-{event_import.content_hash[:16]}-"
    assert [r["message_id"] for r in rows] == [f"{prefix}2", f"{prefix}3", f"{prefix}4"]
    assert len({r["received_at"] for r in rows}) == 1


def test_imported_events_are_read_by_the_engine_on_duckdb(tmp_path: Path) -> None:
    acme = Customer.objects.create(name="Acme", external_id="ACME")
    import_event_file(write(tmp_path, "events.csv", STANDARD_CSV))

    with engine.session("duckdb") as con:
        rows = engine.usage_events(con, dt.date(2026, 11, 2), dt.date(2026, 11, 2))
        result = sorted(rows.to_pyarrow().to_pylist(), key=lambda row: row["user_key"])

    assert [
        (r["customer_id"], r["user_key"], r["event_type"], r["event_value"]) for r in result
    ] == [
        (acme.pk, "u2", "export", 2.5),
        (None, "u3", "login", None),
    ]


@pytest.mark.spark
def test_imported_events_are_read_by_the_engine_on_spark(tmp_path: Path) -> None:
    acme = Customer.objects.create(name="Acme", external_id="ACME")
    import_event_file(write(tmp_path, "events.csv", STANDARD_CSV))
    # The lake also holds a file written by pyarrow: Spark reads both kinds by one glob.
    other = pa.table(
        {
            "message_id": ["m1"],
            "origin": ["source:1"],
            "kind": ["track"],
            "event_type": ["login"],
            "event_time": pa.array(
                [dt.datetime(2026, 11, 2, 3, tzinfo=UTC)], pa.timestamp("us", "UTC")
            ),
            "received_at": pa.array(
                [dt.datetime(2026, 11, 2, 3, tzinfo=UTC)], pa.timestamp("us", "UTC")
            ),
            "user_id": ["u9"],
            "anonymous_id": [""],
            "account_key": ["ACME"],
            "event_value": pa.array([None], pa.float64()),
            "feature": [""],
            "properties": ["{}"],
        }
    )
    other = other.append_column("event_date", lake.event_dates(other["event_time"]))
    lake.write_events(other, "inbox-000001")

    with engine.session("spark") as con:
        rows = engine.usage_events(con, dt.date(2026, 11, 2), dt.date(2026, 11, 2)).to_pyarrow()

    result = sorted(rows.to_pylist(), key=lambda row: row["user_key"])
    assert [(r["customer_id"], r["user_key"], r["event_value"]) for r in result] == [
        (acme.pk, "u2", 2.5),
        (None, "u3", None),
        (acme.pk, "u9", None),
    ]


def test_a_mapping_takes_columns_of_other_names(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "export.csv",
        "Tenant,Timestamp,Action,Member,Amount,Screen,Extra\n"
        "T1,2026-11-03 09:00:00,report.create,m1,3,reports,x\n",
    )
    mapping = {
        "account_id": "Tenant",
        "event_time": "Timestamp",
        "event_type": "Action",
        "user_id": "member",  # matched ignoring case
        "event_value": "Amount",
        "feature": "Screen",
    }

    result = import_event_file(path, mapping=mapping)

    assert result.status == ImportStatus.DONE, result.errors
    assert result.ignored_columns == ("Extra",)
    [row] = lake_rows()
    assert (row["account_key"], row["user_id"], row["event_type"], row["feature"]) == (
        "T1",
        "m1",
        "report.create",
        "reports",
    )
    assert row["event_value"] == 3.0
    assert row["event_time"] == dt.datetime(2026, 11, 3, 0, 0, tzinfo=UTC)


def test_ndjson_with_properties_and_message_ids(tmp_path: Path) -> None:
    lines = [
        {"account_id": "A", "event_time": "2026-11-01T00:00:00Z", "event_type": "login",
         "user_id": 42, "message_id": "m-1", "properties": {"plan": "pro", "n": [1, 2]}},
        {"account_id": "A", "event_time": 1793494800, "event_type": "view",
         "anonymous_id": "anon-1", "event_value": 1.5, "properties": '{"from": "text"}'},
        {"user_id": "u2", "event_time": 1793498400123, "event_type": "view", "feature": "f"},
    ]  # fmt: skip
    path = write(tmp_path, "events.ndjson", "\n".join(json.dumps(line) for line in lines) + "\n")

    result = import_event_file(path)

    assert result.status == ImportStatus.DONE, result.errors
    rows = lake_rows()
    assert [r["message_id"] for r in rows] == [
        "m-1",
        f"file-{result.content_hash[:16]}-2",
        f"file-{result.content_hash[:16]}-3",
    ]
    assert [r["event_time"] for r in rows] == [
        dt.datetime(2026, 11, 1, 0, 0, tzinfo=UTC),
        dt.datetime(2026, 11, 1, 1, 0, tzinfo=UTC),  # epoch seconds
        dt.datetime(2026, 11, 1, 2, 0, 0, 123000, tzinfo=UTC),  # epoch milliseconds
    ]
    assert json.loads(rows[0]["properties"]) == {"plan": "pro", "n": [1, 2]}
    assert json.loads(rows[1]["properties"]) == {"from": "text"}
    assert rows[2]["properties"] == "{}"
    assert [r["user_id"] for r in rows] == ["42", "", "u2"]
    assert [r["anonymous_id"] for r in rows] == ["", "anon-1", ""]
    assert [r["event_value"] for r in rows] == [None, 1.5, None]
    assert [r["feature"] for r in rows] == ["", "", "f"]


def test_parquet_with_typed_columns(tmp_path: Path) -> None:
    table = pa.table(
        {
            "account_id": ["A", "B"],
            "event_time": pa.array(
                [
                    dt.datetime(2026, 11, 1, 15, 0, tzinfo=UTC),
                    dt.datetime(2026, 11, 1, 14, 59, tzinfo=UTC),
                ],
                pa.timestamp("ms", "UTC"),
            ),
            "event_type": ["login", "login"],
            "user_id": pa.array([7, 8], pa.int64()),
            "event_value": pa.array([1, 2], pa.int32()),
        }
    )
    local = pa.table(
        {
            "when": pa.array(
                [dt.datetime(2026, 11, 1, 23, 58, tzinfo=UTC).replace(tzinfo=None)],
                pa.timestamp("us"),
            )
        }
    )
    path = tmp_path / "events.parquet"
    pq.write_table(table, path)
    naive_path = tmp_path / "naive.parquet"
    pq.write_table(
        local.append_column("event_type", pa.array(["x"])).append_column(
            "user_id", pa.array(["u"])
        ),
        naive_path,
    )

    result = import_event_file(path)
    naive = import_event_file(naive_path, mapping={"event_time": "when"})

    assert result.status == naive.status == ImportStatus.DONE, (result.errors, naive.errors)
    assert result.days == ((dt.date(2026, 11, 1), 1), (dt.date(2026, 11, 2), 1))
    # A naive Parquet timestamp is a wall-clock time in the company's zone, as in CSV.
    assert naive.days == ((dt.date(2026, 11, 1), 1),)
    rows = lake_rows()
    assert [(r["account_key"], r["user_id"], r["event_value"]) for r in rows] == [
        ("", "u", None),
        ("B", "8", 2.0),
        ("A", "7", 1.0),
    ]
    assert rows[0]["event_time"] == dt.datetime(2026, 11, 1, 14, 58, tzinfo=UTC)


def test_time_zones_decide_the_event_day(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "tz.csv",
        "account_id,event_time,event_type\n"
        "A,2026-11-01 08:30,a\n"
        "A,2026-11-01T23:30:00Z,b\n"
        "A,2026/11/01 0:00,c\n"
        "A,2026-11-01T14:59:59.999999Z,d\n",
    )

    result = import_event_file(path)

    assert result.status == ImportStatus.DONE, result.errors
    rows = {row["event_type"]: row for row in lake_rows()}
    assert rows["a"]["event_date"] == dt.date(2026, 11, 1)
    assert rows["a"]["event_time"] == dt.datetime(2026, 10, 31, 23, 30, tzinfo=UTC)
    assert rows["b"]["event_date"] == dt.date(2026, 11, 2)
    assert rows["c"]["event_time"] == dt.datetime(2026, 10, 31, 15, 0, tzinfo=UTC)
    assert rows["d"]["event_date"] == dt.date(2026, 11, 1)


def test_bad_rows_are_reported_with_line_numbers_and_nothing_is_written(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "bad.csv",
        "account_id,event_time,event_type,user_id,event_value,properties\n"  # line 1
        "A,2026-11-01 08:30,login,u1,1,\n"  # 2: fine
        "A,yesterday,login,u1,,\n"  # 3: bad time
        ",2026-11-01 08:30,login,,,\n"  # 4: nobody
        "A,,,u1,ten,\n"  # 5: no time, no type, bad number
        'A,2026-11-01 08:30,login,u1,1,"[1]"\n'  # 6: properties not an object
        "A,2026-11-01 08:30,login,u1,nan,\n",  # 7: not a finite number
    )

    result = import_event_file(path)

    assert result.status == ImportStatus.FAILED
    assert not result.ok
    assert result.errors == (
        EventRowError(3, "event_time", "yesterday", result.errors[0].reason),
        EventRowError(4, "account_id", "", "account_id or user_id is required"),
        EventRowError(5, "event_time", "", "is required"),
        EventRowError(5, "event_type", "", "is required"),
        EventRowError(5, "event_value", "ten", "is not a number"),
        EventRowError(6, "properties", "[1]", "is not a JSON object"),
        EventRowError(7, "event_value", "nan", "is not a number"),
    )
    assert result.errors[0].reason.startswith("is not a date and time")
    assert (result.bad_rows, result.error_count) == (5, 7)
    assert lake.event_files() == []
    assert not (lake.lake_root() / ".staging").exists() or not any(
        (lake.lake_root() / ".staging").iterdir()
    )
    failed = EventImport.objects.get()
    assert failed.status == EventImport.Status.FAILED
    assert failed.files == []
    assert failed.errors[0] == {
        "line": 3,
        "column": "event_time",
        "value": "yesterday",
        "reason": result.errors[0].reason,
    }
    assert not EventImport.objects.filter(status=EventImport.Status.DONE).exists()


def test_errors_name_the_files_own_column_and_stop_at_the_limit(tmp_path: Path) -> None:
    rows = "".join(f"A,2026-13-{index:02d},x\n" for index in range(150))
    path = write(tmp_path, "many.csv", "Tenant,When,What\n" + rows)

    result = import_event_file(
        path, mapping={"account_id": "Tenant", "event_time": "When", "event_type": "What"}
    )

    assert len(result.errors) == importing.MAX_REPORTED_ERRORS
    assert (result.bad_rows, result.error_count) == (150, 150)
    assert [error.line for error in result.errors[:3]] == [2, 3, 4]
    assert {error.column for error in result.errors} == {"When"}
    assert result.errors[-1] == EventRowError(101, "When", "2026-13-99", result.errors[0].reason)


def test_ndjson_bad_lines_are_numbered_from_one(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "bad.ndjson",
        '{"account_id": "A", "event_time": "2026-11-01T00:00:00Z", "event_type": "x"}\n'
        "[1, 2]\n"
        '{"account_id": "A", "event_time": "soon", "event_type": "x"}\n',
    )

    result = import_event_file(path)

    assert [(e.line, e.column, e.value) for e in result.errors] == [
        (2, None, ""),
        (3, "event_time", "soon"),
    ]
    assert result.errors[0].reason == "the line is not a JSON object"
    assert lake.event_files() == []


def test_a_row_with_too_many_cells_names_its_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "ragged.csv",
        "account_id,event_time,event_type\nA,2026-11-01,x\nA,2026-11-01,x,surplus\n",
    )

    result = import_event_file(path)

    [error] = result.errors
    assert (error.line, error.value) == (3, "A,2026-11-01,x,surplus")
    assert error.reason == "expected 3 columns, found 4"
    assert lake.event_files() == []


def test_a_malformed_json_line_rejects_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "broken.ndjson", '{"event_type": "x"}\n{"event_type": \n')

    result = import_event_file(path)

    assert result.status == ImportStatus.FAILED
    assert "NDJSON" in result.errors[0].reason
    assert lake.event_files() == []


@pytest.mark.parametrize(
    ("content", "mapping", "expected"),
    [
        ("", None, "The file is empty."),
        ("account_id,event_time,event_type\n", None, "The file has no rows."),
        ("account_id,when,event_type\nA,2026-11-01,x\n", None, "no event_time column"),
        ("event_time,event_type\n2026-11-01,x\n", None, "no account_id / user_id column"),
        (
            "account_id,when,event_type\nA,2026-11-01,x\n",
            {"event_time": "whenever"},
            "column whenever (mapped to event_time) is not in the file; "
            "its columns are: account_id, when, event_type",
        ),
        (
            "account_id,when,event_type\nA,2026-11-01,x\n",
            {"evnt_time": "when"},
            "evnt_time is not a column Kizuna imports",
        ),
    ],
)
def test_file_level_problems_get_a_clear_error(
    tmp_path: Path, content: str, mapping: dict[str, str] | None, expected: str
) -> None:
    path = write(tmp_path, "file.csv", content)

    result = import_event_file(path, mapping=mapping)

    assert result.status == ImportStatus.FAILED
    assert expected in result.errors[0].reason
    assert lake.event_files() == []


def test_a_file_that_is_not_parquet_is_rejected(tmp_path: Path) -> None:
    result = import_event_file(write(tmp_path, "events.parquet", "account_id,event_time\n"))

    assert result.status == ImportStatus.FAILED
    assert result.errors[0].reason.startswith("not a readable Parquet file")
    assert lake.event_files() == []


def test_unknown_format_and_bad_mapping_are_argument_errors(tmp_path: Path) -> None:
    path = write(tmp_path, "events.xlsx", "x")
    with pytest.raises(importing.EventImportError, match="--format"):
        import_event_file(path)
    with pytest.raises(importing.EventImportError, match="target=column"):
        importing.parse_mapping(["event_type"])
    assert importing.detect_format(Path("a.ndjson.gz")) == "ndjson"
    assert importing.detect_format(Path("a.data"), "parquet") == "parquet"


def test_utf8_with_bom_and_shift_jis_csv_are_read(tmp_path: Path) -> None:
    text = "account_id,event_time,event_type,user_id\nACME,2026-11-01 09:00,ログイン,山田\n"
    bom = write(tmp_path, "bom.csv", b"\xef\xbb\xbf" + text.encode("utf-8"))
    # Shift_JIS with an ASCII-only start: detected when DuckDB meets the first Japanese byte.
    sjis = write(tmp_path, "sjis.csv", text.encode("cp932"))
    # Shift_JIS from the header on: detected before reading.
    sjis_header = write(
        tmp_path,
        "sjis-header.csv",
        "アカウント,event_time,event_type\nACME,2026-11-01 10:00,ログイン\n".encode("cp932"),
    )

    results = [
        import_event_file(bom),
        import_event_file(sjis, force=True),
        import_event_file(sjis_header, mapping={"account_id": "アカウント"}),
    ]

    assert [r.status for r in results] == [ImportStatus.DONE] * 3, [r.errors for r in results]
    rows = lake_rows()
    assert [(r["account_key"], r["event_type"], r["user_id"]) for r in rows] == [
        ("ACME", "ログイン", "山田"),
        ("ACME", "ログイン", "山田"),
        ("ACME", "ログイン", ""),
    ]


def test_the_same_file_again_is_skipped_unless_forced(tmp_path: Path) -> None:
    path = write(tmp_path, "events.csv", STANDARD_CSV)
    first = import_event_file(path)
    copy = write(tmp_path, "renamed.csv", STANDARD_CSV)

    again = import_event_file(copy)

    assert again.status == ImportStatus.SKIPPED
    assert again.ok
    assert again.duplicate_of == first.import_id
    assert f"import #{first.import_id}" in again.message
    assert len(lake_rows()) == 3
    assert EventImport.objects.count() == 1

    forced = import_event_file(copy, force=True)

    assert forced.status == ImportStatus.DONE
    assert forced.import_id != first.import_id
    rows = lake_rows()
    assert len(rows) == 6
    # The same file gives the same message ids: the double is detectable.
    assert len({row["message_id"] for row in rows}) == 3


def test_a_failed_import_does_not_count_as_imported(tmp_path: Path) -> None:
    bad = write(tmp_path, "events.csv", "account_id,event_time,event_type\nA,never,x\n")
    assert import_event_file(bad).status == ImportStatus.FAILED

    assert import_event_file(bad).status == ImportStatus.FAILED
    assert EventImport.objects.filter(status=EventImport.Status.FAILED).count() == 2


def test_a_failure_while_moving_files_into_the_lake_removes_what_was_moved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "events.csv", STANDARD_CSV)
    real_replace = importing.os.replace
    calls: list[Path] = []

    def failing_replace(source: Path, target: Path) -> None:
        calls.append(Path(target))
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real_replace(source, target)

    monkeypatch.setattr(importing.os, "replace", failing_replace)

    result = import_event_file(path)

    assert result.status == ImportStatus.FAILED
    assert "No space left on device" in result.errors[0].reason
    assert len(calls) == 2
    assert lake.event_files() == []
    failed = EventImport.objects.get()
    assert (failed.status, failed.files) == (EventImport.Status.FAILED, [])
    assert not any((lake.lake_root() / ".staging").iterdir())
    monkeypatch.setattr(importing.os, "replace", real_replace)
    # Not imported: the same file imports normally afterwards.
    assert import_event_file(path).status == ImportStatus.DONE


def test_an_interrupted_import_is_cleaned_up_by_the_next_one(tmp_path: Path) -> None:
    orphan = lake.events_dir() / "2026-11-01" / "import-000099.parquet"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"half")
    interrupted = EventImport.objects.create(
        file_name="killed.csv",
        content_hash="0" * 64,
        status=EventImport.Status.FAILED,
        files=["events/2026-11-01/import-000099.parquet"],
    )
    EventImport.objects.filter(pk=interrupted.pk).update(
        created_at=dt.datetime(2026, 1, 1, tzinfo=UTC)
    )

    import_event_file(write(tmp_path, "events.csv", STANDARD_CSV))

    assert not orphan.exists()
    interrupted.refresh_from_db()
    assert interrupted.files == []


def test_dry_run_checks_and_writes_nothing(tmp_path: Path) -> None:
    path = write(tmp_path, "events.csv", STANDARD_CSV)

    result = import_event_file(path, dry_run=True)

    assert result.status == ImportStatus.CHECKED
    assert result.rows == 3
    assert result.days == ((dt.date(2026, 11, 1), 1), (dt.date(2026, 11, 2), 2))
    assert lake.event_files() == []
    assert not EventImport.objects.exists()


def test_progress_reports_each_phase_and_every_day(tmp_path: Path) -> None:
    calls: list[tuple[str, int, int]] = []

    import_event_file(
        write(tmp_path, "events.csv", STANDARD_CSV), progress=lambda *a: calls.append(a)
    )

    phases = [phase for phase, _done, _total in calls]
    assert phases.index("reading") < phases.index("validating") < phases.index("writing")
    assert [call for call in calls if call[0] == "writing"] == [
        ("writing", 0, 2),
        ("writing", 1, 2),
        ("writing", 2, 2),
    ]


def test_gzipped_ndjson_and_a_path_with_glob_characters(tmp_path: Path) -> None:
    import gzip

    line = '{"account_id": "A", "event_time": "2026-11-01T00:00:00Z", "event_type": "x"}\n'
    path = tmp_path / "events [1].ndjson.gz"
    path.write_bytes(gzip.compress(line.encode()))

    result = import_event_file(path)

    assert result.status == ImportStatus.DONE, result.errors
    assert len(lake_rows()) == 1


# ---------------------------------------------------------------------------------------------
# The command


def run(*args: str, fails: bool = False) -> str:
    out = StringIO()
    if fails:
        with pytest.raises(CommandError):
            call_command("ingest", *args, stdout=out)
    else:
        call_command("ingest", *args, stdout=out)
    return out.getvalue()


def test_the_command_imports_files_and_prints_json(tmp_path: Path) -> None:
    first = write(tmp_path, "a.csv", STANDARD_CSV)
    second = write(tmp_path, "b.csv", "Tenant,event_time,Action\nT,2026-11-05 10:00,login\n")

    results = json.loads(run(str(first), str(second), "--json", fails=True))

    assert [(r["file_name"], r["status"], r["rows"]) for r in results] == [
        ("a.csv", "done", 3),
        ("b.csv", "failed", 0),  # a file with other columns needs its mapping
    ]
    assert results[1]["errors"][0]["reason"].startswith("The file has no event_type")

    mapped = json.loads(
        run(str(second), "--map", "account_id=Tenant", "--map", "event_type=Action", "--json")
    )

    assert [(r["status"], r["rows"]) for r in mapped] == [("done", 1)]
    assert results[0]["days"] == [
        {"day": "2026-11-01", "rows": 1},
        {"day": "2026-11-02", "rows": 2},
    ]
    assert len(lake_rows()) == 4
    assert EventImport.objects.filter(status=EventImport.Status.DONE).count() == 2

    again = run(str(first))
    assert "Already imported as import #" in again


def test_the_command_reports_bad_rows_and_fails(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.csv", "account_id,event_time,event_type\nA,never,x\n")
    out = StringIO()
    with pytest.raises(CommandError, match=r"1 of 1 file\(s\) not imported: bad.csv") as raised:
        call_command("ingest", str(path), stdout=out)

    assert raised.value.returncode == 1
    text = out.getvalue()
    assert "bad.csv rejected: nothing imported" in text
    assert "never" in text
    assert "is not a date and time" in text
    assert lake.event_files() == []


def test_the_command_dry_run_and_user_permission(
    tmp_path: Path, make_user: Callable[..., User]
) -> None:
    path = write(tmp_path, "a.csv", STANDARD_CSV)
    make_user(Role.VIEWER, username="viewer")
    manager = make_user(Role.CS_MANAGER, username="manager")

    with pytest.raises(CommandError, match="may not import_data"):
        run(str(path), "--user", "viewer")
    assert "nothing written (dry run)" in run(str(path), "--dry-run")
    assert lake.event_files() == []

    run(str(path), "--user", "manager")
    assert EventImport.objects.get().created_by == manager


def test_the_command_refuses_a_missing_file_and_an_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="no such file"):
        run(str(tmp_path / "missing.csv"))
    good = write(tmp_path, "good.csv", STANDARD_CSV)
    with pytest.raises(CommandError, match="--format"):
        run(str(good), str(write(tmp_path, "events.dat", "x")))
    # Names and formats are checked before any file is imported.
    assert not EventImport.objects.exists()
    with pytest.raises(CommandError, match="target=column"):
        run(str(write(tmp_path, "events.csv", STANDARD_CSV)), "--map", "event_type")
