"""``kizuna ingest FILE…``: import event files (CSV, NDJSON, Parquet) into the event lake."""

import io
import json
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from kizuna.analytics.importing import (
    FORMATS,
    EventImportError,
    EventImportResult,
    ImportStatus,
    detect_format,
    import_event_file,
    parse_mapping,
)
from kizuna.analytics.importing import (
    Progress as ImportProgress,
)
from kizuna.core.access import cli_user
from kizuna.core.roles import Capability


class Command(BaseCommand):
    help = (
        "Import product events from CSV (UTF-8 or Shift_JIS), NDJSON or Parquet files into the "
        "event lake. The columns account_id, event_time, event_type, user_id, event_value need "
        "no mapping. A file with a bad row imports nothing; a file imported before is skipped."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("files", nargs="+", type=Path, metavar="FILE")
        parser.add_argument(
            "--map",
            action="append",
            default=[],
            metavar="TARGET=COLUMN",
            help="Take a column from a file column of another name, e.g. --map event_type=action. "
            "Targets: account_id, event_time, event_type, user_id, event_value, message_id, "
            "feature, anonymous_id, properties. Repeat for each column.",
        )
        parser.add_argument(
            "--format", choices=FORMATS, help="The files' format (default: from the file name)."
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Check the files and write nothing."
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="Import a file even if the same content was imported before.",
        )
        parser.add_argument("--user", help="Act as this user (needs the import_data permission).")
        parser.add_argument("--json", action="store_true", help="Print the results as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        user = cli_user(options["user"], Capability.IMPORT_DATA)
        try:
            mapping = parse_mapping(options["map"])
        except EventImportError as exc:
            raise CommandError(str(exc)) from None
        files: list[Path] = options["files"]
        # Every file's name and format is checked before the first is imported.
        for path in files:
            if not path.is_file():
                raise CommandError(_("cannot read %(path)s: no such file") % {"path": path})
            try:
                detect_format(path, options["format"])
            except EventImportError as exc:
                raise CommandError(str(exc)) from None

        console = Console(stderr=True)
        results: list[EventImportResult] = []
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=console,
            disable=options["json"] or not console.is_terminal,
        ) as progress:
            for path in files:
                task = progress.add_task(path.name, total=None, detail="")
                try:
                    result = import_event_file(
                        path,
                        mapping=mapping or None,
                        fmt=options["format"],
                        force=options["force"],
                        progress=_progress_reporter(progress, task),
                        user=user,
                        dry_run=options["dry_run"],
                    )
                except EventImportError as exc:
                    raise CommandError(str(exc)) from None
                except OSError as exc:
                    raise CommandError(
                        _("cannot read %(path)s: %(error)s")
                        % {"path": path, "error": exc.strerror or exc}
                    ) from None
                progress.update(task, completed=1, total=1, detail=str(result.status))
                results.append(result)

        if options["json"]:
            payload = [result.to_dict() for result in results]
            self.stdout.write(json.dumps(payload, ensure_ascii=False, default=str))
        else:
            self.stdout.write("\n".join(_render(result) for result in results))
        failed = [result for result in results if not result.ok]
        if failed:
            raise CommandError(
                _("%(count)d of %(total)d file(s) not imported: %(names)s")
                % {
                    "count": len(failed),
                    "total": len(results),
                    "names": ", ".join(result.file_name for result in failed),
                },
                returncode=1,
            )


_PHASES = {"reading": 0, "validating": 1, "preparing": 2, "writing": 3}


def _progress_reporter(progress: Progress, task: TaskID) -> ImportProgress:
    def report(phase: str, done: int, total: int) -> None:
        # One bar per file, four phases: reading, validating, preparing, writing (per day).
        step = _PHASES.get(phase, 0)
        fraction = done / total if total else 0.0
        unit = _("days") if phase == "writing" else "%"
        detail = f"{phase} {done}/{total} {unit}" if phase == "writing" else f"{phase} {done}{unit}"
        progress.update(task, completed=step + fraction, total=len(_PHASES), detail=detail)

    return report


def _render(result: EventImportResult) -> str:
    buffer = io.StringIO()
    console = Console(file=buffer, width=120, force_terminal=False, color_system=None)
    name = result.file_name
    if result.status == ImportStatus.DONE:
        console.print(
            _("%(name)s: imported %(rows)s events over %(days)d day(s) as import #%(id)d.")
            % {
                "name": name,
                "rows": f"{result.rows:,}",
                "days": len(result.days),
                "id": result.import_id,
            }
        )
    elif result.status == ImportStatus.CHECKED:
        console.print(
            _("%(name)s: %(rows)s valid events over %(days)d day(s); nothing written (dry run).")
            % {"name": name, "rows": f"{result.rows:,}", "days": len(result.days)}
        )
    elif result.status == ImportStatus.SKIPPED:
        console.print(f"{name}: {result.message}")
    else:
        title = _("%(name)s rejected: nothing imported") % {"name": name}
        table = Table(_("line"), _("column"), _("value"), _("reason"), title=title)
        for error in result.errors:
            table.add_row(
                "" if error.line is None else str(error.line),
                error.column or "",
                error.value,
                error.reason,
            )
        console.print(table)
        if result.bad_rows:
            console.print(
                _("%(bad)s bad row(s), %(errors)s problem(s) in all.")
                % {"bad": f"{result.bad_rows:,}", "errors": f"{result.error_count:,}"}
            )
    if result.ok and result.ignored_columns:
        console.print(
            _("Ignored columns: %(columns)s") % {"columns": ", ".join(result.ignored_columns)}
        )
    return buffer.getvalue().rstrip("\n")
