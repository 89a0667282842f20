"""Import 100,000 subscription rows into a fresh SQLite file database and time it.

The baseline is a plain ``csv.reader`` pass over the same file in the same run, so the figure
that matters is the ratio (the machines are shared; absolute times vary).
Run: .venv/bin/python bench/bench_import.py [ROWS]
"""

import csv
import os
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROWS = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
ACCOUNTS = ROWS // 10
PRODUCTS = ["Analytics", "Support", "Workflow", "Storage", "SSO"]


def _month(start: date, months: int) -> date:
    index = start.month - 1 + months
    return date(start.year + index // 12, index % 12 + 1, 1)


def write_file(path: Path) -> None:
    """ACCOUNTS customers with ten back-to-back monthly rows each, one product per customer."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["account_id", "product", "start_date", "end_date", "mrr", "quantity", "units",
             "bill_period_months", "discount"]
        )  # fmt: skip
        first = date(2023, 1, 1)
        for row in range(ROWS):
            account, period = divmod(row, 10)
            start = _month(first, period + account % 12)
            end = _month(start, 1)
            writer.writerow(
                [f"ACME-{account:06d}", PRODUCTS[account % len(PRODUCTS)], start.isoformat(),
                 end.isoformat(), f"{1000 + account % 90 * 1000:,}", 1 + account % 50, "seats", 1,
                 "10%" if account % 7 == 0 else "0"]
            )  # fmt: skip


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="kizuna-bench-import-"))
    os.environ["KIZUNA_ENV"] = "test"
    os.environ["KIZUNA_DATA_DIR"] = str(work)
    os.environ["DATABASE_URL"] = f"sqlite:///{work / 'bench.sqlite3'}"
    os.environ["DJANGO_SETTINGS_MODULE"] = "kizuna.config.settings"
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import django

    django.setup()
    from django.core.management import call_command

    from kizuna.customers.importing import import_file
    from kizuna.customers.models import Subscription, SubscriptionChange

    call_command("migrate", verbosity=0)
    path = work / "subscriptions.csv"
    write_file(path)
    content = path.read_bytes()

    started = time.perf_counter()
    with path.open(newline="", encoding="utf-8") as handle:
        baseline_rows = sum(1 for _row in csv.reader(handle)) - 1
    baseline = time.perf_counter() - started

    started = time.perf_counter()
    first = import_file(kind="subscriptions", content=content, filename=path.name)
    first_seconds = time.perf_counter() - started
    assert first.ok, first.errors[:5]
    assert first.created == ROWS == baseline_rows == Subscription.objects.count()

    started = time.perf_counter()
    second = import_file(kind="subscriptions", content=content, filename=path.name)
    second_seconds = time.perf_counter() - started
    assert (second.created, second.updated, second.unchanged) == (0, 0, ROWS)
    assert SubscriptionChange.objects.count() == 0

    size_mb = len(content) / 1e6
    print(f"file: {ROWS:,} rows, {ACCOUNTS:,} customers, {size_mb:.1f} MB (SQLite file database)")
    print(f"csv.reader baseline : {baseline:7.2f} s  {ROWS / baseline:12,.0f} rows/s")
    print(
        f"first import        : {first_seconds:7.2f} s  {ROWS / first_seconds:12,.0f} rows/s"
        f"  ({first_seconds / baseline:.0f}x the baseline)"
    )
    print(
        f"same file again     : {second_seconds:7.2f} s  {ROWS / second_seconds:12,.0f} rows/s"
        f"  ({second_seconds / baseline:.0f}x the baseline; 0 changes)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
