"""``demo load``'s playbooks stage: the ready-made library switched on 90 days ago, replayed.

The demo company's CS team installed the library (``install_library(enable=True)``) with a
team-chat webhook 90 days before today. What the playbooks did since then is replayed day by
day through the runner itself: each day, the occurrences of that day (timeline entries such as
``risk.raised``, renewal and start dates, schedules, metric crossings — found by the same
finders the runner uses) are fired with ``runner.fire`` as of noon that day, and the actions due
by the evening run through ``runner.run_due`` — so tasks, notes, emails (written to the local
outbox) and webhook calls carry their real dates. The webhook goes to a stand-in for the team
chat that this stage runs on 127.0.0.1 while it replays (it answers like Slack); afterwards the
endpoint is switched off with a placeholder address, for the team to point at its own incoming
webhook.

Then the CSMs work their tasks: most tasks due more than a few days before today are done (a day
or two around their due date, with an outcome note), a few were cancelled, and the rest are
still open — which is what "My day" shows as overdue. Which task is done is drawn from the
task's id with a fixed seed, so the same demo gives the same history.
"""

import random
import threading
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

from django.db.models import OuterRef, Subquery
from django.utils import timezone

if TYPE_CHECKING:
    from kizuna.demo.load import LoadContext, StageProgress

REPLAY_DAYS = 90
# What the playbooks and tasks write on the timeline during the replay.
TIMELINE_KINDS = ("playbook.note", "task.completed")
DONE_SHARE = 0.8
CANCELLED_SHARE = 0.05
PLACEHOLDER_URL = "https://hooks.slack.com/services/T00000000/B00000000/REPLACE-ME"

OUTCOMES = {
    "risk": ("新任の管理者と個別に打ち合わせ、操作トレーニングの日程を確定。",
             "利用状況を確認。繁忙期による一時的な減少で、来月には戻る見込み。",
             "ダッシュボードの使い方を再説明し、週次の定例で利用状況を追うことに合意。"),
    "renewal": ("更新の意向を確認。席数の見直しを次回の定例で相談。",
                "決裁者と面談し、更新の条件を確認済み。"),
    "onboarding": ("フォローアップの打ち合わせを実施。次のマイルストーンを確認。",
                   "質問に回答し、残りの設定作業の期限を合意。"),
    "adoption": ("レビュー会を実施し、活用の次の一歩を合意。",),
    "expansion": ("追加席の見積もりを送付。",
                  "上位プランの機能を紹介し、来月の打ち合わせを設定。"),
    "other": ("対応済み。",),
}  # fmt: skip


