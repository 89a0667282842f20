"""Tasks (calls to action) and playbooks: trigger → conditions → ordered actions with delays.

Idempotency lives in the database: a playbook fires at most once per customer and trigger
occurrence (``PlaybookRun`` unique on playbook, customer, occurrence key), and each action of a
run is executed at most once (``ActionExecution`` unique on run and position), whatever the
number of workers and retries.
"""

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy


class TaskType(models.TextChoices):
    ONBOARDING = "onboarding", _("Onboarding")
    RISK = "risk", _("Risk")
    ADOPTION = "adoption", _("Adoption")
    EXPANSION = "expansion", _("Expansion")
    RENEWAL = "renewal", pgettext_lazy("task type", "Renewal")
    OTHER = "other", _("Other")


class TaskPriority(models.IntegerChoices):
    LOW = 1, _("Low")
    NORMAL = 2, _("Normal")
    HIGH = 3, _("High")
    URGENT = 4, _("Urgent")


class TaskStatus(models.TextChoices):
    OPEN = "open", pgettext_lazy("task status", "Open")
    IN_PROGRESS = "in_progress", _("In progress")
    DONE = "done", _("Done")
    CANCELLED = "cancelled", _("Cancelled")
    SNOOZED = "snoozed", _("Snoozed")


OPEN_TASK_STATUSES = (TaskStatus.OPEN, TaskStatus.IN_PROGRESS, TaskStatus.SNOOZED)


class OwnerRole(models.TextChoices):
    """A role resolved to the customer's owner when the task is created."""

    ONBOARDING = "onboarding", _("Onboarding CSM")
    ADOPTION = "adoption", _("Adoption CSM")
    EXPANSION = "expansion", _("Expansion CSM")
    CURRENT = "current", _("Owner for the customer's stage")


