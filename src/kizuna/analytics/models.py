"""Product usage data: sources and write keys, the durable inbox, identities, metrics.

Events travel: HTTP (Segment API) → ``InboxEvent`` rows (committed before the 2xx) → the lake
flush writes them to Parquet under ``DATA_DIR/lake/events`` and deletes them, remembering their
message ids in ``DeliveredMessage`` so that a retry never counts twice. Bulk files go straight
to the lake (``EventImport``). Metrics are computed over the lake by Ibis; their latest values
per customer live in ``CustomerMetric``.
"""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from kizuna.customers.models import Contact, Customer


class Source(models.Model):
    """A producer of events (a web app, a mobile app, a backend), with one write key."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    key_prefix = models.CharField(_("key prefix"), max_length=16)
    key_hash = models.CharField(max_length=64, unique=True)
    group_id_trait = models.CharField(
        _("customer id trait"),
        max_length=100,
        blank=True,
        default="",
        help_text=_(
            "Trait of group calls that holds the customer's external id. "
            "Empty: the groupId itself is the customer's external id."
        ),
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)

    class Meta:
        verbose_name = _("source")
        verbose_name_plural = _("sources")
        ordering = ("name",)

    def __str__(self) -> str:
        return self.name

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class EventKind(models.TextChoices):
    TRACK = "track", "track"
    PAGE = "page", "page"
    SCREEN = "screen", "screen"
    IDENTIFY = "identify", "identify"
    GROUP = "group", "group"
    ALIAS = "alias", "alias"


class InboxEvent(models.Model):
    """One accepted message, durable until the lake flush moves it to Parquet."""

    id = models.BigAutoField(primary_key=True)
    source = models.ForeignKey(Source, on_delete=models.PROTECT, related_name="+")
    message_id = models.CharField(max_length=200)
    kind = models.CharField(max_length=10, choices=EventKind.choices)
    event_type = models.CharField(max_length=200)
    event_time = models.DateTimeField()
    received_at = models.DateTimeField()
    user_id = models.CharField(max_length=200, blank=True, default="")
    anonymous_id = models.CharField(max_length=200, blank=True, default="")
    account_key = models.CharField(max_length=200, blank=True, default="")
    event_value = models.FloatField(null=True, blank=True)
    feature = models.CharField(max_length=200, blank=True, default="")
    payload = models.TextField(default="{}")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["source", "message_id"], name="inbox_unique_message"),
        ]


class DeliveredMessage(models.Model):
    """Message ids already written to the lake, kept for the de-duplication window."""

    id = models.BigAutoField(primary_key=True)
    source_id = models.BigIntegerField()
    message_id = models.CharField(max_length=200)
    delivered_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["source_id", "message_id"], name="delivered_unique_message"
            ),
        ]


class LakeBatch(models.Model):
    """One move of inbox rows to Parquet: claimed first, files written, then rows deleted."""

    class Status(models.TextChoices):
        PENDING = "pending", _("pending")
        DONE = "done", _("done")

    max_inbox_id = models.BigIntegerField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    rows_written = models.BigIntegerField(default=0)
    duplicates = models.BigIntegerField(default=0)
    files = models.JSONField(default=list)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # At most one batch in flight: two flushes can never claim overlapping inbox rows.
            models.UniqueConstraint(
                fields=["status"],
                condition=models.Q(status="pending"),
                name="lakebatch_one_pending",
            ),
        ]


class IngestRejection(models.Model):
    """A request or message that was refused, with the reason an operator can act on."""

    source = models.ForeignKey(Source, null=True, blank=True, on_delete=models.SET_NULL)
    reason = models.CharField(max_length=40, db_index=True)
    detail = models.CharField(max_length=500, blank=True, default="")
    events = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ("-created_at", "-id")


class ProductUser(models.Model):
    """A user of the customer's product as seen in identify/group calls and events."""

    user_id = models.CharField(max_length=200, unique=True)
    account_key = models.CharField(max_length=200, blank=True, default="", db_index=True)
    contact = models.ForeignKey(
        Contact, null=True, blank=True, on_delete=models.SET_NULL, related_name="product_users"
    )
    email = models.CharField(max_length=254, blank=True, default="")
    name = models.CharField(max_length=200, blank=True, default="")
    traits = models.JSONField(default=dict)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()


