"""Tasks and playbooks pages."""

from django.urls import path

from kizuna.playbooks import views

app_name = "playbooks"

urlpatterns = [
    path("", views.my_day, name="my-day"),
]
