"""The customer's plan page (public, opened with a signed link) and the staff panel that shares it.

The public views need no login: the token is the only credential and opens only its own plan.
They answer in the link's language (``?lang=`` switches this page only, never the visitor's
cookie), carry no script, and tell browsers and proxies not to keep or pass on the address.
"""

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import translation
from django.utils.cache import add_never_cache_headers
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from kizuna.core.access import requires, user_can
from kizuna.core.models import User
from kizuna.core.roles import Capability
from kizuna.onboarding import links as link_services
from kizuna.onboarding.models import OnboardingPlan, OnboardingSettings, PlanLink

LANGUAGE_CODES = tuple(code for code, _name in settings.LANGUAGES)
REFERRER_POLICY = "same-origin"


# --- The customer's page -------------------------------------------------------------------------


def _private(response: HttpResponse) -> HttpResponse:
    """Headers of every public answer: not cached, not indexed, the address never sent on.

    ``same-origin``, not ``no-referrer``: under ``no-referrer`` browsers send ``Origin: null``
    with the page's own form posts and Django's CSRF check refuses them. ``same-origin`` still
    never sends the address (with its token) to another site; outgoing links also carry
    ``rel="noreferrer"``.
    """
    add_never_cache_headers(response)  # Cache-Control: max-age=0, no-cache, no-store, ..., private
    response["Referrer-Policy"] = REFERRER_POLICY
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response


def _company_name() -> str:
    return str(getattr(settings, "KIZUNA_COMPANY_NAME", "") or "")


def _link_problem(request: HttpRequest, error: link_services.LinkError) -> HttpResponse:
    """The friendly page of a link that opens nothing: both languages, no plan data."""
    context = {"reason": error.reason, "company_name": _company_name(), "languages": LANGUAGE_CODES}
    response = render(request, "onboarding/public_error.html", context, status=error.status)
    return _private(response)


def _page_language(request: HttpRequest, link: PlanLink) -> str:
    wanted = request.GET.get("lang", "")
    return wanted if wanted in LANGUAGE_CODES else link.language


def _render_in(
    request: HttpRequest, language: str, template: str, context: dict[str, Any], status: int = 200
) -> HttpResponse:
    with translation.override(language):
        response = render(request, template, context, status=status)
    response["Content-Language"] = language
    return _private(response)


def _plan_page(
    request: HttpRequest,
    token: str,
    link: PlanLink,
    language: str,
    *,
    problem: link_services.TickErrorReason | None = None,
    status: int = 200,
) -> HttpResponse:
    with translation.override(language):
        page = link_services.customer_page(link.plan, language=language)
    ticked = request.GET.get("done", "")
    ticked_step = next(
        (step for step in page.completed if str(step.id) == ticked and ticked.isdigit()), None
    )
    context = {
        "page": page,
        "token": token,
        "link": link,
        "language": language,
        "languages": LANGUAGE_CODES,
        "company_name": _company_name(),
        "ticked_step": ticked_step,
        "problem": problem,
    }
    return _render_in(request, language, "onboarding/public_plan.html", context, status=status)


@login_not_required
@require_GET
def public_plan(request: HttpRequest, token: str) -> HttpResponse:
    """The customer's plan page: progress, next steps, due dates, resources and goals."""
    try:
        link = link_services.resolve_token(token)
    except link_services.LinkError as error:
        return _link_problem(request, error)
    link_services.mark_opened(link)
    return _plan_page(request, token, link, _page_language(request, link))


@login_not_required
@require_POST
def public_milestone_done(request: HttpRequest, token: str, pk: int) -> HttpResponse:
    """The customer ticks off one of their milestones; back to the page with a thank-you."""
    try:
        link = link_services.resolve_token(token)
    except link_services.LinkError as error:
        return _link_problem(request, error)
    language = _page_language(request, link)
    try:
        link_services.tick_milestone(link, pk)
    except link_services.TickError as error:
        if error.reason is link_services.TickErrorReason.NOT_IN_PLAN:
            context = {
                "reason": error.reason,
                "token": token,
                "language": language,
                "company_name": _company_name(),
            }
            return _render_in(
                request, language, "onboarding/public_error.html", context, status=error.status
            )
        return _plan_page(request, token, link, language, problem=error.reason, status=error.status)
    url = reverse("onboarding:public-plan", args=[token])
    return _private(redirect(f"{url}?lang={language}&done={pk}#step-{pk}"))


# --- Staff: the links panel on the plan page -----------------------------------------------------


