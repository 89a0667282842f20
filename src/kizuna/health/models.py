"""Scorecards and health scores, risk signals, CSM sentiment and the churn model.

A scorecard is versioned like an onboarding program: only a draft is edited, publishing freezes
it. A score is stored per customer and day with the measure values and contributions that
produced it (``HealthScore.measures``), so every score can be explained and re-plotted. Risk
signals open once per customer and kind (database constraint) and close with a resolution.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy


class Band(models.TextChoices):
    # Contexts keep the bands apart from the onboarding plan status of the same English words.
    GOOD = "good", pgettext_lazy("health band", "Good")
    WATCH = "watch", pgettext_lazy("health band", "Watch")
    AT_RISK = "at_risk", pgettext_lazy("health band", "At risk")


class Scorecard(models.Model):
    """Which customers a scorecard scores: by touch model and/or segment, first match by priority."""

    name = models.CharField(_("name"), max_length=200)
    description = models.TextField(_("description"), blank=True, default="")
    touch_model = models.CharField(
        _("touch model"), max_length=16, blank=True, default="", help_text=_("Empty: any.")
    )
    segment = models.CharField(
        _("segment"), max_length=100, blank=True, default="", help_text=_("Empty: any.")
    )
    priority = models.PositiveIntegerField(_("priority"), default=100)
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("scorecard")
        verbose_name_plural = _("scorecards")
        ordering = ("priority", "id")

    def __str__(self) -> str:
        return self.name


class VersionStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    PUBLISHED = "published", _("Published")
    RETIRED = "retired", _("Retired")


class ScorecardVersion(models.Model):
    """One frozen (or draft) set of measures and band limits of a scorecard."""

    scorecard = models.ForeignKey(Scorecard, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField(_("version"))
    status = models.CharField(
        _("status"), max_length=16, choices=VersionStatus.choices, default=VersionStatus.DRAFT
    )
    good_from = models.FloatField(_("good from"), default=70.0)
    watch_from = models.FloatField(_("watch from"), default=40.0)
    change_note = models.CharField(_("change note"), max_length=500, blank=True, default="")
    published_at = models.DateTimeField(_("published at"), null=True, blank=True)
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("scorecard version")
        verbose_name_plural = _("scorecard versions")
        ordering = ("scorecard_id", "-number")
        constraints = [
            models.UniqueConstraint(fields=["scorecard", "number"], name="health_version_number"),
            models.UniqueConstraint(
                fields=["scorecard"],
                condition=Q(status="published"),
                name="health_one_published_version",
            ),
            models.UniqueConstraint(
                fields=["scorecard"], condition=Q(status="draft"), name="health_one_draft_version"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.scorecard.name} v{self.number}"


class MeasureSource(models.TextChoices):
    """Where a measure's raw value comes from (each readable as of any past day)."""

    METRIC = "metric", _("Usage metric")
    DAYS_TO_RENEWAL = "days_to_renewal", _("Days to renewal")
    ONBOARDING_PROGRESS = "onboarding_progress", _("Onboarding progress")
    NPS = "nps", _("Latest NPS answer")
    DAYS_SINCE_TOUCH = "days_since_touch", _("Days since the last CSM touch")
    OPEN_SIGNALS = "open_signals", _("Open risk signals")
    SENTIMENT = "sentiment", _("CSM sentiment")


class Mapping(models.TextChoices):
    THRESHOLDS = "thresholds", _("Thresholds")
    PERCENTILE = "percentile", _("Percentile in the portfolio")


class Measure(models.Model):
    """A weighted input of a scorecard version, mapped to 0–100 points.

    ``thresholds`` is a list of ``[value, points]`` pairs; points between two pairs are
    interpolated linearly and clamped outside them (so ``[[0, 0], [0.8, 100]]`` gives 50 points
    at 0.4). ``percentile`` maps the value's rank among the customers scored by the same
    scorecard that day; ``higher_is_better`` flips the rank when lower is better.
    """

    version = models.ForeignKey(ScorecardVersion, on_delete=models.CASCADE, related_name="measures")
    key = models.SlugField(_("key"), max_length=64)
    label = models.CharField(_("label"), max_length=200)
    source = models.CharField(_("source"), max_length=32, choices=MeasureSource.choices)
    metric_key = models.CharField(_("metric"), max_length=100, blank=True, default="")
    weight = models.FloatField(_("weight"), default=1.0)
    mapping = models.CharField(
        _("mapping"), max_length=16, choices=Mapping.choices, default=Mapping.THRESHOLDS
    )
    thresholds = models.JSONField(_("thresholds"), default=list, blank=True)
    higher_is_better = models.BooleanField(_("higher is better"), default=True)
    position = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name = _("measure")
        verbose_name_plural = _("measures")
        ordering = ("version_id", "position", "id")
        constraints = [
            models.UniqueConstraint(fields=["version", "key"], name="health_measure_key"),
        ]

    def __str__(self) -> str:
        return self.label


