"""Pages of ownership: the portfolio, the team page, Settings → Teams and assignment, handoffs,
and the Customer 360 "Owners and handoffs" panel (an htmx fragment). Thin doors over the
``assignment``, ``handoffs`` and ``portfolio`` modules."""

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Count, Model
from django.forms import BaseForm
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from kizuna.core.access import requires, user_can
from kizuna.core.extensions import customer_list_columns
from kizuna.core.models import User
from kizuna.core.roles import Capability
from kizuna.customers.models import Customer
from kizuna.lifecycle import assignment, handoffs
from kizuna.lifecycle.forms_owners import (
    AcknowledgeForm,
    AssignmentRuleForm,
    CsmProfileForm,
    HandoffNoteForm,
    NewHandoffForm,
    OwnerChangeForm,
    ReassignForm,
    TeamForm,
)
from kizuna.lifecycle.models import (
    OWNER_FIELDS,
    AssignmentRule,
    CsmProfile,
    HandoffReason,
    HandoffStatus,
    OwnerRole,
    RoleHandoff,
    Team,
)
from kizuna.lifecycle.portfolio import current_role, portfolio, team_overview

CUSTOMERS_PER_PAGE = 50
HANDOFFS_PER_PAGE = 50
UNOWNED_SHOWN = 50
# Clicking a column header sorts by it; clicking it again reverses the order.
SORTABLE_COLUMNS = {"name": "name", "arr": "-arr", "renewal": "renewal"}


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


def _add_errors(form: BaseForm, error: ValidationError) -> None:
    if hasattr(error, "error_dict"):
        for field, errors in error.error_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, error)


def _sort_links(current: str) -> dict[str, str]:
    links = {}
    for column, first in SORTABLE_COLUMNS.items():
        ascending = first.lstrip("-")
        if current == first:
            links[column] = f"-{ascending}" if not first.startswith("-") else ascending
        else:
            links[column] = first
    return links


# --- Portfolio ---------------------------------------------------------------------------------


def _portfolio_page(request: HttpRequest, owner: User) -> HttpResponse:
    sort = request.GET.get("sort", "renewal")
    book = portfolio(owner, sort=sort)
    sort = sort if sort in ("name", "-name", "arr", "-arr", "renewal", "-renewal") else "renewal"
    page = Paginator(book.customers, CUSTOMERS_PER_PAGE).get_page(request.GET.get("page"))
    # The columns higher contexts add to customer lists (health…), one call per page.
    columns = customer_list_columns()
    cells = [column.cells([customer.pk for customer in page.object_list]) for column in columns]
    rows = [
        (customer, [column.get(customer.pk) for column in cells]) for customer in page.object_list
    ]
    context = {
        "area": "portfolio",
        "rows": rows,
        "extra_columns": columns,
        "book": book,
        "owner": owner,
        "is_own": owner.pk == request.user.pk,
        "page": page,
        "sort": sort,
        "sort_links": _sort_links(sort),
        "can_manage": user_can(request.user, Capability.ASSIGN_OWNERS),
    }
    return render(request, "lifecycle/portfolio.html", context)


@require_GET
@requires(Capability.VIEW)
def my_portfolio(request: HttpRequest) -> HttpResponse:
    """The logged-in user's book."""
    return _portfolio_page(request, _user(request))


@require_GET
@requires(Capability.VIEW)
def user_portfolio(request: HttpRequest, user_pk: int) -> HttpResponse:
    """Another CSM's book (managers); one's own is always open."""
    owner = get_object_or_404(User, pk=user_pk)
    if owner.pk != request.user.pk and not user_can(request.user, Capability.ASSIGN_OWNERS):
        raise PermissionDenied(_("Only managers can open another CSM's portfolio."))
    return _portfolio_page(request, owner)


# --- Team page ---------------------------------------------------------------------------------


def _team_page(
    request: HttpRequest, reassign_form: ReassignForm | None = None, *, status: int = 200
) -> HttpResponse:
    overview = team_overview()
    context = {
        "area": "portfolio",
        "overview": overview,
        "unowned": [
            (customer, current_role(customer)) for customer in overview.unowned[:UNOWNED_SHOWN]
        ],
        "unowned_more": max(0, overview.unowned_count - UNOWNED_SHOWN),
        "reassign_form": reassign_form or ReassignForm(),
    }
    return render(request, "lifecycle/team.html", context, status=status)


@require_GET
@requires(Capability.ASSIGN_OWNERS)
def team(request: HttpRequest) -> HttpResponse:
    """Load per CSM against capacity, customers without an owner, handoffs waiting."""
    return _team_page(request)


