"""``kizuna playbooks list|install|simulate|run|effect``: playbooks from the command line."""

import json
from argparse import ArgumentParser
from datetime import datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone

from kizuna.core.access import cli_user
from kizuna.core.roles import Capability
from kizuna.playbooks import effects, library, services, simulation, triggers
from kizuna.playbooks.models import Playbook

MAX_DAYS = 366


def _playbook(value: str | None) -> Playbook:
    if not value:
        raise CommandError("ID: give the playbook's id or key")
    found = Playbook.objects.filter(pk=int(value)).first() if value.isdigit() else None
    found = found or Playbook.objects.filter(key=value).first()
    if found is None:
        raise CommandError(f"ID: no playbook with the id or key {value!r}")
    return found


def _state(playbook: Playbook) -> str:
    if playbook.is_live:
        return "on"
    return "paused" if playbook.enabled else "off"


class Command(BaseCommand):
    help = (
        "`kizuna playbooks list` lists the playbooks; `install [--enable] [KEY…]` installs "
        "ready playbooks (all without KEY; idempotent); `simulate ID [--days 90] [--json]` shows "
        "what a playbook would have done, writing nothing; `run [--now ISO]` runs one runner "
        "cycle; `effect ID [--json]` prints its effect."
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        """Options may come between the action and its keys (``install --enable KEY``)."""
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.parse_args = parser.parse_intermixed_args  # type: ignore[method-assign] # argparse's own variant
        return parser

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("action", choices=["list", "install", "simulate", "run", "effect"])
        parser.add_argument(
            "items",
            nargs="*",
            metavar="KEY_OR_ID",
            help="install: library keys; simulate/effect: ID.",
        )
        parser.add_argument("--enable", action="store_true", help="install: switch them on.")
        parser.add_argument("--days", type=int, default=90, help="simulate: days back (90).")
        parser.add_argument("--now", help="run: the cycle's time, ISO 8601 (default: now).")
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")
        parser.add_argument(
            "--user", help="Act as this user (install and run need manage_playbooks)."
        )

    def _out(self, payload: Any) -> None:
        self.stdout.write(json.dumps(payload, cls=DjangoJSONEncoder, ensure_ascii=False))

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        getattr(self, f"_{action}")(options)

    def _one_id(self, options: dict[str, Any]) -> Playbook:
        if len(options["items"]) != 1:
            raise CommandError(f"ID: `playbooks {options['action']}` takes one playbook id")
        return _playbook(options["items"][0])

    def _list(self, options: dict[str, Any]) -> None:
        cli_user(options["user"], Capability.VIEW)
        playbooks = list(Playbook.objects.order_by("name", "id"))
        fired = effects.fired_last_30_days([p.pk for p in playbooks])
        rows = [
            {
                "id": p.pk,
                "key": p.key,
                "name": p.name,
                "state": _state(p),
                "trigger": triggers.describe_trigger(p),
                "fired_last_30_days": fired.get(p.pk, 0),
            }
            for p in playbooks
        ]
        if options["json"]:
            self._out(rows)
            return
        if not rows:
            self.stdout.write("No playbook. `kizuna playbooks install` adds the ready ones.")
            return
        for row in rows:
            self.stdout.write(
                f"{row['id']:>4}  {row['state']:<6}  {row['name']}  — {row['trigger']}"
                f"  (fired {row['fired_last_30_days']} in 30 days)"
            )

    def _install(self, options: dict[str, Any]) -> None:
        user = cli_user(options["user"], Capability.MANAGE_PLAYBOOKS)
        keys = options["items"] or None
        try:
            installed = library.install_library(keys=keys, enable=options["enable"], user=user)
        except KeyError as error:
            known = ", ".join(library.LIBRARY_KEYS)
            raise CommandError(
                f"KEY: no ready playbook {error.args[0]!r} (known: {known})"
            ) from None
        except services.PlaybookError as error:
            raise CommandError(f"{error.field}: {error.message}") from None
        if options["json"]:
            self._out([{"id": p.pk, "key": p.key, "state": _state(p)} for p in installed])
            return
        for playbook in installed:
            self.stdout.write(f"{playbook.pk:>4}  {_state(playbook):<6}  {playbook.name}")

    def _simulate(self, options: dict[str, Any]) -> None:
        cli_user(options["user"], Capability.VIEW)
        playbook = self._one_id(options)
        days = options["days"]
        if not 1 <= days <= MAX_DAYS:
            raise CommandError(f"--days: give 1 to {MAX_DAYS}")
        end = timezone.localdate()
        result = simulation.simulate(
            playbook=playbook, start=end - timedelta(days=days - 1), end=end
        )
        if options["json"]:
            from kizuna.playbooks.api_playbooks import simulation_out

            self._out(simulation_out(result))
            return
        self.stdout.write(
            f"{playbook.name}: {result.fired} runs for {result.customers} customers "
            f"({result.held_out} held out) from {result.start} to {result.end}"
        )
        for run in result.runs:
            mark = " [held out]" if run.held_out else ""
            self.stdout.write(f"  {run.day}  {run.customer_name}{mark} — {run.trigger_summary}")
            for step in run.actions:
                self.stdout.write(f"      {step.due_on}  {step.description}")

    def _run(self, options: dict[str, Any]) -> None:
        from kizuna.playbooks.runner import run_cycle

        cli_user(options["user"], Capability.MANAGE_PLAYBOOKS)
        now = None
        if options["now"]:
            try:
                now = datetime.fromisoformat(options["now"])
            except ValueError:
                raise CommandError(f"--now: {options['now']!r} is not an ISO 8601 time") from None
            if timezone.is_naive(now):
                now = timezone.make_aware(now)
        result = run_cycle(now=now)
        payload = {
            "runs": result.runs,
            "held_out": result.held_out,
            "actions_done": result.actions_done,
            "actions_failed": result.actions_failed,
            "actions_retrying": result.actions_retrying,
            "actions_skipped": result.actions_skipped,
        }
        if options["json"]:
            self._out(payload)
            return
        self.stdout.write(
            "Runner cycle: {runs} runs ({held_out} held out); actions done {actions_done}, "
            "retrying {actions_retrying}, failed {actions_failed}, skipped "
            "{actions_skipped}".format(**payload)
        )

    def _effect(self, options: dict[str, Any]) -> None:
        from kizuna.playbooks.api_playbooks import effect_out

        cli_user(options["user"], Capability.VIEW)
        playbook = self._one_id(options)
        effect = effects.playbook_effect(playbook=playbook)
        if options["json"]:
            self._out(effect_out(effect))
            return
        self.stdout.write(f"{playbook.name} as of {effect.as_of}:")
        self.stdout.write(
            f"  fired {effect.fired} ({effect.acted} acted on, {effect.held_out} held out), "
            f"{effect.fired_last_30_days} in the last 30 days"
        )
        median = (
            "—" if effect.median_days_to_completion is None else effect.median_days_to_completion
        )
        self.stdout.write(
            f"  tasks: {effect.tasks_created} created, {effect.tasks_completed} completed, "
            f"median {median} days to completion"
        )
        for label, rate in (
            ("acted on", effect.acted_outcome),
            ("held out", effect.held_out_outcome),
        ):
            if rate is None:
                continue
            value = "—" if rate.value is None else f"{rate.value:.1%}"
            interval = (
                ""
                if rate.low is None or rate.high is None
                else f" (95% {rate.low:.1%}–{rate.high:.1%})"
            )
            self.stdout.write(f"  {label}: {rate.numerator}/{rate.denominator} = {value}{interval}")
        if effect.difference is not None:
            d = effect.difference
            self.stdout.write(
                f"  difference: {d.value * 100:+.1f} points (95% {d.low * 100:+.1f} to "
                f"{d.high * 100:+.1f})"
            )
        self.stdout.write(f"  {effect.verdict_text}")
