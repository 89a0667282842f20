"""``kizuna lake flush``: move the events waiting in the inbox to the lake's Parquet files."""

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from kizuna.analytics.flush import DEFAULT_BATCH_SIZE, flush_inbox


class Command(BaseCommand):
    help = (
        "`flush`: write the inbox to the event lake exactly once (safe to run while "
        "`kizuna worker` runs: a second flush waits its turn by doing nothing)."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        flush = actions.add_parser("flush", help="Move the inbox to the lake.")
        flush.add_argument(
            "--batch-size",
            type=int,
            default=DEFAULT_BATCH_SIZE,
            help=f"Inbox rows per lake batch (default {DEFAULT_BATCH_SIZE:,}).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1")
        result = flush_inbox(batch_size=options["batch_size"])
        if result.busy:
            self.stdout.write("another lake flush is running; nothing done")
            return
        self.stdout.write(
            f"{result.rows_written:,} events written in {result.batches} batch(es), "
            f"{result.duplicates:,} duplicates dropped, {len(result.files)} file(s)"
        )
