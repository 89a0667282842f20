"""``kizuna demo build``: the simulated company as files, for benchmarks and large trials.

Writes into one folder::

    customers.csv  contacts.csv  subscriptions.csv    what a CRM exports (kizuna import …)
    events/part-00000.parquet …                       product events (kizuna ingest …)
    ground_truth.json  ground_truth/*.parquet          the hidden truth (see files.py)

Memory stays bounded whatever the size: customers are simulated one at a time, and their
events are written to the current Parquet part once a chunk holds ``chunk_events`` of them;
a part holds at most ``part_rows`` events. The same arguments give byte-identical files.
"""

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from kizuna.demo.config import DEFAULT_CONFIG, DemoConfig
from kizuna.demo.events import Calendar, CustomerEvents, EventGenerator, event_writer
from kizuna.demo.files import TABLES, TRUTH_DIR, TRUTH_MANIFEST, CsvFiles, TruthWriter
from kizuna.demo.simulation import Script, SimulatedCustomer, Simulator, add_months

# (phase, done, total): "estimating" (sample customers), "customers" (customers written).
BuildProgress = Callable[[str, int, int], None]
CHUNK_EVENTS = 1_000_000
CHUNK_CUSTOMERS = 2_000
PART_ROWS = 10_000_000
ROW_GROUP_ROWS = 1_000_000
ESTIMATE_SAMPLE = 1_500


@dataclass(frozen=True)
class BuildSummary:
    out: Path
    customers: int
    months: int
    seed: int
    today: date
    events: int
    event_files: tuple[Path, ...]
    rows: dict[str, int]
    seat_scale: float
    seconds: float

    @property
    def bytes(self) -> int:
        return sum(path.stat().st_size for path in self.out.rglob("*") if path.is_file())


def _window(today: date, months: int) -> tuple[date, date]:
    return add_months(today, -months), today


def estimate_seat_scale(
    *,
    config: DemoConfig,
    seed: int,
    today: date,
    customers: int,
    months: int,
    events: int,
    zone: str,
    progress: BuildProgress | None = None,
) -> float:
    """The ``seat_scale`` that makes the company produce about ``events`` events.

    Simulates a sample of customers spread over the company and sums their expected events,
    twice: at full size, then at the first guess (seat counts have a floor of one, so events are
    not quite proportional to the scale).
    """
    start, end = _window(today, months)
    calendar = Calendar.of(
        start=start, end=end, zone=zone, weekend_factor=config.activity.weekend_factor
    )
    scale = 1.0
    for attempt in range(2):
        trial = replace(config, seat_scale=scale)
        simulator = Simulator(config=trial, seed=seed, today=today, customers=customers)
        sample = simulator.sample(min(customers, ESTIMATE_SAMPLE))
        generator = EventGenerator(config=trial, seed=seed, calendar=calendar)
        produced = sum(generator.expected_events(c) for c in sample)
        expected = produced * customers / max(1, len(sample))
        if progress:
            progress("estimating", attempt + 1, 2)
        if expected <= 0:
            return scale
        scale *= events / expected
    return scale


def build_dataset(
    *,
    out: Path,
    customers: int,
    months: int,
    seed: int,
    today: date,
    zone: str,
    events: int | None = None,
    config: DemoConfig = DEFAULT_CONFIG,
    progress: BuildProgress | None = None,
    chunk_events: int = CHUNK_EVENTS,
    part_rows: int = PART_ROWS,
) -> BuildSummary:
    """Write the company of ``customers`` with ``months`` of events up to ``today`` into ``out``.

    ``events`` (optional) thins or thickens the company to about that many events by scaling
    every customer's seats (see ``estimate_seat_scale``). Files a previous build left in ``out``
    are replaced.
    """
    if customers < 1 or months < 1:
        raise ValueError("customers and months must be at least 1")
    began = time.perf_counter()
    if events is not None:
        scale = estimate_seat_scale(
            config=config, seed=seed, today=today, customers=customers, months=months,
            events=events, zone=zone, progress=progress,
        )  # fmt: skip
        config = replace(config, seat_scale=scale)
    _clear(out)
    start, end = _window(today, months)
    calendar = Calendar.of(
        start=start, end=end, zone=zone, weekend_factor=config.activity.weekend_factor
    )
    simulator = Simulator(config=config, seed=seed, today=today, customers=customers)
    generator = EventGenerator(config=config, seed=seed, calendar=calendar)
    csv_files = CsvFiles(out)
    truth = TruthWriter(out, config=config)
    parts = _Parts(out / "events", part_rows)
    chunk: list[SimulatedCustomer] = []
    chunk_events_list: list[CustomerEvents] = []
    buffered = written = 0

    def flush() -> None:
        nonlocal buffered
        parts.write(generator.table(chunk, chunk_events_list))
        csv_files.add(chunk)
        truth.add(chunk)
        chunk.clear()
        chunk_events_list.clear()
        buffered = 0

    try:
        for customer in simulator.customers():
            customer_events = generator.customer(customer)
            chunk.append(customer)
            chunk_events_list.append(customer_events)
            buffered += len(customer_events)
            written += 1
            if buffered >= chunk_events or len(chunk) >= CHUNK_CUSTOMERS:
                flush()
                if progress:
                    progress("customers", written, customers)
        flush()
    finally:
        csv_files.close()
        parts.close()
    truth.close(
        seed=seed, today=today.isoformat(), months=months, window=[start.isoformat(), end.isoformat()],
        events=parts.total, stories={c: s.name for c, s in _stories(simulator).items()},
    )  # fmt: skip
    if progress:
        progress("customers", customers, customers)
    return BuildSummary(
        out=out,
        customers=customers,
        months=months,
        seed=seed,
        today=today,
        events=parts.total,
        event_files=tuple(parts.paths),
        rows=dict(csv_files.rows),
        seat_scale=config.seat_scale,
        seconds=time.perf_counter() - began,
    )


def _stories(simulator: Simulator) -> dict[str, Script]:
    width = simulator.width
    return {f"C-{index + 1:0{width}d}": script for index, script in simulator.scripts.items()}


class _Parts:
    """Event Parquet files of at most ``part_rows`` rows each: part-00000.parquet, …"""

    def __init__(self, folder: Path, part_rows: int) -> None:
        self.folder = folder
        self.part_rows = part_rows
        self.paths: list[Path] = []
        self.writer: pq.ParquetWriter | None = None
        self.rows = 0
        self.total = 0

    def write(self, table: pa.Table) -> None:
        """Append ``table``, starting a new part whenever the current one is full."""
        while table.num_rows:
            if self.writer is None or self.rows >= self.part_rows:
                self.close()
                path = self.folder / f"part-{len(self.paths):05d}.parquet"
                self.paths.append(path)
                self.writer = event_writer(path)
            piece = table.slice(0, self.part_rows - self.rows)
            self.writer.write_table(piece, row_group_size=ROW_GROUP_ROWS)
            self.rows += piece.num_rows
            self.total += piece.num_rows
            table = table.slice(piece.num_rows)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
            self.rows = 0


def _clear(out: Path) -> None:
    """Remove what an earlier build wrote to ``out`` (and nothing else)."""
    for kind in TABLES:
        (out / f"{kind}.csv").unlink(missing_ok=True)
    for path in (out / "events").glob("part-*.parquet"):
        path.unlink()
    shutil.rmtree(out / TRUTH_DIR, ignore_errors=True)
    (out / TRUTH_MANIFEST).unlink(missing_ok=True)
