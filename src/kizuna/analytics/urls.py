"""Pages of usage analytics: Settings → Sources and Metrics, the Customer 360 usage panel."""

from django.urls import path

from kizuna.analytics import views

app_name = "analytics"

urlpatterns = [
    path("settings/sources/", views.sources, name="sources"),
    path("settings/sources/<int:pk>/revoke/", views.source_revoke, name="source-revoke"),
    path("settings/metrics/", views.metrics, name="metrics"),
    path("settings/metrics/new/", views.metric_form, name="metric-add"),
    path("settings/metrics/<int:pk>/edit/", views.metric_form, name="metric-edit"),
    path("settings/metrics/<int:pk>/active/", views.metric_active, name="metric-active"),
    path("settings/metrics/usage/", views.usage_settings, name="usage-settings"),
    path("customers/<int:pk>/usage/", views.customer_usage, name="customer-usage"),
]
