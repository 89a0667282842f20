"""Onboarding: versioned programs (templates), customer plans, milestones, follow-ups, goals,
the kickoff record and the customer's shareable plan page.

A plan keeps the program *version* it was made from, so reports compare versions (PDCA).
Statuses of milestones and plans are computed from dates and completions (``status.py``),
stored so lists can sort and filter on them, and never typed by hand.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from kizuna.customers.models import TouchModel


class OwnerSide(models.TextChoices):
    CSM = "csm", _("CSM")
    CUSTOMER = "customer", _("Customer")


class Program(models.Model):
    """A family of onboarding templates for some touch model and segment."""

    key = models.SlugField(_("key"), max_length=50, unique=True)
    name = models.CharField(_("name"), max_length=200)
    description = models.TextField(_("description"), blank=True, default="")
    touch_model = models.CharField(
        _("touch model"),
        max_length=10,
        choices=TouchModel.choices,
        blank=True,
        default="",
        help_text=_("Empty: any touch model."),
    )
    segment_key = models.CharField(
        _("segment"), max_length=50, blank=True, default="", help_text=_("Empty: any segment.")
    )
    priority = models.PositiveIntegerField(
        _("priority"), default=100, help_text=_("Lower first when several programs fit.")
    )
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("program")
        verbose_name_plural = _("programs")
        ordering = ("priority", "name")

    def __str__(self) -> str:
        return self.name


class VersionStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    PUBLISHED = "published", _("Published")
    RETIRED = "retired", _("Retired")


class ProgramVersion(models.Model):
    """One design of a program. Only a draft is edited; publishing freezes it for new plans."""

    program = models.ForeignKey(Program, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField(_("version"))
    status = models.CharField(
        _("status"), max_length=10, choices=VersionStatus.choices, default=VersionStatus.DRAFT
    )
    target_days = models.PositiveIntegerField(
        _("target days"), default=60, help_text=_("Days from the start to complete onboarding.")
    )
    change_note = models.TextField(_("what changed"), blank=True, default="")
    published_at = models.DateTimeField(_("published"), null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        verbose_name = _("program version")
        verbose_name_plural = _("program versions")
        ordering = ("program_id", "-number")
        constraints = [
            models.UniqueConstraint(fields=["program", "number"], name="program_version_unique"),
            models.UniqueConstraint(
                fields=["program"],
                condition=Q(status="published"),
                name="program_one_published_version",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.program.name} v{self.number}"


class Phase(models.Model):
    version = models.ForeignKey(ProgramVersion, on_delete=models.CASCADE, related_name="phases")
    name = models.CharField(_("name"), max_length=200)
    position = models.PositiveIntegerField(_("order"), default=0)

    class Meta:
        verbose_name = _("phase")
        verbose_name_plural = _("phases")
        ordering = ("position", "id")

    def __str__(self) -> str:
        return self.name


class CompletionKind(models.TextChoices):
    MANUAL = "manual", _("Ticked off by hand")
    FIRST_EVENT = "first_event", _("First product event of a type")
    METRIC = "metric", _("Metric reaches a threshold")


class Milestone(models.Model):
    """A step of a program version.

    ``completion`` for automatic rules: ``{"event_type": "attendance.registered"}`` (first_event)
    or ``{"metric": "seat_utilisation_28d", "op": ">=", "value": 0.8}`` (metric).
    """

    version = models.ForeignKey(ProgramVersion, on_delete=models.CASCADE, related_name="milestones")
    phase = models.ForeignKey(Phase, on_delete=models.CASCADE, related_name="milestones")
    key = models.SlugField(_("key"), max_length=50)
    name = models.CharField(_("name"), max_length=200)
    description = models.TextField(_("description"), blank=True, default="")
    owner_side = models.CharField(
        _("owner"), max_length=10, choices=OwnerSide.choices, default=OwnerSide.CSM
    )
    due_offset_days = models.PositiveIntegerField(_("due (days after start)"), default=7)
    required = models.BooleanField(_("required"), default=True)
    position = models.PositiveIntegerField(_("order"), default=0)
    depends_on = models.ManyToManyField(
        "self", symmetrical=False, blank=True, related_name="unlocks", verbose_name=_("after")
    )
    completion_kind = models.CharField(
        _("completion"),
        max_length=16,
        choices=CompletionKind.choices,
        default=CompletionKind.MANUAL,
    )
    completion = models.JSONField(_("completion rule"), default=dict, blank=True)

    class Meta:
        verbose_name = _("milestone")
        verbose_name_plural = _("milestones")
        ordering = ("phase__position", "position", "id")
        constraints = [
            models.UniqueConstraint(fields=["version", "key"], name="milestone_key_per_version")
        ]

    def __str__(self) -> str:
        return self.name


class ResourceKind(models.TextChoices):
    MANUAL = "manual", _("Manual page")
    VIDEO = "video", _("Video")
    SEMINAR = "seminar", _("Seminar session")
    LINK = "link", _("Link")


class Resource(models.Model):
    """Help attached to a milestone, revealed when the milestone becomes the next step."""

    milestone = models.ForeignKey(Milestone, on_delete=models.CASCADE, related_name="resources")
    kind = models.CharField(_("kind"), max_length=10, choices=ResourceKind.choices)
    title = models.CharField(_("title"), max_length=200)
    url = models.URLField(_("link"), max_length=500)
    language = models.CharField(
        _("language"), max_length=8, choices=settings.LANGUAGES, blank=True, default=""
    )

    class Meta:
        verbose_name = _("resource")
        verbose_name_plural = _("resources")
        ordering = ("id",)


class FollowUp(models.Model):
    """A touchpoint the program schedules (day 7 check-in, day 30 review…)."""

    version = models.ForeignKey(ProgramVersion, on_delete=models.CASCADE, related_name="follow_ups")
    name = models.CharField(_("name"), max_length=200)
    day_offset = models.PositiveIntegerField(_("day"))
    owner_side = models.CharField(
        _("owner"), max_length=10, choices=OwnerSide.choices, default=OwnerSide.CSM
    )
    description = models.TextField(_("description"), blank=True, default="")

    class Meta:
        verbose_name = _("follow-up")
        verbose_name_plural = _("follow-ups")
        ordering = ("day_offset", "id")


class Holiday(models.Model):
    """A day without work: due dates that fall on it move to the next working day."""

    day = models.DateField(_("date"), unique=True)
    name = models.CharField(_("name"), max_length=100)

    class Meta:
        verbose_name = _("holiday")
        verbose_name_plural = _("holidays")
        ordering = ("day",)


class OnboardingSettings(models.Model):
    """Company-wide onboarding settings (one row)."""

    skip_weekends = models.BooleanField(_("due dates skip weekends"), default=True)
    create_plans_automatically = models.BooleanField(
        _("create a plan when a new customer starts"), default=True
    )
    at_risk_days = models.PositiveIntegerField(
        _("at risk when a required milestone is due within (days)"), default=3
    )
    link_days = models.PositiveIntegerField(_("plan links expire after (days)"), default=90)

    class Meta:
        verbose_name = _("onboarding settings")
        verbose_name_plural = _("onboarding settings")

    @classmethod
    def load(cls) -> "OnboardingSettings":
        row, _created = cls.objects.get_or_create(pk=1)
        return row


class ITLiteracy(models.TextChoices):
    LOW = "low", _("Low")
    MEDIUM = "medium", _("Medium")
    HIGH = "high", _("High")


class PlanStatus(models.TextChoices):
    ON_TRACK = "on_track", _("On track")
    AT_RISK = "at_risk", _("At risk")
    OVERDUE = "overdue", _("Overdue")
    COMPLETED = "completed", _("Completed")
    CANCELLED = "cancelled", _("Cancelled")


class OnboardingPlan(models.Model):
    """A customer's onboarding, made from one program version, with its kickoff record."""

    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.CASCADE, related_name="onboarding_plans"
    )
    version = models.ForeignKey(
        ProgramVersion, on_delete=models.PROTECT, related_name="plans", verbose_name=_("program")
    )
    start_date = models.DateField(_("start date"))
    target_date = models.DateField(_("target date"))
    status = models.CharField(
        _("status"), max_length=10, choices=PlanStatus.choices, default=PlanStatus.ON_TRACK
    )
    completed_on = models.DateField(_("completed on"), null=True, blank=True)
    cancelled_at = models.DateTimeField(_("cancelled"), null=True, blank=True)
    # Kickoff (step 2: understanding the customer), pre-filled from the sales handoff.
    desired_outcomes = models.TextField(_("desired outcomes"), blank=True, default="")
    current_issues = models.TextField(_("current issues"), blank=True, default="")
    stakeholders = models.TextField(_("stakeholders"), blank=True, default="")
    it_literacy = models.CharField(
        _("IT literacy"), max_length=10, choices=ITLiteracy.choices, blank=True, default=""
    )
    kickoff_notes = models.TextField(_("kickoff notes"), blank=True, default="")
    kickoff_on = models.DateField(_("kickoff held on"), null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        verbose_name = _("onboarding plan")
        verbose_name_plural = _("onboarding plans")
        ordering = ("-start_date", "-id")
        constraints = [
            models.UniqueConstraint(
                fields=["customer"],
                condition=Q(completed_on__isnull=True, cancelled_at__isnull=True),
                name="onboarding_one_open_plan",
            )
        ]
        indexes = [models.Index(fields=["status", "start_date"])]


class MilestoneStatus(models.TextChoices):
    NOT_STARTED = "not_started", _("Not started")
    IN_PROGRESS = "in_progress", _("In progress")
    DONE = "done", _("Done")
    BLOCKED = "blocked", _("Blocked")
    SKIPPED = "skipped", _("Skipped")


class CompletedVia(models.TextChoices):
    STAFF = "staff", _("CSM")
    CUSTOMER = "customer", _("Customer (plan page)")
    AUTOMATIC = "automatic", _("Automatic")


class PlanMilestone(models.Model):
    """A milestone of a plan; name, owner and requirement are copied from the template."""

    plan = models.ForeignKey(OnboardingPlan, on_delete=models.CASCADE, related_name="milestones")
    milestone = models.ForeignKey(Milestone, on_delete=models.PROTECT, related_name="+")
    due_date = models.DateField(_("due"))
    status = models.CharField(
        _("status"),
        max_length=12,
        choices=MilestoneStatus.choices,
        default=MilestoneStatus.NOT_STARTED,
    )
    started_on = models.DateField(_("started"), null=True, blank=True)
    completed_on = models.DateField(_("completed"), null=True, blank=True)
    completed_via = models.CharField(
        _("completed by"), max_length=10, choices=CompletedVia.choices, blank=True, default=""
    )
    completed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    blocked_reason = models.CharField(_("blocked because"), max_length=300, blank=True, default="")
    skipped_reason = models.CharField(_("skipped because"), max_length=300, blank=True, default="")
    note = models.TextField(_("note"), blank=True, default="")

    class Meta:
        verbose_name = _("plan milestone")
        verbose_name_plural = _("plan milestones")
        ordering = ("due_date", "id")
        constraints = [
            models.UniqueConstraint(fields=["plan", "milestone"], name="plan_milestone_unique")
        ]


class PlanTask(models.Model):
    """A dated follow-up the plan created for its owner (check-in, review…)."""

    plan = models.ForeignKey(OnboardingPlan, on_delete=models.CASCADE, related_name="tasks")
    follow_up = models.ForeignKey(
        FollowUp, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    title = models.CharField(_("title"), max_length=200)
    due_date = models.DateField(_("due"))
    owner_side = models.CharField(
        _("owner"), max_length=10, choices=OwnerSide.choices, default=OwnerSide.CSM
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    done_on = models.DateField(_("done"), null=True, blank=True)
    outcome = models.TextField(_("outcome"), blank=True, default="")

    class Meta:
        verbose_name = _("follow-up task")
        verbose_name_plural = _("follow-up tasks")
        ordering = ("due_date", "id")


class GoalKind(models.TextChoices):
    METRIC = "metric", _("A metric reaches a target")
    CHECKLIST = "checklist", _("A checklist is complete")


class GoalStatus(models.TextChoices):
    OPEN = "open", _("Open")
    ACHIEVED = "achieved", _("Achieved")
    MISSED = "missed", _("Missed")


class SuccessGoal(models.Model):
    """A success goal agreed with the customer (step 1), with a measurable definition.

    metric: ``metric_key`` ``op`` ``target``; checklist: ``checklist`` = [{"text", "done"}].
    The customer's first goal (lowest ``position``, then oldest) feeds the initial outcome
    achievement rate and time to first value.
    """

    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.CASCADE, related_name="success_goals"
    )
    plan = models.ForeignKey(
        OnboardingPlan, on_delete=models.SET_NULL, null=True, blank=True, related_name="goals"
    )
    title = models.CharField(_("goal"), max_length=300)
    kind = models.CharField(_("measured by"), max_length=10, choices=GoalKind.choices)
    metric_key = models.CharField(_("metric"), max_length=100, blank=True, default="")
    op = models.CharField(_("comparison"), max_length=2, blank=True, default=">=")
    target = models.FloatField(_("target"), null=True, blank=True)
    checklist = models.JSONField(_("checklist"), default=list, blank=True)
    due_date = models.DateField(_("due"))
    status = models.CharField(
        _("status"), max_length=10, choices=GoalStatus.choices, default=GoalStatus.OPEN
    )
    achieved_on = models.DateField(_("achieved on"), null=True, blank=True)
    position = models.PositiveIntegerField(_("order"), default=0)
    agreed_on = models.DateField(_("agreed on"), default=timezone.localdate)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("success goal")
        verbose_name_plural = _("success goals")
        ordering = ("customer_id", "position", "created_at", "id")


class PlanLink(models.Model):
    """A shareable, read-only link to a plan's customer page: signed, expiring, revocable."""

    plan = models.ForeignKey(OnboardingPlan, on_delete=models.CASCADE, related_name="links")
    language = models.CharField(_("language"), max_length=8, choices=settings.LANGUAGES)
    contact_name = models.CharField(_("for"), max_length=200, blank=True, default="")
    expires_at = models.DateTimeField(_("expires"))
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    last_opened_at = models.DateTimeField(_("last opened"), null=True, blank=True)

    class Meta:
        verbose_name = _("plan link")
        verbose_name_plural = _("plan links")
        ordering = ("-created_at", "-id")
