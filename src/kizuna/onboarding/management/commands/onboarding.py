"""``kizuna onboarding run|plan``: the daily onboarding run, or a plan for one customer."""

import json
from argparse import ArgumentParser
from datetime import date
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q

from kizuna.core.access import cli_user
from kizuna.core.roles import Capability
from kizuna.customers.models import Customer
from kizuna.onboarding.models import Program, VersionStatus


def _day(option: str, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"{option}: {value!r} is not a date (YYYY-MM-DD)") from None


def _customer(value: str) -> Customer:
    query = Q(external_id=value)
    if value.isdigit():
        query |= Q(pk=int(value))
    matches = list(Customer.objects.filter(query)[:2])
    if not matches:
        raise CommandError(f"CUSTOMER: no customer with id or external id {value!r}")
    if len(matches) > 1:  # external id "12" of one customer, id 12 of another
        exact = [c for c in matches if c.external_id == value]
        return exact[0]
    return matches[0]


# The option that carries each field of create_plan's errors.
_OPTIONS = {"version": "--program", "start_date": "--start", "customer": "CUSTOMER"}


def _messages(error: ValidationError) -> str:
    if hasattr(error, "error_dict"):
        return "; ".join(
            f"{_OPTIONS.get(field, field)}: {' '.join(messages)}"
            for field, messages in error.message_dict.items()
        )
    return " ".join(error.messages)


class Command(BaseCommand):
    help = (
        "`kizuna onboarding run [--as-of YYYY-MM-DD]` creates plans for new customers, "
        "completes milestones from product events and metrics, evaluates goals and refreshes "
        "statuses (the daily job). `kizuna onboarding plan CUSTOMER [--program KEY] "
        "[--start YYYY-MM-DD]` creates an onboarding plan for one customer (id or external id)."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("action", choices=["run", "plan"])
        parser.add_argument("customer", nargs="?", help="plan: the customer's id or external id.")
        parser.add_argument("--as-of", help="run: the day to run as of, YYYY-MM-DD (today).")
        parser.add_argument(
            "--program", help="plan: the program's key (default: the program that fits)."
        )
        parser.add_argument(
            "--start", help="plan: the start date, YYYY-MM-DD (the customer's first start)."
        )
        parser.add_argument(
            "--user", help="plan: act as this user (needs the edit_customers permission)."
        )
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "run":
            self._run(options)
        else:
            self._plan(options)

    def _run(self, options: dict[str, Any]) -> None:
        from kizuna.onboarding.jobs import run_onboarding

        for name in ("customer", "program", "start"):
            if options[name] is not None:
                raise CommandError(f"{'--' if name != 'customer' else ''}{name}: only for plan")
        counts = run_onboarding(_day("--as-of", options["as_of"]))
        if options["json"]:
            self.stdout.write(json.dumps(counts))
            return
        self.stdout.write(
            f"Onboarding: {counts['plans_created']} plans created, "
            f"{counts['milestones_completed']} milestones completed automatically, "
            f"{counts['goals_changed']} goals achieved or missed, "
            f"{counts['statuses_changed']} statuses changed."
        )

    def _plan(self, options: dict[str, Any]) -> None:
        from kizuna.onboarding.plans import create_plan

        if options["as_of"] is not None:
            raise CommandError("--as-of: only for run (use --start for a plan)")
        if not options["customer"]:
            raise CommandError("CUSTOMER: give the customer's id or external id")
        actor = cli_user(options["user"], Capability.EDIT_CUSTOMERS)
        customer = _customer(options["customer"])
        start = _day("--start", options["start"])
        version = None
        if options["program"]:
            program = Program.objects.filter(key=options["program"]).first()
            if program is None:
                raise CommandError(f"--program: no program {options['program']!r}")
            version = program.versions.filter(status=VersionStatus.PUBLISHED).first()
            if version is None:
                raise CommandError(f"--program: {options['program']!r} has no published version")
        try:
            plan = create_plan(customer=customer, version=version, start_date=start, actor=actor)
        except ValidationError as exc:
            raise CommandError(_messages(exc)) from None
        result = {
            "plan": plan.pk,
            "customer": customer.pk,
            "program": plan.version.program.key,
            "version": plan.version.number,
            "start_date": plan.start_date.isoformat(),
            "target_date": plan.target_date.isoformat(),
            "milestones": plan.milestones.count(),
            "tasks": plan.tasks.count(),
        }
        if options["json"]:
            self.stdout.write(json.dumps(result))
            return
        self.stdout.write(
            f"Plan {plan.pk} for {customer.name}: {result['program']} v{result['version']}, "
            f"{result['milestones']} milestones and {result['tasks']} follow-ups, "
            f"{result['start_date']} → {result['target_date']}."
        )