class Task(models.Model):
    """A call to action for one person about one customer.

    ``checklist`` is a list of ``{"text": str, "done": bool}``. ``run`` links the playbook run
    that created it (empty for tasks made by hand).
    """

    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.CASCADE, related_name="tasks"
    )
    title = models.CharField(_("title"), max_length=200)
    description = models.TextField(_("description"), blank=True, default="")
    task_type = models.CharField(
        _("type"), max_length=16, choices=TaskType.choices, default=TaskType.OTHER
    )
    priority = models.PositiveSmallIntegerField(
        _("priority"), choices=TaskPriority.choices, default=TaskPriority.NORMAL
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="tasks",
        verbose_name=_("owner"),
    )
    owner_role = models.CharField(
        _("owner role"), max_length=16, choices=OwnerRole.choices, blank=True, default=""
    )
    due_on = models.DateField(_("due on"), null=True, blank=True)
    status = models.CharField(
        _("status"), max_length=16, choices=TaskStatus.choices, default=TaskStatus.OPEN
    )
    snoozed_until = models.DateField(_("snoozed until"), null=True, blank=True)
    outcome = models.TextField(_("outcome"), blank=True, default="")
    checklist = models.JSONField(_("checklist"), default=list, blank=True)
    run = models.ForeignKey(
        "PlaybookRun",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="tasks",
        verbose_name=_("playbook run"),
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(_("completed at"), null=True, blank=True)
    completed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        verbose_name = _("task")
        verbose_name_plural = _("tasks")
        ordering = ("due_on", "-priority", "id")
        indexes = [
            models.Index(fields=["owner", "status", "due_on"]),
            models.Index(fields=["customer", "status"]),
        ]

    def __str__(self) -> str:
        return self.title


class TriggerKind(models.TextChoices):
    TIMELINE = "timeline", _("Something happened (timeline entry)")
    CUSTOMER_DATE = "customer_date", _("A date relative to the customer")
    SCHEDULE = "schedule", _("A schedule")
    METRIC = "metric", _("A metric crosses a threshold")


class Playbook(models.Model):
    """A rule: when ``trigger`` happens to a customer matching ``condition``, do the actions.

    ``trigger_params`` by kind:
    - timeline: ``{"kinds": ["risk.raised"], "payload": {"kind": "usage_drop"}}`` (payload
      keys must match when given);
    - customer_date: ``{"date": "first_start_date" | "renewal_date", "offset_days": -90}``;
    - schedule: ``{"every": "month", "weekday": 0, "nth": 1}`` (first Monday) or
      ``{"every": "week", "weekday": 0}`` or ``{"every": "quarter", ...}``;
    - metric: ``{"metric": "seat_utilisation_28d", "op": ">=", "value": 0.9}`` (fires on the
      day the value crosses, not while it stays over).
    ``condition`` is a tree of the lifecycle condition language (``condition_text`` its source).
    ``segments`` / ``touch_models`` limit it (empty: all). ``holdout_share`` of the customers it
    would act on are recorded and left alone, to measure its effect.
    ``outcome`` says how its effect is measured, e.g. ``{"metric": "events_28d", "days": 60,
    "kind": "recovered"}`` (see ``effects.py``).
    """

    key = models.SlugField(_("key"), max_length=100, unique=True)
    name = models.CharField(_("name"), max_length=200)
    description = models.TextField(_("description"), blank=True, default="")
    trigger_kind = models.CharField(_("trigger"), max_length=16, choices=TriggerKind.choices)
    trigger_params = models.JSONField(_("trigger parameters"), default=dict, blank=True)
    condition = models.JSONField(_("condition"), default=dict, blank=True)
    condition_text = models.TextField(_("condition"), blank=True, default="")
    segments = models.JSONField(_("segments"), default=list, blank=True)
    touch_models = models.JSONField(_("touch models"), default=list, blank=True)
    holdout_share = models.FloatField(_("holdout share"), default=0.0)
    outcome = models.JSONField(_("outcome"), default=dict, blank=True)
    enabled = models.BooleanField(_("enabled"), default=False)
    paused = models.BooleanField(_("paused"), default=False)
    enabled_at = models.DateTimeField(_("enabled at"), null=True, blank=True)
    library_key = models.CharField(_("library entry"), max_length=100, blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("playbook")
        verbose_name_plural = _("playbooks")
        ordering = ("name", "id")

    def __str__(self) -> str:
        return self.name

    @property
    def is_live(self) -> bool:
        return self.enabled and not self.paused


class PlaybookAction(models.Model):
    """One step of a playbook: ``kind`` is a key of the action registry (``actions.py``)."""

    playbook = models.ForeignKey(Playbook, on_delete=models.CASCADE, related_name="actions")
    position = models.PositiveIntegerField(_("position"), default=0)
    kind = models.CharField(_("action"), max_length=64)
    params = models.JSONField(_("parameters"), default=dict, blank=True)
    delay_days = models.PositiveIntegerField(_("delay (days)"), default=0)

    class Meta:
        verbose_name = _("playbook action")
        verbose_name_plural = _("playbook actions")
        ordering = ("playbook_id", "position", "id")
        constraints = [
            models.UniqueConstraint(
                fields=["playbook", "position"], name="playbook_action_position"
            ),
        ]


class RunStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    DONE = "done", _("Done")
    FAILED = "failed", _("Failed")
    HOLDOUT = "holdout", _("Held out")


class PlaybookRun(models.Model):
    """A playbook fired for a customer on one occurrence of its trigger.

    ``occurrence_key`` names the occurrence ("timeline:812", "date:2026-12-01",
    "schedule:2026-12-07", "metric:2026-12-02"): the unique constraint makes firing idempotent.
    """

    playbook = models.ForeignKey(Playbook, on_delete=models.CASCADE, related_name="runs")
    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.CASCADE, related_name="playbook_runs"
    )
    occurrence_key = models.CharField(_("occurrence"), max_length=100)
    triggered_on = models.DateField(_("triggered on"))
    trigger_summary = models.CharField(_("trigger"), max_length=300, blank=True, default="")
    holdout = models.BooleanField(_("held out"), default=False)
    status = models.CharField(
        _("status"), max_length=16, choices=RunStatus.choices, default=RunStatus.PENDING
    )
    error = models.TextField(_("error"), blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        verbose_name = _("playbook run")
        verbose_name_plural = _("playbook runs")
        ordering = ("-created_at", "-id")
        constraints = [
            models.UniqueConstraint(
                fields=["playbook", "customer", "occurrence_key"], name="playbook_run_once"
            ),
        ]
        indexes = [models.Index(fields=["playbook", "triggered_on"])]


class ExecutionStatus(models.TextChoices):
    WAITING = "waiting", _("Waiting")
    DONE = "done", _("Done")
    RETRYING = "retrying", _("Retrying")
    FAILED = "failed", _("Failed")
    SKIPPED = "skipped", _("Skipped")


class ActionExecution(models.Model):
    """One action of a run: due at ``due_at`` (the run's time + the action's delay), retried with
    backoff until ``attempts`` reaches the limit, then failed (and visible)."""

    run = models.ForeignKey(PlaybookRun, on_delete=models.CASCADE, related_name="executions")
    position = models.PositiveIntegerField(_("position"))
    kind = models.CharField(_("action"), max_length=64)
    params = models.JSONField(_("parameters"), default=dict, blank=True)
    due_at = models.DateTimeField(_("due at"))
    status = models.CharField(
        _("status"), max_length=16, choices=ExecutionStatus.choices, default=ExecutionStatus.WAITING
    )
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt at"), null=True, blank=True)
    last_error = models.TextField(_("last error"), blank=True, default="")
    result = models.JSONField(_("result"), default=dict, blank=True)
    done_at = models.DateTimeField(_("done at"), null=True, blank=True)

    class Meta:
        verbose_name = _("action execution")
        verbose_name_plural = _("action executions")
        ordering = ("run_id", "position")
        constraints = [
            models.UniqueConstraint(fields=["run", "position"], name="playbook_execution_once"),
        ]
        indexes = [models.Index(fields=["status", "next_attempt_at"])]


class RunnerCursor(models.Model):
    """How far the runner has read a stream (the timeline by id; dated triggers by day)."""

    name = models.CharField(max_length=64, unique=True)
    position = models.BigIntegerField(default=0)
    day = models.DateField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)


class WebhookEndpoint(models.Model):
    """Where ``notify_webhook`` posts: Slack/Teams-style incoming webhooks or signed JSON.

    ``style`` "slack" posts ``{"text": ...}``; "json" posts the event as JSON. Every request
    carries ``X-Kizuna-Signature: sha256=<hex HMAC of the body with secret>`` and
    ``X-Kizuna-Timestamp``.
    """

    class Style(models.TextChoices):
        SLACK = "slack", _("Slack/Teams incoming webhook")
        JSON = "json", _("Signed JSON")

    name = models.CharField(_("name"), max_length=200, unique=True)
    url = models.URLField(_("URL"), max_length=500)
    style = models.CharField(_("style"), max_length=16, choices=Style.choices, default=Style.SLACK)
    secret = models.CharField(_("signing secret"), max_length=200, blank=True, default="")
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("webhook endpoint")
        verbose_name_plural = _("webhook endpoints")
        ordering = ("name",)

    def __str__(self) -> str:
        return self.name


class WebhookDelivery(models.Model):
    """One attempt to post to an endpoint (kept for the run log and retries)."""

    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    execution = models.ForeignKey(
        ActionExecution, on_delete=models.SET_NULL, null=True, blank=True, related_name="deliveries"
    )
    status_code = models.PositiveIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True, default="")
    body = models.TextField(blank=True, default="")
    sent_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("-sent_at", "-id")
