"""URL map: pages per context, the REST API, language switching."""

from django.contrib.auth.decorators import login_not_required
from django.urls import include, path
from django.views.i18n import set_language

from kizuna.config.api import api

urlpatterns = [
    path("", include("kizuna.core.urls")),
    path("customers/", include("kizuna.customers.urls")),
    path("reports/", include("kizuna.reports.urls")),
    path("i18n/setlang/", login_not_required(set_language), name="set_language"),
    path("api/v1/", api.urls),
]
