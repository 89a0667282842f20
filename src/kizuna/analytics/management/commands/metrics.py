"""``kizuna metrics run|list``: compute the metric history, list the metric definitions."""

import json
from argparse import ArgumentParser
from datetime import date
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from kizuna.analytics import engine as engines
from kizuna.analytics.metrics import (
    STEPS,
    MetricDefinitionError,
    MetricRunResult,
    incremental_range,
    run_metrics,
)
from kizuna.analytics.models import MetricDefinition
from kizuna.core.access import cli_user
from kizuna.core.roles import Capability


def _day(option: str, value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"{option}: {value!r} is not a date (YYYY-MM-DD)") from None


class Command(BaseCommand):
    help = (
        "Compute the daily history of every active metric for every customer and keep the "
        "latest values on the customers. `kizuna metrics run` without dates is the nightly "
        "incremental run; with --start and --end it (re)computes those days. "
        "`kizuna metrics list` lists the definitions."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("action", choices=["run", "list"])
        parser.add_argument("--start", help="First day to compute, YYYY-MM-DD.")
        parser.add_argument("--end", help="Last day to compute, YYYY-MM-DD.")
        parser.add_argument(
            "--engine",
            choices=engines.ENGINES,
            help="Analytics engine (default: KIZUNA_ANALYTICS_ENGINE).",
        )
        parser.add_argument(
            "--step",
            choices=STEPS,
            default="day",
            help="Measure every day, or every 7th day counting back from --end.",
        )
        parser.add_argument(
            "--user", help="Act as this user (needs the manage_metrics permission)."
        )
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        cli_user(options["user"], Capability.MANAGE_METRICS)
        if options["action"] == "list":
            self._list(as_json=options["json"])
            return
        if (options["start"] is None) != (options["end"] is None):
            missing = "--start" if options["start"] is None else "--end"
            raise CommandError(f"{missing}: give both --start and --end, or neither")
        if options["start"] is None:
            start, end = incremental_range()
        else:
            start = _day("--start", options["start"])
            end = _day("--end", options["end"])
            if end < start:
                raise CommandError("--end: must not be before --start")
        console = Console(stderr=True)
        try:
            with Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("days"),
                TimeElapsedColumn(),
                console=console,
                disable=options["json"] or not console.is_terminal,
            ) as progress:
                task = progress.add_task(f"metrics {start} – {end}", total=None)

                def advance(description: str, done: int, total: int) -> None:
                    progress.update(task, description=description, completed=done, total=total)

                result = run_metrics(
                    start, end, engine=options["engine"], step=options["step"], progress=advance
                )
        except MetricDefinitionError as exc:
            raise CommandError(str(exc)) from None
        if options["json"]:
            self.stdout.write(json.dumps(result.to_dict()))
        else:
            self.stdout.write(self._summary(result))

    def _summary(self, result: MetricRunResult) -> str:
        return (
            f"Computed {len(result.metrics)} metrics for {result.days} days "
            f"({result.start} – {result.end}, every {result.step}) on {result.engine}: "
            f"{result.rows:,} values in {result.seconds:.1f} s; latest values of "
            f"{result.customers_updated:,} customers updated."
        )

    def _list(self, *, as_json: bool) -> None:
        definitions = MetricDefinition.objects.select_related("base_metric").order_by(
            "position", "key"
        )
        rows = [
            {
                "key": d.key,
                "name": d.name,
                "name_ja": d.name_ja,
                "kind": d.kind,
                "event_types": d.event_types,
                "window_kind": d.window_kind,
                "window_days": d.window_days,
                "base_metric": d.base_metric.key if d.base_metric else None,
                "active": d.is_active,
            }
            for d in definitions
        ]
        if as_json:
            self.stdout.write(json.dumps(rows, ensure_ascii=False))
            return
        for row in rows:
            window = "month" if row["window_kind"] == "calendar_month" else f"{row['window_days']}d"
            flag = "" if row["active"] else "  (inactive)"
            self.stdout.write(
                f"{row['key']:<28} {row['kind']:<17} {window:>6}  {row['name']}{flag}"
            )
