"""Reads of tasks: a CSM's "My day", the manager's team view and a customer's tasks.

A task is *open* when it is open or in progress, or snoozed until a day that has come (the
daily job reopens those, but a page shown before it runs must not hide them). "This week" is
tomorrow up to Sunday of the current week (ISO weeks start on Monday).
"""

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from django.core.paginator import Page, Paginator
from django.db.models import Count, F, Q, QuerySet

from kizuna.core.models import User
from kizuna.core.roles import CSM_ROLES
from kizuna.playbooks.models import Task, TaskStatus

TEAM_PAGE_SIZE = 50
MY_DAY_GROUP_LIMIT = 100
CUSTOMER_RECENT_DONE = 10


def awake_q(today: date, prefix: str = "") -> Q:
    """Tasks that need doing as of ``today``: open, in progress, or snoozed until today or before."""
    return Q(**{f"{prefix}status__in": (TaskStatus.OPEN, TaskStatus.IN_PROGRESS)}) | Q(
        **{f"{prefix}status": TaskStatus.SNOOZED, f"{prefix}snoozed_until__lte": today}
    )


def sleeping_q(today: date, prefix: str = "") -> Q:
    """Tasks snoozed until a day after ``today``."""
    return Q(**{f"{prefix}status": TaskStatus.SNOOZED, f"{prefix}snoozed_until__gt": today})


def week_end(today: date) -> date:
    """Sunday of ``today``'s week."""
    return today + timedelta(days=6 - today.weekday())


def _tasks() -> QuerySet[Task]:
    return Task.objects.select_related("customer", "owner", "run", "run__playbook")


def _by_priority(tasks: QuerySet[Task]) -> QuerySet[Task]:
    # Highest priority first; within a priority the earliest due date, undated last.
    return tasks.order_by("-priority", F("due_on").asc(nulls_last=True), "id")


def _by_due_date(tasks: QuerySet[Task]) -> QuerySet[Task]:
    # Earliest due date first, undated last (the same on SQLite and PostgreSQL).
    return tasks.order_by(F("due_on").asc(nulls_last=True), "-priority", "id")


@dataclass(frozen=True)
class MyDay:
    """A person's open tasks in four groups, each by priority (highest first) then due date.

    Each group holds at most ``MY_DAY_GROUP_LIMIT`` tasks; the counts are the full numbers.
    ``later`` holds tasks due after this week and undated ones.
    """

    today: date
    week_end: date
    overdue: list[Task]
    due_today: list[Task]
    this_week: list[Task]
    later: list[Task]
    overdue_count: int
    due_today_count: int
    this_week_count: int
    later_count: int
    snoozed_count: int
    done_today_count: int

    @property
    def open_count(self) -> int:
        return self.overdue_count + self.due_today_count + self.this_week_count + self.later_count


def my_day(*, user: User, today: date) -> MyDay:
    """The user's open tasks as of ``today``: overdue, due today, this week, later or undated."""
    mine = Task.objects.filter(owner=user)
    awake = awake_q(today)
    end = week_end(today)
    groups = {
        "overdue": Q(due_on__lt=today),
        "due_today": Q(due_on=today),
        "this_week": Q(due_on__gt=today, due_on__lte=end),
        "later": Q(due_on__gt=end) | Q(due_on__isnull=True),
    }
    counts = mine.aggregate(
        **{name: Count("id", filter=awake & q) for name, q in groups.items()},
        snoozed=Count("id", filter=sleeping_q(today)),
        done_today=Count("id", filter=Q(status=TaskStatus.DONE, completed_at__date=today)),
    )
    lists = {
        name: list(_by_priority(_tasks().filter(owner=user).filter(awake & q))[:MY_DAY_GROUP_LIMIT])
        for name, q in groups.items()
    }
    return MyDay(
        today=today,
        week_end=end,
        overdue=lists["overdue"],
        due_today=lists["due_today"],
        this_week=lists["this_week"],
        later=lists["later"],
        overdue_count=counts["overdue"],
        due_today_count=counts["due_today"],
        this_week_count=counts["this_week"],
        later_count=counts["later"],
        snoozed_count=counts["snoozed"],
        done_today_count=counts["done_today"],
    )


@dataclass(frozen=True)
class OwnerLoad:
    """One person's open work: ``open`` includes ``overdue`` and ``due_today``."""

    owner_id: int | None
    name: str
    open: int
    overdue: int
    due_today: int
    done_7d: int


