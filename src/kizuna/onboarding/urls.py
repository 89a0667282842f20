"""Onboarding pages: staff pages in this namespace; the customer's plan page is public."""

from django.urls import include, path

app_name = "onboarding"

urlpatterns = [
    path("", include("kizuna.onboarding.urls_staff")),
    path("", include("kizuna.onboarding.urls_public")),
]
