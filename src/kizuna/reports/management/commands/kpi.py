"""``kizuna kpi ID --start YYYY-MM-DD --end YYYY-MM-DD``: one KPI with its numerator and denominator.

For an onboarding KPI the period is the cohort ``[start, end)`` of first start dates, judged
today (or on ``--as-of``); ``--program KEY`` and ``--version N`` narrow it to one program
(version).
"""

import json
from argparse import ArgumentParser
from datetime import date
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from kizuna.reports.kpis import (
    DEFAULT_INACTIVITY_DAYS,
    KPIS,
    AnyKpi,
    GroupBy,
    GroupedKpi,
    KpiInputError,
    KpiResult,
    OnboardingKpiDefinition,
    Unit,
    compute_grouped_kpi,
    compute_kpi,
    kpi_definition,
    last_complete_month,
    parse_day,
    parse_group_by,
    program_filter,
    resolve_population,
)
from kizuna.reports.kpis.population import next_month

# The option a KpiInputError's field was given as.
OPTION_OF_FIELD = {
    "id": "ID",
    "start": "--start",
    "end": "--end",
    "segment": "--segment",
    "touch_model": "--touch-model",
    "stage": "--stage",
    "owner": "--owner",
    "product": "--product",
    "cohort": "--cohort",
    "inactivity_days": "--inactivity-days",
    "as_of": "--as-of",
    "group_by": "--group-by",
    "program": "--program",
    "version": "--version",
    "currency": "KIZUNA_CURRENCY_RATES",
}


def _error(exc: KpiInputError) -> CommandError:
    return CommandError(f"{OPTION_OF_FIELD.get(exc.field, exc.field)}: {exc.message}")


