"""URL map: pages per context, the REST API, language switching."""

from typing import Any

from django.contrib.auth.decorators import login_not_required
from django.urls import URLPattern, URLResolver, include, path
from django.views.i18n import set_language

from kizuna.config.api import api


def _exempt_from_login_redirect(patterns: list[URLPattern | URLResolver]) -> Any:
    """The API answers 401 itself (tokens or session); it must never redirect to the login page."""
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            _exempt_from_login_redirect(pattern.url_patterns)
        else:
            pattern.callback.login_required = False  # type: ignore[attr-defined]
    return patterns


_api_patterns, _api_app, _api_namespace = api.urls

urlpatterns = [
    path("", include("kizuna.core.urls")),
    path("customers/", include("kizuna.customers.urls")),
    path("reports/", include("kizuna.reports.urls")),
    path("analytics/", include("kizuna.analytics.urls")),
    path("lifecycle/", include("kizuna.lifecycle.urls")),
    path("onboarding/", include("kizuna.onboarding.urls")),
    path("health/", include("kizuna.health.urls")),
    path("tasks/", include("kizuna.playbooks.urls")),
    path("v1/", include("kizuna.analytics.ingest_urls")),
    path("i18n/setlang/", login_not_required(set_language), name="set_language"),
    path("api/v1/", (_exempt_from_login_redirect(_api_patterns), _api_app, _api_namespace)),
]
