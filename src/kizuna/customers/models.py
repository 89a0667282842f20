"""The customer record: companies, their people, what they bought and what sales handed over."""

from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class LifecycleStage(models.TextChoices):
    ONBOARDING = "onboarding", _("Onboarding")
    ADOPTION = "adoption", _("Adoption")
    EXPANSION = "expansion", _("Expansion")
    CHURNED = "churned", _("Churned")
    REACTIVATED = "reactivated", _("Reactivated")


class TouchModel(models.TextChoices):
    HIGH = "high", _("High touch")
    LOW = "low", _("Low touch")
    TECH = "tech", _("Tech touch")


class Customer(models.Model):
    """A client company. Segment, stage, touch model and owners are set by people or rules."""

    name = models.CharField(_("name"), max_length=200)
    external_id = models.CharField(
        _("external id"),
        max_length=100,
        unique=True,
        null=True,
        blank=True,
        help_text=_("The customer's id in the CRM or billing system."),
    )
    domain = models.CharField(_("domain"), max_length=200, blank=True, default="")
    industry = models.CharField(_("industry"), max_length=100, blank=True, default="")
    employee_count = models.PositiveIntegerField(_("employees"), null=True, blank=True)
    region = models.CharField(_("region"), max_length=100, blank=True, default="")
    segment = models.CharField(_("segment"), max_length=100, blank=True, default="", db_index=True)
    lifecycle_stage = models.CharField(
        _("lifecycle stage"),
        max_length=20,
        choices=LifecycleStage.choices,
        default=LifecycleStage.ONBOARDING,
        db_index=True,
    )
    touch_model = models.CharField(
        _("touch model"),
        max_length=10,
        choices=TouchModel.choices,
        default=TouchModel.HIGH,
        db_index=True,
    )
    onboarding_owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("onboarding CSM"),
    )
    adoption_owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("adoption CSM"),
    )
    expansion_owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("expansion CSM"),
    )
    first_start_date = models.DateField(_("first start date"), null=True, blank=True)
    churn_date = models.DateField(_("churn date"), null=True, blank=True)
    churn_reason = models.CharField(_("churn reason"), max_length=300, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("customer")
        verbose_name_plural = _("customers")
        ordering = ("name", "id")
        indexes = [models.Index(fields=["name"]), models.Index(fields=["first_start_date"])]

    def __str__(self) -> str:
        return self.name

    @property
    def current_owner_id(self) -> int | None:
        """The owner of the customer's current phase."""
        by_stage = {
            LifecycleStage.ONBOARDING: self.onboarding_owner_id,
            LifecycleStage.ADOPTION: self.adoption_owner_id,
            LifecycleStage.EXPANSION: self.expansion_owner_id,
        }
        return by_stage.get(LifecycleStage(self.lifecycle_stage))


class ContactRole(models.TextChoices):
    CHAMPION = "champion", _("Champion")
    ADMIN = "admin", _("Administrator")
    DECISION_MAKER = "decision_maker", _("Decision maker")
    BILLING = "billing", _("Billing")
    END_USER = "end_user", _("End user")


class Contact(models.Model):
    """A person at a customer. ``product_user_id`` links them to product events."""

    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="contacts", verbose_name=_("customer")
    )
    external_id = models.CharField(
        _("external id"), max_length=100, unique=True, null=True, blank=True
    )
    name = models.CharField(_("name"), max_length=200)
    email = models.EmailField(_("email"), blank=True, default="")
    phone = models.CharField(_("phone"), max_length=50, blank=True, default="")
    job_title = models.CharField(_("job title"), max_length=200, blank=True, default="")
    role = models.CharField(
        _("role"), max_length=20, choices=ContactRole.choices, default=ContactRole.END_USER
    )
    language = models.CharField(
        _("language"), max_length=8, choices=settings.LANGUAGES, default="ja"
    )
    product_user_id = models.CharField(
        _("product user id"), max_length=200, blank=True, default="", db_index=True
    )
    started_on = models.DateField(_("involved since"), null=True, blank=True)
    ended_on = models.DateField(_("involved until"), null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("contact")
        verbose_name_plural = _("contacts")
        ordering = ("customer_id", "name", "id")
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "email"],
                condition=~Q(email=""),
                name="contact_unique_email_per_customer",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Product(models.Model):
    code = models.CharField(_("code"), max_length=100, unique=True)
    name = models.CharField(_("name"), max_length=200)
    description = models.TextField(_("description"), blank=True, default="")
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("product")
        verbose_name_plural = _("products")
        ordering = ("name",)

    def __str__(self) -> str:
        return self.name


class Plan(models.Model):
    """A plan of a product. A higher ``tier_rank`` is a higher plan, so upsell can be told apart."""

    product = models.ForeignKey(
        Product, on_delete=models.CASCADE, related_name="plans", verbose_name=_("product")
    )
    code = models.CharField(_("code"), max_length=100)
    name = models.CharField(_("name"), max_length=200)
    tier_rank = models.PositiveSmallIntegerField(_("tier rank"), default=1)

    class Meta:
        verbose_name = _("plan")
        verbose_name_plural = _("plans")
        ordering = ("product__name", "tier_rank", "name")
        constraints = [
            models.UniqueConstraint(fields=["product", "code"], name="plan_unique_code_per_product")
        ]

    def __str__(self) -> str:
        return f"{self.product.name} / {self.name}"


