"""Segments, touch-model policy, lifecycle stages, CSM teams and handoffs between owners.

The customer's *current* segment, stage, touch model and owners are fields on
``customers.Customer`` so every context can read them; this context decides them by rules
and keeps their history in ``StateHistory`` so KPIs can be filtered as of any past day.
"""

from typing import Any

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from kizuna.customers.models import LifecycleStage, TouchModel


class Dimension(models.TextChoices):
    """What ``StateHistory`` tracks; values are stored as text (owners as user ids)."""

    SEGMENT = "segment", _("Segment")
    STAGE = "stage", _("Lifecycle stage")
    TOUCH_MODEL = "touch_model", _("Touch model")
    ONBOARDING_OWNER = "owner.onboarding", _("Onboarding CSM")
    ADOPTION_OWNER = "owner.adoption", _("Adoption CSM")
    EXPANSION_OWNER = "owner.expansion", _("Expansion CSM")


# The Customer field that holds each dimension's current value.
DIMENSION_FIELDS: dict[str, str] = {
    Dimension.SEGMENT: "segment",
    Dimension.STAGE: "lifecycle_stage",
    Dimension.TOUCH_MODEL: "touch_model",
    Dimension.ONBOARDING_OWNER: "onboarding_owner_id",
    Dimension.ADOPTION_OWNER: "adoption_owner_id",
    Dimension.EXPANSION_OWNER: "expansion_owner_id",
}


class ChangeSource(models.TextChoices):
    RULE = "rule", _("Rule")
    MANUAL = "manual", _("Manual")
    OVERRIDE = "override", _("Override")
    ASSIGNMENT = "assignment", _("Assignment")
    EDIT = "edit", _("Customer edit or import")
    DEMO = "demo", _("Demo")


class StateHistory(models.Model):
    """One value of one dimension of a customer over ``[valid_from, valid_to)``.

    ``valid_from`` empty means "since the beginning" (the first value Kizuna knew);
    ``valid_to`` empty means "still current". At most one open row per customer and
    dimension (database constraint).
    """

    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.CASCADE, related_name="state_history"
    )
    dimension = models.CharField(_("dimension"), max_length=32, choices=Dimension.choices)
    value = models.CharField(_("value"), max_length=100, blank=True, default="")
    valid_from = models.DateField(_("from"), null=True, blank=True)
    valid_to = models.DateField(_("until"), null=True, blank=True)
    source = models.CharField(
        _("source"), max_length=16, choices=ChangeSource.choices, default=ChangeSource.RULE
    )
    reason = models.CharField(_("reason"), max_length=500, blank=True, default="")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    recorded_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("state history")
        verbose_name_plural = _("state history")
        ordering = ("customer_id", "dimension", "valid_from", "id")
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "dimension"],
                condition=Q(valid_to__isnull=True),
                name="state_history_one_open_row",
            ),
        ]
        indexes = [
            models.Index(fields=["dimension", "value", "valid_from", "valid_to"]),
            models.Index(fields=["customer", "dimension", "valid_from"]),
        ]

    def __str__(self) -> str:
        return (
            f"{self.customer_id} {self.dimension}={self.value} [{self.valid_from}, {self.valid_to})"
        )


class Segment(models.Model):
    """A named rule; customers belong to the first active segment (by ``position``) they match."""

    key = models.SlugField(_("key"), max_length=50, unique=True)
    name = models.CharField(_("name"), max_length=100)
    description = models.TextField(_("description"), blank=True, default="")
    position = models.PositiveIntegerField(_("order"), default=0)
    expression = models.TextField(
        _("rule"),
        help_text=_("For example: arr >= 10000000 or employees >= 1000"),
    )
    rule = models.JSONField(_("condition tree"), default=dict, editable=False)
    is_active = models.BooleanField(_("active"), default=True)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        verbose_name = _("segment")
        verbose_name_plural = _("segments")
        ordering = ("position", "id")

    def __str__(self) -> str:
        return self.name


class TouchPolicy(models.Model):
    """The touch model for a segment in a stage; an empty segment key applies to every segment."""

    segment_key = models.CharField(_("segment"), max_length=50, blank=True, default="")
    stage = models.CharField(_("lifecycle stage"), max_length=20, choices=LifecycleStage.choices)
    touch_model = models.CharField(_("touch model"), max_length=10, choices=TouchModel.choices)

    class Meta:
        verbose_name = _("touch-model policy")
        verbose_name_plural = _("touch-model policies")
        ordering = ("segment_key", "stage")
        constraints = [
            models.UniqueConstraint(
                fields=["segment_key", "stage"], name="touch_policy_one_per_segment_stage"
            )
        ]


