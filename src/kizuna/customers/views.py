"""Customer pages: the list, Customer 360 with its forms, and the product catalog in settings."""

from collections.abc import Sequence
from typing import Any, overload

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Page, Paginator
from django.db.models import QuerySet
from django.forms import BaseForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from kizuna.core.access import requires, user_can
from kizuna.core.extensions import customer_list_columns
from kizuna.core.models import User
from kizuna.core.roles import Capability
from kizuna.core.timeline import entries_for
from kizuna.customers import selectors, services
from kizuna.customers.forms import (
    ContactForm,
    CustomerFilterForm,
    CustomerForm,
    HandoffForm,
    PlanForm,
    ProductForm,
    SubscriptionForm,
    TimelineEntryForm,
)
from kizuna.customers.models import (
    Contact,
    Customer,
    LifecycleStage,
    Plan,
    Product,
    SalesHandoff,
    Subscription,
    SubscriptionChange,
)

CUSTOMERS_PER_PAGE = 50
TIMELINE_PER_PAGE = 20

# Clicking a column header sorts by it; clicking it again reverses the order.
SORTABLE_COLUMNS = {"name": "name", "arr": "-arr", "renewal": "renewal"}


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


def _add_errors(form: BaseForm, error: ValidationError) -> None:
    """Show a service's ValidationError on the form, on the field it names when there is one."""
    if hasattr(error, "error_dict"):
        for field, errors in error.error_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, error)


def _sort_links(current: str) -> dict[str, str]:
    """For each sortable column, the sort key its header link asks for."""
    links = {}
    for column, first in SORTABLE_COLUMNS.items():
        ascending = first.lstrip("-")
        if current == first:
            links[column] = f"-{ascending}" if not first.startswith("-") else ascending
        else:
            links[column] = first
    return links


class _OrderedThenLoaded(Sequence[Customer]):
    """The list's rows for a paginator, fetched in two steps to stay fast at any size.

    Sorting by ARR or renewal must compute a revenue subquery for every matching customer;
    doing so for the page's ids alone, then loading those 50 rows with all their columns,
    owners and annotations, keeps the database from sorting whole rows of 10,000 customers.
    """

    def __init__(self, customers: QuerySet[Customer]) -> None:
        self.customers = customers

    def count(self) -> int:  # type: ignore[override] # Paginator prefers count() to len()
        return self.customers.order_by().values("pk").count()

    def __len__(self) -> int:
        return self.count()

    @overload
    def __getitem__(self, index: int) -> Customer: ...

    @overload
    def __getitem__(self, index: slice) -> list[Customer]: ...

    def __getitem__(self, index: int | slice) -> Customer | list[Customer]:
        if isinstance(index, int):
            return self[index : index + 1][0]
        ids = list(self.customers.values_list("pk", flat=True)[index])
        loaded = self.customers.filter(pk__in=ids).select_related(
            "onboarding_owner", "adoption_owner", "expansion_owner"
        )
        by_id = {customer.pk: customer for customer in loaded}
        return [by_id[pk] for pk in ids]


@require_GET
@requires(Capability.VIEW)
def customer_list(request: HttpRequest) -> HttpResponse:
    owners = list(User.objects.filter(is_active=True).order_by("username"))
    form = CustomerFilterForm(request.GET, segments=selectors.segments(), owners=owners)
    filters = form.filters()
    listed = selectors.customer_list(**filters)
    customers = _OrderedThenLoaded(listed)
    page = Paginator(customers, CUSTOMERS_PER_PAGE).get_page(request.GET.get("page"))
    # Columns registered by higher contexts (health…): one set-based call per column per page.
    columns = customer_list_columns()
    ids = [customer.pk for customer in page.object_list]
    cells = [column.cells(ids) for column in columns]
    rows = [
        (customer, _current_owner(customer), [column.get(customer.pk) for column in cells])
        for customer in page.object_list
    ]
    filtered = any(value for key, value in filters.items() if key != "sort")
    context = {
        "area": "customers",
        "form": form,
        "page": page,
        "rows": rows,
        "extra_columns": columns,
        "sort": filters["sort"],
        "sort_links": _sort_links(filters["sort"]),
        "filtered": filtered,
        "no_customers_at_all": page.paginator.count == 0
        and (not filtered or not Customer.objects.exists()),
        "can_import": user_can(request.user, Capability.IMPORT_DATA),
        "can_edit": user_can(request.user, Capability.EDIT_CUSTOMERS),
    }
    template = "customers/list.html"
    if request.htmx and request.htmx.target == "customer-results":  # type: ignore[attr-defined] # django-htmx
        template += "#results"
    return render(request, template, context)


