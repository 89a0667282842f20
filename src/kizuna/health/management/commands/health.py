"""``kizuna health run|backfill|train|explain|signals``: health scores, signals and the model."""

import json
from argparse import ArgumentParser
from datetime import date
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q
from django.utils import timezone
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from kizuna.core.access import cli_user
from kizuna.core.roles import Capability
from kizuna.customers.models import Customer
from kizuna.health.models import ModelKind, RiskSignal, Scorecard

MAX_BACKFILL_DAYS = 20 * 366
ACTIONS = ("run", "backfill", "train", "explain", "signals")
# The options each action accepts (anything else given is refused, naming the option).
ALLOWED = {
    "run": {"as_of"},
    "backfill": {"start", "end", "scorecard", "only"},
    "train": {"kind", "horizon", "as_of"},
    "explain": {"customer", "day"},
    "signals": {"open", "customer"},
}
OPTION_NAMES = {
    "as_of": "--as-of",
    "start": "--start",
    "end": "--end",
    "scorecard": "--scorecard",
    "only": "--only",
    "kind": "--kind",
    "horizon": "--horizon",
    "customer": "CUSTOMER",
    "day": "--day",
    "open": "--open",
}


def _day(option: str, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"{option}: {value!r} is not a date (YYYY-MM-DD)") from None
    if not 2000 <= day.year <= 2999:
        raise CommandError(f"{option}: give a date between the years 2000 and 2999")
    return day


def _customer(value: str) -> Customer:
    query = Q(external_id=value)
    if value.isdigit():
        query |= Q(pk=int(value))
    matches = list(Customer.objects.filter(query)[:2])
    if not matches:
        raise CommandError(f"CUSTOMER: no customer with id or external id {value!r}")
    exact = [c for c in matches if c.external_id == value]
    return exact[0] if exact else matches[0]


