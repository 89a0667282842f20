"""``kizuna tasks list|complete``: list tasks still to do, complete one with its outcome."""

import json
from argparse import ArgumentParser
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db.models import F
from django.utils import timezone

from kizuna.core.access import cli_user
from kizuna.core.roles import Capability
from kizuna.playbooks import tasks
from kizuna.playbooks.models import OPEN_TASK_STATUSES, Task
from kizuna.playbooks.task_selectors import awake_q, sleeping_q

DEFAULT_LIMIT = 200


class Command(BaseCommand):
    help = (
        "`kizuna tasks list [--owner USERNAME|none] [--overdue] [--json]` lists the tasks still "
        "to do (open, in progress or snoozed), earliest due first. "
        "`kizuna tasks complete ID [--outcome TEXT] [--user USERNAME]` completes a task and "
        "writes its outcome on the customer's timeline."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("action", choices=["list", "complete"])
        parser.add_argument("task_id", nargs="?", help="complete: the task's id.")
        parser.add_argument(
            "--owner", help="list: only this user's tasks (username), or `none` for unowned."
        )
        parser.add_argument(
            "--overdue", action="store_true", help="list: only tasks due before today."
        )
        parser.add_argument(
            "--limit",
            type=int,
            default=DEFAULT_LIMIT,
            help=f"list: at most this many tasks ({DEFAULT_LIMIT}).",
        )
        parser.add_argument("--outcome", default="", help="complete: what happened.")
        parser.add_argument(
            "--user",
            help="Act as this user (complete: the task's owner or a manager; recorded on the "
            "timeline).",
        )
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "list":
            if options["task_id"]:
                raise CommandError("ID: `tasks list` takes no task id")
            if options["outcome"]:
                raise CommandError("--outcome: only `tasks complete` takes an outcome")
            cli_user(options["user"], Capability.VIEW)
            self._list(options)
        else:
            for option in ("owner", "overdue"):
                if options[option]:
                    raise CommandError(f"--{option}: only `tasks list` takes it")
            self._complete(options)

    def _list(self, options: dict[str, Any]) -> None:
        if options["limit"] < 1:
            raise CommandError("--limit: give a positive number")
        today = timezone.localdate()
        found = Task.objects.select_related("customer", "owner").filter(
            awake_q(today) | sleeping_q(today)
        )
        owner = options["owner"]
        if owner == "none":
            found = found.filter(owner__isnull=True)
        elif owner:
            user = get_user_model().objects.filter(username=owner).first()
            if user is None:
                raise CommandError(f"--owner: no user named '{owner}'")
            found = found.filter(owner=user)
        if options["overdue"]:
            found = found.filter(awake_q(today), due_on__lt=today)
        found = found.order_by(F("due_on").asc(nulls_last=True), "-priority", "id")
        total = found.count()
        rows = [
            {
                "id": task.pk,
                "title": task.title,
                "customer": task.customer_id,
                "customer_name": task.customer.name,
                "owner": task.owner.get_username() if task.owner is not None else None,
                "task_type": task.task_type,
                "priority": task.priority,
                "status": task.status,
                "due_on": task.due_on.isoformat() if task.due_on else None,
                "overdue": bool(task.due_on and task.due_on < today),
            }
            for task in found[: options["limit"]]
        ]
        if options["json"]:
            self.stdout.write(json.dumps({"count": total, "tasks": rows}, ensure_ascii=False))
            return
        if not rows:
            self.stdout.write("No task to do.")
            return
        for row in rows:
            due = row["due_on"] or "—"
            late = " OVERDUE" if row["overdue"] else ""
            self.stdout.write(
                f"{row['id']:>7}  {due:<10}{late}  P{row['priority']}  {row['status']:<11}  "
                f"{row['owner'] or '(unowned)':<16}  {row['customer_name']}: {row['title']}"
            )
        if total > len(rows):
            self.stdout.write(f"… {total - len(rows)} more (use --limit or --json).")

    def _complete(self, options: dict[str, Any]) -> None:
        raw = options["task_id"]
        if not raw:
            raise CommandError("ID: give the id of the task to complete")
        if not str(raw).isdigit():
            raise CommandError(f"ID: {raw!r} is not a task id")
        user = cli_user(options["user"], Capability.WRITE_TIMELINE)
        task = Task.objects.select_related("customer", "owner").filter(pk=int(raw)).first()
        if task is None:
            raise CommandError(f"ID: there is no task {raw}")
        if user is not None and not tasks.can_edit_task(user, task):
            raise CommandError(
                f"--user: '{user.get_username()}' is neither the task's owner nor a manager"
            )
        if task.status not in OPEN_TASK_STATUSES:
            raise CommandError(f"ID: task {task.pk} is already {task.status}")
        try:
            tasks.complete_task(task=task, user=user, outcome=options["outcome"])
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from None
        if options["json"]:
            payload = {"id": task.pk, "status": task.status, "outcome": task.outcome}
            self.stdout.write(json.dumps(payload, ensure_ascii=False))
            return
        self.stdout.write(f"Task {task.pk} completed: {task.title} ({task.customer.name})")