def _current_owner(customer: Customer) -> User | None:
    owner: Any = {
        LifecycleStage.ONBOARDING: customer.onboarding_owner,
        LifecycleStage.ADOPTION: customer.adoption_owner,
        LifecycleStage.EXPANSION: customer.expansion_owner,
    }.get(LifecycleStage(customer.lifecycle_stage))
    return owner if isinstance(owner, User) else None


def _timeline_page(customer: Customer, number: Any) -> Page[Any]:
    return Paginator(entries_for(customer_id=customer.pk), TIMELINE_PER_PAGE).get_page(number)


def _detail_context(
    request: HttpRequest, customer: Customer, **forms: BaseForm | None
) -> dict[str, Any]:
    summary = selectors.customer_summary(customer_id=customer.pk)
    currency = summary.currencies[0] if len(summary.currencies) == 1 else None
    can_edit = user_can(request.user, Capability.EDIT_CUSTOMERS)
    can_write = user_can(request.user, Capability.WRITE_TIMELINE)
    return {
        "area": "customers",
        "customer": customer,
        "summary": summary,
        "currency": currency,
        "mixed_currencies": len(summary.currencies) > 1,
        "contacts": customer.contacts.order_by("ended_on", "name", "id"),
        "subscriptions": selectors.subscriptions_of(customer_id=customer.pk),
        "handoff": customer.handoffs.select_related("handed_off_by").first(),
        "timeline": _timeline_page(customer, request.GET.get("timeline_page")),
        "can_edit": can_edit,
        "can_write_timeline": can_write,
        "timeline_form": forms.get("timeline_form") or (TimelineEntryForm() if can_write else None),
        "handoff_form": forms.get("handoff_form") or (HandoffForm() if can_edit else None),
    }


def _customer(pk: int) -> Customer:
    return get_object_or_404(
        Customer.objects.select_related("onboarding_owner", "adoption_owner", "expansion_owner"),
        pk=pk,
    )


@require_GET
@requires(Capability.VIEW)
def customer_detail(request: HttpRequest, pk: int) -> HttpResponse:
    customer = _customer(pk)
    return render(request, "customers/detail.html", _detail_context(request, customer))


@require_GET
@requires(Capability.VIEW)
def customer_timeline(request: HttpRequest, pk: int) -> HttpResponse:
    """One more page of the timeline (the "more" link's htmx fragment)."""
    customer = get_object_or_404(Customer, pk=pk)
    context = {"customer": customer, "timeline": _timeline_page(customer, request.GET.get("page"))}
    return render(request, "customers/detail.html#timeline_entries", context)


@require_POST
@requires(Capability.WRITE_TIMELINE)
def add_timeline_entry(request: HttpRequest, pk: int) -> HttpResponse:
    """Add a note, meeting, call, training or review meeting. htmx gets the updated timeline."""
    customer = _customer(pk)
    form = TimelineEntryForm(request.POST)
    if form.is_valid():
        try:
            services.add_timeline_entry(
                customer=customer, actor=_user(request), **form.cleaned_data
            )
        except ValidationError as error:
            _add_errors(form, error)
    saved = not form.errors
    if saved and not request.htmx:  # type: ignore[attr-defined] # django-htmx
        messages.success(request, _("Added to the timeline."))
        return redirect("customers:detail", pk=customer.pk)
    if saved:
        form = TimelineEntryForm()
    if request.htmx:  # type: ignore[attr-defined] # django-htmx
        context = {
            "customer": customer,
            "timeline": _timeline_page(customer, 1),
            "timeline_form": form,
            "can_write_timeline": True,
            "timeline_saved": saved,
        }
        return render(request, "customers/detail.html#timeline", context)
    context = _detail_context(request, customer, timeline_form=form)
    return render(request, "customers/detail.html", context, status=400)


