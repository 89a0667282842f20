"""Sign-in form that tells a throttled user to wait instead of blaming the password."""

from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.utils.translation import gettext_lazy as _

from kizuna.core.auth import client_address, login_is_throttled


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
