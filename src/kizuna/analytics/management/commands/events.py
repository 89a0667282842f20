"""``kizuna events stats [--json]``: events received, waiting in the inbox, in the lake, refused."""

import json
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand

from kizuna.analytics.stats import event_stats


class Command(BaseCommand):
    help = (
        "`stats`: how many events were received, wait in the inbox, are in the lake, were "
        "duplicates (retries) and were rejected, by reason and by source."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        stats = actions.add_parser("stats", help="Print ingestion totals.")
        stats.add_argument("--json", action="store_true", help="Print JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        totals = event_stats()
        if options["json"]:
            self.stdout.write(json.dumps(totals, ensure_ascii=False, indent=2))
            return
        for key in ("received", "inbox", "lake", "imported", "duplicates", "rejected", "last_hour"):
            self.stdout.write(f"{key:<12} {totals[key]:>12,}")
        for reason, count in totals["rejected_by_reason"].items():
            self.stdout.write(f"  rejected {reason:<20} {count:>10,}")
        for name, figures in totals["sources"].items():
            self.stdout.write(
                f"source {name}: inbox {figures['inbox']:,}, last hour {figures['last_hour']:,}, "
                f"duplicates {figures['duplicates']:,}, rejected {figures['rejected']:,}"
            )