@require_POST
@requires(Capability.EDIT_CUSTOMERS)
def add_handoff(request: HttpRequest, pk: int) -> HttpResponse:
    customer = _customer(pk)
    form = HandoffForm(request.POST, instance=SalesHandoff(customer=customer))
    if form.is_valid():
        try:
            services.record_handoff(customer=customer, actor=_user(request), **form.cleaned_data)
        except ValidationError as error:
            _add_errors(form, error)
        else:
            messages.success(request, _("The sales handoff was recorded."))
            return redirect("customers:detail", pk=customer.pk)
    context = _detail_context(request, customer, handoff_form=form)
    return render(request, "customers/detail.html", context, status=400)


def _form_page(
    request: HttpRequest,
    *,
    customer: Customer | None,
    form: BaseForm,
    title: str,
    status: int = 200,
    cancel_url: str = "",
    area: str = "customers",
) -> HttpResponse:
    return render(
        request,
        "customers/form.html",
        {
            "area": area,
            "customer": customer,
            "form": form,
            "title": title,
            "cancel_url": cancel_url,
        },
        status=status,
    )


def _save_or_show(
    request: HttpRequest,
    form: BaseForm,
    save: Any,
    *,
    success: str,
    next_url: str,
    customer: Customer | None,
    title: str,
    area: str = "customers",
) -> HttpResponse:
    """Validate a bound form, call ``save(cleaned_data)``, then redirect with a message.

    On a form or service error the form is shown again with the errors and status 400.
    """
    if form.is_valid():
        try:
            save(form.cleaned_data)
        except ValidationError as error:
            _add_errors(form, error)
        else:
            messages.success(request, success)
            return redirect(next_url)
    return _form_page(
        request,
        customer=customer,
        form=form,
        title=title,
        status=400,
        cancel_url=next_url,
        area=area,
    )


@require_http_methods(["GET", "POST"])
@requires(Capability.EDIT_CUSTOMERS)
def customer_edit(request: HttpRequest, pk: int) -> HttpResponse:
    """Edit the customer's record: name, segment, stage, touch model, owners, churn."""
    customer = _customer(pk)
    title = _("Edit %(name)s") % {"name": customer.name}
    back = customer_url(customer)
    if request.method == "GET":
        form = CustomerForm(instance=customer)
        return _form_page(request, customer=customer, form=form, title=title, cancel_url=back)
    form = CustomerForm(request.POST, instance=_customer(pk))

    def save(data: dict[str, Any]) -> None:
        services.update_customer(customer=customer, actor=_user(request), **data)

    return _save_or_show(
        request,
        form,
        save,
        success=_("The customer was saved."),
        next_url=back,
        customer=customer,
        title=title,
    )


def customer_url(customer: Customer) -> str:
    return reverse("customers:detail", kwargs={"pk": customer.pk})


@require_http_methods(["GET", "POST"])
@requires(Capability.EDIT_CUSTOMERS)
def contact_form(request: HttpRequest, pk: int, contact_pk: int | None = None) -> HttpResponse:
    """Add a contact to the customer, or edit one of its contacts."""
    customer = _customer(pk)
    contact = get_object_or_404(Contact, pk=contact_pk, customer=customer) if contact_pk else None
    title = _("Edit contact") if contact else _("Add contact")
    back = customer_url(customer) + "#contacts"
    if request.method == "GET":
        form = ContactForm(instance=contact or Contact(customer=customer))
        return _form_page(request, customer=customer, form=form, title=title, cancel_url=back)
    # Validate on a copy so the service sees (and saves) the changes itself.
    form = ContactForm(
        request.POST,
        instance=Contact.objects.get(pk=contact.pk) if contact else Contact(customer=customer),
    )

    def save(data: dict[str, Any]) -> None:
        if contact:
            services.update_contact(contact=contact, **data)
        else:
            services.create_contact(customer=customer, **data)

    return _save_or_show(
        request,
        form,
        save,
        success=_("The contact was saved."),
        next_url=back,
        customer=customer,
        title=title,
    )


