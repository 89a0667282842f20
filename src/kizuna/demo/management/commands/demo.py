"""``kizuna demo``: fill an empty database with the demo company and print how to sign in."""

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from kizuna.customers.models import Customer
from kizuna.demo.sample import DemoDataExistsError, build_sample_company


class Command(BaseCommand):
    help = "Create the demo company (customers, subscriptions, contacts, timeline, staff logins)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--if-empty",
            action="store_true",
            help="Do nothing when the database already has customers.",
        )
        parser.add_argument("--seed", type=int, default=7, help="Random seed (default 7).")
        parser.add_argument(
            "--customers", type=int, default=120, help="Number of customers (default 120)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["customers"] < 1:
            raise CommandError(_("--customers must be at least 1."))
        if options["if_empty"] and Customer.objects.exists():
            self.stdout.write(_("The database already has customers: demo data not added."))
            return
        try:
            summary = build_sample_company(seed=options["seed"], customers=options["customers"])
        except DemoDataExistsError:
            raise CommandError(
                _(
                    "The database already has customers. Use --if-empty to skip, "
                    "or point KIZUNA_DATA_DIR / DATABASE_URL at an empty database."
                )
            ) from None
        lines = [
            _("Demo company created (as of %(today)s):") % {"today": summary.today},
            _(
                "%(customers)d customers, %(in_service)d in service, %(churned)d churned, "
                "%(reactivated)d reactivated"
            )
            % {
                "customers": summary.customers,
                "in_service": summary.customers_in_service,
                "churned": summary.churned_customers,
                "reactivated": summary.reactivated_customers,
            },
            _("%(expanded)d expanded, %(contracted)d contracted, %(cross_sold)d cross-sold")
            % {
                "expanded": summary.expanded_customers,
                "contracted": summary.contracted_customers,
                "cross_sold": summary.cross_sold_customers,
            },
            _(
                "%(subscriptions)d subscriptions, %(contacts)d contacts, %(handoffs)d sales "
                "handoffs, %(entries)d timeline entries"
            )
            % {
                "subscriptions": summary.subscriptions,
                "contacts": summary.contacts,
                "handoffs": summary.handoffs,
                "entries": summary.timeline_entries,
            },
            _("MRR in service: ¥%(mrr)s") % {"mrr": f"{summary.mrr:,.0f}"},
            _("Sign in as %(users)s with the password %(password)s")
            % {"users": ", ".join(summary.users), "password": summary.password},
        ]
        # The first and last lines are headings; the counts between them are indented.
        body = [lines[0], *(f"  {line}" for line in lines[1:-1]), lines[-1]]
        self.stdout.write("\n".join(body))
