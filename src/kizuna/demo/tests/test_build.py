"""``kizuna demo build``: byte-identical files for a seed, events in bounded parts, ground truth."""

import csv
import json
from datetime import date
from io import StringIO
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from django.core.management import CommandError, call_command
from django.utils import translation

from kizuna.demo.build import build_dataset
from kizuna.demo.events import EVENT_FILE_SCHEMA
from kizuna.demo.files import CONTACT_COLUMNS, CUSTOMER_COLUMNS, SUBSCRIPTION_COLUMNS

TODAY = date(2026, 11, 20)


def _build(out: Path, **options: object) -> object:
    arguments: dict[str, object] = {
        "customers": 30, "months": 3, "seed": 5, "today": TODAY, "zone": "Asia/Tokyo",
    }  # fmt: skip
    arguments.update(options)
    return build_dataset(out=out, **arguments)  # type: ignore[arg-type]


def _files(folder: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_the_same_seed_writes_byte_identical_files(tmp_path: Path) -> None:
    _build(tmp_path / "a")
    _build(tmp_path / "b")
    _build(tmp_path / "c", seed=6)
    first = _files(tmp_path / "a")
    assert {"customers.csv", "contacts.csv", "subscriptions.csv", "ground_truth.json"} <= set(first)
    assert any(name.startswith("events/part-") for name in first)
    assert _files(tmp_path / "b") == first
    assert _files(tmp_path / "c")["customers.csv"] != first["customers.csv"]


def test_events_stream_into_bounded_parts_beside_the_crm_files_and_the_ground_truth(
    tmp_path: Path,
) -> None:
    summary = _build(tmp_path, chunk_events=5_000, part_rows=20_000)
    parts = sorted((tmp_path / "events").glob("part-*.parquet"))
    assert len(parts) >= 3
    rows = [pq.ParquetFile(part).metadata.num_rows for part in parts]
    assert max(rows) <= 20_000
    assert sum(rows) == summary.events  # type: ignore[attr-defined]
    assert pq.read_schema(parts[0]) == EVENT_FILE_SCHEMA

    for name, columns in (
        ("customers", CUSTOMER_COLUMNS),
        ("contacts", CONTACT_COLUMNS),
        ("subscriptions", SUBSCRIPTION_COLUMNS),
    ):
        with (tmp_path / f"{name}.csv").open(encoding="utf-8") as handle:
            table = list(csv.reader(handle))
        assert tuple(table[0]) == columns
        assert len(table) - 1 == summary.rows[name]  # type: ignore[attr-defined]
    assert summary.rows["customers"] == 30  # type: ignore[attr-defined]

    manifest = json.loads((tmp_path / "ground_truth.json").read_text(encoding="utf-8"))
    assert manifest["customers"] == 30
    assert manifest["events"] == summary.events  # type: ignore[attr-defined]
    assert manifest["config"]["renewal"]["slope"] > 0
    truth = pq.read_table(tmp_path / "ground_truth" / "customers.parquet")
    assert truth.num_rows == 30
    assert set(truth["onboarding_speed"].to_pylist()) <= {"fast", "normal", "slow"}
    engagement = pq.read_table(tmp_path / "ground_truth" / "engagement.parquet")
    assert engagement.num_rows > 30 * 4
    happenings = pq.read_table(tmp_path / "ground_truth" / "happenings.parquet")
    assert "renewal_decision" in set(happenings["kind"].to_pylist())

    # A smaller build into the same folder leaves none of the earlier parts behind.
    _build(tmp_path, customers=5, months=1)
    assert len(list((tmp_path / "events").glob("part-*.parquet"))) == 1


def test_a_target_event_count_scales_the_company_to_it(tmp_path: Path) -> None:
    summary = _build(tmp_path, customers=200, months=2, events=60_000)
    assert 0.7 * 60_000 <= summary.events <= 1.3 * 60_000  # type: ignore[attr-defined]
    assert summary.seat_scale < 1  # type: ignore[attr-defined]


def test_the_build_command_writes_the_files_and_says_what_it_wrote(tmp_path: Path) -> None:
    out = StringIO()
    with translation.override("en"):
        call_command(
            "demo", "build", "--out", str(tmp_path), "--customers", "12", "--months", "1",
            "--seed", "2", "--today", "2026-11-20", stdout=out,
        )  # fmt: skip
    assert "Wrote 12 customers" in out.getvalue()
    assert (tmp_path / "customers.csv").exists()
    with pytest.raises(CommandError, match="--out"), translation.override("en"):
        call_command("demo", "build", "--customers", "12")
    with pytest.raises(CommandError, match="options of build"), translation.override("en"):
        call_command("demo", "load", "--out", str(tmp_path))