@require_POST
@requires(Capability.ASSIGN_OWNERS)
def team_assign(request: HttpRequest) -> HttpResponse:
    """ "Assign now": run the assignment rules over the customers without an owner."""
    result = assignment.assign_customers(as_of=timezone.localdate(), actor=_user(request))
    message = ngettext(
        "%(count)d customer got an owner.", "%(count)d customers got an owner.", result.assigned
    ) % {"count": result.assigned}
    if result.unassigned:
        message += " " + ngettext(
            "%(count)d customer is still without an owner: no rule matches it or every CSM "
            "who could take it is at capacity.",
            "%(count)d customers are still without an owner: no rule matches them or every "
            "CSM who could take them is at capacity.",
            result.unassigned,
        ) % {"count": result.unassigned}
    messages.success(request, message)
    return redirect("lifecycle:team")


@require_POST
@requires(Capability.ASSIGN_OWNERS)
def team_reassign(request: HttpRequest) -> HttpResponse:
    """Move a CSM's whole book (or one role of it) to another CSM or by the rules."""
    form = ReassignForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            result = handoffs.reassign_book(
                from_user=data["from_user"],
                to_user=data["to_user"],
                role=data["role"] or None,
                actor=_user(request),
                note=data["note"],
            )
        except ValidationError as error:
            _add_errors(form, error)
        else:
            message = ngettext(
                "%(count)d customer moved.", "%(count)d customers moved.", result.moved
            ) % {"count": result.moved}
            if result.unassigned:
                message += " " + ngettext(
                    "%(count)d customer fits nowhere and is now without an owner.",
                    "%(count)d customers fit nowhere and are now without an owner.",
                    result.unassigned,
                ) % {"count": result.unassigned}
            if result.over_capacity and data["to_user"]:
                messages.warning(
                    request,
                    _("%(name)s is now above capacity.") % {"name": data["to_user"].display_name},
                )
            messages.success(request, message)
            return redirect("lifecycle:team")
    return _team_page(request, form, status=400)


# --- Settings → Teams and assignment -----------------------------------------------------------


@require_GET
@requires(Capability.ASSIGN_OWNERS)
def teams(request: HttpRequest) -> HttpResponse:
    loads = assignment.csm_loads()
    profiles = [
        (profile, loads.get(profile.user_id))
        for profile in CsmProfile.objects.select_related("user", "team").order_by(
            "team__name", "user__username"
        )
    ]
    context = {
        "area": "settings",
        "tab": "teams",
        "teams": Team.objects.select_related("manager")
        .annotate(member_count=Count("members", distinct=True))
        .order_by("name"),
        "profiles": profiles,
        "rules": AssignmentRule.objects.select_related("team").order_by("role", "position", "id"),
    }
    return render(request, "lifecycle/teams.html", context)


# kind in the URL → (model, form, anchor of its section on the settings page)
_EDITABLE: dict[str, tuple[type[Model], type[BaseForm], str]] = {
    "team": (Team, TeamForm, "teams"),
    "csm": (CsmProfile, CsmProfileForm, "profiles"),
    "rule": (AssignmentRule, AssignmentRuleForm, "rules"),
}


def _titles(kind: str, editing: bool) -> str:
    titles = {
        ("team", False): _("Add a team"),
        ("team", True): _("Edit team"),
        ("csm", False): _("Add a CSM profile"),
        ("csm", True): _("Edit CSM profile"),
        ("rule", False): _("Add an assignment rule"),
        ("rule", True): _("Edit assignment rule"),
    }
    return titles[(kind, editing)]


@require_http_methods(["GET", "POST"])
@requires(Capability.ASSIGN_OWNERS)
def teams_edit(request: HttpRequest, kind: str, pk: int | None = None) -> HttpResponse:
    """Create (no ``pk``) or edit a team, a CSM profile or an assignment rule."""
    if kind not in _EDITABLE:
        raise Http404
    model, form_class, anchor = _EDITABLE[kind]
    instance = get_object_or_404(model, pk=pk) if pk is not None else None
    form = form_class(request.POST or None, instance=instance)  # type: ignore[call-arg] # ModelForm
    if request.method == "POST" and form.is_valid():
        try:
            if kind == "rule":
                assert isinstance(instance, AssignmentRule | None)
                saved: Any = assignment.save_assignment_rule(
                    rule=instance, fields=form.cleaned_data
                )
            else:
                saved = form.save()  # type: ignore[attr-defined] # ModelForm
        except ValidationError as error:
            _add_errors(form, error)
        else:
            messages.success(request, _("“%(name)s” saved.") % {"name": saved})
            return redirect(reverse("lifecycle:teams") + f"#{anchor}")
    context = {
        "area": "settings",
        "tab": "teams",
        "form": form,
        "title": _titles(kind, instance is not None),
        "kind": kind,
        "instance": instance,
    }
    status = 400 if request.method == "POST" else 200
    return render(request, "lifecycle/teams_form.html", context, status=status)