@dataclass(frozen=True)
class TeamTasks:
    """The team view: each CSM's load (unowned tasks as the row with ``owner_id`` None), and a
    page of tasks matching the filters."""

    today: date
    owners: list[OwnerLoad]
    unowned: OwnerLoad
    page: Page[Task]

    @property
    def total_open(self) -> int:
        return sum(row.open for row in self.owners) + self.unowned.open

    @property
    def total_overdue(self) -> int:
        return sum(row.overdue for row in self.owners) + self.unowned.overdue


# The status filter of the team view: a task status, or one of these.
TEAM_STATUS_OPEN = "open_any"
TEAM_STATUS_OVERDUE = "overdue"


def _load_counts(today: date, prefix: str = "") -> dict[str, Count]:
    awake = awake_q(today, prefix)
    return {
        "open_n": Count(f"{prefix}id", filter=awake),
        "overdue_n": Count(f"{prefix}id", filter=awake & Q(**{f"{prefix}due_on__lt": today})),
        "today_n": Count(f"{prefix}id", filter=awake & Q(**{f"{prefix}due_on": today})),
        "done_n": Count(
            f"{prefix}id",
            filter=Q(
                **{
                    f"{prefix}status": TaskStatus.DONE,
                    f"{prefix}completed_at__date__gt": today - timedelta(days=7),
                    f"{prefix}completed_at__date__lte": today,
                }
            ),
        ),
    }


def team_tasks(
    *,
    today: date,
    owner_id: int | None = None,
    unowned: bool = False,
    status: str | None = None,
    task_type: str | None = None,
    page: int = 1,
) -> TeamTasks:
    """Per-owner counts of open, overdue and due-today tasks (and done in the last 7 days),
    unowned tasks, and page ``page`` of the tasks matching the filters.

    ``status`` is a task status, ``"overdue"`` or ``"open_any"`` (the default: everything
    still to do, snoozed included); ``unowned`` limits the list to tasks without an owner.
    """
    by_owner: dict[int | None, dict[str, Any]] = {
        row["owner_id"]: dict(row)
        for row in Task.objects.order_by().values("owner_id").annotate(**_load_counts(today))
    }
    people = User.objects.filter(
        Q(role__in=CSM_ROLES, is_active=True) | Q(pk__in=[pk for pk in by_owner if pk])
    )
    empty: dict[str, Any] = {"open_n": 0, "overdue_n": 0, "today_n": 0, "done_n": 0}

    def load(owner_id: int | None, name: str) -> OwnerLoad:
        row = by_owner.get(owner_id, empty)
        return OwnerLoad(
            owner_id=owner_id,
            name=name,
            open=row["open_n"],
            overdue=row["overdue_n"],
            due_today=row["today_n"],
            done_7d=row["done_n"],
        )

    owners = sorted(
        (load(person.pk, person.display_name) for person in people),
        key=lambda row: (-row.overdue, -row.open, row.name),
    )
    unowned_row = load(None, "")

    tasks = _tasks()
    if unowned:
        tasks = tasks.filter(owner__isnull=True)
    elif owner_id is not None:
        tasks = tasks.filter(owner_id=owner_id)
    if task_type:
        tasks = tasks.filter(task_type=task_type)
    if status == TEAM_STATUS_OVERDUE:
        tasks = tasks.filter(awake_q(today), due_on__lt=today)
    elif status in TaskStatus.values:
        tasks = tasks.filter(status=status)
    else:
        tasks = tasks.filter(awake_q(today) | sleeping_q(today))
    ordered = _by_due_date(tasks)
    return TeamTasks(
        today=today,
        owners=owners,
        unowned=unowned_row,
        page=Paginator(ordered, TEAM_PAGE_SIZE).get_page(page),
    )


@dataclass(frozen=True)
class CustomerTasks:
    """A customer's tasks still to do (due date first, undated last) and the latest done."""

    open: list[Task]
    recently_done: list[Task]
    done_count: int


def customer_tasks(customer_id: int, *, today: date) -> CustomerTasks:
    """The customer's open, in-progress and snoozed tasks, and the last ten finished ones."""
    mine = _tasks().filter(customer_id=customer_id)
    still_to_do = _by_due_date(mine.filter(awake_q(today) | sleeping_q(today)))
    finished = mine.filter(status__in=(TaskStatus.DONE, TaskStatus.CANCELLED))
    return CustomerTasks(
        open=list(still_to_do),
        recently_done=list(
            finished.select_related("completed_by").order_by(
                F("completed_at").desc(nulls_last=True), "-id"
            )[:CUSTOMER_RECENT_DONE]
        ),
        done_count=finished.filter(status=TaskStatus.DONE).count(),
    )
