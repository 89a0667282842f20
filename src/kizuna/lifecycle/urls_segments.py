"""Routes of Settings → Segments (names land in the "lifecycle" namespace)."""

from django.urls import URLPattern, path

from kizuna.lifecycle import views_segments as views

urlpatterns: list[URLPattern] = [
    path("settings/segments/", views.segment_list, name="segments"),
    path("settings/segments/add/", views.segment_form, name="segment-create"),
    path("settings/segments/preview/", views.segment_preview, name="segment-preview"),
    path("settings/segments/<int:pk>/", views.segment_form, name="segment-edit"),
    path("settings/segments/<int:pk>/delete/", views.segment_delete, name="segment-delete"),
    path("settings/segments/<int:pk>/move/", views.segment_move, name="segment-move"),
]
