"""Sign-in form that tells a throttled user to wait; forms of the users and tokens settings."""

from typing import Any

from django import forms
from django.contrib.auth import password_validation
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.utils.translation import gettext_lazy as _

from kizuna.core.auth import client_address, login_is_throttled
from kizuna.core.models import User
from kizuna.core.roles import Role


class ThrottleAwareAuthenticationForm(AuthenticationForm):
    def clean(self) -> dict[str, object]:
        username = self.cleaned_data.get("username")
        if username and login_is_throttled(
            username=str(username), ip_address=client_address(self.request)
        ):
            raise forms.ValidationError(
                _("Too many failed sign-in attempts. Please wait a few minutes and try again."),
                code="throttled",
            )
        return super().clean()


class StaffUserCreateForm(forms.Form):
    """An administrator creates a user with a role and an initial password."""

    username = forms.CharField(label=_("Username"), max_length=150)
    first_name = forms.CharField(label=_("First name"), max_length=150, required=False)
    last_name = forms.CharField(label=_("Last name"), max_length=150, required=False)
    email = forms.EmailField(label=_("Email"), required=False)
    role = forms.ChoiceField(label=_("Role"), choices=Role.choices, initial=Role.VIEWER)
    password1 = forms.CharField(
        label=_("Initial password"), strip=False, widget=forms.PasswordInput(render_value=False)
    )
    password2 = forms.CharField(
        label=_("Initial password (again)"),
        strip=False,
        widget=forms.PasswordInput(render_value=False),
    )

    def clean_username(self) -> str:
        username = str(self.cleaned_data["username"]).strip()
        UnicodeUsernameValidator()(username)
        if User.objects.filter(username__iexact=username).exists():
            raise forms.ValidationError(_("A user with that username already exists."))
        return username

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        first, second = data.get("password1"), data.get("password2")
        if first and second and first != second:
            self.add_error("password2", _("The two passwords differ."))
        elif first:
            candidate = User(
                username=data.get("username", ""),
                email=data.get("email", ""),
                first_name=data.get("first_name", ""),
                last_name=data.get("last_name", ""),
            )
            try:
                password_validation.validate_password(str(first), candidate)
            except forms.ValidationError as error:
                self.add_error("password1", error)
        return data


class StaffUserForm(forms.Form):
    """An administrator changes a user's role, name, email or active flag."""

    first_name = forms.CharField(label=_("First name"), max_length=150, required=False)
    last_name = forms.CharField(label=_("Last name"), max_length=150, required=False)
    email = forms.EmailField(label=_("Email"), required=False)
    role = forms.ChoiceField(label=_("Role"), choices=Role.choices)
    is_active = forms.BooleanField(
        label=_("Active"), required=False, help_text=_("Inactive users cannot sign in.")
    )


class ApiTokenForm(forms.Form):
    name = forms.CharField(
        label=_("Name"),
        max_length=100,
        help_text=_("What the token is for, e.g. “CRM sync”."),
    )