class Command(BaseCommand):
    help = (
        "Compute a KPI of KPI.md for the period [start, end] and print its value, numerator "
        "and denominator. `kizuna kpi list` lists the KPI ids. Without --start and --end the "
        "period is the last complete month."
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        # ``--version`` is the onboarding KPIs' program version here, not Django's
        # "show the version and exit": let ours replace it.
        kwargs.setdefault("conflict_handler", "resolve")
        return super().create_parser(prog_name, subcommand, **kwargs)

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("id", help="A KPI id (e.g. logo_churn_rate), or 'list'.")
        parser.add_argument("--start", help="First day of the period, YYYY-MM-DD.")
        parser.add_argument(
            "--end",
            help=(
                "The as-of day, YYYY-MM-DD: contracts are read on it, events count up to the "
                "day before (March is --start 2026-03-01 --end 2026-04-01)."
            ),
        )
        parser.add_argument("--segment", default="", help="Only customers of this segment.")
        parser.add_argument(
            "--touch-model",
            default="",
            help="Only customers of this touch model (high, low, tech).",
        )
        parser.add_argument("--stage", default="", help="Only customers in this lifecycle stage.")
        parser.add_argument("--owner", default="", help="Only customers this user owns (username).")
        parser.add_argument(
            "--product", default="", help="Only subscriptions of this product code."
        )
        parser.add_argument(
            "--cohort",
            default="",
            help="Only customers whose first contract started this month (YYYY-MM).",
        )
        parser.add_argument(
            "--inactivity-days",
            type=int,
            default=DEFAULT_INACTIVITY_DAYS,
            metavar="N",
            help=(
                "activity_churn_rate: the window before the start and the end day, in days "
                f"(1–366, default {DEFAULT_INACTIVITY_DAYS})."
            ),
        )
        parser.add_argument(
            "--as-of",
            default="",
            metavar="YYYY-MM-DD",
            help=(
                "The day segment, touch model, stage and owner are read on (from the lifecycle "
                "history); default: the start day of the period. Onboarding KPIs are also "
                "judged on it (default: today)."
            ),
        )
        parser.add_argument(
            "--group-by",
            default="",
            metavar="DIMENSION",
            help=(
                "Break the KPI down by segment, touch_model, stage or owner (as of the same "
                "day): one row per group, then the total."
            ),
        )
        parser.add_argument(
            "--program",
            default="",
            metavar="KEY",
            help="Onboarding KPIs only: the customers whose first plan is of this program (key).",
        )
        parser.add_argument(
            "--version",
            default=None,
            metavar="N",
            help="Onboarding KPIs only, with --program: only plans of this version of it.",
        )
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["id"] == "list":
            self._list(as_json=options["json"])
            return
        try:
            definition = kpi_definition(options["id"])
            if options["start"] is None and options["end"] is None:
                start = last_complete_month()
                end = next_month(start)
            elif options["start"] is None or options["end"] is None:
                missing = "start" if options["start"] is None else "end"
                raise KpiInputError(missing, "give both --start and --end, or neither")
            else:
                start = parse_day("start", options["start"])
                end = parse_day("end", options["end"])
            population = resolve_population(
                segment=options["segment"],
                touch_model=options["touch_model"],
                stage=options["stage"],
                owner=options["owner"],
                product=options["product"],
                cohort=options["cohort"],
                as_of=options["as_of"],
            )
            program = program_filter(
                definition.id, program=options["program"], version=options["version"]
            )
            group_by = parse_group_by(options["group_by"])
            if group_by is not None:
                grouped = compute_grouped_kpi(
                    kpi_id=definition.id,
                    start=start,
                    end=end,
                    population=population,
                    group_by=group_by,
                    inactivity_days=options["inactivity_days"],
                    program=program,
                )
                self._grouped(definition, grouped, as_json=options["json"])
                return
            result = compute_kpi(
                kpi_id=definition.id,
                start=start,
                end=end,
                population=population,
                inactivity_days=options["inactivity_days"],
                program=program,
            )
        except KpiInputError as exc:
            raise _error(exc) from None
        payload = result.as_json(name_en=definition.name_en, name_ja=definition.name_ja)
        if options["json"]:
            self.stdout.write(json.dumps(payload, ensure_ascii=False))
            return
        self.stdout.write(f"{definition.name_en} / {definition.name_ja} ({definition.id})")
        if isinstance(definition, OnboardingKpiDefinition):
            self._onboarding(result, population_day=population.day_for(start))
            return
        self.stdout.write(f"period       {payload['start']} → {payload['end']}")
        if population.reads_history or population.as_of:
            day = population.day_for(start).isoformat()
            self.stdout.write(f"as of        {day} (segment, touch model, stage, owner)")
        self.stdout.write(f"value        {_show(result.value, definition.unit)}")
        self.stdout.write(f"numerator    {_show(result.numerator, None)}")
        self.stdout.write(f"denominator  {_show(result.denominator, None)}")
        for key, value in result.details.items():
            if isinstance(value, list) and value and all(isinstance(row, dict) for row in value):
                self.stdout.write(f"  {key}:")
                for row in value:
                    self.stdout.write(f"    {_row(row)}")
            else:
                self.stdout.write(f"  {key}: {_show(value, None)}")

    def _onboarding(self, result: KpiResult, *, population_day: date) -> None:
        """A cohort's KPI: the cohort, the judging day, the value and its parts; the funnel
        as one table per program version."""
        definition = KPIS[result.id]
        details = dict(result.details)
        self.stdout.write(
            f"cohort       first start in [{result.start.isoformat()}, {result.end.isoformat()})"
        )
        self.stdout.write(f"judged on    {details.pop('as_of', '')}")
        self.stdout.write(
            f"read on      {population_day.isoformat()} (segment, touch model, stage, owner)"
        )
        for key in ("program", "version"):
            if key in details:
                self.stdout.write(f"{key:<12} {_show(details.pop(key), None)}")
        if definition.unit is Unit.FUNNEL:
            self.stdout.write(f"plans        {result.denominator}")
            for version in details["versions"]:
                self._funnel(version)
            return
        self.stdout.write(f"value        {_show(result.value, definition.unit)}")
        self.stdout.write(f"numerator    {_show(result.numerator, None)}")
        self.stdout.write(f"denominator  {_show(result.denominator, None)}")
        for key, value in details.items():
            if isinstance(value, dict):
                self.stdout.write(f"  {key}:")
                for name, row in value.items():
                    shown = _row(row) if isinstance(row, dict) else _show(row, None)
                    self.stdout.write(f"    {name}: {shown}")
            else:
                self.stdout.write(f"  {key}: {_show(value, None)}")

    def _funnel(self, version: dict[str, Any]) -> None:
        self.stdout.write("")
        self.stdout.write(
            f"{version['program_name']} ({version['program']}) v{version['version']}: "
            f"{version['plans']} plans, {version['completed_plans']} completed, "
            f"target {version['target_days']} days"
        )
        header = ("step", "completed", "share", "median days", "overdue", "stalled")
        rows = [
            (
                ("* " if step["key"] == version["stall_key"] else "  ")
                + f"{step['key']} {step['name']}"
                + ("" if step["required"] else " (optional)"),
                f"{step['completed']}/{step['plans']}",
                _percent(step["completed_share"]),
                "—" if step["median_days"] is None else f"{step['median_days']:g}",
                f"{step['overdue']} ({_percent(step['overdue_share'])})",
                str(step["stalled"]),
            )
            for step in version["steps"]
        ]
        widths = [max(len(row[n]) for row in [header, *rows]) for n in range(len(header))]
        for row in [header, *rows]:
            self.stdout.write(
                "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
            )
        if version["stall_key"]:
            self.stdout.write("* where most plans are stalled")

    def _grouped(self, definition: AnyKpi, grouped: GroupedKpi, *, as_json: bool) -> None:
        """One row per group (label, value, numerator, denominator), then the total."""
        if as_json:
            payload = grouped.as_json(name_en=definition.name_en, name_ja=definition.name_ja)
            self.stdout.write(json.dumps(payload, ensure_ascii=False))
            return
        total = grouped.total
        self.stdout.write(f"{definition.name_en} / {definition.name_ja} ({definition.id})")
        self.stdout.write(f"period       {total.start.isoformat()} → {total.end.isoformat()}")
        if isinstance(definition, OnboardingKpiDefinition):
            self.stdout.write(f"judged on    {total.details.get('as_of', '')}")
        self.stdout.write(f"group by     {grouped.group_by} as of {grouped.as_of.isoformat()}")
        rows = [
            (group.label, group.result.value, group.result.numerator, group.result.denominator)
            for group in grouped.groups
        ]
        rows.append(("total", total.value, total.numerator, total.denominator))
        width = max(len(row[0]) for row in rows)
        shown = [
            (
                label,
                _show(value, definition.unit if definition.unit in SHOWN_UNITS else None),
                _show(numerator, None),
                _show(denominator, None),
            )
            for label, value, numerator, denominator in rows
        ]
        value_width = max(len(row[1]) for row in shown)
        self.stdout.write(f"{'group':<{width}}  {'value':<{value_width}}  numerator  denominator")
        for label, value, numerator, denominator in shown:
            self.stdout.write(
                f"{label:<{width}}  {value:<{value_width}}  {numerator:<9}  {denominator}"
            )
        if grouped.group_by is GroupBy.OWNER:
            self.stdout.write(
                "(owner groups overlap: a customer counts under each of its onboarding, "
                "adoption and expansion CSMs)"
            )

    def _list(self, *, as_json: bool) -> None:
        if as_json:
            catalog = [
                {
                    "id": d.id,
                    "name_en": d.name_en,
                    "name_ja": d.name_ja,
                    "unit": str(d.unit),
                    "description": str(d.description),
                }
                for d in KPIS.values()
            ]
            self.stdout.write(json.dumps(catalog, ensure_ascii=False))
            return
        for definition in KPIS.values():
            self.stdout.write(
                f"{definition.id:<26} {definition.name_en} / {definition.name_ja} "
                f"[{definition.unit}]"
            )


def _row(row: dict[str, Any]) -> str:
    """One row of a breakdown (e.g. a key feature) as ``key=value`` pairs; rates as %."""
    return "  ".join(
        f"{key}={_show(value, Unit.RATE if key == 'rate' else None)}" for key, value in row.items()
    )


# The units _show writes with their unit (others: the bare number).
SHOWN_UNITS = (Unit.RATE, Unit.DAYS)


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def _show(value: Any, unit: Unit | None) -> str:
    if value is None:
        return "— (undefined)"
    if unit is Unit.RATE:
        return f"{value:.6f} ({value * 100:.2f}%)"
    if unit is Unit.DAYS:
        return f"{value} days"
    if isinstance(value, list):
        return ", ".join(str(item) for item in value) or "—"
    return str(value)
