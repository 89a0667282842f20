"""Staff users, API tokens, login throttling records and the customer timeline."""

import hashlib
import secrets

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from kizuna.core.roles import ROLE_CAPABILITIES, Capability, Role


class User(AbstractUser):
    """A member of the customer success team (staff only; customers never log in here)."""

    role = models.CharField(_("role"), max_length=32, choices=Role.choices, default=Role.VIEWER)
    language = models.CharField(
        _("language"), max_length=8, choices=settings.LANGUAGES, blank=True, default=""
    )

    class Meta:
        verbose_name = _("user")
        verbose_name_plural = _("users")
        ordering = ("username",)

    def can(self, capability: Capability) -> bool:
        """True when the user's role grants the capability (superusers can do everything)."""
        if not self.is_active:
            return False
        if self.is_superuser:
            return True
        return capability in ROLE_CAPABILITIES.get(self.role, frozenset())

    @property
    def display_name(self) -> str:
        """Full name in the order its script expects: 岡本 直人, but Jane Smith."""
        first, last = self.first_name.strip(), self.last_name.strip()
        if not (first or last):
            return self.username
        if any(not part.isascii() for part in (first, last)):
            return f"{last} {first}".strip()
        return f"{first} {last}".strip()


def _hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiTokenQuerySet(models.QuerySet["ApiToken"]):
    def active(self) -> "ApiTokenQuerySet":
        return self.filter(revoked_at__isnull=True, user__is_active=True)


class ApiToken(models.Model):
    """A per-user bearer token for the REST API. Only a hash is stored; the token is shown once."""

    PREFIX = "kzn_"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(_("name"), max_length=100)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    hint = models.CharField(max_length=12, editable=False)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        verbose_name = _("API token")
        verbose_name_plural = _("API tokens")
        ordering = ("-created_at",)

    def __str__(self) -> str:
        return f"{self.name} ({self.hint}…)"

    @classmethod
    def issue(cls, *, user: "User", name: str) -> tuple["ApiToken", str]:
        """Create a token; returns it with the raw secret, which is never stored."""
        raw = cls.PREFIX + secrets.token_urlsafe(32)
        token = cls.objects.create(user=user, name=name, key_hash=_hash_token(raw), hint=raw[:8])
        return token, raw

    @classmethod
    def find_active(cls, raw: str) -> "ApiToken | None":
        return cls.objects.active().select_related("user").filter(key_hash=_hash_token(raw)).first()


class LoginFailure(models.Model):
    """One failed login; recent rows throttle further attempts for the username and address."""

    username = models.CharField(max_length=150, db_index=True)
    ip_address = models.CharField(max_length=64, blank=True, default="", db_index=True)
    failed_at = models.DateTimeField(default=timezone.now, db_index=True)


class TimelineKind(models.TextChoices):
    NOTE = "note", _("Note")
    MEETING = "meeting", _("Meeting")
    CALL = "call", _("Call")
    TRAINING = "training", _("Training")
    REVIEW_MEETING = "review_meeting", _("Review meeting")
    EMAIL = "email", _("Email")
    IMPORT = "import", _("Import")
    SUBSCRIPTION_CHANGED = "subscription.changed", _("Subscription changed")
    HANDOFF_RECORDED = "handoff.recorded", _("Sales handoff recorded")
    SEGMENT_CHANGED = "segment.changed", _("Segment changed")
    STAGE_CHANGED = "stage.changed", _("Lifecycle stage changed")
    TOUCH_MODEL_CHANGED = "touch_model.changed", _("Touch model changed")
    OWNER_CHANGED = "owner.changed", _("Owner changed")
    ROLE_HANDOFF_CREATED = "handoff.created", _("Handoff to the next owner")
    ROLE_HANDOFF_ACKNOWLEDGED = "handoff.acknowledged", _("Handoff acknowledged")
    ONBOARDING_COMPLETED = "onboarding.completed", _("Onboarding completed")
    ONBOARDING_PLAN_CREATED = "onboarding.plan_created", _("Onboarding plan created")
    MILESTONE_CHANGED = "onboarding.milestone", _("Onboarding milestone updated")
    GOAL_AGREED = "goal.agreed", _("Success goal agreed")
    GOAL_ACHIEVED = "goal.achieved", _("Success goal achieved")
    KICKOFF_RECORDED = "onboarding.kickoff", _("Kickoff recorded")
    ONBOARDING_LINK_SHARED = "onboarding.link_shared", _("Plan page shared")
    ONBOARDING_LINK_REVOKED = "onboarding.link_revoked", _("Plan page link revoked")
    ONBOARDING_CANCELLED = "onboarding.cancelled", _("Onboarding plan cancelled")
    FOLLOW_UP_DONE = "onboarding.follow_up", _("Follow-up done")
    NPS_ANSWERED = "nps.answered", _("NPS answered")
    RISK_RAISED = "risk.raised", _("Risk signal raised")
    RISK_CLOSED = "risk.closed", _("Risk signal closed")
    HEALTH_BAND_CHANGED = "health.band_changed", _("Health band changed")
    SENTIMENT_RECORDED = "health.sentiment", _("CSM sentiment recorded")
    MILESTONE_OVERDUE = "onboarding.milestone_overdue", _("Onboarding milestone overdue")
    TASK_COMPLETED = "task.completed", _("Task completed")
    PLAYBOOK_NOTE = "playbook.note", _("Playbook note")
    CUSTOMER_CREATED = "customer.created", _("Customer created")


# Kinds a person enters by hand; the rest are written by Kizuna itself.
MANUAL_TIMELINE_KINDS = (
    TimelineKind.NOTE,
    TimelineKind.MEETING,
    TimelineKind.CALL,
    TimelineKind.TRAINING,
    TimelineKind.REVIEW_MEETING,
)


class TimelineEntry(models.Model):
    """Something that happened to a customer: the Customer 360 history and the playbooks' stream.

    ``kind`` is open-ended: later contexts write their own dotted kinds ("risk.raised").
    """

    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.CASCADE, related_name="timeline_entries"
    )
    kind = models.CharField(_("kind"), max_length=64, db_index=True)
    occurred_at = models.DateTimeField(_("occurred at"), default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("actor"),
    )
    title = models.CharField(_("title"), max_length=200)
    body = models.TextField(_("body"), blank=True, default="")
    payload = models.JSONField(_("payload"), default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("timeline entry")
        verbose_name_plural = _("timeline entries")
        ordering = ("-occurred_at", "-id")
        indexes = [models.Index(fields=["customer", "-occurred_at"])]

    def __str__(self) -> str:
        return f"{self.kind}: {self.title}"

    @property
    def kind_label(self) -> str:
        try:
            return str(TimelineKind(self.kind).label)
        except ValueError:
            return self.kind
