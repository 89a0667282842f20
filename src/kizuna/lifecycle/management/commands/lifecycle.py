"""``kizuna lifecycle run|history``: run the lifecycle rules, print a customer's history."""

import json
from argparse import ArgumentParser
from datetime import date
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q

from kizuna.core.access import cli_user
from kizuna.core.roles import Capability
from kizuna.customers.models import Customer
from kizuna.lifecycle.jobs import LifecycleRunInProgressError, run_counts, run_lifecycle
from kizuna.lifecycle.stages import StageCriterionError, lifecycle_history


def _day(option: str, value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"{option}: {value!r} is not a date (YYYY-MM-DD)") from None


def find_customer(value: str) -> Customer:
    """A customer by its Kizuna id or its external id (the id wins when both match)."""
    value = value.strip()
    lookup = Q(external_id=value)
    if value.isdigit():
        lookup |= Q(pk=int(value))
    found = sorted(Customer.objects.filter(lookup), key=lambda c: (str(c.pk) != value, c.pk))
    if not found:
        raise CommandError(f"CUSTOMER: no customer with the id or external id {value!r}")
    return found[0]


class Command(BaseCommand):
    help = (
        "`kizuna lifecycle run [--as-of YYYY-MM-DD]` evaluates segments, stages, touch models "
        "and owner assignment for every customer (the nightly job) and prints what changed. "
        "`kizuna lifecycle history CUSTOMER` prints a customer's segment, stage, touch-model "
        "and owner history (CUSTOMER is its id or external id)."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("action", choices=["run", "history"])
        parser.add_argument(
            "customer", nargs="?", help="history: the customer's id or external id."
        )
        parser.add_argument("--as-of", help="run: the day to evaluate, YYYY-MM-DD (today).")
        parser.add_argument(
            "--user", help="Act as this user (run needs the manage_lifecycle permission)."
        )
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "run":
            if options["customer"]:
                raise CommandError("CUSTOMER: `lifecycle run` takes no customer")
            self._run(options)
        else:
            if options["as_of"]:
                raise CommandError("--as-of: only `lifecycle run` takes a day")
            if not options["customer"]:
                raise CommandError("CUSTOMER: give the customer's id or external id")
            cli_user(options["user"], Capability.VIEW)
            self._history(find_customer(options["customer"]), as_json=options["json"])

    def _run(self, options: dict[str, Any]) -> None:
        cli_user(options["user"], Capability.MANAGE_LIFECYCLE)
        day = _day("--as-of", options["as_of"]) if options["as_of"] else None
        try:
            run = run_lifecycle(as_of=day)
        except LifecycleRunInProgressError as error:
            raise CommandError(str(error)) from None
        except StageCriterionError as error:
            raise CommandError(f"Settings → Stages: {error}") from None
        counts = run_counts(run)
        if options["json"]:
            payload = {"run": run.pk, "as_of": run.as_of.isoformat(), "counts": run.counts}
            self.stdout.write(json.dumps(payload))
            return
        self.stdout.write(f"Lifecycle run {run.pk} as of {run.as_of.isoformat()}:")
        for _key, label, count in counts:
            self.stdout.write(f"  {label}: {count}")

    def _history(self, customer: Customer, *, as_json: bool) -> None:
        rows = [
            {
                "dimension": item.row.dimension,
                "dimension_label": item.dimension_label,
                "value": item.row.value,
                "value_label": item.value_label,
                "from": item.row.valid_from.isoformat() if item.row.valid_from else None,
                "until": item.row.valid_to.isoformat() if item.row.valid_to else None,
                "source": item.row.source,
                "reason": item.row.reason,
                "actor": item.row.actor.username if item.row.actor else None,
            }
            for item in lifecycle_history(customer.pk)
        ]
        if as_json:
            self.stdout.write(
                json.dumps({"customer": customer.pk, "history": rows}, ensure_ascii=False)
            )
            return
        self.stdout.write(f"{customer.name} (id {customer.pk}):")
        if not rows:
            self.stdout.write("  no history yet")
            return
        for row in rows:
            period = f"{row['from'] or '…':>10} – {row['until'] or 'now':<10}"
            who = f" by {row['actor']}" if row["actor"] else ""
            reason = f" — {row['reason']}" if row["reason"] else ""
            self.stdout.write(
                f"  {period}  {row['dimension_label']}: {row['value_label']}"
                f" [{row['source']}{who}]{reason}"
            )