class PlanLinkForm(forms.Form):
    contact_name = forms.CharField(
        label=gettext_lazy("For"),
        max_length=200,
        required=False,
        help_text=gettext_lazy("The person you send the link to; the page greets them."),
    )
    language = forms.ChoiceField(label=gettext_lazy("Page language"), choices=settings.LANGUAGES)
    days = forms.IntegerField(
        label=gettext_lazy("Valid for (days)"),
        min_value=1,
        max_value=link_services.MAX_LINK_DAYS,
        required=False,
    )


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


def _link_form(plan: OnboardingPlan, data: Any = None) -> PlanLinkForm:
    """The create form; empty, it proposes the customer's first current contact."""
    initial: dict[str, Any] = {"days": OnboardingSettings.load().link_days}
    if data is None:
        contact = (
            plan.customer.contacts.filter(ended_on__isnull=True).order_by("role", "id").first()
        )
        initial["contact_name"] = contact.name if contact else ""
        initial["language"] = contact.language if contact else settings.LANGUAGE_CODE
    form = PlanLinkForm(data, initial=initial, auto_id=f"id_plan_link_{plan.pk}_%s")
    form.fields["contact_name"].widget.attrs["list"] = f"plan-link-contacts-{plan.pk}"
    return form


def _panel_context(
    request: HttpRequest, plan: OnboardingPlan, form: PlanLinkForm | None = None, **extra: Any
) -> dict[str, Any]:
    return {
        "plan": plan,
        "panel_loaded": True,
        "link_rows": link_services.links_for_plan(plan),
        "can_share": user_can(request.user, Capability.EDIT_CUSTOMERS),
        "link_form": form or _link_form(plan),
        "contacts": list(
            plan.customer.contacts.filter(ended_on__isnull=True)
            .order_by("name")
            .values_list("name", flat=True)
        ),
        **extra,
    }


def _plan(pk: int) -> OnboardingPlan:
    return get_object_or_404(OnboardingPlan.objects.select_related("customer"), pk=pk)


def _public_url(request: HttpRequest, token: str) -> str:
    return request.build_absolute_uri(reverse("onboarding:public-plan", args=[token]))


@require_GET
@requires(Capability.VIEW)
def plan_links(request: HttpRequest, pk: int) -> HttpResponse:
    """The links panel of a plan (an htmx fragment loaded by the plan page)."""
    plan = _plan(pk)
    return render(request, "onboarding/public_links_panel.html", _panel_context(request, plan))


@require_POST
@requires(Capability.EDIT_CUSTOMERS)
def plan_link_create(request: HttpRequest, pk: int) -> HttpResponse:
    """Create a link; its address is shown in the answer (htmx: the panel; else a page)."""
    plan = _plan(pk)
    form = _link_form(plan, request.POST)
    new_url = ""
    new_link: PlanLink | None = None
    if form.is_valid():
        try:
            link, token = link_services.create_link(
                plan,
                language=form.cleaned_data["language"],
                contact_name=form.cleaned_data["contact_name"],
                days=form.cleaned_data["days"],
                actor=_user(request),
            )
        except ValidationError as error:
            _add_errors(form, error)
        else:
            new_link, new_url = link, _public_url(request, token)
    htmx = bool(request.htmx)  # type: ignore[attr-defined] # django-htmx
    context = _panel_context(
        request, plan, None if new_url else form, new_url=new_url, new_link=new_link
    )
    if htmx:
        response = render(request, "onboarding/public_links_panel.html", context)
    else:
        status = 200 if new_url else 400
        context["area"] = "onboarding"
        response = render(request, "onboarding/public_link_created.html", context, status=status)
    response["Cache-Control"] = "no-store"
    return response


@require_GET
@requires(Capability.EDIT_CUSTOMERS)
def plan_link_url(request: HttpRequest, pk: int) -> HttpResponse:
    """The address of an existing link again (a fresh token for the same link), for resending."""
    link = get_object_or_404(PlanLink.objects.select_related("plan"), pk=pk)
    context = {"link": link, "url": _public_url(request, link_services.link_token(link))}
    response = render(request, "onboarding/public_links_panel.html#link_url", context)
    response["Cache-Control"] = "no-store"
    return response


@require_http_methods(["POST"])
@requires(Capability.EDIT_CUSTOMERS)
def plan_link_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    """Revoke a link: its page answers 410 Gone from now on."""
    link = get_object_or_404(PlanLink.objects.select_related("plan__customer"), pk=pk)
    link_services.revoke_link(link, actor=_user(request))
    if request.htmx:  # type: ignore[attr-defined] # django-htmx
        context = _panel_context(request, link.plan, revoked=link)
        return render(request, "onboarding/public_links_panel.html", context)
    messages.success(request, _("The link was revoked: it no longer opens the plan page."))
    return redirect("onboarding:plan", pk=link.plan_id)


def _add_errors(form: forms.Form, error: ValidationError) -> None:
    if hasattr(error, "error_dict"):
        for field, errors in error.error_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, error)
