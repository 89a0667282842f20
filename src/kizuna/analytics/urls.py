"""Pages of usage analytics: Settings → Sources and Metrics, the Customer 360 usage panel."""

from django.urls import path

from kizuna.analytics import views

app_name = "analytics"

urlpatterns = [
    path("settings/sources/", views.sources, name="sources"),
    path("settings/metrics/", views.metrics, name="metrics"),
    path("customers/<int:pk>/usage/", views.customer_usage, name="customer-usage"),
]
