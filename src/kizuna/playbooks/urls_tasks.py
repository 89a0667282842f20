"""Task pages: My day, the team view, task detail and edits, the Customer 360 tasks panel."""

from django.urls import URLPattern, path

from kizuna.playbooks import views

urlpatterns: list[URLPattern] = [
    path("", views.my_day, name="my-day"),
]