@require_http_methods(["GET", "POST"])
@requires(Capability.EDIT_CUSTOMERS)
def subscription_form(
    request: HttpRequest, pk: int, subscription_pk: int | None = None
) -> HttpResponse:
    """Add a subscription (one contract period) or change one; changes are kept in its history."""
    customer = _customer(pk)
    subscription = (
        get_object_or_404(Subscription, pk=subscription_pk, customer=customer)
        if subscription_pk
        else None
    )
    title = _("Edit subscription") if subscription else _("Add subscription")
    back = customer_url(customer) + "#subscriptions"
    if request.method == "GET":
        form = SubscriptionForm(instance=subscription or Subscription(customer=customer))
        return _form_page(request, customer=customer, form=form, title=title, cancel_url=back)
    form = SubscriptionForm(
        request.POST,
        instance=(
            Subscription.objects.get(pk=subscription.pk)
            if subscription
            else Subscription(customer=customer)
        ),
    )

    def save(data: dict[str, Any]) -> None:
        if subscription:
            services.update_subscription(
                subscription=subscription, actor=_user(request), source="ui", **data
            )
        else:
            services.create_subscription(
                customer=customer, actor=_user(request), source="ui", **data
            )

    return _save_or_show(
        request,
        form,
        save,
        success=_("The subscription was saved."),
        next_url=back,
        customer=customer,
        title=title,
    )


@require_GET
@requires(Capability.VIEW)
def subscription_history(request: HttpRequest, pk: int, subscription_pk: int) -> HttpResponse:
    customer = _customer(pk)
    subscription = get_object_or_404(
        Subscription.objects.select_related("product", "plan"),
        pk=subscription_pk,
        customer=customer,
    )
    changes = SubscriptionChange.objects.filter(subscription=subscription).select_related("actor")
    return render(
        request,
        "customers/subscription_history.html",
        {
            "area": "customers",
            "customer": customer,
            "subscription": subscription,
            "changes": changes,
        },
    )


# The product catalog: a tab of the settings area.


@require_GET
@requires(Capability.VIEW)
def catalog(request: HttpRequest) -> HttpResponse:
    products = Product.objects.prefetch_related("plans").order_by("name")
    return render(
        request,
        "customers/catalog.html",
        {
            "area": "settings",
            "tab": "catalog",
            "products": products,
            "can_manage": user_can(request.user, Capability.MANAGE_CATALOG),
        },
    )


def _catalog_url() -> str:
    return reverse("customers:catalog")


@require_http_methods(["GET", "POST"])
@requires(Capability.MANAGE_CATALOG)
def product_form(request: HttpRequest, product_pk: int | None = None) -> HttpResponse:
    product = get_object_or_404(Product, pk=product_pk) if product_pk else None
    title = _("Edit product") if product else _("Add product")
    if request.method == "GET":
        return _form_page(
            request,
            customer=None,
            form=ProductForm(instance=product),
            title=title,
            cancel_url=_catalog_url(),
            area="settings",
        )
    form = ProductForm(
        request.POST, instance=Product.objects.get(pk=product.pk) if product else None
    )

    def save(data: dict[str, Any]) -> None:
        if product:
            services.update_product(product=product, **data)
        else:
            services.create_product(**data)

    return _save_or_show(
        request,
        form,
        save,
        success=_("The product was saved."),
        next_url=_catalog_url(),
        customer=None,
        title=title,
        area="settings",
    )


@require_http_methods(["GET", "POST"])
@requires(Capability.MANAGE_CATALOG)
def plan_form(request: HttpRequest, plan_pk: int | None = None) -> HttpResponse:
    plan = get_object_or_404(Plan, pk=plan_pk) if plan_pk else None
    title = _("Edit plan") if plan else _("Add plan")
    if request.method == "GET":
        initial = {"product": request.GET.get("product")} if not plan else None
        return _form_page(
            request,
            customer=None,
            form=PlanForm(instance=plan, initial=initial),
            title=title,
            cancel_url=_catalog_url(),
            area="settings",
        )
    form = PlanForm(request.POST, instance=Plan.objects.get(pk=plan.pk) if plan else None)

    def save(data: dict[str, Any]) -> None:
        if plan:
            services.update_plan(plan=plan, **data)
        else:
            fields = dict(data)
            services.create_plan(product=fields.pop("product"), **fields)

    return _save_or_show(
        request,
        form,
        save,
        success=_("The plan was saved."),
        next_url=_catalog_url(),
        customer=None,
        title=title,
        area="settings",
    )
