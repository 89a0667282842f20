"""Report pages."""

from django.urls import path

from kizuna.reports import views

app_name = "reports"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("onboarding/", views.onboarding, name="onboarding"),
    path("time-in-stage/", views.time_in_stage, name="time-in-stage"),
]