class TouchOverride(models.Model):
    """A person's decision that beats the policy for one customer, until it expires or ends."""

    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.CASCADE, related_name="touch_overrides"
    )
    touch_model = models.CharField(_("touch model"), max_length=10, choices=TouchModel.choices)
    reason = models.CharField(_("reason"), max_length=500)
    expires_on = models.DateField(_("expires on"), null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(_("ended"), null=True, blank=True)

    class Meta:
        verbose_name = _("touch-model override")
        verbose_name_plural = _("touch-model overrides")
        ordering = ("-created_at", "-id")
        constraints = [
            models.UniqueConstraint(
                fields=["customer"],
                condition=Q(ended_at__isnull=True),
                name="touch_override_one_active",
            )
        ]


class LifecycleSettings(models.Model):
    """Company-wide lifecycle settings (one row): stage criteria, default touch model, weights.

    Stage criteria are condition expressions in the segment rule language.
    """

    default_touch_model = models.CharField(
        _("default touch model"), max_length=10, choices=TouchModel.choices, default=TouchModel.HIGH
    )
    adoption_entry = models.TextField(
        _("onboarding → adoption when"),
        blank=True,
        default="onboarding_completed or days_since_start >= 120",
    )
    expansion_entry = models.TextField(
        _("adoption → expansion when"),
        blank=True,
        default="metric.seat_utilisation_28d >= 0.8 and metric.active_days_28d >= 12",
    )
    reactivated_days = models.PositiveIntegerField(
        _("days a reactivated customer stays reactivated"), default=90
    )
    automatic_stages = models.BooleanField(_("move stages automatically"), default=True)
    high_touch_weight = models.DecimalField(
        _("load of a high-touch customer"),
        max_digits=5,
        decimal_places=2,
        default=5,
        validators=[MinValueValidator(0)],
    )
    low_touch_weight = models.DecimalField(
        _("load of a low-touch customer"),
        max_digits=5,
        decimal_places=2,
        default=2,
        validators=[MinValueValidator(0)],
    )
    tech_touch_weight = models.DecimalField(
        _("load of a tech-touch customer"),
        max_digits=5,
        decimal_places=2,
        default="0.5",
        validators=[MinValueValidator(0)],
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("lifecycle settings")
        verbose_name_plural = _("lifecycle settings")

    @classmethod
    def load(cls) -> "LifecycleSettings":
        row, _created = cls.objects.get_or_create(pk=1)
        return row

    def weight(self, touch_model: str) -> float:
        return float(
            {
                TouchModel.HIGH: self.high_touch_weight,
                TouchModel.LOW: self.low_touch_weight,
                TouchModel.TECH: self.tech_touch_weight,
            }.get(TouchModel(touch_model), self.high_touch_weight)
        )


class OwnerRole(models.TextChoices):
    """The three CS roles; each maps to an owner field on Customer."""

    ONBOARDING = "onboarding", _("Onboarding")
    ADOPTION = "adoption", _("Adoption")
    EXPANSION = "expansion", _("Expansion")


OWNER_FIELDS: dict[str, str] = {
    OwnerRole.ONBOARDING: "onboarding_owner",
    OwnerRole.ADOPTION: "adoption_owner",
    OwnerRole.EXPANSION: "expansion_owner",
}

OWNER_DIMENSIONS: dict[str, str] = {
    OwnerRole.ONBOARDING: Dimension.ONBOARDING_OWNER,
    OwnerRole.ADOPTION: Dimension.ADOPTION_OWNER,
    OwnerRole.EXPANSION: Dimension.EXPANSION_OWNER,
}

# The role that owns a customer in each stage (churned customers keep their last owner).
STAGE_ROLES: dict[str, str] = {
    LifecycleStage.ONBOARDING: OwnerRole.ONBOARDING,
    LifecycleStage.REACTIVATED: OwnerRole.ONBOARDING,
    LifecycleStage.ADOPTION: OwnerRole.ADOPTION,
    LifecycleStage.EXPANSION: OwnerRole.EXPANSION,
}


class Team(models.Model):
    name = models.CharField(_("name"), max_length=100, unique=True)
    manager = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("manager"),
    )

    class Meta:
        verbose_name = _("team")
        verbose_name_plural = _("teams")
        ordering = ("name",)

    def __str__(self) -> str:
        return self.name


class CsmProfile(models.Model):
    """A CSM's team, capacity (in load points, see LifecycleSettings weights) and reach."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="csm_profile"
    )
    team = models.ForeignKey(
        Team,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="members",
        verbose_name=_("team"),
    )
    capacity = models.DecimalField(
        _("capacity"),
        max_digits=7,
        decimal_places=2,
        default=100,
        validators=[MinValueValidator(0)],
    )
    languages = models.CharField(
        _("languages"),
        max_length=100,
        blank=True,
        default="",
        help_text=_("Comma-separated language codes, e.g. ja,en. Empty: any."),
    )
    regions = models.CharField(
        _("regions"),
        max_length=300,
        blank=True,
        default="",
        help_text=_("Comma-separated regions. Empty: any."),
    )
    accepting = models.BooleanField(_("accepting new customers"), default=True)

    class Meta:
        verbose_name = _("CSM profile")
        verbose_name_plural = _("CSM profiles")

    def __str__(self) -> str:
        return str(self.user)


class AssignmentMethod(models.TextChoices):
    ROUND_ROBIN = "round_robin", _("Round robin")
    LEAST_LOADED = "least_loaded", _("Least loaded")


class AssignmentRule(models.Model):
    """Who gets an unowned customer for a role: the first matching rule's team and method."""

    name = models.CharField(_("name"), max_length=100)
    position = models.PositiveIntegerField(_("order"), default=0)
    role = models.CharField(_("role"), max_length=16, choices=OwnerRole.choices)
    expression = models.TextField(
        _("applies when"), blank=True, default="", help_text=_("Empty: every customer.")
    )
    rule = models.JSONField(default=dict, editable=False)
    team = models.ForeignKey(
        Team, on_delete=models.CASCADE, related_name="assignment_rules", verbose_name=_("team")
    )
    method = models.CharField(
        _("method"),
        max_length=16,
        choices=AssignmentMethod.choices,
        default=AssignmentMethod.LEAST_LOADED,
    )
    match_language = models.BooleanField(_("match the contacts' language"), default=False)
    match_region = models.BooleanField(_("match the customer's region"), default=False)
    last_assigned = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        editable=False,
    )
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("assignment rule")
        verbose_name_plural = _("assignment rules")
        ordering = ("position", "id")

    def __str__(self) -> str:
        return self.name


