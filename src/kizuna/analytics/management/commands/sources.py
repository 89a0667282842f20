"""``kizuna sources create NAME | list | revoke NAME``: the write keys of event sources."""

import json
from argparse import ArgumentParser
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from kizuna.analytics.sources import create_source, revoke_source
from kizuna.analytics.stats import sources_overview
from kizuna.core.access import cli_user
from kizuna.core.roles import Capability


def _message(error: ValidationError) -> str:
    return "; ".join(str(message) for message in error.messages)


class Command(BaseCommand):
    help = (
        "Manage event sources. `create NAME` prints the new write key (and only it, so that a "
        "script can capture it); `list` shows every source; `revoke NAME` disables its key."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        create = actions.add_parser("create", help="Create a source and print its write key.")
        create.add_argument("name")
        create.add_argument(
            "--group-id-trait",
            default="",
            help="Trait of group calls holding the customer's external id (default: groupId).",
        )
        create.add_argument("--user", help="Act as this user (needs manage_sources).")
        listing = actions.add_parser("list", help="List the sources.")
        listing.add_argument("--json", action="store_true", help="Print JSON.")
        revoke = actions.add_parser("revoke", help="Revoke a source's write key.")
        revoke.add_argument("name")
        revoke.add_argument("--user", help="Act as this user (needs manage_sources).")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "list":
            self._list(as_json=options["json"])
            return
        user = cli_user(options.get("user"), Capability.MANAGE_SOURCES)
        try:
            if action == "create":
                _source, write_key = create_source(
                    name=options["name"],
                    created_by=user,
                    group_id_trait=options["group_id_trait"],
                )
                self.stdout.write(write_key)
            else:
                source = revoke_source(name=options["name"])
                self.stderr.write(f"revoked the write key of {source.name}")
        except ValidationError as error:
            raise CommandError(_message(error)) from None

    def _list(self, *, as_json: bool) -> None:
        rows = [
            {
                "name": source.name,
                "key_prefix": source.key_prefix,
                "active": source.active,
                "created_at": source.created_at.isoformat(),
                "revoked_at": source.revoked_at.isoformat() if source.revoked_at else None,
                "group_id_trait": source.group_id_trait,
                "events_last_hour": source.events_last_hour,
                "inbox": source.inbox,
                "last_event_at": source.last_event_at.isoformat() if source.last_event_at else None,
            }
            for source in sources_overview()
        ]
        if as_json:
            self.stdout.write(json.dumps(rows, ensure_ascii=False, indent=2))
            return
        if not rows:
            self.stdout.write("no sources (create one: kizuna sources create NAME)")
            return
        for row in rows:
            status = "active" if row["active"] else f"revoked {row['revoked_at']}"
            self.stdout.write(
                f"{row['name']:<24} {row['key_prefix']}…  {status:<10} "
                f"last hour: {row['events_last_hour']:>8}  last event: {row['last_event_at'] or '—'}"
            )
