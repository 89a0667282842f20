"""Home and the settings area: users and roles, API tokens (products and plans live in customers)."""

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import F
from django.forms import BaseForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from kizuna.core import staff
from kizuna.core.access import requires, user_can
from kizuna.core.forms import ApiTokenForm, StaffUserCreateForm, StaffUserForm
from kizuna.core.models import ApiToken, User
from kizuna.core.roles import Capability


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


def _add_errors(form: BaseForm, error: ValidationError) -> None:
    if hasattr(error, "error_dict"):
        for field, errors in error.error_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, error)


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "core/home.html", {"area": "home"})


@require_GET
def settings_home(request: HttpRequest) -> HttpResponse:
    """The settings area's front page: what each tab holds, for the tabs this user may open."""
    return render(
        request,
        "core/settings.html",
        {
            "area": "settings",
            "tab": "overview",
            "can_manage_users": user_can(request.user, Capability.MANAGE_USERS),
        },
    )


def _users_page(request: HttpRequest, form: StaffUserCreateForm, status: int = 200) -> HttpResponse:
    users = User.objects.order_by("-is_active", "username")
    return render(
        request,
        "core/settings_users.html",
        {"area": "settings", "tab": "users", "users": users, "form": form},
        status=status,
    )


@require_http_methods(["GET", "POST"])
@requires(Capability.MANAGE_USERS)
def users(request: HttpRequest) -> HttpResponse:
    """List staff users; POST creates one with a role and an initial password."""
    if request.method == "GET":
        return _users_page(request, StaffUserCreateForm())
    form = StaffUserCreateForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            created = staff.create_staff_user(
                username=data["username"],
                password=data["password1"],
                role=data["role"],
                email=data["email"],
                first_name=data["first_name"],
                last_name=data["last_name"],
            )
        except ValidationError as error:
            _add_errors(form, error)
        else:
            messages.success(
                request,
                _("User %(username)s was created. Give them the initial password securely.")
                % {"username": created.username},
            )
            return redirect("core:settings-users")
    return _users_page(request, form, status=400)


@require_http_methods(["GET", "POST"])
@requires(Capability.MANAGE_USERS)
def user_edit(request: HttpRequest, pk: int) -> HttpResponse:
    """Change a user's role, name, email, or deactivate them."""
    member = get_object_or_404(User, pk=pk)
    if request.method == "GET":
        form = StaffUserForm(
            initial={
                "first_name": member.first_name,
                "last_name": member.last_name,
                "email": member.email,
                "role": member.role,
                "is_active": member.is_active,
            }
        )
        status = 200
    else:
        form = StaffUserForm(request.POST)
        if form.is_valid():
            try:
                staff.update_staff_user(user=member, actor=_user(request), **form.cleaned_data)
            except ValidationError as error:
                _add_errors(form, error)
            else:
                messages.success(
                    request, _("User %(username)s was saved.") % {"username": member.username}
                )
                return redirect("core:settings-users")
        status = 400
    return render(
        request,
        "core/settings_user_edit.html",
        {"area": "settings", "tab": "users", "member": member, "form": form},
        status=status,
    )


@require_POST
@requires(Capability.MANAGE_USERS)
def user_deactivate(request: HttpRequest, pk: int) -> HttpResponse:
    member = get_object_or_404(User, pk=pk)
    try:
        staff.deactivate_staff_user(user=member, actor=_user(request))
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(
            request,
            _("User %(username)s was deactivated: they can no longer sign in.")
            % {"username": member.username},
        )
    return redirect("core:settings-users")


def _tokens_page(
    request: HttpRequest, form: ApiTokenForm, status: int = 200, **extra: Any
) -> HttpResponse:
    tokens = ApiToken.objects.filter(user=_user(request)).order_by(
        F("revoked_at").asc(nulls_first=True), "-created_at"
    )
    context = {"area": "settings", "tab": "tokens", "tokens": tokens, "form": form, **extra}
    return render(request, "core/settings_tokens.html", context, status=status)


@require_http_methods(["GET", "POST"])
def tokens(request: HttpRequest) -> HttpResponse:
    """The signed-in user's own API tokens; POST creates one and shows its secret once."""
    if request.method == "GET":
        return _tokens_page(request, ApiTokenForm())
    form = ApiTokenForm(request.POST)
    if form.is_valid():
        try:
            token, raw = staff.issue_api_token(user=_user(request), name=form.cleaned_data["name"])
        except ValidationError as error:
            _add_errors(form, error)
        else:
            # Rendered, not redirected: the secret exists only in this response.
            response = _tokens_page(request, ApiTokenForm(), new_token=token, raw_token=raw)
            response["Cache-Control"] = "no-store"
            return response
    return _tokens_page(request, form, status=400)


@require_POST
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    token = staff.revoke_api_token(user=_user(request), token_id=pk)
    messages.success(request, _("Token “%(name)s” was revoked.") % {"name": token.name})
    return redirect("core:settings-tokens")
