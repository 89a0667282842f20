"""``kizuna import KIND FILE``: import customers, contacts or subscriptions from CSV or XLSX."""
# ruff: noqa: N999 - the module name is the command name users type: `kizuna import`

import io
import json
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from kizuna.core.access import cli_user
from kizuna.core.roles import Capability
from kizuna.customers.importing import KINDS, ImportReport, import_and_record, parse_mapping


class Command(BaseCommand):
    help = (
        "Import customers, contacts or subscriptions from a CSV (UTF-8 or Shift_JIS) or XLSX "
        "file. Rows are upserted by external id; a file with a bad row imports nothing."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("kind", choices=KINDS)
        parser.add_argument("file", type=Path)
        parser.add_argument(
            "--map",
            action="append",
            default=[],
            metavar="COLUMN=FIELD",
            help='Map a file column to a field, e.g. --map "Company Name=name"; '
            '"COLUMN=" ignores the column. Repeat for each column.',
        )
        parser.add_argument("--user", help="Act as this user (needs the import_data permission).")
        parser.add_argument("--json", action="store_true", help="Print the report as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        user = cli_user(options["user"], Capability.IMPORT_DATA)
        try:
            mapping = parse_mapping(options["map"])
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        path: Path = options["file"]
        try:
            content = path.read_bytes()
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc.strerror}") from None

        console = Console(stderr=True)
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            disable=options["json"] or not console.is_terminal,
        ) as progress:
            task = progress.add_task(f"{options['kind']} {path.name}", total=None)

            def advance(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            job, report = import_and_record(
                kind=options["kind"],
                content=content,
                filename=path.name,
                actor=user,
                mapping=mapping or None,
                progress=advance,
            )

        if options["json"]:
            self.stdout.write(json.dumps({"id": job.pk, **report.to_dict()}, ensure_ascii=False))
        else:
            self.stdout.write(self._render(report))
        if not report.ok:
            raise CommandError(
                f"{report.error_count} problem(s) in {path.name}: nothing was imported",
                returncode=1,
            )

    def _render(self, report: ImportReport) -> str:
        buffer = io.StringIO()
        console = Console(file=buffer, width=120, force_terminal=False, color_system=None)
        if report.ok:
            console.print(
                f"Imported {report.rows} {report.kind} rows: {report.created} created, "
                f"{report.updated} updated, {report.unchanged} unchanged."
            )
            extras = [
                f"{count} {label} created"
                for count, label in (
                    (report.customers_created, "customers"),
                    (report.products_created, "products"),
                    (report.plans_created, "plans"),
                )
                if count
            ]
            if extras:
                console.print("Also " + ", ".join(extras) + ".")
        else:
            table = Table("row", "column", "value", "reason", title="Rejected: nothing imported")
            for error in report.errors:
                table.add_row(
                    "" if error.row is None else str(error.row),
                    error.column or "",
                    error.value,
                    error.message,
                )
            console.print(table)
            if report.error_count > len(report.errors):
                console.print(f"… and {report.error_count - len(report.errors)} more.")
        if report.ignored_columns:
            console.print("Ignored columns: " + ", ".join(report.ignored_columns))
        return buffer.getvalue().rstrip("\n")