class Command(BaseCommand):
    help = (
        "`kizuna health run [--as-of D]` runs the daily health job (signals, scores, band "
        "changes, churn predictions). `kizuna health backfill --start D --end D [--scorecard ID] "
        "[--only scores|signals]` computes signals and scores for past days. `kizuna health train "
        "[--kind logistic|gradient_boosting] [--horizon N] [--as-of D]` trains the churn model. "
        "`kizuna health explain CUSTOMER [--day D]` says why a score is what it is. `kizuna "
        "health signals [--open] [CUSTOMER]` lists risk signals. Add --json for JSON."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("action", choices=ACTIONS)
        parser.add_argument("customer", nargs="?", help="explain, signals: id or external id.")
        parser.add_argument("--as-of", help="run, train: the day, YYYY-MM-DD (today).")
        parser.add_argument("--start", help="backfill: the first day, YYYY-MM-DD.")
        parser.add_argument("--end", help="backfill: the last day, YYYY-MM-DD.")
        parser.add_argument("--scorecard", help="backfill: only this scorecard's customers (id).")
        parser.add_argument(
            "--only", choices=["scores", "signals"], help="backfill: only scores or signals."
        )
        parser.add_argument(
            "--kind", choices=list(ModelKind.values), help="train: the model (logistic)."
        )
        parser.add_argument("--horizon", help="train: churn within this many days (90).")
        parser.add_argument("--day", help="explain: the day, YYYY-MM-DD (the latest score).")
        parser.add_argument("--open", action="store_true", help="signals: only open ones.")
        parser.add_argument(
            "--user", help="act as this user (train needs the manage_health permission)."
        )
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        for name, option in OPTION_NAMES.items():
            given = options.get(name)
            if given not in (None, False) and name not in ALLOWED[action]:
                raise CommandError(f"{option}: not an option of `health {action}`")
        getattr(self, f"_{action}")(options)

    def _write(self, options: dict[str, Any], data: Any, text: str) -> None:
        self.stdout.write(json.dumps(data, default=str) if options["json"] else text)

    # --- run -------------------------------------------------------------------------------------

    def _run(self, options: dict[str, Any]) -> None:
        from kizuna.health.jobs import HealthRunInProgressError, run_health

        cli_user(options["user"], Capability.VIEW)
        day = _day("--as-of", options["as_of"]) or timezone.localdate()
        try:
            result = run_health(as_of=day)
        except HealthRunInProgressError as exc:
            raise CommandError(f"another health run is under way: {exc}") from None
        data = {
            "as_of": result.as_of.isoformat(),
            "scorecards_created": result.scorecards_created,
            "signals": result.signals,
            "scored": result.scored,
            "not_scored": result.not_scored,
            "bands": result.bands,
            "band_changes": result.band_changes,
            "model_trained": result.model_trained,
            "model": result.model_id,
            "predictions": result.predictions,
            "errors": result.errors,
            "seconds": round(result.seconds, 2),
        }
        signals = result.signals
        text = (
            f"Health {day}: {result.scored} customers scored ({result.not_scored} without data), "
            f"bands {json.dumps(result.bands)}, {result.band_changes} band changes; signals "
            f"{signals.get('opened', 0)} opened, {signals.get('kept', 0)} kept, "
            f"{signals.get('closed', 0)} closed; {result.predictions} churn predictions"
            f"{' (model retrained)' if result.model_trained else ''}."
        )
        for step, error in result.errors.items():
            text += f"\n{step} failed: {error}"
        self._write(options, data, text)

    # --- backfill --------------------------------------------------------------------------------

    def _backfill(self, options: dict[str, Any]) -> None:
        from kizuna.health.scorecards import ScorecardError
        from kizuna.health.scoring import backfill_scores, recompute_history
        from kizuna.health.signals import backfill_signals

        cli_user(options["user"], Capability.MANAGE_HEALTH)
        start = _day("--start", options["start"])
        end = _day("--end", options["end"])
        if start is None or end is None:
            raise CommandError(f"{'--start' if start is None else '--end'}: required for backfill")
        if end < start:
            raise CommandError("--end: must not be before --start")
        if (end - start).days + 1 > MAX_BACKFILL_DAYS:
            raise CommandError("--start: at most 20 years at a time")
        scorecard_id = None
        if options["scorecard"] is not None:
            if not str(options["scorecard"]).isdigit():
                raise CommandError(f"--scorecard: {options['scorecard']!r} is not an id")
            scorecard_id = int(options["scorecard"])
            if not Scorecard.objects.filter(pk=scorecard_id).exists():
                raise CommandError(f"--scorecard: no scorecard with id {scorecard_id}")
            if options["only"] == "signals":
                raise CommandError("--only: signals are not per scorecard; drop --scorecard")
        only = options["only"] or ("scores" if scorecard_id else None)
        console = Console(stderr=True)
        data: dict[str, Any] = {"start": start.isoformat(), "end": end.isoformat()}
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("days"),
            TimeElapsedColumn(),
            console=console,
            disable=options["json"] or not console.is_terminal,
        ) as progress:
            task = progress.add_task(f"health {start} – {end}", total=None)

            def advance(description: str, done: int, total: int) -> None:
                progress.update(task, description=description, completed=done, total=total)

            try:
                if only in (None, "signals"):
                    signals = backfill_signals(start=start, end=end, progress=advance)
                    data["signals"] = {
                        "opened": signals.opened,
                        "kept": signals.kept,
                        "closed": signals.closed,
                    }
                if only in (None, "scores"):
                    if scorecard_id is not None:
                        scores = recompute_history(
                            scorecard_id=scorecard_id, start=start, end=end, progress=advance
                        )
                    else:
                        scores = backfill_scores(start=start, end=end, progress=advance)
                    data["scores"] = {
                        "days": scores.days,
                        "rows": scores.rows,
                        "not_scored": scores.not_scored,
                        "bands": scores.bands,
                        "seconds": round(scores.seconds, 2),
                    }
            except (ScorecardError, ValueError) as exc:
                raise CommandError(str(exc)) from None
        parts = [f"Health backfill {start} – {end}:"]
        if "signals" in data:
            s = data["signals"]
            parts.append(f"signals {s['opened']} opened, {s['closed']} closed;")
        if "scores" in data:
            s = data["scores"]
            parts.append(
                f"{s['rows']:,} scores over {s['days']} days ({s['not_scored']:,} without data), "
                f"bands {json.dumps(s['bands'])}."
            )
        self._write(options, data, " ".join(parts))

    # --- train -----------------------------------------------------------------------------------

    def _train(self, options: dict[str, Any]) -> None:
        from kizuna.health.churn import train_model
        from kizuna.health.presentation import model_json

        cli_user(options["user"], Capability.MANAGE_HEALTH)
        day = _day("--as-of", options["as_of"]) or timezone.localdate()
        horizon = 90
        if options["horizon"] is not None:
            text = str(options["horizon"])
            if not text.isdigit() or not 7 <= int(text) <= 730:
                raise CommandError(f"--horizon: {text!r} is not a number of days from 7 to 730")
            horizon = int(text)
        try:
            model = train_model(
                as_of=day, kind=options["kind"] or ModelKind.LOGISTIC, horizon_days=horizon
            )
        except ValueError as exc:
            raise CommandError(f"the model could not be trained: {exc}") from None
        if model.error:
            data = {"id": model.pk, "error": model.error}
            if options["json"]:
                self.stdout.write(json.dumps(data))
                return
            raise CommandError(f"the model could not be trained: {model.error}")
        out = model_json(model)
        auc, baseline = out["auc"], out["baseline_auc"]
        verdict = ""
        if out["beats_baseline"] is False:
            verdict = " It does no better than the usage-drop rule."
        elif out["beats_baseline"]:
            verdict = " It beats the usage-drop rule."
        self._write(
            options,
            out,
            f"Churn model {model.pk} ({model.kind}, {horizon} days) trained on {model.rows:,} rows "
            f"({model.positives:,} churned): AUC {_fmt(auc)}, lift in the top decile "
            f"{_fmt(out['lift_top_decile'])}, usage-drop rule AUC {_fmt(baseline)}.{verdict}",
        )

    # --- explain ---------------------------------------------------------------------------------

    def _explain(self, options: dict[str, Any]) -> None:
        from kizuna.health.selectors import explain

        if not options["customer"]:
            raise CommandError("CUSTOMER: give the customer's id or external id")
        customer = _customer(options["customer"])
        day = _day("--day", options["day"])
        result = explain(customer_id=customer.pk, day=day)
        if result.day is None:
            raise CommandError(
                f"CUSTOMER: {customer.name} has no health score"
                + (f" on or before {day}" if day else "")
            )
        if options["json"]:
            self.stdout.write(json.dumps(result.as_json(), default=str))
            return
        lines = [
            f"{customer.name}: {_fmt(result.score, 0)} ({result.band or 'not scored'}) on "
            f"{result.day}, {result.scorecard}"
            + (
                f"; {_fmt(result.previous_score, 0)} on {result.previous_day} "
                f"({_signed(result.change)})"
                if result.previous_day
                else ""
            )
        ]
        lines += [f"  {line['text']}" for line in result.lines]
        self.stdout.write("\n".join(lines))

    # --- signals ---------------------------------------------------------------------------------

    def _signals(self, options: dict[str, Any]) -> None:
        from kizuna.health.presentation import signal_reason

        signals = RiskSignal.objects.select_related("customer").order_by("-opened_on", "-id")
        if options["open"]:
            signals = signals.filter(closed_on__isnull=True)
        if options["customer"]:
            signals = signals.filter(customer=_customer(options["customer"]))
        rows = [
            {
                "id": s.pk,
                "customer": s.customer_id,
                "customer_name": s.customer.name,
                "kind": s.kind,
                "severity": s.severity,
                "opened_on": s.opened_on.isoformat(),
                "last_seen_on": s.last_seen_on.isoformat(),
                "closed_on": s.closed_on.isoformat() if s.closed_on else None,
                "resolution": s.resolution,
                "reason": signal_reason(s),
            }
            for s in signals[:1000]
        ]
        if options["json"]:
            self.stdout.write(json.dumps(rows))
            return
        if not rows:
            self.stdout.write(
                "No risk signals." if not options["open"] else "No open risk signals."
            )
            return
        for row in rows:
            until = (
                f" – {row['closed_on']} ({row['resolution']})" if row["closed_on"] else " (open)"
            )
            self.stdout.write(
                f"{row['opened_on']}{until} {row['severity']:<6} {row['kind']:<20} "
                f"{row['customer_name']}: {row['reason']}"
            )


def _fmt(value: float | None, places: int = 2) -> str:
    return "—" if value is None else f"{value:.{places}f}"


def _signed(value: float | None) -> str:
    return "—" if value is None else f"{value:+.0f}"