@require_http_methods(["GET", "POST"])
@requires(Capability.ASSIGN_OWNERS)
def teams_delete(request: HttpRequest, kind: str, pk: int) -> HttpResponse:
    """GET asks for confirmation; POST deletes (a team takes its rules with it)."""
    if kind not in _EDITABLE:
        raise Http404
    model, _form, anchor = _EDITABLE[kind]
    instance = get_object_or_404(model, pk=pk)
    if request.method == "POST":
        name = str(instance)
        instance.delete()
        messages.success(request, _("“%(name)s” deleted.") % {"name": name})
        return redirect(reverse("lifecycle:teams") + f"#{anchor}")
    context = {
        "area": "settings",
        "tab": "teams",
        "kind": kind,
        "instance": instance,
        "rules": instance.assignment_rules.all() if isinstance(instance, Team) else [],
    }
    return render(request, "lifecycle/teams_delete.html", context)


# --- Handoffs ----------------------------------------------------------------------------------


@require_GET
@requires(Capability.VIEW)
def handoff_list(request: HttpRequest) -> HttpResponse:
    """My handoffs: addressed to me (``box=to``) or sent by me (``box=from``)."""
    box = "from" if request.GET.get("box") == "from" else "to"
    status = request.GET.get("status", HandoffStatus.PENDING)
    status = status if status in HandoffStatus.values else ""
    listed = handoffs.handoffs_for(_user(request), box=box, status=status or None)
    page = Paginator(listed, HANDOFFS_PER_PAGE).get_page(request.GET.get("page"))
    context = {
        "area": "portfolio",
        "box": box,
        "status": status,
        "page": page,
        "today": timezone.localdate(),
    }
    return render(request, "lifecycle/handoffs.html", context)


def _handoff(pk: int) -> RoleHandoff:
    return get_object_or_404(
        RoleHandoff.objects.select_related(
            "customer", "from_user", "to_user", "created_by", "acknowledged_by"
        ),
        pk=pk,
    )


def _handoff_page(
    request: HttpRequest,
    handoff: RoleHandoff,
    *,
    note_form: HandoffNoteForm | None = None,
    ack_form: AcknowledgeForm | None = None,
    status: int = 200,
) -> HttpResponse:
    can_edit = handoffs.can_edit(handoff, request.user)
    can_ack = handoffs.can_acknowledge(handoff, request.user)
    receiver = handoffs.receiver_id(handoff)
    context = {
        "area": "portfolio",
        "handoff": handoff,
        "receiver": User.objects.filter(pk=receiver).first() if receiver else None,
        "age_days": handoffs.age_in_days(handoff),
        "can_edit": can_edit,
        "can_acknowledge": can_ack,
        "note_form": note_form or (HandoffNoteForm(instance=handoff) if can_edit else None),
        "ack_form": ack_form or (AcknowledgeForm() if can_ack else None),
        "editing": note_form is not None or request.GET.get("edit") == "1",
    }
    return render(request, "lifecycle/handoff.html", context, status=status)


@require_http_methods(["GET", "POST"])
@requires(Capability.VIEW)
def handoff_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """The structured note; POST saves the sender's edit (403 for anyone else)."""
    handoff = _handoff(pk)
    if request.method == "GET":
        return _handoff_page(request, handoff)
    user = _user(request)
    if user.pk != handoffs.sender_id(handoff) and not user.can(Capability.ASSIGN_OWNERS):
        raise PermissionDenied(_("Only the sender of the handoff or a manager can edit it."))
    form = HandoffNoteForm(request.POST, instance=RoleHandoff())
    if form.is_valid():
        try:
            handoffs.update_handoff(handoff=handoff, user=user, **form.cleaned_data)
        except ValidationError as error:
            _add_errors(form, error)
        else:
            messages.success(request, _("Handoff saved."))
            return redirect("lifecycle:handoff", pk=handoff.pk)
    return _handoff_page(request, handoff, note_form=form, status=400)