class SubscriptionStatus(models.TextChoices):
    ACTIVE = "active", _("Active")
    TRIAL = "trial", _("Trial")
    PAUSED = "paused", _("Paused")
    CANCELED = "canceled", _("Canceled")


def _base_currency() -> str:
    return str(settings.KIZUNA_BASE_CURRENCY)


class Subscription(models.Model):
    """One contract period of one product. A renewal or change is a new row (KPI.md).

    ``end_date`` is the first day without service; empty means open-ended. Without an
    external id, a row's identity is (customer, product, start date).
    """

    customer = models.ForeignKey(
        Customer,
        on_delete=models.CASCADE,
        related_name="subscriptions",
        verbose_name=_("customer"),
    )
    external_id = models.CharField(
        _("external id"), max_length=100, unique=True, null=True, blank=True
    )
    product = models.ForeignKey(
        Product, on_delete=models.PROTECT, related_name="subscriptions", verbose_name=_("product")
    )
    plan = models.ForeignKey(
        Plan,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="subscriptions",
        verbose_name=_("plan"),
    )
    quantity = models.DecimalField(
        _("quantity"),
        max_digits=12,
        decimal_places=2,
        default=Decimal(1),
        validators=[MinValueValidator(Decimal(0))],
    )
    unit = models.CharField(_("unit"), max_length=50, blank=True, default="")
    mrr = models.DecimalField(
        _("MRR"), max_digits=14, decimal_places=2, validators=[MinValueValidator(Decimal(0))]
    )
    currency = models.CharField(_("currency"), max_length=3, default=_base_currency)
    bill_period_months = models.PositiveSmallIntegerField(_("billing period (months)"), default=1)
    discount = models.DecimalField(
        _("discount"),
        max_digits=5,
        decimal_places=4,
        default=Decimal(0),
        validators=[MinValueValidator(Decimal(0)), MaxValueValidator(Decimal(1))],
        help_text=_("A fraction between 0 and 1."),
    )
    start_date = models.DateField(_("start date"))
    end_date = models.DateField(_("end date"), null=True, blank=True)
    status = models.CharField(
        _("status"),
        max_length=10,
        choices=SubscriptionStatus.choices,
        default=SubscriptionStatus.ACTIVE,
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("subscription")
        verbose_name_plural = _("subscriptions")
        ordering = ("customer_id", "start_date", "id")
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "product", "start_date"],
                name="subscription_unique_customer_product_start",
            ),
            models.CheckConstraint(
                condition=Q(end_date__isnull=True) | Q(end_date__gte=F("start_date")),
                name="subscription_end_not_before_start",
            ),
            models.CheckConstraint(condition=Q(mrr__gte=0), name="subscription_mrr_not_negative"),
        ]
        indexes = [
            models.Index(fields=["customer", "start_date", "end_date"]),
            models.Index(fields=["start_date", "end_date"]),
        ]

    def __str__(self) -> str:
        return f"{self.customer_id} {self.product_id} {self.start_date}"


class SubscriptionChange(models.Model):
    """The history of a subscription: what changed, when, by whom and through which door."""

    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="changes")
    changed_at = models.DateTimeField(default=timezone.now)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    source = models.CharField(max_length=20)  # "import", "api", "ui"
    changes = models.JSONField(default=dict)

    class Meta:
        ordering = ("-changed_at", "-id")


class SalesHandoff(models.Model):
    """What sales hands to onboarding: the customer's situation as understood at the deal."""

    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="handoffs", verbose_name=_("customer")
    )
    desired_outcomes = models.TextField(_("desired outcomes"), blank=True, default="")
    pains = models.TextField(_("pains"), blank=True, default="")
    stakeholders = models.TextField(_("stakeholders"), blank=True, default="")
    contract_notes = models.TextField(_("contract notes"), blank=True, default="")
    risks = models.TextField(_("risks"), blank=True, default="")
    handed_off_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("handed off by"),
    )
    handed_off_on = models.DateField(_("handed off on"), default=timezone.localdate)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("sales handoff")
        verbose_name_plural = _("sales handoffs")
        ordering = ("-handed_off_on", "-id")


class ImportKind(models.TextChoices):
    CUSTOMERS = "customers", _("Customers")
    CONTACTS = "contacts", _("Contacts")
    SUBSCRIPTIONS = "subscriptions", _("Subscriptions")


class ImportStatus(models.TextChoices):
    UPLOADED = "uploaded", _("Uploaded")
    SUCCEEDED = "succeeded", _("Imported")
    FAILED = "failed", _("Rejected")


class ImportJob(models.Model):
    """An uploaded file on its way in: kept between preview and confirm, then its report."""

    kind = models.CharField(_("kind"), max_length=20, choices=ImportKind.choices)
    filename = models.CharField(_("file"), max_length=255)
    content = models.BinaryField()
    mapping = models.JSONField(default=dict, blank=True)
    status = models.CharField(
        _("status"), max_length=10, choices=ImportStatus.choices, default=ImportStatus.UPLOADED
    )
    report = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at", "-id")
