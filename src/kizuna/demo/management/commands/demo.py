"""``kizuna demo load`` fills an empty database with the demo company; ``kizuna demo build``
writes a (large) simulated company as files. ``kizuna demo`` alone is ``kizuna demo load``."""

import argparse
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.translation import gettext as _
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from kizuna.customers.models import Customer
from kizuna.demo.build import build_dataset
from kizuna.demo.load import (
    DEFAULT_CUSTOMERS,
    DEFAULT_MONTHS,
    DemoDataExistsError,
    DemoLoadError,
    LoadSummary,
    Stage,
    StageProgress,
    load_demo,
)

BUILD_CUSTOMERS = 10_000
BUILD_MONTHS = 12


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(_("not a date (YYYY-MM-DD): %s") % value) from None


class Command(BaseCommand):
    help = (
        "The simulated demo company. `kizuna demo load` (or just `kizuna demo`) loads it into an "
        "empty database through the import and ingestion services; `kizuna demo build` writes a "
        "company of any size as files (CSV, Parquet events, ground truth) for benchmarks."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "action",
            nargs="?",
            choices=("load", "build"),
            default="load",
            help="load (the default): into the configured, empty database; build: as files.",
        )
        parser.add_argument("--seed", type=int, default=7, help="Random seed (default 7).")
        parser.add_argument(
            "--customers",
            type=int,
            help=f"Number of customers (load: {DEFAULT_CUSTOMERS}; build: {BUILD_CUSTOMERS:,}).",
        )
        parser.add_argument(
            "--months",
            type=int,
            help=f"Months of product usage history (load: {DEFAULT_MONTHS}; build: {BUILD_MONTHS}).",
        )
        parser.add_argument(
            "--today", type=_day, help="The simulation's today, YYYY-MM-DD (default: today)."
        )
        parser.add_argument(
            "--if-empty",
            action="store_true",
            help="load: do nothing when the database already has customers.",
        )
        parser.add_argument(
            "--metric-months",
            type=int,
            help="load: months of daily metric history to compute (default: all the history).",
        )
        parser.add_argument("--out", type=Path, help="build: the folder to write into.")
        parser.add_argument(
            "--events",
            type=int,
            help="build: about this many events (every customer's seats are scaled to match).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "build":
            if options["if_empty"] or options["metric_months"] is not None:
                raise CommandError(_("--if-empty and --metric-months are options of load."))
            self._build(options)
        else:
            if options["out"] is not None or options["events"] is not None:
                raise CommandError(_("--out and --events are options of build."))
            self._load(options)

    # -- load -----------------------------------------------------------------------------------

    def _load(self, options: dict[str, Any]) -> None:
        customers = DEFAULT_CUSTOMERS if options["customers"] is None else options["customers"]
        months = DEFAULT_MONTHS if options["months"] is None else options["months"]
        if (
            customers < 1
            or months < 1
            or (options["metric_months"] is not None and options["metric_months"] < 1)
        ):
            raise CommandError(_("--customers, --months and --metric-months must be at least 1."))
        if options["if_empty"] and Customer.objects.exists():
            self.stdout.write(_("The database already has customers: demo data not added."))
            return
        console = Console(stderr=True)
        began = time.perf_counter()
        with _progress(console) as progress:

            def on_stage(stage: Stage) -> StageProgress:
                task = progress.add_task(str(stage.label), total=None)

                def report(done: int, total: int) -> None:
                    progress.update(task, completed=done, total=total or None)

                return report

            try:
                summary = load_demo(
                    seed=options["seed"],
                    customers=customers,
                    months=months,
                    today=options["today"],
                    metric_months=options["metric_months"],
                    on_stage=on_stage,
                )
            except DemoDataExistsError:
                raise CommandError(
                    _(
                        "The database already has customers. Use --if-empty to skip, "
                        "or point KIZUNA_DATA_DIR / DATABASE_URL at an empty database."
                    )
                ) from None
            except DemoLoadError as exc:
                raise CommandError(str(exc)) from None
        self.stdout.write(_render(summary, time.perf_counter() - began))
        if options["verbosity"] > 1:
            self.stdout.write(
                " · ".join(f"{key} {seconds:.1f} s" for key, seconds in summary.seconds.items())
            )

    # -- build ----------------------------------------------------------------------------------

    def _build(self, options: dict[str, Any]) -> None:
        customers = BUILD_CUSTOMERS if options["customers"] is None else options["customers"]
        months = BUILD_MONTHS if options["months"] is None else options["months"]
        events = options["events"]
        if customers < 1 or months < 1 or (events is not None and events < 1):
            raise CommandError(_("--customers, --months and --events must be at least 1."))
        out: Path | None = options["out"]
        if out is None:
            raise CommandError(_("build needs --out DIR, the folder to write into."))
        if out.exists() and not out.is_dir():
            raise CommandError(_("%(out)s is not a folder.") % {"out": out})
        console = Console(stderr=True)
        with _progress(console) as progress:
            tasks: dict[str, Any] = {}

            def report(phase: str, done: int, total: int) -> None:
                if phase not in tasks:
                    label = _("Estimating seats") if phase == "estimating" else _("Customers")
                    tasks[phase] = progress.add_task(label, total=total)
                progress.update(tasks[phase], completed=done, total=total)

            summary = build_dataset(
                out=out,
                customers=customers,
                months=months,
                seed=options["seed"],
                today=options["today"] or timezone.localdate(),
                zone=settings.TIME_ZONE,
                events=events,
                progress=report,
            )
        lines = [
            _("Wrote %(customers)s customers and %(events)s events (%(months)d months) to %(out)s")
            % {
                "customers": f"{summary.customers:,}",
                "events": f"{summary.events:,}",
                "months": summary.months,
                "out": summary.out,
            },
            "  "
            + _("%(contacts)s contacts, %(subscriptions)s subscription rows, %(files)d event files")
            % {
                "contacts": f"{summary.rows['contacts']:,}",
                "subscriptions": f"{summary.rows['subscriptions']:,}",
                "files": len(summary.event_files),
            },
            "  "
            + _("%(size).1f MB in %(seconds).1f s; seat scale %(scale).4f")
            % {
                "size": summary.bytes / 1e6,
                "seconds": summary.seconds,
                "scale": summary.seat_scale,
            },
        ]
        self.stdout.write("\n".join(lines))


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=not console.is_terminal,
    )


