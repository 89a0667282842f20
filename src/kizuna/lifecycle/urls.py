"""Lifecycle pages. Each area keeps its routes in its own module, all in this namespace."""

from django.urls import include, path

app_name = "lifecycle"

urlpatterns = [
    path("", include("kizuna.lifecycle.urls_segments")),
    path("", include("kizuna.lifecycle.urls_policy")),
    path("", include("kizuna.lifecycle.urls_owners")),
]