class GroupLink(models.Model):
    """A ``groupId`` from group calls and the customer external id it stands for."""

    group_id = models.CharField(max_length=200, unique=True)
    customer_key = models.CharField(max_length=200, db_index=True)
    traits = models.JSONField(default=dict)
    updated_at = models.DateTimeField(auto_now=True)


class EventImport(models.Model):
    """A bulk file of events written to the lake (``kizuna ingest``)."""

    class Status(models.TextChoices):
        DONE = "done", _("done")
        FAILED = "failed", _("failed")

    file_name = models.CharField(max_length=500)
    content_hash = models.CharField(max_length=64, db_index=True)
    status = models.CharField(max_length=10, choices=Status.choices)
    rows = models.BigIntegerField(default=0)
    errors = models.JSONField(default=list)
    files = models.JSONField(default=list)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)


class UsageSettings(models.Model):
    """Company-wide usage conventions (one row): what makes a user active, key features."""

    qualifying_event_types = models.JSONField(
        _("qualifying event types"),
        default=list,
        blank=True,
        help_text=_("Event types that make a user active on a day; empty means any event."),
    )
    key_features = models.JSONField(
        _("key features"),
        default=list,
        blank=True,
        help_text=_("Features counted by the feature usage rate."),
    )
    external_connection = models.CharField(
        _("external connection"),
        max_length=500,
        blank=True,
        default="",
        help_text=_("Ibis connection string of a read-only warehouse table of events."),
    )
    external_table = models.CharField(_("external table"), max_length=200, blank=True, default="")
    external_columns = models.JSONField(_("external column mapping"), default=dict, blank=True)

    @classmethod
    def load(cls) -> "UsageSettings":
        settings_row, _created = cls.objects.get_or_create(pk=1)
        return settings_row


class MetricKind(models.TextChoices):
    EVENT_COUNT = "event_count", _("Event count")
    VALUE_SUM = "value_sum", _("Sum of event value")
    ACTIVE_USERS = "active_users", _("Distinct active users")
    ACTIVE_DAYS = "active_days", _("Active days")
    FEATURE_BREADTH = "feature_breadth", _("Distinct features used")
    SEAT_UTILISATION = "seat_utilisation", _("Seats used / licensed")
    WINDOW_CHANGE = "window_change", _("Change vs the previous window")


class WindowKind(models.TextChoices):
    ROLLING = "rolling", _("Rolling days ending on the day")
    CALENDAR_MONTH = "calendar_month", _("Calendar month to date")


class MetricDefinition(models.Model):
    """A per-customer metric computed daily over the lake. Definitions are data."""

    key = models.SlugField(_("key"), max_length=64, unique=True)
    name = models.CharField(_("name"), max_length=200)
    name_ja = models.CharField(_("Japanese name"), max_length=200, blank=True, default="")
    kind = models.CharField(_("kind"), max_length=20, choices=MetricKind.choices)
    event_types = models.JSONField(
        _("event types"), default=list, blank=True, help_text=_("Empty means every event.")
    )
    window_kind = models.CharField(
        _("window"), max_length=20, choices=WindowKind.choices, default=WindowKind.ROLLING
    )
    window_days = models.PositiveSmallIntegerField(_("window days"), default=28)
    base_metric = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="derived",
        verbose_name=_("base metric"),
        help_text=_("For a change metric: the metric compared with its previous window."),
    )
    is_active = models.BooleanField(_("active"), default=True)
    position = models.PositiveSmallIntegerField(_("position"), default=100)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("metric")
        verbose_name_plural = _("metrics")
        ordering = ("position", "key")

    def __str__(self) -> str:
        return self.key


class CustomerMetric(models.Model):
    """The latest value of a metric for a customer (lists, filters, rules read this)."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="metrics")
    metric = models.ForeignKey(MetricDefinition, on_delete=models.CASCADE, related_name="+")
    as_of = models.DateField()
    value = models.FloatField(null=True)
    previous_value = models.FloatField(null=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["customer", "metric"], name="customer_metric_unique"),
        ]


class MetricRun(models.Model):
    """One computation of metric history, for the incremental nightly run and for operators."""

    start = models.DateField()
    end = models.DateField()
    engine = models.CharField(max_length=20)
    rows = models.BigIntegerField(default=0)
    seconds = models.FloatField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