def _render(summary: LoadSummary, seconds: float) -> str:
    stories: dict[str, Callable[[str], str]] = {
        "admin_changed_recently": lambda name: (
            _("%(name)s: a new administrator three weeks ago, usage fell (Customer 360 → Usage)")
            % {"name": name}
        ),
        "admin_changed_and_trained": lambda name: (
            _("%(name)s: administrator changed four months ago, recovered after a training")
            % {"name": name}
        ),
        "ripe_for_upsell": lambda name: (
            _("%(name)s: seats full and engaged, ripe for upsell") % {"name": name}
        ),
        "onboarding_stalled": lambda name: (
            _("%(name)s: onboarding stalled at the data connection") % {"name": name}
        ),
    }
    lines = [
        _("Demo company loaded (as of %(today)s) in %(seconds).0f s:")
        % {"today": summary.today, "seconds": seconds},
        _(
            "%(customers)d customers, %(in_service)d in service, %(churned)d churned, "
            "%(reactivated)d reactivated"
        )
        % {
            "customers": summary.customers,
            "in_service": summary.in_service,
            "churned": summary.churned,
            "reactivated": summary.reactivated,
        },
        _("%(expanded)d expanded, %(contracted)d contracted, %(cross_sold)d cross-sold")
        % {
            "expanded": summary.expanded,
            "contracted": summary.contracted,
            "cross_sold": summary.cross_sold,
        },
        _(
            "%(subscriptions)d subscriptions, %(contacts)d contacts, "
            "%(entries)d timeline entries, %(events)s product events"
        )
        % {
            "subscriptions": summary.subscriptions,
            "contacts": summary.contacts,
            "entries": summary.timeline_entries,
            "events": f"{summary.events:,}",
        },
        _("MRR in service: ¥%(mrr)s") % {"mrr": f"{summary.mrr:,.0f}"},
        _(
            "%(segments)d segments, %(teams)d CSM teams, %(changes)d lifecycle changes in "
            "history, %(pending)d handoffs waiting for acknowledgement"
        )
        % {
            "segments": summary.segments,
            "teams": summary.teams,
            "changes": summary.lifecycle_changes,
            "pending": summary.handoffs_pending,
        },
        _(
            "%(scores)d health scores, %(signals)d open risk signals, churn model AUC "
            "%(auc)s (backtest)"
        )
        % {
            "scores": summary.health_scores,
            "signals": summary.signals_open,
            "auc": f"{summary.model_auc:.2f}" if summary.model_auc is not None else "—",
        },
        _("%(playbooks)d playbooks switched on, %(tasks)d tasks open")
        % {"playbooks": summary.playbooks, "tasks": summary.tasks_open},
        *(stories[key](name) for key, name in sorted(summary.stories.items()) if key in stories),
        _("Ground truth (never read by Kizuna): %(path)s") % {"path": summary.truth},
        _("Sign in as %(users)s with the password %(password)s")
        % {"users": ", ".join(summary.users), "password": summary.password},
    ]
    body = [lines[0], *(f"  {line}" for line in lines[1:-1]), lines[-1]]
    return "\n".join(body)
