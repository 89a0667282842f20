"""Health pages: the portfolio's health, the churn model, Settings tabs, Customer 360 panels."""

from django.urls import path

from kizuna.health import views

app_name = "health"

urlpatterns = [
    path("", views.overview, name="overview"),
]