class HandoffReason(models.TextChoices):
    STAGE_CHANGE = "stage_change", _("Stage change")
    REASSIGNMENT = "reassignment", _("Reassignment")
    MANUAL = "manual", _("Manual")


class HandoffStatus(models.TextChoices):
    PENDING = "pending", _("Waiting for acknowledgement")
    ACKNOWLEDGED = "acknowledged", _("Acknowledged")


class RoleHandoff(models.Model):
    """Context passed from one owner to the next; the receiving owner acknowledges it."""

    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.CASCADE, related_name="role_handoffs"
    )
    from_role = models.CharField(_("from role"), max_length=16, choices=OwnerRole.choices)
    to_role = models.CharField(_("to role"), max_length=16, choices=OwnerRole.choices)
    from_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("from"),
    )
    to_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("to"),
    )
    reason = models.CharField(
        _("reason"), max_length=16, choices=HandoffReason.choices, default=HandoffReason.MANUAL
    )
    goals_achieved = models.TextField(_("goals achieved"), blank=True, default="")
    open_issues = models.TextField(_("open issues"), blank=True, default="")
    stakeholders = models.TextField(_("stakeholders"), blank=True, default="")
    risks = models.TextField(_("risks"), blank=True, default="")
    notes = models.TextField(_("notes"), blank=True, default="")
    status = models.CharField(
        _("status"), max_length=16, choices=HandoffStatus.choices, default=HandoffStatus.PENDING
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    acknowledged_at = models.DateTimeField(_("acknowledged"), null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    acknowledgement = models.TextField(_("reply"), blank=True, default="")

    class Meta:
        verbose_name = _("handoff")
        verbose_name_plural = _("handoffs")
        ordering = ("-created_at", "-id")
        indexes = [models.Index(fields=["status", "to_user"])]


class LifecycleRun(models.Model):
    """One evaluation of segments, stages, touch models and assignments (periodic or by hand)."""

    as_of = models.DateField()
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    counts = models.JSONField(default=dict)
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ("-started_at", "-id")

    def summary(self) -> dict[str, Any]:
        return dict(self.counts)
