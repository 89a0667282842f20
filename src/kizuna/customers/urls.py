"""Customer pages."""

from django.urls import path

from kizuna.customers import import_views, views

app_name = "customers"

urlpatterns = [
    path("", views.customer_list, name="list"),
    path("import/", import_views.upload, name="import-upload"),
]