class HealthScore(models.Model):
    """A customer's score on a day, with what produced it.

    ``measures`` is a list of ``{"key", "label", "source", "value", "points", "weight",
    "contribution", "missing"}``; a missing measure has ``value``/``points`` null and its weight
    re-spread over the others (``missing_weight`` is the share of weight that was missing).
    ``score`` is null when every measure was missing ("not scored").
    """

    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.CASCADE, related_name="health_scores"
    )
    day = models.DateField(_("day"))
    version = models.ForeignKey(ScorecardVersion, on_delete=models.CASCADE, related_name="scores")
    score = models.FloatField(_("score"), null=True, blank=True)
    band = models.CharField(_("band"), max_length=16, choices=Band.choices, blank=True, default="")
    measures = models.JSONField(_("measures"), default=list)
    missing_weight = models.FloatField(_("missing weight"), default=0.0)
    computed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("health score")
        verbose_name_plural = _("health scores")
        ordering = ("customer_id", "day")
        constraints = [
            models.UniqueConstraint(fields=["customer", "day"], name="health_score_per_day"),
        ]
        indexes = [models.Index(fields=["day", "band"])]

    def __str__(self) -> str:
        return f"{self.customer_id} {self.day}: {self.score}"


class Sentiment(models.IntegerChoices):
    VERY_NEGATIVE = 1, _("Very negative")
    NEGATIVE = 2, _("Negative")
    NEUTRAL = 3, _("Neutral")
    POSITIVE = 4, _("Positive")
    VERY_POSITIVE = 5, _("Very positive")


class CsmSentiment(models.Model):
    """The CSM's own judgement of the relationship, as of a day (latest counts)."""

    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.CASCADE, related_name="csm_sentiments"
    )
    sentiment = models.PositiveSmallIntegerField(_("sentiment"), choices=Sentiment.choices)
    note = models.CharField(_("note"), max_length=500, blank=True, default="")
    recorded_on = models.DateField(_("recorded on"), default=timezone.localdate)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("CSM sentiment")
        verbose_name_plural = _("CSM sentiments")
        ordering = ("customer_id", "-recorded_on", "-id")


class SignalKind(models.TextChoices):
    USAGE_DROP = "usage_drop", _("Usage drop")
    ACTIVE_USERS_DOWN = "active_users_down", _("Active users down")
    LOGINS_DOWN = "logins_down", _("Logins down")
    NO_LOGIN = "no_login", _("No login")
    CHAMPION_LEFT = "champion_left", _("Champion or admin left")
    NEW_ADMIN = "new_admin", _("New administrator")
    MILESTONE_OVERDUE = "milestone_overdue", _("Onboarding milestone overdue")
    NPS_DETRACTOR = "nps_detractor", _("NPS detractor")
    RENEWAL_AT_RISK = "renewal_at_risk", _("Renewal at risk")
    LOW_SEAT_UTILISATION = "low_seat_utilisation", _("Low seat utilisation")


class Severity(models.TextChoices):
    LOW = "low", _("Low")
    MEDIUM = "medium", _("Medium")
    HIGH = "high", _("High")


