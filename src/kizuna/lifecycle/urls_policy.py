"""Routes of Settings → Touch models and Stages, the run button, the Customer 360 panel."""

from django.urls import path

from kizuna.lifecycle import views_policy as views

urlpatterns = [
    path("settings/touch-models/", views.touch_policy, name="touch-policy"),
    path("settings/stages/", views.stage_settings, name="stage-settings"),
    path("settings/stages/run/", views.run_now, name="run"),
    path("customers/<int:pk>/lifecycle/", views.customer_lifecycle, name="customer-lifecycle"),
    path("customers/<int:pk>/stage/", views.customer_stage, name="customer-stage"),
    path(
        "customers/<int:pk>/touch-override/",
        views.customer_touch_override,
        name="customer-touch-override",
    ),
    path(
        "customers/<int:pk>/touch-override/end/",
        views.customer_touch_override_end,
        name="customer-touch-override-end",
    ),
]
