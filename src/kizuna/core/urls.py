"""Home, sign-in and settings pages."""

from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.urls import path, reverse_lazy

from kizuna.core import views
from kizuna.core.forms import ThrottleAwareAuthenticationForm

app_name = "core"

urlpatterns = [
    path("", views.home, name="home"),
    path(
        "login/",
        login_not_required(
            auth_views.LoginView.as_view(
                template_name="core/login.html",
                authentication_form=ThrottleAwareAuthenticationForm,
                redirect_authenticated_user=True,
            )
        ),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path(
        "password/",
        auth_views.PasswordChangeView.as_view(
            template_name="core/password_change.html",
            success_url=reverse_lazy("core:password-changed"),
        ),
        name="password-change",
    ),
    path(
        "password/done/",
        auth_views.PasswordChangeDoneView.as_view(template_name="core/password_changed.html"),
        name="password-changed",
    ),
    path("settings/", views.settings_home, name="settings"),
    path("settings/users/", views.users, name="settings-users"),
    path("settings/users/<int:pk>/", views.user_edit, name="settings-user-edit"),
    path(
        "settings/users/<int:pk>/deactivate/",
        views.user_deactivate,
        name="settings-user-deactivate",
    ),
    path("settings/tokens/", views.tokens, name="settings-tokens"),
    path("settings/tokens/<int:pk>/revoke/", views.token_revoke, name="settings-token-revoke"),
]