class _ChatStandIn(BaseHTTPRequestHandler):
    """Answers webhook posts like a Slack incoming webhook (``ok``); keeps nothing."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        return None


@contextmanager
def _chat_stand_in() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ChatStandIn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/services/demo"
    finally:
        server.shutdown()
        server.server_close()


def _at(day: date, hour: int) -> datetime:
    return timezone.make_aware(datetime.combine(day, time(hour)))


def load_playbooks(ctx: "LoadContext", progress: "StageProgress") -> None:
    """Install and switch on the library, replay its last 90 days, work the tasks."""
    from kizuna.playbooks import runner, services, triggers
    from kizuna.playbooks.library import install_library
    from kizuna.playbooks.models import (
        OPEN_TASK_STATUSES,
        ActionExecution,
        Playbook,
        RunnerCursor,
        Task,
        TriggerKind,
        WebhookDelivery,
        WebhookEndpoint,
    )

    today = ctx.today
    first = today - timedelta(days=REPLAY_DAYS)
    with _chat_stand_in() as url:
        endpoint = services.save_endpoint(
            endpoint=WebhookEndpoint.objects.filter(name="Slack #cs-alerts").first(),
            data=services.EndpointInput(
                name="Slack #cs-alerts", url=url, style=WebhookEndpoint.Style.SLACK,
                secret="demo-signing-secret", is_active=True,  # noqa: S106 - demo
            )
        )  # fmt: skip
        playbooks = install_library(enable=True, user=ctx.admin)
        Playbook.objects.filter(pk__in=[p.pk for p in playbooks]).update(enabled_at=_at(first, 9))
        playbooks = list(Playbook.objects.filter(pk__in=[p.pk for p in playbooks]))
        by_day: dict[date, list[tuple[Playbook, list[triggers.Occurrence]]]] = defaultdict(list)
        for playbook in playbooks:
            if playbook.trigger_kind == TriggerKind.TIMELINE:
                found = triggers.timeline_occurrences(
                    [playbook], start=first, end=today - timedelta(days=1)
                )[0]
                grouped: dict[date, list[triggers.Occurrence]] = defaultdict(list)
                for item in found:
                    grouped[item.day].append(item)
                for day, items in grouped.items():
                    by_day[day].append((playbook, items))
            else:
                for offset in range(REPLAY_DAYS):
                    day = first + timedelta(days=offset)
                    items = triggers.occurrences_on(playbook, day)
                    if items:
                        by_day[day].append((playbook, items))
        for offset in range(REPLAY_DAYS):
            day = first + timedelta(days=offset)
            for playbook, items in by_day.get(day, []):
                runner.fire(playbook=playbook, occurrences=items, now=_at(day, 12))
            runner.run_due(now=_at(day, 18), limit=100_000)
            progress(offset + 1, REPLAY_DAYS + 2)
        # Today belongs to the live runner: one cycle, as the worker would run it now.
        for playbook in playbooks:
            RunnerCursor.objects.update_or_create(
                name=f"dated:{playbook.pk}", defaults={"day": today - timedelta(days=1)}
            )
        # (as of the demo's today, which is the real today unless a test loads another day)
        live = timezone.now()
        runner.run_cycle(now=live if today >= timezone.localdate(live) else _at(today, 12))
    # The calls were made during the replay; date them when their action ran.
    done_at = ActionExecution.objects.filter(pk=OuterRef("execution_id")).values("done_at")[:1]
    WebhookDelivery.objects.filter(endpoint=endpoint, execution__done_at__isnull=False).update(
        sent_at=Subquery(done_at)
    )
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(url=PLACEHOLDER_URL, is_active=False)
    progress(REPLAY_DAYS + 1, REPLAY_DAYS + 2)
    ctx.counts["playbooks"] = len(playbooks)
    showcase = [ctx.customer_ids[c.external_id] for c in ctx.simulated if c.script]
    ctx.counts["tasks_done"] = _work_tasks(today=today, seed=ctx.seed, keep_open=showcase)
    ctx.counts["tasks_open"] = Task.objects.filter(status__in=OPEN_TASK_STATUSES).count()
    progress(REPLAY_DAYS + 2, REPLAY_DAYS + 2)


def _work_tasks(*, today: date, seed: int, keep_open: list[int]) -> int:
    """Close most past tasks the way their owners would have (dated, with an outcome); the
    showcase customers' tasks stay open (their stories are still going on)."""
    from kizuna.core.models import TimelineEntry, TimelineKind
    from kizuna.playbooks.models import OPEN_TASK_STATUSES, Task, TaskStatus

    done: list[Task] = []
    cancelled: list[Task] = []
    entries: list[TimelineEntry] = []
    past = Task.objects.filter(
        status__in=OPEN_TASK_STATUSES, due_on__lt=today - timedelta(days=3)
    ).exclude(customer_id__in=keep_open)
    for task in past.select_related("run", "customer").order_by("id"):
        # Drawn from what the task is, not its id, so the same demo gives the same history.
        key = f"{seed}-{task.customer.external_id}-{task.title}-{task.due_on}"
        rng = random.Random(key)  # noqa: S311 - demo data, not security
        draw = rng.random()
        if draw < DONE_SHARE:
            assert task.due_on is not None
            finished = min(today - timedelta(days=1), task.due_on + timedelta(rng.randint(-2, 2)))
            finished = max(finished, timezone.localdate(task.created_at))
            task.status = TaskStatus.DONE
            task.completed_at = _at(finished, rng.randint(10, 18))
            task.completed_by_id = task.owner_id
            task.outcome = rng.choice(OUTCOMES.get(task.task_type, OUTCOMES["other"]))
            task.checklist = [{**item, "done": True} for item in task.checklist or []]
            done.append(task)
            entries.append(
                TimelineEntry(
                    customer_id=task.customer_id,
                    kind=TimelineKind.TASK_COMPLETED,
                    occurred_at=task.completed_at,
                    actor_id=task.owner_id,
                    title=task.title[:200],
                    body=task.outcome,
                    payload={
                        "task_id": task.pk,
                        "task_type": task.task_type,
                        "run_id": task.run_id,
                        "playbook_id": task.run.playbook_id if task.run else None,
                    },
                )
            )
        elif draw < DONE_SHARE + CANCELLED_SHARE:
            task.status = TaskStatus.CANCELLED
            task.outcome = "対応不要(先方の体制変更のため)"
            cancelled.append(task)
    Task.objects.bulk_update(
        done, ["status", "completed_at", "completed_by", "outcome", "checklist"], batch_size=500
    )
    Task.objects.bulk_update(cancelled, ["status", "outcome"], batch_size=500)
    TimelineEntry.objects.bulk_create(entries, batch_size=500)
    return len(done)