@require_POST
@requires(Capability.VIEW)
def handoff_acknowledge(request: HttpRequest, pk: int) -> HttpResponse:
    """The receiving owner (or a manager) acknowledges with a reply; 403 for anyone else."""
    handoff = _handoff(pk)
    user = _user(request)
    if user.pk != handoffs.receiver_id(handoff) and not user.can(Capability.ASSIGN_OWNERS):
        raise PermissionDenied(_("Only the receiving owner or a manager can acknowledge it."))
    form = AcknowledgeForm(request.POST)
    if form.is_valid():
        try:
            handoffs.acknowledge_handoff(handoff, user, form.cleaned_data["reply"])
        except ValidationError as error:
            _add_errors(form, error)
        else:
            messages.success(request, _("Handoff acknowledged."))
            return redirect("lifecycle:handoff", pk=handoff.pk)
    return _handoff_page(request, handoff, ack_form=form, status=400)


@require_http_methods(["GET", "POST"])
@requires(Capability.EDIT_CUSTOMERS)
def handoff_add(request: HttpRequest, pk: int) -> HttpResponse:
    """Write a handoff by hand for one customer."""
    customer = get_object_or_404(Customer, pk=pk)
    role = current_role(customer) or OwnerRole.ONBOARDING
    form = NewHandoffForm(
        request.POST or None,
        initial={"from_role": role, "to_role": role},
        instance=RoleHandoff(),
    )
    if request.method == "POST" and form.is_valid():
        data = dict(form.cleaned_data)
        try:
            handoff = handoffs.create_handoff(
                customer=customer,
                from_role=data.pop("from_role"),
                to_role=data.pop("to_role"),
                to_user=data.pop("to_user"),
                actor=_user(request),
                reason=HandoffReason.MANUAL,
                **data,
            )
        except ValidationError as error:
            _add_errors(form, error)
        else:
            messages.success(request, _("Handoff written."))
            return redirect("lifecycle:handoff", pk=handoff.pk)
    context = {"area": "customers", "customer": customer, "form": form}
    status = 400 if request.method == "POST" else 200
    return render(request, "lifecycle/handoff_form.html", context, status=status)


# --- Customer 360 panel ------------------------------------------------------------------------


def _owners_panel(
    request: HttpRequest,
    customer: Customer,
    *,
    form: OwnerChangeForm | None = None,
    saved: bool = False,
    status: int = 200,
) -> HttpResponse:
    can_edit = user_can(request.user, Capability.EDIT_CUSTOMERS)
    role = current_role(customer)
    owners = [
        (value, label, getattr(customer, OWNER_FIELDS[value]), value == role)
        for value, label in OwnerRole.choices
    ]
    context = {
        "area": "customers",
        "customer": customer,
        "owners": owners,
        "handoffs": RoleHandoff.objects.filter(customer=customer)
        .select_related("from_user", "to_user")
        .order_by("-created_at", "-id")[:20],
        "can_edit": can_edit,
        "form": form or (OwnerChangeForm(initial={"role": role}) if can_edit else None),
        "saved": saved,
    }
    template = "lifecycle/customer_owners.html"
    if request.htmx:  # type: ignore[attr-defined] # django-htmx
        template += "#panel"
    return render(request, template, context, status=status)


def _customer(pk: int) -> Customer:
    return get_object_or_404(
        Customer.objects.select_related("onboarding_owner", "adoption_owner", "expansion_owner"),
        pk=pk,
    )


@require_GET
@requires(Capability.VIEW)
def customer_owners(request: HttpRequest, pk: int) -> HttpResponse:
    """The three owners of a customer and its handoffs."""
    return _owners_panel(request, _customer(pk))


@require_POST
@requires(Capability.EDIT_CUSTOMERS)
def customer_owner_change(request: HttpRequest, pk: int) -> HttpResponse:
    """Change one owner; the new owner gets a reassignment handoff carrying the note."""
    customer = _customer(pk)
    form = OwnerChangeForm(request.POST)
    if form.is_valid():
        try:
            handoffs.change_owner(
                customer=customer,
                role=form.cleaned_data["role"],
                user=form.cleaned_data["user"],
                actor=_user(request),
                note=form.cleaned_data["note"],
            )
        except ValidationError as error:
            _add_errors(form, error)
        else:
            if not request.htmx:  # type: ignore[attr-defined] # django-htmx
                messages.success(request, _("Owner changed."))
                return redirect("customers:detail", pk=customer.pk)
            return _owners_panel(request, _customer(pk), saved=True)
    # htmx swaps only 2xx answers: the fragment with its inline errors comes back as 200.
    status = 200 if request.htmx else 400  # type: ignore[attr-defined] # django-htmx
    return _owners_panel(request, customer, form=form, status=status)