class SignalRule(models.Model):
    """The settings of one kind of risk signal (one row per kind)."""

    kind = models.CharField(_("kind"), max_length=32, choices=SignalKind.choices, unique=True)
    enabled = models.BooleanField(_("enabled"), default=True)
    severity = models.CharField(
        _("severity"), max_length=16, choices=Severity.choices, default=Severity.MEDIUM
    )
    params = models.JSONField(_("parameters"), default=dict, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        verbose_name = _("risk signal rule")
        verbose_name_plural = _("risk signal rules")
        ordering = ("kind",)

    def __str__(self) -> str:
        return self.get_kind_display()


class Resolution(models.TextChoices):
    CLEARED = "cleared", _("Condition cleared")
    RESOLVED = "resolved", _("Resolved by the CSM")
    DISMISSED = "dismissed", _("Dismissed")


class RiskSignal(models.Model):
    """One occurrence of a risk for a customer, open over ``[opened_on, closed_on)``.

    ``details`` holds the numbers behind ``reason`` (e.g. ``{"metric": "events_28d", "now": 120,
    "baseline": 200, "change": -0.4}``) so the reason can be re-worded in any language.
    """

    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.CASCADE, related_name="risk_signals"
    )
    kind = models.CharField(_("kind"), max_length=32, choices=SignalKind.choices)
    severity = models.CharField(_("severity"), max_length=16, choices=Severity.choices)
    reason = models.CharField(_("reason"), max_length=500)
    details = models.JSONField(_("details"), default=dict, blank=True)
    opened_on = models.DateField(_("opened on"))
    last_seen_on = models.DateField(_("last seen on"))
    closed_on = models.DateField(_("closed on"), null=True, blank=True)
    resolution = models.CharField(
        _("resolution"), max_length=16, choices=Resolution.choices, blank=True, default=""
    )
    resolution_note = models.CharField(_("resolution note"), max_length=500, blank=True, default="")
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("risk signal")
        verbose_name_plural = _("risk signals")
        ordering = ("-opened_on", "-id")
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "kind"],
                condition=Q(closed_on__isnull=True),
                name="health_one_open_signal_per_kind",
            ),
        ]
        indexes = [models.Index(fields=["closed_on", "severity"])]

    def __str__(self) -> str:
        return f"{self.customer_id} {self.kind} {self.opened_on}"


class ModelKind(models.TextChoices):
    LOGISTIC = "logistic", _("Logistic regression")
    GRADIENT_BOOSTING = "gradient_boosting", _("Gradient boosting")


class ChurnModel(models.Model):
    """A trained churn model and its measured accuracy (time-based backtest).

    ``backtest`` holds ``{"auc", "lift_top_decile", "calibration": [{"predicted", "observed",
    "count"}], "baseline_auc", "baseline_name", "periods", "rows", "positives"}``; ``parameters``
    what is needed to predict again (features, scaler, coefficients; or the path of a stored
    estimator under the data directory).
    """

    kind = models.CharField(
        _("kind"), max_length=32, choices=ModelKind.choices, default=ModelKind.LOGISTIC
    )
    horizon_days = models.PositiveIntegerField(_("horizon (days)"), default=90)
    trained_at = models.DateTimeField(default=timezone.now)
    trained_through = models.DateField(_("trained through"))
    features = models.JSONField(_("features"), default=list)
    parameters = models.JSONField(_("parameters"), default=dict, blank=True)
    backtest = models.JSONField(_("backtest"), default=dict, blank=True)
    rows = models.PositiveIntegerField(_("training rows"), default=0)
    positives = models.PositiveIntegerField(_("churned rows"), default=0)
    is_current = models.BooleanField(_("current"), default=False)
    error = models.TextField(_("error"), blank=True, default="")

    class Meta:
        verbose_name = _("churn model")
        verbose_name_plural = _("churn models")
        ordering = ("-trained_at", "-id")
        constraints = [
            models.UniqueConstraint(
                fields=["is_current"], condition=Q(is_current=True), name="health_one_current_model"
            ),
        ]


class ChurnPrediction(models.Model):
    """The probability that the customer is not active ``horizon_days`` after ``day``.

    ``drivers`` lists the features that raise it most: ``[{"feature", "label", "value",
    "effect", "log_odds"?}]`` — ``effect`` is how much lower the probability would be with that
    feature at its training median (a fraction); ``log_odds`` (logistic model only) is the
    feature's share of the log-odds.
    """

    model = models.ForeignKey(ChurnModel, on_delete=models.CASCADE, related_name="predictions")
    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.CASCADE, related_name="churn_predictions"
    )
    day = models.DateField(_("day"))
    probability = models.FloatField(_("probability"))
    drivers = models.JSONField(_("drivers"), default=list)

    class Meta:
        verbose_name = _("churn prediction")
        verbose_name_plural = _("churn predictions")
        ordering = ("-day", "-probability")
        constraints = [
            models.UniqueConstraint(
                fields=["model", "customer", "day"], name="health_prediction_per_day"
            ),
        ]
