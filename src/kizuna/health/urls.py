"""Health pages: the portfolio's health, the churn model, Settings tabs, Customer 360 panels."""

from django.urls import path

from kizuna.health import views, views_settings

app_name = "health"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("model/", views.model_page, name="model"),
    path("model/train/", views.train, name="train"),
    # Customer 360
    path("customers/<int:pk>/", views.customer_health, name="customer-health"),
    path("customers/<int:pk>/sentiment/", views.sentiment, name="sentiment"),
    path("signals/<int:pk>/close/", views.signal_close, name="signal-close"),
    # Settings → Health scorecards
    path("settings/scorecards/", views_settings.scorecards, name="scorecards"),
    path("settings/scorecards/<int:pk>/", views_settings.scorecard_detail, name="scorecard"),
    path("settings/scorecards/<int:pk>/versions/", views_settings.version_new, name="version-new"),
    path("settings/scorecards/<int:pk>/recompute/", views_settings.recompute, name="recompute"),
    path("settings/versions/<int:pk>/", views_settings.version_detail, name="version"),
    path(
        "settings/versions/<int:pk>/publish/",
        views_settings.version_publish,
        name="version-publish",
    ),
    # Settings → Risk signals
    path("settings/signals/", views_settings.signal_rules, name="signal-rules"),
]
