"""Report pages."""

from django.urls import path

from kizuna.reports import views

app_name = "reports"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
]
